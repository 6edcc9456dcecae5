//! The binding line (`# ksec:bind:<iv>.<tag>`): a second MAC under the data
//! key over what kubesec's MAC leaves out.
//!
//! kubesec's MAC covers each value's key and clear text and the key ids,
//! concatenated without separators, so these all decrypt unnoticed:
//! moving a value from `data` to `stringData` (the MAC input is the same
//! bytes), renaming the Secret or moving it to another namespace, a changed
//! `type`, and an edited version or `# ksec:` line. The binding is a GMAC
//! (AES-GCM, empty plaintext, random IV) whose associated data is, each
//! field length-prefixed: the apiVersion and kind (`v1`, `Secret`), the
//! namespace, name and type (present or not), each value's section and key
//! in file order, and the footer's version, key and `# ksec:` lines (not
//! the MAC line, which authenticates the values: a changed value changes
//! its own line and the MAC line only; not the rotation record). kubesec
//! ignores the line.
//!
//! It does not detect a replayed older version of the same Secret, or the
//! same Secret (same namespace and name) copied in from another file with
//! its footer: both are authentic data under their own keys.

use zeroize::Zeroizing;

use super::codec::{self, CodecError};
use super::footer::Footer;
use super::mac;
use crate::keys::{DataKey, KeyParams, KeyType};
use crate::manifest::Document;

/// The binding's associated data for `doc` with `footer`.
pub fn aad(text: &str, doc: &Document, footer: &Footer) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::new());
    let mut field = |b: &[u8]| {
        out.extend_from_slice(&(b.len() as u64).to_be_bytes());
        out.extend_from_slice(b);
    };
    let opt = |o: &Option<String>| match o {
        Some(s) => format!("+{s}"),
        None => "-".to_owned(),
    };
    field(b"ksec-bind-v1");
    field(b"v1");
    field(b"Secret");
    field(opt(&doc.namespace).as_bytes());
    field(opt(&doc.name).as_bytes());
    field(opt(&doc.secret_type).as_bytes());
    field(&(doc.sites.len() as u64).to_be_bytes());
    for s in &doc.sites {
        field(s.section.as_str().as_bytes());
        field(s.key(text).as_bytes());
    }
    let lines = footer.bound_lines();
    field(&(lines.len() as u64).to_be_bytes());
    for l in &lines {
        field(l.as_bytes());
    }
    out
}

/// A new binding token.
pub fn compute(dek: &DataKey, text: &str, doc: &Document, footer: &Footer) -> String {
    mac::compute(dek, &aad(text, doc, footer), &codec::random_iv())
}

/// Checks a binding token.
pub fn verify(
    dek: &DataKey,
    text: &str,
    doc: &Document,
    footer: &Footer,
    token: &str,
) -> Result<(), CodecError> {
    mac::verify(dek, &aad(text, doc, footer), token)
}

/// The AWS KMS encryption context of a Secret whose footer asks for one:
/// its name and, when it has one, its namespace.
pub fn aws_context(doc: &Document) -> Vec<(String, String)> {
    let mut ctx = Vec::new();
    if let Some(n) = &doc.name {
        ctx.push(("ksec:name".to_owned(), n.clone()));
    }
    if let Some(ns) = &doc.namespace {
        ctx.push(("ksec:namespace".to_owned(), ns.clone()));
    }
    ctx
}

/// How a key of `kind` wraps for this footer and Secret.
pub fn params_for(kind: KeyType, with_context: bool, doc: &Document) -> KeyParams {
    let mut p = super::footer::params();
    if with_context && kind == KeyType::Aws {
        p.encryption_context = aws_context(doc);
    }
    p
}
