//! External Secrets Operator: `ExternalSecret` (`external-secrets.io/v1`,
//! and `v1beta1`, read the same way) and the `SecretStore` /
//! `ClusterSecretStore` it names, as the controller (v0.16 to 2.x) turns
//! them into a Secret.
//!
//! * Remote values: `data[].remoteRef` (`key`, `property` as a gjson path,
//!   `version`, `decodingStrategy`, `nullBytePolicy`), `dataFrom[].extract`
//!   (flattened one level, keys converted) and `dataFrom[].find`
//!   (`name.regexp`, `path`), `rewrite` (`regexp`, `transform`), a per-item
//!   `sourceRef.storeRef`; stores: AWS Secrets Manager and Parameter Store
//!   (`region`, `role`, `prefix`), Vault KV v1/v2 (`server`, `path`,
//!   `version`, `namespace`).
//! * Merge order, as the controller's code has it: `dataFrom` entries in
//!   order, later ones winning; then `data`, which wins over `dataFrom`.
//! * The Secret: `target.name` (default: the ExternalSecret's name), the
//!   ExternalSecret's namespace; without a template its own labels and
//!   annotations; `target.template` (`type`, `metadata.labels` and
//!   `annotations` as templates, `data` templates, `mergePolicy`) through
//!   ksec's Go template subset; the controller's bookkeeping — label
//!   `reconcile.external-secrets.io/managed`, `created-by` (SHA3-224 of
//!   `namespace/name`, with `creationPolicy: Owner`), annotation
//!   `data-hash` — and an owner reference when the ExternalSecret's `uid`
//!   is known; `immutable`.
//!
//! Fields that would change the result and that ksec does not implement
//! (`templateFrom`, `find.tags`, `metadataPolicy: Fetch`, generators,
//! `rewrite.merge`, other providers) are refused by name. Store
//! credentials (`auth`) are not used: ksec reads with the caller's own
//! (the AWS default chain, Vault's environment and logins).

use std::collections::BTreeMap;

use base64::Engine as _;
use zeroize::Zeroizing;

use super::fields::{Field, FieldError};
use super::gjson;
use super::json::{GoNumbers, Json, Kind, go_format_float};
use super::secret::{Owner, SecretOut, eso_data_hash, sha3_224_hex};
use super::{AwsAccess, Backend, Find, Get, KvVersion, Remote, StoreError, VaultAccess, Version};
use crate::template::{Template, Value};

/// The API group.
pub const GROUP: &str = "external-secrets.io";

/// Whether a document is an ESO ExternalSecret.
pub fn is_external_secret(api_version: &str, kind: &str) -> bool {
    kind == "ExternalSecret"
        && matches!(
            api_version,
            "external-secrets.io/v1"
                | "external-secrets.io/v1beta1"
                | "external-secrets.io/v1alpha1"
        )
}

/// Whether a document is an ESO store.
pub fn is_store(api_version: &str, kind: &str) -> bool {
    matches!(kind, "SecretStore" | "ClusterSecretStore")
        && api_version.starts_with("external-secrets.io/")
}

/// A SecretStore or ClusterSecretStore.
#[derive(Debug, Clone)]
pub struct Store {
    /// `ClusterSecretStore`.
    pub cluster: bool,
    /// Its name.
    pub name: String,
    /// Its namespace (SecretStore).
    pub namespace: Option<String>,
    /// What it reads from.
    pub provider: Provider,
}

/// A store's provider.
#[derive(Debug, Clone)]
pub enum Provider {
    /// AWS Secrets Manager or Parameter Store.
    Aws {
        /// Parameter Store rather than Secrets Manager.
        parameter_store: bool,
        /// Region and role.
        access: AwsAccess,
        /// Prepended to every key (not to `find`).
        prefix: String,
    },
    /// Vault KV.
    Vault {
        /// Server, namespace, mount (`path`; may be empty), version.
        access: VaultAccess,
        /// Whether the store sets `path`.
        has_path: bool,
    },
}

/// Reads a SecretStore / ClusterSecretStore document; `warnings` gets
/// fields ksec ignores.
pub fn parse_store(root: Field<'_>, warnings: &mut Vec<String>) -> Result<Store, FieldError> {
    let kind = root.str("kind")?.unwrap_or_default();
    let meta = root
        .get("metadata")
        .ok_or_else(|| root.error("`metadata` is required"))?;
    let meta = meta.field();
    let name = meta.required("name")?.to_owned();
    let namespace = meta.str("namespace")?.map(str::to_owned);
    let spec = root
        .get("spec")
        .ok_or_else(|| root.error("`spec` is required"))?;
    let spec = spec.field();
    let provider = spec
        .get("provider")
        .ok_or_else(|| spec.error("`provider` is required"))?;
    let provider = provider.field();
    provider.mapping()?;
    let names = provider.keys();
    if names.len() != 1 {
        return Err(provider.error("exactly one provider is expected"));
    }
    let provider = match names[0].as_str() {
        "aws" => {
            let aws = provider.get("aws").expect("listed");
            let aws = aws.field();
            warnings.extend(aws.check(
                &[
                    "service",
                    "region",
                    "role",
                    "prefix",
                    "auth",
                    "secretsManager",
                ],
                &[
                    ("additionalRoles", "role chaining"),
                    ("externalID", "role assumption with an external id"),
                    ("sessionTags", "STS session tags"),
                    ("transitiveTagKeys", "STS session tags"),
                ],
            )?);
            let parameter_store = match aws.required("service")? {
                "SecretsManager" => false,
                "ParameterStore" => true,
                other => {
                    return Err(aws.error(format!(
                        "service `{other}` is not supported (ksec reads SecretsManager and ParameterStore)"
                    )));
                }
            };
            Provider::Aws {
                parameter_store,
                access: AwsAccess {
                    region: Some(aws.required("region")?.to_owned()),
                    role: aws.str("role")?.map(str::to_owned),
                },
                prefix: aws.str("prefix")?.unwrap_or_default().to_owned(),
            }
        }
        "vault" => {
            let v = provider.get("vault").expect("listed");
            let v = v.field();
            warnings.extend(v.check(
                &[
                    "server",
                    "path",
                    "version",
                    "namespace",
                    "auth",
                    "caBundle",
                    "caProvider",
                    "tls",
                    "readYourWrites",
                    "forwardInconsistent",
                    "headers",
                    "checkAndSet",
                ],
                &[],
            )?);
            let kv = match v.str("version")?.unwrap_or("v2") {
                "v1" => KvVersion::V1,
                "v2" => KvVersion::V2,
                other => return Err(v.error(format!("version `{other}`: expected v1 or v2"))),
            };
            let path = v.str("path")?.map(|p| p.trim_matches('/').to_owned());
            Provider::Vault {
                access: VaultAccess {
                    server: Some(v.required("server")?.to_owned()),
                    namespace: v.str("namespace")?.map(str::to_owned),
                    mount: path.clone().unwrap_or_default(),
                    kv,
                },
                has_path: path.is_some(),
            }
        }
        other => {
            return Err(provider.error(format!(
                "provider `{other}` is not supported by ksec resolve (it reads aws and vault)"
            )));
        }
    };
    Ok(Store {
        cluster: kind == "ClusterSecretStore",
        name,
        namespace,
        provider,
    })
}

/// A reference to a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRef {
    /// Its name.
    pub name: String,
    /// `ClusterSecretStore`.
    pub cluster: bool,
    /// Line and path of the reference, for messages.
    pub line: usize,
    /// `spec.secretStoreRef`.
    pub path: String,
}

/// How a value's bytes are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoding {
    /// As they are.
    None,
    /// Standard base64, padded.
    Base64,
    /// URL-safe base64, padded.
    Base64Url,
    /// Base64, else URL-safe base64, else as they are.
    Auto,
}

/// How extracted and found keys are made valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// Invalid characters become `_`.
    Default,
    /// Invalid characters become `_U%04x_`.
    Unicode,
}

/// `remoteRef` / `extract`.
#[derive(Debug, Clone)]
pub struct RemoteRef {
    /// `key`.
    pub key: String,
    /// `property`.
    pub property: Option<String>,
    /// `version`.
    pub version: Option<String>,
    /// `decodingStrategy`.
    pub decoding: Decoding,
    /// `conversionStrategy`.
    pub conversion: Conversion,
    /// `nullBytePolicy: Fail`.
    pub fail_on_null: bool,
}

/// One `data[]` item.
#[derive(Debug, Clone)]
pub struct DataItem {
    /// `secretKey`.
    pub secret_key: String,
    /// `remoteRef`.
    pub remote: RemoteRef,
    /// `sourceRef.storeRef`.
    pub store: Option<StoreRef>,
    /// Line and path.
    pub line: usize,
    /// `spec.data[0]`.
    pub path: String,
}

/// `find`.
#[derive(Debug, Clone)]
pub struct FindSpec {
    /// `path`.
    pub path: Option<String>,
    /// `name.regexp`.
    pub name: regex::Regex,
    /// `conversionStrategy`.
    pub conversion: Conversion,
    /// `decodingStrategy`.
    pub decoding: Decoding,
}

/// A `rewrite` step.
#[derive(Debug)]
pub enum Rewrite {
    /// `regexp: {source, target}`.
    Regexp(regex::Regex, String),
    /// `transform: {template}`, over `.value` (the key).
    Transform(Template),
}

/// What a `dataFrom[]` item reads.
#[derive(Debug, Clone)]
pub enum Source {
    /// `extract`.
    Extract(RemoteRef),
    /// `find`.
    Find(FindSpec),
}

/// One `dataFrom[]` item.
#[derive(Debug)]
pub struct DataFromItem {
    /// What it reads.
    pub source: Source,
    /// `rewrite` (when present, key conversion is skipped).
    pub rewrite: Vec<Rewrite>,
    /// `sourceRef.storeRef`.
    pub store: Option<StoreRef>,
    /// Line.
    pub line: usize,
    /// `spec.dataFrom[0]`.
    pub path: String,
}

/// `creationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Creation {
    /// Owner (default): owned by the ExternalSecret.
    Owner,
    /// Orphan: created, not owned.
    Orphan,
    /// Merge / CreateOrMerge: merged into an existing Secret.
    Merge,
    /// None: no Secret.
    None,
}

/// `target.template`.
#[derive(Debug)]
pub struct TemplateSpec {
    /// `type`.
    pub kind: Option<String>,
    /// `mergePolicy: Merge`.
    pub merge: bool,
    /// `metadata.labels`, values are templates.
    pub labels: Vec<(String, Template)>,
    /// `metadata.annotations`, values are templates.
    pub annotations: Vec<(String, Template)>,
    /// `data`, values are templates.
    pub data: Vec<(String, Template, usize)>,
    /// Line of `template`.
    pub line: usize,
}

/// An ExternalSecret.
#[derive(Debug)]
pub struct ExternalSecret {
    /// Its apiVersion.
    pub api_version: String,
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: Option<String>,
    /// Its uid, when the manifest has one (`kubectl get -o yaml`).
    pub uid: Option<String>,
    /// Its labels.
    pub labels: Vec<(String, String)>,
    /// Its annotations.
    pub annotations: Vec<(String, String)>,
    /// `secretStoreRef`.
    pub store: Option<StoreRef>,
    /// `target.name`.
    pub target: Option<String>,
    /// `target.creationPolicy`.
    pub creation: Creation,
    /// `target.deletionPolicy` is `Delete` or `Merge`: a missing remote
    /// value is left out instead of failing.
    pub skip_missing: bool,
    /// `target.immutable`.
    pub immutable: bool,
    /// `target.template`.
    pub template: Option<TemplateSpec>,
    /// `data`.
    pub data: Vec<DataItem>,
    /// `dataFrom`.
    pub data_from: Vec<DataFromItem>,
}

fn decoding(f: Field<'_>) -> Result<Decoding, FieldError> {
    Ok(match f.str("decodingStrategy")?.unwrap_or("None") {
        "None" | "" => Decoding::None,
        "Base64" => Decoding::Base64,
        "Base64URL" => Decoding::Base64Url,
        "Auto" => Decoding::Auto,
        other => {
            return Err(f.error(format!(
                "decodingStrategy `{other}`: expected None, Base64, Base64URL or Auto"
            )));
        }
    })
}

fn conversion(f: Field<'_>) -> Result<Conversion, FieldError> {
    Ok(match f.str("conversionStrategy")?.unwrap_or("Default") {
        "Default" | "" => Conversion::Default,
        "Unicode" => Conversion::Unicode,
        other => {
            return Err(f.error(format!(
                "conversionStrategy `{other}`: expected Default or Unicode"
            )));
        }
    })
}

fn remote_ref(f: Field<'_>, warnings: &mut Vec<String>) -> Result<RemoteRef, FieldError> {
    warnings.extend(f.check(
        &[
            "key",
            "property",
            "version",
            "decodingStrategy",
            "conversionStrategy",
            "metadataPolicy",
            "nullBytePolicy",
        ],
        &[],
    )?);
    if let Some(p) = f.str("metadataPolicy")?
        && p != "None"
    {
        return Err(f.error(format!(
            "metadataPolicy `{p}` is not supported by ksec resolve (it reads values, not tags or metadata)"
        )));
    }
    let fail_on_null = match f.str("nullBytePolicy")?.unwrap_or("Ignore") {
        "Ignore" => false,
        "Fail" => true,
        other => return Err(f.error(format!("nullBytePolicy `{other}`: expected Ignore or Fail"))),
    };
    Ok(RemoteRef {
        key: f.required("key")?.to_owned(),
        property: f
            .str("property")?
            .filter(|p| !p.is_empty())
            .map(str::to_owned),
        version: f
            .str("version")?
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
        decoding: decoding(f)?,
        conversion: conversion(f)?,
        fail_on_null,
    })
}

fn store_ref(f: Field<'_>) -> Result<StoreRef, FieldError> {
    let cluster = match f.str("kind")?.unwrap_or("SecretStore") {
        "SecretStore" => false,
        "ClusterSecretStore" => true,
        other => {
            return Err(f.error(format!(
                "kind `{other}`: expected SecretStore or ClusterSecretStore"
            )));
        }
    };
    Ok(StoreRef {
        name: f.required("name")?.to_owned(),
        cluster,
        line: f.line(),
        path: f.path().to_owned(),
    })
}

fn source_ref(item: Field<'_>) -> Result<Option<StoreRef>, FieldError> {
    let Some(src) = item.get("sourceRef") else {
        return Ok(None);
    };
    let src = src.field();
    src.check(
        &["storeRef"],
        &[("generatorRef", "generators run in the cluster")],
    )?;
    match src.get("storeRef") {
        Some(s) => store_ref(s.field()).map(Some),
        None => Ok(None),
    }
}

fn template_text(f: Field<'_>, text: &str) -> Result<Template, FieldError> {
    Template::parse(text).map_err(|e| {
        f.error(format!(
            "{e} (ksec runs a subset of Go templates; README, \"Templates\", lists it)"
        ))
    })
}

fn templates(parent: Field<'_>, key: &str) -> Result<Vec<(String, Template, usize)>, FieldError> {
    let Some(map) = parent.get(key) else {
        return Ok(Vec::new());
    };
    let map = map.field();
    let mut out = Vec::new();
    for k in map.keys() {
        let v = map.get(&k);
        let (text, f) = match &v {
            Some(o) => (o.field().as_str()?, o.field()),
            None => ("", map),
        };
        out.push((k, template_text(f, text)?, f.line()));
    }
    Ok(out)
}

fn parse_template(f: Field<'_>, warnings: &mut Vec<String>) -> Result<TemplateSpec, FieldError> {
    warnings.extend(f.check(
        &["type", "engineVersion", "mergePolicy", "metadata", "data"],
        &[(
            "templateFrom",
            "templates from ConfigMaps, Secrets and literals are not rendered",
        )],
    )?);
    if let Some(v) = f.str("engineVersion")?
        && v != "v2"
    {
        return Err(f.error(format!(
            "engineVersion `{v}` is not supported (ksec renders engine v2 templates)"
        )));
    }
    let merge = match f.str("mergePolicy")?.unwrap_or("Replace") {
        "Replace" => false,
        "Merge" => true,
        other => return Err(f.error(format!("mergePolicy `{other}`: expected Replace or Merge"))),
    };
    let (mut labels, mut annotations) = (Vec::new(), Vec::new());
    if let Some(meta) = f.get("metadata") {
        let meta = meta.field();
        meta.check(
            &["labels", "annotations"],
            &[("finalizers", "Secrets with finalizers are not rendered")],
        )?;
        labels = templates(meta, "labels")?
            .into_iter()
            .map(|(k, t, _)| (k, t))
            .collect();
        annotations = templates(meta, "annotations")?
            .into_iter()
            .map(|(k, t, _)| (k, t))
            .collect();
    }
    Ok(TemplateSpec {
        kind: f.str("type")?.filter(|t| !t.is_empty()).map(str::to_owned),
        merge,
        labels,
        annotations,
        data: templates(f, "data")?,
        line: f.line(),
    })
}

/// Reads an ExternalSecret document; `warnings` gets fields ksec ignores.
pub fn parse(root: Field<'_>, warnings: &mut Vec<String>) -> Result<ExternalSecret, FieldError> {
    let api_version = root.required("apiVersion")?.to_owned();
    let meta = root
        .get("metadata")
        .ok_or_else(|| root.error("`metadata` is required"))?;
    let meta = meta.field();
    let spec = root
        .get("spec")
        .ok_or_else(|| root.error("`spec` is required"))?;
    let spec = spec.field();
    warnings.extend(spec.check(
        &[
            "secretStoreRef",
            "target",
            "data",
            "dataFrom",
            "refreshInterval",
            "refreshPolicy",
        ],
        &[],
    )?);
    let store = spec
        .get("secretStoreRef")
        .map(|s| store_ref(s.field()))
        .transpose()?;
    let (mut target, mut creation, mut skip_missing, mut immutable, mut template) =
        (None, Creation::Owner, false, false, None);
    if let Some(t) = spec.get("target") {
        let t = t.field();
        warnings.extend(t.check(
            &[
                "name",
                "creationPolicy",
                "deletionPolicy",
                "immutable",
                "template",
            ],
            &[("manifest", "targets other than Secrets are not rendered")],
        )?);
        target = t.str("name")?.filter(|n| !n.is_empty()).map(str::to_owned);
        creation = match t.str("creationPolicy")?.unwrap_or("Owner") {
            "Owner" => Creation::Owner,
            "Orphan" => Creation::Orphan,
            "Merge" | "CreateOrMerge" => Creation::Merge,
            "None" => Creation::None,
            other => return Err(t.error(format!("creationPolicy `{other}` is not known"))),
        };
        skip_missing = match t.str("deletionPolicy")?.unwrap_or("Retain") {
            "Retain" => false,
            "Delete" | "Merge" => true,
            other => return Err(t.error(format!("deletionPolicy `{other}` is not known"))),
        };
        immutable = t.bool("immutable")?.unwrap_or(false);
        if let Some(tpl) = t.get("template") {
            template = Some(parse_template(tpl.field(), warnings)?);
        }
    }
    let mut data = Vec::new();
    for item in spec.list("data")? {
        let f = item.field();
        warnings.extend(f.check(&["secretKey", "remoteRef", "sourceRef"], &[])?);
        let remote = f
            .get("remoteRef")
            .ok_or_else(|| f.error("`remoteRef` is required"))?;
        data.push(DataItem {
            secret_key: f.required("secretKey")?.to_owned(),
            remote: remote_ref(remote.field(), warnings)?,
            store: source_ref(f)?,
            line: f.line(),
            path: f.path().to_owned(),
        });
    }
    let mut data_from = Vec::new();
    for item in spec.list("dataFrom")? {
        let f = item.field();
        warnings.extend(f.check(&["extract", "find", "rewrite", "sourceRef"], &[])?);
        let source = match (f.get("extract"), f.get("find")) {
            (Some(e), None) => Source::Extract(remote_ref(e.field(), warnings)?),
            (None, Some(fd)) => {
                let fd = fd.field();
                warnings.extend(fd.check(
                    &["path", "name", "conversionStrategy", "decodingStrategy"],
                    &[("tags", "finding secrets by tag")],
                )?);
                let name = fd
                    .get("name")
                    .ok_or_else(|| fd.error("`name.regexp` is required (ksec finds by name)"))?;
                let name = name.field();
                let pattern = name.required("regexp")?;
                Source::Find(FindSpec {
                    path: fd.str("path")?.filter(|p| !p.is_empty()).map(str::to_owned),
                    name: super::go_regex(pattern).map_err(|m| name.error(m))?,
                    conversion: conversion(fd)?,
                    decoding: decoding(fd)?,
                })
            }
            (None, None) if f.get("sourceRef").is_some() => {
                source_ref(f)?;
                return Err(f.error("`sourceRef` without `extract` or `find` is not supported"));
            }
            _ => return Err(f.error("expected exactly one of `extract` and `find`")),
        };
        let mut rewrite = Vec::new();
        for r in f.list("rewrite")? {
            let r = r.field();
            r.check(&["regexp", "transform"], &[("merge", "merging rewrites")])?;
            if let Some(re) = r.get("regexp") {
                let re = re.field();
                let source = re.required("source")?;
                rewrite.push(Rewrite::Regexp(
                    super::go_regex(source).map_err(|m| re.error(m))?,
                    re.str("target")?.unwrap_or_default().to_owned(),
                ));
            } else if let Some(t) = r.get("transform") {
                let t = t.field();
                let text = t.required("template")?;
                rewrite.push(Rewrite::Transform(template_text(t, text)?));
            } else {
                return Err(r.error("expected `regexp` or `transform`"));
            }
        }
        data_from.push(DataFromItem {
            source,
            rewrite,
            store: source_ref(f)?,
            line: f.line(),
            path: f.path().to_owned(),
        });
    }
    if store.is_none()
        && (data.iter().any(|d| d.store.is_none()) || data_from.iter().any(|d| d.store.is_none()))
    {
        return Err(spec.error("`secretStoreRef` is required"));
    }
    Ok(ExternalSecret {
        api_version,
        name: meta.required("name")?.to_owned(),
        namespace: meta.str("namespace")?.map(str::to_owned),
        uid: meta.str("uid")?.map(str::to_owned),
        labels: meta.string_map("labels")?,
        annotations: meta.string_map("annotations")?,
        store,
        target,
        creation,
        skip_missing,
        immutable,
        template,
        data,
        data_from,
    })
}

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
    Listing(&'a super::Listing),
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
fn byte_value(j: &Json, n: &super::json::Node, numbers: GoNumbers) -> Zeroizing<Vec<u8>> {
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
fn get_secret_map(remote: &Remote, r: &RemoteRef, vault: bool) -> Result<super::Pairs, String> {
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

/// ESO's `decoding.Decode`.
pub fn decode(bytes: Zeroizing<Vec<u8>>, how: Decoding) -> Result<Zeroizing<Vec<u8>>, String> {
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
            .map_err(|_| "decodingStrategy Base64: the value is not valid base64".to_owned()),
        Decoding::Base64Url => url(&compact()).map(Zeroizing::new).map_err(|_| {
            "decodingStrategy Base64URL: the value is not valid URL-safe base64".to_owned()
        }),
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

fn rewrite_key(key: &str, steps: &[Rewrite]) -> Result<String, String> {
    let mut k = key.to_owned();
    for s in steps {
        k = match s {
            Rewrite::Regexp(re, target) => re.replace_all(&k, target.as_str()).into_owned(),
            Rewrite::Transform(t) => {
                let mut m = BTreeMap::new();
                m.insert("value".to_owned(), Value::str(k.clone()));
                t.render(&Value::Map(m))
                    .map_err(|e| format!("rewrite transform: {e}"))?
                    .to_string()
            }
        };
    }
    Ok(k)
}

fn check_key(key: &str) -> Result<(), String> {
    if key.len() > 253 {
        return Err(format!("key `{key}` is longer than 253 characters"));
    }
    if !crate::k8s::valid_key(key) {
        return Err(format!(
            "key `{key}` is not a valid Secret key ([-._a-zA-Z0-9]+); rewrite or convert it"
        ));
    }
    Ok(())
}

fn null_check(v: &[u8], r: &RemoteRef) -> Result<(), String> {
    if r.fail_on_null && v.contains(&0) {
        return Err(format!(
            "the value of {} contains a NUL byte (nullBytePolicy: Fail)",
            r.key
        ));
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
    let missing_ok = |e: &StoreError| es.skip_missing && e.kind == super::Failure::NotFound;
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
        let (pairs, decoding, conversion): (super::Pairs, Decoding, Conversion) =
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
                        null_check(v, r).map_err(bad_value)?;
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
                rewrite_key(&key, &item.rewrite).map_err(fail)?
            };
            if k.is_empty() {
                continue;
            }
            check_key(&k).map_err(fail)?;
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
        check_key(&item.secret_key).map_err(fail)?;
        let bad_value = |m: String| {
            ItemError::Value(FieldError {
                line: item.line,
                path: item.path.clone(),
                message: m,
            })
        };
        let value = get_secret(remote, item.remote.property.as_deref(), &item.remote.key)
            .map_err(bad_value)?;
        let value = decode(value, item.remote.decoding).map_err(bad_value)?;
        null_check(&value, &item.remote).map_err(bad_value)?;
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
        check_key(k).map_err(|m| {
            ItemError::Field(FieldError {
                line: *line,
                path: format!("spec.target.template.data.{k}"),
                message: m,
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
