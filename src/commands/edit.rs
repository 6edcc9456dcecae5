//! `ksec edit`: decrypt into an editor, re-encrypt on save.
//!
//! The editor sees the whole decrypted stream (`data` base64-decoded unless
//! `--base64`; non-UTF-8 values as `!!binary`). What the user saves is
//! encrypted with the opened file as its parent ([`ksec::pipeline::Parents`]): the
//! same data key, unchanged values keep their exact ciphertext, changed
//! ones get fresh IVs, and the MAC is recomputed only when something it
//! covers changed. The user may change anything, metadata and comments
//! included; what they did not touch keeps its bytes, because decrypting and
//! re-encrypting an unchanged stream gives back the same bytes.
//!
//! Safety: the clear text lives only in a [`Scratch`] file, removed on every
//! way out; a save that does not encrypt re-opens the editor on a terminal
//! (the user gives up by saving the text unchanged, or empty); a file that
//! changed on disk meanwhile is never overwritten.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use ksec::error::{Error, Exit, Result};
use ksec::io::{self, Source};
use ksec::keys::{KeyChange, KeyId};
use ksec::manifest::{ClearSections, Section};
use ksec::pipeline::{
    self, DecryptOptions, KeyPolicy, ParentDoc, Parents, RuleKeys, SealOptions, Session,
};
use ksec::scratch::{EditorEnd, Interrupts, Scratch, editor_command, run_editor};

use super::{Context, note};

/// What `edit` was asked to do.
pub struct EditPlan {
    /// The encrypted file, rewritten in place.
    pub path: PathBuf,
    /// Show `data` values base64-encoded, as stored.
    pub base64: bool,
    /// Create the file from a template when it does not exist.
    pub create: bool,
    /// `--key` changes (the keys of a new file).
    pub keys: KeyChange,
    /// Generate a new data key.
    pub rotate: bool,
    /// Input size limit.
    pub max_input: u64,
}

/// The first lines of a re-opened editor: why the last save failed.
const ERROR_HEAD: &str = "# ksec edit: this text could not be saved:\n";
const ERROR_TAIL: &str =
    "# Fix it and save to try again; save it unchanged, or empty, to give up.\n#\n";

/// Runs `edit`.
pub fn run(plan: &EditPlan, ctx: &Context) -> Result<()> {
    let file = plan.path.display().to_string();
    let session = ctx.session();
    let configs = ctx.configs()?;
    let original = read_original(plan)?;
    let (view, parents) = open_view(plan, &session, &file, original.as_deref())?;
    // New Secrets get the keys (and clear sections) of the file's first
    // Secret; in a new file, those of its `.ksec.yaml` rule (unless --key).
    let rule = configs.rule(&Source::File(plan.path.clone()))?;
    let (fallback, new_clear): (Vec<KeyId>, ClearSections) = match parents.docs.first() {
        Some(d) => (d.opened.keys(), d.opened.meta.info().clear),
        None => rule.as_ref().map_or_else(Default::default, |(c, i)| {
            (c.rules[*i].keys.clone(), c.rules[*i].clear)
        }),
    };
    let change = if plan.keys.is_empty() {
        None
    } else {
        Some(session.resolve_change(&plan.keys)?)
    };
    let options = SealOptions {
        policy: KeyPolicy {
            change: change.as_ref(),
            rule: Some(RuleKeys {
                keys: &fallback,
                clear: new_clear,
                format: None,
            }),
            rotate: plan.rotate,
            enforce_rule: false,
        },
        cleartext: !plan.base64,
        parents: Some(&parents),
        ..SealOptions::default()
    };
    let editor = editor_command()?;
    let interrupts = Interrupts::catch()?;
    let mut scratch = Scratch::create(&scratch_name(&plan.path), &view, session.reporter.as_ref())?;
    // Removes the clear text should ksec be killed (SIGKILL) while the
    // editor runs.
    let me = std::env::current_exe().map_err(|e| {
        ksec::error::Error::new(
            ksec::error::Exit::Io,
            "scratch",
            format!("cannot find the ksec program to guard the scratch directory: {e}"),
        )
    })?;
    scratch.guard(&me)?;
    let session = Edit {
        plan,
        file: &file,
        session: &session,
        options,
        original: original.as_deref(),
        view: &view,
        force: ctx.force,
    };
    session.edit_loop(&editor, scratch, interrupts)
}

/// The decrypted view of the file (or the template of a new one), and its
/// opened Secrets to seal the saved text against.
fn open_view(
    plan: &EditPlan,
    session: &Session,
    file: &str,
    original: Option<&str>,
) -> Result<(Zeroizing<String>, Parents)> {
    let Some(text) = original else {
        note(&format!(
            "{file} does not exist: editing a new Secret; it is created when you save a change"
        ));
        let parents = Parents {
            file: file.to_owned(),
            docs: Vec::new(),
        };
        return Ok((Zeroizing::new(template(&plan.path, plan.base64)), parents));
    };
    let stream = pipeline::parse(file, text.to_owned())?;
    let decrypted = pipeline::decrypt(
        session,
        &stream,
        DecryptOptions {
            cleartext: !plan.base64,
            allow_missing_mac: false,
            ignore_mac: false,
            require_binding: false,
            keep_opened: true,
        },
    )?;
    if decrypted.opened.is_empty() {
        return Err(
            Error::new(Exit::State, "no-secret", "no Secret documents to edit").in_file(file),
        );
    }
    check_decodable(file, &stream, plan.base64, &decrypted.opened)?;
    let parents = Parents {
        file: file.to_owned(),
        docs: decrypted.opened,
    };
    Ok((decrypted.text, parents))
}

/// One editing session: the editor loop and what a save turns into.
struct Edit<'a> {
    plan: &'a EditPlan,
    file: &'a str,
    session: &'a Session,
    options: SealOptions<'a>,
    original: Option<&'a str>,
    view: &'a str,
    force: bool,
}

impl Edit<'_> {
    /// Runs the editor until a save encrypts, the user gives up, or a
    /// signal stops it (then the scratch file is removed and the error
    /// carries exit code 128+signal, so every destructor still runs).
    fn edit_loop(
        &self,
        editor: &[String],
        mut scratch: Scratch,
        mut interrupts: Interrupts,
    ) -> Result<()> {
        let file = self.file;
        let interactive = std::io::stdin().is_terminal();
        // The text the user last saw without an error header, when re-opened.
        let mut retry: Option<(Zeroizing<String>, Error)> = None;
        loop {
            match run_editor(editor, scratch.path(), &mut interrupts)? {
                EditorEnd::Interrupted(sig) => {
                    scratch.remove();
                    return Err(interrupted(file, sig));
                }
                EditorEnd::Exited(status) if !status.success() => {
                    return Err(Error::new(
                        Exit::State,
                        "editor-failed",
                        format!(
                            "the editor exited with {}; nothing was written",
                            describe(status)
                        ),
                    )
                    .in_file(file)
                    .hint("save and quit normally (e.g. `:wq` in vi) to keep your changes"));
                }
                EditorEnd::Exited(_) => {}
            }
            let saved = strip_error_header(scratch.read(self.plan.max_input)?);
            if let Some(sig) = interrupts.pending() {
                scratch.remove();
                return Err(interrupted(file, sig));
            }
            if saved.trim().is_empty() {
                note(&format!(
                    "the edited text is empty: edit cancelled, {file} was not changed"
                ));
                return Ok(());
            }
            if let Some((last, failure)) = &retry
                && *saved == **last
            {
                return Err(Error::new(
                    failure.exit,
                    failure.code,
                    format!("edit given up; nothing was written (last error: {failure})"),
                )
                .in_file(file));
            }
            if *saved == *self.view && self.plan.keys.is_empty() && !self.plan.rotate {
                match self.original {
                    Some(_) => note(&format!("no changes; {file} was not written")),
                    None => note(&format!("no changes; {file} was not created")),
                }
                return Ok(());
            }
            match self.seal(&saved) {
                Ok(out) => {
                    scratch.remove();
                    if let Some(sig) = interrupts.pending() {
                        // Asked to stop while encrypting: stop before writing.
                        return Err(interrupted(file, sig));
                    }
                    return write_result(self.plan, file, self.original, &out, self.force);
                }
                Err(failure) if interactive => {
                    eprintln!("ksec: error: {failure}");
                    if let Some(h) = &failure.hint {
                        eprintln!("  hint: {h}");
                    }
                    eprintln!("ksec: re-opening the editor so that you can fix it");
                    scratch.write(&error_header(&failure, &saved))?;
                    retry = Some((saved, failure));
                }
                Err(failure) => return Err(failure),
            }
        }
    }

    /// The saved text, encrypted against the file it came from.
    fn seal(&self, saved: &str) -> Result<String> {
        check_kept_secrets(self.file, self.view, saved)?;
        pipeline::encrypt_text(self.session, self.file, saved, self.options).map(|s| s.text)
    }
}

/// Stopped by a signal: the clear text is gone and the file unchanged.
fn interrupted(file: &str, sig: i32) -> Error {
    Error::new(
        Exit::Signal(u8::try_from(sig).unwrap_or(0)),
        "interrupted",
        format!("interrupted; the clear text was removed and {file} was not changed"),
    )
}

/// The file as it is now; `None` when it does not exist and `-f` allows
/// creating it.
fn read_original(plan: &EditPlan) -> Result<Option<String>> {
    if !plan.path.exists() && plan.create {
        return Ok(None);
    }
    if !plan.path.exists() {
        return Err(Error::new(Exit::Io, "unreadable", "no such file")
            .in_file(&plan.path.display().to_string())
            .hint("pass -f to create it from a template"));
    }
    io::read_text(&Source::File(plan.path.clone()), plan.max_input).map(Some)
}

/// A `data` value that is not base64 would come back base64-encoded (so
/// changed) from the decoded view; such files are edited with `--base64`.
fn check_decodable(
    file: &str,
    stream: &ksec::manifest::Stream,
    base64: bool,
    opened: &[ParentDoc],
) -> Result<()> {
    if base64 {
        return Ok(());
    }
    for p in opened {
        let doc = &stream.docs[p.position];
        let mine = p.opened.values.iter().filter(|v| v.doc == p.position);
        for (v, site) in mine.zip(&doc.sites) {
            if v.section == Section::Data && ksec::k8s::decode_base64(&v.clear).is_none() {
                return Err(Error::new(
                    Exit::Input,
                    "not-base64",
                    "the value is not valid base64, so it cannot be shown decoded",
                )
                .at(doc.site_location(file, &stream.text, site))
                .hint("edit with --base64 (-b) to see the values as stored"));
            }
        }
    }
    Ok(())
}

/// Refuses a save that turned a Secret into something that is not one (a
/// typo in `kind`, say): its values would be written in clear text.
fn check_kept_secrets(file: &str, view: &str, saved: &str) -> Result<()> {
    let before = pipeline::parse(file, view.to_owned())?;
    let after = pipeline::parse(file, saved.to_owned())?;
    for doc in after
        .docs
        .iter()
        .filter(|d| !d.is_secret && !d.sites.is_empty())
    {
        let was_secret = before
            .docs
            .iter()
            .any(|b| b.index == doc.index && b.item == doc.item && b.is_secret);
        if was_secret || doc.kind.as_deref() == Some("Secret") {
            return Err(Error::new(
                Exit::Input,
                "not-a-secret",
                "the document is no longer a Secret (apiVersion: v1, kind: Secret), so its values would be written in clear text",
            )
            .at(doc.location(file, doc.line))
            .hint("restore `apiVersion: v1` and `kind: Secret`, or remove its data/stringData"));
        }
    }
    Ok(())
}

/// Writes the encrypted result, unless the file changed on disk while the
/// editor was open: then the result goes next to it and the file stays.
fn write_result(
    plan: &EditPlan,
    file: &str,
    original: Option<&str>,
    out: &str,
    force: bool,
) -> Result<()> {
    let now_on_disk = std::fs::read(&plan.path).ok();
    let unchanged_on_disk = match (original, &now_on_disk) {
        (Some(o), Some(d)) => o.as_bytes() == d.as_slice(),
        (None, None) => true,
        _ => false,
    };
    if unchanged_on_disk {
        if original == Some(out) {
            note(&format!("no changes; {file} was not written"));
            return Ok(());
        }
        io::write_atomic(&plan.path, out.as_bytes(), force)?;
        note(&format!("{file}: saved, encrypted"));
        return Ok(());
    }
    let aside = aside_path(&plan.path);
    io::write_atomic(&aside, out.as_bytes(), false)?;
    Err(Error::new(
        Exit::State,
        "changed-on-disk",
        format!(
            "{file} changed on disk while you were editing, so it was not overwritten; your edit is saved, encrypted, in {}",
            aside.display()
        ),
    )
    .hint(format!(
        "compare the two (ksec decrypt), merge by hand, then move {} over {file}",
        aside.display()
    )))
}

/// `FILE.ksec-edit-<UTC time>.yaml`, with `-N` added when taken.
fn aside_path(path: &Path) -> PathBuf {
    let stamp: String = ksec::clock::now_rfc3339()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    let base = format!("{}.ksec-edit-{stamp}", path.display());
    let mut candidate = PathBuf::from(format!("{base}.yaml"));
    let mut n = 1;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{base}-{n}.yaml"));
        n += 1;
    }
    candidate
}

/// The scratch file's name: the file's own name, ending in `.yaml` so that
/// editors highlight it.
fn scratch_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "secret".into());
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.ends_with(".yaml") || safe.ends_with(".yml") {
        safe
    } else {
        format!("{safe}.yaml")
    }
}

/// The Secret shown for `edit -f` on a missing file: named after the file
/// (`db-secret.enc.yaml` → `db-secret`), one placeholder value.
pub fn template(path: &Path, base64: bool) -> String {
    let value = if base64 { "dmFsdWU=" } else { "value" };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {}\ntype: Opaque\ndata:\n  KEY: {value}\n",
        name_from_path(path)
    )
}

/// A Kubernetes object name from a file name: extensions dropped, lower
/// case, other characters turned into `-`; `secret` when nothing is left.
pub fn name_from_path(path: &Path) -> String {
    let mut stem = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for ext in [".yaml", ".yml", ".json", ".enc", ".secret"] {
        if let Some(s) = stem.strip_suffix(ext) {
            stem = s.to_owned();
        }
    }
    let name: String = stem
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches(|c| c == '-' || c == '.').to_owned();
    if name.is_empty() {
        "secret".into()
    } else {
        name
    }
}

fn error_header(f: &Error, text: &str) -> String {
    let mut s = String::from(ERROR_HEAD);
    s.push_str(&format!("#   {}\n", f.to_string().replace('\n', " ")));
    if let Some(h) = &f.hint {
        s.push_str(&format!("#   hint: {}\n", h.replace('\n', " ")));
    }
    s.push_str(ERROR_TAIL);
    s.push_str(text);
    s
}

/// Drops the error header ksec put on top, if it is still there intact.
fn strip_error_header(text: Zeroizing<String>) -> Zeroizing<String> {
    if !text.starts_with(ERROR_HEAD) {
        return text;
    }
    match text.find(ERROR_TAIL) {
        Some(i) => Zeroizing::new(text[i + ERROR_TAIL.len()..].to_owned()),
        None => text,
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("status {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "an unknown status".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            name_from_path(Path::new("k8s/db-secret.enc.yaml")),
            "db-secret"
        );
        assert_eq!(name_from_path(Path::new("My_App.yml")), "my-app");
        assert_eq!(name_from_path(Path::new("---.yaml")), "secret");
        assert_eq!(scratch_name(Path::new("a b.enc")), "a_b.enc.yaml");
        assert_eq!(scratch_name(Path::new("x.yml")), "x.yml");
    }

    #[test]
    fn error_header_round_trip() {
        let f = Error::new(Exit::Input, "test", "bad").hint("fix");
        let text = "apiVersion: v1\n";
        let with = error_header(&f, text);
        assert!(with.starts_with(ERROR_HEAD) && with.contains("#   hint: fix\n"));
        assert_eq!(*strip_error_header(Zeroizing::new(with)), text);
        let own = "# my comment\napiVersion: v1\n";
        assert_eq!(*strip_error_header(Zeroizing::new(own.into())), own);
    }
}
