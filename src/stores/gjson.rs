//! The part of gjson's path syntax (tidwall/gjson, SYNTAX.md) that ESO's
//! `remoteRef.property` uses, and gjson's `Result.String()`.
//!
//! Supported: components separated by `.`; `\` escapes the next character
//! (`dotted\.key`); `*` and `?` wildcards in a key (the first member that
//! matches, in source order); an array index (`hosts.1`); `#` (an array's
//! length) and `list.#.field` (the field of every element, as a JSON
//! array). Queries (`#(…)`), modifiers (`@reverse`), multipaths (`{a,b}`,
//! `[a,b]`), literals (`!true`) and pipes (`|`) are refused with a message
//! that says so, rather than guessed at. Pure code.

use zeroize::Zeroizing;

use super::json::{Json, Kind, Node, go_format_float};

/// Why a path cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    Star,
    Quest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Comp {
    /// A member name or index, possibly with wildcards.
    Key(Vec<Tok>),
    /// `#`.
    Hash,
}

/// What a path found.
pub enum Found<'a> {
    /// A value of the document.
    Node(&'a Node),
    /// A computed JSON text (`#` counts, `#.` collections).
    Computed(String),
}

fn parse(path: &str) -> Result<Vec<Comp>, Unsupported> {
    let refuse = |what: &str| {
        Err(Unsupported(format!(
            "`{path}`: {what} are not supported (ksec reads gjson paths of member names, `\\` escapes, `*`/`?` wildcards, array indexes, `#` and `#.`)"
        )))
    };
    if path.starts_with('{') || path.starts_with('[') {
        return refuse("multipaths");
    }
    if path.starts_with('!') {
        return refuse("literals");
    }
    let mut comps = Vec::new();
    let mut cur: Vec<Tok> = Vec::new();
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => cur.push(Tok::Lit(n)),
                None => cur.push(Tok::Lit('\\')),
            },
            '.' => comps.push(std::mem::take(&mut cur)),
            '*' => cur.push(Tok::Star),
            '?' => cur.push(Tok::Quest),
            '|' => return refuse("pipes (`|`)"),
            '@' if cur.is_empty() => return refuse("modifiers (`@…`)"),
            '#' if cur.is_empty() && chars.as_str().starts_with('(') => {
                return refuse("queries (`#(…)`)");
            }
            c => cur.push(Tok::Lit(c)),
        }
    }
    comps.push(cur);
    Ok(comps
        .into_iter()
        .map(|t| {
            if t == [Tok::Lit('#')] {
                Comp::Hash
            } else {
                Comp::Key(t)
            }
        })
        .collect())
}

fn matches(pat: &[Tok], s: &[char]) -> bool {
    match pat.first() {
        None => s.is_empty(),
        Some(Tok::Star) => (0..=s.len()).any(|i| matches(&pat[1..], &s[i..])),
        Some(Tok::Quest) => !s.is_empty() && matches(&pat[1..], &s[1..]),
        Some(Tok::Lit(c)) => s.first() == Some(c) && matches(&pat[1..], &s[1..]),
    }
}

fn literal(pat: &[Tok]) -> Option<String> {
    pat.iter()
        .map(|t| match t {
            Tok::Lit(c) => Some(*c),
            _ => None,
        })
        .collect()
}

/// Evaluates `path` in `doc`; `None` when nothing is there.
pub fn get<'a>(doc: &'a Json, path: &str) -> Result<Option<Found<'a>>, Unsupported> {
    let comps = parse(path)?;
    Ok(eval(doc, doc.root(), &comps))
}

fn eval<'a>(doc: &'a Json, node: &'a Node, comps: &[Comp]) -> Option<Found<'a>> {
    let Some((first, rest)) = comps.split_first() else {
        return Some(Found::Node(node));
    };
    match (&node.kind, first) {
        (Kind::Array(items), Comp::Hash) => {
            if rest.is_empty() {
                return Some(Found::Computed(items.len().to_string()));
            }
            let mut out = String::from("[");
            let mut n = 0;
            for item in items {
                if let Some(f) = eval(doc, item, rest) {
                    if n > 0 {
                        out.push(',');
                    }
                    out.push_str(&raw(doc, &f));
                    n += 1;
                }
            }
            out.push(']');
            Some(Found::Computed(out))
        }
        (Kind::Array(items), Comp::Key(pat)) => {
            let idx = literal(pat)?;
            if idx.is_empty() || !idx.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let i: usize = idx.parse().ok()?;
            eval(doc, items.get(i)?, rest)
        }
        (Kind::Object(members), comp) => {
            let pat = match comp {
                Comp::Key(p) => p.clone(),
                Comp::Hash => vec![Tok::Lit('#')],
            };
            let found = match literal(&pat) {
                Some(name) => members.iter().find(|(k, _)| *k == name),
                None => members.iter().find(|(k, _)| {
                    let cs: Vec<char> = k.chars().collect();
                    matches(&pat, &cs)
                }),
            }?;
            eval(doc, &found.1, rest)
        }
        _ => None,
    }
}

/// A result's raw JSON text.
pub fn raw(doc: &Json, f: &Found<'_>) -> String {
    match f {
        Found::Node(n) => doc.raw(n).to_owned(),
        Found::Computed(t) => t.clone(),
    }
}

/// gjson's `Result.String()`: a string's text; an integer literal as
/// written, other numbers through float64 (`1.50` → `1.5`); `true`/`false`;
/// `null` → empty; objects and arrays → their raw JSON text.
pub fn string(doc: &Json, f: &Found<'_>) -> Zeroizing<String> {
    match f {
        Found::Computed(t) => Zeroizing::new(t.clone()),
        Found::Node(n) => match &n.kind {
            Kind::String => doc.string(n),
            Kind::Null => Zeroizing::new(String::new()),
            Kind::Bool(b) => Zeroizing::new(b.to_string()),
            Kind::Number => {
                let lit = doc.raw(n);
                let digits = lit.strip_prefix('-').unwrap_or(lit);
                if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                    Zeroizing::new(lit.to_owned())
                } else {
                    Zeroizing::new(go_format_float(doc.float(n)))
                }
            }
            Kind::Array(_) | Kind::Object(_) => Zeroizing::new(doc.raw(n).to_owned()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(doc: &Json, p: &str) -> Option<String> {
        get(doc, p).unwrap().map(|f| string(doc, &f).to_string())
    }

    #[test]
    fn paths() {
        let doc = Json::parse(Zeroizing::new(
            r#"{"name":{"first":"Tom","last":"Anderson"},"age":37,"ratio":1.50,"children":["Sara","Alex","Jack"],
               "fav.movie":"Deer Hunter","friends":[{"first":"Dale","age":44,"nets":["ig","fb"]},{"first":"Roger","age":68}],
               "tls":{"ca":"CA", "verify":true},"nul":null}"#
                .to_owned(),
        ))
        .unwrap();
        assert_eq!(s(&doc, "age").as_deref(), Some("37"));
        assert_eq!(s(&doc, "ratio").as_deref(), Some("1.5"));
        assert_eq!(s(&doc, "name.last").as_deref(), Some("Anderson"));
        assert_eq!(s(&doc, "children.#").as_deref(), Some("3"));
        assert_eq!(s(&doc, "children.1").as_deref(), Some("Alex"));
        assert_eq!(s(&doc, "child*.2").as_deref(), Some("Jack"));
        assert_eq!(s(&doc, "c?ildren.0").as_deref(), Some("Sara"));
        assert_eq!(s(&doc, r"fav\.movie").as_deref(), Some("Deer Hunter"));
        assert_eq!(
            s(&doc, "friends.#.first").as_deref(),
            Some(r#"["Dale","Roger"]"#)
        );
        assert_eq!(s(&doc, "friends.1.first").as_deref(), Some("Roger"));
        assert_eq!(s(&doc, "friends.0.nets.1").as_deref(), Some("fb"));
        assert_eq!(
            s(&doc, "tls").as_deref(),
            Some(r#"{"ca":"CA", "verify":true}"#)
        );
        assert_eq!(s(&doc, "tls.verify").as_deref(), Some("true"));
        assert_eq!(s(&doc, "nul").as_deref(), Some(""));
        assert_eq!(s(&doc, "name.middle"), None);
        assert_eq!(s(&doc, "children.5"), None);
        assert_eq!(s(&doc, "fav.movie"), None);
        for bad in [
            "friends.#(last==\"x\")",
            "children|@reverse",
            "@this",
            "{a,b}",
            "!true",
        ] {
            assert!(get(&doc, bad).is_err(), "{bad}");
        }
    }
}
