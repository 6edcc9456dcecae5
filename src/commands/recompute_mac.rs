//! `ksec recompute-mac`: sign a file's current values with a fresh MAC.
//!
//! The repair path for v1/v2 files (no MAC) and for files whose MAC no longer
//! verifies after a change made outside ksec. It shows what it is about to
//! sign (keys and value sizes, never values) and asks first.

use std::path::PathBuf;

use super::batch::{self, Loaded};
use super::encrypt::{Expected, reopened_values, sealed_edits, verify};
use super::{Output, check_problems, doc_failure, place};
use crate::error::{Exit, Failure, Result};
use crate::io::Source;
use crate::keys::Keyring;
use crate::manifest;
use crate::paths;
use crate::progress::Progress;
use crate::secret::{self, OpenOptions, State};

/// What `recompute-mac` was asked to do.
pub struct RecomputePlan {
    /// Files and directories, each rewritten in place.
    pub paths: Vec<PathBuf>,
    /// Do not ask.
    pub yes: bool,
    /// Input size limit.
    pub max_input: u64,
}

/// Runs `recompute-mac`: one summary for every file, one question, then
/// every file is written. In a tree, files without encrypted Secrets are
/// skipped; a single such file is an error.
pub fn run(plan: &RecomputePlan, keyring: &Keyring) -> Result<()> {
    let inputs = paths::expand_some(&plan.paths, Source::Stdin)?;
    if inputs.sources.contains(&Source::Stdin) {
        return Err(Failure::new(
            Exit::Usage,
            "recompute-mac rewrites files in place; it cannot read stdin",
        ));
    }
    let mut progress = Progress::new(inputs.sources.len());
    let files = batch::load_all(&inputs.sources, plan.max_input, &mut progress)?;
    batch::unwrap_everything(keyring, &files, true, &mut progress);
    progress.clear();
    let mut summary = Vec::new();
    let mut results = Vec::new();
    for f in &files {
        let before = summary.len();
        let out = sign(f, keyring, &mut summary)?;
        if summary.len() == before {
            if inputs.single {
                return Err(Failure::new(
                    Exit::State,
                    format!("{}: no encrypted Secret documents to sign", f.name),
                ));
            }
            continue;
        }
        results.push((f, out));
    }
    if results.is_empty() {
        return Err(Failure::new(
            Exit::State,
            "no encrypted Secret documents to sign in these files",
        ));
    }
    eprintln!("ksec: about to sign these values as they decrypt now:");
    for line in &summary {
        eprintln!("  {line}");
    }
    if !plan.yes {
        super::confirm("recompute-mac", "Sign them?")?;
    }
    for (f, out) in results {
        Output::InPlaceEach
            .for_source(&f.source)?
            .write(&f.text, &out)?;
    }
    Ok(())
}

/// Re-signs every encrypted Secret of one file; appends what it signs to
/// `summary` and returns the verified result.
fn sign(f: &Loaded, keyring: &Keyring, summary: &mut Vec<String>) -> Result<String> {
    let (file, text, docs) = (&f.name, &f.text, &f.docs);
    let opts = OpenOptions {
        allow_missing_mac: true,
        skip_mac: true,
        drop_tokens: false,
    };
    let mut edits = Vec::new();
    let mut expected = Vec::new();
    for doc in docs.iter().filter(|d| d.is_secret) {
        check_problems(file, doc)?;
        let State::Encrypted(footer) =
            secret::classify(doc).map_err(|e| doc_failure(file, doc, e))?
        else {
            if doc.sites.is_empty() {
                continue;
            }
            return Err(super::plain_secret_kept(file, doc));
        };
        let opened =
            secret::open(doc, footer, keyring, opts).map_err(|e| doc_failure(file, doc, e))?;
        summary.push(format!(
            "{}: format v{} → v{}, keys: {}",
            place(file, doc, doc.line),
            opened.footer.version,
            if doc
                .sites
                .iter()
                .any(|s| s.section == manifest::Section::StringData)
            {
                4
            } else {
                3
            },
            opened
                .footer
                .keys
                .iter()
                .map(|k| k.key.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        for v in &opened.values {
            summary.push(format!(
                "    {}.{} ({} bytes)",
                v.section.as_str(),
                v.key,
                v.clear.len()
            ));
        }
        let values = reopened_values(doc, &opened);
        let keys: Vec<_> = opened.footer.keys.iter().map(|w| w.key.clone()).collect();
        let sealed = secret::seal(
            &values,
            &keys,
            Some(&opened),
            opened.dek.clone(),
            keyring,
            &super::now(),
            opened.footer.clear,
        )
        .map_err(|e| doc_failure(file, doc, e))?;
        edits.extend(sealed_edits(text, doc, &sealed));
        expected.push(Expected::new(doc, &sealed, &values));
    }
    let out = manifest::splice(text, &mut edits);
    verify(&out, docs.len(), &expected).map_err(|why| {
        Failure::new(Exit::Other, format!("{file}: internal error: the signed result did not verify ({why}); nothing was written"))
    })?;
    super::encrypt::refuse_exposed_text(file, &out)?;
    Ok(out)
}
