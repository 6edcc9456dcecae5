//! Azure Key Vault keys against a **stand-in**: `tests/support/azurekv.py`.
//!
//! Why a stand-in: Microsoft ships no Key Vault emulator that runs here, and
//! tests must not reach Azure. The stand-in implements the documented REST
//! calls the official Azure SDK makes for ksec and does the real work: HTTPS
//! with its own CA (trusted through `SSL_CERT_FILE`, as any rustls or
//! OpenSSL client reads it), Entra ID's token endpoint checking a client
//! secret, a certificate assertion (RS256 with the registered certificate's
//! key and thumbprint) or a federated token (a JWT from a test OIDC issuer),
//! the App Service managed-identity endpoint, Key Vault's authentication
//! challenge, RBAC, key versions and states, and real RSA-OAEP-256 with an
//! RSA-2048 key per version. The tests unwrap ksec's blobs independently
//! with Python `cryptography` and the vault's private key, and read the
//! result with the independent kubesec reader (tests/support/kreader.py).
//!
//! ksec reaches it through documented settings only: the vault URL in the
//! key id, `AZURE_AUTHORITY_HOST`, `IDENTITY_ENDPOINT`, `SSL_CERT_FILE`, and
//! `KSEC_AZURE_VERIFY_CHALLENGE_RESOURCE=false` (the stand-in's host,
//! 127.0.0.1, is not under the challenge's `vault.azure.net`).

use std::process::Command;
use std::time::{Duration, Instant};

use assert_cmd::Command as Cmd;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use serde_json::{Value, json};

use crate::keyservice::{Silent, StandIn, encrypt_fails_cleanly, fails_cleanly, unique};
use crate::support::{TestEnv, kreader, ok_stdout};

const SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: azure-test
data:
  username: YWRtaW4=
stringData:
  password: s3cr3t-from-key-vault
";

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const APP: &str = "11111111-2222-3333-4444-555555555555";

struct Az {
    env: TestEnv,
    kv: StandIn,
    secret: String,
}

impl Az {
    fn new() -> Az {
        let env = TestEnv::new();
        let out = Command::new("python3")
            .arg(crate::support::support_script("oidc.py"))
            .arg("key")
            .arg(env.path("oidc"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let kv = StandIn::start(
            "azurekv.py",
            &[
                env.dir.path().as_os_str(),
                "--tenant".as_ref(),
                TENANT.as_ref(),
                "--issuer-pub".as_ref(),
                env.path("oidc/issuer.pub").as_os_str(),
            ],
        );
        let secret = unique("client-secret");
        kv.control("app", json!({"client_id": APP, "secret": secret}));
        Az { env, kv, secret }
    }

    fn vault(&self) -> String {
        format!("https://127.0.0.1:{}", self.kv.port)
    }

    /// A key of a fresh name, usable by `principals`; (name, first version).
    fn key(&self, principals: &[&str]) -> (String, String) {
        let name = unique("k").replace('-', "");
        let v = self
            .kv
            .control("key", json!({"name": name, "allow": principals}));
        (name, v["version"].as_str().unwrap().to_owned())
    }

    fn id(&self, name: &str, version: &str) -> String {
        if version.is_empty() {
            format!("azkv:{}/keys/{name}", self.vault())
        } else {
            format!("azkv:{}/keys/{name}/{version}", self.vault())
        }
    }

    /// `ksec` that trusts the stand-in's CA and knows its authority, with
    /// no credentials and no Azure CLI.
    fn bare(&self) -> Cmd {
        let mut c = self.env.ksec();
        c.env("SSL_CERT_FILE", self.env.path("ca.pem"))
            .env("AZURE_AUTHORITY_HOST", self.vault())
            .env("KSEC_AZURE_VERIFY_CHALLENGE_RESOURCE", "false")
            .env("PATH", "/usr/bin:/bin");
        c
    }

    /// `ksec` with the app's client secret.
    fn ksec(&self) -> Cmd {
        let mut c = self.bare();
        c.env("AZURE_TENANT_ID", TENANT)
            .env("AZURE_CLIENT_ID", APP)
            .env("AZURE_CLIENT_SECRET", &self.secret);
        c
    }

    fn encrypt(&self, mut c: Cmd, keys: &[&str], input: &str, extra: &[&str]) -> String {
        c.arg("encrypt").args(extra);
        for k in keys {
            c.arg("-k").arg(k);
        }
        ok_stdout(&c.write_stdin(input).output().unwrap())
    }

    fn decrypt_with(&self, mut c: Cmd, input: &str) -> String {
        ok_stdout(
            &c.args(["decrypt", "-q"])
                .write_stdin(input)
                .output()
                .unwrap(),
        )
    }

    fn count(&self, what: &str) -> u64 {
        self.kv.stats()["counts"][what].as_u64().unwrap_or(0)
    }

    /// RSA-OAEP-256 decryption with Python `cryptography` and the key
    /// version's private key: the data key, found independently of ksec.
    fn unwrap_independently(&self, name: &str, version: &str, blob: &[u8]) -> Vec<u8> {
        let pem = self
            .kv
            .control("private-key", json!({"name": name, "version": version}))["pem"]
            .as_str()
            .unwrap()
            .to_owned();
        let key_file = self.env.write("vault-key.pem", pem);
        let code = "import sys, base64\n\
            from cryptography.hazmat.primitives import hashes, serialization\n\
            from cryptography.hazmat.primitives.asymmetric import padding\n\
            key = serialization.load_pem_private_key(open(sys.argv[1], 'rb').read(), None)\n\
            oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)\n\
            print(key.decrypt(base64.b64decode(sys.argv[2]), oaep).hex())";
        let out = Command::new("python3")
            .args(["-c", code])
            .arg(&key_file)
            .arg(B64.encode(blob))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        hex::decode(String::from_utf8(out.stdout).unwrap().trim()).unwrap()
    }
}

fn azkv_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("# kubesec:azkv:"))
        .collect()
}

#[test]
fn client_secret_round_trip_version_recorded_and_checked_independently() {
    let az = Az::new();
    let (name, v1) = az.key(&[APP]);
    // Named without a version: the current one is recorded.
    let enc = az.encrypt(az.ksec(), &[&az.id(&name, "")], SECRET, &[]);
    let lines = azkv_lines(&enc);
    assert_eq!(lines.len(), 1, "{enc}");
    let prefix = format!("# kubesec:{}:", az.id(&name, &v1));
    assert!(lines[0].starts_with(&prefix), "{enc}");
    assert_eq!(az.decrypt_with(az.ksec(), &enc), SECRET);
    // The blob is RSA-OAEP-256 of the data key under that version: Python
    // cryptography unwraps it, and the independent reader opens the file.
    let blob = B64.decode(lines[0].rsplit(':').next().unwrap()).unwrap();
    assert_eq!(blob.len(), 256, "RSA-2048 ciphertext");
    let dek = az.unwrap_independently(&name, &v1, &blob);
    assert_eq!(dek.len(), 32);
    let file = az.env.write("azure.enc.yaml", &enc);
    let out = Command::new("python3")
        .arg(kreader())
        .args(["--key", &hex::encode(&dek)])
        .arg(&file)
        .output()
        .unwrap();
    let read = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        read.contains("'password': 's3cr3t-from-key-vault'") && read.contains("MAC OK"),
        "{read}"
    );
    // sops: azure_kv with vault_url, name, version; enc base64url without padding.
    let sops = az.encrypt(
        az.ksec(),
        &[&az.id(&name, "")],
        SECRET,
        &["--format", "sops"],
    );
    assert!(sops.contains("    azure_kv:\n"), "{sops}");
    assert!(
        sops.contains(&format!("vault_url: {}\n", az.vault())),
        "{sops}"
    );
    assert!(sops.contains(&format!("name: {name}\n")), "{sops}");
    assert!(sops.contains(&format!("version: {v1}\n")), "{sops}");
    let enc_field = sops
        .lines()
        .find_map(|l| l.trim().strip_prefix("enc: "))
        .unwrap();
    assert!(
        !enc_field.contains(['=', '+', '/']),
        "base64url without padding: {enc_field}"
    );
    let dek = az.unwrap_independently(&name, &v1, &B64URL.decode(enc_field).unwrap());
    assert_eq!(dek.len(), 32);
    assert_eq!(az.decrypt_with(az.ksec(), &sops), SECRET);
    // One authentication challenge per client, one token per run, and the
    // SDK's api-version.
    assert_eq!(az.count("client_secret"), 4, "one token per run");
    let stats = az.kv.stats();
    assert!(!stats["api_versions"].as_array().unwrap().is_empty());
}

#[test]
fn rotation_pins_new_versions_old_files_stay_open() {
    let az = Az::new();
    let (name, v1) = az.key(&[APP]);
    let rule = az.env.write(
        ".ksec.yaml",
        format!(
            "rules:\n  - path: \"**\"\n    keys: [\"{}\"]\n",
            az.id(&name, "")
        ),
    );
    let _ = rule;
    let plain = az.env.write("s.yaml", SECRET);
    let out = az
        .ksec()
        .args(["encrypt", "-i"])
        .arg(&plain)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = az.env.read("s.yaml");
    assert!(first.contains(&az.id(&name, &v1)), "{first}");
    // The file agrees with its rule although the rule names no version.
    let out = az.ksec().args(["check", "s.yaml"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A new version: the old file still opens (it names v1); new files get v2.
    let v2 = az.kv.control("key", json!({"name": name, "allow": [APP]}))["version"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(az.decrypt_with(az.ksec(), &first), SECRET);
    let out = az
        .ksec()
        .args(["updatekeys", "--yes", "s.yaml"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        az.env.read("s.yaml"),
        first,
        "a recorded version satisfies the rule"
    );
    let other = az.env.write("t.yaml", SECRET.replace("azure-test", "t"));
    let out = az
        .ksec()
        .args(["encrypt", "-i"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(az.env.read("t.yaml").contains(&az.id(&name, &v2)));
    // Disabling v1 makes the old file fail with a clear message.
    az.kv
        .control("disable", json!({"name": name, "version": v1}));
    fails_cleanly(
        &az.env,
        &|| az.ksec(),
        &first,
        &[],
        &["key version is disabled", &az.id(&name, &v1)],
    );
}

#[test]
fn certificate_workload_identity_managed_identity_and_cli_credentials() {
    let az = Az::new();
    let (name, v) = az.key(&[APP, "cert-app", "wif-app", "msi-principal", "cli-user"]);
    let id = az.id(&name, &v);
    let enc = az.encrypt(az.ksec(), &[&id], SECRET, &[]);

    // A certificate (PEM with its key).
    let out = Command::new("python3")
        .arg(crate::support::support_script("oidc.py"))
        .arg("cert")
        .arg(az.env.path("cert"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let cert_app = "22222222-2222-3333-4444-555555555555";
    az.kv.control(
        "app",
        json!({"client_id": cert_app, "principal": "cert-app", "cert_pem": az.env.read("cert/client-cert.pem")}),
    );
    let mut c = az.bare();
    c.env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_CLIENT_ID", cert_app)
        .env(
            "AZURE_CLIENT_CERTIFICATE_PATH",
            az.env.path("cert/client.pem"),
        );
    assert_eq!(az.decrypt_with(c, &enc), SECRET);
    assert_eq!(az.count("certificate"), 1);

    // Workload identity: a federated token file (AKS, GitHub Actions).
    let wif_app = "33333333-2222-3333-4444-555555555555";
    let subject = "system:serviceaccount:apps:deployer";
    az.kv.control(
        "app",
        json!({"client_id": wif_app, "principal": "wif-app", "federated": {"issuer": "https://oidc.test", "subject": subject}}),
    );
    let jwt = jwt(
        &az,
        json!({"iss": "https://oidc.test", "sub": subject, "aud": "api://AzureADTokenExchange"}),
    );
    let token_file = az.env.write("azure-identity-token", &jwt);
    let wif = || {
        let mut c = az.bare();
        c.env("AZURE_TENANT_ID", TENANT)
            .env("AZURE_CLIENT_ID", wif_app)
            .env("AZURE_FEDERATED_TOKEN_FILE", &token_file);
        c
    };
    let out = wif()
        .args(["-v", "decrypt", "-q"])
        .write_stdin(enc.clone())
        .output()
        .unwrap();
    assert_eq!(ok_stdout(&out), SECRET);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("azure: credentials: workload identity"),
        "{log}"
    );
    assert!(!log.contains(&jwt[..30]), "no token in traces");
    // A token for another subject is refused, and the message says so.
    az.env.write(
        "azure-identity-token",
        jwt_for(&az, "system:serviceaccount:apps:intruder"),
    );
    fails_cleanly(
        &az.env,
        &wif,
        &enc,
        &[],
        &["workload identity", "was refused", "AADSTS70021"],
    );

    // Managed identity (App Service / Container Apps endpoint).
    az.kv.control(
        "msi",
        json!({"secret": "identity-header-secret", "principal": "msi-principal"}),
    );
    let mut c = az.bare();
    c.env(
        "IDENTITY_ENDPOINT",
        format!("http://127.0.0.1:{}/msi/token", az.kv.control_port),
    )
    .env("IDENTITY_HEADER", "identity-header-secret");
    assert_eq!(az.decrypt_with(c, &enc), SECRET);
    assert_eq!(az.count("managed_identity"), 1);

    // The Azure CLI (`az account get-access-token`), here a stand-in
    // script that prints what az prints for the vault's scope.
    let token = unique("cli-token");
    az.kv.control(
        "static-token",
        json!({"token": token, "principal": "cli-user"}),
    );
    let bin = az.env.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        "#!/bin/sh\ncase \"$*\" in *'get-access-token'*'--scope https://vault.azure.net/.default'*) ;; *) echo \"unexpected: $*\" >&2; exit 2;; esac\n\
         echo '{{\"accessToken\":\"{token}\",\"expiresOn\":\"2099-01-01 00:00:00.000000\",\"expires_on\":4070908800,\"subscription\":\"s\",\"tenant\":\"{TENANT}\",\"tokenType\":\"Bearer\"}}'\n"
    );
    let az_path = bin.join("az");
    std::fs::write(&az_path, script).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&az_path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cli = || {
        let mut c = az.bare();
        c.env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("AZURE_TOKEN_CREDENTIALS", "dev");
        c
    };
    assert_eq!(az.decrypt_with(cli(), &enc), SECRET);
    // Expired credentials: the CLI's token no longer works.
    az.kv.control("expire-tokens", json!({}));
    fails_cleanly(
        &az.env,
        &cli,
        &enc,
        &[],
        &["access token was refused", "refresh the Azure credentials"],
    );
}

fn jwt(az: &Az, claims: Value) -> String {
    let out = Command::new("python3")
        .arg(crate::support::support_script("oidc.py"))
        .arg("jwt")
        .arg(az.env.path("oidc"))
        .arg(claims.to_string())
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn jwt_for(az: &Az, subject: &str) -> String {
    jwt(
        az,
        json!({"iss": "https://oidc.test", "sub": subject, "aud": "api://AzureADTokenExchange"}),
    )
}

#[test]
fn every_error_leaves_stdout_empty_and_files_alone() {
    let az = Az::new();
    let (name, v) = az.key(&[APP]);
    let id = az.id(&name, &v);
    let enc = az.encrypt(az.ksec(), &[&id], SECRET, &[]);
    // Permission denied (RBAC).
    az.kv.control(
        "allow",
        json!({"name": name, "op": "decrypt", "principals": []}),
    );
    fails_cleanly(
        &az.env,
        &|| az.ksec(),
        &enc,
        &[],
        &[
            &id,
            "permission denied",
            "Action: 'Microsoft.KeyVault/vaults/keys/decrypt/action'",
            "keys/decrypt",
            "Key Vault Crypto User",
        ],
    );
    az.kv.control(
        "allow",
        json!({"name": name, "op": "decrypt", "principals": [APP]}),
    );
    // Key and version not found.
    let missing = az.id("nosuchkey", "");
    encrypt_fails_cleanly(
        &az.env,
        &|| az.ksec(),
        SECRET,
        &missing,
        &[],
        &[
            "key or version not found",
            "was not found in this key vault",
        ],
    );
    let wrong_version = enc.replace(&format!("/keys/{name}/{v}"), &format!("/keys/{name}/0000"));
    fails_cleanly(
        &az.env,
        &|| az.ksec(),
        &wrong_version,
        &[],
        &["key or version not found"],
    );
    // Disabled.
    az.kv
        .control("disable", json!({"name": name, "version": v}));
    fails_cleanly(
        &az.env,
        &|| az.ksec(),
        &enc,
        &[],
        &["key version is disabled", "not allowed on a disabled key"],
    );
    az.kv.control(
        "disable",
        json!({"name": name, "version": v, "enabled": true}),
    );
    // A blob of another key.
    let (other, ov) = az.key(&[APP]);
    let foreign = enc.replace(&format!("/keys/{name}/{v}"), &format!("/keys/{other}/{ov}"));
    fails_cleanly(
        &az.env,
        &|| az.ksec(),
        &foreign,
        &[],
        &["not wrapped by this key version"],
    );
    // A wrong client secret ends the chain with Entra's answer.
    let err = fails_cleanly(
        &az.env,
        &|| {
            let mut c = az.ksec();
            c.env("AZURE_CLIENT_SECRET", "not-the-secret");
            c
        },
        &enc,
        &[],
        &["client secret of", "was refused", "AADSTS7000215"],
    );
    assert!(!err.contains("not-the-secret"), "{err}");
    // No credentials at all: each source of the chain says why.
    let err = fails_cleanly(
        &az.env,
        &|| {
            let mut c = az.bare();
            c.env("IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token")
                .env("IDENTITY_HEADER", "x");
            c
        },
        &enc,
        &[],
        &[
            "no Azure token",
            "managed identity",
            "Azure CLI",
            "az login",
        ],
    );
    assert!(err.contains("AZURE_CLIENT_SECRET"), "{err}");
    // An untrusted certificate: no SSL_CERT_FILE.
    fails_cleanly(
        &az.env,
        &|| {
            let mut c = az.ksec();
            c.env_remove("SSL_CERT_FILE");
            c
        },
        &enc,
        &[],
        &["certificate"],
    );
    // The challenge check, on by default: 127.0.0.1 is not under vault.azure.net.
    fails_cleanly(
        &az.env,
        &|| {
            let mut c = az.ksec();
            c.env_remove("KSEC_AZURE_VERIFY_CHALLENGE_RESOURCE");
            c
        },
        &enc,
        &[],
        &["KSEC_AZURE_VERIFY_CHALLENGE_RESOURCE=false"],
    );
    // Unreachable and silent vaults end within the timeout.
    let refused = enc.replace(&az.vault(), "https://127.0.0.1:9");
    fails_cleanly(
        &az.env,
        &|| az.ksec(),
        &refused,
        &[],
        &["cannot reach Key Vault https://127.0.0.1:9"],
    );
    let silent = Silent::start();
    let quiet = enc.replace(&az.vault(), &format!("https://127.0.0.1:{}", silent.port));
    let started = Instant::now();
    fails_cleanly(
        &az.env,
        &|| az.ksec(),
        &quiet,
        &["--timeout", "2s"],
        &["no answer within 2s"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    // Malformed ids are usage errors before any call.
    let out = az
        .ksec()
        .args(["encrypt", "-k", "azkv:http://v.vault.azure.net/keys/k"])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("https only"));
}

#[test]
fn fifty_documents_cost_fifty_calls_and_one_token() {
    let az = Az::new();
    let (name, v) = az.key(&[APP]);
    let id = az.id(&name, &v);
    let stream: String = (0..50)
        .map(|i| format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s{i}\nstringData:\n  v: value-{i}\n"))
        .collect::<Vec<_>>()
        .join("---\n");
    let enc = az.encrypt(az.ksec(), &[&id], &stream, &[]);
    assert_eq!(az.count("encrypt"), 50);
    for jobs in ["1", "16"] {
        let out = az
            .ksec()
            .args(["-v", "--jobs", jobs, "decrypt", "-q"])
            .write_stdin(enc.clone())
            .output()
            .unwrap();
        assert_eq!(ok_stdout(&out), stream);
        let log = String::from_utf8_lossy(&out.stderr);
        assert_eq!(log.matches("azure: decrypt ").count(), 50, "{log}");
        assert_eq!(log.matches("new client for").count(), 1, "{log}");
        assert!(!log.contains(&az.secret));
    }
    assert_eq!(az.count("decrypt"), 100);
    assert_eq!(az.count("client_secret"), 3, "one token per run");
}
