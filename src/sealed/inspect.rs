//! What `introspect` shows and `check` finds about SealedSecrets, without
//! opening them (with recovery keys, `introspect` also says which opens
//! them).

use super::crypto::{self, OpenError};
use super::object::{self, SealedSecret};
use super::{Certificate, RecoveryKeys, Scope, unseal};
use crate::error::{Error, Exit, Result};
use crate::k8s;
use crate::manifest::{Stream, tree};
use crate::pipeline;

/// One SealedSecret, described.
#[derive(Debug, Clone)]
pub struct SealedInfo {
    /// 1-based top-level document.
    pub document: usize,
    /// `items[i]` path, empty for a document.
    pub item: String,
    /// 1-based line.
    pub line: usize,
    /// `metadata.name`.
    pub name: Option<String>,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// Its scope (from the top-level annotations), when it reads.
    pub scope: Option<Scope>,
    /// Its label, when it can be known.
    pub label: Option<String>,
    /// `encryptedData` keys.
    pub values: Vec<String>,
    /// `template.data` keys.
    pub templated: Vec<String>,
    /// The RSA key size its first value was sealed for.
    pub key_bits: Option<usize>,
    /// Why it does not read, if it does not.
    pub problem: Option<String>,
    /// With recovery keys: which opens it (`None`: none of them does).
    pub opens_with: Option<Option<String>>,
    /// With certificates: whether its values can have been sealed for each.
    pub certs: Vec<(String, bool)>,
}

/// Describes every SealedSecret of `stream`. With `keys`, the first value
/// of each is opened to tell which key holds it; with `certs`, each is
/// checked for whether its values fit the certificate's key.
pub fn describe(
    stream: &Stream,
    keys: Option<&RecoveryKeys>,
    certs: &[(String, Certificate)],
) -> Result<Vec<SealedInfo>> {
    let file = stream.name.as_str();
    let roots =
        tree::parse_stream_lenient(&stream.text).map_err(|e| pipeline::locate_error(file, &e))?;
    let mut out = Vec::new();
    for site in object::find(&roots, &object::is_sealed_secret) {
        let at = site.location(file);
        let meta = |k: &str| {
            site.node
                .get("metadata")
                .and_then(|m| m.get(k))
                .and_then(object::text)
                .map(str::to_owned)
        };
        let mut info = SealedInfo {
            document: site.document,
            item: crate::manifest::item_path(&site.item),
            line: site.node.line,
            name: meta("name"),
            namespace: meta("namespace"),
            scope: None,
            label: None,
            values: Vec::new(),
            templated: Vec::new(),
            key_bits: None,
            problem: None,
            opens_with: None,
            certs: Vec::new(),
        };
        let ss = match object::read_sealed(site.node, &at) {
            Ok(ss) => ss,
            Err(e) => {
                info.problem = Some(e.describe());
                out.push(info);
                continue;
            }
        };
        info.scope = Some(ss.scope);
        info.label = ss.label(None);
        info.values = ss.values.iter().map(|v| v.key.clone()).collect();
        info.templated = ss
            .template
            .and_then(|t| t.get("data"))
            .and_then(|d| object::string_map(d).ok())
            .map(|m| m.into_keys().collect())
            .unwrap_or_default();
        let first = ss.values.first().and_then(|v| k8s::decode_base64(&v.text));
        if let Some(blob) = &first {
            info.key_bits = crypto::split(blob).ok().map(|(r, _)| r.len() * 8);
            info.certs = certs
                .iter()
                .map(|(name, c)| (name.clone(), crypto::fits(c.key(), blob)))
                .collect();
        }
        if let (Some(keys), Some(v), Some(label)) = (keys, ss.values.first(), &info.label) {
            info.opens_with = Some(match unseal::open_value(&ss, v, label, keys, &at) {
                Ok((_, i)) => Some(keys.0[i].origin.clone()),
                Err(_) => None,
            });
        }
        out.push(info);
    }
    Ok(out)
}

/// Every problem of the stream's SealedSecrets that `check` reports: ones
/// that do not read, and values that are not sealed values at all.
pub fn lint(stream: &Stream) -> Vec<Error> {
    let file = stream.name.as_str();
    let Ok(roots) = tree::parse_stream_lenient(&stream.text) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for site in object::find(&roots, &object::is_sealed_secret) {
        let at = site.location(file);
        match object::read_sealed(site.node, &at) {
            Ok(ss) => found.extend(value_problems(&ss, &at)),
            Err(e) => found.push(e),
        }
    }
    found
}

fn value_problems(ss: &SealedSecret<'_>, at: &crate::error::Location) -> Vec<Error> {
    let mut found = Vec::new();
    for v in &ss.values {
        let at = at
            .clone()
            .line(v.node.line)
            .key(format!("spec.encryptedData.{}", v.key));
        let damaged = |why: String| {
            Error::new(Exit::Input, "sealed-damaged", why)
                .at(at.clone())
                .hint("seal the value again (ksec seal or kubeseal)")
        };
        let Some(blob) = k8s::decode_base64(&v.text) else {
            found.push(damaged("is not a sealed value (not base64)".into()));
            continue;
        };
        match crypto::split(&blob) {
            Err(e @ OpenError::TooShort { .. }) => found.push(damaged(e.to_string())),
            Err(e) => found.push(damaged(e.to_string())),
            Ok((rsa, rest)) if rsa.len() < 128 || rest.len() < crypto::TAG_LEN => {
                found.push(damaged(format!(
                    "damaged: {} bytes, too short for a sealed value",
                    blob.len()
                )));
            }
            Ok(_) => {}
        }
    }
    found
}
