//! `ksec recompute-mac`: sign a file's current values with a fresh MAC.
//!
//! The repair path for v1/v2 files (no MAC) and for files whose MAC no longer
//! verifies after a change made outside ksec. It shows what it is about to
//! sign (keys and value sizes, never values) and asks first.

use std::path::PathBuf;

use ksec::error::{Error, Exit, Result};
use ksec::formats::{OpenOptions, Opened};
use ksec::io::Source;
use ksec::manifest::{Section, Stream};
use ksec::pipeline::{self, SealJob, SealOptions, Session};

use super::{Context, Output, confirm, read_all};

/// What `recompute-mac` was asked to do.
pub struct RecomputePlan {
    /// Files and directories, each rewritten in place.
    pub paths: Vec<PathBuf>,
    /// Do not ask.
    pub yes: bool,
    /// Input size limit.
    pub max_input: u64,
}

/// How the Secrets to sign are opened: the MAC is not checked (that is the
/// point), and v1/v2 files are read.
const OPEN: OpenOptions = OpenOptions {
    output_only: false,
    allow_missing_mac: true,
    skip_mac: true,
    drop_tokens: false,
    require_binding: false,
};

/// Runs `recompute-mac`: one summary for every file, one question, then
/// every file is written. In a tree, files without encrypted Secrets are
/// skipped; a single such file is an error.
pub fn run(plan: &RecomputePlan, ctx: &Context) -> Result<()> {
    let configs = ctx.configs()?;
    let inputs = super::inputs(&plan.paths, &configs, false)?;
    if inputs.sources.contains(&Source::Stdin) {
        return Err(Error::usage(
            "recompute-mac rewrites files in place; it cannot read stdin",
        ));
    }
    let session = ctx.session();
    let streams = read_all(&inputs.sources, plan.max_input)?;
    let (summary, chosen) = summarise(&session, &streams, inputs.single)?;
    eprintln!("ksec: about to sign these values as they decrypt now:");
    for line in &summary {
        eprintln!("  {line}");
    }
    if !plan.yes {
        confirm("recompute-mac", "sign", "Sign them?")?;
    }
    let jobs: Vec<SealJob<'_>> = chosen
        .iter()
        .map(|&i| SealJob {
            stream: &streams[i],
            options: SealOptions {
                only_sealed: true,
                open: OPEN,
                resign: true,
                ..SealOptions::default()
            },
        })
        .collect();
    let results = pipeline::seal_all(&session, &jobs)?;
    for (&i, sealed) in chosen.iter().zip(&results) {
        Output::InPlaceEach.for_source(&inputs.sources[i])?.write(
            &streams[i].text,
            &sealed.text,
            ctx.force,
        )?;
    }
    Ok(())
}

/// What will be signed, per Secret (keys and value sizes, never values), and
/// the files that have something to sign.
fn summarise(
    session: &Session,
    streams: &[Stream],
    single: bool,
) -> Result<(Vec<String>, Vec<usize>)> {
    let opened = pipeline::open_all(session, streams, OPEN)?;
    let mut summary = Vec::new();
    let mut chosen = Vec::new();
    for (i, os) in opened.iter().enumerate() {
        let stream = &streams[i];
        let before = summary.len();
        for (e, o) in os.classified.envelopes.iter().zip(&os.opened) {
            let doc = &stream.docs[e.docs[0]];
            let Some(o) = o else {
                if doc.sites.is_empty() {
                    continue;
                }
                return Err(Error::new(
                    Exit::State,
                    "clear-value",
                    "the Secret is not encrypted, and this file would be written back with its values in clear text",
                )
                .at(doc.location(&stream.name, doc.line))
                .hint(format!("encrypt it first: ksec encrypt -i {}", stream.name)));
            };
            describe(
                &mut summary,
                &doc.location(&stream.name, doc.line).to_string(),
                doc.sites.iter().any(|s| s.section == Section::StringData),
                o,
            );
        }
        if summary.len() == before {
            if single {
                return Err(Error::new(
                    Exit::State,
                    "no-secret",
                    "no encrypted Secret documents to sign",
                )
                .in_file(&stream.name));
            }
            continue;
        }
        chosen.push(i);
    }
    if chosen.is_empty() {
        return Err(Error::new(
            Exit::State,
            "no-secret",
            "no encrypted Secret documents to sign in these files",
        ));
    }
    Ok((summary, chosen))
}

/// `PLACE: format v1 → v3, keys: …` (an upgrade) or `PLACE: kubesec v3,
/// keys: …`, and one line per value.
fn describe(summary: &mut Vec<String>, place: &str, string_data: bool, o: &Opened) {
    let info = o.meta.info();
    let keys: Vec<String> = info.keys.iter().map(ToString::to_string).collect();
    let format = match info.version_number {
        Some(v) => {
            let to = if string_data { 4 } else { 3 };
            if v == to {
                info.version.clone()
            } else {
                format!("format v{v} → v{to}")
            }
        }
        None => info.version.clone(),
    };
    summary.push(format!("{place}: {format}, keys: {}", keys.join(", ")));
    for v in &o.values {
        summary.push(format!(
            "    {}.{} ({} bytes)",
            v.section.as_str(),
            v.key,
            v.clear.len()
        ));
    }
}
