//! The kubesec on-disk format: value tokens, footer lines and the MAC.
//!
//! Pure code: bytes in, bytes out; no I/O, no clock (randomness only for IVs).
//! The format is specified in DESIGN.md §4 and pinned by the kubesec vectors.

pub mod codec;
pub mod footer;
pub mod mac;

use zeroize::Zeroizing;

/// A document's 32-byte AES-256 data key (DEK). Zeroed on drop; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A fresh random data key.
    pub fn generate() -> Self {
        use rand::RngCore as _;
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        DataKey(k)
    }

    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        DataKey(Zeroizing::new(bytes))
    }

    /// Takes a key from a slice, which must be exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(Self::from_bytes(arr))
    }

    /// The raw key bytes (for wrapping by a key provider).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::hash::Hash for DataKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // For in-memory maps of one run only; the hasher is not persisted.
        self.0.as_slice().hash(state);
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn data_key_debug_is_redacted() {
        let k = super::DataKey::from_bytes([7; 32]);
        assert_eq!(format!("{k:?}"), "DataKey([REDACTED])");
    }
}
