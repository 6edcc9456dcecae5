//! `ksec recompute-mac`: sign a file's current values with a fresh MAC.
//!
//! The repair path for v1/v2 files (no MAC) and for files whose MAC no longer
//! verifies after a change made outside ksec. It shows what it is about to
//! sign (keys and value sizes, never values) and asks first.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;

use super::encrypt::{Expected, reopened_values, sealed_edits, verify};
use super::{Output, check_problems, doc_failure, load, place};
use crate::error::{Exit, Failure, Result};
use crate::io::Source;
use crate::keys::Keyring;
use crate::manifest;
use crate::secret::{self, OpenOptions, State};

/// What `recompute-mac` was asked to do.
pub struct RecomputePlan {
    /// The file, rewritten in place.
    pub path: PathBuf,
    /// Do not ask.
    pub yes: bool,
    /// Input size limit.
    pub max_input: u64,
}

/// Runs `recompute-mac`.
pub fn run(plan: &RecomputePlan, keyring: &Keyring) -> Result<()> {
    let source = Source::File(plan.path.clone());
    let file = source.display();
    let (text, docs) = load(&source, plan.max_input)?;
    let opts = OpenOptions {
        allow_missing_mac: true,
        skip_mac: true,
    };
    let mut edits = Vec::new();
    let mut summary = Vec::new();
    let mut expected = Vec::new();
    for doc in docs.iter().filter(|d| d.is_secret) {
        check_problems(&file, doc)?;
        let State::Encrypted(footer) =
            secret::classify(doc).map_err(|e| doc_failure(&file, doc, e))?
        else {
            continue;
        };
        let opened =
            secret::open(doc, footer, keyring, opts).map_err(|e| doc_failure(&file, doc, e))?;
        summary.push(format!(
            "{}: format v{} → v{}, keys: {}",
            place(&file, doc, doc.line),
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
        .map_err(|e| doc_failure(&file, doc, e))?;
        edits.extend(sealed_edits(&text, doc, &sealed));
        expected.push(Expected::new(doc, sealed.dek, values));
    }
    if summary.is_empty() {
        return Err(Failure::new(
            Exit::State,
            format!("{file}: no encrypted Secret documents to sign"),
        ));
    }
    eprintln!("ksec: about to sign these values as they decrypt now:");
    for line in &summary {
        eprintln!("  {line}");
    }
    if !plan.yes {
        confirm()?;
    }
    let out = manifest::splice(&text, &mut edits);
    verify(&out, docs.len(), &expected).map_err(|why| {
        Failure::new(Exit::Other, format!("{file}: internal error: the signed result did not verify ({why}); nothing was written"))
    })?;
    Output::InPlace(plan.path.clone()).write(&text, &out)
}

fn confirm() -> Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure::new(
            Exit::Usage,
            "recompute-mac: refusing to sign without confirmation",
        )
        .hint("pass --yes in scripts"));
    }
    eprint!("Sign them? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::new(Exit::Io, format!("cannot read the answer: {e}")))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure::new(
            Exit::State,
            "recompute-mac: not confirmed; nothing was written",
        ))
    }
}
