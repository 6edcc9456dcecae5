//! How sops types a YAML scalar, and the bytes it hashes and encrypts for
//! it.
//!
//! sops reads YAML with go-yaml v3 into Go values: plain scalars resolve to
//! null, bool, int, float or a timestamp by the YAML 1.2 core schema (plus
//! a few YAML 1.1 leftovers: `0755` is an octal int, dates are times);
//! quoted and block scalars are strings. The MAC is a SHA-512 over each
//! value's bytes in that typed form (`True`, `5432`, `0.5`, RFC 3339 for
//! times), and an encrypted value's plaintext is the same bytes. ksec must
//! type clear values exactly so, or the MAC of a file sops reads would not
//! match. The rules, checked against sops 3.11, are in the notes of the
//! SOPS issue; each has a case in the tests below.

use super::value::Kind;

/// A scalar as sops sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Typed {
    /// `null`, `~`, empty: not encrypted, not in the MAC.
    Null,
    /// A string.
    Str(String),
    /// A 64-bit integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A timestamp, already in sops' RFC 3339 form.
    Time(String),
}

impl Typed {
    /// The bytes sops hashes and encrypts for the value (empty for null).
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Typed::Null => Vec::new(),
            Typed::Str(s) | Typed::Time(s) => s.as_bytes().to_vec(),
            Typed::Int(i) => i.to_string().into_bytes(),
            Typed::Float(f) => format_float(*f).into_bytes(),
            Typed::Bool(b) => (if *b { "True" } else { "False" }).as_bytes().to_vec(),
        }
    }

    /// The `type:` an encrypted value of this kind carries.
    pub fn kind(&self) -> Kind {
        match self {
            Typed::Null | Typed::Str(_) => Kind::Str,
            Typed::Int(_) => Kind::Int,
            Typed::Float(_) => Kind::Float,
            Typed::Bool(_) => Kind::Bool,
            Typed::Time(_) => Kind::Time,
        }
    }
}

/// Why a scalar cannot be typed the way sops types it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    /// An integer beyond 64 bits: sops itself cannot encrypt it.
    #[error("the integer `{0}` is larger than sops can handle (64 bits); quote it")]
    TooLarge(String),
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: the shortest digits that
/// read back as `f`, never an exponent.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        // Rust's Display is the shortest round-trip form without exponent.
        format!("{f}")
    }
}

/// Types a scalar: `plain` for plain style (subject to resolution), `tag`
/// the core-schema tag suffix if tagged (`str`, `int`, `binary`, …).
pub fn resolve(text: &str, plain: bool, tag: Option<&str>) -> Result<Typed, TypeError> {
    match tag {
        Some("str") => return Ok(Typed::Str(text.to_owned())),
        Some("binary") => {
            let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = crate::k8s::decode_base64(&compact)
                .map(|b| b.to_vec())
                .unwrap_or_default();
            return Ok(Typed::Str(String::from_utf8_lossy(&bytes).into_owned()));
        }
        _ => {}
    }
    if !plain && tag.is_none() {
        return Ok(Typed::Str(text.to_owned()));
    }
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Ok(Typed::Null);
    }
    match text {
        "true" | "True" | "TRUE" => return Ok(Typed::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Typed::Bool(false)),
        _ => {}
    }
    if let Some(i) = int(text)? {
        return Ok(i);
    }
    if let Some(f) = float(text) {
        return Ok(Typed::Float(f));
    }
    if let Some(t) = timestamp(text) {
        return Ok(Typed::Time(t));
    }
    Ok(Typed::Str(text.to_owned()))
}

/// Integers as go-yaml v3 resolves them: decimal (with `_`), `0x`, `0o`,
/// `0b`, and the YAML 1.1 octal `0755`. Beyond 64 bits: an error above,
/// a float below.
fn int(text: &str) -> Result<Option<Typed>, TypeError> {
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let clean: String = body.chars().filter(|&c| c != '_').collect();
    let digits_ok = |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    let (radix, digits) = if let Some(h) = clean.strip_prefix("0x") {
        (16, h)
    } else if let Some(o) = clean.strip_prefix("0o") {
        (8, o)
    } else if let Some(b) = clean.strip_prefix("0b") {
        (2, b)
    } else if clean.len() > 1 && clean.starts_with('0') && digits_ok(&clean, 8) {
        (8, &clean[1..])
    } else {
        (10, clean.as_str())
    };
    if !digits_ok(digits, radix) || body.starts_with('_') {
        return Ok(None);
    }
    let magnitude = u128::from_str_radix(digits, radix).ok();
    let value = magnitude.and_then(|m| {
        let m = i128::try_from(m).ok()?;
        i64::try_from(if neg { -m } else { m }).ok()
    });
    match value {
        Some(v) => Ok(Some(Typed::Int(v))),
        None if neg => Ok(Some(Typed::Float(
            text.replace('_', "").parse().unwrap_or(f64::MIN),
        ))),
        None => Err(TypeError::TooLarge(text.to_owned())),
    }
}

/// Floats of the core schema: `1.5`, `.5`, `1.`, `1e3`, `.inf`, `.nan`.
fn float(text: &str) -> Option<f64> {
    let lower = text.to_ascii_lowercase();
    match lower.trim_start_matches(['+', '-']) {
        ".inf" => {
            return Some(if text.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            });
        }
        ".nan" if !text.starts_with(['+', '-']) => return Some(f64::NAN),
        _ => {}
    }
    let body = text.trim_start_matches(['+', '-']);
    let first = body.chars().next()?;
    let valid = (first.is_ascii_digit() || first == '.')
        && body.chars().any(|c| c.is_ascii_digit())
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-' | '_'))
        && (body.contains('.') || body.contains(['e', 'E']));
    if !valid {
        return None;
    }
    text.replace('_', "").parse().ok()
}

/// YAML timestamps (`2024-01-02`, `2024-1-2T03:04:05.5Z`, `… 03:04:05 +02:00`)
/// in Go's `time.MarshalText` form: RFC 3339 with the fraction's trailing
/// zeros dropped, `Z` for UTC (also when no zone is given).
fn timestamp(text: &str) -> Option<String> {
    let (date, rest) = match text.find(['T', 't', ' ']) {
        Some(i) => (&text[..i], Some(text[i + 1..].trim_start())),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || y.len() != 4
        || !(1..=2).contains(&m.len())
        || !(1..=2).contains(&d.len())
        || ![y, m, d]
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let (mo, da): (u32, u32) = (m.parse().ok()?, d.parse().ok()?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) {
        return None;
    }
    let date = format!("{y}-{mo:02}-{da:02}");
    let Some(rest) = rest else {
        return Some(format!("{date}T00:00:00Z"));
    };
    // hh:mm:ss[.frac][zone]
    let zone_at = rest
        .char_indices()
        .skip(1)
        .find(|(_, c)| matches!(c, 'Z' | 'z' | '+' | '-' | ' '))
        .map_or(rest.len(), |(i, _)| i);
    let (clock, zone) = rest.split_at(zone_at);
    let zone = zone.trim();
    let (hms, frac) = match clock.split_once('.') {
        Some((h, f)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => (h, f),
        Some(_) => return None,
        None => (clock, ""),
    };
    let mut t = hms.split(':');
    let (h, mi, s) = (t.next()?, t.next()?, t.next()?);
    if t.next().is_some()
        || !(1..=2).contains(&h.len())
        || mi.len() != 2
        || s.len() != 2
        || ![h, mi, s]
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let frac = frac.trim_end_matches('0');
    let frac = if frac.is_empty() {
        String::new()
    } else {
        format!(".{}", &frac[..frac.len().min(9)])
    };
    let zone = match zone {
        "" | "Z" | "z" => "Z".to_owned(),
        z => {
            let (sign, hm) = z.split_at(1);
            let (zh, zm) = match hm.split_once(':') {
                Some((a, b)) => (a, b),
                None if hm.len() <= 2 => (hm, "00"),
                None => hm.split_at(2),
            };
            let (zh, zm): (u32, u32) = (zh.parse().ok()?, zm.parse().ok()?);
            format!("{sign}{zh:02}:{zm:02}")
        }
    };
    let h: u32 = h.parse().ok()?;
    Some(format!("{date}T{h:02}:{mi}:{s}{frac}{zone}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(text: &str) -> String {
        String::from_utf8(resolve(text, true, None).unwrap().bytes()).unwrap()
    }

    /// Cases checked against sops 3.11 (its MAC input for each scalar).
    #[test]
    fn resolves_as_go_yaml_v3() {
        for (plain, want) in [
            ("42", "42"),
            ("+5", "5"),
            ("-0", "0"),
            ("1_000", "1000"),
            ("0x1F", "31"),
            ("0o17", "15"),
            ("0b101", "5"),
            ("0755", "493"),
            ("3.14", "3.14"),
            (".5", "0.5"),
            ("1.", "1"),
            ("1.0", "1"),
            ("1E3", "1000"),
            ("1e21", "1000000000000000000000"),
            (".inf", "+Inf"),
            ("-.Inf", "-Inf"),
            (".nan", "NaN"),
            ("true", "True"),
            ("FALSE", "False"),
            ("yes", "yes"),
            ("on", "on"),
            ("2024-01-02", "2024-01-02T00:00:00Z"),
            ("2024-1-2", "2024-01-02T00:00:00Z"),
            ("2024-01-02 03:04:05", "2024-01-02T03:04:05Z"),
            ("2024-01-02T03:04:05.100Z", "2024-01-02T03:04:05.1Z"),
            ("2024-01-02T03:04:05+02:00", "2024-01-02T03:04:05+02:00"),
            ("hello", "hello"),
            ("-9223372036854775809", "-9223372036854776000"),
        ] {
            assert_eq!(bytes(plain), want, "{plain}");
        }
        assert_eq!(resolve("null", true, None).unwrap(), Typed::Null);
        assert_eq!(resolve("", true, None).unwrap(), Typed::Null);
        assert_eq!(
            resolve("123", false, None).unwrap(),
            Typed::Str("123".into())
        );
        assert_eq!(
            resolve("123", true, Some("str")).unwrap(),
            Typed::Str("123".into())
        );
        assert_eq!(
            resolve("aGVsbG8=", true, Some("binary")).unwrap(),
            Typed::Str("hello".into())
        );
        assert!(resolve("12345678901234567890", true, None).is_err());
        assert_eq!(resolve("5432", true, None).unwrap().kind(), Kind::Int);
    }
}
