//! Integration tests: one test binary, split by theme. They run the built
//! `ksec` binary against real peers (the `age` CLI, kreader.py) and the
//! kubesec vectors.

mod support;

mod apiserver;
#[cfg(feature = "aws")]
mod aws;
#[cfg(feature = "azure")]
mod azure;
#[cfg(feature = "vault")]
mod bao;
mod binding;
mod check;
mod cli;
mod crash;
mod create_patch;
mod edit;
mod fixtures;
#[cfg(feature = "gcp")]
mod gcp;
mod git;
mod interop_age;
mod keyservice;
mod kreader;
mod kubectl;
mod kubesec_compat;
mod parent;
mod pgp;
mod plugins;
mod properties;
mod rules;
mod sealed;
mod shapes;
mod shell;
mod sops;
#[cfg(feature = "aws")]
mod stores;
mod stores_exec;
#[cfg(all(feature = "aws", feature = "vault"))]
mod stores_vault;
mod tamper;
mod template;
mod tree;
#[cfg(feature = "vault")]
mod vault;
#[cfg(feature = "vault")]
mod vault_client;
mod vectors;
