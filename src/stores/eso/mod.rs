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

mod assemble;

pub use assemble::{Fetched, ItemError, Need, StoreFailure, assemble, decode, needs};

use super::fields::{Field, FieldError};
use super::{AwsAccess, KvVersion, VaultAccess};
use crate::template::Template;

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
            let aws = provider
                .get("aws")
                .ok_or_else(|| provider.error("`aws` must be a mapping of its settings"))?;
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
            let v = provider
                .get("vault")
                .ok_or_else(|| provider.error("`vault` must be a mapping of its settings"))?;
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
                    name: super::go_regex(pattern).map_err(|e| name.error(e.to_string()))?,
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
                    super::go_regex(source).map_err(|e| re.error(e.to_string()))?,
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
