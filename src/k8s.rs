//! What Kubernetes itself requires of a Secret: valid keys, and `data`
//! values in base64 as the API server reads it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

/// Whether Kubernetes accepts `key` as a Secret key: one or more of `-`,
/// `.`, `_`, ASCII letters and digits.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// Whether `name` is a valid object name for a Secret: a DNS-1123
/// subdomain (lowercase letters, digits, `-` and `.`, starting and ending
/// with a letter or digit, at most 253 characters).
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 253
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Whether `ns` is a valid namespace: a DNS-1123 label (lowercase letters,
/// digits and `-`, starting and ending with a letter or digit, at most 63).
pub fn valid_namespace(ns: &str) -> bool {
    let b = ns.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Checks a `data` value: standard base64 (line breaks ignored, as
/// Kubernetes' decoder does).
///
/// Like Go's `base64.StdEncoding` (what the API server uses): the standard
/// alphabet, `=` padding to a multiple of four, unused trailing bits allowed.
/// Allocation-free: every `data` value of a file passes through here.
pub fn valid_base64(s: &str) -> bool {
    let mut count = 0usize;
    let mut padding = 0usize;
    for b in s.bytes().filter(|b| !matches!(b, b'\n' | b'\r')) {
        match b {
            b'=' => padding += 1,
            _ if padding > 0 => return false,
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => {}
            _ => return false,
        }
        count += 1;
    }
    count.is_multiple_of(4) && padding <= 2 && !(count == padding && count > 0)
}

/// The decoder that matches [`valid_base64`].
const GO_STD: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Decodes a `data` value.
pub fn decode_base64(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    let compact: Zeroizing<String> =
        Zeroizing::new(s.chars().filter(|c| !matches!(c, '\n' | '\r')).collect());
    GO_STD.decode(compact.as_bytes()).ok().map(Zeroizing::new)
}

/// Encodes bytes as a `data` value.
pub fn encode_base64(b: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(B64.encode(b))
}

/// Encodes bytes as a `data` value, keeping `prior` (a previous version's
/// base64 text of the same key) when it decodes to the same bytes: line
/// breaks or a different wrapping in `prior` must not count as a change.
pub fn encode_data_like(bytes: &[u8], prior: Option<&str>) -> Zeroizing<String> {
    match prior {
        Some(p) if decode_base64(p).is_some_and(|d| *d == bytes) => Zeroizing::new(p.to_owned()),
        _ => encode_base64(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_kubernetes_reads_it() {
        for ok in [
            "", "YWJj", "YWI=", "YQ==", "YW\nJj", "YWJj\r\n", "YR==", "/+8=",
        ] {
            assert!(valid_base64(ok), "{ok:?}");
            assert!(decode_base64(ok).is_some(), "{ok:?}");
        }
        for bad in [
            "YWJ",
            "YWJj=",
            "YQ=A",
            "Y===",
            "====",
            "YW!j",
            "YWJj YWJj",
            "=YWJ",
        ] {
            assert!(!valid_base64(bad), "{bad:?}");
        }
    }

    #[test]
    fn secret_keys() {
        for ok in ["a", "tls.crt", "A_b-9"] {
            assert!(valid_key(ok));
        }
        for bad in ["", "a/b", "a b", "a\tb", "ä"] {
            assert!(!valid_key(bad), "{bad:?}");
        }
    }
}
