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

use super::place;
use crate::envelope::codec;
use crate::envelope::footer::{ClearSections, Footer};
use crate::error::{Exit, Failure, Result};
use crate::manifest::{Document, Stray, StrayValue, ValueSite};
use crate::secret;

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

/// Whether `value` is what ksec writes for an encrypted value.
fn sealed(value: &str) -> bool {
    codec::looks_encrypted(value)
}

/// The first clear value of a Secret-shaped mapping that ksec would not
/// encrypt: a `kind: Secret` that is not `apiVersion: v1`, or a Secret
/// nested where ksec does not handle Secrets. Checked on the input, before
/// any key is asked.
pub fn unencryptable(docs: &[Document]) -> Option<Exposure<'_>> {
    for doc in docs {
        if let Some(e) = not_v1(doc).or_else(|| stray(doc)) {
            return Some(e);
        }
    }
    None
}

/// The first clear value anywhere a Secret-shaped mapping holds one, the
/// sections a footer keeps clear excepted. Checked on the result, after
/// sealing and before writing.
pub fn exposed(docs: &[Document]) -> Option<Exposure<'_>> {
    for doc in docs {
        if doc.is_secret {
            let footer = doc
                .footer
                .as_ref()
                .and_then(|b| Footer::parse(b.lines.iter().map(String::as_str)).ok());
            let clear = footer
                .as_ref()
                .map_or(ClearSections::default(), |f| f.clear);
            let v1 = footer.as_ref().is_some_and(|f| f.version == 1);
            let site = doc.sites.iter().find(|s| {
                !secret::is_clear(clear, s.section)
                    && !(footer.is_some() && (sealed(&s.value) || (v1 && s.value.is_empty())))
            });
            if let Some(site) = site {
                return Some(Exposure::Secret { doc, site });
            }
        }
        if let Some(e) = not_v1(doc).or_else(|| stray(doc)) {
            return Some(e);
        }
    }
    None
}

fn not_v1(doc: &Document) -> Option<Exposure<'_>> {
    let shaped = !doc.is_secret
        && doc
            .kind
            .as_deref()
            .is_some_and(|k| k.eq_ignore_ascii_case("secret"));
    let site = doc.sites.iter().find(|s| !sealed(&s.value))?;
    shaped.then_some(Exposure::NotV1 { doc, site })
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

/// `document N (Kind name)` of a top-level document.
fn who(doc: &Document) -> String {
    format!(
        "document {} ({} {})",
        doc.index,
        doc.kind.as_deref().unwrap_or("no kind"),
        doc.display_name()
    )
}

/// The refusal for an exposure. `internal`: found on a result ksec built
/// (a bug), rather than in the input.
pub fn failure(file: &str, e: &Exposure<'_>, internal: bool) -> Failure {
    match e {
        Exposure::Secret { doc, site } => Failure::new(
            if internal { Exit::Other } else { Exit::State },
            format!(
                "{}, {}: {}a clear value would be written into an encrypted file; nothing was written",
                place(file, doc, site.line),
                secret::label(site),
                if internal { "internal error: " } else { "" }
            ),
        ),
        Exposure::NotV1 { doc, site } => {
            let item = doc.item_path();
            let at = if item.is_empty() {
                who(doc)
            } else {
                format!("document {}, {item} ({} {})", doc.index, doc.kind.as_deref().unwrap_or("no kind"), doc.display_name())
            };
            Failure::new(
                Exit::Input,
                format!(
                    "{file}:{}: {at}, {}: `kind: Secret` without `apiVersion: v1` is not encrypted, so this value would stay in clear text",
                    site.line,
                    secret::label(site)
                ),
            )
            .hint("for a Kubernetes Secret, set `apiVersion: v1` (its only API version); ksec encrypts no other kind named Secret")
        }
        Exposure::Stray { doc, stray, value } => Failure::new(
            Exit::Input,
            format!(
                "{file}:{}: {}, {} (Secret {}), {}: a Secret nested here cannot be encrypted in place, so this value would stay in clear text",
                value.line,
                who(doc),
                stray.path,
                stray.name.as_deref().unwrap_or("(unnamed)"),
                value.label
            ),
        )
        .hint("give the Secret a document of its own (after a `---` line), or put it in the items of a `kind: List`"),
    }
}

/// Refuses the result of an encrypting command when it exposes a value.
pub fn refuse_exposed(file: &str, docs: &[Document]) -> Result<()> {
    match exposed(docs) {
        Some(e) => Err(failure(file, &e, true)),
        None => Ok(()),
    }
}

/// Refuses an input that holds Secrets ksec cannot encrypt.
pub fn refuse_unencryptable(file: &str, docs: &[Document]) -> Result<()> {
    match unencryptable(docs) {
        Some(e) => Err(failure(file, &e, false)),
        None => Ok(()),
    }
}
