//! How the library tells the user something without printing it.
//!
//! The library never prints (DESIGN.md §2): notes ("created a new age key"),
//! warnings ("format v1 has no MAC") and `-v` traces (each gpg command line,
//! each KMS batch) go to a [`Reporter`] that the binary provides. Tests,
//! benches and embedders use [`Silent`] or collect what was said.

use std::cell::RefCell;

/// Where the library's notes, warnings and traces go.
pub trait Reporter {
    /// Something the user should know (a key was created).
    fn note(&self, message: &str);
    /// Something that may be a mistake, but does not stop the run.
    fn warn(&self, message: &str);
    /// A `-v` trace line; never key material.
    fn trace(&self, message: &str);
    /// Whether traces are wanted (`-v`), so that callers can skip building them.
    fn tracing(&self) -> bool;
}

/// Says nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Reporter for Silent {
    fn note(&self, _: &str) {}
    fn warn(&self, _: &str) {}
    fn trace(&self, _: &str) {}
    fn tracing(&self) -> bool {
        false
    }
}

/// Remembers everything (for tests).
#[derive(Debug, Default)]
pub struct Collect {
    /// `note: …`, `warning: …` and `trace: …` lines, in order.
    pub lines: RefCell<Vec<String>>,
}

impl Reporter for Collect {
    fn note(&self, m: &str) {
        self.lines.borrow_mut().push(format!("note: {m}"));
    }
    fn warn(&self, m: &str) {
        self.lines.borrow_mut().push(format!("warning: {m}"));
    }
    fn trace(&self, m: &str) {
        self.lines.borrow_mut().push(format!("trace: {m}"));
    }
    fn tracing(&self) -> bool {
        true
    }
}
