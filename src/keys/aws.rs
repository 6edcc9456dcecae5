//! AWS KMS keys, stored exactly as kubesec stores them:
//! `# kubesec:aws:<key id as given>:<base64 of the KMS Encrypt output>`.
//!
//! The SDK's standard configuration applies: the default credential chain
//! (environment, shared profiles, SSO, `credential_process`, assume-role,
//! web identity for EKS IRSA and GitHub OIDC, ECS, IMDS), `AWS_PROFILE` or
//! `--aws-profile`, `AWS_REGION`, and the endpoint variables
//! `AWS_ENDPOINT_URL_KMS` / `AWS_ENDPOINT_URL`. The region comes from the key
//! ARN when there is one, so one file can carry keys in several regions; there
//! is one client per region for the whole run.
//!
//! The SDK is async. A current-thread tokio runtime is created on the first
//! AWS call only, and batches of wraps and unwraps run concurrently on it
//! (bounded by `--jobs`), so 50 documents cost about one round trip.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_kms::Client;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use futures_util::StreamExt as _;

use super::{KeyError, KeyParams, KeyType, Provider, Secret, UnwrapRequest, WrapRequest};
use crate::report::Reporter;

/// Default time for one KMS operation, retries included.
pub const DEFAULT_TIMEOUT: Duration = crate::net::DEFAULT_TIMEOUT;
/// Default bound on concurrent KMS calls.
pub const DEFAULT_JOBS: usize = crate::net::DEFAULT_JOBS;

/// How ksec talks to AWS.
#[derive(Debug, Clone)]
pub struct AwsOptions {
    /// Shared-config profile (`--aws-profile`), else `AWS_PROFILE`, else default.
    pub profile: Option<String>,
    /// Time for one operation, retries included (`--timeout`).
    pub timeout: Duration,
    /// Concurrent calls at most.
    pub jobs: usize,
    /// Attempts per call (`--max-attempts`); when unset, the SDK's own
    /// `AWS_MAX_ATTEMPTS`/`AWS_RETRY_MODE`, else 3.
    pub max_attempts: Option<u32>,
}

impl Default for AwsOptions {
    fn default() -> Self {
        AwsOptions {
            profile: None,
            timeout: DEFAULT_TIMEOUT,
            jobs: DEFAULT_JOBS,
            max_attempts: None,
        }
    }
}

/// The AWS KMS provider.
pub struct AwsProvider {
    options: AwsOptions,
    reporter: std::rc::Rc<dyn Reporter>,
    runtime: OnceCell<Result<tokio::runtime::Runtime, String>>,
    config: OnceCell<SdkConfig>,
    clients: RefCell<HashMap<String, Client>>,
    calls: Cell<usize>,
}

/// A parsed key id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KmsKey {
    /// The region from the ARN, if the id is an ARN.
    region: Option<String>,
}

/// Checks a KMS key id: key ARN, alias ARN, `alias/NAME`, key id.
fn parse_id(id: &str) -> Result<KmsKey, KeyError> {
    if let Some(rest) = id.strip_prefix("arn:") {
        // arn:PARTITION:kms:REGION:ACCOUNT:key/ID | alias/NAME
        let f: Vec<&str> = rest.splitn(5, ':').collect();
        let ok = f.len() == 5
            && f[0].starts_with("aws")
            && f[1] == "kms"
            && !f[2].is_empty()
            && f[3].len() == 12
            && f[3].bytes().all(|b| b.is_ascii_digit())
            && (f[4].strip_prefix("key/").is_some_and(|k| !k.is_empty())
                || f[4].strip_prefix("alias/").is_some_and(|a| !a.is_empty()));
        if !ok {
            return Err(KeyError::InvalidId(format!(
                "`{id}` is not a KMS key or alias ARN (arn:aws:kms:REGION:ACCOUNT:key/ID or …:alias/NAME)"
            )));
        }
        return Ok(KmsKey {
            region: Some(f[2].to_owned()),
        });
    }
    let valid_chars = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/'))
    };
    if let Some(name) = id.strip_prefix("alias/") {
        if valid_chars(name) {
            return Ok(KmsKey { region: None });
        }
    } else if valid_chars(id) && !id.contains('/') {
        return Ok(KmsKey { region: None });
    }
    Err(KeyError::InvalidId(format!(
        "`{id}` is not a KMS key id, key ARN, alias ARN or alias/NAME"
    )))
}

/// Checks the shape of a KMS key id (no network).
pub fn check_id(id: &str) -> Result<(), KeyError> {
    parse_id(id).map(|_| ())
}

impl AwsProvider {
    /// A provider; nothing is loaded until the first AWS call. `-v` traces
    /// of each call go to `reporter`.
    pub fn new(options: AwsOptions, reporter: std::rc::Rc<dyn Reporter>) -> Self {
        AwsProvider {
            options,
            reporter,
            runtime: OnceCell::new(),
            config: OnceCell::new(),
            clients: RefCell::new(HashMap::new()),
            calls: Cell::new(0),
        }
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime, KeyError> {
        self.runtime
            .get_or_init(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the AWS runtime: {e}"))
            })
            .as_ref()
            .map_err(|m| KeyError::Failed(m.clone()))
    }

    fn log(&self, msg: &str) {
        if self.reporter.tracing() {
            self.reporter.trace(&format!("aws: {msg}"));
        }
    }

    /// The shared SDK configuration, loaded once (credentials are resolved
    /// lazily by the SDK and cached across clients).
    fn config(&self) -> Result<&SdkConfig, KeyError> {
        if let Some(c) = self.config.get() {
            return Ok(c);
        }
        let rt = self.runtime()?;
        let loader = config_loader(&self.options);
        let started = Instant::now();
        let config = rt.block_on(loader.load());
        self.log(&format!(
            "loaded configuration (profile {}, default region {}) in {} ms",
            self.options
                .profile
                .clone()
                .or_else(|| std::env::var("AWS_PROFILE").ok())
                .unwrap_or_else(|| "default".into()),
            config.region().map_or("none".into(), |r| r.to_string()),
            started.elapsed().as_millis()
        ));
        Ok(self.config.get_or_init(|| config))
    }

    /// The client for a key's region (one per region per run).
    fn client(&self, id: &str) -> Result<(Client, String), KeyError> {
        let key = parse_id(id)?;
        let config = self.config()?;
        let region = match key
            .region
            .or_else(|| config.region().map(|r| r.to_string()))
        {
            Some(r) => r,
            None => {
                return Err(KeyError::Unavailable(
                    "no AWS region for this key: set AWS_REGION (or a region in the profile), or use the key's ARN".into(),
                ));
            }
        };
        let mut clients = self.clients.borrow_mut();
        let client = clients
            .entry(region.clone())
            .or_insert_with(|| {
                self.log(&format!("new KMS client for region {region}"));
                let conf = aws_sdk_kms::config::Builder::from(config)
                    .region(Region::new(region.clone()))
                    .build();
                Client::from_conf(conf)
            })
            .clone();
        Ok((client, region))
    }

    fn describe<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
        &self,
        e: SdkError<E, R>,
        action: &str,
        region: &str,
    ) -> KeyError {
        describe_error(
            e,
            action,
            region,
            self.options.timeout,
            self.options.profile.as_deref(),
        )
    }

    async fn encrypt(
        &self,
        client: Client,
        region: String,
        id: String,
        secret: Secret,
        params: KeyParams,
    ) -> Result<Vec<u8>, KeyError> {
        let started = Instant::now();
        let mut call = client
            .encrypt()
            .key_id(&id)
            .plaintext(Blob::new(secret.to_vec()));
        for (k, v) in params.encryption_context {
            call = call.encryption_context(k, v);
        }
        let result = call.send().await;
        self.calls.set(self.calls.get() + 1);
        self.log(&format!(
            "Encrypt {id} ({region}): {} in {} ms",
            if result.is_ok() { "ok" } else { "failed" },
            started.elapsed().as_millis()
        ));
        let out = result.map_err(|e| self.describe(e, "Encrypt", &region))?;
        out.ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| KeyError::Failed("KMS Encrypt returned no ciphertext".into()))
    }

    async fn decrypt(
        &self,
        client: Client,
        region: String,
        id: String,
        blob: Vec<u8>,
        params: KeyParams,
    ) -> Result<Secret, KeyError> {
        let started = Instant::now();
        let mut call = client
            .decrypt()
            .key_id(&id)
            .ciphertext_blob(Blob::new(blob));
        for (k, v) in params.encryption_context {
            call = call.encryption_context(k, v);
        }
        let result = call.send().await;
        self.calls.set(self.calls.get() + 1);
        self.log(&format!(
            "Decrypt {id} ({region}): {} in {} ms",
            if result.is_ok() { "ok" } else { "failed" },
            started.elapsed().as_millis()
        ));
        let out = result.map_err(|e| self.describe(e, "Decrypt", &region))?;
        let plain = out
            .plaintext
            .map(Blob::into_inner)
            .ok_or_else(|| KeyError::Failed("KMS Decrypt returned no plaintext".into()))?;
        Ok(zeroize::Zeroizing::new(plain))
    }

    /// Runs one future per request, at most `jobs` at a time, in order.
    fn run_all<T, F>(&self, futures: Vec<F>) -> Vec<T>
    where
        F: std::future::Future<Output = T>,
    {
        let Ok(rt) = self.runtime() else {
            unreachable!("runtime was created when the clients were");
        };
        rt.block_on(
            futures_util::stream::iter(futures)
                .buffered(self.options.jobs.max(1))
                .collect(),
        )
    }

    /// Number of KMS calls made so far (for `-v` and benchmarks).
    pub fn calls(&self) -> usize {
        self.calls.get()
    }
}

/// The SDK configuration every AWS client of ksec uses (KMS keys, secret
/// stores): the default chain, `--aws-profile`, `--timeout` per operation,
/// three attempts unless `AWS_MAX_ATTEMPTS`/`AWS_RETRY_MODE` say otherwise,
/// and one TLS stack (rustls with ring).
pub(crate) fn config_loader(options: &AwsOptions) -> aws_config::ConfigLoader {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
        TimeoutConfig::builder()
            .operation_timeout(options.timeout)
            .operation_attempt_timeout(
                options
                    .timeout
                    .mul_f32(0.45)
                    .max(Duration::from_millis(500)),
            )
            .connect_timeout(Duration::from_secs(3).min(options.timeout))
            .build(),
    );
    // --max-attempts wins; else the SDK's own variables win over our
    // default of 3 attempts.
    if let Some(n) = options.max_attempts {
        loader = loader.retry_config(RetryConfig::standard().with_max_attempts(n));
    } else if std::env::var_os("AWS_MAX_ATTEMPTS").is_none()
        && std::env::var_os("AWS_RETRY_MODE").is_none()
    {
        loader = loader.retry_config(RetryConfig::standard().with_max_attempts(3));
    }
    if let Some(p) = &options.profile {
        loader = loader.profile_name(p);
    }
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    loader.http_client(http)
}

/// One line for an SDK error: what failed, on which key, and what to do.
/// Never the SDK's nested debug structures.
fn describe_error<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    e: SdkError<E, R>,
    action: &str,
    region: &str,
    timeout: Duration,
    profile: Option<&str>,
) -> KeyError {
    let secs = timeout.as_secs_f32();
    let chain = error_chain(&e);
    match &e {
        SdkError::TimeoutError(_) => {
            return KeyError::Failed(format!(
                "KMS {action} ({region}) timed out after {secs}s; check the network and endpoint, or raise --timeout"
            ));
        }
        SdkError::DispatchFailure(d) if d.is_timeout() => {
            return KeyError::Failed(format!(
                "KMS {action} ({region}) timed out after {secs}s; check the network and endpoint, or raise --timeout"
            ));
        }
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("");
            let message = se.err().message().unwrap_or("").to_owned();
            let why = |s: &str| format!("KMS {action} ({region}): {s}");
            return match code {
                "AccessDeniedException" => KeyError::Failed(why(&format!(
                    "access denied: the caller may not call kms:{action} on this key; grant kms:{action} in the key policy or IAM ({message})"
                ))),
                "NotFoundException" => KeyError::Failed(why(&format!(
                    "key not found (wrong id, alias deleted, or wrong region/account?) ({message})"
                ))),
                "DisabledException" => KeyError::Failed(why(&format!(
                    "the key is disabled; enable it to use it ({message})"
                ))),
                "KMSInvalidStateException" => KeyError::Failed(why(&format!(
                    "the key is not usable in its current state (pending deletion or import?): {message}"
                ))),
                "InvalidCiphertextException" | "IncorrectKeyException" => KeyError::Failed(why(
                    "this data key was not wrapped by this KMS key (wrong key or damaged footer line)",
                )),
                "ThrottlingException" | "LimitExceededException" => {
                    KeyError::Failed(why(&format!(
                        "throttled by KMS even after retries; retry later or lower --jobs ({message})"
                    )))
                }
                "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "ExpiredTokenException"
                | "InvalidClientTokenId" => KeyError::Unavailable(why(&format!(
                    "the AWS credentials were refused ({code}: {message}); refresh them"
                ))),
                "KeyUnavailableException"
                | "KMSInternalException"
                | "DependencyTimeoutException" => {
                    KeyError::Failed(why(&format!("KMS is unavailable ({code}); retry later")))
                }
                "" => KeyError::Failed(why(&format!("request failed: {}", first_line(&chain)))),
                other => KeyError::Failed(why(&format!("{other}: {message}"))),
            };
        }
        _ => {}
    }
    let lower = chain.to_ascii_lowercase();
    if lower.contains("credential") {
        let profile = profile
            .map(str::to_owned)
            .or_else(|| std::env::var("AWS_PROFILE").ok())
            .unwrap_or_else(|| "default".into());
        return KeyError::Unavailable(format!(
            "no AWS credentials for KMS {action}: tried environment variables (AWS_ACCESS_KEY_ID), web identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN), profile `{profile}` in the shared config and credentials files (keys, SSO, credential_process, assume-role), ECS container credentials and EC2 instance metadata"
        ));
    }
    if lower.contains("connection refused")
        || lower.contains("dns")
        || lower.contains("connect")
        || lower.contains("io error")
    {
        return KeyError::Failed(format!(
            "cannot reach the KMS endpoint ({region}): {}; check AWS_ENDPOINT_URL(_KMS) and the network",
            innermost(&e)
        ));
    }
    KeyError::Failed(format!(
        "KMS {action} ({region}) failed: {}",
        first_line(&chain)
    ))
}

/// The error and its sources, joined: `a: b: c`.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// The deepest cause, without Rust's `(os error N)`.
pub(crate) fn innermost(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(s) = cur.source() {
        cur = s;
    }
    let t = cur.to_string();
    match t.find(" (os error") {
        Some(i) => t[..i].to_owned(),
        None => t,
    }
}

pub(crate) fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

impl Provider for AwsProvider {
    fn kind(&self) -> KeyType {
        KeyType::Aws
    }

    fn resolve(&self, id: &str) -> Result<String, KeyError> {
        parse_id(id).map(|_| id.to_owned())
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
        self.log(&format!(
            "wrapping {} data key{} in one batch, at most {} at a time",
            requests.len(),
            if requests.len() == 1 { "" } else { "s" },
            self.options.jobs.max(1)
        ));
        let prepared: Vec<Result<(Client, String), KeyError>> =
            requests.iter().map(|r| self.client(r.id)).collect();
        let mut futures = Vec::new();
        for (r, c) in requests.iter().zip(&prepared) {
            let c = c.clone();
            let (id, secret, params) = (
                r.id.to_string(),
                zeroize::Zeroizing::new(r.secret.to_vec()),
                r.params.clone(),
            );
            futures.push(async move {
                let (client, region) = c?;
                self.encrypt(client, region, id, secret, params).await
            });
        }
        self.run_all(futures)
    }

    fn unwrap_many(&self, requests: &[UnwrapRequest<'_>]) -> Vec<Result<Secret, KeyError>> {
        self.log(&format!(
            "unwrapping {} data key{} in one batch, at most {} at a time",
            requests.len(),
            if requests.len() == 1 { "" } else { "s" },
            self.options.jobs.max(1)
        ));
        let prepared: Vec<Result<(Client, String), KeyError>> =
            requests.iter().map(|r| self.client(r.id)).collect();
        let mut futures = Vec::new();
        for (r, c) in requests.iter().zip(&prepared) {
            let c = c.clone();
            let (id, blob, params) = (r.id.to_string(), r.blob.to_vec(), r.params.clone());
            futures.push(async move {
                let (client, region) = c?;
                self.decrypt(client, region, id, blob, params).await
            });
        }
        self.run_all(futures)
    }

    fn is_local(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::parse_id;

    #[test]
    fn key_ids() {
        let arn = "arn:aws:kms:us-west-2:123456789012:key/9efdfd40-a1bb-4a83-bba9-a80537e9703a";
        assert_eq!(parse_id(arn).unwrap().region.as_deref(), Some("us-west-2"));
        assert_eq!(
            parse_id("arn:aws:kms:eu-central-1:123456789012:alias/app")
                .unwrap()
                .region
                .as_deref(),
            Some("eu-central-1")
        );
        assert_eq!(parse_id("alias/kubesec-vector").unwrap().region, None);
        assert_eq!(
            parse_id("9efdfd40-a1bb-4a83-bba9-a80537e9703a")
                .unwrap()
                .region,
            None
        );
        assert_eq!(parse_id("mrk-1234abcd").unwrap().region, None);
        for bad in [
            "arn:aws:s3:::bucket",
            "arn:aws:kms:us-east-1:123:key/x",
            "alias/",
            "a b",
            "key/x",
            "arn:aws:kms:us-east-1:123456789012:key/",
        ] {
            assert!(parse_id(bad).is_err(), "{bad}");
        }
    }
}
