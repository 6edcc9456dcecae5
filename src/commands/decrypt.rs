//! `ksec decrypt`: the clear manifest, for `kubectl apply -f -`.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::parent::ParentDoc;
use super::{Output, check_problems, doc_failure, place, warn};
use crate::error::{Exit, Failure, Result};
use crate::io::Source;
use crate::keys::Keyring;
use crate::manifest::amend;
use crate::manifest::scalar::{self, Context};
use crate::manifest::{self, Edit, Section, ValueSite};
use crate::secret::{self, OpenOptions, State};
use crate::template::{Template, Value};

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
    /// Render this Go-style template per Secret instead of the manifest.
    pub template: Option<String>,
    /// Input size limit.
    pub max_input: u64,
}

/// Runs `decrypt`.
pub fn run(plan: &DecryptPlan, keyring: &Keyring) -> Result<()> {
    let file = plan.source.display();
    let text = crate::io::read_text(&plan.source, plan.max_input)?;
    let template = match &plan.template {
        Some(t) => Some(
            Template::parse(t)
                .map_err(|e| Failure::new(Exit::Usage, format!("--template: {e}")))?,
        ),
        None => None,
    };
    let out = decrypt_stream(
        &file,
        &text,
        plan.cleartext,
        plan.allow_missing_mac,
        keyring,
    )?;
    match template {
        Some(t) => {
            let rendered = render_template(&file, &out, &t)?;
            plan.output.write(&text, &rendered)
        }
        None => plan.output.write(&text, &out),
    }
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

/// Renders `template` once per Secret of the decrypted stream, in order.
fn render_template(file: &str, clear: &str, template: &Template) -> Result<Zeroizing<String>> {
    let docs = manifest::locate(clear).map_err(|e| super::locate_failure(file, &e))?;
    let roots = amend::outline(clear).map_err(|e| super::locate_failure(file, &e))?;
    let mut out = Zeroizing::new(String::new());
    for doc in docs.iter().filter(|d| d.is_secret) {
        let value = to_value(&roots[doc.index - 1]);
        let text = template.render(&value).map_err(|e| {
            Failure::new(
                Exit::Input,
                format!("{}: --template: {e}", place(file, doc, doc.line)),
            )
        })?;
        out.push_str(&text);
    }
    Ok(out)
}

/// A document as the template sees it: scalars are strings (null is nil).
fn to_value(node: &amend::Node) -> Value {
    match &node.kind {
        amend::Kind::Scalar(s) if node.range.is_empty() => {
            let _ = s;
            Value::Nil
        }
        amend::Kind::Scalar(s) => Value::str(s.clone()),
        amend::Kind::Mapping(m) => Value::Map(
            m.entries
                .iter()
                .map(|e| (e.key.clone(), to_value(&e.value)))
                .collect::<BTreeMap<_, _>>(),
        ),
        amend::Kind::Sequence(items) => Value::List(items.iter().map(to_value).collect()),
        amend::Kind::Other => Value::Nil,
    }
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
