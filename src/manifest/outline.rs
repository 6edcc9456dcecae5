//! Each document of a stream as a small tree of mappings, sequences and
//! scalars with byte positions: what [`super::amend`] edits and what
//! `decrypt --template` renders. Pure code.

use std::ops::Range;

use super::LocateError;
use super::tree::{self, NodeValue};

/// A node of the outline.
#[derive(Debug, Clone)]
pub struct Node {
    /// What the node is.
    pub kind: Kind,
    /// The bytes to replace when the node is rewritten.
    pub range: Range<usize>,
}

/// The kinds of nodes ksec needs to tell apart.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A scalar and its parsed value.
    Scalar(String),
    /// A mapping.
    Mapping(Mapping),
    /// A sequence.
    Sequence(Vec<Node>),
    /// An alias or an empty document: kept as bytes.
    Other,
}

/// A mapping with its entries in file order.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// `{…}` (flow, JSON) rather than block style.
    pub flow: bool,
    /// Entries whose keys are scalars.
    pub entries: Vec<Entry>,
    /// For flow mappings: the byte after `{`.
    pub open_end: usize,
}

/// One `key: value` entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The key after parsing.
    pub key: String,
    /// The key's bytes.
    pub key_range: Range<usize>,
    /// 0-based column of the key.
    pub key_column: usize,
    /// The value.
    pub value: Node,
}

impl Mapping {
    /// The entry for `key`.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

/// The mapping of a located document in an outline: the document's root, or
/// for a Secret nested in a List the item it is (following `items` down).
pub fn object<'a>(roots: &'a [Node], doc: &super::Document) -> Option<&'a Node> {
    let mut node = roots.get(doc.index - 1)?;
    for &i in &doc.item {
        let Kind::Mapping(m) = &node.kind else {
            return None;
        };
        let Kind::Sequence(items) = &m.get("items")?.value.kind else {
            return None;
        };
        node = items.get(i)?;
    }
    Some(node)
}

/// Reads every document's root node. Errors only on invalid YAML.
///
/// A view of [`super::tree`]'s nodes shaped for editing: mappings with their
/// string-keyed entries, and aliases and empty documents kept as bytes.
pub fn outline(text: &str) -> Result<Vec<Node>, LocateError> {
    Ok(tree::parse_stream_lenient(text)?
        .iter()
        .map(|doc| {
            if doc.is_empty_document() {
                Node {
                    kind: Kind::Other,
                    range: doc.range.clone(),
                }
            } else {
                view(doc)
            }
        })
        .collect())
}

fn view(node: &tree::Node) -> Node {
    let kind = match &node.value {
        NodeValue::Scalar { text, .. } => Kind::Scalar(text.clone()),
        NodeValue::Sequence(items) => Kind::Sequence(items.iter().map(view).collect()),
        NodeValue::Mapping(entries) => Kind::Mapping(Mapping {
            flow: node.flow,
            entries: entries
                .iter()
                .filter_map(|(k, v)| match &k.value {
                    NodeValue::Scalar { text, .. } => Some(Entry {
                        key: text.clone(),
                        key_range: k.range.clone(),
                        key_column: k.column,
                        value: view(v),
                    }),
                    _ => None,
                })
                .collect(),
            open_end: node.range.start + 1,
        }),
        NodeValue::Alias => Kind::Other,
    };
    Node {
        kind,
        range: node.range.clone(),
    }
}
