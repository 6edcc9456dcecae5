//! ksec inside other tools: the kustomize exec plugin and the KRM function
//! (both the `SecretDecryptor` generator of [`ksec::generator`]).
//!
//! Neither prints advice on stderr: their output goes to kustomize or kpt,
//! not to a terminal, and their callers show stderr only on failure.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use ksec::error::{Error, Exit, Result};
use ksec::generator::{self, Config, resource_list};
use ksec::io::{self, Source};

use super::Context;

/// `ksec kustomize-plugin CONFIG` (or the binary named `SecretDecryptor`):
/// kustomize's legacy exec plugin protocol. kustomize writes the generator's
/// configuration to a temporary file, passes its path as the first argument
/// and runs the plugin in the kustomization root (which it also exports as
/// `KUSTOMIZE_PLUGIN_CONFIG_ROOT`); the plugin prints a YAML stream.
pub fn kustomize(config: &Path, ctx: &Context) -> Result<()> {
    let origin = config.display().to_string();
    let text = io::read_text(&Source::File(config.to_owned()), io::DEFAULT_MAX_INPUT)?;
    let config = Config::from_text(&text, &origin)?;
    let root = match std::env::var_os("KUSTOMIZE_PLUGIN_CONFIG_ROOT") {
        Some(r) if !r.is_empty() => PathBuf::from(r),
        _ => current_dir()?,
    };
    let objects = generator::generate(&config, &root, &ctx.session())?;
    let mut out = String::new();
    for g in &objects {
        out.push_str("---\n");
        out.push_str(&g.object.to_string());
        out.push('\n');
    }
    io::write_stdout(out.as_bytes())
}

/// `ksec krm-function`: a `ResourceList` on stdin, the result on stdout. A
/// failure is reported in the list's `results` (and the exit code), as the
/// KRM function specification asks.
pub fn krm(ctx: &Context, max_input: u64) -> Result<()> {
    let run = || -> Result<String> {
        let mut input = String::new();
        std::io::stdin()
            .lock()
            .take(max_input + 1)
            .read_to_string(&mut input)
            .map_err(|e| {
                Error::new(
                    Exit::Io,
                    "unreadable",
                    format!("cannot read: {}", io::io_reason(&e)),
                )
                .in_file("<stdin>")
            })?;
        if input.len() as u64 > max_input {
            return Err(Error::new(
                Exit::Input,
                "too-large",
                "the ResourceList is larger than the input size limit",
            )
            .in_file("<stdin>")
            .hint("raise it with --max-input-size"));
        }
        resource_list::process(&input, &current_dir()?, &ctx.session())
    };
    match run() {
        Ok(out) => io::write_stdout(out.as_bytes()),
        Err(f) => {
            io::write_stdout(resource_list::failure_list(&f).as_bytes())?;
            Err(f)
        }
    }
}

fn current_dir() -> Result<PathBuf> {
    std::env::current_dir().map_err(|e| {
        Error::new(
            Exit::Io,
            "unreadable",
            format!("cannot read the working directory: {}", io::io_reason(&e)),
        )
    })
}
