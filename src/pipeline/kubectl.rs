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
pub fn check_split(file: &str, text: &str) -> Result<()> {
    let mut seen = 0usize;
    for (start, chunk) in chunks(text) {
        // 1-based line of the chunk's first line in the whole text.
        let first_line = text[..start].matches('\n').count() + 1;
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

/// The stream cut the way kubectl cuts it (separator lines dropped), each
/// part with the byte where it starts.
fn chunks(text: &str) -> Vec<(usize, &str)> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if is_separator(line) {
            chunks.push((start, &text[start..pos]));
            start = pos + line.len();
        }
        pos += line.len();
    }
    chunks.push((start, &text[start..]));
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
