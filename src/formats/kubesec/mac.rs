//! The document MAC: AES-GCM under the data key with an empty plaintext
//! (GMAC), a random IV, and as associated data every clear value and every
//! key id, so that swapping, deleting or adding a value or a key line is
//! detected.
//!
//! AAD = for each `data` entry in byte-wise key order `key‖value`, then the
//! same for `stringData`, then each key id (without its type) in kubesec's key
//! order. Values are the clear strings as stored (base64 text for `data`).

use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::codec::{self, CodecError, Iv, Token};
use super::footer::kubesec_order;
use crate::keys::{DataKey, KeyId};

/// Builds the MAC's associated data. Entries need not be sorted.
pub fn aad(
    data: &[(&str, &str)],
    string_data: &[(&str, &str)],
    keys: &[KeyId],
) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::new());
    for section in [data, string_data] {
        let mut sorted: Vec<&(&str, &str)> = section.iter().collect();
        sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (k, v) in sorted {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(v.as_bytes());
        }
    }
    let mut ordered: Vec<&KeyId> = keys.iter().collect();
    kubesec_order(&mut ordered, |k| k);
    for k in ordered {
        out.extend_from_slice(k.id.as_bytes());
    }
    out
}

/// Computes the MAC token (`iv.tag`) over `aad` with the given IV.
pub fn compute(key: &DataKey, aad: &[u8], iv: &Iv) -> String {
    codec::seal_raw(key, iv, &[], aad).render()
}

/// Verifies a MAC token against `aad`.
pub fn verify(key: &DataKey, aad: &[u8], mac: &str) -> Result<(), CodecError> {
    let token = Token::parse(mac)?;
    if !token.ciphertext.is_empty() {
        return Err(CodecError::Malformed);
    }
    let expected = codec::seal_raw(key, &token.iv, &[], aad);
    if bool::from(expected.tag.ct_eq(&token.tag)) {
        Ok(())
    } else {
        Err(CodecError::Authentication)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyType;

    #[test]
    fn aad_layout() {
        let keys = vec![
            KeyId {
                kind: KeyType::Aws,
                id: "arn".into(),
            },
            KeyId {
                kind: KeyType::Pgp,
                id: "FPR".into(),
            },
        ];
        let a = aad(&[("b", "2"), ("a", "1")], &[("s", "x")], &keys);
        // pgp "FPR" < aws "arn" by type, and "FPR" < "arn" byte-wise: pgp moves first.
        assert_eq!(&a[..], b"a1b2sxFPRarn");
    }

    #[test]
    fn verify_detects_changes() {
        let k = DataKey::from_bytes([9; 32]);
        let mac = compute(&k, b"abc", &codec::random_iv());
        assert!(verify(&k, b"abc", &mac).is_ok());
        assert_eq!(verify(&k, b"abd", &mac), Err(CodecError::Authentication));
        assert_eq!(
            verify(&DataKey::from_bytes([8; 32]), b"abc", &mac),
            Err(CodecError::Authentication)
        );
    }
}
