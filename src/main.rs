//! The `ksec` binary: parse, plan, run, print the error once, exit.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser as _;
use ksec::cli::{Cli, Plan};
use ksec::commands;
use ksec::error::Result;
use ksec::keys::Keyring;

fn run(cli: Cli) -> Result<()> {
    match cli.plan()? {
        Plan::Encrypt(p) => commands::encrypt::run(&p, &Keyring::from_env()),
        Plan::Decrypt(p) => commands::decrypt::run(&p, &Keyring::from_env()),
        Plan::Introspect(p) => commands::introspect::run(&p),
        Plan::Keygen => commands::keygen::run(),
        Plan::RecomputeMac(p) => commands::recompute_mac::run(&p, &Keyring::from_env()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
