//! `ksec edit`: decrypt into an editor, re-encrypt on save.
//!
//! The editor sees the whole decrypted stream (`data` base64-decoded unless
//! `--base64`; non-UTF-8 values as `!!binary`). What the user saves is
//! encrypted with the opened file as its parent ([`super::parent`]): the
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

use super::decrypt::decrypt_opened;
use super::encrypt::{EncryptOptions, encrypt_with};
use super::parent::Parents;
use super::scratch::{EditorEnd, Interrupts, Scratch, editor_command, run_editor};
use super::{note, place};
use crate::config::Configs;
use crate::error::{Exit, Failure, Result};
use crate::io::{self, Source};
use crate::keys::{KeyChange, Keyring};
use crate::manifest::{self, Section};
use crate::secret;

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
pub fn run(plan: &EditPlan, keyring: &Keyring, configs: &Configs) -> Result<()> {
    let file = plan.path.display().to_string();
    let original = read_original(plan)?;
    let (view, parents) = match &original {
        Some(text) => {
            let (view, opened) = decrypt_opened(&file, text, !plan.base64, false, keyring)?;
            if opened.is_empty() {
                return Err(Failure::new(
                    Exit::State,
                    format!("{file}: no Secret documents to edit"),
                ));
            }
            check_decodable(&file, text, plan.base64, &opened)?;
            let parents = Parents {
                file: file.clone(),
                docs: opened,
            };
            (Zeroizing::new(view), parents)
        }
        None => {
            note(&format!(
                "{file} does not exist: editing a new Secret; it is created when you save a change"
            ));
            let parents = Parents {
                file: file.clone(),
                docs: Vec::new(),
            };
            (Zeroizing::new(template(&plan.path, plan.base64)), parents)
        }
    };
    let editor = editor_command()?;
    let interactive = std::io::stdin().is_terminal();
    let mut interrupts = Interrupts::catch()?;
    let mut scratch = Scratch::create(&scratch_name(&plan.path), &view)?;
    let now = super::now();
    // New Secrets get the keys of the file's first Secret; in a new file,
    // those of its `.ksec.yaml` rule (unless --key).
    let rule = configs.rule(&Source::File(plan.path.clone()))?;
    let fallback: Vec<_> = parents.docs.first().map_or_else(
        || {
            rule.as_ref()
                .map(|(c, i)| c.rules[*i].keys.clone())
                .unwrap_or_default()
        },
        |d| d.opened.footer.keys.iter().map(|w| w.key.clone()).collect(),
    );
    let new_clear = parents.docs.first().map_or_else(
        || {
            rule.as_ref()
                .map(|(c, i)| c.rules[*i].clear)
                .unwrap_or_default()
        },
        |d| d.opened.footer.clear,
    );
    let opts = EncryptOptions {
        new_clear,
        cleartext: !plan.base64,
        rotate: plan.rotate,
        parents: Some(&parents),
        strict_keys: true,
        fallback_keys: &fallback,
        ..EncryptOptions::new(&plan.keys, &now)
    };
    // The text the user last saw without an error header, when re-opened.
    let mut retry: Option<(Zeroizing<String>, Failure)> = None;
    loop {
        match run_editor(&editor, scratch.path(), &mut interrupts)? {
            EditorEnd::Interrupted(sig) => {
                scratch.remove();
                eprintln!(
                    "ksec: interrupted; the clear text was removed and {file} was not changed"
                );
                std::process::exit(128 + sig);
            }
            EditorEnd::Exited(status) if !status.success() => {
                return Err(Failure::new(
                    Exit::State,
                    format!(
                        "{file}: the editor exited with {}; nothing was written",
                        describe(status)
                    ),
                )
                .hint("save and quit normally (e.g. `:wq` in vi) to keep your changes"));
            }
            EditorEnd::Exited(_) => {}
        }
        let saved = strip_error_header(scratch.read(plan.max_input)?);
        if let Some(sig) = interrupts.pending() {
            scratch.remove();
            std::process::exit(128 + sig);
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
            return Err(Failure::new(
                failure.exit,
                format!(
                    "{file}: edit given up; nothing was written (last error: {})",
                    failure.message
                ),
            ));
        }
        if *saved == *view && plan.keys.is_empty() && !plan.rotate {
            match original {
                Some(_) => note(&format!("no changes; {file} was not written")),
                None => note(&format!("no changes; {file} was not created")),
            }
            return Ok(());
        }
        let result = check_kept_secrets(&file, &view, &saved)
            .and_then(|()| encrypt_with(&file, &saved, &opts, keyring));
        match result {
            Ok(out) => {
                scratch.remove();
                if let Some(sig) = interrupts.pending() {
                    // Asked to stop while encrypting: stop before writing.
                    std::process::exit(128 + sig);
                }
                return write_result(plan, &file, original.as_deref(), &out);
            }
            Err(failure) if interactive => {
                eprintln!("ksec: error: {}", failure.message);
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

/// The file as it is now; `None` when it does not exist and `-f` allows
/// creating it.
fn read_original(plan: &EditPlan) -> Result<Option<String>> {
    if !plan.path.exists() && plan.create {
        return Ok(None);
    }
    if !plan.path.exists() {
        return Err(
            Failure::new(Exit::Io, format!("{}: no such file", plan.path.display()))
                .hint("pass -f to create it from a template"),
        );
    }
    io::read_text(&Source::File(plan.path.clone()), plan.max_input).map(Some)
}

/// A `data` value that is not base64 would come back base64-encoded (so
/// changed) from the decoded view; such files are edited with `--base64`.
fn check_decodable(
    file: &str,
    text: &str,
    base64: bool,
    opened: &[super::parent::ParentDoc],
) -> Result<()> {
    if base64 {
        return Ok(());
    }
    let docs = manifest::locate(text).map_err(|e| super::locate_failure(file, &e))?;
    for p in opened {
        let doc = &docs[p.position];
        for (v, site) in p.opened.values.iter().zip(&doc.sites) {
            if v.section == Section::Data && secret::decode_base64(&v.clear).is_none() {
                return Err(Failure::new(
                    Exit::Input,
                    format!(
                        "{}, {}: the value is not valid base64, so it cannot be shown decoded",
                        place(file, doc, site.line),
                        secret::label(site)
                    ),
                )
                .hint("edit with --base64 (-b) to see the values as stored"));
            }
        }
    }
    Ok(())
}

/// Refuses a save that turned a Secret into something that is not one (a
/// typo in `kind`, say): its values would be written in clear text.
fn check_kept_secrets(file: &str, view: &str, saved: &str) -> Result<()> {
    let before = manifest::locate(view).map_err(|e| super::locate_failure(file, &e))?;
    let after = manifest::locate(saved).map_err(|e| super::locate_failure(file, &e))?;
    for doc in after.iter().filter(|d| !d.is_secret && !d.sites.is_empty()) {
        let was_secret = before
            .iter()
            .any(|b| b.index == doc.index && b.item == doc.item && b.is_secret);
        if was_secret || doc.kind.as_deref() == Some("Secret") {
            return Err(Failure::new(
                Exit::Input,
                format!(
                    "{}: the document is no longer a Secret (apiVersion: v1, kind: Secret), so its values would be written in clear text",
                    place(file, doc, doc.line)
                ),
            )
            .hint("restore `apiVersion: v1` and `kind: Secret`, or remove its data/stringData"));
        }
    }
    Ok(())
}

/// Writes the encrypted result, unless the file changed on disk while the
/// editor was open: then the result goes next to it and the file stays.
fn write_result(plan: &EditPlan, file: &str, original: Option<&str>, out: &str) -> Result<()> {
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
        io::write_atomic(&plan.path, out.as_bytes())?;
        note(&format!("{file}: saved, encrypted"));
        return Ok(());
    }
    let aside = aside_path(&plan.path);
    io::write_atomic(&aside, out.as_bytes())?;
    Err(Failure::new(
        Exit::State,
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
    let stamp: String = super::now()
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

fn error_header(f: &Failure, text: &str) -> String {
    let mut s = String::from(ERROR_HEAD);
    s.push_str(&format!("#   {}\n", f.message.replace('\n', " ")));
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
        let f = Failure::new(Exit::Input, "bad").hint("fix");
        let text = "apiVersion: v1\n";
        let with = error_header(&f, text);
        assert!(with.starts_with(ERROR_HEAD) && with.contains("#   hint: fix\n"));
        assert_eq!(*strip_error_header(Zeroizing::new(with)), text);
        let own = "# my comment\napiVersion: v1\n";
        assert_eq!(*strip_error_header(Zeroizing::new(own.into())), own);
    }
}
