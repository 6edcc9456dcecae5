//! ksec inside other tools, each the real one of this machine: the
//! SecretDecryptor generator as a kustomize exec plugin (`kubectl kustomize
//! --enable-alpha-plugins`) and as a KRM function (`kpt fn render` and
//! `kpt fn eval --exec`), and ksec as the kubectl plugin `kubectl ksec`.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::kubectl::Cluster;
use crate::support::{TestEnv, ksec_path};

const DB: &str = "\
# db credentials
apiVersion: v1
kind: Secret
metadata:
  name: db
type: Opaque
data:
  password: czNjcjN0LXBAc3N3MHJkIQ==
stringData:
  url: \"postgres://app:p@ss@db:5432/app?sslmode=require\"
";

const CONFIG: &str = "\
apiVersion: ksec.dev/v1
kind: SecretDecryptor
metadata:
  name: app-secrets
files:
  - secrets/db.yaml
";

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels: {app: app}
    spec:
      containers:
      - name: app
        image: app:1
        envFrom:
        - secretRef:
            name: db
";

fn mkdirs(p: &Path) {
    fs::create_dir_all(p).unwrap();
}

/// An isolated command: HOME, the test key, PATH, and nothing else.
fn isolated(env: &TestEnv, program: &str) -> Command {
    let mut c = Command::new(program);
    c.current_dir(env.dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.path("home"))
        .env("KUBECONFIG", env.path("no-kubeconfig"))
        .env("KSEC_AGE_KEY_FILE", &env.key_file);
    c
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn yaml_docs(s: &str) -> Vec<Value> {
    ksec::manifest::tree::parse_stream(s)
        .unwrap()
        .iter()
        .filter(|d| !d.is_empty_document())
        .map(|d| d.to_json())
        .collect()
}

/// base/ (generator + Deployment) and overlay/ (prefix, labels, a patch of
/// the generated Secret's labels), with the plugin installed as kustomize
/// looks for it: `$KUSTOMIZE_PLUGIN_HOME/ksec.dev/v1/secretdecryptor/SecretDecryptor`.
fn kustomize_tree(env: &TestEnv) {
    let plugin = env.path("plugins/ksec.dev/v1/secretdecryptor");
    mkdirs(&plugin);
    symlink(ksec_path(), plugin.join("SecretDecryptor")).unwrap();
    mkdirs(&env.path("base/secrets"));
    mkdirs(&env.path("overlay"));
    env.write("base/secrets/db.yaml", env.encrypt(DB));
    env.write("base/decrypt.yaml", CONFIG);
    env.write("base/deployment.yaml", DEPLOYMENT);
    env.write(
        "base/kustomization.yaml",
        "resources:\n  - deployment.yaml\ngenerators:\n  - decrypt.yaml\n",
    );
    env.write(
        "overlay/kustomization.yaml",
        "resources:\n  - ../base\nnamePrefix: prod-\nlabels:\n  - pairs:\n      env: prod\n\
patches:\n  - patch: |\n      apiVersion: v1\n      kind: Secret\n      metadata:\n        name: db\n        labels:\n          team: payments\n",
    );
}

fn kustomize(env: &TestEnv, dir: &str) -> Output {
    isolated(env, "kubectl")
        .args(["kustomize", "--enable-alpha-plugins", dir])
        .env("KUSTOMIZE_PLUGIN_HOME", env.path("plugins"))
        .output()
        .expect("kubectl")
}

fn secret_of(docs: &[Value]) -> &Value {
    docs.iter()
        .find(|d| d["kind"] == "Secret")
        .expect("a Secret")
}

#[test]
fn kustomize_exec_plugin_generates_the_decrypted_secret() {
    let env = TestEnv::new();
    kustomize_tree(&env);
    let out = kustomize(&env, "base");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let docs = yaml_docs(&stdout);
    let s = secret_of(&docs);
    assert_eq!(s["metadata"]["name"], "db");
    assert_eq!(s["data"]["password"], "czNjcjN0LXBAc3N3MHJkIQ==");
    assert_eq!(
        s["stringData"]["url"],
        "postgres://app:p@ss@db:5432/app?sslmode=require"
    );
    assert!(!stdout.contains("kubesec"), "{stdout}");
}

#[test]
fn kustomize_overlay_patches_the_generated_secret() {
    let env = TestEnv::new();
    kustomize_tree(&env);
    let out = kustomize(&env, "overlay");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let docs = yaml_docs(&stdout);
    let s = secret_of(&docs);
    assert_eq!(s["metadata"]["name"], "prod-db");
    assert_eq!(s["metadata"]["labels"]["team"], "payments");
    assert_eq!(s["metadata"]["labels"]["env"], "prod");
    assert_eq!(s["data"]["password"], "czNjcjN0LXBAc3N3MHJkIQ==");
    let d = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["secretRef"]["name"],
        "prod-db",
        "kustomize renamed the reference"
    );

    // nameSuffixHash: kustomize appends a content hash and follows it in the
    // reference; the hash changes when a value does.
    env.write(
        "base/decrypt.yaml",
        format!("{CONFIG}nameSuffixHash: true\n"),
    );
    let first = yaml_docs(&text(&kustomize(&env, "overlay")).0);
    let name = secret_of(&first)["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(name.starts_with("prod-db-") && name.len() > 8, "{name}");
    assert!(secret_of(&first)["metadata"].get("annotations").is_none());
    let d = first.iter().find(|d| d["kind"] == "Deployment").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["secretRef"]["name"],
        name.as_str()
    );
    env.write(
        "base/secrets/db.yaml",
        env.encrypt(&DB.replace("czNjcjN0LXBAc3N3MHJkIQ==", "bmV3")),
    );
    let second = yaml_docs(&text(&kustomize(&env, "overlay")).0);
    assert_ne!(secret_of(&second)["metadata"]["name"], name.as_str());
}

#[test]
fn kustomize_build_fails_when_a_file_cannot_be_decrypted() {
    let env = TestEnv::new();
    kustomize_tree(&env);
    let other = TestEnv::new();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "secrets/db.yaml",
            other.encrypt(DB),
            "no available key can open the data key",
        ),
        (
            "secrets/db.yaml",
            env.encrypt(DB).replace("kind: Secret", "kind: ConfigMap"),
            "would store the ciphertext",
        ),
    ];
    for (file, content, needle) in cases {
        env.write(&format!("base/{file}"), content);
        let out = kustomize(&env, "overlay");
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{stdout}");
        assert!(stdout.is_empty());
        assert!(stderr.contains(needle), "{stderr}");
    }
    // Files outside the kustomization root are not read.
    env.write("elsewhere.yaml", env.encrypt(DB));
    env.write(
        "base/decrypt.yaml",
        CONFIG.replace("secrets/db.yaml", "../elsewhere.yaml"),
    );
    let (_, stderr) = text(&kustomize(&env, "base"));
    assert!(stderr.contains("outside the root"), "{stderr}");
}

/// A kpt package: the encrypted Secret is part of it (kpt reads every YAML
/// file), the Kptfile runs ksec as an exec function.
fn kpt_package(env: &TestEnv) -> std::path::PathBuf {
    let pkg = env.path("pkg");
    mkdirs(&pkg.join("secrets"));
    env.write("pkg/secrets/db.yaml", env.encrypt(DB));
    env.write(
        "pkg/decrypt.yaml",
        CONFIG.replace(
            "  name: app-secrets\n",
            "  name: app-secrets\n  annotations:\n    config.kubernetes.io/local-config: \"true\"\n",
        ),
    );
    env.write(
        "pkg/settings.yaml",
        "# settings, comment kept\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: \"0755\"\n",
    );
    env.write(
        "pkg/Kptfile",
        format!(
            "apiVersion: kpt.dev/v1\nkind: Kptfile\nmetadata:\n  name: pkg\n  annotations:\n    config.kubernetes.io/local-config: \"true\"\n\
pipeline:\n  mutators:\n    - exec: \"{} krm-function\"\n      configPath: decrypt.yaml\n",
            ksec_path().display()
        ),
    );
    pkg
}

fn tree_snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(tree_snapshot(&p));
        } else {
            out.push((p.display().to_string(), fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn kpt_fn_render_runs_the_krm_function() {
    let env = TestEnv::new();
    let pkg = kpt_package(&env);
    let before = tree_snapshot(&pkg);
    let out = isolated(&env, "kpt")
        .args(["fn", "render", "--allow-exec", "pkg", "-o", "stdout"])
        .output()
        .expect("kpt");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        tree_snapshot(&pkg),
        before,
        "-o stdout leaves the package alone"
    );
    assert!(stderr.contains("[info]: decrypted 1 object(s)"), "{stderr}");
    let list = &yaml_docs(&stdout)[0];
    let items = list["items"].as_array().unwrap();
    let secrets: Vec<&Value> = items.iter().filter(|i| i["kind"] == "Secret").collect();
    assert_eq!(
        secrets.len(),
        1,
        "the encrypted item was replaced: {stdout}"
    );
    assert_eq!(secrets[0]["data"]["password"], "czNjcjN0LXBAc3N3MHJkIQ==");
    assert_eq!(
        secrets[0]["stringData"]["url"],
        "postgres://app:p@ss@db:5432/app?sslmode=require"
    );
    assert!(!stdout.contains("kubesec:"), "{stdout}");
    let cm = items.iter().find(|i| i["kind"] == "ConfigMap").unwrap();
    assert_eq!(cm["data"]["mode"], "0755");
    assert!(stdout.contains("# settings, comment kept"), "{stdout}");
}

#[test]
fn kpt_fn_eval_reports_errors_as_results() {
    let env = TestEnv::new();
    let pkg = kpt_package(&env);
    let eval = |extra: &[&str]| {
        let mut c = isolated(&env, "kpt");
        c.current_dir(&pkg)
            .args(["fn", "eval", ".", "--exec"])
            .arg(format!("{} krm-function", ksec_path().display()))
            .args(["--fn-config", "decrypt.yaml", "-o", "unwrap"])
            .args(extra);
        c.output().expect("kpt")
    };
    let out = eval(&[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let docs = yaml_docs(&stdout);
    assert_eq!(
        secret_of(&docs)["data"]["password"],
        "czNjcjN0LXBAc3N3MHJkIQ=="
    );

    // A second encrypted Secret that the configuration does not list would
    // reach kubectl as ciphertext: an error result, and no output.
    env.write(
        "pkg/secrets/other.yaml",
        env.encrypt(&DB.replace("name: db", "name: other")),
    );
    let out = eval(&[]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("[error]: items[")
            && stderr.contains("(Secret other, file secrets/other.yaml)"),
        "{stderr}"
    );
    fs::remove_file(pkg.join("secrets/other.yaml")).unwrap();

    // No key: the key error, as a result.
    let other = TestEnv::new();
    let out = eval(&[]).status;
    assert!(out.success());
    let mut c = isolated(&env, "kpt");
    c.current_dir(&pkg)
        .env("KSEC_AGE_KEY_FILE", &other.key_file)
        .args(["fn", "eval", ".", "--exec"])
        .arg(format!("{} krm-function", ksec_path().display()))
        .args(["--fn-config", "decrypt.yaml", "-o", "unwrap"]);
    let out = c.output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("[error]: secrets/db.yaml") && stderr.contains("no available key"),
        "{stderr}"
    );
}

#[test]
fn krm_function_reads_and_writes_resource_lists_directly() {
    let env = TestEnv::new();
    mkdirs(&env.path("secrets"));
    env.write("secrets/db.yaml", env.encrypt(DB));
    let input = format!(
        "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: []\nfunctionConfig:\n{}",
        CONFIG
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>()
    );
    let out = env
        .ksec()
        .arg("krm-function")
        .write_stdin(input)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let list = &yaml_docs(&stdout)[0];
    assert_eq!(
        list["items"][0]["data"]["password"],
        "czNjcjN0LXBAc3N3MHJkIQ=="
    );
    assert_eq!(list["results"][0]["severity"], "info");

    let out = env
        .ksec()
        .arg("krm-function")
        .write_stdin("apiVersion: v1\nkind: List\n")
        .output()
        .unwrap();
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(3));
    let list: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(list["kind"], "ResourceList");
    assert_eq!(list["results"][0]["severity"], "error");
    assert!(
        list["results"][0]["message"]
            .as_str()
            .unwrap()
            .contains("expected `apiVersion: config.kubernetes.io/v1`")
    );
}

#[test]
fn kubectl_finds_and_runs_ksec_as_a_plugin() {
    let c = Cluster::new();
    let bin = c.env.path("bin");
    mkdirs(&bin);
    symlink(ksec_path(), bin.join("kubectl-ksec")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let kubectl = |args: &[&str]| {
        let mut k = c.kubectl();
        k.env("PATH", &path)
            .env("KSEC_AGE_KEY_FILE", &c.env.key_file)
            .args(args);
        k
    };
    let out = kubectl(&["plugin", "list"]).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(&bin.join("kubectl-ksec").display().to_string()),
        "{stdout}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");

    let out = kubectl(&["ksec", "--version"]).output().unwrap();
    assert_eq!(
        text(&out).0,
        format!("ksec {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = kubectl(&["ksec", "--help"]).output().unwrap();
    assert!(
        text(&out)
            .0
            .contains("Usage: kubectl ksec [OPTIONS] <COMMAND>"),
        "{}",
        text(&out).0
    );

    // The whole way: `kubectl ksec decrypt FILE | kubectl apply -f -`.
    c.encrypted("db.yaml", DB);
    let mut producer = kubectl(&["ksec", "decrypt", "db.yaml"]);
    producer.current_dir(c.env.dir.path());
    let p = c.pipe_cmd(producer, &["apply", "--server-side", "-f", "-"]);
    assert_eq!(p.ok(), "secret/db serverside-applied\n");
    let sent = c.api.writes()[0].json();
    assert_eq!(sent["data"]["password"], "czNjcjN0LXBAc3N3MHJkIQ==");
    let stderr = p.ksec_stderr();
    assert!(
        stderr.contains("last-applied-configuration"),
        "the advice comes through kubectl: {stderr}"
    );
}

#[test]
fn the_krew_manifest_describes_this_plugin() {
    let manifest =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/krew/ksec.yaml"))
            .unwrap();
    let doc = &yaml_docs(&manifest)[0];
    assert_eq!(
        doc["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(doc["kind"], "Plugin");
    assert_eq!(doc["metadata"]["name"], "ksec");
    assert_eq!(
        doc["spec"]["version"],
        format!("v{}", env!("CARGO_PKG_VERSION")).as_str()
    );
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    for p in doc["spec"]["platforms"].as_array().unwrap() {
        // Krew links `bin` as kubectl-ksec, the name ksec answers to.
        assert_eq!(p["bin"], "ksec", "{p}");
        assert!(p["uri"].as_str().unwrap().contains(&version), "{p}");
        assert_eq!(p["sha256"].as_str().unwrap().len(), 64, "{p}");
    }
}

/// The same SecretDecryptor over a file in the SOPS format: kustomize's
/// exec plugin and kpt's KRM function decrypt it like a kubesec file (the
/// `sops:` entry never reaches the output).
#[test]
fn plugins_decrypt_sops_files() {
    let env = TestEnv::new();
    kustomize_tree(&env);
    let sops_file = {
        let out = env
            .ksec()
            .args(["encrypt", "--format", "sops", "-k"])
            .arg(format!("age:{}", env.recipient))
            .write_stdin(DB)
            .output()
            .unwrap();
        crate::support::ok_stdout(&out)
    };
    assert!(sops_file.contains("\nsops:\n"));
    env.write("base/secrets/db.yaml", &sops_file);
    let out = kustomize(&env, "overlay");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let docs = yaml_docs(&stdout);
    let s = secret_of(&docs);
    assert_eq!(s["metadata"]["name"], "prod-db");
    assert_eq!(s["data"]["password"], "czNjcjN0LXBAc3N3MHJkIQ==");
    assert!(
        !stdout.contains("sops") && !stdout.contains("ENC["),
        "{stdout}"
    );

    let pkg = kpt_package(&env);
    fs::write(pkg.join("secrets/db.yaml"), &sops_file).unwrap();
    let out = isolated(&env, "kpt")
        .args(["fn", "render", "--allow-exec", "pkg", "-o", "stdout"])
        .output()
        .expect("kpt");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let list = &yaml_docs(&stdout)[0];
    let items = list["items"].as_array().unwrap();
    let secrets: Vec<&Value> = items.iter().filter(|i| i["kind"] == "Secret").collect();
    assert_eq!(secrets.len(), 1, "{stdout}");
    assert_eq!(secrets[0]["data"]["password"], "czNjcjN0LXBAc3N3MHJkIQ==");
    assert!(secrets[0].get("sops").is_none(), "{stdout}");
    assert!(!stdout.contains("ENC[AES256_GCM"), "{stdout}");
}
