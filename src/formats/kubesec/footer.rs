//! Footer lines: the comments after a document that carry the format version,
//! the wrapped data keys and the MAC.
//!
//! ```text
//! # kubesec:v:3                      (v:4 when stringData is non-empty)
//! # kubesec:<type>:<id>:<b64 blob>   one line per key that wraps the data key
//! # kubesec:mac:<b64 iv>.<b64 tag>
//! ```
//!
//! Fields split on `:`; an id may itself contain `:` (AWS ARNs), so the id is
//! everything between the type and the last field. Lines that only ksec
//! understands start with `# ksec:` so that kubesec ignores them (kubesec
//! reads only lines that start with `# kubesec:`). There is one:
//!
//! ```text
//! # ksec:rotated:2025-06-01T12:00:00Z   when ksec generated this data key
//! ```
//!
//! written after the MAC line whenever ksec generates a data key (first
//! encryption, `--rotate`, removing a key) and kept while the data key is
//! kept. The MAC does not cover it (kubesec's MAC has no room for it), so it
//! is information, not evidence.
//!
//! ```text
//! # ksec:clear:stringData               sections kept in clear text on purpose
//! ```
//!
//! written when a `.ksec.yaml` rule encrypts only some sections. The values
//! of such a section stay as they are, and the MAC still covers them (it is
//! computed over clear values anyway), so changing one is detected. A
//! missing or edited line cannot hide anything either: a clear value in a
//! section the footer does not name is a partly encrypted document, and a
//! token in a section it names is not decrypted. kubesec cannot read such
//! files (it would try to decrypt the clear values).
//!
//! ```text
//! # ksec:aws-context:namespace,name     AWS KMS wraps with the Secret's namespace and name as encryption context
//! # ksec:bind:<b64 iv>.<b64 tag>        a second MAC over what kubesec's leaves out
//! ```
//!
//! The binding ([`super::binding`]) covers the Secret's apiVersion, kind,
//! namespace, name and type, each value's section and key, and the other
//! footer lines; kubesec ignores it. The AWS context line makes the file
//! ksec-only: KMS itself refuses to unwrap the data key of a Secret that
//! was renamed or moved to another namespace.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::keys::{KeyId, KeyParams, KeyType, WrappedKey};
use crate::manifest::ClearSections;

/// The prefix of every kubesec footer line.
pub const KUBESEC_PREFIX: &str = "# kubesec:";
/// The prefix of footer lines kubesec must ignore.
pub const KSEC_PREFIX: &str = "# ksec:";
/// The ksec line that records when the data key was generated.
const ROTATED: &str = "rotated:";
/// The ksec line that names the sections kept in clear text.
const CLEAR: &str = "clear:";
/// The ksec binding line.
const BIND: &str = "bind:";
/// The ksec line that asks for AWS KMS encryption context.
const AWS_CONTEXT: &str = "aws-context:namespace,name";

/// A parsed footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// Format version, 1 to 4.
    pub version: u8,
    /// Key lines, in file order.
    pub keys: Vec<WrappedKey>,
    /// The MAC token (`iv.tag`), absent in v1 and v2.
    pub mac: Option<String>,
    /// When ksec generated the data key (`# ksec:rotated:`), UTC, RFC 3339
    /// (`2025-06-01T12:00:00Z`). Absent in files kubesec wrote.
    pub rotated: Option<String>,
    /// Sections kept in clear text on purpose (`# ksec:clear:`).
    pub clear: ClearSections,
    /// AWS KMS keys wrap with the Secret's namespace and name as encryption
    /// context (`# ksec:aws-context:`).
    pub aws_context: bool,
    /// The binding MAC token (`iv.tag`, `# ksec:bind:`).
    pub binding: Option<String>,
}

/// Why a footer could not be read. Each carries the 0-based index of the
/// offending footer line where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FooterError {
    /// A line that is not `v:`, `mac:` or `<type>:<id>:<blob>`.
    #[error("cannot parse footer line `{text}`")]
    Unparsable {
        /// Index of the line within the footer.
        line: usize,
        /// The line, shortened.
        text: String,
    },
    /// A key type that neither kubesec nor ksec knows.
    #[error("unknown key type `{kind}` in footer line")]
    UnknownType {
        /// Index of the line within the footer.
        line: usize,
        /// The type name.
        kind: String,
    },
    /// A `# ksec:` line that this version does not understand.
    #[error("unknown ksec footer line `{text}` (written by a newer ksec?)")]
    UnknownKsecLine {
        /// Index of the line within the footer.
        line: usize,
        /// The line, shortened.
        text: String,
    },
    /// Version missing, repeated or out of range.
    #[error("{0}")]
    Version(&'static str),
    /// Two MAC lines.
    #[error("more than one MAC line")]
    DuplicateMac,
    /// Two `# ksec:rotated:` lines.
    #[error("more than one `# ksec:rotated:` line")]
    DuplicateRotated,
    /// Two `# ksec:clear:` lines.
    #[error("more than one `# ksec:clear:` line")]
    DuplicateClear,
    /// Two `# ksec:bind:` or `# ksec:aws-context:` lines.
    #[error("more than one `# ksec:{0}` line")]
    Duplicate(&'static str),
    /// The same key listed twice.
    #[error("key {0} is listed twice")]
    DuplicateKey(String),
    /// No key line at all: nobody can open the data key.
    #[error("the footer lists no key that wraps the data key")]
    NoKeys,
}

fn shorten(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

/// Whether a comment line (starting at column 0, line break removed) is a footer line.
pub fn is_footer_line(line: &str) -> bool {
    line.starts_with(KUBESEC_PREFIX) || line.starts_with(KSEC_PREFIX)
}

impl Footer {
    /// Parses footer lines (line breaks removed, `\r` allowed at the end).
    pub fn parse<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<Footer, FooterError> {
        let mut parts = Parts::default();
        for (i, raw) in lines.into_iter().enumerate() {
            let line = raw
                .strip_suffix('\r')
                .unwrap_or(raw)
                .trim_end_matches([' ', '\t']);
            match line.strip_prefix(KSEC_PREFIX) {
                Some(rest) => parts.ksec_line(i, rest)?,
                None => parts.kubesec_line(i, line)?,
            }
        }
        parts.finish()
    }

    /// Renders the footer lines (without line breaks) in kubesec's order:
    /// version, keys, MAC.
    pub fn render_lines(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.keys.len() + 2);
        out.push(format!("{KUBESEC_PREFIX}v:{}", self.version));
        for k in &self.keys {
            out.push(format!(
                "{KUBESEC_PREFIX}{}:{}:{}",
                k.key.kind,
                k.key.id,
                B64.encode(&k.blob)
            ));
        }
        if let Some(mac) = &self.mac {
            out.push(format!("{KUBESEC_PREFIX}mac:{mac}"));
        }
        out.extend(self.bound_ksec_lines());
        if let Some(b) = &self.binding {
            out.push(format!("{KSEC_PREFIX}{BIND}{b}"));
        }
        if let Some(ts) = &self.rotated {
            out.push(format!("{KSEC_PREFIX}{ROTATED}{ts}"));
        }
        out
    }

    /// The `# ksec:` lines the binding covers (clear sections, AWS context).
    fn bound_ksec_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.clear.is_empty() {
            out.push(format!("{KSEC_PREFIX}{CLEAR}{}", self.clear.names()));
        }
        if self.aws_context {
            out.push(format!("{KSEC_PREFIX}{AWS_CONTEXT}"));
        }
        out
    }

    /// The lines the binding covers: version, keys and the bound `# ksec:`
    /// lines, as rendered. Not the MAC (it authenticates the values, so a
    /// changed value changes its line and the MAC line only), the binding
    /// itself, or the rotation record (information only).
    pub fn bound_lines(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.keys.len() + 3);
        out.push(format!("{KUBESEC_PREFIX}v:{}", self.version));
        for k in &self.keys {
            out.push(format!(
                "{KUBESEC_PREFIX}{}:{}:{}",
                k.key.kind,
                k.key.id,
                B64.encode(&k.blob)
            ));
        }
        out.extend(self.bound_ksec_lines());
        out
    }

    /// Whether kubesec can read this footer: only kubesec key types, no
    /// section kept in clear text (kubesec would try to decrypt it), no AWS
    /// encryption context (kubesec sends none).
    pub fn kubesec_compatible(&self) -> bool {
        self.clear.is_empty()
            && !(self.aws_context && self.keys.iter().any(|k| k.key.kind == KeyType::Aws))
            && self.keys.iter().all(|k| kubesec_knows(k.key.kind))
    }
}

/// A footer being read, line by line.
#[derive(Default)]
struct Parts {
    version: Option<u8>,
    keys: Vec<WrappedKey>,
    mac: Option<String>,
    rotated: Option<String>,
    clear: Option<ClearSections>,
    aws_context: bool,
    binding: Option<String>,
}

impl Parts {
    /// A `# ksec:` line (after the prefix): the rotation record or the
    /// clear sections. Anything else is refused rather than dropped.
    fn ksec_line(&mut self, i: usize, rest: &str) -> Result<(), FooterError> {
        if let Some(ts) = rest.strip_prefix(ROTATED)
            && crate::clock::parse_rfc3339(ts).is_some()
        {
            if self.rotated.is_some() {
                return Err(FooterError::DuplicateRotated);
            }
            self.rotated = Some(ts.to_owned());
            return Ok(());
        }
        if let Some(c) = rest.strip_prefix(CLEAR).and_then(ClearSections::parse) {
            if self.clear.is_some() {
                return Err(FooterError::DuplicateClear);
            }
            self.clear = Some(c);
            return Ok(());
        }
        if rest == AWS_CONTEXT {
            if self.aws_context {
                return Err(FooterError::Duplicate("aws-context"));
            }
            self.aws_context = true;
            return Ok(());
        }
        if let Some(b) = rest.strip_prefix(BIND)
            && super::codec::Token::parse(b).is_ok_and(|t| t.ciphertext.is_empty())
        {
            if self.binding.is_some() {
                return Err(FooterError::Duplicate("bind"));
            }
            self.binding = Some(b.to_owned());
            return Ok(());
        }
        Err(FooterError::UnknownKsecLine {
            line: i,
            text: shorten(&format!("{KSEC_PREFIX}{rest}")),
        })
    }

    /// A `# kubesec:` line: version, MAC, or a key line.
    fn kubesec_line(&mut self, i: usize, line: &str) -> Result<(), FooterError> {
        let unparsable = || FooterError::Unparsable {
            line: i,
            text: shorten(line),
        };
        let rest = line.strip_prefix(KUBESEC_PREFIX).ok_or_else(unparsable)?;
        let fields: Vec<&str> = rest.split(':').collect();
        match fields.as_slice() {
            ["v", v] => {
                if self.version.is_some() {
                    return Err(FooterError::Version("more than one version line"));
                }
                self.version = Some(match *v {
                    "1" => 1,
                    "2" => 2,
                    "3" => 3,
                    "4" => 4,
                    _ => {
                        return Err(FooterError::Version(
                            "unsupported format version (ksec reads v1 to v4)",
                        ));
                    }
                });
            }
            ["mac", m] => {
                if self.mac.is_some() {
                    return Err(FooterError::DuplicateMac);
                }
                // `iv.tag`: a damaged MAC line is a footer that does not
                // parse, not a MAC that does not verify.
                let token = super::codec::Token::parse(m).map_err(|_| unparsable())?;
                if !token.ciphertext.is_empty() {
                    return Err(unparsable());
                }
                self.mac = Some((*m).to_owned());
            }
            [kind, id @ .., blob] if !id.is_empty() => {
                let kind = key_type(kind).ok_or_else(|| FooterError::UnknownType {
                    line: i,
                    kind: shorten(kind),
                })?;
                let id = id.join(":");
                if id.is_empty() {
                    return Err(unparsable());
                }
                let blob = B64.decode(blob).map_err(|_| unparsable())?;
                let key = KeyId { kind, id };
                if self.keys.iter().any(|k| k.key == key) {
                    return Err(FooterError::DuplicateKey(key.to_string()));
                }
                self.keys.push(WrappedKey {
                    key,
                    params: params(),
                    blob,
                });
            }
            _ => return Err(unparsable()),
        }
        Ok(())
    }

    fn finish(self) -> Result<Footer, FooterError> {
        let version = self.version.ok_or(FooterError::Version(
            "the footer has no version line (`# kubesec:v:N`)",
        ))?;
        if self.keys.is_empty() {
            return Err(FooterError::NoKeys);
        }
        Ok(Footer {
            version,
            keys: self.keys,
            mac: self.mac,
            rotated: self.rotated,
            clear: self.clear.unwrap_or_default(),
            aws_context: self.aws_context,
            binding: self.binding,
        })
    }
}

/// How kubesec uses keys: PGP-wrapped data keys are signed (and their
/// signature required), no KMS encryption context.
pub fn params() -> KeyParams {
    KeyParams {
        pgp_signed: true,
        encryption_context: Vec::new(),
    }
}

/// The key types a kubesec footer can name: kubesec's own (`pgp`, `gcp`,
/// `aws`) and ksec's additions.
fn key_type(name: &str) -> Option<KeyType> {
    KeyType::parse(name)
}

/// Whether kubesec itself can read footers with this key type.
pub fn kubesec_knows(kind: KeyType) -> bool {
    matches!(kind, KeyType::Pgp | KeyType::Gcp | KeyType::Aws)
}

/// kubesec's order of key types: pgp < gcp < aws; ksec's additions after
/// (all equal: kubesec's sort keeps their given order).
fn rank(kind: KeyType) -> u8 {
    match kind {
        KeyType::Pgp => 0,
        KeyType::Gcp => 1,
        KeyType::Aws => 2,
        _ => 3,
    }
}

/// kubesec's key order: Go's `sort.Sort` (an insertion sort for short lists)
/// with `less(a, b) = type(a) < type(b) && id(a) < id(b)`. This is not a
/// proper ordering (keys of one type keep their given order, and a key of an
/// earlier type does not always move forward), so it is copied exactly: the
/// footer and the MAC of every file kubesec wrote depend on it.
pub fn kubesec_order<T>(items: &mut [T], key: impl Fn(&T) -> &KeyId) {
    let less = |a: &KeyId, b: &KeyId| rank(a.kind) < rank(b.kind) && a.id < b.id;
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 && less(key(&items[j]), key(&items[j - 1])) {
            items.swap(j, j - 1);
            j -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kid(kind: KeyType, id: &str) -> KeyId {
        KeyId {
            kind,
            id: id.into(),
        }
    }

    #[test]
    fn parses_arn_ids_with_colons() {
        let f = Footer::parse([
            "# kubesec:v:3",
            "# kubesec:aws:arn:aws:kms:us-east-1:123456789012:key/abc:AQID",
            "# kubesec:mac:X4VfM/AvTmvsgb7G.mNaSLQoWJ5ITMbe9OAUbKA==\r",
        ])
        .unwrap();
        assert_eq!(f.version, 3);
        assert_eq!(
            f.keys[0].key.id,
            "arn:aws:kms:us-east-1:123456789012:key/abc"
        );
        assert_eq!(f.keys[0].blob, vec![1, 2, 3]);
        assert_eq!(
            f.mac.as_deref(),
            Some("X4VfM/AvTmvsgb7G.mNaSLQoWJ5ITMbe9OAUbKA==")
        );
        let again = Footer::parse(f.render_lines().iter().map(String::as_str)).unwrap();
        assert_eq!(again, f);
    }

    #[test]
    fn refusals() {
        let e = |lines: &[&str]| Footer::parse(lines.iter().copied()).unwrap_err();
        assert!(matches!(
            e(&["# kubesec:v:3", "# kubesec:xyz:id:AQID"]),
            FooterError::UnknownType { .. }
        ));
        assert!(matches!(
            e(&["# kubesec:v:9", "# kubesec:age:a:AQID"]),
            FooterError::Version(_)
        ));
        assert!(matches!(
            e(&["# kubesec:age:a:AQID"]),
            FooterError::Version(_)
        ));
        assert!(matches!(e(&["# kubesec:v:3"]), FooterError::NoKeys));
        assert!(matches!(
            e(&["# kubesec:v:3", "# kubesec:age:a:!!"]),
            FooterError::Unparsable { .. }
        ));
        assert!(matches!(
            e(&["# kubesec:v:3", "# kubesec:nonsense"]),
            FooterError::Unparsable { .. }
        ));
        assert!(matches!(
            e(&["# kubesec:v:3", "# ksec:what:ever"]),
            FooterError::UnknownKsecLine { .. }
        ));
        assert!(matches!(
            e(&[
                "# kubesec:v:3",
                "# kubesec:age:a:AQID",
                "# kubesec:age:a:AQID"
            ]),
            FooterError::DuplicateKey(_)
        ));
    }

    #[test]
    fn rotation_line() {
        let f = Footer::parse([
            "# kubesec:v:3",
            "# kubesec:age:a:AQID",
            "# kubesec:mac:X4VfM/AvTmvsgb7G.mNaSLQoWJ5ITMbe9OAUbKA==",
            "# ksec:rotated:2025-06-01T12:00:00Z",
        ])
        .unwrap();
        assert_eq!(f.rotated.as_deref(), Some("2025-06-01T12:00:00Z"));
        assert_eq!(
            f.render_lines().last().unwrap(),
            "# ksec:rotated:2025-06-01T12:00:00Z"
        );
        let e = |lines: &[&str]| Footer::parse(lines.iter().copied()).unwrap_err();
        assert!(matches!(
            e(&[
                "# kubesec:v:3",
                "# kubesec:age:a:AQID",
                "# ksec:rotated:yesterday"
            ]),
            FooterError::UnknownKsecLine { .. }
        ));
        assert!(matches!(
            e(&[
                "# kubesec:v:3",
                "# kubesec:age:a:AQID",
                "# ksec:rotated:2025-06-01T12:00:00Z",
                "# ksec:rotated:2025-06-01T12:00:00Z"
            ]),
            FooterError::DuplicateRotated
        ));
    }

    #[test]
    fn clear_sections_line() {
        let f = Footer::parse([
            "# kubesec:v:4",
            "# kubesec:age:a:AQID",
            "# kubesec:mac:X4VfM/AvTmvsgb7G.mNaSLQoWJ5ITMbe9OAUbKA==",
            "# ksec:clear:stringData",
        ])
        .unwrap();
        assert!(f.clear.string_data && !f.clear.data);
        assert!(!f.kubesec_compatible());
        let again = Footer::parse(f.render_lines().iter().map(String::as_str)).unwrap();
        assert_eq!(again, f);
        assert_eq!(
            ClearSections::parse("data,stringData").unwrap().names(),
            "data,stringData"
        );
        assert!(ClearSections::parse("data,data").is_none());
        assert!(ClearSections::parse("").is_none());
        let e = |lines: &[&str]| Footer::parse(lines.iter().copied()).unwrap_err();
        assert!(matches!(
            e(&[
                "# kubesec:v:3",
                "# kubesec:age:a:AQID",
                "# ksec:clear:metadata"
            ]),
            FooterError::UnknownKsecLine { .. }
        ));
        assert!(matches!(
            e(&[
                "# kubesec:v:3",
                "# kubesec:age:a:AQID",
                "# ksec:clear:data",
                "# ksec:clear:data"
            ]),
            FooterError::DuplicateClear
        ));
    }

    #[test]
    fn kubesec_order_is_copied_exactly() {
        // aws(A) after pgp(Z): type is greater, so it never moves before pgp.
        let mut v = vec![kid(KeyType::Pgp, "Z"), kid(KeyType::Aws, "A")];
        kubesec_order(&mut v, |k| k);
        assert_eq!(v[0].kind, KeyType::Pgp);
        // aws(b) then pgp(a): pgp moves first.
        let mut v = vec![kid(KeyType::Aws, "b"), kid(KeyType::Pgp, "a")];
        kubesec_order(&mut v, |k| k);
        assert_eq!(v[0].kind, KeyType::Pgp);
        // aws(a) then pgp(b): `less` is false both ways, so nothing moves.
        let mut v = vec![kid(KeyType::Aws, "a"), kid(KeyType::Pgp, "b")];
        kubesec_order(&mut v, |k| k);
        assert_eq!(v[0].kind, KeyType::Aws);
        // same type: given order is kept.
        let mut v = vec![kid(KeyType::Pgp, "B"), kid(KeyType::Pgp, "A")];
        kubesec_order(&mut v, |k| k);
        assert_eq!(v[0].id, "B");
    }
}
