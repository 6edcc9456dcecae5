//! Previous versions of Secrets: where `edit`, `encrypt --parent` and
//! `patch` take the data key, the key lines and the value tokens from, so
//! that a value that did not change keeps its exact ciphertext.
//!
//! Matching (documented in README, "Encrypting against a previous version"):
//!
//! 1. by name: a Secret matches the parent Secret with the same
//!    `metadata.namespace` and `metadata.name`, when that pair names exactly
//!    one Secret on each side;
//! 2. by position: a Secret still unmatched takes the parent Secret at the
//!    same position among Secrets (the n-th Secret, counting Secrets only),
//!    when that one is unmatched too. This is what keeps a Secret renamed in
//!    `ksec edit` on its data key.
//!
//! A Secret without a match gets a new data key.

use super::Session;
use super::open::open_all;
use crate::error::{Error, Exit, Result};
use crate::formats::{OpenOptions, Opened};
use crate::manifest::{Document, Section, Stream};

/// One opened Secret of a previous version.
#[derive(Clone)]
pub struct ParentDoc {
    /// 1-based position in the parent stream.
    pub index: usize,
    /// Position in the parent's located stream ([`Document::position`]).
    pub position: usize,
    /// `metadata.name`.
    pub name: Option<String>,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// The opened document: data key, footer and every value with its token.
    pub opened: Opened,
}

impl ParentDoc {
    /// The parent's clear value of `section.key`, if it has one.
    pub fn value(&self, section: Section, key: &str) -> Option<&str> {
        self.opened
            .values
            .iter()
            .find(|v| v.doc == self.position && v.section == section && v.key == key)
            .map(|v| v.clear.as_str())
    }
}

/// The Secrets of a previous version, every one opened and MAC-verified.
pub struct Parents {
    /// The parent's name in messages.
    pub file: String,
    /// Its encrypted Secrets, in stream order.
    pub docs: Vec<ParentDoc>,
}

impl Parents {
    /// The format the parent is written in.
    pub fn format(&self) -> Option<&'static dyn crate::formats::Format> {
        self.docs
            .first()
            .and_then(|d| crate::formats::by_name(d.opened.meta.format()))
    }

    /// Opens every encrypted Secret of `stream`. A MAC that does not verify,
    /// or a Secret no available key opens, is an error: a parent must be
    /// trustworthy, because its ciphertext is copied.
    pub fn open(session: &Session, stream: &Stream) -> Result<Parents> {
        let opened = open_all(
            session,
            std::slice::from_ref(stream),
            OpenOptions::default(),
        )?;
        let mut out = Vec::new();
        for os in &opened {
            for (e, o) in os.classified.envelopes.iter().zip(&os.opened) {
                let Some(o) = o else { continue };
                for &d in &e.docs {
                    out.push(ParentDoc::new(&stream.docs[d], o.clone()));
                }
            }
        }
        if out.is_empty() {
            return Err(Error::new(
                Exit::State,
                "no-parent",
                "the parent has no encrypted Secret",
            )
            .in_file(&stream.name)
            .hint("--parent takes an earlier encrypted version of the same file"));
        }
        Ok(Parents {
            file: stream.name.clone(),
            docs: out,
        })
    }

    /// For each Secret of the new stream (in order), the index into
    /// [`Parents::docs`] of its parent, if any. See the module docs.
    pub fn assign(&self, secrets: &[&Document]) -> Vec<Option<usize>> {
        let id = |ns: &Option<String>, n: &Option<String>| n.clone().map(|n| (ns.clone(), n));
        let new_ids: Vec<_> = secrets.iter().map(|d| id(&d.namespace, &d.name)).collect();
        let old_ids: Vec<_> = self
            .docs
            .iter()
            .map(|d| id(&d.namespace, &d.name))
            .collect();
        let mut out = vec![None; secrets.len()];
        let mut taken = vec![false; self.docs.len()];
        for (i, nid) in new_ids.iter().enumerate() {
            let Some(nid) = nid else { continue };
            if new_ids.iter().filter(|x| x.as_ref() == Some(nid)).count() != 1 {
                continue;
            }
            let mut hits = old_ids
                .iter()
                .enumerate()
                .filter(|(_, x)| x.as_ref() == Some(nid));
            if let (Some((j, _)), None) = (hits.next(), hits.next()) {
                out[i] = Some(j);
                taken[j] = true;
            }
        }
        for (i, slot) in out.iter_mut().enumerate() {
            if slot.is_none() && i < taken.len() && !taken[i] {
                *slot = Some(i);
                taken[i] = true;
            }
        }
        out
    }
}

impl ParentDoc {
    /// Wraps an opened document.
    pub fn new(doc: &Document, opened: Opened) -> Self {
        ParentDoc {
            index: doc.index,
            position: doc.position,
            name: doc.name.clone(),
            namespace: doc.namespace.clone(),
            opened,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::kubesec::Footer;
    use crate::keys::DataKey;

    fn parents(names: &[(&str, &str)]) -> Parents {
        let docs = names
            .iter()
            .enumerate()
            .map(|(i, (ns, n))| ParentDoc {
                index: i + 1,
                position: i,
                name: (!n.is_empty()).then(|| n.to_string()),
                namespace: (!ns.is_empty()).then(|| ns.to_string()),
                opened: Opened {
                    dek: DataKey::from_bytes([0; 32]),
                    meta: std::sync::Arc::new(Footer {
                        version: 3,
                        keys: Vec::new(),
                        mac: None,
                        rotated: None,
                        clear: Default::default(),
                        aws_context: false,
                        binding: None,
                    }),
                    values: Vec::new(),
                    extra: None,
                },
            })
            .collect();
        Parents {
            file: "p".into(),
            docs,
        }
    }

    fn stream(names: &[(&str, &str)]) -> Vec<Document> {
        let text: Vec<String> = names
            .iter()
            .map(|(ns, n)| {
                let mut d = String::from("apiVersion: v1\nkind: Secret\nmetadata:\n");
                if !n.is_empty() {
                    d.push_str(&format!("  name: {n}\n"));
                }
                if !ns.is_empty() {
                    d.push_str(&format!("  namespace: {ns}\n"));
                }
                d
            })
            .collect();
        crate::manifest::locate(&text.join("---\n"), crate::formats::is_metadata_comment).unwrap()
    }

    fn assign(old: &[(&str, &str)], new: &[(&str, &str)]) -> Vec<Option<usize>> {
        let docs = stream(new);
        let refs: Vec<&Document> = docs.iter().collect();
        parents(old).assign(&refs)
    }

    #[test]
    fn by_name_then_by_position() {
        // Same names in another order: matched by name.
        assert_eq!(
            assign(&[("", "a"), ("", "b")], &[("", "b"), ("", "a")]),
            vec![Some(1), Some(0)]
        );
        // Namespace counts.
        assert_eq!(
            assign(&[("x", "a"), ("y", "a")], &[("y", "a")]),
            vec![Some(1)]
        );
        // A renamed Secret keeps its position's parent.
        assert_eq!(
            assign(&[("", "a"), ("", "b")], &[("", "a"), ("", "c")]),
            vec![Some(0), Some(1)]
        );
        // A new Secret beyond the parent's count has none.
        assert_eq!(
            assign(&[("", "a")], &[("", "a"), ("", "z")]),
            vec![Some(0), None]
        );
        // A position taken by a name match is not given twice.
        assert_eq!(
            assign(&[("", "a"), ("", "b")], &[("", "z"), ("", "a")]),
            vec![None, Some(0)]
        );
        // Duplicate names fall back to positions.
        assert_eq!(
            assign(&[("", "a"), ("", "a")], &[("", "a"), ("", "a")]),
            vec![Some(0), Some(1)]
        );
        // No names at all: positions.
        assert_eq!(assign(&[("", "")], &[("", "")]), vec![Some(0)]);
    }
}
