//! `ksec exec FILE… -- COMMAND [ARGS…]`: run a command with Secrets' values,
//! like `sops exec-env` / `exec-file`, for one or many Secrets.
//!
//! * `--env`: each key as an environment variable; characters other than
//!   letters, digits and `_` become `_` (and a leading digit gets a `_`
//!   before it); two keys that end up with one name are refused, naming
//!   both. A value overrides an inherited variable of the same name.
//! * `--files`: each key as a 0600 file in a fresh 0700 directory on tmpfs
//!   (as `edit`'s scratch file), named in `KSEC_SECRETS_DIR`; removed when
//!   the command ends, whatever its exit code, and when ksec is stopped by
//!   SIGINT, SIGTERM or SIGHUP (passed on to the command, which gets 3 s).
//!
//! The exit code is the command's (128+N when a signal ended it).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use zeroize::Zeroizing;

use ksec::error::{Error, Exit, Result};
use ksec::manifest::Section;
use ksec::pipeline::{self, DecryptOptions};
use ksec::scratch::{CommandEnd, Interrupts, ScratchDir, supervise};

use super::{Context, read_all, warn};

/// What `exec` was asked to do.
pub struct ExecPlan {
    /// Encrypted files (`-`: stdin).
    pub paths: Vec<PathBuf>,
    /// `--env`.
    pub env: bool,
    /// `--files`.
    pub files: bool,
    /// The command and its arguments.
    pub command: Vec<OsString>,
    /// Input size limit.
    pub max_input: u64,
}

/// One value and where it came from.
struct Entry {
    secret: String,
    key: String,
    value: Zeroizing<Vec<u8>>,
}

/// An environment variable name for a Secret key.
fn env_name(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// Every value of every Secret, in order (`stringData` over `data`
/// within a Secret, as the API server has it).
fn entries(
    streams: &[ksec::manifest::Stream],
    clear: &[pipeline::Decrypted],
) -> Result<Vec<Entry>> {
    let mut out: Vec<Entry> = Vec::new();
    for (stream, d) in streams.iter().zip(clear) {
        let located = pipeline::parse(&stream.name, d.text.to_string())?;
        for doc in located.secrets() {
            let secret = doc.display_name();
            let mut mine: Vec<Entry> = Vec::new();
            for section in [Section::Data, Section::StringData] {
                for site in doc.sites.iter().filter(|s| s.section == section) {
                    let value = match section {
                        Section::Data => ksec::k8s::decode_base64(site.value(&located.text))
                            .ok_or_else(|| {
                                Error::new(Exit::Input, "invalid-base64", "not base64")
                                    .at(doc.site_location(&stream.name, &located.text, site))
                            })?,
                        Section::StringData => {
                            Zeroizing::new(site.value(&located.text).as_bytes().to_vec())
                        }
                    };
                    mine.retain(|e| e.key != site.key(&located.text));
                    mine.push(Entry {
                        secret: secret.clone(),
                        key: site.key(&located.text).to_owned(),
                        value,
                    });
                }
            }
            out.extend(mine);
        }
    }
    if out.is_empty() {
        return Err(Error::new(
            Exit::Input,
            "exec",
            "no Secret values to pass to the command",
        ));
    }
    Ok(out)
}

/// Refuses two entries that become the same name.
fn refuse_collisions(entries: &[Entry], name: impl Fn(&str) -> String, what: &str) -> Result<()> {
    for (i, a) in entries.iter().enumerate() {
        if let Some(b) = entries[..i].iter().find(|b| name(&b.key) == name(&a.key)) {
            return Err(Error::usage(format!(
                "{} {what} `{}`: {}.{} and {}.{} would both be it",
                "two values become the",
                name(&a.key),
                b.secret,
                b.key,
                a.secret,
                a.key
            ))
            .hint("rename one of the keys, or run the command with one Secret"));
        }
    }
    Ok(())
}

/// Runs `exec`; the exit code is the command's.
pub fn run(plan: &ExecPlan, ctx: &Context) -> Result<ExitCode> {
    let configs = ctx.configs()?;
    let inputs = super::inputs(&plan.paths, &configs, false)?;
    let session = ctx.session();
    let streams = read_all(&inputs.sources, plan.max_input)?;
    let clear = pipeline::decrypt_all(&session, &streams, DecryptOptions::default())?;
    let entries = entries(&streams, &clear)?;
    drop(clear);
    let mut command = Command::new(&plan.command[0]);
    command.args(&plan.command[1..]);
    if plan.env {
        refuse_collisions(&entries, env_name, "environment variable")?;
        for e in &entries {
            if e.value.contains(&0) {
                return Err(Error::usage(format!(
                    "{}.{}: the value has a NUL byte, which an environment variable cannot hold",
                    e.secret, e.key
                ))
                .hint("use --files for binary values"));
            }
            let name = env_name(&e.key);
            if std::env::var_os(&name).is_some() {
                warn(&format!(
                    "{}.{} overrides the variable {name} of the environment",
                    e.secret, e.key
                ));
            }
            command.env(name, OsString::from_vec(e.value.to_vec()));
        }
    }
    let mut interrupts = Interrupts::catch()?;
    let mut dir = None;
    if plan.files {
        refuse_collisions(&entries, |k| k.to_owned(), "file")?;
        if let Some(e) = entries
            .iter()
            .find(|e| e.key == "." || e.key.starts_with(".."))
        {
            return Err(Error::usage(format!(
                "{}.{}: not usable as a file name",
                e.secret, e.key
            )));
        }
        let mut d = ScratchDir::create(session.reporter.as_ref())?;
        // A guardian removes the files even if ksec is killed with SIGKILL.
        let me = std::env::current_exe().map_err(|e| {
            Error::new(
                Exit::Io,
                "scratch",
                format!(
                    "cannot find the ksec binary for the guardian: {}",
                    ksec::io::io_reason(&e)
                ),
            )
        })?;
        d.guard(&me)?;
        for e in &entries {
            d.write(&e.key, &e.value)?;
        }
        command.env("KSEC_SECRETS_DIR", d.path());
        dir = Some(d);
    }
    drop(entries);
    let end = supervise(&mut command, &mut interrupts);
    // The clear files go before anything else happens, whatever the end.
    if let Some(mut d) = dir {
        d.remove();
    }
    drop(command);
    Ok(match end? {
        CommandEnd::Exited(status) => match (status.code(), status.signal()) {
            (Some(c), _) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
            (None, Some(s)) => ExitCode::from(128u8.saturating_add(u8::try_from(s).unwrap_or(0))),
            _ => ExitCode::from(1),
        },
        CommandEnd::Interrupted(sig) => Exit::Signal(u8::try_from(sig).unwrap_or(0)).code(),
    })
}

#[cfg(test)]
mod tests {
    use super::env_name;

    #[test]
    fn env_names() {
        assert_eq!(env_name("DB_PASSWORD"), "DB_PASSWORD");
        assert_eq!(env_name("tls.crt"), "tls_crt");
        assert_eq!(env_name("api-key"), "api_key");
        assert_eq!(env_name("1st"), "_1st");
    }
}
