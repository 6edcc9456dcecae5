//! kubernetes-external-secrets (KES, `kubernetes-client.io/v1`, deprecated;
//! last release 8.5.5): the ExternalSecret and the Secret its poller
//! creates.
//!
//! * `backendType`: `secretsManager` (`region`, `roleArn`; `versionStage`,
//!   `versionId`), `systemManager` (`region`, `roleArn`; `key` may carry
//!   `:VERSION`; `path` + `recursive`, keys = the parameters' base names),
//!   `vault` (`kvVersion` 1 or 2; `key` is the full API path, `data/`
//!   included for v2; `VAULT_ADDR`, `VAULT_NAMESPACE` as the controller reads them).
//! * Values: `data[]` (`key`/`name`, `property` as a lodash path,
//!   `isBinary`), `dataFrom` and `dataFromWithOptions` (JSON objects merged
//!   in), in KES's order: `dataFrom` < `dataFromWithOptions` < `data`, later
//!   entries winning. A value that is not JSON where JSON is needed is left
//!   out with a warning, as KES does; a missing property fails.
//! * The Secret: the ExternalSecret's name and namespace, `type`
//!   (`template.type`, else `spec.type`, else `Opaque`), `template`
//!   (`metadata.labels`, `metadata.annotations`, `data`, `stringData`, whose
//!   string leaves are lodash templates: ksec renders `<%= data.KEY %>`,
//!   `<%- … %>`, `${data.KEY}` and `data["KEY"]`, and refuses any other
//!   JavaScript), merged as KES merges (generated `data` wins over
//!   `template.data`) and stored as the API server stores it (`stringData`
//!   folded into `data`, winning); an owner reference when the uid is known.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::eso::{Fetched, ItemError, Need};
use super::fields::{Field, FieldError};
use super::json::{Json, Kind};
use super::lodash;
use super::secret::{Owner, SecretOut};
use super::{AwsAccess, Backend, Find, Get, KvVersion, Remote, VaultAccess, Version};

/// Whether a document is a KES ExternalSecret.
pub fn is_external_secret(api_version: &str, kind: &str) -> bool {
    kind == "ExternalSecret" && api_version == "kubernetes-client.io/v1"
}

/// Which backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BackendType {
    SecretsManager,
    SystemManager,
    Vault,
}

/// One read: a value (`key`) or a path (`path`).
#[derive(Debug, Clone)]
struct Item {
    key: Option<String>,
    path: Option<String>,
    recursive: bool,
    name: Option<String>,
    property: Option<String>,
    binary: bool,
    version_stage: Option<String>,
    version_id: Option<String>,
    line: usize,
    at: String,
}

/// A KES ExternalSecret.
#[derive(Debug)]
pub struct ExternalSecret {
    name: String,
    namespace: Option<String>,
    uid: Option<String>,
    backend: BackendType,
    access: AwsAccess,
    kv: KvVersion,
    /// `dataFrom`, then `dataFromWithOptions`, then `data`.
    items: Vec<(Group, Item)>,
    kind: String,
    labels: Vec<(String, String, usize)>,
    annotations: Vec<(String, String, usize)>,
    template_data: Vec<(String, String)>,
    string_data: Vec<(String, String, usize)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    DataFrom,
    Data,
}

fn item(f: Field<'_>, warnings: &mut Vec<String>, from: bool) -> Result<Item, FieldError> {
    warnings.extend(f.check(
        &[
            "key",
            "name",
            "property",
            "isBinary",
            "versionStage",
            "versionId",
            "path",
            "recursive",
        ],
        &[],
    )?);
    let it = Item {
        key: f.str("key")?.map(str::to_owned),
        path: f.str("path")?.map(str::to_owned),
        recursive: f.bool("recursive")?.unwrap_or(false),
        name: f.str("name")?.map(str::to_owned),
        property: f.str("property")?.map(str::to_owned),
        binary: f.bool("isBinary")?.unwrap_or(false),
        version_stage: f.str("versionStage")?.map(str::to_owned),
        version_id: f.str("versionId")?.map(str::to_owned),
        line: f.line(),
        at: f.path().to_owned(),
    };
    match (&it.key, &it.path) {
        (Some(_), None) if from || it.name.is_some() => Ok(it),
        (Some(_), None) => Err(f.error("`name` is required with `key`")),
        (None, Some(_)) if !from => Ok(it),
        _ => Err(f.error(if from {
            "`key` is required"
        } else {
            "expected `key` and `name`, or `path`"
        })),
    }
}

/// Reads a KES ExternalSecret.
pub fn parse(root: Field<'_>, warnings: &mut Vec<String>) -> Result<ExternalSecret, FieldError> {
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
            "backendType",
            "region",
            "roleArn",
            "data",
            "properties",
            "dataFrom",
            "dataFromWithOptions",
            "template",
            "type",
            "kvVersion",
            "vaultMountPoint",
            "vaultRole",
            "controllerId",
        ],
        &[
            ("keyVaultName", "Azure Key Vault"),
            ("projectId", "GCP Secret Manager"),
        ],
    )?);
    let backend = match spec.required("backendType")? {
        "secretsManager" | "secretManager" => BackendType::SecretsManager,
        "systemManager" => BackendType::SystemManager,
        "vault" => BackendType::Vault,
        other => {
            return Err(spec.error(format!(
                "backendType `{other}` is not supported (ksec reads secretsManager, systemManager and vault)"
            )));
        }
    };
    let kv = match spec.int("kvVersion")?.unwrap_or(2) {
        1 => KvVersion::V1,
        2 => KvVersion::V2,
        other => return Err(spec.error(format!("kvVersion {other}: expected 1 or 2"))),
    };
    let mut items = Vec::new();
    for key in spec.list("dataFrom")? {
        let f = key.field();
        items.push((
            Group::DataFrom,
            Item {
                key: Some(f.as_str()?.to_owned()),
                path: None,
                recursive: false,
                name: None,
                property: None,
                binary: false,
                version_stage: None,
                version_id: None,
                line: f.line(),
                at: f.path().to_owned(),
            },
        ));
    }
    for o in spec.list("dataFromWithOptions")? {
        let mut it = item(o.field(), warnings, true)?;
        it.binary = false; // KES ignores isBinary here
        items.push((Group::DataFrom, it));
    }
    let data_key = if spec.get("data").is_some() {
        "data"
    } else {
        "properties"
    };
    for o in spec.list(data_key)? {
        let it = item(o.field(), warnings, false)?;
        if it.path.is_some() && backend != BackendType::SystemManager {
            return Err(o
                .field()
                .error("`path` works with backendType systemManager only"));
        }
        items.push((Group::Data, it));
    }
    let mut kind = spec.str("type")?.map(str::to_owned);
    let (mut labels, mut annotations, mut template_data, mut string_data) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    if let Some(t) = spec.get("template") {
        let t = t.field();
        t.check(
            &["type", "metadata", "data", "stringData"],
            &[("immutable", "only type, metadata.labels, metadata.annotations, data and stringData are rendered")],
        )?;
        if let Some(tk) = t.str("type")?.filter(|s| !s.is_empty()) {
            kind = Some(tk.to_owned());
        }
        if let Some(m) = t.get("metadata") {
            let m = m.field();
            m.check(
                &["labels", "annotations", "name"],
                &[(
                    "namespace",
                    "the Secret goes to the ExternalSecret's namespace",
                )],
            )?;
            labels = m
                .string_map("labels")?
                .into_iter()
                .map(|(k, v)| (k, v, m.line()))
                .collect();
            annotations = m
                .string_map("annotations")?
                .into_iter()
                .map(|(k, v)| (k, v, m.line()))
                .collect();
        }
        template_data = t.string_map("data")?;
        string_data = t
            .string_map("stringData")?
            .into_iter()
            .map(|(k, v)| (k, v, t.line()))
            .collect();
    }
    Ok(ExternalSecret {
        name: meta.required("name")?.to_owned(),
        namespace: meta.str("namespace")?.map(str::to_owned),
        uid: meta.str("uid")?.map(str::to_owned),
        backend,
        access: AwsAccess {
            region: spec.str("region")?.map(str::to_owned),
            role: spec.str("roleArn")?.map(str::to_owned),
        },
        kv,
        items,
        kind: kind.unwrap_or_else(|| "Opaque".into()),
        labels,
        annotations,
        template_data,
        string_data,
    })
}

fn backend_of(es: &ExternalSecret) -> Backend {
    match es.backend {
        BackendType::SecretsManager => Backend::SecretsManager(es.access.clone()),
        BackendType::SystemManager => Backend::ParameterStore(es.access.clone()),
        BackendType::Vault => Backend::Vault(VaultAccess {
            server: None,
            namespace: None,
            mount: String::new(),
            kv: es.kv,
        }),
    }
}

/// The remote reads of `es`, item by item.
pub fn needs(es: &ExternalSecret) -> Vec<Need> {
    let b = backend_of(es);
    es.items
        .iter()
        .map(|(_, it)| match (&it.key, &it.path) {
            (Some(key), _) => {
                let version = match (es.backend, &it.version_id, &it.version_stage) {
                    (BackendType::SecretsManager, Some(id), _) => Version::Id(id.clone()),
                    (BackendType::SecretsManager, None, Some(stage)) => {
                        Version::Named(stage.clone())
                    }
                    _ => Version::Current,
                };
                Need::Get(
                    b.clone(),
                    Get {
                        key: key.clone(),
                        version,
                    },
                )
            }
            (None, Some(path)) => Need::Find(
                b.clone(),
                Find {
                    path: Some(path.clone()),
                    name: None,
                    recursive: it.recursive,
                },
            ),
            (None, None) => unreachable!("checked when parsed"),
        })
        .collect()
}

/// A value as KES's backends hand it on: a string, or a Buffer.
enum JsValue {
    Text(Zeroizing<String>),
    Buffer(Zeroizing<Vec<u8>>),
}

fn js_value(r: &Remote) -> JsValue {
    match r {
        Remote::Text(t) => JsValue::Text(t.clone()),
        Remote::Binary(b) => JsValue::Buffer(b.clone()),
        // `JSON.stringify(resp.data.data)`.
        Remote::Kv(j) => {
            let mut s = Zeroizing::new(String::new());
            j.js_stringify(j.root(), &mut s);
            JsValue::Text(s)
        }
    }
}

fn parse_json(v: &JsValue) -> Option<Json> {
    let text = match v {
        JsValue::Text(t) => t.clone(),
        JsValue::Buffer(b) => Zeroizing::new(String::from_utf8_lossy(b).into_owned()),
    };
    Json::parse(text).ok()
}

/// Node's lenient base64 decoder (`Buffer.from(s, 'base64')`): both
/// alphabets, other characters skipped, stops at `=`.
fn node_base64(s: &str) -> Zeroizing<Vec<u8>> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Zeroizing::new(Vec::with_capacity(s.len() * 3 / 4));
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => continue,
        };
        bits = (bits << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

/// Why a lodash template cannot be rendered without running JavaScript.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `${` or `<%` without its end.
    #[error("an unclosed `{0}`")]
    Unclosed(&'static str),
    /// `<% code %>`: a scriptlet.
    #[error("`<%{0}%>` runs JavaScript, which ksec does not; it renders `<%= data.KEY %>`")]
    Scriptlet(String),
    /// An expression other than a `data` member.
    #[error(
        "`{0}` is JavaScript that ksec does not run; it renders `data.KEY` and `data[\"KEY\"]`"
    )]
    Expression(String),
}

/// The value of a lodash template string, or why it cannot be rendered.
fn render(text: &str, data: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    let mut out = String::new();
    let mut rest = text;
    loop {
        let lodash = rest.find("<%");
        let es = rest.find("${");
        let (at, open) = match (lodash, es) {
            (None, None) => {
                out.push_str(rest);
                return Ok(out);
            }
            (Some(a), Some(b)) if b < a => (b, "${"),
            (Some(a), _) => (a, "<%"),
            (None, Some(b)) => (b, "${"),
        };
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let (expr, escape, len) = if open == "${" {
            let end = after.find('}').ok_or(TemplateError::Unclosed("${"))?;
            (&after[..end], false, end + 1)
        } else {
            let end = after.find("%>").ok_or(TemplateError::Unclosed("<%"))?;
            let inner = &after[..end];
            match inner.chars().next() {
                Some('=') => (&inner[1..], false, end + 2),
                Some('-') => (&inner[1..], true, end + 2),
                _ => {
                    return Err(TemplateError::Scriptlet(inner.to_owned()));
                }
            }
        };
        let value = lookup(expr.trim(), data)?;
        if escape {
            for c in value.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '"' => out.push_str("&quot;"),
                    '\'' => out.push_str("&#39;"),
                    c => out.push(c),
                }
            }
        } else {
            out.push_str(&value);
        }
        rest = &after[len..];
    }
}

/// `data.KEY`, `data["KEY"]`, `data['KEY']`; a missing key renders empty.
fn lookup(expr: &str, data: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    let key = if let Some(k) = expr.strip_prefix("data.") {
        (!k.is_empty()
            && k.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '$'))
        .then(|| k.to_owned())
    } else if let Some(inner) = expr.strip_prefix("data[").and_then(|r| r.strip_suffix(']')) {
        let inner = inner.trim();
        ["\"", "'"].iter().find_map(|q| {
            inner
                .strip_prefix(q)
                .and_then(|r| r.strip_suffix(q))
                .filter(|k| !k.contains(['"', '\'', '\\']))
                .map(str::to_owned)
        })
    } else {
        None
    };
    match key {
        Some(k) => Ok(data.get(&k).cloned().unwrap_or_default()),
        None => Err(TemplateError::Expression(expr.to_owned())),
    }
}

/// Assembles the Secret from fetched values (in the order of [`needs`]);
/// `warnings` gets the entries KES would leave out.
pub fn assemble(
    es: &ExternalSecret,
    fetched: &[Fetched<'_>],
    warnings: &mut Vec<String>,
) -> Result<SecretOut, ItemError> {
    let backend = backend_of(es);
    let mut data: BTreeMap<String, Zeroizing<Vec<u8>>> = BTreeMap::new();
    for ((group, it), got) in es.items.iter().zip(fetched) {
        let fail = |m: String| {
            ItemError::Field(FieldError {
                line: it.line,
                path: it.at.clone(),
                message: m,
            })
        };
        let store_err = |e: &super::StoreError| ItemError::store(it.line, &it.at, &backend, e);
        if let Fetched::Listing(l) = got {
            let list = l.as_ref().map_err(store_err)?;
            for (name, v) in list {
                let base = name.rsplit('/').next().unwrap_or(name).to_owned();
                data.insert(base, v.bytes());
            }
            continue;
        }
        let Fetched::Value(v) = got else {
            unreachable!()
        };
        let value = js_value(v.as_ref().map_err(store_err)?);
        let key = it.key.as_deref().unwrap_or_default();
        if *group == Group::DataFrom {
            let Some(doc) = parse_json(&value) else {
                warnings.push(format!(
                    "{}: the value of {key} is not JSON; left out, as KES does",
                    it.at
                ));
                continue;
            };
            if !matches!(doc.root().kind, Kind::Object(_)) {
                return Err(fail(format!(
                    "the value of {key} is JSON but not an object"
                )));
            }
            for (k, n) in super::json::js_members(doc.root()) {
                data.insert(
                    k.to_owned(),
                    lodash::to_bytes(&doc, &lodash::Found::Node(n)),
                );
            }
            continue;
        }
        let name = it.name.clone().unwrap_or_default();
        let mut bytes = match &it.property {
            None => match value {
                JsValue::Text(t) if it.binary => node_base64(&t),
                JsValue::Text(t) => Zeroizing::new(t.as_bytes().to_vec()),
                JsValue::Buffer(b) => b,
            },
            Some(p) => {
                let Some(doc) = parse_json(&value) else {
                    warnings.push(format!(
                        "{}: the value of {key} is not JSON, so property `{p}` cannot be read; left out, as KES does",
                        it.at
                    ));
                    continue;
                };
                let found = lodash::get(&doc, p).ok_or_else(|| {
                    ItemError::Value(FieldError {
                        line: it.line,
                        path: it.at.clone(),
                        message: format!("could not find property {p} in {key}"),
                    })
                })?;
                match (&found, it.binary) {
                    (lodash::Found::Node(n), true) if matches!(n.kind, Kind::String) => {
                        node_base64(&doc.string(n))
                    }
                    _ => lodash::to_bytes(&doc, &found),
                }
            }
        };
        data.insert(name, std::mem::take(&mut bytes));
    }
    // The template sees values decoded as Node's 'ascii' (high bit cleared).
    let view: BTreeMap<String, String> = data
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().map(|b| char::from(b & 0x7f)).collect()))
        .collect();
    let tpl = |what: &str, text: &str, line: usize| {
        render(text, &view).map_err(|m| {
            ItemError::Field(FieldError {
                line,
                path: format!("spec.template.{what}"),
                message: m.to_string(),
            })
        })
    };
    let mut secret = SecretOut {
        name: es.name.clone(),
        namespace: es.namespace.clone(),
        kind: es.kind.clone(),
        ..SecretOut::default()
    };
    for (k, v, line) in &es.labels {
        secret
            .labels
            .insert(k.clone(), tpl(&format!("metadata.labels.{k}"), v, *line)?);
    }
    for (k, v, line) in &es.annotations {
        secret.annotations.insert(
            k.clone(),
            tpl(&format!("metadata.annotations.{k}"), v, *line)?,
        );
    }
    // `_.merge(template, generated)`: generated data wins over template.data.
    for (k, v) in &es.template_data {
        if data.contains_key(k) {
            continue;
        }
        let v = tpl(&format!("data.{k}"), v, 0)?;
        let decoded = crate::k8s::decode_base64(&v).ok_or_else(|| {
            ItemError::Field(FieldError {
                line: 0,
                path: format!("spec.template.data.{k}"),
                message: "not base64 (template data values must be, as in a Secret's data)".into(),
            })
        })?;
        secret.data.insert(k.clone(), decoded);
    }
    secret.data.extend(data);
    // The API server folds stringData into data, stringData winning.
    for (k, v, line) in &es.string_data {
        let text = tpl(&format!("stringData.{k}"), v, *line)?;
        secret
            .data
            .insert(k.clone(), Zeroizing::new(text.into_bytes()));
    }
    for k in secret.data.keys() {
        if !crate::k8s::valid_key(k) {
            return Err(ItemError::Field(FieldError {
                line: 0,
                path: "spec".into(),
                message: format!("key `{k}` is not a valid Secret key ([-._a-zA-Z0-9]+)"),
            }));
        }
    }
    secret.owner = es.uid.clone().map(|uid| Owner {
        api_version: "kubernetes-client.io/v1".into(),
        kind: "ExternalSecret".into(),
        name: es.name.clone(),
        uid,
        block_owner_deletion: false,
    });
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lodash_templates() {
        let mut d = BTreeMap::new();
        d.insert("username".to_owned(), "admin".to_owned());
        d.insert("a-b".to_owned(), "<x>".to_owned());
        assert_eq!(render("u=<%= data.username %>", &d).unwrap(), "u=admin");
        assert_eq!(
            render("${data.username}/<%-data[\"a-b\"]%>", &d).unwrap(),
            "admin/&lt;x&gt;"
        );
        assert_eq!(render("<%= data.nope %>|", &d).unwrap(), "|");
        assert_eq!(
            render("<% if (x) { %>", &d),
            Err(TemplateError::Scriptlet(" if (x) { ".into()))
        );
        assert_eq!(
            render("<%= yaml.dump(data) %>", &d),
            Err(TemplateError::Expression("yaml.dump(data)".into()))
        );
        assert_eq!(render("${data.a", &d), Err(TemplateError::Unclosed("${")));
        assert_eq!(node_base64("AAH/").to_vec(), vec![0, 1, 255]);
        assert_eq!(node_base64("AA H_\n").to_vec(), vec![0, 1, 255]);
    }
}
