//! `.ksec.yaml` rules: lookup from the target file's directory, first match
//! wins, `--key` and `--config`/`KSEC_CONFIG`, sections kept in clear text,
//! `updatekeys`.

use std::fs;

use crate::support::{TestEnv, ok_stdout};

const SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: db
data:
  password: czNjcjN0
stringData:
  note: not secret
";

/// A second age identity, written to `other-key.txt`; returns its recipient.
fn other_identity(env: &TestEnv) -> String {
    use age::secrecy::ExposeSecret as _;
    let id = age::x25519::Identity::generate();
    let r = id.to_public().to_string();
    env.write(
        "other-key.txt",
        format!("{}\n", id.to_string().expose_secret()),
    );
    r
}

/// `ksec decrypt FILE` with the identity of [`other_identity`] only.
fn decrypt_as_other(env: &TestEnv, file: &str) -> String {
    ok_stdout(
        &env.ksec()
            .env("KSEC_AGE_KEY_FILE", env.path("other-key.txt"))
            .args(["decrypt", "-q", file])
            .output()
            .unwrap(),
    )
}

fn age_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("# kubesec:age:"))
        .map(|l| &l[..l.rfind(':').unwrap()])
        .collect()
}

#[test]
fn rules_apply_from_the_files_directory_upward_first_match_wins() {
    let env = TestEnv::new();
    let other = other_identity(&env);
    let me = env.recipient.clone();
    env.write(
        ".ksec.yaml",
        format!(
            "# rules for the repo\nrules:\n  - path: \"prod/**\"\n    keys: [age:{other}, age:{me}]\n  - path: \"**/*.yaml\"\n    keys: [\"age:{me}\"]\n"
        ),
    );
    fs::create_dir_all(env.path("prod/db")).unwrap();
    fs::create_dir_all(env.path("dev")).unwrap();
    env.write("prod/db/s.yaml", SECRET);
    env.write("dev/s.yaml", SECRET);
    // Run from inside a subdirectory: the rules come from the file's
    // directory upward, not from the working directory.
    let out = env
        .ksec()
        .current_dir(env.path("dev"))
        .args(["encrypt", "-i", "../prod/db/s.yaml", "s.yaml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        age_lines(&env.read("prod/db/s.yaml")),
        [
            format!("# kubesec:age:{other}"),
            format!("# kubesec:age:{me}")
        ]
    );
    assert_eq!(
        age_lines(&env.read("dev/s.yaml")),
        [format!("# kubesec:age:{me}")]
    );
    // The other identity opens the prod file: both keys are really there.
    assert_eq!(decrypt_as_other(&env, "prod/db/s.yaml"), SECRET);
    // Decrypt never needs the configuration: a broken one does not matter.
    env.write(".ksec.yaml", "rules: [oops\n");
    assert_eq!(
        ok_stdout(
            &env.ksec()
                .args(["decrypt", "-q", "dev/s.yaml"])
                .output()
                .unwrap()
        ),
        SECRET
    );
}

#[test]
fn key_on_the_command_line_and_explicit_config_win() {
    let env = TestEnv::new();
    let other = other_identity(&env);
    let me = env.recipient.clone();
    env.write(
        ".ksec.yaml",
        format!("rules:\n  - path: \"*.yaml\"\n    keys: [age:{other}]\n"),
    );
    env.write("a.yaml", SECRET);
    let out = ok_stdout(
        &env.ksec()
            .args(["encrypt", "-k", &format!("age:{me}"), "a.yaml"])
            .output()
            .unwrap(),
    );
    assert_eq!(
        age_lines(&out),
        [format!("# kubesec:age:{me}")],
        "--key overrides the rule"
    );
    let out = ok_stdout(&env.ksec().args(["encrypt", "a.yaml"]).output().unwrap());
    assert_eq!(age_lines(&out), [format!("# kubesec:age:{other}")]);
    // --config and KSEC_CONFIG replace the lookup; patterns are relative to
    // that file's directory, and a file outside it matches no rule.
    fs::create_dir_all(env.path("conf")).unwrap();
    env.write("conf/b.yaml", SECRET);
    env.write(
        "conf/rules.yaml",
        format!("rules:\n  - path: \"**\"\n    keys: [age:{me}]\n"),
    );
    for args in [
        vec!["--config", "conf/rules.yaml", "encrypt", "conf/b.yaml"],
        vec!["encrypt", "conf/b.yaml"],
    ] {
        let mut c = env.ksec();
        if args[0] != "--config" {
            c.env("KSEC_CONFIG", env.path("conf/rules.yaml"));
        }
        let out = ok_stdout(&c.args(&args).output().unwrap());
        assert_eq!(age_lines(&out), [format!("# kubesec:age:{me}")], "{args:?}");
    }
    let out = ok_stdout(
        &env.ksec()
            .env("KSEC_CONFIG", env.path("conf/rules.yaml"))
            .args(["encrypt", "a.yaml"])
            .output()
            .unwrap(),
    );
    assert_eq!(
        age_lines(&out),
        [format!("# kubesec:age:{me}")],
        "a.yaml is outside conf/: no rule, so the local identity, not the .ksec.yaml beside it"
    );
    // Standard input matches no rule.
    let out = ok_stdout(
        &env.ksec()
            .args(["encrypt"])
            .write_stdin(SECRET)
            .output()
            .unwrap(),
    );
    assert!(!out.contains(&other));
}

#[test]
fn malformed_config_is_a_positioned_error() {
    let env = TestEnv::new();
    env.write("a.yaml", SECRET);
    for (config, line, needle) in [
        (
            "rules:\n  - path: a\n    path: b\n    keys: [age:x]\n",
            3,
            "duplicate",
        ),
        ("rules:\n  - path: a\n    keys: [age:nope]\n", 3, "age1"),
        ("rules:\n  - path: a\n    keyz: []\n", 3, "keyz"),
        ("rules:\n  - path: '[a'\n    keys: [pgp:alice]\n", 2, "path"),
        (
            "rules:\n  - path: a\n    keys: [pgp:alice@example.com]\n",
            3,
            "fingerprint",
        ),
    ] {
        env.write(".ksec.yaml", config);
        let out = env.ksec().args(["encrypt", "a.yaml"]).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{config}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(".ksec.yaml:{line}:")),
            "{config}: {err}"
        );
        assert!(err.contains(needle), "{config}: {err}");
    }
}

#[test]
fn sections_kept_in_clear_text() {
    let env = TestEnv::new();
    let me = env.recipient.clone();
    env.write(
        ".ksec.yaml",
        format!("rules:\n  - path: \"*.yaml\"\n    keys: [age:{me}]\n    sections: [data]\n"),
    );
    env.write("a.yaml", SECRET);
    env.ksec()
        .args(["encrypt", "-i", "a.yaml"])
        .assert()
        .success();
    let enc = env.read("a.yaml");
    assert!(
        enc.contains("  note: not secret\n"),
        "stringData stays clear:\n{enc}"
    );
    assert!(!enc.contains("czNjcjN0"), "data is encrypted:\n{enc}");
    assert!(enc.contains("# ksec:clear:stringData\n"));
    // Decrypt needs no configuration; the result is the input.
    fs::remove_file(env.path(".ksec.yaml")).unwrap();
    assert_eq!(env.decrypt(&enc), SECRET);
    // check does not flag the clear section…
    env.ksec().args(["check", "a.yaml"]).assert().success();
    // …but the MAC covers it: changing the clear value is detected.
    fs::write(env.path("a.yaml"), enc.replace("not secret", "changed")).unwrap();
    let out = env.ksec().args(["decrypt", "a.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    // A clear value injected into the encrypted section is flagged.
    let injected = enc.replacen("\ndata:\n", "\ndata:\n  extra: aW5qZWN0ZWQ=\n", 1);
    fs::write(env.path("a.yaml"), injected).unwrap();
    let out = env.ksec().args(["check", "a.yaml"]).output().unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(8), "{listing}");
    assert!(listing.contains("a.yaml:6:"), "{listing}");
    // Re-encrypting keeps everything, and edit-style re-encryption works.
    fs::write(env.path("a.yaml"), &enc).unwrap();
    env.ksec()
        .args(["encrypt", "-i", "a.yaml"])
        .assert()
        .success();
    assert_eq!(env.read("a.yaml"), enc);
    env.ksec()
        .args(["patch", "-i", "a.yaml", "-s", "note=yes"])
        .assert()
        .success();
    let patched = env.read("a.yaml");
    assert!(patched.contains("  note: \"yes\"\n"), "{patched}");
    assert_eq!(
        env.decrypt(&patched),
        SECRET.replace("not secret", "\"yes\"")
    );
}

#[test]
fn updatekeys_adds_keeping_the_data_key_and_removes_rotating_it() {
    let env = TestEnv::new();
    let other = other_identity(&env);
    let me = env.recipient.clone();
    fs::create_dir_all(env.path("k8s/sub")).unwrap();
    env.write("k8s/a.yaml", env.encrypt(SECRET));
    env.write("k8s/sub/b.yaml", env.encrypt(SECRET));
    env.write(
        "k8s/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
    );
    env.write("k8s/plain.yaml", SECRET);
    let a_before = env.read("k8s/a.yaml");
    env.write(
        "k8s/.ksec.yaml",
        format!("rules:\n  - path: \"**\"\n    keys: [age:{me}, age:{other}]\n"),
    );
    // check reports the difference.
    let out = env.ksec().args(["check", "k8s"]).output().unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("k8s/a.yaml:") && listing.contains("missing key age:"),
        "{listing}"
    );
    // Without a terminal and without --yes: refused, nothing written.
    let out = env.ksec().args(["updatekeys", "k8s"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("+ age:{other}")), "{stderr}");
    assert!(stderr.contains("data key kept"), "{stderr}");
    assert_eq!(env.read("k8s/a.yaml"), a_before);
    // --yes: both files get the new key; values keep their ciphertext.
    let out = env
        .ksec()
        .args(["updatekeys", "--yes", "k8s"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a_after = env.read("k8s/a.yaml");
    for line in a_before.lines().filter(|l| l.starts_with("  ")) {
        assert!(a_after.contains(line), "value line changed: {line}");
    }
    assert_eq!(age_lines(&a_after).len(), 2);
    assert_eq!(
        env.read("k8s/plain.yaml"),
        SECRET,
        "clear Secrets are encrypt's job"
    );
    assert_eq!(decrypt_as_other(&env, "k8s/sub/b.yaml"), SECRET);
    // Again: nothing to do.
    let out = env
        .ksec()
        .args(["updatekeys", "--yes", "k8s"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("agrees with its rule"));
    assert_eq!(env.read("k8s/a.yaml"), a_after);
    // Removing a key rotates the data key: every value is re-encrypted.
    env.write(
        "k8s/.ksec.yaml",
        format!("rules:\n  - path: \"**\"\n    keys: [age:{other}]\n"),
    );
    let out = env
        .ksec()
        .args(["updatekeys", "-y", "k8s/a.yaml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("data key rotated"));
    let rotated = env.read("k8s/a.yaml");
    for line in a_after
        .lines()
        .filter(|l| l.starts_with("  password:") || l.starts_with("  note:"))
    {
        assert!(!rotated.contains(line), "value kept its ciphertext: {line}");
    }
    assert_eq!(age_lines(&rotated), [format!("# kubesec:age:{other}")]);
    assert_eq!(decrypt_as_other(&env, "k8s/a.yaml"), SECRET);
}

#[test]
fn create_and_edit_of_a_new_file_use_the_rule() {
    let env = TestEnv::new();
    let other = other_identity(&env);
    env.write(
        ".ksec.yaml",
        format!("rules:\n  - path: \"**\"\n    keys: [age:{other}]\n"),
    );
    env.ksec()
        .args(["create", "db", "-s", "a=b", "-o", "new.yaml"])
        .assert()
        .success();
    assert_eq!(
        age_lines(&env.read("new.yaml")),
        [format!("# kubesec:age:{other}")]
    );
    // edit -f of a new file: the template, changed by the "editor", gets
    // the rule's keys.
    use std::os::unix::fs::PermissionsExt as _;
    let editor = env.write(
        "ed.sh",
        "#!/bin/sh\nsed -i 's/^\\(  *\\)[A-Za-z_]*: value$/\\1token: changed/' \"$1\"\n",
    );
    fs::set_permissions(&editor, fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir(env.path("run")).unwrap();
    fs::set_permissions(env.path("run"), fs::Permissions::from_mode(0o700)).unwrap();
    let out = env
        .ksec()
        .env("EDITOR", &editor)
        .env("XDG_RUNTIME_DIR", env.path("run"))
        .args(["edit", "-f", "edited.yaml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let edited = env.read("edited.yaml");
    assert_eq!(
        age_lines(&edited),
        [format!("# kubesec:age:{other}")],
        "{edited}"
    );
}

/// `patch` of a file not encrypted yet, and `create`, take the keys of the
/// nearest `.ksec.yaml` above the file (not the working directory's, not a
/// farther one, not the local key), as `encrypt` does.
#[test]
fn patch_and_create_use_the_nearest_rules() {
    let env = TestEnv::new();
    let other = other_identity(&env);
    let me = env.recipient.clone();
    // The repository's rules name both keys; team/'s own rules, nearer to
    // the files below it, name only the other key.
    env.write(
        ".ksec.yaml",
        format!("rules:\n  - path: \"**\"\n    keys: [age:{other}, age:{me}]\n"),
    );
    fs::create_dir_all(env.path("team/db")).unwrap();
    env.write(
        "team/.ksec.yaml",
        format!("rules:\n  - path: \"db/*.yaml\"\n    keys: [age:{other}]\n"),
    );
    env.write("team/db/s.yaml", SECRET);
    env.ksec()
        .args(["patch", "-i", "team/db/s.yaml", "-s", "user=admin"])
        .assert()
        .success();
    let patched = env.read("team/db/s.yaml");
    assert_eq!(
        age_lines(&patched),
        [format!("# kubesec:age:{other}")],
        "{patched}"
    );
    assert!(!patched.contains("czNjcjN0"), "{patched}");
    let clear = decrypt_as_other(&env, "team/db/s.yaml");
    assert!(clear.contains("  password: czNjcjN0\n"), "{clear}");
    assert!(clear.contains("  user: admin\n"), "{clear}");
    // create, run from elsewhere: the output file's directory decides.
    env.ksec()
        .current_dir(env.path("team"))
        .args(["create", "api", "-s", "token=t0ken", "-o", "db/new.yaml"])
        .assert()
        .success();
    assert_eq!(
        age_lines(&env.read("team/db/new.yaml")),
        [format!("# kubesec:age:{other}")]
    );
    assert!(decrypt_as_other(&env, "team/db/new.yaml").contains("token: t0ken"));
    // The nearest configuration decides alone: where none of team/'s
    // rules matches, the file gets the local key, not the repository's
    // rule (as the README says).
    env.ksec()
        .args(["create", "web", "-s", "k=v", "-o", "team/web.yaml"])
        .assert()
        .success();
    assert_eq!(
        age_lines(&env.read("team/web.yaml")),
        [format!("# kubesec:age:{me}")]
    );
}
