//! What an interrupted ksec leaves behind, and cleaning it up.
//!
//! Every file ksec writes goes through a temporary file next to it,
//! `.ksec-<pid>-<random>.tmp`, renamed over the target (for `decrypt -i` it
//! holds clear text); `ksec edit`'s clear text lives in a scratch directory
//! `ksec-edit-<pid>-<random>` on tmpfs. A process killed with SIGKILL (or a
//! power cut) cannot remove them. The process id in the name tells, later,
//! whether the process that made one is still running: a file or directory
//! of a process that is gone (or whose id now belongs to a program that is
//! not ksec) is stale, and is removed by the next ksec that writes in that
//! directory or starts (scratch directories), and reported by `check`.

use std::fs;
use std::path::{Path, PathBuf};

/// The name prefix of ksec's temporary files.
pub const TEMP_PREFIX: &str = ".ksec-";
/// The name suffix of ksec's temporary files.
pub const TEMP_SUFFIX: &str = ".tmp";
/// The name prefix of `edit`'s scratch directories.
pub const SCRATCH_PREFIX: &str = "ksec-edit-";

/// This process's tag in names: `<pid>-`.
pub fn tag() -> String {
    format!("{}-", std::process::id())
}

/// Whether process `pid` is running and is a ksec (Linux: its `comm`;
/// elsewhere: whether it exists).
pub fn ksec_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(target_os = "linux")]
    {
        match fs::read_to_string(format!("/proc/{pid}/comm")) {
            Ok(comm) => comm.trim_end().starts_with("ksec"),
            Err(_) => false,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        rustix::process::Pid::from_raw(pid as i32)
            .is_some_and(|p| rustix::process::test_kill_process(p).is_ok())
    }
}

/// The process id in a name made by [`tag`] after `prefix`.
fn pid_in(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

/// The stale temporary files in `dir`: (path, process id).
pub fn stale_temps(dir: &Path) -> Vec<(PathBuf, u32)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let name = name.to_str()?;
            if !name.ends_with(TEMP_SUFFIX) {
                return None;
            }
            let pid = pid_in(name, TEMP_PREFIX)?;
            let is_file = e.file_type().is_ok_and(|t| t.is_file());
            (is_file && !ksec_alive(pid)).then(|| (e.path(), pid))
        })
        .collect()
}

/// Removes the stale temporary files in `dir`; how many went.
pub fn remove_stale_temps(dir: &Path) -> usize {
    stale_temps(dir)
        .into_iter()
        .filter(|(p, _)| fs::remove_file(p).is_ok())
        .count()
}

/// Removes stale scratch directories of `edit` in `base` (ours only: the
/// directory is 0700, another user's cannot be read anyway); how many went.
pub fn remove_stale_scratch(base: &Path) -> usize {
    let Ok(entries) = fs::read_dir(base) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(pid) = pid_in(name, SCRATCH_PREFIX) else {
            continue;
        };
        if e.file_type().is_ok_and(|t| t.is_dir())
            && !ksec_alive(pid)
            && fs::remove_dir_all(e.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_liveness() {
        assert_eq!(pid_in(".ksec-123-abc.tmp", TEMP_PREFIX), Some(123));
        assert_eq!(pid_in(".ksec-abc.tmp", TEMP_PREFIX), None);
        assert_eq!(pid_in("ksec-edit-9-x", SCRATCH_PREFIX), Some(9));
        assert!(ksec_alive(std::process::id()));
        let dir = tempfile::tempdir().unwrap();
        // pid 1 is alive but is not ksec: its files are stale too.
        fs::write(dir.path().join(".ksec-1-x.tmp"), "clear").unwrap();
        fs::write(dir.path().join(format!(".ksec-{}x.tmp", tag())), "mine").unwrap();
        fs::write(dir.path().join("other.tmp"), "not ours").unwrap();
        assert_eq!(stale_temps(dir.path()).len(), 1);
        assert_eq!(remove_stale_temps(dir.path()), 1);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
