//! One Secret document: classify it, open it (unwrap the data key, decrypt
//! and verify every value and the MAC), and seal it (encrypt its values and
//! build its footer), keeping what did not change byte for byte.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

use crate::envelope::codec::{self, CodecError};
use crate::envelope::footer::{
    ClearSections, Footer, FooterError, KeyId, WrappedKey, kubesec_order,
};
use crate::envelope::{DataKey, mac};
use crate::keys::{KeyError, Keyring, UnwrapFailure};
use crate::manifest::{Document, Section, ValueSite};

/// Whether a document's values are encrypted.
#[derive(Debug)]
pub enum State {
    /// No footer, every value in clear text.
    Plain,
    /// A footer, every value a token.
    Encrypted(Footer),
}

/// Why a document cannot be used. The command adds file and document context.
/// Fields: `line` is 1-based, `key` is `section.key`.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocError {
    /// The footer does not parse.
    Footer { line: usize, error: FooterError },
    /// Some values are encrypted and some are not.
    Partial { line: usize, key: String },
    /// A footer but every value in clear text.
    FooterOnClearText { line: usize },
    /// Tokens but no footer.
    NoFooter { line: usize },
    /// A token that does not parse although it looks like one.
    Corrupt { line: usize, key: String },
    /// A `data` value that is not base64.
    NotBase64 { line: usize, key: String },
    /// A value the format cannot hold.
    Value {
        line: usize,
        key: String,
        error: CodecError,
    },
    /// A value that does not authenticate under the data key.
    Authentication { line: usize, key: String },
    /// A v3/v4 footer without a MAC line.
    MissingMac { line: usize },
    /// A v1/v2 file: no MAC to check.
    NoMacInFormat { version: u8 },
    /// The MAC does not verify.
    MacMismatch { line: usize },
    /// No key opened the data key.
    Unwrap(UnwrapFailure),
    /// A key could not wrap the data key.
    Wrap { key: KeyId, error: KeyError },
}

/// A clear value with its current token, in file order.
#[derive(Clone)]
pub struct ClearValue {
    /// Section of the value.
    pub section: Section,
    /// Map key.
    pub key: String,
    /// The clear text (base64 text for `data`).
    pub clear: Zeroizing<String>,
    /// The token it was read from (empty for a v1 empty value and for a
    /// value of a section kept in clear text).
    pub token: String,
}

/// An opened document.
#[derive(Clone)]
pub struct Opened {
    /// The data key.
    pub dek: DataKey,
    /// The footer as read.
    pub footer: Footer,
    /// The values, in file order.
    pub values: Vec<ClearValue>,
}

/// A token shape check loose enough to tell a damaged token from clear text:
/// base64 characters in two or three dot-separated parts.
pub fn token_shaped(s: &str) -> bool {
    let parts = s.split('.').count();
    (2..=3).contains(&parts)
        && s.len() >= 20
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'.'))
}

/// Decides whether a document is plain or encrypted, refusing mixtures.
pub fn classify(doc: &Document) -> Result<State, DocError> {
    let footer = match &doc.footer {
        Some(block) => Some(
            Footer::parse(block.lines.iter().map(String::as_str)).map_err(|error| {
                let line = match &error {
                    FooterError::Unparsable { line, .. }
                    | FooterError::UnknownType { line, .. }
                    | FooterError::UnknownKsecLine { line, .. } => block.line + line,
                    _ => block.line,
                };
                DocError::Footer { line, error }
            })?,
        ),
        None => None,
    };
    let v1 = footer.as_ref().is_some_and(|f| f.version == 1);
    let clear = footer
        .as_ref()
        .map_or_else(ClearSections::default, |f| f.clear);
    let is_token = |s: &ValueSite| codec::looks_encrypted(&s.value) || (v1 && s.value.is_empty());
    // Values of sections kept clear on purpose are neither tokens nor clear
    // text that should have been encrypted.
    let sealed = || doc.sites.iter().filter(|s| !is_clear(clear, s.section));
    let first_clear = sealed().find(|s| !is_token(s));
    let first_token = sealed().find(|s| is_token(s));
    match (footer, first_clear, first_token) {
        (None, None, None) | (None, Some(_), None) => Ok(State::Plain),
        (None, _, Some(t)) => Err(DocError::NoFooter { line: t.line }),
        (Some(f), None, _) => Ok(State::Encrypted(f)),
        (Some(_), Some(c), Some(_)) | (Some(_), Some(c), None) if token_shaped(&c.value) => {
            Err(DocError::Corrupt {
                line: c.line,
                key: label(c),
            })
        }
        (Some(_), Some(c), Some(_)) => Err(DocError::Partial {
            line: c.line,
            key: label(c),
        }),
        (Some(_), Some(_), None) => Err(DocError::FooterOnClearText {
            line: doc.footer.as_ref().map_or(doc.line, |b| b.line),
        }),
    }
}

/// Whether `section` is one that `clear` keeps in clear text.
pub fn is_clear(clear: ClearSections, section: Section) -> bool {
    clear.contains(section.as_str())
}

/// `section.key`.
pub fn label(site: &ValueSite) -> String {
    format!("{}.{}", site.section.as_str(), site.key)
}

/// How strictly to open.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// Accept v1/v2 documents, which carry no MAC.
    pub allow_missing_mac: bool,
    /// Do not check the MAC at all (repair: `recompute-mac`).
    pub skip_mac: bool,
    /// Do not keep each value's token in the result (for output that will
    /// not be sealed again; saves a copy of every ciphertext).
    pub drop_tokens: bool,
}

/// Unwraps the data key and decrypts and verifies every value.
pub fn open(
    doc: &Document,
    footer: Footer,
    keyring: &Keyring,
    opts: OpenOptions,
) -> Result<Opened, DocError> {
    if footer.version < 3 && !opts.allow_missing_mac && !opts.skip_mac {
        return Err(DocError::NoMacInFormat {
            version: footer.version,
        });
    }
    let dek = keyring.unwrap(&footer.keys).map_err(DocError::Unwrap)?;
    open_with_key(doc, footer, dek, opts)
}

/// Decrypts and verifies every value with a known data key.
pub fn open_with_key(
    doc: &Document,
    footer: Footer,
    dek: DataKey,
    opts: OpenOptions,
) -> Result<Opened, DocError> {
    let mut values = Vec::with_capacity(doc.sites.len());
    let cipher = codec::ValueCipher::new(&dek);
    for s in &doc.sites {
        if is_clear(footer.clear, s.section) {
            // Kept in clear text on purpose; the MAC below still covers it.
            values.push(ClearValue {
                section: s.section,
                key: s.key.clone(),
                clear: Zeroizing::new(s.value.clone()),
                token: String::new(),
            });
            continue;
        }
        let clear = if footer.version == 1 && s.value.is_empty() {
            Zeroizing::new(String::new())
        } else {
            cipher
                .decrypt_value(&s.key, &s.value)
                .map_err(|e| match e {
                    CodecError::Malformed => DocError::Corrupt {
                        line: s.line,
                        key: label(s),
                    },
                    _ => DocError::Authentication {
                        line: s.line,
                        key: label(s),
                    },
                })?
        };
        values.push(ClearValue {
            section: s.section,
            key: s.key.clone(),
            clear,
            token: if opts.drop_tokens {
                String::new()
            } else {
                s.value.clone()
            },
        });
    }
    let footer_line = doc.footer.as_ref().map_or(doc.line, |b| b.line);
    if !opts.skip_mac && footer.version >= 3 {
        let Some(m) = &footer.mac else {
            return Err(DocError::MissingMac { line: footer_line });
        };
        let ids: Vec<KeyId> = footer.keys.iter().map(|k| k.key.clone()).collect();
        let aad = mac_aad(&values, &ids);
        mac::verify(&dek, &aad, m).map_err(|_| DocError::MacMismatch { line: footer_line })?;
    }
    Ok(Opened {
        dek,
        footer,
        values,
    })
}

fn mac_aad(values: &[ClearValue], keys: &[KeyId]) -> Zeroizing<Vec<u8>> {
    let pick = |sec: Section| -> Vec<(&str, &str)> {
        values
            .iter()
            .filter(|v| v.section == sec)
            .map(|v| (v.key.as_str(), v.clear.as_str()))
            .collect()
    };
    mac::aad(&pick(Section::Data), &pick(Section::StringData), keys)
}

/// A value to seal.
pub struct Plain {
    /// Section.
    pub section: Section,
    /// Map key.
    pub key: String,
    /// Clear text (base64 text for `data`).
    pub clear: Zeroizing<String>,
    /// 1-based line, for errors.
    pub line: usize,
}

/// A sealed document: one token per value (same order) and the footer.
pub struct Sealed {
    /// The data key used.
    pub dek: DataKey,
    /// Tokens, in the order of the values given.
    pub tokens: Vec<String>,
    /// The new footer.
    pub footer: Footer,
}

/// The data key to seal with: the previous one, unless there is none or the
/// key must rotate (a key was removed, or `--rotate`).
pub fn sealing_key(previous: Option<&Opened>, rotate: bool) -> DataKey {
    match previous {
        Some(p) if !rotate => p.dek.clone(),
        _ => DataKey::generate(),
    }
}

/// Encrypts `values` for `keys` under `dek`. When `previous` was sealed with
/// the same data key, every unchanged value keeps its token (so its IV and
/// bytes), existing key lines keep their blobs, and the MAC line is kept when
/// it still verifies; changed values always get a fresh IV. A new data key is
/// recorded in the footer as generated at `now` (`# ksec:rotated:`); a kept
/// one keeps its record. Values of the sections in `clear` are not
/// encrypted: their "token" is the clear value itself.
pub fn seal(
    values: &[Plain],
    keys: &[KeyId],
    previous: Option<&Opened>,
    dek: DataKey,
    keyring: &Keyring,
    now: &str,
    clear: ClearSections,
) -> Result<Sealed, DocError> {
    let previous = previous.filter(|p| p.dek == dek);
    let mut tokens = Vec::with_capacity(values.len());
    let cipher = codec::ValueCipher::new(&dek);
    let before: std::collections::HashMap<(Section, &str), &ClearValue> = previous
        .map(|p| {
            p.values
                .iter()
                .map(|o| ((o.section, o.key.as_str()), o))
                .collect()
        })
        .unwrap_or_default();
    for v in values {
        if is_clear(clear, v.section) {
            tokens.push(v.clear.to_string());
            continue;
        }
        let reused = before
            .get(&(v.section, v.key.as_str()))
            .filter(|o| *o.clear == *v.clear && codec::looks_encrypted(&o.token))
            .map(|o| o.token.clone());
        let token = match reused {
            Some(t) => t,
            None => cipher
                .encrypt_value(&v.key, &v.clear, &codec::random_iv())
                .map_err(|error| DocError::Value {
                    line: v.line,
                    key: format!("{}.{}", v.section.as_str(), v.key),
                    error,
                })?,
        };
        tokens.push(token);
    }
    let mut ordered: Vec<KeyId> = keys.to_vec();
    kubesec_order(&mut ordered, |k| k);
    let mut wrapped = Vec::with_capacity(ordered.len());
    for key in ordered {
        let old = previous.and_then(|p| p.footer.keys.iter().find(|w| w.key == key));
        let blob = match old {
            Some(w) => w.blob.clone(),
            None => keyring.wrap(&key, &dek).map_err(|error| DocError::Wrap {
                key: key.clone(),
                error,
            })?,
        };
        wrapped.push(WrappedKey { key, blob });
    }
    let ids: Vec<KeyId> = wrapped.iter().map(|w| w.key.clone()).collect();
    let sealed_values: Vec<ClearValue> = values
        .iter()
        .zip(&tokens)
        .map(|(v, t)| ClearValue {
            section: v.section,
            key: v.key.clone(),
            clear: v.clear.clone(),
            token: t.clone(),
        })
        .collect();
    let aad = mac_aad(&sealed_values, &ids);
    let kept_mac = previous
        .and_then(|p| p.footer.mac.as_ref())
        .filter(|m| mac::verify(&dek, &aad, m).is_ok())
        .cloned();
    let mac = kept_mac.unwrap_or_else(|| mac::compute(&dek, &aad, &codec::random_iv()));
    let version = if values.iter().any(|v| v.section == Section::StringData) {
        4
    } else {
        3
    };
    let rotated = match previous {
        Some(p) => p.footer.rotated.clone(),
        None => Some(now.to_owned()),
    };
    Ok(Sealed {
        dek,
        tokens,
        footer: Footer {
            version,
            keys: wrapped,
            mac: Some(mac),
            rotated,
            clear,
        },
    })
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

/// Encodes bytes as a `data` value, keeping `prior` (a previous version's
/// base64 text of the same key) when it decodes to the same bytes: line
/// breaks or a different wrapping in `prior` must not count as a change.
pub fn encode_data_like(bytes: &[u8], prior: Option<&str>) -> Zeroizing<String> {
    match prior {
        Some(p) if decode_base64(p).is_some_and(|d| *d == bytes) => Zeroizing::new(p.to_owned()),
        _ => encode_base64(bytes),
    }
}

/// Whether Kubernetes accepts `key` as a Secret key: one or more of `-`,
/// `.`, `_`, ASCII letters and digits.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// Encodes bytes as a `data` value.
pub fn encode_base64(b: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(B64.encode(b))
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
}
