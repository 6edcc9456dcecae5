//! The event walk that finds Secret values, footers and problems.

use std::borrow::Cow;
use std::collections::HashSet;
use std::hash::BuildHasher as _;
use std::ops::Range;

use granit_parser::{Event, Options, Parser, ScalarStyle, ScanError, Span, StrInput};

use super::{
    Document, FooterBlock, LocateError, MAX_TEXT, Problem, Section, SiteParts, Stray, StrayValue,
    ValueSite, rest_of_line_empty, scalar,
};

/// The annotation in which client-side `kubectl apply` keeps a copy of the
/// whole object, clear values included.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Nesting limit for block and flow collections; deeper input is an error.
const MAX_NESTING: usize = 128;

type Ev<'a> = (Event<'a>, Span);

/// Reads a YAML stream and returns its documents with the positions of every
/// Secret value and footer. Secrets inside a `List`'s items come right after
/// the List, as nested documents ([`Document::item`]). `metadata` tells
/// which comment lines (from their `#`) are format metadata (footers) that
/// belong to a document; the locator does not know any format.
///
/// A large stream of many documents is read in parts on every core (see
/// [`split_points`]); the result is the same as reading it whole.
pub fn locate(text: &str, metadata: fn(&str) -> bool) -> Result<Vec<Document>, LocateError> {
    if text.len() > MAX_TEXT {
        return Err(LocateError::Syntax {
            line: 0,
            column: 0,
            message: "the stream is larger than 4 GiB, more than ksec reads".into(),
        });
    }
    let cuts = split_points(text);
    if cuts.is_empty() {
        return locate_whole(text, metadata);
    }
    locate_in_parts(text, metadata, &cuts)
}

/// [`locate`] of the parts of `text` that start at `cuts` (lines that are
/// exactly `---`, ascending), each on its own thread.
fn locate_in_parts(
    text: &str,
    metadata: fn(&str) -> bool,
    cuts: &[usize],
) -> Result<Vec<Document>, LocateError> {
    let starts: Vec<usize> = std::iter::once(0).chain(cuts.iter().copied()).collect();
    let part = |i: usize| {
        let end = starts.get(i + 1).copied().unwrap_or(text.len());
        locate_whole(&text[starts[i]..end], metadata)
    };
    let parts = crate::par::map_range(starts.len(), 1, part);
    if parts.iter().any(Result::is_err) {
        // The whole stream's own error, exactly as it reads without parts.
        return locate_whole(text, metadata);
    }
    let mut docs: Vec<Document> = Vec::new();
    let (mut lines, mut index) = (0, 0);
    for (i, part) in parts.into_iter().enumerate() {
        let part = part?;
        let start = starts[i];
        let last_index = part.iter().map(|d| d.index).max().unwrap_or(0);
        for mut d in part {
            d.shift(start, lines, index);
            d.position = docs.len();
            docs.push(d);
        }
        index += last_index;
        let end = starts.get(i + 1).copied().unwrap_or(text.len());
        lines += memchr::memchr_iter(b'\n', &text.as_bytes()[start..end]).count();
    }
    Ok(docs)
}

/// The smallest part of a stream worth a thread of its own.
const PART_MIN: usize = 256 << 10;

/// Where a stream may be cut into parts that read, each on its own, as
/// they read in the whole stream: at lines that are exactly `---` (a
/// document start at column 0 always ends whatever came before it, or the
/// stream is invalid, and then it is read whole for its error). Streams
/// with a directive (`%`), a document end marker (`...`) or a carriage
/// return anywhere are not cut, nor small ones.
fn split_points(text: &str) -> Vec<usize> {
    cuts_into(text, (text.len() / PART_MIN).min(crate::par::threads()))
}

/// Where to cut `text` into parts of about `size` bytes (or more) that
/// read, each on its own, as they read in the whole stream (the rule of
/// [`split_points`], without its limit of one part per thread): none when
/// the stream cannot be cut or is not larger than two parts.
pub fn part_cuts(text: &str, size: usize) -> Vec<usize> {
    cuts_into(text, text.len() / size.max(1))
}

/// Cuts for about `n` parts of equal size, at the first `---` line at or
/// after each `k`-th share of the text.
fn cuts_into(text: &str, n: usize) -> Vec<usize> {
    if n < 2 {
        return Vec::new();
    }
    let mut cuts: Vec<usize> = Vec::with_capacity(n - 1);
    for k in 1..n {
        let target = text.len() / n * k;
        if let Some(off) = memchr::memmem::find(&text.as_bytes()[target..], b"\n---\n") {
            let at = target + off + 1;
            if cuts.last().is_none_or(|&c| at > c) {
                cuts.push(at);
            }
        }
    }
    if cuts.is_empty() || !splittable(text) {
        return Vec::new();
    }
    cuts
}

/// No directive, document end marker or carriage return anywhere.
fn splittable(text: &str) -> bool {
    use memchr::memmem::find;
    let b = text.as_bytes();
    memchr::memchr(b'\r', b).is_none()
        && !b.starts_with(b"%")
        && !b.starts_with(b"...")
        && find(b, b"\n%").is_none()
        && find(b, b"\n...").is_none()
}

/// [`locate`] in one pass.
fn locate_whole(text: &str, metadata: fn(&str) -> bool) -> Result<Vec<Document>, LocateError> {
    let mut w = Walker {
        text,
        metadata,
        parser: parser(text),
        peeked: None,
        content_end: 0,
        footer_lines: Vec::new(),
        limits: Vec::new(),
        pending_limits: Vec::new(),
        strays: Vec::new(),
        section_column: None,
        section_comments: Vec::new(),
    };
    let mut docs: Vec<Located> = Vec::new();
    let mut index = 0;
    loop {
        let (ev, span) = w.next()?;
        match ev {
            Event::StreamStart | Event::DocumentEnd => {}
            Event::StreamEnd => break,
            Event::DocumentStart(explicit, _) => {
                let marker = explicit.then(|| span_range(&span).start);
                w.content_end = 0;
                index += 1;
                let (doc, content_start, nested) = w.document(index)?;
                let end = w.content_end.max(content_start);
                docs.push(Located {
                    doc,
                    bounds: Bounds::Top {
                        marker,
                        content_start,
                        content_end: end,
                    },
                });
                for c in nested {
                    let limit = w.limits[c.slot];
                    docs.push(Located {
                        doc: c.doc,
                        bounds: Bounds::Item {
                            column: c.column,
                            content_end: c.content_end,
                            limit,
                        },
                    });
                }
                // A nested Secret's footer ends where the document ends.
                w.pending_limits.clear();
            }
            _ => unreachable_event(&span)?,
        }
    }
    assign_footers(text, &mut docs, &w.footer_lines)?;
    Ok(docs
        .into_iter()
        .enumerate()
        .map(|(position, mut l)| {
            // Sites live as long as the stream: no room left from growing.
            l.doc.sites.shrink_to_fit();
            Document { position, ..l.doc }
        })
        .collect())
}

/// A located document and where its footer may sit.
struct Located {
    doc: Document,
    bounds: Bounds,
}

enum Bounds {
    /// A top-level document: its footer lines start at column 0 after its
    /// content and before the next document.
    Top {
        marker: Option<usize>,
        content_start: usize,
        content_end: usize,
    },
    /// A Secret in a List's items: its footer lines sit at the item's
    /// column, after its content and before the next content of the stream.
    Item {
        column: usize,
        content_end: usize,
        limit: usize,
    },
}

/// A mapping in a sequence of `items` that may be a nested Secret.
struct Candidate {
    doc: Document,
    column: usize,
    content_end: usize,
    /// Where [`Walker::limits`] will hold the start of the next content.
    slot: usize,
}

fn unreachable_event(span: &Span) -> Result<(), LocateError> {
    Err(LocateError::Syntax {
        line: span.start.line(),
        column: span.start.col() + 1,
        message: "unexpected YAML event".into(),
    })
}

/// How many documents with content a stream has (empty ones, `---` alone or
/// only comments, do not count). A full parse, but nothing is built.
pub fn count_documents(text: &str) -> Result<usize, LocateError> {
    let mut p = parser(text);
    let mut count = 0;
    let mut after_start = false;
    loop {
        let (ev, span) = next_event(&mut p)?;
        match ev {
            Event::StreamEnd => return Ok(count),
            Event::Comment(..) => continue,
            Event::DocumentStart(..) => after_start = true,
            Event::DocumentEnd => after_start = false,
            // An empty document is an empty plain scalar with no bytes.
            Event::Scalar(_, ScalarStyle::Plain, 0, None)
                if after_start && span_range(&span).is_empty() =>
            {
                after_start = false;
            }
            _ if after_start => {
                count += 1;
                after_start = false;
            }
            _ => {}
        }
    }
}

/// The event parser of every walk over a stream, with our nesting limits.
pub(super) fn parser(text: &str) -> Parser<'_, StrInput<'_>> {
    let mut options = Options::default();
    options.flow_nesting_limit = MAX_NESTING;
    options.block_nesting_limit = MAX_NESTING;
    Parser::new_from_str_with_options(text, options)
}

/// The next event, comments included; the end of input and the parser's
/// refusals become syntax errors.
pub(super) fn next_event<'a>(parser: &mut Parser<'a, StrInput<'a>>) -> Result<Ev<'a>, LocateError> {
    match parser.next() {
        Some(item) => item.map_err(syntax),
        None => Err(LocateError::Syntax {
            line: 0,
            column: 0,
            message: "unexpected end of input".into(),
        }),
    }
}

pub(super) fn span_range(span: &Span) -> Range<usize> {
    // Spans from `new_from_str` always carry byte offsets.
    span.byte_range().unwrap_or(0..0)
}

fn syntax(e: ScanError) -> LocateError {
    LocateError::Syntax {
        line: e.marker().line(),
        column: e.marker().col() + 1,
        message: e.info().to_owned(),
    }
}

/// A comment line that looks like a footer line (`# kubesec:…`, `# ksec:…`)
/// and is the first thing on its line.
struct FooterComment {
    /// Byte of the `#`.
    start: usize,
    /// Byte where its line starts.
    line_start: usize,
    /// 1-based line.
    line: usize,
    /// 0-based column of the `#`.
    column: usize,
}

struct Walker<'a> {
    text: &'a str,
    /// Which comment lines are format metadata.
    metadata: fn(&str) -> bool,
    parser: Parser<'a, StrInput<'a>>,
    peeked: Option<Ev<'a>>,
    /// End of the last content byte seen in the current document.
    content_end: usize,
    footer_lines: Vec<FooterComment>,
    /// Per nested Secret candidate: where the next content after it starts
    /// (its footer must end before), `usize::MAX` until known.
    limits: Vec<usize>,
    /// Candidates whose limit is the start of the next content event.
    pending_limits: Vec<usize>,
    /// Secret-shaped mappings found in the current document outside the
    /// places ksec handles Secrets.
    strays: Vec<Stray>,
    /// While a `data`/`stringData` mapping is read: the column of its key.
    section_column: Option<usize>,
    /// Lines of the comments inside that mapping.
    section_comments: Vec<usize>,
}

/// The keys of one `data`/`stringData` mapping read so far, to find
/// duplicates. The table holds entry numbers, not keys (5 bytes per key
/// where a set of keys took 25 and more: this is most of what locating a
/// 100,000-value Secret allocates besides its sites); a key is read back
/// from its site, or from `others` when its value was a problem.
#[derive(Default)]
struct SeenKeys<'a> {
    /// Indices into the document's sites, or into `others` with [`OTHER`] set.
    table: hashbrown::HashTable<u32>,
    hasher: std::hash::RandomState,
    /// Keys whose value became a problem instead of a site (rare).
    others: Vec<Cow<'a, str>>,
}

/// Marks an entry of [`SeenKeys::others`]. Sites are fewer than 2^31: a
/// located text is at most [`super::MAX_TEXT`] bytes and an entry takes
/// at least two (`a:` in a flow mapping).
const OTHER: u32 = 1 << 31;

impl<'a> SeenKeys<'a> {
    /// The key of entry `i`.
    fn key<'k>(
        others: &'k [Cow<'a, str>],
        text: &'k str,
        sites: &'k [ValueSite],
        i: u32,
    ) -> &'k str {
        if i & OTHER != 0 {
            &others[(i & !OTHER) as usize]
        } else {
            sites[i as usize].key(text)
        }
    }

    /// Whether `name` is the key of an entry read before.
    fn contains(&self, text: &str, sites: &[ValueSite], name: &str) -> bool {
        let hash = self.hasher.hash_one(name);
        self.table
            .find(hash, |&i| Self::key(&self.others, text, sites, i) == name)
            .is_some()
    }

    /// Records the last of `sites`.
    fn add_site(&mut self, text: &str, sites: &[ValueSite]) {
        let i = sites.len() - 1;
        self.add(text, sites, i as u32);
    }

    /// Records a key whose value was a problem.
    fn add_other(&mut self, text: &str, sites: &[ValueSite], name: Cow<'a, str>) {
        let i = self.others.len() as u32 | OTHER;
        self.others.push(name);
        self.add(text, sites, i);
    }

    fn add(&mut self, text: &str, sites: &[ValueSite], i: u32) {
        let Self {
            table,
            hasher,
            others,
        } = self;
        let hash = hasher.hash_one(Self::key(others, text, sites, i));
        table.insert_unique(hash, i, |&j| {
            hasher.hash_one(Self::key(others, text, sites, j))
        });
    }
}

/// Sites a document's list must hold before [`push_site`] estimates what
/// the rest of the text holds from their density.
const SITES_SAMPLED: usize = 1024;

/// Appends `site` to a document's `sites`. A list that is full and holds
/// [`SITES_SAMPLED`] sites or more doubles, as a `Vec` does, while the
/// rest of the text (`len` bytes in all) may hold as many sites again at
/// the density of those so far; once it holds fewer, the list grows to
/// them plus 1/16 (and at least 1/16) instead: one Secret of 100,000
/// values then ends at about 3.3 MB (32 bytes a site) instead of doubling
/// to 4.2 MB.
fn push_site(sites: &mut Vec<ValueSite>, site: ValueSite, len: usize) {
    let n = sites.len();
    if n == sites.capacity() && n >= SITES_SAMPLED {
        let (first, here) = (sites[0].range().start, site.range().end);
        let per_site = (here.saturating_sub(first) / n).max(1);
        let rest = len.saturating_sub(here) / per_site;
        let more = (rest + rest / 16 + 1).clamp(n / 16, n);
        sites.reserve_exact(more);
    }
    sites.push(site);
}

/// A key of a mapping: its text when it is a plain scalar, and where it is.
struct Key<'a> {
    text: Option<Cow<'a, str>>,
    span: Span,
    anchored_or_tagged: bool,
}

impl<'a> Walker<'a> {
    /// The next non-comment event. Footer comments are recorded on the way;
    /// content ends are tracked for footer placement.
    fn next(&mut self) -> Result<Ev<'a>, LocateError> {
        if let Some(ev) = self.peeked.take() {
            return Ok(ev);
        }
        loop {
            let (ev, span) = next_event(&mut self.parser)?;
            match &ev {
                Event::Comment(..) => {
                    let r = span_range(&span);
                    // Only spaces before the `#` on its line (checked on
                    // bytes: the column counts characters).
                    let col = span.start.col();
                    let bytes = self.text.as_bytes();
                    let line_start = r.start.saturating_sub(col);
                    let first_on_line = r.start >= col
                        && bytes[line_start..r.start].iter().all(|&b| b == b' ')
                        && (line_start == 0 || bytes[line_start - 1] == b'\n');
                    if first_on_line && (self.metadata)(line_at(self.text, r.start)) {
                        self.footer_lines.push(FooterComment {
                            start: r.start,
                            line_start,
                            line: span.start.line(),
                            column: col,
                        });
                    } else if self.section_column.is_some_and(|c| col > c) {
                        self.section_comments.push(span.start.line());
                    }
                    continue;
                }
                Event::Scalar(_, style, ..) => {
                    let r = span_range(&span);
                    let end = match style {
                        ScalarStyle::Literal | ScalarStyle::Folded => {
                            match trim_block_end(&self.text[r.clone()]) {
                                // An empty block ends with its header: its
                                // content span starts wherever the parser
                                // stopped looking (past blank lines, or at
                                // the end of a part of the stream).
                                0 => self.text[..r.start]
                                    .trim_end_matches([' ', '\t', '\r', '\n'])
                                    .len(),
                                n => r.start + n,
                            }
                        }
                        _ => r.end,
                    };
                    self.content_end = self.content_end.max(end);
                }
                Event::MappingEnd | Event::SequenceEnd | Event::Alias(_) => {
                    let r = span_range(&span);
                    if !r.is_empty() {
                        self.content_end = self.content_end.max(r.end);
                    }
                }
                _ => {}
            }
            if !self.pending_limits.is_empty()
                && matches!(
                    ev,
                    Event::Scalar(..)
                        | Event::MappingStart(..)
                        | Event::SequenceStart(..)
                        | Event::Alias(_)
                )
            {
                let at = span_range(&span).start;
                for slot in self.pending_limits.drain(..) {
                    self.limits[slot] = at;
                }
            }
            return Ok((ev, span));
        }
    }

    fn peek(&mut self) -> Result<&Ev<'a>, LocateError> {
        if self.peeked.is_none() {
            let ev = self.next()?;
            self.peeked = Some(ev);
        }
        Ok(self.peeked.as_ref().expect("just filled"))
    }

    /// Skips the rest of a node whose start event was already consumed.
    fn skip_after_start(&mut self, start: &Event<'a>) -> Result<(), LocateError> {
        if !matches!(start, Event::MappingStart(..) | Event::SequenceStart(..)) {
            return Ok(());
        }
        let mut depth = 1usize;
        while depth > 0 {
            let (ev, _) = self.next()?;
            match ev {
                Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
                Event::MappingEnd | Event::SequenceEnd => depth -= 1,
                _ => {}
            }
        }
        Ok(())
    }

    fn skip_node(&mut self) -> Result<(), LocateError> {
        let (ev, _) = self.next()?;
        self.skip_after_start(&ev)
    }

    /// Reads a mapping key. `None` at the end of the mapping.
    fn key(&mut self) -> Result<Option<Key<'a>>, LocateError> {
        let (ev, span) = self.next()?;
        match ev {
            Event::MappingEnd => Ok(None),
            Event::Scalar(text, _, anchor, tag) => Ok(Some(Key {
                text: Some(text),
                span,
                anchored_or_tagged: anchor != 0 || tag.is_some(),
            })),
            other => {
                let anchored = matches!(other, Event::Alias(_));
                self.skip_after_start(&other)?;
                Ok(Some(Key {
                    text: None,
                    span,
                    anchored_or_tagged: anchored,
                }))
            }
        }
    }

    /// Reads one document; the `DocumentStart` was consumed. Returns the
    /// document, where its content starts, and the Secrets in its items
    /// when it is a List.
    fn document(&mut self, index: usize) -> Result<(Document, usize, Vec<Candidate>), LocateError> {
        let (first, span) = self.peek().map(|(e, s)| (e.clone(), *s))?;
        let content_start = span_range(&span).start;
        let mut doc = new_document(index, Vec::new(), span.start.line());
        let mut nested = Vec::new();
        match first {
            Event::MappingStart(..) => {
                self.next()?;
                nested = self.object(&mut doc)?;
            }
            Event::DocumentEnd => {}
            _ => {
                let (ev, span) = self.next()?;
                self.scan_after_start(ev, &span, &mut Vec::new())?;
            }
        }
        doc.strays = std::mem::take(&mut self.strays);
        Ok((doc, content_start, nested))
    }

    /// Reads a mapping that may be a Kubernetes object; its `MappingStart`
    /// was consumed. Returns the Secrets of its `items` (and of the items of
    /// Lists among them) when it is a `List` or `*List`; otherwise those
    /// become strays.
    fn object(&mut self, doc: &mut Document) -> Result<Vec<Candidate>, LocateError> {
        let mut api_versions: Vec<Option<String>> = Vec::new();
        let mut kinds: Vec<Option<String>> = Vec::new();
        let mut candidates = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(key) = self.key()? {
            let Some(name) = key.text else {
                self.skip_node()?;
                continue;
            };
            if !seen.insert(name.to_string()) {
                doc.problems.push(Problem {
                    line: key.span.start.line(),
                    key: Some(name.to_string()),
                    message: format!("duplicate top-level key `{name}`"),
                    hint: Some(
                        "remove one of them; YAML readers disagree about which one wins".into(),
                    ),
                });
            }
            match &*name {
                "apiVersion" => api_versions.push(self.scalar_value()?),
                "kind" => kinds.push(self.scalar_value()?),
                "type" => doc.secret_type = self.scalar_value()?,
                "metadata" => self.metadata(doc)?,
                "data" => self.section(doc, Section::Data, &key.span)?,
                "stringData" => self.section(doc, Section::StringData, &key.span)?,
                "items" => candidates = self.items(doc)?,
                other => {
                    let mut path = prefixed(doc, other);
                    self.scan_node(&mut path)?;
                }
            }
        }
        doc.kind = kinds.last().cloned().flatten();
        let secret_kind = |k: &Option<String>| k.as_deref() == Some("Secret");
        doc.is_secret = api_versions.last().cloned().flatten().as_deref() == Some("v1")
            && secret_kind(&kinds.last().cloned().flatten());
        // Two `kind` (or `apiVersion`) lines: a Secret in either order, so
        // that the duplicate is refused rather than the values passed on.
        if (kinds.len() > 1 || api_versions.len() > 1) && kinds.iter().any(secret_kind) {
            doc.is_secret = true;
        }
        if is_list_kind(doc.kind.as_deref()) {
            return Ok(candidates);
        }
        for c in candidates {
            self.strays.push(stray_of(self.text, &c.doc));
        }
        Ok(Vec::new())
    }

    /// Reads the value of an `items` key: each mapping in it is read as an
    /// object; Secrets (and the Secrets of nested Lists) are returned.
    fn items(&mut self, parent: &Document) -> Result<Vec<Candidate>, LocateError> {
        let (ev, span) = self.next()?;
        let Event::SequenceStart(style, ..) = ev else {
            let mut path = prefixed(parent, "items");
            self.scan_after_start(ev, &span, &mut path)?;
            return Ok(Vec::new());
        };
        let flow = style == granit_parser::StructureStyle::Flow;
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            let (ev, span) = self.next()?;
            match ev {
                Event::SequenceEnd => break,
                Event::MappingStart(..) => {
                    let mut item = parent.item.clone();
                    item.push(i);
                    let mut doc = new_document(parent.index, item, span.start.line());
                    let nested = self.object(&mut doc)?;
                    let shaped = doc.is_secret || doc.kind.as_deref() == Some("Secret");
                    if shaped {
                        if flow {
                            doc.problems.insert(
                                0,
                                Problem {
                                    line: doc.line,
                                    key: None,
                                    message: "a Secret in a flow-style (JSON) list of items cannot carry ksec's footer lines".into(),
                                    hint: Some(
                                        "write the List in block style (`kubectl get secrets -o yaml`), or give each Secret a document of its own".into(),
                                    ),
                                },
                            );
                        }
                        let slot = self.limits.len();
                        self.limits.push(usize::MAX);
                        self.pending_limits.push(slot);
                        out.push(Candidate {
                            doc,
                            column: span.start.col(),
                            content_end: self.content_end,
                            slot,
                        });
                    }
                    out.extend(nested);
                }
                other => {
                    let mut path = prefixed(parent, &format!("items[{i}]"));
                    self.scan_after_start(other, &span, &mut path)?;
                }
            }
            i += 1;
        }
        Ok(out)
    }

    /// Skips a node, noting the Secret-shaped mappings inside it as strays.
    fn scan_node(&mut self, path: &mut Vec<String>) -> Result<(), LocateError> {
        let (ev, span) = self.next()?;
        self.scan_after_start(ev, &span, path)
    }

    /// [`Walker::scan_node`] for a node whose start event was consumed.
    /// `path` names where the node is (for messages).
    fn scan_after_start(
        &mut self,
        ev: Event<'a>,
        span: &Span,
        path: &mut Vec<String>,
    ) -> Result<(), LocateError> {
        match ev {
            Event::MappingStart(..) => {
                let mut kind = None;
                let mut name = None;
                let mut values = Vec::new();
                while let Some(key) = self.key()? {
                    let Some(k) = key.text else {
                        self.skip_node()?;
                        continue;
                    };
                    match &*k {
                        "kind" => {
                            let (ev, span) = self.next()?;
                            match ev {
                                Event::Scalar(text, ..) => kind = Some(text.into_owned()),
                                other => {
                                    path.push("kind".into());
                                    self.scan_after_start(other, &span, path)?;
                                    path.pop();
                                }
                            }
                        }
                        "metadata" => name = self.metadata_name()?,
                        "data" | "stringData" => self.stray_section(&k, &mut values, path)?,
                        other => {
                            path.push(other.to_owned());
                            self.scan_node(path)?;
                            path.pop();
                        }
                    }
                }
                if kind
                    .as_deref()
                    .is_some_and(|k| k.eq_ignore_ascii_case("secret"))
                    && !values.is_empty()
                {
                    self.strays.push(Stray {
                        line: span.start.line(),
                        path: dotted(path),
                        name,
                        values,
                    });
                }
            }
            Event::SequenceStart(..) => {
                let mut i = 0;
                loop {
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    path.push(format!("[{i}]"));
                    self.scan_after_start(ev, &span, path)?;
                    path.pop();
                    i += 1;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The scalar values of a stray's `data`/`stringData` mapping.
    fn stray_section(
        &mut self,
        section: &str,
        values: &mut Vec<StrayValue>,
        path: &mut Vec<String>,
    ) -> Result<(), LocateError> {
        let (ev, span) = self.next()?;
        if !matches!(ev, Event::MappingStart(..)) {
            path.push(section.to_owned());
            self.scan_after_start(ev, &span, path)?;
            path.pop();
            return Ok(());
        }
        while let Some(key) = self.key()? {
            let label = format!("{section}.{}", key.text.as_deref().unwrap_or("?"));
            let (ev, span) = self.next()?;
            match ev {
                Event::Scalar(value, ..) => values.push(StrayValue {
                    line: span.start.line(),
                    label,
                    value: value.into_owned(),
                }),
                other => {
                    path.push(label);
                    self.scan_after_start(other, &span, path)?;
                    path.pop();
                }
            }
        }
        Ok(())
    }

    /// `metadata.name` of a mapping being scanned.
    fn metadata_name(&mut self) -> Result<Option<String>, LocateError> {
        let (ev, _) = self.next()?;
        if !matches!(ev, Event::MappingStart(..)) {
            self.skip_after_start(&ev)?;
            return Ok(None);
        }
        let mut name = None;
        while let Some(key) = self.key()? {
            match key.text.as_deref() {
                Some("name") => name = self.scalar_value()?,
                _ => self.skip_node()?,
            }
        }
        Ok(name)
    }

    /// The value of a key when it is a scalar; other nodes are skipped.
    fn scalar_value(&mut self) -> Result<Option<String>, LocateError> {
        let (ev, _) = self.next()?;
        match ev {
            Event::Scalar(text, ..) => Ok(Some(text.into_owned())),
            other => {
                self.skip_after_start(&other)?;
                Ok(None)
            }
        }
    }

    fn metadata(&mut self, doc: &mut Document) -> Result<(), LocateError> {
        let (ev, _) = self.next()?;
        if !matches!(ev, Event::MappingStart(..)) {
            return self.skip_after_start(&ev);
        }
        while let Some(key) = self.key()? {
            match key.text.as_deref() {
                Some("name") => doc.name = self.scalar_value()?,
                Some("namespace") => doc.namespace = self.scalar_value()?,
                Some("annotations") => self.annotations(doc)?,
                _ => self.skip_node()?,
            }
        }
        Ok(())
    }

    /// Notes annotations that hold a clear copy of the object.
    fn annotations(&mut self, doc: &mut Document) -> Result<(), LocateError> {
        let (ev, _) = self.next()?;
        if !matches!(ev, Event::MappingStart(..)) {
            return self.skip_after_start(&ev);
        }
        while let Some(key) = self.key()? {
            if key.text.as_deref() == Some(LAST_APPLIED) {
                doc.last_applied_line = Some(key.span.start.line());
            }
            self.skip_node()?;
        }
        Ok(())
    }

    /// Reads the value of a `data`/`stringData` key: every entry becomes a
    /// [`ValueSite`] or a [`Problem`].
    fn section(
        &mut self,
        doc: &mut Document,
        section: Section,
        section_key: &Span,
    ) -> Result<(), LocateError> {
        let Some(flow) = self.section_start(doc, section)? else {
            return Ok(());
        };
        self.section_column = Some(section_key.start.col());
        let read = self.section_entries(doc, section, section_key, flow);
        self.section_column = None;
        doc.section_comments.append(&mut self.section_comments);
        read
    }

    /// The entries of a section whose mapping has started.
    fn section_entries(
        &mut self,
        doc: &mut Document,
        section: Section,
        section_key: &Span,
        flow: bool,
    ) -> Result<(), LocateError> {
        let mut seen = SeenKeys::default();
        let step = {
            // Indentation step of this file, for literal blocks we write.
            let c = self.peek()?.1.start.col();
            c.saturating_sub(section_key.start.col()).max(1)
        };
        let sname = section.as_str();
        while let Some(key) = self.key()? {
            let line = key.span.start.line();
            let Some(name) = key.text.clone() else {
                doc.problems.push(problem(
                    line,
                    None,
                    format!("`{sname}` has a key that is not a string"),
                    None,
                ));
                self.skip_node()?;
                continue;
            };
            // Labels are made only for problems: most values have none.
            let label = || format!("{sname}.{name}");
            if key.anchored_or_tagged {
                doc.problems.push(problem(
                    line,
                    Some(label()),
                    "the key carries an anchor or tag".into(),
                    None,
                ));
            }
            if seen.contains(self.text, &doc.sites, &name) {
                doc.problems.push(problem(
                    line,
                    Some(label()),
                    "duplicate key".into(),
                    Some("remove one of them; otherwise one copy could stay in clear text"),
                ));
            }
            let entry = Entry {
                section,
                name: name.clone(),
                key: &key,
                flow,
                indent: key.span.start.col() + step,
            };
            match self.value_site(entry)? {
                Ok(site) => {
                    push_site(&mut doc.sites, site, self.text.len());
                    seen.add_site(self.text, &doc.sites);
                }
                Err(p) => {
                    doc.problems.push(p);
                    seen.add_other(self.text, &doc.sites, name);
                }
            }
        }
        Ok(())
    }

    /// The start of a section's value: `Some(flow style)` for a mapping,
    /// `None` (nothing to read) for a null or for anything else, which is a
    /// problem.
    fn section_start(
        &mut self,
        doc: &mut Document,
        section: Section,
    ) -> Result<Option<bool>, LocateError> {
        let sname = section.as_str();
        let (ev, span) = self.next()?;
        match &ev {
            Event::MappingStart(style, anchor, tag) => {
                if *anchor != 0
                    || tag
                        .as_ref()
                        .is_some_and(|t| !t.is_yaml_core_schema_tag("map"))
                {
                    doc.problems.push(problem(
                        span.start.line(),
                        None,
                        format!("`{sname}` carries an anchor or tag"),
                        Some("remove it: an alias elsewhere would point at ciphertext"),
                    ));
                }
                Ok(Some(*style == granit_parser::StructureStyle::Flow))
            }
            // `data:` with nothing after it, or `data: null`: an empty section.
            Event::Scalar(text, ScalarStyle::Plain, 0, None)
                if matches!(&**text, "~" | "null" | "Null" | "NULL") =>
            {
                Ok(None)
            }
            other => {
                doc.problems.push(problem(
                    span.start.line(),
                    None,
                    format!("`{sname}` must be a mapping of strings"),
                    None,
                ));
                self.skip_after_start(other)?;
                Ok(None)
            }
        }
    }

    /// Reads one entry's value: a site for a plain string value, a problem
    /// for anything ksec will not encrypt (anchors, tags, aliases, nulls,
    /// non-strings, collections).
    fn value_site(&mut self, e: Entry<'_, 'a>) -> Result<Result<ValueSite, Problem>, LocateError> {
        let (ev, vspan) = self.next()?;
        let vline = vspan.start.line();
        let refuse = |message: String, hint: Option<&str>| {
            let label = format!("{}.{}", e.section.as_str(), e.name);
            Ok(Err(problem(vline, Some(label), message, hint)))
        };
        let (value, style, anchor, tag) = match ev {
            Event::Scalar(value, style, anchor, tag) => (value, style, anchor, tag),
            Event::Alias(_) => {
                return refuse(
                    "the value is an alias".into(),
                    Some("write the value itself: an alias would silently point at ciphertext"),
                );
            }
            other => {
                self.skip_after_start(&other)?;
                return refuse("the value is not a scalar string".into(), None);
            }
        };
        let binary = tag.as_ref().is_some_and(|t| {
            t.suffix_in_namespace("tag:yaml.org,2002:").as_deref() == Some("binary")
        });
        if anchor != 0 || (tag.is_some() && !(binary && e.section == Section::Data)) {
            return refuse(
                "the value carries an anchor or tag".into(),
                Some("remove it: ksec encrypts plain string values only"),
            );
        }
        let r = span_range(&vspan);
        if style == ScalarStyle::Plain && r.is_empty() {
            return refuse(
                "the value is empty (null)".into(),
                Some("write \"\" for an empty value"),
            );
        }
        if style == ScalarStyle::Plain && super::scalar::resolves_to_non_string(&value) {
            return refuse(
                format!(
                    "the value `{}` is not a string to YAML",
                    if value.len() <= 12 { &*value } else { "…" }
                ),
                Some("quote it, e.g. \"1234\": Kubernetes accepts only strings here"),
            );
        }
        let (range, header_comment) = match style {
            ScalarStyle::Literal | ScalarStyle::Folded => {
                self.block_scalar_range(e.key.span.byte_range().map_or(0, |k| k.end), &r)
            }
            _ => (r, None),
        };
        // An empty block is all header: its line is the header's, not the
        // line its (empty) content span starts on, which is the next line
        // of the stream, or of a part of it (a document that ends there).
        let vline = match (style, e.key.span.byte_range()) {
            (ScalarStyle::Literal | ScalarStyle::Folded, Some(k))
                if !self.text[range.clone()].contains('\n') =>
            {
                e.key.span.start.line() + self.text[k.end..range.start].matches('\n').count()
            }
            _ => vline,
        };
        // A `!!binary` tag goes with the value it describes.
        let range = match vspan.tag_start().and_then(|m| m.byte_offset()) {
            Some(t) if binary && t < range.start => t..range.end,
            _ => range,
        };
        Ok(Ok(ValueSite::new(
            self.text,
            SiteParts {
                section: e.section,
                key: e.name,
                value,
                line: vline,
                flow: e.flow,
                binary,
                header_comment,
                indent: scalar::block_indent(self.text, range.end, e.indent),
                line_rest_empty: rest_of_line_empty(self.text, range.end),
                trailing_comment: trailing_comment(self.text, range.end),
                range,
            },
        )))
    }

    /// A block scalar's span covers its content only, and runs into the
    /// following blank lines. The range to replace starts at the `|`/`>`
    /// indicator and ends at the last content character. A comment on the
    /// header line is returned so that it can be kept.
    fn block_scalar_range(
        &self,
        key_end: usize,
        content: &Range<usize>,
    ) -> (Range<usize>, Option<String>) {
        let bytes = self.text.as_bytes();
        let mut i = key_end;
        while i < content.start && bytes[i] != b'|' && bytes[i] != b'>' {
            i += 1;
        }
        let header = line_at(self.text, i);
        // The comment keeps the white space before it, so that writing it
        // back after a token (and later after a block header) is exact.
        let (indicator, comment) = match header.find(" #").or_else(|| header.find("\t#")) {
            Some(c) => {
                let start = header[..c].trim_end_matches([' ', '\t']).len();
                (&header[..start], Some(header[start..].to_owned()))
            }
            None => (header.trim_end_matches([' ', '\t']), None),
        };
        let end = match trim_block_end(&self.text[content.clone()]) {
            // An empty block: its span may start on the next line, which
            // is not the value's to replace (nor the line break before
            // it). The header goes, its comment included: it is written
            // back after the token.
            0 => i + indicator.len() + comment.as_ref().map_or(0, String::len),
            n => (content.start + n).max(i + indicator.trim_end().len()),
        };
        (i..end, comment)
    }
}

/// One entry of a section being read.
struct Entry<'k, 'a> {
    section: Section,
    name: Cow<'a, str>,
    key: &'k Key<'a>,
    flow: bool,
    /// Indentation for literal block content written here.
    indent: usize,
}

/// A problem with a line, a key and an optional hint.
fn problem(line: usize, key: Option<String>, message: String, hint: Option<&str>) -> Problem {
    Problem {
        line,
        key,
        message,
        hint: hint.map(str::to_owned),
    }
}

/// An empty document record.
fn new_document(index: usize, item: Vec<usize>, line: usize) -> Document {
    Document {
        index,
        item,
        position: 0,
        line,
        kind: None,
        name: None,
        namespace: None,
        secret_type: None,
        last_applied_line: None,
        is_secret: false,
        sites: Vec::new(),
        problems: Vec::new(),
        footer: None,
        footer_insert: 0,
        footer_indent: 0,
        newline: "\n",
        strays: Vec::new(),
        section_comments: Vec::new(),
    }
}

/// `List` and the typed lists (`SecretList`, `ConfigMapList`, …) that
/// `kubectl get -o yaml` and the API server produce.
fn is_list_kind(kind: Option<&str>) -> bool {
    kind.is_some_and(|k| k.ends_with("List"))
}

/// A Secret found in the items of something that is not a List.
fn stray_of(text: &str, doc: &Document) -> Stray {
    Stray {
        line: doc.line,
        path: doc.item_path(),
        name: doc.name.clone(),
        values: doc
            .sites
            .iter()
            .map(|s| StrayValue {
                line: s.line(),
                label: s.label(text),
                value: s.value(text).to_owned(),
            })
            .collect(),
    }
}

/// The path of `key` in `doc` (which may be a nested document).
fn prefixed(doc: &Document, key: &str) -> Vec<String> {
    if doc.item.is_empty() {
        vec![key.to_owned()]
    } else {
        vec![doc.item_path(), key.to_owned()]
    }
}

/// `spec.objects[0]` from `["spec", "objects", "[0]"]`.
fn dotted(path: &[String]) -> String {
    let mut s = String::new();
    for p in path {
        if !s.is_empty() && !p.starts_with('[') {
            s.push('.');
        }
        s.push_str(p);
    }
    s
}

/// Length of a block scalar's span without trailing whitespace and line breaks.
pub(super) fn trim_block_end(s: &str) -> usize {
    s.trim_end_matches([' ', '\t', '\r', '\n']).len()
}

/// A comment that is all that follows `at` on its line: its bytes, with the
/// white space before it, without the line break.
fn trailing_comment(text: &str, at: usize) -> Option<Range<usize>> {
    let line = line_at(text, at);
    let body = line.trim_start_matches([' ', '\t']);
    let spaced = body.len() < line.len();
    (spaced && body.starts_with('#')).then(|| at..at + line.len())
}

/// The line starting at `start`, without its line break. YAML reads a
/// carriage return as a line break, alone or before a line feed, so a
/// line ends at either: a comment never runs past a bare CR into what the
/// parser reads as the next line.
fn line_at(text: &str, start: usize) -> &str {
    let rest = &text[start..];
    &rest[..memchr::memchr2(b'\r', b'\n', rest.as_bytes()).unwrap_or(rest.len())]
}

/// Gives each document the footer lines that follow its content (and come
/// before the next document), each nested Secret the lines at its column
/// right after it, and finds where new footers go. A footer line that no
/// document claims is an error: it would otherwise pass on unnoticed.
fn assign_footers(
    text: &str,
    docs: &mut [Located],
    lines: &[FooterComment],
) -> Result<(), LocateError> {
    let mut claimed = vec![false; lines.len()];
    let region_end = region_ends(text, docs);
    let mut li = 0;
    let mut newline = "\n";
    for (i, located) in docs.iter_mut().enumerate() {
        let next_start = region_end[i];
        let (column, from, until, top) = match located.bounds {
            Bounds::Top {
                content_start,
                content_end,
                ..
            } => {
                newline = newline_of(text, content_start);
                (0, content_end, next_start, true)
            }
            Bounds::Item {
                column,
                content_end,
                limit,
            } => (column, content_end, limit.min(next_start), false),
        };
        let doc = &mut located.doc;
        doc.newline = newline;
        doc.footer_indent = column;
        let insert = match text[from..].find('\n') {
            Some(off) => from + off + 1,
            None => text.len(),
        };
        doc.footer_insert = insert.min(until.max(from));
        let mine = if top {
            claim_top(lines, &mut li, &mut claimed, from, next_start)?
        } else {
            claim_item(lines, &mut claimed, column, from, until)
        };
        doc.footer = footer_block(text, &mine)?;
    }
    match lines.iter().zip(&claimed).find(|(_, c)| !**c) {
        None => Ok(()),
        Some((fl, _)) => Err(LocateError::Footer {
            line: fl.line,
            message: if fl.column == 0 {
                "a ksec/kubesec footer line does not follow any document".into()
            } else {
                "a ksec/kubesec footer line that belongs to no Secret: footer lines go right after a Secret's content (for a Secret in a List's items, at the item's indentation)".into()
            },
        }),
    }
}

/// Where each document's region ends: the start of the next top-level
/// document (its `---` marker, or its content), or the end of the text.
/// Nested documents share their top-level document's region.
fn region_ends(text: &str, docs: &[Located]) -> Vec<usize> {
    let tops: Vec<usize> = (0..docs.len())
        .filter(|&i| matches!(docs[i].bounds, Bounds::Top { .. }))
        .collect();
    let mut region_end = vec![text.len(); docs.len()];
    for (n, &i) in tops.iter().enumerate() {
        let next = tops
            .get(n + 1)
            .map_or(text.len(), |&j| match docs[j].bounds {
                Bounds::Top {
                    marker,
                    content_start,
                    ..
                } => marker.unwrap_or(content_start),
                Bounds::Item { .. } => unreachable!("tops holds top-level documents"),
            });
        let last = tops.get(n + 1).copied().unwrap_or(docs.len());
        for r in &mut region_end[i..last] {
            *r = next;
        }
    }
    region_end
}

/// The column-0 footer lines of a top-level document's region (lines are
/// visited in order, `li` onward); one inside its content is an error.
fn claim_top<'l>(
    lines: &'l [FooterComment],
    li: &mut usize,
    claimed: &mut [bool],
    content_end: usize,
    region_end: usize,
) -> Result<Vec<&'l FooterComment>, LocateError> {
    let mut mine = Vec::new();
    while *li < lines.len() && lines[*li].start < region_end {
        let fl = &lines[*li];
        if fl.column == 0 {
            if fl.start < content_end {
                return Err(LocateError::Footer {
                    line: fl.line,
                    message: "a ksec/kubesec footer line sits inside a document's content; footer lines go after it".into(),
                });
            }
            mine.push(fl);
            claimed[*li] = true;
        }
        *li += 1;
    }
    Ok(mine)
}

/// The footer lines of a nested Secret: at its column, after its content,
/// before the next content.
fn claim_item<'l>(
    lines: &'l [FooterComment],
    claimed: &mut [bool],
    column: usize,
    from: usize,
    until: usize,
) -> Vec<&'l FooterComment> {
    let mut mine = Vec::new();
    let first = lines.partition_point(|l| l.start < from);
    for (j, fl) in lines.iter().enumerate().skip(first) {
        if fl.start >= until {
            break;
        }
        if !claimed[j] && fl.column == column {
            mine.push(fl);
            claimed[j] = true;
        }
    }
    mine
}

/// The footer block of claimed lines, which must be consecutive.
fn footer_block(text: &str, mine: &[&FooterComment]) -> Result<Option<FooterBlock>, LocateError> {
    let (Some(first), Some(last)) = (mine.first(), mine.last()) else {
        return Ok(None);
    };
    if last.line - first.line + 1 != mine.len() {
        return Err(LocateError::Footer {
            line: first.line,
            message: "the footer lines of a document must be consecutive lines".into(),
        });
    }
    let last_text = line_at(text, last.start);
    let mut end = last.start + last_text.len();
    if text[end..].starts_with("\r\n") {
        end += 2;
    } else if text[end..].starts_with('\n') {
        end += 1;
    }
    Ok(Some(FooterBlock {
        range: first.line_start..end,
        lines: mine
            .iter()
            .map(|l| line_at(text, l.start).to_owned())
            .collect(),
        line: first.line,
    }))
}

fn newline_of(text: &str, from: usize) -> &'static str {
    match text[from..].find('\n') {
        Some(i) if i > 0 && text.as_bytes()[from + i - 1] == b'\r' => "\r\n",
        _ => "\n",
    }
}

#[cfg(test)]
mod tests {
    use super::{
        SITES_SAMPLED, count_documents, locate_in_parts, locate_whole, push_site, splittable,
    };

    /// A Secret whose `data` holds `entries` (each a line's text after its
    /// indentation), at `indent` spaces.
    fn secret(indent: usize, entries: &[String]) -> String {
        let pad = " ".repeat(indent);
        let mut t = String::from("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n");
        for e in entries {
            t.push_str(&format!("{pad}{e}\n"));
        }
        t
    }

    /// Keys longer than 65,535 bytes, indentation and comments longer than
    /// 255, tags and quotes around values: what does not fit a site's
    /// narrow fields reads back exactly as what does.
    #[test]
    fn sites_that_do_not_fit_their_narrow_fields_read_as_written() {
        let long_key = "k".repeat(70_000);
        let comment = format!("# {}", "c".repeat(300));
        // A key longer than 1,024 bytes must be explicit (`? key`).
        let entries = [
            format!("? {long_key}"),
            ": dmFs".to_owned(),
            format!("b: dmFs {comment}"),
            "c: !!binary dmFs".to_owned(),
            "d: \"dmFs\"".to_owned(),
            "e: 'dmFs'".to_owned(),
            "f: \"d\\u006dFs\"".to_owned(),
        ];
        let read = |indent: usize| {
            let text = secret(indent, &entries);
            let docs = locate_whole(&text, |_| false).unwrap();
            docs[0]
                .sites
                .iter()
                .map(|s| {
                    let comment = s.trailing_comment().map(|r| text[r].trim().to_owned());
                    (
                        s.key(&text).to_owned(),
                        s.value(&text).to_owned(),
                        s.indent(),
                        comment,
                    )
                })
                .collect::<Vec<_>>()
        };
        let (narrow, wide) = (read(2), read(300));
        assert_eq!(narrow.len(), entries.len() - 1);
        for (i, ((nk, nv, ni, nc), (wk, wv, wi, wc))) in narrow.iter().zip(&wide).enumerate() {
            assert_eq!((nk, nv, nc), (wk, wv, wc), "entry {i}");
            // 298 more columns, and as many more for literal blocks' step.
            assert_eq!(wi - ni, 2 * 298, "entry {i}");
            assert!(*wi > 255, "entry {i}");
            assert_eq!(nv, "dmFs", "entry {i}");
        }
        assert_eq!(narrow[0].0, long_key);
        assert_eq!(narrow[1].3.as_deref(), Some(comment.as_str()));
        assert_eq!(wide[1].3.as_deref(), Some(comment.as_str()));
        assert!(
            narrow
                .iter()
                .enumerate()
                .all(|(i, e)| i == 1 || e.3.is_none())
        );
    }

    /// A full list of sites grows in one step to about what the rest of
    /// the text holds, never more than doubling.
    #[test]
    fn a_long_list_of_sites_grows_to_what_the_text_holds() {
        let n = 5000;
        let entries: Vec<String> = (0..n).map(|i| format!("k{i:05}: dmFs")).collect();
        let text = secret(2, &entries);
        let sites = locate_whole(&text, |_| false).unwrap().remove(0).sites;
        // Capacities past SITES_SAMPLED as sites are pushed, with the text's
        // length and with a text a hundred times as long (other documents).
        let steps = |len: usize| {
            let mut grown = Vec::new();
            let mut caps: Vec<usize> = Vec::new();
            for s in sites.iter().cloned() {
                push_site(&mut grown, s, len);
                if caps.last() != Some(&grown.capacity()) {
                    caps.push(grown.capacity());
                }
            }
            assert_eq!(grown.len(), n);
            caps.into_iter()
                .filter(|&c| c > SITES_SAMPLED)
                .collect::<Vec<_>>()
        };
        // Doubling while the rest holds as many again, then one step to
        // what it holds.
        let last = steps(text.len());
        assert_eq!(
            last[..2],
            [2 * SITES_SAMPLED, 4 * SITES_SAMPLED],
            "{last:?}"
        );
        assert_eq!(last.len(), 3, "{last:?}");
        assert!(last[2] >= n && last[2] <= n + n / 8, "{last:?}");
        // With more text after, a Vec's doubling.
        let doubling = steps(text.len() * 100);
        assert_eq!(doubling, [2048, 4096, 8192], "{doubling:?}");
    }

    /// Every stream of testdata/, alone and all joined, read in parts cut
    /// at each `---` line (one cut at a time, and all at once), reads as it
    /// reads whole: same documents, positions, lines, values, footers and
    /// problems, or the same error.
    #[test]
    fn parts_read_as_the_whole() {
        let mut files = Vec::new();
        let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                    files.push(std::fs::read_to_string(&p).unwrap_or_default());
                }
            }
        }
        files.sort();
        let meta = crate::formats::is_metadata_comment;
        let joined = files
            .iter()
            .filter(|t| splittable(t) && locate_whole(t, meta).is_ok())
            // A byte order mark belongs at the start of the stream only.
            .map(|t| t.trim_start_matches('\u{feff}'))
            .collect::<Vec<_>>()
            .join("\n---\n");
        assert!(
            locate_whole(&joined, meta).is_ok_and(|d| d.len() > 100),
            "the joined streams must read"
        );
        let mut compared = 0;
        for text in files.iter().chain([&joined]) {
            if !splittable(text) {
                continue;
            }
            let whole = format!("{:?}", locate_whole(text, meta));
            let cuts: Vec<usize> = text.match_indices("\n---\n").map(|(i, _)| i + 1).collect();
            for &c in &cuts {
                assert_eq!(format!("{:?}", locate_in_parts(text, meta, &[c])), whole);
                compared += 1;
            }
            if !cuts.is_empty() {
                assert_eq!(format!("{:?}", locate_in_parts(text, meta, &cuts)), whole);
            }
        }
        assert!(compared > 50, "only {compared} cuts compared");
    }

    /// The `(line, key)` of each duplicate-key problem of the one document.
    fn duplicates(text: &str) -> Vec<(usize, String)> {
        let docs = locate_whole(text, crate::formats::is_metadata_comment).unwrap();
        docs[0]
            .problems
            .iter()
            .filter(|p| p.message == "duplicate key")
            .map(|p| (p.line, p.key.clone().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn duplicate_keys_are_found_however_they_are_written() {
        let head = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n";
        let dup = |line: usize, key: &str| (line, key.to_owned());
        // Plain, quoted and escaped spellings of one key; the same key in
        // the other section is not a duplicate.
        let text = format!(
            "{head}data:\n  a: YQ==\n  b: Yg==\n  \"a\": Yw==\n  \"\\x62\": ZA==\nstringData:\n  a: x\n"
        );
        assert_eq!(duplicates(&text), [dup(7, "data.a"), dup(8, "data.b")]);
        // Keys whose value is a problem (an alias, a null, a mapping) count,
        // before and after.
        let text = format!(
            "{head}stringData:\n  a: &x v\n  b: *x\n  b: w\n  c: ~\n  c: y\n  d: {{e: 1}}\n  a: z\n  d: q\n"
        );
        assert_eq!(
            duplicates(&text),
            [
                dup(7, "stringData.b"),
                dup(9, "stringData.c"),
                dup(11, "stringData.a"),
                dup(12, "stringData.d")
            ]
        );
        // Many keys (the table grows and rehashes from the sites): each
        // repeat of an earlier key is found, no other key is.
        let mut text = format!("{head}data:\n");
        for i in 0..5000 {
            text.push_str(&format!("  k{i}: YQ==\n"));
        }
        for i in [4999, 0, 2500] {
            text.push_str(&format!("  k{i}: Yg==\n"));
        }
        assert_eq!(
            duplicates(&text),
            [
                dup(5005, "data.k4999"),
                dup(5006, "data.k0"),
                dup(5007, "data.k2500")
            ]
        );
    }

    #[test]
    fn counts_documents_with_content() {
        assert_eq!(count_documents("").unwrap(), 0);
        assert_eq!(count_documents("# only a comment\n").unwrap(), 0);
        assert_eq!(count_documents("---\n---\na: 1\n").unwrap(), 1);
        assert_eq!(count_documents("a: 1\n...\nb: 2\n").unwrap(), 2);
        assert_eq!(count_documents("--- x\n--- [1]\n---\n# c\n").unwrap(), 2);
        assert!(count_documents("a: [\n").is_err());
    }
}
