//! Each document of a stream as a tree whose collections hold their
//! comments as items, where go-yaml v3 (the YAML library of sops and of
//! most Go tools) attaches them.
//!
//! A format that treats comments as data (sops encrypts the comments of an
//! encrypted subtree, and its comment rules decide what is encrypted) needs
//! to know, for every comment, which mapping or sequence it belongs to and
//! which item it precedes:
//!
//! * a comment after content on its line (`key: v # c`, `data: # c`) is a
//!   line comment of the innermost item that starts on that line, and comes
//!   just before that item;
//! * a comment on its own line belongs to the collection it sits in; after
//!   the last item of a nested block collection it still belongs to that
//!   collection when it is indented at least as deep as its items (a foot
//!   comment), else to the enclosing one.
//!
//! Pure code: text in, tree out. Aliases are kept as [`Value::Alias`].

use std::ops::Range;

use super::LocateError;
use super::tree::{self, CommentSpan, NodeValue};

/// A comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// From its `#` to the end of its line (line break excluded).
    pub range: Range<usize>,
    /// The text after the `#`.
    pub text: String,
    /// 1-based line.
    pub line: usize,
    /// 0-based column of the `#`.
    pub column: usize,
    /// Content precedes it on its line.
    pub trailing: bool,
}

/// A node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What it holds.
    pub value: Value,
    /// Its bytes (block scalars from the indicator to the last content
    /// character, header comment included).
    pub range: Range<usize>,
    /// 1-based line of its start.
    pub line: usize,
    /// 0-based column of its start (of the first `-` for a block sequence).
    pub column: usize,
    /// Flow style (`[..]`, `{..}`); for scalars, not plain.
    pub flow: bool,
}

/// The content of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar: its text, whether it is plain, its core-schema tag suffix
    /// (`?` for another tag).
    Scalar {
        /// The text after YAML processing.
        text: String,
        /// Plain style.
        plain: bool,
        /// Tag suffix.
        tag: Option<String>,
    },
    /// `*name`.
    Alias,
    /// A mapping's items.
    Mapping(Vec<Item>),
    /// A sequence's items.
    Sequence(Vec<Item>),
}

/// An item of a collection.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `key: value` of a mapping.
    Entry(Box<Node>, Node),
    /// An element of a sequence.
    Element(Node),
    /// A comment.
    Comment(Comment),
}

impl Item {
    /// Where the item starts (its key for an entry).
    fn start(&self) -> usize {
        match self {
            Item::Entry(k, _) => k.range.start,
            Item::Element(n) => n.range.start,
            Item::Comment(c) => c.range.start,
        }
    }

    /// The 1-based line it starts on.
    fn line(&self) -> usize {
        match self {
            Item::Entry(k, _) => k.line,
            Item::Element(n) => n.line,
            Item::Comment(c) => c.line,
        }
    }

    /// The node below it (an entry's value, an element).
    fn child(&self) -> Option<&Node> {
        match self {
            Item::Entry(_, v) | Item::Element(v) => Some(v),
            Item::Comment(_) => None,
        }
    }

    fn child_mut(&mut self) -> Option<&mut Node> {
        match self {
            Item::Entry(_, v) | Item::Element(v) => Some(v),
            Item::Comment(_) => None,
        }
    }
}

impl Node {
    fn items_mut(&mut self) -> Option<&mut Vec<Item>> {
        match &mut self.value {
            Value::Mapping(items) | Value::Sequence(items) => Some(items),
            _ => None,
        }
    }

    /// The items of a mapping or sequence.
    pub fn items(&self) -> Option<&[Item]> {
        match &self.value {
            Value::Mapping(items) | Value::Sequence(items) => Some(items),
            _ => None,
        }
    }

    /// Whether the node is a mapping or a sequence.
    pub fn is_collection(&self) -> bool {
        self.items().is_some()
    }
}

/// One document.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    /// Its root, `None` for a document without content.
    pub root: Option<Node>,
    /// Comments that belong to no collection (the root is a scalar or
    /// missing).
    pub loose: Vec<Comment>,
    /// Where the document ends (its `...`, the next `---`, or the end).
    pub end: usize,
}

/// Parses a stream into documents with their comments.
pub fn parse(text: &str) -> Result<Vec<Doc>, LocateError> {
    let parsed = tree::parse_stream_full(text)?;
    let mut docs: Vec<Doc> = parsed
        .docs
        .iter()
        .zip(&parsed.ends)
        .map(|(n, &end)| Doc {
            root: (!n.is_empty_document()).then(|| convert(n)),
            loose: Vec::new(),
            end,
        })
        .collect();
    for c in &parsed.comments {
        let comment = comment(text, c);
        let i = docs
            .iter()
            .position(|d| c.range.start < d.end)
            .unwrap_or(docs.len().saturating_sub(1));
        let Some(doc) = docs.get_mut(i) else {
            continue; // a stream of comments only: no document to hold them
        };
        match &mut doc.root {
            Some(root) if root.is_collection() => place(root, comment),
            _ => doc.loose.push(comment),
        }
    }
    Ok(docs)
}

fn comment(text: &str, c: &CommentSpan) -> Comment {
    let line_start = text[..c.range.start].rfind('\n').map_or(0, |i| i + 1);
    let trailing = !text[line_start..c.range.start]
        .bytes()
        .all(|b| b == b' ' || b == b'\t');
    Comment {
        range: c.range.clone(),
        text: text[c.range.start + 1..c.range.end].to_owned(),
        line: c.line,
        column: c.column,
        trailing,
    }
}

fn convert(n: &tree::Node) -> Node {
    let value = match &n.value {
        NodeValue::Scalar { text, plain, tag } => Value::Scalar {
            text: text.clone(),
            plain: *plain,
            tag: tag.clone(),
        },
        NodeValue::Alias => Value::Alias,
        NodeValue::Sequence(items) => {
            Value::Sequence(items.iter().map(|i| Item::Element(convert(i))).collect())
        }
        NodeValue::Mapping(entries) => Value::Mapping(
            entries
                .iter()
                .map(|(k, v)| Item::Entry(Box::new(convert(k)), convert(v)))
                .collect(),
        ),
    };
    Node {
        value,
        range: n.range.clone(),
        line: n.line,
        column: n.column,
        flow: n.flow,
    }
}

/// Puts a comment into the collection `node` (or one below it).
fn place(node: &mut Node, c: Comment) {
    if c.trailing && place_line_comment(node, &c) {
        return;
    }
    place_own_line(node, c);
}

/// A line comment goes before the innermost item that starts on its line,
/// before it. False when no item starts there.
fn place_line_comment(node: &mut Node, c: &Comment) -> bool {
    let Some(items) = node.items_mut() else {
        return false;
    };
    let hit = items
        .iter()
        .rposition(|i| i.line() == c.line && i.start() < c.range.start && !is_comment(i));
    let Some(i) = hit else {
        // Inside an item that started on an earlier line (a flow collection
        // spread over lines): look inside it.
        if let Some(i) = containing(items, c.range.start)
            && let Some(child) = items[i].child_mut()
            && child.is_collection()
        {
            return place_line_comment(child, c);
        }
        return false;
    };
    if let Some(child) = items[i].child_mut()
        && child.is_collection()
        && child
            .items()
            .is_some_and(|its| its.iter().any(|x| x.line() == c.line && !is_comment(x)))
        && place_line_comment(child, c)
    {
        return true;
    }
    items.insert(i, Item::Comment(c.clone()));
    true
}

fn is_comment(i: &Item) -> bool {
    matches!(i, Item::Comment(_))
}

/// The item whose node contains byte `at`.
fn containing(items: &[Item], at: usize) -> Option<usize> {
    items.iter().position(|i| {
        i.child()
            .is_some_and(|n| n.range.start <= at && at < n.range.end)
    })
}

/// An own-line comment: into the innermost collection that contains it;
/// after a nested block collection's last item, into that collection when
/// indented at least as deep as its items.
fn place_own_line(node: &mut Node, c: Comment) {
    let Some(items) = node.items_mut() else {
        return;
    };
    if let Some(i) = containing(items, c.range.start) {
        let child = items[i].child_mut().expect("containing() finds nodes");
        if child.is_collection() {
            return place_own_line(child, c);
        }
    }
    let at = items
        .iter()
        .position(|i| i.start() > c.range.start)
        .unwrap_or(items.len());
    if at > 0
        && let Some(prev) = items[at - 1].child_mut()
        && let Some(target) = foot_owner(prev, c.column)
    {
        let at = target
            .iter()
            .position(|i| i.start() > c.range.start)
            .unwrap_or(target.len());
        target.insert(at, Item::Comment(c));
        return;
    }
    items.insert(at, Item::Comment(c));
}

/// The innermost block collection along the last-item chain of `node`
/// whose items sit at or left of `column`.
fn foot_owner(node: &mut Node, column: usize) -> Option<&mut Vec<Item>> {
    if node.flow || !node.is_collection() || node.column > column {
        return None;
    }
    // Decide first whether a deeper collection takes it (two passes keep
    // the borrow checker content).
    let deeper = node
        .items()
        .and_then(|its| its.iter().rev().find(|i| !is_comment(i)))
        .and_then(Item::child)
        .is_some_and(|n| !n.flow && n.is_collection() && n.column <= column);
    if deeper {
        let items = node.items_mut().expect("a collection");
        let last = items
            .iter_mut()
            .rev()
            .find(|i| !is_comment(i))
            .and_then(Item::child_mut)
            .expect("checked above");
        return foot_owner(last, column);
    }
    node.items_mut()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The comments of a collection, as (text, index among its items).
    fn comments_of(items: &[Item]) -> Vec<(String, usize)> {
        items
            .iter()
            .enumerate()
            .filter_map(|(i, it)| match it {
                Item::Comment(c) => Some((c.text.clone(), i)),
                _ => None,
            })
            .collect()
    }

    fn entry<'a>(items: &'a [Item], key: &str) -> &'a Node {
        items
            .iter()
            .find_map(|i| match i {
                Item::Entry(k, v) if matches!(&k.value, Value::Scalar { text, .. } if text == key) => {
                    Some(v)
                }
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn comments_go_where_go_yaml_puts_them() {
        let text = "# head\nkind: Secret # k\ndata: # d\n  # c1\n  a: x # ax\n  l:\n    # in list\n    - y\n    # list foot\n  # data foot\n# foot\n";
        let docs = parse(text).unwrap();
        let root = docs[0].root.as_ref().unwrap();
        let items = root.items().unwrap();
        assert_eq!(
            comments_of(items),
            vec![
                (" head".into(), 0),
                (" k".into(), 1),
                (" d".into(), 3),
                (" foot".into(), 5)
            ]
        );
        let data = entry(items, "data").items().unwrap();
        assert_eq!(
            comments_of(data),
            vec![
                (" c1".into(), 0),
                (" ax".into(), 1),
                (" data foot".into(), 4)
            ]
        );
        let list = entry(data, "l").items().unwrap();
        assert_eq!(
            comments_of(list),
            vec![(" in list".into(), 0), (" list foot".into(), 2)]
        );
    }

    #[test]
    fn documents_and_loose_comments() {
        let text = "a: 1\n# end of one\n...\n# before two\n--- # marker\nb: [x, # in flow\n  y]\n---\n# only\n";
        let docs = parse(text).unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].end, text.find("...").unwrap());
        let one = docs[0].root.as_ref().unwrap().items().unwrap();
        assert_eq!(comments_of(one), vec![(" end of one".into(), 1)]);
        let two = docs[1].root.as_ref().unwrap().items().unwrap();
        assert_eq!(
            comments_of(two),
            vec![(" before two".into(), 0), (" marker".into(), 1)]
        );
        let flow = entry(two, "b").items().unwrap();
        assert_eq!(comments_of(flow), vec![(" in flow".into(), 0)]);
        assert!(docs[2].root.is_none());
        assert_eq!(docs[2].loose.len(), 1);
    }

    #[test]
    fn block_scalar_header_and_sequence_items() {
        let text = "a: |- # h\n  x\nb:\n- p: 1 # p\n  q: 2\n";
        let docs = parse(text).unwrap();
        let items = docs[0].root.as_ref().unwrap().items().unwrap();
        assert_eq!(comments_of(items), vec![(" h".into(), 0)]);
        let seq = entry(items, "b").items().unwrap();
        let Item::Element(first) = &seq[0] else {
            panic!()
        };
        assert_eq!(comments_of(first.items().unwrap()), vec![(" p".into(), 0)]);
    }
}
