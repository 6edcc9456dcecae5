//! The one copy of the key decision: which keys a Secret is sealed to, with
//! which data key, and which sections stay clear — for `encrypt`, `patch`,
//! `edit`, `create`, `updatekeys` and the merge driver alike.
//!
//! * `--key` wins: a plain list means exactly those keys, `+K`/`-K` change
//!   the current ones.
//! * Otherwise a Secret keeps the keys it (or its parent) has; one that has
//!   none yet gets its `.ksec.yaml` rule's keys, else the local age key.
//! * `updatekeys` enforces the rule on encrypted Secrets too.
//! * The data key is kept unless `--rotate` or a key is removed (a removed
//!   key's holder may have kept the data key).

use super::Session;
use crate::error::{Error, Exit, Result};
use crate::formats::Opened;
use crate::keys::{DataKey, KeyChange, KeyId};
use crate::manifest::{ClearSections, Document};

/// What a `.ksec.yaml` rule (or, in `edit`, the file being edited) gives a
/// Secret that has no keys yet.
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleKeys<'a> {
    /// Its keys (empty: the local age key).
    pub keys: &'a [KeyId],
    /// Sections it keeps in clear text.
    pub clear: ClearSections,
    /// What it says beyond keys (format, sops rules and key groups).
    pub format: Option<&'a crate::formats::FormatRule>,
}

/// How keys, data keys and clear sections are decided for one stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyPolicy<'a> {
    /// `--key`, its ids resolved ([`Session::resolve_change`]).
    pub change: Option<&'a KeyChange>,
    /// The file's rule.
    pub rule: Option<RuleKeys<'a>>,
    /// A new data key for every Secret.
    pub rotate: bool,
    /// Bring encrypted Secrets in line with the rule too (`updatekeys`):
    /// exactly the rule's keys and clear sections.
    pub enforce_rule: bool,
}

/// What one Secret is sealed with.
pub struct Decision {
    /// Its keys, in the order decided.
    pub keys: Vec<KeyId>,
    /// Its data key.
    pub dek: DataKey,
    /// Sections kept in clear text.
    pub clear: ClearSections,
}

impl KeyPolicy<'_> {
    /// Decides for a Secret of `file` whose earlier version (its own, or a
    /// parent's) is `previous`.
    pub fn decide(
        &self,
        session: &Session,
        file: &str,
        doc: &Document,
        previous: Option<&Opened>,
    ) -> Result<Decision> {
        let current: Vec<KeyId> = previous.map_or_else(Vec::new, Opened::keys);
        // A rule's keys as they are written: the file's own key where it
        // satisfies the rule's (an Azure key's recorded version), else pinned.
        let rule_keys = |keys: &[KeyId]| -> Result<Vec<KeyId>> {
            keys.iter()
                .map(|r| match current.iter().find(|c| c.satisfies(r)) {
                    Some(c) => Ok(c.clone()),
                    None => session.keyring.pin(r).map_err(|e| {
                        crate::keys::key_error(&e, r).at(doc.location(file, doc.line))
                    }),
                })
                .collect()
        };
        let enforced;
        let change = match (self.enforce_rule, self.rule) {
            (true, Some(rule)) if !rule.keys.is_empty() => {
                enforced = KeyChange::exactly(rule_keys(rule.keys)?);
                Some(&enforced)
            }
            _ => self.change,
        };
        let keys = match change {
            Some(change) => change.apply(&current).map_err(|e| {
                Error::new(Exit::Usage, "usage", e.0).at(doc.location(file, doc.line))
            })?,
            None if !current.is_empty() => current.clone(),
            None => match self.rule {
                Some(rule) if !rule.keys.is_empty() => rule_keys(rule.keys)?,
                _ => vec![session.local_key()?.clone()],
            },
        };
        let clear = match (self.enforce_rule, self.rule, previous) {
            (true, Some(rule), _) => rule.clear,
            (_, _, Some(p)) => p.meta.info().clear,
            (_, Some(rule), None) => rule.clear,
            _ => ClearSections::default(),
        };
        let rotate = self.rotate || current.iter().any(|k| !keys.contains(k));
        let dek = match previous {
            Some(p) if !rotate => p.dek.clone(),
            _ => DataKey::generate(),
        };
        Ok(Decision { keys, dek, clear })
    }
}
