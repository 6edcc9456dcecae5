//! JSON as the controllers see it: a tree that remembers each value's exact
//! source bytes, and the three ways they turn a value back into text.
//!
//! The External Secrets controllers disagree about what a JSON value "is":
//!
//! * ESO's AWS providers keep members as `json.RawMessage` — the source
//!   bytes exactly (`1.50` stays `1.50`, nested objects keep their spacing);
//! * ESO's Vault provider re-marshals with Go's `encoding/json` — compact,
//!   map keys sorted, `<`, `>`, `&`, U+2028/9 escaped — with numbers either
//!   as their literal (`UseNumber`) or as float64;
//! * KES (Node.js) uses `JSON.parse`/`JSON.stringify` — float64 numbers in
//!   JavaScript's formatting, integer-like keys first.
//!
//! So values are parsed once into [`Node`]s with byte spans, and each
//! rendering is a function here. Strings are decoded on demand into
//! zeroizing buffers. Pure code.

use std::fmt::Write as _;
use std::ops::Range;

use zeroize::Zeroizing;

/// Nesting deeper than this is refused (no stack overflow on hostile input).
const MAX_DEPTH: usize = 256;

/// A parsed JSON text: the text and its root.
pub struct Json {
    text: Zeroizing<String>,
    root: Node,
}

/// One JSON value and where it is in the text.
#[derive(Debug, Clone)]
pub struct Node {
    /// What it is.
    pub kind: Kind,
    /// Its bytes in the text.
    pub span: Range<usize>,
}

/// The kind of a JSON value.
#[derive(Debug, Clone)]
pub enum Kind {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number; its literal is the span.
    Number,
    /// A string; decode it with [`Json::string`].
    String,
    /// An array.
    Array(Vec<Node>),
    /// An object, members in source order (duplicates kept).
    Object(Vec<(String, Node)>),
}

/// Why a text is not JSON (never quotes the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotJson(pub String);

impl Json {
    /// Parses `text` (RFC 8259; surrounding whitespace allowed).
    pub fn parse(text: Zeroizing<String>) -> Result<Json, NotJson> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        p.ws();
        let root = p.value(0)?;
        p.ws();
        if p.i != p.s.len() {
            return Err(NotJson(format!("unexpected data at byte {}", p.i)));
        }
        Ok(Json { text, root })
    }

    /// The root value.
    pub fn root(&self) -> &Node {
        &self.root
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// A value's source bytes.
    pub fn raw(&self, n: &Node) -> &str {
        &self.text[n.span.clone()]
    }

    /// A string value's content, unescaped (lone surrogates become U+FFFD).
    pub fn string(&self, n: &Node) -> Zeroizing<String> {
        unescape(&self.text[n.span.start + 1..n.span.end - 1])
    }

    /// A number as float64 (out of range: ±infinity, as Go's and JS's
    /// parsers would fail or give).
    pub fn float(&self, n: &Node) -> f64 {
        self.raw(n).parse().unwrap_or(f64::NAN)
    }

    /// The member `key` of an object (the first, as gjson finds it).
    pub fn member<'a>(&self, n: &'a Node, key: &str) -> Option<&'a Node> {
        match &n.kind {
            Kind::Object(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn fail<T>(&self, what: &str) -> Result<T, NotJson> {
        Err(NotJson(format!("{what} at byte {}", self.i)))
    }

    fn value(&mut self, depth: usize) -> Result<Node, NotJson> {
        if depth > MAX_DEPTH {
            return self.fail("nested too deeply");
        }
        let start = self.i;
        let kind = match self.s.get(self.i) {
            None => return self.fail("unexpected end"),
            Some(b'{') => {
                self.i += 1;
                let mut members = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                } else {
                    loop {
                        self.ws();
                        if self.s.get(self.i) != Some(&b'"') {
                            return self.fail("expected a member name");
                        }
                        let k = self.string()?;
                        let key = unescape(
                            std::str::from_utf8(&self.s[k.start + 1..k.end - 1])
                                .map_err(|_| NotJson("invalid UTF-8".into()))?,
                        );
                        self.ws();
                        if self.s.get(self.i) != Some(&b':') {
                            return self.fail("expected `:`");
                        }
                        self.i += 1;
                        self.ws();
                        let v = self.value(depth + 1)?;
                        members.push((key.to_string(), v));
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                break;
                            }
                            _ => return self.fail("expected `,` or `}`"),
                        }
                    }
                }
                Kind::Object(members)
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                } else {
                    loop {
                        self.ws();
                        items.push(self.value(depth + 1)?);
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                break;
                            }
                            _ => return self.fail("expected `,` or `]`"),
                        }
                    }
                }
                Kind::Array(items)
            }
            Some(b'"') => {
                self.string()?;
                Kind::String
            }
            Some(b't') => self.word("true", Kind::Bool(true))?,
            Some(b'f') => self.word("false", Kind::Bool(false))?,
            Some(b'n') => self.word("null", Kind::Null)?,
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
                Kind::Number
            }
            Some(_) => return self.fail("unexpected character"),
        };
        Ok(Node {
            kind,
            span: start..self.i,
        })
    }

    fn word(&mut self, w: &str, kind: Kind) -> Result<Kind, NotJson> {
        if self.s[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Ok(kind)
        } else {
            self.fail("unexpected word")
        }
    }

    fn number(&mut self) -> Result<(), NotJson> {
        let digits = |p: &mut Self| {
            let from = p.i;
            while p.i < p.s.len() && p.s[p.i].is_ascii_digit() {
                p.i += 1;
            }
            p.i - from
        };
        if self.s.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.s.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return self.fail("invalid number"),
        }
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return self.fail("invalid number");
            }
        }
        if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.s.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return self.fail("invalid number");
            }
        }
        Ok(())
    }

    fn string(&mut self) -> Result<Range<usize>, NotJson> {
        let start = self.i;
        self.i += 1;
        loop {
            match self.s.get(self.i) {
                None => return self.fail("unterminated string"),
                Some(b'"') => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') => match self.s.get(self.i + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 2,
                    Some(b'u')
                        if self.s.len() >= self.i + 6
                            && self.s[self.i + 2..self.i + 6]
                                .iter()
                                .all(u8::is_ascii_hexdigit) =>
                    {
                        self.i += 6
                    }
                    _ => return self.fail("invalid escape"),
                },
                Some(b) if *b < 0x20 => return self.fail("control character in a string"),
                Some(_) => self.i += 1,
            }
        }
        if std::str::from_utf8(&self.s[start..self.i]).is_err() {
            return Err(NotJson("invalid UTF-8 in a string".into()));
        }
        Ok(start..self.i)
    }
}

/// Decodes the content of a (valid) JSON string.
fn unescape(s: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(s.len()));
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let hex = |it: &mut std::str::Chars<'_>| {
                    let h: String = it.take(4).collect();
                    u32::from_str_radix(&h, 16).ok()
                };
                let Some(u) = hex(&mut chars) else { break };
                if (0xD800..0xDC00).contains(&u) {
                    let rest = chars.as_str();
                    if let Some(low) = rest
                        .strip_prefix("\\u")
                        .and_then(|r| r.get(..4))
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .filter(|l| (0xDC00..0xE000).contains(l))
                    {
                        chars = rest[6..].chars();
                        let c = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00);
                        out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                        continue;
                    }
                }
                out.push(char::from_u32(u).unwrap_or('\u{FFFD}'));
            }
            Some(other) => out.push(other),
            None => break,
        }
    }
    out
}

/// How numbers come out of a Go re-marshal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoNumbers {
    /// As their literal (`json.Number`, the Vault client's `UseNumber`).
    Literal,
    /// Through float64 (a plain `json.Unmarshal` into `any`).
    Float64,
}

impl Json {
    /// Go's `json.Marshal` of the value: compact, object keys sorted (a Go
    /// map; of duplicate keys the last wins), HTML-safe string escaping.
    pub fn go_marshal(&self, n: &Node, numbers: GoNumbers, out: &mut String) {
        match &n.kind {
            Kind::Null => out.push_str("null"),
            Kind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Kind::Number => match numbers {
                GoNumbers::Literal => out.push_str(self.raw(n)),
                GoNumbers::Float64 => out.push_str(&go_float_json(self.float(n))),
            },
            Kind::String => go_quote(&self.string(n), out),
            Kind::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.go_marshal(v, numbers, out);
                }
                out.push(']');
            }
            Kind::Object(members) => {
                let mut sorted: Vec<&(String, Node)> = Vec::with_capacity(members.len());
                for m in members {
                    match sorted.iter().position(|x| x.0 == m.0) {
                        Some(i) => sorted[i] = m,
                        None => sorted.push(m),
                    }
                }
                sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                out.push('{');
                for (i, (k, v)) in sorted.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    go_quote(k, out);
                    out.push(':');
                    self.go_marshal(v, numbers, out);
                }
                out.push('}');
            }
        }
    }

    /// `JSON.stringify(JSON.parse(text))` of the value, as Node.js writes it.
    pub fn js_stringify(&self, n: &Node, out: &mut String) {
        match &n.kind {
            Kind::Null => out.push_str("null"),
            Kind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Kind::Number => {
                let f = self.float(n);
                if f.is_finite() {
                    out.push_str(&js_number(f));
                } else {
                    out.push_str("null");
                }
            }
            Kind::String => js_quote(&self.string(n), out),
            Kind::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.js_stringify(v, out);
                }
                out.push(']');
            }
            Kind::Object(_) => {
                out.push('{');
                for (i, (k, v)) in js_members(n).into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    js_quote(k, out);
                    out.push(':');
                    self.js_stringify(v, out);
                }
                out.push('}');
            }
        }
    }
}

/// An object's members in JavaScript's property order: integer-like keys
/// ascending, then the others in insertion order; a duplicate key keeps the
/// first one's place and the last one's value.
pub fn js_members(n: &Node) -> Vec<(&str, &Node)> {
    let Kind::Object(members) = &n.kind else {
        return Vec::new();
    };
    let mut out: Vec<(&str, &Node)> = Vec::with_capacity(members.len());
    for (k, v) in members {
        match out.iter().position(|x| x.0 == k) {
            Some(i) => out[i].1 = v,
            None => out.push((k, v)),
        }
    }
    let index = |k: &str| -> Option<u32> {
        let ok = !k.is_empty()
            && k.bytes().all(|b| b.is_ascii_digit())
            && (k == "0" || !k.starts_with('0'));
        ok.then(|| k.parse::<u32>().ok())
            .flatten()
            .filter(|i| *i < u32::MAX)
    };
    let (mut ints, rest): (Vec<_>, Vec<_>) = out.into_iter().partition(|(k, _)| index(k).is_some());
    ints.sort_by_key(|(k, _)| index(k));
    ints.extend(rest);
    ints
}

/// A string as Go's `encoding/json` writes it (HTML-safe).
pub fn go_quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A string as JavaScript's `JSON.stringify` writes it.
pub fn js_quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `strconv.FormatFloat(f, 'f', -1, 64)`: the shortest digits that read
/// back as `f`, never an exponent (Rust's `Display` does exactly this).
pub fn go_format_float(f: f64) -> String {
    format!("{f}")
}

/// A float64 as Go's `encoding/json` writes it: `'f'` format, or `'e'` for
/// magnitudes below 1e-6 or from 1e21 on (`1e+21`, `1e-7`).
pub fn go_float_json(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let (mantissa, exp) = shortest(abs);
        let sign = if f < 0.0 { "-" } else { "" };
        let m = if mantissa.len() == 1 {
            mantissa
        } else {
            format!("{}.{}", &mantissa[..1], &mantissa[1..])
        };
        let e = exp - 1;
        if e < 0 {
            format!("{sign}{m}e-{}", -e)
        } else {
            format!("{sign}{m}e+{e:02}")
        }
    } else {
        go_format_float(f)
    }
}

/// JavaScript's `Number.prototype.toString()` (ECMAScript Number::toString).
pub fn js_number(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let sign = if f < 0.0 { "-" } else { "" };
    let (digits, n) = shortest(f.abs());
    let k = digits.len() as i32;
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let s = if e < 0 { '-' } else { '+' };
        if k == 1 {
            format!("{digits}e{s}{}", e.abs())
        } else {
            format!("{}.{}e{s}{}", &digits[..1], &digits[1..], e.abs())
        }
    };
    format!("{sign}{body}")
}

/// The shortest decimal digits of a positive finite `f` and the position of
/// the decimal point (`f = 0.DIGITS × 10^n`).
fn shortest(f: f64) -> (String, i32) {
    let e = format!("{f:e}");
    let (m, exp) = e.split_once('e').expect("exponent form");
    let digits: String = m.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    (digits.to_owned(), exp.parse::<i32>().expect("exponent") + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(s: &str) -> Json {
        Json::parse(Zeroizing::new(s.to_owned())).unwrap()
    }

    #[test]
    fn parses_and_keeps_raw_members() {
        let doc = j(r#" {"a": 1.50, "b" : {"z":1, "y": [1, 2]}, "s":"x\u00e9\n", "n": null} "#);
        let r = doc.root();
        assert_eq!(doc.raw(doc.member(r, "a").unwrap()), "1.50");
        assert_eq!(
            doc.raw(doc.member(r, "b").unwrap()),
            r#"{"z":1, "y": [1, 2]}"#
        );
        assert_eq!(doc.string(doc.member(r, "s").unwrap()).as_str(), "xé\n");
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "01",
            "1.",
            "\"\\x\"",
            "nul",
            "[1] x",
        ] {
            assert!(Json::parse(Zeroizing::new(bad.into())).is_err(), "{bad}");
        }
        let deep = "[".repeat(300) + &"]".repeat(300);
        assert!(Json::parse(Zeroizing::new(deep)).is_err());
    }

    #[test]
    fn go_marshal_sorts_and_escapes() {
        let doc =
            j(r#"{"z":1.50,"a":"<x>&","big":12345678901234567890,"n":{"b":null,"a":[true]}}"#);
        let mut lit = String::new();
        doc.go_marshal(doc.root(), GoNumbers::Literal, &mut lit);
        assert_eq!(
            lit,
            r#"{"a":"\u003cx\u003e\u0026","big":12345678901234567890,"n":{"a":[true],"b":null},"z":1.50}"#
        );
        let mut f = String::new();
        doc.go_marshal(doc.root(), GoNumbers::Float64, &mut f);
        assert!(
            f.contains(r#""big":12345678901234567000"#) && f.contains(r#""z":1.5"#),
            "{f}"
        );
    }

    #[test]
    fn number_formats() {
        assert_eq!(
            go_format_float(12345678901234567890.0),
            "12345678901234567000"
        );
        assert_eq!(go_format_float(1.5), "1.5");
        assert_eq!(go_format_float(1e21), "1000000000000000000000");
        assert_eq!(go_float_json(1e21), "1e+21");
        assert_eq!(go_float_json(1e-7), "1e-7");
        assert_eq!(go_float_json(1.5e-10), "1.5e-10");
        assert_eq!(go_float_json(-2.5), "-2.5");
        assert_eq!(js_number(1.5), "1.5");
        assert_eq!(js_number(5432.0), "5432");
        assert_eq!(js_number(1e21), "1e+21");
        assert_eq!(js_number(1.5e-7), "1.5e-7");
        assert_eq!(js_number(0.000001), "0.000001");
        assert_eq!(js_number(-0.0), "0");
        assert_eq!(js_number(1.23e22), "1.23e+22");
    }

    #[test]
    fn js_order_and_stringify() {
        let doc = j(
            r#"{"username":"admin","10":"ten","2":2,"a":1,"ratio":1.50,"nested":{"b":1,"a":"x"},"list":[1,2],"nul":null}"#,
        );
        let mut s = String::new();
        doc.js_stringify(doc.root(), &mut s);
        assert_eq!(
            s,
            r#"{"2":2,"10":"ten","username":"admin","a":1,"ratio":1.5,"nested":{"b":1,"a":"x"},"list":[1,2],"nul":null}"#
        );
    }
}
