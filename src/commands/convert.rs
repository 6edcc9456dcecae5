//! `ksec convert --to sops|kubesec FILE…`: the same Secrets, keys and
//! values in the other on-disk format. Every result is checked to decrypt
//! to the same clear text before any file is written; clear text stays in
//! memory.

use std::path::PathBuf;

use ksec::error::{Error, Result};
use ksec::formats::Format;
use ksec::pipeline::{self, RuleKeys};

use super::{Context, Output, note, plural, read_all};

/// What `convert` was asked to do.
pub struct ConvertPlan {
    /// Files and directories (`-` or nothing: stdin).
    pub paths: Vec<PathBuf>,
    /// Where the result goes.
    pub output: Output,
    /// The target format.
    pub to: &'static dyn Format,
    /// Input size limit.
    pub max_input: u64,
}

/// Runs `convert`.
pub fn run(plan: &ConvertPlan, ctx: &Context) -> Result<()> {
    let configs = ctx.configs()?;
    let inputs = super::inputs(&plan.paths, &configs, false)?;
    if !inputs.single && !plan.output.is_in_place() {
        return Err(Error::usage(
            "convert: several files or a directory are converted in place only (-i)",
        )
        .hint("pass -i to rewrite each file, or convert one file at a time to print it"));
    }
    let session = ctx.session();
    let streams = read_all(&inputs.sources, plan.max_input)?;
    let rules = inputs
        .sources
        .iter()
        .map(|s| configs.rule(s))
        .collect::<Result<Vec<_>>>()?;
    let rule_keys: Vec<Option<RuleKeys<'_>>> = rules
        .iter()
        .map(|r| {
            r.as_ref().map(|(c, i)| RuleKeys {
                keys: &c.rules[*i].keys,
                clear: c.rules[*i].clear,
                format: Some(&c.rules[*i].format),
            })
        })
        .collect();
    let converted = pipeline::convert_all(&session, &streams, plan.to, &rule_keys)?;
    if inputs.single {
        if converted[0].unchanged {
            note(&format!(
                "{}: already in the {} format",
                streams[0].name,
                plan.to.name()
            ));
        }
        return plan.output.for_source(&inputs.sources[0])?.write(
            &streams[0].text,
            &converted[0].text,
            ctx.force,
        );
    }
    let mut changed = 0;
    for ((stream, source), c) in streams.iter().zip(&inputs.sources).zip(&converted) {
        if c.unchanged {
            continue;
        }
        plan.output
            .for_source(source)?
            .write(&stream.text, &c.text, ctx.force)?;
        note(&format!("converted {} to {}", stream.name, plan.to.name()));
        changed += 1;
    }
    note(&format!(
        "{changed} of {} file{} converted to {}",
        streams.len(),
        plural(streams.len()),
        plan.to.name()
    ));
    Ok(())
}
