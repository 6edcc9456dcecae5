//! `ksec resolve`: the Secrets that ExternalSecrets would make, rendered
//! offline from the stores they read ([`ksec::stores::resolve`]).
//!
//! Clear output has `decrypt`'s guarantees: every value is fetched and the
//! result read back before anything reaches stdout or the file. With
//! `--encrypt` (or `-k`) the result is sealed like `encrypt` seals it:
//! `-k` keys, else the `.ksec.yaml` rule of the output file (or of the one
//! input file), else the local age key; `--format sops` for the SOPS format.

use std::path::PathBuf;

use ksec::error::Result;
use ksec::io::Source;
use ksec::keys::KeyChange;
use ksec::pipeline::{self, KeyPolicy, RuleKeys, SealJob, SealOptions};

use super::{Context, Output, read_all, warn};

/// What `resolve` was asked to do.
pub struct ResolvePlan {
    /// Files and directories (`-` or nothing: stdin).
    pub paths: Vec<PathBuf>,
    /// `--store FILE`: more SecretStores and ClusterSecretStores.
    pub stores: Vec<PathBuf>,
    /// Where the result goes.
    pub output: Output,
    /// Encrypt the result.
    pub encrypt: bool,
    /// `--key`.
    pub keys: KeyChange,
    /// `--format`.
    pub format: Option<&'static dyn ksec::formats::Format>,
    /// Input size limit.
    pub max_input: u64,
}

/// Runs `resolve`.
pub fn run(plan: &ResolvePlan, ctx: &Context) -> Result<()> {
    let configs = ctx.configs()?;
    let inputs = super::inputs(&plan.paths, &configs, false)?;
    let streams = read_all(&inputs.sources, plan.max_input)?;
    let store_sources: Vec<Source> = plan
        .stores
        .iter()
        .map(|p| Source::File(p.clone()))
        .collect();
    let store_files = read_all(&store_sources, plan.max_input)?;
    let connector = ctx.stores();
    let resolved = ksec::stores::resolve::resolve_all(
        &streams,
        &store_files,
        &connector,
        ctx.keys.reporter.as_ref(),
    )?;
    if resolved.iter().all(|r| r.resolved == 0) {
        warn("no ExternalSecret in the input; it is passed through unchanged");
    }
    if !plan.encrypt {
        for s in &streams {
            if let Some(d) = s.secrets().find(|d| d.footer.is_some()) {
                warn(&format!(
                    "{}: an encrypted Secret passes through encrypted (ksec resolve does not decrypt; resolve with --encrypt and decrypt the result, or decrypt the Secrets separately)",
                    d.location(&s.name, d.line)
                ));
                break;
            }
        }
    }
    let (name, text) = if inputs.single {
        (
            streams[0].name.clone(),
            resolved.into_iter().next().expect("one input").text,
        )
    } else {
        let parts: Vec<&str> = resolved.iter().map(|r| r.text.as_str()).collect();
        ("<joined stream>".to_owned(), pipeline::join_streams(&parts))
    };
    if !plan.encrypt {
        pipeline::kubectl::check_split(&name, &text)?;
        return plan.output.write("", &text, ctx.force);
    }
    let session = ctx.session();
    // The rule of the file written, else of the one file read.
    let rule_source = match (&plan.output, inputs.single, inputs.sources.first()) {
        (Output::File(p), _, _) => Some(Source::File(p.clone())),
        (_, true, Some(s @ Source::File(_))) => Some(s.clone()),
        _ => None,
    };
    let rule = match &rule_source {
        Some(s) => configs.rule(s)?,
        None => None,
    };
    let change = if plan.keys.is_empty() {
        None
    } else {
        Some(session.resolve_change(&plan.keys)?)
    };
    let stream = pipeline::parse(&name, text.to_string())?;
    let sealed = pipeline::seal_all(
        &session,
        &[SealJob {
            stream: &stream,
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
        }],
    )?;
    let out = &sealed[0].text;
    plan.output.write("", out, ctx.force)
}
