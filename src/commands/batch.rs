//! Many files in one process: read and locate them all, then ask the key
//! services for the data keys of every file in one batch.
//!
//! The keyring remembers every unwrap of the run, so after
//! [`unwrap_everything`] the per-file work (which asks for each document's
//! data key again) is answered from memory: a tree of 200 files with one
//! AWS key costs one concurrent round of KMS calls (bounded by `--jobs`),
//! not 200 sequential ones, and every call shares one client per region.

use crate::error::Result;
use crate::io::{self, Source};
use crate::keys::Keyring;
use crate::manifest::{self, Document};
use crate::progress::Progress;
use crate::secret::{self, State};

/// One input: its text and its located documents.
pub struct Loaded {
    /// Where it came from.
    pub source: Source,
    /// Its name in messages.
    pub name: String,
    /// The text as read.
    pub text: String,
    /// Its documents.
    pub docs: Vec<Document>,
}

impl Loaded {
    /// Reads and locates one input.
    pub fn read(source: &Source, max_input: u64) -> Result<Loaded> {
        let name = source.display();
        let text = io::read_text(source, max_input)?;
        let docs = manifest::locate(&text).map_err(|e| super::locate_failure(&name, &e))?;
        Ok(Loaded {
            source: source.clone(),
            name,
            text,
            docs,
        })
    }
}

/// Reads and locates every input; the first failure ends the run.
pub fn load_all(
    sources: &[Source],
    max_input: u64,
    progress: &mut Progress,
) -> Result<Vec<Loaded>> {
    let mut out = Vec::with_capacity(sources.len());
    for (i, s) in sources.iter().enumerate() {
        progress.files("reading", i);
        out.push(Loaded::read(s, max_input)?);
    }
    Ok(out)
}

/// Unwraps the data key of every encrypted Secret of every file in one
/// [`Keyring::unwrap_all`] call. Failures are remembered, not returned:
/// each file reports its own when it opens its documents. v1/v2 documents
/// are left out unless `allow_missing_mac` (they are refused before any key
/// is asked otherwise), as are documents that do not classify.
pub fn unwrap_everything<'a>(
    keyring: &Keyring,
    files: impl IntoIterator<Item = &'a Loaded>,
    allow_missing_mac: bool,
    progress: &mut Progress,
) {
    let footers: Vec<_> = files
        .into_iter()
        .flat_map(|f| {
            f.docs
                .iter()
                .filter(|d| d.is_secret && d.problems.is_empty())
        })
        .filter_map(|d| match secret::classify(d) {
            Ok(State::Encrypted(footer)) if footer.version >= 3 || allow_missing_mac => {
                Some(footer)
            }
            _ => None,
        })
        .collect();
    if footers.is_empty() {
        return;
    }
    progress.step(&format!("opening {} data keys", footers.len()));
    let lines: Vec<&[crate::envelope::footer::WrappedKey]> =
        footers.iter().map(|f| f.keys.as_slice()).collect();
    keyring.unwrap_all(&lines);
}
