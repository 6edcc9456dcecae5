//! Secret stores against a real AWS API on loopback: moto_server (Secrets
//! Manager, SSM Parameter Store, STS), the one `.ci/run` starts or the
//! tests' own (see aws.rs). Errors moto cannot produce (AccessDenied,
//! throttling) come from the stand-in of aws.rs, which answers with AWS's
//! exact JSON error bodies.
//!
//! Every command runs with an isolated HOME and AWS config, dummy
//! credentials and `AWS_EC2_METADATA_DISABLED=true`. Names are unique per
//! test (and per run, so a long-lived moto_server can be reused), except
//! in the golden cases, which upsert fixed names.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use assert_cmd::Command as Cmd;

use crate::aws::{error_endpoint, moto_url};
use crate::support::{TestEnv, ok_stdout, testdata};

/// Runs a boto3 script against moto (`sm` and `ssm` clients, `REGION`).
pub(crate) fn boto(region: &str, code: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import boto3, json, sys\nkw = dict(region_name='{region}', endpoint_url='{}', aws_access_key_id='test', aws_secret_access_key='test')\n\
sm = boto3.client('secretsmanager', **kw)\nssm = boto3.client('ssm', **kw)\n\
def upsert(name, **v):\n    try:\n        sm.create_secret(Name=name, **v)\n    except sm.exceptions.ResourceExistsException:\n        sm.put_secret_value(SecretId=name, **v)\n\
def param(name, value, t='SecureString'):\n    ssm.put_parameter(Name=name, Value=value, Type=t, Overwrite=True)\n{code}",
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

/// A prefix unique to this test run.
pub(crate) fn unique(name: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!(
        "{name}-{}-{t}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// An isolated environment for ksec talking to `endpoint`.
pub(crate) struct Stores {
    pub env: TestEnv,
    endpoint: String,
}

impl Stores {
    pub fn new() -> Stores {
        Stores::with_endpoint(moto_url())
    }

    pub fn with_endpoint(endpoint: &str) -> Stores {
        let env = TestEnv::new();
        env.write("aws-config", "");
        env.write("aws-credentials", "");
        Stores {
            env,
            endpoint: endpoint.to_owned(),
        }
    }

    pub fn ksec(&self) -> Cmd {
        let mut c = self.env.ksec();
        c.env("AWS_CONFIG_FILE", self.env.path("aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.env.path("aws-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test");
        c
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        self.env.write(name, text)
    }

    /// `ksec resolve` of `text`, which must succeed.
    pub fn resolve(&self, text: &str) -> String {
        let p = self.write(&format!("{}.yaml", unique("es")), text);
        ok_stdout(&self.ksec().arg("resolve").arg(p).output().unwrap())
    }
}

/// A failed run: exit code, nothing on stdout, one error line containing
/// every needle and no SDK dump.
pub(crate) fn fails(out: &Output, code: i32, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(out.stdout.is_empty(), "nothing on stdout after a failure");
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
        !err.contains("ServiceError {") && !err.contains("source: Some"),
        "{err}"
    );
    err
}

/// `data` of every Secret in a clear stream, decoded, by `name/key`.
pub(crate) fn secret_data(text: &str) -> Vec<(String, Vec<u8>)> {
    let docs: Vec<serde_json::Value> = text.split("\n---\n").filter_map(yaml_json).collect();
    let mut out = Vec::new();
    for d in docs {
        if d["kind"] != "Secret" {
            continue;
        }
        let name = d["metadata"]["name"].as_str().unwrap_or("").to_owned();
        if let Some(m) = d["data"].as_object() {
            for (k, v) in m {
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v.as_str().unwrap_or(""))
                    .expect("base64");
                out.push((format!("{name}/{k}"), bytes));
            }
        }
        if let Some(m) = d["stringData"].as_object() {
            for (k, v) in m {
                out.push((
                    format!("{name}/{k}"),
                    v.as_str().unwrap_or("").as_bytes().to_vec(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn yaml_json(doc: &str) -> Option<serde_json::Value> {
    let out = Command::new("python3")
        .arg("-c")
        .arg("import sys, yaml, json; d = yaml.safe_load(sys.stdin.read()); print(json.dumps(d))")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(doc.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout)
        .ok()
        .filter(|v: &serde_json::Value| !v.is_null())
}

pub(crate) fn golden_dir() -> PathBuf {
    testdata().join("stores/golden")
}

/// Compares with `NAME.expected.yaml` (rewritten with
/// KSEC_GOLDEN=overwrite; review the diff).
pub(crate) fn golden(name: &str, got: &str) {
    let path = golden_dir().join(format!("{name}.expected.yaml"));
    if std::env::var("KSEC_GOLDEN").as_deref() == Ok("overwrite") {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing (KSEC_GOLDEN=overwrite writes it)",
            path.display()
        )
    });
    assert_eq!(
        got,
        want,
        "{name}: resolve output differs from {}",
        path.display()
    );
}

fn resolve_golden(s: &Stores, name: &str) -> (String, String) {
    let out = s
        .ksec()
        .arg("resolve")
        .arg(golden_dir().join(format!("{name}.yaml")))
        .output()
        .unwrap();
    let stdout = ok_stdout(&out);
    (stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn golden_externalsecrets_against_moto() {
    boto(
        "eu-west-1",
        r#"upsert('golden-e1/prod/db', SecretString='{"username":"admin","password":"old-pass"}')
upsert('golden-e1/prod/db', SecretString='{"username":"admin","password":"p@ss<1>","port":5432,"ratio":1.50,"tls":{"ca":"CA-PEM","verify":true},"hosts":["a","b"],"dotted.key":"dv","dotted":{"key":"nested"},"nullv":null}')
upsert('golden-e1/prod/cert', SecretBinary=bytes([0, 1, 255]))
upsert('golden-e1/prod/api-key', SecretString='abcd')"#,
    );
    boto(
        "us-east-1",
        r#"for n, v in [('/golden-e3/app/db/password', 'pw1'), ('/golden-e3/app/db/user', 'u1'), ('/golden-e3/app/api/token', 't1'), ('/golden-e3/app/other/x', 'x1'),
             ('/golden-k2/foo/name', 'fooval'), ('/golden-k2/extra-people/alice', 'a1'), ('/golden-k2/extra-people/sub/bob', 'b1')]:
    param(n, v)
upsert('golden-k1/credentials', SecretString='{"username":"admin","password":"0000"}')
upsert('golden-k1/credentials', SecretString='{"username":"admin","password":"1234","port":5432,"ratio":1.50,"nested":{"b":1,"a":"x"},"list":[1,2],"10":"ten","nul":null}')
upsert('golden-k1/cert-b64', SecretString='AAH/')
upsert('golden-k1/bin', SecretBinary=bytes([0, 1, 254]))
upsert('golden-k1/plain', SecretString='not json')"#,
    );
    let s = Stores::new();
    for name in [
        "eso-secretsmanager",
        "eso-parameterstore",
        "kes-secretsmanager",
        "kes-systemmanager",
    ] {
        let (out, err) = resolve_golden(&s, name);
        golden(name, &out);
        if name == "kes-secretsmanager" {
            assert!(
                err.contains("spec.data[5]")
                    && err.contains("not JSON")
                    && err.contains("left out"),
                "{err}"
            );
        }
    }
    // The values are those of the notes' golden examples (E1, K1 as stored).
    let (out, _) = resolve_golden(&s, "eso-secretsmanager");
    let data = secret_data(&out);
    let get = |k: &str| data.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("db-creds/password").unwrap(), b"old-pass");
    assert_eq!(get("db-creds/cert.bin").unwrap(), [0, 1, 255]);
    assert_eq!(get("db-creds/ratio").unwrap(), b"1.50");
    assert_eq!(get("db-creds/ratio-prop").unwrap(), b"1.5");
    assert_eq!(get("db-creds/second-host").unwrap(), b"b");
    assert!(out.contains("data-hash: f2dccd1220c4a2ae82fdd68584e6835b3a40f7ddca1c442e833f6a1a"));
    let (out, _) = resolve_golden(&s, "kes-secretsmanager");
    let data = secret_data(&out);
    let get = |k: &str| data.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(
        get("hello-service/dsn").unwrap(),
        b"postgres://admin:0000@db"
    );
    assert_eq!(get("hello-service/raw.bin").unwrap(), [0, 1, 254]);
    assert_eq!(get("hello-service/cert.der").unwrap(), [0, 1, 255]);
}

#[test]
fn eso_fields_against_secrets_manager() {
    let p = unique("eso");
    let ids = boto(
        "eu-west-1",
        &format!(
            r#"upsert('{p}/json', SecretString='{{"a":{{"b":[{{"n":"x"}},{{"n":"y"}}]}},"b64":"aGVsbG8=","url":"aGk_","nul":"a\\u0000b","k/with/slash":"s"}}')
r = sm.create_secret(Name='{p}/versioned', SecretString='one')
first = r['VersionId']
sm.put_secret_value(SecretId='{p}/versioned', SecretString='two')
upsert('{p}/find/alpha', SecretString='A')
upsert('{p}/find/beta', SecretString='B')
upsert('{p}/other', SecretString='O')
print(first)"#
        ),
    );
    let s = Stores::new();
    let stores = s.write(
        "stores.yaml",
        "apiVersion: external-secrets.io/v1beta1\nkind: ClusterSecretStore\nmetadata: {name: cluster-sm}\nspec: {provider: {aws: {service: SecretsManager, region: eu-west-1}}}\n",
    );
    let es = format!(
        r#"apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata:
  name: all
  namespace: team
  labels: {{team: a}}
  annotations: {{note: copied}}
spec:
  secretStoreRef: {{name: cluster-sm, kind: ClusterSecretStore}}
  target: {{name: all-fields, creationPolicy: Orphan, immutable: true}}
  dataFrom:
  - extract: {{key: {p}/json, conversionStrategy: Unicode}}
  - find: {{path: {p}/find/, name: {{regexp: "(alpha|beta)$"}}}}
    rewrite:
    - regexp: {{source: "^.*/find/(.*)$", target: "found-$1"}}
    - transform: {{template: "{{{{ .value | upper }}}}"}}
  data:
  - {{secretKey: first-id, remoteRef: {{key: {p}/versioned, version: "uuid/{ids}"}}}}
  - {{secretKey: current, remoteRef: {{key: {p}/versioned}}}}
  - {{secretKey: second-n, remoteRef: {{key: {p}/json, property: a.b.1.n}}}}
  - {{secretKey: all-n, remoteRef: {{key: {p}/json, property: "a.b.#.n"}}}}
  - {{secretKey: count, remoteRef: {{key: {p}/json, property: "a.b.#"}}}}
  - {{secretKey: hello, remoteRef: {{key: {p}/json, property: b64, decodingStrategy: Base64}}}}
  - {{secretKey: hi, remoteRef: {{key: {p}/json, property: url, decodingStrategy: Auto}}}}
  - {{secretKey: wild, remoteRef: {{key: {p}/json, property: "b6?"}}}}
"#
    );
    let path = s.write("es.yaml", &es);
    let out = s
        .ksec()
        .args(["-v", "resolve", "--store"])
        .arg(&stores)
        .arg(&path)
        .output()
        .unwrap();
    let text = ok_stdout(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    let data = secret_data(&text);
    let want: Vec<(String, Vec<u8>)> = [
        ("FOUND-ALPHA", "A"),
        ("FOUND-BETA", "B"),
        ("a", r#"{"b":[{"n":"x"},{"n":"y"}]}"#),
        ("all-n", r#"["x","y"]"#),
        ("b64", "aGVsbG8="),
        ("count", "2"),
        ("current", "two"),
        ("first-id", "one"),
        ("hello", "hello"),
        ("hi", "hi?"),
        ("k_U002f_with_U002f_slash", "s"),
        ("nul", "a\0b"),
        ("second-n", "y"),
        ("url", "aGk_"),
        ("wild", "aGVsbG8="),
    ]
    .iter()
    .map(|(k, v)| (format!("all-fields/{k}"), v.as_bytes().to_vec()))
    .collect();
    assert_eq!(data, want, "{text}");
    // Orphan: managed but not created-by; labels and annotations of the ES copied; immutable.
    assert!(
        text.contains("    team: a\n") && text.contains("    note: copied\n"),
        "{text}"
    );
    assert!(text.contains("reconcile.external-secrets.io/managed: \"true\""));
    assert!(!text.contains("created-by"));
    assert!(text.contains("immutable: true\n"));
    // Two reads of the same key and version are one call; find lists once.
    assert_eq!(
        log.matches(&format!("GetSecretValue {p}/json (AWSCURRENT)"))
            .count(),
        1,
        "{log}"
    );
    assert!(
        log.contains(&format!("GetSecretValue {p}/versioned (version {ids})")),
        "{log}"
    );
    assert!(log.contains("ListSecrets"), "{log}");
    // nullBytePolicy: Fail refuses the NUL value.
    let nul = format!(
        "{}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: nul, namespace: team}}\nspec:\n  secretStoreRef: {{name: cluster-sm, kind: ClusterSecretStore}}\n  data:\n  - {{secretKey: n, remoteRef: {{key: {p}/json, property: nul, nullBytePolicy: Fail}}}}\n",
        std::fs::read_to_string(&stores).unwrap()
    );
    let out = s
        .ksec()
        .arg("resolve")
        .arg(s.write("nul.yaml", &nul))
        .output()
        .unwrap();
    fails(
        &out,
        9,
        &["spec.data[0]", "NUL byte", "nullBytePolicy: Fail"],
    );
}

#[test]
fn kes_options_and_eso_find_by_name_alone() {
    let p = unique("kes");
    let first = boto(
        "eu-west-1",
        &format!(
            r#"r = sm.create_secret(Name='{p}/opts', SecretString='{{"who":"old","a.b":"lit","nest":{{"arr":["x","QUFF"]}}}}')
sm.put_secret_value(SecretId='{p}/opts', SecretString='{{"who":"new","extra":"e"}}')
print(r['VersionId'])"#
        ),
    );
    let s = Stores::new();
    let es = format!(
        "apiVersion: kubernetes-client.io/v1\nkind: ExternalSecret\nmetadata: {{name: opts}}\nspec:\n  backendType: secretsManager\n  region: eu-west-1\n  dataFrom: [{p}/opts]\n  dataFromWithOptions:\n  - {{key: {p}/opts, versionStage: AWSPREVIOUS}}\n  data:\n  - {{key: {p}/opts, name: by-id, property: who, versionId: {first}}}\n  - {{key: {p}/opts, name: literal, property: a.b, versionStage: AWSPREVIOUS}}\n  - {{key: {p}/opts, name: bracket, property: 'nest.arr[0]', versionStage: AWSPREVIOUS}}\n  - {{key: {p}/opts, name: bin, property: 'nest[\"arr\"][1]', isBinary: true, versionStage: AWSPREVIOUS}}\n---\n\
apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: sm}}\nspec: {{provider: {{aws: {{service: SecretsManager, region: eu-west-1}}}}}}\n---\n\
apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: byname}}\nspec:\n  secretStoreRef: {{name: sm}}\n  dataFrom:\n  - find: {{name: {{regexp: \"^{p}/op\"}}}}\n"
    );
    let out = s
        .ksec()
        .args(["-v", "resolve"])
        .arg(s.write("k.yaml", &es))
        .output()
        .unwrap();
    let text = ok_stdout(&out);
    let data = secret_data(&text);
    let conv = p.replace('/', "_");
    let want: Vec<(String, Vec<u8>)> = vec![
        (
            format!("byname/{conv}_opts"),
            br#"{"who":"new","extra":"e"}"#.to_vec(),
        ),
        ("opts/a.b".into(), b"lit".to_vec()),
        ("opts/bin".into(), b"AAE".to_vec()),
        ("opts/bracket".into(), b"x".to_vec()),
        ("opts/by-id".into(), b"old".to_vec()),
        ("opts/extra".into(), b"e".to_vec()),
        ("opts/literal".into(), b"lit".to_vec()),
        ("opts/nest".into(), br#"{"arr":["x","QUFF"]}"#.to_vec()),
        ("opts/who".into(), b"old".to_vec()),
    ];
    assert_eq!(data, want, "{text}");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("ListSecrets ``"),
        "find by name alone lists every secret: {log}"
    );
}

#[test]
fn deletion_policy_and_creation_policy_none() {
    let p = unique("policy");
    boto(
        "eu-west-1",
        &format!("upsert('{p}/here', SecretString='h')"),
    );
    let s = Stores::new();
    let es = format!(
        "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: sm}}\nspec: {{provider: {{aws: {{service: SecretsManager, region: eu-west-1}}}}}}\n---\n\
apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: del}}\nspec:\n  secretStoreRef: {{name: sm}}\n  target: {{deletionPolicy: Delete}}\n  data:\n  - {{secretKey: here, remoteRef: {{key: {p}/here}}}}\n  - {{secretKey: gone, remoteRef: {{key: {p}/gone}}}}\n---\n\
apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: none}}\nspec:\n  secretStoreRef: {{name: sm}}\n  target: {{creationPolicy: None}}\n  data:\n  - {{secretKey: here, remoteRef: {{key: {p}/here}}}}\n"
    );
    let out = s
        .ksec()
        .arg("resolve")
        .arg(s.write("p.yaml", &es))
        .output()
        .unwrap();
    let text = ok_stdout(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        secret_data(&text),
        vec![("del/here".to_owned(), b"h".to_vec())]
    );
    assert!(
        err.contains("spec.data[1]") && err.contains("left out (deletionPolicy)"),
        "{err}"
    );
    assert!(
        text.contains("# ExternalSecret none: creationPolicy None, no Secret"),
        "{text}"
    );
}

#[test]
fn find_by_path_reads_every_page() {
    let p = unique("pages");
    // Secrets Manager lists 100 per page; Parameter Store 10 per page.
    boto(
        "eu-west-1",
        &format!(
            "for i in range(105):\n    sm.create_secret(Name='{p}/s%03d' % i, SecretString='v%d' % i)"
        ),
    );
    boto(
        "us-east-1",
        &format!(
            "for i in range(23):\n    param('/{p}/p%02d' % i, 'w%d' % i)\nparam('/{p}/deep/x', 'deep')"
        ),
    );
    let s = Stores::new();
    let es = format!(
        "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: sm}}\nspec: {{provider: {{aws: {{service: SecretsManager, region: eu-west-1}}}}}}\n---\n\
apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: ssm}}\nspec: {{provider: {{aws: {{service: ParameterStore, region: us-east-1}}}}}}\n---\n\
apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: many}}\nspec:\n  secretStoreRef: {{name: sm}}\n  dataFrom:\n  - find: {{path: {p}/, name: {{regexp: \".\"}}}}\n  - find: {{path: /{p}, name: {{regexp: \".\"}}}}\n    sourceRef: {{storeRef: {{name: ssm}}}}\n---\n\
apiVersion: kubernetes-client.io/v1\nkind: ExternalSecret\nmetadata: {{name: kes-path}}\nspec:\n  backendType: systemManager\n  region: us-east-1\n  data:\n  - {{path: /{p}, recursive: true}}\n"
    );
    let out = s
        .ksec()
        .args(["-v", "resolve"])
        .arg(s.write("p.yaml", &es))
        .output()
        .unwrap();
    let text = ok_stdout(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    let data = secret_data(&text);
    let many: Vec<_> = data
        .iter()
        .filter(|(k, _)| k.starts_with("many/"))
        .collect();
    assert_eq!(many.len(), 105 + 24, "{log}");
    let conv = p.replace('/', "_");
    assert!(data.contains(&(format!("many/{conv}_s104"), b"v104".to_vec())));
    assert!(data.contains(&(format!("many/_{conv}_deep_x"), b"deep".to_vec())));
    let kes: Vec<_> = data
        .iter()
        .filter(|(k, _)| k.starts_with("kes-path/"))
        .collect();
    assert_eq!(kes.len(), 24);
    assert!(data.contains(&("kes-path/x".to_owned(), b"deep".to_vec())));
    assert!(log.contains("match") && log.contains("in 2 pages"), "{log}");
    assert!(log.contains("24 parameters in 3 pages"), "{log}");
}

#[test]
fn missing_secret_version_property_and_non_json() {
    let p = unique("missing");
    boto(
        "eu-west-1",
        &format!(
            "upsert('{p}/json', SecretString='{{\"a\":1}}')\nupsert('{p}/text', SecretString='plain')\nparam('/{p}/param', 'v')"
        ),
    );
    let s = Stores::new();
    let head = "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: sm}\nspec: {provider: {aws: {service: SecretsManager, region: eu-west-1}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: m, namespace: ns}\nspec:\n  secretStoreRef: {name: sm}\n  data:\n";
    let cases: [(String, &[&str]); 4] = [
        (
            format!("  - {{secretKey: k, remoteRef: {{key: {p}/nope}}}}\n"),
            &[
                "spec.data[0]",
                "does not exist",
                "ResourceNotFoundException",
                "AWS Secrets Manager (eu-west-1)",
            ],
        ),
        (
            format!("  - {{secretKey: k, remoteRef: {{key: {p}/json, version: AWSPENDING}}}}\n"),
            &["spec.data[0]", "has no version AWSPENDING"],
        ),
        (
            format!("  - {{secretKey: k, remoteRef: {{key: {p}/json, property: b.c}}}}\n"),
            &["spec.data[0]", "property `b.c` is not in"],
        ),
        (
            format!("  - {{secretKey: k, remoteRef: {{key: {p}/text, property: a}}}}\n"),
            &["spec.data[0]", "is not JSON"],
        ),
    ];
    for (item, needles) in cases {
        let file = s.write(&format!("{}.yaml", unique("m")), &format!("{head}{item}"));
        let out = s
            .ksec()
            .arg("resolve")
            .args(["-o", "out.yaml"])
            .arg(&file)
            .output()
            .unwrap();
        let err = fails(&out, 9, needles);
        assert!(
            err.contains(&format!("{}:", file.display())) || err.contains(".yaml:"),
            "{err}"
        );
        assert!(
            !s.env.path("out.yaml").exists(),
            "no output file after a failure"
        );
    }
    // Parameter Store: a missing parameter and a missing version.
    let ssm = "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: ssm}\nspec: {provider: {aws: {service: ParameterStore, region: eu-west-1}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: m}\nspec:\n  secretStoreRef: {name: ssm}\n  data:\n";
    for (item, needle) in [
        (
            format!("  - {{secretKey: k, remoteRef: {{key: /{p}/nope}}}}\n"),
            "ParameterNotFound",
        ),
        (
            format!("  - {{secretKey: k, remoteRef: {{key: /{p}/param, version: \"7\"}}}}\n"),
            "no such version",
        ),
    ] {
        let out = s
            .ksec()
            .arg("resolve")
            .arg(s.write(&format!("{}.yaml", unique("s")), &format!("{ssm}{item}")))
            .output()
            .unwrap();
        fails(&out, 9, &["SSM Parameter Store (eu-west-1)", needle]);
    }
}

#[test]
fn denied_throttled_unreachable_and_timeouts() {
    let es = "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: sm}\nspec: {provider: {aws: {service: SecretsManager, region: eu-west-1}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: d}\nspec:\n  secretStoreRef: {name: sm}\n  data:\n  - {secretKey: k, remoteRef: {key: prod/db}}\n";
    let denied = Stores::with_endpoint(&error_endpoint(
        400,
        "AccessDeniedException",
        "User: arn:aws:sts::123456789012:assumed-role/ci/ksec is not authorized to perform: secretsmanager:GetSecretValue on resource: prod/db because no identity-based policy allows the secretsmanager:GetSecretValue action",
    ));
    let out = denied
        .ksec()
        .arg("resolve")
        .arg(denied.write("d.yaml", es))
        .output()
        .unwrap();
    fails(
        &out,
        9,
        &[
            "access denied",
            "secretsmanager:GetSecretValue on prod/db",
            "spec.data[0]",
        ],
    );
    let throttled =
        Stores::with_endpoint(&error_endpoint(400, "ThrottlingException", "Rate exceeded"));
    let out = throttled
        .ksec()
        .arg("resolve")
        .arg(throttled.write("d.yaml", es))
        .output()
        .unwrap();
    fails(&out, 9, &["throttled even after retries", "lower --jobs"]);
    let refused = Stores::with_endpoint("http://127.0.0.1:9");
    let out = refused
        .ksec()
        .arg("resolve")
        .arg(refused.write("d.yaml", es))
        .output()
        .unwrap();
    fails(
        &out,
        9,
        &[
            "cannot reach the secretsmanager endpoint",
            "Connection refused",
        ],
    );
    // A listener that never answers: --timeout ends the command.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().take(8) {
            held.push(s);
        }
        std::thread::sleep(Duration::from_secs(20));
    });
    let slow = Stores::with_endpoint(&format!("http://127.0.0.1:{port}"));
    let started = Instant::now();
    let out = slow
        .ksec()
        .args(["--timeout", "2s", "resolve"])
        .arg(slow.write("d.yaml", es))
        .output()
        .unwrap();
    fails(&out, 9, &["timed out after 2s", "--timeout"]);
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "the timeout was not honoured"
    );
    drop(hold);
}

#[test]
fn resolve_encrypted_in_either_format() {
    let p = unique("enc");
    boto(
        "eu-west-1",
        &format!("upsert('{p}/db', SecretString='{{\"user\":\"u\",\"pass\":\"s3cr3t-store\"}}')"),
    );
    let s = Stores::new();
    let es = format!(
        "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: sm}}\nspec: {{provider: {{aws: {{service: SecretsManager, region: eu-west-1}}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: db}}\nspec:\n  secretStoreRef: {{name: sm}}\n  dataFrom:\n  - extract: {{key: {p}/db}}\n"
    );
    let file = s.write("es.yaml", &es);
    let clear = ok_stdout(&s.ksec().arg("resolve").arg(&file).output().unwrap());
    for extra in [vec![], vec!["--format", "sops"]] {
        let enc = ok_stdout(
            &s.ksec()
                .args(["resolve", "-k"])
                .arg(format!("age:{}", s.env.recipient))
                .args(&extra)
                .arg(&file)
                .output()
                .unwrap(),
        );
        assert!(
            !enc.contains("s3cr3t-store") && !enc.contains(&b64("s3cr3t-store")),
            "{enc}"
        );
        let dec = ok_stdout(&s.ksec().arg("decrypt").write_stdin(enc).output().unwrap());
        assert_eq!(secret_data(&dec), secret_data(&clear));
    }
    // --encrypt with a .ksec.yaml rule for the output file.
    std::fs::create_dir_all(s.env.path("prod")).unwrap();
    s.write(
        "prod/.ksec.yaml",
        &format!(
            "rules:\n  - path: \"*.yaml\"\n    keys: [age:{}]\n    format: sops\n",
            s.env.recipient
        ),
    );
    let out = s.env.path("prod/db.enc.yaml");
    ok_stdout(
        &s.ksec()
            .args(["resolve", "--encrypt", "-o"])
            .arg(&out)
            .arg(&file)
            .output()
            .unwrap(),
    );
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(
        written.contains("sops:") && !written.contains("s3cr3t-store"),
        "{written}"
    );
    let dec = ok_stdout(&s.ksec().arg("decrypt").arg(&out).output().unwrap());
    assert_eq!(secret_data(&dec), secret_data(&clear));
}

pub(crate) fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn import_then_decrypt_gives_the_store_values() {
    let p = unique("import");
    boto(
        "us-east-1",
        &format!(
            "upsert('{p}/db', SecretString='{{\"username\":\"admin\",\"password\":\"p@ss w0rd\",\"port\":5432}}')\nupsert('{p}/tls.key', SecretBinary=bytes([0, 159, 146, 150]))\n\
param('/{p}/app/one', '1')\nparam('/{p}/app/two', 'zwei', 'String')\nparam('/{p}/app/sub/three', 'drei')"
        ),
    );
    let s = Stores::new();
    let age = format!("age:{}", s.env.recipient);
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a [u8])>);
    let cases: [Case<'_>; 3] = [
        (
            "kubesec",
            format!("aws-sm:{p}/db"),
            vec![
                ("password", b"p@ss w0rd"),
                ("port", b"5432"),
                ("username", b"admin"),
            ],
        ),
        (
            "sops",
            format!("aws-sm:{p}/tls.key"),
            vec![("tls.key", &[0, 159, 146, 150])],
        ),
        (
            "kubesec",
            format!("ssm:/{p}/app/"),
            vec![("one", b"1"), ("sub_three", b"drei"), ("two", b"zwei")],
        ),
    ];
    for (format, from, want) in cases {
        let out = s
            .ksec()
            .args([
                "import",
                "--from",
                &from,
                "--name",
                "imported",
                "--namespace",
                "apps",
                "-k",
                &age,
                "--format",
                format,
            ])
            .output()
            .unwrap();
        let enc = ok_stdout(&out);
        for (_, v) in &want {
            if let Ok(t) = std::str::from_utf8(v) {
                assert!(!enc.contains(t) || t.len() < 3, "clear value in {enc}");
            }
        }
        let dec = ok_stdout(&s.ksec().arg("decrypt").write_stdin(enc).output().unwrap());
        let got = secret_data(&dec);
        let want: Vec<(String, Vec<u8>)> = want
            .iter()
            .map(|(k, v)| (format!("imported/{k}"), v.to_vec()))
            .collect();
        assert_eq!(got, want, "{from}");
        assert!(dec.contains("namespace: apps"));
    }
    // One parameter: one key; -o FILE, refused when it exists.
    let file = s.env.path("one.enc.yaml");
    let out = s
        .ksec()
        .args([
            "import",
            "--from",
            &format!("ssm:/{p}/app/one"),
            "--name",
            "one",
            "-k",
            &age,
            "-o",
        ])
        .arg(&file)
        .output()
        .unwrap();
    ok_stdout(&out);
    let dec = ok_stdout(&s.ksec().arg("decrypt").arg(&file).output().unwrap());
    assert_eq!(
        secret_data(&dec),
        vec![("one/one".to_owned(), b"1".to_vec())]
    );
    let out = s
        .ksec()
        .args([
            "import",
            "--from",
            &format!("ssm:/{p}/app/one"),
            "--name",
            "one",
            "-o",
        ])
        .arg(&file)
        .output()
        .unwrap();
    fails(&out, 4, &["exists already"]);
    // A missing secret: exit 9, nothing written.
    let out = s
        .ksec()
        .args([
            "import",
            "--from",
            &format!("aws-sm:{p}/nope"),
            "--name",
            "x",
            "-k",
            &age,
        ])
        .output()
        .unwrap();
    fails(&out, 9, &["does not exist", &format!("aws-sm:{p}/nope")]);
}

/// An encrypted Secret for `push`.
pub(crate) fn encrypted_secret(s: &Stores, name: &str) -> PathBuf {
    let clear = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: apps\ntype: kubernetes.io/basic-auth\ndata:\n  username: {}\nstringData:\n  password: \"p4ss: w/ spaces\"\n  json: '{{\"a\": 1}}'\n",
        b64("pusher")
    );
    let enc = s.env.encrypt(&clear);
    s.write(&format!("{name}.enc.yaml"), &enc)
}

#[test]
fn push_then_resolve_gives_the_original_values() {
    let s = Stores::new();
    let file = encrypted_secret(&s, "pushed");
    let original = secret_data(&ok_stdout(
        &s.ksec().arg("decrypt").arg(&file).output().unwrap(),
    ));
    for to in [
        format!("aws-sm:{}", unique("push")),
        format!("ssm:/{}", unique("push")),
    ] {
        let out = s
            .ksec()
            .args(["push", "--emit-externalsecret", "--to", &to])
            .arg(&file)
            .output()
            .unwrap();
        let es = ok_stdout(&out);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("pushed 3 values"), "{err}");
        assert!(
            es.contains("kind: ExternalSecret")
                && es.contains("type: \"kubernetes.io/basic-auth\""),
            "{es}"
        );
        for v in ["pusher", "p4ss", "spaces"] {
            assert!(
                !es.contains(v) && !err.contains(v),
                "a value in the output: {es}{err}"
            );
        }
        let resolved = s.resolve(&es);
        assert_eq!(secret_data(&resolved), original, "{to}: {resolved}");
        assert!(resolved.contains("type: kubernetes.io/basic-auth"));
        // Pushing again changes nothing.
        let out = s
            .ksec()
            .args(["push", "--to", &to])
            .arg(&file)
            .output()
            .unwrap();
        ok_stdout(&out);
        assert!(String::from_utf8_lossy(&out.stderr).contains("unchanged"));
    }
}

#[test]
fn push_to_parameter_store_as_secure_string_with_a_kms_key() {
    let s = Stores::new();
    let file = encrypted_secret(&s, "kms");
    let key = crate::aws::create_key("us-east-1");
    let prefix = format!("/{}", unique("kms"));
    let out = s
        .ksec()
        .args(["push", "--to", &format!("ssm:{prefix}"), "--kms-key", &key])
        .arg(&file)
        .output()
        .unwrap();
    ok_stdout(&out);
    let types = boto(
        "us-east-1",
        &format!(
            "r = ssm.describe_parameters(ParameterFilters=[{{'Key': 'Path', 'Values': ['{prefix}']}}])['Parameters']\n\
print(sorted((p['Name'].rsplit('/', 1)[1], p['Type'], p.get('KeyId')) for p in r))"
        ),
    );
    assert_eq!(
        types,
        format!(
            "[('json', 'SecureString', '{key}'), ('password', 'SecureString', '{key}'), ('username', 'SecureString', '{key}')]"
        )
    );
}

#[test]
fn push_dry_run_shows_keys_and_sizes_and_calls_nothing() {
    // No store at all behind the endpoint: a dry run must not call it.
    let s = Stores::with_endpoint("http://127.0.0.1:9");
    let file = encrypted_secret(&s, "dry");
    let out = s
        .ksec()
        .args(["-v", "push", "--dry-run", "--to", "aws-sm:prod/dry"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = ok_stdout(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.is_empty());
    assert!(
        err.contains("dry run: would write 3 values of Secret dry to aws-sm:prod/dry"),
        "{err}"
    );
    assert!(
        err.contains("  password (15 bytes)") && err.contains("  username (6 bytes)"),
        "{err}"
    );
    for v in ["pusher", "p4ss", "spaces", "\"a\""] {
        assert!(!err.contains(v), "a value in the dry run: {err}");
    }
    assert!(
        !err.contains("PutSecretValue") && !err.contains("CreateSecret"),
        "{err}"
    );
    // A file with two Secrets is refused.
    let two = s.env.encrypt("apiVersion: v1\nkind: Secret\nmetadata: {name: a}\nstringData: {k: v}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: b}\nstringData: {k: v}\n");
    let out = s
        .ksec()
        .args(["push", "--to", "aws-sm:x"])
        .arg(s.write("two.yaml", &two))
        .output()
        .unwrap();
    fails(&out, 3, &["2 Secrets"]);
}

#[test]
fn usage_errors() {
    let s = Stores::new();
    let out = s
        .ksec()
        .args(["import", "--from", "gcp:x", "--name", "n"])
        .output()
        .unwrap();
    fails(&out, 2, &["unknown store"]);
    let out = s
        .ksec()
        .args(["resolve", "--format", "sops"])
        .write_stdin("")
        .output()
        .unwrap();
    fails(&out, 2, &["--format needs --encrypt"]);
    let bad = "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: t}\nspec:\n  secretStoreRef: {name: nope}\n  data:\n  - {secretKey: k, remoteRef: {key: k}}\n  target:\n    template:\n      templateFrom: [{literal: x}]\n";
    let out = s.ksec().arg("resolve").write_stdin(bad).output().unwrap();
    fails(&out, 3, &["templateFrom", "not supported by ksec resolve"]);
    let missing_store = bad.replace(
        "  target:\n    template:\n      templateFrom: [{literal: x}]\n",
        "",
    );
    let out = s
        .ksec()
        .arg("resolve")
        .write_stdin(missing_store)
        .output()
        .unwrap();
    fails(&out, 3, &["no SecretStore `nope`", "spec.secretStoreRef"]);
    assert!(Path::new(&testdata()).exists());
}
