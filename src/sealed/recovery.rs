//! The controller's private keys, as users have them: PEM files (PKCS#1
//! `RSA PRIVATE KEY`, which the controller writes, or PKCS#8 `PRIVATE KEY`,
//! which `openssl` 3 writes) and the backup the sealed-secrets README
//! prescribes, `kubectl get secret -n kube-system -l
//! sealedsecrets.bitnami.com/sealed-secrets-key -o yaml`: a `List` of
//! `kubernetes.io/tls` Secrets whose `data."tls.key"` is the PEM key. A
//! backup encrypted with ksec (any format ksec reads) is opened in memory
//! first. Every key found is tried on every value, as the controller does.

use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use rsa::{RsaPrivateKey, RsaPublicKey};
use zeroize::Zeroizing;

use super::object::{self, Tree};
use super::pem;
use crate::error::{Error, Exit, Location, Result};
use crate::io::{self, Source};
use crate::k8s;
use crate::manifest::tree;
use crate::pipeline::{self, DecryptOptions, Session};

/// rsaEncryption.
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// One private key and where it came from.
pub struct RecoveryKey {
    key: RsaPrivateKey,
    /// `keys.yaml items[1] (sealed-secrets-keyx7k2q)`, `tls.key`.
    pub origin: String,
}

impl std::fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecoveryKey({}, [REDACTED])", self.origin)
    }
}

impl RecoveryKey {
    /// The private key.
    pub fn key(&self) -> &RsaPrivateKey {
        &self.key
    }

    /// Its public half.
    pub fn public(&self) -> RsaPublicKey {
        self.key.to_public_key()
    }

    /// Its size in bits.
    pub fn bits(&self) -> usize {
        self.key.size() * 8
    }
}

/// Every key supplied.
#[derive(Debug, Default)]
pub struct RecoveryKeys(pub Vec<RecoveryKey>);

impl RecoveryKeys {
    /// The private keys, in the order supplied.
    pub fn private(&self) -> Vec<&RsaPrivateKey> {
        self.0.iter().map(RecoveryKey::key).collect()
    }

    /// Reads the key files; files encrypted with ksec are opened first
    /// (their data keys through `session`).
    pub fn load(session: &Session, files: &[Source], max_input: u64) -> Result<RecoveryKeys> {
        let mut keys = Vec::new();
        for source in files {
            let name = source.display();
            let text = Zeroizing::new(io::read_text(source, max_input)?);
            if looks_pem(&text) {
                keys.extend(from_pem(&name, &text, &Location::file(&name))?);
                continue;
            }
            let mut stream = pipeline::parse(&name, text.to_string())?;
            let found = match pipeline::classify(&stream).map(|c| c.sealed() > 0) {
                Ok(true) => pipeline::decrypt(session, &stream, DecryptOptions::default())
                    .and_then(|clear| from_objects(&name, &clear.text)),
                Ok(false) => from_objects(&name, &text),
                Err(e) => Err(e),
            };
            super::wipe_stream(&mut stream);
            keys.extend(found?);
        }
        Ok(RecoveryKeys(keys))
    }
}

/// A PEM file rather than YAML: it has PEM blocks and does not read as a
/// YAML mapping.
fn looks_pem(text: &str) -> bool {
    pem::has_blocks(text)
        && match tree::parse_stream_lenient(text) {
            Ok(roots) => {
                let roots = Tree(roots);
                !roots
                    .0
                    .iter()
                    .any(|r| matches!(r.value, tree::NodeValue::Mapping(_)))
            }
            Err(_) => true,
        }
}

/// The Secrets of a key backup (a `List`, or Secrets as documents).
fn from_objects(file: &str, text: &str) -> Result<Vec<RecoveryKey>> {
    let roots =
        Tree(tree::parse_stream_lenient(text).map_err(|e| pipeline::locate_error(file, &e))?);
    let sites = object::find(&roots.0, &|n| object::kind(n) == Some("Secret"));
    if sites.is_empty() {
        return Err(Error::new(
            Exit::Input,
            "no-recovery-key",
            "holds neither a PEM private key nor Secrets with a tls.key (the controller's key backup)",
        )
        .in_file(file)
        .hint("pass the controller's private key (PEM) or the output of `kubectl get secret -n kube-system -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml`"));
    }
    let mut keys = Vec::new();
    for site in sites {
        let at = site.location(file);
        let from = |section: &str| {
            site.node
                .get(section)
                .and_then(|d| d.get("tls.key"))
                .and_then(object::text)
        };
        let pem_text = if let Some(b64) = from("data") {
            let bytes = k8s::decode_base64(b64).ok_or_else(|| {
                Error::new(Exit::Input, "no-recovery-key", "is not base64")
                    .at(at.clone().key("data.tls.key"))
            })?;
            Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned())
        } else if let Some(s) = from("stringData") {
            Zeroizing::new(s.to_owned())
        } else {
            return Err(Error::new(
                Exit::Input,
                "no-recovery-key",
                "the Secret has no tls.key: not a sealed-secrets key",
            )
            .at(at));
        };
        let name = site
            .node
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(object::text)
            .unwrap_or("unnamed");
        let mut origin = format!("{file} {}", crate::manifest::item_path(&site.item));
        origin = format!("{} ({name})", origin.trim_end());
        let mut found = from_pem(&origin, &pem_text, &at.clone().key("data.tls.key"))?;
        keys.append(&mut found);
    }
    Ok(keys)
}

/// The private keys of PEM text; other blocks (certificates) are skipped.
fn from_pem(origin: &str, text: &str, at: &Location) -> Result<Vec<RecoveryKey>> {
    let refuse = |exit, message: String| Error::new(exit, "recovery-key", message).at(at.clone());
    let mut keys = Vec::new();
    for block in pem::blocks(text) {
        let key = match block.label {
            "RSA PRIVATE KEY" if block.text.contains("ENCRYPTED") => {
                return Err(refuse(
                    Exit::Key,
                    "the private key is encrypted with a passphrase; the controller's keys are not"
                        .into(),
                )
                .hint("write an unencrypted copy with `openssl pkey -in KEY -out PLAIN.key`, and delete it afterwards"));
            }
            "RSA PRIVATE KEY" => block
                .der()
                .map_err(|e| e.to_string())
                .and_then(|der| RsaPrivateKey::from_pkcs1_der(&der).map_err(|e| e.to_string()))
                .map_err(|e| {
                    refuse(
                        Exit::Input,
                        format!("the PKCS#1 private key does not parse ({e})"),
                    )
                })?,
            "PRIVATE KEY" => pkcs8_rsa(&block).map_err(|e| match e {
                Pkcs8Error::NotRsa(alg) => refuse(
                    Exit::Key,
                    format!("the private key is {alg}, not RSA (sealed-secrets keys are RSA)"),
                ),
                Pkcs8Error::Malformed(why) => refuse(
                    Exit::Input,
                    format!("the PKCS#8 private key does not parse ({why})"),
                ),
            })?,
            "ENCRYPTED PRIVATE KEY" => {
                return Err(refuse(
                    Exit::Key,
                    "the private key is encrypted with a passphrase; the controller's keys are not"
                        .into(),
                )
                .hint("write an unencrypted copy with `openssl pkey -in KEY -out PLAIN.key`, and delete it afterwards"));
            }
            "EC PRIVATE KEY" | "OPENSSH PRIVATE KEY" | "DSA PRIVATE KEY" => {
                return Err(refuse(
                    Exit::Key,
                    format!(
                        "the private key is an {}, not RSA (sealed-secrets keys are RSA)",
                        block.label.trim_end_matches(" PRIVATE KEY").to_owned() + " key"
                    ),
                ));
            }
            _ => continue,
        };
        keys.push(RecoveryKey {
            key,
            origin: origin.to_owned(),
        });
    }
    if keys.is_empty() {
        return Err(refuse(
            Exit::Input,
            "holds no private key (-----BEGIN RSA PRIVATE KEY----- or -----BEGIN PRIVATE KEY-----)"
                .into(),
        ));
    }
    Ok(keys)
}

enum Pkcs8Error {
    NotRsa(String),
    Malformed(String),
}

fn pkcs8_rsa(block: &pem::Block<'_>) -> std::result::Result<RsaPrivateKey, Pkcs8Error> {
    let der = block
        .der()
        .map_err(|e| Pkcs8Error::Malformed(e.to_string()))?;
    let info = rsa::pkcs8::PrivateKeyInfo::try_from(der.as_slice())
        .map_err(|e| Pkcs8Error::Malformed(e.to_string()))?;
    let oid = info.algorithm.oid.to_string();
    if oid != RSA_ENCRYPTION {
        return Err(Pkcs8Error::NotRsa(match oid.as_str() {
            "1.2.840.10045.2.1" => "an EC key".to_owned(),
            "1.3.101.112" => "an Ed25519 key".to_owned(),
            other => format!("a key of the algorithm {other}"),
        }));
    }
    RsaPrivateKey::from_pkcs8_der(&der).map_err(|e| Pkcs8Error::Malformed(e.to_string()))
}
