//! `ksec updatekeys PATH…`: bring encrypted files in line with their
//! `.ksec.yaml` rules — their key lines and the sections kept in clear text.
//!
//! Shows every change first (keys added and removed, per Secret), then asks
//! (`--yes` in CI; without a terminal and without `--yes` it refuses).
//! Adding keys keeps the data key and every ciphertext (only the new key
//! lines and the MAC line change); removing a key rotates the data key, so
//! every value is re-encrypted (the removed holder may have kept the old
//! one). Secrets that are not encrypted yet are left alone (that is
//! `encrypt`'s job; `check` reports them), as are files no rule matches.
//! Every file is verified before any is written; files already in line are
//! not touched.
//!
//! `--rewrap` also moves key lines to their key's latest version after a
//! key rotation in the key service (Vault transit `rewrap`): the data key,
//! every value and the MAC stay; only those key lines change. It applies to
//! every encrypted Secret given, with or without a rule, and each new blob
//! is unwrapped and compared with the old one first.

use std::path::PathBuf;

use ksec::config::Configs;
use ksec::error::{Error, Result};
use ksec::formats::State;
use ksec::io::Source;
use ksec::keys::KeyId;
use ksec::manifest::{ClearSections, Stream};
use ksec::pipeline::{self, KeyPolicy, RuleKeys, SealJob, SealOptions};

use super::{Context, Output, confirm, note, plural, read_all};

/// What `updatekeys` was asked to do.
pub struct UpdatekeysPlan {
    /// Files and directories.
    pub paths: Vec<PathBuf>,
    /// Do not ask.
    pub yes: bool,
    /// Also rewrap key lines to their key's latest version.
    pub rewrap: bool,
    /// Input size limit.
    pub max_input: u64,
}

/// A file whose Secrets differ from its rule, and the rule.
struct Todo {
    file: usize,
    keys: Vec<KeyId>,
    clear: ClearSections,
    format: ksec::formats::FormatRule,
}

/// Runs `updatekeys`.
pub fn run(plan: &UpdatekeysPlan, ctx: &Context) -> Result<()> {
    let configs = ctx.configs()?;
    let inputs = super::inputs(&plan.paths, &configs, false)?;
    if inputs.sources.contains(&Source::Stdin) {
        return Err(Error::usage(
            "updatekeys rewrites files in place; it cannot read stdin",
        ));
    }
    let streams = read_all(&inputs.sources, plan.max_input)?;
    let (todo, lines, unruled) = differences(&configs, &inputs.sources, &streams)?;
    let session = ctx.session();
    let rewrapped = if plan.rewrap {
        let classified: Vec<_> = streams
            .iter()
            .map(pipeline::classify)
            .collect::<Result<_>>()?;
        pipeline::rewrap_all(&session, &classified)?
    } else {
        Vec::new()
    };
    if todo.is_empty() && rewrapped.is_empty() {
        note(&format!(
            "{} file{} checked: every encrypted Secret agrees with its rule{}{}",
            streams.len(),
            plural(streams.len()),
            if unruled > 0 {
                format!(" ({unruled} without a rule)")
            } else {
                String::new()
            },
            if plan.rewrap {
                " and every key line is at its key's latest version"
            } else {
                ""
            }
        ));
        return Ok(());
    }
    if !todo.is_empty() {
        eprintln!("ksec: these Secrets will get the keys of their .ksec.yaml rule:");
        for l in &lines {
            eprintln!("  {l}");
        }
    }
    if !rewrapped.is_empty() {
        eprintln!(
            "ksec: these key lines move to their key's latest version (data key and values kept):"
        );
        for r in &rewrapped {
            match &r.versions {
                Some((from, to)) => eprintln!("  {}: {} {from} → {to}", r.location, r.key),
                None => eprintln!("  {}: {}", r.location, r.key),
            }
        }
    }
    if !plan.yes {
        confirm("updatekeys", "change keys", "Update these files?")?;
    }
    // One batch of unwraps for every affected file, one batch of wraps.
    let mut files: Vec<usize> = todo.iter().map(|t| t.file).collect();
    for r in &rewrapped {
        if !files.contains(&r.stream) {
            files.push(r.stream);
        }
    }
    let jobs: Vec<SealJob<'_>> = files
        .iter()
        .map(|&f| {
            let policy = match todo.iter().find(|t| t.file == f) {
                Some(t) => KeyPolicy {
                    rule: Some(RuleKeys {
                        keys: &t.keys,
                        clear: t.clear,
                        format: Some(&t.format),
                    }),
                    enforce_rule: true,
                    ..KeyPolicy::default()
                },
                // Rewrap only: the keys stay as they are.
                None => KeyPolicy::default(),
            };
            SealJob {
                stream: &streams[f],
                options: SealOptions {
                    policy,
                    only_sealed: true,
                    ..SealOptions::default()
                },
            }
        })
        .collect();
    let results = pipeline::seal_all(&session, &jobs)?;
    let mut written = 0;
    for (&f, sealed) in files.iter().zip(&results) {
        let stream = &streams[f];
        if sealed.text != stream.text {
            Output::InPlaceEach.for_source(&inputs.sources[f])?.write(
                &stream.text,
                &sealed.text,
                ctx.force,
            )?;
            note(&format!("updated {}", stream.name));
            written += 1;
        }
    }
    note(&format!(
        "{written} of {} file{} updated",
        streams.len(),
        plural(streams.len())
    ));
    Ok(())
}

/// The files that differ from their rules, a line per Secret that does
/// (keys added and removed, clear sections), and how many files no rule
/// matches.
fn differences(
    configs: &Configs,
    sources: &[Source],
    streams: &[Stream],
) -> Result<(Vec<Todo>, Vec<String>, usize)> {
    let mut todo = Vec::new();
    let mut lines = Vec::new();
    let mut unruled = 0usize;
    for (i, (source, stream)) in sources.iter().zip(streams).enumerate() {
        let Some((config, r)) = configs.rule(source)? else {
            unruled += 1;
            continue;
        };
        let rule = &config.rules[r];
        let classified = pipeline::classify(stream)?;
        let mut differs = false;
        for e in &classified.envelopes {
            let State::Sealed(meta) = &e.state else {
                continue;
            };
            let info = meta.info();
            if rule.agrees(&info.keys, info.clear) {
                continue;
            }
            differs = true;
            let mut parts: Vec<String> = Vec::new();
            parts.extend(rule.missing(&info.keys).iter().map(|k| format!("+ {k}")));
            let removed: Vec<&KeyId> = rule.extra(&info.keys);
            parts.extend(removed.iter().map(|k| format!("- {k}")));
            if info.clear != rule.clear {
                parts.push(format!(
                    "clear sections {} → {}",
                    info.clear.describe(),
                    rule.clear.describe()
                ));
            }
            let rotation = if removed.is_empty() {
                "data key kept"
            } else {
                "data key rotated: every value re-encrypted"
            };
            let doc = &stream.docs[e.docs[0]];
            lines.push(format!(
                "{}: {} ({rotation})",
                doc.location(&stream.name, doc.line),
                parts.join(", ")
            ));
        }
        if differs {
            todo.push(Todo {
                file: i,
                keys: rule.keys.clone(),
                clear: rule.clear,
                format: rule.format.clone(),
            });
        }
    }
    Ok((todo, lines, unruled))
}
