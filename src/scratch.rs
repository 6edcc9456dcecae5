//! The one place where clear text touches a disk: `ksec edit`'s scratch
//! file, and the editor that opens it.
//!
//! The file is mode 0600 inside a fresh 0700 directory, on tmpfs when the
//! system has one: `$XDG_RUNTIME_DIR` when set (the per-user runtime
//! directory, tmpfs on systemd machines), else `/dev/shm`, else the system
//! temporary directory with a warning. The directory goes when [`Scratch`]
//! is dropped, which covers success, errors and panics; signals are caught
//! while the scratch file exists ([`Interrupts`]) so that SIGINT, SIGTERM and
//! SIGHUP end the editor and remove it too before ksec exits with 128+signal.
//!
//! SIGKILL cannot be caught. For that a **guardian** watches: a second
//! process (`ksec __scratch-guard DIR`, started by [`Scratch::guard`]) that
//! holds the other end of a pipe from ksec and removes the directory the
//! moment the pipe closes — which the kernel does when ksec dies, however
//! it dies. It ignores the terminal's SIGINT and SIGHUP so that it outlives
//! ksec. Should both be killed at once, the directory name carries ksec's
//! process id, and the next ksec removes the directories of processes that
//! are gone ([`clean_stale`], [`crate::stale`]).

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use zeroize::Zeroizing;

use crate::error::{Error, Exit, Result};
use crate::io::io_reason;

/// A 0600 file in a fresh 0700 directory; both removed on drop.
pub struct Scratch {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    /// The guardian and our end of its pipe.
    guardian: Option<(Child, std::process::ChildStdin)>,
}

/// Removes the scratch directories of `edit` runs that are gone (killed
/// with SIGKILL together with their guardian); how many went.
pub fn clean_stale() -> usize {
    let (base, _) = base_dir();
    crate::stale::remove_stale_scratch(&base)
}

/// The guardian's work: wait until the pipe on stdin closes (ksec ended,
/// however), then remove `dir`. Only a directory named like a scratch
/// directory is removed.
pub fn guard(dir: &Path) -> Result<()> {
    use std::io::Read as _;
    let is_scratch = dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(crate::stale::SCRATCH_PREFIX));
    if !is_scratch || !dir.is_absolute() {
        return Err(Error::usage(
            "__scratch-guard takes the path of an edit scratch directory",
        ));
    }
    // The terminal's Ctrl-C and a closed terminal reach the whole process
    // group: the guardian must outlive ksec to clean up after it.
    for sig in [SIGINT, SIGHUP, SIGTERM] {
        let _ = signal_hook::flag::register(
            sig,
            std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
        );
    }
    let mut buf = [0u8; 64];
    let mut stdin = std::io::stdin().lock();
    while let Ok(n) = stdin.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
    let _ = fs::remove_dir_all(dir);
    Ok(())
}

/// Starts `program __scratch-guard DIR` with a pipe on its stdin: the
/// guardian removes `dir` when the pipe closes, that is when this process
/// ends, however it ends.
fn start_guardian(program: &Path, dir: &Path) -> Result<(Child, std::process::ChildStdin)> {
    let mut child = Command::new(program)
        .arg("__scratch-guard")
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| {
            Error::new(
                Exit::Io,
                "scratch",
                format!(
                    "cannot start the guardian of the scratch directory: {}",
                    io_reason(&e)
                ),
            )
        })?;
    let stdin = child.stdin.take().expect("piped");
    Ok((child, stdin))
}

/// Where scratch directories go, and whether that is memory-backed.
fn base_dir() -> (PathBuf, bool) {
    let usable = |p: &Path| p.is_absolute() && p.is_dir();
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| usable(p));
    let shm = Some(PathBuf::from("/dev/shm")).filter(|p| usable(p));
    let dir = runtime.or(shm).unwrap_or_else(std::env::temp_dir);
    let memory = in_memory(&dir);
    (dir, memory)
}

/// Whether `dir` is on tmpfs or ramfs (Linux); `false` elsewhere.
fn in_memory(dir: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        const TMPFS_MAGIC: i64 = 0x0102_1994;
        const RAMFS_MAGIC: i64 = 0x8584_58f6;
        rustix::fs::statfs(dir).is_ok_and(|s| {
            #[allow(clippy::unnecessary_cast)]
            let t = s.f_type as i64;
            t == TMPFS_MAGIC || t == RAMFS_MAGIC
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        false
    }
}

impl Scratch {
    /// Creates the directory and writes `content` to `name` inside it. A
    /// warning goes to `reporter` when the directory is not memory-backed.
    pub fn create(
        name: &str,
        content: &str,
        reporter: &dyn crate::report::Reporter,
    ) -> Result<Scratch> {
        let (base, memory) = base_dir();
        if !memory {
            reporter.warn(&format!(
                "no memory-backed directory (tmpfs) found; the clear text goes to {} while you edit, and is removed afterwards",
                base.display()
            ));
        }
        let fail = |what: &str, e: std::io::Error| {
            Error::new(
                Exit::Io,
                "scratch",
                format!(
                    "cannot {what} in {} for editing: {}",
                    base.display(),
                    io_reason(&e)
                ),
            )
        };
        crate::stale::remove_stale_scratch(&base);
        let prefix = format!("{}{}", crate::stale::SCRATCH_PREFIX, crate::stale::tag());
        let dir = tempfile::Builder::new()
            .prefix(&prefix)
            .permissions(fs::Permissions::from_mode(0o700))
            .tempdir_in(&base)
            .map_err(|e| fail("create a private directory", e))?;
        let path = dir.path().join(name);
        let s = Scratch {
            dir: Some(dir),
            path,
            guardian: None,
        };
        s.write(content)?;
        Ok(s)
    }

    /// Starts the guardian: `program __scratch-guard DIR` (the ksec
    /// binary), which removes the directory when this process dies, even by
    /// SIGKILL.
    pub fn guard(&mut self, program: &Path) -> Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        self.guardian = Some(start_guardian(program, dir.path())?);
        Ok(())
    }

    /// The file the editor opens.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file's content (the file is created 0600 if the editor
    /// removed it, as editors that save by renaming do).
    pub fn write(&self, content: &str) -> Result<()> {
        let fail = |e: std::io::Error| {
            Error::new(
                Exit::Io,
                "scratch",
                format!("cannot write the file to edit: {}", io_reason(&e)),
            )
        };
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(fail)?;
        f.write_all(content.as_bytes()).map_err(fail)?;
        f.sync_all().map_err(fail)
    }

    /// Reads what the editor left.
    pub fn read(&self, limit: u64) -> Result<Zeroizing<String>> {
        let source = crate::io::Source::File(self.path.clone());
        crate::io::read_text(&source, limit)
            .map(Zeroizing::new)
            .map_err(|mut f| {
                f.message = f
                    .message
                    .replace(&self.path.display().to_string(), "the edited text");
                f
            })
    }

    /// Removes the directory now (also done on drop), then lets the
    /// guardian go.
    pub fn remove(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
        if let Some((mut child, stdin)) = self.guardian.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.remove();
    }
}

/// SIGINT, SIGTERM and SIGHUP, caught (not fatal) while this lives, so that
/// the scratch file can be removed first.
pub struct Interrupts {
    signals: Signals,
}

impl Interrupts {
    /// Starts catching the signals.
    pub fn catch() -> Result<Interrupts> {
        let signals = Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(|e| {
            Error::internal(format!("cannot set up signal handling: {}", io_reason(&e)))
        })?;
        Ok(Interrupts { signals })
    }

    /// A signal received since the last call, if any (SIGTERM and SIGHUP
    /// before SIGINT).
    pub fn pending(&mut self) -> Option<i32> {
        let got: Vec<i32> = self.signals.pending().collect();
        [SIGTERM, SIGHUP, SIGINT]
            .into_iter()
            .find(|s| got.contains(s))
    }
}

/// How an editor run ended.
pub enum EditorEnd {
    /// The editor exited with this status.
    Exited(ExitStatus),
    /// ksec was asked to stop (the signal number); the editor is gone.
    Interrupted(i32),
}

/// The editor command: `$VISUAL`, then `$EDITOR`, then `vi`, split into
/// words like a shell would (`code --wait`, quoted paths).
pub fn editor_command() -> Result<Vec<String>> {
    let (var, value) = ["VISUAL", "EDITOR"]
        .into_iter()
        .find_map(|v| {
            std::env::var(v)
                .ok()
                .filter(|s| !s.trim().is_empty())
                .map(|s| (v, s))
        })
        .unwrap_or(("default", "vi".to_owned()));
    let words = shell_words::split(&value).map_err(|e| {
        Error::usage(format!("${var}: cannot split `{value}`: {e}"))
            .hint("quote it like a shell command, e.g. EDITOR=\"code --wait\"")
    })?;
    if words.is_empty() {
        return Err(Error::usage(format!("${var} is empty")));
    }
    Ok(words)
}

/// Runs the editor on `path` and waits for it. A signal to ksec is passed
/// on to the editor (SIGINT too: when it came from the terminal the editor
/// got it already, and editors take a second one in their stride). After
/// SIGTERM or SIGHUP ksec waits up to 3 s, then kills the editor; after
/// SIGINT it waits for the editor to decide: an editor that still exits
/// with success means the user went on editing and saved.
pub fn run_editor(argv: &[String], path: &Path, interrupts: &mut Interrupts) -> Result<EditorEnd> {
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .arg(path)
        .spawn()
        .map_err(|e| {
            Error::usage(format!(
                "cannot start the editor `{}`: {}",
                argv[0],
                io_reason(&e)
            ))
            .hint("set VISUAL or EDITOR to an editor that waits until you close the file, e.g. EDITOR=\"code --wait\"")
        })?;
    let mut interrupted: Option<i32> = None;
    loop {
        if let Some(sig) = interrupts.pending() {
            forward(&child, sig);
            if sig != SIGINT {
                finish(&mut child);
                return Ok(EditorEnd::Interrupted(sig));
            }
            interrupted = Some(sig);
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                return Ok(match interrupted {
                    Some(sig) if !status.success() => EditorEnd::Interrupted(sig),
                    _ => EditorEnd::Exited(status),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(25)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::internal(format!(
                    "cannot wait for the editor: {}",
                    io_reason(&e)
                )));
            }
        }
    }
}

fn forward(child: &Child, sig: i32) {
    let signal = match sig {
        SIGTERM => rustix::process::Signal::TERM,
        SIGHUP => rustix::process::Signal::HUP,
        _ => rustix::process::Signal::INT,
    };
    let _ = rustix::process::kill_process(rustix::process::Pid::from_child(child), signal);
}

/// Waits up to 3 s for the editor to end, then kills it.
fn finish(child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A fresh private directory for clear files (`ksec exec --files`): 0700,
/// on tmpfs when there is one, each file 0600; removed on drop. Named like
/// `edit`'s scratch directory, so that its guardian ([`ScratchDir::guard`])
/// and the removal of stale directories ([`clean_stale`]) cover it too.
pub struct ScratchDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    guardian: Option<(Child, std::process::ChildStdin)>,
}

impl ScratchDir {
    /// Creates the directory. A warning goes to `reporter` when it is not
    /// memory-backed.
    pub fn create(reporter: &dyn crate::report::Reporter) -> Result<ScratchDir> {
        let (base, memory) = base_dir();
        if !memory {
            reporter.warn(&format!(
                "no memory-backed directory (tmpfs) found; the clear files go to {} while the command runs, and are removed afterwards",
                base.display()
            ));
        }
        crate::stale::remove_stale_scratch(&base);
        let prefix = format!("{}{}", crate::stale::SCRATCH_PREFIX, crate::stale::tag());
        let dir = tempfile::Builder::new()
            .prefix(&prefix)
            .permissions(fs::Permissions::from_mode(0o700))
            .tempdir_in(&base)
            .map_err(|e| {
                Error::new(
                    Exit::Io,
                    "scratch",
                    format!(
                        "cannot create a private directory in {}: {}",
                        base.display(),
                        io_reason(&e)
                    ),
                )
            })?;
        let path = dir.path().to_owned();
        Ok(ScratchDir {
            dir: Some(dir),
            path,
            guardian: None,
        })
    }

    /// Starts the guardian (`program` is the ksec binary), which removes
    /// the directory when this process dies, even by SIGKILL.
    pub fn guard(&mut self, program: &Path) -> Result<()> {
        self.guardian = Some(start_guardian(program, &self.path)?);
        Ok(())
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a new 0600 file `name` (a plain file name) in the directory.
    pub fn write(&self, name: &str, content: &[u8]) -> Result<()> {
        let fail = |e: std::io::Error| {
            Error::new(
                Exit::Io,
                "scratch",
                format!(
                    "cannot write `{name}` in the private directory: {}",
                    io_reason(&e)
                ),
            )
        };
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(self.path.join(name))
            .map_err(fail)?;
        f.write_all(content).map_err(fail)?;
        f.sync_all().map_err(fail)
    }

    /// Removes the directory now (also done on drop), then lets the
    /// guardian go.
    pub fn remove(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
        if let Some((mut child, stdin)) = self.guardian.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        self.remove();
    }
}

/// How a supervised command ended.
pub enum CommandEnd {
    /// It exited with this status.
    Exited(ExitStatus),
    /// ksec was asked to stop (the signal number); the command did not
    /// end within 3 s of getting the signal too, and was killed.
    Interrupted(i32),
}

/// Runs `command` and waits for it, passing SIGTERM and SIGHUP on to it
/// (and SIGINT when standard input is not a terminal: on a terminal the
/// command got the Ctrl-C itself). After SIGTERM or SIGHUP the command has
/// 3 s to end; then it is killed. Its exit status is returned as it is, so a
/// command that handles the signal and exits decides the exit code.
pub fn supervise(command: &mut Command, interrupts: &mut Interrupts) -> Result<CommandEnd> {
    use std::io::IsTerminal as _;
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command.spawn().map_err(|e| {
        let exit = if e.kind() == std::io::ErrorKind::NotFound {
            Exit::Usage
        } else {
            Exit::Other
        };
        Error::new(
            exit,
            "exec",
            format!("cannot run `{program}`: {}", io_reason(&e)),
        )
    })?;
    let forward_int = !std::io::stdin().is_terminal();
    let mut deadline: Option<(Instant, i32)> = None;
    loop {
        if let Some(sig) = interrupts.pending() {
            if sig != SIGINT || forward_int {
                forward(&child, sig);
            }
            // SIGINT: the command decides (an interactive one may go on).
            if sig != SIGINT && deadline.is_none() {
                deadline = Some((Instant::now() + Duration::from_secs(3), sig));
            }
        }
        match child.try_wait() {
            Ok(Some(status)) => return Ok(CommandEnd::Exited(status)),
            Ok(None) => {
                if let Some((at, sig)) = deadline
                    && Instant::now() >= at
                {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Ok(CommandEnd::Interrupted(sig));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::internal(format!(
                    "cannot wait for `{program}`: {}",
                    io_reason(&e)
                )));
            }
        }
    }
}
