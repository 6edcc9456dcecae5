//! The kubesec format (shyiko/kubesec v1–v4), plus ksec's key types and
//! `# ksec:` lines — DESIGN.md §4, pinned by the kubesec vectors.
//!
//! One random data key per Secret document (top-level, or an item of a
//! `kind: List`): each `data`/`stringData` value is an AES-256-GCM token
//! ([`codec`]), and comment lines after the document carry the version, the
//! wrapped data keys and the MAC ([`footer`], [`mac`]).

pub mod binding;
pub mod codec;
pub mod footer;
mod lint;
pub mod mac;
mod open;
mod seal;
mod textconv;

use std::any::Any;
use std::sync::Arc;

use super::{
    Envelope, Format, MetaInfo, Metadata, OpenOptions, Opened, SealRequest, Sealing, State,
    StripOptions, Stripped,
};
use crate::error::{Error, Exit, Result};
use crate::keys::{DataKey, Keyring, WrappedKey};
use crate::manifest::{Document, Edit, Stream};

pub use footer::Footer;
pub use open::token_shaped;

/// The kubesec format.
#[derive(Debug, Clone, Copy)]
pub struct Kubesec;

impl Metadata for Footer {
    fn key_lines(&self) -> &[WrappedKey] {
        &self.keys
    }

    fn info(&self) -> MetaInfo {
        MetaInfo {
            version: format!("kubesec v{}", self.version),
            version_number: Some(self.version),
            keys: self.keys.iter().map(|w| w.key.clone()).collect(),
            mac: self.mac.is_some(),
            mac_in_format: self.version >= 3,
            rotated: self.rotated.clone(),
            clear: self.clear,
            kubesec_compatible: self.kubesec_compatible(),
            binding: self.binding.is_some(),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn format(&self) -> &'static str {
        "kubesec"
    }
}

/// The footer of a kubesec envelope's metadata.
fn footer(meta: &dyn Metadata) -> Result<&Footer> {
    meta.as_any()
        .downcast_ref::<Footer>()
        .ok_or_else(|| Error::internal("kubesec metadata expected"))
}

/// The one document of a kubesec envelope.
fn document<'s>(stream: &'s Stream, envelope: &Envelope) -> Result<&'s Document> {
    match envelope.docs.as_slice() {
        [one] => stream
            .docs
            .get(*one)
            .ok_or_else(|| Error::internal("envelope document out of range")),
        _ => Err(Error::internal("a kubesec envelope holds one document")),
    }
}

impl Format for Kubesec {
    fn name(&self) -> &'static str {
        "kubesec"
    }

    fn detect(&self, stream: &Stream) -> bool {
        stream.docs.iter().any(|d| d.footer.is_some())
    }

    fn is_metadata_comment(&self, line: &str) -> bool {
        footer::is_footer_line(line)
    }

    fn looks_sealed(&self, value: &str) -> bool {
        codec::looks_encrypted(value)
    }

    fn envelopes(&self, stream: &Stream) -> Result<Vec<Envelope>> {
        let mut out = Vec::new();
        for doc in stream.secrets() {
            let state = match open::classify(stream, doc)? {
                None => State::Plain,
                Some(f) => State::Sealed(Arc::new(f)),
            };
            out.push(Envelope {
                docs: vec![doc.position],
                state,
            });
        }
        Ok(out)
    }

    fn open(
        &self,
        stream: &Stream,
        envelope: &Envelope,
        keyring: &Keyring,
        opts: OpenOptions,
    ) -> Result<Opened> {
        let doc = document(stream, envelope)?;
        let State::Sealed(meta) = &envelope.state else {
            return Err(open::not_encrypted(&stream.name, doc));
        };
        open::open(stream, doc, meta.clone(), keyring, opts)
    }

    fn open_with_key(
        &self,
        stream: &Stream,
        envelope: &Envelope,
        dek: DataKey,
        opts: OpenOptions,
    ) -> Result<Opened> {
        let doc = document(stream, envelope)?;
        let State::Sealed(meta) = &envelope.state else {
            return Err(open::not_encrypted(&stream.name, doc));
        };
        open::open_with_key(stream, doc, meta.clone(), dek, opts)
    }

    fn prepare<'a>(
        &self,
        stream: &'a Stream,
        request: SealRequest<'a>,
    ) -> Result<Box<dyn Sealing + 'a>> {
        let doc = document(stream, request.envelope)?;
        if let Some(previous) = request.previous {
            footer(previous.meta.as_ref())?;
        }
        seal::prepare(stream, doc, request)
    }

    fn strip(
        &self,
        stream: &Stream,
        envelope: &Envelope,
        opened: &Opened,
        opts: StripOptions,
        out: &mut crate::manifest::Splicer<'_>,
    ) -> Result<Stripped> {
        let doc = document(stream, envelope)?;
        seal::strip(
            stream,
            doc,
            opened,
            footer(opened.meta.as_ref())?,
            opts,
            out,
        )
    }

    fn diff_view(
        &self,
        stream: &Stream,
        envelope: &Envelope,
        opened: Option<&Opened>,
    ) -> Vec<Edit> {
        let (Ok(doc), State::Sealed(meta)) = (document(stream, envelope), &envelope.state) else {
            return Vec::new();
        };
        match footer(meta.as_ref()) {
            Ok(f) => textconv::view(stream, doc, f, opened),
            Err(_) => Vec::new(),
        }
    }

    fn lint(&self, stream: &Stream) -> Vec<Error> {
        lint::lint(stream)
    }

    fn remove_metadata(&self, stream: &Stream) -> Vec<Edit> {
        stream
            .docs
            .iter()
            .filter_map(|d| d.footer.as_ref())
            .map(|f| crate::manifest::remove_footer(&stream.text, f))
            .collect()
    }
}

/// The v1/v2 refusal: no MAC, so tampering cannot be detected.
fn no_mac_in_format(file: &str, doc: &Document, version: u8) -> Error {
    Error::new(
        Exit::Integrity,
        "no-mac",
        format!("format v{version} carries no MAC, so tampering cannot be detected"),
    )
    .at(doc.location(file, doc.line))
    .hint(format!(
        "pass --allow-missing-mac to read it anyway, or add a MAC with `ksec recompute-mac {file}`"
    ))
}
