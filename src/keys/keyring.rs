//! The keyring of a run: every provider, and its memory of what was wrapped
//! and unwrapped, so that no key service is asked twice for the same thing
//! and a tree of files costs one batch of calls.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use super::{
    KeyError, KeyId, KeyParams, KeyType, KeyringOptions, Provider, Secret, UnwrapRequest,
    WrapRequest, WrappedKey,
};
use super::{age, pgp};

/// Why no key opened a data key: every attempt and its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnwrapFailure {
    /// Each key tried, with why it did not work.
    pub attempts: Vec<(KeyId, KeyError)>,
}

impl fmt::Display for UnwrapFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.attempts.is_empty() {
            return f.write_str("no key is listed");
        }
        let parts: Vec<String> = self
            .attempts
            .iter()
            .map(|(k, e)| format!("{k}: {e}"))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

/// One wrap to make: a secret for a key, used as `params` say.
#[derive(Clone)]
pub struct WrapJob {
    /// The key.
    pub key: KeyId,
    /// How the format uses it.
    pub params: KeyParams,
    /// What to wrap.
    pub secret: Secret,
}

/// A wrap or unwrap the run has seen: the key, its use, and the input.
type Memo = (KeyId, KeyParams, Vec<u8>);

/// All providers of a run, with the secrets already wrapped or unwrapped in
/// it.
pub struct Keyring {
    providers: Vec<Box<dyn Provider>>,
    /// Every unwrap attempt of the run, by key line, successful or not.
    unwrapped: RefCell<HashMap<Memo, Result<Secret, KeyError>>>,
    /// Every wrap of the run, by key and wrapped secret.
    wrapped: RefCell<HashMap<Memo, Vec<u8>>>,
    /// Key lines moved to their key's latest version in this run: the old
    /// line's memo → the new blob.
    rewrapped: RefCell<HashMap<Memo, Vec<u8>>>,
    /// Rule keys pinned in this run (Azure: the current version).
    pinned: RefCell<HashMap<KeyId, Result<KeyId, KeyError>>>,
}

impl Keyring {
    /// The providers this build has, configured from the environment and
    /// the command line.
    pub fn new(options: KeyringOptions) -> Keyring {
        #[cfg_attr(not(any(feature = "aws", feature = "net")), allow(unused_mut))]
        let mut providers: Vec<Box<dyn Provider>> = vec![
            Box::new(age::AgeProvider::from_env(options.reporter.clone())),
            Box::new(pgp::PgpProvider::new(options.pgp, options.reporter.clone())),
        ];
        #[cfg(feature = "aws")]
        providers.push(Box::new(super::aws::AwsProvider::new(
            options.aws,
            options.reporter.clone(),
        )));
        #[cfg(feature = "gcp")]
        providers.push(Box::new(super::gcp::GcpProvider::new(
            options.net,
            options.reporter.clone(),
        )));
        #[cfg(feature = "azure")]
        providers.push(Box::new(super::azure::AzureProvider::new(
            options.net,
            options.reporter.clone(),
        )));
        #[cfg(feature = "vault")]
        providers.push(Box::new(super::vault::VaultProvider::new(
            options.net,
            options.reporter.clone(),
        )));
        Keyring::with_providers(providers)
    }

    /// A keyring with exactly these providers (tests, embedding).
    pub fn with_providers(providers: Vec<Box<dyn Provider>>) -> Keyring {
        Keyring {
            providers,
            unwrapped: RefCell::new(HashMap::new()),
            wrapped: RefCell::new(HashMap::new()),
            rewrapped: RefCell::new(HashMap::new()),
            pinned: RefCell::new(HashMap::new()),
        }
    }

    /// A keyring whose age identities are given as text (identity-file
    /// format) instead of read from the environment; for embedding and benches.
    pub fn with_age_identities(text: &str) -> Result<Keyring, KeyError> {
        let reporter: std::rc::Rc<dyn crate::report::Reporter> =
            std::rc::Rc::new(crate::report::Silent);
        Ok(Keyring::with_providers(vec![
            Box::new(age::AgeProvider::from_text(text).map_err(|e| KeyError::InvalidId(e.0))?),
            Box::new(pgp::PgpProvider::new(pgp::PgpOptions::default(), reporter)),
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

    /// The id a rule's key is written as ([`Provider::pin`]), asked once
    /// per key per run.
    pub fn pin(&self, key: &KeyId) -> Result<KeyId, KeyError> {
        if let Some(r) = self.pinned.borrow().get(key) {
            return r.clone();
        }
        let r = self
            .provider(key.kind)
            .and_then(|p| p.pin(&key.id))
            .map(|id| KeyId { kind: key.kind, id });
        self.pinned.borrow_mut().insert(key.clone(), r.clone());
        r
    }

    /// Wraps a secret for one key (answered from this run's wraps when
    /// [`Keyring::wrap_all`] did it already).
    pub fn wrap(
        &self,
        key: &KeyId,
        params: &KeyParams,
        secret: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let memo = (key.clone(), params.clone(), secret.to_vec());
        if let Some(b) = self.wrapped.borrow().get(&memo) {
            return Ok(b.clone());
        }
        let blob = self.provider(key.kind)?.wrap(&WrapRequest {
            id: &key.id,
            secret,
            params,
        })?;
        self.wrapped.borrow_mut().insert(memo, blob.clone());
        Ok(blob)
    }

    /// Makes many wraps at once: network providers run their share
    /// concurrently. Results are remembered for [`Keyring::wrap`]; the first
    /// error is returned.
    pub fn wrap_all(&self, jobs: &[WrapJob]) -> Result<(), (KeyId, KeyError)> {
        let todo: Vec<&WrapJob> = jobs
            .iter()
            .filter(|j| {
                !self.wrapped.borrow().contains_key(&(
                    j.key.clone(),
                    j.params.clone(),
                    j.secret.to_vec(),
                ))
            })
            .collect();
        if let Some(j) = todo.iter().find(|j| self.provider(j.key.kind).is_err()) {
            return Err((j.key.clone(), KeyError::Unsupported(j.key.kind)));
        }
        for p in &self.providers {
            let mine: Vec<&WrapJob> = todo
                .iter()
                .copied()
                .filter(|j| j.key.kind == p.kind())
                .collect();
            if mine.is_empty() {
                continue;
            }
            let requests: Vec<WrapRequest<'_>> = mine
                .iter()
                .map(|j| WrapRequest {
                    id: &j.key.id,
                    secret: &j.secret,
                    params: &j.params,
                })
                .collect();
            for (j, r) in mine.iter().zip(p.wrap_many(&requests)) {
                let blob = r.map_err(|e| (j.key.clone(), e))?;
                self.wrapped
                    .borrow_mut()
                    .insert((j.key.clone(), j.params.clone(), j.secret.to_vec()), blob);
            }
        }
        Ok(())
    }

    /// Moves key lines to their key's latest version where the provider can
    /// (Vault transit `rewrap`), in one batch per provider. Returns, per
    /// line, whether it changed; the new blobs are what [`Keyring::kept`]
    /// gives from then on. The first error is returned.
    pub fn rewrap_all(&self, lines: &[&WrappedKey]) -> Result<Vec<bool>, (KeyId, KeyError)> {
        let mut changed = vec![false; lines.len()];
        for p in &self.providers {
            let mine: Vec<(usize, &&WrappedKey)> = lines
                .iter()
                .enumerate()
                .filter(|(_, w)| w.key.kind == p.kind())
                .collect();
            if mine.is_empty() {
                continue;
            }
            let requests: Vec<UnwrapRequest<'_>> = mine
                .iter()
                .map(|(_, w)| UnwrapRequest {
                    id: &w.key.id,
                    blob: &w.blob,
                    params: &w.params,
                })
                .collect();
            for ((i, w), r) in mine.iter().zip(p.rewrap_many(&requests)) {
                if let Some(blob) = r.map_err(|e| (w.key.clone(), e))? {
                    self.rewrapped.borrow_mut().insert(memo(w), blob);
                    changed[*i] = true;
                }
            }
        }
        Ok(changed)
    }

    /// A key line a format keeps: as it was, or with the blob
    /// [`Keyring::rewrap_all`] got for it in this run.
    pub fn kept(&self, line: &WrappedKey) -> WrappedKey {
        match self.rewrapped.borrow().get(&memo(line)) {
            Some(blob) => WrappedKey {
                blob: blob.clone(),
                ..line.clone()
            },
            None => line.clone(),
        }
    }

    /// Unwraps with the first key line that works; local providers first,
    /// then network ones, each in file order.
    pub fn unwrap(&self, lines: &[WrappedKey]) -> Result<Secret, UnwrapFailure> {
        self.unwrap_all(&[lines]).pop().expect("one result per set")
    }

    /// Unwraps many sets of key lines (each opens when any of its lines
    /// does). Each set stops at its first key that works, local keys (age,
    /// pgp) before network ones; the network attempts of all sets run
    /// concurrently, round by round.
    pub fn unwrap_all(&self, sets: &[&[WrappedKey]]) -> Vec<Result<Secret, UnwrapFailure>> {
        let mut attempts: Vec<Vec<(KeyId, KeyError)>> = vec![Vec::new(); sets.len()];
        let mut found: Vec<Option<Secret>> = vec![None; sets.len()];
        // Ordered candidate lines per set: local first, then network.
        let order: Vec<Vec<&WrappedKey>> = sets
            .iter()
            .map(|lines| {
                let mut o: Vec<&WrappedKey> = lines.iter().collect();
                o.sort_by_key(|w| !self.is_local(w.key.kind));
                o
            })
            .collect();
        let rounds = order.iter().map(Vec::len).max().unwrap_or(0);
        for round in 0..rounds {
            let batch = self.round(&order, round, &mut found, &mut attempts);
            self.ask(&batch, &mut found, &mut attempts);
        }
        found
            .into_iter()
            .zip(attempts)
            .map(|(f, attempts)| f.ok_or(UnwrapFailure { attempts }))
            .collect()
    }

    /// This round's candidate of every set still closed; answers known from
    /// earlier in the run are not asked again.
    fn round<'a>(
        &self,
        order: &[Vec<&'a WrappedKey>],
        round: usize,
        found: &mut [Option<Secret>],
        attempts: &mut [Vec<(KeyId, KeyError)>],
    ) -> Vec<(usize, &'a WrappedKey)> {
        let mut batch = Vec::new();
        for (i, lines) in order.iter().enumerate() {
            let Some(w) = lines.get(round).filter(|_| found[i].is_none()) else {
                continue;
            };
            let known = self.unwrapped.borrow().get(&memo(w)).cloned();
            match known {
                Some(Ok(secret)) => found[i] = Some(secret),
                Some(Err(e)) => attempts[i].push((w.key.clone(), e)),
                None => match self.provider(w.key.kind) {
                    Ok(_) => batch.push((i, *w)),
                    Err(e) => attempts[i].push((w.key.clone(), e)),
                },
            }
        }
        batch
    }

    /// Asks each provider for its share of a round, remembering every answer.
    fn ask(
        &self,
        batch: &[(usize, &WrappedKey)],
        found: &mut [Option<Secret>],
        attempts: &mut [Vec<(KeyId, KeyError)>],
    ) {
        for p in &self.providers {
            let mine: Vec<&(usize, &WrappedKey)> = batch
                .iter()
                .filter(|(_, w)| w.key.kind == p.kind())
                .collect();
            if mine.is_empty() {
                continue;
            }
            let requests: Vec<UnwrapRequest<'_>> = mine
                .iter()
                .map(|(_, w)| UnwrapRequest {
                    id: &w.key.id,
                    blob: &w.blob,
                    params: &w.params,
                })
                .collect();
            for ((i, w), r) in mine.iter().zip(p.unwrap_many(&requests)) {
                self.unwrapped.borrow_mut().insert(memo(w), r.clone());
                match r {
                    Ok(secret) => found[*i] = Some(secret),
                    Err(e) => attempts[*i].push((w.key.clone(), e)),
                }
            }
        }
    }
}

fn memo(w: &WrappedKey) -> Memo {
    (w.key.clone(), w.params.clone(), w.blob.clone())
}
