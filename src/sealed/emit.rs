//! Writing objects as YAML or JSON text, in an order the caller chooses.
//!
//! kubeseal writes JSON with Go's `json.MarshalIndent(obj, "", "  ")`:
//! struct fields in declaration order (`kind` before `apiVersion`), map keys
//! sorted, `<`, `>` and `&` escaped as `\u003c`, `\u003e`, `\u0026`; and YAML
//! through sigs.k8s.io/yaml: every key sorted, two-space indentation,
//! sequences at their key's indentation, strings that would read as
//! something else quoted. [`Doc`] is an ordered tree, so one builder decides
//! the order and both writers follow it. Strings are zeroizing: unsealed
//! values pass through here. Pure code.

use zeroize::Zeroizing;

use crate::manifest::scalar;

/// An object to write: maps keep the order they were built in.
#[derive(Debug, Clone)]
pub enum Doc {
    /// A string.
    Str(Zeroizing<String>),
    /// `true` / `false`.
    Bool(bool),
    /// A number, as JSON writes it.
    Num(serde_json::Number),
    /// `null`.
    Null,
    /// A sequence.
    List(Vec<Doc>),
    /// A mapping, in this order.
    Map(Vec<(String, Doc)>),
}

impl Doc {
    /// A string.
    pub fn str(s: impl Into<String>) -> Doc {
        Doc::Str(Zeroizing::new(s.into()))
    }

    /// A JSON value; map keys sorted (serde_json's maps are ordered by key).
    pub fn from_json(v: &serde_json::Value) -> Doc {
        match v {
            serde_json::Value::Null => Doc::Null,
            serde_json::Value::Bool(b) => Doc::Bool(*b),
            serde_json::Value::Number(n) => Doc::Num(n.clone()),
            serde_json::Value::String(s) => Doc::str(s.clone()),
            serde_json::Value::Array(a) => Doc::List(a.iter().map(Doc::from_json).collect()),
            serde_json::Value::Object(m) => Doc::Map(
                m.iter()
                    .map(|(k, v)| (k.clone(), Doc::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// The same tree with every map's keys sorted (byte order), as
    /// sigs.k8s.io/yaml writes it.
    pub fn sorted(mut self) -> Doc {
        self.sort();
        self
    }

    fn sort(&mut self) {
        match self {
            Doc::Map(entries) => {
                entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                for (_, v) in entries {
                    v.sort();
                }
            }
            Doc::List(items) => items.iter_mut().for_each(Doc::sort),
            _ => {}
        }
    }

    fn is_empty_collection(&self) -> bool {
        matches!(self, Doc::Map(m) if m.is_empty()) || matches!(self, Doc::List(l) if l.is_empty())
    }
}

/// Writes `doc` (a mapping) as block YAML without a final line break.
/// Lines after the first are indented by `indent` spaces (for an object that
/// starts after a `- ` at that column); `newline` is the stream's.
pub fn yaml(doc: &Doc, indent: usize, newline: &str) -> Zeroizing<String> {
    let mut lines: Vec<String> = Vec::new();
    yaml_node(doc, 0, &mut lines);
    let pad = " ".repeat(indent);
    let mut out = Zeroizing::new(String::new());
    for (i, l) in lines.iter_mut().enumerate() {
        if i > 0 {
            out.push_str(newline);
            if !l.is_empty() {
                out.push_str(&pad);
            }
        }
        out.push_str(l);
        zeroize::Zeroize::zeroize(l);
    }
    out
}

fn key_text(k: &str) -> String {
    if scalar::plain_safe(k) {
        k.to_owned()
    } else {
        scalar::double_quoted(k)
    }
}

/// A scalar (or empty collection) as it follows `key: ` or `- `; a
/// multi-line string may become a literal block whose content lines are
/// indented to `indent`.
fn inline(doc: &Doc, indent: usize) -> Option<String> {
    match doc {
        Doc::Str(s) => Some(scalar::render(
            s,
            &scalar::Context {
                flow: false,
                indent,
                newline: "\n",
                line_rest_empty: true,
                header_comment: None,
            },
        )),
        Doc::Bool(b) => Some(b.to_string()),
        Doc::Num(n) => Some(n.to_string()),
        Doc::Null => Some("null".to_owned()),
        Doc::Map(m) if m.is_empty() => Some("{}".to_owned()),
        Doc::List(l) if l.is_empty() => Some("[]".to_owned()),
        _ => None,
    }
}

/// Pushes the lines of `doc` at `depth` spaces; a literal block's text is
/// split into its lines so that the caller's indentation applies to them.
fn push_text(lines: &mut Vec<String>, prefix: String, text: String) {
    let mut parts = text.split('\n');
    let first = parts.next().unwrap_or_default();
    lines.push(format!("{prefix}{first}"));
    for p in parts {
        lines.push(p.to_owned());
    }
}

fn yaml_node(doc: &Doc, depth: usize, lines: &mut Vec<String>) {
    let pad = " ".repeat(depth);
    match doc {
        Doc::Map(entries) => {
            for (k, v) in entries {
                let key = key_text(k);
                match inline(v, depth + 2) {
                    Some(text) => push_text(lines, format!("{pad}{key}: "), text),
                    None => {
                        lines.push(format!("{pad}{key}:"));
                        // Sequences sit at their key's indentation (go-yaml v2).
                        let child = if matches!(v, Doc::List(_)) {
                            depth
                        } else {
                            depth + 2
                        };
                        yaml_node(v, child, lines);
                    }
                }
            }
        }
        Doc::List(items) => {
            for item in items {
                match inline(item, depth + 2) {
                    Some(text) => push_text(lines, format!("{pad}- "), text),
                    None if item.is_empty_collection() => unreachable!("inline above"),
                    None => {
                        let mut inner = Vec::new();
                        yaml_node(item, depth + 2, &mut inner);
                        for (i, l) in inner.into_iter().enumerate() {
                            if i == 0 {
                                lines.push(format!("{pad}- {}", &l[depth + 2..]));
                            } else {
                                lines.push(l);
                            }
                        }
                    }
                }
            }
        }
        other => {
            if let Some(text) = inline(other, depth) {
                push_text(lines, pad, text);
            }
        }
    }
}

/// Writes `doc` as JSON the way Go's `json.MarshalIndent(v, "", "  ")`
/// does, without a final line break; lines after the first are indented by
/// `indent` spaces.
pub fn json(doc: &Doc, indent: usize, newline: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::new());
    let mut line_start = format!("{newline}{}", " ".repeat(indent));
    json_node(doc, 0, &mut line_start, &mut out);
    zeroize::Zeroize::zeroize(&mut line_start);
    out
}

fn json_node(doc: &Doc, depth: usize, nl: &mut String, out: &mut String) {
    let open = |out: &mut String, depth: usize, nl: &str| {
        out.push_str(nl);
        out.push_str(&"  ".repeat(depth));
    };
    match doc {
        Doc::Str(s) => go_json_string(s, out),
        Doc::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Doc::Num(n) => out.push_str(&n.to_string()),
        Doc::Null => out.push_str("null"),
        Doc::List(items) if items.is_empty() => out.push_str("[]"),
        Doc::Map(entries) if entries.is_empty() => out.push_str("{}"),
        Doc::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                open(out, depth + 1, nl);
                json_node(item, depth + 1, nl, out);
            }
            open(out, depth, nl);
            out.push(']');
        }
        Doc::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                open(out, depth + 1, nl);
                go_json_string(k, out);
                out.push_str(": ");
                json_node(v, depth + 1, nl, out);
            }
            open(out, depth, nl);
            out.push('}');
        }
    }
}

/// A JSON string as Go's encoder escapes it (HTML-safe).
fn go_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Doc {
        Doc::Map(vec![
            ("kind".into(), Doc::str("SealedSecret")),
            (
                "metadata".into(),
                Doc::Map(vec![
                    ("name".into(), Doc::str("db")),
                    (
                        "annotations".into(),
                        Doc::Map(vec![(
                            "sealedsecrets.bitnami.com/cluster-wide".into(),
                            Doc::str("true"),
                        )]),
                    ),
                    (
                        "finalizers".into(),
                        Doc::List(vec![Doc::str("a"), Doc::str("b")]),
                    ),
                ]),
            ),
            ("immutable".into(), Doc::Bool(true)),
            ("note".into(), Doc::str("x <y> & z\nline two\n")),
            ("empty".into(), Doc::Map(vec![])),
        ])
    }

    #[test]
    fn yaml_like_sigs_k8s_io() {
        let text = yaml(&sample().sorted(), 0, "\n");
        assert_eq!(
            text.as_str(),
            "empty: {}\nimmutable: true\nkind: SealedSecret\nmetadata:\n  annotations:\n    \
sealedsecrets.bitnami.com/cluster-wide: \"true\"\n  finalizers:\n  - a\n  - b\n  name: db\n\
note: |\n  x <y> & z\n  line two"
        );
        // Indented after `- ` at column 2.
        let list = Doc::Map(vec![(
            "items".into(),
            Doc::List(vec![Doc::Map(vec![
                ("a".into(), Doc::str("1")),
                ("b".into(), Doc::Map(vec![("c".into(), Doc::str("d"))])),
            ])]),
        )]);
        assert_eq!(
            yaml(&list, 2, "\r\n").as_str(),
            "items:\r\n  - a: \"1\"\r\n    b:\r\n      c: d"
        );
    }

    #[test]
    fn json_like_go() {
        let text = json(&sample(), 0, "\n");
        assert_eq!(
            text.as_str(),
            "{\n  \"kind\": \"SealedSecret\",\n  \"metadata\": {\n    \"name\": \"db\",\n    \
\"annotations\": {\n      \"sealedsecrets.bitnami.com/cluster-wide\": \"true\"\n    },\n    \
\"finalizers\": [\n      \"a\",\n      \"b\"\n    ]\n  },\n  \"immutable\": true,\n  \
\"note\": \"x \\u003cy\\u003e \\u0026 z\\nline two\\n\",\n  \"empty\": {}\n}"
        );
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["note"], "x <y> & z\nline two\n");
    }
}
