//! One module per subcommand. A command orchestrates: it turns its plan into
//! library calls ([`ksec::pipeline`]), then writes the result and a report.
//! Commands never import one another; what two of them share lives in the
//! library, or here when it is about talking to the user (output, notes,
//! confirmation).

pub mod check;
pub mod convert;
pub mod create;
pub mod decrypt;
pub mod edit;
pub mod encrypt;
pub mod exec;
pub mod import;
pub mod introspect;
pub mod keygen;
pub mod merge;
pub mod patch;
pub mod plugin;
pub mod push;
pub mod recompute_mac;
pub mod reseal;
pub mod resolve;
pub mod seal;
pub mod shell;
pub mod spec;
pub mod textconv;
pub mod unseal;
pub mod updatekeys;

use std::path::PathBuf;
use std::rc::Rc;

use ksec::config::Configs;
use ksec::error::{Error, Exit, Result};
use ksec::io::{self, Source};
use ksec::keys::{Keyring, KeyringOptions};
use ksec::pipeline::Session;
use ksec::report::Reporter;

/// Where a command's result goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Standard output.
    Stdout,
    /// A file, written atomically.
    File(PathBuf),
    /// Back into the input file, atomically; not written when unchanged.
    InPlace(PathBuf),
    /// `-i` of a command that takes several inputs: each input file is
    /// written back ([`Output::for_source`] gives its [`Output::InPlace`]).
    InPlaceEach,
}

impl Output {
    /// Where the result for one input goes: for `-i`, that input file.
    pub fn for_source(&self, source: &Source) -> Result<Output> {
        match (self, source) {
            (Output::InPlaceEach, Source::File(p)) => Ok(Output::InPlace(p.clone())),
            (Output::InPlaceEach, Source::Stdin) => {
                Err(Error::usage("--in-place needs a FILE argument, not stdin"))
            }
            (other, _) => Ok(other.clone()),
        }
    }

    /// Whether each input is written back to itself.
    pub fn is_in_place(&self) -> bool {
        matches!(self, Output::InPlace(_) | Output::InPlaceEach)
    }

    /// Writes the result. Nothing reaches stdout or disk before this call,
    /// and this call happens only after the result has been verified.
    /// `force`: replace a read-only file too.
    pub fn write(&self, original: &str, result: &str, force: bool) -> Result<()> {
        self.write_result(original != result, result, force)
    }

    /// [`Output::write`] for a caller that no longer holds the original:
    /// `changed` tells whether `result` differs from it.
    pub fn write_result(&self, changed: bool, result: &str, force: bool) -> Result<()> {
        match self {
            Output::Stdout => io::write_stdout(result.as_bytes()),
            Output::File(p) => io::write_atomic(p, result.as_bytes(), force),
            // An unchanged file is not rewritten (its mtime and inode stay).
            Output::InPlace(_) if !changed => Ok(()),
            Output::InPlace(p) => io::write_atomic(p, result.as_bytes(), force),
            Output::InPlaceEach => Err(Error::internal(
                "internal error: in-place output without its file",
            )),
        }
    }
}

/// What every command gets from `main`: how to reach keys, and where the
/// key rules are.
pub struct Context {
    /// Provider settings.
    pub keys: KeyringOptions,
    /// `--config` / `KSEC_CONFIG`.
    pub config: Option<PathBuf>,
    /// `--force`: replace read-only files, and existing `create -o` files.
    pub force: bool,
}

impl Context {
    /// A session: one keyring (every file of a run shares its clients and
    /// its memory of data keys), notes to stderr.
    pub fn session(&self) -> Session {
        Session::new(Keyring::new(self.keys.clone()), self.keys.reporter.clone())
    }

    /// The secret stores (AWS Secrets Manager, Parameter Store, Vault KV),
    /// reached with the key providers' settings; nothing is called until
    /// a store is used.
    pub fn stores(&self) -> ksec::stores::connect::Connector {
        ksec::stores::connect::Connector::new(ksec::stores::connect::StoreOptions {
            #[cfg(feature = "aws")]
            aws: self.keys.aws.clone(),
            #[cfg(feature = "vault")]
            net: ksec::net::NetOptions {
                #[cfg(feature = "aws")]
                timeout: self.keys.aws.timeout,
                #[cfg(feature = "aws")]
                jobs: self.keys.aws.jobs,
                ..ksec::net::NetOptions::default()
            },
            reporter: self.keys.reporter.clone(),
        })
    }

    /// The key rules (`.ksec.yaml`), read lazily per directory.
    pub fn configs(&self) -> Result<Configs> {
        Configs::new(self.config.as_deref())
    }
}

/// Notes and warnings on stderr, one line each; traces with `-v`.
pub struct Stderr {
    /// `-v`.
    pub verbose: bool,
}

impl Reporter for Stderr {
    fn note(&self, message: &str) {
        eprintln!("ksec: {}", ksec::error::one_line(message));
    }
    fn warn(&self, message: &str) {
        eprintln!("ksec: warning: {}", ksec::error::one_line(message));
    }
    fn trace(&self, message: &str) {
        if self.verbose {
            eprintln!("ksec: {}", ksec::error::one_line(message));
        }
    }
    fn tracing(&self) -> bool {
        self.verbose
    }
}

/// The reporter of a run.
pub fn stderr(verbose: bool) -> Rc<dyn Reporter> {
    Rc::new(Stderr { verbose })
}

/// A one-line warning on stderr.
pub fn warn(message: &str) {
    Stderr { verbose: false }.warn(message);
}

/// A one-line note on stderr.
pub fn note(message: &str) {
    Stderr { verbose: false }.note(message);
}

/// The files a command works on (see [`ksec::paths`]): directories
/// walked, Helm chart templates and `.ksec.yaml` `ignore` patterns left out
/// (also files named on the command line when `named`, as for `check`,
/// which pre-commit calls with file names), with a note on what was left
/// out. A run with nothing to work on is refused.
pub fn inputs(paths: &[PathBuf], configs: &Configs, named: bool) -> Result<ksec::paths::Inputs> {
    let reason = |p: &std::path::Path| -> Option<String> {
        if let Some(chart) = ksec::paths::helm_chart_of(p) {
            return Some(format!("a Helm chart template of {}", chart.display()));
        }
        configs.ignored(p)
    };
    let skip = ksec::paths::Skip {
        reason: &reason,
        named,
    };
    // A run with nothing to work on is refused (usually a wrong path),
    // except a `check` whose files were all left out (pre-commit may pass
    // it nothing but chart templates).
    let inputs = if named {
        let found = ksec::paths::expand(paths, Source::Stdin, &skip)?;
        if found.sources.is_empty() && found.skipped.is_empty() {
            ksec::paths::expand_some(paths, Source::Stdin, &skip)?
        } else {
            found
        }
    } else {
        ksec::paths::expand_some(paths, Source::Stdin, &skip)?
    };
    if !inputs.skipped.is_empty() {
        let n = inputs.skipped.len();
        let shown: Vec<String> = inputs
            .skipped
            .iter()
            .take(3)
            .map(|(p, why)| format!("{} ({why})", p.display()))
            .collect();
        let more = if n > 3 {
            format!(", and {} more", n - 3)
        } else {
            String::new()
        };
        note(&format!(
            "left out {n} file{} that hold{} no ksec data: {}{more}",
            plural(n),
            if n == 1 { "s" } else { "" },
            shown.join(", ")
        ));
    }
    Ok(inputs)
}

/// Reads and locates every input, with a progress line on long runs; the
/// first failure ends the run.
pub fn read_all(sources: &[Source], max_input: u64) -> Result<Vec<ksec::manifest::Stream>> {
    let mut progress = crate::progress::Progress::new(sources.len());
    let mut out = Vec::with_capacity(sources.len());
    for (i, s) in sources.iter().enumerate() {
        progress.files("reading", i);
        let stream = ksec::pipeline::read(s, max_input).map_err(|e| match s {
            Source::File(p) if e.code == "invalid-yaml" => match ksec::paths::helm_chart_of(p) {
                Some(chart) => e.hint(format!(
                    "this is a template of the Helm chart {}: ksec reads rendered manifests, not templates",
                    chart.display()
                )),
                None => e,
            },
            _ => e,
        })?;
        out.push(stream);
    }
    Ok(out)
}

/// The advice for clear Secrets that are probably on their way to kubectl
/// (`decrypt`, `unseal` to a pipe or file): client-side apply keeps a clear
/// copy; `-x` output is not for kubectl at all.
pub fn advise_clear_output(has_secret: bool, cleartext: bool) {
    if !has_secret {
        return;
    }
    if cleartext {
        warn(
            "--cleartext output is for reading, not for kubectl: its `data` values are no longer base64, \
so the API server refuses them or, where the text happens to be valid base64, stores other bytes",
        );
    } else {
        warn(
            "client-side `kubectl apply` copies these clear values into the \
kubectl.kubernetes.io/last-applied-configuration annotation, where `kubectl describe` shows them",
        );
        eprintln!(
            "  hint: use `kubectl apply --server-side -f -` or `kubectl create -f -`; --quiet silences this"
        );
    }
}

/// `s` for counts other than one.
pub fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Asks `question` on the terminal; refuses without one (`--yes` is the
/// answer for scripts). `command` names the refusing command and `what` the
/// refused action.
pub fn confirm(command: &str, what: &str, question: &str) -> Result<()> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::usage(format!(
            "{command}: refusing to {what} without confirmation"
        ))
        .hint("pass --yes in scripts"));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer).map_err(|e| {
        Error::new(
            Exit::Io,
            "unreadable",
            format!("cannot read the answer: {e}"),
        )
    })?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Error::new(
            Exit::State,
            "not-confirmed",
            format!("{command}: not confirmed; nothing was written"),
        ))
    }
}
