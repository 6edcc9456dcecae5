//! Each document of a stream as a small tree of mappings, sequences and
//! scalars with byte positions: what [`super::amend`] edits and what
//! `decrypt --template` renders. Pure code.

use std::ops::Range;

use granit_parser::{Event, Options, Parser, ScalarStyle, Span, StructureStyle};

use super::LocateError;

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

/// Reads every document's root node. Errors only on invalid YAML.
pub fn outline(text: &str) -> Result<Vec<Node>, LocateError> {
    let mut options = Options::default();
    options.flow_nesting_limit = 128;
    options.block_nesting_limit = 128;
    let mut r = Reader {
        text,
        parser: Parser::new_from_str_with_options(text, options),
    };
    let mut docs = Vec::new();
    loop {
        let (ev, span) = r.next()?;
        match ev {
            Event::StreamEnd => break,
            Event::DocumentStart(..) => {
                let (first, span) = r.next()?;
                if matches!(first, Event::DocumentEnd) {
                    docs.push(Node {
                        kind: Kind::Other,
                        range: 0..0,
                    });
                    continue;
                }
                docs.push(r.node(first, span, None)?);
                let (end, _) = r.next()?;
                debug_assert!(matches!(end, Event::DocumentEnd));
            }
            _ => {
                let _ = span;
            }
        }
    }
    Ok(docs)
}

struct Reader<'a> {
    text: &'a str,
    parser: Parser<'a, granit_parser::StrInput<'a>>,
}

fn range(span: &Span) -> Range<usize> {
    span.byte_range().unwrap_or(0..0)
}

impl<'a> Reader<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), LocateError> {
        loop {
            let Some(item) = self.parser.next() else {
                return Err(LocateError::Syntax {
                    line: 0,
                    column: 0,
                    message: "unexpected end of input".into(),
                });
            };
            let (ev, span) = item.map_err(|e| LocateError::Syntax {
                line: e.marker().line(),
                column: e.marker().col() + 1,
                message: e.info().to_owned(),
            })?;
            if !matches!(ev, Event::Comment(..)) {
                return Ok((ev, span));
            }
        }
    }

    /// Reads the node that starts with `ev`. `key_end` is where the key of
    /// the entry holding it ends (to find a block scalar's indicator).
    fn node(
        &mut self,
        ev: Event<'a>,
        span: Span,
        key_end: Option<usize>,
    ) -> Result<Node, LocateError> {
        let r = range(&span);
        Ok(match ev {
            Event::Scalar(value, style, ..) => {
                let range = match style {
                    ScalarStyle::Literal | ScalarStyle::Folded => {
                        let from = key_end.unwrap_or(r.start).min(r.start);
                        let bytes = self.text.as_bytes();
                        let mut i = from;
                        while i < r.start && bytes[i] != b'|' && bytes[i] != b'>' {
                            i += 1;
                        }
                        let end = r.start
                            + self.text[r.clone()]
                                .trim_end_matches([' ', '\t', '\r', '\n'])
                                .len();
                        i..end.max(i + 1)
                    }
                    _ => r,
                };
                Node {
                    kind: Kind::Scalar(value.into_owned()),
                    range,
                }
            }
            Event::MappingStart(style, ..) => {
                let flow = style == StructureStyle::Flow;
                let mut entries = Vec::new();
                let mut end = r.end;
                loop {
                    let (kev, kspan) = self.next()?;
                    if matches!(kev, Event::MappingEnd) {
                        if flow {
                            end = range(&kspan).end;
                        }
                        break;
                    }
                    let kr = range(&kspan);
                    let key = match &kev {
                        Event::Scalar(k, ..) => Some(k.to_string()),
                        _ => None,
                    };
                    let knode = self.node(kev, kspan, None)?;
                    let (vev, vspan) = self.next()?;
                    let value = self.node(vev, vspan, Some(knode.range.end))?;
                    if !flow {
                        end = end.max(value.range.end).max(knode.range.end);
                    }
                    if let Some(key) = key {
                        entries.push(Entry {
                            key,
                            key_range: kr,
                            key_column: kspan.start.col(),
                            value,
                        });
                    }
                }
                Node {
                    kind: Kind::Mapping(Mapping {
                        flow,
                        entries,
                        open_end: r.start + 1,
                    }),
                    range: r.start..end,
                }
            }
            Event::SequenceStart(style, ..) => {
                let mut items = Vec::new();
                let mut end = r.end;
                loop {
                    let (ev, s) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        if style == StructureStyle::Flow {
                            end = range(&s).end;
                        }
                        break;
                    }
                    let n = self.node(ev, s, None)?;
                    if style != StructureStyle::Flow {
                        end = end.max(n.range.end);
                    }
                    items.push(n);
                }
                Node {
                    kind: Kind::Sequence(items),
                    range: r.start..end,
                }
            }
            _ => Node {
                kind: Kind::Other,
                range: r,
            },
        })
    }
}
