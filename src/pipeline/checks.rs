//! The last word before anything encrypted is written: no Secret, in any
//! shape, carries a clear value.
//!
//! A Secret can reach ksec as a top-level document, as an item of a
//! `kind: List` (what `kubectl get secrets -o yaml` prints), in JSON or flow
//! style, or buried in another object (a Template's `objects`, a custom
//! resource). Encrypting the shapes ksec handles is the commands' job; this
//! module checks the *result*, on the located final bytes, whatever path
//! the code took: every Secret-shaped mapping must hold only ciphertext,
//! except in the sections its footer keeps clear on purpose (a `.ksec.yaml`
//! `sections:` rule). The same check on the input refuses, up front and
//! with a hint, the shapes ksec cannot encrypt in place.

use std::collections::HashMap;

use crate::error::{Error, Exit, Result};
use std::sync::Arc;

use crate::formats::{self, Metadata};
use crate::manifest::{Document, Stray, StrayValue, Stream, ValueSite};

/// A clear value where none may be.
pub enum Exposure<'a> {
    /// A Secret (top-level or in a List) with a clear value outside the
    /// sections its footer keeps clear.
    Secret {
        /// The Secret.
        doc: &'a Document,
        /// The clear value.
        site: &'a ValueSite,
    },
    /// A `kind: Secret` mapping that is not `apiVersion: v1`, so ksec does
    /// not take it for a Secret and leaves its values alone.
    NotV1 {
        /// The document.
        doc: &'a Document,
        /// The clear value.
        site: &'a ValueSite,
    },
    /// A Secret-shaped mapping where ksec does not handle Secrets.
    Stray {
        /// The top-level document that holds it.
        doc: &'a Document,
        /// The mapping.
        stray: &'a Stray,
        /// The clear value.
        value: &'a StrayValue,
    },
}

/// Whether `value` is what some format writes for an encrypted value.
fn sealed(value: &str) -> bool {
    formats::looks_sealed(value)
}

/// The first clear value of a Secret-shaped mapping that ksec would not
/// encrypt: a `kind: Secret` that is not `apiVersion: v1`, or a Secret
/// nested where ksec does not handle Secrets. Checked on the input, before
/// any key is asked. `text` is the text the documents were located in.
pub fn unencryptable<'a>(text: &str, docs: &'a [Document]) -> Option<Exposure<'a>> {
    for doc in docs {
        if let Some(e) = not_v1(text, doc).or_else(|| stray(doc)) {
            return Some(e);
        }
    }
    None
}

/// The first clear value anywhere a Secret-shaped mapping holds one, the
/// sections its metadata keeps clear excepted. Checked on the result, after
/// sealing and before writing.
pub fn exposed(stream: &Stream) -> Option<Exposure<'_>> {
    // What each sealed document's metadata allows in clear text.
    let mut allowed: HashMap<usize, Arc<dyn Metadata>> = HashMap::new();
    if let Ok(format) = formats::detect(stream)
        && let Ok(envelopes) = format.envelopes(stream)
    {
        for e in envelopes {
            if let formats::State::Sealed(meta) = &e.state {
                for d in &e.docs {
                    allowed.insert(*d, meta.clone());
                }
            }
        }
    }
    let text = &stream.text;
    for doc in &stream.docs {
        if doc.is_secret {
            let meta = allowed.get(&doc.position);
            let site = doc.sites.iter().find(|s| {
                let value = s.value(text);
                let ok = meta.is_some_and(|m| sealed(value) || m.keeps_clear(s, value));
                !ok
            });
            if let Some(site) = site {
                return Some(Exposure::Secret { doc, site });
            }
        }
        if let Some(e) = not_v1(text, doc).or_else(|| stray(doc)) {
            return Some(e);
        }
    }
    None
}

fn not_v1<'a>(text: &str, doc: &'a Document) -> Option<Exposure<'a>> {
    let shaped = !doc.is_secret
        && doc
            .kind
            .as_deref()
            .is_some_and(|k| k.eq_ignore_ascii_case("secret"));
    if !shaped {
        return None;
    }
    let site = doc.sites.iter().find(|s| !sealed(s.value(text)))?;
    Some(Exposure::NotV1 { doc, site })
}

fn stray(doc: &Document) -> Option<Exposure<'_>> {
    doc.strays.iter().find_map(|stray| {
        stray
            .values
            .iter()
            .find(|v| !sealed(&v.value))
            .map(|value| Exposure::Stray { doc, stray, value })
    })
}

/// Where a Secret-shaped mapping that ksec did not open holds something
/// that looks like ciphertext (`decrypt` refuses: kubectl would store the
/// ciphertext as the value).
pub fn stray_ciphertext(doc: &Document) -> Option<(&Stray, &StrayValue)> {
    doc.strays.iter().find_map(|stray| {
        stray
            .values
            .iter()
            .find(|v| sealed(&v.value))
            .map(|v| (stray, v))
    })
}

/// The refusal for an exposure in `text`. `internal`: found on a result ksec
/// built (a bug), rather than in the input.
pub fn failure(file: &str, text: &str, e: &Exposure<'_>, internal: bool) -> Error {
    match e {
        Exposure::Secret { doc, site } => Error::new(
            if internal { Exit::Other } else { Exit::State },
            "clear-value",
            format!(
                "{}a clear value would be written into an encrypted file; nothing was written",
                if internal { "internal error: " } else { "" }
            ),
        )
        .at(doc.site_location(file, text, site)),
        Exposure::NotV1 { doc, site } => Error::new(
            Exit::Input,
            "clear-value",
            "`kind: Secret` without `apiVersion: v1` is not encrypted, so this value would stay in clear text",
        )
        .at(doc.site_location(file, text, site))
        .hint("for a Kubernetes Secret, set `apiVersion: v1` (its only API version); ksec encrypts no other kind named Secret"),
        Exposure::Stray { doc, stray, value } => {
            let mut at = doc.location(file, value.line);
            at.object = Some(format!(
                "{} {}",
                doc.kind.as_deref().unwrap_or("no kind"),
                doc.display_name()
            ));
            at.key = Some(format!(
                "{} (Secret {}), {}",
                stray.path,
                stray.name.as_deref().unwrap_or("(unnamed)"),
                value.label
            ));
            Error::new(
                Exit::Input,
                "clear-value",
                "a Secret nested here cannot be encrypted in place, so this value would stay in clear text",
            )
            .at(at)
            .hint("give the Secret a document of its own (after a `---` line), or put it in the items of a `kind: List`")
        }
    }
}

/// Refuses the result of an encrypting command when it exposes a value.
pub fn refuse_exposed(stream: &Stream) -> Result<()> {
    match exposed(stream) {
        Some(e) => Err(failure(&stream.name, &stream.text, &e, true)),
        None => Ok(()),
    }
}

/// Refuses an input that holds Secrets ksec cannot encrypt.
pub fn refuse_unencryptable(stream: &Stream) -> Result<()> {
    match unencryptable(&stream.text, &stream.docs) {
        Some(e) => Err(failure(&stream.name, &stream.text, &e, false)),
        None => Ok(()),
    }
}

/// A document that ksec does not take for a Secret but that carries a footer
/// or encrypted values would reach kubectl with ciphertext as its data.
/// `text` is the text the document was located in.
pub fn refuse_hidden_ciphertext(file: &str, text: &str, doc: &Document) -> Result<()> {
    if doc.is_secret {
        return Ok(());
    }
    let token = doc.sites.iter().find(|s| sealed(s.value(text)));
    let line = match (&doc.footer, token) {
        (_, Some(site)) => site.line(),
        (Some(f), None) => f.line,
        (None, None) => return Ok(()),
    };
    Err(Error::new(
        Exit::Input,
        "ciphertext-outside-secret",
        "encrypted values or a `# kubesec:` footer in a document that is not an `apiVersion: v1` `kind: Secret`; kubectl would store the ciphertext as data",
    )
    .at(doc.location(file, line))
    .hint("restore `apiVersion: v1` and `kind: Secret` (compare with version control)"))
}

/// A Secret-shaped mapping that ksec does not open (one nested in a
/// Template or custom resource) but that holds what looks like ciphertext.
pub fn refuse_stray_ciphertext(file: &str, doc: &Document) -> Result<()> {
    let Some((stray, value)) = stray_ciphertext(doc) else {
        return Ok(());
    };
    let mut at = doc.location(file, value.line);
    at.key = Some(format!(
        "{} (Secret {}), {}",
        stray.path,
        stray.name.as_deref().unwrap_or("(unnamed)"),
        value.label
    ));
    Err(Error::new(
        Exit::Input,
        "ciphertext-outside-secret",
        "encrypted value in a Secret that ksec does not open here; kubectl would store the ciphertext as data",
    )
    .at(at)
    .hint("ksec opens Secrets that are documents of their own or items of a `kind: List`"))
}

/// Refuses a Secret that carries client-side apply's clear copy of itself:
/// encrypting its values would leave every one of them readable in the
/// `kubectl.kubernetes.io/last-applied-configuration` annotation (typical of
/// a manifest exported with `kubectl get -o yaml`).
pub fn refuse_clear_copy(file: &str, doc: &Document) -> Result<()> {
    match doc.last_applied_line {
        None => Ok(()),
        Some(line) => Err(Error::new(
            Exit::Input,
            "last-applied-configuration",
            format!(
                "metadata.annotations holds {}, a clear copy of the whole Secret; encrypting would leave the values readable there",
                crate::manifest::LAST_APPLIED
            ),
        )
        .at(doc.location(file, line))
        .hint("delete that annotation (kubectl adds it back on apply; `kubectl apply --server-side` does not), then encrypt")),
    }
}

/// Refuses map keys Kubernetes would refuse: a Secret key is one or more of
/// `-`, `.`, `_`, ASCII letters and digits.
pub fn check_keys(file: &str, text: &str, doc: &Document) -> Result<()> {
    match doc
        .sites
        .iter()
        .find(|s| !crate::k8s::valid_key(s.key(text)))
    {
        None => Ok(()),
        Some(s) => Err(
            Error::new(Exit::Input, "invalid-key", "not a valid Secret key")
                .at(doc.site_location(file, text, s))
                .hint("Secret keys consist of letters, digits, `-`, `_` and `.`"),
        ),
    }
}

/// Comments inside `data`/`stringData` of the stream's Secrets: they stay
/// readable when the values are encrypted (`# admin` next to an encrypted
/// username says what it is). A warning, not a refusal: `encrypt` and
/// `check` report it.
pub fn value_comments(stream: &Stream) -> Vec<Error> {
    stream
        .secrets()
        .filter(|d| !d.section_comments.is_empty())
        .map(|doc| {
            let lines: Vec<String> = doc.section_comments.iter().map(ToString::to_string).collect();
            let n = lines.len();
            Error::new(
                Exit::State,
                "comment-in-values",
                format!(
                    "{n} comment{} inside data/stringData (line{} {}) stay{} readable when the values are encrypted; move what {} about a value out of the Secret",
                    if n == 1 { "" } else { "s" },
                    if n == 1 { "" } else { "s" },
                    lines.join(", "),
                    if n == 1 { "s" } else { "" },
                    if n == 1 { "it says" } else { "they say" },
                ),
            )
            .at(doc.location(&stream.name, doc.section_comments[0]))
        })
        .collect()
}
