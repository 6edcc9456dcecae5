//! `ksec encrypt`: encrypt every Secret of one stream, or of many files in
//! place with one batch of key-service calls.

use std::path::PathBuf;

use ksec::error::{Error, Result};
use ksec::io::Source;
use ksec::keys::KeyChange;
use ksec::pipeline::{self, KeyPolicy, Parents, RuleKeys, SealJob, SealOptions};

use super::{Context, Output, note, plural, read_all, warn};

/// What `encrypt` was asked to do.
pub struct EncryptPlan {
    /// Files and directories (`-` or nothing: stdin).
    pub paths: Vec<PathBuf>,
    /// Where the result goes.
    pub output: Output,
    /// `--key` changes.
    pub keys: KeyChange,
    /// `data` values are plain text to be base64-encoded first.
    pub cleartext: bool,
    /// Generate a new data key for every Secret.
    pub rotate: bool,
    /// A previous encrypted version (`--parent`).
    pub parent: Option<PathBuf>,
    /// `--format`: the format of files not encrypted yet.
    pub format: Option<&'static dyn ksec::formats::Format>,
    /// Input size limit.
    pub max_input: u64,
}

/// Runs `encrypt`. Several inputs (or a directory) need `-i`: every file is
/// prepared, the wraps of all of them are made in one batch, every result
/// is verified, and only then are the changed files written (one line each
/// on stderr, then a summary); unchanged files are not touched.
pub fn run(plan: &EncryptPlan, ctx: &Context) -> Result<()> {
    let configs = ctx.configs()?;
    let inputs = super::inputs(&plan.paths, &configs, false)?;
    check_outputs(plan, &inputs)?;
    let session = ctx.session();
    let streams = read_all(&inputs.sources, plan.max_input)?;
    let parents = match &plan.parent {
        Some(p) => {
            let parent = pipeline::read(&Source::File(p.clone()), plan.max_input)?;
            Some(Parents::open(&session, &parent)?)
        }
        None => None,
    };
    let change = if plan.keys.is_empty() {
        None
    } else {
        Some(session.resolve_change(&plan.keys)?)
    };
    let rules = inputs
        .sources
        .iter()
        .map(|s| configs.rule(s))
        .collect::<Result<Vec<_>>>()?;
    let jobs: Vec<SealJob<'_>> = streams
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
                    rotate: plan.rotate,
                    enforce_rule: false,
                },
                cleartext: plan.cleartext,
                parents: parents.as_ref(),
                format: plan.format,
                ..SealOptions::default()
            },
        })
        .collect();
    let unverified = pipeline::seal_unverified(&session, &jobs)?;
    drop(jobs);
    // What is left to do needs of each input only its name, whether the
    // result differs from it, and the comments among its values: the rest
    // (its text and located values) is freed before the results are read
    // back, which locates them anew.
    let inputs_left: Vec<InputLeft> = streams
        .iter()
        .zip(&unverified)
        .map(|(stream, u)| {
            let changed = u.text() != stream.text;
            // sops encrypts those comments; kubesec keeps them clear.
            let comments = if changed && u.format() == "kubesec" {
                pipeline::value_comments(stream)
            } else {
                Vec::new()
            };
            InputLeft {
                changed,
                comments,
                name: stream.name.clone(),
            }
        })
        .collect();
    drop(streams);
    let results = unverified
        .into_iter()
        .map(pipeline::Unverified::verify)
        .collect::<Result<Vec<_>>>()?;
    for w in inputs_left.iter().flat_map(|i| &i.comments) {
        warn(&w.to_string());
    }
    if inputs.single {
        let (input, sealed) = (&inputs_left[0], &results[0]);
        if sealed.secrets == 0 {
            warn(&format!(
                "{}: no Secret documents (apiVersion: v1, kind: Secret); nothing to encrypt",
                input.name
            ));
        }
        return plan.output.for_source(&inputs.sources[0])?.write_result(
            input.changed,
            &sealed.text,
            ctx.force,
        );
    }
    let (mut changed, mut encrypted) = (0usize, 0usize);
    for ((input, source), sealed) in inputs_left.iter().zip(&inputs.sources).zip(&results) {
        if !input.changed {
            continue;
        }
        plan.output
            .for_source(source)?
            .write_result(true, &sealed.text, ctx.force)?;
        changed += 1;
        encrypted += sealed.fresh;
        let what = if sealed.fresh > 0 {
            format!("{} Secret{} encrypted", sealed.fresh, plural(sealed.fresh))
        } else {
            "keys or values re-sealed".to_owned()
        };
        note(&format!("wrote {} ({what})", input.name));
    }
    note(&format!(
        "{changed} of {} file{} changed, {encrypted} Secret{} newly encrypted",
        inputs_left.len(),
        plural(inputs_left.len()),
        plural(encrypted)
    ));
    Ok(())
}

/// What `run` keeps of an input once it is sealed.
struct InputLeft {
    name: String,
    /// The result differs from the input.
    changed: bool,
    /// Comments among its values that stay readable: a warning each, once
    /// the result has verified (none unless it changed, in kubesec format).
    comments: Vec<Error>,
}

/// Several inputs are encrypted in place only, and `--parent` is for one.
fn check_outputs(plan: &EncryptPlan, inputs: &ksec::paths::Inputs) -> Result<()> {
    if !inputs.single {
        if !plan.output.is_in_place() {
            return Err(Error::usage(
                "encrypt: several files or a directory are encrypted in place only (-i)",
            )
            .hint("pass -i to rewrite each file, or encrypt one file at a time to print it"));
        }
        if plan.parent.is_some() {
            return Err(Error::usage(
                "--parent takes one input file (the new version of that parent)",
            ));
        }
    }
    if plan.output.is_in_place() && inputs.sources.contains(&Source::Stdin) {
        plan.output.for_source(&Source::Stdin)?;
    }
    Ok(())
}
