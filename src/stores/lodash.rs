//! lodash's `_.get` / `_.hasIn` paths, as kubernetes-external-secrets reads
//! `data[].property`, and how KES turns the value it finds into bytes.
//!
//! A property that is itself a member of the object (`"a.b"`, or any name
//! without `.` or `[…]`) is that member; otherwise it is split like
//! lodash's `stringToPath`: `a.b`, `a[0].b`, `a["b.c"]`, `a['b']`. Arrays
//! answer indexes and `length`; objects their own members. (Properties of
//! strings and of JavaScript prototypes, which lodash would also find, are
//! treated as missing.) Pure code.

use zeroize::Zeroizing;

use super::json::{Json, Kind, Node, js_members, js_number};

/// What a path found.
pub enum Found<'a> {
    /// A value of the document.
    Node(&'a Node),
    /// An array's `length`.
    Length(usize),
}

/// lodash's `stringToPath`.
fn split(path: &str) -> Vec<String> {
    let s: Vec<char> = path.chars().collect();
    let mut out = Vec::new();
    if s.first() == Some(&'.') {
        out.push(String::new());
    }
    let mut i = 0;
    // `(?=(?:\.|\[\])(?:\.|\[\]|$))`: an empty key before `.`/`[]` runs.
    let sep = |i: usize| -> Option<usize> {
        match s.get(i) {
            Some('.') => Some(1),
            Some('[') if s.get(i + 1) == Some(&']') => Some(2),
            _ => None,
        }
    };
    while i < s.len() {
        let c = s[i];
        if c != '.' && c != '[' && c != ']' {
            let start = i;
            while i < s.len() && !matches!(s[i], '.' | '[' | ']') {
                i += 1;
            }
            out.push(s[start..i].iter().collect());
            continue;
        }
        if c == '[' {
            // `[-?\d+(\.\d+)?]`
            let mut j = i + 1;
            if s.get(j) == Some(&'-') {
                j += 1;
            }
            let d0 = j;
            while s.get(j).is_some_and(char::is_ascii_digit) {
                j += 1;
            }
            let mut ok = j > d0;
            if ok && s.get(j) == Some(&'.') {
                let f0 = j + 1;
                let mut k = f0;
                while s.get(k).is_some_and(char::is_ascii_digit) {
                    k += 1;
                }
                if k > f0 {
                    j = k;
                }
            }
            ok = ok && s.get(j) == Some(&']');
            if ok {
                out.push(s[i + 1..j].iter().collect());
                i = j + 1;
                continue;
            }
            // `["…"]` / `['…']` with `\` escapes.
            if let Some(&q) = s.get(i + 1).filter(|q| matches!(q, '"' | '\'')) {
                let mut k = i + 2;
                let mut text = String::new();
                let mut closed = false;
                while k < s.len() {
                    if s[k] == '\\' && k + 1 < s.len() {
                        text.push(s[k + 1]);
                        k += 2;
                    } else if s[k] == q {
                        closed = s.get(k + 1) == Some(&']');
                        break;
                    } else {
                        text.push(s[k]);
                        k += 1;
                    }
                }
                if closed {
                    out.push(text);
                    i = k + 2;
                    continue;
                }
            }
        }
        if let Some(n) = sep(i)
            && (i + n >= s.len() || sep(i + n).is_some())
        {
            out.push(String::new());
        }
        i += 1;
    }
    out
}

/// Whether lodash reads `path` as one key of `node` (`isKey`).
fn is_key(doc: &Json, node: &Node, path: &str) -> bool {
    let plain = path.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let deep = path.contains('.') || (path.contains('[') && path.contains(']'));
    plain || !deep || doc.member(node, path).is_some()
}

/// `_.hasIn(value, path) ? _.get(value, path) : nothing`.
pub fn get<'a>(doc: &'a Json, path: &str) -> Option<Found<'a>> {
    let root = doc.root();
    let keys = if is_key(doc, root, path) {
        vec![path.to_owned()]
    } else {
        split(path)
    };
    let mut cur = Found::Node(root);
    for k in keys {
        let Found::Node(n) = cur else { return None };
        cur = match &n.kind {
            Kind::Object(_) => Found::Node(
                js_members(n)
                    .into_iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| v)?,
            ),
            Kind::Array(items) if k == "length" => Found::Length(items.len()),
            Kind::Array(items) => {
                let ok = !k.is_empty()
                    && k.bytes().all(|b| b.is_ascii_digit())
                    && (k == "0" || !k.starts_with('0'));
                if !ok {
                    return None;
                }
                Found::Node(items.get(k.parse::<usize>().ok()?)?)
            }
            _ => return None,
        };
    }
    Some(cur)
}

/// KES's `_toBuffer` of a parsed value: strings as they are, numbers as
/// JavaScript prints them, `true`/`false`, and objects, arrays and `null`
/// through `JSON.stringify` (so `null` is the text `null`).
pub fn to_bytes(doc: &Json, f: &Found<'_>) -> Zeroizing<Vec<u8>> {
    let text = match f {
        Found::Length(n) => Zeroizing::new(n.to_string()),
        Found::Node(n) => match &n.kind {
            Kind::String => doc.string(n),
            Kind::Number => Zeroizing::new(js_number(doc.float(n))),
            Kind::Bool(b) => Zeroizing::new(b.to_string()),
            Kind::Null | Kind::Array(_) | Kind::Object(_) => {
                let mut s = Zeroizing::new(String::new());
                doc.js_stringify(n, &mut s);
                s
            }
        },
    };
    Zeroizing::new(text.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lodash_paths() {
        assert_eq!(split("a.b"), ["a", "b"]);
        assert_eq!(split("list[0]"), ["list", "0"]);
        assert_eq!(split("a[0].b.c"), ["a", "0", "b", "c"]);
        assert_eq!(split(r#"a["b.c"].d"#), ["a", "b.c", "d"]);
        assert_eq!(split("a['x']"), ["a", "x"]);
        assert_eq!(split(".a"), ["", "a"]);
        assert_eq!(split("a..b"), ["a", "", "b"]);
    }

    #[test]
    fn get_like_lodash() {
        let doc = Json::parse(Zeroizing::new(
            r#"{"username":"admin","list":[1,2],"nested":{"b":1,"a":"x"},"a.b":"lit","a":{"b":"deep"},"nul":null,"ratio":1.50}"#
                .to_owned(),
        ))
        .unwrap();
        let v =
            |p: &str| get(&doc, p).map(|f| String::from_utf8(to_bytes(&doc, &f).to_vec()).unwrap());
        assert_eq!(v("username").as_deref(), Some("admin"));
        assert_eq!(v("list[0]").as_deref(), Some("1"));
        assert_eq!(v("list.1").as_deref(), Some("2"));
        assert_eq!(v("list.length").as_deref(), Some("2"));
        assert_eq!(v("nested.a").as_deref(), Some("x"));
        assert_eq!(v("nested").as_deref(), Some(r#"{"b":1,"a":"x"}"#));
        assert_eq!(v("a.b").as_deref(), Some("lit"));
        assert_eq!(v("nul").as_deref(), Some("null"));
        assert_eq!(v("ratio").as_deref(), Some("1.5"));
        assert_eq!(v("nested.z"), None);
        assert_eq!(v("list[5]"), None);
    }
}
