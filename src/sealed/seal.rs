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
//! `stringData` value is sealed under the scope's label.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::emit::Doc;
use super::object::{self, Tree};
use super::{API_VERSION, Certificate, Format, KIND, Scope, crypto, replace};
use crate::error::{Error, Exit, Location, Result};
use crate::formats::OpenOptions;
use crate::k8s;
use crate::manifest::{self, Document, Section, Stream, amend, tree};
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

/// A Secret of a stream and its clear values.
struct Found<'s> {
    doc: &'s Document,
    values: BTreeMap<String, Zeroizing<Vec<u8>>>,
}

/// A stream's Secrets with their clear values, and the edits that remove
/// its format's metadata (footers, a `sops` block) when it was encrypted.
struct Opened<'s> {
    secrets: Vec<Found<'s>>,
    metadata: Vec<manifest::Edit>,
}

/// Every Secret of every stream with its clear values: encrypted Secrets
/// (any format ksec reads) are opened (every data key in one batch) and
/// verified first.
fn clear_secrets<'s>(session: &Session, streams: &'s [Stream]) -> Result<Vec<Opened<'s>>> {
    for stream in streams {
        for doc in &stream.docs {
            pipeline::refuse_hidden_ciphertext(&stream.name, doc)?;
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
                        .map(|s| (s.section, s.key.as_str(), s.value.as_str()))
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
fn secret_parts(node: &tree::Node, at: &Location) -> Result<SecretIn> {
    let meta = match node.get("metadata") {
        None => Map::new(),
        Some(m) => {
            for field in ["labels", "annotations"] {
                if let Some(n) = m.get(field) {
                    object::string_map(n).map_err(|(k, line, why)| {
                        let mut at = at.clone().line(line);
                        at.key = Some(
                            format!("metadata.{field}.{k}")
                                .trim_end_matches('.')
                                .to_owned(),
                        );
                        Error::new(Exit::Input, "invalid-secret", why).at(at)
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

/// `--merge-into`: the values of the one Secret of `input` sealed for the
/// one SealedSecret of `target` (its name, namespace and scope), added to
/// or replacing its `encryptedData`; the Secret's labels and annotations
/// join its template's. Returns the new text of `target`.
pub fn merge_into(
    session: &Session,
    input: &Stream,
    target: &Stream,
    opts: &SealOptions<'_>,
) -> Result<String> {
    let file = target.name.as_str();
    let found = clear_secrets(session, std::slice::from_ref(input))?
        .remove(0)
        .secrets;
    let [secret] = found.as_slice() else {
        return Err(Error::new(
            Exit::Input,
            "merge-input",
            format!(
                "--merge-into takes one Secret, and the input holds {}",
                found.len()
            ),
        )
        .in_file(&input.name));
    };
    let roots =
        tree::parse_stream_lenient(&target.text).map_err(|e| pipeline::locate_error(file, &e))?;
    let sites = object::find(&roots, &object::is_sealed_secret);
    let [site] = sites.as_slice() else {
        return Err(Error::new(
            Exit::Input,
            "merge-target",
            format!(
                "--merge-into needs a file with one SealedSecret, and it holds {}",
                sites.len()
            ),
        )
        .in_file(file));
    };
    let at = site.location(file);
    let ss = object::read_sealed(site.node, &at)?;
    if let Some(s) = opts.scope
        && s != ss.scope
    {
        return Err(Error::usage(format!(
            "--scope {} does not match {file}, which is {} (its annotations decide how the controller opens its values)",
            s.as_str(),
            ss.scope.as_str()
        )));
    }
    let in_at = secret.doc.location(&input.name, secret.doc.line);
    let in_roots = Tree(
        tree::parse_stream_lenient(&input.text)
            .map_err(|e| pipeline::locate_error(&input.name, &e))?,
    );
    let (in_node, _) =
        object::at(&in_roots.0, secret.doc.index, &secret.doc.item).ok_or_else(|| {
            Error::internal("internal error: the Secret is missing from the node tree")
        })?;
    let meta = secret_parts(in_node, &in_at)?.meta;
    let in_annotations: BTreeMap<String, String> = match meta.get("annotations") {
        Some(Value::Object(a)) => a
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
            .collect(),
        _ => BTreeMap::new(),
    };
    if opts.scope.is_none() && Scope::from_annotations(&in_annotations) != ss.scope {
        session.reporter.warn(&format!(
            "{in_at}: the Secret's annotations say {} scope; its values are sealed for {file}'s scope, {}",
            Scope::from_annotations(&in_annotations).as_str(),
            ss.scope.as_str()
        ));
    }
    let label = ss.label(opts.namespace).ok_or_else(|| {
        refuse(
            &at,
            "sealed-no-namespace",
            format!(
                "the SealedSecret has no metadata.namespace, which {} scope needs",
                ss.scope.as_str()
            ),
        )
        .hint("pass --namespace NS: the namespace it is applied to")
    })?;
    let mut changes = Vec::new();
    let path = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
    let mut blobs = BTreeMap::new();
    for (k, v) in &secret.values {
        let blob = seal_value(opts.cert, &label, v)?;
        changes.push(amend::Change {
            path: path(&["spec", "encryptedData"]),
            key: k.clone(),
            value: Some(blob.clone()),
        });
        blobs.insert(k.clone(), blob);
    }
    let clean = super::clean_meta(&meta);
    for field in ["labels", "annotations"] {
        if let Some(Value::Object(m)) = clean.get(field) {
            for (k, v) in m {
                if k == super::CLUSTER_WIDE || k == super::NAMESPACE_WIDE {
                    continue;
                }
                if let Some(v) = v.as_str() {
                    changes.push(amend::Change {
                        path: path(&["spec", "template", "metadata", field]),
                        key: k.clone(),
                        value: Some(v.to_owned()),
                    });
                }
            }
        }
    }
    let outline = amend::outline(&target.text).map_err(|e| pipeline::locate_error(file, &e))?;
    let onode = outline_at(&outline, site.document, &site.item).ok_or_else(|| {
        Error::internal("internal error: the SealedSecret is missing from the outline")
    })?;
    let newline = replace::newline_at(&target.text, site.node.range.start);
    let mut edits = amend::amend(&target.text, onode, &changes, newline)
        .map_err(|e| refuse(&at, "merge-target", format!("cannot merge into it: {e}")))?;
    let out = manifest::splice(&target.text, &mut edits);
    let check = || -> std::result::Result<(), String> {
        let roots = tree::parse_stream_lenient(&out).map_err(|e| e.to_string())?;
        let (node, _) =
            object::at(&roots, site.document, &site.item).ok_or("the SealedSecret is gone")?;
        let again = object::read_sealed(node, &at).map_err(|e| e.message)?;
        let before: BTreeMap<&str, &str> = ss
            .values
            .iter()
            .map(|v| (v.key.as_str(), v.text.as_str()))
            .collect();
        let after: BTreeMap<&str, &str> = again
            .values
            .iter()
            .map(|v| (v.key.as_str(), v.text.as_str()))
            .collect();
        for (k, v) in &before {
            if !blobs.contains_key(*k) && after.get(k) != Some(v) {
                return Err(format!("{k} changed"));
            }
        }
        for (k, v) in &blobs {
            if after.get(k.as_str()) != Some(&v.as_str()) {
                return Err(format!("{k} is not as sealed"));
            }
        }
        if again.name != ss.name || again.namespace != ss.namespace || again.scope != ss.scope {
            return Err("its name, namespace or scope changed".into());
        }
        Ok(())
    };
    check().map_err(|why| {
        Error::internal(format!(
            "internal error: the merged result did not verify ({why}); nothing was written"
        ))
        .in_file(file)
    })?;
    pipeline::kubectl::check_split(file, &out)?;
    Ok(out)
}

/// The outline node of the object at `document` and `item`.
fn outline_at<'a>(
    roots: &'a [amend::Node],
    document: usize,
    item: &[usize],
) -> Option<&'a amend::Node> {
    let mut node = roots.get(document.checked_sub(1)?)?;
    for &i in item {
        let amend::Kind::Mapping(m) = &node.kind else {
            return None;
        };
        let amend::Kind::Sequence(items) = &m.get("items")?.value.kind else {
            return None;
        };
        node = items.get(i)?;
    }
    Some(node)
}
