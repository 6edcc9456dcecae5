//! The `ksec` binary: parse, plan, run, print the error once, exit.
//!
//! Wiring only: [`cli`] turns arguments into a plan, a module of
//! [`commands`] runs it on the library ([`ksec::pipeline`]), and this file
//! renders the one error line (and its hint) and maps it to the exit code.
//! Nothing else in ksec exits the process, so destructors always run: the
//! zeroizing buffers that hold clear values and data keys are wiped.

#![forbid(unsafe_code)]

mod cli;
mod commands;
mod progress;

use std::process::ExitCode;

use clap::CommandFactory as _;
use ksec::error::Result;

use cli::{Cli, Plan};

fn run(cli: Cli) -> Result<ExitCode> {
    let run = cli.plan()?;
    let ctx = &run.context;
    if !matches!(
        run.plan,
        Plan::ScratchGuard(_) | Plan::Completion(_) | Plan::Man
    ) {
        // Clear text of an `edit` killed together with its guardian.
        ksec::scratch::clean_stale();
    }
    match &run.plan {
        Plan::Encrypt(p) => commands::encrypt::run(p, ctx),
        Plan::Decrypt(p) => commands::decrypt::run(p, ctx),
        Plan::Create(p) => commands::create::run(p, ctx),
        Plan::Patch(p) => commands::patch::run(p, ctx),
        Plan::Edit(p) => commands::edit::run(p, ctx),
        Plan::Introspect(p) => commands::introspect::run(p, ctx),
        Plan::Keygen => commands::keygen::run(),
        Plan::RecomputeMac(p) => commands::recompute_mac::run(p, ctx),
        Plan::KustomizePlugin(config) => commands::plugin::kustomize(config, ctx),
        Plan::KrmFunction(max_input) => commands::plugin::krm(ctx, *max_input),
        Plan::Check(p) => commands::check::run(p, ctx),
        Plan::Updatekeys(p) => commands::updatekeys::run(p, ctx),
        Plan::Textconv(file, max_input) => commands::textconv::run(file, *max_input, ctx),
        Plan::MergeDriver(p) => commands::merge::run(p, ctx),
        Plan::Completion(shell) => commands::shell::completion(Cli::command(), *shell),
        Plan::Man => commands::shell::man(Cli::command()),
        Plan::Convert(p) => commands::convert::run(p, ctx),
        Plan::ScratchGuard(dir) => ksec::scratch::guard(dir),
        Plan::Seal(p) => commands::seal::run(p, ctx),
        Plan::Unseal(p) => commands::unseal::run(p, ctx),
        Plan::Reseal(p) => commands::reseal::run(p, ctx),
        Plan::Resolve(p) => commands::resolve::run(p, ctx),
        Plan::Import(p) => commands::import::run(p, ctx),
        Plan::Push(p) => commands::push::run(p, ctx),
        // The command's own exit code.
        Plan::Exec(p) => return commands::exec::run(p, ctx),
    }
    .map(|()| ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse_invocation(std::env::args_os());
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ksec: error: {e}");
            if let Some(h) = &e.hint {
                eprintln!("  hint: {}", ksec::error::one_line(h));
            }
            e.exit_code()
        }
    }
}
