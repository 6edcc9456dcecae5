//! `encrypt --parent`, `--rotate` and the `# ksec:rotated:` record.

use crate::support::{TestEnv, changed_lines, diff_lines, ok_stdout};

const V1: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
data:
  username: YWRtaW4=
  password: czNjcjN0
stringData:
  note: hello world
";

/// V1 with one value changed, one added.
const V2: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
data:
  username: YWRtaW4=
  password: bmV3LXBhc3M=
stringData:
  note: hello world
  extra: more
";

fn encrypt_with_parent(env: &TestEnv, input: &str, parent: &str, extra: &[&str]) -> String {
    env.write("parent.enc.yaml", parent);
    ok_stdout(
        &env.ksec()
            .args(["encrypt", "--parent", "parent.enc.yaml"])
            .args(extra)
            .write_stdin(input)
            .output()
            .unwrap(),
    )
}

fn line_of<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|l| l.trim_start().starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix} in\n{text}"))
}

#[test]
fn parent_keeps_ciphertext_of_equal_values() {
    let env = TestEnv::new();
    let old = env.encrypt(V1);
    // The same clear text against its parent: byte-identical.
    assert_eq!(encrypt_with_parent(&env, V1, &old, &[]), old);
    // Without --parent every token changes.
    let fresh = env.encrypt(V1);
    assert!(changed_lines(&old, &fresh).len() >= 3 + 2);
    // One value changed: that line, the MAC line; the added key is new.
    let new = encrypt_with_parent(&env, V2, &old, &[]);
    assert_eq!(env.decrypt(&new), V2);
    assert_eq!(line_of(&new, "username:"), line_of(&old, "username:"));
    assert_eq!(line_of(&new, "note:"), line_of(&old, "note:"));
    assert_ne!(line_of(&new, "password:"), line_of(&old, "password:"));
    assert_ne!(
        line_of(&new, "# kubesec:mac:"),
        line_of(&old, "# kubesec:mac:")
    );
    assert_eq!(
        line_of(&new, "# kubesec:age:"),
        line_of(&old, "# kubesec:age:"),
        "the wrapped data key is the parent's"
    );
    assert_eq!(
        line_of(&new, "# ksec:rotated:"),
        line_of(&old, "# ksec:rotated:")
    );
    // git diff of the result against the parent: exactly the changed value,
    // the added value, the MAC line and the binding (which covers the list
    // of keys, and a key was added).
    let diff = diff_lines(&old, &new);
    assert_eq!(diff.removed.len(), 3, "{diff:?}");
    assert_eq!(diff.added.len(), 4, "{diff:?}");
    assert!(diff.removed.iter().any(|l| l.starts_with("# ksec:bind:")));
    assert!(diff.removed.iter().any(|l| l.starts_with("  password:")));
    assert!(diff.added.iter().any(|l| l.starts_with("  extra:")));
}

#[test]
fn parent_with_cleartext_keeps_tokens_of_unchanged_decoded_values() {
    let env = TestEnv::new();
    // The parent stores a base64 value wrapped over two lines; the same bytes
    // given in clear text with -x must keep the parent's text and token.
    let wrapped = V1.replace(
        "  password: czNjcjN0\n",
        "  password: |\n    czNj\n    cjN0\n",
    );
    let old = env.encrypt(&wrapped);
    let clear = V1
        .replace("YWRtaW4=", "admin")
        .replace("czNjcjN0", "s3cr3t");
    let new = encrypt_with_parent(&env, &clear, &old, &["-x"]);
    assert_eq!(new, old);
}

#[test]
fn parent_matches_by_name_then_position() {
    let env = TestEnv::new();
    let a = V1.replace("name: db", "name: a");
    let b = V1.replace("name: db", "name: b");
    let old = env.encrypt(&format!("{a}---\n{b}"));
    // Swapped order: matched by name, so both keep every token.
    let swapped = encrypt_with_parent(&env, &format!("{b}---\n{a}"), &old, &[]);
    let tokens = |t: &str| -> Vec<String> {
        let mut v: Vec<String> = t
            .lines()
            .filter(|l| l.starts_with("  ") && l.contains('.'))
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    assert_eq!(tokens(&swapped), tokens(&old));
    // Renamed: matched by position, tokens kept.
    let c = V1.replace("name: db", "name: c");
    let renamed = encrypt_with_parent(&env, &format!("{a}---\n{c}"), &old, &[]);
    assert_eq!(tokens(&renamed), tokens(&old));
}

#[test]
fn parent_must_verify() {
    let env = TestEnv::new();
    let old = env.encrypt(V1);
    let mac = line_of(&old, "# kubesec:mac:");
    let forged = old.replace(
        mac,
        "# kubesec:mac:AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA==",
    );
    env.write("parent.enc.yaml", &forged);
    let out = env
        .ksec()
        .args(["encrypt", "--parent", "parent.enc.yaml"])
        .write_stdin(V2)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("parent.enc.yaml") && err.contains("MAC"),
        "{err}"
    );
    // A parent without encrypted Secrets is refused too.
    env.write("parent.enc.yaml", V1);
    let out = env
        .ksec()
        .args(["encrypt", "--parent", "parent.enc.yaml"])
        .write_stdin(V2)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn rotate_changes_every_value_and_the_record() {
    let env = TestEnv::new();
    let old = env.encrypt(V1);
    let rotated = ok_stdout(
        &env.ksec()
            .args(["encrypt", "--rotate"])
            .write_stdin(old.clone())
            .output()
            .unwrap(),
    );
    assert_eq!(env.decrypt(&rotated), V1);
    for key in ["username:", "password:", "note:", "# kubesec:age:"] {
        assert_ne!(line_of(&rotated, key), line_of(&old, key), "{key}");
    }
    // Without --rotate, re-encryption keeps everything, the record included.
    let again = ok_stdout(
        &env.ksec()
            .arg("encrypt")
            .write_stdin(rotated.clone())
            .output()
            .unwrap(),
    );
    assert_eq!(again, rotated);
    // --parent with --rotate: new data key even for equal values.
    let new = encrypt_with_parent(&env, V1, &old, &["--rotate"]);
    assert_ne!(line_of(&new, "username:"), line_of(&old, "username:"));
}

#[test]
fn introspect_shows_when_the_data_key_was_generated() {
    let env = TestEnv::new();
    let enc = env.encrypt(V1);
    let record = line_of(&enc, "# ksec:rotated:");
    let ts = record.trim_start_matches("# ksec:rotated:");
    assert_eq!(ts.len(), 20, "{record}");
    assert!(ts.starts_with("20") && ts.ends_with('Z'), "{record}");
    env.write("s.yaml", &enc);
    let text = ok_stdout(&env.ksec().args(["introspect", "s.yaml"]).output().unwrap());
    assert!(
        text.contains(&format!("data key generated: {ts}")),
        "{text}"
    );
    let json = ok_stdout(
        &env.ksec()
            .args(["introspect", "--json", "s.yaml"])
            .output()
            .unwrap(),
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["documents"][0]["rotated"], ts);
    // Without the record (kubesec's files): said so.
    let without: String = enc
        .lines()
        .filter(|l| !l.starts_with("# ksec:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        env.decrypt(&without),
        V1,
        "the record is not needed to decrypt"
    );
    env.write("k.yaml", &without);
    let text = ok_stdout(&env.ksec().args(["introspect", "k.yaml"]).output().unwrap());
    assert!(text.contains("data key generated: not recorded"), "{text}");
}

/// A Secret of more values than one batch of tokens (they are made and
/// written out a batch at a time, not all at once): every value decrypts,
/// an unchanged file is written back byte for byte, and one value changed
/// in the middle against its parent changes that line and the MAC only.
#[test]
fn a_secret_larger_than_a_token_batch_keeps_every_token_in_place() {
    let env = TestEnv::new();
    let mut clear = String::from("apiVersion: v1\nkind: Secret\nmetadata:\n  name: big\ndata:\n");
    for i in 0..10_000 {
        clear.push_str(&format!("  k{i:05}: {}\n", b64(&format!("value {i}"))));
    }
    clear.push_str("stringData:\n");
    for i in 0..50 {
        clear.push_str(&format!("  s{i:02}: plain {i}\n"));
    }
    let enc = env.encrypt(&clear);
    assert_eq!(env.decrypt(&enc), clear);
    // Re-encrypting the encrypted file changes nothing.
    env.write("big.yaml", &enc);
    env.ksec()
        .args(["encrypt", "-i", "big.yaml"])
        .assert()
        .success();
    assert_eq!(env.read("big.yaml"), enc);
    // One value changed, past the first batch.
    let changed = clear.replace(
        &format!("  k07000: {}\n", b64("value 7000")),
        &format!("  k07000: {}\n", b64("changed")),
    );
    let new = encrypt_with_parent(&env, &changed, &enc, &[]);
    assert_eq!(env.decrypt(&new), changed);
    let lines: Vec<&str> = changed_lines(&enc, &new)
        .iter()
        .map(|(_, old, _)| old.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(lines, ["  k07000", "# kubesec"], "{lines:?}");
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
