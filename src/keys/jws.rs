//! Signed JWTs (RFC 7519) with RS256 (RSASSA-PKCS1-v1_5 with SHA-256,
//! RFC 7518 §3.3), and the PEM (RFC 7468) that carries the keys: what the
//! GCP service-account grant (RFC 7523) and Azure certificate assertions
//! need. ring does the signing; nothing here knows a service.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use serde_json::Value;
use zeroize::Zeroizing;

/// Why a PEM text or a key could not be used, or a signature made.
#[derive(Debug, thiserror::Error)]
pub enum JwsError {
    #[error("the PEM block `{0}` is encrypted; give an unencrypted key")]
    /// A legacy encrypted block (`Proc-Type`), by label.
    Encrypted(String),
    #[error("the PEM block `{0}` has no END line")]
    /// A block without its END line, by label.
    Unterminated(String),
    #[error("the PEM block `{0}` is not valid base64")]
    /// A block whose body is not base64, by label.
    Base64(String),
    #[error("no private key (-----BEGIN PRIVATE KEY-----) in it")]
    /// No `… PRIVATE KEY` block.
    NoPrivateKey,
    #[error("a `{0}` is not an RSA private key in PKCS#8 or PKCS#1 form")]
    /// A private key of another kind, by label.
    NotRsa(String),
    #[error("not a usable RSA private key: {0}")]
    /// A key ring refuses, and why.
    Unusable(String),
    #[error("RSA signing failed")]
    /// The signature could not be made.
    Signing,
}

/// One PEM block: its label (`PRIVATE KEY`, `CERTIFICATE`) and DER bytes.
pub struct PemBlock {
    /// The label between `-----BEGIN ` and `-----`.
    pub label: String,
    /// The decoded contents.
    pub der: Zeroizing<Vec<u8>>,
}

/// Every PEM block of `text`, in order; text outside blocks is ignored.
pub fn pem_blocks(text: &str) -> Result<Vec<PemBlock>, JwsError> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(label) = line
            .trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut b64 = Zeroizing::new(String::new());
        let mut closed = false;
        for l in lines.by_ref() {
            let l = l.trim();
            if l == end {
                closed = true;
                break;
            }
            // RFC 7468 allows headers in legacy blocks (Proc-Type: …).
            if !l.contains(':') {
                b64.push_str(l);
            } else if l.starts_with("Proc-Type") {
                return Err(JwsError::Encrypted(label.to_owned()));
            }
        }
        if !closed {
            return Err(JwsError::Unterminated(label.to_owned()));
        }
        let der = B64
            .decode(b64.as_bytes())
            .map_err(|_| JwsError::Base64(label.to_owned()))?;
        out.push(PemBlock {
            label: label.to_owned(),
            der: Zeroizing::new(der),
        });
    }
    Ok(out)
}

/// An RSA private key that signs JWTs.
pub struct RsaSigner {
    key: ring::signature::RsaKeyPair,
}

impl std::fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RsaSigner([REDACTED])")
    }
}

impl RsaSigner {
    /// The first private key in `pem`: PKCS#8 (`PRIVATE KEY`) or PKCS#1
    /// (`RSA PRIVATE KEY`).
    pub fn from_pem(pem: &str) -> Result<RsaSigner, JwsError> {
        let blocks = pem_blocks(pem)?;
        let block = blocks
            .iter()
            .find(|b| b.label.ends_with("PRIVATE KEY"))
            .ok_or(JwsError::NoPrivateKey)?;
        let key = match block.label.as_str() {
            "PRIVATE KEY" => ring::signature::RsaKeyPair::from_pkcs8(&block.der),
            "RSA PRIVATE KEY" => ring::signature::RsaKeyPair::from_der(&block.der),
            other => {
                return Err(JwsError::NotRsa(other.to_owned()));
            }
        }
        .map_err(|e| JwsError::Unusable(e.to_string()))?;
        Ok(RsaSigner { key })
    }

    /// `header.claims.signature`, base64url without padding; `alg: RS256`
    /// and `typ: JWT` are set in the header.
    pub fn sign_jwt(&self, header: &Value, claims: &Value) -> Result<Zeroizing<String>, JwsError> {
        let mut header = header.clone();
        header["alg"] = Value::from("RS256");
        header["typ"] = Value::from("JWT");
        let mut out = Zeroizing::new(format!(
            "{}.{}",
            B64URL.encode(serde_json::to_vec(&header).unwrap_or_default()),
            B64URL.encode(serde_json::to_vec(claims).unwrap_or_default())
        ));
        let mut sig = vec![0u8; ring::signature::KeyPair::public_key(&self.key).modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                out.as_bytes(),
                &mut sig,
            )
            .map_err(|_| JwsError::Signing)?;
        out.push('.');
        out.push_str(&B64URL.encode(&sig));
        Ok(out)
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_and_refusals() {
        let text = "junk\n-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n\
                    -----BEGIN PRIVATE KEY-----\nBAUG\n-----END PRIVATE KEY-----\n";
        let b = pem_blocks(text).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].label, "CERTIFICATE");
        assert_eq!(b[0].der.as_slice(), &[1, 2, 3]);
        assert!(matches!(
            pem_blocks("-----BEGIN X-----\nAQID\n"),
            Err(JwsError::Unterminated(l)) if l == "X"
        ));
        assert!(matches!(
            pem_blocks("-----BEGIN X-----\n!!!\n-----END X-----\n"),
            Err(JwsError::Base64(_))
        ));
        assert!(matches!(
            RsaSigner::from_pem(text),
            Err(JwsError::Unusable(_))
        ));
        assert!(matches!(
            RsaSigner::from_pem("nothing"),
            Err(JwsError::NoPrivateKey)
        ));
    }
}
