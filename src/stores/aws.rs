//! AWS Secrets Manager and SSM Parameter Store, read and written with the
//! SDK the KMS provider uses ([`crate::keys::aws`]): the same default
//! credential chain (environment, profiles, SSO, `credential_process`,
//! web identity, ECS, IMDS), `--aws-profile`, `--timeout`, `--jobs`, the
//! endpoint variables (`AWS_ENDPOINT_URL_SECRETS_MANAGER`,
//! `AWS_ENDPOINT_URL_SSM`, `AWS_ENDPOINT_URL`), a current-thread runtime
//! created on the first call, and `-v` traces of every call.
//!
//! * Secrets Manager: `GetSecretValue` (by staging label or version id),
//!   `ListSecrets` (name prefix filter, every page) for `find`,
//!   `CreateSecret` / `PutSecretValue` for `push` (the values as one JSON
//!   object; nothing is written when it is unchanged).
//! * Parameter Store: `GetParameter` with decryption (`name:VERSION` for a
//!   version or label), `GetParametersByPath` (every page) for `find`,
//!   `PutParameter` as `SecureString` for `push`.
//! * A store's `role` is assumed first (STS `AssumeRole`, session name
//!   `ksec`), as the controllers do.

use std::cell::{OnceCell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Instant;

use aws_config::{Region, SdkConfig};
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use futures_util::StreamExt as _;
use zeroize::Zeroizing;

use super::{AwsAccess, Failure, Find, Get, Put, PutReport, Remote, Store, StoreError, Version};
use crate::keys::aws::{AwsOptions, config_loader, error_chain, first_line, innermost};
use crate::report::Reporter;

/// What every AWS store of a run shares: the runtime and the base
/// configuration, loaded once.
pub struct AwsShared {
    options: AwsOptions,
    reporter: Rc<dyn Reporter>,
    runtime: OnceCell<Result<tokio::runtime::Runtime, String>>,
    base: OnceCell<SdkConfig>,
    /// Configurations per region and role.
    configs: RefCell<HashMap<AwsAccess, SdkConfig>>,
}

impl AwsShared {
    /// Nothing is loaded until the first call.
    pub fn new(options: AwsOptions, reporter: Rc<dyn Reporter>) -> Rc<AwsShared> {
        Rc::new(AwsShared {
            options,
            reporter,
            runtime: OnceCell::new(),
            base: OnceCell::new(),
            configs: RefCell::new(HashMap::new()),
        })
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime, StoreError> {
        self.runtime
            .get_or_init(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the AWS runtime: {e}"))
            })
            .as_ref()
            .map_err(|m| StoreError::new(Failure::Other, m.clone()))
    }

    fn log(&self, msg: &str) {
        if self.reporter.tracing() {
            self.reporter.trace(&format!("aws: {msg}"));
        }
    }

    /// The configuration for `access`: its region, its role assumed.
    fn config(&self, access: &AwsAccess) -> Result<SdkConfig, StoreError> {
        if let Some(c) = self.configs.borrow().get(access) {
            return Ok(c.clone());
        }
        let rt = self.runtime()?;
        let base = match self.base.get() {
            Some(b) => b,
            None => {
                let started = Instant::now();
                let c = rt.block_on(config_loader(&self.options).load());
                self.log(&format!(
                    "loaded configuration (default region {}) in {} ms",
                    c.region().map_or("none".into(), |r| r.to_string()),
                    started.elapsed().as_millis()
                ));
                self.base.get_or_init(|| c)
            }
        };
        let region = access
            .region
            .clone()
            .or_else(|| base.region().map(|r| r.to_string()))
            .ok_or_else(|| {
                StoreError::new(
                    Failure::Other,
                    "no AWS region: set AWS_REGION (or a region in the profile)",
                )
            })?;
        let mut builder = base.to_builder();
        builder.set_region(Some(Region::new(region.clone())));
        let mut config = builder.build();
        if let Some(role) = &access.role {
            self.log(&format!("assuming role {role} (session ksec)"));
            let provider = rt.block_on(
                aws_config::sts::AssumeRoleProvider::builder(role.clone())
                    .session_name("ksec")
                    .region(Region::new(region))
                    .configure(&config)
                    .build(),
            );
            config = config
                .to_builder()
                .credentials_provider(
                    aws_sdk_secretsmanager::config::SharedCredentialsProvider::new(provider),
                )
                .build();
        }
        self.configs
            .borrow_mut()
            .insert(access.clone(), config.clone());
        Ok(config)
    }

    /// The region a store without its own would use.
    pub fn default_region(&self) -> Option<String> {
        self.config(&AwsAccess::default())
            .ok()
            .map(|c| AwsShared::region_of(&c))
    }

    /// Runs futures, at most `--jobs` at a time, results in order.
    fn run_all<T, F: std::future::Future<Output = T>>(&self, futures: Vec<F>) -> Vec<T> {
        let Ok(rt) = self.runtime() else {
            unreachable!("the runtime was created with the configuration");
        };
        rt.block_on(
            futures_util::stream::iter(futures)
                .buffered(self.options.jobs.max(1))
                .collect(),
        )
    }

    fn region_of(config: &SdkConfig) -> String {
        config.region().map_or_else(String::new, |r| r.to_string())
    }
}

/// One line for an SDK error: what failed, on what, and what to do.
fn describe<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    shared: &AwsShared,
    e: SdkError<E, R>,
    service: &str,
    action: &str,
    name: &str,
) -> StoreError {
    let secs = shared.options.timeout.as_secs_f32();
    let timed_out = || {
        StoreError::new(
            Failure::Unreachable,
            format!(
                "{action} {name} timed out after {secs}s; check the network and endpoint, or raise --timeout"
            ),
        )
    };
    match &e {
        SdkError::TimeoutError(_) => return timed_out(),
        SdkError::DispatchFailure(d) if d.is_timeout() => return timed_out(),
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("");
            let message = se.err().message().unwrap_or("").to_owned();
            let (kind, text) = match code {
                "ResourceNotFoundException" | "ParameterNotFound" => (
                    Failure::NotFound,
                    format!("{name} does not exist ({code}: {message})"),
                ),
                "ParameterVersionNotFound" | "ParameterVersionLabelLimitExceeded" => (
                    Failure::VersionMissing,
                    format!("{name}: no such version ({code}: {message})"),
                ),
                "AccessDeniedException" | "AccessDenied" => (
                    Failure::Denied,
                    format!(
                        "access denied: the caller may not call {service}:{action} on {name}; grant it in IAM (or the secret's resource policy) ({message})"
                    ),
                ),
                "DecryptionFailure" | "InvalidKeyId" | "KMSAccessDeniedException" => (
                    Failure::Denied,
                    format!("{name}: its KMS key cannot be used ({code}: {message})"),
                ),
                "ThrottlingException" | "TooManyUpdates" | "ThrottledException" => (
                    Failure::Throttled,
                    format!(
                        "{action} {name}: throttled even after retries; retry later or lower --jobs ({message})"
                    ),
                ),
                "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "ExpiredTokenException"
                | "InvalidClientTokenId" => (
                    Failure::Credentials,
                    format!("the AWS credentials were refused ({code}: {message}); refresh them"),
                ),
                "InvalidRequestException" if message.contains("marked for deletion") => (
                    Failure::NotFound,
                    format!("{name} is scheduled for deletion ({message})"),
                ),
                "" => (
                    Failure::Other,
                    format!("{action} {name} failed: {}", first_line(&error_chain(&e))),
                ),
                other => (
                    Failure::Other,
                    format!("{action} {name}: {other}: {message}"),
                ),
            };
            return StoreError::new(kind, text);
        }
        _ => {}
    }
    let chain = error_chain(&e);
    let lower = chain.to_ascii_lowercase();
    if lower.contains("credential") {
        let profile = shared
            .options
            .profile
            .clone()
            .or_else(|| std::env::var("AWS_PROFILE").ok())
            .unwrap_or_else(|| "default".into());
        return StoreError::new(
            Failure::Credentials,
            format!(
                "no AWS credentials for {action}: tried environment variables (AWS_ACCESS_KEY_ID), web identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN), profile `{profile}` in the shared config and credentials files (keys, SSO, credential_process, assume-role), ECS container credentials and EC2 instance metadata"
            ),
        );
    }
    if lower.contains("connection refused")
        || lower.contains("dns")
        || lower.contains("connect")
        || lower.contains("io error")
    {
        return StoreError::new(
            Failure::Unreachable,
            format!(
                "cannot reach the {service} endpoint: {}; check AWS_ENDPOINT_URL and the network",
                innermost(&e)
            ),
        );
    }
    StoreError::new(
        Failure::Other,
        format!("{action} {name} failed: {}", first_line(&chain)),
    )
}

fn text_values(values: &[(String, Zeroizing<Vec<u8>>)]) -> Result<Vec<(&str, &str)>, StoreError> {
    values
        .iter()
        .map(|(k, v)| {
            std::str::from_utf8(v)
                .map(|t| (k.as_str(), t))
                .map_err(|_| {
                    StoreError::new(
                        Failure::Invalid,
                        format!(
                            "the value of `{k}` is not UTF-8 text, which this store cannot hold"
                        ),
                    )
                })
        })
        .collect()
}

/// AWS Secrets Manager in one region.
pub struct SecretsManager {
    shared: Rc<AwsShared>,
    access: AwsAccess,
    client: OnceCell<(aws_sdk_secretsmanager::Client, String)>,
}

impl SecretsManager {
    /// A store; nothing is called until it is used.
    pub fn new(shared: Rc<AwsShared>, access: AwsAccess) -> Self {
        SecretsManager {
            shared,
            access,
            client: OnceCell::new(),
        }
    }

    fn client(&self) -> Result<&(aws_sdk_secretsmanager::Client, String), StoreError> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let config = self.shared.config(&self.access)?;
        let region = AwsShared::region_of(&config);
        self.shared
            .log(&format!("new Secrets Manager client for region {region}"));
        let client = aws_sdk_secretsmanager::Client::new(&config);
        Ok(self.client.get_or_init(|| (client, region)))
    }

    async fn get_one(
        &self,
        client: aws_sdk_secretsmanager::Client,
        g: Get,
    ) -> Result<Remote, StoreError> {
        let started = Instant::now();
        let mut call = client.get_secret_value().secret_id(&g.key);
        let shown = match &g.version {
            Version::Current => "AWSCURRENT".to_owned(),
            Version::Named(stage) => {
                call = call.version_stage(stage);
                stage.clone()
            }
            Version::Id(id) => {
                call = call.version_id(id);
                format!("version {id}")
            }
        };
        let result = call.send().await;
        self.shared.log(&format!(
            "GetSecretValue {} ({shown}): {} in {} ms",
            g.key,
            if result.is_ok() { "ok" } else { "failed" },
            started.elapsed().as_millis()
        ));
        let out = result.map_err(|e| {
            let mut err = describe(&self.shared, e, "secretsmanager", "GetSecretValue", &g.key);
            if err.kind == Failure::NotFound && g.version != Version::Current {
                err.kind = Failure::VersionMissing;
                err.message = format!(
                    "{} has no version {shown}, or does not exist ({})",
                    g.key, err.message
                );
            }
            err
        })?;
        if let Some(s) = out.secret_string() {
            Ok(Remote::Text(Zeroizing::new(s.to_owned())))
        } else if let Some(b) = out.secret_binary() {
            Ok(Remote::Binary(Zeroizing::new(b.as_ref().to_vec())))
        } else {
            Err(StoreError::new(
                Failure::Other,
                format!("{} has neither SecretString nor SecretBinary", g.key),
            ))
        }
    }
}

impl Store for SecretsManager {
    fn label(&self) -> String {
        match self.client() {
            Ok((_, r)) => format!("AWS Secrets Manager ({r})"),
            Err(_) => "AWS Secrets Manager".into(),
        }
    }

    fn get_many(&self, requests: &[Get]) -> Vec<Result<Remote, StoreError>> {
        let client = match self.client() {
            Ok((c, _)) => c.clone(),
            Err(e) => return requests.iter().map(|_| Err(e.clone())).collect(),
        };
        let futures = requests
            .iter()
            .map(|g| self.get_one(client.clone(), g.clone()))
            .collect();
        self.shared.run_all(futures)
    }

    fn find(&self, find: &Find) -> Result<Vec<(String, Remote)>, StoreError> {
        let (client, _) = self.client()?.clone();
        let mut names = Vec::new();
        let started = Instant::now();
        let mut pages = 0;
        let shown = find.path.clone().unwrap_or_default();
        let mut list = client.list_secrets().max_results(100);
        if let Some(p) = &find.path {
            list = list.filters(
                aws_sdk_secretsmanager::types::Filter::builder()
                    .key(aws_sdk_secretsmanager::types::FilterNameStringType::Name)
                    .values(p)
                    .build(),
            );
        }
        let mut stream = list.into_paginator().send();
        let rt = self.shared.runtime()?;
        loop {
            let Some(page) = rt.block_on(stream.next()) else {
                break;
            };
            pages += 1;
            let page = page
                .map_err(|e| describe(&self.shared, e, "secretsmanager", "ListSecrets", &shown))?;
            for s in page.secret_list() {
                if let Some(n) = s.name()
                    && n.starts_with(&shown)
                    && find.name.as_ref().is_none_or(|r| r.is_match(n))
                {
                    names.push(n.to_owned());
                }
            }
        }
        self.shared.log(&format!(
            "ListSecrets `{shown}`: {} match{} in {pages} page{} in {} ms",
            names.len(),
            if names.len() == 1 { "" } else { "es" },
            if pages == 1 { "" } else { "s" },
            started.elapsed().as_millis()
        ));
        names.sort();
        names.dedup();
        let gets: Vec<Get> = names
            .iter()
            .map(|n| Get {
                key: n.clone(),
                version: Version::Current,
            })
            .collect();
        let values = self.get_many(&gets);
        names
            .into_iter()
            .zip(values)
            .map(|(n, v)| v.map(|v| (n, v)))
            .collect()
    }

    fn put(&self, put: &Put<'_>) -> Result<PutReport, StoreError> {
        let (client, _) = self.client()?.clone();
        let mut object = Zeroizing::new(String::from("{"));
        for (i, (k, v)) in text_values(put.values)?.into_iter().enumerate() {
            if i > 0 {
                object.push(',');
            }
            super::json::go_quote(k, &mut object);
            object.push(':');
            super::json::js_quote(v, &mut object);
        }
        object.push('}');
        let name = put.target;
        let current = self.get_many(&[Get {
            key: name.to_owned(),
            version: Version::Current,
        }]);
        let rt = self.shared.runtime()?;
        let started = Instant::now();
        let line = match current.into_iter().next().expect("one result") {
            Ok(Remote::Text(t)) if t.as_str() == object.as_str() => format!("{name}: unchanged"),
            Ok(_) => {
                let r = rt.block_on(
                    client
                        .put_secret_value()
                        .secret_id(name)
                        .secret_string(object.as_str())
                        .send(),
                );
                self.shared.log(&format!(
                    "PutSecretValue {name}: {} in {} ms",
                    if r.is_ok() { "ok" } else { "failed" },
                    started.elapsed().as_millis()
                ));
                let out = r.map_err(|e| {
                    describe(&self.shared, e, "secretsmanager", "PutSecretValue", name)
                })?;
                format!(
                    "{name}: new version {} (AWSCURRENT; the previous one is AWSPREVIOUS)",
                    out.version_id().unwrap_or("?")
                )
            }
            Err(e) if e.kind == Failure::NotFound => {
                let mut call = client
                    .create_secret()
                    .name(name)
                    .secret_string(object.as_str());
                if let Some(k) = put.kms_key {
                    call = call.kms_key_id(k);
                }
                let r = rt.block_on(call.send());
                self.shared.log(&format!(
                    "CreateSecret {name}: {} in {} ms",
                    if r.is_ok() { "ok" } else { "failed" },
                    started.elapsed().as_millis()
                ));
                r.map_err(|e| describe(&self.shared, e, "secretsmanager", "CreateSecret", name))?;
                format!("created {name}")
            }
            Err(e) => return Err(e),
        };
        Ok(PutReport {
            lines: vec![line],
            kv: None,
        })
    }
}

/// SSM Parameter Store in one region.
pub struct ParameterStore {
    shared: Rc<AwsShared>,
    access: AwsAccess,
    client: OnceCell<(aws_sdk_ssm::Client, String)>,
}

impl ParameterStore {
    /// A store; nothing is called until it is used.
    pub fn new(shared: Rc<AwsShared>, access: AwsAccess) -> Self {
        ParameterStore {
            shared,
            access,
            client: OnceCell::new(),
        }
    }

    fn client(&self) -> Result<&(aws_sdk_ssm::Client, String), StoreError> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let config = self.shared.config(&self.access)?;
        let region = AwsShared::region_of(&config);
        self.shared
            .log(&format!("new SSM client for region {region}"));
        let client = aws_sdk_ssm::Client::new(&config);
        Ok(self.client.get_or_init(|| (client, region)))
    }

    async fn get_one(&self, client: aws_sdk_ssm::Client, g: Get) -> Result<Remote, StoreError> {
        let started = Instant::now();
        let name = match &g.version {
            Version::Named(v) | Version::Id(v) => format!("{}:{v}", g.key),
            Version::Current => g.key.clone(),
        };
        let result = client
            .get_parameter()
            .name(&name)
            .with_decryption(true)
            .send()
            .await;
        self.shared.log(&format!(
            "GetParameter {name}: {} in {} ms",
            if result.is_ok() { "ok" } else { "failed" },
            started.elapsed().as_millis()
        ));
        let out = result.map_err(|e| describe(&self.shared, e, "ssm", "GetParameter", &name))?;
        let value = out
            .parameter()
            .and_then(|p| p.value())
            .ok_or_else(|| StoreError::new(Failure::Other, format!("{name} has no value")))?;
        Ok(Remote::Text(Zeroizing::new(value.to_owned())))
    }

    /// Every parameter below `path` with its value, by name.
    fn by_path(
        &self,
        path: &str,
        recursive: bool,
    ) -> Result<BTreeMap<String, Zeroizing<String>>, StoreError> {
        let (client, _) = self.client()?.clone();
        let rt = self.shared.runtime()?;
        let started = Instant::now();
        let mut pages = 0;
        let mut out = BTreeMap::new();
        let mut stream = client
            .get_parameters_by_path()
            .path(path)
            .recursive(recursive)
            .with_decryption(true)
            .into_paginator()
            .send();
        loop {
            let Some(page) = rt.block_on(stream.next()) else {
                break;
            };
            pages += 1;
            let page =
                page.map_err(|e| describe(&self.shared, e, "ssm", "GetParametersByPath", path))?;
            for p in page.parameters() {
                if let (Some(n), Some(v)) = (p.name(), p.value()) {
                    out.insert(n.to_owned(), Zeroizing::new(v.to_owned()));
                }
            }
        }
        self.shared.log(&format!(
            "GetParametersByPath {path} (recursive: {recursive}): {} parameter{} in {pages} page{} in {} ms",
            out.len(),
            if out.len() == 1 { "" } else { "s" },
            if pages == 1 { "" } else { "s" },
            started.elapsed().as_millis()
        ));
        Ok(out)
    }
}

impl Store for ParameterStore {
    fn label(&self) -> String {
        match self.client() {
            Ok((_, r)) => format!("SSM Parameter Store ({r})"),
            Err(_) => "SSM Parameter Store".into(),
        }
    }

    fn get_many(&self, requests: &[Get]) -> Vec<Result<Remote, StoreError>> {
        let client = match self.client() {
            Ok((c, _)) => c.clone(),
            Err(e) => return requests.iter().map(|_| Err(e.clone())).collect(),
        };
        let futures = requests
            .iter()
            .map(|g| self.get_one(client.clone(), g.clone()))
            .collect();
        self.shared.run_all(futures)
    }

    fn find(&self, find: &Find) -> Result<Vec<(String, Remote)>, StoreError> {
        let path = find.path.clone().unwrap_or_else(|| "/".into());
        Ok(self
            .by_path(&path, find.recursive)?
            .into_iter()
            .filter(|(n, _)| find.name.as_ref().is_none_or(|r| r.is_match(n)))
            .map(|(n, v)| (n, Remote::Text(v)))
            .collect())
    }

    fn put(&self, put: &Put<'_>) -> Result<PutReport, StoreError> {
        let (client, _) = self.client()?.clone();
        let prefix = put.target.trim_end_matches('/');
        let values = text_values(put.values)?;
        if let Some((k, _)) = values.iter().find(|(_, v)| v.is_empty()) {
            return Err(StoreError::new(
                Failure::Invalid,
                format!(
                    "the value of `{k}` is empty, and Parameter Store cannot hold an empty parameter"
                ),
            ));
        }
        let existing = self.by_path(if prefix.is_empty() { "/" } else { prefix }, false)?;
        let rt = self.shared.runtime()?;
        let mut report = PutReport::default();
        let mut futures = Vec::new();
        for (k, v) in values {
            let name = format!("{prefix}/{k}");
            match existing.get(&name) {
                Some(old) if old.as_str() == v => {
                    report.lines.push(format!("{name}: unchanged"));
                    continue;
                }
                Some(_) => report.lines.push(format!("{name}: new version")),
                None => report.lines.push(format!("created {name}")),
            }
            let mut call = client
                .put_parameter()
                .name(&name)
                .value(v)
                .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                .overwrite(true);
            if let Some(key) = put.kms_key {
                call = call.key_id(key);
            }
            let shared = &self.shared;
            futures.push(async move {
                let started = Instant::now();
                let r = call.send().await;
                shared.log(&format!(
                    "PutParameter {name} (SecureString): {} in {} ms",
                    if r.is_ok() { "ok" } else { "failed" },
                    started.elapsed().as_millis()
                ));
                r.map(|_| ())
                    .map_err(|e| describe(shared, e, "ssm", "PutParameter", &name))
            });
        }
        let _ = rt;
        for r in self.shared.run_all(futures) {
            r?;
        }
        Ok(report)
    }
}
