//! SealedSecrets (issue 14): `ksec seal`, `unseal`, `reseal` against
//! independent implementations — PyPI `kubesealpy` and a reference written
//! with Python `cryptography` (`tests/support/sealpeer.py`) — with
//! controller keys and certificates made by `openssl` in the test, and the
//! reference SealedSecrets checked in under `testdata/sealed/`.
//!
//! Needs `openssl` and `python3` with `cryptography`, `PyYAML` and
//! `kubesealpy` (scripts/install-test-tools installs them); fails, never
//! skips, without them.

mod interop;
mod refusals;
mod workflows;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use crate::support::{TestEnv, testdata};

const INSTALL: &str =
    "scripts/install-test-tools installs openssl and python3's cryptography, PyYAML and kubesealpy";

/// Runs a tool, failing the test with install advice when it is missing.
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`{program}` is not on PATH; these tests need it ({INSTALL})")
        }
        Err(e) => panic!("cannot run `{program}`: {e}"),
    };
    if let Some(input) = stdin {
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Asserts success, showing stderr otherwise.
pub fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn openssl(args: &[&str]) {
    let out = run(Command::new("openssl").args(args), None);
    ok(&out, &format!("openssl {}", args.join(" ")));
}

/// A sealed-secrets controller's key material, as the tests use it.
pub struct Controller {
    /// RSA private key, PKCS#8 PEM (what openssl 3 writes).
    pub key: PathBuf,
    /// The same key, PKCS#1 PEM (what the controller writes).
    pub key_pkcs1: PathBuf,
    /// Its self-signed certificate.
    pub cert: PathBuf,
    /// The key backup: `kubectl get secret -n kube-system -l
    /// sealedsecrets.bitnami.com/sealed-secrets-key -o yaml`.
    pub backup: PathBuf,
    /// Key size.
    pub bits: usize,
}

/// Makes a controller key and certificate with openssl, as the
/// sealed-secrets README shows for bring-your-own keys.
fn make_controller(dir: &Path, name: &str, bits: usize) -> Controller {
    fs::create_dir_all(dir).unwrap();
    let p = |s: &str| dir.join(format!("{name}-{s}"));
    let (key, key1, cert, backup) = (
        p("tls.key"),
        p("tls-pkcs1.key"),
        p("tls.crt"),
        p("backup.yaml"),
    );
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        &format!("rsa:{bits}"),
        "-nodes",
        "-sha256",
        "-days",
        "3650",
        "-subj",
        "/CN=sealed-secret/O=sealed-secret",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
    openssl(&[
        "rsa",
        "-in",
        key.to_str().unwrap(),
        "-traditional",
        "-out",
        key1.to_str().unwrap(),
    ]);
    let crt = B64.encode(fs::read(&cert).unwrap());
    let k1 = B64.encode(fs::read(&key1).unwrap());
    fs::write(
        &backup,
        format!(
            "apiVersion: v1\nitems:\n- apiVersion: v1\n  data:\n    tls.crt: {crt}\n    tls.key: {k1}\n  kind: Secret\n  metadata:\n    \
creationTimestamp: \"2026-11-30T19:56:52Z\"\n    generateName: sealed-secrets-key\n    labels:\n      \
sealedsecrets.bitnami.com/sealed-secrets-key: active\n    name: sealed-secrets-key{name}\n    namespace: kube-system\n  \
type: kubernetes.io/tls\nkind: List\nmetadata:\n  resourceVersion: \"\"\n"
        ),
    )
    .unwrap();
    Controller {
        key,
        key_pkcs1: key1,
        cert,
        backup,
        bits,
    }
}

/// Where this run's controller keys live: the target directory's scratch
/// space (test-only keys, made fresh by every run).
fn keys_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sealed-controllers");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// The controller of most tests: RSA-4096, made by openssl once per run.
pub fn controller() -> &'static Controller {
    static C: OnceLock<Controller> = OnceLock::new();
    C.get_or_init(|| make_controller(keys_dir(), "a", 4096))
}

/// A second controller (its key after a rotation, or another cluster's).
pub fn other_controller() -> &'static Controller {
    static C: OnceLock<Controller> = OnceLock::new();
    C.get_or_init(|| make_controller(keys_dir(), "b", 4096))
}

/// A 2048-bit controller (kubeseal's key size before 0.9).
pub fn small_controller() -> &'static Controller {
    static C: OnceLock<Controller> = OnceLock::new();
    C.get_or_init(|| make_controller(keys_dir(), "c", 2048))
}

/// `python3 tests/support/sealpeer.py ARGS…`.
pub fn peer(args: &[&str], stdin: Option<&str>) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/sealpeer.py");
    run(
        Command::new("python3").arg(script).args(args),
        stdin.map(str::as_bytes),
    )
}

/// Opens every SealedSecret of `file` with the reference (`ref-open`) or
/// kubesealpy (`kubesealpy-open`): `{"ns/name": {"values": {key: base64}, …}}`.
pub fn peer_open(how: &str, key: &Path, file: &Path) -> Value {
    let out = peer(&[how, key.to_str().unwrap(), file.to_str().unwrap()], None);
    serde_json::from_str(&ok(&out, how)).unwrap()
}

/// The values of the fixture Secret ([`secret_yaml`]), as the controller
/// stores them: base64 of the bytes.
pub fn fixture_values() -> Value {
    serde_json::json!({
        "binary": B64.encode([0u8, 1, 2, 3, 4, 5, 0xff]),
        "password": B64.encode("s3cr3t"),
        "unicode": B64.encode("héllo ☃"),
        "empty": "",
        "username": B64.encode("root"),
    })
}

/// A Secret with what kubeseal must handle: binary `data`, UTF-8 and empty
/// `stringData` (which wins over `data` for `username`), labels,
/// annotations, server fields and a last-applied copy that must not reach
/// the template. `scope` adds the scope annotation.
pub fn secret_yaml(name: &str, namespace: Option<&str>, scope: Option<&str>) -> String {
    let ns = namespace
        .map(|n| format!("  namespace: {n}\n"))
        .unwrap_or_default();
    let scope = scope
        .map(|s| format!("    sealedsecrets.bitnami.com/{s}: \"true\"\n"))
        .unwrap_or_default();
    format!(
        "# the database credentials\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n{ns}  labels:\n    app: db\n  \
annotations:\n    owner: team-a\n{scope}    kubectl.kubernetes.io/last-applied-configuration: |\n      \
{{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"data\":{{\"password\":\"czNjcjN0\"}}}}\n  \
uid: 3e9c0c4e-7b7e-4d5e-9d7e-1d2f3a4b5c6d\n  resourceVersion: \"42\"\n  creationTimestamp: \"2026-01-01T00:00:00Z\"\n\
type: Opaque\ndata:\n  binary: AAECAwQF/w==\n  password: czNjcjN0\n  username: YWRtaW4=\nstringData:\n  unicode: héllo ☃\n  \
empty: \"\"\n  username: root\n"
    )
}

/// `ksec seal --cert CERT ARGS…` in `env`, stdin `input`.
pub fn seal(env: &TestEnv, cert: &Path, args: &[&str], input: &str) -> Output {
    env.ksec()
        .arg("seal")
        .arg("--cert")
        .arg(cert)
        .args(args)
        .write_stdin(input)
        .output()
        .unwrap()
}

/// `ksec unseal --recovery-key KEY ARGS…` in `env`, stdin `input`.
pub fn unseal(env: &TestEnv, key: &Path, args: &[&str], input: &str) -> Output {
    env.ksec()
        .args(["unseal", "-q", "--recovery-key"])
        .arg(key)
        .args(args)
        .write_stdin(input)
        .output()
        .unwrap()
}

/// The `data` of every Secret of a clear stream, `{"ns/name": {key: base64}}`.
pub fn secret_data(text: &str) -> Value {
    let out = run(
        Command::new("python3").args([
            "-c",
            "import sys, json, yaml\nout = {}\nfor d in yaml.safe_load_all(sys.stdin):\n    \
if not d: continue\n    items = d.get('items') if d.get('kind') == 'List' else [d]\n    \
for i in items or []:\n        if i.get('kind') == 'Secret':\n            m = i['metadata']\n            \
out[m.get('namespace', '') + '/' + m['name']] = i.get('data') or {}\nprint(json.dumps(out, sort_keys=True))",
        ]),
        Some(text.as_bytes()),
    );
    serde_json::from_str(&ok(&out, "reading Secrets with PyYAML")).unwrap()
}

/// Parses a YAML (or JSON) stream with PyYAML into JSON documents.
pub fn yaml_docs(text: &str) -> Vec<Value> {
    let out = run(
        Command::new("python3").args([
            "-c",
            "import sys, json, yaml\nprint(json.dumps([d for d in yaml.safe_load_all(sys.stdin)]))",
        ]),
        Some(text.as_bytes()),
    );
    serde_json::from_str(&ok(&out, "PyYAML")).unwrap()
}

/// The checked-in reference material: `testdata/sealed/NAME`.
pub fn sample(name: &str) -> PathBuf {
    testdata().join("sealed").join(name)
}

/// The values every file of `testdata/sealed` holds.
pub fn sample_values() -> Value {
    serde_json::json!({
        "foo": B64.encode("bar"),
        "binary": B64.encode((0u8..=255).collect::<Vec<u8>>()),
        "empty": "",
        "unicode": B64.encode("héllo ☃"),
    })
}

/// Asserts a refusal: exit code, a message containing `needle`, nothing on
/// stdout.
pub fn refused(out: &Output, code: i32, needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}\nstdout:\n{}\nstderr:\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty(), "stdout must be empty on a refusal");
    assert!(
        stderr.contains(needle),
        "stderr does not mention {needle:?}:\n{stderr}"
    );
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("ksec: error:"))
            .count(),
        1,
        "one error line:\n{stderr}"
    );
    stderr
}
