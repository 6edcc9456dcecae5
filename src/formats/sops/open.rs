//! Classifying a sops file (every value its rule picks must be encrypted)
//! and opening it: unwrap the data key (recombining Shamir shares when it
//! is split between key groups), decrypt every value and comment, verify
//! the MAC.

use std::collections::HashSet;
use std::sync::Arc;

use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::mac::Mac;
use super::meta::{self, SopsMeta};
use super::typed::{Typed, format_float};
use super::value::{self, Enc, Kind, ValueError};
use super::walk::{Leaf, Selector, What, walk};
use super::{at_line, docs};
use crate::error::{Error, Exit, Result};
use crate::formats::{ClearValue, Metadata, OpenOptions, Opened};
use crate::keys::{DataKey, Keyring};
use crate::manifest::Stream;

/// One value or comment of an opened file.
#[derive(Clone)]
pub struct OpenedLeaf {
    /// Where it starts in the stream it was read from.
    pub start: usize,
    /// A comment (also an encrypted comment written as a sequence element).
    pub comment: bool,
    /// Its associated data.
    pub aad: String,
    /// The clear text: a value's canonical bytes as text (what the MAC
    /// hashes and what sops encrypts), a comment's text.
    pub plain: Zeroizing<String>,
    /// Its type.
    pub kind: Kind,
    /// The nonce it was encrypted with, when it was.
    pub iv: Option<Vec<u8>>,
}

/// What sops keeps of an opened file (the [`Opened::extra`]).
pub struct SopsOpened {
    /// Every value and comment, in walk order (nulls left out).
    pub leaves: Vec<OpenedLeaf>,
    /// The MAC's digest of the clear values.
    pub digest: String,
}

/// The opened extra of an [`Opened`] sops file.
pub fn extra(opened: &Opened) -> Option<&SopsOpened> {
    opened.extra.as_ref()?.downcast_ref::<SopsOpened>()
}

/// The leaves of a stream under its metadata's rule.
pub(super) fn leaves<'s>(stream: &'s Stream, meta: &SopsMeta) -> Result<Vec<Leaf<'s>>> {
    let selector = Selector::new(&meta.rule());
    walk(docs(stream)?, &selector)
        .map(|l| l.into_iter().collect())
        .map_err(|e| {
            Error::new(Exit::Input, "unsupported-yaml", e.message).at(at_line(stream, e.line))
        })
}

/// Whether a selected value holds what sops can decrypt: an ENC string, an
/// empty string or null.
fn sealed_or_empty(leaf: &Leaf<'_>, store: super::Store) -> std::result::Result<(), &'static str> {
    let What::Value(s) = &leaf.what else {
        return Ok(());
    };
    match s.typed(store) {
        Ok(Typed::Null) => Ok(()),
        Ok(Typed::Str(t)) if t.is_empty() || value::looks_encrypted(&t) => Ok(()),
        Ok(Typed::Str(t)) if t.starts_with("ENC[") => Err("damaged"),
        _ => Err("clear"),
    }
}

/// Checks that every value the rule picks is encrypted; returns where the
/// picked values start (for [`Metadata::keeps_clear`]).
pub(super) fn classify(stream: &Stream, meta: &SopsMeta) -> Result<HashSet<usize>> {
    let mut selected = HashSet::new();
    for leaf in leaves(stream, meta)? {
        if !leaf.encrypt {
            continue;
        }
        if let What::Value(_) = &leaf.what {
            selected.insert(leaf.range().start);
        }
        match sealed_or_empty(&leaf, meta.store) {
            Ok(()) => {}
            Err("damaged") => {
                return Err(Error::new(
                    Exit::Integrity,
                    "malformed-value",
                    "the encrypted value is damaged (not `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`)",
                )
                .at(at_line(stream, leaf.line()).key(leaf.label())));
            }
            Err(_) => {
                return Err(Error::new(
                    Exit::State,
                    "partly-encrypted",
                    "the file is partly encrypted: this value is in clear text where the file's rule says encrypted",
                )
                .at(at_line(stream, leaf.line()).key(leaf.label()))
                .hint(format!(
                    "decrypt the file first (ksec decrypt -i), then encrypt it again; the rule is `{}: {}`",
                    meta.rule().field().0,
                    meta.rule().field().1
                )));
            }
        }
    }
    Ok(selected)
}

/// Unwraps the data key: from any key of the one group, or from enough
/// groups' shares.
pub(super) fn unwrap(stream: &Stream, meta: &SopsMeta, keyring: &Keyring) -> Result<DataKey> {
    let no_key = |why: String, hint: Option<String>| {
        Error::new(
            Exit::Key,
            "no-key",
            format!("no available key can open the data key ({why})"),
        )
        .in_file(&stream.name)
        .maybe_hint(hint)
    };
    let secret = if meta.groups.len() <= 1 {
        keyring
            .unwrap(&meta.lines)
            .map_err(|f| no_key(f.to_string(), crate::keys::unwrap_hint(&f)))?
    } else {
        let needed = meta.needed();
        let mut shares = Vec::new();
        let mut failures = Vec::new();
        let mut at = 0;
        for (i, g) in meta.groups.iter().enumerate() {
            let lines = &meta.lines[at..at + g.len()];
            at += g.len();
            match keyring.unwrap(lines) {
                Ok(s) => shares.push(s),
                Err(f) => failures.push(format!("group {}: {f}", i + 1)),
            }
        }
        if shares.len() < needed {
            return Err(no_key(
                format!(
                    "{} of {} key groups opened, {needed} needed; {}",
                    shares.len(),
                    meta.groups.len(),
                    failures.join("; ")
                ),
                None,
            ));
        }
        let refs: Vec<&[u8]> = shares.iter().map(|s| s.as_slice()).collect();
        super::shamir::combine(&refs).map_err(|e| {
            Error::new(
                Exit::Integrity,
                "unwrap",
                format!("the key groups' shares do not combine: {e}"),
            )
            .in_file(&stream.name)
        })?
    };
    DataKey::from_slice(&secret).ok_or_else(|| {
        Error::new(
            Exit::Key,
            "unwrap",
            "the unwrapped data key is not 32 bytes",
        )
        .in_file(&stream.name)
    })
}

/// A decrypted plaintext in its canonical form for its type (what sops
/// hashes after parsing it), or why it does not parse.
fn canonical(kind: Kind, plain: &[u8]) -> std::result::Result<String, &'static str> {
    let text = std::str::from_utf8(plain).map_err(|_| "the value is not UTF-8 text")?;
    Ok(match kind {
        Kind::Str | Kind::Bytes | Kind::Comment | Kind::Time => text.to_owned(),
        Kind::Int => {
            let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err("a `type:int` value that is not an integer");
            }
            text.parse::<i64>()
                .map_err(|_| "a `type:int` value that is not an integer")?
                .to_string()
        }
        Kind::Float => format_float(
            text.parse::<f64>()
                .map_err(|_| "a `type:float` value that is not a number")?,
        ),
        Kind::Bool => match text {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => "True".into(),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => "False".into(),
            _ => return Err("a `type:bool` value that is not a boolean"),
        },
    })
}

/// Decrypts and verifies every value with a known data key.
pub(super) fn open_with_key(
    stream: &Stream,
    meta_rc: Arc<dyn Metadata>,
    meta: &SopsMeta,
    dek: DataKey,
    opts: OpenOptions,
) -> Result<Opened> {
    let leaves = leaves(stream, meta)?;
    let mut mac = Mac::new(meta.mac_only_encrypted);
    let mut opened = Vec::with_capacity(leaves.len());
    for leaf in &leaves {
        if let Some(o) = open_leaf(stream, meta, &dek, leaf)? {
            if !o.comment {
                mac.add(o.plain.as_bytes(), leaf.encrypt);
            }
            opened.push(o);
        }
    }
    let digest = mac.hex();
    if !opts.skip_mac {
        verify_mac(stream, meta, &dek, &digest)?;
    }
    match &meta.binding {
        Some(b) if !opts.skip_mac => super::binding::verify(&dek, &leaves, b).map_err(|_| {
            Error::new(
                Exit::Integrity,
                "binding-mismatch",
                "the binding does not verify: a key was renamed, added or removed since the file was encrypted (sops' MAC does not cover keys)",
            )
            .in_file(&stream.name)
            .hint(format!(
                "compare with version control; if the change is right, re-sign with `ksec recompute-mac {}`",
                stream.name
            ))
        })?,
        None if opts.require_binding => {
            return Err(Error::new(
                Exit::Integrity,
                "binding-missing",
                "the sops metadata has no `ksec_binding`, and a binding is required here",
            )
            .in_file(&stream.name)
            .hint(format!(
                "sops drops the field when it rewrites a file; if the file is right, add it again with `ksec recompute-mac {}`",
                stream.name
            )));
        }
        _ => {}
    }
    let values = secret_values(stream, &opened, opts.drop_tokens)?;
    Ok(Opened {
        dek,
        meta: meta_rc,
        values,
        extra: Some(Arc::new(SopsOpened {
            leaves: opened,
            digest,
        })),
    })
}

/// One leaf opened: its clear text, or `None` for a null.
fn open_leaf(
    stream: &Stream,
    meta: &SopsMeta,
    dek: &DataKey,
    leaf: &Leaf<'_>,
) -> Result<Option<OpenedLeaf>> {
    let aad = leaf.aad();
    let damaged = |e: &str| {
        Error::new(
            Exit::Integrity,
            "malformed-value",
            format!("the encrypted value is damaged: {e}"),
        )
        .at(at_line(stream, leaf.line()).key(leaf.label()))
    };
    match &leaf.what {
        What::Comment(c) => {
            // sops keeps a comment that does not decrypt as it is (written
            // by an older sops, or clear text): so does ksec.
            let decrypted = leaf
                .encrypt
                .then(|| Enc::parse(&c.text).ok())
                .flatten()
                .and_then(|enc| {
                    let plain = value::decrypt(dek, &enc, &aad).ok()?;
                    let text = String::from_utf8(plain.to_vec()).ok()?;
                    Some((text, enc.iv))
                });
            let (plain, iv) = match decrypted {
                Some((t, iv)) => (t, Some(iv)),
                None => (c.text.clone(), None),
            };
            Ok(Some(OpenedLeaf {
                start: c.range.start,
                comment: true,
                aad,
                plain: Zeroizing::new(plain),
                kind: Kind::Comment,
                iv,
            }))
        }
        What::Value(s) => {
            let typed = s.typed(meta.store).map_err(|e| {
                Error::new(Exit::Input, "unsupported-value", e.to_string()).at(at_line(
                    stream,
                    leaf.line(),
                )
                .key(leaf.label()))
            })?;
            if matches!(typed, Typed::Null) {
                return Ok(None);
            }
            let encrypted = leaf.encrypt && matches!(&typed, Typed::Str(t) if !t.is_empty());
            if !encrypted {
                return Ok(Some(OpenedLeaf {
                    start: s.node.range.start,
                    comment: false,
                    aad,
                    plain: Zeroizing::new(String::from_utf8_lossy(&typed.bytes()).into_owned()),
                    kind: typed.kind(),
                    iv: None,
                }));
            }
            let enc = Enc::parse(s.text).map_err(|e| damaged(&e.to_string()))?;
            let plain = value::decrypt(dek, &enc, &aad).map_err(|e| match e {
                ValueError::Authentication => Error::new(
                    Exit::Integrity,
                    "authentication",
                    "the value does not verify (it was changed, moved to another key, or belongs to another file)",
                )
                .at(at_line(stream, leaf.line()).key(leaf.label())),
                other => damaged(&other.to_string()),
            })?;
            if enc.kind == Kind::Comment && !s.element {
                return Err(damaged(
                    "a `type:comment` value that is not a sequence element",
                ));
            }
            let text = canonical(enc.kind, &plain).map_err(damaged)?;
            Ok(Some(OpenedLeaf {
                start: s.node.range.start,
                comment: enc.kind == Kind::Comment,
                aad,
                plain: Zeroizing::new(text),
                kind: enc.kind,
                iv: Some(enc.iv),
            }))
        }
    }
}

fn verify_mac(stream: &Stream, meta: &SopsMeta, dek: &DataKey, digest: &str) -> Result<()> {
    let at = || {
        let line = docs(stream)
            .ok()
            .and_then(|d| d.first())
            .and_then(super::metadata_node)
            .map_or(1, |(k, _)| k.line);
        at_line(stream, line)
    };
    if meta.mac.is_empty() {
        return Err(Error::new(
            Exit::Integrity,
            "no-mac",
            "the sops metadata has no MAC, so tampering cannot be ruled out",
        )
        .at(at())
        .hint(format!(
            "if you trust the values, sign them again with `ksec recompute-mac {}`",
            stream.name
        )));
    }
    let mismatch = || {
        Error::new(
            Exit::Integrity,
            "mac-mismatch",
            "the MAC does not verify: values, their order or `lastmodified` were changed outside ksec and sops",
        )
        .at(at())
        .hint(format!(
            "compare with version control; if the current values are right, re-sign them with `ksec recompute-mac {}`",
            stream.name
        ))
    };
    let aad = meta::mac_aad(&meta.lastmodified).ok_or_else(|| {
        Error::new(
            Exit::Integrity,
            "malformed-metadata",
            "the sops metadata `lastmodified` is not an RFC 3339 time",
        )
        .at(at())
    })?;
    let enc = Enc::parse(&meta.mac).map_err(|_| mismatch())?;
    let stored = value::decrypt(dek, &enc, &aad).map_err(|_| mismatch())?;
    if !bool::from(stored.as_slice().ct_eq(digest.as_bytes())) {
        return Err(mismatch());
    }
    Ok(())
}

/// The Secret values of the stream, in site order, from the opened leaves.
fn secret_values(
    stream: &Stream,
    leaves: &[OpenedLeaf],
    drop_tokens: bool,
) -> Result<Vec<ClearValue>> {
    let by_start: std::collections::HashMap<usize, &OpenedLeaf> = leaves
        .iter()
        .filter(|l| !l.comment)
        .map(|l| (l.start, l))
        .collect();
    let mut out = Vec::new();
    for doc in stream.secrets() {
        for site in &doc.sites {
            let value = site.value(&stream.text);
            let clear = match by_start.get(&site.range().start) {
                Some(l) => secret_text(l),
                // A null value: nothing sops encrypts.
                None => Zeroizing::new(value.to_owned()),
            };
            out.push(ClearValue {
                doc: doc.position,
                section: site.section,
                key: site.key(&stream.text).to_owned(),
                clear,
                token: if drop_tokens || !value::looks_encrypted(value) {
                    String::new()
                } else {
                    value.to_owned()
                },
            });
        }
    }
    Ok(out)
}

/// The string a Secret holds for an opened value: its text, booleans
/// spelled as YAML and JSON spell them.
pub fn secret_text(l: &OpenedLeaf) -> Zeroizing<String> {
    match (l.kind, l.plain.as_str()) {
        (Kind::Bool, "True") => Zeroizing::new("true".into()),
        (Kind::Bool, "False") => Zeroizing::new("false".into()),
        _ => l.plain.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        assert_eq!(canonical(Kind::Int, b"05432").unwrap(), "5432");
        assert_eq!(canonical(Kind::Bool, b"t").unwrap(), "True");
        assert_eq!(canonical(Kind::Float, b"1e3").unwrap(), "1000");
        assert!(canonical(Kind::Int, b"x").is_err());
        assert!(canonical(Kind::Bool, b"yes").is_err());
        assert!(canonical(Kind::Str, &[0xff]).is_err());
    }
}
