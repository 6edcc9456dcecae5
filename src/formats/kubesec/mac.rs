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
use crate::manifest::Section;

/// Builds the MAC's associated data. Entries need not be sorted.
pub fn aad(
    data: &[(&str, &str)],
    string_data: &[(&str, &str)],
    keys: &[KeyId],
) -> Zeroizing<Vec<u8>> {
    let both: Vec<(Section, &str, &str)> = data
        .iter()
        .map(|&(k, v)| (Section::Data, k, v))
        .chain(
            string_data
                .iter()
                .map(|&(k, v)| (Section::StringData, k, v)),
        )
        .collect();
    aad_of(both.len(), |i| both[i], keys)
}

/// [`aad`] of the `len` values `entry` reads by index (section, key, clear
/// value), in any order. Only their indices are sorted: no copy of a key
/// or value is made, and the result is sized once (growing it would leave
/// copies of clear values behind in freed memory).
pub fn aad_of<'a>(
    len: usize,
    entry: impl Fn(usize) -> (Section, &'a str, &'a str),
    keys: &[KeyId],
) -> Zeroizing<Vec<u8>> {
    let rank = |s: Section| u8::from(s == Section::StringData);
    let mut order: Vec<u32> = (0..len as u32).collect();
    order.sort_by(|&a, &b| {
        let ((sa, ka, _), (sb, kb, _)) = (entry(a as usize), entry(b as usize));
        (rank(sa), ka.as_bytes()).cmp(&(rank(sb), kb.as_bytes()))
    });
    let total = (0..len)
        .map(|i| {
            let (_, k, v) = entry(i);
            k.len() + v.len()
        })
        .sum::<usize>()
        + keys.iter().map(|k| k.id.len()).sum::<usize>();
    let mut out = Zeroizing::new(Vec::with_capacity(total));
    for i in order {
        let (_, k, v) = entry(i as usize);
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(v.as_bytes());
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
        assert_eq!(a.capacity(), a.len(), "sized once, never grown");
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
