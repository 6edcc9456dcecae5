//! `ksec patch FILE`: change values and metadata of an encrypted Secret
//! without an editor.
//!
//! The file is changed by splicing, never rewritten: the opened document
//! is sealed again with itself as `previous`, so the data key, the key lines
//! and the token of every untouched value stay; only the changed, added and
//! removed value lines, the metadata lines asked for, and the footer (MAC,
//! version when `stringData` appears or goes) change.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::encrypt::{local_key, resolve_change, site_edit};
use super::spec::{MetaSpec, ValueSpec, read_values, stored};
use super::{Output, check_problems, doc_failure, place};
use crate::envelope::footer::KeyId;
use crate::error::{Exit, Failure, Result};
use crate::io::Source;
use crate::keys::{KeyChange, Keyring};
use crate::manifest::amend::{self, Change};
use crate::manifest::{self, Section};
use crate::secret::{self, OpenOptions, Plain, State};

/// What `patch` was asked to do.
pub struct PatchPlan {
    /// The encrypted file.
    pub source: Source,
    /// Where the result goes.
    pub output: Output,
    /// `-d` and `-s` values (and `~KEY` removals), in command-line order.
    pub values: Vec<ValueSpec>,
    /// `-m name=…`, `-m namespace=…`.
    pub metadata: Vec<MetaSpec>,
    /// `-l`.
    pub labels: Vec<MetaSpec>,
    /// `-a`.
    pub annotations: Vec<MetaSpec>,
    /// `--type`.
    pub kind: Option<String>,
    /// `--key`.
    pub keys: KeyChange,
    /// Generate a new data key.
    pub rotate: bool,
    /// Input size limit.
    pub max_input: u64,
}

/// Runs `patch`.
pub fn run(plan: &PatchPlan, keyring: &Keyring) -> Result<()> {
    let file = plan.source.display();
    let text = crate::io::read_text(&plan.source, plan.max_input)?;
    let values = read_values(&plan.values, plan.max_input)?;
    let docs = manifest::locate(&text).map_err(|e| super::locate_failure(&file, &e))?;
    let secrets: Vec<_> = docs.iter().filter(|d| d.is_secret).collect();
    let doc = match secrets.as_slice() {
        [one] => *one,
        [] => {
            return Err(Failure::new(
                Exit::State,
                format!("{file}: no Secret document to patch"),
            ));
        }
        many => {
            return Err(Failure::new(
                Exit::State,
                format!(
                    "{file}: {} Secret documents; patch changes files with one",
                    many.len()
                ),
            )
            .hint("use `ksec edit`, or split the file"));
        }
    };
    check_problems(&file, doc)?;
    let (current, previous) = match secret::classify(doc).map_err(|e| doc_failure(&file, doc, e))? {
        State::Encrypted(footer) => {
            let opened = secret::open(doc, footer, keyring, OpenOptions::default())
                .map_err(|e| doc_failure(&file, doc, e))?;
            let values: Vec<(Section, String, Zeroizing<String>)> = opened
                .values
                .iter()
                .map(|v| (v.section, v.key.clone(), v.clear.clone()))
                .collect();
            (values, Some(opened))
        }
        State::Plain => {
            check_plain(&file, doc)?;
            (
                doc.sites
                    .iter()
                    .map(|s| (s.section, s.key.clone(), Zeroizing::new(s.value.clone())))
                    .collect(),
                None,
            )
        }
    };
    // The values after the patch: existing ones in file order, then the new.
    let mut next = current.clone();
    let mut removed_missing = Vec::new();
    for v in &values {
        let (section, key) = (v.spec.section, &v.spec.key);
        let at = next.iter().position(|(s, k, _)| *s == section && k == key);
        match (&v.bytes, at) {
            (Some(bytes), Some(i)) => next[i].2 = stored(section, bytes, Some(&next[i].2)),
            (Some(bytes), None) => next.push((section, key.clone(), stored(section, bytes, None))),
            (None, Some(i)) => {
                next.remove(i);
            }
            (None, None) => removed_missing.push(format!("{}.{key}", section.as_str())),
        }
    }
    for m in &removed_missing {
        super::warn(&format!("{file}: {m}: no such key to remove"));
    }
    // Keys and data key.
    let current_keys: Vec<KeyId> = previous.as_ref().map_or_else(Vec::new, |p| {
        p.footer.keys.iter().map(|w| w.key.clone()).collect()
    });
    let wanted = if plan.keys.is_empty() {
        if current_keys.is_empty() {
            vec![local_key(&std::cell::OnceCell::new())?.clone()]
        } else {
            current_keys.clone()
        }
    } else {
        resolve_change(&plan.keys, keyring)?
            .apply(&current_keys)
            .map_err(|m| {
                Failure::new(Exit::Usage, format!("{}: {m}", place(&file, doc, doc.line)))
            })?
    };
    let rotate = plan.rotate || current_keys.iter().any(|k| !wanted.contains(k));
    let plain: Vec<Plain> = next
        .iter()
        .map(|(section, key, clear)| Plain {
            section: *section,
            key: key.clone(),
            clear: clear.clone(),
            line: doc.line,
        })
        .collect();
    let sealed = secret::seal(
        &plain,
        &wanted,
        previous.as_ref(),
        secret::sealing_key(previous.as_ref(), rotate),
        keyring,
        &super::now(),
        previous
            .as_ref()
            .map(|p| p.footer.clear)
            .unwrap_or_default(),
    )
    .map_err(|e| doc_failure(&file, doc, e))?;
    let token_of = |section: Section, key: &str| -> &str {
        let i = next
            .iter()
            .position(|(s, k, _)| *s == section && k == key)
            .expect("every value is sealed");
        &sealed.tokens[i]
    };
    // Edits: changed tokens in place, added and removed entries, metadata, footer.
    let mut edits = Vec::new();
    for site in &doc.sites {
        let still = next
            .iter()
            .any(|(s, k, _)| *s == site.section && *k == site.key);
        if still {
            let token = token_of(site.section, &site.key);
            if token != site.value {
                edits.extend(site_edit(doc, site, token, sealed.footer.clear));
            }
        }
    }
    let mut changes = Vec::new();
    for (section, key, _) in &current {
        if !next.iter().any(|(s, k, _)| s == section && k == key) {
            changes.push(change(&[section.as_str()], key, None));
        }
    }
    for (section, key, _) in &next {
        if !current.iter().any(|(s, k, _)| s == section && k == key) {
            changes.push(change(
                &[section.as_str()],
                key,
                Some(token_of(*section, key).to_owned()),
            ));
        }
    }
    for m in &plan.metadata {
        changes.push(change(&["metadata"], &m.key, m.value.clone()));
    }
    for (path, specs) in [("labels", &plan.labels), ("annotations", &plan.annotations)] {
        for m in specs.iter() {
            changes.push(change(&["metadata", path], &m.key, m.value.clone()));
        }
    }
    if let Some(t) = &plan.kind {
        changes.push(change(&[], "type", Some(t.clone())));
    }
    let outline = amend::outline(&text).map_err(|e| super::locate_failure(&file, &e))?;
    let root = manifest::outline::object(&outline, doc).ok_or_else(|| {
        Failure::new(
            Exit::Other,
            format!(
                "{}: internal error: the document cannot be found again",
                place(&file, doc, doc.line)
            ),
        )
    })?;
    edits.extend(
        amend::amend(&text, root, &changes, doc.newline).map_err(|e| {
            Failure::new(Exit::Input, format!("{}: {e}", place(&file, doc, doc.line)))
        })?,
    );
    edits.push(manifest::write_footer(
        &text,
        doc,
        &sealed.footer.render_lines(),
    ));
    let out = manifest::splice(&text, &mut edits);
    let expected: BTreeMap<(Section, String), Zeroizing<String>> =
        next.into_iter().map(|(s, k, v)| ((s, k), v)).collect();
    verify(&out, docs.len(), doc.position, &sealed.dek, &expected).map_err(|why| {
        Failure::new(
            Exit::Other,
            format!("{file}: internal error: the patched result did not verify ({why}); nothing was written"),
        )
    })?;
    super::encrypt::refuse_exposed_text(&file, &out)?;
    plan.output.write(&text, &out)
}

/// A clear document's values must be what encrypt accepts without `-x`.
fn check_plain(file: &str, doc: &manifest::Document) -> Result<()> {
    for s in doc.sites.iter().filter(|s| s.section == Section::Data) {
        if s.binary || !secret::valid_base64(&s.value) {
            return Err(Failure::new(
                Exit::Input,
                format!(
                    "{}, {}: the value is not base64 text, which `data` values must be",
                    place(file, doc, s.line),
                    secret::label(s)
                ),
            )
            .hint("encrypt the file first (ksec encrypt -x -i), then patch it"));
        }
    }
    Ok(())
}

fn change(path: &[&str], key: &str, value: Option<String>) -> Change {
    Change {
        path: path.iter().map(|p| (*p).to_owned()).collect(),
        key: key.to_owned(),
        value,
    }
}

/// Re-reads the result: same documents, the patched one opens with its data
/// key to exactly the intended values.
fn verify(
    out: &str,
    doc_count: usize,
    position: usize,
    dek: &crate::envelope::DataKey,
    expected: &BTreeMap<(Section, String), Zeroizing<String>>,
) -> std::result::Result<(), String> {
    let docs = manifest::locate(out).map_err(|e| e.to_string())?;
    if docs.len() != doc_count {
        return Err(format!("{} documents instead of {doc_count}", docs.len()));
    }
    let doc = &docs[position];
    if !doc.problems.is_empty() || !doc.is_secret {
        return Err("the document no longer reads as a Secret".into());
    }
    let State::Encrypted(footer) = secret::classify(doc).map_err(|e| format!("{e:?}"))? else {
        return Err("the document is not encrypted".into());
    };
    let opened = secret::open_with_key(doc, footer, dek.clone(), OpenOptions::default())
        .map_err(|e| format!("{e:?}"))?;
    let got: BTreeMap<(Section, String), Zeroizing<String>> = opened
        .values
        .into_iter()
        .map(|v| ((v.section, v.key), v.clear))
        .collect();
    if got.len() != expected.len()
        || got
            .iter()
            .any(|(k, v)| expected.get(k).is_none_or(|e| **e != **v))
    {
        return Err("the values are not the intended ones".into());
    }
    Ok(())
}
