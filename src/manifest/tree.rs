//! A YAML stream as a tree of nodes that remember where they are.
//!
//! The value locator ([`super::locate`]) looks only at what a Secret needs.
//! The kustomize and KRM function plugins need whole objects: a
//! `ResourceList` whose `items` we add to *without re-serialising the items
//! that pass through* (so kpt gets back exactly the bytes it sent), and the
//! generator's configuration. This module builds that tree from the same
//! event parser, with each node's byte range, and converts nodes to JSON
//! values under the YAML 1.2 core schema (what kpt's and kustomize's YAML
//! library resolves) for the parts that are read as data.
//!
//! Anchors are allowed, aliases are refused: expanding them is how alias
//! bombs work, and nothing we read needs them. Pure code: text in, tree out.

use std::ops::Range;

use granit_parser::{Event, Parser, ScalarStyle, Span, StructureStyle};
use serde_json::{Map, Number, Value};

use super::LocateError;
use super::locate::{self, span_range, trim_block_end};

/// One node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub value: NodeValue,
    /// The node's bytes: from its first content byte (after any tag or
    /// anchor) to its last (block scalars trimmed to their last content
    /// character; block collections end at their last content byte).
    pub range: Range<usize>,
    /// 1-based line of the node's start.
    pub line: usize,
    /// 0-based column of the node's start (for a block sequence, of its first `-`).
    pub column: usize,
    /// Written in flow style (`[..]`, `{..}`); for scalars, not plain.
    pub flow: bool,
}

/// The content of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    /// A scalar: its text after YAML processing, whether it was plain (so
    /// subject to type resolution), and its core-schema tag suffix if tagged.
    Scalar {
        /// The text.
        text: String,
        /// Plain style (unquoted, not a block scalar).
        plain: bool,
        /// `str`, `int`, ... for a core-schema tag; `?` for any other tag.
        tag: Option<String>,
    },
    /// A sequence.
    Sequence(Vec<Node>),
    /// A mapping, entries in order.
    Mapping(Vec<(Node, Node)>),
    /// An alias (`*name`), only from [`parse_stream_lenient`]; never expanded.
    Alias,
}

impl Node {
    /// The value of `key` in a mapping (string keys only).
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            NodeValue::Mapping(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a scalar that reads as a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Scalar { text, plain, tag } => {
                matches!(scalar_json(text, *plain, tag.as_deref()), Value::String(_))
                    .then_some(text.as_str())
            }
            _ => None,
        }
    }

    /// The items of a sequence.
    pub fn items(&self) -> Option<&[Node]> {
        match &self.value {
            NodeValue::Sequence(items) => Some(items),
            _ => None,
        }
    }

    /// A document with no content (`---` alone, or only comments).
    pub fn is_empty_document(&self) -> bool {
        self.range.is_empty()
            && matches!(
                &self.value,
                NodeValue::Scalar {
                    plain: true,
                    tag: None,
                    ..
                }
            )
    }

    /// The node as a JSON value, plain scalars resolved by the YAML 1.2 core
    /// schema (`null`, `true`, numbers; everything else is a string).
    pub fn to_json(&self) -> Value {
        match &self.value {
            NodeValue::Scalar { text, plain, tag } => scalar_json(text, *plain, tag.as_deref()),
            NodeValue::Sequence(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeValue::Mapping(entries) => {
                let mut map = Map::new();
                for (k, v) in entries {
                    let key = match &k.value {
                        // A collection as a key (`? {a: b}`): no JSON for it,
                        // and writing its JSON as the key would nest escapes
                        // exponentially with depth (found by fuzzing).
                        NodeValue::Mapping(_) | NodeValue::Sequence(_) => {
                            format!("(a collection as a key, line {})", k.line)
                        }
                        _ => match k.to_json() {
                            Value::String(s) => s,
                            other => other.to_string(),
                        },
                    };
                    map.insert(key, v.to_json());
                }
                Value::Object(map)
            }
            NodeValue::Alias => Value::Null,
        }
    }
}

fn scalar_json(text: &str, plain: bool, tag: Option<&str>) -> Value {
    let resolve = match tag {
        Some("str") | Some("binary") | Some("?") => return Value::String(text.to_owned()),
        Some(_) => true,
        None => plain,
    };
    if !resolve {
        return Value::String(text.to_owned());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits(unsigned)
        && let Ok(i) = text.parse::<i64>()
    {
        return Value::Number(i.into());
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Value::Number(i.into());
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Value::Number(i.into());
    }
    let float_shaped = unsigned
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && unsigned.bytes().any(|b| b.is_ascii_digit());
    if float_shaped
        && let Ok(f) = text.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(text.to_owned())
}

/// Parses a YAML stream: one root node per document. Aliases are refused.
pub fn parse_stream(text: &str) -> Result<Vec<Node>, LocateError> {
    build(text, false).map(|p| p.docs)
}

/// Like [`parse_stream`], but an alias becomes a [`NodeValue::Alias`] node
/// (for code that edits or checks text around nodes it does not read).
pub fn parse_stream_lenient(text: &str) -> Result<Vec<Node>, LocateError> {
    build(text, true).map(|p| p.docs)
}

/// A comment of the stream: its bytes from `#` to the end of its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentSpan {
    /// From the `#` to the end of the line (line break excluded).
    pub range: Range<usize>,
    /// 1-based line.
    pub line: usize,
    /// 0-based column of the `#` (in characters).
    pub column: usize,
}

/// A stream with everything a byte-preserving rewrite of whole documents
/// needs: the nodes, every comment, and where each document ends.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// One root node per document (aliases kept as [`NodeValue::Alias`]).
    pub docs: Vec<Node>,
    /// Every comment, in text order.
    pub comments: Vec<CommentSpan>,
    /// Per document: the byte where it ends (its `...` marker, the next
    /// `---`, or the end of the input).
    pub ends: Vec<usize>,
}

/// Parses a stream like [`parse_stream_lenient`], keeping comments and
/// document ends.
pub fn parse_stream_full(text: &str) -> Result<Parsed, LocateError> {
    build(text, true)
}

fn build(text: &str, aliases: bool) -> Result<Parsed, LocateError> {
    let mut b = Builder {
        text,
        parser: locate::parser(text),
        aliases,
        comments: Vec::new(),
    };
    let mut docs = Vec::new();
    let mut ends = Vec::new();
    loop {
        let (ev, span) = b.next()?;
        match ev {
            Event::StreamStart => {}
            Event::DocumentEnd => ends.push(span_range(&span).start),
            Event::StreamEnd => break,
            Event::DocumentStart(..) => {
                let (first, span) = b.next()?;
                if matches!(first, Event::DocumentEnd) {
                    let at = span_range(&span).start;
                    ends.push(at);
                    docs.push(Node {
                        value: NodeValue::Scalar {
                            text: String::new(),
                            plain: true,
                            tag: None,
                        },
                        range: at..at,
                        line: span.start.line(),
                        column: span.start.col(),
                        flow: false,
                    });
                } else {
                    docs.push(b.node(first, span, None)?);
                }
            }
            _ => return Err(error_at(&span, "unexpected YAML event")),
        }
    }
    Ok(Parsed {
        docs,
        comments: b.comments,
        ends,
    })
}

struct Builder<'a> {
    text: &'a str,
    parser: Parser<'a, granit_parser::StrInput<'a>>,
    aliases: bool,
    comments: Vec<CommentSpan>,
}

fn error_at(span: &Span, message: &str) -> LocateError {
    LocateError::Syntax {
        line: span.start.line(),
        column: span.start.col() + 1,
        message: message.to_owned(),
    }
}

/// The column of the `-` that opens a block sequence whose event starts at
/// `at`: the parser reports either the indicator or the first item's content.
fn dash_column(text: &str, at: usize) -> Option<usize> {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    if text[at..].starts_with('-') {
        return Some(at - line_start);
    }
    text[line_start..at].rfind('-')
}

fn tag_name(tag: Option<&granit_parser::Tag>) -> Option<String> {
    tag.map(|t| {
        if t.is_yaml_core_schema() {
            t.suffix().to_owned()
        } else {
            "?".to_owned()
        }
    })
}

impl<'a> Builder<'a> {
    /// The next event that is not a comment.
    fn next(&mut self) -> Result<(Event<'a>, Span), LocateError> {
        loop {
            let (ev, span) = locate::next_event(&mut self.parser)?;
            if !matches!(ev, Event::Comment(..)) {
                return Ok((ev, span));
            }
            let r = span_range(&span);
            let end = if self.text[..r.end].ends_with('\r') {
                r.end - 1
            } else {
                r.end
            };
            self.comments.push(CommentSpan {
                range: r.start..end,
                line: span.start.line(),
                column: span.start.col(),
            });
        }
    }

    /// Reads the node that starts with `ev`. `key_end` is where the key of
    /// the mapping entry holding it ends, so that a block scalar's range can
    /// start at its `|`/`>` indicator (the parser's span covers only content).
    fn node(
        &mut self,
        ev: Event<'a>,
        span: Span,
        key_end: Option<usize>,
    ) -> Result<Node, LocateError> {
        let start = span_range(&span).start;
        let (line, column) = (span.start.line(), span.start.col());
        match ev {
            Event::Scalar(text, style, _, tag) => {
                let r = span_range(&span);
                let r = match style {
                    ScalarStyle::Literal | ScalarStyle::Folded => {
                        let bytes = self.text.as_bytes();
                        let mut i = key_end.unwrap_or(r.start).min(r.start);
                        while i < r.start && bytes[i] != b'|' && bytes[i] != b'>' {
                            i += 1;
                        }
                        let end = r.start + trim_block_end(&self.text[r.clone()]);
                        i..end.max(i + 1)
                    }
                    _ => r,
                };
                let end = r.end;
                Ok(Node {
                    value: NodeValue::Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                        tag: tag_name(tag.as_deref()),
                    },
                    range: r.start..end,
                    line,
                    column,
                    flow: style != ScalarStyle::Plain,
                })
            }
            Event::SequenceStart(style, ..) => {
                let column = if style == StructureStyle::Block {
                    dash_column(self.text, start).unwrap_or(column)
                } else {
                    column
                };
                let mut items = Vec::new();
                let mut end = start;
                loop {
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        if style == StructureStyle::Flow {
                            end = span_range(&span).end;
                        }
                        break;
                    }
                    let n = self.node(ev, span, None)?;
                    end = end.max(n.range.end);
                    items.push(n);
                }
                Ok(Node {
                    value: NodeValue::Sequence(items),
                    range: start..end,
                    line,
                    column,
                    flow: style == StructureStyle::Flow,
                })
            }
            Event::MappingStart(style, ..) => {
                let mut entries = Vec::new();
                let mut end = start;
                loop {
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::MappingEnd) {
                        if style == StructureStyle::Flow {
                            end = span_range(&span).end;
                        }
                        break;
                    }
                    let k = self.node(ev, span, None)?;
                    let (ev, span) = self.next()?;
                    let v = self.node(ev, span, Some(k.range.end))?;
                    end = end.max(k.range.end).max(v.range.end);
                    entries.push((k, v));
                }
                Ok(Node {
                    value: NodeValue::Mapping(entries),
                    range: start..end,
                    line,
                    column,
                    flow: style == StructureStyle::Flow,
                })
            }
            Event::Alias(_) | Event::UnresolvedAlias(_) if self.aliases => Ok(Node {
                value: NodeValue::Alias,
                range: span_range(&span),
                line,
                column,
                flow: false,
            }),
            Event::Alias(_) | Event::UnresolvedAlias(_) => {
                Err(error_at(&span, "aliases (`*name`) are not supported here"))
            }
            _ => Err(error_at(&span, "unexpected YAML event")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collections_as_keys_stay_small() {
        // 24 nested complex keys: their JSON once nested escapes per level
        // (2^24 bytes); `check` and `resolve` hung on 108 bytes of this
        // (found by the externalsecret fuzz target).
        let text = format!("{}a: b\n", "? ".repeat(24));
        let docs = parse_stream_lenient(&text).unwrap();
        let json = docs[0].to_json().to_string();
        assert!(json.len() < 200, "{} bytes", json.len());
        assert!(json.contains("a collection as a key, line 1"), "{json}");
        assert_eq!(docs[0].get("a"), None);
    }

    #[test]
    fn core_schema_resolution() {
        let docs = parse_stream(
            "a: on\nb: 0755\nc: '1'\nd: 1.5\ne: null\nf: TRUE\ng: !!str 3\nh: |\n  x\n\ni: 0x1F\n",
        )
        .unwrap();
        assert_eq!(
            docs[0].to_json(),
            json!({"a": "on", "b": 755, "c": "1", "d": 1.5, "e": null, "f": true, "g": "3", "h": "x\n", "i": 31})
        );
    }

    #[test]
    fn ranges_and_columns() {
        let text = "items:\n- a: 1\n  b: [x, y]\n- {c: 2}\nk: v # c\n";
        let root = &parse_stream(text).unwrap()[0];
        let items = root.get("items").unwrap();
        assert_eq!(items.column, 0);
        let it = items.items().unwrap();
        assert_eq!(&text[it[0].range.clone()], "a: 1\n  b: [x, y]");
        assert_eq!(&text[it[1].range.clone()], "{c: 2}");
        assert_eq!(&text[root.range.clone()], &text[..text.len() - 5]);
        assert_eq!(root.get("k").unwrap().as_str(), Some("v"));
        // A block scalar's range starts at its indicator and ends at its last content.
        let text = "a: |-  # c\n  x\n  y\n\nb: 1\n";
        let root = &parse_stream(text).unwrap()[0];
        assert_eq!(
            &text[root.get("a").unwrap().range.clone()],
            "|-  # c\n  x\n  y"
        );
    }

    #[test]
    fn documents_and_refusals() {
        let docs = parse_stream("---\n# only a comment\n---\na: 1\n...\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert!(docs[0].is_empty_document());
        assert!(!docs[1].is_empty_document());
        assert!(parse_stream("a: &x 1\nb: *x\n").is_err());
        let lenient = parse_stream_lenient("a: &x 1\nb: *x\n").unwrap();
        assert_eq!(lenient[0].get("b").unwrap().value, NodeValue::Alias);
        assert!(parse_stream("a: [\n").is_err());
        assert!(parse_stream(&"[".repeat(500)).is_err());
    }
}
