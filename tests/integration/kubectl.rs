//! `ksec decrypt … | kubectl …` with the real kubectl of this machine,
//! pointed by a test kubeconfig at the API stand-in (see `apiserver.rs` for
//! why a stand-in: no API server can run here). The assertions are about
//! what kubectl *sent*: the decrypted values, byte for byte.

use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use crate::apiserver::{ApiServer, Request};
use crate::support::{TestEnv, ok_stdout};

/// A test environment with its own API stand-in and kubeconfig.
pub struct Cluster {
    pub env: TestEnv,
    pub api: ApiServer,
}

/// Both ends of a pipe.
pub struct Piped {
    pub ksec: Output,
    pub kubectl: Output,
}

impl Piped {
    pub fn ksec_stderr(&self) -> String {
        String::from_utf8_lossy(&self.ksec.stderr).into_owned()
    }

    pub fn kubectl_says(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.kubectl.stdout),
            String::from_utf8_lossy(&self.kubectl.stderr)
        )
    }

    /// Both succeeded; returns kubectl's stdout.
    pub fn ok(&self) -> String {
        assert!(
            self.ksec.status.success(),
            "ksec failed: {}",
            self.ksec_stderr()
        );
        assert!(
            self.kubectl.status.success(),
            "kubectl failed: {}",
            self.kubectl_says()
        );
        String::from_utf8_lossy(&self.kubectl.stdout).into_owned()
    }
}

impl Cluster {
    pub fn new() -> Self {
        let env = TestEnv::new();
        let api = ApiServer::start();
        env.write("kubeconfig", api.kubeconfig());
        Cluster { env, api }
    }

    /// The real kubectl, isolated: HOME (so its discovery cache) and
    /// KUBECONFIG inside the test directory, nothing else inherited but PATH.
    pub fn kubectl(&self) -> Command {
        let mut c = Command::new("kubectl");
        c.current_dir(self.env.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.env.path("home"))
            .env("KUBECONFIG", self.env.path("kubeconfig"));
        c
    }

    /// `ksec KSEC_ARGS | kubectl KUBECTL_ARGS`, through a real pipe.
    pub fn pipe(&self, ksec_args: &[&str], kubectl_args: &[&str]) -> Piped {
        self.pipe_cmd(
            {
                let mut c = self.env.ksec_std();
                c.args(ksec_args);
                c
            },
            kubectl_args,
        )
    }

    /// `PRODUCER | kubectl KUBECTL_ARGS`, through a real pipe.
    pub fn pipe_cmd(&self, mut producer: Command, kubectl_args: &[&str]) -> Piped {
        let mut p = producer
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the producer");
        let kubectl = self
            .kubectl()
            .args(kubectl_args)
            .stdin(Stdio::from(p.stdout.take().unwrap()))
            .output()
            .expect("kubectl must be installed (it comes with the machine image)");
        let ksec = p.wait_with_output().unwrap();
        Piped { ksec, kubectl }
    }

    /// Encrypts `text` to the test key into `name`.
    pub fn encrypted(&self, name: &str, text: &str) {
        self.env.write(name, self.env.encrypt(text));
    }

    /// The write requests kubectl made for `resource`.
    pub fn writes_to(&self, resource: &str) -> Vec<Request> {
        self.api
            .writes()
            .into_iter()
            .filter(|r| r.path.contains(&format!("/{resource}")))
            .collect()
    }
}

fn annotation(obj: &Value) -> Option<&str> {
    obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].as_str()
}

const DB: &str = "\
# db credentials — a multi-byte comment before the first value
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
type: Opaque
data:
  username: YWRtaW4=
  password: czNjcjN0LXBAc3N3MHJkIQ==
";

#[test]
fn apply_sends_the_decrypted_values_of_a_single_secret() {
    let c = Cluster::new();
    c.encrypted("db.yaml", DB);
    let p = c.pipe(&["decrypt", "db.yaml"], &["apply", "-f", "-"]);
    assert_eq!(p.ok(), "secret/db created\n");

    let writes = c.api.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    let post = &writes[0];
    assert_eq!(post.method, "POST");
    assert_eq!(post.path, "/api/v1/namespaces/prod/secrets");
    let sent = post.json();
    assert_eq!(sent["data"]["username"], "YWRtaW4=");
    assert_eq!(sent["data"]["password"], "czNjcjN0LXBAc3N3MHJkIQ==");
    assert_eq!(sent["type"], "Opaque");
    // The stand-in decoded them as the API server does.
    let stored = c.api.object("secrets", "prod", "db").unwrap();
    assert_eq!(
        B64.decode(stored["data"]["password"].as_str().unwrap())
            .unwrap(),
        b"s3cr3t-p@ssw0rd!"
    );
    // What the warning is about: client-side apply kept a clear copy in an
    // annotation, and ksec said so because its stdout was a pipe.
    let copy = annotation(&sent).expect("last-applied-configuration");
    assert!(copy.contains("czNjcjN0LXBAc3N3MHJkIQ=="), "{copy}");
    let stderr = p.ksec_stderr();
    assert!(
        stderr.contains("last-applied-configuration") && stderr.contains("--server-side"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("warning").count(), 1, "{stderr}");
}

#[test]
fn apply_sends_a_stream_with_a_configmap_string_data_and_binary_data() {
    let c = Cluster::new();
    let binary: Vec<u8> = (0..=255u8).rev().collect();
    let stream = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: \"0755\"\n  greeting: hello\n\
---\n# app credentials\napiVersion: v1\nkind: Secret\nmetadata:\n  name: app\nstringData:\n  \
config.yaml: |\n    host: db.internal\n    password: \"x: y # not a comment\"\n  token: \" tab\\t and ünïcödé 🔑 \"\n  \
empty: \"\"\n  flag: \"yes\"\n\
---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: blob\ntype: Opaque\ndata:\n  key.bin: {}\n",
        B64.encode(&binary)
    );
    c.encrypted("stream.yaml", &stream);
    let p = c.pipe(&["decrypt", "stream.yaml"], &["apply", "-f", "-"]);
    assert_eq!(
        p.ok(),
        "configmap/settings created\nsecret/app created\nsecret/blob created\n"
    );

    let cm = &c.writes_to("configmaps")[0].json();
    assert_eq!(cm["data"]["mode"], "0755");
    assert_eq!(cm["data"]["greeting"], "hello");

    let secrets = c.writes_to("secrets");
    assert_eq!(secrets.len(), 2);
    let app = secrets[0].json();
    assert_eq!(
        app["stringData"]["config.yaml"],
        "host: db.internal\npassword: \"x: y # not a comment\"\n"
    );
    assert_eq!(app["stringData"]["token"], " tab\t and ünïcödé 🔑 ");
    assert_eq!(app["stringData"]["empty"], "");
    assert_eq!(app["stringData"]["flag"], "yes");
    assert!(app.get("data").is_none());

    let blob = secrets[1].json();
    assert_eq!(blob["data"]["key.bin"], B64.encode(&binary).as_str());
    let stored = c.api.object("secrets", "default", "blob").unwrap();
    assert_eq!(
        B64.decode(stored["data"]["key.bin"].as_str().unwrap())
            .unwrap(),
        binary,
        "the bytes arrive unchanged"
    );
    // stringData became data on the server, as on a real one.
    let stored = c.api.object("secrets", "default", "app").unwrap();
    assert_eq!(stored["data"]["flag"], B64.encode("yes").as_str());
}

#[test]
fn re_apply_patches_only_what_changed() {
    let c = Cluster::new();
    c.encrypted("db.yaml", DB);
    c.pipe(&["decrypt", "db.yaml"], &["apply", "-f", "-"]).ok();

    // Unchanged: kubectl compares with the stored object and sends nothing.
    c.api.clear_requests();
    let p = c.pipe(&["decrypt", "db.yaml"], &["apply", "-f", "-"]);
    assert_eq!(p.ok(), "secret/db unchanged\n");
    assert!(c.api.writes().is_empty());

    // A new password, encrypted with the same key: a patch with the new value.
    let changed = DB.replace("czNjcjN0LXBAc3N3MHJkIQ==", "bmV3LXBhc3M=");
    c.env.write("db.yaml", c.env.encrypt(&changed));
    let p = c.pipe(&["decrypt", "db.yaml"], &["apply", "-f", "-"]);
    assert_eq!(p.ok(), "secret/db configured\n");
    let writes = c.api.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].method, "PATCH");
    assert_eq!(writes[0].path, "/api/v1/namespaces/prod/secrets/db");
    assert!(writes[0].content_type.contains("strategic-merge-patch"));
    let patch = writes[0].json();
    assert_eq!(patch["data"]["password"], "bmV3LXBhc3M=");
    assert!(patch["data"].get("username").is_none(), "{patch}");
    let stored = c.api.object("secrets", "prod", "db").unwrap();
    assert_eq!(stored["data"]["password"], "bmV3LXBhc3M=");
}

#[test]
fn server_side_apply_sends_the_values_and_keeps_no_clear_copy() {
    let c = Cluster::new();
    c.encrypted("db.yaml", DB);
    let p = c.pipe(
        &["decrypt", "-q", "db.yaml"],
        &["apply", "--server-side", "-f", "-"],
    );
    assert_eq!(p.ok(), "secret/db serverside-applied\n");
    assert_eq!(p.ksec_stderr(), "", "--quiet");
    let writes = c.api.writes();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].method, "PATCH");
    assert!(
        writes[0]
            .content_type
            .starts_with("application/apply-patch")
    );
    let sent = writes[0].json();
    assert_eq!(sent["data"]["password"], "czNjcjN0LXBAc3N3MHJkIQ==");
    assert!(annotation(&sent).is_none(), "{sent}");
    assert!(c.api.object("secrets", "prod", "db").is_some());
}

#[test]
fn server_dry_run_sends_the_values_and_stores_nothing() {
    let c = Cluster::new();
    c.encrypted("db.yaml", DB);
    let p = c.pipe(
        &["decrypt", "db.yaml"],
        &["apply", "--dry-run=server", "-f", "-"],
    );
    assert_eq!(p.ok(), "secret/db created (server dry run)\n");
    let writes = c.api.writes();
    assert_eq!(writes.len(), 1);
    assert!(writes[0].dry_run(), "{:?}", writes[0]);
    assert_eq!(writes[0].json()["data"]["username"], "YWRtaW4=");
    assert_eq!(c.api.object_count(), 0);
}

#[test]
fn create_sends_the_values_and_refuses_an_existing_secret() {
    let c = Cluster::new();
    c.encrypted("db.yaml", DB);
    let p = c.pipe(&["decrypt", "db.yaml"], &["create", "-f", "-"]);
    assert_eq!(p.ok(), "secret/db created\n");
    let sent = c.api.writes()[0].json();
    assert_eq!(sent["data"]["password"], "czNjcjN0LXBAc3N3MHJkIQ==");
    assert!(annotation(&sent).is_none(), "create keeps no copy: {sent}");

    let again = c.pipe(&["decrypt", "db.yaml"], &["create", "-f", "-"]);
    assert!(again.ksec.status.success());
    assert!(!again.kubectl.status.success());
    assert!(
        again.kubectl_says().contains("AlreadyExists"),
        "{}",
        again.kubectl_says()
    );
}

/// `decrypt -x` writes `data` decoded: for people, not for kubectl. kubectl
/// passes the text on as it is and the API server reads it as base64, so it
/// refuses text that is not base64 and silently stores other bytes for text
/// that happens to be. ksec warns whenever such output leaves for a pipe.
#[test]
fn cleartext_output_is_refused_by_the_server_or_stored_wrong() {
    let c = Cluster::new();
    let secret = |v: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  v: {}\n",
            B64.encode(v)
        )
    };
    c.encrypted("bang.yaml", &secret("s3cr3t!"));
    let p = c.pipe(&["decrypt", "-x", "bang.yaml"], &["apply", "-f", "-"]);
    assert!(p.ksec.status.success());
    assert!(!p.kubectl.status.success());
    assert!(
        p.kubectl_says().contains("illegal base64"),
        "{}",
        p.kubectl_says()
    );
    assert_eq!(c.api.object_count(), 0);
    let stderr = p.ksec_stderr();
    assert!(
        stderr.contains("--cleartext output is for reading, not for kubectl"),
        "{stderr}"
    );

    c.encrypted("test.yaml", &secret("test"));
    let p = c.pipe(&["decrypt", "-x", "test.yaml"], &["apply", "-f", "-"]);
    p.ok();
    let stored = c.api.object("secrets", "default", "s").unwrap();
    let bytes = B64.decode(stored["data"]["v"].as_str().unwrap()).unwrap();
    assert_ne!(bytes, b"test", "the hazard the warning is about");
    assert_eq!(bytes, B64.decode("test").unwrap());
}

#[test]
fn nothing_is_applied_from_a_file_ksec_cannot_fully_decrypt() {
    let c = Cluster::new();
    c.encrypted("db.yaml", DB);
    let enc = c.env.read("db.yaml");
    // Ciphertext whose kind was edited: ksec does not see a Secret, kubectl would.
    c.env.write(
        "edited.yaml",
        enc.replace("kind: Secret", "kind: ConfigMap"),
    );
    // A value moved to another key: the MAC and the value no longer verify.
    let mut lines: Vec<&str> = enc.lines().collect();
    let (u, pw) = (
        lines
            .iter()
            .position(|l| l.starts_with("  username:"))
            .unwrap(),
        lines
            .iter()
            .position(|l| l.starts_with("  password:"))
            .unwrap(),
    );
    let swapped_u = lines[u].replacen("username", "password", 1);
    let swapped_p = lines[pw].replacen("password", "username", 1);
    lines[u] = &swapped_p;
    lines[pw] = &swapped_u;
    c.env.write("swapped.yaml", lines.join("\n") + "\n");
    // No key that opens it.
    let other = TestEnv::new();
    c.env
        .write("key2.txt", std::fs::read(&other.key_file).unwrap());

    for (file, key, code) in [
        ("edited.yaml", c.env.key_file.clone(), 3),
        ("swapped.yaml", c.env.key_file.clone(), 5),
        ("db.yaml", c.env.path("key2.txt"), 6),
    ] {
        let mut ksec = c.env.ksec_std();
        ksec.args(["decrypt", file]).env("KSEC_AGE_KEY_FILE", key);
        let p = c.pipe_cmd(ksec, &["apply", "-f", "-"]);
        assert_eq!(
            p.ksec.status.code(),
            Some(code),
            "{file}: {}",
            p.ksec_stderr()
        );
        assert!(p.ksec.stdout.is_empty());
        assert!(!p.kubectl.status.success(), "{file}");
        assert!(
            p.kubectl_says().contains("no objects passed to apply"),
            "{file}: {}",
            p.kubectl_says()
        );
        assert!(c.api.writes().is_empty(), "{file}: something was applied");
    }
}

#[test]
fn bom_crlf_and_no_final_newline_stay_exact_and_kubectl_takes_them() {
    let c = Cluster::new();
    // A BOM, CRLF line ends and no final line break: decrypt gives back
    // exactly these bytes (decrypt(encrypt(x)) == x on every output path),
    // and kubectl reads them as they are.
    let first = "\u{feff}apiVersion: v1\r\nkind: Secret\r\nmetadata:\r\n  name: one\r\nstringData:\r\n  a: b";
    c.encrypted("one.yaml", first);
    let out = ok_stdout(
        &c.env
            .ksec()
            .args(["decrypt", "-q", "one.yaml"])
            .output()
            .unwrap(),
    );
    assert_eq!(out, first);
    ok_stdout(
        &c.env
            .ksec()
            .args(["decrypt", "-i", "one.yaml"])
            .output()
            .unwrap(),
    );
    assert_eq!(c.env.read("one.yaml"), first);
    c.encrypted("one.yaml", first);
    let p = c.pipe(&["decrypt", "-q", "one.yaml"], &["apply", "-f", "-"]);
    assert_eq!(p.ok(), "secret/one created\n");
    assert_eq!(c.writes_to("secrets")[0].json()["stringData"]["a"], "b");
}

#[test]
fn documents_kubectl_would_merge_are_refused() {
    let c = Cluster::new();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v\n";
    let inline =
        "--- {\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"c\"}}\n";
    // encrypt refuses to write such streams in the first place (issue 11)…
    for tail in [format!("...\n{cm}"), inline.to_owned()] {
        let out = c
            .env
            .ksec()
            .arg("encrypt")
            .write_stdin(format!("{DB}{tail}"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("kubectl splits streams only at `---` lines")
        );
    }
    // …and decrypt refuses them when they were put together by hand.
    let db = c.env.encrypt(DB);
    c.env.write("dots.yaml", format!("{db}...\n{cm}"));
    c.env.write("inline.yaml", format!("{db}{inline}"));
    for file in ["dots.yaml", "inline.yaml"] {
        let p = c.pipe(&["decrypt", file], &["apply", "-f", "-"]);
        assert_eq!(p.ksec.status.code(), Some(3), "{file}");
        assert!(
            p.ksec_stderr()
                .contains("document 2: kubectl splits streams only at `---` lines"),
            "{}",
            p.ksec_stderr()
        );
        assert!(c.api.writes().is_empty(), "{file}");
    }
    // What kubectl does with such a stream on its own: the ConfigMap after
    // `...` is dropped without a word. That is why ksec refuses.
    let mut cat = Command::new("cat");
    c.env.write("plain.yaml", format!("{DB}...\n{cm}"));
    cat.arg(c.env.path("plain.yaml"));
    let p = c.pipe_cmd(cat, &["apply", "-f", "-"]);
    assert_eq!(p.ok(), "secret/db created\n");
}

#[test]
fn no_advice_for_a_terminal_file_output_or_a_stream_without_secrets() {
    let c = Cluster::new();
    c.encrypted("db.yaml", DB);
    let out = c
        .env
        .ksec()
        .args(["decrypt", "db.yaml", "-o", "clear.yaml"])
        .output()
        .unwrap();
    ok_stdout(&out);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n";
    let out = c
        .env
        .ksec()
        .arg("decrypt")
        .write_stdin(cm)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("last-applied"), "{stderr}");
}
