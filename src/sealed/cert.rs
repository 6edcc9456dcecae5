//! The controller's certificate: the RSA key values are sealed for, and
//! when it expires.
//!
//! As kubeseal (`ParseKey`): the first PEM `CERTIFICATE` block is used and
//! other blocks are ignored; the key must be RSA; a certificate past its
//! notAfter is refused for sealing (the controller would still open what it
//! seals, but it has rotated its key by then, and new SealedSecrets should
//! use the current one). notBefore, the chain and key usage are not
//! checked: the certificate is a container for the public key, which the
//! controller signed itself.

use rsa::RsaPublicKey;
use rsa::pkcs8::DecodePublicKey as _;
use rsa::traits::PublicKeyParts as _;
use x509_cert::der::{Decode as _, Encode as _};

use super::pem;

/// rsaEncryption (RFC 8017 appendix C).
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// Why a certificate cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// No PEM `CERTIFICATE` block.
    #[error("holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate,
    /// The block does not parse as an X.509 certificate.
    #[error("the certificate does not parse ({0})")]
    Malformed(String),
    /// The key is of another kind.
    #[error("the certificate's key is {0}, not RSA (sealed-secrets controllers use RSA keys)")]
    NotRsa(String),
    /// Past its notAfter.
    #[error("the certificate expired on {0}")]
    Expired(String),
}

/// A controller certificate.
#[derive(Debug, Clone)]
pub struct Certificate {
    key: RsaPublicKey,
    not_after: u64,
}

impl Certificate {
    /// Reads the first certificate of a PEM file.
    pub fn from_pem(text: &str) -> Result<Certificate, CertError> {
        let block = pem::blocks(text)
            .into_iter()
            .find(|b| b.label == "CERTIFICATE")
            .ok_or(CertError::NoCertificate)?;
        let der = block
            .der()
            .map_err(|e| CertError::Malformed(e.to_string()))?;
        let cert = x509_cert::Certificate::from_der(&der)
            .map_err(|e| CertError::Malformed(e.to_string()))?;
        let tbs = &cert.tbs_certificate;
        let spki = &tbs.subject_public_key_info;
        let oid = spki.algorithm.oid.to_string();
        if oid != RSA_ENCRYPTION {
            return Err(CertError::NotRsa(algorithm_name(&oid)));
        }
        let der = spki
            .to_der()
            .map_err(|e| CertError::Malformed(e.to_string()))?;
        let key = RsaPublicKey::from_public_key_der(&der)
            .map_err(|e| CertError::Malformed(e.to_string()))?;
        let not_after = tbs.validity.not_after.to_unix_duration().as_secs();
        Ok(Certificate { key, not_after })
    }

    /// The public key.
    pub fn key(&self) -> &RsaPublicKey {
        &self.key
    }

    /// The key size in bits.
    pub fn bits(&self) -> usize {
        self.key.size() * 8
    }

    /// notAfter, seconds since the epoch.
    pub fn not_after(&self) -> u64 {
        self.not_after
    }

    /// Refuses a certificate past its notAfter at `now` (seconds since the
    /// epoch), naming the day as kubeseal does (`January 31, 2024`).
    pub fn check_current(&self, now: u64) -> Result<(), CertError> {
        if now > self.not_after {
            return Err(CertError::Expired(format!(
                "{} ({})",
                long_date(self.not_after),
                crate::clock::rfc3339(self.not_after)
            )));
        }
        Ok(())
    }
}

/// `January 31, 2024` for a time (Go's `January 2, 2006` layout).
fn long_date(secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let day = crate::clock::rfc3339(secs);
    let (y, m, d) = (&day[0..4], &day[5..7], &day[8..10]);
    let m: usize = m.parse().unwrap_or(1);
    let d: u32 = d.parse().unwrap_or(1);
    format!("{} {d}, {y}", MONTHS[m.clamp(1, 12) - 1])
}

/// A name for a public key algorithm, for the refusal.
fn algorithm_name(oid: &str) -> String {
    match oid {
        "1.2.840.10045.2.1" => "ECDSA".to_owned(),
        "1.3.101.112" => "Ed25519".to_owned(),
        "1.3.101.113" => "Ed448".to_owned(),
        "1.2.840.10040.4.1" => "DSA".to_owned(),
        "1.2.840.113549.1.1.10" => "RSASSA-PSS (an RSA key restricted to signatures)".to_owned(),
        other => format!("of the algorithm {other}"),
    }
}

/// How long fetching a certificate from a URL may take.
pub const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Where `--cert` points: a file, `file://PATH`, or an `http(s)://` URL.
pub fn load(arg: &str, max_input: u64, timeout: std::time::Duration) -> crate::Result<Certificate> {
    use crate::error::{Error, Exit};
    let (text, shown) = if arg.starts_with("http://") || arg.starts_with("https://") {
        let text = crate::keys::cert_url::fetch(arg, timeout).map_err(|why| {
            Error::new(
                Exit::Io,
                "cert",
                format!("--cert {arg}: cannot fetch the certificate: {why}"),
            )
        })?;
        (text, arg.to_owned())
    } else {
        let path = arg.strip_prefix("file://").unwrap_or(arg);
        let source = crate::io::Source::File(std::path::PathBuf::from(path));
        (crate::io::read_text(&source, max_input)?, path.to_owned())
    };
    Certificate::from_pem(&text).map_err(|e| {
        Error::new(Exit::Key, "cert", e.to_string())
            .in_file(&shown)
            .hint("pass the controller's certificate: `kubeseal --fetch-cert > cert.pem`, or the tls.crt of its key Secret")
    })
}

impl Certificate {
    /// [`Certificate::check_current`] as a user-facing refusal.
    pub fn require_current(&self, shown: &str, now: u64) -> crate::Result<()> {
        self.check_current(now).map_err(|e| {
            crate::error::Error::new(crate::error::Exit::Key, "cert-expired", e.to_string())
                .in_file(shown)
                .hint("seal for the controller's current certificate (`kubeseal --fetch-cert`); it renews its key every 30 days by default")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_dates() {
        assert_eq!(long_date(1_706_659_200), "January 31, 2024");
        assert_eq!(long_date(0), "January 1, 1970");
    }

    #[test]
    fn refusals() {
        assert_eq!(
            Certificate::from_pem("nothing").unwrap_err(),
            CertError::NoCertificate
        );
        assert!(matches!(
            Certificate::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .unwrap_err(),
            CertError::Malformed(_)
        ));
    }
}
