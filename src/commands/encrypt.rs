//! `ksec encrypt`: encrypt every Secret document of a stream.

use std::cell::OnceCell;

use zeroize::Zeroizing;

use std::path::PathBuf;

use super::parent::{ParentDoc, Parents};
use super::{Output, batch, check_problems, doc_failure, key_failure, note, place, warn};
use crate::config::Configs;
use crate::envelope::DataKey;
use crate::envelope::footer::{ClearSections, Footer, KeyId, KeyType, WrappedKey};
use crate::error::{Exit, Failure, Result};
use crate::io::Source;
use crate::keys::{KeyChange, Keyring};
use crate::manifest::{self, Document, Edit, Section, ValueSite};
use crate::paths;
use crate::progress::Progress;
use crate::secret::{self, DocError, OpenOptions, Plain, State};

/// What `encrypt` was asked to do.
pub struct EncryptPlan {
    /// Files and directories (`-` or nothing: stdin).
    pub paths: Vec<PathBuf>,
    /// Where the result goes.
    pub output: Output,
    /// `--key` changes.
    pub keys: KeyChange,
    /// `data` values are plain text to be base64-encoded first.
    pub cleartext: bool,
    /// Generate a new data key for every Secret.
    pub rotate: bool,
    /// A previous encrypted version (`--parent`).
    pub parent: Option<PathBuf>,
    /// Input size limit.
    pub max_input: u64,
}

/// What one sealed document must read back as; checked before anything is
/// written. Values are kept as digests, not as a second clear copy.
pub(super) struct Expected {
    /// Where the document is in the located stream.
    position: usize,
    /// Its name in messages: `N` or `N, items[i]`.
    label: String,
    dek: DataKey,
    /// Per value, in file order: section, digest of the key, digest of the clear text.
    values: Vec<(Section, u64, u64)>,
    /// Sections kept in clear text.
    clear: ClearSections,
    /// The footer lines as written.
    footer: Vec<String>,
}

/// Runs `encrypt`. Several inputs (or a directory) need `-i`: every file is
/// prepared, the wraps of all of them are made in one batch, every result
/// is verified, and only then are the changed files written (one line each
/// on stderr, then a summary); unchanged files are not touched.
pub fn run(plan: &EncryptPlan, keyring: &Keyring, configs: &Configs) -> Result<()> {
    let inputs = paths::expand_some(&plan.paths, Source::Stdin)?;
    if !inputs.single {
        if !plan.output.is_in_place() {
            return Err(Failure::new(
                Exit::Usage,
                "encrypt: several files or a directory are encrypted in place only (-i)",
            )
            .hint("pass -i to rewrite each file, or encrypt one file at a time to print it"));
        }
        if plan.parent.is_some() {
            return Err(Failure::new(
                Exit::Usage,
                "--parent takes one input file (the new version of that parent)",
            ));
        }
    }
    if plan.output.is_in_place() && inputs.sources.contains(&Source::Stdin) {
        plan.output.for_source(&Source::Stdin)?;
    }
    let mut progress = Progress::new(inputs.sources.len());
    let files = batch::load_all(&inputs.sources, plan.max_input, &mut progress)?;
    let parents = match &plan.parent {
        Some(p) => {
            let source = Source::File(p.clone());
            let ptext = crate::io::read_text(&source, plan.max_input)?;
            Some(Parents::open(&source.display(), &ptext, keyring)?)
        }
        None => None,
    };
    let rules = files
        .iter()
        .map(|f| configs.rule(&f.source))
        .collect::<Result<Vec<_>>>()?;
    batch::unwrap_everything(keyring, &files, false, &mut progress);
    let now = super::now();
    let base = EncryptOptions {
        cleartext: plan.cleartext,
        rotate: plan.rotate,
        parents: parents.as_ref(),
        ..EncryptOptions::new(&plan.keys, &now)
    };
    let opts: Vec<EncryptOptions<'_>> = rules
        .iter()
        .map(|r| match r {
            Some((config, i)) => EncryptOptions {
                fallback_keys: &config.rules[*i].keys,
                new_clear: config.rules[*i].clear,
                ..base
            },
            None => base,
        })
        .collect();
    let change = resolve_opts_change(&base, keyring)?;
    let default_key = OnceCell::new();
    let mut prepared = Vec::with_capacity(files.len());
    for (i, (f, o)) in files.iter().zip(&opts).enumerate() {
        progress.files("preparing", i);
        prepared.push(prepare(
            &f.name,
            &f.text,
            &f.docs,
            o,
            change.as_ref(),
            keyring,
            &default_key,
        )?);
    }
    let requests: Vec<(KeyId, DataKey)> =
        prepared.iter().flat_map(Prepared::wrap_requests).collect();
    if !requests.is_empty() {
        progress.step(&format!("wrapping {} data keys", requests.len()));
    }
    keyring
        .wrap_all(&requests)
        .map_err(|(k, e)| key_failure(&format!("key {k}"), &e))?;
    let mut results = Vec::with_capacity(files.len());
    for (i, (p, o)) in prepared.into_iter().zip(&opts).enumerate() {
        progress.files("encrypting", i);
        let sealed = p.secret_count();
        let fresh = p.new_count();
        results.push((p.finish(o, keyring)?, sealed, fresh));
    }
    progress.clear();
    if inputs.single {
        let (out, sealed, _) = &results[0];
        if *sealed == 0 {
            warn(&format!(
                "{}: no Secret documents (apiVersion: v1, kind: Secret); nothing to encrypt",
                files[0].name
            ));
        }
        return plan
            .output
            .for_source(&files[0].source)?
            .write(&files[0].text, out);
    }
    let (mut changed, mut encrypted) = (0usize, 0usize);
    for (f, (out, _, fresh)) in files.iter().zip(&results) {
        if *out == f.text {
            continue;
        }
        plan.output.for_source(&f.source)?.write(&f.text, out)?;
        changed += 1;
        encrypted += fresh;
        let what = if *fresh > 0 {
            format!("{fresh} Secret{} encrypted", plural(*fresh))
        } else {
            "keys or values re-sealed".to_owned()
        };
        note(&format!("wrote {} ({what})", f.name));
    }
    note(&format!(
        "{changed} of {} file{} changed, {encrypted} Secret{} newly encrypted",
        files.len(),
        plural(files.len()),
        plural(encrypted)
    ));
    Ok(())
}

/// `s` for counts other than one.
pub(super) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// How to encrypt a stream.
#[derive(Clone, Copy)]
pub struct EncryptOptions<'a> {
    /// `--key` changes.
    pub keys: &'a KeyChange,
    /// `data` values are plain text (or `!!binary`) to be base64-encoded.
    pub cleartext: bool,
    /// Generate a new data key for every Secret.
    pub rotate: bool,
    /// Previous versions: clear Secrets take their data key, key lines and
    /// the tokens of unchanged values from their match (see [`super::parent`]).
    pub parents: Option<&'a Parents>,
    /// Refuse map keys that Kubernetes would refuse (`[-._a-zA-Z0-9]+`).
    pub strict_keys: bool,
    /// Keys for a clear Secret without a parent when no `--key` is given
    /// (empty: the local age identity). A `.ksec.yaml` rule's keys.
    pub fallback_keys: &'a [KeyId],
    /// The time recorded for a new data key (`# ksec:rotated:`).
    pub now: &'a str,
    /// Sections kept in clear text in a Secret that has no footer (of its
    /// own or of its parent) yet: a `.ksec.yaml` rule's `sections`.
    pub new_clear: ClearSections,
    /// Sections kept in clear text in every Secret, whatever its footer
    /// says (`updatekeys` bringing a file in line with its rule).
    pub force_clear: Option<ClearSections>,
    /// Leave Secrets that are not encrypted yet as they are (`updatekeys`).
    pub skip_plain: bool,
}

impl<'a> EncryptOptions<'a> {
    /// Plain `encrypt` with these key changes: no parent, no rule.
    pub fn new(keys: &'a KeyChange, now: &'a str) -> Self {
        EncryptOptions {
            keys,
            cleartext: false,
            rotate: false,
            parents: None,
            strict_keys: false,
            fallback_keys: &[],
            now,
            new_clear: ClearSections::default(),
            force_clear: None,
            skip_plain: false,
        }
    }
}

/// Encrypts every Secret document of a stream and returns the verified
/// result. `file` names the input in messages.
///
/// Documents are independent, so key-service calls are batched: first every
/// encrypted document's data key is unwrapped (concurrently for network
/// keys), then every new wrap is made (likewise), then values are sealed.
pub fn encrypt_stream(
    file: &str,
    text: &str,
    keys: &KeyChange,
    cleartext: bool,
    keyring: &Keyring,
) -> Result<String> {
    let now = super::now();
    let opts = EncryptOptions {
        cleartext,
        ..EncryptOptions::new(keys, &now)
    };
    encrypt_with(file, text, &opts, keyring)
}

/// Encrypts every Secret document of a stream as `opts` says and returns
/// the verified result.
pub fn encrypt_with(
    file: &str,
    text: &str,
    opts: &EncryptOptions<'_>,
    keyring: &Keyring,
) -> Result<String> {
    let docs = manifest::locate(text).map_err(|e| super::locate_failure(file, &e))?;
    let change = resolve_opts_change(opts, keyring)?;
    let default_key = OnceCell::new();
    let prepared = prepare(
        file,
        text,
        &docs,
        opts,
        change.as_ref(),
        keyring,
        &default_key,
    )?;
    if prepared.secret_count() == 0 && !opts.skip_plain {
        warn(&format!(
            "{file}: no Secret documents (apiVersion: v1, kind: Secret); nothing to encrypt"
        ));
    }
    keyring
        .wrap_all(&prepared.wrap_requests())
        .map_err(|(k, e)| key_failure(&format!("{file}: key {k}"), &e))?;
    prepared.finish(opts, keyring)
}

/// The `--key` change of `opts`, its key ids checked and normalised (once
/// per run, not per document or file).
pub fn resolve_opts_change(
    opts: &EncryptOptions<'_>,
    keyring: &Keyring,
) -> Result<Option<KeyChange>> {
    if opts.keys.is_empty() {
        Ok(None)
    } else {
        resolve_change(opts.keys, keyring).map(Some)
    }
}

/// A stream whose documents have their values, keys and data keys decided,
/// waiting for its wraps (see [`Prepared::wrap_requests`]) and sealing.
/// Several files are prepared first so that the wraps of all of them go to
/// the key services in one batch.
pub struct Prepared<'a> {
    file: &'a str,
    text: &'a str,
    doc_count: usize,
    plans: Vec<DocPlan<'a>>,
}

/// Checks every Secret of a located stream, opens the encrypted ones (their
/// data keys come from the keyring's memory when a batch unwrapped them
/// already) and decides each one's values, keys and data key.
pub fn prepare<'a>(
    file: &'a str,
    text: &'a str,
    docs: &'a [Document],
    opts: &EncryptOptions<'a>,
    change: Option<&KeyChange>,
    keyring: &Keyring,
    default_key: &OnceCell<KeyId>,
) -> Result<Prepared<'a>> {
    // Ciphertext or a footer outside a v1 Secret is a damaged Secret (say,
    // an edited `kind`); encrypting around it would hide the damage.
    for doc in docs.iter().filter(|d| !d.is_secret) {
        super::decrypt::refuse_hidden_ciphertext(file, doc)?;
    }
    // Secrets in shapes ksec cannot encrypt in place would pass through in
    // clear text: refuse them with a hint (the final check would too).
    super::exposure::refuse_unencryptable(file, docs)?;
    let secrets: Vec<&Document> = docs.iter().filter(|d| d.is_secret).collect();
    // decrypt refuses what kubectl would split differently; so does encrypt,
    // rather than write a file that cannot be deployed.
    if !secrets.is_empty() {
        super::decrypt::check_kubectl_split(file, text)?;
    }
    let assigned = opts
        .parents
        .map_or_else(|| vec![None; secrets.len()], |p| p.assign(&secrets));
    let mut states = Vec::with_capacity(secrets.len());
    for doc in secrets.iter().copied() {
        check_problems(file, doc)?;
        refuse_clear_copy(file, doc)?;
        if opts.strict_keys {
            check_keys(file, doc)?;
        }
        states.push(secret::classify(doc).map_err(|e| doc_failure(file, doc, e))?);
    }
    warm_unwraps(
        keyring,
        states.iter().filter_map(|s| match s {
            State::Encrypted(f) if f.version >= 3 => Some(f),
            _ => None,
        }),
    );

    // Decide values, keys and data key of every document.
    let mut plans = Vec::with_capacity(secrets.len());
    for ((doc, state), parent) in secrets.into_iter().zip(states).zip(assigned) {
        let parent = parent.and_then(|j| opts.parents.map(|p| &p.docs[j]));
        let (values, own) = match state {
            State::Plain if opts.skip_plain && doc.sites.is_empty() => continue,
            State::Plain if opts.skip_plain => return Err(super::plain_secret_kept(file, doc)),
            State::Plain => (plain_values(file, doc, opts.cleartext, parent)?, None),
            State::Encrypted(footer) => {
                let opened = secret::open(doc, footer, keyring, OpenOptions::default())
                    .map_err(|e| doc_failure(file, doc, e))?;
                (reopened_values(doc, &opened), Some(opened))
            }
        };
        let previous = own.as_ref().or(parent.map(|p| &p.opened));
        let current_keys: Vec<KeyId> = previous.map_or_else(Vec::new, |p| {
            p.footer.keys.iter().map(|w| w.key.clone()).collect()
        });
        let wanted = match change {
            Some(change) => change.apply(&current_keys).map_err(|m| {
                Failure::new(Exit::Usage, format!("{}: {m}", place(file, doc, doc.line)))
            })?,
            None if current_keys.is_empty() && !opts.fallback_keys.is_empty() => {
                opts.fallback_keys.to_vec()
            }
            None if current_keys.is_empty() => vec![local_key(default_key)?.clone()],
            None => current_keys.clone(),
        };
        let clear = opts
            .force_clear
            .or(previous.map(|p| p.footer.clear))
            .unwrap_or(opts.new_clear);
        let rotate = opts.rotate || current_keys.iter().any(|k| !wanted.contains(k));
        let dek = secret::sealing_key(previous, rotate);
        plans.push(DocPlan {
            doc,
            values,
            own,
            parent,
            wanted,
            dek,
            clear,
        });
    }
    Ok(Prepared {
        file,
        text,
        doc_count: docs.len(),
        plans,
    })
}

impl Prepared<'_> {
    /// Every wrap the documents will need: each wanted key that does not
    /// hold the data key already.
    pub fn wrap_requests(&self) -> Vec<(KeyId, DataKey)> {
        let mut requests = Vec::new();
        for plan in &self.plans {
            let (dek, wanted) = (&plan.dek, &plan.wanted);
            let kept = plan.previous().filter(|p| p.dek == *dek);
            for k in wanted {
                if !kept.is_some_and(|p| p.footer.keys.iter().any(|w| w.key == *k)) {
                    requests.push((k.clone(), dek.clone()));
                }
            }
        }
        requests
    }

    /// How many Secret documents will be sealed.
    pub fn secret_count(&self) -> usize {
        self.plans.len()
    }

    /// How many of them were clear text (encrypted for the first time).
    pub fn new_count(&self) -> usize {
        self.plans.iter().filter(|p| p.own.is_none()).count()
    }

    /// Seals every document (wraps come from the keyring's memory when
    /// [`Keyring::wrap_all`] made them) and returns the verified result.
    pub fn finish(self, opts: &EncryptOptions<'_>, keyring: &Keyring) -> Result<String> {
        let (file, text) = (self.file, self.text);
        let mut edits = Vec::new();
        let mut expected = Vec::new();
        for plan in self.plans {
            let (doc, dek) = (plan.doc, plan.dek.clone());
            let sealed = secret::seal(
                &plan.values,
                &plan.wanted,
                plan.previous(),
                dek,
                keyring,
                opts.now,
                plan.clear,
            )
            .map_err(|e| doc_failure(file, doc, e))?;
            edits.extend(sealed_edits(text, doc, &sealed));
            expected.push(Expected::new(doc, &sealed, &plan.values));
        }
        let out = manifest::splice(text, &mut edits);
        drop(edits);
        verify(&out, self.doc_count, &expected).map_err(|why| {
            Failure::new(
                Exit::Other,
                format!("{file}: internal error: the encrypted result did not verify ({why}); nothing was written"),
            )
        })?;
        refuse_exposed_text(file, &out)?;
        Ok(out)
    }
}

/// What one document will be sealed with.
struct DocPlan<'a> {
    doc: &'a Document,
    values: Vec<Plain>,
    /// The document as it was, when it was encrypted already.
    own: Option<secret::Opened>,
    /// Its `--parent` match, when it was clear text.
    parent: Option<&'a ParentDoc>,
    wanted: Vec<KeyId>,
    dek: DataKey,
    /// Sections kept in clear text.
    clear: ClearSections,
}

impl DocPlan<'_> {
    /// What the document is sealed against: its own old version, or its parent.
    fn previous(&self) -> Option<&secret::Opened> {
        self.own.as_ref().or(self.parent.map(|p| &p.opened))
    }
}

/// Unwraps the data keys of all encrypted documents in one batch, so that the
/// per-document `open` calls that follow find them (or their failures) ready.
/// Callers leave out documents that will be refused before any key is asked.
pub(super) fn warm_unwraps<'a>(keyring: &Keyring, footers: impl Iterator<Item = &'a Footer>) {
    let footers: Vec<&[WrappedKey]> = footers.map(|f| f.keys.as_slice()).collect();
    if !footers.is_empty() {
        keyring.unwrap_all(&footers);
    }
}

/// Refuses a Secret that carries client-side apply's clear copy of itself:
/// encrypting its values would leave every one of them readable in the
/// `kubectl.kubernetes.io/last-applied-configuration` annotation (typical of
/// a manifest exported with `kubectl get -o yaml`).
pub(super) fn refuse_clear_copy(file: &str, doc: &Document) -> Result<()> {
    match doc.last_applied_line {
        None => Ok(()),
        Some(line) => Err(Failure::new(
            Exit::Input,
            format!(
                "{}: metadata.annotations holds {}, a clear copy of the whole Secret; encrypting would leave the values readable there",
                place(file, doc, line),
                manifest::LAST_APPLIED
            ),
        )
        .hint("delete that annotation (kubectl adds it back on apply; `kubectl apply --server-side` does not), then encrypt")),
    }
}

/// Refuses map keys Kubernetes would refuse: a Secret key is one or more of
/// `-`, `.`, `_`, ASCII letters and digits.
pub(super) fn check_keys(file: &str, doc: &Document) -> Result<()> {
    for s in &doc.sites {
        if !secret::valid_key(&s.key) {
            return Err(Failure::new(
                Exit::Input,
                format!(
                    "{}, {}: not a valid Secret key",
                    place(file, doc, s.line),
                    secret::label(s)
                ),
            )
            .hint("Secret keys consist of letters, digits, `-`, `_` and `.`"));
        }
    }
    Ok(())
}

/// The values of an opened document, ready to seal again.
pub(super) fn reopened_values(doc: &Document, opened: &secret::Opened) -> Vec<Plain> {
    opened
        .values
        .iter()
        .zip(&doc.sites)
        .map(|(v, s)| Plain {
            section: v.section,
            key: v.key.clone(),
            clear: v.clear.clone(),
            line: s.line,
        })
        .collect()
}

impl Expected {
    pub(super) fn new(doc: &Document, sealed: &secret::Sealed, values: &[Plain]) -> Self {
        Expected {
            position: doc.position,
            label: match doc.item_path() {
                p if p.is_empty() => doc.index.to_string(),
                p => format!("{}, {p}", doc.index),
            },
            dek: sealed.dek.clone(),
            values: values
                .iter()
                .map(|v| (v.section, super::digest(&v.key), super::digest(&v.clear)))
                .collect(),
            clear: sealed.footer.clear,
            footer: sealed.footer.render_lines(),
        }
    }
}

/// The edits that write a sealed document: its tokens and its footer.
pub(super) fn sealed_edits(text: &str, doc: &Document, sealed: &secret::Sealed) -> Vec<Edit> {
    let mut edits: Vec<Edit> = doc
        .sites
        .iter()
        .zip(&sealed.tokens)
        .filter_map(|(site, token)| site_edit(doc, site, token, sealed.footer.clear))
        .collect();
    edits.push(manifest::write_footer(
        text,
        doc,
        &sealed.footer.render_lines(),
    ));
    edits
}

/// The edit that writes a sealed value at its site: [`token_edit`] for an
/// encrypted one; for a value of a section kept in clear text, nothing when
/// the site holds it already, else the clear value rendered as `decrypt`
/// would (the section was encrypted before).
pub(super) fn site_edit(
    doc: &Document,
    site: &ValueSite,
    token: &str,
    clear: ClearSections,
) -> Option<Edit> {
    if !secret::is_clear(clear, site.section) {
        return Some(token_edit(site, token));
    }
    if site.value == token {
        return None;
    }
    let ctx = site.context(doc.newline);
    Some(Edit {
        range: site.range.clone(),
        text: manifest::scalar::render(token, &ctx),
    })
}

/// The edit that writes `token` at a value's site: double-quoted in flow
/// context, a block scalar's header comment kept after it.
pub(super) fn token_edit(site: &ValueSite, token: &str) -> Edit {
    let mut t = if site.flow {
        format!("\"{token}\"")
    } else {
        token.to_owned()
    };
    if let Some(c) = &site.header_comment {
        // The block header's comment, white space before it included.
        t.push_str(c);
    }
    Edit {
        range: site.range.clone(),
        text: t,
    }
}

/// Resolves every key named in a change (checks ids, normalises them).
pub(super) fn resolve_change(change: &KeyChange, keyring: &Keyring) -> Result<KeyChange> {
    let r = |keys: &[KeyId]| -> Result<Vec<KeyId>> {
        keys.iter()
            .map(|k| {
                keyring
                    .resolve(k)
                    .map_err(|e| key_failure(&format!("--key {k}"), &e))
            })
            .collect()
    };
    Ok(KeyChange {
        set: r(&change.set)?,
        add: r(&change.add)?,
        remove: change.remove.clone(),
    })
}

/// The built-in default: the local age identity, created on first use.
pub(super) fn local_key(cell: &OnceCell<KeyId>) -> Result<&KeyId> {
    if let Some(k) = cell.get() {
        return Ok(k);
    }
    let (recipient, created) = crate::keys::age::local_recipient()
        .map_err(|m| Failure::new(Exit::Key, format!("local age key: {m}")))?;
    if let Some(path) = created {
        note(&format!(
            "created a new age key at {} (recipient {recipient}); back it up: without it these files cannot be decrypted",
            path.display()
        ));
    }
    Ok(cell.get_or_init(|| KeyId {
        kind: KeyType::Age,
        id: recipient,
    }))
}

/// The clear values of a plain document, checked and (with `-x`) encoded.
/// With `-x`, a `data` value whose bytes equal the parent's keeps the
/// parent's base64 text, so that its token can be reused.
fn plain_values(
    file: &str,
    doc: &Document,
    cleartext: bool,
    parent: Option<&ParentDoc>,
) -> Result<Vec<Plain>> {
    let mut out = Vec::with_capacity(doc.sites.len());
    for s in &doc.sites {
        let clear = match s.section {
            Section::StringData => Zeroizing::new(s.value.clone()),
            Section::Data if cleartext && !s.binary => {
                let prior = parent.and_then(|p| p.value(Section::Data, &s.key));
                secret::encode_data_like(s.value.as_bytes(), prior)
            }
            Section::Data => {
                if s.binary && !cleartext {
                    return Err(Failure::new(
                        Exit::Input,
                        format!(
                            "{}, {}: `!!binary` values are only accepted with --cleartext",
                            place(file, doc, s.line),
                            secret::label(s)
                        ),
                    )
                    .hint("drop the tag (data values are base64 already) or pass -x"));
                }
                let compact: String = s.value.chars().filter(|c| !c.is_whitespace()).collect();
                let v = if s.binary { compact } else { s.value.clone() };
                let prior = parent.and_then(|p| p.value(Section::Data, &s.key));
                let v = match (s.binary, prior, secret::decode_base64(&v)) {
                    (true, Some(p), Some(bytes)) => {
                        secret::encode_data_like(&bytes, Some(p)).to_string()
                    }
                    _ => v,
                };
                if !secret::valid_base64(&v) {
                    return Err(doc_failure(
                        file,
                        doc,
                        DocError::NotBase64 {
                            line: s.line,
                            key: secret::label(s),
                        },
                    ));
                }
                Zeroizing::new(v)
            }
        };
        out.push(Plain {
            section: s.section,
            key: s.key.clone(),
            clear,
            line: s.line,
        });
    }
    Ok(out)
}

/// The final check of every encrypting command, on the bytes about to be
/// written: no Secret-shaped mapping holds a clear value
/// ([`super::exposure`]).
pub(super) fn refuse_exposed_text(file: &str, out: &str) -> Result<()> {
    let docs = manifest::locate(out).map_err(|e| {
        Failure::new(
            Exit::Other,
            format!("{file}: internal error: the result does not parse ({e}); nothing was written"),
        )
    })?;
    super::exposure::refuse_exposed(file, &docs)
}

/// Re-reads the output and checks that no document was lost, that every
/// sealed document carries the footer that was written, and that each of its
/// values decrypts with its data key to exactly the intended value.
pub(super) fn verify(
    out: &str,
    doc_count: usize,
    expected: &[Expected],
) -> std::result::Result<(), String> {
    let docs = manifest::locate(out).map_err(|e| e.to_string())?;
    if docs.len() != doc_count {
        return Err(format!("{} documents instead of {doc_count}", docs.len()));
    }
    for e in expected {
        let doc = &docs[e.position];
        let lines = doc.footer.as_ref().map(|f| &f.lines);
        if lines != Some(&e.footer) {
            return Err(format!("document {} lost its footer", e.label));
        }
        if doc.sites.len() != e.values.len() {
            return Err(format!("document {} changed shape", e.label));
        }
        // Every value decrypts, under its own key name, to what was meant.
        let cipher = crate::envelope::codec::ValueCipher::new(&e.dek);
        for (site, (section, key, clear)) in doc.sites.iter().zip(&e.values) {
            let value = if secret::is_clear(e.clear, site.section) {
                Zeroizing::new(site.value.clone())
            } else {
                cipher
                    .decrypt_value(&site.key, &site.value)
                    .map_err(|err| {
                        format!("document {}, {}: {err}", e.label, secret::label(site))
                    })?
            };
            if site.section != *section
                || super::digest(&site.key) != *key
                || super::digest(&value) != *clear
            {
                return Err(format!(
                    "document {}, {} does not decrypt to its value",
                    e.label,
                    secret::label(site)
                ));
            }
        }
    }
    Ok(())
}
