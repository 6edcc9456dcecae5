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

use std::cell::OnceCell;
use std::path::PathBuf;

use super::batch::{self, Loaded};
use super::encrypt::{EncryptOptions, Prepared, plural, prepare};
use super::{Output, doc_failure, key_failure, note, place};
use crate::config::Configs;
use crate::envelope::DataKey;
use crate::envelope::footer::{ClearSections, KeyId};
use crate::error::{Exit, Failure, Result};
use crate::io::Source;
use crate::keys::{KeyChange, Keyring};
use crate::paths;
use crate::progress::Progress;
use crate::secret::{self, State};

/// What `updatekeys` was asked to do.
pub struct UpdatekeysPlan {
    /// Files and directories.
    pub paths: Vec<PathBuf>,
    /// Do not ask.
    pub yes: bool,
    /// Input size limit.
    pub max_input: u64,
}

/// Runs `updatekeys`.
pub fn run(plan: &UpdatekeysPlan, keyring: &Keyring, configs: &Configs) -> Result<()> {
    let inputs = paths::expand_some(&plan.paths, Source::Stdin)?;
    if inputs.sources.contains(&Source::Stdin) {
        return Err(Failure::new(
            Exit::Usage,
            "updatekeys rewrites files in place; it cannot read stdin",
        ));
    }
    let mut progress = Progress::new(inputs.sources.len());
    let files = batch::load_all(&inputs.sources, plan.max_input, &mut progress)?;
    progress.clear();
    // What each file needs: its rule, and a line per Secret that differs.
    let mut todo: Vec<(&Loaded, Vec<KeyId>, ClearSections)> = Vec::new();
    let mut lines = Vec::new();
    let mut unruled = 0usize;
    for f in &files {
        let Some((config, i)) = configs.rule(&f.source)? else {
            unruled += 1;
            continue;
        };
        let rule = &config.rules[i];
        let mut differs = false;
        for doc in f.docs.iter().filter(|d| d.is_secret) {
            super::check_problems(&f.name, doc)?;
            let State::Encrypted(footer) =
                secret::classify(doc).map_err(|e| doc_failure(&f.name, doc, e))?
            else {
                continue;
            };
            let keys: Vec<KeyId> = footer.keys.iter().map(|w| w.key.clone()).collect();
            if rule.agrees(&keys, footer.clear) {
                continue;
            }
            differs = true;
            let mut parts: Vec<String> = Vec::new();
            parts.extend(
                rule.keys
                    .iter()
                    .filter(|k| !keys.contains(k))
                    .map(|k| format!("+ {k}")),
            );
            let removed: Vec<&KeyId> = keys.iter().filter(|k| !rule.keys.contains(k)).collect();
            parts.extend(removed.iter().map(|k| format!("- {k}")));
            if footer.clear != rule.clear {
                parts.push(format!(
                    "clear sections {} → {}",
                    footer.clear.describe(),
                    rule.clear.describe()
                ));
            }
            let rotation = if removed.is_empty() {
                "data key kept"
            } else {
                "data key rotated: every value re-encrypted"
            };
            lines.push(format!(
                "{}: {} ({rotation})",
                place(&f.name, doc, doc.line),
                parts.join(", ")
            ));
        }
        if differs {
            todo.push((f, rule.keys.clone(), rule.clear));
        }
    }
    if todo.is_empty() {
        note(&format!(
            "{} file{} checked: every encrypted Secret agrees with its rule{}",
            files.len(),
            plural(files.len()),
            if unruled > 0 {
                format!(" ({unruled} without a rule)")
            } else {
                String::new()
            }
        ));
        return Ok(());
    }
    eprintln!("ksec: these Secrets will get the keys of their .ksec.yaml rule:");
    for l in &lines {
        eprintln!("  {l}");
    }
    if !plan.yes {
        super::confirm("updatekeys", "Update these files?")?;
    }

    // Open every affected file's data keys in one batch, prepare every
    // file, make every wrap in one batch, then seal and verify all.
    let mut progress = Progress::new(todo.len());
    batch::unwrap_everything(
        keyring,
        todo.iter().map(|(f, _, _)| *f),
        false,
        &mut progress,
    );
    let now = super::now();
    let changes: Vec<KeyChange> = todo
        .iter()
        .map(|(_, keys, _)| KeyChange {
            set: keys.clone(),
            ..KeyChange::default()
        })
        .collect();
    let opts: Vec<EncryptOptions<'_>> = todo
        .iter()
        .zip(&changes)
        .map(|((_, _, clear), change)| EncryptOptions {
            force_clear: Some(*clear),
            skip_plain: true,
            ..EncryptOptions::new(change, &now)
        })
        .collect();
    let default_key = OnceCell::new();
    let mut prepared: Vec<Prepared<'_>> = Vec::with_capacity(todo.len());
    for (((f, _, _), o), change) in todo.iter().zip(&opts).zip(&changes) {
        prepared.push(prepare(
            &f.name,
            &f.text,
            &f.docs,
            o,
            Some(change),
            keyring,
            &default_key,
        )?);
    }
    let requests: Vec<(KeyId, DataKey)> =
        prepared.iter().flat_map(Prepared::wrap_requests).collect();
    progress.step(&format!("wrapping {} data keys", requests.len()));
    keyring
        .wrap_all(&requests)
        .map_err(|(k, e)| key_failure(&format!("key {k}"), &e))?;
    let mut results = Vec::with_capacity(prepared.len());
    for (p, o) in prepared.into_iter().zip(&opts) {
        results.push(p.finish(o, keyring)?);
    }
    progress.clear();
    let mut written = 0;
    for ((f, _, _), out) in todo.iter().zip(&results) {
        if *out != f.text {
            Output::InPlaceEach
                .for_source(&f.source)?
                .write(&f.text, out)?;
            note(&format!("updated {}", f.name));
            written += 1;
        }
    }
    note(&format!(
        "{written} of {} file{} updated",
        files.len(),
        plural(files.len())
    ));
    Ok(())
}
