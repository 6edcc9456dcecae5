//! `ksec keygen`: create the local age identity.

use ksec::error::{Error, Exit, Result};
use ksec::io;
use ksec::keys::age::{self, GenerateError};

use super::note;

/// Runs `keygen`: writes a new identity and prints its recipient on stdout.
pub fn run() -> Result<()> {
    let path = age::identity_path().map_err(|e| Error::usage(e.0))?;
    match age::generate_identity_file(&path) {
        Ok(recipient) => {
            note(&format!(
                "wrote a new age identity to {}; back it up: files encrypted to it cannot be opened without it",
                path.display()
            ));
            io::write_stdout(format!("{recipient}\n").as_bytes())
        }
        Err(GenerateError::Exists) => Err(Error::new(
            Exit::State,
            "exists",
            "an identity exists already; not overwriting it",
        )
        .in_file(&path.display().to_string())
        .hint("set KSEC_AGE_KEY_FILE to write a new identity elsewhere")),
        Err(GenerateError::Io(m)) => Err(Error::new(Exit::Io, "write", m)),
    }
}
