//! Sealing: every Secret of a stream becomes the SealedSecret kubeseal
//! would make of it, in place; other documents stay byte for byte.
//!
//! What kubeseal does to the input Secret, and so ksec (sealed-secrets
//! `pkg/kubeseal`): refuse a Secret without values (unless asked), without
//! a name, or (unless cluster-wide) without a namespace; `--namespace`
//! fills a missing namespace and must agree with a present one; the scope
//! comes from `--scope`, else from the Secret's annotations; the template
//! keeps the metadata without server fields and last-applied copies, the
//! `type` and `immutable`; every `data` value (decoded) and then every
//! `stringData` value is sealed under the scope's label. The inputs come
//! from [`super::secrets`]; `--merge-into` is [`super::merge`].

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::emit::Doc;
use super::object::{self, Tree};
use super::secrets::{Opened, clear_secrets, secret_parts};
use super::{API_VERSION, Certificate, Format, KIND, Scope, crypto, replace};
use crate::error::{Error, Exit, Location, Result};
use crate::manifest::{self, Stream, tree};
use crate::pipeline::{self, Session};

/// How to seal.
#[derive(Debug, Clone, Copy)]
pub struct SealOptions<'a> {
    /// The controller's certificate.
    pub cert: &'a Certificate,
    /// `--scope`: overrides the Secrets' scope annotations.
    pub scope: Option<Scope>,
    /// `--namespace`: for Secrets without one; must agree with the others.
    pub namespace: Option<&'a str>,
    /// `--name`: the name of the one Secret of the input.
    pub name: Option<&'a str>,
    /// Seal Secrets without values too.
    pub allow_empty_data: bool,
    /// How the SealedSecrets are written.
    pub format: Format,
}

/// A Secret's parts that a SealedSecret keeps.
pub struct SecretIn {
    /// `metadata`.
    pub meta: Map<String, Value>,
    /// `type`.
    pub kind: Option<String>,
    /// `immutable`.
    pub immutable: Option<bool>,
    /// Values (`data` decoded, then `stringData`, which wins).
    pub values: BTreeMap<String, Zeroizing<Vec<u8>>>,
}

/// A SealedSecret ksec made.
#[derive(Debug, Clone)]
pub struct SealedObject {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// The scope its values are sealed for.
    pub scope: Scope,
    /// `spec.template.metadata`.
    pub template: Map<String, Value>,
    /// `spec.template.type`.
    pub kind: Option<String>,
    /// `spec.template.immutable`.
    pub immutable: Option<bool>,
    /// `spec.encryptedData`.
    pub encrypted: BTreeMap<String, String>,
}

impl SealedObject {
    /// The object in kubeseal's layout: Go's field order for JSON, every key
    /// sorted for YAML.
    pub fn doc(&self, format: Format) -> Doc {
        let mut meta = vec![("name".to_owned(), Doc::str(&self.name))];
        if let Some(ns) = &self.namespace {
            meta.push(("namespace".to_owned(), Doc::str(ns)));
        }
        if let Some(a) = self.scope.annotation() {
            meta.push((
                "annotations".to_owned(),
                Doc::Map(vec![(a.to_owned(), Doc::str("true"))]),
            ));
        }
        let mut template = vec![("metadata".to_owned(), super::object_meta(&self.template))];
        if let Some(t) = &self.kind {
            template.push(("type".to_owned(), Doc::str(t)));
        }
        if let Some(i) = self.immutable {
            template.push(("immutable".to_owned(), Doc::Bool(i)));
        }
        let encrypted = self
            .encrypted
            .iter()
            .map(|(k, v)| (k.clone(), Doc::str(v)))
            .collect();
        let doc = Doc::Map(vec![
            ("kind".to_owned(), Doc::str(KIND)),
            ("apiVersion".to_owned(), Doc::str(API_VERSION)),
            ("metadata".to_owned(), Doc::Map(meta)),
            (
                "spec".to_owned(),
                Doc::Map(vec![
                    ("template".to_owned(), Doc::Map(template)),
                    ("encryptedData".to_owned(), Doc::Map(encrypted)),
                ]),
            ),
        ]);
        match format {
            Format::Json => doc,
            Format::Yaml => doc.sorted(),
        }
    }
}

fn refuse(at: &Location, code: &'static str, message: impl Into<String>) -> Error {
    Error::new(Exit::Input, code, message).at(at.clone())
}

/// Seals one value: the standard base64 of its blob.
pub fn seal_value(cert: &Certificate, label: &str, value: &[u8]) -> Result<String> {
    let blob = crypto::seal(cert.key(), label, value, &mut rand::rngs::OsRng)
        .map_err(|e| Error::new(Exit::Key, "cert", format!("--cert: {e}")))?;
    Ok(B64.encode(blob))
}

/// Seals a Secret as kubeseal does.
pub fn seal_secret(
    input: &SecretIn,
    opts: &SealOptions<'_>,
    at: &Location,
) -> Result<SealedObject> {
    if input.values.is_empty() && !opts.allow_empty_data {
        return Err(refuse(at, "sealed-empty", "the Secret has no data or stringData values")
            .hint("kubeseal refuses this too, assuming a mistake; pass --allow-empty-data to seal it anyway"));
    }
    let str_field = |k: &str| {
        input
            .meta
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let name = opts
        .name
        .or_else(|| str_field("name"))
        .ok_or_else(|| {
            refuse(at, "sealed-no-name", "the Secret has no metadata.name").hint(
                "a SealedSecret makes a Secret of that name: add metadata.name (or pass --name)",
            )
        })?
        .to_owned();
    let mut template = super::clean_meta(&input.meta);
    let mut annotations: BTreeMap<String, String> = match template.get("annotations") {
        Some(Value::Object(a)) => a
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
            .collect(),
        _ => BTreeMap::new(),
    };
    let scope = match opts.scope {
        Some(s) => {
            annotations.remove(super::CLUSTER_WIDE);
            annotations.remove(super::NAMESPACE_WIDE);
            if let Some(a) = s.annotation() {
                annotations.insert(a.to_owned(), "true".to_owned());
            }
            s
        }
        None => Scope::from_annotations(&annotations),
    };
    let namespace = match (str_field("namespace"), opts.namespace) {
        (Some(mine), Some(given)) if mine != given => {
            return Err(refuse(
                at,
                "sealed-namespace",
                format!(
                    "namespace mismatch: the Secret is in namespace {mine} but --namespace {given} was given"
                ),
            ));
        }
        (Some(mine), _) => Some(mine.to_owned()),
        (None, given) => given.map(str::to_owned),
    };
    let Some(ns) = namespace.as_deref().or(match scope {
        Scope::ClusterWide => Some(""),
        _ => None,
    }) else {
        return Err(refuse(
            at,
            "sealed-no-namespace",
            format!(
                "the Secret has no metadata.namespace, which {} scope needs: its values are sealed for {}",
                scope.as_str(),
                if scope == Scope::Strict { "namespace/name" } else { "the namespace" }
            ),
        )
        .hint("add metadata.namespace, pass --namespace NS, or --scope cluster-wide"));
    };
    template.insert("name".into(), Value::String(name.clone()));
    match &namespace {
        Some(ns) => {
            template.insert("namespace".into(), Value::String(ns.clone()));
        }
        None => {
            template.remove("namespace");
        }
    }
    if annotations.is_empty() {
        template.remove("annotations");
    } else {
        template.insert(
            "annotations".into(),
            Value::Object(
                annotations
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            ),
        );
    }
    let label = scope.label(ns, &name);
    let values: Vec<(&String, &Zeroizing<Vec<u8>>)> = input.values.iter().collect();
    let blobs = super::parallel_map(&values, |(_, v)| seal_value(opts.cert, &label, v))?;
    let encrypted: BTreeMap<String, String> = values
        .iter()
        .map(|(k, _)| (*k).clone())
        .zip(blobs)
        .collect();
    Ok(SealedObject {
        name,
        namespace,
        scope,
        template,
        kind: input.kind.clone(),
        immutable: input.immutable,
        encrypted,
    })
}

/// `--raw`: the label of a value sealed for `scope`, or the refusal when
/// the namespace or name it needs is missing.
pub fn raw_label(scope: Scope, namespace: Option<&str>, name: Option<&str>) -> Result<String> {
    Ok(match (scope, namespace, name) {
        (Scope::ClusterWide, ..) => String::new(),
        (Scope::NamespaceWide, Some(ns), _) => ns.to_owned(),
        (Scope::Strict, Some(ns), Some(n)) => Scope::Strict.label(ns, n),
        (Scope::Strict, _, None) => {
            return Err(Error::usage("--raw with --scope strict needs --name (and --namespace): the value is sealed for namespace/name")
                .hint("or pass --scope namespace-wide or cluster-wide"));
        }
        (_, None, _) => {
            return Err(Error::usage(format!(
                "--raw with --scope {} needs --namespace",
                scope.as_str()
            ))
            .hint("or pass --scope cluster-wide"));
        }
    })
}

/// One stream, sealed.
pub struct SealedText {
    /// The stream with its Secrets replaced by SealedSecrets.
    pub text: String,
    /// How many Secrets were sealed.
    pub sealed: usize,
}

/// Seals every Secret of every stream (`ksec seal`).
pub fn seal_streams(
    session: &Session,
    streams: &[Stream],
    opts: &SealOptions<'_>,
) -> Result<Vec<SealedText>> {
    let found = clear_secrets(session, streams)?;
    let total: usize = found.iter().map(|o| o.secrets.len()).sum();
    if opts.name.is_some() && total > 1 {
        return Err(Error::usage(format!(
            "--name names one Secret, and the input holds {total}"
        )));
    }
    streams
        .iter()
        .zip(found)
        .map(|(stream, found)| seal_stream(stream, &found, opts))
        .collect()
}

fn seal_stream(stream: &Stream, opened: &Opened<'_>, opts: &SealOptions<'_>) -> Result<SealedText> {
    let file = stream.name.as_str();
    let found = &opened.secrets;
    if found.is_empty() {
        return Ok(SealedText {
            text: stream.text.clone(),
            sealed: 0,
        });
    }
    let roots = Tree(
        tree::parse_stream_lenient(&stream.text).map_err(|e| pipeline::locate_error(file, &e))?,
    );
    let mut edits = Vec::new();
    let mut made = Vec::new();
    for f in found {
        let doc = f.doc;
        let at = doc.location(file, doc.line);
        let (node, in_flow) = object::at(&roots.0, doc.index, &doc.item).ok_or_else(|| {
            Error::internal("internal error: a located Secret is missing from the node tree")
                .at(at.clone())
        })?;
        let mut input = secret_parts(node, &at)?;
        input.values = f.values.clone();
        let sealed = seal_secret(&input, opts, &at)?;
        edits.push(replace::object_edit(
            &stream.text,
            node,
            doc.item.is_empty(),
            in_flow,
            &sealed.doc(opts.format),
            opts.format,
        ));
        made.push((doc.index, doc.item.clone(), sealed));
    }
    // The format's metadata goes too (a kubesec footer after its Secret, a
    // sops block wherever it sits), except what went with a replaced Secret.
    let replaced: Vec<std::ops::Range<usize>> = edits.iter().map(|e| e.range.clone()).collect();
    for m in &opened.metadata {
        let inside = |r: &std::ops::Range<usize>| {
            (m.range.start < r.end && r.start < m.range.end)
                || (m.range.is_empty() && r.contains(&m.range.start))
        };
        if !replaced.iter().any(inside) {
            edits.push(m.clone());
        }
    }
    let out = manifest::splice(&stream.text, &mut edits);
    verify_sealed(file, stream, &out, &made).map_err(|why| {
        Error::internal(format!(
            "internal error: the sealed result did not verify ({why}); nothing was written"
        ))
        .in_file(file)
    })?;
    pipeline::kubectl::check_split(file, &out)?;
    Ok(SealedText {
        text: out,
        sealed: made.len(),
    })
}

/// Reads the result again: the same documents, no Secret left where one
/// was sealed, and each SealedSecret reads back as made.
fn verify_sealed(
    file: &str,
    input: &Stream,
    out: &str,
    made: &[(usize, Vec<usize>, SealedObject)],
) -> std::result::Result<(), String> {
    let located = pipeline::parse(file, out.to_owned()).map_err(|e| e.message)?;
    if crate::formats::FORMATS.iter().any(|f| f.detect(&located)) {
        return Err("encryption metadata is left".into());
    }
    let docs = located.docs;
    if manifest::document_count(&docs) != input.document_count() {
        return Err("the number of documents changed".into());
    }
    if docs.iter().any(|d| {
        d.is_secret
            && made
                .iter()
                .any(|(i, item, _)| d.index == *i && d.item == *item)
    }) {
        return Err("a Secret is still there".into());
    }
    let roots = tree::parse_stream_lenient(out).map_err(|e| e.to_string())?;
    for (index, item, sealed) in made {
        let (node, _) = object::at(&roots, *index, item).ok_or("a SealedSecret is missing")?;
        let ss = object::read_sealed(node, &Location::file(file)).map_err(|e| e.message)?;
        let values: BTreeMap<String, String> = ss
            .values
            .iter()
            .map(|v| (v.key.clone(), v.text.clone()))
            .collect();
        if ss.name != sealed.name
            || ss.namespace != sealed.namespace
            || ss.scope != sealed.scope
            || values != sealed.encrypted
        {
            return Err(format!("document {index} does not read back as sealed"));
        }
    }
    Ok(())
}
