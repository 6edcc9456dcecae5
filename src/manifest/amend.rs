//! Adding, replacing and removing mapping entries in a document's text,
//! keeping every other byte: the machinery of `ksec patch`.
//!
//! [`outline`](super::outline) reads each document into a small tree of mappings with byte
//! positions; [`amend`] turns a list of [`Change`]s (set or remove `key`
//! in the mapping at a path such as `metadata.labels`) into [`Edit`]s:
//!
//! * replace: the value's bytes (for a block scalar, from its indicator);
//! * add to a block mapping: a new line after the mapping's last line, at
//!   the indentation of its keys; a missing mapping is created the same way
//!   in its parent;
//! * add to a flow mapping (JSON): `, key: value` after its last entry;
//! * remove from a block mapping: the entry's whole lines; removing every
//!   entry removes the key that holds the mapping too;
//! * remove from a flow mapping: the entry and one separating comma.
//!
//! Values are rendered by [`super::scalar::render`], double-quoted in flow
//! context, so JSON stays JSON. Pure code.

use std::ops::Range;

pub use super::outline::{Entry, Kind, Mapping, Node, outline};
use super::scalar::{self, Context};
use super::{Edit, rest_of_line_empty};

/// One change to a document: set or remove `key` in the mapping at `path`
/// (empty path: the root mapping).
#[derive(Debug, Clone)]
pub struct Change {
    /// Keys leading from the root to the mapping, e.g. `["metadata", "labels"]`.
    pub path: Vec<String>,
    /// The key to set or remove.
    pub key: String,
    /// The new value (a string); `None` removes the key.
    pub value: Option<String>,
}

/// Why a change cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AmendError(pub String);

/// The edits that make `changes` to the document whose root is `root`.
/// Removing a key that is not there is no edit. Changes to one mapping are
/// applied in the order given.
pub fn amend(
    text: &str,
    root: &Node,
    changes: &[Change],
    newline: &str,
) -> Result<Vec<Edit>, AmendError> {
    let Kind::Mapping(_) = &root.kind else {
        return Err(AmendError("the document is not a mapping".into()));
    };
    let mut paths: Vec<&Vec<String>> = Vec::new();
    for c in changes {
        if !paths.contains(&&c.path) {
            paths.push(&c.path);
        }
    }
    // Insertions into deeper mappings first: a key added at the end of a
    // mapping that is the last entry of its parent goes in at the same byte
    // as a key added to the parent, and must come before it (splicing keeps
    // that order). Insertions into the same mapping keep the order given.
    paths.sort_by_key(|p| std::cmp::Reverse(existing_depth(root, p)));
    let mut edits = Vec::new();
    for path in paths {
        let mine: Vec<&Change> = changes.iter().filter(|c| &c.path == path).collect();
        edits.extend(amend_path(text, root, path, &mine, newline)?);
    }
    Ok(edits)
}

/// How many leading names of `path` exist as nested mappings under `root`:
/// the depth of the mapping that changes to `path` edit.
fn existing_depth(root: &Node, path: &[String]) -> usize {
    let mut node = root;
    for (depth, name) in path.iter().enumerate() {
        let Kind::Mapping(m) = &node.kind else {
            return depth;
        };
        match m.get(name) {
            Some(e) if matches!(e.value.kind, Kind::Mapping(_)) => node = &e.value,
            _ => return depth,
        }
    }
    path.len()
}

fn amend_path(
    text: &str,
    root: &Node,
    path: &[String],
    changes: &[&Change],
    newline: &str,
) -> Result<Vec<Edit>, AmendError> {
    let sets: Vec<(&str, &str)> = changes
        .iter()
        .filter_map(|c| c.value.as_deref().map(|v| (c.key.as_str(), v)))
        .collect();
    match descend(text, root, path, &sets, newline)? {
        Descent::Created(edits) => Ok(edits),
        Descent::Found { node, owner } => {
            let Kind::Mapping(m) = &node.kind else {
                unreachable!("only mappings are descended into")
            };
            let net = NetChanges::of(m, changes);
            mapping_edits(text, node, m, owner, &net, newline)
        }
    }
}

/// Where a path leads: to an existing mapping, or nowhere yet (then the
/// edits that create it, holding the values set, are the whole answer).
enum Descent<'n> {
    Found {
        node: &'n Node,
        owner: Option<&'n Entry>,
    },
    Created(Vec<Edit>),
}

/// Walks down `path` as far as it exists; creates the rest when values are
/// set under it (a null on the way becomes a mapping).
fn descend<'n>(
    text: &str,
    root: &'n Node,
    path: &[String],
    sets: &[(&str, &str)],
    newline: &str,
) -> Result<Descent<'n>, AmendError> {
    let mut node = root;
    let mut owner: Option<&Entry> = None;
    for (depth, name) in path.iter().enumerate() {
        let Kind::Mapping(m) = &node.kind else {
            unreachable!("only mappings are descended into")
        };
        let Some(e) = m.get(name) else {
            // Create the rest of the path, holding the entries set.
            if sets.is_empty() {
                return Ok(Descent::Created(Vec::new()));
            }
            let column = child_column(m, owner);
            let rest = nested(&path[depth + 1..], sets, column + 2, m.flow, newline);
            if m.flow {
                return Ok(Descent::Created(vec![flow_insert(
                    m,
                    &format!("{}: {rest}", key_text(name, true)),
                )]));
            }
            let lines = format!(
                "{}{}:{newline}{rest}",
                " ".repeat(column),
                key_text(name, false)
            );
            return Ok(Descent::Created(vec![block_insert(
                text, node, &lines, newline,
            )]));
        };
        match &e.value.kind {
            Kind::Mapping(_) => {
                owner = Some(e);
                node = &e.value;
            }
            Kind::Scalar(v) if is_null(v) && !quoted(text, &e.value.range) => {
                // `labels:` or `labels: null`: the null becomes a mapping.
                if sets.is_empty() {
                    return Ok(Descent::Created(Vec::new()));
                }
                let colon = colon_after(text, e);
                let flow = matches!(&node.kind, Kind::Mapping(m) if m.flow);
                let body = nested(&path[depth + 1..], sets, e.key_column + 2, flow, newline);
                let text_ = if flow {
                    format!(" {body}")
                } else {
                    format!("{newline}{}", body.trim_end_matches(newline))
                };
                return Ok(Descent::Created(vec![Edit {
                    range: colon..e.value.range.end.max(colon),
                    text: text_,
                }]));
            }
            _ => {
                return Err(AmendError(format!(
                    "`{}` is not a mapping",
                    path[..=depth].join(".")
                )));
            }
        }
    }
    Ok(Descent::Found { node, owner })
}

/// The net effect of the changes to one mapping, later changes winning.
struct NetChanges<'c> {
    /// Existing entries (by index) set to a value.
    set_existing: Vec<(usize, &'c str)>,
    /// Existing entries removed.
    removes: Vec<usize>,
    /// New entries.
    adds: Vec<(&'c str, &'c str)>,
}

impl<'c> NetChanges<'c> {
    fn of(m: &Mapping, changes: &[&'c Change]) -> NetChanges<'c> {
        let mut net = NetChanges {
            set_existing: Vec::new(),
            removes: Vec::new(),
            adds: Vec::new(),
        };
        for c in changes {
            let existing = m.entries.iter().position(|e| e.key == c.key);
            net.set_existing.retain(|(i, _)| Some(*i) != existing);
            net.removes.retain(|i| Some(*i) != existing);
            net.adds.retain(|(k, _)| *k != c.key);
            match (&c.value, existing) {
                (Some(v), Some(i)) => net.set_existing.push((i, v)),
                (Some(v), None) => net.adds.push((&c.key, v)),
                (None, Some(i)) => net.removes.push(i),
                (None, None) => {}
            }
        }
        net
    }
}

/// The edits that apply `net` to the mapping `m` at `node`.
fn mapping_edits(
    text: &str,
    node: &Node,
    m: &Mapping,
    owner: Option<&Entry>,
    net: &NetChanges<'_>,
    newline: &str,
) -> Result<Vec<Edit>, AmendError> {
    let render_at = |i: usize, v: &str| {
        let e = &m.entries[i];
        let ctx = Context {
            flow: m.flow,
            indent: scalar::block_indent(text, e.value.range.end, e.key_column + 2),
            newline,
            line_rest_empty: rest_of_line_empty(text, e.value.range.end),
            header_comment: None,
        };
        scalar::render(v, &ctx)
    };
    if m.flow && net.removes.len() > 1 {
        // Several entries go: write the mapping again from its pieces.
        let mut parts: Vec<String> = Vec::new();
        for (i, e) in m.entries.iter().enumerate() {
            if net.removes.contains(&i) {
                continue;
            }
            let value = match net.set_existing.iter().find(|(j, _)| *j == i) {
                Some((_, v)) => render_at(i, v),
                None => text[e.value.range.clone()].to_owned(),
            };
            parts.push(format!("{}: {value}", &text[e.key_range.clone()]));
        }
        parts.extend(
            net.adds
                .iter()
                .map(|(k, v)| entry_text(k, v, (0, 2), true, newline)),
        );
        return Ok(vec![Edit {
            range: node.range.clone(),
            text: format!("{{{}}}", parts.join(", ")),
        }]);
    }
    if !m.flow
        && !net.removes.is_empty()
        && net.removes.len() == m.entries.len()
        && net.adds.is_empty()
    {
        // Every entry goes: the key that holds the mapping goes with them.
        let Some(owner) = owner else {
            return Err(AmendError("cannot remove every key of the document".into()));
        };
        let start = text[..owner.key_range.start]
            .rfind('\n')
            .map_or(0, |n| n + 1);
        return Ok(vec![Edit {
            range: start..line_end(text, node.range.end),
            text: String::new(),
        }]);
    }
    let mut edits: Vec<Edit> = net
        .set_existing
        .iter()
        .map(|(i, v)| {
            let rendered = render_at(*i, v);
            let mut range = m.entries[*i].value.range.clone();
            if rendered.starts_with('|') {
                range.end = scalar::past_blanks(text, range.end);
            }
            Edit {
                range,
                text: rendered,
            }
        })
        .collect();
    edits.extend(net.removes.iter().map(|i| remove_entry(text, m, *i)));
    if !net.adds.is_empty() {
        if m.flow {
            let joined: Vec<String> = net
                .adds
                .iter()
                .map(|(k, v)| entry_text(k, v, (0, 2), true, newline))
                .collect();
            edits.push(flow_insert(m, &joined.join(", ")));
        } else {
            let column = child_column(m, owner);
            // Past comment lines that follow the mapping, which a literal
            // block at the usual column would take in as content.
            let indent = scalar::block_indent(text, node.range.end, column + 2);
            let lines: String = net
                .adds
                .iter()
                .map(|(k, v)| entry_text(k, v, (column, indent), false, newline))
                .collect();
            edits.push(block_insert(text, node, &lines, newline));
        }
    }
    Ok(edits)
}

/// The column for keys of `m`: its first key's, else two more than its owner's.
fn child_column(m: &Mapping, owner: Option<&Entry>) -> usize {
    m.entries
        .first()
        .map(|e| e.key_column)
        .unwrap_or_else(|| owner.map_or(0, |o| o.key_column + 2))
}

/// The byte after the `:` that follows an entry's key.
fn colon_after(text: &str, e: &Entry) -> usize {
    let from = e.key_range.end;
    text[from..].find(':').map_or(from, |i| from + i + 1)
}

/// Whether a scalar was written quoted (then `""` or `"null"` is a string).
fn quoted(text: &str, r: &Range<usize>) -> bool {
    text[r.clone()].starts_with(['"', '\''])
}

fn is_null(v: &str) -> bool {
    matches!(v, "" | "~" | "null" | "Null" | "NULL")
}

/// A key as written: plain when safe, else double-quoted (always in flow
/// context, so that JSON stays JSON).
fn key_text(key: &str, flow: bool) -> String {
    if !flow && scalar::plain_safe(key) {
        key.to_owned()
    } else {
        scalar::double_quoted(key)
    }
}

/// `key: value` with the key at `column`; a literal block's content goes
/// at `indent`.
fn entry_text(
    key: &str,
    value: &str,
    (column, indent): (usize, usize),
    flow: bool,
    newline: &str,
) -> String {
    let ctx = Context {
        flow,
        indent,
        newline,
        line_rest_empty: true,
        header_comment: None,
    };
    let v = scalar::render(value, &ctx);
    if flow {
        format!("{}: {v}", key_text(key, true))
    } else {
        format!(
            "{}{}: {v}{newline}",
            " ".repeat(column),
            key_text(key, false)
        )
    }
}

/// Nested mappings along `path` holding `sets`, as block lines starting at
/// `column` (or one flow mapping).
fn nested(
    path: &[String],
    sets: &[(&str, &str)],
    column: usize,
    flow: bool,
    newline: &str,
) -> String {
    if flow {
        let inner: Vec<String> = sets
            .iter()
            .map(|(k, v)| entry_text(k, v, (0, 2), true, newline))
            .collect();
        let mut s = format!("{{{}}}", inner.join(", "));
        for p in path.iter().rev() {
            s = format!("{{{}: {s}}}", key_text(p, true));
        }
        return s;
    }
    match path.split_first() {
        None => sets
            .iter()
            .map(|(k, v)| entry_text(k, v, (column, column + 2), false, newline))
            .collect(),
        Some((head, rest)) => format!(
            "{}{}:{newline}{}",
            " ".repeat(column),
            key_text(head, false),
            nested(rest, sets, column + 2, false, newline)
        ),
    }
}

/// Where a line ends: the index after its line break (or the text's end).
fn line_end(text: &str, at: usize) -> usize {
    text[at..].find('\n').map_or(text.len(), |i| at + i + 1)
}

/// New lines after the block mapping's last line.
fn block_insert(text: &str, node: &Node, lines: &str, newline: &str) -> Edit {
    let at = line_end(text, node.range.end);
    let body = if at == text.len() && !text.ends_with('\n') {
        format!("{newline}{}", lines.trim_end_matches(newline))
    } else {
        lines.to_owned()
    };
    Edit {
        range: at..at,
        text: body,
    }
}

/// `, key: value` after a flow mapping's last entry (or after `{`).
fn flow_insert(m: &Mapping, entries: &str) -> Edit {
    match m.entries.last() {
        Some(last) => Edit {
            range: last.value.range.end..last.value.range.end,
            text: format!(", {entries}"),
        },
        None => Edit {
            range: m.open_end..m.open_end,
            text: entries.to_owned(),
        },
    }
}

/// The edit that removes entry `i`.
fn remove_entry(text: &str, m: &Mapping, i: usize) -> Edit {
    let e = &m.entries[i];
    if m.flow {
        let range = if i > 0 {
            m.entries[i - 1].value.range.end..e.value.range.end
        } else if let Some(next) = m.entries.get(1) {
            e.key_range.start..next.key_range.start
        } else {
            e.key_range.start..e.value.range.end
        };
        return Edit {
            range,
            text: String::new(),
        };
    }
    let start = text[..e.key_range.start].rfind('\n').map_or(0, |n| n + 1);
    let end = line_end(text, e.value.range.end.max(e.key_range.end));
    Edit {
        range: start..end,
        text: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::splice;

    fn apply(text: &str, changes: &[(&str, &str, Option<&str>)]) -> String {
        let docs = outline(text).unwrap();
        let changes: Vec<Change> = changes
            .iter()
            .map(|(p, k, v)| Change {
                path: if p.is_empty() {
                    vec![]
                } else {
                    p.split('.').map(str::to_owned).collect()
                },
                key: (*k).to_owned(),
                value: v.map(str::to_owned),
            })
            .collect();
        let mut edits = amend(text, &docs[0], &changes, "\n").unwrap();
        splice(text, &mut edits)
    }

    const BLOCK: &str = "\
# top
apiVersion: v1
kind: Secret
metadata:
  name: db   # the name
data:
  a: x1
  b: |
    multi
    line
  c: x3
# trailing comment
";

    #[test]
    fn keys_added_to_a_last_mapping_and_to_its_parent_stay_apart() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n";
        let out = apply(
            text,
            &[
                ("stringData", "note", Some("hi")),
                ("metadata.labels", "app", Some("x")),
            ],
        );
        assert_eq!(
            out,
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  labels:\n    app: x\nstringData:\n  note: hi\n"
        );
    }

    #[test]
    fn literal_blocks_go_past_the_comments_that_follow_them() {
        // Keys at column 1 and a comment at column 3: content at the
        // usual column (key + 2) would take the comment in.
        let text = "stringData:\n a: x\n   # about a\n";
        assert_eq!(
            apply(text, &[("stringData", "a", Some("l1\nl2\n"))]),
            "stringData:\n a: |\n    l1\n    l2\n   # about a\n"
        );
        let text = "stringData:\n a: x\n    # further right\n";
        assert_eq!(
            apply(
                text,
                &[
                    ("stringData", "a", Some("l1\n")),
                    ("stringData", "b", Some("m1\n"))
                ]
            ),
            "stringData:\n a: |\n     l1\n b: |\n     m1\n    # further right\n"
        );
    }

    #[test]
    fn white_space_after_a_value_does_not_join_the_block_written_there() {
        // The space after `x` would otherwise end the block's last line.
        let text = "stringData:\n  a: x \t\n  b: y\n";
        assert_eq!(
            apply(text, &[("stringData", "a", Some("l1\nl2"))]),
            "stringData:\n  a: |-\n    l1\n    l2\n  b: y\n"
        );
        // A one-line value keeps the white space where it was.
        assert_eq!(
            apply(text, &[("stringData", "a", Some("z"))]),
            "stringData:\n  a: z \t\n  b: y\n"
        );
    }

    #[test]
    fn block_set_add_remove() {
        let out = apply(
            BLOCK,
            &[
                ("data", "a", Some("new")),
                ("data", "b", None),
                ("data", "d", Some("added")),
                ("metadata", "name", Some("other")),
                ("metadata", "namespace", Some("ns")),
                ("metadata.labels", "app", Some("demo")),
                ("metadata.labels", "tier", Some("yes")),
                ("stringData", "s", Some("two\nlines\n")),
            ],
        );
        assert_eq!(
            out,
            "\
# top
apiVersion: v1
kind: Secret
metadata:
  name: other   # the name
  namespace: ns
  labels:
    app: demo
    tier: \"yes\"
data:
  a: new
  c: x3
  d: added
stringData:
  s: |
    two
    lines
# trailing comment
"
        );
        assert_eq!(apply(BLOCK, &[("data", "zz", None)]), BLOCK);
    }

    #[test]
    fn removing_every_entry_removes_the_mapping() {
        let text = "kind: Secret\ndata:\n  a: x\n  b: y\nkind2: z\n";
        assert_eq!(
            apply(text, &[("data", "a", None), ("data", "b", None)]),
            "kind: Secret\nkind2: z\n"
        );
        let text = "kind: Secret\nmetadata:\n  name: n\n  labels:\n    a: x\n";
        assert_eq!(
            apply(text, &[("metadata.labels", "a", None)]),
            "kind: Secret\nmetadata:\n  name: n\n"
        );
    }

    #[test]
    fn null_mapping_is_replaced() {
        let text = "metadata:\n  name: a\n  labels:\ndata: {}\n";
        assert_eq!(
            apply(text, &[("metadata.labels", "x", Some("1"))]),
            "metadata:\n  name: a\n  labels:\n    x: \"1\"\ndata: {}\n"
        );
    }

    #[test]
    fn flow_and_json() {
        let json = "{\"apiVersion\": \"v1\", \"kind\": \"Secret\", \"metadata\": {\"name\": \"a\"}, \"data\": {\"k\": \"dg==\", \"j\": \"dg==\"}}";
        let out = apply(
            json,
            &[
                ("data", "k", None),
                ("data", "n", Some("bmV3")),
                ("metadata.labels", "app", Some("x")),
                ("stringData", "s", Some("v")),
            ],
        );
        assert_eq!(
            out,
            "{\"apiVersion\": \"v1\", \"kind\": \"Secret\", \"metadata\": {\"name\": \"a\", \"labels\": {\"app\": \"x\"}}, \"data\": {\"j\": \"dg==\", \"n\": \"bmV3\"}, \"stringData\": {\"s\": \"v\"}}"
        );
        let _: serde_json::Value = serde_json::from_str(&out).unwrap();
        let empty = "{\"data\": {}}";
        assert_eq!(
            apply(empty, &[("data", "a", Some("b"))]),
            "{\"data\": {\"a\": \"b\"}}"
        );
        assert_eq!(
            apply("{\"data\": {\"a\": \"b\"}}", &[("data", "a", None)]),
            "{\"data\": {}}"
        );
    }

    #[test]
    fn no_trailing_newline_and_crlf() {
        assert_eq!(
            apply("data:\n  a: b", &[("data", "c", Some("d"))]),
            "data:\n  a: b\n  c: d"
        );
        let crlf = "data:\r\n  a: b\r\nkind: Secret\r\n";
        let docs = outline(crlf).unwrap();
        let mut edits = amend(
            crlf,
            &docs[0],
            &[Change {
                path: vec!["data".into()],
                key: "c".into(),
                value: Some("d".into()),
            }],
            "\r\n",
        )
        .unwrap();
        assert_eq!(
            splice(crlf, &mut edits),
            "data:\r\n  a: b\r\n  c: d\r\nkind: Secret\r\n"
        );
    }
}
