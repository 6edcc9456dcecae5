//! Secret stores: AWS Secrets Manager, SSM Parameter Store and Vault KV,
//! behind one trait ([`Store`]), and what is built on them: rendering
//! ExternalSecrets offline ([`resolve`]), reading a store into a Secret
//! and writing a Secret into a store ([`transfer`]).
//!
//! Like [`crate::keys`], this is code that talks to the outside (`aws`:
//! Secrets Manager and Parameter Store on the AWS SDK; `vault`: KV v1/v2 on
//! [`crate::vault`]; [`connect`] opens them); the rest of the module is pure
//! and tested with an in-memory store:
//!
//! * [`json`], [`gjson`], [`lodash`]: JSON values as the two controllers
//!   read and print them;
//! * [`eso`] and [`kes`]: the External Secrets Operator's
//!   `external-secrets.io/v1` (and `v1beta1`) ExternalSecret with its
//!   SecretStore, and the deprecated kubernetes-external-secrets
//!   `kubernetes-client.io/v1` one — each read into a plan of the remote
//!   values it needs, then assembled into the Secret its controller would
//!   create, in the controller's merge order;
//! * [`secret`]: that Secret, and its YAML.
//!
//! Every remote value of a run is fetched once, in one batch per store
//! (concurrent up to `--jobs`), before any Secret is assembled; nothing is
//! returned unless every ExternalSecret resolved.

#[cfg(feature = "aws")]
pub mod aws;
pub mod connect;
pub mod eso;
mod fields;
pub mod gjson;
pub mod json;
pub mod kes;
pub mod lodash;
pub mod resolve;
pub mod secret;
pub mod transfer;
#[cfg(feature = "vault")]
pub mod vault;

#[cfg(test)]
mod golden;
#[cfg(test)]
pub(crate) mod memory;

use std::fmt;

use zeroize::Zeroizing;

use crate::error::{Error, Exit};
use json::Json;

/// Values by key, in order; zeroed on drop.
pub type Pairs = Vec<(String, Zeroizing<Vec<u8>>)>;

/// What a listing returns: (full name, value), or why not.
pub type Listing = Result<Vec<(String, Remote)>, StoreError>;

/// A value as a store returns it.
pub enum Remote {
    /// Text: a Secrets Manager `SecretString`, a parameter's value.
    Text(Zeroizing<String>),
    /// Bytes: a Secrets Manager `SecretBinary`.
    Binary(Zeroizing<Vec<u8>>),
    /// A Vault KV secret's data: a JSON object, as Vault sent it.
    Kv(Json),
}

impl Remote {
    /// The value's bytes as a controller stores it whole: text and binary
    /// as they are; Vault data as Go's `json.Marshal` writes it (ESO).
    pub fn bytes(&self) -> Zeroizing<Vec<u8>> {
        match self {
            Remote::Text(t) => Zeroizing::new(t.as_bytes().to_vec()),
            Remote::Binary(b) => b.clone(),
            Remote::Kv(j) => {
                let mut s = Zeroizing::new(String::new());
                j.go_marshal(j.root(), json::GoNumbers::Literal, &mut s);
                Zeroizing::new(s.as_bytes().to_vec())
            }
        }
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Remote([REDACTED])")
    }
}

/// Which version of a value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// The current one.
    Current,
    /// Secrets Manager: a staging label (`AWSPREVIOUS`); Parameter Store:
    /// a version number or label (`name:3`); Vault KV v2: a version number.
    Named(String),
    /// Secrets Manager: a version id.
    Id(String),
}

/// One value to read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Get {
    /// The store's name for it: a secret name or ARN, a parameter name, a
    /// Vault API path (`secret/data/app` for KV v2).
    pub key: String,
    /// Which version.
    pub version: Version,
}

/// Values to list and read: everything under `path`, whose full name
/// matches `name`.
#[derive(Debug, Clone)]
pub struct Find {
    /// Secrets Manager: a name prefix; Parameter Store: a path; Vault: a
    /// folder below the mount. `None`: everything.
    pub path: Option<String>,
    /// Only names this matches (Go RE2 syntax, unanchored).
    pub name: Option<regex::Regex>,
    /// Parameter Store: below sub-paths too.
    pub recursive: bool,
}

impl Find {
    /// What makes two finds the same.
    pub fn identity(&self) -> (Option<String>, Option<String>, bool) {
        (
            self.path.clone(),
            self.name.as_ref().map(|r| r.as_str().to_owned()),
            self.recursive,
        )
    }
}

/// Values to write.
pub struct Put<'a> {
    /// Secrets Manager: the secret's name; Parameter Store: the prefix
    /// each key goes under; Vault: the secret's path below the mount.
    pub target: &'a str,
    /// The values, by key.
    pub values: &'a [(String, Zeroizing<Vec<u8>>)],
    /// Parameter Store: the KMS key for SecureString parameters (default:
    /// the account's `alias/aws/ssm`); Secrets Manager: for a new secret.
    pub kms_key: Option<&'a str>,
}

/// What a write did, one line per remote object (no values).
#[derive(Debug, Default)]
pub struct PutReport {
    /// `created prod/db`, `prod/db: new version`, `prod/db: unchanged`.
    pub lines: Vec<String>,
    /// Vault: the mount's KV version.
    pub kv: Option<KvVersion>,
}

/// Why a store call failed. Messages never hold values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    /// What kind of failure.
    pub kind: Failure,
    /// One line: what failed and, where known, the fix.
    pub message: String,
}

/// Kinds of store failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The secret or parameter does not exist (or is deleted).
    NotFound,
    /// The version asked for does not exist.
    VersionMissing,
    /// The caller may not do this.
    Denied,
    /// The service throttled us beyond the retries.
    Throttled,
    /// The service could not be reached, or did not answer in time.
    Unreachable,
    /// No credentials, or they were refused.
    Credentials,
    /// The request itself is wrong (a bad name, a value the store refuses).
    Invalid,
    /// Anything else.
    Other,
}

impl StoreError {
    /// A failure of `kind`.
    pub fn new(kind: Failure, message: impl Into<String>) -> StoreError {
        StoreError {
            kind,
            message: message.into(),
        }
    }

    /// As a user's error (exit 9; 2 for a request ksec should not have made).
    pub fn to_error(&self) -> Error {
        let (exit, code) = match self.kind {
            Failure::NotFound => (Exit::Store, "store-not-found"),
            Failure::VersionMissing => (Exit::Store, "store-version-missing"),
            Failure::Denied => (Exit::Store, "store-denied"),
            Failure::Throttled => (Exit::Store, "store-throttled"),
            Failure::Unreachable => (Exit::Store, "store-unreachable"),
            Failure::Credentials => (Exit::Store, "store-credentials"),
            Failure::Invalid => (Exit::Store, "store-invalid"),
            Failure::Other => (Exit::Store, "store"),
        };
        Error::new(exit, code, self.message.clone())
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A secret store: reads in batches, lists, writes.
pub trait Store {
    /// What it is, for messages: `AWS Secrets Manager (eu-west-1)`.
    fn label(&self) -> String;
    /// Reads values, one call per request, concurrently where the store
    /// allows; one result per request, in order.
    fn get_many(&self, requests: &[Get]) -> Vec<Result<Remote, StoreError>>;
    /// Lists the names `find` selects and reads each: (full name, value),
    /// sorted by name.
    fn find(&self, find: &Find) -> Result<Vec<(String, Remote)>, StoreError>;
    /// Writes values (a new secret, or a new version of it).
    fn put(&self, put: &Put<'_>) -> Result<PutReport, StoreError>;
}

/// Which store, and how it is reached: what makes two references use the
/// same client.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Backend {
    /// AWS Secrets Manager.
    SecretsManager(AwsAccess),
    /// AWS Systems Manager Parameter Store.
    ParameterStore(AwsAccess),
    /// A Vault (or OpenBao) KV secrets engine.
    Vault(VaultAccess),
}

/// How AWS is reached: the default credential chain, in this region (else
/// the configured one), through this role when set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AwsAccess {
    /// The region; `None`: `AWS_REGION` or the profile's.
    pub region: Option<String>,
    /// A role to assume first (ESO `role`, KES `roleArn`).
    pub role: Option<String>,
}

/// How a Vault KV mount is reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VaultAccess {
    /// The server (`https://vault:8200`); `None`: `VAULT_ADDR`.
    pub server: Option<String>,
    /// The Vault Enterprise / OpenBao namespace; `None`: `VAULT_NAMESPACE`.
    pub namespace: Option<String>,
    /// The KV mount (`secret`).
    pub mount: String,
    /// KV version 1 or 2.
    pub kv: KvVersion,
}

/// The two KV secrets engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KvVersion {
    /// `kv` version 1: `GET mount/path`.
    V1,
    /// `kv` version 2: `GET mount/data/path`, versioned.
    V2,
    /// Asked of the server (the command line's `vault:MOUNT/PATH`); keys
    /// are then logical paths (`MOUNT/PATH`).
    Auto,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let region = |a: &AwsAccess| a.region.clone().unwrap_or_else(|| "default region".into());
        match self {
            Backend::SecretsManager(a) => write!(f, "AWS Secrets Manager ({})", region(a)),
            Backend::ParameterStore(a) => write!(f, "SSM Parameter Store ({})", region(a)),
            Backend::Vault(v) => write!(
                f,
                "Vault KV {} `{}` ({})",
                match v.kv {
                    KvVersion::V1 => "v1",
                    KvVersion::V2 => "v2",
                    KvVersion::Auto => "mount",
                },
                v.mount,
                v.server.as_deref().unwrap_or("VAULT_ADDR")
            ),
        }
    }
}

/// Opens stores: the real ones ([`aws`], Vault), or test doubles.
pub trait Connect {
    /// A client for `backend`; nothing is called until it is used.
    fn connect(&self, backend: &Backend) -> Result<Box<dyn Store>, StoreError>;
}

/// A store and a name in it, as the command line gives them:
/// `aws-sm:NAME`, `ssm:PATH`, `vault:MOUNT/PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `aws-sm:NAME` (a name or ARN).
    SecretsManager(String),
    /// `ssm:PATH` (a parameter, or a path of parameters).
    Parameter(String),
    /// `vault:MOUNT/PATH`.
    Vault {
        /// The KV mount.
        mount: String,
        /// The secret's path below it.
        path: String,
    },
}

/// Why a store address does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// No `KIND:`.
    #[error("`{0}`: expected aws-sm:NAME, ssm:PATH or vault:MOUNT/PATH")]
    NoKind(String),
    /// `KIND:` and nothing after it.
    #[error("`{0}`: the name is missing")]
    NoName(String),
    /// `vault:` without a mount and a path.
    #[error("`{0}`: a Vault address is vault:MOUNT/PATH, e.g. vault:secret/app/db")]
    Vault(String),
    /// A kind ksec does not know.
    #[error("`{0}:`: unknown store (use aws-sm:NAME, ssm:PATH or vault:MOUNT/PATH)")]
    Unknown(String),
}

impl Address {
    /// Parses `aws-sm:NAME`, `ssm:PATH` or `vault:MOUNT/PATH`.
    pub fn parse(s: &str) -> Result<Address, AddressError> {
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| AddressError::NoKind(s.to_owned()))?;
        if rest.is_empty() {
            return Err(AddressError::NoName(s.to_owned()));
        }
        match kind {
            "aws-sm" => Ok(Address::SecretsManager(rest.to_owned())),
            "ssm" => Ok(Address::Parameter(rest.to_owned())),
            "vault" => {
                let trimmed = rest.trim_matches('/');
                match trimmed.split_once('/') {
                    Some((m, p)) if !m.is_empty() && !p.is_empty() => Ok(Address::Vault {
                        mount: m.to_owned(),
                        path: p.to_owned(),
                    }),
                    _ => Err(AddressError::Vault(s.to_owned())),
                }
            }
            other => Err(AddressError::Unknown(other.to_owned())),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::SecretsManager(n) => write!(f, "aws-sm:{n}"),
            Address::Parameter(p) => write!(f, "ssm:{p}"),
            Address::Vault { mount, path } => write!(f, "vault:{mount}/{path}"),
        }
    }
}

/// Go's `regexp.MustCompile` as ESO uses it (RE2; the `regex` crate has
/// the same syntax), or why not.
pub fn go_regex(pattern: &str) -> Result<regex::Regex, RegexError> {
    regex::Regex::new(pattern).map_err(|e| {
        let first = e.to_string();
        RegexError {
            pattern: pattern.to_owned(),
            reason: first.lines().last().unwrap_or("invalid").trim().to_owned(),
        }
    })
}

/// A pattern the `regex` crate (and so RE2) refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{pattern}` is not a valid regular expression: {reason}")]
pub struct RegexError {
    /// The pattern as given.
    pub pattern: String,
    /// The parser's reason (its last line).
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            Address::parse("aws-sm:prod/db").unwrap(),
            Address::SecretsManager("prod/db".into())
        );
        assert_eq!(
            Address::parse("ssm:/prod/app/").unwrap(),
            Address::Parameter("/prod/app/".into())
        );
        assert_eq!(
            Address::parse("vault:secret/app/db").unwrap(),
            Address::Vault {
                mount: "secret".into(),
                path: "app/db".into()
            }
        );
        for bad in ["prod/db", "aws-sm:", "vault:secret", "gcp:x"] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }
}
