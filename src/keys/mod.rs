//! Keys: ids, data keys, and the providers that wrap and unwrap them — the
//! only code that talks to the outside world (gpg, KMS).
//!
//! A provider wraps a secret (a 32-byte data key, or a share of one) for one
//! key id and unwraps it again. A file opens when *any* of its keys unwraps
//! the data key; local providers are tried before network ones. Adding a
//! key type = one module here (its [`Provider`]), a [`KeyType`] variant and
//! its registration in [`Keyring::new`]; formats write its ids and blobs
//! without knowing what they mean.

pub mod age;
#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "azure")]
pub mod azure;
pub mod cert_url;
#[cfg(feature = "gcp")]
pub mod gcp;
mod id;
#[cfg(any(feature = "gcp", feature = "azure"))]
pub mod jws;
mod keyring;
pub mod pgp;
#[cfg(feature = "vault")]
pub mod vault;

use std::rc::Rc;

use zeroize::Zeroizing;

pub use id::{KeyChange, KeyId, KeySpecError, KeyType, WrappedKey, looks_secret, parse_key};
pub use keyring::{Keyring, UnwrapFailure, WrapJob};

use crate::report::Reporter;

/// A document's 32-byte AES-256 data key. Zeroed on drop; never printed.
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

/// Unwrapped secret bytes (a data key, or a share of one). Zeroed on drop.
pub type Secret = Zeroizing<Vec<u8>>;

/// How a format asks a provider to wrap and unwrap: the parts of a key's
/// use that are not its id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KeyParams {
    /// PGP: sign the wrapped key, and require a valid signature when
    /// unwrapping (kubesec's format does; sops' does not).
    pub pgp_signed: bool,
    /// AWS KMS encryption context (sops' `context`), sorted by key.
    pub encryption_context: Vec<(String, String)>,
}

/// Why a key could not wrap or unwrap a data key. Messages never contain key
/// material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key id is not valid for its type.
    #[error("{0}")]
    InvalidId(String),
    /// No secret key for this id is available here.
    #[error("{0}")]
    Unavailable(String),
    /// The provider tried and failed.
    #[error("{0}")]
    Failed(String),
    /// This build has no provider for the type.
    #[error("{0} keys are not supported by this build of ksec")]
    Unsupported(KeyType),
}

/// One wrap asked of a provider.
pub struct WrapRequest<'a> {
    /// The key id (without its type).
    pub id: &'a str,
    /// What to wrap.
    pub secret: &'a [u8],
    /// How.
    pub params: &'a KeyParams,
}

/// One unwrap asked of a provider.
pub struct UnwrapRequest<'a> {
    /// The key id (without its type).
    pub id: &'a str,
    /// The provider's ciphertext.
    pub blob: &'a [u8],
    /// How it was wrapped.
    pub params: &'a KeyParams,
}

/// One provider per key type.
pub trait Provider {
    /// The key type this provider handles.
    fn kind(&self) -> KeyType;
    /// Checks a key id and returns it in the form written to files.
    fn resolve(&self, id: &str) -> Result<String, KeyError>;
    /// The id a key named by a rule is written as, without checks that need
    /// more than the id: for most providers the id itself; Azure Key Vault
    /// pins a key named without a version to its current version.
    fn pin(&self, id: &str) -> Result<String, KeyError> {
        Ok(id.to_owned())
    }
    /// Wraps a secret for one key.
    fn wrap(&self, request: &WrapRequest<'_>) -> Result<Vec<u8>, KeyError>;
    /// Unwraps a secret wrapped for one key.
    fn unwrap(&self, request: &UnwrapRequest<'_>) -> Result<Secret, KeyError>;
    /// Whether the provider works without the network (tried first).
    fn is_local(&self) -> bool;
    /// Wraps several secrets; network providers run these concurrently.
    fn wrap_many(&self, requests: &[WrapRequest<'_>]) -> Vec<Result<Vec<u8>, KeyError>> {
        requests.iter().map(|r| self.wrap(r)).collect()
    }
    /// Unwraps several secrets; network providers run these concurrently.
    fn unwrap_many(&self, requests: &[UnwrapRequest<'_>]) -> Vec<Result<Secret, KeyError>> {
        requests.iter().map(|r| self.unwrap(r)).collect()
    }
    /// Moves wrapped secrets to the key's latest version without unwrapping
    /// them here (Vault transit `rewrap`): the new blob, or `None` when the
    /// blob is current already or the key type has nothing to rewrap.
    fn rewrap_many(
        &self,
        requests: &[UnwrapRequest<'_>],
    ) -> Vec<Result<Option<Vec<u8>>, KeyError>> {
        requests.iter().map(|_| Ok(None)).collect()
    }
}

/// How the providers of a run are configured.
#[derive(Clone)]
pub struct KeyringOptions {
    /// Timeout, concurrency and retries of every network key service.
    pub net: crate::net::NetOptions,
    /// gpg settings.
    pub pgp: pgp::PgpOptions,
    /// AWS settings.
    #[cfg(feature = "aws")]
    pub aws: aws::AwsOptions,
    /// Where notes, warnings and `-v` traces go.
    pub reporter: Rc<dyn Reporter>,
}

impl Default for KeyringOptions {
    fn default() -> Self {
        KeyringOptions {
            net: crate::net::NetOptions::default(),
            pgp: pgp::PgpOptions::default(),
            #[cfg(feature = "aws")]
            aws: aws::AwsOptions::default(),
            reporter: Rc::new(crate::report::Silent),
        }
    }
}

/// The key version a blob was wrapped with, when the blob says (Vault
/// transit: `vault:v3:…` → `v3`), for messages.
pub fn blob_version(key: &KeyId, blob: &[u8]) -> Option<String> {
    match key.kind {
        #[cfg(feature = "vault")]
        KeyType::Vault => vault::blob_version(blob).map(|v| format!("v{v}")),
        _ => {
            let _ = blob;
            None
        }
    }
}

/// A key error as a user's error: `key TYPE:ID: reason` (exit 2 for a bad
/// or unsupported key, 6 when the key failed).
pub fn key_error(e: &KeyError, key: &KeyId) -> crate::error::Error {
    use crate::error::{Error, Exit};
    let exit = match e {
        KeyError::InvalidId(_) | KeyError::Unsupported(_) => Exit::Usage,
        KeyError::Unavailable(_) | KeyError::Failed(_) => Exit::Key,
    };
    Error::new(exit, "key", format!("key {key}: {e}"))
}

/// What to do when no key opened a data key: a hint for each kind of key
/// that failed only because its secret is not available here (other
/// failures name their own fix in their message).
pub fn unwrap_hint(f: &UnwrapFailure) -> Option<String> {
    let missing = |t: KeyType, reason: &str| {
        f.attempts.iter().any(|(k, e)| {
            k.kind == t && matches!(e, KeyError::Unavailable(m) if m.starts_with(reason))
        })
    };
    let mut hints = Vec::new();
    if missing(KeyType::Age, "no identity for this recipient") {
        hints.push(
            "for age, set KSEC_AGE_KEY_FILE or KSEC_AGE_KEY to the identity of a listed recipient",
        );
    }
    if missing(KeyType::Pgp, "no secret key for it") {
        hints.push("for PGP, import the secret key of a listed fingerprint into gpg");
    }
    let tried = |t: KeyType| f.attempts.iter().any(|(k, _)| k.kind == t);
    if tried(KeyType::Aws) {
        hints.push("for AWS, check credentials, region and endpoint, and that kms:Decrypt is allowed on a listed key");
    }
    if tried(KeyType::Gcp) {
        hints.push("for GCP, check the Google credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC, the metadata server) and that cloudkms.cryptoKeyVersions.useToDecrypt is granted on a listed key");
    }
    if tried(KeyType::Azure) {
        hints.push("for Azure, check the Azure credentials (AZURE_CLIENT_ID and a secret, certificate or federated token; a managed identity; az login) and that keys/decrypt is allowed on a listed key");
    }
    if tried(KeyType::Vault) {
        hints.push("for Vault, check VAULT_TOKEN (or the login settings) and that the token's policy allows MOUNT/decrypt/NAME of a listed key");
    }
    (!hints.is_empty()).then(|| hints.join("; "))
}

/// Checks and normalises a key named in a configuration file without asking
/// any provider (so that `check` needs no gpg and no network): age
/// recipients are parsed, PGP keys must be full fingerprints (spaces
/// allowed, any case; written upper case as in footers), AWS ids are checked
/// for shape.
pub fn normalise_config_key(key: &KeyId) -> Result<KeyId, KeySpecError> {
    let id = match key.kind {
        KeyType::Age => {
            age::AgeProvider::parse_recipient(&key.id).map_err(|e| KeySpecError(e.0))?
        }
        KeyType::Pgp => {
            let compact: String = key.id.chars().filter(|c| !c.is_whitespace()).collect();
            if compact.len() != 40 || !compact.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(KeySpecError(format!(
                    "`pgp:{}`: name PGP keys in .ksec.yaml by their full 40-hex fingerprint",
                    key.id
                )));
            }
            compact.to_ascii_uppercase()
        }
        #[cfg(feature = "aws")]
        KeyType::Aws => {
            aws::check_id(&key.id).map_err(|e| KeySpecError(e.to_string()))?;
            key.id.clone()
        }
        #[cfg(feature = "gcp")]
        KeyType::Gcp => {
            gcp::check_id(&key.id).map_err(|e| KeySpecError(e.to_string()))?;
            key.id.clone()
        }
        #[cfg(feature = "vault")]
        KeyType::Vault => {
            vault::parse_id(&key.id).map_err(|e| KeySpecError(e.to_string()))?;
            key.id.clone()
        }
        #[cfg(feature = "azure")]
        KeyType::Azure => {
            azure::parse_id(&key.id).map_err(|e| KeySpecError(e.to_string()))?;
            key.id.clone()
        }
        // Reached in builds without some of the providers above.
        #[allow(unreachable_patterns)]
        _ => key.id.clone(),
    };
    Ok(KeyId { kind: key.kind, id })
}

#[cfg(test)]
mod tests {
    #[test]
    fn data_key_debug_is_redacted() {
        let k = super::DataKey::from_bytes([7; 32]);
        assert_eq!(format!("{k:?}"), "DataKey([REDACTED])");
    }
}
