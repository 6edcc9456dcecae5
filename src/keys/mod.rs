//! Key providers: the only code that talks to the outside world.
//!
//! Every provider wraps a document's data key for one key id and unwraps it
//! again. A file opens when *any* of its keys unwraps the data key; local
//! providers are tried before network ones.

pub mod age;
pub mod pgp;

use std::fmt;

use crate::envelope::DataKey;
use crate::envelope::footer::{KeyId, KeyType, WrappedKey};

/// Why a key could not wrap or unwrap a data key. Messages never contain key
/// material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key id is not valid for its type.
    #[error("{0}")]
    InvalidId(String),
    /// No secret key for this id is available here.
    #[error("{0}")]
    Unavailable(String),
    /// The provider tried and failed.
    #[error("{0}")]
    Failed(String),
    /// This build has no provider for the type.
    #[error("{0} keys are not supported by this build of ksec")]
    Unsupported(KeyType),
}

/// One provider per key type.
pub trait Provider {
    /// The key type this provider handles.
    fn kind(&self) -> KeyType;
    /// Checks a key id and returns it in the form written to the footer.
    fn resolve(&self, id: &str) -> Result<String, KeyError>;
    /// Wraps the data key for `id`.
    fn wrap(&self, id: &str, dek: &DataKey) -> Result<Vec<u8>, KeyError>;
    /// Unwraps a data key wrapped for `id`.
    fn unwrap(&self, id: &str, blob: &[u8]) -> Result<DataKey, KeyError>;
    /// Whether the provider works without the network (tried first).
    fn is_local(&self) -> bool;
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
    pub fn parse(specs: &[String]) -> Result<KeyChange, String> {
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
            return Err("--key: a plain key list cannot be mixed with +KEY/-KEY changes".into());
        }
        Ok(change)
    }

    /// No change requested.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// The key list after applying the change to `current`, in the order
    /// given (existing keys first, then added ones).
    pub fn apply(&self, current: &[KeyId]) -> Result<Vec<KeyId>, String> {
        if !self.set.is_empty() {
            return Ok(dedup(self.set.clone()));
        }
        for r in &self.remove {
            if !current.contains(r) {
                return Err(format!("--key -{r}: the document has no such key"));
            }
        }
        let mut out: Vec<KeyId> = current
            .iter()
            .filter(|k| !self.remove.contains(k))
            .cloned()
            .collect();
        for a in &self.add {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        if out.is_empty() {
            return Err("removing these keys would leave no key that can open the document".into());
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

/// Parses `TYPE:ID`, e.g. `age:age1…`.
pub fn parse_key(spec: &str) -> Result<KeyId, String> {
    let (kind, id) = spec
        .split_once(':')
        .ok_or_else(|| format!("--key `{spec}`: expected TYPE:ID, e.g. age:age1…"))?;
    let kind = KeyType::parse(kind).ok_or_else(|| {
        format!("--key `{spec}`: unknown key type `{kind}` (known: age, pgp, aws, gcp)")
    })?;
    if id.is_empty() {
        return Err(format!("--key `{spec}`: the key id is empty"));
    }
    Ok(KeyId {
        kind,
        id: id.to_owned(),
    })
}

/// Why no key opened a document's data key: every attempt and its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnwrapFailure {
    /// Each key tried, with why it did not work.
    pub attempts: Vec<(KeyId, KeyError)>,
}

impl fmt::Display for UnwrapFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .attempts
            .iter()
            .map(|(k, e)| format!("{k}: {e}"))
            .collect();
        write!(f, "{}", parts.join("; "))
    }
}

/// All providers of a run.
pub struct Keyring {
    providers: Vec<Box<dyn Provider>>,
}

impl Keyring {
    /// The providers this build has, configured from the environment and
    /// the command line.
    pub fn new(pgp: pgp::PgpOptions) -> Keyring {
        Keyring {
            providers: vec![
                Box::new(age::AgeProvider::from_env()),
                Box::new(pgp::PgpProvider::new(pgp)),
            ],
        }
    }

    /// A keyring whose age identities are given as text (identity-file
    /// format) instead of read from the environment; for embedding and benches.
    pub fn with_age_identities(text: &str) -> Result<Keyring, String> {
        Ok(Keyring {
            providers: vec![
                Box::new(age::AgeProvider::from_text(text)?),
                Box::new(pgp::PgpProvider::new(pgp::PgpOptions::default())),
            ],
        })
    }

    fn provider(&self, kind: KeyType) -> Result<&dyn Provider, KeyError> {
        self.providers
            .iter()
            .find(|p| p.kind() == kind)
            .map(|p| &**p)
            .ok_or(KeyError::Unsupported(kind))
    }

    /// Checks a key id and returns it as it will be written.
    pub fn resolve(&self, key: &KeyId) -> Result<KeyId, KeyError> {
        let id = self.provider(key.kind)?.resolve(&key.id)?;
        Ok(KeyId { kind: key.kind, id })
    }

    /// Wraps a data key for one key.
    pub fn wrap(&self, key: &KeyId, dek: &DataKey) -> Result<Vec<u8>, KeyError> {
        self.provider(key.kind)?.wrap(&key.id, dek)
    }

    /// Unwraps the data key with the first key line that works; local
    /// providers first, then network ones, each in file order.
    pub fn unwrap(&self, lines: &[WrappedKey]) -> Result<DataKey, UnwrapFailure> {
        let mut order: Vec<&WrappedKey> = lines.iter().collect();
        order.sort_by_key(|w| {
            self.provider(w.key.kind)
                .map(|p| !p.is_local())
                .unwrap_or(true)
        });
        let mut attempts = Vec::new();
        for w in order {
            match self
                .provider(w.key.kind)
                .and_then(|p| p.unwrap(&w.key.id, &w.blob))
            {
                Ok(dek) => return Ok(dek),
                Err(e) => attempts.push((w.key.clone(), e)),
            }
        }
        Err(UnwrapFailure { attempts })
    }
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
        assert!(c.apply(&cur).unwrap_err().contains("no key"));
        let c = KeyChange::parse(&["-age:z".into()]).unwrap();
        assert!(c.apply(&cur).is_err());
        assert!(parse_key("age").is_err());
        assert!(parse_key("foo:bar").is_err());
        assert!(parse_key("age:").is_err());
    }
}
