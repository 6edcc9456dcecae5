//! Reading input with a size limit, and writing files atomically.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Exit, Location, Result};

/// Default input size limit: 64 MiB.
pub const DEFAULT_MAX_INPUT: u64 = 64 * 1024 * 1024;

/// Where input comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// Standard input (`-` or no file).
    Stdin,
    /// A file.
    File(PathBuf),
}

impl Source {
    /// From a command-line argument: `-` or nothing is stdin.
    pub fn from_arg(arg: Option<&Path>) -> Source {
        match arg {
            None => Source::Stdin,
            Some(p) if p.as_os_str() == "-" => Source::Stdin,
            Some(p) => Source::File(p.to_owned()),
        }
    }

    /// The name used in messages.
    pub fn display(&self) -> String {
        match self {
            Source::Stdin => "<stdin>".to_owned(),
            Source::File(p) => p.display().to_string(),
        }
    }
}

/// Reads the whole input as UTF-8 text, refusing more than `limit` bytes.
pub fn read_text(source: &Source, limit: u64) -> Result<String> {
    let name = source.display();
    let too_big = || {
        Error::new(
            Exit::Input,
            "too-large",
            format!("input is larger than the limit of {}", human_size(limit)),
        )
        .in_file(&name)
        .hint("raise the limit with --max-input-size, e.g. --max-input-size 256MiB")
    };
    let io_err = |e: io::Error| {
        Error::new(
            Exit::Io,
            "unreadable",
            format!("cannot read: {}", io_reason(&e)),
        )
        .in_file(&name)
    };
    let mut bytes = Vec::new();
    match source {
        Source::Stdin => {
            io::stdin()
                .lock()
                .take(limit + 1)
                .read_to_end(&mut bytes)
                .map_err(io_err)?;
        }
        Source::File(p) => {
            let f = fs::File::open(p).map_err(io_err)?;
            let meta = f.metadata().map_err(io_err)?;
            if meta.is_dir() {
                return Err(Error::new(Exit::Io, "unreadable", "is a directory").in_file(&name));
            }
            // One allocation of the right size instead of doubling up to it.
            bytes.reserve_exact(meta.len().min(limit) as usize + 1);
            f.take(limit + 1).read_to_end(&mut bytes).map_err(io_err)?;
        }
    }
    if bytes.len() as u64 > limit {
        return Err(too_big());
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        Error::new(
            Exit::Input,
            "not-utf8",
            format!("input is not UTF-8 text (invalid byte at offset {at})"),
        )
        .at(Location::file(&name).line(line))
    })
}

/// Writes `data` to the file `path` names, as users expect of `-i`/`-o`:
///
/// * a regular file is replaced atomically: a temporary file in the same
///   directory, fsync, rename over it, fsync of the directory — a crash
///   leaves the old or the new file, never a mix; its mode, and its owner
///   and group (when run as root), are kept;
/// * a symbolic link is written through: the file it points to is
///   replaced, the link stays;
/// * a FIFO or a device (`-o /dev/stdout`) is written to directly;
/// * a read-only file is refused unless `force` (as root, permissions
///   would not stop the write).
pub fn write_atomic(path: &Path, data: &[u8], force: bool) -> Result<()> {
    let name = path.display().to_string();
    let fail = |what: &str, e: io::Error| {
        Error::new(
            Exit::Io,
            "write",
            format!("cannot {what}: {}", io_reason(&e)),
        )
        .in_file(&name)
    };
    let target = follow_links(path).map_err(|e| fail("follow its symbolic link", e))?;
    let meta = match fs::metadata(&target) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(fail("read", e)),
    };
    match &meta {
        Some(m) if m.is_dir() => {
            return Err(Error::new(Exit::Io, "write", "is a directory").in_file(&name));
        }
        Some(m) if !m.is_file() => {
            // A FIFO, a device or a socket: there is nothing to rename over.
            let mut f = fs::OpenOptions::new()
                .write(true)
                .open(&target)
                .map_err(|e| fail("open", e))?;
            return f.write_all(data).map_err(|e| fail("write", e));
        }
        Some(m) if m.permissions().readonly() && !force => {
            return Err(Error::new(
                Exit::State,
                "read-only",
                "the file is read-only; not replaced",
            )
            .in_file(&name)
            .hint("make it writable, or pass --force to replace it anyway"));
        }
        _ => {}
    }
    replace(&target, data, meta.as_ref()).map_err(|(what, e)| fail(what, e))
}

/// `path` with every symbolic link followed (relative links against their
/// directory); a dangling link gives the path it points to.
fn follow_links(path: &Path) -> io::Result<PathBuf> {
    let mut p = path.to_owned();
    for _ in 0..40 {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = fs::read_link(&p)?;
                p = match p.parent() {
                    Some(dir) if to.is_relative() => dir.join(to),
                    _ => to,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

/// The atomic replacement of a regular file (or creation of a new one).
/// Removes the temporary files interrupted ksec runs left in `dir` (once
/// per directory and run).
fn clean_once(dir: &Path) {
    use std::cell::RefCell;
    use std::collections::HashSet;
    thread_local! {
        static DONE: RefCell<HashSet<PathBuf>> = RefCell::new(HashSet::new());
    }
    let first = DONE.with(|d| d.borrow_mut().insert(dir.to_owned()));
    if first {
        crate::stale::remove_stale_temps(dir);
    }
}

fn replace(
    target: &Path,
    data: &[u8],
    old: Option<&fs::Metadata>,
) -> std::result::Result<(), (&'static str, io::Error)> {
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    clean_once(&dir);
    // `.ksec-<pid>-….tmp`: a later run can tell that it is stale.
    let prefix = format!("{}{}", crate::stale::TEMP_PREFIX, crate::stale::tag());
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(crate::stale::TEMP_SUFFIX)
        .tempfile_in(&dir)
        .map_err(|e| ("create a temporary file next to it", e))?;
    tmp.write_all(data).map_err(|e| ("write", e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        match old {
            Some(meta) => {
                tmp.as_file()
                    .set_permissions(meta.permissions())
                    .map_err(|e| ("keep the file mode", e))?;
                // Owner and group as they were; only root may give a file
                // away, so for others this is best effort.
                let owner = rustix::fs::fchown(
                    tmp.as_file(),
                    Some(rustix::fs::Uid::from_raw(meta.uid())),
                    Some(rustix::fs::Gid::from_raw(meta.gid())),
                );
                if let Err(e) = owner
                    && rustix::process::geteuid().is_root()
                {
                    return Err(("keep the owner and group", e.into()));
                }
            }
            None => {
                // New files: 0644 like `cp` would give under the usual umask,
                // not tempfile's 0600.
                let _ = tmp
                    .as_file()
                    .set_permissions(fs::Permissions::from_mode(0o644));
            }
        }
    }
    tmp.as_file().sync_all().map_err(|e| ("sync", e))?;
    tmp.persist(target).map_err(|e| ("replace", e.error))?;
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Writes everything to stdout. A closed pipe (`ksec decrypt … | head`) is not an error.
pub fn write_stdout(data: &[u8]) -> Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(data).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::new(
            Exit::Io,
            "write",
            format!("cannot write to stdout: {}", io_reason(&e)),
        )),
    }
}

/// An I/O error's reason without Rust's `(os error N)` suffix.
pub fn io_reason(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// A size argument that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SizeError(String);

/// Parses sizes like `64MiB`, `1GiB`, `500k`, `1000000`.
pub fn parse_size(s: &str) -> std::result::Result<u64, SizeError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        SizeError(format!(
            "`{s}` is not a size (examples: 1000000, 500KiB, 64MiB, 1GiB)"
        ))
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(SizeError(format!(
                "`{s}`: unknown unit (use KiB, MiB or GiB)"
            )));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| SizeError(format!("`{s}` is too large")))
}

/// `64 MiB`-style rendering for messages.
pub fn human_size(n: u64) -> String {
    if n >= 1 << 30 && n.is_multiple_of(1 << 30) {
        format!("{} GiB", n >> 30)
    } else if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert_eq!(human_size(DEFAULT_MAX_INPUT), "64 MiB");
    }
}
