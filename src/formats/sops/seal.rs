//! Sealing a file in the SOPS format in place, and stripping it.
//!
//! Sealing walks every value and comment as sops does; each one the rule
//! picks is written as an ENC string at its own bytes (double-quoted in
//! flow context), comments as `#ENC[…]`. A value whose clear text and path
//! are unchanged keeps its nonce (sops' rule), so under the same data key
//! it keeps its exact ciphertext. The MAC and `lastmodified` change only
//! when a value did; the `sops:` entry is appended to every document (or
//! its `lastmodified`/`mac` updated in place when nothing else changed).

use std::collections::HashMap;
use std::ops::Range;

use zeroize::Zeroizing;

use super::mac::Mac;
use super::meta::{self, Entry, Group, SOPS_VERSION, SopsMeta};
use super::open::{self, OpenedLeaf, SopsOpened, extra, secret_text};
use super::typed::{self, Typed};
use super::value::{self, IV_LEN, Kind};
use super::walk::{Leaf, Selection, Selector, Store, What, walk};
use super::{SopsMetadata, at_line, docs, metadata_node, sops_meta, store_of};
use crate::error::{Error, Exit, Result};
use crate::formats::render::render_clear;
use crate::formats::{
    Envelope, Mismatch, Opened, Plain, SealRequest, Sealed, SealedCheck, Sealing, State,
    StripOptions, Stripped, digest,
};
use crate::keys::{DataKey, KeyId, KeyParams, Keyring, WrapJob, WrappedKey};
use crate::manifest::commented::{Doc, Item, Node, Value};
use crate::manifest::scalar::{self, Context};
use crate::manifest::{Document, Edit, Section, Stream, ValueSite};

/// The line break of a text.
fn newline(text: &str) -> &'static str {
    if text.contains("\r\n") { "\r\n" } else { "\n" }
}

/// Where the line holding `at` starts.
fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map_or(0, |i| i + 1)
}

/// Where the line holding `at` ends, after its line break.
fn line_end(text: &str, at: usize) -> usize {
    text[at..].find('\n').map_or(text.len(), |i| at + i + 1)
}

/// Whether only white space follows `at` on its line.
fn rest_empty(text: &str, at: usize) -> bool {
    text[at..]
        .bytes()
        .take_while(|&b| b != b'\n')
        .all(|b| b == b' ' || b == b'\t' || b == b'\r')
}

/// A comment that starts after `at` on the same line with only white
/// space between: its start.
fn trailing_comment_start(text: &str, at: usize) -> Option<usize> {
    let rest = &text[at..];
    let line = &rest[..rest.find('\n').unwrap_or(rest.len())];
    let body = line.trim_start_matches([' ', '\t']);
    (body.starts_with('#') && body.len() < line.len()).then(|| at + (line.len() - body.len()))
}

/// The Secret sites of the stream's envelope documents, by start.
fn secret_sites<'s>(
    stream: &'s Stream,
    docs: &[usize],
) -> HashMap<usize, (&'s Document, &'s ValueSite)> {
    let mut out = HashMap::new();
    for &d in docs {
        let doc = &stream.docs[d];
        if doc.is_secret {
            for s in &doc.sites {
                out.insert(s.range().start, (doc, s));
            }
        }
    }
    out
}

/// The rendering context of a scalar leaf.
fn context<'a>(text: &str, s: &super::walk::Scalar<'_>, nl: &'a str) -> Context<'a> {
    Context {
        flow: s.flow,
        indent: scalar::block_indent(text, s.node.range.end, s.indent),
        newline: nl,
        line_rest_empty: rest_empty(text, s.node.range.end),
        header_comment: None,
    }
}

// ---------------------------------------------------------------------------
// Sealing.

/// One value or comment to write.
struct Planned {
    /// Its bytes now.
    range: Range<usize>,
    /// A comment (its new text replaces `#…`).
    comment: bool,
    /// Written in flow context (double-quoted).
    flow: bool,
    /// The rule encrypts it.
    encrypt: bool,
    /// Associated data.
    aad: String,
    /// Canonical clear text.
    plain: Zeroizing<String>,
    /// Type.
    kind: Kind,
    /// The nonce to use (reused or fresh).
    iv: [u8; IV_LEN],
    /// The text now in the file (for "unchanged" checks).
    current: String,
}

/// A key entry to write: kept from the previous version, or to wrap.
struct PlannedEntry {
    key: KeyId,
    params: KeyParams,
    /// What this key wraps: the data key or its group's share.
    secret: Zeroizing<Vec<u8>>,
    kept: Option<Entry>,
    role: String,
    aws_profile: String,
}

struct SopsSealing<'a> {
    stream: &'a Stream,
    envelope: &'a Envelope,
    planned: Vec<Planned>,
    groups: Vec<Vec<PlannedEntry>>,
    threshold: Option<usize>,
    selection: Option<Selection>,
    mac_only: bool,
    dek: DataKey,
    now: &'a str,
    digest: String,
    /// `lastmodified` and `mac` kept from the previous version.
    kept_mac: Option<(String, String)>,
    /// The metadata the file has now (sealed input).
    own: Option<&'a SopsMeta>,
    /// The binding to write.
    binding: Option<String>,
    version: String,
    fresh: usize,
}

/// Where an earlier value's nonce can be reused: by path and clear text.
type Stash = HashMap<(String, String), (Kind, Zeroizing<String>, Vec<u8>)>;

fn stash_of(previous: Option<&SopsOpened>) -> Stash {
    let mut stash = Stash::new();
    for l in previous.map(|p| p.leaves.as_slice()).unwrap_or_default() {
        if let Some(iv) = &l.iv {
            let text = if l.comment {
                l.plain.clone()
            } else {
                secret_text(l)
            };
            stash
                .entry((l.aad.clone(), text.to_string()))
                .or_insert_with(|| (l.kind, l.plain.clone(), iv.clone()));
        }
    }
    stash
}

pub(super) fn prepare<'a>(
    stream: &'a Stream,
    mut request: SealRequest<'a>,
) -> Result<Box<dyn Sealing + 'a>> {
    let own = match &request.envelope.state {
        State::Sealed(m) => Some(&sops_meta(m.as_ref())?.meta),
        State::Plain => None,
    };
    let previous = request.previous;
    let prev_meta: Option<&SopsMeta> = previous
        .and_then(|p| p.meta.as_any().downcast_ref::<SopsMetadata>())
        .map(|m| &m.meta);
    let prev_extra = previous.and_then(extra);
    let same_key = previous.is_some_and(|p| p.dek == request.dek);
    let rule = request.rule;
    let selection = match (prev_meta, &rule.selection) {
        (Some(m), _) => m.selection.clone(),
        (None, Some((field, value))) => Some(
            Selection::from_field(field, value.clone())
                .ok_or_else(|| Error::internal(format!("unknown sops rule `{field}`")))?,
        ),
        (None, None) => Some(Selection::kubernetes()),
    };
    let mac_only = prev_meta.map_or(rule.mac_only_encrypted, |m| m.mac_only_encrypted);
    let effective = selection.clone().unwrap_or_else(Selection::sops_default);
    if let Some(Err(e)) = effective.regex() {
        return Err(Error::new(
            Exit::Usage,
            "invalid-rule",
            format!(
                "the sops rule `{}` is not a valid regular expression: {}",
                effective.field().0,
                crate::error::one_line(&e.to_string())
            ),
        )
        .in_file(&stream.name));
    }
    let store = store_of(stream);
    let selector = Selector::new(&effective);
    let docs = docs(stream)?;
    if own.is_none() {
        refuse_sops_key(stream, docs)?;
    }
    let leaves = walk(docs, &selector).map_err(|e| {
        Error::new(Exit::Input, "unsupported-yaml", e.message).at(at_line(stream, e.line))
    })?;
    let own_leaves: HashMap<usize, &OpenedLeaf> = match (own, prev_extra) {
        (Some(_), Some(x)) => x.leaves.iter().map(|l| (l.start, l)).collect(),
        _ => HashMap::new(),
    };
    let sites = secret_sites(stream, &request.envelope.docs);
    let values = std::mem::take(&mut request.values).into_vec();
    let plain_of: HashMap<usize, &Plain> = {
        let mut order = Vec::new();
        for &d in &request.envelope.docs {
            let doc = &stream.docs[d];
            if doc.is_secret {
                order.extend(doc.sites.iter().map(|s| s.range().start));
            }
        }
        if order.len() != values.len() {
            return Err(Error::internal("one value per Secret site expected"));
        }
        order.into_iter().zip(&values).collect()
    };
    let stash = stash_of(prev_extra);
    // The earlier version's encrypted comments, by their ENC text (the
    // same nonce, key and path give the same string).
    let sealed_comments: HashMap<String, Zeroizing<String>> = match (previous, prev_extra) {
        (Some(p), Some(x)) => x
            .leaves
            .iter()
            .filter(|l| l.comment)
            .filter_map(|l| {
                let iv: [u8; IV_LEN] = l.iv.as_deref()?.try_into().ok()?;
                let enc = value::encrypt(&p.dek, l.plain.as_bytes(), &l.aad, &iv, Kind::Comment);
                Some((enc.render(), l.plain.clone()))
            })
            .collect(),
        _ => HashMap::new(),
    };
    let mut mac = Mac::new(mac_only);
    let mut planned = Vec::with_capacity(leaves.len());
    for leaf in &leaves {
        let Some(p) = plan_leaf(
            stream,
            store,
            leaf,
            &own_leaves,
            &sites,
            &plain_of,
            &stash,
            &sealed_comments,
        )?
        else {
            continue;
        };
        if !p.comment {
            mac.add(p.plain.as_bytes(), leaf.encrypt);
        }
        if p.comment
            && p.encrypt
            && !p.plain.is_empty()
            && let Selection::UnencryptedCommentRegex(r) = &effective
            && let Ok(re) = regex::Regex::new(r)
        {
            let enc = value::encrypt(
                &request.dek,
                p.plain.as_bytes(),
                &p.aad,
                &p.iv,
                Kind::Comment,
            )
            .render();
            if re.is_match(&enc) {
                return Err(Error::new(
                    Exit::Input,
                    "invalid-rule",
                    "an encrypted comment would match the file's `unencrypted_comment_regex`, so sops could not read the file back",
                )
                .at(at_line(stream, leaf.line()))
                .hint("choose an `unencrypted_comment_regex` that cannot match `ENC[…]`"));
            }
        }
        planned.push(p);
    }
    let digest = mac.hex();
    let kept_mac = (same_key && !request.resign)
        .then(|| prev_extra.filter(|x| x.digest == digest).and(prev_meta))
        .flatten()
        .filter(|m| !m.mac.is_empty())
        .map(|m| (m.lastmodified.clone(), m.mac.clone()));
    let (groups, threshold) = plan_groups(&request, prev_meta, same_key)?;
    let version = match (own, &kept_mac) {
        (Some(m), Some(_)) => m.version.clone(),
        _ => SOPS_VERSION.to_owned(),
    };
    // The binding: kept while it verifies; none for a file that had none
    // and comes out unchanged (re-encrypting changes nothing); else new.
    let binding = match prev_meta.filter(|_| same_key && !request.resign) {
        Some(m) => match &m.binding {
            Some(b) if super::binding::verify(&request.dek, &leaves, b).is_ok() => Some(b.clone()),
            None if kept_mac.is_some()
                && own.is_some()
                && m.lines.iter().map(|w| &w.key).eq(request.keys.iter()) =>
            {
                None
            }
            _ => Some(super::binding::compute(&request.dek, &leaves)),
        },
        None => Some(super::binding::compute(&request.dek, &leaves)),
    };
    Ok(Box::new(SopsSealing {
        stream,
        envelope: request.envelope,
        planned,
        groups,
        threshold,
        selection,
        mac_only,
        dek: request.dek,
        now: request.now,
        digest,
        kept_mac,
        own,
        binding,
        version,
        fresh: usize::from(own.is_none()),
    }))
}

/// What one leaf will be: its clear text, and the nonce for it.
#[allow(clippy::too_many_arguments)]
fn plan_leaf(
    stream: &Stream,
    store: Store,
    leaf: &Leaf<'_>,
    own: &HashMap<usize, &OpenedLeaf>,
    sites: &HashMap<usize, (&Document, &ValueSite)>,
    plain_of: &HashMap<usize, &Plain>,
    stash: &Stash,
    sealed_comments: &HashMap<String, Zeroizing<String>>,
) -> Result<Option<Planned>> {
    let aad = leaf.aad();
    let range = leaf.range();
    let current = stream.text[range.clone()].to_owned();
    let fresh_iv = value::random_iv;
    let (plain, kind, flow, comment, secret) = match &leaf.what {
        What::Comment(c) => {
            let plain = match own.get(&c.range.start) {
                Some(o) => o.plain.clone(),
                // A comment that is an ENC string already (merged from an
                // encrypted file): its clear text, if an earlier version
                // had it; else it is kept as it is, never encrypted twice.
                None if value::looks_encrypted(&c.text) => {
                    match sealed_comments.get(c.text.as_str()) {
                        Some(p) => p.clone(),
                        None => return Ok(None),
                    }
                }
                None => Zeroizing::new(c.text.clone()),
            };
            (plain, Kind::Comment, false, true, None)
        }
        What::Value(s) => {
            if let Some(o) = own.get(&s.node.range.start) {
                (o.plain.clone(), o.kind, s.flow, o.comment, None)
            } else {
                let typed = s.typed(store).map_err(|e| {
                    Error::new(Exit::Input, "unsupported-value", e.to_string()).at(at_line(
                        stream,
                        leaf.line(),
                    )
                    .key(leaf.label()))
                })?;
                if matches!(typed, Typed::Null) {
                    return Ok(None);
                }
                let secret = sites.get(&s.node.range.start).map(|_| s.node.range.start);
                let typed = match secret.and_then(|at| plain_of.get(&at)) {
                    Some(p) if *p.clear != *s.text => Typed::Str(p.clear.to_string()),
                    _ => typed,
                };
                let plain = Zeroizing::new(String::from_utf8_lossy(&typed.bytes()).into_owned());
                (plain, typed.kind(), s.flow, false, secret)
            }
        }
    };
    let encrypt = leaf.encrypt && !plain.is_empty();
    // A value unchanged at the same path keeps its nonce (and type: a
    // Secret value decrypted as a string matches its typed original).
    let reused = stash
        .get(&(aad.clone(), plain.to_string()))
        .filter(|(k, _, _)| *k == kind || (secret.is_some() && kind == Kind::Str));
    let (plain, kind, iv) = match reused {
        Some((k, p, iv)) if iv.len() == IV_LEN => {
            let mut a = [0u8; IV_LEN];
            a.copy_from_slice(iv);
            (p.clone(), *k, a)
        }
        _ => (plain, kind, fresh_iv()),
    };
    Ok(Some(Planned {
        range,
        comment,
        flow,
        encrypt,
        aad,
        plain,
        kind,
        iv,
        current,
    }))
}

/// The key groups: the previous version's grouping when it has the same
/// keys, else the rule's groups when they hold exactly these keys, else
/// one group.
fn plan_groups(
    request: &SealRequest<'_>,
    prev: Option<&SopsMeta>,
    same_key: bool,
) -> Result<(Vec<Vec<PlannedEntry>>, Option<usize>)> {
    let keys = &request.keys;
    let same_set = |groups: &[Vec<KeyId>]| {
        let flat: Vec<&KeyId> = groups.iter().flatten().collect();
        flat.len() == keys.len() && keys.iter().all(|k| flat.contains(&k))
    };
    let prev_groups: Option<Vec<Vec<KeyId>>> = prev.map(|m| {
        m.groups
            .iter()
            .map(|g| g.iter().map(|e| e.wrapped.key.clone()).collect())
            .collect()
    });
    let rule = request.rule;
    let (layout, threshold): (Vec<Vec<KeyId>>, Option<usize>) = match &prev_groups {
        Some(g) if same_set(g) => (g.clone(), prev.and_then(|m| m.threshold)),
        _ if rule.key_groups.len() > 1 && same_set(&rule.key_groups) => {
            let t = if rule.shamir_threshold == 0 {
                rule.key_groups.len()
            } else {
                rule.shamir_threshold
            };
            (rule.key_groups.clone(), Some(t))
        }
        _ => (vec![keys.clone()], None),
    };
    let unchanged_layout = prev_groups.as_ref() == Some(&layout) && same_key;
    let shares: Vec<Zeroizing<Vec<u8>>> = if layout.len() > 1 {
        let t = threshold.unwrap_or(layout.len());
        if unchanged_layout {
            // Every entry is kept: no share is needed.
            vec![Zeroizing::new(Vec::new()); layout.len()]
        } else {
            super::shamir::split(request.dek.as_bytes(), layout.len(), t)
                .map_err(|e| Error::new(Exit::Usage, "invalid-rule", format!("key groups: {e}")))?
        }
    } else {
        vec![Zeroizing::new(request.dek.as_bytes().to_vec())]
    };
    let prev_entries: Vec<&Entry> = prev
        .map(|m| m.groups.iter().flatten().collect())
        .unwrap_or_default();
    let params_for = |k: &KeyId| -> KeyParams {
        rule.key_params
            .iter()
            .find(|(id, _)| id == k)
            .map(|(_, p)| p.clone())
            .or_else(|| {
                prev_entries
                    .iter()
                    .find(|e| e.wrapped.key == *k)
                    .map(|e| e.wrapped.params.clone())
            })
            .map(|mut p| {
                p.pgp_signed = false;
                p
            })
            .unwrap_or_default()
    };
    let mut groups = Vec::with_capacity(layout.len());
    for (g, keys) in layout.iter().enumerate() {
        let mut entries = Vec::with_capacity(keys.len());
        for k in keys {
            let params = params_for(k);
            let previous = prev_entries.iter().find(|e| e.wrapped.key == *k).copied();
            let kept = previous
                .filter(|e| {
                    same_key
                        && (layout.len() == 1 || unchanged_layout)
                        && e.wrapped.params == params
                })
                .filter(|_| prev.is_some_and(|m| m.groups.len() == layout.len()))
                .cloned();
            entries.push(PlannedEntry {
                key: k.clone(),
                params,
                secret: shares[g].clone(),
                kept,
                role: previous.map(|e| e.role.clone()).unwrap_or_default(),
                aws_profile: previous.map(|e| e.aws_profile.clone()).unwrap_or_default(),
            });
        }
        groups.push(entries);
    }
    Ok((groups, threshold))
}

impl Sealing for SopsSealing<'_> {
    fn wrap_jobs(&self) -> Vec<WrapJob> {
        self.groups
            .iter()
            .flatten()
            .filter(|e| e.kept.is_none())
            .map(|e| WrapJob {
                key: e.key.clone(),
                params: e.params.clone(),
                secret: e.secret.clone(),
            })
            .collect()
    }

    fn finish(
        self: Box<Self>,
        keyring: &Keyring,
        out: &mut crate::manifest::Splicer<'_>,
    ) -> Result<Sealed> {
        let meta = self.metadata(keyring)?;
        let text = &self.stream.text;
        let nl = newline(text);
        let mut edits = value_edits(text, &self.planned, &self.dek, nl);
        edits.extend(self.metadata_edits(&meta)?);
        out.push(edits);
        let expected = self.planned.iter().map(|p| digest(&p.plain)).collect();
        Ok(Sealed {
            check: Box::new(Check {
                dek: self.dek.clone(),
                expected,
                digest: self.digest.clone(),
            }),
            fresh: self.fresh,
        })
    }
}

impl SopsSealing<'_> {
    fn metadata(&self, keyring: &Keyring) -> Result<SopsMeta> {
        let mut groups: Vec<Group> = Vec::with_capacity(self.groups.len());
        for g in &self.groups {
            let mut entries = Vec::with_capacity(g.len());
            for e in g {
                if let Some(kept) = &e.kept {
                    entries.push(Entry {
                        wrapped: keyring.kept(&kept.wrapped),
                        ..kept.clone()
                    });
                    continue;
                }
                let blob = keyring.wrap(&e.key, &e.params, &e.secret).map_err(|err| {
                    crate::keys::key_error(&err, &e.key).in_file(&self.stream.name)
                })?;
                entries.push(Entry {
                    wrapped: WrappedKey {
                        key: e.key.clone(),
                        params: e.params.clone(),
                        blob,
                    },
                    created_at: (e.key.kind != crate::keys::KeyType::Age)
                        .then(|| self.now.to_owned()),
                    role: e.role.clone(),
                    aws_profile: e.aws_profile.clone(),
                });
            }
            groups.push(entries);
        }
        let (lastmodified, mac) = match &self.kept_mac {
            Some(kept) => kept.clone(),
            None => {
                let aad = meta::mac_aad(self.now)
                    .ok_or_else(|| Error::internal("the clock's time is not RFC 3339"))?;
                let enc = value::encrypt(
                    &self.dek,
                    self.digest.as_bytes(),
                    &aad,
                    &value::random_iv(),
                    Kind::Str,
                );
                (self.now.to_owned(), enc.render())
            }
        };
        let mut meta = SopsMeta {
            groups,
            threshold: self.threshold,
            lastmodified,
            mac,
            selection: self.selection.clone(),
            mac_only_encrypted: self.mac_only,
            version: self.version.clone(),
            store: store_of(self.stream),
            lines: Vec::new(),
            binding: self.binding.clone(),
        };
        meta.relist();
        Ok(meta)
    }

    /// The edits that write the metadata into every document.
    fn metadata_edits(&self, meta: &SopsMeta) -> Result<Vec<Edit>> {
        let text = &self.stream.text;
        let docs = docs(self.stream)?;
        let nl = newline(text);
        // Only `lastmodified` and `mac` changed: edit those two values.
        let small = self.own.is_some_and(|own| {
            let mut a = own.clone();
            a.lastmodified = meta.lastmodified.clone();
            a.mac = meta.mac.clone();
            a == *meta
        });
        let mut edits = Vec::new();
        for doc in docs {
            match metadata_node(doc) {
                Some((key, value)) if small => {
                    edits.extend(field_edit(value, "lastmodified", &meta.lastmodified, text));
                    edits.extend(field_edit(value, "mac", &meta.mac, text));
                    let _ = key;
                }
                Some((key, value)) => edits.push(replace_entry(text, doc, key, value, meta, nl)),
                None => edits.push(insert_entry(text, doc, meta, nl)),
            }
        }
        let _ = self.envelope;
        Ok(edits)
    }
}

/// A clear stream whose document has a top-level `sops` entry of its own:
/// the metadata would replace it (sops refuses the same file).
fn refuse_sops_key(stream: &Stream, docs: &[Doc]) -> Result<()> {
    match docs.iter().enumerate().find_map(|(i, d)| Some((i, metadata_node(d)?))) {
        None => Ok(()),
        Some((i, (key, _))) => Err(Error::new(
            Exit::Input,
            "reserved-key",
            format!(
                "document {} has a top-level `sops` entry, where the SOPS format keeps its metadata",
                i + 1
            ),
        )
        .at(at_line(stream, key.line))
        .hint("rename the entry, or keep this file in the kubesec format")),
    }
}

/// The edits of values and comments: ENC strings where the rule encrypts.
fn value_edits(text: &str, planned: &[Planned], dek: &DataKey, nl: &str) -> Vec<Edit> {
    let _ = nl;
    // New comment texts first: a block scalar's header comment is written
    // with its value.
    let mut comments: HashMap<usize, (Range<usize>, String)> = HashMap::new();
    for p in planned
        .iter()
        .filter(|p| p.comment && !is_element_comment(text, p))
    {
        let new = if p.encrypt {
            format!(
                "#{}",
                value::encrypt(dek, p.plain.as_bytes(), &p.aad, &p.iv, Kind::Comment).render()
            )
        } else {
            p.current.clone()
        };
        comments.insert(p.range.start, (p.range.clone(), new));
    }
    let mut edits = Vec::new();
    for p in planned
        .iter()
        .filter(|p| !p.comment || is_element_comment(text, p))
    {
        if !p.encrypt {
            continue;
        }
        let enc = value::encrypt(dek, p.plain.as_bytes(), &p.aad, &p.iv, p.kind).render();
        let mut new = if p.flow { format!("\"{enc}\"") } else { enc };
        // A header comment inside a block scalar's bytes goes after the value.
        let inside: Vec<usize> = comments
            .keys()
            .copied()
            .filter(|&c| p.range.start < c && c < p.range.end)
            .collect();
        for c in inside {
            let (_, ctext) = comments.remove(&c).expect("listed");
            // The white space between the block indicator and the comment.
            let header = &text[p.range.start..c];
            let ws = &header[header.trim_end_matches([' ', '\t']).len()..];
            new.push_str(if ws.is_empty() { " " } else { ws });
            new.push_str(&ctext);
        }
        if new != p.current {
            edits.push(Edit {
                range: p.range.clone(),
                text: new,
            });
        }
    }
    for (_, (range, new)) in comments {
        if text[range.clone()] != new {
            edits.push(Edit { range, text: new });
        }
    }
    edits
}

/// An encrypted comment written by sops as a sequence element
/// (`- ENC[…,type:comment]`): a value leaf that opened as a comment.
fn is_element_comment(text: &str, p: &Planned) -> bool {
    p.comment && !text[p.range.clone()].starts_with('#')
}

/// The edit of one field (`lastmodified`, `mac`) inside the metadata.
fn field_edit(meta_node: &Node, field: &str, new: &str, text: &str) -> Option<Edit> {
    let items = meta_node.items()?;
    let node = items.iter().find_map(|i| match i {
        Item::Entry(k, v) if matches!(&k.value, Value::Scalar { text, .. } if text == field) => {
            Some(v)
        }
        _ => None,
    })?;
    let rendered = if meta_node.flow {
        serde_json::to_string(new).expect("a string")
    } else {
        meta_yaml_str(new, field)
    };
    (text[node.range.clone()] != rendered).then(|| Edit {
        range: node.range.clone(),
        text: rendered,
    })
}

fn meta_yaml_str(s: &str, field: &str) -> String {
    if field == "lastmodified" {
        scalar::double_quoted(s)
    } else {
        s.to_owned()
    }
}

/// The bytes of a YAML `sops:` entry: from its line's start to the end of
/// the line its value ends on.
fn entry_lines(text: &str, key: &Node, value: &Node) -> Range<usize> {
    line_start(text, key.range.start)..line_end(text, value.range.end.max(key.range.end))
}

/// The bytes of a JSON `"sops": {…}` member with the comma that joins it.
fn json_member(text: &str, root: &Node, key: &Node, value: &Node) -> Range<usize> {
    let items = root.items().unwrap_or_default();
    let entries: Vec<(&Node, &Node)> = items
        .iter()
        .filter_map(|i| match i {
            Item::Entry(k, v) => Some((&**k, v)),
            _ => None,
        })
        .collect();
    let at = entries
        .iter()
        .position(|(k, _)| k.range == key.range)
        .unwrap_or(0);
    if at > 0 {
        // From the end of the entry before it.
        entries[at - 1].1.range.end..value.range.end
    } else if let Some((next, _)) = entries.get(1) {
        key.range.start..next.range.start
    } else {
        let _ = text;
        key.range.start..value.range.end
    }
}

fn root_column(doc: &Doc) -> usize {
    doc.root
        .as_ref()
        .map_or(0, |r| if r.flow { 0 } else { r.column })
}

/// JSON layout of a flow root: the indent unit and line break, or compact.
fn json_layout<'t>(text: &'t str, root: &Node) -> (&'t str, &'static str) {
    let first = root.items().and_then(|its| {
        its.iter().find_map(|i| match i {
            Item::Entry(k, _) => Some(&**k),
            _ => None,
        })
    });
    match first {
        Some(k) if text[root.range.start..k.range.start].contains('\n') => {
            let ls = line_start(text, k.range.start);
            (&text[ls..k.range.start], newline(text))
        }
        _ => ("", ""),
    }
}

fn render_json_member(text: &str, root: &Node, meta: &SopsMeta) -> String {
    let (unit, nl) = json_layout(text, root);
    let sep = if nl.is_empty() { " " } else { "" };
    let _ = sep;
    format!("\"sops\": {}", meta::render_json(meta, unit, 1, nl))
}

fn replace_entry(
    text: &str,
    doc: &Doc,
    key: &Node,
    value: &Node,
    meta: &SopsMeta,
    nl: &str,
) -> Edit {
    let root = doc
        .root
        .as_ref()
        .expect("a document with metadata has a root");
    if root.flow {
        return Edit {
            range: key.range.start..value.range.end,
            text: render_json_member(text, root, meta),
        };
    }
    Edit {
        range: entry_lines(text, key, value),
        text: meta::render_yaml(meta, key.column, nl),
    }
}

fn insert_entry(text: &str, doc: &Doc, meta: &SopsMeta, nl: &str) -> Edit {
    if let Some(root) = &doc.root
        && root.flow
    {
        let last = root.items().and_then(|its| {
            its.iter().rev().find_map(|i| match i {
                Item::Entry(_, v) => Some(v),
                _ => None,
            })
        });
        let (unit, jnl) = json_layout(text, root);
        let member = render_json_member(text, root, meta);
        return match last {
            Some(v) => Edit {
                range: v.range.end..v.range.end,
                text: format!(",{jnl}{unit}{member}"),
            },
            None => Edit {
                range: root.range.start + 1..root.range.start + 1,
                text: member,
            },
        };
    }
    let at = doc.end;
    let mut block = meta::render_yaml(meta, root_column(doc), nl);
    if at > 0 && !text[..at].ends_with('\n') {
        // The file ends without a line break: so does the block (strip
        // removes the break written before it).
        block.insert_str(0, nl);
        if at == text.len() {
            block.truncate(block.len() - nl.len());
        }
    }
    Edit {
        range: at..at,
        text: block,
    }
}

/// What the sealed file must read back as.
struct Check {
    dek: DataKey,
    /// The digest of every value and comment's clear text, in walk order.
    expected: Vec<u64>,
    digest: String,
}

impl SealedCheck for Check {
    fn verify(&self, out: &Stream, _first: usize) -> std::result::Result<(), Mismatch> {
        let envelopes = crate::formats::Format::envelopes(&super::Sops, out)
            .map_err(|e| Mismatch(e.message))?;
        let [envelope] = envelopes.as_slice() else {
            return Err(Mismatch("the sops metadata is missing".into()));
        };
        let opened = crate::formats::Format::open_with_key(
            &super::Sops,
            out,
            envelope,
            self.dek.clone(),
            crate::formats::OpenOptions::default(),
        )
        .map_err(|e| Mismatch(e.message))?;
        let x = extra(&opened).ok_or_else(|| Mismatch("no sops values".into()))?;
        if x.digest != self.digest {
            return Err(Mismatch("the MAC covers other values".into()));
        }
        let got: Vec<u64> = x.leaves.iter().map(|l| digest(&l.plain)).collect();
        if got != self.expected {
            return Err(Mismatch(
                "a value does not decrypt to what was sealed".into(),
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Stripping.

/// How an opened value is written back in clear text, and the string it
/// parses back to.
fn render_typed(l: &OpenedLeaf, ctx: &Context<'_>, store: Store) -> String {
    let p = l.plain.as_str();
    match l.kind {
        Kind::Str | Kind::Bytes | Kind::Comment => scalar::render(p, ctx),
        Kind::Int => p.to_owned(),
        Kind::Bool => (if p == "True" { "true" } else { "false" }).to_owned(),
        Kind::Float if store == Store::Json => match p {
            "NaN" | "+Inf" | "-Inf" => scalar::double_quoted(p),
            _ => p.to_owned(),
        },
        Kind::Float => match p {
            "NaN" => ".nan".into(),
            "+Inf" => ".inf".into(),
            "-Inf" => "-.inf".into(),
            _ if matches!(typed::resolve(p, true, None), Ok(Typed::Float(_))) => p.to_owned(),
            _ => format!("{p}.0"),
        },
        Kind::Time if ctx.flow => scalar::double_quoted(p),
        Kind::Time => p.to_owned(),
    }
}

pub(super) fn strip(
    stream: &Stream,
    envelope: &Envelope,
    opened: &Opened,
    opts: StripOptions,
) -> Result<(Vec<Edit>, Stripped)> {
    let x =
        extra(opened).ok_or_else(|| Error::internal("a sops file opened without its values"))?;
    let text = &stream.text;
    let nl = newline(text);
    let store = store_of(stream);
    let meta = &sops_meta(opened.meta.as_ref())?.meta;
    let leaves = open::leaves(stream, meta)?;
    let by_start: HashMap<usize, &OpenedLeaf> = x.leaves.iter().map(|l| (l.start, l)).collect();
    let sites = secret_sites(stream, &envelope.docs);
    // Comments first (a literal block's header may take one).
    let mut comments: HashMap<usize, (Range<usize>, String)> = HashMap::new();
    for leaf in &leaves {
        if let What::Comment(c) = &leaf.what
            && let Some(o) = by_start.get(&c.range.start)
            && o.iv.is_some()
        {
            comments.insert(
                c.range.start,
                (c.range.clone(), format!("#{}", o.plain.as_str())),
            );
        }
    }
    let mut edits = Vec::new();
    let mut expected: HashMap<usize, HashMap<usize, u64>> = HashMap::new();
    for leaf in &leaves {
        let What::Value(s) = &leaf.what else { continue };
        let Some(o) = by_start.get(&s.node.range.start) else {
            continue;
        };
        let site = sites.get(&s.node.range.start);
        let decode = opts.cleartext && site.is_some_and(|(_, st)| st.section == Section::Data);
        if o.iv.is_none() && !decode {
            if let Some((doc, st)) = site {
                expected
                    .entry(doc.position)
                    .or_default()
                    .insert(st.range().start, digest(st.value(&stream.text)));
            }
            continue;
        }
        if o.comment {
            edits.push(element_comment_edit(stream, leaf, s.node, o)?);
            continue;
        }
        let mut ctx = match site {
            // A Secret value is written as the kubesec format writes it.
            Some((doc, st)) => st.context(doc.newline),
            None => context(text, s, nl),
        };
        let trailing = trailing_comment_start(text, s.node.range.end);
        let header = trailing.map(|c| match comments.get(&c) {
            Some((_, new)) => format!("{}{new}", &text[s.node.range.end..c]),
            None => {
                let end = text[c..].find(['\r', '\n']).map_or(text.len(), |i| c + i);
                text[s.node.range.end..end].to_owned()
            }
        });
        ctx.header_comment = header.as_deref();
        let (rendered, parsed) = match site {
            Some((_, st)) => {
                let clear = secret_text(o);
                let (r, p) = render_clear(st, &clear, opts.cleartext, &ctx);
                (r, p.to_string())
            }
            None => (render_typed(o, &ctx, store), String::new()),
        };
        let mut range = s.node.range.clone();
        if rendered.starts_with('|') {
            match trailing {
                Some(c) => {
                    let end = text[c..].find(['\r', '\n']).map_or(text.len(), |i| c + i);
                    range.end = end;
                    comments.remove(&c);
                }
                None => range.end = scalar::past_blanks(text, range.end),
            }
        }
        if let Some((doc, st)) = site {
            expected
                .entry(doc.position)
                .or_default()
                .insert(st.range().start, digest(&parsed));
        }
        edits.push(Edit {
            range,
            text: rendered,
        });
    }
    for (_, (range, new)) in comments {
        edits.push(Edit { range, text: new });
    }
    edits.extend(metadata_removal(stream)?);
    // What each Secret site must read back as, in site order.
    let mut per_doc = Vec::new();
    for &d in &envelope.docs {
        let doc = &stream.docs[d];
        if !doc.is_secret {
            continue;
        }
        let mine = expected.remove(&doc.position).unwrap_or_default();
        let values = doc
            .sites
            .iter()
            .map(|st| {
                mine.get(&st.range().start)
                    .copied()
                    .unwrap_or_else(|| digest(st.value(&stream.text)))
            })
            .collect();
        per_doc.push((doc.position, values));
    }
    // `-x` writes Secret `data` values decoded: those are checked above,
    // by site.
    let decoded = |l: &OpenedLeaf| {
        opts.cleartext
            && sites
                .get(&l.start)
                .is_some_and(|(_, st)| st.section == Section::Data)
    };
    let wanted: Vec<(String, Option<u64>)> = x
        .leaves
        .iter()
        .filter(|l| !l.comment)
        .map(|l| (l.aad.clone(), (!decoded(l)).then(|| digest(&l.plain))))
        .collect();
    Ok((
        edits,
        Stripped {
            expected: per_doc,
            check: Some(Box::new(StripCheck { store, wanted })),
        },
    ))
}

/// The edits that remove the `sops` entry of every document.
pub(super) fn metadata_removal(stream: &Stream) -> Result<Vec<Edit>> {
    let text = &stream.text;
    let mut edits = Vec::new();
    for doc in docs(stream)? {
        if let Some((key, value)) = metadata_node(doc) {
            let root = doc.root.as_ref().expect("metadata has a root");
            let range = if root.flow {
                json_member(text, root, key, value)
            } else {
                let mut r = entry_lines(text, key, value);
                // The last line of a file without a final line break: take
                // the break before it, written when the block was added.
                if r.end == text.len() && !text.ends_with('\n') && r.start > 0 {
                    r.start -= if text[..r.start].ends_with("\r\n") {
                        2
                    } else {
                        1
                    };
                }
                r
            };
            edits.push(Edit {
                range,
                text: String::new(),
            });
        }
    }
    Ok(edits)
}

/// `- ENC[…,type:comment]` back to the comment it was.
fn element_comment_edit(
    stream: &Stream,
    leaf: &Leaf<'_>,
    node: &Node,
    o: &OpenedLeaf,
) -> Result<Edit> {
    let text = &stream.text;
    let before = &text[line_start(text, node.range.start)..node.range.start];
    let dash = before.trim_end_matches([' ', '\t']);
    if !dash.ends_with('-') || !dash[..dash.len() - 1].trim().is_empty() {
        return Err(Error::new(
            Exit::Input,
            "unsupported-yaml",
            "an encrypted comment in a flow sequence cannot be written back as a comment",
        )
        .at(at_line(stream, leaf.line()).key(leaf.label())));
    }
    let start = node.range.start - (before.len() - dash.len()) - 1;
    Ok(Edit {
        range: start..node.range.end,
        text: format!("#{}", o.plain.as_str()),
    })
}

/// The stripped file must hold every value in clear text (read as sops
/// would type it), and no metadata.
struct StripCheck {
    store: Store,
    /// Per value, in walk order: its path and the digest of its clear text
    /// (`None`: written decoded, checked elsewhere).
    wanted: Vec<(String, Option<u64>)>,
}

impl SealedCheck for StripCheck {
    fn verify(&self, out: &Stream, _first: usize) -> std::result::Result<(), Mismatch> {
        let docs = out.commented().map_err(|e| Mismatch(e.to_string()))?;
        if docs.first().and_then(metadata_node).is_some() {
            return Err(Mismatch("the sops metadata is still there".into()));
        }
        let selector = Selector::new(&Selection::sops_default());
        let leaves = walk(docs, &selector).map_err(|e| Mismatch(e.message))?;
        let mut got = Vec::new();
        for l in &leaves {
            if let What::Value(s) = &l.what {
                match s.typed(self.store) {
                    Ok(Typed::Null) => {}
                    Ok(t) => got.push((l.aad(), String::from_utf8_lossy(&t.bytes()).into_owned())),
                    Err(e) => return Err(Mismatch(e.to_string())),
                }
            }
        }
        if got.len() != self.wanted.len() {
            return Err(Mismatch(format!(
                "{} values instead of {}",
                got.len(),
                self.wanted.len()
            )));
        }
        for ((aad, v), (want_aad, want)) in got.iter().zip(&self.wanted) {
            // A Secret value written as a string reads back as the string
            // its typed original was (`true` for `True`).
            let ok = want.is_none_or(|w| digest(v) == w || digest(&bool_spelling(v)) == w);
            if aad != want_aad || !ok {
                return Err(Mismatch(format!("the value at `{aad}` does not read back")));
            }
        }
        Ok(())
    }
}

fn bool_spelling(v: &str) -> String {
    match v {
        "true" => "True".into(),
        "false" => "False".into(),
        other => other.to_owned(),
    }
}
