//! SealedSecrets (bitnami-labs/sealed-secrets), offline: seal Secrets for a
//! controller's certificate, open SealedSecrets with the controller's
//! backed-up private keys, and re-seal them for a new key — without a
//! cluster. The wire format is the controller's, byte for byte
//! ([`crypto`]); the objects are what kubeseal writes and the controller
//! reads:
//!
//! * a `bitnami.com/v1alpha1` `SealedSecret` whose `metadata` holds only
//!   `name`, `namespace` and the scope annotation, and whose `spec` holds
//!   `template` (the Secret's metadata without server fields and
//!   last-applied copies, its `type` and `immutable`) and `encryptedData`
//!   (one blob per value; `data` and `stringData` both, `stringData`
//!   winning as on the API server);
//! * the scope decides the RSA-OAEP label ([`Scope::label`]); the
//!   controller reads it from the SealedSecret's **top-level**
//!   annotations, so that is where ksec reads it too;
//! * opening gives the Secret the controller would create: the template's
//!   metadata with the SealedSecret's name and namespace, every value, and
//!   `template.data` rendered (Go templates, the subset
//!   [`crate::template`] implements; anything else is refused, not guessed).
//!
//! Deviations from kubeseal, each on purpose (README, "SealedSecrets"):
//! an explicit `--scope strict` also downgrades a Secret annotated
//! namespace- or cluster-wide; `--merge-into` seals for the target's scope
//! (kubeseal uses the input's, which the controller then cannot open);
//! unsealed Secrets carry no `ownerReferences` (offline there is no uid,
//! and an owner would let the garbage collector delete the Secret with its
//! SealedSecret).
//!
//! Built on [`crate::pipeline`]: inputs that are encrypted (kubesec, or any
//! format ksec reads) are opened in memory first, and `unseal --encrypt`
//! seals its result through the same pipeline, so clear text never touches
//! the disk on the way between the two systems. Nothing here prints.

pub mod cert;
pub mod crypto;
pub mod emit;
pub mod inspect;
pub mod merge;
pub mod object;
pub mod pem;
pub mod recovery;
pub mod replace;
pub mod seal;
mod secrets;
pub mod unseal;

use std::collections::BTreeMap;

pub use cert::Certificate;
pub use merge::merge_into;
pub use recovery::{RecoveryKey, RecoveryKeys};
pub use seal::{SealOptions, raw_label, seal_streams, seal_value};
pub use unseal::{UnsealOptions, Unsealed, reseal_streams, unseal_streams};

/// `apiVersion` of SealedSecrets.
pub const API_VERSION: &str = "bitnami.com/v1alpha1";
/// `kind` of SealedSecrets.
pub const KIND: &str = "SealedSecret";
/// The annotation for cluster-wide scope (value `"true"`).
pub const CLUSTER_WIDE: &str = "sealedsecrets.bitnami.com/cluster-wide";
/// The annotation for namespace-wide scope (value `"true"`).
pub const NAMESPACE_WIDE: &str = "sealedsecrets.bitnami.com/namespace-wide";

/// Where a sealed value may be opened: it decides the OAEP label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only as the same name in the same namespace: label `namespace/name`.
    Strict,
    /// Under any name in the same namespace: label `namespace`.
    NamespaceWide,
    /// Anywhere: empty label.
    ClusterWide,
}

impl Scope {
    /// `strict`, `namespace-wide`, `cluster-wide` (kubeseal's `--scope` values).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Strict => "strict",
            Scope::NamespaceWide => "namespace-wide",
            Scope::ClusterWide => "cluster-wide",
        }
    }

    /// Parses [`Scope::as_str`].
    pub fn parse(s: &str) -> Option<Scope> {
        [Scope::Strict, Scope::NamespaceWide, Scope::ClusterWide]
            .into_iter()
            .find(|x| x.as_str() == s)
    }

    /// The annotation that selects it (strict has none).
    pub fn annotation(self) -> Option<&'static str> {
        match self {
            Scope::Strict => None,
            Scope::NamespaceWide => Some(NAMESPACE_WIDE),
            Scope::ClusterWide => Some(CLUSTER_WIDE),
        }
    }

    /// The RSA-OAEP label (sealed-secrets `EncryptionLabel`).
    pub fn label(self, namespace: &str, name: &str) -> String {
        match self {
            Scope::Strict => format!("{namespace}/{name}"),
            Scope::NamespaceWide => namespace.to_owned(),
            Scope::ClusterWide => String::new(),
        }
    }

    /// The scope annotations select: cluster-wide first, then
    /// namespace-wide, each only when exactly `"true"` (as the controller).
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Scope {
        let on = |k: &str| annotations.get(k).is_some_and(|v| v == "true");
        if on(CLUSTER_WIDE) {
            Scope::ClusterWide
        } else if on(NAMESPACE_WIDE) {
            Scope::NamespaceWide
        } else {
            Scope::Strict
        }
    }
}

/// How sealed objects are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// YAML, keys sorted (as kubeseal `-o yaml`).
    #[default]
    Yaml,
    /// JSON, Go's field order (as kubeseal `-o json`).
    Json,
}

/// Metadata fields the API server sets; never carried into a template or an
/// unsealed Secret.
pub const SERVER_FIELDS: &[&str] = &[
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "ownerReferences",
];

/// Annotations that hold a clear copy of the whole object (client-side
/// apply); dropped from templates, as kubeseal does.
pub const LAST_APPLIED: &[&str] = &[
    crate::manifest::LAST_APPLIED,
    "kubecfg.ksonnet.io/last-applied-configuration",
];

/// ObjectMeta's fields in Go's order (JSON field order).
const OBJECT_META_ORDER: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// ObjectMeta as a [`emit::Doc`] in Go's field order; fields ObjectMeta
/// does not have are left out (the controller's decoder drops them too).
pub fn object_meta(meta: &serde_json::Map<String, serde_json::Value>) -> emit::Doc {
    emit::Doc::Map(
        OBJECT_META_ORDER
            .iter()
            .filter_map(|k| {
                meta.get(*k)
                    .map(|v| ((*k).to_owned(), emit::Doc::from_json(v)))
            })
            .collect(),
    )
}

/// Metadata without server fields, null fields, last-applied copies and
/// (when empty) annotations: what goes into a template or an unsealed Secret.
pub fn clean_meta(
    meta: &serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut out: serde_json::Map<String, serde_json::Value> = meta
        .iter()
        .filter(|(k, v)| !SERVER_FIELDS.contains(&k.as_str()) && !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(serde_json::Value::Object(a)) = out.get_mut("annotations") {
        for k in LAST_APPLIED {
            a.remove(*k);
        }
        if a.is_empty() {
            out.remove("annotations");
        }
    }
    if matches!(out.get("labels"), Some(serde_json::Value::Object(l)) if l.is_empty()) {
        out.remove("labels");
    }
    out
}

/// `f` applied to every item, in order, on every core ([`crate::par`]):
/// each value costs an RSA operation (a private-key one takes milliseconds
/// at 4,096 bits), and values are independent. The first error in item
/// order is returned.
pub fn parallel_map<T: Sync, U: Send, E: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<U, E> + Sync,
) -> Result<Vec<U>, E> {
    crate::par::map(items, 4, f).into_iter().collect()
}

/// Wipes a stream that was read from clear text: its text and the values
/// the locator copied out of it.
pub fn wipe_stream(stream: &mut crate::manifest::Stream) {
    use zeroize::Zeroize as _;
    stream.text.zeroize();
    for doc in &mut stream.docs {
        for site in &mut doc.sites {
            site.wipe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_scopes() {
        assert_eq!(Scope::Strict.label("myns", "db"), "myns/db");
        assert_eq!(Scope::NamespaceWide.label("myns", "db"), "myns");
        assert_eq!(Scope::ClusterWide.label("myns", "db"), "");
        let mut a = BTreeMap::new();
        a.insert(NAMESPACE_WIDE.to_owned(), "true".to_owned());
        assert_eq!(Scope::from_annotations(&a), Scope::NamespaceWide);
        a.insert(CLUSTER_WIDE.to_owned(), "True".to_owned());
        assert_eq!(Scope::from_annotations(&a), Scope::NamespaceWide);
        a.insert(CLUSTER_WIDE.to_owned(), "true".to_owned());
        assert_eq!(Scope::from_annotations(&a), Scope::ClusterWide);
        assert_eq!(Scope::parse("namespace-wide"), Some(Scope::NamespaceWide));
        assert_eq!(Scope::parse("wide"), None);
    }

    #[test]
    fn parallel_map_keeps_order_and_the_first_error() {
        let items: Vec<u32> = (0..100).collect();
        let doubled = parallel_map(&items, |i| Ok::<_, u32>(i * 2)).unwrap();
        assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        let err = parallel_map(&items, |&i| if i % 30 == 29 { Err(i) } else { Ok(i) });
        assert_eq!(err, Err(29));
    }
}
