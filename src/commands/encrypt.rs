//! `ksec encrypt`: encrypt every Secret document of a stream.

use std::cell::OnceCell;

use zeroize::Zeroizing;

use super::{Output, check_problems, doc_failure, key_failure, note, place, warn};
use crate::envelope::DataKey;
use crate::envelope::footer::{Footer, KeyId, KeyType, WrappedKey};
use crate::error::{Exit, Failure, Result};
use crate::io::Source;
use crate::keys::{KeyChange, Keyring};
use crate::manifest::{self, Document, Edit, Section};
use crate::secret::{self, DocError, OpenOptions, Plain, State};

/// What `encrypt` was asked to do.
pub struct EncryptPlan {
    /// Input.
    pub source: Source,
    /// Where the result goes.
    pub output: Output,
    /// `--key` changes.
    pub keys: KeyChange,
    /// `data` values are plain text to be base64-encoded first.
    pub cleartext: bool,
    /// Input size limit.
    pub max_input: u64,
}

/// What one sealed document must decrypt to; checked before anything is written.
pub(super) struct Expected {
    pub(super) index: usize,
    pub(super) dek: DataKey,
    pub(super) values: Vec<(Section, String, Zeroizing<String>)>,
}

/// Runs `encrypt`.
pub fn run(plan: &EncryptPlan, keyring: &Keyring) -> Result<()> {
    let file = plan.source.display();
    let text = crate::io::read_text(&plan.source, plan.max_input)?;
    let out = encrypt_stream(&file, &text, &plan.keys, plan.cleartext, keyring)?;
    plan.output.write(&text, &out)
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
    let docs = manifest::locate(text).map_err(|e| super::locate_failure(file, &e))?;
    // Key ids are checked and normalised once per run, not per document.
    let change = if keys.is_empty() {
        None
    } else {
        Some(resolve_change(keys, keyring)?)
    };
    let secrets: Vec<&Document> = docs.iter().filter(|d| d.is_secret).collect();
    let mut states = Vec::with_capacity(secrets.len());
    for doc in secrets.iter().copied() {
        check_problems(file, doc)?;
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
    let default_key: OnceCell<KeyId> = OnceCell::new();
    let mut plans = Vec::with_capacity(secrets.len());
    for (doc, state) in secrets.into_iter().zip(states) {
        let (values, previous, current_keys) = match state {
            State::Plain => (plain_values(file, doc, cleartext)?, None, Vec::new()),
            State::Encrypted(footer) => {
                let opened = secret::open(doc, footer, keyring, OpenOptions::default())
                    .map_err(|e| doc_failure(file, doc, e))?;
                let values = reopened_values(doc, &opened);
                let current: Vec<KeyId> =
                    opened.footer.keys.iter().map(|w| w.key.clone()).collect();
                (values, Some(opened), current)
            }
        };
        let wanted = match &change {
            Some(change) => change.apply(&current_keys).map_err(|m| {
                Failure::new(Exit::Usage, format!("{}: {m}", place(file, doc, doc.line)))
            })?,
            None if current_keys.is_empty() => vec![local_key(&default_key)?.clone()],
            None => current_keys.clone(),
        };
        let rotate = current_keys.iter().any(|k| !wanted.contains(k));
        let dek = secret::sealing_key(previous.as_ref(), rotate);
        plans.push(DocPlan {
            doc,
            values,
            previous,
            wanted,
            dek,
        });
    }
    warm_wraps(file, keyring, &plans)?;

    let mut edits = Vec::new();
    let mut expected = Vec::new();
    for DocPlan {
        doc,
        values,
        previous,
        wanted,
        dek,
    } in plans
    {
        let sealed = secret::seal(&values, &wanted, previous.as_ref(), dek, keyring)
            .map_err(|e| doc_failure(file, doc, e))?;
        edits.extend(sealed_edits(text, doc, &sealed));
        expected.push(Expected::new(doc, sealed.dek, values));
    }
    if expected.is_empty() {
        warn(&format!(
            "{file}: no Secret documents (apiVersion: v1, kind: Secret); nothing to encrypt"
        ));
    }
    let out = manifest::splice(text, &mut edits);
    verify(&out, docs.len(), &expected).map_err(|why| {
        Failure::new(
            Exit::Other,
            format!("{file}: internal error: the encrypted result did not verify ({why}); nothing was written"),
        )
    })?;
    Ok(out)
}

/// What one document will be sealed with.
struct DocPlan<'a> {
    doc: &'a Document,
    values: Vec<Plain>,
    previous: Option<secret::Opened>,
    wanted: Vec<KeyId>,
    dek: DataKey,
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

/// Makes every wrap the documents will need in one batch.
fn warm_wraps(file: &str, keyring: &Keyring, plans: &[DocPlan<'_>]) -> Result<()> {
    let mut requests = Vec::new();
    for plan in plans {
        let (dek, wanted) = (&plan.dek, &plan.wanted);
        let kept = plan.previous.as_ref().filter(|p| p.dek == *dek);
        for k in wanted {
            if !kept.is_some_and(|p| p.footer.keys.iter().any(|w| w.key == *k)) {
                requests.push((k.clone(), dek.clone()));
            }
        }
    }
    keyring
        .wrap_all(&requests)
        .map_err(|(k, e)| key_failure(&format!("{file}: key {k}"), &e))
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
    pub(super) fn new(doc: &Document, dek: DataKey, values: Vec<Plain>) -> Self {
        Expected {
            index: doc.index,
            dek,
            values: values
                .into_iter()
                .map(|v| (v.section, v.key, v.clear))
                .collect(),
        }
    }
}

/// The edits that write a sealed document: its tokens and its footer.
pub(super) fn sealed_edits(text: &str, doc: &Document, sealed: &secret::Sealed) -> Vec<Edit> {
    let mut edits: Vec<Edit> = doc
        .sites
        .iter()
        .zip(&sealed.tokens)
        .map(|(site, token)| {
            let mut t = if site.flow {
                format!("\"{token}\"")
            } else {
                token.clone()
            };
            if let Some(c) = &site.header_comment {
                t.push(' ');
                t.push_str(c);
            }
            Edit {
                range: site.range.clone(),
                text: t,
            }
        })
        .collect();
    edits.push(manifest::write_footer(
        text,
        doc,
        &sealed.footer.render_lines(),
    ));
    edits
}

/// Resolves every key named in a change (checks ids, normalises them).
fn resolve_change(change: &KeyChange, keyring: &Keyring) -> Result<KeyChange> {
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
fn local_key(cell: &OnceCell<KeyId>) -> Result<&KeyId> {
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
fn plain_values(file: &str, doc: &Document, cleartext: bool) -> Result<Vec<Plain>> {
    let mut out = Vec::with_capacity(doc.sites.len());
    for s in &doc.sites {
        let clear = match s.section {
            Section::StringData => Zeroizing::new(s.value.clone()),
            Section::Data if cleartext && !s.binary => secret::encode_base64(s.value.as_bytes()),
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

/// Re-reads the output and checks that every sealed document opens with its
/// data key to exactly the intended values, and that no document was lost.
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
        let doc = &docs[e.index - 1];
        let State::Encrypted(footer) = secret::classify(doc).map_err(|e| format!("{e:?}"))? else {
            return Err(format!("document {} is not encrypted", e.index));
        };
        let opened = secret::open_with_key(doc, footer, e.dek.clone(), OpenOptions::default())
            .map_err(|e| format!("{e:?}"))?;
        let same = opened.values.len() == e.values.len()
            && opened
                .values
                .iter()
                .zip(&e.values)
                .all(|(o, (s, k, c))| o.section == *s && o.key == *k && *o.clear == **c);
        if !same {
            return Err(format!(
                "document {} does not decrypt to its values",
                e.index
            ));
        }
    }
    Ok(())
}
