//! Reading and writing secret values as YAML scalars without letting any YAML
//! reader change their type.
//!
//! Two questions are answered here:
//!
//! * [`resolves_to_non_string`]: would a YAML 1.1 *or* 1.2 reader take this
//!   plain scalar for something other than a string (null, bool, int, float)?
//!   Kubernetes reads manifests with a YAML 1.1 library, so `yes`, `on` and
//!   `0755` matter as much as `true` and `123`. Such values are refused as
//!   input (the API server would reject them) and quoted as output.
//! * [`render`]: how to write a clear value back: plain when that is safe,
//!   double-quoted when a reader could take it for a non-string (or when the
//!   value has characters plain style cannot hold), a literal block for
//!   multi-line text, and always double-quoted in flow context (JSON).

/// How a value is written at its site.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The value sits in a flow mapping (`{…}`) or a JSON document.
    pub flow: bool,
    /// Column at which literal block content is indented.
    pub indent: usize,
    /// The document's line break (`"\n"` or `"\r\n"`).
    pub newline: &'a str,
    /// Nothing but whitespace follows the value on its line, so a block
    /// scalar can end there and the existing line break closes it.
    pub line_rest_empty: bool,
    /// A comment (with the white space before it) that may go on a literal
    /// block's header line, when only it follows the value.
    pub header_comment: Option<&'a str>,
}

fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

fn is_bool(s: &str) -> bool {
    matches!(
        s,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE"
            // YAML 1.1 only
            | "y" | "Y" | "yes" | "Yes" | "YES" | "n" | "N" | "no" | "No" | "NO"
            | "on" | "On" | "ON" | "off" | "Off" | "OFF"
    )
}

fn all(s: &str, f: impl Fn(u8) -> bool) -> bool {
    !s.is_empty() && s.bytes().all(f)
}

fn strip_sign(s: &str) -> &str {
    s.strip_prefix(['-', '+']).unwrap_or(s)
}

fn is_int(s: &str) -> bool {
    let u = strip_sign(s);
    if !u.starts_with(|c: char| c.is_ascii_digit()) {
        return false;
    }
    let digits_ = |t: &str| {
        all(t, |b| b.is_ascii_digit() || b == b'_') && t.bytes().any(|b| b.is_ascii_digit())
    };
    if let Some(h) = u.strip_prefix("0x") {
        // 1.2 (unsigned, no `_`) and 1.1 (signed, with `_`)
        return all(h, |b| b.is_ascii_hexdigit() || b == b'_')
            && h.bytes().any(|b| b.is_ascii_hexdigit());
    }
    if let Some(o) = s.strip_prefix("0o") {
        return all(o, |b| (b'0'..=b'7').contains(&b));
    }
    if let Some(b) = u.strip_prefix("0b") {
        return all(b, |c| c == b'0' || c == b'1' || c == b'_') && b.contains(['0', '1']);
    }
    if digits_(u) {
        return u.as_bytes()[0].is_ascii_digit();
    }
    // 1.1 sexagesimal: [-+]?[1-9][0-9_]*(:[0-5]?[0-9])+
    is_sexagesimal(u, false)
}

fn is_sexagesimal(u: &str, float: bool) -> bool {
    let mut parts = u.split(':');
    let Some(head) = parts.next() else {
        return false;
    };
    if !head.starts_with(|c: char| c.is_ascii_digit() && c != '0')
        || !all(head, |b| b.is_ascii_digit() || b == b'_')
    {
        return false;
    }
    let rest: Vec<&str> = parts.collect();
    if rest.is_empty() {
        return false;
    }
    let (last, middle) = rest.split_last().expect("non-empty");
    let sixty = |p: &str| {
        (1..=2).contains(&p.len())
            && all(p, |b| b.is_ascii_digit())
            && (p.len() == 1 || p.as_bytes()[0] <= b'5')
    };
    if !middle.iter().all(|p| sixty(p)) {
        return false;
    }
    if float {
        match last.split_once('.') {
            Some((a, b)) => sixty(a) && b.bytes().all(|c| c.is_ascii_digit() || c == b'_'),
            None => false,
        }
    } else {
        sixty(last)
    }
}

fn is_float(s: &str) -> bool {
    let u = strip_sign(s);
    if matches!(u, ".inf" | ".Inf" | ".INF") || matches!(s, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    if !u.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return false;
    }
    // mantissa: 1.2 `(\.[0-9]+|[0-9]+(\.[0-9]*)?)`, 1.1 `([0-9][0-9_]*)?\.[0-9._]*`
    let (mantissa, exp) = match u.bytes().position(|b| b == b'e' || b == b'E') {
        Some(i) => (&u[..i], Some(&u[i + 1..])),
        None => (u, None),
    };
    if let Some(e) = exp {
        let e = strip_sign(e);
        if !all(e, |b| b.is_ascii_digit()) {
            return false;
        }
    }
    let ok_mantissa = match mantissa.split_once('.') {
        Some((int, frac)) => {
            let int_ok = int.is_empty()
                || (int.as_bytes()[0].is_ascii_digit()
                    && all(int, |b| b.is_ascii_digit() || b == b'_'));
            let frac_ok = frac
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'_' || b == b'.');
            int_ok
                && frac_ok
                && (int.bytes().any(|b| b.is_ascii_digit())
                    || frac.bytes().any(|b| b.is_ascii_digit()))
        }
        // `[0-9]+` with an exponent is a 1.2 float; without one it is an int.
        None => exp.is_some() && all(mantissa, |b| b.is_ascii_digit()),
    };
    ok_mantissa || is_sexagesimal(u, true)
}

/// Would a YAML 1.1 or 1.2 (core schema) reader resolve this *plain* scalar
/// to a null, bool, int or float instead of a string?
pub fn resolves_to_non_string(s: &str) -> bool {
    // Every null, bool, int and float starts with one of these bytes; most
    // values (base64 text, tokens) are told apart by their first byte.
    let starts = s.as_bytes().first().is_none_or(|b| {
        matches!(
            b,
            b'0'..=b'9'
                | b'+'
                | b'-'
                | b'.'
                | b'~'
                | b't'
                | b'T'
                | b'f'
                | b'F'
                | b'y'
                | b'Y'
                | b'n'
                | b'N'
                | b'o'
                | b'O'
        )
    });
    starts && (is_null(s) || is_bool(s) || is_int(s) || is_float(s))
}

/// A YAML 1.1 timestamp, a merge key or a value key: strings to Kubernetes,
/// but some readers treat them specially, so quote them when writing.
fn special_plain(s: &str) -> bool {
    let b = s.as_bytes();
    let ymd = b.len() >= 8 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-';
    ymd || s == "<<" || s == "="
}

/// Characters YAML allows unescaped in a scalar (its printable set), minus
/// tab, which we always escape for clarity.
/// A character YAML allows in a scalar as is (no tab, no line break).
pub fn printable(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
        && c != '\u{feff}'
}

/// Can `s` be written as a block-context plain scalar that reads back as the
/// same string?
pub fn plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let last = s.chars().next_back().expect("non-empty");
    if !s.chars().all(printable) || resolves_to_non_string(s) || special_plain(s) {
        return false;
    }
    if matches!(
        first,
        ',' | '['
            | ']'
            | '{'
            | '}'
            | '#'
            | '&'
            | '*'
            | '!'
            | '|'
            | '>'
            | '\''
            | '"'
            | '%'
            | '@'
            | '`'
            | ' '
    ) {
        return false;
    }
    if matches!(first, '-' | '?' | ':') {
        let second = s[1..].chars().next();
        if second.is_none_or(|c| c == ' ') {
            return false;
        }
    }
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    last != ' ' && last != ':' && !s.contains(": ") && !s.contains(" #")
}

/// Writes `s` as a double-quoted scalar. Only escapes that JSON shares with
/// YAML are used, so the result is also a valid JSON string.
pub fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if printable(c) => out.push(c),
            c => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

/// The column for the content of a literal block written in place of the
/// value that ends at `at`: the file's step, or deeper when comment lines
/// follow the value at that column or beyond — those would otherwise become
/// block content (a comment indented like the next key, after a section
/// indented by one space).
pub fn block_indent(text: &str, at: usize, step_indent: usize) -> usize {
    let mut indent = step_indent;
    let rest = &text[at..];
    let Some(first_break) = rest.find('\n') else {
        return indent;
    };
    for line in rest[first_break + 1..].split('\n') {
        let body = line.trim_start_matches([' ', '\t']);
        if body.trim_end_matches('\r').is_empty() {
            continue;
        }
        if !body.starts_with('#') {
            break;
        }
        let column = line.len() - body.len();
        indent = indent.max(column + 1);
    }
    indent
}

/// Where the spaces and tabs after `at` on its line end. A literal block
/// written in place of a value that ends at `at` replaces them too:
/// left there, they would follow the block's last line of content and be
/// read as part of it.
pub fn past_blanks(text: &str, at: usize) -> usize {
    at + text[at..]
        .bytes()
        .take_while(|&b| b == b' ' || b == b'\t')
        .count()
}

/// A literal block (`|` or `|-`) for multi-line text, when one can hold the
/// value exactly; `None` when only double quotes can.
fn literal_block(s: &str, ctx: &Context<'_>) -> Option<String> {
    if !(ctx.line_rest_empty || ctx.header_comment.is_some()) || ctx.flow {
        return None;
    }
    let (body, chomp) = match s.strip_suffix('\n') {
        Some(b) if !b.ends_with('\n') => (b, ""),
        Some(_) => return None, // several trailing newlines: keep-chomping is fragile
        None => (s, "-"),
    };
    let lines: Vec<&str> = body.split('\n').collect();
    let first_ok = lines[0].chars().next().is_some_and(|c| c != ' ');
    let lines_ok = lines
        .iter()
        .all(|l| l.chars().all(printable) && !l.ends_with(' '));
    if !first_ok || !lines_ok {
        return None;
    }
    let pad = " ".repeat(ctx.indent);
    let mut out = String::with_capacity(s.len() + lines.len() * (ctx.indent + 2) + 4);
    out.push('|');
    out.push_str(chomp);
    if !ctx.line_rest_empty {
        out.push_str(ctx.header_comment.unwrap_or_default());
    }
    for l in &lines {
        out.push_str(ctx.newline);
        if !l.is_empty() {
            out.push_str(&pad);
            out.push_str(l);
        }
    }
    Some(out)
}

/// Writes a clear value at a site in the style ksec emits.
pub fn render(s: &str, ctx: &Context<'_>) -> String {
    if ctx.flow {
        return double_quoted(s);
    }
    if s.contains('\n') {
        if let Some(block) = literal_block(s, ctx) {
            return block;
        }
        return double_quoted(s);
    }
    if plain_safe(s) {
        s.to_owned()
    } else {
        double_quoted(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_strings_in_either_yaml_version() {
        for s in [
            "",
            "~",
            "null",
            "NULL",
            "true",
            "False",
            "yes",
            "NO",
            "on",
            "Off",
            "y",
            "n",
            "123",
            "-1",
            "+7",
            "0755",
            "0x1F",
            "0o17",
            "0b101",
            "1_000",
            "1.5",
            ".5",
            "1e3",
            "-1.5e-3",
            "1.",
            ".inf",
            "-.Inf",
            ".nan",
            "190:20:30",
            "1:30.5",
            "6.8523015e+5",
        ] {
            assert!(resolves_to_non_string(s), "{s:?} should be a non-string");
        }
        for s in [
            "abc",
            "YWJj",
            "1a",
            "0xZZ",
            "e3",
            ".",
            "1.2.3a",
            "yes!",
            "Yes please",
            "2001-12-14",
            "nulls",
            "-",
            "_1",
            "1e",
            "0o8",
            "0b2",
        ] {
            assert!(!resolves_to_non_string(s), "{s:?} should be a string");
        }
    }

    #[test]
    fn plain_or_quoted() {
        let ctx = Context {
            flow: false,
            indent: 4,
            newline: "\n",
            line_rest_empty: true,
            header_comment: None,
        };
        assert_eq!(render("s3cr3t-p@ssw0rd!", &ctx), "s3cr3t-p@ssw0rd!");
        assert_eq!(render("YWRtaW4=", &ctx), "YWRtaW4=");
        assert_eq!(render("1234", &ctx), "\"1234\"");
        assert_eq!(render("yes", &ctx), "\"yes\"");
        assert_eq!(render("", &ctx), "\"\"");
        assert_eq!(render("a: b", &ctx), "\"a: b\"");
        assert_eq!(render("#x", &ctx), "\"#x\"");
        assert_eq!(render(" lead", &ctx), "\" lead\"");
        assert_eq!(render("2001-12-14", &ctx), "\"2001-12-14\"");
        assert_eq!(render("-abc", &ctx), "-abc");
        assert_eq!(render("- abc", &ctx), "\"- abc\"");
        assert_eq!(render("tab\there", &ctx), "\"tab\\there\"");
        assert_eq!(render("bell\u{7}", &ctx), "\"bell\\u0007\"");
        assert_eq!(render("héllo wörld", &ctx), "héllo wörld");
        assert_eq!(render("a\nb\n", &ctx), "|\n    a\n    b");
        assert_eq!(render("a\n\nb", &ctx), "|-\n    a\n\n    b");
        assert_eq!(render("a\nb\n\n", &ctx), "\"a\\nb\\n\\n\"");
        assert_eq!(render(" a\nb", &ctx), "\" a\\nb\"");
        let flow = Context { flow: true, ..ctx };
        assert_eq!(render("abc", &flow), "\"abc\"");
        let crlf = Context {
            newline: "\r\n",
            ..ctx
        };
        assert_eq!(render("a\nb\n", &crlf), "|\r\n    a\r\n    b");
    }
}
