//! From a YAML stream to the byte spans of Secret values, and back.
//!
//! ksec changes only the values of `data` and `stringData` and the footer
//! comments; every other byte of a manifest stays as the user wrote it. So we
//! never re-serialise YAML: an event parser with byte spans
//! ([`granit_parser`]) tells us where each value sits, and edits are spliced
//! into the original text back to front ([`splice`]).
//!
//! Pure code: text in, positions out. The traps it handles are listed in
//! DESIGN.md §3 and each has a fixture in `testdata/`.

pub mod amend;
pub mod commented;
mod locate;
pub mod outline;
pub mod scalar;
pub mod tree;

use std::ops::Range;

pub use locate::{LAST_APPLIED, count_documents, locate, part_cuts};

use crate::error::Location;

/// A manifest stream read into memory: its name in messages, its text, and
/// its located documents.
#[derive(Debug, Clone)]
pub struct Stream {
    /// The input's name in messages (`k8s/db.yaml`, `<stdin>`).
    pub name: String,
    /// The text as read.
    pub text: String,
    /// Its documents (nested Secrets of Lists included), in text order.
    pub docs: Vec<Document>,
    /// The whole tree with comments, read when a format first asks.
    commented: std::sync::OnceLock<Result<Vec<commented::Doc>, LocateError>>,
}

impl Stream {
    /// Locates `text`; `metadata` tells which comment lines are format
    /// metadata that belongs to a document.
    pub fn parse(
        name: &str,
        mut text: String,
        metadata: fn(&str) -> bool,
    ) -> Result<Stream, LocateError> {
        Self::parse_taken(name, &mut text, metadata)
    }

    /// [`Stream::parse`] of a text that stays with the caller when it does
    /// not parse (a clear text the caller wipes), and is moved into the
    /// stream, not copied, when it does.
    pub fn parse_taken(
        name: &str,
        text: &mut String,
        metadata: fn(&str) -> bool,
    ) -> Result<Stream, LocateError> {
        let docs = locate(text, metadata)?;
        Ok(Stream {
            name: name.to_owned(),
            text: std::mem::take(text),
            docs,
            commented: std::sync::OnceLock::new(),
        })
    }

    /// Every document as a tree with its comments ([`commented`]), parsed
    /// once.
    pub fn commented(&self) -> Result<&[commented::Doc], LocateError> {
        self.commented
            .get_or_init(|| commented::parse(&self.text))
            .as_deref()
            .map_err(Clone::clone)
    }

    /// The Secrets (top-level and in Lists), in text order.
    pub fn secrets(&self) -> impl Iterator<Item = &Document> {
        self.docs.iter().filter(|d| d.is_secret)
    }

    /// How many top-level documents the stream has.
    pub fn document_count(&self) -> usize {
        document_count(&self.docs)
    }
}

/// Which map a secret value lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Section {
    /// `data`: values are base64 text.
    Data,
    /// `stringData`: values are plain text.
    StringData,
}

/// The sections (`data`, `stringData`) whose values a Secret keeps in
/// clear text on purpose (a `.ksec.yaml` rule's `sections:`). Default:
/// none, every value is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ClearSections {
    /// `data` values stay clear.
    pub data: bool,
    /// `stringData` values stay clear.
    pub string_data: bool,
}

impl ClearSections {
    /// Whether no section is kept clear.
    pub fn is_empty(self) -> bool {
        !self.data && !self.string_data
    }

    /// Whether `section` is kept clear.
    pub fn contains(self, section: Section) -> bool {
        match section {
            Section::Data => self.data,
            Section::StringData => self.string_data,
        }
    }

    /// `data`, `stringData` or `data,stringData`; empty when none.
    pub fn names(self) -> String {
        let mut v = Vec::new();
        if self.data {
            v.push("data");
        }
        if self.string_data {
            v.push("stringData");
        }
        v.join(",")
    }

    /// [`ClearSections::names`] for messages: `none` when no section is clear.
    pub fn describe(self) -> String {
        if self.is_empty() {
            "none".to_owned()
        } else {
            self.names()
        }
    }

    /// Parses the list written by [`ClearSections::names`].
    pub fn parse(s: &str) -> Option<ClearSections> {
        let mut c = ClearSections::default();
        for name in s.split(',') {
            match name {
                "data" if !c.data => c.data = true,
                "stringData" if !c.string_data => c.string_data = true,
                _ => return None,
            }
        }
        Some(c)
    }
}

impl Section {
    /// The YAML key of the section.
    pub fn as_str(self) -> &'static str {
        match self {
            Section::Data => "data",
            Section::StringData => "stringData",
        }
    }
}

/// One value of `data` or `stringData` and where it sits in the text.
///
/// Compact, for files with many values: positions are 32-bit offsets into
/// the text the site was located in, and the key and value are read from
/// that text ([`ValueSite::key`], [`ValueSite::value`]) unless YAML quoting,
/// escapes or folding make the parsed string differ from its bytes (then
/// the site owns it). A site takes 32 bytes; only such values allocate,
/// and the rare site that does not fit (a key longer than 65,535 bytes,
/// indentation or a comment after the value longer than 255).
#[derive(Debug, Clone)]
pub struct ValueSite {
    /// The section the value is in.
    pub section: Section,
    flags: u8,
    /// Indentation for literal blocks, and the length of the comment after
    /// the value (0 when there is none); both in [`Owned::wide`] instead
    /// when one does not fit 8 bits.
    indent: u8,
    trailing: u8,
    /// The value's bytes, when they read as the value: `range` less this
    /// many bytes at its start (a tag, a quote) and at its end.
    value_in: [u8; 2],
    /// The key's bytes, when they read as the key (a longer key is owned).
    key_len: u16,
    key_start: u32,
    line: u32,
    /// Bytes to replace when the value is rewritten.
    range: Span,
    /// What the text does not hold as is, or does not fit (rare).
    owned: Option<Box<Owned>>,
}

// 32 bytes: 3.2 MB for 100,000 values.
const _: () = assert!(std::mem::size_of::<ValueSite>() == 32);

/// A byte range of a located text in 32-bit offsets (texts are at most
/// [`MAX_TEXT`] bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn of(r: &Range<usize>) -> Span {
        // Texts are checked against MAX_TEXT before they are located.
        Span {
            start: r.start as u32,
            end: r.end as u32,
        }
    }

    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// The largest text the locator reads: 32-bit offsets (4 GiB).
pub const MAX_TEXT: usize = u32::MAX as usize;

/// The parts of a site that are not plain spans of its text, or that do
/// not fit its narrow fields.
#[derive(Debug, Clone, Default)]
struct Owned {
    key: Option<Box<str>>,
    value: Option<Box<str>>,
    header_comment: Option<Box<str>>,
    /// Indentation and trailing comment length, when either does not fit
    /// 8 bits (the site's own fields are then unused).
    wide: Option<(u32, u32)>,
}

const FLOW: u8 = 1;
const BINARY: u8 = 2;
const LINE_REST_EMPTY: u8 = 4;

/// Everything a site records, as the locator finds it.
#[derive(Debug, Clone)]
pub struct SiteParts<'a> {
    /// The section.
    pub section: Section,
    /// The key after YAML parsing (borrowed when it is a slice of the text).
    pub key: std::borrow::Cow<'a, str>,
    /// The value after YAML parsing (borrowed when it is a slice of the text).
    pub value: std::borrow::Cow<'a, str>,
    /// The bytes to replace.
    pub range: Range<usize>,
    /// 1-based line of the value.
    pub line: usize,
    /// In a flow mapping or JSON.
    pub flow: bool,
    /// A `!!binary` tag.
    pub binary: bool,
    /// A comment on a block scalar's header line.
    pub header_comment: Option<String>,
    /// A comment that is all that follows the value on its line.
    pub trailing_comment: Option<Range<usize>>,
    /// Indentation for literal block content.
    pub indent: usize,
    /// Only whitespace follows the value on its line.
    pub line_rest_empty: bool,
}

impl ValueSite {
    /// A site of `text` from what the locator found. Keys and values that
    /// are slices of `text` are kept as positions.
    pub fn new(text: &str, p: SiteParts<'_>) -> ValueSite {
        let mut owned = Owned::default();
        let key = match span_in(text, &p.key) {
            Some(s) if s.end - s.start <= u32::from(u16::MAX) => s,
            _ => {
                owned.key = Some(p.key.into());
                Span::default()
            }
        };
        // The value as bytes of `range`, less at most 255 at each end.
        let inside = span_in(text, &p.value).and_then(|v| {
            let before = v.start.checked_sub(p.range.start as u32)?;
            let after = (p.range.end as u32).checked_sub(v.end)?;
            Some([u8::try_from(before).ok()?, u8::try_from(after).ok()?])
        });
        let value_in = match inside {
            Some(d) => d,
            None => {
                owned.value = Some(p.value.into());
                [0, 0]
            }
        };
        owned.header_comment = p.header_comment.map(String::into_boxed_str);
        let trailing = p.trailing_comment.map_or(0, |c| c.len());
        let narrow = (u8::try_from(p.indent), u8::try_from(trailing));
        let (indent, trailing) = match narrow {
            (Ok(i), Ok(t)) => (i, t),
            _ => {
                let to32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
                owned.wide = Some((to32(p.indent), to32(trailing)));
                (0, 0)
            }
        };
        let owned = (owned.key.is_some()
            || owned.value.is_some()
            || owned.header_comment.is_some()
            || owned.wide.is_some())
        .then(|| Box::new(owned));
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        let flags =
            flag(p.flow, FLOW) | flag(p.binary, BINARY) | flag(p.line_rest_empty, LINE_REST_EMPTY);
        ValueSite {
            section: p.section,
            flags,
            indent,
            trailing,
            value_in,
            key_len: (key.end - key.start) as u16,
            key_start: key.start,
            line: p.line.try_into().unwrap_or(u32::MAX),
            range: Span::of(&p.range),
            owned,
        }
    }

    /// Indentation and trailing comment length.
    fn widths(&self) -> (usize, usize) {
        match self.owned.as_ref().and_then(|o| o.wide) {
            Some((i, t)) => (i as usize, t as usize),
            None => (usize::from(self.indent), usize::from(self.trailing)),
        }
    }

    /// The map key (after YAML parsing); `text` is the text the site was
    /// located in.
    pub fn key<'a>(&'a self, text: &'a str) -> &'a str {
        match self.owned.as_ref().and_then(|o| o.key.as_deref()) {
            Some(k) => k,
            None => {
                let start = self.key_start as usize;
                &text[start..start + usize::from(self.key_len)]
            }
        }
    }

    /// The value after YAML parsing (escapes resolved, block scalars
    /// folded); `text` is the text the site was located in.
    pub fn value<'a>(&'a self, text: &'a str) -> &'a str {
        match self.owned.as_ref().and_then(|o| o.value.as_deref()) {
            Some(v) => v,
            None => {
                let [before, after] = self.value_in.map(usize::from);
                let r = self.range.range();
                &text[r.start + before..r.end - after]
            }
        }
    }

    /// The bytes to replace when the value is rewritten.
    pub fn range(&self) -> Range<usize> {
        self.range.range()
    }

    /// 1-based line of the value.
    pub fn line(&self) -> usize {
        self.line as usize
    }

    /// In a flow mapping or JSON: write double-quoted tokens only.
    pub fn flow(&self) -> bool {
        self.flags & FLOW != 0
    }

    /// The value carries a `!!binary` tag (accepted only by `encrypt -x`).
    pub fn binary(&self) -> bool {
        self.flags & BINARY != 0
    }

    /// Only whitespace follows the value on its line.
    pub fn line_rest_empty(&self) -> bool {
        self.flags & LINE_REST_EMPTY != 0
    }

    /// Indentation for literal block content written at this site.
    pub fn indent(&self) -> usize {
        self.widths().0
    }

    /// A comment on a block scalar's header line, kept after the token.
    pub fn header_comment(&self) -> Option<&str> {
        self.owned.as_ref()?.header_comment.as_deref()
    }

    /// A comment that is all that follows the value on its line (with the
    /// white space before it): a literal block written here carries it on
    /// its header line.
    pub fn trailing_comment(&self) -> Option<Range<usize>> {
        let (end, trailing) = (self.range.end as usize, self.widths().1);
        (trailing > 0).then(|| end..end + trailing)
    }

    /// The same site in a text where its own starts `bytes` bytes and
    /// `lines` lines further on.
    fn shift(&mut self, bytes: usize, lines: usize) {
        self.range.start += bytes as u32;
        self.range.end += bytes as u32;
        // Not read when the site owns its key.
        self.key_start += bytes as u32;
        self.line += lines as u32;
    }

    /// Overwrites what the site holds outside its text (keys and values
    /// written with escapes): for streams of clear text, whose text is
    /// wiped by its owner.
    pub fn wipe(&mut self) {
        use zeroize::Zeroize as _;
        if let Some(o) = &mut self.owned {
            for part in [&mut o.key, &mut o.value, &mut o.header_comment] {
                if let Some(p) = part.as_deref_mut() {
                    p.zeroize();
                }
            }
        }
    }

    /// `section.key`, for messages.
    pub fn label(&self, text: &str) -> String {
        format!("{}.{}", self.section.as_str(), self.key(text))
    }

    /// How a clear value is written at this site, in a document whose line
    /// break is `newline`.
    pub fn context<'a>(&self, newline: &'a str) -> scalar::Context<'a> {
        scalar::Context {
            flow: self.flow(),
            indent: self.indent(),
            newline,
            line_rest_empty: self.line_rest_empty(),
            header_comment: None,
        }
    }
}

/// Whether the line holds only blanks (spaces, tabs, a carriage return)
/// from byte `at` to its end.
fn rest_of_line_empty(text: &str, at: usize) -> bool {
    text[at..]
        .bytes()
        .take_while(|&b| b != b'\n')
        .all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

/// Where `s` sits in `text`, when it is a slice of it.
fn span_in(text: &str, s: &str) -> Option<Span> {
    let base = text.as_ptr() as usize;
    let at = (s.as_ptr() as usize).checked_sub(base)?;
    (at + s.len() <= text.len()).then(|| Span::of(&(at..at + s.len())))
}

/// Why a Secret document cannot be processed. Raised only for documents that
/// turn out to be Secrets (`kind` may come after `data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// The `section.key` concerned, when there is one.
    pub key: Option<String>,
    /// What is wrong, as a sentence fragment.
    pub message: String,
    /// How to fix it, when there is a known fix.
    pub hint: Option<String>,
}

/// The footer comment lines of a document.
#[derive(Debug, Clone)]
pub struct FooterBlock {
    /// The whole lines (indentation included), with their line breaks.
    pub range: Range<usize>,
    /// The lines from their `#`, line breaks removed.
    pub lines: Vec<String>,
    /// 1-based line of the first footer line.
    pub line: usize,
}

/// One document of a YAML stream, or one Secret inside a `List`'s `items`
/// (a *nested* document: [`Document::item`] is not empty).
///
/// `kubectl get secrets -o yaml` prints a `kind: List` whose items are
/// Secrets; those are Secrets as much as top-level ones, so the locator
/// reports each as a document of its own, right after the List that holds
/// it, with its own values and its own footer: comment lines right after
/// the item's content, at the item's indentation.
#[derive(Debug, Clone)]
pub struct Document {
    /// 1-based position in the stream (of the top-level document, for a
    /// nested one).
    pub index: usize,
    /// For a Secret inside a `List` (or `*List`): its position in `items`,
    /// one index per level of nesting (`[0]` is `items[0]`, `[1, 0]` is
    /// `items[1].items[0]`). Empty for a top-level document.
    pub item: Vec<usize>,
    /// 0-based position in what [`locate`] returned (nested documents
    /// included): how a result that was re-located finds this document.
    pub position: usize,
    /// 1-based line where the document's content starts.
    pub line: usize,
    /// `kind`, when the root is a mapping that has one.
    pub kind: Option<String>,
    /// `metadata.name`.
    pub name: Option<String>,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// The top-level `type` (a Secret's type), when it is a scalar.
    pub secret_type: Option<String>,
    /// Line of a `kubectl.kubernetes.io/last-applied-configuration`
    /// annotation: a clear copy of the object made by client-side apply.
    pub last_applied_line: Option<usize>,
    /// `apiVersion: v1` and `kind: Secret`.
    pub is_secret: bool,
    /// Values of `data` and `stringData`, in file order.
    pub sites: Vec<ValueSite>,
    /// Lines of comments inside `data` and `stringData` (on value lines or
    /// between them): they stay readable when the values are encrypted.
    pub section_comments: Vec<usize>,
    /// Problems that make the document unusable as a Secret, in file order.
    pub problems: Vec<Problem>,
    /// The footer, if the document has one.
    pub footer: Option<FooterBlock>,
    /// Where a new footer goes: after the line of the last content.
    pub footer_insert: usize,
    /// Indentation of the footer lines: 0 for a top-level document, the
    /// item's column for a nested one.
    pub footer_indent: usize,
    /// The document's line break style.
    pub newline: &'static str,
    /// Secret-shaped mappings (`kind: Secret` with `data` or `stringData`)
    /// that sit where ksec does not handle Secrets: anywhere in a top-level
    /// document but the root and a `List`'s `items`. Only on top-level
    /// documents.
    pub strays: Vec<Stray>,
}

/// A Secret-shaped mapping that ksec cannot encrypt in place (a Secret in a
/// Template's `objects`, in a custom resource, …): `encrypt` refuses it when
/// it holds clear values, `decrypt` when it holds what looks like ciphertext.
#[derive(Debug, Clone)]
pub struct Stray {
    /// 1-based line of the mapping.
    pub line: usize,
    /// Where it is in its document, e.g. `objects[0]` or `spec.manifest`.
    pub path: String,
    /// `metadata.name`, when there is one.
    pub name: Option<String>,
    /// The scalar values of its `data` and `stringData` mappings.
    pub values: Vec<StrayValue>,
}

/// One value of a [`Stray`].
#[derive(Debug, Clone)]
pub struct StrayValue {
    /// 1-based line.
    pub line: usize,
    /// `section.key`.
    pub label: String,
    /// The value after YAML parsing.
    pub value: String,
}

impl Document {
    /// Whether this is a Secret inside a `List`'s items.
    pub fn is_nested(&self) -> bool {
        !self.item.is_empty()
    }

    /// Where a nested Secret sits, for messages: `items[1].items[0]`;
    /// empty for a top-level document.
    pub fn item_path(&self) -> String {
        item_path(&self.item)
    }

    /// Where `line` of this document is, for messages: file, line,
    /// document, item and `Secret ns/name` (or its kind for other objects).
    pub fn location(&self, file: &str, line: usize) -> Location {
        Location {
            file: Some(file.to_owned()),
            line,
            column: 0,
            document: Some(self.index),
            item: self.item_path(),
            object: Some(format!(
                "{} {}",
                if self.is_secret {
                    "Secret"
                } else {
                    self.kind.as_deref().unwrap_or("no kind")
                },
                self.display_name()
            )),
            key: None,
        }
    }

    /// The same document in a stream where the text it was located in
    /// starts `bytes` bytes and `lines` lines further on, after `index`
    /// top-level documents. Its `position` is the caller's to set.
    pub(crate) fn shift(&mut self, bytes: usize, lines: usize, index: usize) {
        self.index += index;
        self.line += lines;
        if let Some(l) = &mut self.last_applied_line {
            *l += lines;
        }
        for s in &mut self.sites {
            s.shift(bytes, lines);
        }
        for l in &mut self.section_comments {
            *l += lines;
        }
        for p in &mut self.problems {
            p.line += lines;
        }
        if let Some(f) = &mut self.footer {
            f.range = f.range.start + bytes..f.range.end + bytes;
            f.line += lines;
        }
        self.footer_insert += bytes;
        for s in &mut self.strays {
            s.line += lines;
            for v in &mut s.values {
                v.line += lines;
            }
        }
    }

    /// The location of one of its values;
    /// `text` is the text the document was located in.
    pub fn site_location(&self, file: &str, text: &str, site: &ValueSite) -> Location {
        self.location(file, site.line()).key(site.label(text))
    }

    /// `namespace/name`, `name`, or a placeholder, for messages.
    pub fn display_name(&self) -> String {
        match (&self.namespace, &self.name) {
            (Some(ns), Some(n)) => format!("{ns}/{n}"),
            (None, Some(n)) => n.clone(),
            _ => "(unnamed)".to_owned(),
        }
    }
}

/// `items[1].items[0]` for `[1, 0]`.
pub fn item_path(item: &[usize]) -> String {
    let parts: Vec<String> = item.iter().map(|i| format!("items[{i}]")).collect();
    parts.join(".")
}

/// The top-level documents of a located stream (nested ones left out).
pub fn top_level(docs: &[Document]) -> impl Iterator<Item = &Document> {
    docs.iter().filter(|d| d.item.is_empty())
}

/// How many top-level documents a located stream has.
pub fn document_count(docs: &[Document]) -> usize {
    top_level(docs).count()
}

/// Why a stream could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocateError {
    /// The YAML parser refused the text.
    #[error("invalid YAML at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's reason.
        message: String,
    },
    /// A footer line outside the place footers go.
    #[error("line {line}: {message}")]
    Footer {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// A replacement of a byte range.
#[derive(Debug, Clone)]
pub struct Edit {
    /// Bytes to replace (empty to insert).
    pub range: Range<usize>,
    /// The new text.
    pub text: String,
}

/// Applies non-overlapping edits to `text`. Linear in the text size.
pub fn splice(text: &str, edits: &mut [Edit]) -> String {
    edits.sort_by_key(|e| (e.range.start, e.range.end));
    let added: usize = edits.iter().map(|e| e.text.len()).sum();
    let removed: usize = edits.iter().map(|e| e.range.len()).sum();
    let mut out = String::with_capacity((text.len() + added).saturating_sub(removed));
    let pos = write_edits(text, &mut out, 0, edits.iter()).expect("overlapping edits");
    out.push_str(&text[pos..]);
    out
}

/// Writes `edits` (sorted, none overlapping another) into `out`, with the
/// text between them, from `pos` on; returns the position in `text` it
/// reached. An edit that starts before `pos` is refused.
fn write_edits<'e>(
    text: &str,
    out: &mut String,
    mut pos: usize,
    edits: impl IntoIterator<Item = &'e Edit>,
) -> Result<usize, LateEdit> {
    for e in edits {
        if e.range.start < pos {
            return Err(LateEdit {
                start: e.range.start,
                written: pos,
            });
        }
        out.push_str(&text[pos..e.range.start]);
        out.push_str(&e.text);
        pos = e.range.end;
    }
    Ok(pos)
}

/// [`splice`] done as edits arrive, for results too large to hold every
/// edit at once: an edit waits until the caller says no edit still to come
/// starts before its end ([`Splicer::flush`]), is then written out and
/// dropped. Edits at the same place keep the order they arrived in, as
/// [`splice`] keeps them.
pub struct Splicer<'t> {
    text: &'t str,
    out: String,
    /// How much of `text` is written out (edited or copied).
    pos: usize,
    /// Edits not written out yet, in arrival order.
    pending: Vec<Edit>,
    /// [`Splicer::put`] writes out only edits that end by here.
    limit: usize,
}

/// Edits given to a [`Splicer`] that overlap what it wrote out already (a
/// bug in the caller's promise to [`Splicer::flush`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an edit at byte {start} came after the text up to byte {written} was written")]
pub struct LateEdit {
    /// Where the edit starts.
    pub start: usize,
    /// How far the text was written.
    pub written: usize,
}

impl<'t> Splicer<'t> {
    /// A splicer of `text`. Its output is allocated at the first
    /// [`Splicer::flush`] that writes something, at about its final size.
    pub fn new(text: &'t str) -> Self {
        Splicer {
            text,
            out: String::new(),
            pos: 0,
            pending: Vec::new(),
            limit: usize::MAX,
        }
    }

    /// Adds one edit and writes it out at once when nothing waits, it
    /// starts at or after what is written and it ends by the limit
    /// ([`Splicer::limit`]): for a caller that makes its edits in text order
    /// (a large Secret's values), so that they are not all held. Otherwise
    /// it waits, as with [`Splicer::push`].
    pub fn put(&mut self, edit: Edit) -> Result<(), LateEdit> {
        if !self.pending.is_empty() || edit.range.start < self.pos || edit.range.end > self.limit {
            self.pending.push(edit);
            return Ok(());
        }
        self.reserve(edit.range.end, edit.text.len(), edit.range.len(), false);
        self.pos = write_edits(self.text, &mut self.out, self.pos, [&edit])?;
        Ok(())
    }

    /// From now on, [`Splicer::put`] writes out at once only edits that
    /// end at or before `upto`: the caller promises that no edit still to
    /// come from elsewhere starts before `upto` (as with
    /// [`Splicer::flush`]). `usize::MAX` (the default) when edits arrive in
    /// text order.
    pub fn limit(&mut self, upto: usize) {
        self.limit = upto;
    }

    /// Adds edits; they are written out by a later [`Splicer::flush`].
    pub fn push(&mut self, edits: Vec<Edit>) {
        if self.pending.is_empty() {
            // Taken over, not copied: a large Secret's edits are many.
            self.pending = edits;
        } else {
            self.pending.extend(edits);
        }
    }

    /// Writes out every waiting edit that ends at or before `upto`: the
    /// caller promises that no edit still to come starts before `upto`.
    pub fn flush(&mut self, upto: usize) -> Result<(), LateEdit> {
        self.write_ready(upto, false)
    }

    /// Writes out the waiting edits and the rest of the text.
    pub fn finish(mut self) -> Result<String, LateEdit> {
        self.write_ready(usize::MAX, true)?;
        self.out.push_str(&self.text[self.pos..]);
        Ok(self.out)
    }

    /// Writes the edits that end by `upto`; `last` when none is to come.
    fn write_ready(&mut self, upto: usize, last: bool) -> Result<(), LateEdit> {
        // Stable: edits at the same place stay in arrival order.
        self.pending.sort_by_key(|e| (e.range.start, e.range.end));
        let ready = self
            .pending
            .iter()
            .take_while(|e| e.range.end <= upto)
            .count();
        if ready > 0 || last {
            let end = self.pending[..ready]
                .last()
                .map_or(self.pos, |e| e.range.end.max(self.pos));
            let (added, removed) = self.pending[..ready]
                .iter()
                .fold((0usize, 0usize), |(a, r), e| {
                    (a + e.text.len(), r + e.range.len())
                });
            self.reserve(end, added, removed, last);
        }
        self.pos = write_edits(self.text, &mut self.out, self.pos, &self.pending[..ready])?;
        self.pending.drain(..ready);
        Ok(())
    }

    /// Room for the rest of the output in one allocation of about its
    /// final size instead of doubling (the output of encrypt is three times
    /// its input), before edits up to `end` that add and remove so many
    /// bytes are written: the text after them is copied as it is when no
    /// edit is to come (`last`), and otherwise assumed to grow as the text
    /// so far did. Only when the room left is too small, so that edits
    /// written one at a time do not reallocate each time. An edit
    /// overlapping what was written is refused later; it cannot make this
    /// overflow.
    fn reserve(&mut self, end: usize, added: usize, removed: usize, last: bool) {
        let end = end.max(self.pos);
        let written = (self.out.len() + (end - self.pos) + added).saturating_sub(removed);
        if written <= self.out.capacity() && !last {
            return;
        }
        let rest = self.text.len() - end;
        let projected = if last {
            written + rest
        } else {
            let grown = (rest as u128 * written as u128 / end.max(1) as u128) as usize;
            written + grown + (written + grown) / 64
        };
        if projected > self.out.capacity() {
            self.out.reserve_exact(projected - self.out.len());
        }
    }
}

/// The edit that removes a footer block. When the footer's last line has no
/// line break (end of file), the break before the footer goes too, so that
/// adding and removing a footer restores the text exactly.
pub fn remove_footer(text: &str, footer: &FooterBlock) -> Edit {
    let mut start = footer.range.start;
    if !text[..footer.range.end].ends_with('\n') {
        if text[..start].ends_with("\r\n") {
            start -= 2;
        } else if text[..start].ends_with('\n') {
            start -= 1;
        }
    }
    Edit {
        range: start..footer.range.end,
        text: String::new(),
    }
}

/// The edit that writes `lines` as a document's footer, replacing the old one
/// or inserting after the document's content.
pub fn write_footer(text: &str, doc: &Document, lines: &[String]) -> Edit {
    let nl = doc.newline;
    let pad = " ".repeat(doc.footer_indent);
    let indented: Vec<String>;
    let lines = if pad.is_empty() {
        lines
    } else {
        indented = lines.iter().map(|l| format!("{pad}{l}")).collect();
        &indented
    };
    match &doc.footer {
        Some(old) => {
            let terminated = text[..old.range.end].ends_with('\n');
            let mut body = lines.join(nl);
            if terminated {
                body.push_str(nl);
            }
            Edit {
                range: old.range.clone(),
                text: body,
            }
        }
        None => {
            let at = doc.footer_insert;
            let mut body = String::new();
            let at_eof_unterminated = at == text.len() && !text.ends_with('\n');
            if at_eof_unterminated {
                body.push_str(nl);
                body.push_str(&lines.join(nl));
            } else {
                body.push_str(&lines.join(nl));
                body.push_str(nl);
            }
            Edit {
                range: at..at,
                text: body,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Edit, LateEdit, Splicer, splice};

    fn edit(start: usize, end: usize, text: &str) -> Edit {
        Edit {
            range: start..end,
            text: text.to_owned(),
        }
    }

    /// Edits of a 26-byte text, in the order a caller may find them: two
    /// insertions at one place, a replacement, a deletion, an insertion at
    /// the end.
    fn edits() -> Vec<Edit> {
        vec![
            edit(2, 2, "<a>"),
            edit(2, 2, "<b>"),
            edit(4, 9, "[4-9]"),
            edit(12, 15, ""),
            edit(20, 21, "{20}"),
            edit(26, 26, "!"),
        ]
    }

    #[test]
    fn flushing_as_edits_arrive_gives_what_splice_gives() {
        let text = "abcdefghijklmnopqrstuvwxyz";
        let whole = splice(text, &mut edits());
        assert_eq!(whole, "ab<a><b>cd[4-9]jklpqrst{20}vwxyz!");
        // Every split of the edits in two, flushed up to where the second
        // part starts.
        for cut in 0..=edits().len() {
            let mut first = edits();
            let second = first.split_off(cut);
            let floor = second
                .iter()
                .map(|e| e.range.start)
                .min()
                .unwrap_or(usize::MAX);
            let mut s = Splicer::new(text);
            s.push(first);
            s.flush(floor).unwrap();
            s.push(second);
            assert_eq!(s.finish().unwrap(), whole, "cut at {cut}");
        }
        // Arrival order within a batch does not matter but for edits at
        // the same place.
        let mut s = Splicer::new(text);
        let mut reversed = edits();
        reversed.reverse();
        reversed.swap(4, 5); // the two insertions at 2 back in their order
        s.push(reversed);
        assert_eq!(s.finish().unwrap(), whole);
    }

    #[test]
    fn edits_put_one_at_a_time_give_what_splice_gives() {
        let text = "abcdefghijklmnopqrstuvwxyz";
        let whole = splice(text, &mut edits());
        // In text order: each is written at once, nothing waits.
        let mut s = Splicer::new(text);
        for e in edits() {
            s.put(e).unwrap();
            assert!(s.pending.is_empty());
        }
        assert_eq!(s.out, "ab<a><b>cd[4-9]jklpqrst{20}vwxyz!");
        assert_eq!(s.finish().unwrap(), whole);
        // While edits wait, one put joins them and is sorted in.
        let mut s = Splicer::new(text);
        s.push(vec![edit(20, 21, "{20}")]);
        s.put(edit(12, 15, "")).unwrap();
        assert_eq!(s.pending.len(), 2);
        assert_eq!(s.finish().unwrap(), "abcdefghijklpqrst{20}vwxyz");
        // Out of text order: an edit before what was written is refused.
        let mut s = Splicer::new(text);
        s.put(edit(12, 15, "")).unwrap();
        s.put(edit(4, 9, "[4-9]")).unwrap();
        assert_eq!(
            s.finish(),
            Err(LateEdit {
                start: 4,
                written: 15
            })
        );
    }

    #[test]
    fn an_edit_before_what_was_written_is_refused() {
        let text = "abcdefghijklmnopqrstuvwxyz";
        let mut s = Splicer::new(text);
        s.push(vec![edit(10, 12, "X")]);
        s.flush(12).unwrap();
        s.push(vec![edit(11, 13, "Y")]);
        assert_eq!(
            s.finish(),
            Err(LateEdit {
                start: 11,
                written: 12
            })
        );
    }
}
