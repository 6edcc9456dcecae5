//! PEM blocks (RFC 7468) in a file that may hold several, and text around
//! them: kubeseal reads the first `CERTIFICATE` block of a certificate file
//! and the private key blocks of a key file, and ignores everything else.

/// One `-----BEGIN LABEL-----` … `-----END LABEL-----` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block<'a> {
    /// The label (`CERTIFICATE`, `RSA PRIVATE KEY`, …).
    pub label: &'a str,
    /// The whole block, from `-----BEGIN` to the end of the `-----END` line.
    pub text: &'a str,
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
