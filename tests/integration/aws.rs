//! AWS KMS keys against a real AWS API on loopback: moto_server (KMS and
//! STS). `.ci/run` starts one and sets `KSEC_TEST_MOTO_URL`; without it the
//! tests start their own on a free port (and a watchdog stops it when the
//! test process ends). Errors moto cannot produce (AccessDenied on Decrypt,
//! DisabledException, throttling) come from a small local stand-in that
//! answers with AWS's exact JSON error bodies — a fake only for what no real
//! component here can show.
//!
//! Every command runs with an isolated HOME and AWS config, dummy
//! credentials and `AWS_EC2_METADATA_DISABLED=true`; nothing can reach a real
//! AWS endpoint.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use assert_cmd::Command as Cmd;

use crate::support::{TestEnv, ok_stdout};

const SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: aws-test
data:
  username: YWRtaW4=
stringData:
  password: s3cr3t-from-kms
";

const ACCOUNT: &str = "123456789012";

pub(crate) fn moto_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(u) = std::env::var("KSEC_TEST_MOTO_URL") {
            return u;
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // The watchdog shell stops moto when this test process is gone.
        let script = format!(
            "moto_server -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
             while kill -0 {pid} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 1; done; kill $m 2>/dev/null",
            pid = std::process::id()
        );
        let watchdog = Command::new("bash")
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("bash to start moto_server (install it: pip install 'moto[server]')");
        // Kept (not waited for) for the life of the test process; it ends by itself.
        static WATCHDOG: OnceLock<std::sync::Mutex<std::process::Child>> = OnceLock::new();
        let _ = WATCHDOG.set(std::sync::Mutex::new(watchdog));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start on port {port}; install it with pip install 'moto[server]' (pinned in scripts/install-test-tools)"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        format!("http://127.0.0.1:{port}")
    })
}

/// Runs a boto3 snippet against moto and returns its stdout (one line).
fn boto(region: &str, code: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import boto3, sys\nkms = boto3.client('kms', region_name='{region}', endpoint_url='{}', aws_access_key_id='test', aws_secret_access_key='test')\n{code}",
            moto_url()
        ))
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "boto3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub(crate) fn create_key(region: &str) -> String {
    boto(region, "print(kms.create_key()['KeyMetadata']['Arn'])")
}

fn create_alias(region: &str, target: &str) -> String {
    let name = format!("alias/ksec-{}", rand_suffix());
    boto(
        region,
        &format!("kms.create_alias(AliasName='{name}', TargetKeyId='{target}')"),
    );
    name
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// An isolated AWS environment: empty config files, dummy credentials,
/// metadata service off, endpoint = `endpoint`.
struct Aws {
    env: TestEnv,
    endpoint: String,
    config: PathBuf,
    credentials: PathBuf,
}

impl Aws {
    fn new() -> Aws {
        Aws::with_endpoint(moto_url())
    }

    fn with_endpoint(endpoint: &str) -> Aws {
        let env = TestEnv::new();
        let config = env.write("aws-config", "");
        let credentials = env.write("aws-credentials", "");
        Aws {
            env,
            endpoint: endpoint.to_owned(),
            config,
            credentials,
        }
    }

    /// `ksec` with the AWS environment and env-var credentials.
    fn ksec(&self) -> Cmd {
        let mut c = self.ksec_no_creds();
        c.env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test");
        c
    }

    /// `ksec` with the AWS environment but no credentials in the environment.
    fn ksec_no_creds(&self) -> Cmd {
        let mut c = self.env.ksec();
        c.env("AWS_CONFIG_FILE", &self.config)
            .env("AWS_SHARED_CREDENTIALS_FILE", &self.credentials)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &self.endpoint);
        c
    }

    fn encrypt(&self, keys: &[&str], input: &str) -> String {
        let mut c = self.ksec();
        c.arg("encrypt");
        for k in keys {
            c.arg("-k").arg(k);
        }
        ok_stdout(&c.write_stdin(input).output().unwrap())
    }

    fn decrypt(&self, input: &str) -> String {
        ok_stdout(
            &self
                .ksec()
                .arg("decrypt")
                .write_stdin(input)
                .output()
                .unwrap(),
        )
    }
}

fn aws_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("# kubesec:aws:"))
        .collect()
}

#[test]
fn round_trip_with_key_arn_alias_arn_and_alias_name() {
    let aws = Aws::new();
    let arn = create_key("us-east-1");
    let alias = create_alias("us-east-1", &arn);
    let alias_arn = format!("arn:aws:kms:us-east-1:{ACCOUNT}:{alias}");
    for key in [
        format!("aws:{arn}"),
        format!("aws:{alias_arn}"),
        format!("aws:{alias}"),
        arn.clone(),
    ] {
        let enc = aws.encrypt(&[&key], SECRET);
        let id = key.strip_prefix("aws:").unwrap_or(&key);
        let line = aws_lines(&enc);
        assert_eq!(line.len(), 1, "{enc}");
        // Stored as kubesec stores it: the id as given, then the Encrypt output.
        assert!(
            line[0].starts_with(&format!("# kubesec:aws:{id}:")),
            "{}",
            line[0]
        );
        assert_eq!(aws.decrypt(&enc), SECRET, "key {key}");
        let json = ok_stdout(
            &aws.ksec()
                .args(["introspect", "--json"])
                .write_stdin(enc)
                .output()
                .unwrap(),
        );
        assert!(json.contains("\"kubesec_compatible\": true"), "{json}");
    }
}

#[test]
fn keys_in_two_regions_and_two_aws_keys() {
    let aws = Aws::new();
    let east = create_key("us-east-1");
    let west = create_key("us-west-2");
    let enc = aws.encrypt(&[&format!("aws:{east}"), &format!("aws:{west}")], SECRET);
    assert_eq!(aws_lines(&enc).len(), 2);
    // -v shows one client per region.
    let out = aws
        .ksec()
        .args(["-v", "decrypt"])
        .write_stdin(enc.clone())
        .output()
        .unwrap();
    assert_eq!(ok_stdout(&out), SECRET);
    // Only the west key: remove the east one (rotates the data key) and open it.
    let west_only = ok_stdout(
        &aws.ksec()
            .args(["encrypt", &format!("--key=-aws:{east}")])
            .write_stdin(enc)
            .output()
            .unwrap(),
    );
    assert_eq!(aws_lines(&west_only).len(), 1);
    let out = aws
        .ksec()
        .args(["-v", "decrypt"])
        .write_stdin(west_only)
        .output()
        .unwrap();
    assert_eq!(ok_stdout(&out), SECRET);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("new KMS client for region us-west-2"), "{log}");
    assert!(
        !log.contains("client for region us-east-1"),
        "the region comes from the ARN: {log}"
    );
}

#[test]
fn aws_with_age_opens_with_either_key() {
    let aws = Aws::new();
    let arn = create_key("us-east-1");
    let enc = aws.encrypt(
        &[&format!("aws:{arn}"), &format!("age:{}", aws.env.recipient)],
        SECRET,
    );
    // age is local, so it is tried first: no KMS call at all.
    let out = aws
        .ksec()
        .args(["-v", "decrypt"])
        .write_stdin(enc.clone())
        .output()
        .unwrap();
    assert_eq!(ok_stdout(&out), SECRET);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("Decrypt"),
        "no KMS call expected"
    );
    // Without the age identity, KMS opens it.
    let out = aws
        .ksec()
        .env("KSEC_AGE_KEY_FILE", aws.env.path("missing-key.txt"))
        .args(["-v", "decrypt"])
        .write_stdin(enc.clone())
        .output()
        .unwrap();
    // The named identity file does not exist, so age cannot help: KMS opens the file.
    assert_eq!(ok_stdout(&out), SECRET);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .matches("aws: Decrypt")
            .count(),
        1
    );
    // With KMS unreachable, age alone opens it.
    let down = Aws::with_endpoint("http://127.0.0.1:9");
    let out = down
        .ksec()
        .env("KSEC_AGE_KEY_FILE", &aws.env.key_file)
        .arg("decrypt")
        .write_stdin(enc)
        .output()
        .unwrap();
    assert_eq!(ok_stdout(&out), SECRET);
}

/// A 0700 GNUPGHOME with a short path (gpg-agent socket limits).
fn private_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let d = tempfile::Builder::new()
        .prefix("ksec-gpg-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

#[test]
fn aws_with_pgp() {
    let aws = Aws::new();
    let arn = create_key("us-east-1");
    let gnupg = private_dir();
    let alice = crate::support::vectors_dir().join("keys/alice.sec.asc");
    let st = Command::new("gpg")
        .env("GNUPGHOME", gnupg.path())
        .args(["--batch", "--quiet", "--import"])
        .arg(&alice)
        .status()
        .unwrap();
    assert!(st.success());
    let fpr = "F4D47A60826F85BF96ED33E3C2E1D6E0C9EFC029";
    let mut c = aws.ksec();
    c.env("GNUPGHOME", gnupg.path());
    let enc = ok_stdout(
        &c.args([
            "encrypt",
            "-k",
            &format!("aws:{arn}"),
            "-k",
            &format!("pgp:{fpr}"),
        ])
        .write_stdin(SECRET)
        .output()
        .unwrap(),
    );
    // kubesec's order: pgp before aws, whatever the command line said.
    let pgp_at = enc.find("# kubesec:pgp:").unwrap();
    let aws_at = enc.find("# kubesec:aws:").unwrap();
    assert!(pgp_at < aws_at);
    // With gpg's key, no KMS call; without it, KMS.
    let mut c = aws.ksec();
    c.env("GNUPGHOME", gnupg.path());
    let out = c
        .args(["-v", "decrypt"])
        .write_stdin(enc.clone())
        .output()
        .unwrap();
    assert_eq!(ok_stdout(&out), SECRET);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("aws: Decrypt"));
    let empty = private_dir();
    let mut c = aws.ksec();
    c.env("GNUPGHOME", empty.path());
    assert_eq!(
        ok_stdout(&c.arg("decrypt").write_stdin(enc).output().unwrap()),
        SECRET
    );
    for home in [gnupg.path(), empty.path()] {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", home)
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

#[test]
fn credentials_from_a_profile_file() {
    let aws = Aws::new();
    let arn = create_key("us-east-1");
    std::fs::write(
        &aws.credentials,
        "[team]\naws_access_key_id = test\naws_secret_access_key = test\n",
    )
    .unwrap();
    std::fs::write(&aws.config, "[profile team]\nregion = us-east-1\n").unwrap();
    let enc = ok_stdout(
        &aws.ksec_no_creds()
            .args([
                "--aws-profile",
                "team",
                "encrypt",
                "-k",
                &format!("aws:{arn}"),
            ])
            .write_stdin(SECRET)
            .output()
            .unwrap(),
    );
    let out = aws
        .ksec_no_creds()
        .env("AWS_PROFILE", "team")
        .arg("decrypt")
        .write_stdin(enc.clone())
        .output()
        .unwrap();
    assert_eq!(ok_stdout(&out), SECRET);
    // Without any credentials: one line naming the sources tried.
    let out = aws
        .ksec_no_creds()
        .arg("decrypt")
        .write_stdin(enc)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no AWS credentials")
            && err.contains("web identity")
            && err.contains("profile `default`"),
        "{err}"
    );
}

#[test]
fn assume_role_profile_and_web_identity() {
    let aws = Aws::new();
    let arn = create_key("us-east-1");
    let role = format!("arn:aws:iam::{ACCOUNT}:role/ksec-test");
    std::fs::write(
        &aws.credentials,
        "[base]\naws_access_key_id = test\naws_secret_access_key = test\n",
    )
    .unwrap();
    std::fs::write(
        &aws.config,
        format!(
            "[profile assumer]\nrole_arn = {role}\nsource_profile = base\nregion = us-east-1\n"
        ),
    )
    .unwrap();
    let enc = ok_stdout(
        &aws.ksec_no_creds()
            .args([
                "-v",
                "--aws-profile",
                "assumer",
                "encrypt",
                "-k",
                &format!("aws:{arn}"),
            ])
            .write_stdin(SECRET)
            .output()
            .unwrap(),
    );
    // Web identity (EKS IRSA, GitHub Actions OIDC): role + token file, nothing else.
    let token = aws.env.write(
        "token",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJrc2VjIn0.c2lnbmF0dXJl",
    );
    let out = aws
        .ksec_no_creds()
        .env("AWS_ROLE_ARN", &role)
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token)
        .env("AWS_ROLE_SESSION_NAME", "ksec-ci")
        .arg("decrypt")
        .write_stdin(enc)
        .output()
        .unwrap();
    assert_eq!(ok_stdout(&out), SECRET);
}

#[test]
fn kubesec_aws_vectors_parse_and_show_their_keys() {
    // Their KMS blobs belong to an emulator that no longer exists; the value
    // and MAC layers are verified with the recorded data keys in vectors.rs.
    let aws = Aws::new();
    for f in [
        "v3/v3-aws-moto.enc.yaml",
        "v3/v3-aws-alias-xregion-moto.enc.yaml",
    ] {
        let path = crate::support::vectors_dir().join(f);
        let json = ok_stdout(
            &aws.ksec()
                .args(["introspect", "--json"])
                .arg(&path)
                .output()
                .unwrap(),
        );
        assert!(json.contains("\"type\": \"aws\""), "{json}");
        // Unwrapping fails cleanly against today's emulator: wrong key for this ciphertext.
        let out = aws.ksec().arg("decrypt").arg(&path).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(6),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
}

/// Runs a failing decrypt through a file with `-o`, and checks: exit code 6,
/// empty stdout, no output file, the input untouched, and the message.
fn fails_cleanly(aws: &Aws, enc: &str, extra: &[&str], needles: &[&str]) -> Output {
    let input = aws.env.write("in.enc.yaml", enc);
    let mut c = aws.ksec();
    c.args(extra)
        .args(["decrypt", "-o", "out.yaml"])
        .arg(&input);
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(out.stdout.is_empty());
    assert!(
        !aws.env.path("out.yaml").exists(),
        "no output file may be written"
    );
    assert_eq!(std::fs::read_to_string(&input).unwrap(), enc);
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("ksec: error:"))
            .count(),
        1,
        "{err}"
    );
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in: {err}");
    }
    assert!(
        !err.contains("ServiceError {") && !err.contains("source:"),
        "no SDK debug dumps: {err}"
    );
    // In-place encryption must leave the file alone too.
    let out = aws
        .ksec()
        .args(extra)
        .args(["encrypt", "-i"])
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(std::fs::read_to_string(&input).unwrap(), enc);
    out
}

#[test]
fn unreachable_and_silent_endpoints() {
    let aws = Aws::new();
    let arn = create_key("us-east-1");
    let enc = aws.encrypt(&[&format!("aws:{arn}")], SECRET);
    // Connection refused: port 9 (discard) has no listener here.
    let refused = Aws::with_endpoint("http://127.0.0.1:9");
    fails_cleanly(
        &refused,
        &enc,
        &[],
        &["cannot reach the KMS endpoint", "Connection refused"],
    );
    // A listener that never answers: the timeout ends the command.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().take(8) {
            held.push(s);
        }
        std::thread::sleep(Duration::from_secs(20));
    });
    let slow = Aws::with_endpoint(&format!("http://127.0.0.1:{port}"));
    let started = Instant::now();
    fails_cleanly(
        &slow,
        &enc,
        &["--timeout", "2s"],
        &["timed out after 2s", "--timeout"],
    );
    // Generous bound: the point is "ends", not speed (two commands ran).
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the timeout was not honoured"
    );
    drop(hold);
}

#[test]
fn deleted_alias_and_wrong_region() {
    let aws = Aws::new();
    let arn = create_key("us-east-1");
    let alias = create_alias("us-east-1", &arn);
    let enc = aws.encrypt(&[&format!("aws:{alias}")], SECRET);
    boto(
        "us-east-1",
        &format!("kms.delete_alias(AliasName='{alias}')"),
    );
    fails_cleanly(&aws, &enc, &[], &[&format!("aws:{alias}"), "key not found"]);
    // The alias exists in us-east-1 only; with AWS_REGION=eu-west-1 it is not found.
    let alias2 = create_alias("us-east-1", &arn);
    let enc = aws.encrypt(&[&format!("aws:{alias2}")], SECRET);
    let input = aws.env.write("wr.yaml", &enc);
    let out = aws
        .ksec()
        .env("AWS_REGION", "eu-west-1")
        .arg("decrypt")
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("(eu-west-1)"));
    // No region at all for an alias: clear message.
    let out = aws
        .ksec()
        .env_remove("AWS_REGION")
        .arg("decrypt")
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no AWS region"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A KMS stand-in that answers every request with one AWS JSON error.
pub(crate) fn error_endpoint(
    status: u16,
    error_type: &'static str,
    message: &'static str,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut s) = stream else { continue };
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let payload = format!("{{\"__type\":\"{error_type}\",\"message\":\"{message}\"}}");
            let _ = write!(
                s,
                "HTTP/1.1 {status} Error\r\nContent-Type: application/x-amz-json-1.1\r\nx-amzn-ErrorType: {error_type}\r\nx-amzn-RequestId: 00000000-0000-0000-0000-000000000000\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
                payload.len()
            );
        }
    });
    format!("http://127.0.0.1:{port}")
}

#[test]
fn service_errors_moto_cannot_produce() {
    let aws = Aws::new();
    let arn = create_key("us-east-1");
    let enc = aws.encrypt(&[&format!("aws:{arn}")], SECRET);
    let cases: [(u16, &str, &str, &[&str]); 4] = [
        (
            400,
            "AccessDeniedException",
            "User is not authorized to perform: kms:Decrypt",
            &["access denied", "kms:Decrypt"],
        ),
        (
            400,
            "DisabledException",
            "arn is disabled.",
            &["the key is disabled"],
        ),
        (
            400,
            "KMSInvalidStateException",
            "arn is pending deletion.",
            &["pending deletion"],
        ),
        (
            400,
            "ThrottlingException",
            "Rate exceeded",
            &["throttled", "after retries"],
        ),
    ];
    for (status, kind, message, needles) in cases {
        let stand_in = Aws::with_endpoint(&error_endpoint(status, kind, message));
        let mut needles = needles.to_vec();
        let id = format!("aws:{arn}");
        needles.push(&id);
        fails_cleanly(&stand_in, &enc, &[], &needles);
    }
    // Encrypt-side failures are one line too.
    let denied = Aws::with_endpoint(&error_endpoint(
        400,
        "AccessDeniedException",
        "not allowed: kms:Encrypt",
    ));
    let out = denied
        .ksec()
        .args(["encrypt", "-k", &format!("aws:{arn}")])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("kms:Encrypt"));
}

#[test]
fn fifty_documents_cost_one_call_each_and_unchanged_ones_none() {
    let aws = Aws::new();
    let arn = create_key("us-east-1");
    let stream: String = (0..50)
        .map(|i| format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s{i}\nstringData:\n  v: value-{i}\n"))
        .collect::<Vec<_>>()
        .join("---\n");
    let out = aws
        .ksec()
        .args(["-v", "encrypt", "-k", &format!("aws:{arn}")])
        .write_stdin(stream.clone())
        .output()
        .unwrap();
    let enc = ok_stdout(&out);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        log.matches("aws: Encrypt").count(),
        50,
        "one wrap per document"
    );
    let out = aws
        .ksec()
        .args(["-v", "decrypt"])
        .write_stdin(enc.clone())
        .output()
        .unwrap();
    assert_eq!(ok_stdout(&out), stream);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        log.matches("aws: Decrypt").count(),
        50,
        "one unwrap per document"
    );
    assert_eq!(
        log.matches("new KMS client").count(),
        1,
        "one client for the region"
    );
    // Re-encrypting: one unwrap per document, no wrap (existing key lines are kept).
    let out = aws
        .ksec()
        .args(["-v", "encrypt"])
        .write_stdin(enc.clone())
        .output()
        .unwrap();
    assert_eq!(ok_stdout(&out), enc);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(log.matches("aws: Decrypt").count(), 50);
    assert_eq!(log.matches("aws: Encrypt").count(), 0);
}

/// A tree of files in one process: one client, and the data keys of every
/// file go to KMS in one concurrent batch (wraps likewise).
#[test]
fn a_tree_shares_one_client_and_one_batch() {
    let aws = Aws::new();
    let arn = create_key("us-east-1");
    std::fs::create_dir_all(aws.env.path("k8s/sub")).unwrap();
    for i in 0..4 {
        aws.env.write(
            &format!("k8s/sub/plain-{i}.yaml"),
            SECRET.replace("aws-test", &format!("plain-{i}")),
        );
    }
    let out = aws
        .ksec()
        .args(["-v", "encrypt", "-i", "-k", &format!("aws:{arn}"), "k8s"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert_eq!(
        log.matches("wrapping 4 data keys in one batch").count(),
        1,
        "{log}"
    );
    assert_eq!(log.matches("aws: Encrypt").count(), 4, "{log}");
    let out = aws
        .ksec()
        .args(["-v", "decrypt", "-q", "k8s"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let stream = ok_stdout(&out);
    assert_eq!(stream.matches("kind: Secret").count(), 4);
    assert_eq!(
        log.matches("unwrapping 4 data keys in one batch").count(),
        1,
        "{log}"
    );
    assert_eq!(log.matches("aws: Decrypt").count(), 4, "{log}");
    assert_eq!(log.matches("new KMS client").count(), 1, "{log}");
}

/// `aws_context: true` in a rule: KMS wraps the data key with the Secret's
/// name and namespace as encryption context, so KMS itself refuses to
/// unwrap it for a renamed Secret, even with the binding line removed; the
/// file says so (`# ksec:aws-context:`) and is ksec-only.
#[test]
fn aws_encryption_context_binds_name_and_namespace() {
    let aws = Aws::new();
    let arn = create_key("us-east-1");
    aws.env.write(
        ".ksec.yaml",
        format!("rules:\n  - path: \"*.yaml\"\n    keys: [\"aws:{arn}\"]\n    aws_context: true\n"),
    );
    let secret = SECRET.replace(
        "  name: aws-test\n",
        "  name: aws-test\n  namespace: prod\n",
    );
    let file = aws.env.write("s.yaml", &secret);
    ok_stdout(
        &aws.ksec()
            .args(["encrypt", "-i"])
            .arg(&file)
            .output()
            .unwrap(),
    );
    let enc = std::fs::read_to_string(&file).unwrap();
    assert!(enc.contains("# ksec:aws-context:namespace,name\n"), "{enc}");
    let out = ok_stdout(
        &aws.ksec()
            .args(["decrypt", "-q"])
            .arg(&file)
            .output()
            .unwrap(),
    );
    assert_eq!(out, secret);
    let intro = ok_stdout(
        &aws.ksec()
            .args(["introspect", "--json"])
            .arg(&file)
            .output()
            .unwrap(),
    );
    let intro: serde_json::Value = serde_json::from_str(&intro).unwrap();
    assert_eq!(
        intro["documents"][0]["kubesec_compatible"], false,
        "{intro}"
    );
    // Renamed, binding line removed: KMS refuses the unwrap.
    let renamed: String = enc
        .replacen("  name: aws-test\n", "  name: other\n", 1)
        .lines()
        .filter(|l| !l.starts_with("# ksec:bind:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = aws.env.write("renamed.yaml", &renamed);
    let out = aws.ksec().args(["decrypt"]).arg(&path).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    // A rename through ksec rewraps under the new context.
    ok_stdout(
        &aws.ksec()
            .args(["patch", "-m", "name=renamed", "-i"])
            .arg(&file)
            .output()
            .unwrap(),
    );
    let out = ok_stdout(
        &aws.ksec()
            .args(["decrypt", "-q"])
            .arg(&file)
            .output()
            .unwrap(),
    );
    assert!(out.contains("  name: renamed\n"));
}
