//! Decrypting streams: every Secret opened and verified, written back in
//! clear text with its metadata removed, and the result read again before
//! it is returned.
//!
//! A document that ksec does not open but that carries ciphertext or a
//! footer (say, a Secret whose `kind` was edited) is refused: kubectl would
//! store the ciphertext as the value. Otherwise the output is the input
//! with values decrypted and footers removed, byte for byte: a byte order
//! mark and a missing final line break stay as they were, so that
//! `decrypt(encrypt(x)) == x` holds.

use zeroize::Zeroizing;

use super::Session;
use super::checks::{refuse_hidden_ciphertext, refuse_stray_ciphertext};
use super::open::{Classified, classify, open_envelope, warm_unwraps};
use super::parents::ParentDoc;
use crate::error::{Error, Result};
use crate::formats::{self, Mismatch, OpenOptions, State, StripOptions};
use crate::manifest::{self, Stream};

/// How to decrypt.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecryptOptions {
    /// Write `data` values base64-decoded (`-x`).
    pub cleartext: bool,
    /// Accept formats without a MAC (kubesec v1/v2).
    pub allow_missing_mac: bool,
    /// Do not check MACs (`--ignore-mac`; each value is still authenticated).
    pub ignore_mac: bool,
    /// Refuse envelopes without a binding (`--require-binding`, a rule's
    /// `binding: required`).
    pub require_binding: bool,
    /// Return every opened Secret (data key, metadata, values with tokens),
    /// for sealing an edited version against them.
    pub keep_opened: bool,
}

/// One decrypted stream.
pub struct Decrypted {
    /// The clear text.
    pub text: Zeroizing<String>,
    /// How many Secrets were decrypted.
    pub secrets: usize,
    /// How many envelopes (kubesec: Secrets; sops: the file) were opened.
    pub envelopes: usize,
    /// With [`DecryptOptions::keep_opened`]: every opened Secret.
    pub opened: Vec<ParentDoc>,
}

/// Decrypts one stream.
pub fn decrypt(session: &Session, stream: &Stream, opts: DecryptOptions) -> Result<Decrypted> {
    decrypt_all(session, std::slice::from_ref(stream), opts).map(|mut v| v.remove(0))
}

/// Decrypts every stream; the data keys of all of them are unwrapped in one
/// batch. The first failure ends the run.
pub fn decrypt_all(
    session: &Session,
    streams: &[Stream],
    opts: DecryptOptions,
) -> Result<Vec<Decrypted>> {
    decrypt_each(session, streams, &vec![opts; streams.len()])
}

/// [`decrypt_all`] with options per stream (a rule can require a binding
/// for some files only).
pub fn decrypt_each(
    session: &Session,
    streams: &[Stream],
    each: &[DecryptOptions],
) -> Result<Vec<Decrypted>> {
    if each.len() != streams.len() {
        return Err(Error::internal("one set of options per stream expected"));
    }
    let lenient = each.iter().any(|o| o.allow_missing_mac || o.ignore_mac);
    let mut classified = Vec::with_capacity(streams.len());
    for stream in streams {
        // Ciphertext outside the Secrets ksec opens would reach kubectl;
        // a whole-stream format's (sops) is its own, and opened below.
        if !super::format_of(stream, None)?.whole_stream() {
            for doc in &stream.docs {
                refuse_hidden_ciphertext(&stream.name, &stream.text, doc)?;
                refuse_stray_ciphertext(&stream.name, doc)?;
            }
        }
        let c = classify(stream)?;
        for e in &c.envelopes {
            if matches!(e.state, State::Plain) {
                let doc = &stream.docs[e.docs[0]];
                return Err(Error::new(
                    crate::error::Exit::State,
                    "not-encrypted",
                    "the Secret is not encrypted",
                )
                .at(doc.location(&stream.name, doc.line))
                .hint("there is nothing to decrypt; `ksec encrypt` encrypts it"));
            }
        }
        classified.push(c);
    }
    warm_unwraps(
        &session.keyring,
        classified.iter().flat_map(|c| &c.envelopes),
        lenient,
    );
    classified
        .iter()
        .zip(each)
        .map(|(c, opts)| decrypt_classified(session, c, *opts))
        .collect()
}

fn decrypt_classified(
    session: &Session,
    c: &Classified<'_>,
    opts: DecryptOptions,
) -> Result<Decrypted> {
    let stream = c.stream;
    let open = OpenOptions {
        allow_missing_mac: opts.allow_missing_mac,
        skip_mac: opts.ignore_mac,
        drop_tokens: !opts.keep_opened,
        output_only: !opts.keep_opened,
        require_binding: opts.require_binding,
    };
    let mut edits = manifest::Splicer::new(&stream.text);
    let mut expected = Vec::new();
    let mut checks = Vec::new();
    let mut kept = Vec::new();
    // One envelope at a time (its data key was unwrapped in the batch):
    // only one Secret's clear values exist apart from their edits.
    for envelope in &c.envelopes {
        let opened = open_envelope(session, c, envelope, open)?
            .ok_or_else(|| Error::internal("plain envelopes were refused"))?;
        let stripped = c.format.strip(
            stream,
            envelope,
            &opened,
            StripOptions {
                cleartext: opts.cleartext,
            },
            &mut edits,
        )?;
        expected.extend(stripped.expected);
        checks.extend(stripped.check);
        if opts.keep_opened {
            for &d in &envelope.docs {
                kept.push(ParentDoc::new(&stream.docs[d], opened.clone()));
            }
        }
        // Otherwise each envelope's clear values are dropped here, once
        // written into the edits.
    }
    let internal = |why: Mismatch| {
        Error::internal(format!(
            "internal error: the decrypted result did not verify ({why}); nothing was written"
        ))
        .in_file(&stream.name)
    };
    let mut out = Zeroizing::new(
        edits
            .finish()
            .map_err(|e| internal(Mismatch(e.to_string())))?,
    );
    let written = Stream::parse_taken(&stream.name, &mut out, formats::is_metadata_comment)
        .map_err(|e| internal(Mismatch(e.to_string())))?;
    drop(out);
    verify(stream, &written, &expected, &checks).map_err(internal)?;
    let Stream { text, .. } = written;
    Ok(Decrypted {
        text: Zeroizing::new(text),
        secrets: expected.len(),
        envelopes: c.envelopes.len(),
        opened: kept,
    })
}

/// Re-reads the output: same documents, no format's metadata left, every
/// decrypted Secret's value parses back to exactly what was meant, and
/// each format's own checks pass.
fn verify(
    input: &Stream,
    written: &Stream,
    expected: &[(usize, Vec<u64>)],
    checks: &[Box<dyn formats::SealedCheck>],
) -> std::result::Result<(), Mismatch> {
    if let Some(f) = formats::FORMATS.iter().find(|f| f.detect(written)) {
        return Err(format!("{} metadata is left", f.name()).into());
    }
    for c in checks {
        c.verify(written, 0)?;
    }
    let docs = &written.docs;
    if docs.len() != input.docs.len() {
        return Err(format!("{} documents instead of {}", docs.len(), input.docs.len()).into());
    }
    for (position, values) in expected {
        let doc = &docs[*position];
        let index = doc.index;
        if doc.footer.is_some() || doc.sites.len() != values.len() {
            return Err(format!("document {index} changed shape").into());
        }
        for (site, v) in doc.sites.iter().zip(values) {
            if formats::digest(site.value(&written.text)) != *v {
                return Err(format!(
                    "document {index}, {} does not read back",
                    site.label(&written.text)
                )
                .into());
            }
        }
    }
    Ok(())
}
