//! One module per subcommand. Commands orchestrate: read, locate values,
//! unwrap or generate data keys, transform, verify, and only then write.

pub mod batch;
pub mod check;
pub mod create;
pub mod decrypt;
pub mod edit;
pub mod encrypt;
pub mod exposure;
pub mod introspect;
pub mod keygen;
pub mod merge;
pub mod parent;
pub mod patch;
pub mod plugin;
pub mod recompute_mac;
pub mod scratch;
pub mod shell;
pub mod spec;
pub mod textconv;
pub mod updatekeys;

use std::path::PathBuf;

use crate::error::{Exit, Failure, Result};
use crate::io::{self, Source};
use crate::keys::KeyError;
use crate::manifest::{self, Document, LocateError, Problem};
use crate::secret::DocError;

/// Where a command's result goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Standard output.
    Stdout,
    /// A file, written atomically.
    File(PathBuf),
    /// Back into the input file, atomically; not written when unchanged.
    InPlace(PathBuf),
    /// `-i` of a command that takes several inputs: each input file is
    /// written back ([`Output::for_source`] gives its [`Output::InPlace`]).
    InPlaceEach,
}

impl Output {
    /// Where the result for one input goes: for `-i`, that input file.
    pub fn for_source(&self, source: &Source) -> Result<Output> {
        match (self, source) {
            (Output::InPlaceEach, Source::File(p)) => Ok(Output::InPlace(p.clone())),
            (Output::InPlaceEach, Source::Stdin) => Err(Failure::new(
                Exit::Usage,
                "--in-place needs a FILE argument, not stdin",
            )),
            (other, _) => Ok(other.clone()),
        }
    }

    /// Whether each input is written back to itself.
    pub fn is_in_place(&self) -> bool {
        matches!(self, Output::InPlace(_) | Output::InPlaceEach)
    }

    /// Writes the result. Nothing reaches stdout or disk before this call,
    /// and this call happens only after the result has been verified.
    pub fn write(&self, original: &str, result: &str) -> Result<()> {
        match self {
            Output::Stdout => io::write_stdout(result.as_bytes()),
            Output::File(p) => io::write_atomic(p, result.as_bytes()),
            // An unchanged file is not rewritten (its mtime and inode stay).
            Output::InPlace(_) if original == result => Ok(()),
            Output::InPlace(p) => io::write_atomic(p, result.as_bytes()),
            Output::InPlaceEach => Err(Failure::new(
                Exit::Other,
                "internal error: in-place output without its file",
            )),
        }
    }
}

/// Reads and locates a stream, mapping errors to user messages.
pub fn load(source: &Source, max_input: u64) -> Result<(String, Vec<Document>)> {
    let text = io::read_text(source, max_input)?;
    let docs = manifest::locate(&text).map_err(|e| locate_failure(&source.display(), &e))?;
    Ok((text, docs))
}

/// A stream-level error as a user message.
pub fn locate_failure(file: &str, e: &LocateError) -> Failure {
    match e {
        LocateError::Syntax {
            line,
            column,
            message,
        } => Failure::new(
            Exit::Input,
            format!("{file}:{line}:{column}: invalid YAML: {message}"),
        ),
        LocateError::Footer { line, message } => {
            Failure::new(Exit::Input, format!("{file}:{line}: {message}"))
        }
    }
}

/// `FILE:LINE: document N (Secret ns/name)`, or for a Secret in a List
/// `FILE:LINE: document N, items[i] (Secret ns/name)`.
pub fn place(file: &str, doc: &Document, line: usize) -> String {
    let item = doc.item_path();
    let sep = if item.is_empty() { "" } else { ", " };
    format!(
        "{file}:{line}: document {}{sep}{item} (Secret {})",
        doc.index,
        doc.display_name()
    )
}

/// The first problem of a Secret document, as a failure.
pub fn check_problems(file: &str, doc: &Document) -> Result<()> {
    match doc.problems.first() {
        None => Ok(()),
        Some(Problem {
            line,
            key,
            message,
            hint,
        }) => {
            let key = key.as_ref().map(|k| format!(", {k}")).unwrap_or_default();
            Err(Failure::new(
                Exit::Input,
                format!("{}{key}: {message}", place(file, doc, *line)),
            )
            .maybe_hint(hint.clone()))
        }
    }
}

/// A command that rewrites encrypted files met a Secret that is not
/// encrypted: writing the file back would write its values in clear text.
pub fn plain_secret_kept(file: &str, doc: &Document) -> Failure {
    Failure::new(
        Exit::State,
        format!(
            "{}: the Secret is not encrypted, and this file would be written back with its values in clear text",
            place(file, doc, doc.line)
        ),
    )
    .hint(format!("encrypt it first: ksec encrypt -i {file}"))
}

/// A document-level error as a user message.
pub fn doc_failure(file: &str, doc: &Document, e: DocError) -> Failure {
    let at = |line: usize| place(file, doc, line);
    match e {
        DocError::Footer { line, error } => Failure::new(Exit::Input, format!("{}: {error}", at(line))),
        DocError::Partial { line, key } => Failure::new(
            Exit::State,
            format!("{}, {key}: the document is partly encrypted: this value is in clear text", at(line)),
        )
        .hint("decrypt the document first (ksec decrypt -i), then encrypt it again"),
        DocError::FooterOnClearText { line } => Failure::new(
            Exit::State,
            format!("{}: the document has a ksec/kubesec footer but its values are in clear text", at(line)),
        )
        .hint("remove the `# kubesec:` footer lines, then encrypt it"),
        DocError::NoFooter { line } => Failure::new(
            Exit::Integrity,
            format!("{}: encrypted values but no `# kubesec:` footer (deleted?)", at(line)),
        )
        .hint("restore the footer lines from version control"),
        DocError::Corrupt { line, key } => Failure::new(
            Exit::Integrity,
            format!("{}, {key}: the encrypted value is damaged (not valid base64 `ciphertext.iv.tag`)", at(line)),
        ),
        DocError::NotBase64 { line, key } => Failure::new(
            Exit::Input,
            format!("{}, {key}: the value is not valid base64, which `data` values must be", at(line)),
        )
        .hint("use --cleartext (-x) to have ksec base64-encode plain text, or move the value to stringData"),
        DocError::Value { line, key, error } => Failure::new(Exit::Input, format!("{}, {key}: {error}", at(line))),
        DocError::Authentication { line, key } => Failure::new(
            Exit::Integrity,
            format!("{}, {key}: the value does not verify (it was changed, moved to another key, or belongs to another document)", at(line)),
        ),
        DocError::MissingMac { line } => Failure::new(
            Exit::Integrity,
            format!("{}: the footer has no MAC line (`# kubesec:mac:`), so tampering cannot be ruled out", at(line)),
        )
        .hint(format!(
            "if you trust the values, sign them again with `ksec recompute-mac {file}`"
        )),
        DocError::NoMacInFormat { version } => Failure::new(
            Exit::Integrity,
            format!("{}: format v{version} carries no MAC, so tampering cannot be detected", at(doc.line)),
        )
        .hint(format!(
            "pass --allow-missing-mac to read it anyway, or add a MAC with `ksec recompute-mac {file}`"
        )),
        DocError::MacMismatch { line } => Failure::new(
            Exit::Integrity,
            format!("{}: the MAC does not verify: values, keys or key lines were changed outside ksec", at(line)),
        )
        .hint(format!(
            "compare with version control; if the current values are right, re-sign them with `ksec recompute-mac {file}`"
        )),
        DocError::Unwrap(f) => {
            let tried = if f.attempts.is_empty() {
                "the document lists no key".to_owned()
            } else {
                f.to_string()
            };
            Failure::new(
                Exit::Key,
                format!("{}: no available key can open the data key ({tried})", at(doc.line)),
            )
            .maybe_hint(unwrap_hint(&f))
        }
        DocError::Wrap { key, error } => key_failure(&format!("{}: key {key}", at(doc.line)), &error),
    }
}

/// What to do when no key opened a document, by the kinds of keys it has.
fn unwrap_hint(f: &crate::keys::UnwrapFailure) -> Option<String> {
    use crate::envelope::footer::KeyType;
    let mut hints = Vec::new();
    let has = |t: KeyType| f.attempts.iter().any(|(k, _)| k.kind == t);
    if has(KeyType::Age) {
        hints.push(
            "for age, set KSEC_AGE_KEY_FILE or KSEC_AGE_KEY to the identity of a listed recipient",
        );
    }
    if has(KeyType::Pgp) {
        hints.push("for PGP, import the secret key of a listed fingerprint into gpg");
    }
    if has(KeyType::Aws) {
        hints.push("for AWS, check credentials, region and endpoint, and that kms:Decrypt is allowed on a listed key");
    }
    (!hints.is_empty()).then(|| hints.join("; "))
}

/// A key error with context.
pub fn key_failure(context: &str, e: &KeyError) -> Failure {
    let exit = match e {
        KeyError::InvalidId(_) | KeyError::Unsupported(_) => Exit::Usage,
        KeyError::Unavailable(_) | KeyError::Failed(_) => Exit::Key,
    };
    Failure::new(exit, format!("{context}: {e}"))
}

/// The current time as recorded for a new data key (`# ksec:rotated:`).
pub fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    crate::envelope::footer::utc_timestamp(secs)
}

/// A one-line warning on stderr.
pub fn warn(message: &str) {
    eprintln!("ksec: warning: {message}");
}

/// A one-line note on stderr.
pub fn note(message: &str) {
    eprintln!("ksec: {message}");
}

/// Asks `question` on the terminal; refuses without one (`--yes` is the
/// answer for scripts). `command` names the refusing command.
pub fn confirm(command: &str, question: &str) -> Result<()> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let what = if command == "recompute-mac" {
            "sign"
        } else {
            "change keys"
        };
        return Err(Failure::new(
            Exit::Usage,
            format!("{command}: refusing to {what} without confirmation"),
        )
        .hint("pass --yes in scripts"));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::new(Exit::Io, format!("cannot read the answer: {e}")))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure::new(
            Exit::State,
            format!("{command}: not confirmed; nothing was written"),
        ))
    }
}

/// A 64-bit digest of a value, for checking that a result reads back as
/// intended without keeping a second copy of every value in memory. Never
/// written anywhere.
pub fn digest(value: &str) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::hash::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}
