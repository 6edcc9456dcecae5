//! Replacing one object of a stream by another, leaving every other byte
//! alone: comments before the object, the other documents, the `---`
//! lines. Pure code.
//!
//! The new object is written where the old one's node was:
//!
//! * a top-level document: from the start of its first line (a `---` on
//!   that line keeps its own line: kubectl refuses `--- {…}`);
//! * an item of a block sequence (`- apiVersion: …`): after the `- `, its
//!   further lines indented to the item's column;
//! * an item of a flow sequence (a JSON List): always as JSON, which is
//!   the only thing that may stand there.

use super::Format;
use super::emit::{self, Doc};
use crate::manifest::Edit;
use crate::manifest::tree::Node;

/// The line break of the line `at` is on (`\r\n` or `\n`).
pub fn newline_at(text: &str, at: usize) -> &'static str {
    match text[at..].find('\n') {
        Some(i) if text[..at + i].ends_with('\r') => "\r\n",
        _ => "\n",
    }
}

/// The edit that writes `doc` in place of `node`: a top-level document
/// when `top`, else an item of a List (in a flow sequence when `in_flow`).
pub fn object_edit(
    text: &str,
    node: &Node,
    top: bool,
    in_flow: bool,
    doc: &Doc,
    format: Format,
) -> Edit {
    let start = node.range.start;
    let newline = newline_at(text, start);
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let alone = text[line_start..start].trim().is_empty();
    let format = if in_flow { Format::Json } else { format };
    let render = |indent: usize| match format {
        Format::Yaml => emit::yaml(doc, indent, newline),
        Format::Json => emit::json(doc, indent, newline),
    };
    let (range, text) = match (top, alone) {
        (true, true) => (line_start..node.range.end, render(0).to_string()),
        // Something shares the line (`--- `): start on a line of its own.
        (true, false) => (
            start..node.range.end,
            format!("{newline}{}", render(0).as_str()),
        ),
        (false, _) => (start..node.range.end, render(node.column).to_string()),
    };
    Edit { range, text }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tree::parse_stream;

    fn doc() -> Doc {
        Doc::Map(vec![
            ("kind".into(), Doc::str("X")),
            ("m".into(), Doc::Map(vec![("a".into(), Doc::str("b"))])),
        ])
    }

    fn replace(text: &str, path: &[usize], format: Format) -> String {
        let roots = parse_stream(text).unwrap();
        let mut node = &roots[path[0]];
        let mut in_flow = false;
        for &i in &path[1..] {
            let items = node.get("items").unwrap();
            in_flow |= items.flow;
            node = &items.items().unwrap()[i];
        }
        let top = path.len() == 1;
        let mut edits = vec![object_edit(text, node, top, in_flow, &doc(), format)];
        crate::manifest::splice(text, &mut edits)
    }

    #[test]
    fn documents_and_items() {
        assert_eq!(
            replace(
                "# c\nkind: Secret\ndata: {}\n---\nkind: Other\n",
                &[0],
                Format::Yaml
            ),
            "# c\nkind: X\nm:\n  a: b\n---\nkind: Other\n"
        );
        assert_eq!(
            replace("--- {\"kind\": \"Secret\"}\n", &[0], Format::Yaml),
            "--- \nkind: X\nm:\n  a: b\n"
        );
        assert_eq!(
            replace(
                "kind: List\nitems:\n  - kind: Secret\n    data: {}\n  - 1\n",
                &[0, 0],
                Format::Yaml
            ),
            "kind: List\nitems:\n  - kind: X\n    m:\n      a: b\n  - 1\n"
        );
        assert_eq!(
            replace(
                "{\"kind\": \"List\", \"items\": [{\"kind\": \"Secret\"}]}\n",
                &[0, 0],
                Format::Yaml
            ),
            format!(
                "{{\"kind\": \"List\", \"items\": [{{\n{p}  \"kind\": \"X\",\n{p}  \"m\": {{\n{p}    \"a\": \"b\"\n{p}  }}\n{p}}}]}}\n",
                p = " ".repeat(27)
            )
        );
        assert_eq!(
            replace("kind: Secret\r\ndata: {}\r\n", &[0], Format::Json),
            "{\r\n  \"kind\": \"X\",\r\n  \"m\": {\r\n    \"a\": \"b\"\r\n  }\r\n}\r\n"
        );
    }
}
