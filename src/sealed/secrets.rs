//! The Secrets a stream holds, with their clear values, for sealing:
//! encrypted ones (kubesec or SOPS, any format ksec reads) are opened
//! through the pipeline with every data key of the run in one batch and
//! verified first; clear ones are read as they are. Refused here, before
//! anything is sealed: ciphertext outside Secrets, and Secrets inside a
//! JSON List (ksec reads Secrets only where it could also encrypt them).

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::object::{self, Tree};
use super::seal::SecretIn;
use crate::error::{Error, Exit, Location, Result};
use crate::formats::OpenOptions;
use crate::k8s;
use crate::manifest::{self, Document, Section, Stream, tree};
use crate::pipeline::{self, Session};

fn refuse(at: &Location, code: &'static str, message: impl Into<String>) -> Error {
    Error::new(Exit::Input, code, message).at(at.clone())
}

/// A Secret of a stream and its clear values.
pub(super) struct Found<'s> {
    pub(super) doc: &'s Document,
    pub(super) values: BTreeMap<String, Zeroizing<Vec<u8>>>,
}

/// A stream's Secrets with their clear values, and the edits that remove
/// its format's metadata (footers, a `sops` block) when it was encrypted.
pub(super) struct Opened<'s> {
    pub(super) secrets: Vec<Found<'s>>,
    pub(super) metadata: Vec<manifest::Edit>,
}

/// Every Secret of every stream with its clear values: encrypted Secrets
/// (any format ksec reads) are opened (every data key in one batch) and
/// verified first.
pub(super) fn clear_secrets<'s>(
    session: &Session,
    streams: &'s [Stream],
) -> Result<Vec<Opened<'s>>> {
    for stream in streams {
        for doc in &stream.docs {
            pipeline::refuse_hidden_ciphertext(&stream.name, &stream.text, doc)?;
            pipeline::refuse_stray_ciphertext(&stream.name, doc)?;
        }
        refuse_flow_items(stream)?;
    }
    let opened = pipeline::open_all(
        session,
        streams,
        OpenOptions {
            drop_tokens: true,
            ..OpenOptions::default()
        },
    )?;
    let mut out = Vec::with_capacity(streams.len());
    for (stream, o) in streams.iter().zip(&opened) {
        let mut found = Vec::new();
        for (position, doc) in stream.docs.iter().enumerate() {
            if !doc.is_secret {
                continue;
            }
            let envelope = o
                .classified
                .envelopes
                .iter()
                .position(|e| e.docs.contains(&position));
            let clear: Vec<(Section, &str, &str)> =
                match envelope.and_then(|i| o.opened[i].as_ref()) {
                    Some(opened) => opened
                        .values
                        .iter()
                        .filter(|v| v.doc == position)
                        .map(|v| (v.section, v.key.as_str(), v.clear.as_str()))
                        .collect(),
                    None => doc
                        .sites
                        .iter()
                        .map(|s| (s.section, s.key(&stream.text), s.value(&stream.text)))
                        .collect(),
                };
            let mut values = BTreeMap::new();
            for section in [Section::Data, Section::StringData] {
                for (_, key, value) in clear.iter().filter(|(s, ..)| *s == section) {
                    let bytes = match section {
                        Section::Data => k8s::decode_base64(value).ok_or_else(|| {
                            refuse(
                                &doc.location(&stream.name, doc.line)
                                    .key(format!("data.{key}")),
                                "invalid-secret",
                                "is not base64 (the API server would refuse it)",
                            )
                        })?,
                        Section::StringData => Zeroizing::new(value.as_bytes().to_vec()),
                    };
                    values.insert((*key).to_owned(), bytes);
                }
            }
            found.push(Found { doc, values });
        }
        let metadata = if o.classified.sealed() > 0 {
            o.classified.format.remove_metadata(stream)
        } else {
            Vec::new()
        };
        out.push(Opened {
            secrets: found,
            metadata,
        });
    }
    Ok(out)
}

/// Secrets inside a flow-style (JSON) List are refused: encrypted ones
/// cannot exist there, and ksec reads clear ones only where it could also
/// encrypt them.
fn refuse_flow_items(stream: &Stream) -> Result<()> {
    if !stream.secrets().any(Document::is_nested) {
        return Ok(());
    }
    let roots = Tree(
        tree::parse_stream_lenient(&stream.text)
            .map_err(|e| pipeline::locate_error(&stream.name, &e))?,
    );
    for doc in stream.secrets().filter(|d| d.is_nested()) {
        if let Some((_, true)) = object::at(&roots.0, doc.index, &doc.item) {
            return Err(refuse(
                &doc.location(&stream.name, doc.line),
                "invalid-secret",
                "a Secret in a flow-style (JSON) List: ksec seals Secrets that are documents or items of block-style Lists",
            )
            .hint("write the List as YAML first (kubectl get … -o yaml), or seal its Secrets one by one"));
        }
    }
    Ok(())
}

/// The parts of a Secret's node that a SealedSecret keeps (values aside).
pub(super) fn secret_parts(node: &tree::Node, at: &Location) -> Result<SecretIn> {
    let meta = match node.get("metadata") {
        None => Map::new(),
        Some(m) => {
            for field in ["labels", "annotations"] {
                if let Some(n) = m.get(field) {
                    object::string_map(n).map_err(|e| {
                        let mut at = at.clone().line(e.line);
                        at.key = Some(
                            format!("metadata.{field}.{}", e.key)
                                .trim_end_matches('.')
                                .to_owned(),
                        );
                        Error::new(Exit::Input, "invalid-secret", e.why).at(at)
                    })?;
                }
            }
            match m.to_json() {
                Value::Object(o) => o,
                Value::Null => Map::new(),
                _ => {
                    return Err(refuse(
                        &at.clone().key("metadata"),
                        "invalid-secret",
                        "must be a mapping",
                    ));
                }
            }
        }
    };
    let kind = match node.get("type") {
        None => None,
        Some(t) => Some(
            object::text(t)
                .ok_or_else(|| {
                    refuse(
                        &at.clone().line(t.line).key("type"),
                        "invalid-secret",
                        "must be a string",
                    )
                })?
                .to_owned(),
        ),
    };
    let immutable = match node.get("immutable").map(|n| (n, n.to_json())) {
        None | Some((_, Value::Null)) => None,
        Some((_, Value::Bool(b))) => Some(b),
        Some((n, _)) => {
            return Err(refuse(
                &at.clone().line(n.line).key("immutable"),
                "invalid-secret",
                "must be true or false",
            ));
        }
    };
    Ok(SecretIn {
        meta,
        kind,
        immutable,
        values: BTreeMap::new(),
    })
}
