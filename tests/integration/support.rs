//! Shared test support: an isolated environment per test and helpers to run
//! the built binary in it.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use age::secrecy::ExposeSecret as _;
use assert_cmd::Command;
use tempfile::TempDir;

/// An isolated HOME with its own age identity. Nothing of the developer's
/// environment (keys, config) leaks in.
pub struct TestEnv {
    pub dir: TempDir,
    /// The identity file (age-keygen format).
    pub key_file: PathBuf,
    /// The identity's recipient (`age1…`).
    pub recipient: String,
}

impl TestEnv {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public().to_string();
        let key_file = dir.path().join("key.txt");
        fs::write(
            &key_file,
            format!(
                "# created: test\n# public key: {recipient}\n{}\n",
                identity.to_string().expose_secret()
            ),
        )
        .unwrap();
        // As age-keygen writes it: readable by its owner only (ksec warns
        // about identity files others can read).
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).unwrap();
        fs::create_dir_all(dir.path().join("home")).unwrap();
        TestEnv {
            dir,
            key_file,
            recipient,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a file in the test directory and returns its path.
    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, content).unwrap();
        p
    }

    pub fn read(&self, name: &str) -> String {
        fs::read_to_string(self.path(name)).unwrap()
    }

    /// `ksec` with HOME inside the test dir and the test identity as
    /// `KSEC_AGE_KEY_FILE`. The working directory is the test dir.
    pub fn ksec(&self) -> Command {
        let mut c = Command::cargo_bin("ksec").expect("ksec binary");
        c.current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path().join("home"))
            .env("KSEC_AGE_KEY_FILE", &self.key_file);
        c
    }

    /// The same as [`TestEnv::ksec`], as a plain `std::process::Command`
    /// (for real pipes between processes).
    pub fn ksec_std(&self) -> std::process::Command {
        let mut c = std::process::Command::new(ksec_path());
        c.current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path().join("home"))
            .env("KSEC_AGE_KEY_FILE", &self.key_file);
        c
    }

    /// `ksec` with no identity configured at all (fresh machine).
    pub fn ksec_bare(&self) -> Command {
        let mut c = Command::cargo_bin("ksec").expect("ksec binary");
        c.current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path().join("home"));
        c
    }

    /// Encrypts `input` (text) to the test key and returns the output.
    pub fn encrypt(&self, input: &str) -> String {
        let out = self
            .ksec()
            .args(["encrypt", "-k"])
            .arg(format!("age:{}", self.recipient))
            .write_stdin(input)
            .output()
            .unwrap();
        ok_stdout(&out)
    }

    /// Decrypts `input` (text) with the test key and returns the output.
    pub fn decrypt(&self, input: &str) -> String {
        let out = self
            .ksec()
            .arg("decrypt")
            .write_stdin(input)
            .output()
            .unwrap();
        ok_stdout(&out)
    }
}

/// Asserts success and returns stdout as text, showing stderr on failure.
pub fn ok_stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "ksec failed with {:?}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

/// The kubesec vectors and PGP test keys: `testdata/kubesec-vectors`.
pub fn vectors_dir() -> PathBuf {
    testdata().join("kubesec-vectors")
}

/// The project's own independent reader of the kubesec format (Python
/// `cryptography` + PyYAML): `tests/support/kreader.py`.
pub fn kreader() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/kreader.py")
}

/// The repository's `testdata/` directory.
pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// Lines of `a` and `b` that differ, as (line number, a, b); both must have
/// the same number of lines up to `b_extra` trailing lines in `b`.
pub fn changed_lines<'a>(a: &'a str, b: &'a str) -> Vec<(usize, &'a str, &'a str)> {
    a.split_inclusive('\n')
        .zip(b.split_inclusive('\n'))
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(i, (x, y))| (i + 1, x, y))
        .collect()
}

/// The built `ksec` binary.
pub fn ksec_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ksec"))
}

/// Lines only in `a` (removed) and only in `b` (added), as a line diff
/// would count them (multiset difference; enough for these files).
#[derive(Debug)]
pub struct LineDiff {
    pub removed: Vec<String>,
    pub added: Vec<String>,
}

pub fn diff_lines(a: &str, b: &str) -> LineDiff {
    let mut rest: Vec<&str> = b.lines().collect();
    let mut removed = Vec::new();
    for l in a.lines() {
        match rest.iter().position(|x| *x == l) {
            Some(i) => {
                rest.remove(i);
            }
            None => removed.push(l.to_owned()),
        }
    }
    LineDiff {
        removed,
        added: rest.into_iter().map(str::to_owned).collect(),
    }
}

/// A helper script in `tests/support/`.
pub fn support_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(name)
}
