//! PEM blocks (RFC 7468) in a file that may hold several, and text around
//! them: kubeseal reads the first `CERTIFICATE` block of a certificate file
//! and the private key blocks of a key file, and ignores everything else.

use base64::Engine as _;
use zeroize::Zeroizing;

/// One `-----BEGIN LABEL-----` … `-----END LABEL-----` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block<'a> {
    /// The label (`CERTIFICATE`, `RSA PRIVATE KEY`, …).
    pub label: &'a str,
    /// The whole block, from `-----BEGIN` to the end of the `-----END` line.
    pub text: &'a str,
}

impl Block<'_> {
    /// The DER bytes of the block: the base64 between the BEGIN and END
    /// lines, white space (CR included) ignored. Decoded here rather than
    /// by `der`'s PEM reader, which loops forever on some malformed bodies
    /// (`MIIF\r\n`, found by fuzzing).
    pub fn der(&self) -> Result<Zeroizing<Vec<u8>>, PemError> {
        let body = self
            .text
            .split_once('\n')
            .map_or("", |(_, rest)| rest)
            .rsplit_once("-----END ")
            .map_or("", |(body, _)| body);
        if body.lines().any(|l| l.contains(':')) {
            return Err(PemError::Headers);
        }
        let compact: Zeroizing<Vec<u8>> =
            Zeroizing::new(body.bytes().filter(|b| !b.is_ascii_whitespace()).collect());
        if compact.is_empty() {
            return Err(PemError::Empty);
        }
        base64::engine::general_purpose::STANDARD
            .decode(&*compact)
            .map(Zeroizing::new)
            .map_err(|_| PemError::Base64)
    }
}

/// Why a PEM block's body does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    /// Nothing between the BEGIN and END lines.
    #[error("the PEM block is empty")]
    Empty,
    /// Legacy headers (`Proc-Type: 4,ENCRYPTED`, `DEK-Info: …`).
    #[error("the PEM block has headers (an encrypted legacy key?)")]
    Headers,
    /// Not base64.
    #[error("the PEM block is not valid base64")]
    Base64,
}

/// The complete blocks of `text`, in order; an unterminated block ends the
/// scan.
pub fn blocks(text: &str) -> Vec<Block<'_>> {
    let mut out = Vec::new();
    let mut rest = 0;
    while let Some(i) = text[rest..].find("-----BEGIN ") {
        let start = rest + i;
        let after = start + "-----BEGIN ".len();
        let Some(label_end) = text[after..].find("-----").map(|j| after + j) else {
            break;
        };
        let label = &text[after..label_end];
        if label.contains('\n') {
            rest = after;
            continue;
        }
        let end_marker = format!("-----END {label}-----");
        let Some(end) = text[label_end..].find(&end_marker) else {
            break;
        };
        let end = label_end + end + end_marker.len();
        out.push(Block {
            label,
            text: &text[start..end],
        });
        rest = end;
    }
    out
}

/// Whether `text` holds a PEM block at all.
pub fn has_blocks(text: &str) -> bool {
    !blocks(text).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_bodies_without_looping() {
        let b = blocks("-----BEGIN CERTIFICATE-----\nMIIF\r\n-----END CERTIFICATE-----\n");
        assert_eq!(b[0].der().unwrap().as_slice(), &[0x30, 0x82, 0x05]);
        let b = blocks("-----BEGIN X-----\r\nAQ\r\nID\r\n-----END X-----");
        assert_eq!(b[0].der().unwrap().as_slice(), &[1, 2, 3]);
        let b = blocks("-----BEGIN X-----\n-----END X-----");
        assert_eq!(b[0].der(), Err(PemError::Empty));
        let b = blocks("-----BEGIN X-----\n!!!!\n-----END X-----");
        assert_eq!(b[0].der(), Err(PemError::Base64));
        let b = blocks("-----BEGIN X-----\nProc-Type: 4,ENCRYPTED\n\nAQID\n-----END X-----");
        assert_eq!(b[0].der(), Err(PemError::Headers));
    }

    #[test]
    fn finds_blocks_among_text() {
        let text = "subject=x\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n\
junk\n-----BEGIN RSA PRIVATE KEY-----\nBBBB\n-----END RSA PRIVATE KEY-----\n-----BEGIN X-----\n";
        let b = blocks(text);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].label, "CERTIFICATE");
        assert!(b[0].text.ends_with("-----END CERTIFICATE-----"));
        assert_eq!(b[1].label, "RSA PRIVATE KEY");
        assert!(blocks("no pem here").is_empty());
    }
}
