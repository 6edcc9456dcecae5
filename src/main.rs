//! The `ksec` binary: parse, plan, run, print the error once, exit.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use ksec::cli::{Cli, Plan};
use ksec::commands;
use ksec::config::Configs;
use ksec::error::Result;
use ksec::keys::Keyring;

fn run(cli: Cli) -> Result<()> {
    let run = cli.plan()?;
    // One keyring per process: every file of a run shares its clients and
    // its memory of wrapped and unwrapped data keys.
    let keyring = || Keyring::new(run.keys.clone());
    let configs = || Configs::new(run.config.as_deref());
    match &run.plan {
        Plan::Encrypt(p) => commands::encrypt::run(p, &keyring(), &configs()?),
        Plan::Decrypt(p) => commands::decrypt::run(p, &keyring()),
        Plan::Create(p) => commands::create::run(p, &keyring(), &configs()?),
        Plan::Patch(p) => commands::patch::run(p, &keyring()),
        Plan::Edit(p) => commands::edit::run(p, &keyring(), &configs()?),
        Plan::Introspect(p) => commands::introspect::run(p),
        Plan::Keygen => commands::keygen::run(),
        Plan::RecomputeMac(p) => commands::recompute_mac::run(p, &keyring()),
        Plan::KustomizePlugin(config) => commands::plugin::kustomize(config, &keyring()),
        Plan::KrmFunction(max_input) => commands::plugin::krm(&keyring(), *max_input),
        Plan::Check(p) => commands::check::run(p, &keyring, &configs()?),
        Plan::Updatekeys(p) => commands::updatekeys::run(p, &keyring(), &configs()?),
        Plan::Textconv(file, max_input) => commands::textconv::run(file, *max_input, &keyring()),
        Plan::MergeDriver(p) => commands::merge::run(p, &keyring()),
        Plan::Completion(shell) => commands::shell::completion(*shell),
        Plan::Man => commands::shell::man(),
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
