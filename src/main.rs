//! The `ksec` binary: parse, plan, run, print the error once, exit.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use ksec::cli::{Cli, Plan};
use ksec::commands;
use ksec::error::Result;
use ksec::keys::Keyring;

fn run(cli: Cli) -> Result<()> {
    let run = cli.plan()?;
    let keyring = || Keyring::new(run.keys.clone());
    match &run.plan {
        Plan::Encrypt(p) => commands::encrypt::run(p, &keyring()),
        Plan::Decrypt(p) => commands::decrypt::run(p, &keyring()),
        Plan::Create(p) => commands::create::run(p, &keyring()),
        Plan::Patch(p) => commands::patch::run(p, &keyring()),
        Plan::Edit(p) => commands::edit::run(p, &keyring()),
        Plan::Introspect(p) => commands::introspect::run(p),
        Plan::Keygen => commands::keygen::run(),
        Plan::RecomputeMac(p) => commands::recompute_mac::run(p, &keyring()),
        Plan::KustomizePlugin(config) => commands::plugin::kustomize(config, &keyring()),
        Plan::KrmFunction(max_input) => commands::plugin::krm(&keyring(), *max_input),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse_invocation(std::env::args_os());
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ksec: error: {}", e.message);
            if let Some(h) = &e.hint {
                eprintln!("  hint: {h}");
            }
            e.exit_code()
        }
    }
}
