//! What `git diff` shows for a kubesec Secret (`ksec textconv`): decrypted
//! values when a key opens it, otherwise each token as a fingerprint, and
//! footer lines with each wrapped data key and the MAC as fingerprints, so
//! key changes and rotations show up without a screenful of base64.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::codec;
use super::footer::{Footer, KSEC_PREFIX, KUBESEC_PREFIX};
use crate::formats::render::render_clear;
use crate::formats::{Opened, fingerprint};
use crate::manifest::{Document, Edit, Stream};

/// The diff view of one document.
pub fn view(
    stream: &Stream,
    doc: &Document,
    footer: &Footer,
    opened: Option<&Opened>,
) -> Vec<Edit> {
    let text = &stream.text;
    let mut edits = Vec::new();
    let clear = footer.clear;
    if let Some(block) = &doc.footer {
        edits.push(Edit {
            range: block.range.clone(),
            text: footer_view(
                &block.lines,
                doc.newline,
                doc.footer_indent,
                text[..block.range.end].ends_with('\n'),
            ),
        });
    }
    match opened {
        Some(opened) => {
            let values = opened.values.iter().filter(|v| v.doc == doc.position);
            for (site, value) in doc.sites.iter().zip(values) {
                if clear.contains(site.section) {
                    continue;
                }
                let ctx = site.context(doc.newline);
                let (shown, _) = render_clear(site, &value.clear, false, &ctx);
                edits.push(Edit {
                    range: site.range(),
                    text: shown,
                });
            }
        }
        None => {
            for site in &doc.sites {
                let value = site.value(text);
                if clear.contains(site.section) || !codec::looks_encrypted(value) {
                    continue;
                }
                let shown = format!("<encrypted:{}>", fingerprint(value));
                edits.push(Edit {
                    range: site.range(),
                    text: if site.flow() {
                        format!("\"{shown}\"")
                    } else {
                        shown
                    },
                });
            }
        }
    }
    edits
}

/// Footer lines with wrapped keys and the MAC shown as fingerprints.
fn footer_view(lines: &[String], newline: &str, indent: usize, terminated: bool) -> String {
    let pad = " ".repeat(indent);
    let shown: Vec<String> = lines
        .iter()
        .map(|raw| {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let shown = if line.starts_with(KSEC_PREFIX) || !line.starts_with(KUBESEC_PREFIX) {
                line.to_owned()
            } else if let Some(mac) = line.strip_prefix("# kubesec:mac:") {
                format!("{KUBESEC_PREFIX}mac ({})", fingerprint(mac))
            } else {
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
            };
            format!("{pad}{shown}")
        })
        .collect();
    let mut out = shown.join(newline);
    if terminated {
        out.push_str(newline);
    }
    out
}
