//! The kubesec value codec: one AES-256-GCM message per Secret value.
//!
//! A clear value `P` (the value's text after YAML parsing; for `data` that is
//! the base64 text, not the decoded bytes) is right-padded with NUL bytes to a
//! multiple of 48 bytes, encrypted under the document's data key with a fresh
//! 12-byte IV and the map key's UTF-8 bytes as associated data, and written as
//! `b64(ct).b64(iv).b64(tag)`, or `b64(iv).b64(tag)` when `ct` is empty.
//! Decryption cuts the plaintext at the first NUL, which is why a value that
//! contains NUL cannot be stored (see [`CodecError::ContainsNul`]).
//!
//! The same primitive with an empty plaintext is the document MAC (GMAC); see
//! [`super::mac`].

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore as _;
use zeroize::Zeroizing;

use crate::keys::DataKey;

/// Values are padded to a multiple of this many bytes, hiding their exact length.
pub const PAD_BLOCK: usize = 48;
/// Length of an AES-GCM IV in the kubesec format.
pub const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A 12-byte AES-GCM initialisation vector.
pub type Iv = [u8; IV_LEN];

/// Why a value token could not be read or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Not of the form `ct.iv.tag` / `iv.tag` with valid base64 and lengths.
    #[error("not an encrypted value (expected base64 `ciphertext.iv.tag`)")]
    Malformed,
    /// The AEAD tag did not verify: wrong data key, wrong map key, or tampering.
    #[error(
        "the value does not authenticate (it was changed, moved to another key, or belongs to another data key)"
    )]
    Authentication,
    /// The decrypted bytes are not UTF-8 text.
    #[error("the decrypted value is not UTF-8 text")]
    NotUtf8,
    /// The clear value contains a NUL character, which the format uses as padding.
    #[error(
        "the value contains a NUL character, which the kubesec format cannot store (use `data` with base64 instead)"
    )]
    ContainsNul,
}

/// A parsed value token: ciphertext (without tag), IV and tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Ciphertext without the tag; empty for an empty value.
    pub ciphertext: Vec<u8>,
    /// The IV used for this value.
    pub iv: Iv,
    /// The 16-byte GCM tag.
    pub tag: [u8; TAG_LEN],
}

impl Token {
    /// Parses `ct.iv.tag` or `iv.tag`. Strict: standard alphabet with padding,
    /// exact IV and tag lengths. Cheap enough to classify every value of a file.
    pub fn parse(s: &str) -> Result<Token, CodecError> {
        let mut parts = s.split('.');
        let (a, b, c) = (parts.next(), parts.next(), parts.next());
        if parts.next().is_some() {
            return Err(CodecError::Malformed);
        }
        let (ct, iv, tag) = match (a, b, c) {
            (Some(ct), Some(iv), Some(tag)) if !ct.is_empty() => (ct, iv, tag),
            (Some(iv), Some(tag), None) => ("", iv, tag),
            _ => return Err(CodecError::Malformed),
        };
        let decode = |p: &str| B64.decode(p).map_err(|_| CodecError::Malformed);
        let ciphertext = decode(ct)?;
        let iv: Iv = decode(iv)?.try_into().map_err(|_| CodecError::Malformed)?;
        let tag: [u8; TAG_LEN] = decode(tag)?.try_into().map_err(|_| CodecError::Malformed)?;
        Ok(Token {
            ciphertext,
            iv,
            tag,
        })
    }

    /// Renders the token in kubesec's text form.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity((self.ciphertext.len() + IV_LEN + TAG_LEN) * 4 / 3 + 8);
        if !self.ciphertext.is_empty() {
            B64.encode_string(&self.ciphertext, &mut out);
            out.push('.');
        }
        B64.encode_string(self.iv, &mut out);
        out.push('.');
        B64.encode_string(self.tag, &mut out);
        out
    }
}

/// Returns `true` when `s` has the shape of an encrypted value: base64
/// parts of the right lengths. Allocation-free, for classifying every value
/// of a file; [`Token::parse`] does the strict decoding when the value is opened.
pub fn looks_encrypted(s: &str) -> bool {
    fn b64_body(p: &str) -> bool {
        p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    }
    fn b64_padded(p: &str) -> bool {
        let body = p.trim_end_matches('=');
        !p.is_empty() && p.len().is_multiple_of(4) && p.len() - body.len() <= 2 && b64_body(body)
    }
    // 12-byte IV: 16 characters; 16-byte tag: 22 characters and `==`.
    let iv_ok = |p: &str| p.len() == 16 && b64_body(p);
    let tag_ok = |p: &str| p.len() == 24 && p.ends_with("==") && b64_body(&p[..22]);
    let mut parts = s.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(ct), Some(iv), Some(tag), None) => b64_padded(ct) && iv_ok(iv) && tag_ok(tag),
        (Some(iv), Some(tag), None, None) => iv_ok(iv) && tag_ok(tag),
        _ => false,
    }
}

/// A fresh random IV. IVs come from the thread's CSPRNG (ChaCha, seeded and
/// reseeded from the operating system), not a system call per value.
pub fn random_iv() -> Iv {
    let mut iv = [0u8; IV_LEN];
    rand::thread_rng().fill_bytes(&mut iv);
    iv
}

/// AES-256-GCM under one data key, set up once per document (the key
/// schedule is zeroed on drop).
pub struct ValueCipher(Aes256Gcm);

impl ValueCipher {
    /// The cipher for a data key.
    pub fn new(key: &DataKey) -> Self {
        ValueCipher(Aes256Gcm::new(key.as_bytes().into()))
    }

    /// AES-256-GCM over already padded bytes.
    pub fn seal(&self, iv: &Iv, plaintext: &[u8], aad: &[u8]) -> Token {
        let mut buf = plaintext.to_vec();
        let tag = self
            .0
            .encrypt_in_place_detached(Nonce::from_slice(iv), aad, &mut buf)
            // aes-gcm fails only for inputs over 64 GiB, far above our input limit.
            .expect("AES-GCM input within size limits");
        Token {
            ciphertext: buf,
            iv: *iv,
            tag: tag.into(),
        }
    }

    /// Opens a token without removing padding.
    pub fn open(&self, token: &Token, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CodecError> {
        let mut buf = Zeroizing::new(token.ciphertext.clone());
        self.0
            .decrypt_in_place_detached(
                Nonce::from_slice(&token.iv),
                aad,
                &mut buf,
                (&token.tag).into(),
            )
            .map_err(|_| CodecError::Authentication)?;
        Ok(buf)
    }

    /// Encrypts one clear value for map key `name` with the given IV.
    pub fn encrypt_value(&self, name: &str, value: &str, iv: &Iv) -> Result<String, CodecError> {
        if value.as_bytes().contains(&0) {
            return Err(CodecError::ContainsNul);
        }
        let len = value.len().div_ceil(PAD_BLOCK) * PAD_BLOCK;
        let mut padded = Zeroizing::new(Vec::with_capacity(len));
        padded.extend_from_slice(value.as_bytes());
        padded.resize(len, 0);
        Ok(self.seal(iv, &padded, name.as_bytes()).render())
    }

    /// Decrypts one value token for map key `name`; the result is cut at the first NUL.
    pub fn decrypt_value(&self, name: &str, token: &str) -> Result<Zeroizing<String>, CodecError> {
        let token = Token::parse(token)?;
        let mut plain = self.open(&token, name.as_bytes())?;
        if let Some(nul) = plain.iter().position(|&b| b == 0) {
            plain.truncate(nul);
        }
        let text = std::str::from_utf8(&plain).map_err(|_| CodecError::NotUtf8)?;
        Ok(Zeroizing::new(text.to_owned()))
    }
}

/// AES-256-GCM over already padded bytes; the raw primitive, exposed for the
/// kubesec cipher-level test vector and the MAC.
pub fn seal_raw(key: &DataKey, iv: &Iv, plaintext: &[u8], aad: &[u8]) -> Token {
    ValueCipher::new(key).seal(iv, plaintext, aad)
}

/// Opens a token without removing padding.
pub fn open_raw(
    key: &DataKey,
    token: &Token,
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CodecError> {
    ValueCipher::new(key).open(token, aad)
}

/// Encrypts one clear value for map key `name` with the given IV.
pub fn encrypt_value(
    key: &DataKey,
    name: &str,
    value: &str,
    iv: &Iv,
) -> Result<String, CodecError> {
    ValueCipher::new(key).encrypt_value(name, value, iv)
}

/// Decrypts one value token for map key `name`; the result is cut at the first NUL.
pub fn decrypt_value(
    key: &DataKey,
    name: &str,
    token: &str,
) -> Result<Zeroizing<String>, CodecError> {
    ValueCipher::new(key).decrypt_value(name, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> DataKey {
        DataKey::from_bytes([b; 32])
    }

    #[test]
    fn kubesec_cipher_level_vector() {
        // shyiko/kubesec crypto/aes/cipher_test.go: key 32×'f', IV 12×'f', AAD "KEY".
        let token = seal_raw(&key(b'f'), &[b'f'; 12], b"VALUE", b"KEY");
        assert_eq!(
            token.render(),
            "ZHNaYVQ=.ZmZmZmZmZmZmZmZm.pcgqz0hb478fIRa/buj8CA=="
        );
    }

    #[test]
    fn round_trip_pads_to_48() {
        let k = key(1);
        for len in [0usize, 1, 47, 48, 49, 96, 1000] {
            let v = "x".repeat(len);
            let t = encrypt_value(&k, "name", &v, &random_iv()).unwrap();
            let parsed = Token::parse(&t).unwrap();
            assert_eq!(parsed.ciphertext.len(), len.div_ceil(48) * 48);
            assert_eq!(parsed.ciphertext.is_empty(), t.matches('.').count() == 1);
            assert_eq!(&*decrypt_value(&k, "name", &t).unwrap(), &v);
        }
    }

    #[test]
    fn aad_is_the_key_name() {
        let k = key(2);
        let t = encrypt_value(&k, "a", "secret", &random_iv()).unwrap();
        assert_eq!(decrypt_value(&k, "b", &t), Err(CodecError::Authentication));
        assert_eq!(
            decrypt_value(&key(3), "a", &t),
            Err(CodecError::Authentication)
        );
    }

    #[test]
    fn refuses_nul() {
        assert_eq!(
            encrypt_value(&key(1), "a", "x\0y", &[0; 12]),
            Err(CodecError::ContainsNul)
        );
    }

    #[test]
    fn malformed_tokens() {
        for bad in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "YWJj.YWJj",
            "..",
            ".AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA==",
            "YWJj",
            "X4VfM/AvTmvsgb7G.mNaSLQoWJ5ITMbe9OAUbKA=",
        ] {
            assert_eq!(Token::parse(bad), Err(CodecError::Malformed), "{bad}");
            assert!(!looks_encrypted(bad), "{bad}");
        }
        assert!(looks_encrypted("X4VfM/AvTmvsgb7G.mNaSLQoWJ5ITMbe9OAUbKA=="));
        // The shape check agrees with the strict parser on real tokens.
        let t = encrypt_value(&key(4), "k", "some value", &random_iv()).unwrap();
        assert!(looks_encrypted(&t) && Token::parse(&t).is_ok());
    }
}
