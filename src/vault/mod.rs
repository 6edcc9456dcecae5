//! A HashiCorp Vault / OpenBao client: JSON reads and writes at a path,
//! with the settings the `vault` CLI reads ([`Settings`]) and the logins CI
//! jobs and clusters use (token, AppRole, Kubernetes, JWT/OIDC).
//!
//! Transit keys ([`crate::keys`]'s `vault:` type) are built on it, and so can
//! anything else that keeps data in Vault (KV v1/v2): [`Client::get`],
//! [`Client::post`], [`Client::put`], [`Client::list`], [`Client::delete`]
//! take a path below `/v1/` (`secret/data/app`, `transit/encrypt/k`).
//!
//! * One client per server address; it logs in once, on its first call
//!   (concurrent first calls wait for the same login).
//! * `VAULT_NAMESPACE` goes in the `X-Vault-Namespace` header of every call.
//! * Every call is bounded by the run's timeout (retries and login
//!   included); 429, 5xx (not "sealed") and dropped connections are retried
//!   up to `max_attempts` times.
//! * Errors are [`VaultError`]s: a kind to branch on and one line that
//!   names the server, the method and the path, with a hint. Vault answers
//!   a plain `permission denied` for a bad or expired token and `1 error
//!   occurred: * permission denied` for a policy that denies the path; the
//!   two are told apart.
//! * `-v` traces one line per call (method, URL, status, time) and per
//!   login; never a token, never a body.
//!
//! The client is async; [`Blocking`] runs it on its own current-thread
//! runtime for callers that are not.

mod error;
mod settings;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;
use zeroize::Zeroizing;

pub use error::{ErrorKind, VaultError};
pub use settings::{Auth, K8S_TOKEN_FILE, MISSING_TOKEN_HINT, Settings};

use crate::net::{self, Transport};
use crate::report::Reporter;

/// A client of one Vault server.
pub struct Client {
    address: String,
    http: reqwest::Client,
    settings: Rc<Settings>,
    token: tokio::sync::OnceCell<Result<Zeroizing<String>, VaultError>>,
    reporter: Rc<dyn Reporter>,
    calls: Cell<usize>,
}

/// An answer's JSON body (none for 204).
struct Answer {
    json: Option<Value>,
}

/// Checks a server address (`https://vault.example.com:8200`) and returns
/// it without a trailing slash.
pub fn check_address(address: &str) -> Result<String, VaultError> {
    let bad = |why: &str| {
        VaultError::new(
            ErrorKind::Config,
            format!(
                "`{}` is not a Vault address ({why}); expected e.g. https://vault.example.com:8200",
                crate::error::one_line(address)
            ),
        )
    };
    let url = url::Url::parse(address.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("no query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("no user name or password in the address"));
    }
    Ok(address.trim().trim_end_matches('/').to_owned())
}

/// A JSON body as bytes that are wiped when dropped (bodies carry data
/// keys, secret ids and JWTs).
fn json_bytes(value: &Value) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(serde_json::to_vec(value).unwrap_or_default())
}

/// A path below `/v1/`, without leading slashes or `v1/`.
fn api_path(path: &str) -> &str {
    let p = path.trim_start_matches('/');
    p.strip_prefix("v1/").unwrap_or(p)
}

impl Client {
    /// A client of the server at `address`; nothing is sent until the first call.
    pub fn new(
        address: &str,
        settings: Rc<Settings>,
        reporter: Rc<dyn Reporter>,
    ) -> Result<Client, VaultError> {
        let address = check_address(address)?;
        if settings.tls.skip_verify && address.starts_with("https:") {
            reporter.warn(&format!(
                "VAULT_SKIP_VERIFY is set: the certificate of {address} is not checked"
            ));
        }
        let http = net::client(&settings.tls, settings.net.timeout)
            .map_err(|e| VaultError::new(ErrorKind::Config, format!("Vault at {address}: {e}")))?;
        Ok(Client {
            address,
            http,
            settings,
            token: tokio::sync::OnceCell::new(),
            reporter,
            calls: Cell::new(0),
        })
    }

    /// A client of `VAULT_ADDR` (or `BAO_ADDR`).
    pub fn from_settings(
        settings: Rc<Settings>,
        reporter: Rc<dyn Reporter>,
    ) -> Result<Client, VaultError> {
        let Some(address) = settings.address.clone() else {
            return Err(VaultError::new(
                ErrorKind::Config,
                "no Vault address: VAULT_ADDR is not set",
            )
            .hint("set VAULT_ADDR (or BAO_ADDR), e.g. https://vault.example.com:8200"));
        };
        Client::new(&address, settings, reporter)
    }

    /// The server's address, as given.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The settings it uses.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// How many HTTP calls it made (logins included).
    pub fn calls(&self) -> usize {
        self.calls.get()
    }

    fn trace(&self, message: &str) {
        if self.reporter.tracing() {
            self.reporter.trace(&format!("vault: {message}"));
        }
    }

    /// Logs in (once per client) or takes the configured token; later
    /// calls reuse the result, a failure included.
    pub async fn login(&self) -> Result<(), VaultError> {
        self.token().await.map(|_| ())
    }

    async fn token(&self) -> Result<Zeroizing<String>, VaultError> {
        let timeout = self.settings.net.timeout;
        self.token
            .get_or_init(|| async {
                match net::deadline(timeout, self.obtain_token()).await {
                    Ok(r) => r,
                    Err(t) => Err(self.transport_error(&t, "login")),
                }
            })
            .await
            .clone()
    }

    async fn obtain_token(&self) -> Result<Zeroizing<String>, VaultError> {
        let (mount, body) = match &self.settings.auth {
            Auth::Token { token, .. } => return Ok(token.clone()),
            Auth::Missing => {
                return Err(VaultError::new(
                    ErrorKind::MissingToken,
                    format!("no Vault token for {}", self.address),
                )
                .hint(MISSING_TOKEN_HINT));
            }
            Auth::AppRole {
                mount,
                role_id,
                secret_id,
            } => (
                mount,
                json_bytes(
                    &serde_json::json!({"role_id": role_id, "secret_id": secret_id.as_str()}),
                ),
            ),
            Auth::Kubernetes {
                mount,
                role,
                token_file,
            } => {
                let jwt = std::fs::read_to_string(token_file).map_err(|e| {
                    VaultError::new(
                        ErrorKind::Config,
                        format!(
                            "Kubernetes login: cannot read the service-account token {}: {e}",
                            token_file.display()
                        ),
                    )
                    .hint("run in a pod with a service-account token, or set KSEC_VAULT_K8S_TOKEN_FILE")
                })?;
                let jwt = Zeroizing::new(jwt);
                (
                    mount,
                    json_bytes(&serde_json::json!({"role": role, "jwt": jwt.trim()})),
                )
            }
            Auth::Jwt {
                mount, role, jwt, ..
            } => {
                let mut body = serde_json::json!({"jwt": jwt.as_str()});
                if !role.is_empty() {
                    body["role"] = Value::String(role.clone());
                }
                (mount, json_bytes(&body))
            }
        };
        let what = self.settings.auth.describe();
        let path = format!("auth/{mount}/login");
        let answer = self
            .exchange(Method::POST, &path, Some(&body), None)
            .await
            .map_err(|e| self.login_error(e.error, &what))?;
        let token = answer
            .json
            .as_ref()
            .and_then(|j| j.pointer("/auth/client_token"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(|t| Zeroizing::new(t.to_owned()))
            .ok_or_else(|| {
                VaultError::new(
                    ErrorKind::Protocol,
                    format!("{what} at {}: the answer carries no token", self.address),
                )
            })?;
        let ttl = answer
            .json
            .as_ref()
            .and_then(|j| j.pointer("/auth/lease_duration"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        self.trace(&format!("{what}: ok (token valid for {ttl}s)"));
        Ok(token)
    }

    /// A login failure, with what to check for the method used.
    fn login_error(&self, mut e: VaultError, what: &str) -> VaultError {
        if !matches!(
            e.kind,
            ErrorKind::Invalid | ErrorKind::TokenRejected | ErrorKind::PermissionDenied
        ) {
            return e;
        }
        e.kind = ErrorKind::LoginFailed;
        let said = if e.errors.is_empty() {
            format!("status {}", e.status.unwrap_or(0))
        } else {
            net::short(&e.errors.join("; "))
        };
        e.message = format!("{what} was refused by {}: {said}", self.address);
        e.hint = Some(match &self.settings.auth {
            Auth::AppRole { .. } => "check VAULT_ROLE_ID and VAULT_SECRET_ID (secret ids expire and can be limited to a number of uses) and KSEC_VAULT_AUTH_MOUNT".into(),
            Auth::Jwt { .. } => "the JWT must be signed by an issuer auth/MOUNT/config trusts, carry the role's bound audience and claims, and not be expired; check KSEC_VAULT_ROLE and KSEC_VAULT_AUTH_MOUNT".into(),
            Auth::Kubernetes { .. } => "check KSEC_VAULT_ROLE: the role must be bound to this service account and namespace".into(),
            _ => "check the login settings".into(),
        });
        e
    }

    /// `GET path`: the JSON answer, or `None` when Vault has nothing there
    /// (404 without a message, as KV answers for a missing secret).
    pub async fn get(&self, path: &str) -> Result<Option<Value>, VaultError> {
        self.call(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body: the JSON answer (`None` for 204).
    pub async fn post(&self, path: &str, body: &Value) -> Result<Option<Value>, VaultError> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `PUT path` with a JSON body: the JSON answer (`None` for 204).
    pub async fn put(&self, path: &str, body: &Value) -> Result<Option<Value>, VaultError> {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<(), VaultError> {
        self.call(Method::DELETE, path, None).await.map(|_| ())
    }

    /// `LIST path`: the keys below it (empty when there are none).
    pub async fn list(&self, path: &str) -> Result<Vec<String>, VaultError> {
        let list = Method::from_bytes(b"LIST").expect("LIST is a valid method");
        let answer = self.call(list, path, None).await?;
        Ok(answer
            .as_ref()
            .and_then(|j| j.pointer("/data/keys"))
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `POST path` of a batch operation (transit's `batch_input`): the JSON
    /// answer also when Vault answers 400 because some items failed (their
    /// errors are in `data.batch_results`).
    pub async fn post_batch(&self, path: &str, body: &Value) -> Result<Value, VaultError> {
        let timeout = self.settings.net.timeout;
        let body = json_bytes(body);
        let run = async {
            let token = self.token().await?;
            match self
                .exchange(Method::POST, path, Some(&body), Some(&token))
                .await
            {
                Ok(a) => a.json.ok_or_else(|| self.no_json(path)),
                Err(e) if e.kind == ErrorKind::Invalid => {
                    e.batch.clone().ok_or(e.error).map(|b| *b)
                }
                Err(e) => Err(e.error),
            }
        };
        match net::deadline(timeout, run).await {
            Ok(r) => r,
            Err(t) => Err(self.transport_error(&t, &format!("POST {}", api_path(path)))),
        }
    }

    fn no_json(&self, path: &str) -> VaultError {
        VaultError::new(
            ErrorKind::Protocol,
            format!(
                "Vault at {}: POST {} returned no JSON",
                self.address,
                api_path(path)
            ),
        )
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, VaultError> {
        let timeout = self.settings.net.timeout;
        let what = format!("{method} {}", api_path(path));
        let body = body.map(json_bytes);
        let run = async {
            let token = self.token().await?;
            match self
                .exchange(
                    method,
                    path,
                    body.as_deref().map(Vec::as_slice),
                    Some(&token),
                )
                .await
            {
                Ok(a) => Ok(a.json),
                Err(e) if e.kind == ErrorKind::NotFound && e.error.errors.is_empty() => Ok(None),
                Err(e) => Err(e.error),
            }
        };
        match net::deadline(timeout, run).await {
            Ok(r) => r,
            Err(t) => Err(self.transport_error(&t, &what)),
        }
    }

    /// One request with retries of transient failures.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        token: Option<&str>,
    ) -> Result<Answer, Failed> {
        let path = api_path(path);
        let url = format!("{}/v1/{path}", self.address);
        let attempts = self.settings.net.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let result = self.send_once(&method, &url, body, token).await;
            self.calls.set(self.calls.get() + 1);
            let took = started.elapsed().as_millis();
            let outcome = match result {
                Ok((status, text)) => {
                    self.trace(&format!("{method} {url}: {status} in {took} ms"));
                    match self.answer(&method, path, status, &text) {
                        Ok(a) => return Ok(a),
                        Err(f) => f,
                    }
                }
                Err(t) => {
                    self.trace(&format!("{method} {url}: {t:?} after {took} ms"));
                    Failed::from(self.transport_error(&t, &format!("{method} {path}")))
                        .retry_if(t.transient())
                }
            };
            if !outcome.retry || attempt >= attempts {
                return Err(outcome);
            }
            attempt += 1;
            tokio::time::sleep(net::backoff(attempt)).await;
        }
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &str,
        body: Option<&[u8]>,
        token: Option<&str>,
    ) -> Result<(u16, Zeroizing<String>), Transport> {
        let mut headers = HeaderMap::new();
        if let Some(t) = token {
            let mut v = HeaderValue::from_str(t).map_err(|_| {
                Transport::Other("the Vault token contains characters a header cannot carry".into())
            })?;
            v.set_sensitive(true);
            headers.insert("X-Vault-Token", v);
        }
        if let Some(ns) = &self.settings.namespace
            && let Ok(v) = HeaderValue::from_str(ns)
        {
            headers.insert("X-Vault-Namespace", v);
        }
        headers.insert("X-Vault-Request", HeaderValue::from_static("true"));
        let mut request = self.http.request(method.clone(), url).headers(headers);
        if let Some(b) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(b.to_vec());
        }
        let response = request.send().await.map_err(|e| net::transport(&e))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| net::transport(&e))?;
        Ok((status, Zeroizing::new(text)))
    }

    /// Reads an answer: success, or a classified failure.
    fn answer(
        &self,
        method: &Method,
        path: &str,
        status: u16,
        text: &str,
    ) -> Result<Answer, Failed> {
        let json: Option<Value> = if text.trim().is_empty() {
            None
        } else {
            serde_json::from_str(text).ok()
        };
        if (200..300).contains(&status) {
            if json.is_none() && status != 204 && !text.trim().is_empty() {
                return Err(Failed::from(VaultError {
                    kind: ErrorKind::Protocol,
                    status: Some(status),
                    errors: Vec::new(),
                    message: format!(
                        "{} answered {method} {path} with something that is not JSON (is this Vault?)",
                        self.address
                    ),
                    hint: None,
                }));
            }
            return Ok(Answer { json });
        }
        let errors: Vec<String> = json
            .as_ref()
            .and_then(|j| j.get("errors"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(net::short).collect())
            .unwrap_or_default();
        let said = if errors.is_empty() {
            String::new()
        } else {
            format!(" ({})", errors.join("; "))
        };
        let on = format!("{method} {path}");
        let at = &self.address;
        let (kind, message, hint, retry) = match status {
            401 | 403 if errors.iter().all(|e| e == "permission denied") => (
                ErrorKind::TokenRejected,
                format!(
                    "Vault at {at} refused {} on {on}: permission denied (the token is invalid, expired or revoked)",
                    self.settings.auth.describe()
                ),
                Some(match &self.settings.auth {
                    Auth::Token { source, .. } if source == "~/.vault-token" => {
                        "log in again (`vault login` or `bao login`), or set VAULT_TOKEN".to_owned()
                    }
                    Auth::Token { source, .. } => format!(
                        "set {source} to a valid token (`vault token lookup` shows whether it still works)"
                    ),
                    _ => "the login's token was refused: check the role's token TTL and policies"
                        .to_owned(),
                }),
                false,
            ),
            401 | 403 => (
                ErrorKind::PermissionDenied,
                format!(
                    "Vault at {at}: permission denied on {on}: the token's policy does not allow it"
                ),
                Some(format!(
                    "grant the `update` capability on `{path}` (or `read` for reads) in a policy of the token"
                )),
                false,
            ),
            404 => (
                ErrorKind::NotFound,
                format!("Vault at {at}: nothing at {on}{said}"),
                Some("check the mount path and the name".to_owned()),
                false,
            ),
            503 if errors
                .iter()
                .any(|e| e.to_ascii_lowercase().contains("sealed")) =>
            {
                (
                    ErrorKind::Sealed,
                    format!("Vault at {at} is sealed"),
                    Some("unseal it (`vault operator unseal`) and try again".to_owned()),
                    false,
                )
            }
            s if net::transient_status(s) => (
                ErrorKind::Unavailable,
                format!("Vault at {at} answered {s} to {on}{said}, also after retries"),
                Some("try again later, or raise --max-attempts".to_owned()),
                true,
            ),
            400 | 405 | 409 | 412 | 413 | 422 => (
                ErrorKind::Invalid,
                if errors.is_empty() {
                    format!("Vault at {at} refused {on} with status {status}")
                } else {
                    format!("Vault at {at} refused {on}: {}", errors.join("; "))
                },
                None,
                false,
            ),
            s => (
                ErrorKind::Protocol,
                format!("Vault at {at} answered {s} to {on}{said}"),
                None,
                false,
            ),
        };
        let batch = json
            .filter(|j| j.pointer("/data/batch_results").is_some())
            .map(Box::new);
        Err(Failed {
            kind,
            retry,
            batch,
            error: VaultError {
                kind,
                status: Some(status),
                errors,
                message,
                hint,
            },
        })
    }

    fn transport_error(&self, t: &Transport, what: &str) -> VaultError {
        let kind = match t {
            Transport::Timeout => ErrorKind::Timeout,
            Transport::Unreachable(_) => ErrorKind::Unreachable,
            Transport::Tls(_) => ErrorKind::Tls,
            Transport::Other(_) => ErrorKind::Unreachable,
        };
        let hint = match t {
            Transport::Tls(_) => Some(
                "trust the server's CA with VAULT_CACERT (or VAULT_CAPATH); the certificate must name the host in the address".to_owned(),
            ),
            Transport::Unreachable(_) | Transport::Other(_) => Some(
                "check the address (the key id, or VAULT_ADDR) and that Vault is running and reachable".to_owned(),
            ),
            Transport::Timeout => None,
        };
        VaultError {
            kind,
            status: None,
            errors: Vec::new(),
            message: t.describe(
                &format!("Vault at {} ({what})", self.address),
                self.settings.net.timeout,
            ),
            hint,
        }
    }
}

/// A failed exchange: the error, whether to retry, and a batch answer that
/// came with a 400.
struct Failed {
    kind: ErrorKind,
    retry: bool,
    batch: Option<Box<Value>>,
    error: VaultError,
}

impl From<VaultError> for Failed {
    fn from(error: VaultError) -> Failed {
        Failed {
            kind: error.kind,
            retry: false,
            batch: None,
            error,
        }
    }
}

impl Failed {
    fn retry_if(mut self, retry: bool) -> Failed {
        self.retry = retry;
        self
    }
}

/// A client with its own current-thread runtime, for synchronous callers.
pub struct Blocking {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl Blocking {
    /// Wraps `client`.
    pub fn new(client: Client) -> Result<Blocking, VaultError> {
        let runtime =
            net::runtime().map_err(|e| VaultError::new(ErrorKind::Config, e.to_string()))?;
        Ok(Blocking { runtime, client })
    }

    /// The async client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// See [`Client::login`].
    pub fn login(&self) -> Result<(), VaultError> {
        self.runtime.block_on(self.client.login())
    }

    /// See [`Client::get`].
    pub fn get(&self, path: &str) -> Result<Option<Value>, VaultError> {
        self.runtime.block_on(self.client.get(path))
    }

    /// See [`Client::post`].
    pub fn post(&self, path: &str, body: &Value) -> Result<Option<Value>, VaultError> {
        self.runtime.block_on(self.client.post(path, body))
    }

    /// See [`Client::put`].
    pub fn put(&self, path: &str, body: &Value) -> Result<Option<Value>, VaultError> {
        self.runtime.block_on(self.client.put(path, body))
    }

    /// See [`Client::delete`].
    pub fn delete(&self, path: &str) -> Result<(), VaultError> {
        self.runtime.block_on(self.client.delete(path))
    }

    /// See [`Client::list`].
    pub fn list(&self, path: &str) -> Result<Vec<String>, VaultError> {
        self.runtime.block_on(self.client.list(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            check_address("https://vault.example.com:8200/").unwrap(),
            "https://vault.example.com:8200"
        );
        for bad in [
            "vault.example.com:8200",
            "ftp://v",
            "https://",
            "https://v?x=1",
            "https://user:pw@v:8200",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
        assert_eq!(api_path("/v1/secret/data/x"), "secret/data/x");
        assert_eq!(api_path("transit/keys/k"), "transit/keys/k");
    }
}
