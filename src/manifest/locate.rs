//! The event walk that finds Secret values, footers and problems.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::Range;

use granit_parser::{Event, Options, Parser, ScalarStyle, ScanError, Span, StrInput};

use super::{Document, FooterBlock, LocateError, Problem, Section, ValueSite};
use crate::envelope::footer::is_footer_line;

/// The annotation in which client-side `kubectl apply` keeps a copy of the
/// whole object, clear values included.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Nesting limit for block and flow collections; deeper input is an error.
const MAX_NESTING: usize = 128;

type Ev<'a> = (Event<'a>, Span);

/// Reads a YAML stream and returns its documents with the positions of every
/// Secret value and footer.
pub fn locate(text: &str) -> Result<Vec<Document>, LocateError> {
    let mut w = Walker {
        text,
        parser: parser(text),
        peeked: None,
        content_end: 0,
        footer_lines: Vec::new(),
    };
    let mut docs: Vec<(Document, DocBounds)> = Vec::new();
    loop {
        let (ev, span) = w.next()?;
        match ev {
            Event::StreamStart | Event::DocumentEnd => {}
            Event::StreamEnd => break,
            Event::DocumentStart(explicit, _) => {
                let marker = explicit.then(|| span_range(&span).start);
                w.content_end = 0;
                let (doc, content_start) = w.document(docs.len() + 1)?;
                let end = w.content_end.max(content_start);
                docs.push((
                    doc,
                    DocBounds {
                        marker,
                        content_start,
                        content_end: end,
                    },
                ));
            }
            _ => unreachable_event(&span)?,
        }
    }
    assign_footers(text, &mut docs, &w.footer_lines)?;
    Ok(docs.into_iter().map(|(d, _)| d).collect())
}

struct DocBounds {
    marker: Option<usize>,
    content_start: usize,
    content_end: usize,
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

struct FooterComment {
    start: usize,
    line: usize,
}

struct Walker<'a> {
    text: &'a str,
    parser: Parser<'a, StrInput<'a>>,
    peeked: Option<Ev<'a>>,
    /// End of the last content byte seen in the current document.
    content_end: usize,
    footer_lines: Vec<FooterComment>,
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
                    if span.start.col() == 0 {
                        let line = line_at(self.text, r.start);
                        if is_footer_line(line) {
                            self.footer_lines.push(FooterComment {
                                start: r.start,
                                line: span.start.line(),
                            });
                        }
                    }
                    continue;
                }
                Event::Scalar(_, style, ..) => {
                    let r = span_range(&span);
                    let end = match style {
                        ScalarStyle::Literal | ScalarStyle::Folded => {
                            r.start + trim_block_end(&self.text[r.clone()])
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
    /// document and where its content starts.
    fn document(&mut self, index: usize) -> Result<(Document, usize), LocateError> {
        let (first, span) = self.peek().map(|(e, s)| (e.clone(), *s))?;
        let content_start = span_range(&span).start;
        let mut doc = Document {
            index,
            line: span.start.line(),
            kind: None,
            name: None,
            namespace: None,
            last_applied_line: None,
            is_secret: false,
            sites: Vec::new(),
            problems: Vec::new(),
            footer: None,
            footer_insert: 0,
            newline: "\n",
        };
        match first {
            Event::MappingStart(..) => {
                self.next()?;
                self.root_mapping(&mut doc)?;
            }
            Event::DocumentEnd => {}
            _ => self.skip_node()?,
        }
        Ok((doc, content_start))
    }

    fn root_mapping(&mut self, doc: &mut Document) -> Result<(), LocateError> {
        let mut api_version = None;
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
                "apiVersion" => api_version = self.scalar_value()?,
                "kind" => doc.kind = self.scalar_value()?,
                "metadata" => self.metadata(doc)?,
                "data" => self.section(doc, Section::Data, &key.span)?,
                "stringData" => self.section(doc, Section::StringData, &key.span)?,
                _ => self.skip_node()?,
            }
        }
        doc.is_secret =
            api_version.as_deref() == Some("v1") && doc.kind.as_deref() == Some("Secret");
        Ok(())
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

    fn section(
        &mut self,
        doc: &mut Document,
        section: Section,
        section_key: &Span,
    ) -> Result<(), LocateError> {
        let sname = section.as_str();
        let (ev, span) = self.next()?;
        let problem =
            |line: usize, key: Option<String>, message: String, hint: Option<&str>| Problem {
                line,
                key,
                message,
                hint: hint.map(str::to_owned),
            };
        let flow = match &ev {
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
                *style == granit_parser::StructureStyle::Flow
            }
            // `data:` with nothing after it, or `data: null`: an empty section.
            Event::Scalar(text, ScalarStyle::Plain, 0, None)
                if matches!(&**text, "~" | "null" | "Null" | "NULL") =>
            {
                return Ok(());
            }
            other => {
                doc.problems.push(problem(
                    span.start.line(),
                    None,
                    format!("`{sname}` must be a mapping of strings"),
                    None,
                ));
                return self.skip_after_start(other);
            }
        };
        let mut seen: HashSet<Cow<'a, str>> = HashSet::new();
        let step = {
            // Indentation step of this file, for literal blocks we write.
            let c = self.peek()?.1.start.col();
            c.saturating_sub(section_key.start.col()).max(1)
        };
        while let Some(key) = self.key()? {
            let line = key.span.start.line();
            let Some(name) = key.text else {
                doc.problems.push(problem(
                    line,
                    None,
                    format!("`{sname}` has a key that is not a string"),
                    None,
                ));
                self.skip_node()?;
                continue;
            };
            // Built only when there is something to report.
            let label = || format!("{sname}.{name}");
            if key.anchored_or_tagged {
                doc.problems.push(problem(
                    line,
                    Some(label()),
                    "the key carries an anchor or tag".into(),
                    None,
                ));
            }
            if !seen.insert(name.clone()) {
                doc.problems.push(problem(
                    line,
                    Some(label()),
                    "duplicate key".into(),
                    Some("remove one of them; otherwise one copy could stay in clear text"),
                ));
            }
            let (ev, vspan) = self.next()?;
            let vline = vspan.start.line();
            match ev {
                Event::Scalar(value, style, anchor, tag) => {
                    let binary = tag.as_ref().is_some_and(|t| {
                        t.suffix_in_namespace("tag:yaml.org,2002:").as_deref() == Some("binary")
                    });
                    if anchor != 0 || (tag.is_some() && !(binary && section == Section::Data)) {
                        doc.problems.push(problem(
                            vline,
                            Some(label()),
                            "the value carries an anchor or tag".into(),
                            Some("remove it: ksec encrypts plain string values only"),
                        ));
                        continue;
                    }
                    let r = span_range(&vspan);
                    if style == ScalarStyle::Plain && r.is_empty() {
                        doc.problems.push(problem(
                            vline,
                            Some(label()),
                            "the value is empty (null)".into(),
                            Some("write \"\" for an empty value"),
                        ));
                        continue;
                    }
                    if style == ScalarStyle::Plain && super::scalar::resolves_to_non_string(&value)
                    {
                        doc.problems.push(problem(
                            vline,
                            Some(label()),
                            format!(
                                "the value `{}` is not a string to YAML",
                                if value.len() <= 12 { &*value } else { "…" }
                            ),
                            Some("quote it, e.g. \"1234\": Kubernetes accepts only strings here"),
                        ));
                        continue;
                    }
                    let (range, header_comment) = match style {
                        ScalarStyle::Literal | ScalarStyle::Folded => {
                            self.block_scalar_range(key.span.byte_range().map_or(0, |k| k.end), &r)
                        }
                        _ => (r, None),
                    };
                    // A `!!binary` tag goes with the value it describes.
                    let range = match vspan.tag_start().and_then(|m| m.byte_offset()) {
                        Some(t) if binary && t < range.start => t..range.end,
                        _ => range,
                    };
                    let line_rest_empty = rest_of_line_empty(self.text, range.end);
                    let trailing_comment = trailing_comment(self.text, range.end);
                    doc.sites.push(ValueSite {
                        section,
                        key: name.into_owned(),
                        value: value.into_owned(),
                        range,
                        line: vline,
                        flow,
                        binary,
                        header_comment,
                        indent: key.span.start.col() + step,
                        line_rest_empty,
                        trailing_comment,
                    });
                }
                Event::Alias(_) => doc.problems.push(problem(
                    vline,
                    Some(label()),
                    "the value is an alias".into(),
                    Some("write the value itself: an alias would silently point at ciphertext"),
                )),
                other => {
                    doc.problems.push(problem(
                        vline,
                        Some(label()),
                        "the value is not a scalar string".into(),
                        None,
                    ));
                    self.skip_after_start(&other)?;
                }
            }
        }
        Ok(())
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
        let header_end = self.text[i..].find('\n').map_or(self.text.len(), |n| i + n);
        let header = &self.text[i..header_end];
        // The comment keeps the white space before it, so that writing it
        // back after a token (and later after a block header) is exact.
        let (indicator, comment) = match header.find(" #").or_else(|| header.find("\t#")) {
            Some(c) => {
                let start = header[..c].trim_end_matches([' ', '\t']).len();
                let comment = &header[start..];
                let comment = comment.strip_suffix('\r').unwrap_or(comment);
                (&header[..start], Some(comment.to_owned()))
            }
            None => (header.trim_end_matches(['\r', ' ', '\t']), None),
        };
        let end = content.start + trim_block_end(&self.text[content.clone()]);
        let end = end.max(i + indicator.trim_end().len());
        (i..end, comment)
    }
}

/// Length of a block scalar's span without trailing whitespace and line breaks.
pub(super) fn trim_block_end(s: &str) -> usize {
    s.trim_end_matches([' ', '\t', '\r', '\n']).len()
}

/// A comment that is all that follows `at` on its line: its bytes, with the
/// white space before it, without the line break.
fn trailing_comment(text: &str, at: usize) -> Option<Range<usize>> {
    let rest = &text[at..];
    let line = &rest[..rest.find('\n').unwrap_or(rest.len())];
    let line = line.strip_suffix('\r').unwrap_or(line);
    let body = line.trim_start_matches([' ', '\t']);
    let spaced = body.len() < line.len();
    (spaced && body.starts_with('#')).then(|| at..at + line.len())
}

fn rest_of_line_empty(text: &str, at: usize) -> bool {
    text[at..]
        .bytes()
        .take_while(|&b| b != b'\n')
        .all(|b| b == b' ' || b == b'\t' || b == b'\r')
}

/// The line starting at `start`, without its line break.
fn line_at(text: &str, start: usize) -> &str {
    let rest = &text[start..];
    let end = rest.find('\n').unwrap_or(rest.len());
    rest[..end].strip_suffix('\r').unwrap_or(&rest[..end])
}

/// Gives each document the footer lines that follow its content (and come
/// before the next document), and finds where new footers go.
fn assign_footers(
    text: &str,
    docs: &mut [(Document, DocBounds)],
    lines: &[FooterComment],
) -> Result<(), LocateError> {
    let n = docs.len();
    let mut li = 0;
    for i in 0..n {
        let (content_start, content_end) = (docs[i].1.content_start, docs[i].1.content_end);
        let next_start = if i + 1 < n {
            let b = &docs[i + 1].1;
            b.marker.unwrap_or(b.content_start)
        } else {
            text.len()
        };
        let newline = newline_of(text, content_start);
        let insert = match text[content_end..].find('\n') {
            Some(off) => content_end + off + 1,
            None => text.len(),
        };
        let mut mine: Vec<&FooterComment> = Vec::new();
        while li < lines.len() && lines[li].start < next_start {
            let fl = &lines[li];
            if fl.start < content_end {
                return Err(LocateError::Footer {
                    line: fl.line,
                    message: "a ksec/kubesec footer line sits inside a document's content; footer lines go after it".into(),
                });
            }
            mine.push(fl);
            li += 1;
        }
        let doc = &mut docs[i].0;
        doc.newline = newline;
        doc.footer_insert = insert.min(next_start.max(content_end));
        if let (Some(first), Some(last)) = (mine.first(), mine.last()) {
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
            doc.footer = Some(FooterBlock {
                range: first.start..end,
                lines: mine
                    .iter()
                    .map(|l| line_at(text, l.start).to_owned())
                    .collect(),
                line: first.line,
            });
        }
    }
    if let Some(fl) = lines.get(li) {
        return Err(LocateError::Footer {
            line: fl.line,
            message: "a ksec/kubesec footer line does not follow any document".into(),
        });
    }
    Ok(())
}

fn newline_of(text: &str, from: usize) -> &'static str {
    match text[from..].find('\n') {
        Some(i) if i > 0 && text.as_bytes()[from + i - 1] == b'\r' => "\r\n",
        _ => "\n",
    }
}

#[cfg(test)]
mod tests {
    use super::count_documents;

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
