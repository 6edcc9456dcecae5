//! `ksec textconv FILE`: what `git diff` shows for an encrypted file
//! (`.gitattributes`: `*.yaml diff=ksec`; `git config diff.ksec.textconv
//! "ksec textconv"`).
//!
//! Each Secret that an available key opens (and whose MAC verifies) is
//! shown decrypted, as `decrypt` prints it. Every other encrypted value is
//! shown as `<encrypted:1a2b3c4d>`: the first 8 hex digits of the SHA-256
//! of its **ciphertext token**. A token changes whenever its value changes
//! (a changed value always gets a fresh IV) and stays byte for byte when
//! the value does not, so the reviewer still sees which keys changed, were
//! added or removed; and since the hash input is ciphertext under a random
//! IV, the fingerprint says nothing about the clear value (equal values
//! have different fingerprints).
//!
//! Footer lines are shown with each wrapped data key and the MAC replaced
//! by the same kind of fingerprint, so key changes and rotations show up
//! without a screenful of base64. A file that is not YAML, or has no
//! Secret, is printed as it is; textconv never fails on its input (git
//! would show nothing at all).

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest as _, Sha256};

use super::decrypt::render_clear;
use crate::envelope::codec;
use crate::envelope::footer::{Footer, KSEC_PREFIX, KUBESEC_PREFIX};
use crate::error::Result;
use crate::io::{self, Source};
use crate::keys::Keyring;
use crate::manifest::{self, Edit};
use crate::secret::{self, OpenOptions, State};

/// Runs `textconv`.
pub fn run(file: &Path, max_input: u64, keyring: &Keyring) -> Result<()> {
    let text = io::read_text(&Source::File(file.to_owned()), max_input);
    let out = match &text {
        Ok(t) => textconv(t, keyring),
        // Not UTF-8, too large: git shows it as it is.
        Err(_) => {
            let bytes = std::fs::read(file).unwrap_or_default();
            return io::write_stdout(&bytes);
        }
    };
    io::write_stdout(out.as_bytes())
}

/// The first 8 hex digits of the SHA-256 of `s`.
pub fn fingerprint(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// The text `git diff` compares for `text`.
pub fn textconv(text: &str, keyring: &Keyring) -> String {
    let Ok(docs) = manifest::locate(text) else {
        return text.to_owned();
    };
    let mut footers = Vec::new();
    for doc in docs.iter().filter(|d| d.is_secret && d.problems.is_empty()) {
        if let Ok(State::Encrypted(f)) = secret::classify(doc) {
            footers.push((doc, f));
        }
    }
    if footers.is_empty() {
        return text.to_owned();
    }
    let lines: Vec<&[crate::envelope::footer::WrappedKey]> =
        footers.iter().map(|(_, f)| f.keys.as_slice()).collect();
    keyring.unwrap_all(&lines);
    let mut edits = Vec::new();
    for (doc, footer) in footers {
        let clear = footer.clear;
        let block = doc
            .footer
            .as_ref()
            .expect("an encrypted document has a footer");
        edits.push(Edit {
            range: block.range.clone(),
            text: footer_view(
                &block.lines,
                doc.newline,
                text[..block.range.end].ends_with('\n'),
            ),
        });
        match secret::open(doc, footer, keyring, OpenOptions::default()) {
            Ok(opened) => {
                for (site, value) in doc.sites.iter().zip(&opened.values) {
                    if secret::is_clear(clear, site.section) {
                        continue;
                    }
                    let ctx = site.context(doc.newline);
                    let (shown, _) = render_clear(site, &value.clear, false, &ctx);
                    edits.push(Edit {
                        range: site.range.clone(),
                        text: shown,
                    });
                }
            }
            Err(_) => {
                for site in &doc.sites {
                    if secret::is_clear(clear, site.section) || !codec::looks_encrypted(&site.value)
                    {
                        continue;
                    }
                    let shown = format!("<encrypted:{}>", fingerprint(&site.value));
                    edits.push(Edit {
                        range: site.range.clone(),
                        text: if site.flow {
                            format!("\"{shown}\"")
                        } else {
                            shown
                        },
                    });
                }
            }
        }
    }
    manifest::splice(text, &mut edits)
}

/// Footer lines with wrapped keys and the MAC shown as fingerprints.
fn footer_view(lines: &[String], newline: &str, terminated: bool) -> String {
    let shown: Vec<String> = lines
        .iter()
        .map(|raw| {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.starts_with(KSEC_PREFIX) || !line.starts_with(KUBESEC_PREFIX) {
                return line.to_owned();
            }
            if let Some(mac) = line.strip_prefix("# kubesec:mac:") {
                return format!("{KUBESEC_PREFIX}mac ({})", fingerprint(mac));
            }
            match Footer::parse(["# kubesec:v:3", line]) {
                Ok(f) if f.keys.len() == 1 => {
                    let k = &f.keys[0];
                    format!(
                        "{KUBESEC_PREFIX}{}:{} (wrapped data key {})",
                        k.key.kind,
                        k.key.id,
                        fingerprint(&B64.encode(&k.blob))
                    )
                }
                _ => line.to_owned(),
            }
        })
        .collect();
    let mut out = shown.join(newline);
    if terminated {
        out.push_str(newline);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprints_are_short_and_stable() {
        assert_eq!(super::fingerprint("abc"), "ba7816bf");
        assert_eq!(super::fingerprint("abc").len(), 8);
    }
}
