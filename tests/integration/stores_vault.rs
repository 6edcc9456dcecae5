//! Vault KV v1 and v2 as secret stores, against the real OpenBao dev
//! server (`bao server -dev`, the shared server of bao.rs): ESO and KES
//! shapes with their golden Secrets, KV v1, a KV v2 version pin, find,
//! import → decrypt, push → resolve, and the errors.

use serde_json::json;

use crate::bao::Bao;
use crate::stores::{Stores, encrypted_secret, fails, golden, golden_dir, secret_data, unique};
use crate::support::ok_stdout;

/// ksec with the dev server as VAULT_ADDR and `token`.
fn vault_env(token: &str) -> (Stores, &'static Bao, String) {
    let bao = Bao::shared();
    let s = Stores::with_endpoint("http://127.0.0.1:9");
    (s, bao, token.to_owned())
}

fn ksec(s: &Stores, bao: &Bao, token: &str) -> assert_cmd::Command {
    let mut c = s.ksec();
    c.env("VAULT_ADDR", &bao.addr).env("VAULT_TOKEN", token);
    c
}

/// A KV v1 mount of its own.
fn kv1_mount(bao: &Bao) -> String {
    let mount = unique("kv1");
    bao.admin()
        .post(
            &format!("sys/mounts/{mount}"),
            &json!({"type": "kv", "options": {"version": "1"}}),
        )
        .unwrap();
    mount
}

fn store(name: &str, bao: &Bao, path: &str, version: &str) -> String {
    format!(
        "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: {name}, namespace: apps}}\nspec:\n  provider:\n    vault:\n      server: \"{}\"\n      path: {path}\n      version: {version}\n      auth: {{tokenSecretRef: {{name: vault-token, key: token}}}}\n",
        bao.addr
    )
}

#[test]
fn golden_externalsecrets_against_openbao() {
    let (s, bao, token) = vault_env("root");
    let admin = bao.admin();
    admin
        .post(
            "secret/data/golden-e2/app/config",
            &json!({"data": {"user": "bob", "pass": "s3cr3t", "port": 8080, "big": 12345678901234567890u64, "nested": {"z": 1, "a": "<x>"}}}),
        )
        .unwrap();
    admin
        .post(
            "secret/data/golden-k3/credentials",
            &json!({"data": {"password": "s3cr3t", "api-key": "k", "num": 11}}),
        )
        .unwrap();
    let stores = s.write("vault-store.yaml", &store("vault", bao, "secret", "v2"));
    let out = ksec(&s, bao, &token)
        .args(["resolve", "--store"])
        .arg(&stores)
        .arg(golden_dir().join("eso-vault.yaml"))
        .output()
        .unwrap();
    let text = ok_stdout(&out);
    golden("eso-vault", &text);
    let data = secret_data(&text);
    let get = |k: &str| {
        data.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    // float64 in extract, re-marshalled (sorted, HTML-escaped) whole values.
    assert_eq!(get("app/big"), b"12345678901234567000");
    assert_eq!(get("app/nested"), br#"{"a":"\u003cx\u003e","z":1}"#);
    assert_eq!(get("app/url"), b"postgres://bob:s3cr3t@db:8080/app");
    // The notes' model kept the literal 12345678901234567890 here; the real
    // server stores KV data through float64 and answers 12345678901234567000,
    // so that is what ESO (and ksec) read.
    assert_eq!(
        get("app/whole"),
        br#"{"big":12345678901234567000,"nested":{"a":"\u003cx\u003e","z":1},"pass":"s3cr3t","port":8080,"user":"bob"}"#
    );
    let out = ksec(&s, bao, &token)
        .arg("resolve")
        .arg(golden_dir().join("kes-vault.yaml"))
        .output()
        .unwrap();
    let text = ok_stdout(&out);
    golden("kes-vault", &text);
    let data = secret_data(&text);
    let get = |k: &str| {
        data.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get("hello-vault-service/username"), b"vault-user");
    assert_eq!(get("hello-vault-service/num"), b"11");
}

#[test]
fn kv_v1_and_a_kv_v2_version_pin_and_find() {
    let (s, bao, token) = vault_env("root");
    let admin = bao.admin();
    let mount = kv1_mount(bao);
    let p = unique("pin");
    admin
        .post(
            &format!("{mount}/{p}/db"),
            &json!({"user": "v1-user", "pass": "v1-pass"}),
        )
        .unwrap();
    admin
        .post(&format!("{mount}/{p}/sub/extra"), &json!({"k": "deep"}))
        .unwrap();
    admin
        .post(
            &format!("secret/data/{p}/db"),
            &json!({"data": {"pass": "first"}}),
        )
        .unwrap();
    admin
        .post(
            &format!("secret/data/{p}/db"),
            &json!({"data": {"pass": "second"}}),
        )
        .unwrap();
    let es = format!(
        "{}---\n{}---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: mixed, namespace: apps}}\nspec:\n  secretStoreRef: {{name: v2}}\n  data:\n  - {{secretKey: pinned, remoteRef: {{key: {p}/db, property: pass, version: \"1\"}}}}\n  - {{secretKey: current, remoteRef: {{key: {p}/db, property: pass}}}}\n  - {{secretKey: v1-user, remoteRef: {{key: {p}/db, property: user}}, sourceRef: {{storeRef: {{name: v1}}}}}}\n  dataFrom:\n  - find: {{path: {p}, name: {{regexp: \".\"}}}}\n    sourceRef: {{storeRef: {{name: v1}}}}\n---\n\
apiVersion: kubernetes-client.io/v1\nkind: ExternalSecret\nmetadata: {{name: kes-v1, namespace: apps}}\nspec:\n  backendType: vault\n  kvVersion: 1\n  data:\n  - {{name: pass, key: {mount}/{p}/db, property: pass}}\n",
        store("v2", bao, "secret", "v2"),
        store("v1", bao, &mount, "v1"),
    );
    let out = ksec(&s, bao, &token)
        .args(["-v", "resolve"])
        .arg(s.write("mixed.yaml", &es))
        .output()
        .unwrap();
    let text = ok_stdout(&out);
    let data = secret_data(&text);
    let conv = p.replace('/', "_");
    let want: Vec<(String, Vec<u8>)> = vec![
        ("kes-v1/pass".into(), b"v1-pass".to_vec()),
        ("mixed/current".into(), b"second".to_vec()),
        (
            format!("mixed/{conv}_db"),
            br#"{"pass":"v1-pass","user":"v1-user"}"#.to_vec(),
        ),
        (
            format!("mixed/{conv}_sub_extra"),
            br#"{"k":"deep"}"#.to_vec(),
        ),
        ("mixed/pinned".into(), b"first".to_vec()),
        ("mixed/v1-user".into(), b"v1-user".to_vec()),
    ];
    assert_eq!(data, want, "{text}");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains(&format!("secret/data/{p}/db?version=1")),
        "{log}"
    );
    assert!(!log.contains("root"), "no token in traces: {log}");
    // A version that does not exist.
    let missing = es.replace("version: \"1\"", "version: \"9\"");
    let out = ksec(&s, bao, &token)
        .arg("resolve")
        .arg(s.write("missing.yaml", &missing))
        .output()
        .unwrap();
    fails(&out, 9, &["spec.data[0]", "no version 9"]);
}

#[test]
fn missing_secret_and_denied_path() {
    let (s, bao, _) = vault_env("root");
    let admin = bao.admin();
    let p = unique("deny");
    admin
        .post(
            &format!("secret/data/{p}/open"),
            &json!({"data": {"k": "v"}}),
        )
        .unwrap();
    admin
        .put(
            &format!("sys/policies/acl/{p}"),
            &json!({"policy": format!("path \"secret/data/{p}/open\" {{ capabilities = [\"read\"] }}\n")}),
        )
        .unwrap();
    let token = admin
        .post("auth/token/create", &json!({"policies": [p], "ttl": "10m"}))
        .unwrap()
        .unwrap()
        .pointer("/auth/client_token")
        .and_then(|t| t.as_str())
        .unwrap()
        .to_owned();
    let es = |key: &str| {
        format!(
            "{}---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: d, namespace: apps}}\nspec:\n  secretStoreRef: {{name: v}}\n  data:\n  - {{secretKey: k, remoteRef: {{key: {key}, property: k}}}}\n",
            store("v", bao, "secret", "v2")
        )
    };
    let ok = ok_stdout(
        &ksec(&s, bao, &token)
            .arg("resolve")
            .arg(s.write("ok.yaml", &es(&format!("{p}/open"))))
            .output()
            .unwrap(),
    );
    assert_eq!(secret_data(&ok), vec![("d/k".to_owned(), b"v".to_vec())]);
    let out = ksec(&s, bao, &token)
        .arg("resolve")
        .arg(s.write("denied.yaml", &es(&format!("{p}/closed"))))
        .output()
        .unwrap();
    fails(
        &out,
        9,
        &["spec.data[0]", "Vault KV v2 `secret`", "permission denied"],
    );
    let out = ksec(&s, bao, "root")
        .arg("resolve")
        .arg(s.write("gone.yaml", &es(&format!("{p}/gone"))))
        .output()
        .unwrap();
    fails(&out, 9, &["spec.data[0]", "does not exist"]);
}

#[test]
fn import_then_decrypt_and_push_then_resolve() {
    let (s, bao, token) = vault_env("root");
    let admin = bao.admin();
    let mount = kv1_mount(bao);
    let p = unique("io");
    admin
        .post(
            &format!("secret/data/{p}/app"),
            &json!({"data": {"user": "admin", "pass": "p@ss w0rd", "port": 5432}}),
        )
        .unwrap();
    admin
        .post(
            &format!("{mount}/{p}/app"),
            &json!({"user": "one", "pass": "two"}),
        )
        .unwrap();
    let age = format!("age:{}", s.env.recipient);
    for (from, want) in [
        (
            format!("vault:secret/{p}/app"),
            vec![("pass", "p@ss w0rd"), ("port", "5432"), ("user", "admin")],
        ),
        (
            format!("vault:{mount}/{p}/app"),
            vec![("pass", "two"), ("user", "one")],
        ),
    ] {
        let enc = ok_stdout(
            &ksec(&s, bao, &token)
                .args(["import", "--from", &from, "--name", "app", "-k", &age])
                .output()
                .unwrap(),
        );
        assert!(!enc.contains("p@ss") && !enc.contains("admin"), "{enc}");
        let dec = ok_stdout(&s.ksec().arg("decrypt").write_stdin(enc).output().unwrap());
        let want: Vec<(String, Vec<u8>)> = want
            .iter()
            .map(|(k, v)| (format!("app/{k}"), v.as_bytes().to_vec()))
            .collect();
        assert_eq!(secret_data(&dec), want, "{from}");
    }
    // push → resolve, on both versions; a second push changes nothing.
    let file = encrypted_secret(&s, "pushed");
    let original = secret_data(&ok_stdout(
        &s.ksec().arg("decrypt").arg(&file).output().unwrap(),
    ));
    for to in [
        format!("vault:secret/{p}/pushed"),
        format!("vault:{mount}/{p}/pushed"),
    ] {
        let out = ksec(&s, bao, &token)
            .args(["push", "--emit-externalsecret", "--to", &to])
            .arg(&file)
            .output()
            .unwrap();
        let es = ok_stdout(&out);
        assert!(es.contains(&format!("server: \"{}\"", bao.addr)), "{es}");
        let resolved = ok_stdout(
            &ksec(&s, bao, &token)
                .arg("resolve")
                .arg(s.write(&format!("{}.yaml", unique("es")), &es))
                .output()
                .unwrap(),
        );
        assert_eq!(secret_data(&resolved), original, "{to}");
        let again = ksec(&s, bao, &token)
            .args(["push", "--to", &to])
            .arg(&file)
            .output()
            .unwrap();
        ok_stdout(&again);
        assert!(String::from_utf8_lossy(&again.stderr).contains("unchanged"));
    }
    let version = admin
        .get(&format!("secret/metadata/{p}/pushed"))
        .unwrap()
        .unwrap()
        .pointer("/data/current_version")
        .and_then(|v| v.as_u64());
    assert_eq!(version, Some(1), "an unchanged push writes no new version");
    // A mount that is not KV.
    let out = ksec(&s, bao, &token)
        .args([
            "import",
            "--from",
            "vault:transit/x",
            "--name",
            "n",
            "-k",
            &age,
        ])
        .output()
        .unwrap();
    fails(&out, 9, &["not a KV secrets engine mount"]);
}
