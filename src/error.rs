//! Errors a user reads, and the exit codes they map to.
//!
//! Every refusal is one line that says where (file, line, document, key) and
//! what, plus an optional hint line. Secret values never appear in messages.

use std::fmt;
use std::process::ExitCode;

/// The documented exit codes (README, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 1: an unexpected failure.
    Other = 1,
    /// 2: bad command line or key specification.
    Usage = 2,
    /// 3: invalid input: YAML, manifest, value or footer syntax, size limit.
    Input = 3,
    /// 4: the document is in the wrong state: not encrypted, partly encrypted,
    /// or a file that would be overwritten already exists.
    State = 4,
    /// 5: integrity: a MAC or value does not verify, or there is no MAC.
    Integrity = 5,
    /// 6: no available key could open the data key, or a key failed to wrap it.
    Key = 6,
    /// 7: reading or writing a file failed.
    Io = 7,
    /// 8: `check` found problems (listed on stdout).
    Findings = 8,
}

/// A failure to show the user: one line, an optional hint, an exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Which exit code.
    pub exit: Exit,
    /// One line: where and what.
    pub message: String,
    /// How to fix it, when known.
    pub hint: Option<String>,
}

impl Failure {
    /// A failure without a hint.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint line.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a hint when there is one.
    pub fn maybe_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// The process exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit as u8)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Shorthand for results of user-facing operations.
pub type Result<T, E = Failure> = std::result::Result<T, E>;
