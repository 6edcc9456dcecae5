//! `ksec decrypt`: the clear manifest, for `kubectl apply -f -`.
//!
//! What kubectl needs from the stream, beyond valid YAML (each point was
//! checked against the real kubectl, see tests/integration/kubectl.rs):
//!
//! * Nothing but clear Secrets: a document that still carries ciphertext or a
//!   footer (say, a Secret whose `kind` or `apiVersion` was edited, so ksec
//!   does not see a Secret) is refused, because kubectl would store the
//!   ciphertext as the value.
//! * Documents split where kubectl splits them: kubectl cuts a stream only at
//!   lines that start with `---`; it ignores `...` end markers and treats
//!   `--- {content}` as an error. A document kubectl would merge into its
//!   neighbour (silently dropping it) is refused.
//! * Otherwise the output is the input with values decrypted and footers
//!   removed, byte for byte: a leading byte order mark and a missing final
//!   line break stay as they were (kubectl copes with both), so that
//!   `decrypt(encrypt(x)) == x` holds on every output path.
//!
//! And a warning: client-side `kubectl apply` copies the whole manifest,
//! clear values included, into the `kubectl.kubernetes.io/last-applied-configuration`
//! annotation, which `kubectl describe` prints and every reader of the
//! object's metadata sees. Whenever decrypted Secrets go to stdout and stdout
//! is not a terminal (a pipe or a file, so probably on the way to kubectl),
//! ksec says so once on stderr and suggests `--server-side`; `--quiet`
//! silences it.

use std::io::IsTerminal as _;

use std::collections::BTreeMap;
use std::path::PathBuf;

use zeroize::Zeroizing;

use super::parent::ParentDoc;
use super::{Output, batch, check_problems, doc_failure, place, warn};
use crate::envelope::codec;
use crate::error::{Exit, Failure, Result};
use crate::io::Source;
use crate::keys::Keyring;
use crate::manifest::amend;
use crate::manifest::scalar::{self, Context};
use crate::manifest::{self, Document, Edit, Section, ValueSite};
use crate::paths;
use crate::progress::Progress;
use crate::secret::{self, OpenOptions, State};
use crate::template::{Template, Value};

/// What `decrypt` was asked to do.
pub struct DecryptPlan {
    /// Files and directories (`-` or nothing: stdin).
    pub paths: Vec<PathBuf>,
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
    /// No advice on stderr about where the output goes.
    pub quiet: bool,
}

/// Runs `decrypt`: every input is decrypted (the data keys of all of them
/// in one batch) before anything is written. One file gives exactly its
/// decrypted bytes; several give one stream (see [`join_streams`]), or with
/// `-i` each file is rewritten.
pub fn run(plan: &DecryptPlan, keyring: &Keyring) -> Result<()> {
    let inputs = paths::expand_some(&plan.paths, Source::Stdin)?;
    let template = match &plan.template {
        Some(t) => Some(
            Template::parse(t)
                .map_err(|e| Failure::new(Exit::Usage, format!("--template: {e}")))?,
        ),
        None => None,
    };
    if plan.output.is_in_place() && inputs.sources.contains(&Source::Stdin) {
        plan.output.for_source(&Source::Stdin)?;
    }
    let mut progress = Progress::new(inputs.sources.len());
    let files = batch::load_all(&inputs.sources, plan.max_input, &mut progress)?;
    batch::unwrap_everything(keyring, &files, plan.allow_missing_mac, &mut progress);
    let mut outs = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        progress.files("decrypting", i);
        let (out, _) = decrypt_docs(
            &f.name,
            &f.text,
            &f.docs,
            plan.cleartext,
            plan.allow_missing_mac,
            keyring,
            inputs.single,
            false,
        )?;
        outs.push(out);
    }
    progress.clear();
    if let Some(t) = template {
        let mut rendered = Zeroizing::new(String::new());
        for (f, out) in files.iter().zip(&outs) {
            rendered.push_str(&render_template(&f.name, out, &t)?);
        }
        let original = if inputs.single {
            files[0].text.as_str()
        } else {
            ""
        };
        return plan.output.write(original, &rendered);
    }
    if plan.output.is_in_place() {
        for (f, out) in files.iter().zip(&outs) {
            plan.output.for_source(&f.source)?.write(&f.text, out)?;
        }
        return Ok(());
    }
    let (name, original, out) = if inputs.single {
        (
            files[0].name.clone(),
            files[0].text.as_str(),
            Zeroizing::new(outs.remove(0)),
        )
    } else {
        let parts: Vec<&str> = outs.iter().map(String::as_str).collect();
        ("<joined stream>".to_owned(), "", join_streams(&parts))
    };
    check_kubectl_split(&name, &out)?;
    if plan.output == Output::Stdout && !plan.quiet && !std::io::stdout().is_terminal() {
        advise(
            files.iter().any(|f| f.docs.iter().any(|d| d.is_secret)),
            plan.cleartext,
        );
    }
    plan.output.write(original, &out)
}

/// Joins decrypted files into one stream for `kubectl apply -f -`: a byte
/// order mark only where the stream starts, every part ending with a line
/// break, and exactly one `---` line between parts (none added before a
/// part that starts with one, after comments and blank lines). Parts without
/// any document (empty files, only comments) are left out.
pub fn join_streams(parts: &[&str]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(
        parts.iter().map(|p| p.len() + 5).sum(),
    ));
    for part in parts {
        let body = if out.is_empty() {
            *part
        } else {
            part.strip_prefix('\u{feff}').unwrap_or(part)
        };
        if !has_document(body) {
            continue;
        }
        if !out.is_empty() {
            if !out.ends_with('\n') {
                out.push('\n');
            }
            if !starts_with_separator(body) {
                out.push_str("---\n");
            }
        }
        out.push_str(body);
    }
    if !out.is_empty() && !out.ends_with('\n') && parts.len() > 1 {
        out.push('\n');
    }
    out
}

/// Whether a part has anything besides comments, blank lines and markers.
fn has_document(text: &str) -> bool {
    text.lines().any(|l| {
        let t = l.trim_start_matches('\u{feff}').trim();
        !(t.is_empty() || t.starts_with('#') || t == "---" || t == "...")
    })
}

/// Whether the first line that is not blank or a comment is a `---` line.
fn starts_with_separator(text: &str) -> bool {
    text.lines()
        .map(str::trim_end)
        .find(|l| !(l.trim().is_empty() || l.starts_with('#')))
        .is_some_and(is_kubectl_separator)
}

/// The advice for output that is probably on its way to kubectl.
fn advise(has_secret: bool, cleartext: bool) {
    if !has_secret {
        return;
    }
    if cleartext {
        warn(
            "--cleartext output is for reading, not for kubectl: its `data` values are no longer base64, \
so the API server refuses them or, where the text happens to be valid base64, stores other bytes",
        );
    } else {
        warn(
            "client-side `kubectl apply` copies these clear values into the \
kubectl.kubernetes.io/last-applied-configuration annotation, where `kubectl describe` shows them",
        );
        eprintln!(
            "  hint: use `kubectl apply --server-side -f -` or `kubectl create -f -`; --quiet silences this"
        );
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
    decrypt_docs(
        file,
        text,
        &docs,
        cleartext,
        allow_missing_mac,
        keyring,
        true,
        true,
    )
}

/// [`decrypt_opened`] on a stream located already. `warn_empty`: say so on
/// stderr when the stream has no Secret (not for each file of a tree).
/// `keep_opened`: return the opened Secrets (otherwise each one's clear
/// values are dropped as soon as they are written out).
#[allow(clippy::too_many_arguments)]
pub fn decrypt_docs(
    file: &str,
    text: &str,
    docs: &[Document],
    cleartext: bool,
    allow_missing_mac: bool,
    keyring: &Keyring,
    warn_empty: bool,
    keep_opened: bool,
) -> Result<(String, Vec<ParentDoc>)> {
    let opts = OpenOptions {
        allow_missing_mac,
        skip_mac: false,
        drop_tokens: !keep_opened,
    };
    for doc in docs {
        if !doc.is_secret {
            refuse_hidden_ciphertext(file, doc)?;
        }
        refuse_stray_ciphertext(file, doc)?;
    }
    let secrets: Vec<&manifest::Document> = docs.iter().filter(|d| d.is_secret).collect();
    let mut footers = Vec::with_capacity(secrets.len());
    for doc in &secrets {
        check_problems(file, doc)?;
        match secret::classify(doc).map_err(|e| doc_failure(file, doc, e))? {
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
            State::Encrypted(footer) => footers.push(footer),
        }
    }
    super::encrypt::warm_unwraps(
        keyring,
        footers
            .iter()
            .filter(|f| f.version >= 3 || allow_missing_mac),
    );
    let mut edits = Vec::new();
    // What each value must read back as, by digest (not a second copy).
    let mut expected: Vec<(usize, Vec<u64>)> = Vec::new();
    let mut opened_docs = Vec::new();
    for (doc, footer) in secrets.into_iter().zip(footers) {
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
            let kept_clear = secret::is_clear(opened.footer.clear, site.section);
            if kept_clear && !(cleartext && site.section == Section::Data) {
                // A section kept in clear text: its bytes stay as they are.
                intended.push(super::digest(&value.clear));
                continue;
            }
            // A comment after the token can go back onto a literal block's
            // header line, where encryption found it.
            let comment = site.trailing_comment.clone();
            let ctx = Context {
                header_comment: comment.clone().map(|r| &text[r]),
                ..site.context(doc.newline)
            };
            let (rendered, parsed) = render_clear(site, &value.clear, cleartext, &ctx);
            let range = match comment {
                Some(c) if rendered.starts_with('|') => site.range.start..c.end,
                _ => site.range.clone(),
            };
            edits.push(Edit {
                range,
                text: rendered,
            });
            intended.push(super::digest(&parsed));
        }
        if let Some(f) = &doc.footer {
            edits.push(manifest::remove_footer(text, f));
        }
        expected.push((doc.position, intended));
        if keep_opened {
            opened_docs.push(ParentDoc::new(doc, opened));
        }
    }
    if expected.is_empty() && warn_empty {
        warn(&format!(
            "{file}: no Secret documents; the input is passed through unchanged"
        ));
    }
    let out = manifest::splice(text, &mut edits);
    drop(edits);
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
        let node = manifest::outline::object(&roots, doc).ok_or_else(|| {
            Failure::new(
                Exit::Other,
                format!(
                    "{}: internal error: the decrypted document cannot be found again",
                    place(file, doc, doc.line)
                ),
            )
        })?;
        let value = to_value(node);
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

/// A document that ksec does not take for a Secret but that carries a footer
/// or encrypted values would reach kubectl with ciphertext as its data.
pub fn refuse_hidden_ciphertext(file: &str, doc: &Document) -> Result<()> {
    let token = doc.sites.iter().find(|s| codec::looks_encrypted(&s.value));
    let line = match (&doc.footer, token) {
        (_, Some(site)) => site.line,
        (Some(f), None) => f.line,
        (None, None) => return Ok(()),
    };
    let kind = doc.kind.as_deref().unwrap_or("no kind");
    let item = match doc.item_path() {
        p if p.is_empty() => p,
        p => format!(", {p}"),
    };
    Err(Failure::new(
        Exit::Input,
        format!(
            "{file}:{line}: document {}{item} ({kind} {}) carries encrypted values or a `# kubesec:` footer \
but is not an `apiVersion: v1` `kind: Secret`; kubectl would store the ciphertext as data",
            doc.index,
            doc.display_name()
        ),
    )
    .hint("restore `apiVersion: v1` and `kind: Secret` (compare with version control)"))
}

/// A Secret-shaped mapping that ksec does not open (one nested in a
/// Template or custom resource) but that holds what looks like ciphertext.
pub fn refuse_stray_ciphertext(file: &str, doc: &Document) -> Result<()> {
    let Some((stray, value)) = super::exposure::stray_ciphertext(doc) else {
        return Ok(());
    };
    Err(Failure::new(
        Exit::Input,
        format!(
            "{file}:{}: document {} ({} {}), {} (Secret {}), {}: encrypted value in a Secret that ksec does not open here; kubectl would store the ciphertext as data",
            value.line,
            doc.index,
            doc.kind.as_deref().unwrap_or("no kind"),
            doc.display_name(),
            stray.path,
            stray.name.as_deref().unwrap_or("(unnamed)"),
            value.label
        ),
    )
    .hint("ksec opens Secrets that are documents of their own or items of a `kind: List`"))
}

/// Checks that kubectl's reader will see every document where ksec does
/// (kubectl splits only at `---` lines). `file` names the input in messages.
pub fn check_kubectl_split(file: &str, text: &str) -> Result<()> {
    let mut seen = 0usize;
    for chunk in kubectl_chunks(text) {
        let objects = manifest::count_documents(chunk).map_err(|e| {
            Failure::new(
                Exit::Input,
                format!("{file}: after document {seen}, kubectl would read a part of the stream that is not a YAML document of its own ({e})"),
            )
            .hint("start each document with a line of its own that is `---`")
        })?;
        if objects > 1 {
            return Err(Failure::new(
                Exit::Input,
                format!(
                    "{file}: document {}: kubectl splits streams only at `---` lines and would not read this document \
(it follows a `...` marker or shares the `---` line)",
                    seen + 2
                ),
            )
            .hint("start each document with a line of its own that is `---`"));
        }
        seen += objects;
    }
    Ok(())
}

/// kubectl's document separator: a line that starts with `---` followed by
/// nothing but white space or a comment (k8s.io/apimachinery YAMLReader).
fn is_kubectl_separator(line: &str) -> bool {
    line.strip_prefix("---")
        .map(str::trim)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('#'))
}

/// The stream cut the way kubectl cuts it (separator lines dropped).
fn kubectl_chunks(text: &str) -> Vec<&str> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if is_kubectl_separator(line) {
            chunks.push(&text[start..pos]);
            start = pos + line.len();
        }
        pos += line.len();
    }
    chunks.push(&text[start..]);
    chunks
}

/// A document as the template sees it: scalars are strings (null is nil).
fn to_value(node: &amend::Node) -> Value {
    match &node.kind {
        amend::Kind::Scalar(_) if node.range.is_empty() => Value::Nil,
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
pub(super) fn render_clear(
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
                    header_comment: None,
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
    expected: &[(usize, Vec<u64>)],
) -> std::result::Result<(), String> {
    let docs = manifest::locate(out).map_err(|e| e.to_string())?;
    if docs.len() != doc_count {
        return Err(format!("{} documents instead of {doc_count}", docs.len()));
    }
    for (position, values) in expected {
        let doc = &docs[*position];
        let index = doc.index;
        if doc.footer.is_some() || doc.sites.len() != values.len() {
            return Err(format!("document {index} changed shape"));
        }
        for (site, v) in doc.sites.iter().zip(values) {
            if super::digest(&site.value) != *v {
                return Err(format!(
                    "document {index}, {} does not read back",
                    secret::label(site)
                ));
            }
        }
    }
    Ok(())
}
