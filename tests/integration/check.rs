//! `ksec check`: every problem it reports, its exit codes, JSON, and that
//! it needs no key (and makes no network call) without `--verify`.

use std::fs;

use crate::support::TestEnv;

const SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
data:
  username: YWRtaW4=
  password: czNjcjN0
";

/// Runs `ksec check ARGS` and returns (exit code, stdout).
fn check(env: &TestEnv, args: &[&str]) -> (i32, String) {
    let out = env.ksec().arg("check").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn a_clean_tree_passes_and_the_default_is_the_current_directory() {
    let env = TestEnv::new();
    fs::create_dir_all(env.path("k8s")).unwrap();
    env.write("k8s/db.yaml", env.encrypt(SECRET));
    env.write(
        "k8s/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: b\n",
    );
    let out = env.ksec().arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 files checked, no problems"));
}

/// sops' `filestatus` looks at one marker and calls the file encrypted
/// (getsops/sops#571); a clear value injected among encrypted ones must be
/// reported, each one, with its line.
#[test]
fn issue_571_injected_clear_values_are_reported() {
    let env = TestEnv::new();
    let enc = env.encrypt(SECRET);
    let injected = enc.replace(
        "  password: ",
        "  injected: c2VjcmV0\n  also: c2VjcmV0\n  password: ",
    );
    env.write("db.yaml", injected);
    let (code, out) = check(&env, &["db.yaml"]);
    assert_eq!(code, 8);
    assert!(out.contains("db.yaml:8: document 1 (Secret prod/db), data.injected: clear-text value in an encrypted Secret"), "{out}");
    assert!(
        out.contains("db.yaml:9: document 1 (Secret prod/db), data.also:"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn every_kind_of_problem_is_listed_with_its_line() {
    let env = TestEnv::new();
    let enc = env.encrypt(SECRET);
    fs::create_dir_all(env.path("t")).unwrap();
    env.write("t/clear.yaml", SECRET);
    // A damaged token: cut in the middle.
    let token_line = enc.lines().find(|l| l.starts_with("  password: ")).unwrap();
    let cut = &token_line[..token_line.len() - 10];
    env.write("t/damaged.yaml", enc.replace(token_line, cut));
    env.write(
        "t/footer.yaml",
        enc.replace("# kubesec:v:3", "# kubesec:v:9"),
    );
    env.write(
        "t/applied.yaml",
        env.encrypt(SECRET)
        .replace(
            "  namespace: prod\n",
            "  namespace: prod\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{}'\n",
        ),
    );
    env.write(
        "t/configmap.yaml",
        enc.replace("kind: Secret", "kind: ConfigMap"),
    );
    env.write("t/invalid.yaml", "a: [b\n");
    env.write(
        "t/nomac.yaml",
        enc.lines()
            .filter(|l| !l.starts_with("# kubesec:mac:"))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n",
    );
    let (code, out) = check(&env, &["t"]);
    assert_eq!(code, 8, "{out}");
    for needle in [
        "t/applied.yaml:7: document 1 (Secret prod/db): metadata.annotations holds kubectl.kubernetes.io/last-applied-configuration",
        "t/clear.yaml:7: document 1 (Secret prod/db), data.username: clear-text value: the Secret is not encrypted",
        "t/clear.yaml:8: document 1 (Secret prod/db), data.password: clear-text value",
        "t/configmap.yaml:7: document 1 (ConfigMap prod/db): encrypted values or a `# kubesec:` footer in a document that is not",
        "t/damaged.yaml:8: document 1 (Secret prod/db), data.password: the encrypted value is damaged",
        "t/footer.yaml:9: document 1 (Secret prod/db): unsupported format version",
        "t/invalid.yaml:1: invalid YAML",
        "t/nomac.yaml:9: document 1 (Secret prod/db): the footer has no MAC line",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // JSON for machines: the same problems with codes.
    let json = env
        .ksec()
        .args(["check", "--format", "json", "t"])
        .output()
        .unwrap();
    assert_eq!(json.status.code(), Some(8));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["files_checked"], 7);
    let codes: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    for code in [
        "last-applied-configuration",
        "clear-value",
        "ciphertext-outside-secret",
        "malformed-value",
        "malformed-footer",
        "invalid-yaml",
        "no-mac",
    ] {
        assert!(codes.contains(&code), "{code} not in {codes:?}");
    }
    assert_eq!(v["problems"][0]["file"], "t/applied.yaml");
    assert_eq!(v["problems"][0]["line"], 7);
}

#[test]
fn verify_opens_everything_and_without_it_no_key_is_needed() {
    let env = TestEnv::new();
    let enc = env.encrypt(SECRET);
    // A MAC from another encryption of the same values: well-formed, wrong.
    let other = env.encrypt(SECRET);
    let mac = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("# kubesec:mac:"))
            .unwrap()
            .to_owned()
    };
    env.write("good.yaml", &enc);
    env.write("badmac.yaml", enc.replace(&mac(&enc), &mac(&other)));
    // An AWS key line against an endpoint nobody listens on.
    let aws = enc.replace(
        "# kubesec:mac:",
        "# kubesec:aws:arn:aws:kms:us-east-1:123456789012:key/0000:AQID\n# kubesec:mac:",
    );
    env.write("aws.yaml", aws);
    let offline = |c: &mut assert_cmd::Command| {
        c.env("KSEC_AGE_KEY_FILE", env.path("missing.txt"))
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_ACCESS_KEY_ID", "x")
            .env("AWS_SECRET_ACCESS_KEY", "x")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true");
    };
    let mut c = env.ksec();
    offline(&mut c);
    let out = c
        .args(["check", "-v", "good.yaml", "badmac.yaml", "aws.yaml"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("aws:"),
        "no KMS client without --verify"
    );
    let (code, out) = check(&env, &["--verify", "good.yaml", "badmac.yaml"]);
    assert_eq!(code, 8);
    assert!(
        out.contains("badmac.yaml:9: document 1 (Secret prod/db): the MAC does not verify"),
        "{out}"
    );
    assert!(!out.contains("good.yaml"), "{out}");
    let mut c = env.ksec();
    offline(&mut c);
    let out = c.args(["check", "--verify", "good.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(8));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no available key can open the data key")
    );
}

#[test]
fn rules_are_checked_and_unused_rules_reported() {
    let env = TestEnv::new();
    let me = env.recipient.clone();
    let other = age::x25519::Identity::generate().to_public().to_string();
    fs::create_dir_all(env.path("k8s/prod")).unwrap();
    env.write("k8s/prod/db.yaml", env.encrypt(SECRET));
    env.write(
        "k8s/.ksec.yaml",
        format!(
            "rules:\n  - path: \"prod/**\"\n    keys: [age:{other}]\n  - path: \"staging/**\"\n    keys: [age:{me}]\n"
        ),
    );
    let (code, out) = check(&env, &["k8s"]);
    assert_eq!(code, 8);
    assert!(out.contains(&format!("k8s/prod/db.yaml:9: document 1 (Secret prod/db): keys differ from .ksec.yaml: missing key age:{other}; key not in the rule age:{me}")), "{out}");
    assert!(out.contains("ksec updatekeys k8s/prod/db.yaml"), "{out}");
    assert!(
        out.contains("k8s/.ksec.yaml:4: rule `staging/**` matches no checked file"),
        "{out}"
    );
    // Checking part of the tree says nothing about rules for other parts.
    let (_, out) = check(&env, &["k8s/prod"]);
    assert!(!out.contains("staging"), "{out}");
    // A broken configuration is a problem too, reported once.
    env.write("k8s/.ksec.yaml", "rules:\n  - path: a\n    kees: []\n");
    env.write("k8s/prod/second.yaml", env.encrypt(SECRET));
    let (code, out) = check(&env, &["k8s"]);
    assert_eq!(code, 8);
    assert_eq!(
        out.matches(".ksec.yaml:3: unknown field `kees`").count(),
        1,
        "{out}"
    );
}
