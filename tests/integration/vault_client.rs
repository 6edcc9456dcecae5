//! `ksec::vault`, the Vault client, against the real OpenBao dev server
//! (tests/integration/bao.rs): JSON reads and writes at a path (KV v2),
//! namespaces, every login (token, `~/.vault-token`, AppRole, JWT; each
//! once per client), and every failure as the kind callers branch on, in
//! one line without the token.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ksec::net::NetOptions;
use ksec::report::Collect;
use ksec::vault::{Blocking, Client, ErrorKind, Settings};
use serde_json::json;

use crate::bao::{Bao, unique};

/// A client built from these variables (as the environment would give
/// them) and this home directory, with the address `addr`.
fn client(
    addr: &str,
    vars: &[(&str, &str)],
    home: Option<&Path>,
    net: NetOptions,
) -> (Blocking, Rc<Collect>) {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let settings = Settings::from_lookup(|k| map.get(k).cloned(), home, net).unwrap();
    let log = Rc::new(Collect::default());
    let c = Client::new(addr, Rc::new(settings), log.clone()).unwrap();
    (Blocking::new(c).unwrap(), log)
}

fn kv_policy(bao: &Bao, path: &str) -> String {
    let name = unique("kv");
    let hcl = format!(
        "path \"secret/data/{path}\" {{ capabilities = [\"create\", \"read\", \"update\", \"delete\"] }}\n\
         path \"secret/metadata/*\" {{ capabilities = [\"list\"] }}\n"
    );
    bao.admin()
        .put(&format!("sys/policies/acl/{name}"), &json!({"policy": hcl}))
        .unwrap();
    name
}

#[test]
fn kv_reads_writes_lists_and_deletes_with_a_token() {
    let bao = Bao::shared();
    let path = unique("app");
    let policy = kv_policy(bao, &path);
    let token = bao.token(&[&policy], "10m");
    let (c, log) = client(
        &bao.addr,
        &[("VAULT_TOKEN", &token)],
        None,
        NetOptions::default(),
    );
    assert_eq!(c.get(&format!("secret/data/{path}")).unwrap(), None);
    c.post(
        &format!("secret/data/{path}"),
        &json!({"data": {"password": "s3cr3t"}}),
    )
    .unwrap();
    let read = c.get(&format!("/v1/secret/data/{path}")).unwrap().unwrap();
    assert_eq!(read["data"]["data"]["password"], "s3cr3t");
    let keys = c.list("secret/metadata/").unwrap();
    assert!(keys.contains(&path), "{keys:?}");
    c.delete(&format!("secret/data/{path}")).unwrap();
    assert_eq!(c.get(&format!("secret/data/{path}")).unwrap(), None);
    let lines = log.lines.borrow();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("GET ") && l.contains(": 200 in ")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains(&token)),
        "no token in traces"
    );
}

#[test]
fn namespaces_go_in_the_header() {
    let bao = Bao::shared();
    let ns = unique("team");
    let admin = bao.admin();
    admin
        .post(&format!("sys/namespaces/{ns}"), &json!({}))
        .unwrap();
    let (in_ns, _) = client(
        &bao.addr,
        &[("VAULT_TOKEN", &bao.root), ("VAULT_NAMESPACE", &ns)],
        None,
        NetOptions::default(),
    );
    in_ns
        .post(
            "sys/mounts/kv",
            &json!({"type": "kv", "options": {"version": "2"}}),
        )
        .unwrap();
    in_ns
        .post("kv/data/x", &json!({"data": {"v": "in-namespace"}}))
        .unwrap();
    assert_eq!(
        in_ns.get("kv/data/x").unwrap().unwrap()["data"]["data"]["v"],
        "in-namespace"
    );
    // Outside the namespace there is no `kv/` mount.
    let e = admin.get("kv/data/x").unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
}

#[test]
fn token_file_approle_and_jwt_logins_happen_once() {
    let bao = Bao::shared();
    let path = unique("login");
    let policy = kv_policy(bao, &path);
    let secret = format!("secret/data/{path}");
    bao.admin()
        .post(&secret, &json!({"data": {"v": "x"}}))
        .unwrap();

    // ~/.vault-token, when nothing else is set.
    let home = tempfile::tempdir().unwrap();
    let token = bao.token(&[&policy], "10m");
    std::fs::write(home.path().join(".vault-token"), format!("{token}\n")).unwrap();
    let (c, _) = client(&bao.addr, &[], Some(home.path()), NetOptions::default());
    assert_eq!(c.get(&secret).unwrap().unwrap()["data"]["data"]["v"], "x");

    // AppRole: one login, then the calls.
    let (role_id, secret_id) = bao.approle(&[&policy]);
    let (c, log) = client(
        &bao.addr,
        &[("VAULT_ROLE_ID", &role_id), ("VAULT_SECRET_ID", &secret_id)],
        Some(home.path()),
        NetOptions::default(),
    );
    for _ in 0..3 {
        assert_eq!(c.get(&secret).unwrap().unwrap()["data"]["data"]["v"], "x");
    }
    assert_eq!(c.client().calls(), 4, "one login and three reads");
    let lines = log.lines.borrow();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("AppRole login at auth/approle: ok"))
            .count(),
        1,
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains(&secret_id)));

    // JWT (a CI job's OIDC token), from a file.
    let role = bao.jwt_role("repo:acme/app:ref:refs/heads/main", &[&policy]);
    let jwt = bao.jwt(json!({"sub": "repo:acme/app:ref:refs/heads/main"}));
    let jwt_file = home.path().join("oidc-token");
    std::fs::write(&jwt_file, &jwt).unwrap();
    let (c, log) = client(
        &bao.addr,
        &[
            ("KSEC_VAULT_JWT_FILE", jwt_file.to_str().unwrap()),
            ("KSEC_VAULT_ROLE", &role),
        ],
        None,
        NetOptions::default(),
    );
    assert_eq!(c.get(&secret).unwrap().unwrap()["data"]["data"]["v"], "x");
    assert!(
        log.lines
            .borrow()
            .iter()
            .any(|l| l.contains("JWT login at auth/jwt")),
        "{:?}",
        log.lines.borrow()
    );
    assert!(!log.lines.borrow().iter().any(|l| l.contains(&jwt)));
}

#[test]
fn refused_logins_and_tokens_are_told_apart() {
    let bao = Bao::shared();
    let path = unique("deny");
    let policy = kv_policy(bao, &path);
    // A token whose policy does not cover the path: permission denied.
    let token = bao.token(&[&policy], "10m");
    let (c, _) = client(
        &bao.addr,
        &[("VAULT_TOKEN", &token)],
        None,
        NetOptions::default(),
    );
    let e = c.get("secret/data/elsewhere").unwrap_err();
    assert_eq!(e.kind, ErrorKind::PermissionDenied, "{e}");
    assert!(e.message.contains("GET secret/data/elsewhere"), "{e}");
    assert!(e.hint.as_deref().unwrap().contains("policy"), "{e:?}");
    assert!(!e.message.contains(&token));
    // An unknown token: refused as such.
    let (c, _) = client(
        &bao.addr,
        &[("VAULT_TOKEN", "s.notarealtoken000000000")],
        None,
        NetOptions::default(),
    );
    let e = c.get(&format!("secret/data/{path}")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::TokenRejected, "{e}");
    assert!(e.message.contains("VAULT_TOKEN"), "{e}");
    assert!(!e.message.contains("notarealtoken"), "{e}");
    // No token at all.
    let (c, _) = client(&bao.addr, &[], None, NetOptions::default());
    let e = c.get("secret/data/x").unwrap_err();
    assert_eq!(e.kind, ErrorKind::MissingToken, "{e}");
    assert!(e.hint.unwrap().contains("VAULT_TOKEN"));
    // A wrong AppRole secret id.
    let (role_id, _) = bao.approle(&[&policy]);
    let (c, _) = client(
        &bao.addr,
        &[
            ("VAULT_ROLE_ID", &role_id),
            ("VAULT_SECRET_ID", "not-the-secret-id"),
        ],
        None,
        NetOptions::default(),
    );
    let e = c.get("secret/data/x").unwrap_err();
    assert_eq!(e.kind, ErrorKind::LoginFailed, "{e}");
    assert!(e.message.contains("invalid role or secret ID"), "{e}");
    assert!(!e.message.contains("not-the-secret-id"));
    // An expired JWT.
    let role = bao.jwt_role("ci", &[&policy]);
    let jwt = bao.jwt(json!({"sub": "ci", "iat": "-900", "exp": "-600"}));
    let (c, _) = client(
        &bao.addr,
        &[("KSEC_VAULT_JWT", &jwt), ("KSEC_VAULT_ROLE", &role)],
        None,
        NetOptions::default(),
    );
    let e = c.get("secret/data/x").unwrap_err();
    assert_eq!(e.kind, ErrorKind::LoginFailed, "{e}");
    assert!(e.message.to_ascii_lowercase().contains("expired"), "{e}");
    // An unknown mount.
    let e = bao.admin().get("nosuchmount/data/x").unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
}

#[test]
fn unreachable_silent_and_sealed_servers() {
    let fast = NetOptions {
        timeout: Duration::from_secs(1),
        ..NetOptions::default()
    };
    // Nothing listens on the discard port.
    let (c, _) = client("http://127.0.0.1:9", &[("VAULT_TOKEN", "t")], None, fast);
    let e = c.get("secret/data/x").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
    assert!(
        e.message
            .contains("cannot reach Vault at http://127.0.0.1:9"),
        "{e}"
    );
    // A listener that accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", silent.local_addr().unwrap());
    let hold = std::thread::spawn(move || {
        let held: Vec<_> = silent.incoming().take(4).collect();
        std::thread::sleep(Duration::from_secs(10));
        drop(held);
    });
    let (c, _) = client(&addr, &[("VAULT_TOKEN", "t")], None, fast);
    let started = Instant::now();
    let e = c.get("secret/data/x").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(e.message.contains("no answer within 1s"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    drop(hold);
    // A sealed server.
    let own = Bao::start();
    own.admin().put("sys/seal", &json!({})).unwrap();
    let e = own.admin().get("sys/mounts").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Sealed, "{e}");
    own.stop();
}
