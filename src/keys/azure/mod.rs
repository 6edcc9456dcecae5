//! Azure Key Vault keys, named as sops names them:
//! `azkv:https://VAULT.vault.azure.net/keys/NAME/VERSION` (sops' `azure_kv`
//! entry: `vault_url`, `name`, `version`; `enc` = the RSA-OAEP-256
//! ciphertext, base64url without padding). A key given without a version
//! (`--key`, a rule) is pinned to its current version when a file is
//! encrypted, and that version is what the file records, as sops does:
//! unwrapping must name the version that wrapped.
//!
//! The data key goes through Key Vault's `encrypt`/`decrypt` with
//! RSA-OAEP-256 (the operations sops uses, so the permissions a sops
//! setup grants work: keys/encrypt, keys/decrypt, and keys/get to pin a
//! version). Calls go through the official SDK (`azure_security_keyvault_keys`,
//! `azure_identity`) on our HTTP client and runtime: one client per vault,
//! one call per data key, concurrent (`--jobs`), the SDK's retries bounded
//! by `--max-attempts` and the whole by `--timeout`. Credentials:
//! [`credential`].
//!
//! Settings: `AZURE_AUTHORITY_HOST` (Entra ID, https), and
//! `KSEC_AZURE_VERIFY_CHALLENGE_RESOURCE=false` for a vault reached under a
//! host name that is not within the domain its authentication challenge
//! names (a custom domain, a private endpoint alias, a local test server):
//! by default, as in every Azure SDK, the token is only sent when the vault's
//! host is under that domain (`*.vault.azure.net`).

pub mod credential;

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
use azure_security_keyvault_keys::models::{
    EncryptionAlgorithm, KeyClientEncryptOptions, KeyClientGetKeyOptions, KeyOperationParameters,
};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use serde_json::Value;
use zeroize::Zeroizing;

use super::{KeyError, KeyType, Provider, Secret, UnwrapRequest, WrapRequest};
use crate::net::{self, NetOptions};
use crate::report::Reporter;

/// A Key Vault key: vault URL, name, version (empty: none given).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VaultKey {
    /// `https://VAULT.vault.azure.net`.
    pub vault: String,
    /// The key's name.
    pub name: String,
    /// Its version; empty when the id names none.
    pub version: String,
}

impl VaultKey {
    fn id(&self) -> String {
        if self.version.is_empty() {
            format!("{}/keys/{}", self.vault, self.name)
        } else {
            format!("{}/keys/{}/{}", self.vault, self.name, self.version)
        }
    }
}

/// Parses `https://VAULT.vault.azure.net/keys/NAME[/VERSION]`.
pub fn parse_id(id: &str) -> Result<VaultKey, KeyError> {
    let bad = |why: &str| {
        KeyError::InvalidId(format!(
            "`{}` is not an Azure Key Vault key ({why}); expected https://VAULT.vault.azure.net/keys/NAME[/VERSION]",
            crate::error::one_line(id)
        ))
    };
    let url = url::Url::parse(id).map_err(|e| bad(&e.to_string()))?;
    if url.scheme() != "https" {
        return Err(bad("Key Vault is reached over https only"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(bad("no query, fragment or user name"));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("no host"))?;
    let vault = match url.port() {
        Some(p) => format!("https://{host}:{p}"),
        None => format!("https://{host}"),
    };
    let segments: Vec<&str> = url.path().trim_matches('/').split('/').collect();
    let valid =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    match segments.as_slice() {
        ["keys", name] if valid(name) => Ok(VaultKey {
            vault,
            name: (*name).to_owned(),
            version: String::new(),
        }),
        ["keys", name, version] if valid(name) && valid(version) => Ok(VaultKey {
            vault,
            name: (*name).to_owned(),
            version: (*version).to_owned(),
        }),
        _ => Err(bad("the path must be /keys/NAME or /keys/NAME/VERSION")),
    }
}

/// The Azure Key Vault provider.
pub struct AzureProvider {
    net: NetOptions,
    reporter: Rc<dyn Reporter>,
    runtime: OnceCell<Result<tokio::runtime::Runtime, net::SetupError>>,
    options: OnceCell<Result<ClientOptions, KeyError>>,
    chain: OnceCell<Arc<credential::Chain>>,
    clients: RefCell<HashMap<String, Arc<KeyClient>>>,
    pinned: RefCell<HashMap<String, Result<String, KeyError>>>,
    traced_credential: std::cell::Cell<bool>,
}

impl AzureProvider {
    /// A provider; nothing is read or sent until the first Azure key is used.
    pub fn new(net: NetOptions, reporter: Rc<dyn Reporter>) -> Self {
        AzureProvider {
            net,
            reporter,
            runtime: OnceCell::new(),
            options: OnceCell::new(),
            chain: OnceCell::new(),
            clients: RefCell::new(HashMap::new()),
            pinned: RefCell::new(HashMap::new()),
            traced_credential: std::cell::Cell::new(false),
        }
    }

    fn trace(&self, message: &str) {
        if self.reporter.tracing() {
            self.reporter.trace(&format!("azure: {message}"));
        }
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime, KeyError> {
        self.runtime
            .get_or_init(net::runtime)
            .as_ref()
            .map_err(|e| KeyError::Failed(e.to_string()))
    }

    /// Our HTTP client and the retry settings, for the SDK's pipelines.
    fn client_options(&self) -> Result<ClientOptions, KeyError> {
        self.options
            .get_or_init(|| {
                let http = net::client(&net::Tls::default(), self.net.timeout)
                    .map_err(|e| KeyError::Failed(e.to_string()))?;
                let retry = RetryOptions::exponential(ExponentialRetryOptions {
                    initial_delay: azure_core::time::Duration::milliseconds(100),
                    max_retries: self.net.max_attempts.saturating_sub(1),
                    max_total_elapsed: azure_core::time::Duration::milliseconds(
                        i64::try_from(self.net.timeout.as_millis()).unwrap_or(i64::MAX),
                    ),
                    max_delay: azure_core::time::Duration::seconds(2),
                });
                Ok(ClientOptions {
                    transport: Some(Transport::new(Arc::new(http))),
                    retry,
                    ..Default::default()
                })
            })
            .clone()
    }

    fn chain(&self) -> Result<Arc<credential::Chain>, KeyError> {
        if let Some(c) = self.chain.get() {
            return Ok(c.clone());
        }
        let options = self.client_options()?;
        let chain = Arc::new(credential::Chain::from_env(
            &|k| std::env::var(k).ok(),
            &options,
        ));
        Ok(self.chain.get_or_init(|| chain).clone())
    }

    /// The client of a vault (one per vault per run).
    fn client(&self, vault: &str) -> Result<Arc<KeyClient>, KeyError> {
        if let Some(c) = self.clients.borrow().get(vault) {
            return Ok(c.clone());
        }
        let verify = !matches!(
            std::env::var("KSEC_AZURE_VERIFY_CHALLENGE_RESOURCE").as_deref(),
            Ok("false" | "0" | "no")
        );
        let options = KeyClientOptions {
            client_options: self.client_options()?,
            verify_challenge_resource: Some(verify),
            ..Default::default()
        };
        let client = KeyClient::new(vault, self.chain()?, Some(options)).map_err(|e| {
            KeyError::Failed(format!(
                "Key Vault client for {vault}: {}",
                credential::first_line(&e)
            ))
        })?;
        self.trace(&format!("new client for {vault}"));
        let client = Arc::new(client);
        self.clients
            .borrow_mut()
            .insert(vault.to_owned(), client.clone());
        Ok(client)
    }

    fn trace_credential(&self) {
        if !self.traced_credential.get()
            && let Some(Some(name)) = self.chain.get().map(|c| c.chosen())
        {
            self.traced_credential.set(true);
            self.trace(&format!("credentials: {name}"));
        }
    }

    /// The current version of a key (`GET keys/NAME`), as the id to write.
    fn pin_version(&self, key: &VaultKey) -> Result<String, KeyError> {
        let client = self.client(&key.vault)?;
        let rt = self.runtime()?;
        let started = Instant::now();
        let name = key.name.clone();
        let answer = rt.block_on(net::deadline(self.net.timeout, async move {
            client
                .get_key(&name, Some(KeyClientGetKeyOptions::default()))
                .await?
                .into_model()
        }));
        self.trace_credential();
        let outcome = match answer {
            Err(t) => Err(KeyError::Failed(t.describe(
                &format!("Key Vault {} (get key {})", key.vault, key.name),
                self.net.timeout,
            ))),
            Ok(Err(e)) => Err(sdk_error(&e, "get", key)),
            Ok(Ok(k)) => k
                .key
                .and_then(|jwk| jwk.kid)
                .and_then(|kid| parse_id(&kid).ok())
                .map(|resolved| VaultKey {
                    version: resolved.version,
                    ..key.clone()
                })
                .filter(|k| !k.version.is_empty())
                .map(|k| k.id())
                .ok_or_else(|| {
                    KeyError::Failed("Key Vault answered without the key's version (kid)".into())
                }),
        };
        self.trace(&format!(
            "get key {}/keys/{}: {} in {} ms",
            key.vault,
            key.name,
            if outcome.is_ok() { "ok" } else { "failed" },
            started.elapsed().as_millis()
        ));
        outcome
    }

    /// One encrypt or decrypt.
    async fn operate(
        &self,
        client: Arc<KeyClient>,
        key: VaultKey,
        encrypt: bool,
        input: Zeroizing<Vec<u8>>,
    ) -> Result<Secret, KeyError> {
        let op = if encrypt { "encrypt" } else { "decrypt" };
        let params = KeyOperationParameters {
            algorithm: Some(EncryptionAlgorithm::RsaOaep256),
            value: Some(input.to_vec()),
            ..Default::default()
        };
        let started = Instant::now();
        let call = async {
            let content: azure_core::http::RequestContent<KeyOperationParameters> =
                params.try_into()?;
            let response = if encrypt {
                let options = KeyClientEncryptOptions {
                    key_version: Some(key.version.clone()),
                    ..Default::default()
                };
                client.encrypt(&key.name, content, Some(options)).await?
            } else {
                client
                    .decrypt(&key.name, &key.version, content, None)
                    .await?
            };
            response.into_model()
        };
        let answer = net::deadline(self.net.timeout, call).await;
        self.trace(&format!(
            "{op} {}: {} in {} ms",
            key.id(),
            match &answer {
                Ok(Ok(_)) => "ok",
                Ok(Err(_)) => "failed",
                Err(_) => "timed out",
            },
            started.elapsed().as_millis()
        ));
        match answer {
            Err(t) => Err(KeyError::Failed(t.describe(
                &format!("Key Vault {} ({op})", key.vault),
                self.net.timeout,
            ))),
            Ok(Err(e)) => Err(sdk_error(&e, op, &key)),
            Ok(Ok(result)) => result.result.map(Zeroizing::new).ok_or_else(|| {
                KeyError::Failed(format!("Key Vault {op} answered without a value"))
            }),
        }
    }

    fn run(
        &self,
        jobs: Vec<impl std::future::Future<Output = Result<Secret, KeyError>>>,
    ) -> Vec<Result<Secret, KeyError>> {
        let out = match self.runtime() {
            Ok(rt) => net::run_all(rt, self.net.jobs, jobs),
            Err(e) => jobs.iter().map(|_| Err(e.clone())).collect(),
        };
        self.trace_credential();
        out
    }
}

/// An SDK error as a key error that says what to do.
fn sdk_error(e: &azure_core::Error, op: &str, key: &VaultKey) -> KeyError {
    use azure_core::error::ErrorKind;
    // The SDK wraps what happened (retry and pipeline errors around it):
    // the answer of the service if there is one, else our credential
    // chain's message, else the innermost cause.
    let errors: Vec<&azure_core::Error> = credential::chain_of(e)
        .into_iter()
        .filter_map(|x| x.downcast_ref::<azure_core::Error>())
        .collect();
    let e = errors
        .iter()
        .find(|x| matches!(x.kind(), ErrorKind::HttpResponse { .. }))
        .or_else(|| {
            errors
                .iter()
                .rev()
                .find(|x| matches!(x.kind(), ErrorKind::Credential))
        })
        .copied()
        .unwrap_or(e);
    let first = credential::first_line(e);
    let (status, code, inner, message) = match e.kind() {
        ErrorKind::HttpResponse {
            status,
            error_code,
            raw_response,
        } => {
            let body: Value = raw_response
                .as_ref()
                .and_then(|r| serde_json::from_slice(r.body()).ok())
                .unwrap_or(Value::Null);
            let err = body.get("error");
            let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_owned();
            (
                u16::from(*status),
                error_code
                    .clone()
                    .unwrap_or_else(|| text(err.and_then(|e| e.get("code")))),
                text(err.and_then(|e| e.pointer("/innererror/code"))),
                vault_message(&text(err.and_then(|e| e.get("message")))),
            )
        }
        ErrorKind::Credential => {
            return KeyError::Unavailable(format!(
                "no Azure token: {}; {}",
                net::short(&first),
                credential::HINT
            ));
        }
        ErrorKind::Connection | ErrorKind::Io => {
            let first = net::innermost(e);
            let lower = first.to_ascii_lowercase();
            let hint = if lower.contains("certificate") || lower.contains("tls") {
                "; the vault's certificate is not trusted here (SSL_CERT_FILE names extra roots)"
            } else {
                "; check the vault URL in the key id and the network"
            };
            return KeyError::Failed(format!(
                "cannot reach Key Vault {}: {}{hint}",
                key.vault,
                net::short(&first)
            ));
        }
        _ => {
            let first = net::innermost(e);
            let first = first.lines().next().unwrap_or("").to_owned();
            let lower = first.to_ascii_lowercase();
            if lower.contains("challenge resource") {
                return KeyError::Failed(format!(
                    "Key Vault {}: {}; for a vault under another host name set KSEC_AZURE_VERIFY_CHALLENGE_RESOURCE=false",
                    key.vault,
                    net::short(&first)
                ));
            }
            return KeyError::Failed(format!(
                "Key Vault {op} with {}: {}",
                key.id(),
                net::short(&first)
            ));
        }
    };
    let why = |s: String| format!("Key Vault {op}: {s}");
    let said = if message.is_empty() {
        code.clone()
    } else {
        message.clone()
    };
    let action = match op {
        "get" => "keys/get",
        o => o,
    };
    match (status, code.as_str(), inner.as_str()) {
        (401, _, _) => KeyError::Unavailable(why(format!(
            "the access token was refused (expired or for another tenant): {said}; refresh the Azure credentials"
        ))),
        (403, _, "KeyDisabled") | (403, "KeyDisabled", _) => KeyError::Failed(why(format!(
            "the key version is disabled ({said}); enable it in the vault"
        ))),
        (403, _, "KeyOperationForbidden") => KeyError::Failed(why(format!(
            "the key does not allow {op} ({said}); add `{op}` to the key's permitted operations"
        ))),
        (403, _, "ForbiddenByFirewall") => KeyError::Failed(why(format!(
            "the vault's firewall refuses this client ({said}); allow its network or use a private endpoint"
        ))),
        (403, _, _) => KeyError::Failed(why(format!(
            "permission denied ({said}); grant keys/{action} on the vault (RBAC role Key Vault Crypto User, or an access policy with {action})"
        ))),
        (404, _, _) => KeyError::Failed(why(format!(
            "key or version not found ({said}); check the vault, name and version in the key id (a deleted key can be recovered while soft-deleted)"
        ))),
        (400, _, _) if op == "decrypt" => KeyError::Failed(why(format!(
            "this data key was not wrapped by this key version, or the key line is damaged ({said})"
        ))),
        (429, _, _) => KeyError::Failed(why(format!(
            "throttled by Key Vault even after retries ({said}); retry later or lower --jobs"
        ))),
        (s, _, _) if s >= 500 => KeyError::Failed(why(format!(
            "Key Vault is unavailable ({s}: {said}); retry later"
        ))),
        (s, _, _) => KeyError::Failed(why(format!("{s} {said}"))),
    }
}

/// Key Vault's message in one line: its first line, and the action it
/// names when it names one (RBAC refusals list caller, action, resource).
fn vault_message(text: &str) -> String {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("").to_owned();
    let action = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("Action:"));
    net::short(&match action {
        Some(a) => format!("{first} {a}"),
        None => first,
    })
}

impl Provider for AzureProvider {
    fn kind(&self) -> KeyType {
        KeyType::Azure
    }

    /// The id as written to files: with its version, the current one when
    /// none is given (one `GET` per key per run).
    fn resolve(&self, id: &str) -> Result<String, KeyError> {
        let key = parse_id(id)?;
        if !key.version.is_empty() {
            return Ok(key.id());
        }
        if let Some(r) = self.pinned.borrow().get(&key.id()) {
            return r.clone();
        }
        let r = self.pin_version(&key);
        self.pinned.borrow_mut().insert(key.id(), r.clone());
        r
    }

    fn pin(&self, id: &str) -> Result<String, KeyError> {
        self.resolve(id)
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
        let jobs = requests
            .iter()
            .map(|r| {
                let prepared = parse_id(r.id).and_then(|k| {
                    if k.version.is_empty() {
                        // Ids are resolved (pinned) before any wrap: a file
                        // must record the version that wrapped.
                        return Err(KeyError::InvalidId(format!(
                            "azkv:{}: no key version to record; name the key with its version",
                            r.id
                        )));
                    }
                    Ok((self.client(&k.vault)?, k))
                });
                let input = Zeroizing::new(r.secret.to_vec());
                async move {
                    let (client, key) = prepared?;
                    self.operate(client, key, true, input).await
                }
            })
            .collect();
        self.run(jobs)
            .into_iter()
            .map(|r| r.map(|b| b.to_vec()))
            .collect()
    }

    fn unwrap_many(&self, requests: &[UnwrapRequest<'_>]) -> Vec<Result<Secret, KeyError>> {
        let jobs = requests
            .iter()
            .map(|r| {
                let prepared = parse_id(r.id).and_then(|k| Ok((self.client(&k.vault)?, k)));
                let input = Zeroizing::new(r.blob.to_vec());
                async move {
                    let (client, key) = prepared?;
                    self.operate(client, key, false, input).await
                }
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
    fn key_ids() {
        let k = parse_id("https://myvault.vault.azure.net/keys/app/0123abcdef").unwrap();
        assert_eq!(k.vault, "https://myvault.vault.azure.net");
        assert_eq!((k.name.as_str(), k.version.as_str()), ("app", "0123abcdef"));
        let k = parse_id("https://127.0.0.1:8443/keys/app/").unwrap();
        assert_eq!(k.vault, "https://127.0.0.1:8443");
        assert!(k.version.is_empty());
        assert_eq!(k.id(), "https://127.0.0.1:8443/keys/app");
        for bad in [
            "http://v.vault.azure.net/keys/app",
            "https://v.vault.azure.net/secrets/app",
            "https://v.vault.azure.net/keys/",
            "https://v.vault.azure.net/keys/a/b/c",
            "https://v.vault.azure.net/keys/a_b",
            "v.vault.azure.net/keys/app",
            "https://v.vault.azure.net/keys/app?x=1",
        ] {
            assert!(parse_id(bad).is_err(), "{bad}");
        }
    }
}
