//! Google Cloud KMS keys, stored exactly as kubesec stores them:
//! `# kubesec:gcp:projects/P/locations/L/keyRings/R/cryptoKeys/K:<base64 of
//! the Cloud KMS ciphertext>` (kubesec's `gcp/kms` client: the raw data key
//! as plaintext, no additional authenticated data), and in sops' `gcp_kms`
//! entries (`resource_id`, the same ciphertext in `enc`).
//!
//! The documented REST calls (`POST v1/{name}:encrypt` and `:decrypt`) with
//! the CRC32C integrity fields: the request carries the CRC32C of what it
//! sends, the answer must say it verified it, and the CRC32C of what comes
//! back is checked; a mismatch is retried, then refused. Encrypt uses the
//! key's primary version; the version is inside the ciphertext, so decrypt
//! names the key only (old versions decrypt while they are enabled).
//!
//! Endpoint: `https://cloudkms.googleapis.com`, or `https://cloudkms.U`
//! with `GOOGLE_CLOUD_UNIVERSE_DOMAIN=U`, or `KSEC_GCP_KMS_ENDPOINT` (any
//! URL: a private endpoint, a regional one, a test server). Credentials:
//! [`adc`]. KMS has no batch call: each data key is one call, the calls of
//! a batch concurrent (`--jobs`) on a current-thread runtime created on
//! first use; one token per run.

pub mod adc;

use std::cell::{Cell, OnceCell};
use std::rc::Rc;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use zeroize::Zeroizing;

use super::{KeyError, KeyType, Provider, Secret, UnwrapRequest, WrapRequest};
use crate::net::{self, NetOptions};
use crate::report::Reporter;
use adc::{CredError, Credentials, Token};

/// The public Cloud KMS endpoint.
pub const ENDPOINT: &str = "https://cloudkms.googleapis.com";

/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as Cloud KMS
/// computes it for its integrity fields.
pub fn crc32c(data: &[u8]) -> u32 {
    const fn table() -> [u32; 256] {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    }
    static TABLE: [u32; 256] = table();
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// Checks a key id: `projects/P/locations/L/keyRings/R/cryptoKeys/K` (sops'
/// rule), a CryptoKey, not one of its versions.
pub fn check_id(id: &str) -> Result<(), KeyError> {
    let parts: Vec<&str> = id.split('/').collect();
    let ok = parts.len() == 8
        && parts[0] == "projects"
        && parts[2] == "locations"
        && parts[4] == "keyRings"
        && parts[6] == "cryptoKeys"
        && [1, 3, 5, 7].iter().all(|&i| {
            !parts[i].is_empty()
                && parts[i]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
    if ok {
        return Ok(());
    }
    let hint = if id.contains("/cryptoKeyVersions/") {
        " (name the CryptoKey, not a version: the ciphertext records its version)"
    } else {
        ""
    };
    Err(KeyError::InvalidId(format!(
        "`{}` is not a Cloud KMS key: expected projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY{hint}",
        crate::error::one_line(id)
    )))
}

/// The Cloud KMS provider.
pub struct GcpProvider {
    net: NetOptions,
    reporter: Rc<dyn Reporter>,
    runtime: OnceCell<Result<tokio::runtime::Runtime, net::SetupError>>,
    http: OnceCell<Result<reqwest::Client, net::SetupError>>,
    credentials: OnceCell<Result<Credentials, CredError>>,
    token: tokio::sync::OnceCell<Result<Token, KeyError>>,
    calls: Cell<usize>,
}

/// The endpoint from the environment.
fn endpoint() -> String {
    if let Ok(e) = std::env::var("KSEC_GCP_KMS_ENDPOINT")
        && !e.trim().is_empty()
    {
        return e.trim().trim_end_matches('/').to_owned();
    }
    match std::env::var("GOOGLE_CLOUD_UNIVERSE_DOMAIN") {
        Ok(u) if !u.trim().is_empty() && u.trim() != "googleapis.com" => {
            format!("https://cloudkms.{}", u.trim())
        }
        _ => ENDPOINT.to_owned(),
    }
}

impl GcpProvider {
    /// A provider; nothing is read or sent until the first GCP key is used.
    pub fn new(net: NetOptions, reporter: Rc<dyn Reporter>) -> Self {
        GcpProvider {
            net,
            reporter,
            runtime: OnceCell::new(),
            http: OnceCell::new(),
            credentials: OnceCell::new(),
            token: tokio::sync::OnceCell::new(),
            calls: Cell::new(0),
        }
    }

    fn trace(&self, message: &str) {
        if self.reporter.tracing() {
            self.reporter.trace(&format!("gcp: {message}"));
        }
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime, KeyError> {
        self.runtime
            .get_or_init(net::runtime)
            .as_ref()
            .map_err(|e| KeyError::Failed(e.to_string()))
    }

    fn http(&self) -> Result<&reqwest::Client, KeyError> {
        self.http
            .get_or_init(|| net::client(&net::Tls::default(), self.net.timeout))
            .as_ref()
            .map_err(|e| KeyError::Failed(e.to_string()))
    }

    /// Number of KMS calls made (for `-v` and benchmarks).
    pub fn calls(&self) -> usize {
        self.calls.get()
    }

    /// The run's token: credentials found and exchanged once.
    async fn token(&self) -> Result<Token, KeyError> {
        self.token
            .get_or_init(|| async {
                let creds = self
                    .credentials
                    .get_or_init(|| {
                        let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
                        Credentials::discover(&|k| std::env::var(k).ok(), home.as_deref())
                    })
                    .as_ref()
                    .map_err(cred_error)?;
                let http = self.http()?;
                let started = Instant::now();
                let token = net::deadline(self.net.timeout, creds.token(http, self.net))
                    .await
                    .map_err(|t| {
                        KeyError::Failed(t.describe(
                            &format!("getting a Google token ({})", creds.describe),
                            self.net.timeout,
                        ))
                    })?
                    .map_err(|e| cred_error(&e))?;
                self.trace(&format!(
                    "credentials: {} (token in {} ms)",
                    creds.describe,
                    started.elapsed().as_millis()
                ));
                Ok(token)
            })
            .await
            .clone()
    }

    /// [`GcpProvider::attempt`] bounded by the timeout (the token apart:
    /// it is fetched once for the run, under its own timeout).
    async fn call(
        &self,
        endpoint: &str,
        id: &str,
        op: &str,
        input: &[u8],
    ) -> Result<Secret, KeyError> {
        self.token().await?;
        net::deadline(self.net.timeout, self.attempt(endpoint, id, op, input))
            .await
            .unwrap_or_else(|t| {
                Err(KeyError::Failed(t.describe(
                    &format!("Cloud KMS {op} ({endpoint})"),
                    self.net.timeout,
                )))
            })
    }

    /// One `:encrypt` or `:decrypt` call with its integrity checks, retried
    /// when the service or our checks say the bytes were damaged on the way.
    async fn attempt(
        &self,
        endpoint: &str,
        id: &str,
        op: &str,
        input: &[u8],
    ) -> Result<Secret, KeyError> {
        let token = self.token().await?;
        let http = self.http()?;
        let url = format!("{endpoint}/v1/{id}:{op}");
        let (field, out_field, out_crc) = match op {
            "encrypt" => ("plaintext", "ciphertext", "ciphertextCrc32c"),
            _ => ("ciphertext", "plaintext", "plaintextCrc32c"),
        };
        let encoded = Zeroizing::new(B64.encode(input));
        let mut fields = serde_json::Map::new();
        fields.insert(field.into(), Value::from(encoded.as_str()));
        fields.insert(
            format!("{field}Crc32c"),
            Value::from(crc32c(input).to_string()),
        );
        let body = Zeroizing::new(Value::Object(fields).to_string());
        let attempts = self.net.max_attempts.max(1);
        let mut last = None;
        for attempt in 1..=attempts {
            if attempt > 1 {
                tokio::time::sleep(net::backoff(attempt)).await;
            }
            let mut request = http
                .post(&url)
                .bearer_auth(token.access.as_str())
                .header("Content-Type", "application/json")
                .body(body.as_bytes().to_vec());
            if let Some(p) = &token.quota_project {
                request = request.header("x-goog-user-project", p.as_str());
            }
            let started = Instant::now();
            let reply = net::send(request, self.net.max_attempts).await;
            self.calls.set(self.calls.get() + 1);
            let reply = match reply {
                Ok(r) => r,
                Err(t) => {
                    self.trace(&format!(
                        "{op} {id}: {t:?} after {} ms",
                        started.elapsed().as_millis()
                    ));
                    return Err(KeyError::Failed(t.describe(
                        &format!("Cloud KMS {op} ({endpoint})"),
                        self.net.timeout,
                    )));
                }
            };
            self.trace(&format!(
                "{op} {id}: {} in {} ms",
                reply.status,
                started.elapsed().as_millis()
            ));
            if !reply.ok() {
                return Err(service_error(&reply, op));
            }
            let j = reply.json();
            if op == "encrypt"
                && j.get("verifiedPlaintextCrc32c").and_then(Value::as_bool) != Some(true)
            {
                last = Some("the service did not verify the plaintext's CRC32C");
                continue;
            }
            let Some(out) = j
                .get(out_field)
                .and_then(Value::as_str)
                .and_then(|s| B64.decode(s).ok())
            else {
                return Err(KeyError::Failed(format!(
                    "Cloud KMS {op} answered without a base64 `{out_field}`"
                )));
            };
            let out = Zeroizing::new(out);
            let crc = j.get(out_crc).and_then(|c| {
                c.as_str()
                    .and_then(|s| s.parse::<u64>().ok())
                    .or(c.as_u64())
            });
            if crc != Some(u64::from(crc32c(&out))) {
                last = Some(if crc.is_none() {
                    "the answer carries no CRC32C of its result"
                } else {
                    "the result does not match its CRC32C"
                });
                continue;
            }
            return Ok(out);
        }
        Err(KeyError::Failed(format!(
            "Cloud KMS {op}: {} ({attempts} attempt{}): the data was damaged on the way; check proxies, or retry",
            last.unwrap_or("integrity check failed"),
            if attempts == 1 { "" } else { "s" }
        )))
    }

    fn run<T>(
        &self,
        jobs: Vec<impl std::future::Future<Output = Result<T, KeyError>>>,
    ) -> Vec<Result<T, KeyError>> {
        match self.runtime() {
            Ok(rt) => net::run_all(rt, self.net.jobs, jobs),
            Err(e) => jobs.iter().map(|_| Err(e.clone())).collect(),
        }
    }
}

/// A credentials problem as a key error.
fn cred_error(e: &CredError) -> KeyError {
    const HINT: &str = "run `gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS to a service-account or workload-identity-federation file, or set GOOGLE_OAUTH_ACCESS_TOKEN";
    match e {
        CredError::Missing(m) => KeyError::Unavailable(format!("{m}; {HINT}")),
        CredError::Refused(m) => KeyError::Unavailable(format!(
            "{m}; the credentials may be expired, revoked or for another project: renew them"
        )),
        CredError::Broken(m) | CredError::Transport(m) => KeyError::Failed(m.clone()),
    }
}

/// A Google API error (`{"error": {"code", "message", "status"}}`) as a
/// key error that says what to do.
fn service_error(reply: &net::Reply, op: &str) -> KeyError {
    let j = reply.json();
    let e = j.get("error");
    let status = e
        .and_then(|e| e.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let message = e
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(net::short)
        .unwrap_or_else(|| format!("status {}", reply.status));
    let permission = if op == "encrypt" {
        "cloudkms.cryptoKeyVersions.useToEncrypt"
    } else {
        "cloudkms.cryptoKeyVersions.useToDecrypt"
    };
    let why = |s: String| format!("Cloud KMS {op}: {s}");
    match (reply.status, status.as_str()) {
        (401, _) | (_, "UNAUTHENTICATED") => KeyError::Unavailable(why(format!(
            "the access token was refused (expired or invalid): {message}; renew the credentials (`gcloud auth application-default login`, or a fresh GOOGLE_OAUTH_ACCESS_TOKEN)"
        ))),
        (403, _) | (_, "PERMISSION_DENIED")
            if message.contains("has not been used") || message.contains("is disabled") =>
        {
            KeyError::Failed(why(format!(
                "the Cloud KMS API is not enabled for the project: {message}; enable it (`gcloud services enable cloudkms.googleapis.com`)"
            )))
        }
        (403, _) | (_, "PERMISSION_DENIED") => KeyError::Failed(why(format!(
            "permission denied, or no such key ({message}); grant {permission} on the key (role roles/cloudkms.cryptoKeyEncrypterDecrypter) and check the key's name"
        ))),
        (404, _) | (_, "NOT_FOUND") => KeyError::Failed(why(format!(
            "key not found ({message}); check the project, location, key ring and key in the id"
        ))),
        (_, "FAILED_PRECONDITION") => KeyError::Failed(why(format!(
            "the key version is not usable: {message}; enable (or restore) the version, or make an enabled version primary"
        ))),
        (_, "INVALID_ARGUMENT") if op == "decrypt" => KeyError::Failed(why(format!(
            "this data key was not wrapped by this key, or the key line is damaged ({message})"
        ))),
        (429, _) | (_, "RESOURCE_EXHAUSTED") => KeyError::Failed(why(format!(
            "throttled by Cloud KMS even after retries ({message}); retry later or lower --jobs"
        ))),
        (s, _) if s >= 500 => KeyError::Failed(why(format!(
            "Cloud KMS is unavailable ({s}: {message}); retry later"
        ))),
        _ => KeyError::Failed(why(format!("{status} {message}").trim().to_owned())),
    }
}

impl Provider for GcpProvider {
    fn kind(&self) -> KeyType {
        KeyType::Gcp
    }

    fn resolve(&self, id: &str) -> Result<String, KeyError> {
        check_id(id).map(|_| id.to_owned())
    }

    fn wrap(&self, request: &WrapRequest<'_>) -> Result<Vec<u8>, KeyError> {
        self.wrap_many(std::slice::from_ref(request))
            .pop()
            .expect("one result per request")
    }

    fn unwrap(&self, request: &UnwrapRequest<'_>) -> Result<Secret, KeyError> {
        self.unwrap_many(std::slice::from_ref(request))
            .pop()
            .expect("one result per request")
    }

    fn wrap_many(&self, requests: &[WrapRequest<'_>]) -> Vec<Result<Vec<u8>, KeyError>> {
        let endpoint = endpoint();
        self.trace(&format!(
            "wrapping {} data key{} at {endpoint}, at most {} at a time",
            requests.len(),
            if requests.len() == 1 { "" } else { "s" },
            self.net.jobs
        ));
        let endpoint = &endpoint;
        let jobs = requests
            .iter()
            .map(|r| async move {
                check_id(r.id)?;
                self.call(endpoint, r.id, "encrypt", r.secret)
                    .await
                    .map(|c| c.to_vec())
            })
            .collect();
        self.run(jobs)
    }

    fn unwrap_many(&self, requests: &[UnwrapRequest<'_>]) -> Vec<Result<Secret, KeyError>> {
        let endpoint = endpoint();
        self.trace(&format!(
            "unwrapping {} data key{} at {endpoint}, at most {} at a time",
            requests.len(),
            if requests.len() == 1 { "" } else { "s" },
            self.net.jobs
        ));
        let endpoint = &endpoint;
        let jobs = requests
            .iter()
            .map(|r| async move {
                check_id(r.id)?;
                self.call(endpoint, r.id, "decrypt", r.blob).await
            })
            .collect();
        self.run(jobs)
    }

    fn is_local(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_values() {
        // RFC 3720 B.4 and the usual check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn key_ids() {
        assert!(check_id("projects/p/locations/global/keyRings/r/cryptoKeys/k").is_ok());
        assert!(
            check_id("projects/my-proj/locations/europe-west1/keyRings/ring_1/cryptoKeys/k.v")
                .is_ok()
        );
        for bad in [
            "projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
            "projects/p/locations/global/keyRings/r",
            "p/locations/global/keyRings/r/cryptoKeys/k",
            "projects//locations/global/keyRings/r/cryptoKeys/k",
            "projects/p/locations/global/keyRings/r/cryptoKeys/k?x",
        ] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
        assert!(
            check_id("projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/2")
                .unwrap_err()
                .to_string()
                .contains("not a version")
        );
    }
}
