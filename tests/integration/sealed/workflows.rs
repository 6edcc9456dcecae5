//! What users do with `seal`, `unseal` and `reseal`: move Secrets between
//! ksec files and a sealed-secrets cluster (both ways, clear text never on
//! disk), rotate to a new controller key, add values, write JSON, in
//! place, in streams and Lists, with certificates from URLs; and what
//! `introspect` and `check` say about SealedSecrets.

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::{
    controller, fixture_values, ok, other_controller, peer_open, refused, run, seal, secret_data,
    secret_yaml, small_controller, unseal, yaml_docs,
};
use crate::support::{TestEnv, changed_lines};

/// A value that appears nowhere but where the test puts it.
const MARKER: &str = "p4ss-7c1e9a-MARKER";

fn marker_secret() -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: api\n  namespace: prod\ntype: Opaque\nstringData:\n  token: {MARKER}\n"
    )
}

/// Every file under `dir` (recursively) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            found.extend(files_containing(&p, needle));
        } else if meta.is_file()
            && let Ok(bytes) = fs::read(&p)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(p);
        }
    }
    found
}

/// `age-keygen -o FILE`; returns the recipient.
fn age_keygen(path: &Path) -> String {
    let out = run(Command::new("age-keygen").arg("-o").arg(path), None);
    ok(&out, "age-keygen");
    let out = run(Command::new("age-keygen").arg("-y").arg(path), None);
    ok(&out, "age-keygen -y").trim().to_owned()
}

#[test]
fn unseal_encrypt_writes_no_clear_text_anywhere() {
    let c = controller();
    let env = TestEnv::new();
    let identity = env.path("age-keygen.txt");
    let recipient = age_keygen(&identity);
    let sealed = ok(&seal(&env, &c.cert, &[], &marker_secret()), "seal");
    assert!(!sealed.contains(MARKER));
    env.write("sealed.yaml", format!("# from the cluster\n{sealed}"));
    for d in ["tmp", "run"] {
        fs::create_dir_all(env.path(d)).unwrap();
    }
    let scratch = |cmd: &mut assert_cmd::Command| {
        cmd.env("TMPDIR", env.path("tmp"))
            .env("XDG_RUNTIME_DIR", env.path("run"));
    };
    // -o FILE, and -i: both encrypted before anything is written.
    let mut cmd = env.ksec();
    scratch(&mut cmd);
    let out = cmd
        .args([
            "unseal",
            "--encrypt",
            "-k",
            &format!("age:{recipient}"),
            "--recovery-key",
        ])
        .arg(&c.backup)
        .args(["sealed.yaml", "-o", "api.enc.yaml"])
        .output()
        .unwrap();
    ok(&out, "unseal --encrypt -o");
    assert!(out.stdout.is_empty());
    let mut cmd = env.ksec();
    scratch(&mut cmd);
    let out = cmd
        .args([
            "unseal",
            "--encrypt",
            "-k",
            &format!("age:{recipient}"),
            "--recovery-key",
        ])
        .arg(&c.key)
        .args(["-i", "sealed.yaml"])
        .output()
        .unwrap();
    ok(&out, "unseal --encrypt -i");
    for needle in [MARKER.to_owned(), B64.encode(MARKER)] {
        let mut leaks = files_containing(env.dir.path(), needle.as_bytes());
        leaks.extend(files_containing(Path::new("/dev/shm"), needle.as_bytes()));
        assert!(leaks.is_empty(), "clear text in {leaks:?}");
    }
    let enc = env.read("api.enc.yaml");
    assert!(enc.starts_with("# from the cluster\napiVersion: v1\nkind: Secret\n"));
    assert!(enc.contains(&format!("# kubesec:age:{recipient}:")));
    let in_place = env.read("sealed.yaml");
    assert!(in_place.starts_with("# from the cluster\napiVersion: v1\nkind: Secret\n"));
    assert!(in_place.contains(&format!("# kubesec:age:{recipient}:")));
    // ksec opens it with the age-keygen identity.
    for file in ["api.enc.yaml", "sealed.yaml"] {
        let clear = env
            .ksec()
            .env("KSEC_AGE_KEY_FILE", &identity)
            .args(["decrypt", "-q", file])
            .output()
            .unwrap();
        let clear = ok(&clear, "decrypt");
        assert_eq!(
            secret_data(&clear)["prod/api"],
            json!({"token": B64.encode(MARKER)})
        );
    }
}

#[test]
fn a_key_backup_encrypted_with_ksec_opens_sealed_secrets() {
    // The README's advice: keep the controller's key backup as a ksec file.
    let c = controller();
    let env = TestEnv::new();
    let backup = fs::read_to_string(&c.backup).unwrap();
    let enc = env.encrypt(&backup);
    assert!(!enc.contains(&B64.encode(fs::read(&c.key_pkcs1).unwrap())[..40]));
    env.write("keys.enc.yaml", &enc);
    let sealed = ok(&seal(&env, &c.cert, &[], &marker_secret()), "seal");
    let out = env
        .ksec()
        .args(["unseal", "-q", "--recovery-key", "keys.enc.yaml"])
        .write_stdin(sealed)
        .output()
        .unwrap();
    let clear = ok(&out, "unseal with an encrypted key backup");
    assert_eq!(
        secret_data(&clear)["prod/api"],
        json!({"token": B64.encode(MARKER)})
    );
}

#[test]
fn clear_to_ksec_file_to_sealed_secret_and_back_keeps_every_value() {
    let c = controller();
    let env = TestEnv::new();
    // (Without the last-applied copy, which `ksec encrypt` refuses.)
    let clear: String = secret_yaml("db", Some("prod"), None)
        .lines()
        .filter(|l| !l.contains("last-applied") && !l.contains("\"apiVersion\":\"v1\""))
        .map(|l| format!("{l}\n"))
        .collect();
    // clear → ksec file (age) → SealedSecret: the ksec file is opened in memory.
    let enc = env.encrypt(&clear);
    assert!(enc.contains("# kubesec:"));
    env.write("db.enc.yaml", &enc);
    let sealed = env
        .ksec()
        .args(["seal", "--cert"])
        .arg(&c.cert)
        .arg("db.enc.yaml")
        .output()
        .unwrap();
    let sealed = ok(&sealed, "seal an encrypted file");
    assert!(
        !sealed.contains("kubesec:"),
        "the footer is gone with the Secret"
    );
    env.write("db.sealed.yaml", &sealed);
    assert_eq!(
        peer_open("ref-open", &c.key, &env.path("db.sealed.yaml"))["prod/db"]["values"],
        fixture_values()
    );
    // SealedSecret → ksec file → clear.
    let out = env
        .ksec()
        .args(["unseal", "--encrypt", "--recovery-key"])
        .arg(&c.key_pkcs1)
        .arg("db.sealed.yaml")
        .output()
        .unwrap();
    let back = ok(&out, "unseal --encrypt");
    assert!(back.contains("# kubesec:age:"));
    let decrypted = env.decrypt(&back);
    assert_eq!(secret_data(&decrypted)["prod/db"], fixture_values());
    // The values are those of the clear original (data and stringData, the
    // latter winning as on the API server).
    let original = yaml_docs(&clear)[0].clone();
    let mut want = original["data"].as_object().unwrap().clone();
    for (k, v) in original["stringData"].as_object().unwrap() {
        want.insert(k.clone(), json!(B64.encode(v.as_str().unwrap())));
    }
    assert_eq!(secret_data(&decrypted)["prod/db"], Value::Object(want));
}

#[test]
fn sops_files_seal_and_unseal_back_into_sops() {
    let c = controller();
    let env = TestEnv::new();
    // A SOPS stream: the Secret and a ConfigMap, one `sops` block.
    let stream = format!(
        "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\n",
        marker_secret()
    );
    let out = env
        .ksec()
        .args([
            "encrypt",
            "--format",
            "sops",
            "-k",
            &format!("age:{}", env.recipient),
        ])
        .write_stdin(stream.as_str())
        .output()
        .unwrap();
    let sops = ok(&out, "encrypt --format sops");
    assert!(sops.contains("\nsops:\n") && sops.contains("ENC[AES256_GCM,"));
    let sealed = ok(&seal(&env, &c.cert, &[], &sops), "seal a sops file");
    assert!(
        !sealed.contains("sops:") && !sealed.contains("ENC["),
        "no sops metadata left:\n{sealed}"
    );
    assert!(sealed.ends_with("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n"));
    env.write("api.sealed.yaml", &sealed);
    assert_eq!(
        peer_open("kubesealpy-open", &c.key, &env.path("api.sealed.yaml"))["prod/api"]["values"],
        json!({"token": B64.encode(MARKER)})
    );
    // Back into SOPS, straight away.
    let out = env
        .ksec()
        .args([
            "unseal",
            "--encrypt",
            "--format",
            "sops",
            "-k",
            &format!("age:{}", env.recipient),
            "--recovery-key",
        ])
        .arg(&c.key)
        .arg("api.sealed.yaml")
        .output()
        .unwrap();
    let back = ok(&out, "unseal --encrypt --format sops");
    assert!(back.contains("\nsops:\n") && !back.contains(MARKER));
    assert_eq!(
        secret_data(&env.decrypt(&back))["prod/api"],
        json!({"token": B64.encode(MARKER)})
    );
}

#[test]
fn reseal_moves_sealed_secrets_to_a_new_key_changing_only_the_values() {
    let (old, new) = (controller(), other_controller());
    let env = TestEnv::new();
    let sealed = ok(
        &seal(
            &env,
            &old.cert,
            &[],
            &secret_yaml("db", Some("prod"), Some("namespace-wide")),
        ),
        "seal",
    );
    let text = format!(
        "# keep me\n{sealed}---\n# and me\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\n"
    );
    env.write("app.yaml", &text);
    let out = env
        .ksec()
        .args(["reseal", "-i", "app.yaml", "--recovery-key"])
        .arg(&old.backup)
        .arg("--cert")
        .arg(&new.cert)
        .output()
        .unwrap();
    ok(&out, "reseal -i");
    let after = env.read("app.yaml");
    let changed = changed_lines(&text, &after);
    assert_eq!(after.lines().count(), text.lines().count());
    assert_eq!(changed.len(), fixture_values().as_object().unwrap().len());
    for (_, before, now) in &changed {
        let key = before.split(':').next().unwrap();
        assert!(
            now.starts_with(key) && key.starts_with("    "),
            "{before} → {now}"
        );
    }
    // The new key opens it (same label: namespace-wide), the old no longer.
    let file = env.path("app.yaml");
    let opened = peer_open("kubesealpy-open", &new.key, &file);
    assert_eq!(opened["prod/db"]["values"], fixture_values());
    let out = unseal(&env, &old.key, &[], &after);
    refused(
        &out,
        6,
        "no recovery key opens it as namespace-wide scope (label `prod`;",
    );
    let clear = ok(
        &unseal(&env, &new.backup, &[], &after),
        "unseal with the new key",
    );
    assert_eq!(secret_data(&clear)["prod/db"], fixture_values());
}

#[test]
fn merge_into_adds_and_replaces_values_for_the_targets_name_namespace_and_scope() {
    let c = controller();
    let env = TestEnv::new();
    let base = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\n  namespace: prod\n  annotations:\n    \
sealedsecrets.bitnami.com/cluster-wide: \"true\"\nstringData:\n  keep: kept\n  password: old\n";
    let sealed = ok(&seal(&env, &c.cert, &[], base), "seal");
    let target = format!(
        "# the app's secrets\n{sealed}---\napiVersion: v1\nkind: ConfigMap   # untouched\nmetadata: {{name: x}}\n"
    );
    env.write("app.sealed.yaml", &target);
    let keep_before = yaml_docs(&target)[0]["spec"]["encryptedData"]["keep"].clone();
    // The input names another Secret, strict: the target's name, namespace
    // and (cluster-wide) scope rule, with a warning about the scope.
    let input = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: other\n  labels:\n    tier: web\nstringData:\n  password: new\n  token: t0k3n\n";
    let out = env
        .ksec()
        .args(["seal", "--cert"])
        .arg(&c.cert)
        .args(["--merge-into", "app.sealed.yaml"])
        .write_stdin(input)
        .output()
        .unwrap();
    ok(&out, "seal --merge-into");
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("its values are sealed for app.sealed.yaml's scope, cluster-wide")
    );
    let after = env.read("app.sealed.yaml");
    assert!(after.starts_with("# the app's secrets\n"));
    assert!(
        after
            .ends_with("---\napiVersion: v1\nkind: ConfigMap   # untouched\nmetadata: {name: x}\n")
    );
    let doc = &yaml_docs(&after)[0];
    assert_eq!(
        doc["spec"]["encryptedData"]["keep"], keep_before,
        "untouched value"
    );
    assert_eq!(doc["metadata"]["name"], "app");
    assert_eq!(
        doc["spec"]["template"]["metadata"]["labels"],
        json!({"tier": "web"})
    );
    let clear = ok(&unseal(&env, &c.key, &[], &after), "unseal");
    assert_eq!(
        secret_data(&clear)["prod/app"],
        json!({
            "keep": B64.encode("kept"),
            "password": B64.encode("new"),
            "token": B64.encode("t0k3n"),
        })
    );
    // A --scope that is not the target's is refused; nothing changes.
    let out = env
        .ksec()
        .args(["seal", "--scope", "strict", "--cert"])
        .arg(&c.cert)
        .args(["--merge-into", "app.sealed.yaml"])
        .write_stdin(input)
        .output()
        .unwrap();
    refused(
        &out,
        2,
        "--scope strict does not match app.sealed.yaml, which is cluster-wide",
    );
    assert_eq!(env.read("app.sealed.yaml"), after);
}

#[test]
fn output_formats_in_place_and_streams() {
    let c = controller();
    let env = TestEnv::new();
    let secret = secret_yaml("db", Some("prod"), None);
    // -o json: kubeseal's JSON, `kind` first.
    let json = ok(
        &seal(&env, &c.cert, &["-o", "json"], &secret),
        "seal -o json",
    );
    let body = json.trim_start_matches("# the database credentials\n");
    assert!(body.starts_with(
        "{\n  \"kind\": \"SealedSecret\",\n  \"apiVersion\": \"bitnami.com/v1alpha1\",\n"
    ));
    let parsed: Value = serde_json::from_str(body).unwrap();
    assert_eq!(parsed["spec"]["template"]["type"], "Opaque");
    // -o FILE.json writes JSON; --format json into any file; -o yaml.
    ok(
        &seal(&env, &c.cert, &["-o", "s.json"], &secret),
        "seal -o s.json",
    );
    assert!(
        env.read("s.json")
            .contains("\n{\n  \"kind\": \"SealedSecret\"")
    );
    ok(
        &seal(
            &env,
            &c.cert,
            &["--format", "json", "-o", "s.yaml"],
            &secret,
        ),
        "--format json",
    );
    assert!(env.read("s.yaml").contains("\n{\n  \"kind\""));
    let yaml = ok(&seal(&env, &c.cert, &["-o", "yaml"], &secret), "-o yaml");
    assert!(yaml.contains("\napiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\n"));
    let out = seal(&env, &c.cert, &["-o", "json", "--format", "yaml"], &secret);
    refused(&out, 2, "-o and --format name different formats");
    // A stream: every other document stays byte for byte; -i rewrites it.
    let head = "---\n# config first\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}   # flow\ndata:\n  k: \"v\"\n";
    let tail = "---\n# the end\napiVersion: v1\nkind: Service\nmetadata:\n  name: s\n...\n";
    let stream = format!("{head}---\n{secret}{tail}");
    env.write("stream.yaml", &stream);
    let out = env
        .ksec()
        .args(["seal", "-i", "stream.yaml", "--cert"])
        .arg(&c.cert)
        .output()
        .unwrap();
    ok(&out, "seal -i");
    let after = env.read("stream.yaml");
    assert!(after.starts_with(&format!(
        "{head}---\n# the database credentials\napiVersion: bitnami.com/v1alpha1\n"
    )));
    assert!(after.ends_with(tail));
    assert_eq!(
        peer_open("ref-open", &c.key, &env.path("stream.yaml"))["prod/db"]["values"],
        fixture_values()
    );
    // Several inputs (a directory) print one stream kubectl reads as such.
    fs::create_dir_all(env.path("k8s")).unwrap();
    env.write("k8s/a.yaml", secret_yaml("a", Some("prod"), None));
    env.write("k8s/b.json", r#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "b", "namespace": "prod"}, "data": {"x": "eA=="}}"#);
    let out = env
        .ksec()
        .args(["seal", "k8s", "--cert"])
        .arg(&c.cert)
        .output()
        .unwrap();
    let joined = ok(&out, "seal k8s/");
    let names: Vec<Value> = yaml_docs(&joined)
        .iter()
        .map(|d| d["metadata"]["name"].clone())
        .collect();
    assert_eq!(names, [json!("a"), json!("b")]);
    let clear = ok(&unseal(&env, &c.key, &[], &joined), "unseal the stream");
    assert_eq!(secret_data(&clear)["prod/b"], json!({"x": "eA=="}));
}

#[test]
fn secrets_in_lists_become_sealed_secrets_in_lists_and_back() {
    let c = controller();
    let env = TestEnv::new();
    let list = "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Secret\n    metadata:\n      name: a\n      \
namespace: prod\n    data:\n      x: eA==\n  - apiVersion: v1\n    kind: Secret\n    metadata:\n      name: b\n      \
namespace: prod\n    stringData:\n      y: why\nmetadata:\n  resourceVersion: \"\"\n";
    let sealed = ok(&seal(&env, &c.cert, &[], list), "seal a List");
    let doc = &yaml_docs(&sealed)[0];
    assert_eq!(doc["kind"], "List");
    assert_eq!(doc["items"][1]["kind"], "SealedSecret");
    assert!(sealed.ends_with("metadata:\n  resourceVersion: \"\"\n"));
    let clear = ok(&unseal(&env, &c.key, &[], &sealed), "unseal a List");
    let data = secret_data(&clear);
    assert_eq!(data["prod/a"], json!({"x": "eA=="}));
    assert_eq!(data["prod/b"], json!({"y": B64.encode("why")}));
    // A JSON List of SealedSecrets (kubectl get sealedsecrets -o json): the
    // Secrets are written as JSON where only JSON may stand.
    let one = ok(
        &seal(
            &env,
            &c.cert,
            &["-o", "json"],
            &secret_yaml("a", Some("prod"), None),
        ),
        "seal",
    );
    let one = one.trim_start_matches("# the database credentials\n");
    let json_list = format!("{{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [{one}]}}\n");
    let clear = ok(&unseal(&env, &c.key, &[], &json_list), "unseal a JSON List");
    let parsed: Value = serde_json::from_str(&clear).expect("still JSON");
    assert_eq!(parsed["items"][0]["kind"], "Secret");
    assert_eq!(parsed["items"][0]["data"], fixture_values());
    // Secrets in a JSON List are refused for sealing, as for encrypting.
    let json_secrets = r#"{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a", "namespace": "prod"}, "data": {"x": "eA=="}}]}"#;
    refused(
        &seal(&env, &c.cert, &[], json_secrets),
        3,
        "a Secret in a flow-style (JSON) List: ksec seals Secrets",
    );
}

#[test]
fn type_and_immutable_travel_in_the_template_and_every_key_is_tried() {
    let (c, other) = (controller(), other_controller());
    let env = TestEnv::new();
    let input = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: tls\n  namespace: prod\n  finalizers:\n  - example.com/keep\n\
type: kubernetes.io/tls\nimmutable: true\ndata:\n  tls.crt: Y2VydA==\n  tls.key: a2V5\n";
    let sealed = ok(&seal(&env, &c.cert, &["-o", "json"], input), "seal");
    let doc: Value = serde_json::from_str(&sealed).unwrap();
    assert_eq!(doc["spec"]["template"]["type"], "kubernetes.io/tls");
    assert_eq!(doc["spec"]["template"]["immutable"], true);
    assert_eq!(
        doc["spec"]["template"]["metadata"]["finalizers"],
        json!(["example.com/keep"])
    );
    // Several keys, the wrong one first (as a controller with rotated keys):
    // each is tried.
    let keys = format!("{},{}", other.key.display(), c.key_pkcs1.display());
    let out = env
        .ksec()
        .args(["unseal", "-q", "--recovery-key", &keys])
        .arg("--recovery-key")
        .arg(&other.backup)
        .write_stdin(sealed)
        .output()
        .unwrap();
    let clear = yaml_docs(&ok(&out, "unseal with three keys"))[0].clone();
    assert_eq!(clear["type"], "kubernetes.io/tls");
    assert_eq!(clear["immutable"], true);
    assert_eq!(clear["metadata"]["finalizers"], json!(["example.com/keep"]));
    assert_eq!(
        clear["data"],
        json!({"tls.crt": "Y2VydA==", "tls.key": "a2V5"})
    );
}

#[test]
fn templates_render_as_the_controller_renders_them() {
    let c = controller();
    let env = TestEnv::new();
    let sealed = ok(
        &seal(&env, &c.cert, &[], &secret_yaml("db", Some("prod"), None)),
        "seal",
    );
    let with = sealed.replacen(
        "  template:\n",
        "  template:\n    data:\n      dsn: 'postgres://{{ .username }}:{{ index . \"password\" }}@db/{{ \"x\" | upper }}'\n      password: overridden\n",
        1,
    );
    let clear = ok(
        &unseal(&env, &c.key, &[], &with),
        "unseal with template.data",
    );
    let data = &secret_data(&clear)["prod/db"];
    assert_eq!(data["dsn"], B64.encode("postgres://root:s3cr3t@db/X"));
    assert_eq!(
        data["password"],
        B64.encode("overridden"),
        "a template wins over a value"
    );
    assert_eq!(data["binary"], fixture_values()["binary"]);
}

#[test]
fn introspect_and_check_recognise_sealed_secrets() {
    let (a, b, small) = (controller(), other_controller(), small_controller());
    let env = TestEnv::new();
    let sealed = ok(
        &seal(
            &env,
            &a.cert,
            &["--scope", "namespace-wide"],
            &secret_yaml("db", Some("prod"), None),
        ),
        "seal",
    );
    env.write("db.sealed.yaml", &sealed);
    let keys = format!("{},{}", b.key.display(), a.key_pkcs1.display());
    let out = env
        .ksec()
        .args([
            "introspect",
            "--json",
            "db.sealed.yaml",
            "--recovery-key",
            &keys,
            "--cert",
        ])
        .arg(&a.cert)
        .arg("--cert")
        .arg(&small.cert)
        .output()
        .unwrap();
    let info: Value = serde_json::from_str(&ok(&out, "introspect --json")).unwrap();
    let doc = &info["documents"][0];
    assert_eq!(doc["state"], "sealed-secret");
    let s = &doc["sealed_secret"];
    assert_eq!(s["scope"], "namespace-wide");
    assert_eq!(s["label"], "prod");
    assert_eq!(
        s["values"],
        json!(["binary", "empty", "password", "unicode", "username"])
    );
    assert_eq!(s["key_bits"], 4096);
    assert_eq!(s["opens_with"], a.key_pkcs1.display().to_string());
    assert_eq!(s["certs"][0]["fits"], true);
    assert_eq!(s["certs"][1]["fits"], false, "a 2048-bit key cannot be it");
    let out = env
        .ksec()
        .args(["introspect", "db.sealed.yaml"])
        .output()
        .unwrap();
    let text = ok(&out, "introspect");
    assert!(text.contains("  SealedSecret: scope namespace-wide (label prod)\n  values: 5 sealed (binary, empty, password, unicode, username), 0 templated\n  sealed for a 4096-bit RSA key\n"), "{text}");
    // check: SealedSecrets are no clear text; damaged ones are problems.
    let out = env
        .ksec()
        .args(["check", "db.sealed.yaml"])
        .output()
        .unwrap();
    ok(&out, "check");
    let blob = yaml_docs(&sealed)[0]["spec"]["encryptedData"]["password"]
        .as_str()
        .unwrap()
        .to_owned();
    env.write("bad.sealed.yaml", sealed.replace(&blob, &blob[..40]));
    let out = env
        .ksec()
        .args(["check", "--format", "json", "bad.sealed.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["problems"][0]["code"], "sealed-damaged");
}

/// A static file server on 127.0.0.1 (Python's http.server), optionally
/// over TLS; stopped when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, tls: Option<(&Path, &Path)>) -> Server {
    let script = "import http.server, ssl, sys, functools\n\
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])\n\
httpd = http.server.HTTPServer(('127.0.0.1', 0), handler)\n\
if len(sys.argv) > 2:\n    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n    ctx.load_cert_chain(sys.argv[2], sys.argv[3])\n    \
httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)\n\
print(httpd.server_address[1], flush=True)\nhttpd.serve_forever()\n";
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script]).arg(dir);
    if let Some((cert, key)) = tls {
        cmd.arg(cert).arg(key);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("the server's port");
    Server { child, port }
}

#[test]
fn certificates_from_urls_files_and_the_environment() {
    let c = controller();
    let env = TestEnv::new();
    let secret = secret_yaml("db", Some("prod"), None);
    let web = env.path("web");
    fs::create_dir_all(&web).unwrap();
    fs::copy(&c.cert, web.join("cert.pem")).unwrap();
    let check = |sealed: &str| {
        env.write("s.yaml", sealed);
        assert_eq!(
            peer_open("ref-open", &c.key, &env.path("s.yaml"))["prod/db"]["values"],
            fixture_values()
        );
    };
    // http:// and file://, and SEALED_SECRETS_CERT.
    let server = serve(&web, None);
    let url = format!("http://127.0.0.1:{}/cert.pem", server.port);
    let out = env
        .ksec()
        .args(["seal", "--cert", &url])
        .write_stdin(secret.as_str())
        .output()
        .unwrap();
    check(&ok(&out, "seal --cert http://"));
    let out = env
        .ksec()
        .args(["seal", "--cert", &format!("file://{}", c.cert.display())])
        .write_stdin(secret.as_str())
        .output()
        .unwrap();
    check(&ok(&out, "seal --cert file://"));
    let out = env
        .ksec()
        .arg("seal")
        .env("SEALED_SECRETS_CERT", &c.cert)
        .write_stdin(secret.as_str())
        .output()
        .unwrap();
    check(&ok(&out, "seal with SEALED_SECRETS_CERT"));
    let out = env
        .ksec()
        .args([
            "seal",
            "--cert",
            &format!("http://127.0.0.1:{}/missing.pem", server.port),
        ])
        .write_stdin(secret.as_str())
        .output()
        .unwrap();
    refused(
        &out,
        7,
        "cannot fetch the certificate: the server answered 404",
    );
    drop(server);
    // https://, verified against the system's roots (SSL_CERT_FILE names the test CA as the roots).
    let ca = env.path("ca.pem");
    let (srv_key, srv_csr, srv_cert, ext) = (
        env.path("srv.key"),
        env.path("srv.csr"),
        env.path("srv.pem"),
        env.path("ext.cnf"),
    );
    let p = |x: &Path| x.to_str().unwrap().to_owned();
    for args in [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test CA",
            "-keyout",
            &p(&env.path("ca.key")),
            "-out",
            &p(&ca),
        ],
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &p(&srv_key),
            "-out",
            &p(&srv_csr),
        ],
    ] {
        ok(&run(Command::new("openssl").args(&args), None), "openssl");
    }
    fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    ok(
        &run(
            Command::new("openssl").args([
                "x509",
                "-req",
                "-in",
                &p(&srv_csr),
                "-CA",
                &p(&ca),
                "-CAkey",
                &p(&env.path("ca.key")),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &p(&ext),
                "-out",
                &p(&srv_cert),
            ]),
            None,
        ),
        "openssl x509 -req",
    );
    let server = serve(&web, Some((&srv_cert, &srv_key)));
    let url = format!("https://127.0.0.1:{}/cert.pem", server.port);
    let out = env
        .ksec()
        .env("SSL_CERT_FILE", &ca)
        .args(["seal", "--cert", &url])
        .write_stdin(secret.as_str())
        .output()
        .unwrap();
    check(&ok(&out, "seal --cert https:// with the test CA"));
    let out = env
        .ksec()
        .env("SSL_CERT_FILE", &c.cert)
        .args(["seal", "--cert", &url])
        .write_stdin(secret.as_str())
        .output()
        .unwrap();
    refused(&out, 7, "cannot fetch the certificate");
}
