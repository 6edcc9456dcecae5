//! ksec's binding for sops files (`ksec_binding` in the metadata, a field
//! sops ignores and drops when it rewrites a file): a MAC under the data
//! key over the path of every value (nulls included) in every document.
//!
//! sops' own MAC covers the values, clear ones included, and each
//! encrypted value's path is its associated data, so renamed or moved
//! encrypted values, and edited names and namespaces, are caught already.
//! What it leaves out are the keys of clear values: `namespace:` renamed
//! to `namespacex:` sends the Secret to the default namespace, and sops
//! accepts it. The binding catches that.

use zeroize::Zeroizing;

use super::walk::{Leaf, What};
use crate::formats::kubesec::codec::{self, CodecError};
use crate::formats::kubesec::mac;
use crate::keys::DataKey;

/// The associated data: every value's document and path, length-prefixed.
pub fn aad(leaves: &[Leaf<'_>]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::new());
    let mut field = |b: &[u8]| {
        out.extend_from_slice(&(b.len() as u64).to_be_bytes());
        out.extend_from_slice(b);
    };
    field(b"ksec-sops-bind-v1");
    for l in leaves {
        if let What::Value(_) = l.what {
            field(&(l.doc as u64).to_be_bytes());
            field(&(l.path.len() as u64).to_be_bytes());
            for k in &l.path {
                field(k.as_bytes());
            }
        }
    }
    out
}

/// A new binding.
pub fn compute(dek: &DataKey, leaves: &[Leaf<'_>]) -> String {
    mac::compute(dek, &aad(leaves), &codec::random_iv())
}

/// Checks a binding.
pub fn verify(dek: &DataKey, leaves: &[Leaf<'_>], token: &str) -> Result<(), CodecError> {
    mac::verify(dek, &aad(leaves), token)
}
