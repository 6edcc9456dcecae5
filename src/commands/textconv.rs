//! `ksec textconv FILE`: what `git diff` shows for an encrypted file
//! (`.gitattributes`: `*.yaml diff=ksec`; `git config diff.ksec.textconv
//! "ksec textconv"`).
//!
//! Each Secret that an available key opens (and whose MAC verifies) is
//! shown decrypted, as `decrypt` prints it. Every other encrypted value is
//! shown as `<encrypted:1a2b3c4d>`: the first 8 hex digits of the SHA-256
//! of its **ciphertext token**. A token changes whenever its value changes
//! (a changed value always gets a fresh IV) and stays byte for byte when
//! the value does not, so the reviewer still sees which keys changed, were
//! added or removed; and since the hash input is ciphertext under a random
//! IV, the fingerprint says nothing about the clear value (equal values
//! have different fingerprints). Metadata (wrapped data keys, the MAC) is
//! shown as fingerprints too. A file that is not YAML, or has no Secret, is
//! printed as it is; textconv never fails on its input (git would show
//! nothing at all).

use std::path::Path;

use ksec::error::Result;
use ksec::formats::{OpenOptions, State};
use ksec::io::{self, Source};
use ksec::manifest;
use ksec::pipeline::{self, Session};

use super::Context;

/// Runs `textconv`.
pub fn run(file: &Path, max_input: u64, ctx: &Context) -> Result<()> {
    let text = io::read_text(&Source::File(file.to_owned()), max_input);
    let out = match text {
        Ok(t) => textconv(&file.display().to_string(), t, &ctx.session()),
        // Not UTF-8, too large: git shows it as it is. A file that cannot be
        // read at all is an error.
        Err(e) => {
            let bytes = std::fs::read(file).map_err(|_| e)?;
            return io::write_stdout(&bytes);
        }
    };
    io::write_stdout(out.as_bytes())
}

/// The text `git diff` compares for `text`.
pub fn textconv(name: &str, text: String, session: &Session) -> String {
    let Ok(stream) = pipeline::parse(name, text.clone()) else {
        return text;
    };
    let Ok(classified) = pipeline::classify(&stream) else {
        return stream.text;
    };
    if classified.sealed() == 0 {
        return stream.text;
    }
    pipeline::warm_unwraps(&session.keyring, &classified.envelopes, false);
    let mut edits = Vec::new();
    for e in &classified.envelopes {
        if !matches!(e.state, State::Sealed(_)) {
            continue;
        }
        let opened = classified
            .format
            .open(&stream, e, &session.keyring, OpenOptions::default())
            .ok();
        edits.extend(classified.format.diff_view(&stream, e, opened.as_ref()));
    }
    manifest::splice(&stream.text, &mut edits)
}
