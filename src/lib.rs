//! ksec: keep Kubernetes Secrets in git.
//!
//! The library does the work; the `ksec` binary (`src/main.rs`, `src/cli.rs`,
//! `src/commands/`) only parses arguments, calls it, and writes results.
//! Layers, top to bottom, each using only the ones below it:
//!
//! * [`pipeline`]: the operations every command, plugin, bench and fuzz
//!   target shares — read and classify streams, open them with one batch of
//!   key-service calls, decrypt, seal with one batch of wraps, verify
//!   before anything is written. [`generator`] (the kustomize plugin and
//!   KRM function) is built on it.
//! * [`sealed`]: SealedSecrets (bitnami sealed-secrets) offline — seal
//!   Secrets for a controller's certificate, open and re-seal them with its
//!   backed-up keys — on the pipeline too.
//! * [`formats`]: the on-disk formats behind one seam ([`formats::Format`]):
//!   kubesec and sops.
//! * [`keys`]: key ids, data keys, and the providers (age, PGP, AWS KMS,
//!   GCP Cloud KMS, Vault/OpenBao transit, Azure Key Vault) — with `vault`
//!   (a Vault client for transit keys and anything else kept in Vault) and
//!   `net` (the HTTPS client they share) and [`stores`] (AWS Secrets
//!   Manager, Parameter Store, Vault KV, and the ExternalSecrets read from
//!   them), the only code that talks to the outside.
//! * [`manifest`]: YAML streams → documents → byte spans of values, and
//!   splicing edits back; knows no format. Pure.
//! * leaves: [`error`], [`io`], [`paths`], [`config`], [`k8s`], [`clock`],
//!   [`report`], [`scratch`], [`stale`], [`template`], [`par`].
//!
//! The library never prints and never exits: it returns [`error::Error`]s
//! with a structured location and reports notes and warnings to a
//! [`report::Reporter`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod clock;
pub mod config;
pub mod error;
pub mod formats;
pub mod generator;
pub mod io;
pub mod k8s;
pub mod keys;
pub mod manifest;
pub mod net;
pub mod par;
pub mod paths;
pub mod pipeline;
pub mod report;
pub mod scratch;
pub mod sealed;
pub mod stale;
pub mod stores;
pub mod template;
#[cfg(feature = "vault")]
pub mod vault;

pub use error::{Error, Exit, Location, Result};
