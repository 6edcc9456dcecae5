//! Sealing a kubesec document (tokens and footer) and stripping it (clear
//! values, footer removed), keeping what did not change byte for byte.

use std::collections::HashMap;
use std::ops::Range;

use zeroize::Zeroizing;

use super::codec::{self, CodecError};
use super::footer::{Footer, kubesec_order};
use super::mac;
use super::open::{ClearTexts, VALUES_PER_THREAD, value_batch};
use crate::error::{Error, Exit, Result};
use crate::formats::render::{clear_edit, kept_clear_edit, token_edit};
use crate::formats::{
    ClearValue, Mismatch, Opened, PlainRef, Plains, SealRequest, Sealed, SealedCheck, Sealing,
    StripOptions, Stripped, digest, digest_entry,
};
use crate::keys::{DataKey, KeyId, Keyring, WrapJob, WrappedKey};
use crate::manifest::{self, ClearSections, Document, Section, Stream};

/// A document waiting for its wraps.
struct KubesecSealing<'a> {
    file: &'a str,
    text: &'a str,
    doc: &'a Document,
    values: Plains<'a>,
    keys: Vec<KeyId>,
    /// The previous version, when sealed with the same data key.
    previous: Option<&'a Opened>,
    dek: DataKey,
    now: &'a str,
    clear: ClearSections,
    resign: bool,
    fresh: bool,
    /// AWS keys wrap with the Secret's namespace and name as context.
    aws_context: bool,
    /// The tokens, once [`Sealing::precompute`] made them.
    tokens: Option<Vec<String>>,
}

pub(super) fn prepare<'a>(
    stream: &'a Stream,
    doc: &'a Document,
    request: SealRequest<'a>,
) -> Result<Box<dyn Sealing + 'a>> {
    if request.values.len() != doc.sites.len() {
        return Err(Error::internal("one value per site expected"));
    }
    let fresh = !matches!(request.envelope.state, crate::formats::State::Sealed(_));
    // The context choice stays with the Secret; a new one takes the rule's.
    let aws_context = match request.previous.map(|p| super::footer(p.meta.as_ref())) {
        Some(Ok(f)) => f.aws_context,
        _ => request.rule.aws_context,
    };
    let previous = request.previous.filter(|p| p.dek == request.dek);
    Ok(Box::new(KubesecSealing {
        file: &stream.name,
        text: &stream.text,
        doc,
        values: request.values,
        keys: request.keys,
        previous,
        dek: request.dek,
        now: request.now,
        clear: request.clear,
        resign: request.resign,
        fresh,
        aws_context,
        tokens: None,
    }))
}

impl KubesecSealing<'_> {
    /// How a key wraps the data key of this Secret.
    fn params(&self, key: &KeyId) -> crate::keys::KeyParams {
        super::binding::params_for(key.kind, self.aws_context, self.doc)
    }

    /// The key lines of the previous version that hold this data key, used
    /// as this one uses it (a renamed Secret under an AWS context rewraps).
    fn held(&self, key: &KeyId) -> Option<&WrappedKey> {
        let params = self.params(key);
        self.previous.and_then(|p| {
            p.meta
                .key_lines()
                .iter()
                .find(|w| w.key == *key && w.params == params)
        })
    }

    /// The previous version's values by section and key.
    fn before(&self) -> HashMap<(Section, &str), &ClearValue> {
        self.previous
            .map(|p| {
                p.values
                    .iter()
                    .map(|o| ((o.section, o.key.as_str()), o))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One token per value of `values[range]`: unchanged values keep
    /// theirs (same IV, same bytes); changed ones get a fresh IV; clear
    /// sections stay clear.
    fn tokens(
        &self,
        range: Range<usize>,
        before: &HashMap<(Section, &str), &ClearValue>,
    ) -> Result<Vec<String>> {
        let cipher = codec::ValueCipher::new(&self.dek);
        let (clear, file, doc) = (self.clear, self.file, self.doc);
        let token = |v: PlainRef| -> Result<String> {
            if clear.contains(v.section) {
                return Ok(v.clear.to_string());
            }
            let reused = before
                .get(&(v.section, v.key))
                .filter(|o| *o.clear == *v.clear && codec::looks_encrypted(&o.token))
                .map(|o| o.token.clone());
            match reused {
                Some(t) => Ok(t),
                None => cipher
                    .encrypt_value(v.key, v.clear, &codec::random_iv())
                    .map_err(|e| value_error(file, doc, v, &e)),
            }
        };
        // A Secret with many values is encrypted on every core (each
        // thread draws IVs from its own CSPRNG); the first failure in file
        // order is the one reported.
        crate::par::try_map_range(range, VALUES_PER_THREAD, |i| token(self.values.get(i)))
    }

    /// The footer: key lines in kubesec's order (kept blobs for keys that
    /// hold the data key already), the MAC (kept when it still verifies),
    /// the version, the clear sections and the rotation record.
    fn footer(&self, keyring: &Keyring) -> Result<Footer> {
        let mut ordered = self.keys.clone();
        kubesec_order(&mut ordered, |k| k);
        let mut wrapped = Vec::with_capacity(ordered.len());
        for key in ordered {
            let params = self.params(&key);
            let blob = match self.held(&key) {
                Some(w) => keyring.kept(w).blob,
                None => keyring
                    .wrap(&key, &params, self.dek.as_bytes())
                    .map_err(|e| {
                        crate::keys::key_error(&e, &key)
                            .at(self.doc.location(self.file, self.doc.line))
                    })?,
            };
            wrapped.push(WrappedKey { key, params, blob });
        }
        let ids: Vec<KeyId> = wrapped.iter().map(|w| w.key.clone()).collect();
        // The MAC covers keys and clear values (no copies of them).
        let aad = mac::aad_of(
            self.values.len(),
            |i| {
                let v = self.values.get(i);
                (v.section, v.key, v.clear)
            },
            &ids,
        );
        let kept_mac = self
            .previous
            .filter(|_| !self.resign)
            .and_then(|p| super::footer(p.meta.as_ref()).ok())
            .and_then(|f| f.mac.as_ref())
            .filter(|m| mac::verify(&self.dek, &aad, m).is_ok())
            .cloned();
        let mac = kept_mac.unwrap_or_else(|| mac::compute(&self.dek, &aad, &codec::random_iv()));
        let version = if self.values.iter().any(|v| v.section == Section::StringData) {
            4
        } else {
            3
        };
        let rotated = match self.previous {
            Some(p) => super::footer(p.meta.as_ref())?.rotated.clone(),
            None => Some(self.now.to_owned()),
        };
        let mut footer = Footer {
            version,
            keys: wrapped,
            mac: Some(mac),
            rotated,
            clear: self.clear,
            aws_context: self.aws_context,
            binding: None,
        };
        footer.binding = self.binding(&footer);
        Ok(footer)
    }

    /// The binding: kept when it still verifies, none when an unbound file
    /// comes out unchanged (re-encrypting changes nothing), else new.
    fn binding(&self, footer: &Footer) -> Option<String> {
        let before = self
            .previous
            .filter(|_| !self.resign)
            .and_then(|p| super::footer(p.meta.as_ref()).ok());
        match before.map(|b| (&b.binding, b.bound_lines())) {
            Some((Some(old), _))
                if super::binding::verify(&self.dek, self.text, self.doc, footer, old).is_ok() =>
            {
                Some(old.clone())
            }
            Some((None, lines)) if lines == footer.bound_lines() => None,
            _ => Some(super::binding::compute(
                &self.dek, self.text, self.doc, footer,
            )),
        }
    }
}

impl Sealing for KubesecSealing<'_> {
    fn wrap_jobs(&self) -> Vec<WrapJob> {
        self.keys
            .iter()
            .filter(|k| self.held(k).is_none())
            .map(|k| WrapJob {
                key: k.clone(),
                params: self.params(k),
                secret: Zeroizing::new(self.dek.as_bytes().to_vec()),
            })
            .collect()
    }

    fn edits_start(&self) -> usize {
        // Its values and its footer (written over the old one, or inserted
        // after the document's content); nothing else of the stream.
        let footer = self
            .doc
            .footer
            .as_ref()
            .map_or(self.doc.footer_insert, |f| f.range.start);
        self.doc
            .sites
            .iter()
            .map(|s| s.range().start)
            .fold(footer, usize::min)
    }

    fn precompute(&mut self) -> Result<()> {
        // A large Secret's tokens are made a batch at a time in `finish`,
        // each batch written out before the next is made.
        if self.tokens.is_none() && self.values.len() <= value_batch() {
            self.tokens = Some(self.tokens(0..self.values.len(), &self.before())?);
        }
        Ok(())
    }

    fn finish(
        mut self: Box<Self>,
        keyring: &Keyring,
        out: &mut manifest::Splicer<'_>,
    ) -> Result<Sealed> {
        let made = self.tokens.take();
        // The footer first: its MAC needs the clear values, not the tokens.
        let footer = self.footer(keyring)?;
        let (doc, text) = (self.doc, self.text);
        let late = |e: manifest::LateEdit| Error::internal(format!("internal error: {e}"));
        // Each token moves into its edit (no second copy), written out as
        // it is made when nothing waits before it.
        let mut put = |start: usize, tokens: Vec<String>| -> Result<()> {
            for (site, token) in doc.sites[start..].iter().zip(tokens) {
                let edit = if footer.clear.contains(site.section) {
                    kept_clear_edit(text, doc, site, &token)
                } else {
                    Some(token_edit(site, token))
                };
                if let Some(e) = edit {
                    out.put(e).map_err(late)?;
                }
            }
            Ok(())
        };
        match made {
            Some(tokens) => put(0, tokens)?,
            None => {
                let before = self.before();
                let n = self.values.len();
                for start in (0..n).step_by(value_batch()) {
                    let end = n.min(start + value_batch());
                    put(start, self.tokens(start..end, &before)?)?;
                }
            }
        }
        let lines = footer.render_lines();
        out.put(manifest::write_footer(text, doc, &lines))
            .map_err(late)?;
        let check = Check {
            position: doc.position,
            label: match doc.item_path() {
                p if p.is_empty() => doc.index.to_string(),
                p => format!("{}, {p}", doc.index),
            },
            dek: self.dek.clone(),
            values: self
                .values
                .iter()
                .map(|v| digest_entry(v.section, v.key, v.clear))
                .collect(),
            clear: footer.clear,
            footer: lines,
        };
        Ok(Sealed {
            check: Box::new(check),
            fresh: usize::from(self.fresh),
        })
    }
}

/// What one sealed document must read back as. Values are kept as digests,
/// not as a second clear copy.
struct Check {
    position: usize,
    /// Its name in messages: `N` or `N, items[i]`.
    label: String,
    dek: DataKey,
    /// Per value, in file order: one digest of its section, key and clear
    /// text (8 bytes a value).
    values: Vec<u64>,
    clear: ClearSections,
    /// The footer lines as written.
    footer: Vec<String>,
}

impl SealedCheck for Check {
    fn document(&self) -> Option<usize> {
        Some(self.position)
    }

    fn verify(&self, out: &Stream, first: usize) -> std::result::Result<(), Mismatch> {
        let doc = self
            .position
            .checked_sub(first)
            .and_then(|i| out.docs.get(i))
            .ok_or_else(|| Mismatch(format!("document {} is missing", self.label)))?;
        let lines = doc.footer.as_ref().map(|f| &f.lines);
        if lines != Some(&self.footer) {
            return Err(format!("document {} lost its footer", self.label).into());
        }
        if doc.sites.len() != self.values.len() {
            return Err(format!("document {} changed shape", self.label).into());
        }
        // Every value decrypts, under its own key name, to what was meant;
        // a Secret with many values is checked on every core.
        let cipher = codec::ValueCipher::new(&self.dek);
        let text = &out.text;
        let check = |i: usize| -> std::result::Result<(), Mismatch> {
            let site = &doc.sites[i];
            let value = if self.clear.contains(site.section) {
                Zeroizing::new(site.value(text).to_owned())
            } else {
                cipher
                    .decrypt_value(site.key(text), site.value(text))
                    .map_err(|err| {
                        Mismatch(format!(
                            "document {}, {}: {err}",
                            self.label,
                            site.label(text)
                        ))
                    })?
            };
            if digest_entry(site.section, site.key(text), &value) != self.values[i] {
                return Err(format!(
                    "document {}, {} does not decrypt to its value",
                    self.label,
                    site.label(text)
                )
                .into());
            }
            Ok(())
        };
        crate::par::try_each(doc.sites.len(), VALUES_PER_THREAD, check)
    }
}

/// Writes an opened document in clear text into `out`: every value
/// (sections kept clear stay as they are, unless `-x` decodes `data`) and
/// the footer removed. Each edit is written out as it is made (sites are in
/// text order, the footer after them), so a large Secret's clear values
/// exist once, in the opened values, and then in the output.
pub(super) fn strip(
    stream: &Stream,
    doc: &Document,
    opened: &Opened,
    footer: &Footer,
    opts: StripOptions,
    out: &mut manifest::Splicer<'_>,
) -> Result<Stripped> {
    let late = |e: manifest::LateEdit| Error::internal(format!("internal error: {e}"));
    let compact = opened
        .extra
        .as_ref()
        .and_then(|e| e.downcast_ref::<ClearTexts>());
    if compact.is_none() && opened.values.len() != doc.sites.len() {
        return Err(Error::internal("one opened value per site expected"));
    }
    let clear_of = |i: usize| match compact {
        Some(c) => c.get(i),
        None => opened.values[i].clear.as_str(),
    };
    let mut intended = Vec::with_capacity(doc.sites.len());
    for (i, site) in doc.sites.iter().enumerate() {
        let clear = clear_of(i);
        let kept_clear = footer.clear.contains(site.section);
        if kept_clear && !(opts.cleartext && site.section == Section::Data) {
            // A section kept in clear text: its bytes stay as they are.
            intended.push(digest(clear));
            continue;
        }
        let (edit, parsed) = clear_edit(&stream.text, doc, site, clear, opts.cleartext);
        out.put(edit).map_err(late)?;
        intended.push(digest(&parsed));
    }
    if let Some(f) = &doc.footer {
        out.put(manifest::remove_footer(&stream.text, f))
            .map_err(late)?;
    }
    Ok(Stripped {
        expected: vec![(doc.position, intended)],
        check: None,
    })
}

fn value_error(file: &str, doc: &Document, v: PlainRef, e: &CodecError) -> Error {
    Error::new(Exit::Input, "invalid-value", e.to_string()).at(doc
        .location(file, v.line)
        .key(format!("{}.{}", v.section.as_str(), v.key)))
}
