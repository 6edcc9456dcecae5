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
        let (ct, iv, tag) = split_token(s)?;
        let mut ciphertext = Vec::new();
        if !ct.is_empty() {
            B64.decode_vec(ct, &mut ciphertext)
                .map_err(|_| CodecError::Malformed)?;
        }
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

/// The base64 ciphertext part (empty for `iv.tag`) and the decoded IV and
/// tag of a token, strictly checked; the ciphertext is decoded by the
/// caller, into a buffer of its choosing.
fn split_token(s: &str) -> Result<(&str, Iv, [u8; TAG_LEN]), CodecError> {
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
    // Exact lengths: a longer part would decode into more bytes than fit.
    let mut iv_bytes = [0u8; IV_LEN];
    let mut tag_bytes = [0u8; TAG_LEN];
    let exact =
        |p: &str, out: &mut [u8]| matches!(B64.decode_slice(p, out), Ok(n) if n == out.len());
    if !exact(iv, &mut iv_bytes) || !exact(tag, &mut tag_bytes) {
        return Err(CodecError::Malformed);
    }
    Ok((ct, iv_bytes, tag_bytes))
}

/// Whether a byte is a base64 character other than padding.
const fn b64_body_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
        i += 1;
    }
    t
}
static B64_BODY: [bool; 256] = b64_body_table();

fn b64_body(p: &[u8]) -> bool {
    p.iter().all(|&b| B64_BODY[usize::from(b)])
}

/// Base64 of 12 bytes (the IV): 16 characters without padding.
const IV_B64: usize = 16;
/// Base64 of 16 bytes (the tag): 22 characters and `==`.
const TAG_B64: usize = 24;

/// Returns `true` when `s` has the shape of an encrypted value: base64
/// parts of the right lengths. Allocation-free and read from the end (the
/// IV and tag have fixed lengths), for classifying every value of a file;
/// [`Token::parse`] does the strict decoding when the value is opened.
pub fn looks_encrypted(s: &str) -> bool {
    let b = s.as_bytes();
    let n = b.len();
    if n < IV_B64 + 1 + TAG_B64 {
        return false;
    }
    let (head, tag) = b.split_at(n - TAG_B64);
    let tag_ok = tag.ends_with(b"==") && b64_body(&tag[..TAG_B64 - 2]);
    let Some((b'.', head)) = head.split_last() else {
        return false;
    };
    let (head, iv) = head.split_at(head.len() - IV_B64);
    if !tag_ok || !b64_body(iv) {
        return false;
    }
    match head.split_last() {
        None => true,
        Some((b'.', ct)) => {
            let body = ct.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
            !ct.is_empty()
                && ct.len().is_multiple_of(4)
                && ct.len() - body <= 2
                && b64_body(&ct[..body])
        }
        Some(_) => false,
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
        let mut out = String::with_capacity(token_len(value.len()));
        self.encrypt_value_into(name, value, iv, &mut out)?;
        Ok(out)
    }

    /// [`ValueCipher::encrypt_value`], the token appended to `out`.
    pub fn encrypt_value_into(
        &self,
        name: &str,
        value: &str,
        iv: &Iv,
        out: &mut String,
    ) -> Result<(), CodecError> {
        if value.as_bytes().contains(&0) {
            return Err(CodecError::ContainsNul);
        }
        let len = value.len().div_ceil(PAD_BLOCK) * PAD_BLOCK;
        let mut buf = Zeroizing::new(Vec::with_capacity(len));
        buf.extend_from_slice(value.as_bytes());
        buf.resize(len, 0);
        let tag = self
            .0
            .encrypt_in_place_detached(Nonce::from_slice(iv), name.as_bytes(), &mut buf)
            .expect("AES-GCM input within size limits");
        // Ciphertext is not secret: written out as it is.
        if !buf.is_empty() {
            B64.encode_string(&*buf, out);
            out.push('.');
        }
        B64.encode_string(iv, out);
        out.push('.');
        B64.encode_string(tag, out);
        Ok(())
    }

    /// Decrypts one value token for map key `name`; the result is cut at the first NUL.
    pub fn decrypt_value(&self, name: &str, token: &str) -> Result<Zeroizing<String>, CodecError> {
        let (ct, iv, tag) = split_token(token)?;
        // Decrypted in place: the buffer that holds the ciphertext becomes
        // the clear value, zeroed on drop whatever happens.
        let mut buf = Zeroizing::new(Vec::with_capacity(ct.len() / 4 * 3));
        if !ct.is_empty() {
            B64.decode_vec(ct, &mut buf)
                .map_err(|_| CodecError::Malformed)?;
        }
        self.0
            .decrypt_in_place_detached(
                Nonce::from_slice(&iv),
                name.as_bytes(),
                &mut buf,
                (&tag).into(),
            )
            .map_err(|_| CodecError::Authentication)?;
        if let Some(nul) = buf.iter().position(|&b| b == 0) {
            buf.truncate(nul);
        }
        if std::str::from_utf8(&buf).is_err() {
            return Err(CodecError::NotUtf8);
        }
        let bytes = std::mem::take(&mut *buf);
        Ok(Zeroizing::new(
            String::from_utf8(bytes).expect("checked to be UTF-8 above"),
        ))
    }
}

/// The most bytes the clear value of `token` can have: its ciphertext's
/// (kubesec pads values and cuts them at the first NUL), 0 for `iv.tag`;
/// the token's own length when it is not token-shaped (it will not
/// decrypt).
pub fn clear_len_bound(token: &str) -> usize {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(ct), Some(_), Some(_), None) => ct.len().div_ceil(4) * 3,
        (Some(_), Some(_), None, None) => 0,
        _ => token.len(),
    }
}

/// The length of the token of a clear value of `len` bytes.
pub fn token_len(len: usize) -> usize {
    let ct = len.div_ceil(PAD_BLOCK) * PAD_BLOCK;
    let ct_b64 = if ct == 0 { 0 } else { ct / 3 * 4 + 1 };
    ct_b64 + IV_B64 + 1 + TAG_B64
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
    fn a_clear_value_is_never_longer_than_its_bound() {
        let k = key(1);
        for len in [0usize, 1, 2, 3, 47, 48, 49, 96, 1000] {
            let v = "é".repeat(len);
            let t = encrypt_value(&k, "name", &v, &random_iv()).unwrap();
            let bound = clear_len_bound(&t);
            assert!(bound >= v.len(), "{len}: {bound} < {}", v.len());
            // Not more than one 48-byte block of padding plus base64's rounding.
            assert!(bound <= v.len().div_ceil(48) * 48 + 2, "{len}: {bound}");
        }
        assert_eq!(clear_len_bound("not a token"), "not a token".len());
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
