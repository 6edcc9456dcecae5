//! `ksec decrypt`: the clear manifest, for `kubectl apply -f -`.

use zeroize::Zeroizing;

use super::parent::ParentDoc;
use super::{Output, check_problems, doc_failure, place, warn};
use crate::error::{Exit, Failure, Result};
use crate::io::Source;
use crate::keys::Keyring;
use crate::manifest::scalar::{self, Context};
use crate::manifest::{self, Edit, Section, ValueSite};
use crate::secret::{self, OpenOptions, State};

/// What `decrypt` was asked to do.
pub struct DecryptPlan {
    /// Input.
    pub source: Source,
    /// Where the result goes.
    pub output: Output,
    /// Write `data` values base64-decoded (non-UTF-8 as `!!binary`).
    pub cleartext: bool,
    /// Accept v1/v2 files, which have no MAC.
    pub allow_missing_mac: bool,
    /// Input size limit.
    pub max_input: u64,
}

/// Runs `decrypt`.
pub fn run(plan: &DecryptPlan, keyring: &Keyring) -> Result<()> {
    let file = plan.source.display();
    let text = crate::io::read_text(&plan.source, plan.max_input)?;
    let out = decrypt_stream(
        &file,
        &text,
        plan.cleartext,
        plan.allow_missing_mac,
        keyring,
    )?;
    plan.output.write(&text, &out)
}

/// Decrypts every Secret document of a stream and returns the verified
/// result. `file` names the input in messages.
pub fn decrypt_stream(
    file: &str,
    text: &str,
    cleartext: bool,
    allow_missing_mac: bool,
    keyring: &Keyring,
) -> Result<String> {
    decrypt_opened(file, text, cleartext, allow_missing_mac, keyring).map(|(out, _)| out)
}

/// [`decrypt_stream`], also returning every opened Secret (data key, footer,
/// values with their tokens) so that a caller can seal an edited version
/// against them without unwrapping the data keys again.
pub fn decrypt_opened(
    file: &str,
    text: &str,
    cleartext: bool,
    allow_missing_mac: bool,
    keyring: &Keyring,
) -> Result<(String, Vec<ParentDoc>)> {
    let docs = manifest::locate(text).map_err(|e| super::locate_failure(file, &e))?;
    let opts = OpenOptions {
        allow_missing_mac,
        skip_mac: false,
    };
    let mut edits = Vec::new();
    let mut expected: Vec<(usize, Vec<Zeroizing<String>>)> = Vec::new();
    let mut opened_docs = Vec::new();
    for doc in docs.iter().filter(|d| d.is_secret) {
        check_problems(file, doc)?;
        let footer = match secret::classify(doc).map_err(|e| doc_failure(file, doc, e))? {
            State::Encrypted(f) => f,
            State::Plain => {
                return Err(Failure::new(
                    Exit::State,
                    format!(
                        "{}: the Secret is not encrypted",
                        place(file, doc, doc.line)
                    ),
                )
                .hint("there is nothing to decrypt; `ksec encrypt` encrypts it"));
            }
        };
        if footer.version < 3 && allow_missing_mac {
            warn(&format!(
                "{}: format v{} has no MAC; values are not protected against tampering",
                place(file, doc, doc.line),
                footer.version
            ));
        }
        let opened =
            secret::open(doc, footer, keyring, opts).map_err(|e| doc_failure(file, doc, e))?;
        let mut intended = Vec::with_capacity(doc.sites.len());
        for (site, value) in doc.sites.iter().zip(&opened.values) {
            let ctx = Context {
                flow: site.flow,
                indent: site.indent,
                newline: doc.newline,
                line_rest_empty: site.line_rest_empty,
            };
            let (text, parsed) = render_clear(site, &value.clear, cleartext, &ctx);
            edits.push(Edit {
                range: site.range.clone(),
                text,
            });
            intended.push(parsed);
        }
        if let Some(f) = &doc.footer {
            edits.push(manifest::remove_footer(text, f));
        }
        expected.push((doc.index, intended));
        opened_docs.push(ParentDoc::new(doc, opened));
    }
    if expected.is_empty() {
        warn(&format!(
            "{file}: no Secret documents; the input is passed through unchanged"
        ));
    }
    let out = manifest::splice(text, &mut edits);
    verify(&out, docs.len(), &expected).map_err(|why| {
        Failure::new(Exit::Other, format!("{file}: internal error: the decrypted result did not verify ({why}); nothing was written"))
    })?;
    Ok((out, opened_docs))
}

/// The text to write for a clear value, and the string it parses back to.
fn render_clear(
    site: &ValueSite,
    clear: &str,
    cleartext: bool,
    ctx: &Context<'_>,
) -> (String, Zeroizing<String>) {
    if cleartext
        && site.section == Section::Data
        && let Some(bytes) = secret::decode_base64(clear)
    {
        return match std::str::from_utf8(&bytes) {
            Ok(s) => (scalar::render(s, ctx), Zeroizing::new(s.to_owned())),
            Err(_) => {
                let b64 = secret::encode_base64(&bytes);
                let flat = Context {
                    line_rest_empty: false,
                    ..*ctx
                };
                (format!("!!binary {}", scalar::render(&b64, &flat)), b64)
            }
        };
    }
    (scalar::render(clear, ctx), Zeroizing::new(clear.to_owned()))
}

/// Re-reads the output: same number of documents, every decrypted Secret
/// plain, and every value parses back to exactly what was meant.
fn verify(
    out: &str,
    doc_count: usize,
    expected: &[(usize, Vec<Zeroizing<String>>)],
) -> std::result::Result<(), String> {
    let docs = manifest::locate(out).map_err(|e| e.to_string())?;
    if docs.len() != doc_count {
        return Err(format!("{} documents instead of {doc_count}", docs.len()));
    }
    for (index, values) in expected {
        let doc = &docs[index - 1];
        if doc.footer.is_some() || doc.sites.len() != values.len() {
            return Err(format!("document {index} changed shape"));
        }
        for (site, v) in doc.sites.iter().zip(values) {
            if site.value != **v {
                return Err(format!(
                    "document {index}, {} does not read back",
                    secret::label(site)
                ));
            }
        }
    }
    Ok(())
}
