//! Opening SealedSecrets with the controller's private keys, and sealing
//! them again for a new certificate.
//!
//! `unseal` gives the Secret the controller would create
//! (`SealedSecret.Unseal`): the label comes from the SealedSecret's own
//! name, namespace and **top-level** scope annotations; the metadata is
//! the template's with the SealedSecret's name and namespace; `type` and
//! `immutable` are the template's; `data` is every opened value, then every
//! `template.data` entry rendered as a Go template over the opened values
//! (a template wins over a value of the same key). ksec renders the
//! subset of Go templates it implements ([`crate::template`]) and refuses
//! what it does not; a missing key is refused too (the controller writes
//! `<no value>`). No `ownerReferences`: offline there is no uid to point
//! to, and leaving sealed-secrets means the Secret must outlive its
//! SealedSecret.
//!
//! `reseal` opens every value and seals it again under the same label for
//! the new certificate, replacing only the values' text: names, scopes,
//! the template, comments and layout stay.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::crypto::{self, OpenError};
use super::emit::Doc;
use super::object::{self, SealedSecret, Site, Tree};
use super::{Certificate, Format, RecoveryKeys, replace};
use crate::error::{Error, Exit, Location, Result};
use crate::k8s;
use crate::manifest::{self, Edit, Stream, tree};
use crate::pipeline;
use crate::template::{Template, Value as TValue};

/// How to open.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnsealOptions<'a> {
    /// The namespace of SealedSecrets that name none (where they are
    /// applied); needed for their label unless cluster-wide.
    pub namespace: Option<&'a str>,
}

/// One stream with its SealedSecrets opened.
pub struct Unsealed {
    /// The stream, each SealedSecret replaced by its clear Secret.
    pub text: Zeroizing<String>,
    /// How many SealedSecrets were opened.
    pub opened: usize,
}

/// One SealedSecret opened: the Secret and which key opened it.
pub struct Opened {
    /// The Secret, in kubectl's field order.
    pub secret: Doc,
    /// Its `data`, decoded.
    pub values: BTreeMap<String, Zeroizing<Vec<u8>>>,
    /// Index of the key that opened the values (none when it has none).
    pub key: Option<usize>,
}

/// Opens one value of `ss`: its bytes and the index of the key that opened it.
pub fn open_value(
    ss: &SealedSecret<'_>,
    value: &object::SealedValue<'_>,
    label: &str,
    keys: &RecoveryKeys,
    at: &Location,
) -> Result<(Zeroizing<Vec<u8>>, usize)> {
    let at = at
        .clone()
        .line(value.node.line)
        .key(format!("spec.encryptedData.{}", value.key));
    let blob = k8s::decode_base64(&value.text)
        .ok_or_else(|| Error::new(Exit::Input, "sealed-damaged", "is not base64").at(at.clone()))?;
    crypto::open(&keys.private(), label, &blob, &mut rand::rngs::OsRng).map_err(|e| match e {
        OpenError::TooShort { .. } => Error::new(Exit::Input, "sealed-damaged", e.to_string())
            .at(at)
            .hint("the value was cut short or edited; seal it again"),
        OpenError::Damaged => Error::new(Exit::Integrity, "sealed-damaged", e.to_string())
            .at(at)
            .hint("the value was edited after sealing; seal it again"),
        OpenError::NoKey => Error::new(
            Exit::Key,
            "sealed-no-key",
            format!(
                "no recovery key opens it as {} (label `{label}`; {} key{} tried)",
                describe_scope(ss),
                keys.0.len(),
                if keys.0.len() == 1 { "" } else { "s" }
            ),
        )
        .at(at)
        .hint(
            "it was sealed with another controller key, or for another name, namespace or scope \
(a strict SealedSecret cannot be renamed or moved; the top-level annotations give the scope)",
        ),
    })
}

fn describe_scope(ss: &SealedSecret<'_>) -> String {
    format!("{} scope", ss.scope.as_str())
}

/// The label of `ss`, or the refusal when it needs a namespace it lacks.
pub fn label_of(ss: &SealedSecret<'_>, opts: &UnsealOptions<'_>, at: &Location) -> Result<String> {
    if ss.legacy_data {
        return Err(Error::new(
            Exit::Input,
            "sealed-v1",
            "spec.data is the deprecated v1 format (the whole Secret in one blob), which ksec does not read",
        )
        .at(at.clone())
        .hint("let the controller re-encrypt it (kubeseal --re-encrypt) into encryptedData first"));
    }
    ss.label(opts.namespace).ok_or_else(|| {
        Error::new(
            Exit::Input,
            "sealed-no-namespace",
            format!(
                "the SealedSecret has no metadata.namespace, which its {} label needs",
                ss.scope.as_str()
            ),
        )
        .at(at.clone())
        .hint("pass --namespace NS: the namespace it is applied to")
    })
}

/// Opens one SealedSecret as the controller would.
pub fn open(
    ss: &SealedSecret<'_>,
    keys: &RecoveryKeys,
    opts: &UnsealOptions<'_>,
    at: &Location,
) -> Result<Opened> {
    let label = label_of(ss, opts, at)?;
    let opened = super::parallel_map(&ss.values, |v| open_value(ss, v, &label, keys, at))?;
    let key = opened.first().map(|(_, i)| *i);
    let mut values: BTreeMap<String, Zeroizing<Vec<u8>>> = ss
        .values
        .iter()
        .map(|v| v.key.clone())
        .zip(opened.into_iter().map(|(bytes, _)| bytes))
        .collect();
    let template = ss.template;
    let field = |name: &str| template.and_then(|t| t.get(name));
    let mut meta = match field("metadata").map(tree::Node::to_json) {
        Some(Value::Object(m)) => super::clean_meta(&m),
        _ => Map::new(),
    };
    meta.insert("name".into(), Value::String(ss.name.clone()));
    match ss.namespace.as_deref().or(opts.namespace) {
        Some(ns) => meta.insert("namespace".into(), Value::String(ns.to_owned())),
        None => meta.remove("namespace"),
    };
    for field in ["labels", "annotations"] {
        if let Some(node) = template
            .and_then(|t| t.get("metadata"))
            .and_then(|m| m.get(field))
        {
            object::string_map(node).map_err(|e| {
                let mut at = at.clone().line(e.line);
                at.key = Some(
                    format!("spec.template.metadata.{field}.{}", e.key)
                        .trim_end_matches('.')
                        .to_owned(),
                );
                Error::new(Exit::Input, "invalid-sealed-secret", e.why).at(at)
            })?;
        }
    }
    let kind = match field("type") {
        Some(t) => object::text(t)
            .map(str::to_owned)
            .ok_or_else(|| invalid(at, t.line, "spec.template.type", "must be a string"))?,
        None => String::new(),
    };
    let immutable = match field("immutable").map(|n| (n.line, n.to_json())) {
        None | Some((_, Value::Null)) => None,
        Some((_, Value::Bool(b))) => Some(b),
        Some((line, _)) => {
            return Err(invalid(
                at,
                line,
                "spec.template.immutable",
                "must be true or false",
            ));
        }
    };
    if let Some(data) = field("data") {
        let templates = object::string_map(data)
            .map_err(|e| invalid(at, e.line, &format!("spec.template.data.{}", e.key), e.why))?;
        let lines: BTreeMap<String, usize> = match &data.value {
            tree::NodeValue::Mapping(entries) => entries
                .iter()
                .filter_map(|(k, v)| object::text(k).map(|k| (k.to_owned(), v.line)))
                .collect(),
            _ => BTreeMap::new(),
        };
        render_templates(&templates, &lines, &mut values, at)?;
    }
    let mut secret = vec![
        ("apiVersion".to_owned(), Doc::str("v1")),
        ("kind".to_owned(), Doc::str("Secret")),
        ("metadata".to_owned(), secret_meta(&meta)),
        (
            "type".to_owned(),
            Doc::str(if kind.is_empty() { "Opaque" } else { &kind }),
        ),
    ];
    if let Some(i) = immutable {
        secret.push(("immutable".to_owned(), Doc::Bool(i)));
    }
    if !values.is_empty() {
        secret.push((
            "data".to_owned(),
            Doc::Map(
                values
                    .iter()
                    .map(|(k, v)| (k.clone(), Doc::Str(k8s::encode_base64(v))))
                    .collect(),
            ),
        ));
    }
    Ok(Opened {
        secret: Doc::Map(secret),
        values,
        key,
    })
}

fn invalid(at: &Location, line: usize, key: &str, message: &str) -> Error {
    let mut at = at.clone().line(line);
    at.key = Some(key.trim_end_matches('.').to_owned());
    Error::new(Exit::Input, "invalid-sealed-secret", message.to_owned()).at(at)
}

/// Metadata in kubectl's order: name, namespace, labels, annotations, then
/// the rest in ObjectMeta's order.
fn secret_meta(meta: &Map<String, Value>) -> Doc {
    let Doc::Map(go) = super::object_meta(meta) else {
        unreachable!("object_meta is a map")
    };
    let first = ["name", "namespace", "labels", "annotations"];
    let mut out: Vec<(String, Doc)> = Vec::new();
    for k in first {
        if let Some((_, v)) = go.iter().find(|(x, _)| x == k) {
            out.push((k.to_owned(), v.clone().sorted()));
        }
    }
    out.extend(
        go.into_iter()
            .filter(|(k, _)| !first.contains(&k.as_str()))
            .map(|(k, v)| (k, v.sorted())),
    );
    Doc::Map(out)
}

/// Renders `template.data` over the opened values (as strings), as the
/// controller does; each result replaces the value of its key.
fn render_templates(
    templates: &BTreeMap<String, String>,
    lines: &BTreeMap<String, usize>,
    values: &mut BTreeMap<String, Zeroizing<Vec<u8>>>,
    at: &Location,
) -> Result<()> {
    // The values as strings (Go converts the bytes); ksec's strings are
    // UTF-8, so a template that names a value that is not cannot render.
    let mut data = BTreeMap::new();
    let mut binary = Vec::new();
    for (k, v) in values.iter() {
        match std::str::from_utf8(v) {
            Ok(s) => {
                data.insert(k.clone(), TValue::str(s));
            }
            Err(_) => binary.push(k.as_str()),
        }
    }
    let line = |k: &str| lines.get(k).copied().unwrap_or(at.line);
    for (k, text) in templates {
        if let Some(b) = binary.iter().find(|b| text.contains(**b)) {
            return Err(invalid(
                at,
                line(k),
                &format!("spec.template.data.{k}"),
                &format!(
                    "cannot be rendered: it uses encryptedData.{b}, which is not UTF-8 text (ksec's templates need text)"
                ),
            ));
        }
    }
    let data = TValue::Map(data);
    let mut rendered = Vec::new();
    for (k, text) in templates {
        let key = format!("spec.template.data.{k}");
        let cannot =
            |e: crate::template::TemplateError| {
                invalid(at, line(k), &key, &format!("ksec cannot render this template ({e})")).hint(
                "ksec renders a subset of Go templates (README, Templates) and refuses the rest; \
let the controller render it, or replace the template by a value",
            )
            };
        let t = Template::parse(text).map_err(cannot)?;
        let out = t.render(&data).map_err(cannot)?;
        rendered.push((k.clone(), Zeroizing::new(out.as_bytes().to_vec())));
    }
    values.extend(rendered);
    Ok(())
}

/// Opens every SealedSecret of every stream (`ksec unseal`); other
/// documents stay byte for byte.
pub fn unseal_streams(
    streams: &[Stream],
    keys: &RecoveryKeys,
    opts: &UnsealOptions<'_>,
) -> Result<Vec<Unsealed>> {
    streams
        .iter()
        .map(|s| unseal_stream(s, keys, opts))
        .collect()
}

fn unseal_stream(
    stream: &Stream,
    keys: &RecoveryKeys,
    opts: &UnsealOptions<'_>,
) -> Result<Unsealed> {
    let file = stream.name.as_str();
    let roots =
        tree::parse_stream_lenient(&stream.text).map_err(|e| pipeline::locate_error(file, &e))?;
    let sites = object::find(&roots, &object::is_sealed_secret);
    let mut edits: Vec<Edit> = Vec::new();
    let mut expected = Vec::new();
    for site in &sites {
        let at = site.location(file);
        let ss = object::read_sealed(site.node, &at)?;
        let opened = open(&ss, keys, opts, &at)?;
        edits.push(replace::object_edit(
            &stream.text,
            site.node,
            site.item.is_empty(),
            site.in_flow,
            &opened.secret,
            Format::Yaml,
        ));
        expected.push((site.document, site.item.clone(), opened.values));
    }
    let out = Zeroizing::new(manifest::splice(&stream.text, &mut edits));
    for e in &mut edits {
        zeroize::Zeroize::zeroize(&mut e.text);
    }
    verify_unsealed(&out, &expected).map_err(|why| {
        Error::internal(format!(
            "internal error: the unsealed result did not verify ({why}); nothing was written"
        ))
        .in_file(file)
    })?;
    pipeline::kubectl::check_split(file, &out)?;
    Ok(Unsealed {
        text: out,
        opened: sites.len(),
    })
}

type Expected = (usize, Vec<usize>, BTreeMap<String, Zeroizing<Vec<u8>>>);

/// Why an unsealed stream does not read back as meant.
#[derive(Debug, thiserror::Error)]
enum ReadBack {
    #[error("{0}")]
    Parse(String),
    #[error("document {0} is not a Secret")]
    NotSecret(usize),
    #[error("document {0} changed shape")]
    Shape(usize),
    #[error("document {0}, {1} does not read back")]
    Value(usize, String),
}

/// Reads the result again: each opened SealedSecret is now a Secret whose
/// `data` decodes to exactly the opened values.
fn verify_unsealed(out: &str, expected: &[Expected]) -> std::result::Result<(), ReadBack> {
    let mut stream = Stream::parse(
        "<unsealed>",
        out.to_owned(),
        crate::formats::is_metadata_comment,
    )
    .map_err(|e| ReadBack::Parse(e.to_string()))?;
    let result = (|| {
        for (index, item, values) in expected {
            let doc = stream
                .docs
                .iter()
                .find(|d| d.index == *index && d.item == *item && d.is_secret)
                .ok_or(ReadBack::NotSecret(*index))?;
            if doc.footer.is_some() || doc.sites.len() != values.len() {
                return Err(ReadBack::Shape(*index));
            }
            for site in &doc.sites {
                let ok = site.section == manifest::Section::Data
                    && values
                        .get(site.key(&stream.text))
                        .zip(k8s::decode_base64(site.value(&stream.text)))
                        .is_some_and(|(want, got)| want.as_slice() == got.as_slice());
                if !ok {
                    return Err(ReadBack::Value(*index, site.label(&stream.text)));
                }
            }
        }
        Ok(())
    })();
    super::wipe_stream(&mut stream);
    result
}

/// One stream, resealed.
pub struct Resealed {
    /// The new text.
    pub text: String,
    /// How many SealedSecrets were resealed.
    pub resealed: usize,
}

/// Seals every value of every SealedSecret again for `cert`, under the
/// same label (`ksec reseal`).
pub fn reseal_streams(
    streams: &[Stream],
    keys: &RecoveryKeys,
    cert: &Certificate,
    opts: &UnsealOptions<'_>,
) -> Result<Vec<Resealed>> {
    streams
        .iter()
        .map(|s| reseal_stream(s, keys, cert, opts))
        .collect()
}

fn reseal_stream(
    stream: &Stream,
    keys: &RecoveryKeys,
    cert: &Certificate,
    opts: &UnsealOptions<'_>,
) -> Result<Resealed> {
    let file = stream.name.as_str();
    let roots =
        tree::parse_stream_lenient(&stream.text).map_err(|e| pipeline::locate_error(file, &e))?;
    let sites: Vec<Site<'_>> = object::find(&roots, &object::is_sealed_secret);
    let mut edits = Vec::new();
    let mut expected = Vec::new();
    for site in &sites {
        let at = site.location(file);
        let ss = object::read_sealed(site.node, &at)?;
        let label = label_of(&ss, opts, &at)?;
        let blobs = super::parallel_map(&ss.values, |v| {
            let (bytes, _) = open_value(&ss, v, &label, keys, &at)?;
            super::seal::seal_value(cert, &label, &bytes)
        })?;
        let mut now = BTreeMap::new();
        for (v, blob) in ss.values.iter().zip(blobs) {
            edits.push(value_edit(&stream.text, v.node, &blob));
            now.insert(v.key.clone(), blob);
        }
        expected.push((site.document, site.item.clone(), now));
    }
    let out = manifest::splice(&stream.text, &mut edits);
    let check = || -> std::result::Result<(), String> {
        let roots = Tree(tree::parse_stream_lenient(&out).map_err(|e| e.to_string())?);
        for (index, item, values) in &expected {
            let (node, _) =
                object::at(&roots.0, *index, item).ok_or("a SealedSecret is missing")?;
            let ss = object::read_sealed(node, &Location::file(file)).map_err(|e| e.message)?;
            let got: BTreeMap<String, String> = ss
                .values
                .iter()
                .map(|v| (v.key.clone(), v.text.clone()))
                .collect();
            if got != *values {
                return Err(format!("document {index} does not read back as resealed"));
            }
        }
        Ok(())
    };
    check().map_err(|why| {
        Error::internal(format!(
            "internal error: the resealed result did not verify ({why}); nothing was written"
        ))
        .in_file(file)
    })?;
    Ok(Resealed {
        text: out,
        resealed: sites.len(),
    })
}

/// The edit that writes `blob` in place of a value, in its quoting style.
fn value_edit(text: &str, node: &tree::Node, blob: &str) -> Edit {
    let range = node.range.clone();
    let quoted = match text[range.clone()].chars().next() {
        Some('"') => format!("\"{blob}\""),
        Some('\'') => format!("'{blob}'"),
        _ => blob.to_owned(),
    };
    Edit {
        range,
        text: quoted,
    }
}
