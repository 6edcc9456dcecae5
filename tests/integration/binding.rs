//! The binding (`# ksec:bind:`, a sops file's `ksec_binding`): what
//! kubesec's MAC leaves out — sections, the Secret's name, namespace and
//! type, the version and `# ksec:` lines — is caught when the binding is
//! there, and its absence is caught under `--require-binding` or a rule's
//! `binding: required`. Each tampering of the hardening issue has a case,
//! also the two no offline check can catch (said so, and pinned).

use std::fs;

use crate::support::{TestEnv, ok_stdout};

const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
type: Opaque
data:
  a: YWFh
  m: bW1t
stringData:
  x: xxx
";

fn strip_binding(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("# ksec:bind:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Moves the line `  m: …` from the end of `data` to the top of
/// `stringData`: kubesec's MAC input (entries sorted per section, then
/// concatenated) stays the same bytes, and each value's associated data is
/// its key only, so everything still decrypts — Kubernetes then receives
/// base64 text as a string value.
fn move_m_to_string_data(text: &str) -> String {
    let m = text.lines().find(|l| l.starts_with("  m: ")).unwrap();
    text.replacen(&format!("{m}\n"), "", 1).replacen(
        "stringData:\n",
        &format!("stringData:\n{m}\n"),
        1,
    )
}

struct Case {
    what: &'static str,
    edit: fn(&str) -> String,
}

const CAUGHT: &[Case] = &[
    Case {
        what: "a value moved from data to stringData",
        edit: move_m_to_string_data,
    },
    Case {
        what: "the Secret renamed",
        edit: |t| t.replacen("  name: db\n", "  name: db2\n", 1),
    },
    Case {
        what: "moved to another namespace",
        edit: |t| t.replacen("  namespace: prod\n", "  namespace: staging\n", 1),
    },
    Case {
        what: "the type changed",
        edit: |t| t.replacen("type: Opaque\n", "type: kubernetes.io/basic-auth\n", 1),
    },
    Case {
        what: "the version line changed",
        edit: |t| t.replacen("# kubesec:v:4\n", "# kubesec:v:3\n", 1),
    },
    Case {
        what: "a section marked clear",
        edit: |t| t.replacen("# ksec:bind:", "# ksec:clear:stringData\n# ksec:bind:", 1),
    },
];

#[test]
fn the_binding_catches_what_kubesecs_mac_misses() {
    let env = TestEnv::new();
    let enc = env.encrypt(SECRET);
    assert_eq!(enc.matches("# ksec:bind:").count(), 1, "{enc}");
    for c in CAUGHT {
        let tampered = (c.edit)(&enc);
        assert_ne!(tampered, enc, "{}", c.what);
        // With the binding: refused, nothing on stdout.
        let path = env.write("t.yaml", &tampered);
        let out = env.ksec().args(["decrypt"]).arg(&path).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(5),
            "{}: {}",
            c.what,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{}", c.what);
        let err = String::from_utf8_lossy(&out.stderr);
        // (A section marked clear also changes what the MAC covers.)
        let why = if c.what == "a section marked clear" {
            "the MAC does not verify"
        } else {
            "the binding does not verify"
        };
        assert!(err.contains(why), "{}: {err}", c.what);
        // Without it (a kubesec file, or the line deleted): kubesec's MAC
        // alone lets the first four through; `--require-binding` refuses.
        let stripped = env.write("s.yaml", strip_binding(&tampered));
        let out = env
            .ksec()
            .args(["decrypt", "-q"])
            .arg(&stripped)
            .output()
            .unwrap();
        if c.what != "a section marked clear" {
            assert!(
                out.status.success(),
                "{}: the MAC alone catches it?",
                c.what
            );
        }
        let out = env
            .ksec()
            .args(["decrypt", "--require-binding"])
            .arg(&stripped)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(5), "{}", c.what);
        assert!(out.stdout.is_empty());
    }
    // The untouched file decrypts, with or without --require-binding.
    let path = env.write("ok.yaml", &enc);
    assert_eq!(
        ok_stdout(
            &env.ksec()
                .args(["decrypt", "-q", "--require-binding"])
                .arg(&path)
                .output()
                .unwrap()
        ),
        SECRET
    );
}

#[test]
fn binding_required_by_a_rule() {
    let env = TestEnv::new();
    let enc = env.encrypt(SECRET);
    fs::create_dir_all(env.path("prod")).unwrap();
    let file = env.write("prod/db.yaml", strip_binding(&enc));
    // No rule: a file without a binding decrypts (kubesec wrote it, say).
    ok_stdout(
        &env.ksec()
            .args(["decrypt", "-q"])
            .arg(&file)
            .output()
            .unwrap(),
    );
    env.write(
        ".ksec.yaml",
        format!(
            "rules:\n  - path: \"prod/**\"\n    keys: [age:{}]\n    binding: required\n",
            env.recipient
        ),
    );
    let out = env.ksec().args(["decrypt"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no `# ksec:bind:` line, and a binding is required here"),
        "{err}"
    );
    assert!(err.contains("ksec recompute-mac"), "{err}");
    // recompute-mac adds it; then the file decrypts under the rule.
    ok_stdout(
        &env.ksec()
            .args(["recompute-mac", "--yes"])
            .arg(&file)
            .output()
            .unwrap(),
    );
    assert!(fs::read_to_string(&file).unwrap().contains("# ksec:bind:"));
    assert_eq!(
        ok_stdout(
            &env.ksec()
                .args(["decrypt", "-q"])
                .arg(&file)
                .output()
                .unwrap()
        ),
        SECRET
    );
    // A rule with an unknown binding mode is a configuration error.
    env.write(
        ".ksec.yaml",
        format!(
            "rules:\n  - path: \"**\"\n    keys: [age:{}]\n    binding: maybe\n",
            env.recipient
        ),
    );
    let out = env
        .ksec()
        .args(["encrypt", "-i"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected `required` or `optional`"));
}

/// What no offline check can catch, pinned so that the README's list stays
/// true: the same Secret (same namespace, name and keys) copied in whole,
/// footer included, from another file, and an older version of it put back.
/// Both are authentic data under their own keys; git history is the control.
#[test]
fn what_the_binding_cannot_catch() {
    let env = TestEnv::new();
    let old = env.encrypt(SECRET);
    let other_file = env.encrypt(&SECRET.replace("bW1t", "b3RoZXI="));
    for (what, text) in [
        ("a replayed older version", &old),
        ("the same Secret from another file", &other_file),
    ] {
        let path = env.write("t.yaml", text);
        let out = env
            .ksec()
            .args(["decrypt", "-q", "--require-binding"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{what}");
    }
    // The same Secret of another file under another namespace is caught
    // where the file's name says otherwise only if the namespace is bound:
    // it is, so the swap shows as the other namespace.
    let staging = env.encrypt(&SECRET.replace("namespace: prod", "namespace: staging"));
    let dec = env.decrypt(&staging);
    assert!(dec.contains("namespace: staging"));
}

#[test]
fn unchanged_files_keep_their_bytes_and_edits_keep_the_binding() {
    let env = TestEnv::new();
    // A file without a binding (as kubesec writes it) re-encrypted
    // unchanged stays byte for byte; any change adds the binding.
    let enc = strip_binding(&env.encrypt(SECRET));
    let path = env.write("k.yaml", &enc);
    let same = ok_stdout(&env.ksec().arg("encrypt").arg(&path).output().unwrap());
    assert_eq!(same, enc);
    let rotated = ok_stdout(
        &env.ksec()
            .args(["encrypt", "--rotate"])
            .arg(&path)
            .output()
            .unwrap(),
    );
    assert!(rotated.contains("# ksec:bind:"));
    // A value edit keeps the binding line (it does not cover values).
    let bound = env.encrypt(SECRET);
    let p = env.write("b.yaml", &bound);
    ok_stdout(
        &env.ksec()
            .args(["patch", "-s", "x=yyy", "-i"])
            .arg(&p)
            .output()
            .unwrap(),
    );
    let after = fs::read_to_string(&p).unwrap();
    let line = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("# ksec:bind:"))
            .unwrap()
            .to_owned()
    };
    assert_eq!(line(&after), line(&bound));
}

#[test]
fn sops_files_bind_every_key() {
    let env = TestEnv::new();
    let out = env
        .ksec()
        .args(["encrypt", "--format", "sops", "-k"])
        .arg(format!("age:{}", env.recipient))
        .write_stdin(SECRET)
        .output()
        .unwrap();
    let enc = ok_stdout(&out);
    assert!(enc.contains("\n    ksec_binding: "), "{enc}");
    // Renaming a clear key: sops' MAC does not cover keys; the binding does.
    let renamed = env.write(
        "r.yaml",
        enc.replacen("  namespace: prod\n", "  namespacex: prod\n", 1),
    );
    let out = env.ksec().args(["decrypt"]).arg(&renamed).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a key was renamed, added or removed"));
    assert!(out.stdout.is_empty());
    // Without the field (sops drops it when it rewrites a file) the file
    // decrypts, unless a binding is required.
    let dropped: String = enc
        .lines()
        .filter(|l| !l.trim_start().starts_with("ksec_binding:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let p = env.write("d.yaml", &dropped);
    ok_stdout(&env.ksec().args(["decrypt", "-q"]).arg(&p).output().unwrap());
    let out = env
        .ksec()
        .args(["decrypt", "--require-binding"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no `ksec_binding`"));
    ok_stdout(
        &env.ksec()
            .args(["recompute-mac", "--yes"])
            .arg(&p)
            .output()
            .unwrap(),
    );
    ok_stdout(
        &env.ksec()
            .args(["decrypt", "-q", "--require-binding"])
            .arg(&p)
            .output()
            .unwrap(),
    );
}
