//! The pipeline every command, plugin, bench and fuzz target shares: read
//! and locate streams, classify their Secrets by format, unwrap every data
//! key of a run in one batch, open and verify, seal with one batch of wraps,
//! and check the result before anything is written.
//!
//! ```text
//! read / parse ─► classify ─► open_all ──► decrypt (strip, verify)
//!                         ├─► seal_all (decide keys ─► prepare ─► wrap batch ─► finish ─► verify)
//!                         └─► rewrap_all (key lines to their key's latest version, verified)
//! ```
//!
//! The pipeline never prints and never exits: it returns results and
//! [`Error`]s with a location, and tells the user things through the
//! session's [`Reporter`]. Commands decide where results go.

mod checks;
mod convert;
mod decrypt;
pub mod kubectl;
mod open;
mod parents;
mod policy;
mod rewrap;
mod seal;

use std::cell::OnceCell;
use std::rc::Rc;

pub use checks::{
    Exposure, exposed, failure as exposure_error, refuse_exposed, refuse_hidden_ciphertext,
    refuse_stray_ciphertext, refuse_unencryptable, unencryptable, value_comments,
};
pub use convert::{Converted, convert_all};
pub use decrypt::{DecryptOptions, Decrypted, decrypt, decrypt_all, decrypt_each};
pub use kubectl::join as join_streams;
pub use open::{
    Classified, OpenedStream, classify, classify_as, format_of, open_all, warm_unwraps,
};
pub use parents::{ParentDoc, Parents};
pub use policy::{KeyPolicy, RuleKeys};
pub use rewrap::{Rewrapped, rewrap_all};
pub use seal::{
    SealJob, SealOptions, SealedStream, Unverified, encrypt_text, seal_all, seal_unverified,
};

use crate::error::{Error, Exit, Result};
use crate::io::{self, Source};
use crate::keys::{KeyChange, KeyId, KeyType, Keyring};
use crate::manifest::{Document, LocateError, Problem, Stream};
use crate::report::Reporter;

/// What one run shares: the keyring (its clients and its memory of data
/// keys), where notes go, and the time recorded for new data keys.
pub struct Session {
    /// Every provider of the run.
    pub keyring: Keyring,
    /// Where notes and warnings go.
    pub reporter: Rc<dyn Reporter>,
    /// The time recorded for a new data key (`# ksec:rotated:`).
    pub now: String,
    /// The local age recipient, once asked for.
    local_key: OnceCell<KeyId>,
}

impl Session {
    /// A session with this keyring and reporter, its clock read now.
    pub fn new(keyring: Keyring, reporter: Rc<dyn Reporter>) -> Session {
        Session {
            keyring,
            reporter,
            now: crate::clock::now_rfc3339(),
            local_key: OnceCell::new(),
        }
    }

    /// A quiet session over `keyring` (tests, benches, embedding).
    pub fn quiet(keyring: Keyring) -> Session {
        Session::new(keyring, Rc::new(crate::report::Silent))
    }

    /// The built-in default key: the local age identity, created on first
    /// use (with a note saying where, and that it must be backed up).
    pub fn local_key(&self) -> Result<&KeyId> {
        if let Some(k) = self.local_key.get() {
            return Ok(k);
        }
        let (recipient, created) = crate::keys::age::local_recipient()
            .map_err(|m| Error::new(Exit::Key, "local-key", format!("local age key: {m}")))?;
        if let Some(path) = created {
            self.reporter.note(&format!(
                "created a new age key at {} (recipient {recipient}); back it up: without it these files cannot be decrypted",
                path.display()
            ));
        }
        Ok(self.local_key.get_or_init(|| KeyId {
            kind: KeyType::Age,
            id: recipient,
        }))
    }

    /// Checks and normalises every key a `--key` change names (once per
    /// run, not per document).
    pub fn resolve_change(&self, change: &KeyChange) -> Result<KeyChange> {
        let r = |keys: &[KeyId]| -> Result<Vec<KeyId>> {
            keys.iter()
                .map(|k| {
                    self.keyring.resolve(k).map_err(|e| {
                        let mut err = crate::keys::key_error(&e, k);
                        err.message = format!("--key {k}: {e}");
                        err
                    })
                })
                .collect()
        };
        Ok(KeyChange {
            set: r(&change.set)?,
            add: r(&change.add)?,
            remove: change.remove.clone(),
        })
    }
}

/// Locates `text` with every format's metadata lines known (for tests and
/// tools that want documents without a name).
pub fn locate(text: &str) -> std::result::Result<Vec<Document>, LocateError> {
    crate::manifest::locate(text, crate::formats::is_metadata_comment)
}

/// Decrypts one text (a convenience over [`decrypt_all`]).
pub fn decrypt_text(
    session: &Session,
    name: &str,
    text: &str,
    opts: DecryptOptions,
) -> Result<Decrypted> {
    decrypt(session, &parse(name, text.to_owned())?, opts)
}

/// Locates `text` as the stream `name`.
pub fn parse(name: &str, text: String) -> Result<Stream> {
    Stream::parse(name, text, crate::formats::is_metadata_comment)
        .map_err(|e| locate_error(name, &e))
}

/// Reads and locates one input.
pub fn read(source: &Source, max_input: u64) -> Result<Stream> {
    let name = source.display();
    let text = io::read_text(source, max_input)?;
    parse(&name, text)
}

/// A stream-level error (invalid YAML, a misplaced footer line) as an error.
pub fn locate_error(file: &str, e: &LocateError) -> Error {
    match e {
        LocateError::Syntax {
            line,
            column,
            message,
        } => Error::new(
            Exit::Input,
            "invalid-yaml",
            format!("invalid YAML: {message}"),
        )
        .at(crate::error::Location::file(file)
            .line(*line)
            .column(*column)),
        LocateError::Footer { line, message } => {
            Error::new(Exit::Input, "misplaced-footer", message.clone())
                .at(crate::error::Location::file(file).line(*line))
        }
    }
}

/// The first problem the locator found in a Secret, as an error.
pub fn check_problems(file: &str, doc: &Document) -> Result<()> {
    match doc.problems.first() {
        None => Ok(()),
        Some(p) => Err(problem_error(file, doc, p)),
    }
}

/// A locator problem as an error (`invalid-secret`).
pub fn problem_error(file: &str, doc: &Document, p: &Problem) -> Error {
    let mut at = doc.location(file, p.line);
    at.key = p.key.clone();
    Error::new(Exit::Input, "invalid-secret", p.message.clone())
        .at(at)
        .maybe_hint(p.hint.clone())
}
