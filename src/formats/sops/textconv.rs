//! What `git diff` shows for a sops file (`ksec textconv`): the values
//! decrypted when a key opens the file, otherwise each ENC string as a
//! fingerprint; in the metadata, each wrapped data key and the MAC as
//! fingerprints.

use std::collections::HashMap;

use super::open::{extra, leaves, secret_text};
use super::walk::What;
use super::{docs, metadata_node, sops_meta, value};
use crate::error::Result;
use crate::formats::{Envelope, Opened, State, fingerprint};
use crate::manifest::commented::{Item, Node, Value};
use crate::manifest::scalar::{self, Context};
use crate::manifest::{Edit, Stream};

/// The diff view of a sops file.
pub fn view(stream: &Stream, envelope: &Envelope, opened: Option<&Opened>) -> Result<Vec<Edit>> {
    let State::Sealed(meta) = &envelope.state else {
        return Ok(Vec::new());
    };
    let meta = &sops_meta(meta.as_ref())?.meta;
    let text = &stream.text;
    let by_start: HashMap<usize, _> = opened
        .and_then(extra)
        .map(|x| x.leaves.iter().map(|l| (l.start, l)).collect())
        .unwrap_or_default();
    let mut edits = Vec::new();
    for leaf in leaves(stream, meta)? {
        let range = leaf.range();
        let current = &text[range.clone()];
        let (is_comment, flow, enc) = match &leaf.what {
            What::Comment(c) => (true, false, c.text.as_str()),
            What::Value(s) => (false, s.flow, s.text),
        };
        if !value::looks_encrypted(enc) {
            continue;
        }
        let shown = match by_start.get(&range.start) {
            Some(l) if is_comment => format!("#{}", l.plain.as_str()),
            Some(l) => {
                // As `decrypt` writes it, on one line (a diff view).
                let ctx = Context {
                    flow: flow || current.starts_with('"'),
                    indent: 0,
                    newline: "\n",
                    line_rest_empty: false,
                    header_comment: None,
                };
                scalar::render(&secret_text(l), &ctx)
            }
            None if is_comment => format!("#<encrypted:{}>", fingerprint(enc)),
            None if flow || current.starts_with('"') => {
                format!("\"<encrypted:{}>\"", fingerprint(enc))
            }
            None => format!("<encrypted:{}>", fingerprint(enc)),
        };
        edits.push(Edit { range, text: shown });
    }
    for doc in docs(stream)? {
        if let Some((_, value)) = metadata_node(doc) {
            blobs(value, text, &mut edits);
        }
    }
    Ok(edits)
}

/// Every `enc` and the `mac` inside the metadata, as fingerprints.
fn blobs(node: &Node, text: &str, edits: &mut Vec<Edit>) {
    let Some(items) = node.items() else { return };
    for item in items {
        match item {
            Item::Entry(k, v) => {
                let name = match &k.value {
                    Value::Scalar { text, .. } => text.as_str(),
                    _ => "",
                };
                match (&v.value, name) {
                    (Value::Scalar { text: t, .. }, "enc" | "mac") if !t.is_empty() => {
                        let shown = format!("<{name}:{}>", fingerprint(t));
                        let shown = if node.flow {
                            format!("\"{shown}\"")
                        } else {
                            shown
                        };
                        let _ = text;
                        edits.push(Edit {
                            range: v.range.clone(),
                            text: shown,
                        });
                    }
                    _ => blobs(v, text, edits),
                }
            }
            Item::Element(n) => blobs(n, text, edits),
            Item::Comment(_) => {}
        }
    }
}
