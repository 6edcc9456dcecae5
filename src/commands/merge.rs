//! `ksec merge-driver BASE OURS THEIRS [PATH]`: git's merge driver for
//! encrypted files (`.gitattributes`: `*.yaml merge=ksec`; `git config
//! merge.ksec.driver "ksec merge-driver %O %A %B %P"`).
//!
//! A text merge of two encrypted versions always conflicts on the MAC line
//! (and on every value both sides re-encrypted), even when the branches
//! changed different keys (getsops/sops#52). This driver merges what the
//! files mean instead:
//!
//! 1. **Values, key by key.** Every Secret of the three versions is opened
//!    (one batch of key-service calls for all three) and matched across
//!    versions by `namespace/name` (by position among Secrets when that is
//!    not unique). Each `data`/`stringData` key is merged three ways: a key
//!    changed, added or removed on one side only takes that side's change;
//!    the same change on both sides is no conflict; different changes to
//!    one key (or a change against a removal) are a conflict. The keys a
//!    Secret is encrypted to (and its clear sections) merge the same way,
//!    as one setting.
//! 2. **Everything else, as text.** The rest of the file — metadata,
//!    comments, other documents, which Secrets exist — is merged by `git
//!    merge-file` on the three files with every `data`/`stringData` body
//!    replaced by a placeholder line and the footers removed: it sees no
//!    value and no ciphertext, so nothing secret is written to disk. It
//!    must merge cleanly. Comments inside `data`/`stringData` come from
//!    ours (theirs' when only they have that section).
//! 3. The merged clear text is encrypted again against the side whose keys
//!    it keeps (ours unless only theirs changed the keys): same data key,
//!    every value equal to that side's keeps its exact ciphertext, changed
//!    values get fresh IVs, and a new MAC signs the result, which is
//!    opened and compared with the merge before it replaces OURS.
//!
//! On a conflict OURS is left as it was — encrypted, never clear text —
//! the conflicting keys are named on stderr, and the exit code is 1, so
//! git marks the file as conflicted. A file without encrypted Secrets on
//! any side is merged by `git merge-file` as git would (conflict markers
//! included); a file that cannot be opened (no key, a MAC that does not
//! verify) is a conflict.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use zeroize::Zeroizing;

use ksec::error::{Error, Exit, Result};
use ksec::io::{self, Source};
use ksec::keys::KeyId;
use ksec::manifest::amend::{self, Change, Kind};
use ksec::manifest::{self, ClearSections, Document, Edit, Section, Stream};
use ksec::pipeline::{self, DecryptOptions, ParentDoc, Parents, SealOptions, Session};

use super::{Context, note, plural};

/// What `merge-driver` was asked to do.
pub struct MergePlan {
    /// %O.
    pub base: PathBuf,
    /// %A: the result is written here.
    pub ours: PathBuf,
    /// %B.
    pub theirs: PathBuf,
    /// %P, for messages.
    pub name: Option<String>,
    /// Input size limit.
    pub max_input: u64,
}

/// Each Secret's merge key, from its `(namespace, name)`: `namespace/name`
/// when that names one Secret of the file, else its position among
/// Secrets (`#2`).
fn identities(names: &[(Option<&str>, Option<&str>)]) -> Vec<String> {
    let all: Vec<Option<String>> = names
        .iter()
        .map(|(ns, n)| {
            n.map(|n| match ns {
                Some(ns) => format!("{ns}/{n}"),
                None => n.to_owned(),
            })
        })
        .collect();
    all.iter()
        .enumerate()
        .map(|(i, id)| match id {
            Some(id) if all.iter().filter(|x| x.as_ref() == Some(id)).count() == 1 => id.clone(),
            _ => format!("#{}", i + 1),
        })
        .collect()
}

/// The identities of opened Secrets.
fn opened_identities(docs: &[ParentDoc]) -> Vec<String> {
    let names: Vec<_> = docs
        .iter()
        .map(|d| (d.namespace.as_deref(), d.name.as_deref()))
        .collect();
    identities(&names)
}

/// The identities of a stream's Secrets, with their position in the located stream.
fn doc_identities(docs: &[Document]) -> Vec<(usize, String)> {
    let secrets: Vec<&Document> = docs.iter().filter(|d| d.is_secret).collect();
    let names: Vec<_> = secrets
        .iter()
        .map(|d| (d.namespace.as_deref(), d.name.as_deref()))
        .collect();
    secrets
        .iter()
        .map(|d| d.position)
        .zip(identities(&names))
        .collect()
}

/// One side's view of a Secret: its values and its key setting.
#[derive(Clone, PartialEq, Eq)]
struct Side {
    values: BTreeMap<(Section, String), Zeroizing<String>>,
    /// File order of the values.
    order: Vec<(Section, String)>,
    keys: Vec<KeyId>,
    clear: ClearSections,
}

impl Side {
    fn empty() -> Side {
        Side {
            values: BTreeMap::new(),
            order: Vec::new(),
            keys: Vec::new(),
            clear: ClearSections::default(),
        }
    }

    fn of(d: &ParentDoc) -> Side {
        let mut keys: Vec<KeyId> = d.opened.keys();
        keys.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
        Side {
            values: d
                .opened
                .values
                .iter()
                .filter(|v| v.doc == d.position)
                .map(|v| ((v.section, v.key.clone()), v.clear.clone()))
                .collect(),
            order: d
                .opened
                .values
                .iter()
                .filter(|v| v.doc == d.position)
                .map(|v| (v.section, v.key.clone()))
                .collect(),
            keys,
            clear: d.opened.meta.info().clear,
        }
    }

    fn setting(&self) -> (&[KeyId], ClearSections) {
        (&self.keys, self.clear)
    }
}

/// What a merged Secret holds, and the side (ours, or theirs when only they
/// changed its keys) whose data key and key lines it keeps.
struct Target {
    values: Vec<(Section, String, Zeroizing<String>)>,
    donor: ParentDoc,
}

/// Runs the merge driver. Exit 0: merged into OURS; exit 1 (an error with
/// the conflicts): OURS untouched.
pub fn run(plan: &MergePlan, ctx: &Context) -> Result<()> {
    let name = plan
        .name
        .clone()
        .unwrap_or_else(|| plan.ours.display().to_string());
    let read = |p: &Path| io::read_text(&Source::File(p.to_owned()), plan.max_input);
    let (base, ours, theirs) = (read(&plan.base)?, read(&plan.ours)?, read(&plan.theirs)?);
    if ours == theirs || base == theirs {
        return Ok(());
    }
    if base == ours {
        return io::write_atomic(&plan.ours, theirs.as_bytes(), false);
    }
    let Some(streams) = parse_sides(&name, [base, ours, theirs]) else {
        return text_merge(plan);
    };
    if !streams
        .iter()
        .any(|s| matches!(ksec::formats::detected(s), Ok(Some(_))))
    {
        return text_merge(plan);
    }
    let merge = Merge {
        name: &name,
        session: ctx.session(),
    };
    let views = merge.open_sides(&streams)?;
    let targets = merge.merge_secrets(&views)?;
    let clear = merge.merge_text(&streams, &views)?;
    let (clear, donors) = merge.place_values(&clear, &targets)?;
    let out = merge.seal(&clear, donors)?;
    merge.verify(&out, &targets)?;
    io::write_atomic(&plan.ours, out.as_bytes(), false)?;
    note(&format!("merged {name} key by key"));
    Ok(())
}

/// The three versions located (base, ours, theirs); `None` when one of them
/// is not valid YAML (then git's text merge decides).
fn parse_sides(name: &str, texts: [String; 3]) -> Option<Vec<Stream>> {
    let labels = ["base", "ours", "theirs"];
    texts
        .into_iter()
        .zip(labels)
        .map(|(t, label)| pipeline::parse(&format!("{name} ({label})"), t).ok())
        .collect()
}

/// One side opened: its clear view and its opened Secrets.
struct View {
    text: Zeroizing<String>,
    opened: Vec<ParentDoc>,
}

/// A merge in progress.
struct Merge<'a> {
    name: &'a str,
    session: Session,
}

impl Merge<'_> {
    /// A conflict: OURS stays as it was, encrypted.
    fn conflict(&self, what: String) -> Error {
        let name = self.name;
        Error::new(
            Exit::Other,
            "merge-conflict",
            format!("merge conflict in {name}: {what}; {name} keeps our (encrypted) version"),
        )
        .hint("resolve it with `ksec edit` (or take one side: git checkout --ours/--theirs), then git add")
    }

    /// Opens all three versions, their data keys in one batch.
    fn open_sides(&self, streams: &[Stream]) -> Result<Vec<View>> {
        let decrypted = pipeline::decrypt_all(
            &self.session,
            streams,
            DecryptOptions {
                keep_opened: true,
                ..DecryptOptions::default()
            },
        )
        .map_err(|e| self.conflict(format!("cannot open {}", e)))?;
        Ok(decrypted
            .into_iter()
            .map(|d| View {
                text: d.text,
                opened: d.opened,
            })
            .collect())
    }

    /// Step 1: every Secret's values merged three ways, key by key; the
    /// keys a Secret is encrypted to (and its clear sections) as one
    /// setting.
    fn merge_secrets(&self, views: &[View]) -> Result<BTreeMap<String, Target>> {
        let sides: Vec<BTreeMap<String, (Side, ParentDoc)>> = views
            .iter()
            .map(|v| {
                opened_identities(&v.opened)
                    .into_iter()
                    .zip(&v.opened)
                    .map(|(id, d)| (id, (Side::of(d), d.clone())))
                    .collect()
            })
            .collect();
        let (o, a, b) = (&sides[0], &sides[1], &sides[2]);
        let mut conflicts = Vec::new();
        let mut targets: BTreeMap<String, Target> = BTreeMap::new();
        let mut ids: Vec<&String> = a.keys().chain(b.keys()).collect();
        ids.sort();
        ids.dedup();
        for id in ids {
            if let Some(t) = merge_secret(id, o.get(id), a.get(id), b.get(id), &mut conflicts) {
                targets.insert(id.clone(), t);
            }
        }
        if !conflicts.is_empty() {
            for c in &conflicts {
                eprintln!("ksec: conflict: {}: {c}", self.name);
            }
            return Err(self.conflict(format!(
                "{} conflicting change{}",
                conflicts.len(),
                plural(conflicts.len())
            )));
        }
        Ok(targets)
    }

    /// Step 2: everything but the values, merged as text by `git merge-file`
    /// on skeletons (every body a marker, footers removed: no value and no
    /// ciphertext reaches the disk), then the bodies put back from ours
    /// (theirs' where only they have a section).
    fn merge_text(&self, streams: &[Stream], views: &[View]) -> Result<Zeroizing<String>> {
        let skeletons: Vec<String> = streams.iter().map(skeleton).collect::<Result<_>>()?;
        let merged = merge_file(&skeletons[1], &skeletons[0], &skeletons[2])?;
        let Some(merged) = merged else {
            return Err(self.conflict(
                "the manifest outside the Secret values (metadata, comments, documents) changed on both sides at the same place".into(),
            ));
        };
        let bodies_ours = bodies(&views[1].text)?;
        let bodies_theirs = bodies(&views[2].text)?;
        let mut clear = Zeroizing::new(merged);
        for (marker, body) in bodies_theirs.iter().chain(bodies_ours.iter()).rev() {
            if clear.contains(marker.as_str()) {
                *clear = clear.replace(marker.as_str(), body);
            }
        }
        if clear.contains(MARKER) {
            return Err(self.conflict("a data/stringData section could not be placed".into()));
        }
        Ok(clear)
    }

    /// The merged values spliced into the merged text, and each Secret's
    /// donor (the side whose data key and key lines it keeps).
    fn place_values(
        &self,
        clear: &str,
        targets: &BTreeMap<String, Target>,
    ) -> Result<(Zeroizing<String>, Vec<ParentDoc>)> {
        let stream = pipeline::parse(self.name, clear.to_owned())
            .map_err(|e| self.conflict(format!("the merged text does not parse ({e})")))?;
        let roots = amend::outline(clear)
            .map_err(|e| self.conflict(format!("the merged text does not parse ({e})")))?;
        let mut edits = Vec::new();
        let mut donors = Vec::new();
        for (position, id) in doc_identities(&stream.docs) {
            let doc = &stream.docs[position];
            let Some(target) = targets.get(&id) else {
                return Err(self.conflict(format!(
                    "Secret {id} is in the merged text but not in either side"
                )));
            };
            let node = manifest::outline::object(&roots, doc)
                .ok_or_else(|| self.conflict(format!("Secret {id} cannot be found again")))?;
            edits.extend(
                amend::amend(clear, node, &value_changes(clear, doc, target), doc.newline)
                    .map_err(|e| self.conflict(e.to_string()))?,
            );
            donors.push(target.donor.clone());
        }
        Ok((Zeroizing::new(manifest::splice(clear, &mut edits)), donors))
    }

    /// Step 3: the merged clear text encrypted against the chosen sides.
    fn seal(&self, clear: &str, donors: Vec<ParentDoc>) -> Result<String> {
        let parents = Parents {
            file: format!("{} (ours/theirs)", self.name),
            docs: donors,
        };
        let options = SealOptions {
            parents: Some(&parents),
            ..SealOptions::default()
        };
        pipeline::encrypt_text(&self.session, self.name, clear, options).map(|s| s.text)
    }

    /// The result opened again must hold exactly the merged values.
    fn verify(&self, out: &str, targets: &BTreeMap<String, Target>) -> Result<()> {
        let stream = pipeline::parse(self.name, out.to_owned())?;
        let reopened = pipeline::decrypt(
            &self.session,
            &stream,
            DecryptOptions {
                keep_opened: true,
                ..DecryptOptions::default()
            },
        )?
        .opened;
        for (id, d) in opened_identities(&reopened).into_iter().zip(&reopened) {
            let want = &targets[&id].values;
            let got: Vec<(Section, String, &str)> = d
                .opened
                .values
                .iter()
                .filter(|v| v.doc == d.position)
                .map(|v| (v.section, v.key.clone(), v.clear.as_str()))
                .collect();
            let same = got.len() == want.len()
                && want.iter().all(|(s, k, v)| {
                    got.iter()
                        .any(|(gs, gk, gv)| gs == s && gk == k && *gv == v.as_str())
                });
            if !same {
                return Err(Error::internal(format!(
                    "{}: internal error: the merged file does not hold the merged values; nothing was written",
                    self.name
                )));
            }
        }
        Ok(())
    }
}

/// One Secret merged three ways; `None` when both sides removed it or one
/// removed an unchanged one.
fn merge_secret(
    id: &str,
    os: Option<&(Side, ParentDoc)>,
    as_: Option<&(Side, ParentDoc)>,
    bs: Option<&(Side, ParentDoc)>,
    conflicts: &mut Vec<String>,
) -> Option<Target> {
    let side = |x: Option<&(Side, ParentDoc)>| x.map(|(s, _)| s.clone());
    match (side(os), side(as_), side(bs)) {
        (_, None, None) => None,
        (Some(base), Some(ours), None) | (Some(base), None, Some(ours)) => {
            if ours != base {
                conflicts.push(format!(
                    "Secret {id}: changed on one side, deleted on the other"
                ));
            }
            None
        }
        (base, ours, theirs) => {
            let base = base.unwrap_or_else(Side::empty);
            let (ours, theirs) = match (ours, theirs) {
                (Some(x), Some(y)) => (x, y),
                (Some(x), None) => (x.clone(), x),
                (None, Some(y)) => (y.clone(), y),
                (None, None) => unreachable!("handled above"),
            };
            let take_theirs =
                if ours.setting() == theirs.setting() || theirs.setting() == base.setting() {
                    false
                } else if ours.setting() == base.setting() || as_.is_none() {
                    true
                } else {
                    conflicts.push(format!(
                        "Secret {id}: its keys were changed differently on both sides"
                    ));
                    false
                };
            let values = merge_values(id, &base, &ours, &theirs, conflicts);
            let donor = if take_theirs || as_.is_none() {
                bs
            } else {
                as_
            };
            let donor = donor.expect("a side that has the Secret").1.clone();
            Some(Target { values, donor })
        }
    }
}

/// The changes that make a Secret of the merged text hold `target`'s values.
/// `text` is the merged text `doc` was located in.
fn value_changes(text: &str, doc: &Document, target: &Target) -> Vec<Change> {
    let mut changes = Vec::new();
    for s in &doc.sites {
        if !target
            .values
            .iter()
            .any(|(sec, k, _)| *sec == s.section && *k == s.key(text))
        {
            changes.push(Change {
                path: vec![s.section.as_str().into()],
                key: s.key(text).to_owned(),
                value: None,
            });
        }
    }
    for (sec, k, v) in &target.values {
        match doc
            .sites
            .iter()
            .find(|s| s.section == *sec && s.key(text) == *k)
        {
            Some(s) if s.value(text) == **v => {}
            _ => changes.push(Change {
                path: vec![sec.as_str().into()],
                key: k.clone(),
                value: Some(v.to_string()),
            }),
        }
    }
    changes
}

/// Three-way merge of one Secret's values; conflicts are appended.
fn merge_values(
    id: &str,
    base: &Side,
    ours: &Side,
    theirs: &Side,
    conflicts: &mut Vec<String>,
) -> Vec<(Section, String, Zeroizing<String>)> {
    let mut order: Vec<(Section, String)> = ours.order.clone();
    for k in &theirs.order {
        if !order.contains(k) {
            order.push(k.clone());
        }
    }
    let mut out = Vec::new();
    for key in order {
        let (o, a, b) = (
            base.values.get(&key),
            ours.values.get(&key),
            theirs.values.get(&key),
        );
        let pick = if a == b || b == o {
            a
        } else if a == o {
            b
        } else {
            let what = match (a, b) {
                (Some(_), Some(_)) => "changed differently on both sides",
                _ => "changed on one side, removed on the other",
            };
            conflicts.push(format!("Secret {id}: {}.{}: {what}", key.0.as_str(), key.1));
            a
        };
        if let Some(v) = pick {
            out.push((key.0, key.1, v.clone()));
        }
    }
    out
}

const MARKER: &str = "ksec-merge-body:";

/// The placeholder for a Secret's section body.
fn marker(id: &str, section: &str) -> String {
    format!("{MARKER}{id}:{section}")
}

/// The byte ranges of each Secret's non-empty `data`/`stringData` body.
fn body_ranges(text: &str, docs: &[Document]) -> Result<Vec<(String, std::ops::Range<usize>)>> {
    let roots = amend::outline(text).map_err(|e| pipeline::locate_error("merge", &e))?;
    let mut out = Vec::new();
    for (position, id) in doc_identities(docs) {
        let Some(node) = manifest::outline::object(&roots, &docs[position]) else {
            continue;
        };
        let Kind::Mapping(m) = &node.kind else {
            continue;
        };
        for section in ["data", "stringData"] {
            if let Some(e) = m.get(section)
                && let Kind::Mapping(body) = &e.value.kind
                && !body.entries.is_empty()
            {
                out.push((marker(&id, section), e.value.range.clone()));
            }
        }
    }
    Ok(out)
}

/// The file without values or format metadata: every body a marker.
fn skeleton(stream: &Stream) -> Result<String> {
    let text = &stream.text;
    let mut edits: Vec<Edit> = body_ranges(text, &stream.docs)?
        .into_iter()
        .map(|(m, range)| Edit { range, text: m })
        .collect();
    if let Some(format) = ksec::formats::detected(stream)? {
        edits.extend(format.remove_metadata(stream));
    }
    Ok(manifest::splice(text, &mut edits))
}

/// Marker → the body's clear text, from a decrypted view.
fn bodies(view: &str) -> Result<Vec<(String, Zeroizing<String>)>> {
    let stream = pipeline::parse("merge", view.to_owned())?;
    Ok(body_ranges(view, &stream.docs)?
        .into_iter()
        .map(|(m, r)| (m, Zeroizing::new(view[r].to_owned())))
        .collect())
}

/// `git merge-file -p` on three texts without secrets; `None` on a conflict.
fn merge_file(ours: &str, base: &str, theirs: &str) -> Result<Option<String>> {
    let dir = tempfile::tempdir().map_err(|e| {
        Error::new(
            Exit::Io,
            "write",
            format!("cannot create a temporary directory: {e}"),
        )
    })?;
    let write = |n: &str, t: &str| -> Result<PathBuf> {
        let p = dir.path().join(n);
        std::fs::write(&p, t)
            .map_err(|e| Error::new(Exit::Io, "write", format!("{}: {e}", p.display())))?;
        Ok(p)
    };
    let (a, o, b) = (
        write("ours", ours)?,
        write("base", base)?,
        write("theirs", theirs)?,
    );
    let out = Command::new("git")
        .args([
            "merge-file",
            "-p",
            "-q",
            "-L",
            "ours",
            "-L",
            "base",
            "-L",
            "theirs",
        ])
        .args([&a, &o, &b])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::internal(format!("cannot run git merge-file: {e}")))?;
    match out.status.code() {
        Some(0) => Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned())),
        Some(n) if n > 0 => Ok(None),
        _ => Err(Error::internal(format!(
            "git merge-file failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}

/// A file with no encrypted Secret on any side: merged as git would,
/// conflict markers and all, in OURS.
fn text_merge(plan: &MergePlan) -> Result<()> {
    let status = Command::new("git")
        .args(["merge-file", "-L", "ours", "-L", "base", "-L", "theirs"])
        .args([&plan.ours, &plan.base, &plan.theirs])
        .stdin(Stdio::null())
        .status()
        .map_err(|e| Error::internal(format!("cannot run git merge-file: {e}")))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(n) if n > 0 => Err(Error::new(
            Exit::Other,
            "merge-conflict",
            format!(
                "merge conflict in {}: {n} conflicting hunk{} (no encrypted Secrets: merged as text)",
                plan.name.as_deref().unwrap_or("the file"),
                plural(n as usize)
            ),
        )),
        _ => Err(Error::internal("git merge-file failed")),
    }
}
