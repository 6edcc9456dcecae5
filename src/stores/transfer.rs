//! Moving Secrets between git and a store: `ksec import` reads a store
//! into a Secret, `ksec push` writes a Secret's values into a store, and
//! the ExternalSecret that reads them back.
//!
//! * `aws-sm:NAME`: a JSON object becomes one Secret key per member
//!   (strings as they are, other JSON as its text, as ESO's `extract`
//!   does); anything else one key. Pushed as one JSON object of strings.
//! * `ssm:PATH`: a parameter becomes one key (its base name); a path, every
//!   parameter below it (keys: the names below the path, `/` → `_`).
//!   Pushed as one `SecureString` parameter per key, `PATH/KEY`.
//! * `vault:MOUNT/PATH`: the KV secret's members, one key each.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::json::{Json, Kind};
use super::secret::SecretOut;
use super::{
    Address, AwsAccess, Backend, Connect, Failure, Find, Get, Put, PutReport, Remote, StoreError,
    Version,
};
use crate::error::{Error, Exit, Result};

/// The store behind an address.
pub fn backend(address: &Address) -> Backend {
    match address {
        Address::SecretsManager(_) => Backend::SecretsManager(AwsAccess::default()),
        Address::Parameter(_) => Backend::ParameterStore(AwsAccess::default()),
        Address::Vault { mount, .. } => Backend::Vault(super::VaultAccess {
            server: None,
            namespace: None,
            mount: mount.clone(),
            kv: super::KvVersion::Auto,
        }),
    }
}

fn store_error(address: &Address, backend: &Backend, e: &StoreError) -> Error {
    let mut err = e.to_error();
    err.message = format!("{address}: {backend}: {}", e.message);
    err
}

/// What `import` makes.
pub struct ImportOptions<'a> {
    /// The Secret's name.
    pub name: &'a str,
    /// Its namespace.
    pub namespace: Option<&'a str>,
    /// Its type.
    pub kind: &'a str,
    /// The key of a value that is not split into members.
    pub data_key: Option<&'a str>,
}

fn single_key(address: &Address, remote_name: &str, opts: &ImportOptions<'_>) -> Result<String> {
    let key = match opts.data_key {
        Some(k) => k.to_owned(),
        None => remote_name
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(remote_name)
            .to_owned(),
    };
    if !crate::k8s::valid_key(&key) {
        return Err(Error::usage(format!(
            "{address}: `{key}` is not a valid Secret key ([-._a-zA-Z0-9]+)"
        ))
        .hint("name the key with --data-key KEY"));
    }
    Ok(key)
}

/// The members of a JSON object value, as ESO's AWS `extract` reads them.
fn members(text: &str) -> Option<Vec<(String, Zeroizing<Vec<u8>>)>> {
    let doc = Json::parse(Zeroizing::new(text.to_owned())).ok()?;
    let Kind::Object(members) = &doc.root().kind else {
        return None;
    };
    let mut out: Vec<(String, Zeroizing<Vec<u8>>)> = Vec::new();
    for (k, v) in members {
        let value = match &v.kind {
            Kind::String => Zeroizing::new(doc.string(v).as_bytes().to_vec()),
            Kind::Null => Zeroizing::new(Vec::new()),
            _ => Zeroizing::new(doc.raw(v).as_bytes().to_vec()),
        };
        out.retain(|(x, _)| x != k);
        out.push((k.clone(), value));
    }
    Some(out)
}

/// Reads `address` into a Secret.
pub fn import(
    connect: &dyn Connect,
    address: &Address,
    opts: &ImportOptions<'_>,
) -> Result<SecretOut> {
    let backend = backend(address);
    let store = connect
        .connect(&backend)
        .map_err(|e| store_error(address, &backend, &e))?;
    let fail = |e: &StoreError| store_error(address, &backend, e);
    let get = |key: &str| {
        store
            .get_many(&[Get {
                key: key.to_owned(),
                version: Version::Current,
            }])
            .pop()
            .expect("one result")
    };
    let mut pairs: Vec<(String, Zeroizing<Vec<u8>>)> = Vec::new();
    match address {
        Address::SecretsManager(name) => match get(name).map_err(|e| fail(&e))? {
            Remote::Text(t) => match members(&t) {
                Some(m) if opts.data_key.is_none() => pairs = m,
                _ => pairs.push((
                    single_key(address, name, opts)?,
                    Zeroizing::new(t.as_bytes().to_vec()),
                )),
            },
            other => pairs.push((single_key(address, name, opts)?, other.bytes())),
        },
        Address::Parameter(path) => {
            let single = if path.ends_with('/') {
                None
            } else {
                match get(path) {
                    Ok(v) => Some(v),
                    Err(e) if e.kind == Failure::NotFound => None,
                    Err(e) => return Err(fail(&e)),
                }
            };
            match single {
                Some(v) => pairs.push((single_key(address, path, opts)?, v.bytes())),
                None => {
                    let base = path.trim_end_matches('/');
                    let found = store
                        .find(&Find {
                            path: Some(if base.is_empty() {
                                "/".into()
                            } else {
                                base.to_owned()
                            }),
                            name: None,
                            recursive: true,
                        })
                        .map_err(|e| fail(&e))?;
                    for (name, v) in found {
                        let rel = name[base.len()..].trim_start_matches('/').replace('/', "_");
                        if let Some((k, _)) = pairs.iter().find(|(k, _)| *k == rel) {
                            return Err(Error::new(
                                Exit::Input,
                                "import",
                                format!("{address}: two parameters become the key `{k}`"),
                            ));
                        }
                        pairs.push((rel, v.bytes()));
                    }
                }
            }
        }
        Address::Vault { mount, path } => {
            let v = get(&format!("{mount}/{path}")).map_err(|e| fail(&e))?;
            match &v {
                Remote::Kv(j) => {
                    if let Kind::Object(m) = &j.root().kind {
                        for (k, n) in m {
                            let s = match &n.kind {
                                Kind::String => j.string(n),
                                Kind::Null => Zeroizing::new(String::new()),
                                _ => Zeroizing::new(j.raw(n).to_owned()),
                            };
                            pairs.push((k.clone(), Zeroizing::new(s.as_bytes().to_vec())));
                        }
                    }
                }
                other => pairs.push((single_key(address, path, opts)?, other.bytes())),
            }
        }
    }
    if pairs.is_empty() {
        return Err(Error::new(
            Exit::Store,
            "store-not-found",
            format!("{address}: nothing to import (no values there)"),
        ));
    }
    let mut data = BTreeMap::new();
    for (k, v) in pairs {
        if !crate::k8s::valid_key(&k) {
            return Err(Error::new(
                Exit::Input,
                "import",
                format!("{address}: `{k}` is not a valid Secret key ([-._a-zA-Z0-9]+)"),
            )
            .hint("rename it in the store, or import the whole value under one key with --data-key KEY"));
        }
        data.insert(k, v);
    }
    Ok(SecretOut {
        name: opts.name.to_owned(),
        namespace: opts.namespace.map(str::to_owned),
        kind: opts.kind.to_owned(),
        data,
        ..SecretOut::default()
    })
}

/// Writes `values` to `address`.
pub fn push(
    connect: &dyn Connect,
    address: &Address,
    values: &[(String, Zeroizing<Vec<u8>>)],
    kms_key: Option<&str>,
) -> Result<PutReport> {
    let backend = backend(address);
    let store = connect
        .connect(&backend)
        .map_err(|e| store_error(address, &backend, &e))?;
    let target = match address {
        Address::SecretsManager(n) | Address::Parameter(n) => n.clone(),
        Address::Vault { mount, path } => format!("{mount}/{path}"),
    };
    store
        .put(&Put {
            target: &target,
            values,
            kms_key,
        })
        .map_err(|e| store_error(address, &backend, &e))
}

/// The SecretStore and ExternalSecret (ESO, `external-secrets.io/v1`)
/// that read pushed values back into a Secret named `name`. `location`:
/// the AWS region, or the Vault server; `kv`: the Vault mount's version.
pub fn external_secret(
    address: &Address,
    location: Option<&str>,
    kv: Option<super::KvVersion>,
    name: &str,
    namespace: Option<&str>,
    kind: &str,
    keys: &[&str],
) -> String {
    let q = crate::manifest::scalar::double_quoted;
    let ns = namespace
        .map(|n| format!("  namespace: {}\n", q(n)))
        .unwrap_or_default();
    let (store_name, provider, items) = match address {
        Address::SecretsManager(secret) => (
            "ksec-aws-secretsmanager",
            format!(
                "    aws:\n      service: SecretsManager\n      region: {}\n",
                q(location.unwrap_or("REGION"))
            ),
            format!("  dataFrom:\n  - extract:\n      key: {}\n", q(secret)),
        ),
        Address::Parameter(prefix) => {
            let mut data = String::from("  data:\n");
            for k in keys {
                data.push_str(&format!(
                    "  - secretKey: {}\n    remoteRef:\n      key: {}\n",
                    q(k),
                    q(&format!("{}/{k}", prefix.trim_end_matches('/')))
                ));
            }
            (
                "ksec-aws-parameterstore",
                format!(
                    "    aws:\n      service: ParameterStore\n      region: {}\n",
                    q(location.unwrap_or("REGION"))
                ),
                data,
            )
        }
        Address::Vault { mount, path } => (
            "ksec-vault",
            format!(
                "    vault:\n      server: {}\n      path: {}\n      version: {}\n",
                q(location.unwrap_or("https://VAULT:8200")),
                q(mount),
                if kv == Some(super::KvVersion::V1) {
                    "v1"
                } else {
                    "v2"
                }
            ),
            format!("  dataFrom:\n  - extract:\n      key: {}\n", q(path)),
        ),
    };
    let template = if kind == "Opaque" {
        String::new()
    } else {
        format!("    template:\n      type: {}\n", q(kind))
    };
    format!(
        "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata:\n  name: {store_name}\n{ns}spec:\n  provider:\n{provider}---\n\
apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata:\n  name: {n}\n{ns}spec:\n  refreshInterval: 1h\n  secretStoreRef:\n    name: {store_name}\n    kind: SecretStore\n  target:\n    name: {n}\n{template}{items}",
        n = q(name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::memory::{Stores, Val};

    #[test]
    fn import_flattens_objects_and_paths() {
        let sm = backend(&Address::SecretsManager(String::new()));
        let ssm = backend(&Address::Parameter(String::new()));
        let mut stores = Stores::default();
        stores.add(
            &sm,
            "prod/db",
            Version::Current,
            Val::Text(r#"{"user":"u","port":5432,"n":null}"#.into()),
        );
        stores.add(&sm, "prod/tls", Version::Current, Val::Binary(vec![0, 1]));
        stores.add(&ssm, "/app/a", Version::Current, Val::Text("1".into()));
        stores.add(&ssm, "/app/sub/b", Version::Current, Val::Text("2".into()));
        let opts = ImportOptions {
            name: "x",
            namespace: None,
            kind: "Opaque",
            data_key: None,
        };
        let keys = |a: &str| -> Vec<(String, Vec<u8>)> {
            import(&stores, &Address::parse(a).unwrap(), &opts)
                .unwrap()
                .data
                .into_iter()
                .map(|(k, v)| (k, v.to_vec()))
                .collect()
        };
        assert_eq!(
            keys("aws-sm:prod/db"),
            [
                ("n".into(), vec![]),
                ("port".into(), b"5432".to_vec()),
                ("user".into(), b"u".to_vec())
            ]
        );
        assert_eq!(keys("aws-sm:prod/tls"), [("tls".into(), vec![0, 1])]);
        assert_eq!(keys("ssm:/app/a"), [("a".into(), b"1".to_vec())]);
        assert_eq!(
            keys("ssm:/app/"),
            [("a".into(), b"1".to_vec()), ("sub_b".into(), b"2".to_vec())]
        );
        let err = import(&stores, &Address::parse("aws-sm:nope").unwrap(), &opts).unwrap_err();
        assert_eq!(err.exit, Exit::Store);
    }
}
