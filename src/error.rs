//! Errors a user reads, where they happened, and the exit codes they map to.
//!
//! Every refusal is one line that says where (file, line, document, key) and
//! what, plus an optional hint line. The library builds an [`Error`] with a
//! structured [`Location`]; only the binary's edge renders it, once
//! ([`Error`]'s `Display`), and `check` reads the location and the
//! [`Error::code`] instead of parsing text. Secret values never appear in
//! messages.

use std::fmt;
use std::process::ExitCode;

/// The documented exit codes (README, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 1: an unexpected failure.
    Other,
    /// 2: bad command line or key specification.
    Usage,
    /// 3: invalid input: YAML, manifest, value or footer syntax, size limit.
    Input,
    /// 4: the document is in the wrong state: not encrypted, partly encrypted,
    /// or a file that would be overwritten already exists.
    State,
    /// 5: integrity: a MAC or value does not verify, or there is no MAC.
    Integrity,
    /// 6: no available key could open the data key, or a key failed to wrap it.
    Key,
    /// 7: reading or writing a file failed.
    Io,
    /// 8: `check` found problems (listed on stdout).
    Findings,
    /// 9: a secret store failed or lacks what was asked for: not found,
    /// access denied, version or property missing, throttled, unreachable.
    Store,
    /// 128+N: stopped by signal N (SIGINT, SIGTERM, SIGHUP), after cleaning up.
    Signal(u8),
}

impl Exit {
    /// The number the process exits with.
    pub fn number(self) -> u8 {
        match self {
            Exit::Other => 1,
            Exit::Usage => 2,
            Exit::Input => 3,
            Exit::State => 4,
            Exit::Integrity => 5,
            Exit::Key => 6,
            Exit::Io => 7,
            Exit::Findings => 8,
            Exit::Store => 9,
            Exit::Signal(n) => 128u8.saturating_add(n),
        }
    }

    /// The process exit code.
    pub fn code(self) -> ExitCode {
        ExitCode::from(self.number())
    }
}

/// Where something went wrong: as much of file, line, document, object and
/// key as is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The input's name (`k8s/db.yaml`, `<stdin>`).
    pub file: Option<String>,
    /// 1-based line; 0 when unknown.
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub column: usize,
    /// 1-based document of the stream.
    pub document: Option<usize>,
    /// For a Secret inside a `List`: its `items` path (`items[2]`).
    pub item: String,
    /// What the document is: `Secret prod/db`, `List (unnamed)`.
    pub object: Option<String>,
    /// The value concerned: `data.password`.
    pub key: Option<String>,
}

impl Location {
    /// A location in `file`.
    pub fn file(file: impl Into<String>) -> Location {
        Location {
            file: Some(file.into()),
            ..Location::default()
        }
    }

    /// The same location at `line`.
    pub fn line(mut self, line: usize) -> Location {
        self.line = line;
        self
    }

    /// The same location at `column`.
    pub fn column(mut self, column: usize) -> Location {
        self.column = column;
        self
    }

    /// The same location for `key` (`section.key`).
    pub fn key(mut self, key: impl Into<String>) -> Location {
        self.key = Some(key.into());
        self
    }

    /// `document N[, items[i]] (Object)[, key]`: everything after
    /// `FILE:LINE: `, empty when nothing is known.
    pub fn within(&self) -> String {
        let mut s = String::new();
        if let Some(d) = self.document {
            s.push_str(&format!("document {d}"));
            if !self.item.is_empty() {
                s.push_str(", ");
                s.push_str(&self.item);
            }
            if let Some(o) = &self.object {
                s.push_str(&format!(" ({o})"));
            }
        }
        if let Some(k) = &self.key {
            if !s.is_empty() {
                s.push_str(", ");
            }
            s.push_str(k);
        }
        s
    }
}

impl fmt::Display for Location {
    /// `FILE:LINE[:COLUMN]: document N (Object), key` — the parts known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut head = String::new();
        if let Some(file) = &self.file {
            head.push_str(file);
            if self.line > 0 {
                head.push_str(&format!(":{}", self.line));
                if self.column > 0 {
                    head.push_str(&format!(":{}", self.column));
                }
            }
        }
        let within = self.within();
        match (head.is_empty(), within.is_empty()) {
            (true, true) => Ok(()),
            (false, true) => f.write_str(&head),
            (true, false) => f.write_str(&within),
            (false, false) => write!(f, "{head}: {within}"),
        }
    }
}

/// A failure to show the user: where, what, an optional hint, an exit code,
/// and a stable name for machines (`check --format json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Which exit code.
    pub exit: Exit,
    /// A stable, machine-readable name of the problem (`mac-mismatch`).
    pub code: &'static str,
    /// Where it happened (boxed: errors travel in every `Result`).
    pub at: Box<Location>,
    /// What happened, as a sentence fragment without the location.
    pub message: String,
    /// How to fix it, when known.
    pub hint: Option<String>,
}

impl Error {
    /// A failure without location or hint.
    pub fn new(exit: Exit, code: &'static str, message: impl Into<String>) -> Self {
        Error {
            exit,
            code,
            at: Box::default(),
            message: message.into(),
            hint: None,
        }
    }

    /// A usage error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Error::new(Exit::Usage, "usage", message)
    }

    /// An unexpected failure (exit 1): a bug, reported with its context.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(Exit::Other, "internal", message)
    }

    /// Sets where it happened.
    pub fn at(mut self, at: Location) -> Self {
        self.at = Box::new(at);
        self
    }

    /// Sets the file when none is known yet.
    pub fn in_file(mut self, file: &str) -> Self {
        if self.at.file.is_none() {
            self.at.file = Some(file.to_owned());
        }
        self
    }

    /// Adds a hint line.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Sets or clears the hint.
    pub fn maybe_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// The process exit code.
    pub fn exit_code(&self) -> ExitCode {
        self.exit.code()
    }

    /// Everything after `FILE:LINE: `: the document, object, key and the
    /// message, as `check` lists it.
    pub fn describe(&self) -> String {
        let within = self.at.within();
        if within.is_empty() {
            self.message.clone()
        } else {
            format!("{within}: {}", self.message)
        }
    }
}

impl fmt::Display for Error {
    /// The one line a user reads: location, then message. Line breaks and
    /// other control characters in either are shown escaped, so that an
    /// error is always exactly one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.at.to_string();
        let line = if at.is_empty() {
            self.message.clone()
        } else {
            format!("{at}: {}", self.message)
        };
        f.write_str(&one_line(&line))
    }
}

impl std::error::Error for Error {}

/// `text` with control characters escaped (`\n`, `\t`, `\u{1b}`), so that
/// it prints as one line.
pub fn one_line(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

/// Shorthand for results of user-facing operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_is_known() {
        let at = Location {
            file: Some("k8s/db.yaml".into()),
            line: 8,
            column: 0,
            document: Some(1),
            item: "items[2]".into(),
            object: Some("Secret prod/db".into()),
            key: Some("data.password".into()),
        };
        let e = Error::new(Exit::State, "partly-encrypted", "clear value").at(at);
        assert_eq!(
            e.to_string(),
            "k8s/db.yaml:8: document 1, items[2] (Secret prod/db), data.password: clear value"
        );
        assert_eq!(
            e.describe(),
            "document 1, items[2] (Secret prod/db), data.password: clear value"
        );
        let plain = Error::usage("bad flag");
        assert_eq!(plain.to_string(), "bad flag");
        let file_only = Error::usage("x").at(Location::file("f.yaml").line(3).column(7));
        assert_eq!(file_only.to_string(), "f.yaml:3:7: x");
    }

    #[test]
    fn always_one_line() {
        let e = Error::usage("--key `age:a\nb`: unknown");
        assert_eq!(e.to_string(), "--key `age:a\\nb`: unknown");
    }
}
