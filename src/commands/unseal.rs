//! `ksec unseal`: SealedSecrets → the Secrets the controller would create,
//! opened with its private keys (PEM files or its key backup), offline.
//!
//! Clear output has the guarantees of `decrypt`: nothing is written unless
//! every SealedSecret opened and the result reads back; the same advice
//! when clear Secrets go to a pipe. `--encrypt` seals the result with ksec
//! keys in memory first, so on the way from sealed-secrets to ksec files
//! clear text touches no disk.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use zeroize::Zeroizing;

use ksec::error::Result;
use ksec::io::Source;
use ksec::keys::KeyChange;
use ksec::pipeline::{self, KeyPolicy, RuleKeys, SealJob, SealOptions};
use ksec::sealed::{self, RecoveryKeys, UnsealOptions};

use super::{Context, Output, read_all, warn};

/// What `unseal` was asked to do.
pub struct UnsealPlan {
    /// Files and directories (`-` or nothing: stdin).
    pub paths: Vec<PathBuf>,
    /// Where the result goes.
    pub output: Output,
    /// `--recovery-key` files.
    pub recovery: Vec<PathBuf>,
    /// `--namespace`.
    pub namespace: Option<String>,
    /// `--encrypt`.
    pub encrypt: bool,
    /// `--key` for `--encrypt`.
    pub keys: KeyChange,
    /// `--format` for `--encrypt`.
    pub format: Option<&'static dyn ksec::formats::Format>,
    /// No advice on stderr.
    pub quiet: bool,
    /// Input size limit.
    pub max_input: u64,
}

/// Runs `unseal`.
pub fn run(plan: &UnsealPlan, ctx: &Context) -> Result<()> {
    let configs = ctx.configs()?;
    let inputs = super::inputs(&plan.paths, &configs, false)?;
    if plan.output.is_in_place() && inputs.sources.contains(&Source::Stdin) {
        plan.output.for_source(&Source::Stdin)?;
    }
    let session = ctx.session();
    let key_files: Vec<Source> = plan.recovery.iter().cloned().map(Source::File).collect();
    let keys = RecoveryKeys::load(&session, &key_files, plan.max_input)?;
    let streams = read_all(&inputs.sources, plan.max_input)?;
    let opts = UnsealOptions {
        namespace: plan.namespace.as_deref(),
    };
    let unsealed = sealed::unseal_streams(&streams, &keys, &opts)?;
    if unsealed.iter().all(|u| u.opened == 0) {
        warn(&format!(
            "{}: no SealedSecret documents; the input is passed through unchanged",
            if inputs.single {
                streams[0].name.as_str()
            } else {
                "the inputs"
            }
        ));
    }
    let texts: Vec<Zeroizing<String>> = if plan.encrypt {
        encrypt(
            plan,
            &session,
            &configs,
            &inputs.sources,
            &streams,
            unsealed,
        )?
    } else {
        unsealed.into_iter().map(|u| u.text).collect()
    };
    if plan.output.is_in_place() {
        for ((s, t), source) in streams.iter().zip(&texts).zip(&inputs.sources) {
            plan.output
                .for_source(source)?
                .write(&s.text, t, ctx.force)?;
        }
        return Ok(());
    }
    let (original, out) = if inputs.single {
        (
            streams[0].text.as_str(),
            texts.into_iter().next().expect("one input"),
        )
    } else {
        let parts: Vec<&str> = texts.iter().map(|t| t.as_str()).collect();
        ("", pipeline::join_streams(&parts))
    };
    pipeline::kubectl::check_split("<unsealed stream>", &out)?;
    if !plan.encrypt
        && plan.output == Output::Stdout
        && !plan.quiet
        && !std::io::stdout().is_terminal()
    {
        super::advise_clear_output(true, false);
    }
    plan.output.write(original, &out, ctx.force)
}

/// Encrypts every unsealed stream with ksec keys (`--key`, else the
/// `.ksec.yaml` rule of where it is written, else the local age key), all
/// wraps in one batch, verified by the pipeline.
fn encrypt(
    plan: &UnsealPlan,
    session: &pipeline::Session,
    configs: &ksec::config::Configs,
    sources: &[Source],
    streams: &[ksec::manifest::Stream],
    unsealed: Vec<sealed::Unsealed>,
) -> Result<Vec<Zeroizing<String>>> {
    let change = if plan.keys.is_empty() {
        None
    } else {
        Some(session.resolve_change(&plan.keys)?)
    };
    let mut clear = Vec::with_capacity(unsealed.len());
    for (u, s) in unsealed.into_iter().zip(streams) {
        clear.push(pipeline::parse(&s.name, u.text.to_string())?);
    }
    let result = (|| {
        let rules = sources
            .iter()
            .map(|s| {
                let written = match &plan.output {
                    Output::File(p) => Source::File(p.clone()),
                    _ => s.clone(),
                };
                configs.rule(&written)
            })
            .collect::<Result<Vec<_>>>()?;
        let jobs: Vec<SealJob<'_>> = clear
            .iter()
            .zip(&rules)
            .map(|(stream, rule)| SealJob {
                stream,
                options: SealOptions {
                    policy: KeyPolicy {
                        change: change.as_ref(),
                        rule: rule.as_ref().map(|(c, i)| RuleKeys {
                            keys: &c.rules[*i].keys,
                            clear: c.rules[*i].clear,
                            format: Some(&c.rules[*i].format),
                        }),
                        ..KeyPolicy::default()
                    },
                    format: plan.format,
                    ..SealOptions::default()
                },
            })
            .collect();
        pipeline::seal_all(session, &jobs)
    })();
    for s in &mut clear {
        sealed::wipe_stream(s);
    }
    Ok(result?
        .into_iter()
        .map(|s| Zeroizing::new(s.text))
        .collect())
}
