//! The hybrid encryption of one SealedSecret value (sealed-secrets
//! `pkg/crypto`), byte for byte:
//!
//! ```text
//! blob = u16be(len(R)) ‖ R ‖ AES-256-GCM(K, nonce = 12 zero bytes, no AAD)(value) ‖ tag
//! R    = RSA-OAEP(hash SHA-256, MGF1-SHA-256, label)(K),  K = 32 random bytes per value
//! ```
//!
//! The zero nonce is safe only because every key encrypts one value. The
//! label binds the value to where it may be opened ([`super::Scope`]):
//! `namespace/name`, `namespace`, or nothing. There is no key id in a blob:
//! opening tries every private key, as the controller does; the first whose
//! OAEP decryption succeeds decides, and a value that then fails AES-GCM is
//! damaged. Pure code: the randomness comes from the caller.

use aes_gcm::aead::{Aead as _, KeyInit as _};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm, Nonce};
use rand::{CryptoRng, RngCore};
use rsa::traits::PublicKeyParts as _;
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Bytes of the AES-GCM tag at the end of every blob.
pub const TAG_LEN: usize = 16;

/// Why a value could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The RSA key is too small for OAEP-SHA-256 of a 32-byte key.
    #[error("the {0}-bit RSA key is too small for RSA-OAEP with SHA-256")]
    KeyTooSmall(usize),
    /// The value is larger than AES-GCM can encrypt under one key.
    #[error("the value is too large to seal")]
    TooLarge,
}

/// Why a blob could not be opened. Never says anything about the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Shorter than its own length prefix says (the controller's
    /// "SealedSecret data is too short").
    #[error("damaged: {len} bytes, too short for a sealed value ({needed} at least)")]
    TooShort {
        /// The blob's length.
        len: usize,
        /// The least it must have.
        needed: usize,
    },
    /// No key opens the session key with this label.
    #[error("no key opens it")]
    NoKey,
    /// A key opened the session key but the value does not verify.
    #[error("damaged: the value does not verify (AES-GCM)")]
    Damaged,
}

fn oaep(label: &str) -> Oaep {
    // The same hash for OAEP and MGF1, as Go's rsa.EncryptOAEP; an empty
    // label is the same as none.
    Oaep::new_with_label::<Sha256, _>(label)
}

/// Seals `value` for `key` under `label`.
pub fn seal<R: RngCore + CryptoRng>(
    key: &RsaPublicKey,
    label: &str,
    value: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, SealError> {
    if value.len() > (1 << 36) {
        return Err(SealError::TooLarge);
    }
    let mut session = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(session.as_mut());
    let wrapped = key
        .encrypt(rng, oaep(label), session.as_ref())
        .map_err(|_| SealError::KeyTooSmall(key.size() * 8))?;
    let len = u16::try_from(wrapped.len()).map_err(|_| SealError::KeyTooSmall(0))?;
    let cipher = Aes256Gcm::new(&(*session).into());
    let sealed = cipher
        .encrypt(&Nonce::default(), value)
        .map_err(|_| SealError::TooLarge)?;
    let mut blob = Vec::with_capacity(2 + wrapped.len() + sealed.len());
    blob.extend_from_slice(&len.to_be_bytes());
    blob.extend_from_slice(&wrapped);
    blob.extend_from_slice(&sealed);
    Ok(blob)
}

/// The RSA part of a blob and the AES-GCM part after it.
pub fn split(blob: &[u8]) -> Result<(&[u8], &[u8]), OpenError> {
    if blob.len() < 2 {
        return Err(OpenError::TooShort {
            len: blob.len(),
            needed: 2,
        });
    }
    let n = usize::from(u16::from_be_bytes([blob[0], blob[1]]));
    if blob.len() < 2 + n {
        return Err(OpenError::TooShort {
            len: blob.len(),
            needed: 2 + n,
        });
    }
    Ok((&blob[2..2 + n], &blob[2 + n..]))
}

/// Opens `blob` with the first of `keys` that can, under `label`; returns
/// the value and the index of that key.
pub fn open<R: RngCore + CryptoRng>(
    keys: &[&RsaPrivateKey],
    label: &str,
    blob: &[u8],
    rng: &mut R,
) -> Result<(Zeroizing<Vec<u8>>, usize), OpenError> {
    let (wrapped, sealed) = split(blob)?;
    for (i, key) in keys.iter().enumerate() {
        if key.size() != wrapped.len() {
            continue;
        }
        // Blinded: the private-key operation's timing does not follow the
        // ciphertext.
        let Ok(session) = key.decrypt_blinded(rng, oaep(label), wrapped) else {
            continue;
        };
        let session = Zeroizing::new(session);
        return gcm_open(&session, sealed).map(|v| (v, i));
    }
    Err(OpenError::NoKey)
}

/// AES-GCM with the zero nonce, for any AES key size Go's `aes.NewCipher`
/// takes (kubeseal always uses 32 bytes).
fn gcm_open(key: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let nonce = Nonce::default();
    let out = match key.len() {
        32 => Aes256Gcm::new(key.into()).decrypt(&nonce, sealed),
        24 => AesGcm::<aes_gcm::aes::Aes192, aes_gcm::aes::cipher::consts::U12>::new(key.into())
            .decrypt(&nonce, sealed),
        16 => Aes128Gcm::new(key.into()).decrypt(&nonce, sealed),
        _ => return Err(OpenError::Damaged),
    };
    out.map(Zeroizing::new).map_err(|_| OpenError::Damaged)
}

/// Whether `blob` can have been sealed for `key`: its RSA part is as long
/// as the modulus and, read as a number, smaller than it. Only the private
/// key can tell for sure.
pub fn fits(key: &RsaPublicKey, blob: &[u8]) -> bool {
    match split(blob) {
        Ok((wrapped, _)) => {
            wrapped.len() == key.size() && rsa::BigUint::from_bytes_be(wrapped) < *key.n()
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let mut rng = rand::rngs::OsRng;
        let key = RsaPrivateKey::new(&mut rng, 1024).unwrap();
        let other = RsaPrivateKey::new(&mut rng, 1024).unwrap();
        let public = key.to_public_key();
        let blob = seal(&public, "ns/name", b"s3cr3t", &mut rng).unwrap();
        assert_eq!(blob.len(), 2 + 128 + 6 + TAG_LEN);
        assert_eq!(&blob[..2], &[0, 128]);
        assert!(fits(&public, &blob));
        let (value, i) = open(&[&other, &key], "ns/name", &blob, &mut rng).unwrap();
        assert_eq!((value.as_slice(), i), (&b"s3cr3t"[..], 1));
        assert_eq!(
            open(&[&key], "ns/other", &blob, &mut rng),
            Err(OpenError::NoKey)
        );
        assert_eq!(
            open(&[&other], "ns/name", &blob, &mut rng),
            Err(OpenError::NoKey)
        );
        let mut bad = blob.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(
            open(&[&key], "ns/name", &bad, &mut rng),
            Err(OpenError::Damaged)
        );
        assert_eq!(
            open(&[&key], "ns/name", &blob[..100], &mut rng),
            Err(OpenError::TooShort {
                len: 100,
                needed: 130
            })
        );
        assert!(matches!(
            open(&[&key], "", &[1], &mut rng),
            Err(OpenError::TooShort { .. })
        ));
        // Empty label = no label; an empty value is fine.
        let blob = seal(&public, "", b"", &mut rng).unwrap();
        assert_eq!(blob.len(), 2 + public.size() + TAG_LEN);
        assert!(open(&[&key], "", &blob, &mut rng).unwrap().0.is_empty());
    }
}
