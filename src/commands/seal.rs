//! `ksec seal`: Secrets (clear or encrypted) → SealedSecrets for a
//! sealed-secrets controller, offline, from its certificate.
//!
//! Three modes, as kubeseal's: a stream (every Secret sealed in place,
//! other documents byte for byte), `--raw` (one value, bare base64), and
//! `--merge-into FILE` (values added to an existing SealedSecret). The
//! certificate is read (or fetched) and checked before any input is read;
//! nothing is written unless every Secret sealed and the result reads back.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use ksec::error::{Error, Exit, Result};
use ksec::io::{self, Source};
use ksec::pipeline;
use ksec::sealed::{self, Certificate, Format, Scope, SealOptions};

use super::{Context, Output, note, plural, read_all, warn};

/// What `seal` was asked to do.
pub struct SealPlan {
    /// Files and directories (`-` or nothing: stdin).
    pub paths: Vec<PathBuf>,
    /// Where the result goes.
    pub output: Output,
    /// YAML or JSON.
    pub format: Format,
    /// `--cert`: a file, `file://` or `http(s)://` URL.
    pub cert: String,
    /// `--scope`.
    pub scope: Option<Scope>,
    /// `--namespace`.
    pub namespace: Option<String>,
    /// `--name`.
    pub name: Option<String>,
    /// Stream, raw value, or merge.
    pub mode: SealMode,
    /// `--allow-empty-data`.
    pub allow_empty_data: bool,
    /// Input size limit.
    pub max_input: u64,
}

/// What is sealed.
pub enum SealMode {
    /// Every Secret of the inputs.
    Stream,
    /// One value (`--raw`), from stdin or a file.
    Raw {
        /// `--from-file`.
        from_file: Option<PathBuf>,
    },
    /// The input's Secret into this file's SealedSecret (`--merge-into`).
    MergeInto(PathBuf),
}

/// Runs `seal`.
pub fn run(plan: &SealPlan, ctx: &Context) -> Result<()> {
    let cert = sealed::cert::load(&plan.cert, plan.max_input, sealed::cert::FETCH_TIMEOUT)?;
    cert.require_current(&plan.cert, ksec::clock::now_secs())?;
    let opts = SealOptions {
        cert: &cert,
        scope: plan.scope,
        namespace: plan.namespace.as_deref(),
        name: plan.name.as_deref(),
        allow_empty_data: plan.allow_empty_data,
        format: plan.format,
    };
    match &plan.mode {
        SealMode::Raw { from_file } => raw(plan, &cert, from_file.as_ref()),
        SealMode::MergeInto(target) => merge(plan, ctx, &opts, target),
        SealMode::Stream => stream(plan, ctx, &opts),
    }
}

fn stream(plan: &SealPlan, ctx: &Context, opts: &SealOptions<'_>) -> Result<()> {
    let configs = ctx.configs()?;
    let inputs = super::inputs(&plan.paths, &configs, false)?;
    if plan.output.is_in_place() && inputs.sources.contains(&Source::Stdin) {
        plan.output.for_source(&Source::Stdin)?;
    }
    let session = ctx.session();
    let streams = read_all(&inputs.sources, plan.max_input)?;
    let results = sealed::seal_streams(&session, &streams, opts)?;
    let total: usize = results.iter().map(|r| r.sealed).sum();
    if total == 0 {
        warn(&format!(
            "{}: no Secret documents (apiVersion: v1, kind: Secret); nothing to seal",
            if inputs.single {
                streams[0].name.as_str()
            } else {
                "the inputs"
            }
        ));
    }
    if plan.output.is_in_place() {
        for ((s, r), source) in streams.iter().zip(&results).zip(&inputs.sources) {
            plan.output
                .for_source(source)?
                .write(&s.text, &r.text, ctx.force)?;
            if r.sealed > 0 && !inputs.single {
                note(&format!(
                    "wrote {} ({} SealedSecret{})",
                    s.name,
                    r.sealed,
                    plural(r.sealed)
                ));
            }
        }
        return Ok(());
    }
    let (original, out) = if inputs.single {
        (streams[0].text.as_str(), results[0].text.clone())
    } else {
        let parts: Vec<&str> = results.iter().map(|r| r.text.as_str()).collect();
        let joined = pipeline::join_streams(&parts);
        pipeline::kubectl::check_split("<joined stream>", &joined)?;
        ("", joined.to_string())
    };
    plan.output.write(original, &out, ctx.force)
}

fn merge(plan: &SealPlan, ctx: &Context, opts: &SealOptions<'_>, target: &Path) -> Result<()> {
    let source = Source::from_arg(plan.paths.first().map(PathBuf::as_path));
    let session = ctx.session();
    let input = pipeline::read(&source, plan.max_input)?;
    let file = pipeline::read(&Source::File(target.to_owned()), plan.max_input)?;
    let out = sealed::merge_into(&session, &input, &file, opts)?;
    io::write_atomic(target, out.as_bytes(), ctx.force)?;
    if out == file.text {
        note(&format!("{}: nothing changed", target.display()));
    }
    Ok(())
}

fn raw(plan: &SealPlan, cert: &Certificate, from_file: Option<&PathBuf>) -> Result<()> {
    let label = sealed::raw_label(
        plan.scope.unwrap_or(Scope::Strict),
        plan.namespace.as_deref(),
        plan.name.as_deref(),
    )?;
    let value = read_value(from_file, plan.max_input)?;
    let blob = sealed::seal_value(cert, &label, &value)?;
    // Bare base64 without a line break, as kubeseal --raw prints it.
    plan.output.write("", &blob, false)
}

/// The `--raw` value: standard input or a file, exactly as read.
fn read_value(from_file: Option<&PathBuf>, limit: u64) -> Result<Zeroizing<Vec<u8>>> {
    let (name, reader): (String, Box<dyn std::io::Read>) = match from_file {
        None => (
            "standard input".to_owned(),
            Box::new(std::io::stdin().lock()),
        ),
        Some(p) => {
            let f = std::fs::File::open(p).map_err(|e| {
                Error::new(
                    Exit::Io,
                    "unreadable",
                    format!("cannot read: {}", io::io_reason(&e)),
                )
                .in_file(&p.display().to_string())
            })?;
            (p.display().to_string(), Box::new(f))
        }
    };
    let mut bytes = Zeroizing::new(Vec::new());
    reader
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            Error::new(
                Exit::Io,
                "unreadable",
                format!("cannot read {name}: {}", io::io_reason(&e)),
            )
        })?;
    if bytes.len() as u64 > limit {
        return Err(Error::new(
            Exit::Input,
            "too-large",
            format!(
                "the value from {name} is larger than the limit of {}",
                io::human_size(limit)
            ),
        )
        .hint("raise the limit with --max-input-size"));
    }
    Ok(bytes)
}
