//! From an ExternalSecret to its Secret: the remote reads it needs
//! ([`needs`]), then the controller's value handling (properties,
//! extraction, decoding, key conversion and rewrites) in its merge order,
//! and the template ([`assemble`]).

use std::collections::BTreeMap;

use base64::Engine as _;
use zeroize::Zeroizing;

use super::super::fields::FieldError;
use super::super::gjson;
use super::super::json::{GoNumbers, Json, Kind, go_format_float};
use super::super::secret::{Owner, SecretOut, eso_data_hash, sha3_224_hex};
use super::super::{Backend, Find, Get, KvVersion, Remote, StoreError, VaultAccess, Version};
use super::{
    Conversion, Creation, DataFromItem, Decoding, ExternalSecret, FindSpec, Provider, RemoteRef,
    Rewrite, Source, Store, StoreRef, TemplateSpec,
};
use crate::template::{Template, Value};

/// A remote read an ExternalSecret needs.
#[derive(Debug, Clone)]
pub enum Need {
    /// One value.
    Get(Backend, Get),
    /// A listing.
    Find(Backend, Find),
}

/// Where an item's store is.
fn store_for<'s>(
    es: &ExternalSecret,
    item: Option<&StoreRef>,
    stores: &'s [Store],
) -> Result<&'s Store, FieldError> {
    let r = item.or(es.store.as_ref()).expect("checked when parsed");
    stores
        .iter()
        .find(|s| {
            s.name == r.name
                && s.cluster == r.cluster
                && (s.cluster
                    || s.namespace.is_none()
                    || es.namespace.is_none()
                    || s.namespace == es.namespace)
        })
        .ok_or_else(|| FieldError {
            line: r.line,
            path: r.path.clone(),
            message: format!(
                "no {} `{}` in the input or --store files",
                if r.cluster {
                    "ClusterSecretStore"
                } else {
                    "SecretStore"
                },
                r.name
            ),
        })
}

/// ESO's Vault `buildPath`: the API path of `key` in a store.
fn vault_path(access: &VaultAccess, has_path: bool, key: &str) -> String {
    let v2 = access.kv == KvVersion::V2;
    if has_path {
        let mount = &access.mount;
        let mut out = key.to_owned();
        let cut = format!("{mount}/");
        if let Some(rest) = out.strip_prefix(&cut) {
            out = rest.to_owned();
            if v2 && let Some(r) = out.strip_prefix("data/") {
                out = r.to_owned();
            }
        }
        return if v2 {
            format!("{mount}/data/{out}")
        } else {
            format!("{mount}/{out}")
        };
    }
    if v2 && !key.contains("/data/") {
        return match key.split_once('/') {
            Some((first, rest)) => format!("{first}/data/{rest}"),
            None => format!("{key}/data"),
        };
    }
    key.to_owned()
}

fn backend_of(store: &Store) -> Backend {
    match &store.provider {
        Provider::Aws {
            parameter_store: false,
            access,
            ..
        } => Backend::SecretsManager(access.clone()),
        Provider::Aws { access, .. } => Backend::ParameterStore(access.clone()),
        Provider::Vault { access, .. } => Backend::Vault(access.clone()),
    }
}

fn get_for(store: &Store, r: &RemoteRef) -> Get {
    match &store.provider {
        Provider::Aws {
            parameter_store,
            prefix,
            ..
        } => {
            let version = match (&r.version, parameter_store) {
                (None, _) => Version::Current,
                (Some(v), false) => match v.strip_prefix("uuid/") {
                    Some(id) => Version::Id(id.to_owned()),
                    None => Version::Named(v.clone()),
                },
                (Some(v), true) => Version::Named(v.clone()),
            };
            Get {
                key: format!("{prefix}{}", r.key),
                version,
            }
        }
        Provider::Vault { access, has_path } => Get {
            key: vault_path(access, *has_path, &r.key),
            version: match (&r.version, access.kv) {
                (Some(v), KvVersion::V2) => Version::Named(v.clone()),
                _ => Version::Current,
            },
        },
    }
}

fn find_for(store: &Store, f: &FindSpec, item: &DataFromItem) -> Result<Find, FieldError> {
    if let Provider::Vault {
        has_path: false, ..
    } = &store.provider
    {
        return Err(FieldError {
            line: item.line,
            path: item.path.clone(),
            message: "find needs the Vault store's `path` (the KV mount)".into(),
        });
    }
    Ok(Find {
        path: f.path.clone(),
        name: Some(f.name.clone()),
        recursive: true,
    })
}

/// The remote reads of `es`, item by item (`data` first, then `dataFrom`).
pub fn needs(es: &ExternalSecret, stores: &[Store]) -> Result<Vec<Need>, FieldError> {
    let mut out = Vec::new();
    for d in &es.data {
        let s = store_for(es, d.store.as_ref(), stores)?;
        out.push(Need::Get(backend_of(s), get_for(s, &d.remote)));
    }
    for d in &es.data_from {
        let s = store_for(es, d.store.as_ref(), stores)?;
        out.push(match &d.source {
            Source::Extract(r) => Need::Get(backend_of(s), get_for(s, r)),
            Source::Find(f) => Need::Find(backend_of(s), find_for(s, f, d)?),
        });
    }
    Ok(out)
}

/// Why an item failed: a field problem, or the store's.
pub enum ItemError {
    /// The ExternalSecret asks for something that cannot be.
    Field(FieldError),
    /// The remote value is not what the ExternalSecret needs: a property
    /// missing, not JSON, not an object, not decodable.
    Value(FieldError),
    /// The store failed.
    Store(Box<StoreFailure>),
}

/// A store failure and the item that met it.
pub struct StoreFailure {
    /// The item's line.
    pub line: usize,
    /// The item's path (`spec.data[0]`).
    pub path: String,
    /// The store.
    pub backend: Backend,
    /// What failed.
    pub error: StoreError,
}

impl ItemError {
    /// A store failure of the item at `line`, `path`.
    pub fn store(line: usize, path: &str, backend: &Backend, error: &StoreError) -> ItemError {
        ItemError::Store(Box::new(StoreFailure {
            line,
            path: path.to_owned(),
            backend: backend.clone(),
            error: error.clone(),
        }))
    }
}

impl From<FieldError> for ItemError {
    fn from(e: FieldError) -> Self {
        ItemError::Field(e)
    }
}

/// The results of the remote reads, in the order of [`needs`].
pub enum Fetched<'a> {
    /// A value.
    Value(&'a Result<Remote, StoreError>),
    /// A listing.
    Listing(&'a super::super::Listing),
}

fn is_vault(b: &Backend) -> bool {
    matches!(b, Backend::Vault(_))
}

/// ESO's `GetSecret`: the value, or the property in it.
fn get_secret(
    remote: &Remote,
    property: Option<&str>,
    key: &str,
) -> Result<Zeroizing<Vec<u8>>, String> {
    let Some(prop) = property else {
        return Ok(remote.bytes());
    };
    match remote {
        Remote::Kv(j) => {
            // A top-level member named exactly `property` wins.
            if let Some(n) = j.member(j.root(), prop) {
                return Ok(byte_value(j, n, GoNumbers::Literal));
            }
            let text = remote.bytes();
            let doc = Json::parse(Zeroizing::new(String::from_utf8_lossy(&text).into_owned()))
                .map_err(|e| format!("internal error: {}", e.0))?;
            match gjson::get(&doc, prop).map_err(|u| format!("property {}", u.0))? {
                Some(f) => Ok(Zeroizing::new(gjson::string(&doc, &f).as_bytes().to_vec())),
                None => Err(format!(
                    "property `{prop}` is not in {key} (cannot find secret data for key: \"{prop}\")"
                )),
            }
        }
        Remote::Text(_) | Remote::Binary(_) => {
            let text = Zeroizing::new(String::from_utf8_lossy(&remote.bytes()).into_owned());
            let doc = Json::parse(text)
                .map_err(|_| format!("property `{prop}`: the value of {key} is not JSON"))?;
            // A property with dots is first tried as one literal member name.
            if prop.contains('.') {
                let escaped = prop.replace('.', "\\.");
                if let Ok(Some(f)) = gjson::get(&doc, &escaped) {
                    return Ok(Zeroizing::new(gjson::string(&doc, &f).as_bytes().to_vec()));
                }
            }
            match gjson::get(&doc, prop).map_err(|u| format!("property {}", u.0))? {
                Some(f) => Ok(Zeroizing::new(gjson::string(&doc, &f).as_bytes().to_vec())),
                None => Err(format!(
                    "property `{prop}` is not in {key} (key {prop} does not exist in secret {key})"
                )),
            }
        }
    }
}

/// `esutils.GetByteValue` of a JSON value decoded with `UseNumber`
/// (`Literal`) or as float64.
fn byte_value(j: &Json, n: &super::super::json::Node, numbers: GoNumbers) -> Zeroizing<Vec<u8>> {
    let s = match &n.kind {
        Kind::String => j.string(n),
        Kind::Null => Zeroizing::new(String::new()),
        Kind::Bool(b) => Zeroizing::new(b.to_string()),
        Kind::Number => match numbers {
            GoNumbers::Literal => Zeroizing::new(j.raw(n).to_owned()),
            GoNumbers::Float64 => Zeroizing::new(go_format_float(j.float(n))),
        },
        Kind::Array(_) | Kind::Object(_) => {
            let mut s = Zeroizing::new(String::new());
            j.go_marshal(n, numbers, &mut s);
            s
        }
    };
    Zeroizing::new(s.as_bytes().to_vec())
}

/// ESO's `GetSecretMap`: the value (or property) as a JSON object,
/// flattened one level.
fn get_secret_map(
    remote: &Remote,
    r: &RemoteRef,
    vault: bool,
) -> Result<super::super::Pairs, String> {
    let bytes = get_secret(remote, r.property.as_deref(), &r.key)?;
    let text = Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned());
    let doc = Json::parse(text).map_err(|_| {
        format!(
            "the value of {} is not a JSON object, so it cannot be extracted",
            r.key
        )
    })?;
    let Kind::Object(members) = &doc.root().kind else {
        return Err(format!(
            "the value of {} is not a JSON object, so it cannot be extracted",
            r.key
        ));
    };
    let mut out: Vec<(String, Zeroizing<Vec<u8>>)> = Vec::new();
    for (k, v) in members {
        let value = if vault {
            if matches!(v.kind, Kind::Number) && !doc.float(v).is_finite() {
                return Err(format!("{}: member `{k}` is a number out of range", r.key));
            }
            byte_value(&doc, v, GoNumbers::Float64)
        } else {
            match &v.kind {
                Kind::String => Zeroizing::new(doc.string(v).as_bytes().to_vec()),
                Kind::Null => Zeroizing::new(Vec::new()),
                _ => Zeroizing::new(doc.raw(v).as_bytes().to_vec()),
            }
        };
        out.retain(|(x, _)| x != k);
        out.push((k.clone(), value));
    }
    Ok(out)
}

/// Why a key or a value cannot go into the Secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// `decodingStrategy: Base64` on a value that is not base64.
    #[error("decodingStrategy Base64: the value is not valid base64")]
    Base64,
    /// `decodingStrategy: Base64URL` on a value that is not.
    #[error("decodingStrategy Base64URL: the value is not valid URL-safe base64")]
    Base64Url,
    /// A `rewrite` transform template that fails.
    #[error("rewrite transform: {0}")]
    Transform(String),
    /// A key over the API server's limit.
    #[error("key `{0}` is longer than 253 characters")]
    KeyTooLong(String),
    /// A key the API server refuses.
    #[error("key `{0}` is not a valid Secret key ([-._a-zA-Z0-9]+); rewrite or convert it")]
    BadKey(String),
    /// `nullBytePolicy: Fail` and a NUL byte, by remote key.
    #[error("the value of {0} contains a NUL byte (nullBytePolicy: Fail)")]
    Nul(String),
}

/// ESO's `decoding.Decode`.
pub fn decode(bytes: Zeroizing<Vec<u8>>, how: Decoding) -> Result<Zeroizing<Vec<u8>>, ValueError> {
    let compact = || -> Vec<u8> {
        bytes
            .iter()
            .copied()
            .filter(|b| !matches!(b, b'\r' | b'\n'))
            .collect()
    };
    let std = |b: &[u8]| base64::engine::general_purpose::STANDARD.decode(b);
    let url = |b: &[u8]| base64::engine::general_purpose::URL_SAFE.decode(b);
    match how {
        Decoding::None => Ok(bytes),
        Decoding::Base64 => std(&compact())
            .map(Zeroizing::new)
            .map_err(|_| ValueError::Base64),
        Decoding::Base64Url => url(&compact())
            .map(Zeroizing::new)
            .map_err(|_| ValueError::Base64Url),
        Decoding::Auto => {
            let c = compact();
            match std(&c).or_else(|_| url(&c)) {
                Ok(d) => Ok(Zeroizing::new(d)),
                Err(_) => Ok(bytes),
            }
        }
    }
}

/// ESO's `ConvertKeys`.
fn convert_key(key: &str, how: Conversion) -> String {
    key.chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '.' | '_') {
                c.to_string()
            } else {
                match how {
                    Conversion::Default => "_".into(),
                    Conversion::Unicode => format!("_U{:04x}_", c as u32),
                }
            }
        })
        .collect()
}

fn rewrite_key(key: &str, steps: &[Rewrite]) -> Result<String, ValueError> {
    let mut k = key.to_owned();
    for s in steps {
        k = match s {
            Rewrite::Regexp(re, target) => re.replace_all(&k, target.as_str()).into_owned(),
            Rewrite::Transform(t) => {
                let mut m = BTreeMap::new();
                m.insert("value".to_owned(), Value::str(k.clone()));
                t.render(&Value::Map(m))
                    .map_err(|e| ValueError::Transform(e.to_string()))?
                    .to_string()
            }
        };
    }
    Ok(k)
}

fn check_key(key: &str) -> Result<(), ValueError> {
    if key.len() > 253 {
        return Err(ValueError::KeyTooLong(key.to_owned()));
    }
    if !crate::k8s::valid_key(key) {
        return Err(ValueError::BadKey(key.to_owned()));
    }
    Ok(())
}

fn null_check(v: &[u8], r: &RemoteRef) -> Result<(), ValueError> {
    if r.fail_on_null && v.contains(&0) {
        return Err(ValueError::Nul(r.key.clone()));
    }
    Ok(())
}

/// Assembles the Secret from fetched values (`fetched` in the order of
/// [`needs`]); `None` with `creationPolicy: None`. `notes` gets what the
/// user should know (entries left out under `deletionPolicy`).
pub fn assemble(
    es: &ExternalSecret,
    backends: &[Backend],
    fetched: &[Fetched<'_>],
    notes: &mut Vec<String>,
) -> Result<Option<SecretOut>, ItemError> {
    let mut provider: BTreeMap<String, Zeroizing<Vec<u8>>> = BTreeMap::new();
    let n_data = es.data.len();
    let missing_ok = |e: &StoreError| es.skip_missing && e.kind == super::super::Failure::NotFound;
    // dataFrom first, in order, later entries winning.
    for (i, item) in es.data_from.iter().enumerate() {
        let backend = &backends[n_data + i];
        let fail = |m: String| {
            ItemError::Field(FieldError {
                line: item.line,
                path: item.path.clone(),
                message: m,
            })
        };
        let bad_value = |m: String| {
            ItemError::Value(FieldError {
                line: item.line,
                path: item.path.clone(),
                message: m,
            })
        };
        let (pairs, decoding, conversion): (super::super::Pairs, Decoding, Conversion) =
            match (&item.source, &fetched[n_data + i]) {
                (Source::Extract(r), Fetched::Value(v)) => {
                    let remote = match v {
                        Ok(r) => r,
                        Err(e) if missing_ok(e) => {
                            notes.push(format!(
                                "{}: {}; left out (deletionPolicy)",
                                item.path, e.message
                            ));
                            continue;
                        }
                        Err(e) => {
                            return Err(ItemError::store(item.line, &item.path, backend, e));
                        }
                    };
                    let pairs = get_secret_map(remote, r, is_vault(backend)).map_err(bad_value)?;
                    for (_, v) in &pairs {
                        null_check(v, r).map_err(|e| bad_value(e.to_string()))?;
                    }
                    (pairs, r.decoding, r.conversion)
                }
                (Source::Find(f), Fetched::Listing(l)) => {
                    let list = l
                        .as_ref()
                        .map_err(|e| ItemError::store(item.line, &item.path, backend, e))?;
                    let pairs = list
                        .iter()
                        .map(|(name, v)| (name.clone(), v.bytes()))
                        .collect();
                    (pairs, f.decoding, f.conversion)
                }
                _ => unreachable!("fetched in the order of needs"),
            };
        let mut seen = BTreeMap::new();
        for (key, value) in pairs {
            let k = if item.rewrite.is_empty() {
                let c = convert_key(&key, conversion);
                if seen.insert(c.clone(), ()).is_some() {
                    return Err(fail(format!(
                        "secret name collision during conversion: {c}"
                    )));
                }
                c
            } else {
                rewrite_key(&key, &item.rewrite).map_err(|e| fail(e.to_string()))?
            };
            if k.is_empty() {
                continue;
            }
            check_key(&k).map_err(|e| fail(e.to_string()))?;
            let v = decode(value, decoding).map_err(|m| bad_value(format!("{key}: {m}")))?;
            provider.insert(k, v);
        }
    }
    // Then data, which wins.
    for (i, item) in es.data.iter().enumerate() {
        let backend = &backends[i];
        let fail = |m: String| {
            ItemError::Field(FieldError {
                line: item.line,
                path: item.path.clone(),
                message: m,
            })
        };
        let Fetched::Value(v) = &fetched[i] else {
            unreachable!("fetched in the order of needs")
        };
        let remote = match v {
            Ok(r) => r,
            Err(e) if missing_ok(e) => {
                notes.push(format!(
                    "{}: {}; left out (deletionPolicy)",
                    item.path, e.message
                ));
                continue;
            }
            Err(e) => {
                return Err(ItemError::store(item.line, &item.path, backend, e));
            }
        };
        check_key(&item.secret_key).map_err(|e| fail(e.to_string()))?;
        let bad_value = |m: String| {
            ItemError::Value(FieldError {
                line: item.line,
                path: item.path.clone(),
                message: m,
            })
        };
        let value = get_secret(remote, item.remote.property.as_deref(), &item.remote.key)
            .map_err(bad_value)?;
        let value = decode(value, item.remote.decoding).map_err(|e| bad_value(e.to_string()))?;
        null_check(&value, &item.remote).map_err(|e| bad_value(e.to_string()))?;
        provider.insert(item.secret_key.clone(), value);
    }
    if es.creation == Creation::None {
        return Ok(None);
    }
    let mut secret = SecretOut {
        name: es.target.clone().unwrap_or_else(|| es.name.clone()),
        namespace: es.namespace.clone(),
        kind: "Opaque".into(),
        immutable: es.immutable,
        ..SecretOut::default()
    };
    match &es.template {
        None => {
            secret.labels = es.labels.iter().cloned().collect();
            secret.annotations = es.annotations.iter().cloned().collect();
            secret.data = provider;
        }
        Some(t) => apply_template(t, provider, &mut secret)?,
    }
    secret.labels.insert(
        "reconcile.external-secrets.io/managed".into(),
        "true".into(),
    );
    if es.creation == Creation::Owner {
        let ns = es.namespace.clone().unwrap_or_default();
        secret.labels.insert(
            "reconcile.external-secrets.io/created-by".into(),
            sha3_224_hex(format!("{ns}/{}", es.name).as_bytes()),
        );
        secret.owner = es.uid.clone().map(|uid| Owner {
            api_version: es.api_version.clone(),
            kind: "ExternalSecret".into(),
            name: es.name.clone(),
            uid,
            block_owner_deletion: true,
        });
    }
    if es.creation == Creation::Merge {
        notes.push(
            "creationPolicy merges into an existing Secret: shown are only the keys the ExternalSecret contributes"
                .into(),
        );
    }
    secret.annotations.insert(
        "reconcile.external-secrets.io/data-hash".into(),
        eso_data_hash(&secret.data),
    );
    Ok(Some(secret))
}

fn apply_template(
    t: &TemplateSpec,
    provider: BTreeMap<String, Zeroizing<Vec<u8>>>,
    secret: &mut SecretOut,
) -> Result<(), ItemError> {
    // The templates see every provider value as a string.
    let mut root = BTreeMap::new();
    let mut binary = Vec::new();
    for (k, v) in &provider {
        match std::str::from_utf8(v) {
            Ok(s) => {
                root.insert(k.clone(), Value::str(s));
            }
            Err(_) => binary.push(k.clone()),
        }
    }
    let root = Value::Map(root);
    let render =
        |what: &str, tpl: &Template, line: usize| -> Result<Zeroizing<String>, ItemError> {
            tpl.render(&root).map_err(|e| {
                let hint = binary
                    .iter()
                    .find(|k| e.message.contains(&format!("\"{k}\"")))
                    .map(|k| format!(" (`{k}` is not UTF-8 text; templates see text only)"))
                    .unwrap_or_default();
                ItemError::Field(FieldError {
                    line,
                    path: format!("spec.target.template.{what}"),
                    message: format!("{e}{hint}"),
                })
            })
        };
    for (k, tpl) in &t.labels {
        secret.labels.insert(
            k.clone(),
            render(&format!("metadata.labels.{k}"), tpl, t.line)?.to_string(),
        );
    }
    for (k, tpl) in &t.annotations {
        secret.annotations.insert(
            k.clone(),
            render(&format!("metadata.annotations.{k}"), tpl, t.line)?.to_string(),
        );
    }
    if let Some(kind) = &t.kind {
        secret.kind = kind.clone();
    }
    let mut data = BTreeMap::new();
    for (k, tpl, line) in &t.data {
        let v = render(&format!("data.{k}"), tpl, *line)?;
        check_key(k).map_err(|e| {
            ItemError::Field(FieldError {
                line: *line,
                path: format!("spec.target.template.data.{k}"),
                message: e.to_string(),
            })
        })?;
        data.insert(k.clone(), Zeroizing::new(v.as_bytes().to_vec()));
    }
    if t.merge || t.data.is_empty() {
        secret.data = provider;
    }
    secret.data.extend(data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_paths() {
        let acc = |mount: &str, kv| VaultAccess {
            server: None,
            namespace: None,
            mount: mount.into(),
            kv,
        };
        let v2 = acc("secret", KvVersion::V2);
        assert_eq!(
            vault_path(&v2, true, "app/config"),
            "secret/data/app/config"
        );
        assert_eq!(
            vault_path(&v2, true, "secret/app/config"),
            "secret/data/app/config"
        );
        assert_eq!(
            vault_path(&v2, true, "secret/data/app/config"),
            "secret/data/app/config"
        );
        assert_eq!(
            vault_path(&acc("", KvVersion::V2), false, "secret/app/config"),
            "secret/data/app/config"
        );
        assert_eq!(
            vault_path(&acc("kv", KvVersion::V1), true, "app/config"),
            "kv/app/config"
        );
        assert_eq!(
            vault_path(&acc("", KvVersion::V1), false, "kv/app/config"),
            "kv/app/config"
        );
    }

    #[test]
    fn keys_and_decoding() {
        assert_eq!(
            convert_key("/prod/app/db", Conversion::Default),
            "_prod_app_db"
        );
        assert_eq!(convert_key("a/c", Conversion::Unicode), "a_U002f_c");
        let d =
            |s: &str, how| decode(Zeroizing::new(s.as_bytes().to_vec()), how).map(|v| v.to_vec());
        assert_eq!(d("abcd", Decoding::Auto).unwrap(), vec![0x69, 0xb7, 0x1d]);
        assert_eq!(d("not base64!", Decoding::Auto).unwrap(), b"not base64!");
        assert_eq!(d("-_8=", Decoding::Auto).unwrap(), vec![0xfb, 0xff]);
        assert!(d("abc", Decoding::Base64).is_err());
        assert_eq!(d("AAH/", Decoding::Base64).unwrap(), vec![0, 1, 255]);
    }
}
