//! HashiCorp Vault / OpenBao transit keys, named as sops names them:
//! `vault:https://vault.example.com:8200/v1/MOUNT/keys/NAME` (the mount may
//! have slashes: `…/v1/team/transit/keys/app`).
//!
//! The data key goes through transit `encrypt` and `decrypt`; the blob is
//! Vault's ciphertext string as is (`vault:v3:…`, the key version inside),
//! exactly what sops stores in `hc_vault[].enc`. After a key rotation,
//! [`Provider::rewrap_many`] runs transit `rewrap` (the data key never
//! leaves Vault) so that files move to the latest version without a new
//! data key (`ksec updatekeys --rewrap`).
//!
//! Calls go through [`crate::vault::Client`] (one per server address; token,
//! logins, namespace, TLS and timeouts as the `vault` CLI reads them). Each
//! batch of wraps or unwraps becomes one transit `batch_input` call per key
//! (at most [`BATCH`] items each), the calls of different keys and servers
//! concurrently (`--jobs`), on a current-thread runtime created on first
//! use.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{KeyError, KeyType, Provider, Secret, UnwrapRequest, WrapRequest};
use crate::net::{self, NetOptions};
use crate::report::Reporter;
use crate::vault::{Client, ErrorKind, Settings, VaultError};

/// Items per transit batch call.
pub const BATCH: usize = 250;

/// A transit key: server, mount and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransitKey {
    /// `https://vault.example.com:8200`.
    pub address: String,
    /// The transit mount (`transit`, `team/transit`).
    pub mount: String,
    /// The key's name.
    pub name: String,
}

impl TransitKey {
    fn path(&self, op: &str) -> String {
        format!("{}/{op}/{}", self.mount, self.name)
    }
}

/// Parses `https://HOST:PORT/v1/MOUNT/keys/NAME` as sops does: nothing
/// before `/v1/`, the mount is everything up to the last `/keys/`, the name
/// one segment.
pub fn parse_id(id: &str) -> Result<TransitKey, KeyError> {
    let bad = |why: &str| {
        KeyError::InvalidId(format!(
            "`{}` is not a Vault transit key ({why}); expected https://HOST:8200/v1/MOUNT/keys/NAME",
            crate::error::one_line(id)
        ))
    };
    let after_scheme = id
        .find("://")
        .map(|i| i + 3)
        .ok_or_else(|| bad("no scheme"))?;
    let path_start = id[after_scheme..]
        .find('/')
        .map(|i| i + after_scheme)
        .ok_or_else(|| bad("no path"))?;
    let (address, path) = id.split_at(path_start);
    let rest = path
        .strip_prefix("/v1/")
        .ok_or_else(|| bad("the path must start with /v1/"))?;
    let (mount, name) = rest
        .rsplit_once("/keys/")
        .ok_or_else(|| bad("no /keys/ in the path"))?;
    let mount = mount.trim_matches('/');
    if mount.is_empty()
        || mount
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(bad("no mount path"));
    }
    if name.is_empty() || name.contains('/') || name.contains(['?', '#']) {
        return Err(bad("the key name must be one path segment"));
    }
    let address = crate::vault::check_address(address).map_err(|e| bad(&e.message))?;
    Ok(TransitKey {
        address,
        mount: mount.to_owned(),
        name: name.to_owned(),
    })
}

/// The key version inside a transit ciphertext (`vault:v3:…` → 3).
pub fn blob_version(blob: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(blob).ok()?;
    let rest = text.strip_prefix("vault:v")?;
    let (v, _) = rest.split_once(':')?;
    v.parse().ok()
}

/// The Vault transit provider.
pub struct VaultProvider {
    net: NetOptions,
    reporter: Rc<dyn Reporter>,
    runtime: OnceCell<Result<tokio::runtime::Runtime, net::SetupError>>,
    settings: OnceCell<Result<Rc<Settings>, VaultError>>,
    clients: RefCell<HashMap<String, Rc<Client>>>,
}

/// What one batch call does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Encrypt,
    Decrypt,
    Rewrap,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Encrypt => "encrypt",
            Op::Decrypt => "decrypt",
            Op::Rewrap => "rewrap",
        }
    }
}

/// One item's answer: the output string (ciphertext, or base64 plaintext).
type Item = Result<Zeroizing<String>, KeyError>;

impl VaultProvider {
    /// A provider; nothing is read or sent until the first Vault key is used.
    pub fn new(net: NetOptions, reporter: Rc<dyn Reporter>) -> Self {
        VaultProvider {
            net,
            reporter,
            runtime: OnceCell::new(),
            settings: OnceCell::new(),
            clients: RefCell::new(HashMap::new()),
        }
    }

    fn trace(&self, message: &str) {
        if self.reporter.tracing() {
            self.reporter.trace(&format!("vault: {message}"));
        }
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime, KeyError> {
        self.runtime
            .get_or_init(net::runtime)
            .as_ref()
            .map_err(|e| KeyError::Failed(e.to_string()))
    }

    /// The client for a server (one per address per run).
    fn client(&self, address: &str) -> Result<Rc<Client>, KeyError> {
        if let Some(c) = self.clients.borrow().get(address) {
            return Ok(c.clone());
        }
        let settings = self
            .settings
            .get_or_init(|| Settings::from_env(self.net).map(Rc::new))
            .clone()
            .map_err(|e| KeyError::Unavailable(e.with_hint()))?;
        let client = Client::new(address, settings.clone(), self.reporter.clone())
            .map_err(|e| KeyError::Failed(e.with_hint()))?;
        self.trace(&format!(
            "new client for {address} ({}{})",
            settings.auth.describe(),
            settings
                .namespace
                .as_ref()
                .map(|n| format!(", namespace {n}"))
                .unwrap_or_default()
        ));
        let client = Rc::new(client);
        self.clients
            .borrow_mut()
            .insert(address.to_owned(), client.clone());
        Ok(client)
    }

    /// Runs `op` on every input: one batch call per key (and per
    /// [`BATCH`] items), the calls concurrently. Results in input order.
    fn run(
        &self,
        op: Op,
        keys: &[Result<TransitKey, KeyError>],
        inputs: Vec<Zeroizing<String>>,
    ) -> Vec<Item> {
        let mut results: Vec<Option<Item>> = (0..inputs.len()).map(|_| None).collect();
        // Group by key, keeping input order within each group.
        let mut groups: Vec<(TransitKey, Vec<usize>)> = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            match k {
                Err(e) => results[i] = Some(Err(e.clone())),
                Ok(k) => match groups.iter_mut().find(|(g, _)| g == k) {
                    Some((_, v)) => v.push(i),
                    None => groups.push((k.clone(), vec![i])),
                },
            }
        }
        let mut calls = Vec::new();
        for (key, idx) in &groups {
            let client = self.client(&key.address);
            for chunk in idx.chunks(BATCH) {
                let batch: Vec<&str> = chunk.iter().map(|&i| inputs[i].as_str()).collect();
                let client = client.clone();
                calls.push(async move {
                    match client {
                        Ok(c) => self.batch(&c, op, key, &batch).await,
                        Err(e) => vec![Err(e); batch.len()],
                    }
                });
            }
        }
        let rt = match self.runtime() {
            Ok(rt) => rt,
            Err(e) => return inputs.iter().map(|_| Err(e.clone())).collect(),
        };
        let answers = net::run_all(rt, self.net.jobs, calls);
        let chunks = groups.iter().flat_map(|(_, idx)| idx.chunks(BATCH));
        for (chunk, answer) in chunks.zip(answers) {
            for (&i, item) in chunk.iter().zip(answer) {
                results[i] = Some(item);
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(KeyError::Failed("no answer from Vault".into()))))
            .collect()
    }

    /// One transit batch call.
    async fn batch(&self, client: &Client, op: Op, key: &TransitKey, inputs: &[&str]) -> Vec<Item> {
        let field = match op {
            Op::Encrypt => "plaintext",
            Op::Decrypt | Op::Rewrap => "ciphertext",
        };
        let items: Vec<Value> = inputs.iter().map(|v| json!({ field: v })).collect();
        let body = json!({ "batch_input": items });
        let started = Instant::now();
        let answer = client.post_batch(&key.path(op.name()), &body).await;
        let all_failed = |e: KeyError| inputs.iter().map(|_| Err(e.clone())).collect();
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                self.trace(&format!(
                    "{} {} item{} with {}/{}: failed in {} ms",
                    op.name(),
                    inputs.len(),
                    plural(inputs.len()),
                    key.mount,
                    key.name,
                    started.elapsed().as_millis()
                ));
                return all_failed(failure(&e, op, key));
            }
        };
        let Some(results) = answer
            .pointer("/data/batch_results")
            .and_then(Value::as_array)
        else {
            return all_failed(KeyError::Failed(format!(
                "Vault's {} answer has no batch_results (is this a transit mount?)",
                op.name()
            )));
        };
        if results.len() != inputs.len() {
            return all_failed(KeyError::Failed(format!(
                "Vault answered {} results for {} items",
                results.len(),
                inputs.len()
            )));
        }
        let out_field = match op {
            Op::Decrypt => "plaintext",
            Op::Encrypt | Op::Rewrap => "ciphertext",
        };
        let mut versions: Vec<u64> = results
            .iter()
            .filter_map(|r| r.get("key_version").and_then(Value::as_u64))
            .collect();
        versions.sort_unstable();
        versions.dedup();
        self.trace(&format!(
            "{} {} item{} with {}/{} in one call{}: {} ms",
            op.name(),
            inputs.len(),
            plural(inputs.len()),
            key.mount,
            key.name,
            match versions.as_slice() {
                [] => String::new(),
                [v] => format!(" (key version {v})"),
                vs => format!(
                    " (key versions {})",
                    vs.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
                ),
            },
            started.elapsed().as_millis()
        ));
        results
            .iter()
            .map(|r| {
                if let Some(err) = r
                    .get("error")
                    .and_then(Value::as_str)
                    .filter(|e| !e.is_empty())
                {
                    return Err(item_failure(err, op, key));
                }
                r.get(out_field)
                    .and_then(Value::as_str)
                    .map(|s| Zeroizing::new(s.to_owned()))
                    .ok_or_else(|| {
                        KeyError::Failed(format!(
                            "Vault's {} answer lacks `{out_field}`",
                            op.name()
                        ))
                    })
            })
            .collect()
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A whole call failed: what happened and what to do.
fn failure(e: &VaultError, op: Op, key: &TransitKey) -> KeyError {
    let path = key.path(op.name());
    match e.kind {
        ErrorKind::MissingToken | ErrorKind::TokenRejected | ErrorKind::LoginFailed => {
            KeyError::Unavailable(e.with_hint())
        }
        ErrorKind::PermissionDenied => KeyError::Failed(format!(
            "permission denied: the Vault token's policy does not allow {path}; grant the `update` capability on `{path}`"
        )),
        ErrorKind::NotFound => KeyError::Failed(format!(
            "no transit engine at `{}` on {} ({}); check the mount in the key id",
            key.mount,
            key.address,
            e.errors.join("; ")
        )),
        ErrorKind::Invalid => match e.errors.first() {
            Some(m) => item_failure(m, op, key),
            None => KeyError::Failed(e.with_hint()),
        },
        _ => KeyError::Failed(e.with_hint()),
    }
}

/// One item failed (or the whole call, with one of these messages).
fn item_failure(message: &str, op: Op, key: &TransitKey) -> KeyError {
    let lower = message.to_ascii_lowercase();
    let name = &key.name;
    let mount = &key.mount;
    if lower.contains("encryption key not found") || lower.contains("key not found") {
        KeyError::Failed(format!(
            "Vault has no transit key `{name}` at `{mount}` (deleted, or never created: `vault write -f {mount}/keys/{name}`)"
        ))
    } else if lower.contains("too old") || lower.contains("disallowed by policy") {
        KeyError::Failed(format!(
            "this data key was wrapped with a version of `{name}` that Vault no longer decrypts (below its min_decryption_version, or trimmed): {}",
            net::short(message)
        ))
    } else if lower.contains("message authentication failed")
        || lower.contains("invalid ciphertext")
        || lower.contains("could not decode")
    {
        KeyError::Failed(format!(
            "Vault cannot {} this blob with `{name}`: it was not wrapped by this key, or the key line is damaged ({})",
            op.name(),
            net::short(message)
        ))
    } else {
        KeyError::Failed(format!(
            "Vault transit {} failed: {}",
            op.name(),
            net::short(message)
        ))
    }
}

/// The blob as Vault's ciphertext string.
fn ciphertext(blob: &[u8]) -> Result<Zeroizing<String>, KeyError> {
    match std::str::from_utf8(blob) {
        Ok(s) if s.starts_with("vault:v") => Ok(Zeroizing::new(s.to_owned())),
        _ => Err(KeyError::Failed(
            "the key line holds no Vault transit ciphertext (`vault:vN:…`); it is damaged".into(),
        )),
    }
}

impl Provider for VaultProvider {
    fn kind(&self) -> KeyType {
        KeyType::Vault
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
        let keys: Vec<_> = requests.iter().map(|r| parse_id(r.id)).collect();
        let inputs = requests
            .iter()
            .map(|r| Zeroizing::new(B64.encode(r.secret)))
            .collect();
        self.run(Op::Encrypt, &keys, inputs)
            .into_iter()
            .map(|r| r.map(|c| c.as_bytes().to_vec()))
            .collect()
    }

    fn unwrap_many(&self, requests: &[UnwrapRequest<'_>]) -> Vec<Result<Secret, KeyError>> {
        let mut keys = Vec::with_capacity(requests.len());
        let mut inputs = Vec::with_capacity(requests.len());
        for r in requests {
            match ciphertext(r.blob) {
                Ok(c) => {
                    keys.push(parse_id(r.id));
                    inputs.push(c);
                }
                Err(e) => {
                    keys.push(Err(e));
                    inputs.push(Zeroizing::new(String::new()));
                }
            }
        }
        self.run(Op::Decrypt, &keys, inputs)
            .into_iter()
            .map(|r| {
                let b64 = r?;
                B64.decode(b64.as_bytes())
                    .map(Zeroizing::new)
                    .map_err(|_| KeyError::Failed("Vault's plaintext is not base64".into()))
            })
            .collect()
    }

    fn rewrap_many(
        &self,
        requests: &[UnwrapRequest<'_>],
    ) -> Vec<Result<Option<Vec<u8>>, KeyError>> {
        let mut keys = Vec::with_capacity(requests.len());
        let mut inputs = Vec::with_capacity(requests.len());
        for r in requests {
            match ciphertext(r.blob) {
                Ok(c) => {
                    keys.push(parse_id(r.id));
                    inputs.push(c);
                }
                Err(e) => {
                    keys.push(Err(e));
                    inputs.push(Zeroizing::new(String::new()));
                }
            }
        }
        self.run(Op::Rewrap, &keys, inputs)
            .into_iter()
            .zip(requests)
            .map(|(r, req)| {
                let new = r?;
                // Vault re-encrypts a blob that is current already (a new
                // nonce, the same version): that is no change.
                let moved = blob_version(new.as_bytes()) != blob_version(req.blob);
                Ok(moved.then(|| new.as_bytes().to_vec()))
            })
            .collect()
    }

    fn is_local(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_as_sops_reads_them() {
        let k = parse_id("https://vault.example.com:8200/v1/sops/keys/firstkey").unwrap();
        assert_eq!(k.address, "https://vault.example.com:8200");
        assert_eq!(k.mount, "sops");
        assert_eq!(k.name, "firstkey");
        let k = parse_id("http://127.0.0.1:8200/v1/team/transit/keys/app").unwrap();
        assert_eq!(k.mount, "team/transit");
        assert_eq!(k.path("decrypt"), "team/transit/decrypt/app");
        for bad in [
            "vault.example.com/v1/transit/keys/k",
            "https://v:8200/prefix/v1/transit/keys/k",
            "https://v:8200/v1/keys/k",
            "https://v:8200/v1/transit/keys/",
            "https://v:8200/v1/transit/keys/a/b",
            "https://v:8200/v1/transit/k",
            "https://v:8200/v1/../keys/k",
            "ftp://v/v1/transit/keys/k",
        ] {
            assert!(parse_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions_and_blobs() {
        assert_eq!(blob_version(b"vault:v3:abc"), Some(3));
        assert_eq!(blob_version(b"vault:x:abc"), None);
        assert!(ciphertext(b"vault:v1:AAAA").is_ok());
        assert!(ciphertext(b"\xff").is_err());
        assert!(ciphertext(b"AAAA").is_err());
    }

    #[test]
    fn messages_say_what_to_do() {
        let key = parse_id("http://v:8200/v1/transit/keys/app").unwrap();
        let e = item_failure("encryption key not found", Op::Decrypt, &key).to_string();
        assert!(e.contains("vault write -f transit/keys/app"), "{e}");
        let e = item_failure(
            "ciphertext or signature version is disallowed by policy (too old)",
            Op::Decrypt,
            &key,
        )
        .to_string();
        assert!(e.contains("min_decryption_version"), "{e}");
        let e =
            item_failure("cipher: message authentication failed", Op::Decrypt, &key).to_string();
        assert!(e.contains("not wrapped by this key"), "{e}");
    }
}
