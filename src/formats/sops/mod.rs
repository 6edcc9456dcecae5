//! The SOPS format (getsops/sops 3.x), read and written so that `sops`
//! itself, Flux, ksops and helm-secrets decrypt what ksec writes.
//!
//! One data key per file: every value the file's selection rule picks, in
//! every document, is an `ENC[AES256_GCM,…]` string ([`value`]) under it,
//! with the value's path as associated data; comments in encrypted parts
//! are encrypted too. A SHA-512 over the values ([`mac`]) is encrypted
//! under the data key with `lastmodified` as associated data, and the
//! wrapped data keys, the rule and the MAC sit in a `sops:` entry appended
//! to every document ([`meta`]).
//!
//! Unlike sops, ksec writes the file in place: only value scalars and
//! comments inside encrypted parts change, and the `sops:` entry is added
//! or updated; indentation, quoting, flow style, comments elsewhere and
//! blank lines stay as they were. Values that did not change keep their
//! exact ciphertext (sops' IV reuse for the same value at the same path).

pub mod binding;
mod lint;
mod mac;
pub mod meta;
mod open;
mod seal;
pub mod shamir;
mod textconv;
pub mod typed;
pub mod value;
pub mod walk;

use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;

use super::{
    Envelope, Format, MetaInfo, Metadata, OpenOptions, Opened, SealRequest, Sealing, State,
    StripOptions, Stripped,
};
use crate::error::{Error, Exit, Location, Result};
use crate::keys::{DataKey, Keyring, WrappedKey};
use crate::manifest::commented::{Doc, Item, Node, Value};
use crate::manifest::{Edit, Stream, ValueSite};

pub use meta::{SOPS_VERSION, SopsMeta};
pub use walk::{Selection, Store};

/// The SOPS format.
#[derive(Debug, Clone, Copy)]
pub struct Sops;

/// A sops file's metadata, with what the file's rule keeps clear.
#[derive(Debug)]
pub struct SopsMetadata {
    /// The `sops` entry, parsed.
    pub meta: SopsMeta,
    /// Where the Secret values the rule encrypts start (byte offsets in
    /// the stream it was read from).
    selected: HashSet<usize>,
}

impl Metadata for SopsMetadata {
    fn key_lines(&self) -> &[WrappedKey] {
        &self.meta.lines
    }

    fn unwrap_sets(&self) -> Vec<&[WrappedKey]> {
        let mut out = Vec::with_capacity(self.meta.groups.len());
        let mut at = 0;
        for g in &self.meta.groups {
            out.push(&self.meta.lines[at..at + g.len()]);
            at += g.len();
        }
        out
    }

    fn info(&self) -> MetaInfo {
        MetaInfo {
            version: format!("sops {}", self.meta.version),
            version_number: None,
            keys: self.meta.lines.iter().map(|w| w.key.clone()).collect(),
            mac: !self.meta.mac.is_empty(),
            mac_in_format: true,
            rotated: None,
            clear: Default::default(),
            kubesec_compatible: false,
            binding: self.meta.binding.is_some(),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn format(&self) -> &'static str {
        "sops"
    }

    fn keeps_clear(&self, site: &ValueSite, value: &str) -> bool {
        value.is_empty() || !self.selected.contains(&site.range().start)
    }
}

/// The metadata of a sops envelope.
fn sops_meta(meta: &dyn Metadata) -> Result<&SopsMetadata> {
    meta.as_any()
        .downcast_ref::<SopsMetadata>()
        .ok_or_else(|| Error::internal("sops metadata expected"))
}

/// How sops would parse the stream: JSON for `.json` files (and for
/// unnamed input that starts with `{`), else YAML.
pub fn store_of(stream: &Stream) -> Store {
    let name = stream.name.to_ascii_lowercase();
    if name.ends_with(".json") {
        return Store::Json;
    }
    let yaml_name = name.ends_with(".yaml") || name.ends_with(".yml");
    let starts_flow = stream
        .text
        .trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with('{');
    if !yaml_name && starts_flow {
        Store::Json
    } else {
        Store::Yaml
    }
}

/// The value of a document's top-level `sops` entry.
fn metadata_node(doc: &Doc) -> Option<(&Node, &Node)> {
    let root = doc.root.as_ref()?;
    let Value::Mapping(items) = &root.value else {
        return None;
    };
    items.iter().find_map(|i| match i {
        Item::Entry(k, v) if walk::is_metadata_entry(i) => Some((&**k, v)),
        _ => None,
    })
}

/// A stream-level error at a line.
fn at_line(stream: &Stream, line: usize) -> Location {
    Location::file(&stream.name).line(line)
}

fn syntax(stream: &Stream, e: &crate::manifest::LocateError) -> Error {
    crate::pipeline::locate_error(&stream.name, e)
}

/// Whether `text` may hold a `sops` key: the word `sops` with no letter,
/// digit or base64 character right before or after it. A test that costs
/// no parse (random base64 ciphertext spells `sops` now and then; a key
/// never touches those characters), before the tree of comments is built.
fn may_hold_metadata(text: &str) -> bool {
    let word =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+' | b'/' | b'=');
    let bytes = text.as_bytes();
    memchr::memmem::find_iter(bytes, b"sops").any(|i| {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + 4).copied();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

/// The documents of a stream, as sops reads them.
fn docs(stream: &Stream) -> Result<&[Doc]> {
    stream.commented().map_err(|e| syntax(stream, &e))
}

/// Reads the metadata of a stream that carries it.
pub fn read_meta(stream: &Stream) -> Result<Option<SopsMeta>> {
    if !may_hold_metadata(&stream.text) {
        return Ok(None);
    }
    let docs = docs(stream)?;
    let Some((key, value)) = docs.first().and_then(metadata_node) else {
        return Ok(None);
    };
    if !matches!(value.value, Value::Mapping(_)) {
        return Ok(None);
    }
    meta::parse(&meta::to_json(value), store_of(stream))
        .map(Some)
        .map_err(|e| {
            Error::new(Exit::Input, "malformed-metadata", e.0).at(at_line(stream, key.line))
        })
}

/// Where the encrypted values and comments of an opened sops file start,
/// and which are comments; `None` for another format's.
pub fn opened_leaves(opened: &Opened) -> Option<Vec<(usize, bool)>> {
    open::extra(opened).map(|x| {
        x.leaves
            .iter()
            .filter(|l| l.iv.is_some())
            .map(|l| (l.start, l.comment))
            .collect()
    })
}

/// Whether a value is an ENC string.
pub fn looks_sealed(value: &str) -> bool {
    value::looks_encrypted(value)
}

impl Format for Sops {
    fn name(&self) -> &'static str {
        "sops"
    }

    fn whole_stream(&self) -> bool {
        true
    }

    fn detect(&self, stream: &Stream) -> bool {
        may_hold_metadata(&stream.text)
            && stream
                .commented()
                .ok()
                .and_then(|d| d.first())
                .and_then(metadata_node)
                .is_some_and(|(_, v)| matches!(v.value, Value::Mapping(_)))
    }

    fn is_metadata_comment(&self, _line: &str) -> bool {
        false
    }

    fn looks_sealed(&self, value: &str) -> bool {
        looks_sealed(value)
    }

    fn envelopes(&self, stream: &Stream) -> Result<Vec<Envelope>> {
        let all: Vec<usize> = stream.docs.iter().map(|d| d.position).collect();
        match read_meta(stream)? {
            None if stream.secrets().next().is_none() => Ok(Vec::new()),
            None => Ok(vec![Envelope {
                docs: all,
                state: State::Plain,
            }]),
            Some(meta) => {
                let selected = open::classify(stream, &meta)?;
                Ok(vec![Envelope {
                    docs: all,
                    state: State::Sealed(Arc::new(SopsMetadata { meta, selected })),
                }])
            }
        }
    }

    fn open(
        &self,
        stream: &Stream,
        envelope: &Envelope,
        keyring: &Keyring,
        opts: OpenOptions,
    ) -> Result<Opened> {
        let State::Sealed(meta) = &envelope.state else {
            return Err(not_encrypted(stream));
        };
        let m = sops_meta(meta.as_ref())?;
        let dek = open::unwrap(stream, &m.meta, keyring)?;
        open::open_with_key(stream, meta.clone(), &m.meta, dek, opts)
    }

    fn open_with_key(
        &self,
        stream: &Stream,
        envelope: &Envelope,
        dek: DataKey,
        opts: OpenOptions,
    ) -> Result<Opened> {
        let State::Sealed(meta) = &envelope.state else {
            return Err(not_encrypted(stream));
        };
        let m = sops_meta(meta.as_ref())?;
        open::open_with_key(stream, meta.clone(), &m.meta, dek, opts)
    }

    fn prepare<'a>(
        &self,
        stream: &'a Stream,
        request: SealRequest<'a>,
    ) -> Result<Box<dyn Sealing + 'a>> {
        seal::prepare(stream, request)
    }

    fn strip(
        &self,
        stream: &Stream,
        envelope: &Envelope,
        opened: &Opened,
        opts: StripOptions,
        out: &mut crate::manifest::Splicer<'_>,
    ) -> Result<Stripped> {
        let (edits, stripped) = seal::strip(stream, envelope, opened, opts)?;
        out.push(edits);
        Ok(stripped)
    }

    fn diff_view(
        &self,
        stream: &Stream,
        envelope: &Envelope,
        opened: Option<&Opened>,
    ) -> Vec<Edit> {
        textconv::view(stream, envelope, opened).unwrap_or_default()
    }

    fn lint(&self, stream: &Stream) -> Vec<Error> {
        lint::lint(stream)
    }

    fn remove_metadata(&self, stream: &Stream) -> Vec<Edit> {
        seal::metadata_removal(stream).unwrap_or_default()
    }
}

fn not_encrypted(stream: &Stream) -> Error {
    Error::new(Exit::State, "not-encrypted", "the file is not encrypted")
        .in_file(&stream.name)
        .hint("there is nothing to decrypt; `ksec encrypt --format sops` encrypts it")
}

#[cfg(test)]
mod tests {
    use super::may_hold_metadata;

    #[test]
    fn metadata_key_precheck() {
        for yes in [
            "sops:\n",
            "a: 1\nsops:\n",
            "{\"sops\": {}}",
            "'sops' : x",
            "? sops\n: x",
        ] {
            assert!(may_hold_metadata(yes), "{yes:?}");
        }
        for no in ["a: 1\n", "k: Xsops+Y.Zz==\n", "k: sops_x\n", "k: Asops\n"] {
            assert!(!may_hold_metadata(no), "{no:?}");
        }
    }
}
