//! `ksec patch FILE`: change values and metadata of an encrypted Secret
//! without an editor.
//!
//! What `edit` does with a person in the middle, `patch` does from the
//! command line: the Secret is decrypted in memory, the changes are spliced
//! into the clear text ([`amend`]), and the result is sealed against the
//! file it came from. So the data key, the key lines and the token of every
//! untouched value stay; only the changed, added and removed value lines,
//! the metadata lines asked for, and the footer (MAC, version when
//! `stringData` appears or goes) change. A file that is not encrypted yet
//! gets the keys of its `.ksec.yaml` rule, as `encrypt` would give it.

use zeroize::Zeroizing;

use ksec::error::{Error, Exit, Result};
use ksec::io::Source;
use ksec::keys::KeyChange;
use ksec::manifest::amend::{self, Change};
use ksec::manifest::{self, Document, Section, Stream};
use ksec::pipeline::{self, DecryptOptions, KeyPolicy, Parents, RuleKeys, SealOptions, Session};

use super::spec::{MetaSpec, ReadValue, ValueSpec, read_values, stored};
use super::{Context, Output, warn};

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

/// Runs `patch`: read → open → change the clear view → seal against the
/// original → write.
pub fn run(plan: &PatchPlan, ctx: &Context) -> Result<()> {
    let session = ctx.session();
    let configs = ctx.configs()?;
    let stream = pipeline::read(&plan.source, plan.max_input)?;
    let values = read_values(&plan.values, plan.max_input)?;
    let doc = the_secret(&stream)?;
    let (view, parents) = clear_view(&session, &stream, doc)?;
    let patched = apply_changes(plan, &stream.name, &view, &values)?;
    let rule = configs.rule(&plan.source)?;
    let change = if plan.keys.is_empty() {
        None
    } else {
        Some(session.resolve_change(&plan.keys)?)
    };
    let options = SealOptions {
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
        parents: parents.as_ref(),
        ..SealOptions::default()
    };
    let sealed = pipeline::encrypt_text(&session, &stream.name, &patched, options)?;
    plan.output.write(&stream.text, &sealed.text, ctx.force)
}

/// The one Secret of the file (patch changes files with one).
fn the_secret(stream: &Stream) -> Result<&Document> {
    let secrets: Vec<&Document> = stream.secrets().collect();
    match secrets.as_slice() {
        [one] => Ok(one),
        [] => Err(
            Error::new(Exit::State, "no-secret", "no Secret document to patch")
                .in_file(&stream.name),
        ),
        many => Err(Error::new(
            Exit::State,
            "several-secrets",
            format!(
                "{} Secret documents; patch changes files with one",
                many.len()
            ),
        )
        .in_file(&stream.name)
        .hint("use `ksec edit`, or split the file")),
    }
}

/// The file as clear text (base64 `data`, as stored), and the opened
/// original to seal against when it was encrypted.
fn clear_view(
    session: &Session,
    stream: &Stream,
    doc: &Document,
) -> Result<(Zeroizing<String>, Option<Parents>)> {
    pipeline::check_problems(&stream.name, doc)?;
    if ksec::formats::detected(stream)?.is_none() {
        return Ok((Zeroizing::new(stream.text.clone()), None));
    }
    let decrypted = pipeline::decrypt(
        session,
        stream,
        DecryptOptions {
            keep_opened: true,
            ..DecryptOptions::default()
        },
    )?;
    let parents = Parents {
        file: stream.name.clone(),
        docs: decrypted.opened,
    };
    Ok((decrypted.text, Some(parents)))
}

/// The clear view with every change of the plan spliced in.
fn apply_changes(
    plan: &PatchPlan,
    file: &str,
    view: &str,
    values: &[ReadValue],
) -> Result<Zeroizing<String>> {
    let stream = pipeline::parse(file, view.to_owned())?;
    let doc = the_secret(&stream)?;
    let current = |section: Section, key: &str| {
        doc.sites
            .iter()
            .find(|s| s.section == section && s.key(&stream.text) == key)
            .map(|s| s.value(&stream.text))
    };
    let mut changes = Vec::new();
    for v in values {
        let (section, key) = (v.spec.section, &v.spec.key);
        match &v.bytes {
            Some(bytes) => {
                let value = stored(section, bytes, current(section, key));
                changes.push(change(&[section.as_str()], key, Some(value.to_string())));
            }
            None if current(section, key).is_none() => {
                warn(&format!(
                    "{file}: {}.{key}: no such key to remove",
                    section.as_str()
                ));
            }
            None => changes.push(change(&[section.as_str()], key, None)),
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
    let outline = amend::outline(view).map_err(|e| pipeline::locate_error(file, &e))?;
    let root = manifest::outline::object(&outline, doc).ok_or_else(|| {
        Error::internal("internal error: the document cannot be found again")
            .at(doc.location(file, doc.line))
    })?;
    let mut edits = amend::amend(view, root, &changes, doc.newline).map_err(|e| {
        Error::new(Exit::Input, "patch", e.to_string()).at(doc.location(file, doc.line))
    })?;
    Ok(Zeroizing::new(manifest::splice(view, &mut edits)))
}

fn change(path: &[&str], key: &str, value: Option<String>) -> Change {
    Change {
        path: path.iter().map(|p| (*p).to_owned()).collect(),
        key: key.to_owned(),
        value,
    }
}
