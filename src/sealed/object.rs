//! SealedSecret objects as they sit in a stream: where they are, and what
//! they say.
//!
//! A SealedSecret is read from the stream's node tree
//! ([`crate::manifest::tree`]), so that its parts keep their byte ranges
//! (`reseal` and `seal --merge-into` replace values in place) and
//! documents that are not SealedSecrets are never re-written. Lists
//! (`kubectl get sealedsecrets -o yaml`) are looked into, as the locator
//! does for Secrets.

use std::collections::BTreeMap;

use zeroize::Zeroize as _;

use super::{API_VERSION, KIND, Scope};
use crate::error::{Error, Exit, Location};
use crate::k8s;
use crate::manifest::tree::{Node, NodeValue};

/// A node tree whose scalars are wiped when it is dropped: trees of clear
/// text (a key backup, an unsealed stream) hold secrets in their scalars.
pub struct Tree(pub Vec<Node>);

impl Drop for Tree {
    fn drop(&mut self) {
        fn wipe(n: &mut Node) {
            match &mut n.value {
                NodeValue::Scalar { text, .. } => text.zeroize(),
                NodeValue::Sequence(items) => items.iter_mut().for_each(wipe),
                NodeValue::Mapping(entries) => {
                    for (k, v) in entries {
                        wipe(k);
                        wipe(v);
                    }
                }
                NodeValue::Alias => {}
            }
        }
        self.0.iter_mut().for_each(wipe);
    }
}

/// Where an object sits in a stream.
#[derive(Debug, Clone)]
pub struct Site<'t> {
    /// 1-based top-level document.
    pub document: usize,
    /// Its path in `items` of Lists (empty for a top-level document).
    pub item: Vec<usize>,
    /// The object's node.
    pub node: &'t Node,
    /// It sits inside a flow collection (a JSON List): only JSON may replace it.
    pub in_flow: bool,
}

impl Site<'_> {
    /// Where the object is, for messages: file, line, document, item and
    /// `KIND namespace/name`.
    pub fn location(&self, file: &str) -> Location {
        let name = |key: &str| {
            self.node
                .get("metadata")
                .and_then(|m| m.get(key))
                .and_then(Node::as_str)
                .map(str::to_owned)
        };
        let shown = match (name("namespace"), name("name")) {
            (Some(ns), Some(n)) => format!("{ns}/{n}"),
            (None, Some(n)) => n,
            _ => "(unnamed)".to_owned(),
        };
        let kind = self
            .node
            .get("kind")
            .and_then(Node::as_str)
            .unwrap_or("object");
        Location {
            file: Some(file.to_owned()),
            line: self.node.line,
            column: 0,
            document: Some(self.document),
            item: crate::manifest::item_path(&self.item),
            object: Some(format!("{kind} {shown}")),
            key: None,
        }
    }
}

/// The `kind` of a mapping node.
pub fn kind(node: &Node) -> Option<&str> {
    node.get("kind").and_then(Node::as_str)
}

/// Every object of the stream for which `wanted` holds: top-level
/// documents and the items of Lists, in text order.
pub fn find<'t>(roots: &'t [Node], wanted: &dyn Fn(&Node) -> bool) -> Vec<Site<'t>> {
    fn walk<'t>(
        node: &'t Node,
        document: usize,
        item: &mut Vec<usize>,
        in_flow: bool,
        wanted: &dyn Fn(&Node) -> bool,
        out: &mut Vec<Site<'t>>,
    ) {
        if wanted(node) {
            out.push(Site {
                document,
                item: item.clone(),
                node,
                in_flow,
            });
            return;
        }
        if kind(node).is_some_and(|k| k.ends_with("List"))
            && let Some(items_node) = node.get("items")
            && let Some(items) = items_node.items()
        {
            for (i, it) in items.iter().enumerate() {
                item.push(i);
                walk(it, document, item, in_flow || items_node.flow, wanted, out);
                item.pop();
            }
        }
    }
    let mut out = Vec::new();
    for (i, root) in roots.iter().enumerate() {
        walk(root, i + 1, &mut Vec::new(), false, wanted, &mut out);
    }
    out
}

/// The node of the object at `document` (1-based) and `item` path, and
/// whether it sits in a flow collection.
pub fn at<'t>(roots: &'t [Node], document: usize, item: &[usize]) -> Option<(&'t Node, bool)> {
    let mut node = roots.get(document.checked_sub(1)?)?;
    let mut in_flow = false;
    for &i in item {
        let items = node.get("items")?;
        in_flow |= items.flow;
        node = items.items()?.get(i)?;
    }
    Some((node, in_flow))
}

/// Whether a node is a SealedSecret (any apiVersion: a wrong one is
/// refused when it is read, not passed by).
pub fn is_sealed_secret(node: &Node) -> bool {
    kind(node) == Some(KIND)
}

/// The text of a scalar that YAML reads as a string (a plain `true` or
/// `123` is not one; Kubernetes would refuse it where a string belongs).
/// Unlike [`Node::as_str`] it makes no copy, so secrets stay in wiped trees.
pub fn text(node: &Node) -> Option<&str> {
    match &node.value {
        NodeValue::Scalar { text, plain, tag } => {
            let string = match tag.as_deref() {
                Some("str") => true,
                Some(_) => false,
                None => !*plain || !crate::manifest::scalar::resolves_to_non_string(text),
            };
            string.then_some(text.as_str())
        }
        _ => None,
    }
}

/// One `encryptedData` entry.
#[derive(Debug, Clone)]
pub struct SealedValue<'t> {
    /// The Secret key.
    pub key: String,
    /// The base64 text.
    pub text: String,
    /// Its node (for replacing it in place).
    pub node: &'t Node,
}

/// What a SealedSecret says.
#[derive(Debug, Clone)]
pub struct SealedSecret<'t> {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// The scope its top-level annotations give: the label the controller
    /// opens its values with.
    pub scope: Scope,
    /// `spec.encryptedData`, in file order.
    pub values: Vec<SealedValue<'t>>,
    /// `spec.template`.
    pub template: Option<&'t Node>,
    /// The deprecated v1 `spec.data` (one blob for the whole Secret).
    pub legacy_data: bool,
    /// The whole object.
    pub node: &'t Node,
}

impl SealedSecret<'_> {
    /// The label the controller opens the values with, in `namespace` when
    /// the SealedSecret names none.
    pub fn label(&self, namespace: Option<&str>) -> Option<String> {
        let ns = self.namespace.as_deref().or(namespace);
        match (self.scope, ns) {
            (Scope::ClusterWide, _) => Some(String::new()),
            (_, None) => None,
            (scope, Some(ns)) => Some(scope.label(ns, &self.name)),
        }
    }

    /// The template's metadata annotations' scope, when the template has any.
    pub fn template_scope(&self) -> Option<Scope> {
        let annotations = self.template?.get("metadata")?.get("annotations")?;
        Some(Scope::from_annotations(&string_map(annotations).ok()?))
    }
}

fn invalid(at: &Location, line: usize, key: Option<&str>, message: String) -> Error {
    let mut at = at.clone().line(line);
    at.key = key.map(str::to_owned);
    Error::new(Exit::Input, "invalid-sealed-secret", message).at(at)
}

/// What is wrong with a mapping that should hold strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapError {
    /// The offending key (empty: the mapping itself, or a key that is not text).
    pub key: String,
    /// Its line.
    pub line: usize,
    /// What is wrong, as a phrase for after the key (`must be a mapping`).
    pub why: &'static str,
}

/// A mapping of strings (labels, annotations, `encryptedData`, template
/// `data`), refusing other values and duplicate keys.
pub fn string_map(node: &Node) -> Result<BTreeMap<String, String>, MapError> {
    let NodeValue::Mapping(entries) = &node.value else {
        if matches!(&node.value, NodeValue::Scalar { text, plain: true, tag: None } if text.is_empty() || text == "null" || text == "~")
        {
            return Ok(BTreeMap::new());
        }
        return Err(MapError {
            key: String::new(),
            line: node.line,
            why: "must be a mapping",
        });
    };
    let mut out = BTreeMap::new();
    for (k, v) in entries {
        let Some(key) = text(k) else {
            return Err(MapError {
                key: String::new(),
                line: k.line,
                why: "has a key that is not a string",
            });
        };
        let Some(value) = text(v) else {
            return Err(MapError {
                key: key.to_owned(),
                line: v.line,
                why: "must be a string (quote it)",
            });
        };
        if out.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(MapError {
                key: key.to_owned(),
                line: k.line,
                why: "appears twice",
            });
        }
    }
    Ok(out)
}

/// Reads a SealedSecret. `at` locates the object in messages.
pub fn read_sealed<'t>(node: &'t Node, at: &Location) -> Result<SealedSecret<'t>, Error> {
    let api = node.get("apiVersion").and_then(Node::as_str);
    if api != Some(API_VERSION) {
        return Err(invalid(
            at,
            node.line,
            Some("apiVersion"),
            format!(
                "apiVersion {}: ksec reads {API_VERSION} SealedSecrets",
                api.unwrap_or("(none)")
            ),
        ));
    }
    let metadata = node.get("metadata");
    let name = metadata
        .and_then(|m| m.get("name"))
        .and_then(text)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            invalid(
                at,
                node.line,
                Some("metadata.name"),
                "the SealedSecret has no name".into(),
            )
        })?;
    let namespace = metadata
        .and_then(|m| m.get("namespace"))
        .and_then(text)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let annotations = match metadata.and_then(|m| m.get("annotations")) {
        Some(a) => string_map(a).map_err(|e| {
            invalid(
                at,
                e.line,
                Some(format!("metadata.annotations.{}", e.key).trim_end_matches('.')),
                e.why.to_owned(),
            )
        })?,
        None => BTreeMap::new(),
    };
    let spec = node.get("spec").ok_or_else(|| {
        invalid(
            at,
            node.line,
            Some("spec"),
            "the SealedSecret has no spec".into(),
        )
    })?;
    let legacy_data = spec
        .get("data")
        .is_some_and(|d| !matches!(&d.value, NodeValue::Scalar { text, .. } if text.is_empty()));
    let mut values = Vec::new();
    if let Some(enc) = spec.get("encryptedData") {
        let NodeValue::Mapping(entries) = &enc.value else {
            return Err(invalid(
                at,
                enc.line,
                Some("spec.encryptedData"),
                "must be a mapping of keys to sealed values".into(),
            ));
        };
        for (k, v) in entries {
            let key = text(k).unwrap_or_default();
            let label = format!("spec.encryptedData.{key}");
            if !k8s::valid_key(key) {
                return Err(invalid(
                    at,
                    k.line,
                    Some(&label),
                    "is not a valid Secret key ([-._a-zA-Z0-9]+)".into(),
                ));
            }
            if values.iter().any(|s: &SealedValue<'_>| s.key == key) {
                return Err(invalid(at, k.line, Some(&label), "appears twice".into()));
            }
            let Some(value) = text(v) else {
                return Err(invalid(
                    at,
                    v.line,
                    Some(&label),
                    "must be a string of base64".into(),
                ));
            };
            values.push(SealedValue {
                key: key.to_owned(),
                text: value.to_owned(),
                node: v,
            });
        }
    }
    if legacy_data && !values.is_empty() {
        return Err(invalid(
            at,
            spec.line,
            Some("spec.data"),
            "a SealedSecret has either the deprecated spec.data or spec.encryptedData, not both"
                .into(),
        ));
    }
    Ok(SealedSecret {
        name: name.to_owned(),
        namespace,
        scope: Scope::from_annotations(&annotations),
        values,
        template: spec.get("template"),
        legacy_data,
        node,
    })
}
