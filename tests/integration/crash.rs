//! Crash safety beyond sops: SIGKILL at random moments.
//!
//! * `ksec edit` killed while the editor runs: its guardian removes the
//!   scratch directory (clear text) at once; killed together with the
//!   guardian, the next ksec removes it.
//! * A temporary file left by a killed `decrypt -i` (clear text) is
//!   reported by `check` and removed by the next ksec that writes there.
//! * `encrypt -i` and `updatekeys` of a 50-file tree, killed 100 times each
//!   at random moments: every file is the old or the new version, never
//!   torn, and no temporary file holds clear text.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{TestEnv, ksec_path, ok_stdout};

/// A small deterministic generator (xorshift), seeded per test; the seed
/// is in every failure message.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn kill9(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// A process id that is certainly not running (a child that has exited).
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

/// A private directory on tmpfs for `edit`'s scratch directories
/// (`XDG_RUNTIME_DIR`), so that the test sees exactly its own.
fn runtime_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ksec-test-run")
        .tempdir_in("/dev/shm")
        .expect("/dev/shm (tmpfs)")
}

fn scratch_dirs(base: &Path) -> Vec<PathBuf> {
    fs::read_dir(base)
        .map(|it| {
            it.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("ksec-edit-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn wait_until(what: &str, deadline: Duration, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !ok() {
        assert!(Instant::now() < end, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: correct-horse-battery-staple
";

#[test]
fn edit_killed_with_sigkill_leaves_no_clear_text() {
    let env = TestEnv::new();
    let run = runtime_dir();
    let file = env.write("s.yaml", env.encrypt(SECRET));
    // An editor that waits (its pid in a file, so the test can end it).
    let editor = env.write(
        "slow-editor.sh",
        format!(
            "#!/bin/sh\necho $$ > {}/editor.pid\nexec sleep 30\n",
            env.dir.path().display()
        ),
    );
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(&editor, fs::Permissions::from_mode(0o755)).unwrap();
    let mut rng = Rng::new();
    let seed = rng.0;
    for round in 0..20 {
        let mut child = Command::new(ksec_path())
            .current_dir(env.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", env.path("home"))
            .env("KSEC_AGE_KEY_FILE", &env.key_file)
            .env("XDG_RUNTIME_DIR", run.path())
            .env("EDITOR", &editor)
            .arg("edit")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Anywhere from before the scratch file exists to well after.
        std::thread::sleep(Duration::from_millis(rng.below(250)));
        kill9(&mut child);
        wait_until(
            &format!(
                "round {round} (seed {seed}): the scratch directory outlived ksec: {:?}",
                scratch_dirs(run.path())
            ),
            Duration::from_secs(5),
            || scratch_dirs(run.path()).is_empty(),
        );
        if let Ok(pid) = fs::read_to_string(env.path("editor.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
            let _ = fs::remove_file(env.path("editor.pid"));
        }
        assert_eq!(
            fs::read_to_string(&file)
                .unwrap()
                .lines()
                .filter(|l| l.contains("correct-horse"))
                .count(),
            0,
            "round {round}: the file was written in clear text"
        );
    }
    // Killed together with its guardian: the next ksec (any command)
    // removes the directory of the dead process.
    let stale = run.path().join(format!("ksec-edit-{}-abcdef", dead_pid()));
    fs::create_dir(&stale).unwrap();
    fs::write(stale.join("s.yaml"), SECRET).unwrap();
    let out = env
        .ksec()
        .env("XDG_RUNTIME_DIR", run.path())
        .args(["introspect"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        !stale.exists(),
        "the stale scratch directory of a dead ksec is removed"
    );
    // The directory of a ksec that is still editing is left alone.
    let mut live = Command::new(ksec_path())
        .current_dir(env.dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.path("home"))
        .env("KSEC_AGE_KEY_FILE", &env.key_file)
        .env("XDG_RUNTIME_DIR", run.path())
        .env("EDITOR", &editor)
        .arg("edit")
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        "the live edit's scratch directory",
        Duration::from_secs(10),
        || !scratch_dirs(run.path()).is_empty(),
    );
    let mine = scratch_dirs(run.path());
    let out = env
        .ksec()
        .env("XDG_RUNTIME_DIR", run.path())
        .args(["introspect"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        scratch_dirs(run.path()),
        mine,
        "a running edit keeps its directory"
    );
    // SIGTERM: ksec ends the editor and removes the directory itself.
    let _ = Command::new("kill").arg(live.id().to_string()).status();
    let _ = live.wait();
    assert!(scratch_dirs(run.path()).is_empty());
}

#[test]
fn stale_temporary_files_are_reported_and_removed() {
    let env = TestEnv::new();
    fs::create_dir_all(env.path("k8s")).unwrap();
    let file = env.write("k8s/db.yaml", env.encrypt(SECRET));
    let stale = env.path(&format!("k8s/.ksec-{}-x1y2z3.tmp", dead_pid()));
    fs::write(&stale, SECRET).unwrap();
    let out = env.ksec().args(["check", "k8s"]).output().unwrap();
    assert_eq!(out.status.code(), Some(8));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("temporary file of an interrupted ksec run"),
        "{stdout}"
    );
    assert!(!stdout.contains("correct-horse"), "{stdout}");
    // The next write in that directory removes it.
    ok_stdout(
        &env.ksec()
            .args(["encrypt", "-i"])
            .arg(&file)
            .arg("--rotate")
            .output()
            .unwrap(),
    );
    assert!(!stale.exists());
    let out = env.ksec().args(["check", "k8s"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A real `decrypt -i` of a large file killed at random moments: the
    // file is the encrypted or the decrypted version, and what the kill
    // left behind goes with the next write.
    let big: String = (0..4000)
        .map(|i| format!("  key{i}: value-{i}-correct-horse-battery-staple-{i}\n"))
        .collect();
    let big_secret =
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: big\nstringData:\n{big}");
    let enc = env.encrypt(&big_secret);
    let mut rng = Rng::new();
    let seed = rng.0;
    for round in 0..10 {
        let path = env.write("k8s/big.yaml", &enc);
        let mut child = env
            .ksec_std()
            .args(["decrypt", "-q", "-i"])
            .arg(&path)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        kill9(&mut child);
        let now = fs::read_to_string(&path).unwrap();
        assert!(
            now == enc || now == big_secret,
            "round {round} (seed {seed}): torn file"
        );
        ok_stdout(
            &env.ksec()
                .args(["encrypt", "-i", "--rotate"])
                .arg(&file)
                .output()
                .unwrap(),
        );
        let left: Vec<PathBuf> = fs::read_dir(env.path("k8s"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().unwrap().to_str().unwrap().ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "round {round} (seed {seed}): {left:?}");
    }
}

/// A 50-file tree of clear Secrets.
fn tree(env: &TestEnv, dir: &str) -> Vec<(PathBuf, String)> {
    fs::create_dir_all(env.path(dir)).unwrap();
    (0..50)
        .map(|i| {
            let text = format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s{i}\nstringData:\n  a: clear-value-{i}-aaaaaaaa\n  b: clear-value-{i}-bbbbbbbb\n"
            );
            (env.write(&format!("{dir}/s{i:02}.yaml"), &text), text)
        })
        .collect()
}

fn temps_in(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(".ksec-")
        })
        .collect()
}

#[test]
fn encrypt_and_updatekeys_of_a_tree_killed_at_random_moments() {
    let env = TestEnv::new();
    let other = {
        let id = age::x25519::Identity::generate();
        id.to_public().to_string()
    };
    let mut rng = Rng::new();
    let seed = rng.0;
    // How long a whole run takes here, to spread the kills over it.
    let originals = tree(&env, "probe");
    let t0 = Instant::now();
    ok_stdout(
        &env.ksec()
            .args(["encrypt", "-i", "probe"])
            .output()
            .unwrap(),
    );
    let span = (t0.elapsed().as_millis() as u64 * 3 / 2).max(50);
    drop(originals);

    for round in 0..100 {
        let dir = format!("t{round}");
        let files = tree(&env, &dir);
        let mut child = env
            .ksec_std()
            .args(["encrypt", "-i", &dir])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(span)));
        kill9(&mut child);
        for (path, clear) in &files {
            let now = fs::read_to_string(path).unwrap();
            if now != *clear {
                // The new version: complete, and decrypting to the same text.
                assert!(
                    !now.contains("clear-value"),
                    "round {round} (seed {seed}): torn {}",
                    path.display()
                );
                assert_eq!(env.decrypt(&now), *clear, "round {round} (seed {seed})");
            }
        }
        for t in temps_in(&env.path(&dir)) {
            let text = fs::read_to_string(&t).unwrap_or_default();
            assert!(
                !text.contains("clear-value"),
                "round {round} (seed {seed}): clear text in {}",
                t.display()
            );
        }
        // The next run finishes the job and removes what the kill left.
        ok_stdout(&env.ksec().args(["encrypt", "-i", &dir]).output().unwrap());
        assert!(
            temps_in(&env.path(&dir)).is_empty(),
            "round {round} (seed {seed})"
        );
        fs::remove_dir_all(env.path(&dir)).unwrap();
    }

    // updatekeys: a rule adds a key to 50 encrypted files.
    for round in 0..100 {
        let dir = format!("u{round}");
        let files = tree(&env, &dir);
        ok_stdout(&env.ksec().args(["encrypt", "-i", &dir]).output().unwrap());
        let before: Vec<String> = files
            .iter()
            .map(|(p, _)| fs::read_to_string(p).unwrap())
            .collect();
        env.write(
            &format!("{dir}/.ksec.yaml"),
            format!(
                "rules:\n  - path: \"*.yaml\"\n    keys: [age:{}, age:{other}]\n",
                env.recipient
            ),
        );
        let mut child = env
            .ksec_std()
            .args(["updatekeys", "-y", &dir])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(span)));
        kill9(&mut child);
        for ((path, clear), old) in files.iter().zip(&before) {
            let now = fs::read_to_string(path).unwrap();
            if now != *old {
                assert!(
                    now.contains(&other),
                    "round {round} (seed {seed}): torn {}",
                    path.display()
                );
                assert_eq!(env.decrypt(&now), *clear, "round {round} (seed {seed})");
            }
        }
        for t in temps_in(&env.path(&dir)) {
            let text = fs::read_to_string(&t).unwrap_or_default();
            assert!(
                !text.contains("clear-value"),
                "round {round} (seed {seed}): clear text in {}",
                t.display()
            );
        }
        ok_stdout(
            &env.ksec()
                .args(["updatekeys", "-y", &dir])
                .output()
                .unwrap(),
        );
        assert!(
            temps_in(&env.path(&dir)).is_empty(),
            "round {round} (seed {seed})"
        );
        fs::remove_dir_all(env.path(&dir)).unwrap();
    }
}
