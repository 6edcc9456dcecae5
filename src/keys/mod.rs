//! Key providers: the only code that talks to the outside world.
//!
//! Every provider wraps a document's data key for one key id and unwraps it
//! again. A file opens when *any* of its keys unwraps the data key; local
//! providers are tried before network ones.

pub mod age;
#[cfg(feature = "aws")]
pub mod aws;
pub mod pgp;

use std::cell::RefCell;
use std::collections::HashMap;
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
    /// Wraps several data keys; network providers run these concurrently.
    fn wrap_many(&self, requests: &[(&str, &DataKey)]) -> Vec<Result<Vec<u8>, KeyError>> {
        requests
            .iter()
            .map(|(id, dek)| self.wrap(id, dek))
            .collect()
    }
    /// Unwraps several data keys; network providers run these concurrently.
    fn unwrap_many(&self, requests: &[(&str, &[u8])]) -> Vec<Result<DataKey, KeyError>> {
        requests
            .iter()
            .map(|(id, blob)| self.unwrap(id, blob))
            .collect()
    }
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
            let set = dedup(self.set.clone());
            // The same keys in another order: keep the file's order, so
            // that nothing (footer order, MAC) changes.
            if set.len() == current.len() && set.iter().all(|k| current.contains(k)) {
                return Ok(current.to_vec());
            }
            return Ok(set);
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

/// Parses `TYPE:ID`, e.g. `age:age1…`; a bare `arn:aws:kms:…` is an AWS key.
pub fn parse_key(spec: &str) -> Result<KeyId, String> {
    if spec.starts_with("arn:") {
        return Ok(KeyId {
            kind: KeyType::Aws,
            id: spec.to_owned(),
        });
    }
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

/// Checks and normalises a key named in `.ksec.yaml` without asking any
/// provider (so that `check` needs no gpg and no network): age recipients
/// are parsed, PGP keys must be full fingerprints (spaces allowed, any
/// case; written upper case as in footers), AWS ids are checked for shape.
pub fn normalise_config_key(key: &KeyId) -> Result<KeyId, String> {
    let id = match key.kind {
        KeyType::Age => age::AgeProvider::parse_recipient(&key.id)?,
        KeyType::Pgp => {
            let compact: String = key.id.chars().filter(|c| !c.is_whitespace()).collect();
            if compact.len() != 40 || !compact.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "`pgp:{}`: name PGP keys in .ksec.yaml by their full 40-hex fingerprint",
                    key.id
                ));
            }
            compact.to_ascii_uppercase()
        }
        #[cfg(feature = "aws")]
        KeyType::Aws => {
            aws::check_id(&key.id).map_err(|e| e.to_string())?;
            key.id.clone()
        }
        _ => key.id.clone(),
    };
    Ok(KeyId { kind: key.kind, id })
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

/// How the providers of a run are configured.
#[derive(Debug, Clone, Default)]
pub struct KeyringOptions {
    /// gpg settings.
    pub pgp: pgp::PgpOptions,
    /// AWS settings.
    #[cfg(feature = "aws")]
    pub aws: aws::AwsOptions,
}

/// All providers of a run, with the data keys already wrapped or unwrapped
/// in it (so no key is asked twice for the same thing).
pub struct Keyring {
    providers: Vec<Box<dyn Provider>>,
    /// Every unwrap attempt of the run, by key line, successful or not.
    unwrapped: RefCell<HashMap<KeyLine, Result<DataKey, KeyError>>>,
    /// Every wrap of the run (keys zeroized on drop).
    wrapped: RefCell<HashMap<(KeyId, DataKey), Vec<u8>>>,
}

/// A key line: the key and its wrapped data key.
type KeyLine = (KeyId, Vec<u8>);

/// Outcome of unwrapping one document's data key.
pub type UnwrapResult = Result<DataKey, UnwrapFailure>;

impl Keyring {
    /// The providers this build has, configured from the environment and
    /// the command line.
    pub fn new(options: KeyringOptions) -> Keyring {
        #[cfg_attr(not(feature = "aws"), allow(unused_mut))]
        let mut providers: Vec<Box<dyn Provider>> = vec![
            Box::new(age::AgeProvider::from_env()),
            Box::new(pgp::PgpProvider::new(options.pgp)),
        ];
        #[cfg(feature = "aws")]
        providers.push(Box::new(aws::AwsProvider::new(options.aws)));
        Keyring::with_providers(providers)
    }

    fn with_providers(providers: Vec<Box<dyn Provider>>) -> Keyring {
        Keyring {
            providers,
            unwrapped: RefCell::new(HashMap::new()),
            wrapped: RefCell::new(HashMap::new()),
        }
    }

    /// A keyring whose age identities are given as text (identity-file
    /// format) instead of read from the environment; for embedding and benches.
    pub fn with_age_identities(text: &str) -> Result<Keyring, String> {
        Ok(Keyring::with_providers(vec![
            Box::new(age::AgeProvider::from_text(text)?),
            Box::new(pgp::PgpProvider::new(pgp::PgpOptions::default())),
        ]))
    }

    fn provider(&self, kind: KeyType) -> Result<&dyn Provider, KeyError> {
        self.providers
            .iter()
            .find(|p| p.kind() == kind)
            .map(|p| &**p)
            .ok_or(KeyError::Unsupported(kind))
    }

    fn is_local(&self, kind: KeyType) -> bool {
        self.provider(kind).map(|p| p.is_local()).unwrap_or(true)
    }

    /// Checks a key id and returns it as it will be written.
    pub fn resolve(&self, key: &KeyId) -> Result<KeyId, KeyError> {
        let id = self.provider(key.kind)?.resolve(&key.id)?;
        Ok(KeyId { kind: key.kind, id })
    }

    /// Wraps a data key for one key (answered from this run's wraps when
    /// [`Keyring::wrap_all`] did it already).
    pub fn wrap(&self, key: &KeyId, dek: &DataKey) -> Result<Vec<u8>, KeyError> {
        if let Some(b) = self.wrapped.borrow().get(&(key.clone(), dek.clone())) {
            return Ok(b.clone());
        }
        let blob = self.provider(key.kind)?.wrap(&key.id, dek)?;
        self.wrapped
            .borrow_mut()
            .insert((key.clone(), dek.clone()), blob.clone());
        Ok(blob)
    }

    /// Wraps many data keys at once: network providers run their share
    /// concurrently. Results are remembered for [`Keyring::wrap`]; the first
    /// error is returned.
    pub fn wrap_all(&self, requests: &[(KeyId, DataKey)]) -> Result<(), (KeyId, KeyError)> {
        let todo: Vec<&(KeyId, DataKey)> = requests
            .iter()
            .filter(|(k, d)| !self.wrapped.borrow().contains_key(&(k.clone(), d.clone())))
            .collect();
        for p in &self.providers {
            let mine: Vec<&(KeyId, DataKey)> = todo
                .iter()
                .copied()
                .filter(|(k, _)| k.kind == p.kind())
                .collect();
            if mine.is_empty() {
                continue;
            }
            let reqs: Vec<(&str, &DataKey)> =
                mine.iter().map(|(k, d)| (k.id.as_str(), d)).collect();
            for ((k, d), r) in mine.iter().zip(p.wrap_many(&reqs)) {
                let blob = r.map_err(|e| (k.clone(), e))?;
                self.wrapped
                    .borrow_mut()
                    .insert((k.clone(), d.clone()), blob);
            }
        }
        if let Some((k, _)) = todo.iter().find(|(k, _)| self.provider(k.kind).is_err()) {
            return Err((k.clone(), KeyError::Unsupported(k.kind)));
        }
        Ok(())
    }

    /// Unwraps the data key with the first key line that works; local
    /// providers first, then network ones, each in file order.
    pub fn unwrap(&self, lines: &[WrappedKey]) -> UnwrapResult {
        self.unwrap_all(&[lines])
            .pop()
            .expect("one result per document")
    }

    /// Unwraps the data keys of many documents. Each document stops at its
    /// first key that works, local keys (age, pgp) before network ones; the
    /// network attempts of all documents run concurrently, round by round.
    pub fn unwrap_all(&self, documents: &[&[WrappedKey]]) -> Vec<UnwrapResult> {
        let mut attempts: Vec<Vec<(KeyId, KeyError)>> = vec![Vec::new(); documents.len()];
        let mut found: Vec<Option<DataKey>> = vec![None; documents.len()];
        // Ordered candidate lines per document: local first, then network.
        let order: Vec<Vec<&WrappedKey>> = documents
            .iter()
            .map(|lines| {
                let mut o: Vec<&WrappedKey> = lines.iter().collect();
                o.sort_by_key(|w| !self.is_local(w.key.kind));
                o
            })
            .collect();
        let rounds = order.iter().map(Vec::len).max().unwrap_or(0);
        for round in 0..rounds {
            // This round's candidate of every document still closed; answers
            // known from earlier in the run are not asked again.
            let mut batch: Vec<(usize, &WrappedKey)> = Vec::new();
            for (i, lines) in order.iter().enumerate() {
                let Some(w) = lines.get(round).filter(|_| found[i].is_none()) else {
                    continue;
                };
                let known = self
                    .unwrapped
                    .borrow()
                    .get(&(w.key.clone(), w.blob.clone()))
                    .cloned();
                match known {
                    Some(Ok(dek)) => found[i] = Some(dek),
                    Some(Err(e)) => attempts[i].push((w.key.clone(), e)),
                    None => match self.provider(w.key.kind) {
                        Ok(_) => batch.push((i, w)),
                        Err(e) => attempts[i].push((w.key.clone(), e)),
                    },
                }
            }
            for p in &self.providers {
                let mine: Vec<&(usize, &WrappedKey)> = batch
                    .iter()
                    .filter(|(_, w)| w.key.kind == p.kind())
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                let reqs: Vec<(&str, &[u8])> = mine
                    .iter()
                    .map(|(_, w)| (w.key.id.as_str(), w.blob.as_slice()))
                    .collect();
                for ((i, w), r) in mine.iter().zip(p.unwrap_many(&reqs)) {
                    self.unwrapped
                        .borrow_mut()
                        .insert((w.key.clone(), w.blob.clone()), r.clone());
                    match r {
                        Ok(dek) => found[*i] = Some(dek),
                        Err(e) => attempts[*i].push((w.key.clone(), e)),
                    }
                }
            }
        }
        found
            .into_iter()
            .zip(attempts)
            .map(|(f, attempts)| f.ok_or(UnwrapFailure { attempts }))
            .collect()
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
