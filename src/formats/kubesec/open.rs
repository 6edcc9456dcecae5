//! Classifying a kubesec document (plain, encrypted, or a refused mixture)
//! and opening it: unwrap the data key, decrypt and verify every value and
//! the MAC.

use std::sync::Arc;

use zeroize::Zeroizing;

use super::codec::{self, CodecError};
use super::footer::{Footer, FooterError};
use super::{mac, no_mac_in_format};
use crate::error::{Error, Exit, Result};
use crate::formats::{ClearValue, Metadata, OpenOptions, Opened};
use crate::keys::{DataKey, KeyId, Keyring, UnwrapFailure};
use crate::manifest::{Document, Stream, ValueSite};

/// The fewest values of one Secret worth a thread of their own (about
/// 1 µs each).
pub(crate) const VALUES_PER_THREAD: usize = 2048;

/// How many values of one Secret are decrypted or encrypted at a time when
/// they are not all held at once: enough for every core to take
/// [`VALUES_PER_THREAD`].
pub(crate) fn value_batch() -> usize {
    VALUES_PER_THREAD * crate::par::threads()
}

/// A token shape check loose enough to tell a damaged token from clear text:
/// base64 characters in two or three dot-separated parts.
pub fn token_shaped(s: &str) -> bool {
    let parts = s.split('.').count();
    (2..=3).contains(&parts)
        && s.len() >= 20
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'.'))
}

/// Whether a value is a token (a v1 empty value counts as one).
fn is_token(value: &str, v1: bool) -> bool {
    codec::looks_encrypted(value) || (v1 && value.is_empty())
}

/// The footer of a document, parsed; errors on the offending line.
pub fn parse_footer(file: &str, doc: &Document) -> Result<Option<Footer>> {
    let Some(block) = &doc.footer else {
        return Ok(None);
    };
    Footer::parse(block.lines.iter().map(String::as_str))
        .map(Some)
        .map_err(|error| {
            let line = match &error {
                FooterError::Unparsable { line, .. }
                | FooterError::UnknownType { line, .. }
                | FooterError::UnknownKsecLine { line, .. } => block.line + line,
                _ => block.line,
            };
            Error::new(Exit::Input, "malformed-footer", error.to_string())
                .at(doc.location(file, line))
        })
}

/// Decides whether a document is plain (`None`) or encrypted, refusing
/// mixtures.
pub fn classify(stream: &Stream, doc: &Document) -> Result<Option<Footer>> {
    let (file, text) = (stream.name.as_str(), stream.text.as_str());
    let mut footer = parse_footer(file, doc)?;
    // AWS keys of a footer with `# ksec:aws-context:` unwrap with this
    // Secret's namespace and name.
    if let Some(f) = &mut footer {
        for k in &mut f.keys {
            k.params = super::binding::params_for(k.key.kind, f.aws_context, doc);
        }
    }
    let v1 = footer.as_ref().is_some_and(|f| f.version == 1);
    let clear = footer.as_ref().map(|f| f.clear).unwrap_or_default();
    // Values of sections kept clear on purpose are neither tokens nor clear
    // text that should have been encrypted.
    let sealed = || doc.sites.iter().filter(|s| !clear.contains(s.section));
    let first_clear = sealed().find(|s| !is_token(s.value(text), v1));
    let first_token = || sealed().find(|s| is_token(s.value(text), v1));
    match (footer, first_clear) {
        (None, _) => match first_token() {
            None => Ok(None),
            Some(t) => Err(no_footer(file, doc, t.line())),
        },
        (Some(f), None) => Ok(Some(f)),
        (Some(_), Some(c)) if token_shaped(c.value(text)) => Err(corrupt(file, text, doc, c)),
        (Some(_), Some(c)) if first_token().is_some() => Err(partial(stream, doc, c)),
        (Some(_), Some(_)) => Err(footer_on_clear_text(
            file,
            doc,
            doc.footer.as_ref().map_or(doc.line, |b| b.line),
        )),
    }
}

/// Unwraps the data key and decrypts and verifies every value.
pub fn open(
    stream: &Stream,
    doc: &Document,
    meta: Arc<dyn Metadata>,
    keyring: &Keyring,
    opts: OpenOptions,
) -> Result<Opened> {
    let file = &stream.name;
    let footer = super::footer(meta.as_ref())?;
    if footer.version < 3 && !opts.allow_missing_mac && !opts.skip_mac {
        return Err(no_mac_in_format(file, doc, footer.version));
    }
    let secret = keyring
        .unwrap(&footer.keys)
        .map_err(|f| no_key(file, doc, &f))?;
    let dek = DataKey::from_slice(&secret).ok_or_else(|| {
        Error::new(
            Exit::Key,
            "unwrap",
            "the unwrapped data key is not 32 bytes",
        )
        .at(doc.location(file, doc.line))
    })?;
    open_with_key(stream, doc, meta, dek, opts)
}

/// Decrypts and verifies every value with a known data key.
pub fn open_with_key(
    stream: &Stream,
    doc: &Document,
    meta: Arc<dyn Metadata>,
    dek: DataKey,
    opts: OpenOptions,
) -> Result<Opened> {
    let (file, text) = (stream.name.as_str(), stream.text.as_str());
    let footer = super::footer(meta.as_ref())?;
    let cipher = codec::ValueCipher::new(&dek);
    let (clear_sections, v1) = (footer.clear, footer.version == 1);
    let kept_clear =
        |s: &ValueSite| clear_sections.contains(s.section) || (v1 && s.value(text).is_empty());
    let open_clear = |s: &ValueSite| -> Result<Zeroizing<String>> {
        let value = s.value(text);
        if kept_clear(s) {
            // Kept in clear text on purpose (the MAC below still covers it).
            return Ok(Zeroizing::new(value.to_owned()));
        }
        cipher
            .decrypt_value(s.key(text), value)
            .map_err(|e| match e {
                CodecError::Malformed => corrupt(file, text, doc, s),
                _ => unauthentic(file, text, doc, s),
            })
    };
    // A Secret with many values is decrypted on every core; the first
    // failure in file order is the one reported.
    let (values, compact) = if opts.output_only {
        (
            Vec::new(),
            Some(ClearTexts::decrypt(doc, text, kept_clear, open_clear)?),
        )
    } else {
        let open_value = |s: &ValueSite| -> Result<ClearValue> {
            let clear = open_clear(s)?;
            let token = if clear_sections.contains(s.section) || opts.drop_tokens {
                String::new()
            } else {
                s.value(text).to_owned()
            };
            Ok(ClearValue {
                doc: doc.position,
                section: s.section,
                key: s.key(text).to_owned(),
                clear,
                token,
            })
        };
        let values = crate::par::try_map(&doc.sites, VALUES_PER_THREAD, open_value)?;
        (values, None)
    };
    let clear_of = |i: usize| match &compact {
        Some(c) => c.get(i),
        None => values[i].clear.as_str(),
    };
    let footer_line = doc.footer.as_ref().map_or(doc.line, |b| b.line);
    if !opts.skip_mac && footer.version >= 3 {
        let Some(m) = &footer.mac else {
            return Err(missing_mac(file, doc, footer_line));
        };
        let ids: Vec<KeyId> = footer.keys.iter().map(|k| k.key.clone()).collect();
        let aad = mac::aad_of(
            doc.sites.len(),
            |i| {
                let s = &doc.sites[i];
                (s.section, s.key(text), clear_of(i))
            },
            &ids,
        );
        mac::verify(&dek, &aad, m).map_err(|_| mac_mismatch(file, doc, footer_line))?;
    }
    match &footer.binding {
        Some(b) if !opts.skip_mac => super::binding::verify(&dek, text, doc, footer, b)
            .map_err(|_| binding_mismatch(file, doc, footer_line))?,
        None if opts.require_binding => return Err(binding_missing(file, doc, footer_line)),
        _ => {}
    }
    Ok(Opened {
        dek,
        meta,
        values,
        extra: compact.map(|c| Arc::new(c) as Arc<dyn std::any::Any + Send + Sync>),
    })
}

/// The clear values of a Secret opened only to be written out
/// ([`OpenOptions::output_only`]): one zeroizing buffer in site order, where
/// every value would otherwise be a record with its own allocation (about
/// 120 bytes a value instead of its length).
pub(super) struct ClearTexts {
    text: Zeroizing<String>,
    /// Where each value ends in `text`.
    ends: Vec<u32>,
}

impl ClearTexts {
    /// Decrypts every site of `doc` with `open` into one buffer, a batch
    /// of values at a time on every core. The buffer is sized once, from
    /// the values, so that no copy of a clear value is left behind in freed
    /// memory by its growing: a clear value is at most as long as its
    /// ciphertext (the token's first part, base64), or is the value itself
    /// when it is `kept` in clear text.
    fn decrypt(
        doc: &Document,
        text: &str,
        kept: impl Fn(&ValueSite) -> bool,
        open: impl Fn(&ValueSite) -> Result<Zeroizing<String>> + Sync,
    ) -> Result<ClearTexts> {
        let room: usize = doc
            .sites
            .iter()
            .map(|s| match s.value(text) {
                v if kept(s) => v.len(),
                token => codec::clear_len_bound(token),
            })
            .sum();
        if room > u32::MAX as usize {
            return Err(Error::internal("a Secret's values exceed 4 GiB"));
        }
        let mut out = ClearTexts {
            text: Zeroizing::new(String::with_capacity(room)),
            ends: Vec::with_capacity(doc.sites.len()),
        };
        for sites in doc.sites.chunks(value_batch()) {
            for clear in crate::par::try_map(sites, VALUES_PER_THREAD, &open)? {
                if out.text.len() + clear.len() > out.text.capacity() {
                    return Err(Error::internal("a clear value longer than its token"));
                }
                out.text.push_str(&clear);
                out.ends.push(out.text.len() as u32);
            }
        }
        Ok(out)
    }

    /// The clear text of the `i`-th site.
    pub(super) fn get(&self, i: usize) -> &str {
        let start = i.checked_sub(1).map_or(0, |p| self.ends[p] as usize);
        &self.text[start..self.ends[i] as usize]
    }
}

pub(super) fn not_encrypted(file: &str, doc: &Document) -> Error {
    Error::new(Exit::State, "not-encrypted", "the Secret is not encrypted")
        .at(doc.location(file, doc.line))
        .hint("there is nothing to decrypt; `ksec encrypt` encrypts it")
}

fn no_footer(file: &str, doc: &Document, line: usize) -> Error {
    Error::new(
        Exit::Integrity,
        "missing-footer",
        "encrypted values but no `# kubesec:` footer (deleted?)",
    )
    .at(doc.location(file, line))
    .hint("restore the footer lines from version control")
}

fn corrupt(file: &str, text: &str, doc: &Document, site: &ValueSite) -> Error {
    Error::new(
        Exit::Integrity,
        "malformed-value",
        "the encrypted value is damaged (not valid base64 `ciphertext.iv.tag`)",
    )
    .at(doc.site_location(file, text, site))
}

fn partial(stream: &Stream, doc: &Document, site: &ValueSite) -> Error {
    Error::new(
        Exit::State,
        "partly-encrypted",
        "the document is partly encrypted: this value is in clear text",
    )
    .at(doc.site_location(&stream.name, &stream.text, site))
    .hint("decrypt the document first (ksec decrypt -i), then encrypt it again")
}

fn footer_on_clear_text(file: &str, doc: &Document, line: usize) -> Error {
    Error::new(
        Exit::State,
        "footer-on-clear-text",
        "the document has a ksec/kubesec footer but its values are in clear text",
    )
    .at(doc.location(file, line))
    .hint("remove the `# kubesec:` footer lines, then encrypt it")
}

fn unauthentic(file: &str, text: &str, doc: &Document, site: &ValueSite) -> Error {
    Error::new(
        Exit::Integrity,
        "authentication",
        "the value does not verify (it was changed, moved to another key, or belongs to another document)",
    )
    .at(doc.site_location(file, text, site))
}

fn missing_mac(file: &str, doc: &Document, line: usize) -> Error {
    Error::new(
        Exit::Integrity,
        "no-mac",
        "the footer has no MAC line (`# kubesec:mac:`), so tampering cannot be ruled out",
    )
    .at(doc.location(file, line))
    .hint(format!(
        "if you trust the values, sign them again with `ksec recompute-mac {file}`"
    ))
}

fn mac_mismatch(file: &str, doc: &Document, line: usize) -> Error {
    Error::new(
        Exit::Integrity,
        "mac-mismatch",
        "the MAC does not verify: values, keys or key lines were changed outside ksec",
    )
    .at(doc.location(file, line))
    .hint(format!(
        "compare with version control; if the current values are right, re-sign them with `ksec recompute-mac {file}`"
    ))
}

fn binding_mismatch(file: &str, doc: &Document, line: usize) -> Error {
    Error::new(
        Exit::Integrity,
        "binding-mismatch",
        "the binding does not verify: the Secret's name, namespace or type, a value's section, or a footer line changed since it was encrypted",
    )
    .at(doc.location(file, line))
    .hint(format!(
        "compare with version control; if the change is right, re-sign with `ksec recompute-mac {file}`"
    ))
}

fn binding_missing(file: &str, doc: &Document, line: usize) -> Error {
    Error::new(
        Exit::Integrity,
        "binding-missing",
        "the footer has no `# ksec:bind:` line, and a binding is required here",
    )
    .at(doc.location(file, line))
    .hint(format!(
        "if the file is right, add the binding with `ksec recompute-mac {file}`; a removed binding line can hide a renamed Secret or a value moved between data and stringData"
    ))
}

fn no_key(file: &str, doc: &Document, f: &UnwrapFailure) -> Error {
    Error::new(
        Exit::Key,
        "no-key",
        format!("no available key can open the data key ({f})"),
    )
    .at(doc.location(file, doc.line))
    .maybe_hint(crate::keys::unwrap_hint(f))
}
