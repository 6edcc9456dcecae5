//! Sealing a kubesec document (tokens and footer) and stripping it (clear
//! values, footer removed), keeping what did not change byte for byte.

use std::collections::HashMap;
use std::ops::Range;

use zeroize::Zeroizing;

use super::codec::{self, CodecError};
use super::footer::{Footer, kubesec_order};
use super::mac;
use super::open::{ClearTexts, VALUES_PER_THREAD};
use crate::error::{Error, Exit, Result};
use crate::formats::render::{clear_edit, kept_clear_edit, token_edit};
use crate::formats::{
    ClearValue, DIGEST_RUN, EntryDigest, Mismatch, Opened, PlainRef, Plains, SealRequest, Sealed,
    SealedCheck, Sealing, StripOptions, Stripped, digest,
};
use crate::keys::{DataKey, KeyId, Keyring, WrapJob, WrappedKey};
use crate::manifest::{self, ClearSections, Document, Section, Stream};

/// The fewest tokens worth a thread of their own (about 1 ms of work).
const TOKENS_PER_THREAD: usize = 1024;

/// How many tokens of one large Secret are made at a time, each batch
/// written out before the next is made: enough for every core to take
/// [`TOKENS_PER_THREAD`] (about 250 KB of tokens on two cores).
fn token_batch() -> usize {
    TOKENS_PER_THREAD * crate::par::threads()
}

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
        crate::par::try_map_range(range, TOKENS_PER_THREAD, |i| token(self.values.get(i)))
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
        if self.tokens.is_none() && self.values.len() <= token_batch() {
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
                for start in (0..n).step_by(token_batch()) {
                    let end = n.min(start + token_batch());
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
            count: self.values.len(),
            runs: EntryDigest::runs(self.values.len(), |i| {
                let v = self.values.get(i);
                (v.section, v.key, v.clear)
            }),
            clear: footer.clear,
            footer: lines_digest(&lines),
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
    /// How many values it has.
    count: usize,
    /// Per run of [`DIGEST_RUN`] values, in file order: one digest of their
    /// sections, keys and clear texts.
    runs: Vec<u64>,
    clear: ClearSections,
    /// A digest of the footer lines as written.
    footer: u64,
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
        let lines = doc.footer.as_ref().map(|f| lines_digest(&f.lines));
        if lines != Some(self.footer) {
            return Err(format!("document {} lost its footer", self.label).into());
        }
        if doc.sites.len() != self.count {
            return Err(format!("document {} changed shape", self.label).into());
        }
        // Every value decrypts, under its own key name, and each run of
        // values to what was meant; a Secret with many values is checked
        // on every core.
        let cipher = codec::ValueCipher::new(&self.dek);
        let text = &out.text;
        let check = |run: usize| -> std::result::Result<(), Mismatch> {
            let sites = &doc.sites[run * DIGEST_RUN..self.count.min((run + 1) * DIGEST_RUN)];
            let mut d = EntryDigest::default();
            for site in sites {
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
                d.add(site.section, site.key(text), &value);
            }
            if d.finish() != self.runs[run] {
                let (first, last) = (&sites[0], &sites[sites.len() - 1]);
                return Err(format!(
                    "document {}: a value from {} to {} does not decrypt to its value",
                    self.label,
                    first.label(text),
                    last.label(text)
                )
                .into());
            }
            Ok(())
        };
        crate::par::try_each(self.runs.len(), VALUES_PER_THREAD / DIGEST_RUN, check)
    }
}

/// One 64-bit digest of a footer's lines (see [`digest`]).
fn lines_digest(lines: &[String]) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::hash::DefaultHasher::new();
    lines.hash(&mut h);
    h.finish()
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

#[cfg(test)]
mod tests {
    use super::{Check, DIGEST_RUN, EntryDigest, lines_digest};
    use crate::formats::SealedCheck;
    use crate::formats::kubesec::codec::{ValueCipher, random_iv};
    use crate::keys::DataKey;
    use crate::manifest::{ClearSections, Section};

    /// A Secret of `n` values `k{i}: v{i}` sealed under `dek`, except
    /// those `token` replaces.
    fn sealed(dek: &DataKey, n: usize, token: impl Fn(usize) -> Option<String>) -> String {
        let cipher = ValueCipher::new(dek);
        let mut t = String::from("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n");
        for i in 0..n {
            let tok = token(i).unwrap_or_else(|| {
                cipher
                    .encrypt_value(&format!("k{i}"), &format!("v{i}"), &random_iv())
                    .unwrap()
            });
            t.push_str(&format!("  k{i}: {tok}\n"));
        }
        t + "# kubesec:v:3\n"
    }

    /// The check made for `n` values `k{i}: v{i}` and the footer `text` has.
    fn check(dek: &DataKey, n: usize, text: &str) -> Check {
        let stream = crate::pipeline::parse("f", text.to_owned()).unwrap();
        let footer = &stream.docs[0].footer.as_ref().unwrap().lines;
        let entries: Vec<(String, String)> =
            (0..n).map(|i| (format!("k{i}"), format!("v{i}"))).collect();
        Check {
            position: 0,
            label: "1".into(),
            dek: dek.clone(),
            count: n,
            runs: EntryDigest::runs(n, |i| (Section::Data, &entries[i].0, &entries[i].1)),
            clear: ClearSections::default(),
            footer: lines_digest(footer),
        }
    }

    fn verify(check: &Check, text: &str) -> Result<(), String> {
        let out = crate::pipeline::parse("f", text.to_owned()).unwrap();
        check.verify(&out, 0).map_err(|m| m.0)
    }

    /// Each run of values is checked as a whole: a value that decrypts,
    /// but to another clear text, is caught with its run named; one that
    /// does not decrypt is named alone.
    #[test]
    fn a_check_catches_a_value_that_decrypts_to_another_one() {
        let (dek, n) = (DataKey::from_bytes([7; 32]), 2 * DIGEST_RUN + 10);
        let good = sealed(&dek, n, |_| None);
        let check = check(&dek, n, &good);
        assert_eq!(verify(&check, &good), Ok(()));
        let cipher = ValueCipher::new(&dek);
        let other = |i: usize| {
            (i == 300).then(|| {
                cipher
                    .encrypt_value("k300", "not v300", &random_iv())
                    .unwrap()
            })
        };
        assert_eq!(
            verify(&check, &sealed(&dek, n, other)),
            Err(
                "document 1: a value from data.k256 to data.k511 does not decrypt to its value"
                    .into()
            )
        );
        let last = |i: usize| {
            (i == n - 1).then(|| {
                cipher
                    .encrypt_value(&format!("k{i}"), "v", &random_iv())
                    .unwrap()
            })
        };
        let e = verify(&check, &sealed(&dek, n, last)).unwrap_err();
        assert!(e.contains("data.k512 to data.k521"), "{e}");
        let damaged = |i: usize| (i == 5).then(|| "AAAA.AAAA.AAAA".to_owned());
        let e = verify(&check, &sealed(&dek, n, damaged)).unwrap_err();
        assert!(e.starts_with("document 1, data.k5: "), "{e}");
        let fewer = sealed(&dek, n - 1, |_| None);
        assert_eq!(
            verify(&check, &fewer),
            Err("document 1 changed shape".into())
        );
    }
}
