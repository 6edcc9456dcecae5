//! Key ids: what a user names with `--key TYPE:ID`, what `.ksec.yaml` rules
//! list, and what a file records next to each wrapped data key.
//!
//! Formats decide how ids are written on disk (kubesec footer lines, sops
//! metadata lists); this module only knows the ids themselves, how a
//! command-line change to a key list (`-k`, `+K`, `-K`) applies, and what
//! must never be echoed (secret key material pasted by mistake).

use std::fmt;

/// Why a key specification was refused. Never echoes anything that looks
/// like private key material, and is always one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeySpecError(pub String);

/// The kind of key that wraps a data key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyType {
    /// OpenPGP, through gpg.
    Pgp,
    /// Google Cloud KMS.
    Gcp,
    /// AWS KMS.
    Aws,
    /// age X25519 (a ksec addition to the kubesec format).
    Age,
    /// HashiCorp Vault / OpenBao transit (`vault:https://HOST:8200/v1/MOUNT/keys/NAME`).
    Vault,
    /// Azure Key Vault (`azkv:https://VAULT.vault.azure.net/keys/NAME[/VERSION]`).
    Azure,
}

impl KeyType {
    /// Every key type, in the order help texts list them.
    pub const ALL: [KeyType; 6] = [
        KeyType::Age,
        KeyType::Pgp,
        KeyType::Aws,
        KeyType::Gcp,
        KeyType::Vault,
        KeyType::Azure,
    ];

    /// The name in `--key TYPE:ID` and in kubesec footers.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Pgp => "pgp",
            KeyType::Gcp => "gcp",
            KeyType::Aws => "aws",
            KeyType::Age => "age",
            KeyType::Vault => "vault",
            KeyType::Azure => "azkv",
        }
    }

    /// Parses a type name.
    pub fn parse(s: &str) -> Option<KeyType> {
        KeyType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// `age, pgp, aws, gcp, vault, azkv`, for messages.
    pub fn names() -> String {
        let names: Vec<&str> = KeyType::ALL.iter().map(|t| t.as_str()).collect();
        names.join(", ")
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key named by type and id, e.g. `age:age1…` or `pgp:F4D4…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId {
    /// The key's type.
    pub kind: KeyType,
    /// The id as written in files (fingerprint, ARN, recipient, …).
    pub id: String,
}

impl KeyId {
    /// Whether this key, as written in a file, is what `named` (a rule's
    /// or the command line's key) asks for: the same key, or for Azure Key
    /// Vault a version of a key named without one (a file records the
    /// version it wrapped with; the rule names the key).
    pub fn satisfies(&self, named: &KeyId) -> bool {
        if self == named {
            return true;
        }
        self.kind == KeyType::Azure
            && named.kind == KeyType::Azure
            && self
                .id
                .strip_prefix(named.id.trim_end_matches('/'))
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|version| !version.is_empty() && !version.contains('/'))
            && named.id.matches("/keys/").count() == 1
            && named
                .id
                .rsplit_once("/keys/")
                .is_some_and(|(_, n)| !n.contains('/'))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.id)
    }
}

/// One key's copy of a data key: the key, how it was used, and the
/// provider's ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// Which key wrapped the data key.
    pub key: KeyId,
    /// How the format asked for it (signing, encryption context).
    pub params: super::KeyParams,
    /// The provider's ciphertext of the data key.
    pub blob: Vec<u8>,
}

/// Whether `text` looks like private key material (an age identity, a PEM
/// private key, a Vault token): such text is never echoed in a message.
pub fn looks_secret(text: &str) -> bool {
    let upper = text.to_ascii_uppercase();
    upper.contains("AGE-SECRET-KEY-")
        || upper.contains("AGE-PLUGIN-")
        || upper.contains("PRIVATE KEY")
        || text.starts_with("hvs.")
        || text.starts_with("s.") && text.len() > 20
}

/// `spec` as it may appear in a message: redacted when it looks secret.
fn shown(spec: &str) -> String {
    if looks_secret(spec) {
        "(redacted: it looks like a secret key)".to_owned()
    } else {
        crate::error::one_line(spec)
    }
}

/// Parses `TYPE:ID`, e.g. `age:age1…`; a bare `arn:aws:kms:…` is an AWS key.
pub fn parse_key(spec: &str) -> Result<KeyId, KeySpecError> {
    if looks_secret(spec) {
        return Err(KeySpecError(
            "--key: this is a secret key (an identity), not a key to encrypt to; \
give its public part, e.g. the age recipient (age1…) that `age-keygen -y` prints"
                .into(),
        ));
    }
    if spec.chars().any(char::is_control) {
        return Err(KeySpecError(format!(
            "--key `{}`: a key id cannot contain line breaks or control characters",
            shown(spec)
        )));
    }
    if spec.starts_with("arn:") {
        return Ok(KeyId {
            kind: KeyType::Aws,
            id: spec.to_owned(),
        });
    }
    let (kind, id) = spec.split_once(':').ok_or_else(|| {
        KeySpecError(format!(
            "--key `{}`: expected TYPE:ID, e.g. age:age1…",
            shown(spec)
        ))
    })?;
    let kind = KeyType::parse(kind).ok_or_else(|| {
        KeySpecError(format!(
            "--key `{}`: unknown key type `{}` (known: {})",
            shown(spec),
            shown(kind),
            KeyType::names()
        ))
    })?;
    if id.is_empty() {
        return Err(KeySpecError(format!(
            "--key `{}`: the key id is empty",
            shown(spec)
        )));
    }
    Ok(KeyId {
        kind,
        id: id.to_owned(),
    })
}

/// A key change requested on the command line (`--key`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyChange {
    /// A plain list: exactly these keys.
    pub set: Vec<KeyId>,
    /// `+KEY`: add.
    pub add: Vec<KeyId>,
    /// `-KEY`: remove.
    pub remove: Vec<KeyId>,
}

impl KeyChange {
    /// Parses `--key` values. Mixing a plain list with `+`/`-` is refused.
    pub fn parse(specs: &[String]) -> Result<KeyChange, KeySpecError> {
        let mut change = KeyChange::default();
        for spec in specs {
            match spec.strip_prefix('+') {
                Some(rest) => change.add.push(parse_key(rest)?),
                None => match spec.strip_prefix('-') {
                    Some(rest) => change.remove.push(parse_key(rest)?),
                    None => change.set.push(parse_key(spec)?),
                },
            }
        }
        let has_changes = !change.add.is_empty() || !change.remove.is_empty();
        if !change.set.is_empty() && has_changes {
            return Err(KeySpecError(
                "--key: a plain key list cannot be mixed with +KEY/-KEY changes".into(),
            ));
        }
        Ok(change)
    }

    /// Exactly these keys.
    pub fn exactly(keys: Vec<KeyId>) -> KeyChange {
        KeyChange {
            set: keys,
            ..KeyChange::default()
        }
    }

    /// No change requested.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// The key list after applying the change to `current`, in the order
    /// given (existing keys first, then added ones).
    pub fn apply(&self, current: &[KeyId]) -> Result<Vec<KeyId>, KeySpecError> {
        if !self.set.is_empty() {
            let set = dedup(self.set.clone());
            // The same keys in another order: keep the file's order, so
            // that nothing (footer order, MAC) changes.
            if set.len() == current.len() && set.iter().all(|k| current.contains(k)) {
                return Ok(current.to_vec());
            }
            return Ok(set);
        }
        for r in &self.remove {
            if !current.iter().any(|k| k.satisfies(r)) {
                return Err(KeySpecError(format!(
                    "--key -{r}: the document has no such key"
                )));
            }
        }
        let mut out: Vec<KeyId> = current
            .iter()
            .filter(|k| !self.remove.iter().any(|r| k.satisfies(r)))
            .cloned()
            .collect();
        for a in &self.add {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        if out.is_empty() {
            return Err(KeySpecError(
                "removing these keys would leave no key that can open the document".into(),
            ));
        }
        Ok(out)
    }
}

fn dedup(keys: Vec<KeyId>) -> Vec<KeyId> {
    let mut out: Vec<KeyId> = Vec::with_capacity(keys.len());
    for k in keys {
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> KeyId {
        parse_key(s).unwrap()
    }

    #[test]
    fn key_changes() {
        let cur = vec![k("age:a"), k("age:b")];
        let c = KeyChange::parse(&["+age:c".into(), "-age:a".into()]).unwrap();
        assert_eq!(c.apply(&cur).unwrap(), vec![k("age:b"), k("age:c")]);
        let c = KeyChange::parse(&["age:c".into(), "age:c".into()]).unwrap();
        assert_eq!(c.apply(&cur).unwrap(), vec![k("age:c")]);
        assert!(KeyChange::parse(&["age:c".into(), "+age:d".into()]).is_err());
        let c = KeyChange::parse(&["-age:a".into(), "-age:b".into()]).unwrap();
        assert!(c.apply(&cur).unwrap_err().0.contains("no key"));
        let c = KeyChange::parse(&["-age:z".into()]).unwrap();
        assert!(c.apply(&cur).is_err());
        assert!(parse_key("age").is_err());
        assert!(parse_key("foo:bar").is_err());
        assert!(parse_key("age:").is_err());
    }

    #[test]
    fn azure_versions_satisfy_a_key_named_without_one() {
        let named = k("azkv:https://v.vault.azure.net/keys/app");
        let written = k("azkv:https://v.vault.azure.net/keys/app/0123abcd");
        assert!(written.satisfies(&named));
        assert!(written.satisfies(&written));
        assert!(!named.satisfies(&written));
        assert!(!k("azkv:https://v.vault.azure.net/keys/app2/0123").satisfies(&named));
        assert!(!k("azkv:https://v.vault.azure.net/keys/app/1/2").satisfies(&named));
        assert!(!k("age:app/x").satisfies(&k("age:app")));
        let c = KeyChange::parse(&["-azkv:https://v.vault.azure.net/keys/app".into()]).unwrap();
        let cur = vec![written.clone(), k("age:a")];
        assert_eq!(c.apply(&cur).unwrap(), vec![k("age:a")]);
    }

    #[test]
    fn secret_material_is_never_echoed() {
        let secret = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
        for spec in [
            format!("age:{secret}"),
            secret.to_owned(),
            format!("+age:{secret}"),
        ] {
            let e = KeyChange::parse(&[spec]).unwrap_err().0;
            assert!(!e.contains("QQQQ"), "{e}");
            assert!(e.contains("age-keygen -y"), "{e}");
        }
        let e = parse_key("age:age1abc\nage1def").unwrap_err().0;
        assert!(!e.contains('\n'), "{e}");
        let e = parse_key("nope:-----BEGIN PRIVATE KEY-----").unwrap_err().0;
        assert!(!e.contains("BEGIN"), "{e}");
    }
}
