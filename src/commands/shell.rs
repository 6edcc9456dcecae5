//! `ksec completion SHELL` and `ksec man`: generated from the same clap
//! definitions as the parser (clap_complete, clap_mangen), so they cannot
//! drift from the real command line. `main` passes the definitions in.

use ksec::error::{Error, Result};
use ksec::io;

/// The shells `completion` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    /// `source <(ksec completion bash)`, or save it to
    /// /usr/share/bash-completion/completions/ksec.
    Bash,
    /// Save as `_ksec` in a directory of `$fpath`.
    Zsh,
    /// Save to ~/.config/fish/completions/ksec.fish.
    Fish,
}

/// Prints the completion script for `shell`.
pub fn completion(mut command: clap::Command, shell: Shell) -> Result<()> {
    let mut out = Vec::new();
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(generator, &mut command, "ksec", &mut out);
    io::write_stdout(&out)
}

/// Prints the man page, section 1, in roff.
pub fn man(command: clap::Command) -> Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut out)
        .map_err(|e| Error::internal(format!("cannot render the man page: {e}")))?;
    io::write_stdout(&out)
}
