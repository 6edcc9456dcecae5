//! Interoperability with the real `age` CLI (`age`, `age-keygen`) and with
//! the project's independent reader `tests/support/kreader.py`.
//!
//! The data key of a file ksec wrote is recovered only through the age CLI
//! (`base64 -d | age -d -i KEYS`), never through ksec, and handed to
//! kreader.py, which decrypts every value and checks the MAC on its own.
//!
//! These tests need `age`, `age-keygen` and `python3` with `cryptography` and
//! `PyYAML`. When one is missing they fail with a message saying what to
//! install; they never skip silently.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::support::{self, TestEnv, ok_stdout};

// ---------------------------------------------------------------------------
// Tools

/// Runs an external tool, failing the test with install advice when it is
/// not on PATH.
fn run_tool(cmd: &mut Command, install: &str) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{program}` is not installed or not on PATH; these interop tests require it \
             ({install})"
        ),
        Err(e) => panic!("cannot run `{program}`: {e}"),
    }
}

const AGE_INSTALL: &str = "install the age CLI, e.g. `apt-get install -y age`";

fn age() -> Command {
    Command::new("age")
}

fn age_keygen() -> Command {
    Command::new("age-keygen")
}

/// Asserts that `age` and `age-keygen` are installed.
fn require_age() {
    for bin in ["age", "age-keygen"] {
        let out = run_tool(Command::new(bin).arg("--version"), AGE_INSTALL);
        assert!(
            out.status.success(),
            "`{bin} --version` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Asserts that python3 can import what kreader.py needs; returns its path.
fn require_kreader() -> PathBuf {
    let install = "install python3 with `pip install cryptography pyyaml`";
    let out = run_tool(
        Command::new("python3").args(["-c", "import cryptography, yaml"]),
        install,
    );
    assert!(
        out.status.success(),
        "python3 cannot import cryptography and yaml, which kreader.py needs ({install}):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = support::kreader();
    assert!(path.is_file(), "{} not found", path.display());
    path
}

/// Creates an identity with `age-keygen -o FILE` and returns its recipient
/// (read back with `age-keygen -y`).
fn age_keygen_file(path: &Path) -> String {
    let out = run_tool(age_keygen().arg("-o").arg(path), AGE_INSTALL);
    assert!(
        out.status.success(),
        "age-keygen -o failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    recipient_of(path)
}

/// `age-keygen -y FILE`: the recipient of an identity file, as the age CLI sees it.
fn recipient_of(path: &Path) -> String {
    let out = run_tool(age_keygen().arg("-y").arg(path), AGE_INSTALL);
    assert!(
        out.status.success(),
        "age-keygen -y {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let r = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(r.starts_with("age1"), "unexpected recipient {r:?}");
    r
}

// ---------------------------------------------------------------------------
// Footer handling

/// The `# kubesec:age:<recipient>:<b64>` line of an encrypted manifest, as
/// (recipient, blob bytes). Exactly one such line is expected.
pub(crate) fn age_key_line(encrypted: &str) -> (String, Vec<u8>) {
    let lines: Vec<&str> = encrypted
        .lines()
        .filter(|l| l.starts_with("# kubesec:age:"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one age key line in:\n{encrypted}"
    );
    let rest = lines[0].trim_end_matches('\r')["# kubesec:age:".len()..].to_owned();
    let (recipient, b64) = rest
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("malformed key line {:?}", lines[0]));
    let blob = B64
        .decode(b64)
        .unwrap_or_else(|e| panic!("key line blob is not standard base64: {e}"));
    (recipient.to_owned(), blob)
}

/// Recovers the data key with the age CLI: `age -d -i IDENTITY` on the blob.
pub(crate) fn unwrap_with_age_cli(dir: &Path, blob: &[u8], identity: &Path) -> Vec<u8> {
    let blob_path = dir.join("dek.age");
    fs::write(&blob_path, blob).unwrap();
    let out = run_tool(
        age().arg("-d").arg("-i").arg(identity).arg(&blob_path),
        AGE_INSTALL,
    );
    assert!(
        out.status.success(),
        "age -d failed on the key line's blob: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs kreader.py on `file` with the data key; returns its stdout.
pub(crate) fn kreader(file: &Path, dek: &[u8]) -> String {
    let script = require_kreader();
    let out = run_tool(
        Command::new("python3")
            .arg(&script)
            .arg("--key")
            .arg(hex::encode(dek))
            .arg(file),
        "python3",
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("MAC OK"),
        "kreader.py rejected {} (exit {:?}):\nstdout:\n{stdout}\nstderr:\n{}",
        file.display(),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Encrypts `input` with ksec to the test key, recovers the data key with the
/// age CLI only, and has kreader.py check every value and the MAC. Returns
/// kreader's output.
fn encrypt_and_verify_independently(input: &str, expect_version: u8) -> String {
    require_age();
    require_kreader();
    let env = TestEnv::new();
    let encrypted = env.encrypt(input);
    let file = env.write("encrypted.yaml", &encrypted);

    let (recipient, blob) = age_key_line(&encrypted);
    assert_eq!(recipient, env.recipient, "key line names another recipient");
    assert!(
        blob.starts_with(b"age-encryption.org/v1\n"),
        "the blob is not a binary age file"
    );
    let dek = unwrap_with_age_cli(env.dir.path(), &blob, &env.key_file);
    assert_eq!(
        dek.len(),
        32,
        "the age payload is {} bytes, expected a 32-byte data key",
        dek.len()
    );

    let report = kreader(&file, &dek);
    assert!(
        report.starts_with(&format!("version {expect_version} ")),
        "kreader saw another format version:\n{report}"
    );
    // ksec itself decrypts the file back to the same values (the quoting of
    // a value may change: the clear text is re-rendered from the token).
    assert_eq!(clear_values(&env.decrypt(&encrypted)), clear_values(input));
    report
}

/// `(section, key, value)` of every Secret value in a manifest, after YAML parsing.
fn clear_values(text: &str) -> Vec<(&'static str, String, String)> {
    ksec::pipeline::locate(text)
        .expect("valid YAML")
        .iter()
        .flat_map(|d| &d.sites)
        .map(|s| {
            let (k, v) = (s.key(text), s.value(text));
            (s.section.as_str(), k.to_owned(), v.to_owned())
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn interop_age_kreader_accepts_testdata_secret() {
    // testdata/secret.yaml has both sections, comments and a block scalar.
    let input = fs::read_to_string(support::testdata().join("secret.yaml")).unwrap();
    let report = encrypt_and_verify_independently(&input, 4);
    assert!(report.contains("'username': 'YWRtaW4='"), "{report}");
    assert!(
        report.contains("'password': 'czNjcjN0LXBAc3N3MHJkIQ=='"),
        "{report}"
    );
    assert!(
        report.contains("'config.yaml': 'host: db.internal\\nport: 5432\\n'"),
        "{report}"
    );
}

#[test]
fn interop_age_kreader_accepts_string_data_only() {
    let input = "\
apiVersion: v1
kind: Secret
metadata:
  name: sd-only
stringData:
  plain: hello
  emoji: héllo wörld
  empty: \"\"
  long: \"0123456789012345678901234567890123456789012345678901234567890123456789\"
";
    let report = encrypt_and_verify_independently(input, 4);
    assert!(report.contains("data {}"), "{report}");
    assert!(report.contains("'plain': 'hello'"), "{report}");
    assert!(report.contains("'empty': ''"), "{report}");
}

#[test]
fn interop_age_kreader_accepts_both_sections() {
    // Padding edge cases in `data` (empty, exactly 48, 128 → 144) next to
    // `stringData`, with keys out of byte order to exercise the MAC's sort.
    let input = "\
apiVersion: v1
kind: Secret
metadata:
  name: both
  namespace: ns
type: Opaque
data:
  zeta: YWRtaW4=
  empty: \"\"
  exactly48: MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6
  Upper.txt: ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj9AQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpbXF1eX2BhYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ent8fX4K
stringData:
  b: two
  a: one
";
    let report = encrypt_and_verify_independently(input, 4);
    assert!(report.contains("'zeta': 'YWRtaW4='"), "{report}");
    assert!(report.contains("'a': 'one'"), "{report}");
}

#[test]
fn interop_age_kreader_accepts_data_only_vector_input() {
    // The kubesec vectors' own input (v3: no stringData).
    let input =
        fs::read_to_string(support::vectors_dir().join("input").join("secret.yaml")).unwrap();
    let report = encrypt_and_verify_independently(&input, 3);
    assert!(report.contains("stringData {}"), "{report}");
}

#[test]
fn interop_age_keygen_identity_file_works_with_ksec() {
    require_age();
    let env = TestEnv::new();
    let id_file = env.path("age-keygen.txt");
    let recipient = age_keygen_file(&id_file);
    let input = fs::read_to_string(support::testdata().join("secret.yaml")).unwrap();

    // Encrypt and decrypt with KSEC_AGE_KEY_FILE naming the age-keygen file.
    let out = env
        .ksec_bare()
        .env("KSEC_AGE_KEY_FILE", &id_file)
        .args(["encrypt", "-k"])
        .arg(format!("age:{recipient}"))
        .write_stdin(input.as_str())
        .output()
        .unwrap();
    let encrypted = ok_stdout(&out);
    assert_eq!(age_key_line(&encrypted).0, recipient);
    let out = env
        .ksec_bare()
        .env("KSEC_AGE_KEY_FILE", &id_file)
        .arg("decrypt")
        .write_stdin(encrypted.as_str())
        .output()
        .unwrap();
    assert_eq!(ok_stdout(&out), input);

    // The key text in KSEC_AGE_KEY, as `KSEC_AGE_KEY="$(cat FILE)"` sets it
    // (command substitution drops the final newline).
    let key_text = fs::read_to_string(&id_file).unwrap();
    let out = env
        .ksec_bare()
        .env("KSEC_AGE_KEY", key_text.trim_end_matches('\n'))
        .arg("decrypt")
        .write_stdin(encrypted.as_str())
        .output()
        .unwrap();
    assert_eq!(ok_stdout(&out), input);

    // And the age CLI opens the key line with the same file.
    let dek = unwrap_with_age_cli(env.dir.path(), &age_key_line(&encrypted).1, &id_file);
    assert_eq!(dek.len(), 32);
}

#[test]
fn interop_age_ksec_keygen_file_is_accepted_by_age_cli() {
    require_age();
    let env = TestEnv::new();
    let new_dir = env.path("fresh");
    let parent = new_dir.join("age");
    let key_file = parent.join("keys.txt");
    assert!(!new_dir.exists());

    let out = env
        .ksec_bare()
        .env("KSEC_AGE_KEY_FILE", &key_file)
        .arg("keygen")
        .output()
        .unwrap();
    let printed = ok_stdout(&out);
    let recipient = printed.trim().to_owned();
    assert_eq!(printed, format!("{recipient}\n"), "keygen prints one line");
    assert!(recipient.starts_with("age1"), "{printed:?}");

    // Permissions: the file 0600, each newly created directory 0700.
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&key_file), 0o600, "identity file mode");
    assert_eq!(mode(&parent), 0o700, "new parent directory mode");
    assert_eq!(mode(&new_dir), 0o700, "new grandparent directory mode");

    // The age CLI reads the file and derives the same recipient.
    assert_eq!(recipient_of(&key_file), recipient);

    // age -e -r <printed recipient> | age -d -i <file> round-trips.
    let plain = env.write("msg.txt", "interop message\n");
    let ct = env.path("msg.age");
    let out = run_tool(
        age()
            .arg("-e")
            .arg("-r")
            .arg(&recipient)
            .arg("-o")
            .arg(&ct)
            .arg(&plain),
        AGE_INSTALL,
    );
    assert!(
        out.status.success(),
        "age -e: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_tool(
        age().arg("-d").arg("-i").arg(&key_file).arg(&ct),
        AGE_INSTALL,
    );
    assert!(
        out.status.success(),
        "age -d -i <ksec keygen file>: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"interop message\n");

    // A second keygen refuses with exit 4 and leaves the file alone.
    let before = fs::read(&key_file).unwrap();
    let out = env
        .ksec_bare()
        .env("KSEC_AGE_KEY_FILE", &key_file)
        .arg("keygen")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "second keygen: stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "second keygen printed to stdout");
    assert_eq!(fs::read(&key_file).unwrap(), before, "identity changed");
    assert_eq!(mode(&key_file), 0o600);
}

#[test]
fn interop_age_wrong_identity_fails_with_exit_6() {
    require_age();
    let env = TestEnv::new();
    let input = fs::read_to_string(support::testdata().join("secret.yaml")).unwrap();
    let encrypted = env.encrypt(&input);
    let file = env.write("encrypted.yaml", &encrypted);

    // An unrelated identity made by the age CLI.
    let other = env.path("other.txt");
    let other_recipient = age_keygen_file(&other);
    assert_ne!(other_recipient, env.recipient);

    for (how, mut cmd) in [
        ("KSEC_AGE_KEY_FILE", {
            let mut c = env.ksec_bare();
            c.env("KSEC_AGE_KEY_FILE", &other);
            c
        }),
        ("KSEC_AGE_KEY", {
            let mut c = env.ksec_bare();
            c.env("KSEC_AGE_KEY", fs::read_to_string(&other).unwrap());
            c
        }),
    ] {
        let out = cmd
            .arg("decrypt")
            .arg(&file)
            .write_stdin("")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(6),
            "{how}: expected exit 6; stderr:\n{stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "{how}: something reached stdout: {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            stderr.contains(&env.recipient),
            "{how}: stderr does not name the file's recipient {}:\n{stderr}",
            env.recipient
        );
    }

    // The age CLI agrees that this identity cannot open the key line.
    let blob_path = env.write("dek.age", age_key_line(&encrypted).1);
    let out = run_tool(
        age().arg("-d").arg("-i").arg(&other).arg(&blob_path),
        AGE_INSTALL,
    );
    assert!(!out.status.success(), "age -d opened it with another key");
    assert!(out.stdout.is_empty());
}
