//! What kubectl needs from a stream, beyond valid YAML (each point was
//! checked against the real kubectl, see tests/integration/kubectl.rs):
//! documents split where kubectl splits them, and several files joined into
//! one stream that `kubectl apply -f -` reads as they were.
//!
//! kubectl cuts a stream only at lines that start with `---`; it ignores
//! `...` end markers and treats `--- {content}` as an error. A document
//! kubectl would merge into its neighbour (silently dropping it) is refused
//! by `decrypt`, and by `encrypt` and `check` for streams with Secrets, so
//! that what encrypts also deploys.

use zeroize::Zeroizing;

use crate::error::{Error, Exit, Location, Result};
use crate::manifest;

/// Checks that kubectl's reader will see every document where ksec does
/// (kubectl splits only at `---` lines). `file` names the input in messages.
///
/// `text` must parse as YAML (every caller checks a located stream): for
/// such a stream, when no line is a marker with content after it, an end
/// marker or a directive ([`splits_agree`]), kubectl and YAML split at the
/// same lines and nothing needs parsing again.
pub fn check_split(file: &str, text: &str) -> Result<()> {
    if splits_agree(text) {
        return Ok(());
    }
    let mut seen = 0usize;
    for (first_line, chunk) in chunks(text) {
        let objects = manifest::count_documents(chunk).map_err(|e| {
            let line = match &e {
                manifest::LocateError::Syntax { line, .. } if *line > 0 => first_line + line - 1,
                _ => first_line,
            };
            Error::new(
                Exit::Input,
                "kubectl-split",
                format!("kubectl would read the part of the stream from here to the next `---` line as a document of its own, and it is not valid YAML on its own ({e})"),
            )
            .at(Location::file(file).line(line))
            .hint("start each document with a line of its own that is `---`")
        })?;
        if objects > 1 {
            // Where the document kubectl would not see starts.
            let second = super::locate(chunk)
                .ok()
                .and_then(|docs| {
                    docs.iter()
                        .filter(|d| !d.is_nested())
                        .nth(1)
                        .map(|d| d.line)
                })
                .unwrap_or(1);
            let first_line = first_line + second - 1;
            return Err(Error::new(
                Exit::Input,
                "kubectl-split",
                format!(
                    "document {}: kubectl splits streams only at `---` lines and would not read this document \
(it follows a `...` marker or shares the `---` line)",
                    seen + 2
                ),
            )
            .at(Location::file(file).line(first_line))
            .hint("start each document with a line of its own that is `---`"));
        }
        seen += objects;
    }
    Ok(())
}

/// kubectl's document separator: a line that starts with `---` followed by
/// nothing but white space or a comment (k8s.io/apimachinery YAMLReader).
fn is_separator(line: &str) -> bool {
    line.strip_prefix("---")
        .map(str::trim)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('#'))
}

/// Whether kubectl and a YAML parser split a stream that parses as YAML
/// into the same documents, told from its lines alone: no line is a
/// document marker with content after it (`--- {…}`), an end marker
/// (`...`) or a directive (`%YAML`). Then a document starts only at the
/// start of the stream and at `---` lines, each of which kubectl cuts at
/// too (a YAML parser takes every `---` line as a marker, even inside a
/// block scalar, and refuses one inside a quoted or flow scalar), so each
/// of kubectl's parts is exactly one document, or none. Anything else is
/// decided by parsing each part ([`check_split`]'s slow path).
fn splits_agree(text: &str) -> bool {
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    body.split_inclusive('\n')
        .all(|line| match line.as_bytes().first() {
            Some(b'%') => false,
            Some(b'.') => !line.starts_with("..."),
            Some(b'-') => !line.starts_with("---") || is_separator(line),
            _ => true,
        })
}

/// The stream cut the way kubectl cuts it (separator lines dropped), each
/// part with the 1-based line it starts on.
fn chunks(text: &str) -> Vec<(usize, &str)> {
    let mut chunks = Vec::new();
    let (mut start, mut pos) = (0, 0);
    let (mut start_line, mut line_no) = (1, 1);
    for line in text.split_inclusive('\n') {
        line_no += 1;
        if is_separator(line) {
            chunks.push((start_line, &text[start..pos]));
            start = pos + line.len();
            start_line = line_no;
        }
        pos += line.len();
    }
    chunks.push((start_line, &text[start..]));
    chunks
}

/// Joins decrypted files into one stream for `kubectl apply -f -`: a byte
/// order mark only where the stream starts, every part ending with a line
/// break, and exactly one `---` line between parts (none added before a
/// part that starts with one, after comments and blank lines). Parts without
/// any document (empty files, only comments) are left out.
pub fn join(parts: &[&str]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(
        parts.iter().map(|p| p.len() + 5).sum(),
    ));
    for part in parts {
        let body = if out.is_empty() {
            *part
        } else {
            part.strip_prefix('\u{feff}').unwrap_or(part)
        };
        if !has_document(body) {
            continue;
        }
        if !out.is_empty() {
            if !out.ends_with('\n') {
                out.push('\n');
            }
            if !starts_with_separator(body) {
                out.push_str("---\n");
            }
        }
        out.push_str(body);
    }
    if !out.is_empty() && !out.ends_with('\n') && parts.len() > 1 {
        out.push('\n');
    }
    out
}

/// Whether a part has anything besides comments, blank lines and markers.
fn has_document(text: &str) -> bool {
    text.lines().any(|l| {
        let t = l.trim_start_matches('\u{feff}').trim();
        !(t.is_empty() || t.starts_with('#') || t == "---" || t == "...")
    })
}

/// Whether the first line that is not blank or a comment is a `---` line.
fn starts_with_separator(text: &str) -> bool {
    text.lines()
        .map(str::trim_end)
        .find(|l| !(l.trim().is_empty() || l.starts_with('#')))
        .is_some_and(is_separator)
}

#[cfg(test)]
mod tests {
    use super::{check_split, chunks, splits_agree};

    #[test]
    fn lines_alone_decide_common_streams() {
        assert!(splits_agree("a: 1\n---\nb: 2\n--- # c\nc: |\n  ---\n"));
        assert!(splits_agree("\u{feff}---\na: 1\n---\r\nb: 2"));
        // Parsed instead: markers with content, end markers, directives
        // (and, to keep the rule simple, any other line starting `---`).
        for needs_parsing in [
            "a: 1\n...\nb: 2\n",
            "%YAML 1.2\n---\na: 1\n",
            "a: 1\n--- b: 2\n",
            "a\n----\n",
        ] {
            assert!(!splits_agree(needs_parsing), "{needs_parsing:?}");
        }
    }

    #[test]
    fn parts_know_their_lines() {
        let parts = chunks("a: 1\n---\nb: 2\nc: 3\n---\n");
        assert_eq!(parts, vec![(1, "a: 1\n"), (3, "b: 2\nc: 3\n"), (6, "")]);
        let e = check_split("f", "a: 1\n---\nb: 2\n...\nc: 3\n").unwrap_err();
        assert_eq!(e.at.line, 5);
    }
}
