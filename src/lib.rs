//! ksec: keep Kubernetes Secrets in git.
//!
//! The library does the work; `main.rs` wires it to the command line.
//! [`manifest`] and [`envelope`] are pure (bytes in, bytes out); [`keys`] is
//! the only code that talks to the outside; [`commands`] orchestrate.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod cli;
pub mod commands;
pub mod config;
pub mod envelope;
pub mod error;
pub mod generator;
pub mod io;
pub mod keys;
pub mod manifest;
pub mod paths;
pub mod progress;
pub mod secret;
pub mod template;
