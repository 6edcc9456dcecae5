//! The Secret a controller would create, and its YAML: kubectl's field
//! order, maps sorted by key (as the API server stores them), `data`
//! base64-encoded.

use std::collections::BTreeMap;

use sha3::Digest as _;
use zeroize::Zeroizing;

use crate::manifest::scalar::{self, Context};

/// A resolved Secret. Values are zeroed on drop; `Debug` shows keys only.
#[derive(Default)]
pub struct SecretOut {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `metadata.ownerReferences` (only when the ExternalSecret's uid is known).
    pub owner: Option<Owner>,
    /// `type`.
    pub kind: String,
    /// `immutable: true`.
    pub immutable: bool,
    /// `data`, decoded.
    pub data: BTreeMap<String, Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for SecretOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretOut")
            .field("name", &self.name)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// An owner reference to the ExternalSecret.
#[derive(Debug, Clone)]
pub struct Owner {
    /// `external-secrets.io/v1`, `kubernetes-client.io/v1`.
    pub api_version: String,
    /// `ExternalSecret`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
    /// ESO sets `blockOwnerDeletion: true`; KES does not.
    pub block_owner_deletion: bool,
}

fn key(k: &str) -> String {
    if scalar::plain_safe(k) {
        k.to_owned()
    } else {
        scalar::double_quoted(k)
    }
}

fn value(v: &str, indent: usize) -> String {
    scalar::render(
        v,
        &Context {
            flow: false,
            indent,
            newline: "\n",
            line_rest_empty: true,
            header_comment: None,
        },
    )
}

impl SecretOut {
    /// The Secret as YAML, ending with a line break.
    pub fn to_yaml(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::from("apiVersion: v1\nkind: Secret\nmetadata:\n"));
        s.push_str(&format!("  name: {}\n", value(&self.name, 4)));
        if let Some(ns) = &self.namespace {
            s.push_str(&format!("  namespace: {}\n", value(ns, 4)));
        }
        for (title, map) in [("labels", &self.labels), ("annotations", &self.annotations)] {
            if map.is_empty() {
                continue;
            }
            s.push_str(&format!("  {title}:\n"));
            for (k, v) in map {
                s.push_str(&format!("    {}: {}\n", key(k), value(v, 6)));
            }
        }
        if let Some(o) = &self.owner {
            s.push_str("  ownerReferences:\n");
            s.push_str(&format!("  - apiVersion: {}\n", value(&o.api_version, 4)));
            s.push_str(&format!("    kind: {}\n", value(&o.kind, 4)));
            s.push_str(&format!("    name: {}\n", value(&o.name, 4)));
            s.push_str(&format!("    uid: {}\n", value(&o.uid, 4)));
            s.push_str("    controller: true\n");
            if o.block_owner_deletion {
                s.push_str("    blockOwnerDeletion: true\n");
            }
        }
        s.push_str(&format!("type: {}\n", value(&self.kind, 2)));
        if self.immutable {
            s.push_str("immutable: true\n");
        }
        if self.data.is_empty() {
            s.push_str("data: {}\n");
        } else {
            s.push_str("data:\n");
            for (k, v) in &self.data {
                let b64 = crate::k8s::encode_base64(v);
                let rendered = if b64.is_empty() {
                    "\"\"".to_owned()
                } else {
                    b64.to_string()
                };
                s.push_str(&format!("  {}: {rendered}\n", key(k)));
            }
        }
        s
    }
}

/// ESO's `esutils.ObjectHash` of a Secret's data: SHA3-224 (hex) of Go's
/// `fmt.Sprintf("%+v", data)` for a `map[string][]byte` — `map[k:[98 97]
/// …]`, keys sorted bytewise, `map[]` when empty.
pub fn eso_data_hash(data: &BTreeMap<String, Zeroizing<Vec<u8>>>) -> String {
    let mut text = Zeroizing::new(String::from("map["));
    for (i, (k, v)) in data.iter().enumerate() {
        if i > 0 {
            text.push(' ');
        }
        text.push_str(k);
        text.push_str(":[");
        for (j, b) in v.iter().enumerate() {
            if j > 0 {
                text.push(' ');
            }
            text.push_str(&b.to_string());
        }
        text.push(']');
    }
    text.push(']');
    sha3_224_hex(text.as_bytes())
}

/// SHA3-224 of `bytes`, lower-case hex.
pub fn sha3_224_hex(bytes: &[u8]) -> String {
    let d = sha3::Sha3_224::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eso_hashes() {
        // Values from the ESO golden examples (notes, E1).
        assert_eq!(
            sha3_224_hex(b"apps/db"),
            "366940a0bb1765c3baf51df691ce5179c77b40d88cdd8afe4c21c09f"
        );
        let mut data = BTreeMap::new();
        for (k, v) in [
            ("API_token", "t1"),
            ("_prod_app_db_password", "pw1"),
            ("_prod_app_db_user", "u1"),
        ] {
            data.insert(k.to_owned(), Zeroizing::new(v.as_bytes().to_vec()));
        }
        assert_eq!(
            eso_data_hash(&data),
            "98edb5bd91e9930100309a3a8b81824c881450c63e985b1314add21d"
        );
    }

    #[test]
    fn yaml() {
        let mut s = SecretOut {
            name: "db".into(),
            namespace: Some("apps".into()),
            kind: "Opaque".into(),
            ..SecretOut::default()
        };
        s.labels.insert("a/b".into(), "true".into());
        s.data.insert("k".into(), Zeroizing::new(b"v".to_vec()));
        s.data.insert("e".into(), Zeroizing::new(Vec::new()));
        assert_eq!(
            s.to_yaml().as_str(),
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: apps\n  labels:\n    a/b: \"true\"\ntype: Opaque\ndata:\n  e: \"\"\n  k: dg==\n"
        );
    }
}
