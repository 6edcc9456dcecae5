//! `ksec reseal`: SealedSecrets sealed again for a new controller
//! certificate, offline; only the values change.

use std::path::PathBuf;

use ksec::error::Result;
use ksec::io::Source;
use ksec::pipeline;
use ksec::sealed::{self, RecoveryKeys, UnsealOptions};

use super::{Context, Output, note, plural, read_all, warn};

/// What `reseal` was asked to do.
pub struct ResealPlan {
    /// Files and directories (`-` or nothing: stdin).
    pub paths: Vec<PathBuf>,
    /// Where the result goes.
    pub output: Output,
    /// `--recovery-key` files (the old keys).
    pub recovery: Vec<PathBuf>,
    /// `--cert` (the new certificate).
    pub cert: String,
    /// `--namespace`.
    pub namespace: Option<String>,
    /// Input size limit.
    pub max_input: u64,
}

/// Runs `reseal`.
pub fn run(plan: &ResealPlan, ctx: &Context) -> Result<()> {
    let cert = sealed::cert::load(&plan.cert, plan.max_input, sealed::cert::FETCH_TIMEOUT)?;
    cert.require_current(&plan.cert, ksec::clock::now_secs())?;
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
    let results = sealed::reseal_streams(&streams, &keys, &cert, &opts)?;
    let total: usize = results.iter().map(|r| r.resealed).sum();
    if total == 0 {
        warn("no SealedSecret documents; nothing to reseal");
    }
    if plan.output.is_in_place() {
        for ((s, r), source) in streams.iter().zip(&results).zip(&inputs.sources) {
            plan.output
                .for_source(source)?
                .write(&s.text, &r.text, ctx.force)?;
        }
        note(&format!(
            "resealed {total} SealedSecret{} in {} file{}",
            plural(total),
            streams.len(),
            plural(streams.len())
        ));
        return Ok(());
    }
    let (original, out) = if inputs.single {
        (streams[0].text.as_str(), results[0].text.clone())
    } else {
        let parts: Vec<&str> = results.iter().map(|r| r.text.as_str()).collect();
        ("", pipeline::join_streams(&parts).to_string())
    };
    plan.output.write(original, &out, ctx.force)
}
