//! `ksec create` and `ksec patch`: golden outputs (ciphertexts masked),
//! minimal diffs, values from files and standard input, refusals.

use std::fs;
use std::path::PathBuf;

use crate::support::{TestEnv, diff_lines, ok_stdout, testdata};

/// Replaces what is random in an encrypted file (tokens, wrapped keys, MAC,
/// the rotation time and the test recipient) by placeholders.
fn mask(text: &str, recipient: &str) -> String {
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let masked = if let Some(rest) = body.strip_prefix("# kubesec:mac:") {
            let _ = rest;
            "# kubesec:mac:<mac>".to_owned()
        } else if body.starts_with("# ksec:rotated:") {
            "# ksec:rotated:<time>".to_owned()
        } else if body.starts_with("# ksec:bind:") {
            "# ksec:bind:<binding>".to_owned()
        } else if let Some(rest) = body.strip_prefix("# kubesec:age:") {
            let id = rest.rsplit_once(':').unwrap().0;
            assert_eq!(id, recipient);
            "# kubesec:age:<recipient>:<wrapped data key>".to_owned()
        } else {
            match body.split_once(": ") {
                Some((k, v))
                    if ksec::formats::kubesec::codec::looks_encrypted(v.trim_matches('"')) =>
                {
                    format!("{k}: <ciphertext>")
                }
                _ => body.to_owned(),
            }
        };
        out.push_str(&masked);
        out.push_str(nl);
    }
    out
}

/// Compares with `testdata/golden/NAME`; `KSEC_BLESS=1` rewrites it.
fn golden(name: &str, actual: &str) {
    let path: PathBuf = testdata().join("golden").join(name);
    if std::env::var_os("KSEC_BLESS").is_some() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (KSEC_BLESS=1 writes it)", path.display()));
    assert_eq!(
        actual,
        expected,
        "differs from {} (KSEC_BLESS=1 rewrites it)",
        path.display()
    );
}

fn create_args(env: &TestEnv) -> Vec<String> {
    env.write("file.txt", "line1\nline2\n");
    [
        "create",
        "app-secret",
        "-k",
        &format!("age:{}", env.recipient),
        "-d",
        "user=admin",
        "-d",
        "file:file.txt",
        "-d",
        "file:renamed.txt=file.txt",
        "-d",
        "password=-",
        "-s",
        "plain=hello",
        "-s",
        "emoji=héllo wörld",
        "-s",
        "port=5432",
        "-a",
        "note=made by ksec",
        "-l",
        "app=demo",
        "-m",
        "namespace=ns1",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

#[test]
fn create_golden() {
    let env = TestEnv::new();
    let out = env
        .ksec()
        .args(create_args(&env))
        .write_stdin("s3cr3t from stdin")
        .output()
        .unwrap();
    let enc = ok_stdout(&out);
    golden("create.enc.yaml", &mask(&enc, &env.recipient));
    golden("create.dec.yaml", &env.decrypt(&enc));
    let dec_x = ok_stdout(
        &env.ksec()
            .args(["decrypt", "-x"])
            .write_stdin(enc.clone())
            .output()
            .unwrap(),
    );
    assert!(dec_x.contains("  password: s3cr3t from stdin\n"), "{dec_x}");
    assert!(
        dec_x.contains("  file.txt: |\n    line1\n    line2\n"),
        "{dec_x}"
    );
    // The secret from stdin never shows in argv or messages.
    assert!(!String::from_utf8_lossy(&out.stderr).contains("s3cr3t"));
}

#[test]
fn create_output_file_and_force() {
    let env = TestEnv::new();
    let key = format!("age:{}", env.recipient);
    ok_stdout(
        &env.ksec()
            .args(["create", "a", "-k", &key, "-d", "x=1", "-o", "a.yaml"])
            .output()
            .unwrap(),
    );
    let first = env.read("a.yaml");
    assert!(env.decrypt(&first).contains("  x: MQ==\n"));
    let out = env
        .ksec()
        .args(["create", "a", "-k", &key, "-d", "x=2", "-o", "a.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(env.read("a.yaml"), first);
    ok_stdout(
        &env.ksec()
            .args([
                "create", "a", "-k", &key, "-d", "x=2", "-o", "a.yaml", "--force",
            ])
            .output()
            .unwrap(),
    );
    assert!(env.decrypt(&env.read("a.yaml")).contains("  x: Mg==\n"));
}

#[test]
fn create_and_patch_refusals() {
    let env = TestEnv::new();
    let refuse = |args: &[&str], code: i32, needle: &str| {
        let out = env.ksec().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
        assert!(
            !err.contains("hunter2"),
            "a value leaked into a message: {err}"
        );
    };
    refuse(
        &["create", "a", "-d", "bad key=hunter2"],
        2,
        "not a valid Secret key",
    );
    refuse(
        &["create", "a", "-d", "k/x=hunter2"],
        2,
        "not a valid Secret key",
    );
    refuse(&["create", "a", "-d", "novalue"], 2, "KEY=VALUE");
    refuse(&["create", "a", "-d", "~gone"], 2, "only `patch`");
    refuse(
        &["create", "a", "-d", "a=-", "-s", "b=-"],
        2,
        "standard input",
    );
    refuse(
        &["create", "a", "-m", "team=x"],
        2,
        "only name and namespace",
    );
    refuse(&["create", "a", "-m", "name=b"], 2, "NAME argument");
    refuse(&["create", "a", "-d", "file:missing.txt"], 7, "missing.txt");
    env.write("bin", [0xff, 0xfe, 0x00]);
    refuse(&["create", "a", "-s", "file:bin"], 3, "UTF-8");
    refuse(&["patch", "nothing.yaml", "-d", "a=b"], 7, "nothing.yaml");
    let two = env.encrypt(&format!(
        "{s}---\n{s}",
        s = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\ndata:\n  x: eA==\n"
    ));
    env.write("two.yaml", two);
    refuse(&["patch", "two.yaml", "-d", "a=b"], 4, "2 Secret documents");
}

const INPUT: &str = "\
# the app's database credentials
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
  labels:
    app: db # owned by the db team
type: Opaque
data:
  username: YWRtaW4=
  password: czNjcjN0
  empty: \"\"
stringData:
  note: hello world
";

#[test]
fn patch_golden_and_minimal() {
    let env = TestEnv::new();
    let enc = env.encrypt(INPUT);
    env.write("s.yaml", &enc);
    env.write(
        "ca.crt",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    );
    let out = ok_stdout(
        &env.ksec()
            .args([
                "patch",
                "s.yaml",
                "-d",
                "password=n3w-p@ss",
                "-d",
                "~empty",
                "-d",
                "file:ca.crt",
                "-s",
                "token=-",
                "-l",
                "tier=backend",
                "-a",
                "rotated-by=ci",
            ])
            .write_stdin("tok-123")
            .output()
            .unwrap(),
    );
    assert_eq!(env.read("s.yaml"), enc, "without -i the file stays");
    golden("patch.enc.yaml", &mask(&out, &env.recipient));
    golden("patch.dec.yaml", &env.decrypt(&out));
    // The diff: the changed value, the removed one, the added ones, the
    // added metadata lines, the MAC and the binding (the keys changed).
    // Nothing else.
    let d = diff_lines(&enc, &out);
    let starts = |lines: &[String], p: &str| lines.iter().filter(|l| l.starts_with(p)).count();
    assert_eq!(d.removed.len(), 4, "{d:#?}");
    assert_eq!(starts(&d.removed, "  password: "), 1);
    assert_eq!(starts(&d.removed, "  empty: "), 1);
    assert_eq!(starts(&d.removed, "# kubesec:mac:"), 1);
    assert_eq!(starts(&d.removed, "# ksec:bind:"), 1);
    assert_eq!(d.added.len(), 8, "{d:#?}");
    for p in [
        "  password: ",
        "  ca.crt: ",
        "  token: ",
        "    tier: backend",
        "  annotations:",
        "    rotated-by: ci",
        "# kubesec:mac:",
        "# ksec:bind:",
    ] {
        assert!(d.added.iter().any(|l| l.starts_with(p)), "{p}: {d:#?}");
    }
}

#[test]
fn patch_in_place_rotate_and_metadata() {
    let env = TestEnv::new();
    let enc = env.encrypt(INPUT);
    env.write("s.yaml", &enc);
    // Setting a value to what it is changes nothing at all.
    ok_stdout(
        &env.ksec()
            .args([
                "patch",
                "-i",
                "s.yaml",
                "-d",
                "username=admin",
                "-s",
                "note=hello world",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(env.read("s.yaml"), enc);
    // Metadata and type.
    ok_stdout(
        &env.ksec()
            .args([
                "patch",
                "-i",
                "s.yaml",
                "-m",
                "name=db2",
                "-m",
                "~namespace",
                "-l",
                "~app",
                "--type",
                "kubernetes.io/basic-auth",
            ])
            .output()
            .unwrap(),
    );
    let patched = env.read("s.yaml");
    let dec = env.decrypt(&patched);
    assert!(
        dec.contains("  name: db2\n") && !dec.contains("namespace") && !dec.contains("labels"),
        "{dec}"
    );
    assert!(dec.contains("type: kubernetes.io/basic-auth\n"), "{dec}");
    let d = diff_lines(&enc, &patched);
    assert!(
        d.removed
            .iter()
            .all(|l| !l.starts_with("  username") && !l.starts_with("# kubesec:")),
        "{d:#?}"
    );
    // --rotate: every value changes, the values stay.
    ok_stdout(
        &env.ksec()
            .args(["patch", "-i", "s.yaml", "--rotate"])
            .output()
            .unwrap(),
    );
    let rotated = env.read("s.yaml");
    assert_eq!(env.decrypt(&rotated), dec);
    let d = diff_lines(&patched, &rotated);
    assert!(d.removed.len() >= 5, "{d:#?}");
    // Removing the last stringData value drops the section and goes to v:3.
    ok_stdout(
        &env.ksec()
            .args(["patch", "-i", "s.yaml", "-s", "~note"])
            .output()
            .unwrap(),
    );
    let v3 = env.read("s.yaml");
    assert!(
        v3.contains("# kubesec:v:3\n") && !v3.contains("stringData"),
        "{v3}"
    );
}

#[test]
fn patch_json_document() {
    let env = TestEnv::new();
    let json = "{\"apiVersion\": \"v1\", \"kind\": \"Secret\", \"metadata\": {\"name\": \"j\"}, \"data\": {\"a\": \"eA==\", \"b\": \"eQ==\"}}\n";
    let enc = env.encrypt(json);
    env.write("j.json", &enc);
    ok_stdout(
        &env.ksec()
            .args([
                "patch", "-i", "j.json", "-d", "~a", "-d", "c=z", "-l", "app=x",
            ])
            .output()
            .unwrap(),
    );
    let out = env.read("j.json");
    let dec = env.decrypt(&out);
    let v: serde_json::Value = serde_json::from_str(&dec).expect("still JSON");
    assert_eq!(v["data"]["b"], "eQ==");
    assert_eq!(v["data"]["c"], "eg==");
    assert!(v["data"].get("a").is_none());
    assert_eq!(v["metadata"]["labels"]["app"], "x");
}
