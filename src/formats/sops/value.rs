//! SOPS values: `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`.
//!
//! AES-256-GCM under the file's data key with a **32-byte** nonce, the
//! value's path as associated data (`data:password:`, see [`aad`]), and the
//! plaintext bytes of its type ([`Kind`]). `data`, `iv` and `tag` are
//! standard base64 with padding. An empty plaintext is never encrypted: it
//! stays `""`. Pinned by sops' own known-answer vector (`aes/cipher_test.go`)
//! and by values of files the real sops 3.11 wrote (`testdata/sops/`).

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore as _;
use zeroize::Zeroizing;

use crate::keys::DataKey;

/// AES-256-GCM with sops' 32-byte nonce.
type Cipher = AesGcm<Aes256, U32>;

/// The nonce length sops writes.
pub const IV_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// What a value's plaintext bytes mean (`type:` of the ENC string). Not
/// authenticated by sops: the MAC covers the plaintext bytes only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A string.
    Str,
    /// An integer, decimal.
    Int,
    /// A float, Go's shortest `'f'` form.
    Float,
    /// `True` / `False`.
    Bool,
    /// RFC 3339 with nanoseconds.
    Time,
    /// Raw bytes (written by old sops versions only).
    Bytes,
    /// A comment's text (after the `#`).
    Comment,
}

impl Kind {
    /// The `type:` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Str => "str",
            Kind::Int => "int",
            Kind::Float => "float",
            Kind::Bool => "bool",
            Kind::Time => "time",
            Kind::Bytes => "bytes",
            Kind::Comment => "comment",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "str" => Kind::Str,
            "int" => Kind::Int,
            "float" => Kind::Float,
            "bool" => Kind::Bool,
            "time" => Kind::Time,
            "bytes" => Kind::Bytes,
            "comment" => Kind::Comment,
            _ => return None,
        })
    }
}

/// Why an ENC string could not be read or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Not `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` with valid base64.
    #[error("not a sops encrypted value (ENC[AES256_GCM,data:…,iv:…,tag:…,type:…])")]
    Malformed,
    /// A `type:` that sops does not know.
    #[error("unknown value type `{0}`")]
    UnknownType(String),
    /// The tag did not verify: wrong data key, another path, or tampering.
    #[error("the value does not authenticate (changed, moved to another key, or another data key)")]
    Authentication,
}

/// A parsed ENC string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enc {
    /// Ciphertext without the tag.
    pub data: Vec<u8>,
    /// The nonce (32 bytes when sops or ksec wrote it).
    pub iv: Vec<u8>,
    /// The 16-byte tag.
    pub tag: [u8; TAG_LEN],
    /// What the plaintext means.
    pub kind: Kind,
}

const PREFIX: &str = "ENC[AES256_GCM,data:";

/// Whether `s` has the shape of an ENC string (cheap; no decoding).
pub fn looks_encrypted(s: &str) -> bool {
    s.starts_with(PREFIX) && s.ends_with(']') && s.contains(",iv:") && s.contains(",tag:")
}

impl Enc {
    /// Parses an ENC string as sops does: fields in order, standard base64
    /// with padding.
    pub fn parse(s: &str) -> Result<Enc, ValueError> {
        let body = s
            .strip_prefix(PREFIX)
            .and_then(|b| b.strip_suffix(']'))
            .ok_or(ValueError::Malformed)?;
        let (data, rest) = body.split_once(",iv:").ok_or(ValueError::Malformed)?;
        let (iv, rest) = rest.split_once(",tag:").ok_or(ValueError::Malformed)?;
        let (tag, kind) = rest.split_once(",type:").ok_or(ValueError::Malformed)?;
        let decode = |p: &str| B64.decode(p).map_err(|_| ValueError::Malformed);
        let kind = Kind::parse(kind).ok_or_else(|| ValueError::UnknownType(kind.to_owned()))?;
        let iv = decode(iv)?;
        if iv.is_empty() {
            return Err(ValueError::Malformed);
        }
        Ok(Enc {
            data: decode(data)?,
            iv,
            tag: decode(tag)?.try_into().map_err(|_| ValueError::Malformed)?,
            kind,
        })
    }

    /// The ENC string.
    pub fn render(&self) -> String {
        format!(
            "{PREFIX}{},iv:{},tag:{},type:{}]",
            B64.encode(&self.data),
            B64.encode(&self.iv),
            B64.encode(self.tag),
            self.kind.as_str()
        )
    }
}

/// A fresh random 32-byte nonce.
pub fn random_iv() -> [u8; IV_LEN] {
    let mut iv = [0u8; IV_LEN];
    rand::thread_rng().fill_bytes(&mut iv);
    iv
}

/// The associated data of a value at `path` (mapping keys from the
/// document root; sequence indices are not part of it): the keys joined
/// with `:`, plus a trailing `:`. A comment's is its parent's path.
pub fn aad<S: AsRef<str>>(path: &[S]) -> String {
    let mut s = String::new();
    for p in path {
        s.push_str(p.as_ref());
        s.push(':');
    }
    if path.is_empty() {
        s.push(':');
    }
    s
}

/// Encrypts `plaintext` (non-empty) under `dek` with `iv` and `aad`.
pub fn encrypt(dek: &DataKey, plaintext: &[u8], aad: &str, iv: &[u8; IV_LEN], kind: Kind) -> Enc {
    let cipher = Cipher::new_from_slice(dek.as_bytes()).expect("a 32-byte key");
    let mut buf = plaintext.to_vec();
    let tag = cipher
        .encrypt_in_place_detached(Nonce::<U32>::from_slice(iv), aad.as_bytes(), &mut buf)
        .expect("AES-GCM encrypts any length sops values have");
    Enc {
        data: buf,
        iv: iv.to_vec(),
        tag: tag.into(),
        kind,
    }
}

/// Decrypts an ENC value. sops accepts any nonce length when reading; this
/// reads the 32-byte nonces sops and ksec write.
pub fn decrypt(dek: &DataKey, enc: &Enc, aad: &str) -> Result<Zeroizing<Vec<u8>>, ValueError> {
    if enc.iv.len() != IV_LEN {
        return Err(ValueError::Malformed);
    }
    let cipher = Cipher::new_from_slice(dek.as_bytes()).expect("a 32-byte key");
    let mut buf = Zeroizing::new(enc.data.clone());
    cipher
        .decrypt_in_place_detached(
            Nonce::<U32>::from_slice(&enc.iv),
            aad.as_bytes(),
            &mut buf,
            (&enc.tag).into(),
        )
        .map_err(|_| ValueError::Authentication)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sops' own known-answer vector (aes/cipher_test.go, TestDecrypt).
    #[test]
    fn sops_known_answer() {
        let key = DataKey::from_bytes([b'f'; 32]);
        let s = "ENC[AES256_GCM,data:oYyi,iv:MyIDYbT718JRr11QtBkcj3Dwm4k1aCGZBVeZf0EyV8o=,tag:t5z2Z023Up0kxwCgw1gNxg==,type:str]";
        let enc = Enc::parse(s).unwrap();
        assert_eq!(*decrypt(&key, &enc, "bar:").unwrap(), b"foo");
        // TestDecryptInvalidAad.
        assert_eq!(decrypt(&key, &enc, ""), Err(ValueError::Authentication));
        let iv: [u8; IV_LEN] = enc.iv.clone().try_into().unwrap();
        assert_eq!(encrypt(&key, b"foo", "bar:", &iv, Kind::Str).render(), s);
        assert!(looks_encrypted(s));
    }

    #[test]
    fn aad_and_parsing() {
        assert_eq!(aad(&["data", "password"]), "data:password:");
        assert_eq!(aad::<&str>(&[]), ":");
        assert_eq!(
            Enc::parse("ENC[AES256_GCM,data:,iv:AA==,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:odd]"),
            Err(ValueError::UnknownType("odd".into()))
        );
        assert_eq!(
            Enc::parse("ENC[AES256_GCM,data:!!,iv:AA==,tag:AA==,type:str]"),
            Err(ValueError::Malformed)
        );
        assert_eq!(Enc::parse("hello"), Err(ValueError::Malformed));
    }
}
