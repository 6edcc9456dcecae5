//! Following a key service's key rotation without a new data key: every
//! key line whose provider can rewrap (Vault transit `rewrap`: the service
//! re-encrypts under the key's latest version, the data key never leaves
//! it) is moved to the latest version, in one batch, and each new blob is
//! unwrapped and compared with the old one's secret before anything is
//! sealed. The formats then write the new blobs where they kept the old
//! ones ([`Keyring::kept`](crate::keys::Keyring::kept)); values, data keys
//! and MACs stay.

use super::Session;
use super::open::Classified;
use crate::error::{Error, Exit, Result};
use crate::formats::State;
use crate::keys::{KeyId, WrappedKey};

/// A key line that moved to its key's latest version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrapped {
    /// Which of the classified streams.
    pub stream: usize,
    /// Where: `FILE:LINE: document N (Secret NAME)`.
    pub location: String,
    /// The key.
    pub key: KeyId,
    /// The version before and after, when the blob says (`v1` → `v2`).
    pub versions: Option<(String, String)>,
}

/// Rewraps every key line of every sealed envelope that its provider can
/// rewrap, verifies the new blobs, and lists what moved. Nothing is
/// written; seal the streams afterwards to write the new blobs.
pub fn rewrap_all(session: &Session, classified: &[Classified<'_>]) -> Result<Vec<Rewrapped>> {
    // Every key line, with where it is.
    let mut lines: Vec<(usize, String, WrappedKey)> = Vec::new();
    for (i, c) in classified.iter().enumerate() {
        for e in &c.envelopes {
            let State::Sealed(meta) = &e.state else {
                continue;
            };
            let doc = &c.stream.docs[e.docs[0]];
            let location = doc.location(&c.stream.name, doc.line);
            for w in meta.key_lines() {
                if !lines.iter().any(|(s, _, l)| *s == i && l == w) {
                    lines.push((i, location.to_string(), w.clone()));
                }
            }
        }
    }
    let refs: Vec<&WrappedKey> = lines.iter().map(|(_, _, w)| w).collect();
    let changed = session
        .keyring
        .rewrap_all(&refs)
        .map_err(|(k, e)| crate::keys::key_error(&e, &k))?;
    let moved: Vec<&(usize, String, WrappedKey)> = lines
        .iter()
        .zip(&changed)
        .filter(|(_, c)| **c)
        .map(|(l, _)| l)
        .collect();
    verify(session, &moved)?;
    Ok(moved
        .into_iter()
        .map(|(stream, location, old)| {
            let new = session.keyring.kept(old);
            Rewrapped {
                stream: *stream,
                location: location.clone(),
                key: old.key.clone(),
                versions: crate::keys::blob_version(&old.key, &old.blob)
                    .zip(crate::keys::blob_version(&new.key, &new.blob)),
            }
        })
        .collect())
}

/// Each new blob must unwrap to what the old one held.
fn verify(session: &Session, moved: &[&(usize, String, WrappedKey)]) -> Result<()> {
    if moved.is_empty() {
        return Ok(());
    }
    let old: Vec<[WrappedKey; 1]> = moved.iter().map(|(_, _, w)| [w.clone()]).collect();
    let new: Vec<[WrappedKey; 1]> = moved
        .iter()
        .map(|(_, _, w)| [session.keyring.kept(w)])
        .collect();
    let sets: Vec<&[WrappedKey]> = old.iter().chain(&new).map(|s| s.as_slice()).collect();
    let opened = session.keyring.unwrap_all(&sets);
    let (before, after) = opened.split_at(moved.len());
    for (((_, location, w), b), a) in moved.iter().zip(before).zip(after) {
        let key = &w.key;
        match (b, a) {
            (Ok(b), Ok(a)) if b == a => {}
            (Err(f), _) | (_, Err(f)) => {
                return Err(Error::new(
                    Exit::Key,
                    "key",
                    format!("{location}: key {key}: cannot check the rewrapped data key: {f}"),
                ));
            }
            _ => {
                return Err(Error::new(
                    Exit::Key,
                    "key",
                    format!(
                        "{location}: key {key}: the rewrapped blob does not hold the same data key; nothing was written"
                    ),
                ));
            }
        }
    }
    Ok(())
}
