//! Vault / OpenBao KV secrets engines, version 1 and 2, on ksec's Vault
//! client ([`crate::vault`]): its settings (`VAULT_ADDR`, `VAULT_TOKEN`,
//! `~/.vault-token`, `VAULT_NAMESPACE`, the CA settings), its logins
//! (AppRole, Kubernetes, JWT), its retries and one-line errors, and
//! `--timeout` / `--jobs`.
//!
//! * Read: `GET MOUNT/data/PATH[?version=N]` (v2: the value is
//!   `data.data`; a deleted or destroyed version is "not found") or
//!   `GET MOUNT/PATH` (v1: `data`).
//! * Find: `LIST MOUNT/metadata/PATH/` (v2) or `LIST MOUNT/PATH/` (v1),
//!   folders followed; names are relative to the mount.
//! * Write: `POST MOUNT/data/PATH {"data": …}` (v2: a new version) or
//!   `POST MOUNT/PATH` (v1); nothing is written when the values are the same.
//!
//! An ExternalSecret's store says which version a mount is, and its paths
//! are API paths (`secret/data/app`). The command line's `vault:MOUNT/PATH`
//! does not: [`KvVersion::Auto`] asks the server
//! (`sys/internal/ui/mounts/MOUNT`, as the `vault kv` commands do), and its
//! paths are logical (`MOUNT/PATH`).

use std::cell::OnceCell;
use std::rc::Rc;

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::json::Json;
use super::{
    Failure, Find, Get, KvVersion, Put, PutReport, Remote, Store, StoreError, VaultAccess, Version,
};
use crate::net::NetOptions;
use crate::report::Reporter;
use crate::vault::{Client, ErrorKind, Settings, VaultError};

/// One KV mount of one server.
pub struct VaultKv {
    net: NetOptions,
    reporter: Rc<dyn Reporter>,
    access: VaultAccess,
    client: OnceCell<Result<(Client, tokio::runtime::Runtime), StoreError>>,
    /// The mount's version, once known.
    version: OnceCell<Result<KvVersion, StoreError>>,
}

fn store_error(e: &VaultError) -> StoreError {
    let kind = match e.kind {
        ErrorKind::NotFound => Failure::NotFound,
        ErrorKind::PermissionDenied => Failure::Denied,
        ErrorKind::MissingToken | ErrorKind::TokenRejected | ErrorKind::LoginFailed => {
            Failure::Credentials
        }
        ErrorKind::Unavailable => Failure::Throttled,
        ErrorKind::Timeout | ErrorKind::Unreachable | ErrorKind::Tls | ErrorKind::Sealed => {
            Failure::Unreachable
        }
        ErrorKind::Invalid => Failure::Invalid,
        ErrorKind::Config | ErrorKind::Protocol => Failure::Other,
    };
    StoreError::new(kind, e.with_hint())
}

impl VaultKv {
    /// A store; nothing is sent until it is used.
    pub fn new(net: NetOptions, reporter: Rc<dyn Reporter>, access: VaultAccess) -> VaultKv {
        VaultKv {
            net,
            reporter,
            access,
            client: OnceCell::new(),
            version: OnceCell::new(),
        }
    }

    fn client(&self) -> Result<&(Client, tokio::runtime::Runtime), StoreError> {
        self.client
            .get_or_init(|| {
                let mut settings = Settings::from_env(self.net).map_err(|e| store_error(&e))?;
                if let Some(ns) = &self.access.namespace {
                    settings.namespace = Some(ns.clone());
                }
                let address = match &self.access.server {
                    Some(a) => a.clone(),
                    None => settings.address.clone().ok_or_else(|| {
                        StoreError::new(
                            Failure::Other,
                            "no Vault address: VAULT_ADDR is not set; set VAULT_ADDR (or BAO_ADDR), e.g. https://vault.example.com:8200",
                        )
                    })?,
                };
                let client = Client::new(&address, Rc::new(settings), self.reporter.clone())
                    .map_err(|e| store_error(&e))?;
                let rt = crate::net::runtime().map_err(|e| StoreError::new(Failure::Other, e.to_string()))?;
                Ok((client, rt))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The mount's KV version (asked once with [`KvVersion::Auto`]).
    fn kv(&self) -> Result<KvVersion, StoreError> {
        if self.access.kv != KvVersion::Auto {
            return Ok(self.access.kv);
        }
        self.version
            .get_or_init(|| {
                let (client, rt) = self.client()?;
                let mount = &self.access.mount;
                let answer = rt
                    .block_on(client.get(&format!("sys/internal/ui/mounts/{mount}")))
                    .map_err(|e| store_error(&e))?;
                let data = answer.as_ref().and_then(|a| a.get("data"));
                let kind = data.and_then(|d| d.get("type")).and_then(Value::as_str);
                if !matches!(kind, Some("kv") | Some("generic")) {
                    return Err(StoreError::new(
                        Failure::NotFound,
                        format!("`{mount}` is not a KV secrets engine mount"),
                    ));
                }
                let v2 = data
                    .and_then(|d| d.pointer("/options/version"))
                    .and_then(Value::as_str)
                    == Some("2");
                Ok(if v2 { KvVersion::V2 } else { KvVersion::V1 })
            })
            .clone()
    }

    /// The API path of `key`: as it is for a store that names its version;
    /// a logical `MOUNT/PATH` made an API path with [`KvVersion::Auto`].
    fn api_path(&self, key: &str, kv: KvVersion) -> String {
        if self.access.kv != KvVersion::Auto || kv != KvVersion::V2 {
            return key.to_owned();
        }
        let mount = &self.access.mount;
        match key.strip_prefix(&format!("{mount}/")) {
            Some(rest) => format!("{mount}/data/{rest}"),
            None => key.to_owned(),
        }
    }

    async fn read(&self, client: &Client, kv: KvVersion, g: Get) -> Result<Remote, StoreError> {
        let mut path = self.api_path(&g.key, kv);
        let versioned = match &g.version {
            Version::Named(v) if kv == KvVersion::V2 => {
                path.push_str(&format!("?version={v}"));
                Some(v.clone())
            }
            _ => None,
        };
        let missing = || match &versioned {
            Some(v) => StoreError::new(
                Failure::VersionMissing,
                format!("{}: no version {v} (or no such secret)", g.key),
            ),
            None => StoreError::new(Failure::NotFound, format!("{} does not exist", g.key)),
        };
        let answer = client.get(&path).await.map_err(|e| {
            if e.kind == ErrorKind::NotFound {
                missing()
            } else {
                store_error(&e)
            }
        })?;
        let answer = answer.ok_or_else(missing)?;
        let data = match kv {
            KvVersion::V2 => answer.pointer("/data/data"),
            _ => answer.get("data"),
        };
        match data {
            Some(Value::Object(m)) => {
                let text = Zeroizing::new(Value::Object(m.clone()).to_string());
                Json::parse(text).map(Remote::Kv).map_err(|e| {
                    StoreError::new(
                        Failure::Other,
                        format!("{}: Vault sent no JSON ({})", g.key, e.0),
                    )
                })
            }
            // A deleted or destroyed version.
            Some(Value::Null) | None if kv == KvVersion::V2 => Err(missing()),
            _ => Err(StoreError::new(
                Failure::Other,
                format!("{}: the answer has no `data` object", g.key),
            )),
        }
    }

    /// Every secret below `folder` (relative to the mount), recursively.
    fn list(
        &self,
        client: &Client,
        rt: &tokio::runtime::Runtime,
        kv: KvVersion,
        folder: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mount = &self.access.mount;
        let mut out = Vec::new();
        let mut todo = vec![folder.trim_matches('/').to_owned()];
        while let Some(dir) = todo.pop() {
            let base = match kv {
                KvVersion::V2 => format!("{mount}/metadata"),
                _ => mount.clone(),
            };
            let path = if dir.is_empty() {
                format!("{base}/")
            } else {
                format!("{base}/{dir}/")
            };
            let keys = match rt.block_on(client.list(&path)) {
                Ok(k) => k,
                Err(e) if e.kind == ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(store_error(&e)),
            };
            for k in keys {
                let name = if dir.is_empty() {
                    k.clone()
                } else {
                    format!("{dir}/{k}")
                };
                match name.strip_suffix('/') {
                    Some(sub) => todo.push(sub.to_owned()),
                    None => out.push(name),
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn full_key(&self, kv: KvVersion, relative: &str) -> String {
        let mount = &self.access.mount;
        match (self.access.kv, kv) {
            (KvVersion::Auto, _) | (_, KvVersion::V1) => format!("{mount}/{relative}"),
            _ => format!("{mount}/data/{relative}"),
        }
    }
}

impl Store for VaultKv {
    fn label(&self) -> String {
        format!("Vault KV `{}`", self.access.mount)
    }

    fn get_many(&self, requests: &[Get]) -> Vec<Result<Remote, StoreError>> {
        let (client, rt) = match self.client() {
            Ok(c) => c,
            Err(e) => return requests.iter().map(|_| Err(e.clone())).collect(),
        };
        let kv = match self.kv() {
            Ok(v) => v,
            Err(e) => return requests.iter().map(|_| Err(e.clone())).collect(),
        };
        let futures = requests
            .iter()
            .map(|g| self.read(client, kv, g.clone()))
            .collect();
        crate::net::run_all(rt, self.net.jobs, futures)
    }

    fn find(&self, find: &Find) -> Result<Vec<(String, Remote)>, StoreError> {
        if self.access.mount.is_empty() {
            return Err(StoreError::new(Failure::Invalid, "find needs the KV mount"));
        }
        let (client, rt) = self.client()?;
        let kv = self.kv()?;
        let folder = find.path.clone().unwrap_or_default();
        let names: Vec<String> = self
            .list(client, rt, kv, &folder)?
            .into_iter()
            .filter(|n| find.name.as_ref().is_none_or(|r| r.is_match(n)))
            .collect();
        let gets: Vec<Get> = names
            .iter()
            .map(|n| Get {
                key: self.full_key(kv, n),
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
        let (client, rt) = self.client()?;
        let kv = self.kv()?;
        let mut data = Map::new();
        for (k, v) in put.values {
            let text = std::str::from_utf8(v).map_err(|_| {
                StoreError::new(
                    Failure::Invalid,
                    format!("the value of `{k}` is not UTF-8 text, which a KV secret holds as a JSON string"),
                )
            })?;
            data.insert(k.clone(), Value::String(text.to_owned()));
        }
        let current = self
            .get_many(&[Get {
                key: put.target.to_owned(),
                version: Version::Current,
            }])
            .pop()
            .expect("one result");
        let same = match &current {
            Ok(Remote::Kv(j)) => {
                serde_json::from_str::<Value>(j.text()).ok() == Some(Value::Object(data.clone()))
            }
            _ => false,
        };
        if same {
            return Ok(PutReport {
                lines: vec![format!("{}: unchanged", put.target)],
                kv: Some(kv),
            });
        }
        if let Err(e) = &current
            && e.kind != Failure::NotFound
        {
            return Err(e.clone());
        }
        let body = match kv {
            KvVersion::V2 => serde_json::json!({ "data": Value::Object(data) }),
            _ => Value::Object(data),
        };
        let answer = rt
            .block_on(client.post(&self.api_path(put.target, kv), &body))
            .map_err(|e| store_error(&e))?;
        let line = match (
            kv,
            answer
                .as_ref()
                .and_then(|a| a.pointer("/data/version"))
                .and_then(Value::as_u64),
        ) {
            (KvVersion::V2, Some(1)) => format!("created {} (version 1)", put.target),
            (KvVersion::V2, Some(n)) => format!("{}: new version {n}", put.target),
            _ if current.is_err() => format!("created {}", put.target),
            _ => format!("{}: replaced", put.target),
        };
        Ok(PutReport {
            lines: vec![line],
            kv: Some(kv),
        })
    }
}
