//! Google Cloud KMS keys against a **stand-in**: `tests/support/gcpkms.py`.
//!
//! Why a stand-in: Google publishes no Cloud KMS emulator and none runs
//! here, and tests must not reach Google. The stand-in implements the
//! documented REST calls ksec makes and does the real work: it verifies the
//! service account's RS256-signed JWT at its OAuth token endpoint, the
//! refresh-token grant, the STS token exchange of workload identity
//! federation (a JWT from a test OIDC issuer) and service-account
//! impersonation, answers as the metadata server (only with
//! `Metadata-Flavor: Google`), checks bearer tokens and per-key permissions,
//! keeps key versions with states, encrypts with real AES-256-GCM (a key per
//! version) and checks and returns the CRC32C integrity fields. ksec reaches
//! it through documented settings only: `KSEC_GCP_KMS_ENDPOINT`, the
//! credentials file's `token_uri`/`token_url`, `GCE_METADATA_HOST`.
//!
//! kubesec interoperability is checked both ways with the project's
//! independent kubesec reader (tests/support/kreader.py) and a kubesec
//! vector whose data key is known.

use std::process::Command;
use std::time::{Duration, Instant};

use assert_cmd::Command as Cmd;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::keyservice::{Silent, StandIn, encrypt_fails_cleanly, fails_cleanly};
use crate::support::{TestEnv, kreader, ok_stdout, vectors_dir};

const SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: gcp-test
data:
  username: YWRtaW4=
stringData:
  password: s3cr3t-from-cloud-kms
";

const SA_EMAIL: &str = "ksec-test@standin-project.iam.gserviceaccount.com";
const KEY: &str = "projects/standin-project/locations/global/keyRings/ksec/cryptoKeys/app";
const OTHER: &str =
    "projects/standin-project/locations/europe-west1/keyRings/ksec/cryptoKeys/other";
const WIF: &str = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/ci/providers/github";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

/// A test directory with the stand-in and its credentials files.
struct Gcp {
    env: TestEnv,
    kms: StandIn,
}

impl Gcp {
    fn new() -> Gcp {
        let env = TestEnv::new();
        // The test OIDC issuer whose tokens the STS trusts.
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
        let kms = StandIn::start(
            "gcpkms.py",
            &[
                env.dir.path().as_os_str(),
                "--issuer-pub".as_ref(),
                env.path("oidc/issuer.pub").as_os_str(),
                "--issuer".as_ref(),
                ISSUER.as_ref(),
                "--wif-audience".as_ref(),
                WIF.as_ref(),
            ],
        );
        let g = Gcp { env, kms };
        g.key(KEY, &[SA_EMAIL]);
        g
    }

    fn key(&self, name: &str, allow: &[&str]) {
        self.kms
            .control("keys", json!({"name": name, "allow": allow}));
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.kms.port)
    }

    /// `ksec` with the stand-in as endpoint, no credentials, and no
    /// metadata server (a closed port).
    fn bare(&self) -> Cmd {
        let mut c = self.env.ksec();
        c.env("KSEC_GCP_KMS_ENDPOINT", self.base())
            .env("GCE_METADATA_HOST", "127.0.0.1:9");
        c
    }

    /// `ksec` with the service-account file.
    fn ksec(&self) -> Cmd {
        let mut c = self.bare();
        c.env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            self.env.path("service-account.json"),
        );
        c
    }

    fn encrypt(&self, keys: &[&str], input: &str, extra: &[&str]) -> String {
        let mut c = self.ksec();
        c.arg("encrypt").args(extra);
        for k in keys {
            c.arg("-k").arg(format!("gcp:{k}"));
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

    /// A bearer token the stand-in accepts for `principal` (what kubesec's
    /// own client would hold).
    fn static_token(&self, principal: &str) -> String {
        let t = crate::keyservice::unique("static");
        self.kms
            .control("static-token", json!({"token": t, "principal": principal}));
        t
    }

    /// Cloud KMS REST as kubesec's client calls it: plaintext only.
    fn raw(&self, token: &str, op: &str, name: &str, field: &str, data: &[u8]) -> (u16, Value) {
        let body = json!({ field: B64.encode(data) }).to_string();
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.kms.port)).unwrap();
        write!(
            s,
            "POST /v1/{name}:{op} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut a = String::new();
        s.read_to_string(&mut a).unwrap();
        let status = a.split_whitespace().nth(1).unwrap().parse().unwrap();
        let json = serde_json::from_str(a.split_once("\r\n\r\n").unwrap().1).unwrap_or(Value::Null);
        (status, json)
    }

    fn count(&self, what: &str) -> u64 {
        self.kms.stats()["counts"][what].as_u64().unwrap_or(0)
    }

    fn oidc_jwt(&self, claims: Value) -> String {
        let out = Command::new("python3")
            .arg(crate::support::support_script("oidc.py"))
            .arg("jwt")
            .arg(self.env.path("oidc"))
            .arg(claims.to_string())
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}

fn gcp_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("# kubesec:gcp:"))
        .collect()
}

#[test]
fn service_account_round_trip_in_both_formats_with_crc32c() {
    let g = Gcp::new();
    let enc = g.encrypt(&[KEY], SECRET, &[]);
    let lines = gcp_lines(&enc);
    assert_eq!(lines.len(), 1, "{enc}");
    assert!(
        lines[0].starts_with(&format!("# kubesec:gcp:{KEY}:")),
        "{enc}"
    );
    assert_eq!(g.decrypt_with(g.ksec(), &enc), SECRET);
    assert_eq!(g.count("jwt-bearer"), 2, "one token per run");
    // Every call carried its CRC32C.
    let stats = g.kms.stats();
    for r in stats["requests"].as_array().unwrap() {
        let fields: Vec<&str> = r[1]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        match r[0].as_str().unwrap() {
            "encrypt" => assert_eq!(fields, ["plaintext", "plaintextCrc32c"]),
            _ => assert_eq!(fields, ["ciphertext", "ciphertextCrc32c"]),
        }
    }
    // sops: gcp_kms with resource_id and the same ciphertext layout (std base64).
    let sops = g.encrypt(&[KEY], SECRET, &["--format", "sops"]);
    assert!(sops.contains("    gcp_kms:\n"), "{sops}");
    assert!(sops.contains(&format!("resource_id: {KEY}\n")), "{sops}");
    let enc_field = sops
        .lines()
        .find_map(|l| l.trim().strip_prefix("enc: "))
        .unwrap();
    let blob = B64.decode(enc_field).unwrap();
    assert_eq!(
        u32::from_be_bytes(blob[..4].try_into().unwrap()),
        1,
        "version 1 inside"
    );
    assert_eq!(g.decrypt_with(g.ksec(), &sops), SECRET);
    // Two keys: either opens.
    g.key(OTHER, &[SA_EMAIL]);
    let both = g.encrypt(&[KEY, OTHER], SECRET, &[]);
    assert_eq!(gcp_lines(&both).len(), 2);
    g.kms.control(
        "allow",
        json!({"name": KEY, "op": "decrypt", "principals": []}),
    );
    assert_eq!(g.decrypt_with(g.ksec(), &both), SECRET);
}

#[test]
fn kubesec_reads_ksec_gcp_files_and_ksec_reads_kubesec_ones() {
    let g = Gcp::new();
    let token = g.static_token(SA_EMAIL);
    // ksec → kubesec: the footer line's blob is the raw Cloud KMS
    // ciphertext; decrypted as kubesec's client does (plaintext = the data
    // key, no AAD, no CRC), and the file read by the independent reader.
    let enc = g.encrypt(&[KEY], SECRET, &[]);
    let line = gcp_lines(&enc)[0];
    let (id, blob) = line
        .strip_prefix("# kubesec:gcp:")
        .unwrap()
        .rsplit_once(':')
        .unwrap();
    assert_eq!(id, KEY);
    let (status, answer) = g.raw(
        &token,
        "decrypt",
        KEY,
        "ciphertext",
        &B64.decode(blob).unwrap(),
    );
    assert_eq!(status, 200, "{answer}");
    let dek = B64.decode(answer["plaintext"].as_str().unwrap()).unwrap();
    assert_eq!(dek.len(), 32);
    let file = g.env.write("ksec-gcp.enc.yaml", &enc);
    let hex_dek: String = dek.iter().map(|b| format!("{b:02x}")).collect();
    let out = Command::new("python3")
        .arg(kreader())
        .args(["--key", &hex_dek])
        .arg(&file)
        .output()
        .unwrap();
    let read = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(read.contains(&format!("keys: gcp:{KEY}")), "{read}");
    assert!(
        read.contains("'password': 's3cr3t-from-cloud-kms'"),
        "{read}"
    );
    assert!(read.contains("MAC OK"), "{read}");

    // kubesec → ksec: a file kubesec wrote (the AWS vector, data key known)
    // given the footer kubesec writes for a GCP key: the key line with the
    // Cloud KMS ciphertext of the data key, the MAC over the new key id.
    let vectors: Value =
        serde_json::from_str(&std::fs::read_to_string(vectors_dir().join("vectors.json")).unwrap())
            .unwrap();
    let name = "v3/v3-aws-moto.enc.yaml";
    let v = &vectors[name];
    let dek = hex::decode(v["dek_hex"].as_str().unwrap()).unwrap();
    let (status, answer) = g.raw(&token, "encrypt", KEY, "plaintext", &dek);
    assert_eq!(status, 200, "{answer}");
    let ciphertext = answer["ciphertext"].as_str().unwrap();
    let original = std::fs::read_to_string(vectors_dir().join(name)).unwrap();
    let arn = v["keys"][0]["id"].as_str().unwrap();
    let aad = v["mac_aad_utf8"].as_str().unwrap().replace(arn, KEY);
    let mac = kubesec_mac(&dek, &aad);
    let kubesec_file: String = original
        .lines()
        .map(|l| {
            if l.starts_with("# kubesec:aws:") {
                format!("# kubesec:gcp:{KEY}:{ciphertext}")
            } else if l.starts_with("# kubesec:mac:") {
                format!("# kubesec:mac:{mac}")
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\n")
        .collect();
    let opened = g.decrypt_with(g.ksec(), &kubesec_file);
    // The same values kreader finds with the known data key.
    let path = g.env.write("kubesec-gcp.enc.yaml", &kubesec_file);
    let out = Command::new("python3")
        .arg(kreader())
        .args(["--key", v["dek_hex"].as_str().unwrap(), "--json"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: Value = serde_json::from_slice(&out.stdout).unwrap();
    for (k, val) in reference["data"].as_object().unwrap() {
        let want = val.as_str().unwrap();
        assert!(
            opened.lines().any(|l| l.trim() == format!("{k}: {want}")
                || l.trim() == format!("{k}: \"{want}\"")
                || (want.is_empty() && l.trim() == format!("{k}: \"\""))),
            "{k}={want} not in:\n{opened}"
        );
    }
    // Re-encrypting keeps kubesec's footer: same key line, MAC still valid.
    let again = ok_stdout(
        &g.ksec()
            .arg("encrypt")
            .write_stdin(kubesec_file.clone())
            .output()
            .unwrap(),
    );
    assert_eq!(again, kubesec_file);
}

/// kubesec's MAC: AES-256-GCM under the data key, empty plaintext, `aad`.
fn kubesec_mac(dek: &[u8], aad: &str) -> String {
    let code = "import base64, os, sys\nfrom cryptography.hazmat.primitives.ciphers.aead import AESGCM\n\
                dek = bytes.fromhex(sys.argv[1]); iv = os.urandom(12)\n\
                tag = AESGCM(dek).encrypt(iv, b'', sys.argv[2].encode())\n\
                print(base64.b64encode(iv).decode() + '.' + base64.b64encode(tag).decode())";
    let hex: String = dek.iter().map(|b| format!("{b:02x}")).collect();
    let out = Command::new("python3")
        .args(["-c", code, &hex, aad])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn user_federated_metadata_and_static_credentials() {
    let g = Gcp::new();
    let enc = g.encrypt(&[KEY], SECRET, &[]);
    let allow = |principals: &[&str]| {
        for op in ["encrypt", "decrypt"] {
            g.kms.control(
                "allow",
                json!({"name": KEY, "op": op, "principals": principals}),
            );
        }
    };
    // gcloud's user credentials (~/.config/gcloud/application_default_credentials.json).
    allow(&["user:alice@example.com"]);
    let gcloud = g.env.path("home/.config/gcloud");
    std::fs::create_dir_all(&gcloud).unwrap();
    std::fs::copy(
        g.env.path("authorized-user.json"),
        gcloud.join("application_default_credentials.json"),
    )
    .unwrap();
    assert_eq!(g.decrypt_with(g.bare(), &enc), SECRET);
    assert_eq!(g.count("refresh_token"), 1);

    // Workload identity federation (GitHub Actions OIDC): the subject token
    // from a file, exchanged at STS, then for the service account's token.
    let subject = "repo:acme/app:ref:refs/heads/main";
    g.kms.control(
        "impersonators",
        json!({"email": SA_EMAIL, "principals": [format!("principal:{subject}")]}),
    );
    allow(&[SA_EMAIL]);
    let jwt = g.oidc_jwt(json!({"iss": ISSUER, "aud": format!("https:{WIF}"), "sub": subject}));
    g.env.write("subject-token", &jwt);
    let wif = json!({
        "type": "external_account",
        "audience": WIF,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("{}/v1/token", g.base()),
        "service_account_impersonation_url": format!("{}/v1/projects/-/serviceAccounts/{SA_EMAIL}:generateAccessToken", g.base()),
        "credential_source": {"file": g.env.path("subject-token"), "format": {"type": "text"}},
    });
    let wif_file = g.env.write("wif.json", wif.to_string());
    let mut c = g.bare();
    c.env("GOOGLE_APPLICATION_CREDENTIALS", &wif_file);
    assert_eq!(g.decrypt_with(c, &enc), SECRET);
    assert_eq!((g.count("sts"), g.count("impersonate")), (1, 1));
    // The same through a URL source, as GitHub's token endpoint answers.
    let mut url_wif = wif.clone();
    url_wif["credential_source"] = json!({
        "url": format!("{}/_test/subject", g.base()),
        "headers": {"Authorization": "bearer request-token"},
        "format": {"type": "json", "subject_token_field_name": "value"},
    });
    let url_file = g.env.write("wif-url.json", url_wif.to_string());
    let mut c = g.bare();
    c.env("GOOGLE_APPLICATION_CREDENTIALS", &url_file);
    assert_eq!(g.decrypt_with(c, &enc), SECRET);
    // A token for another audience is refused at STS.
    let wrong = g.oidc_jwt(json!({"iss": ISSUER, "aud": "https://example.com", "sub": subject}));
    g.env.write("subject-token", &wrong);
    let mut c = g.bare();
    c.env("GOOGLE_APPLICATION_CREDENTIALS", &wif_file);
    let err = fails_cleanly(
        &g.env,
        &|| {
            let mut c = g.bare();
            c.env("GOOGLE_APPLICATION_CREDENTIALS", &wif_file);
            c
        },
        &enc,
        &[],
        &["the STS endpoint", "refused the credentials", "audience"],
    );
    assert!(!err.contains(&wrong[..40]), "no token in messages");
    drop(c);

    // The metadata server (GKE Workload Identity, GCE): last in the chain,
    // so without gcloud's file.
    std::fs::remove_file(gcloud.join("application_default_credentials.json")).unwrap();
    allow(&["gce-default@standin-project.iam.gserviceaccount.com"]);
    let mut c = g.env.ksec();
    c.env("KSEC_GCP_KMS_ENDPOINT", g.base())
        .env("GCE_METADATA_HOST", format!("127.0.0.1:{}", g.kms.port));
    assert_eq!(g.decrypt_with(c, &enc), SECRET);
    assert_eq!(g.count("metadata"), 1);

    // GOOGLE_OAUTH_ACCESS_TOKEN, as sops takes it.
    allow(&["ci-static"]);
    let t = g.static_token("ci-static");
    let mut c = g.bare();
    c.env("GOOGLE_OAUTH_ACCESS_TOKEN", &t);
    assert_eq!(g.decrypt_with(c, &enc), SECRET);
}

#[test]
fn every_error_leaves_stdout_empty_and_files_alone() {
    let g = Gcp::new();
    let enc = g.encrypt(&[KEY], SECRET, &[]);
    // Permission denied (the service account may not use the key).
    g.kms.control(
        "allow",
        json!({"name": KEY, "op": "decrypt", "principals": []}),
    );
    fails_cleanly(
        &g.env,
        &|| g.ksec(),
        &enc,
        &[],
        &[
            &format!("gcp:{KEY}"),
            "permission denied, or no such key",
            "cloudkms.cryptoKeyVersions.useToDecrypt",
        ],
    );
    g.kms.control(
        "allow",
        json!({"name": KEY, "op": "encrypt", "principals": []}),
    );
    encrypt_fails_cleanly(
        &g.env,
        &|| g.ksec(),
        SECRET,
        &format!("gcp:{KEY}"),
        &[],
        &["cloudkms.cryptoKeyVersions.useToEncrypt"],
    );
    g.kms.control(
        "allow",
        json!({"name": KEY, "op": "decrypt", "principals": [SA_EMAIL]}),
    );
    g.kms.control(
        "allow",
        json!({"name": KEY, "op": "encrypt", "principals": [SA_EMAIL]}),
    );
    // A key that does not exist (Google answers 403 too).
    let missing = "projects/standin-project/locations/global/keyRings/ksec/cryptoKeys/nope";
    encrypt_fails_cleanly(
        &g.env,
        &|| g.ksec(),
        SECRET,
        &format!("gcp:{missing}"),
        &[],
        &["no such key", missing],
    );
    // Version disabled, then destroyed.
    for state in ["DISABLED", "DESTROYED"] {
        g.kms
            .control("state", json!({"name": KEY, "version": 1, "state": state}));
        fails_cleanly(
            &g.env,
            &|| g.ksec(),
            &enc,
            &[],
            &["key version is not usable", state, "cryptoKeyVersions/1"],
        );
    }
    g.kms.control(
        "state",
        json!({"name": KEY, "version": 1, "state": "ENABLED"}),
    );
    // Ciphertext of another key.
    g.key(OTHER, &[SA_EMAIL]);
    let foreign = enc.replace(
        &format!("# kubesec:gcp:{KEY}:"),
        &format!("# kubesec:gcp:{OTHER}:"),
    );
    fails_cleanly(
        &g.env,
        &|| g.ksec(),
        &foreign,
        &[],
        &["not wrapped by this key"],
    );
    // A service-account file with another key: the token endpoint refuses the JWT.
    let mut sa: Value = serde_json::from_str(&g.env.read("service-account.json")).unwrap();
    sa["private_key"] =
        Value::from(std::fs::read_to_string(g.env.path("oidc/issuer.key")).unwrap());
    let wrong_sa = g.env.write("wrong-sa.json", sa.to_string());
    fails_cleanly(
        &g.env,
        &|| {
            let mut c = g.bare();
            c.env("GOOGLE_APPLICATION_CREDENTIALS", &wrong_sa);
            c
        },
        &enc,
        &[],
        &[
            "the token endpoint",
            "refused the credentials",
            "Invalid JWT Signature",
        ],
    );
    // An expired or unknown access token.
    fails_cleanly(
        &g.env,
        &|| {
            let mut c = g.bare();
            c.env("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.expired-or-unknown");
            c
        },
        &enc,
        &[],
        &["access token was refused (expired or invalid)"],
    );
    // No credentials anywhere (no variable, no gcloud file, no metadata server).
    let err = fails_cleanly(
        &g.env,
        &|| g.bare(),
        &enc,
        &[],
        &[
            "no Google credentials",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "gcloud auth application-default login",
        ],
    );
    assert!(err.contains("metadata server"), "{err}");
    // A credentials file that does not exist.
    fails_cleanly(
        &g.env,
        &|| {
            let mut c = g.bare();
            c.env("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/sa.json");
            c
        },
        &enc,
        &[],
        &["/nonexistent/sa.json", "cannot be read"],
    );
    // Unreachable and silent endpoints end within the timeout.
    fails_cleanly(
        &g.env,
        &|| {
            let mut c = g.ksec();
            c.env("KSEC_GCP_KMS_ENDPOINT", "http://127.0.0.1:9");
            c
        },
        &enc,
        &[],
        &["cannot reach Cloud KMS", "Connection refused"],
    );
    let silent = Silent::start();
    let started = Instant::now();
    fails_cleanly(
        &g.env,
        &|| {
            let mut c = g.ksec();
            c.env(
                "KSEC_GCP_KMS_ENDPOINT",
                format!("http://127.0.0.1:{}", silent.port),
            );
            c
        },
        &enc,
        &["--timeout", "2s"],
        &["no answer within 2s", "--timeout"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // Damaged answers: the CRC32C check retries, then refuses.
    g.kms.control("faults", json!({"bad_response_crc": 1}));
    assert_eq!(g.decrypt_with(g.ksec(), &enc), SECRET);
    g.kms.control("faults", json!({"bad_response_crc": 100}));
    fails_cleanly(
        &g.env,
        &|| g.ksec(),
        &enc,
        &[],
        &["does not match its CRC32C", "3 attempts"],
    );
    g.kms.control("faults", json!({"bad_response_crc": 0}));
    // A version id is refused before any call.
    let out = g
        .ksec()
        .args(["encrypt", "-k", &format!("gcp:{KEY}/cryptoKeyVersions/1")])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a version"));
}

#[test]
fn rotation_keeps_old_files_open_and_fifty_documents_cost_fifty_calls() {
    let g = Gcp::new();
    let old = g.encrypt(&[KEY], SECRET, &[]);
    g.kms.control("rotate", json!({"name": KEY}));
    let new = g.encrypt(&[KEY], SECRET, &[]);
    let blob = |t: &str| {
        B64.decode(gcp_lines(t)[0].rsplit(':').next().unwrap())
            .unwrap()
    };
    assert_eq!(u32::from_be_bytes(blob(&new)[..4].try_into().unwrap()), 2);
    assert_eq!(g.decrypt_with(g.ksec(), &old), SECRET);
    assert_eq!(g.decrypt_with(g.ksec(), &new), SECRET);

    let stream: String = (0..50)
        .map(|i| format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s{i}\nstringData:\n  v: value-{i}\n"))
        .collect::<Vec<_>>()
        .join("---\n");
    g.kms.control("reset-stats", json!({}));
    let enc = g.encrypt(&[KEY], &stream, &[]);
    assert_eq!(g.count("encrypt"), 50);
    for jobs in ["1", "16"] {
        let out = g
            .ksec()
            .args(["-v", "--jobs", jobs, "decrypt", "-q"])
            .write_stdin(enc.clone())
            .output()
            .unwrap();
        assert_eq!(ok_stdout(&out), stream);
        let log = String::from_utf8_lossy(&out.stderr);
        assert_eq!(log.matches("gcp: decrypt ").count(), 50, "{log}");
        assert!(!log.contains("ya29."), "no token in traces");
    }
    assert_eq!(g.count("decrypt"), 100);
    assert_eq!(g.count("jwt-bearer"), 3, "one token per run");
}
