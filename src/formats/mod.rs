//! On-disk formats: how encrypted values, wrapped data keys and the MAC are
//! written into a manifest, behind one seam.
//!
//! A [`Format`] turns a located [`Stream`] into [`Envelope`]s — groups of
//! values that share one data key (kubesec: one Secret document; sops: the
//! whole file) — each either plain or sealed with [`Metadata`] (the kubesec
//! footer, the sops block). It opens sealed envelopes (unwrap, decrypt,
//! verify), seals plain or opened ones (encrypt, wrap, write metadata), and
//! strips them for output. Everything else — which documents are Secrets,
//! where their values sit, splicing edits — is [`crate::manifest`]'s, and
//! the orchestration (batches of key-service calls over many files,
//! verification before writing) is [`crate::pipeline`]'s.
//!
//! Adding a format = one module implementing [`Format`] and its line in
//! [`FORMATS`].

pub mod kubesec;
pub mod render;
pub mod sops;

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{DataKey, KeyId, KeyParams, Keyring, WrapJob, WrappedKey};
use crate::manifest::{ClearSections, Document, Edit, Section, Stream, ValueSite};

/// Every format this build reads, the default (for new files) first.
pub static FORMATS: &[&dyn Format] = &[&kubesec::Kubesec, &sops::Sops];

/// The format a stream is written in: the one whose metadata it carries,
/// else the default. Refuses a stream that mixes formats.
pub fn detect(stream: &Stream) -> Result<&'static dyn Format> {
    Ok(detected(stream)?.unwrap_or(FORMATS[0]))
}

/// The format whose metadata the stream carries, if any. Refuses a stream
/// that mixes formats.
pub fn detected(stream: &Stream) -> Result<Option<&'static dyn Format>> {
    let mut found = FORMATS.iter().copied().filter(|f| f.detect(stream));
    match (found.next(), found.next()) {
        (Some(one), None) => Ok(Some(one)),
        (None, _) => Ok(None),
        (Some(a), Some(b)) => Err(Error::new(
            crate::error::Exit::Input,
            "mixed-formats",
            format!(
                "the stream mixes the {} and {} formats; ksec works on one format per file",
                a.name(),
                b.name()
            ),
        )
        .in_file(&stream.name)
        .hint("split the file, or convert it to one format")),
    }
}

/// The format named `name` (`kubesec`, `sops`).
pub fn by_name(name: &str) -> Option<&'static dyn Format> {
    FORMATS.iter().copied().find(|f| f.name() == name)
}

/// Whether a comment line (from its `#`, line break removed) is metadata of
/// some format, which the locator must attach to a document.
pub fn is_metadata_comment(line: &str) -> bool {
    FORMATS.iter().any(|f| f.is_metadata_comment(line))
}

/// A 64-bit digest of a value, for checking that a result reads back as
/// intended without keeping a second copy of every value in memory. Never
/// written anywhere.
pub fn digest(value: &str) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::hash::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// How many consecutive values of a Secret one [`EntryDigest`] covers: a
/// check keeps one digest per run (about 3 KB for 100,000 values, where
/// one per value took 800 KB next to the output at its peak).
pub const DIGEST_RUN: usize = 256;

/// One 64-bit digest of a run of values, each with its section and key
/// (see [`digest`]; each part is hashed with its end marked, so no two
/// different runs are framed alike).
#[derive(Default)]
pub struct EntryDigest(std::hash::DefaultHasher);

impl EntryDigest {
    /// Adds the next value.
    pub fn add(&mut self, section: crate::manifest::Section, key: &str, value: &str) {
        use std::hash::Hash as _;
        section.as_str().hash(&mut self.0);
        key.hash(&mut self.0);
        value.hash(&mut self.0);
    }

    /// The digest of the values added so far.
    pub fn finish(&self) -> u64 {
        use std::hash::Hasher as _;
        self.0.finish()
    }

    /// One digest per run of [`DIGEST_RUN`] of the `len` values `entry`
    /// reads by index (section, key, clear value), in order.
    pub fn runs<'a>(
        len: usize,
        entry: impl Fn(usize) -> (crate::manifest::Section, &'a str, &'a str),
    ) -> Vec<u64> {
        (0..len)
            .step_by(DIGEST_RUN)
            .map(|start| {
                let mut d = EntryDigest::default();
                for i in start..len.min(start + DIGEST_RUN) {
                    let (section, key, value) = entry(i);
                    d.add(section, key, value);
                }
                d.finish()
            })
            .collect()
    }
}

/// The first 8 hex digits of the SHA-256 of `s`: how `textconv` shows
/// ciphertext it cannot open (it says nothing about the clear value, which
/// is under a random IV).
pub fn fingerprint(s: &str) -> String {
    use sha2::{Digest as _, Sha256};
    let digest = Sha256::digest(s.as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `value` has the shape of an encrypted value in any format.
pub fn looks_sealed(value: &str) -> bool {
    FORMATS.iter().any(|f| f.looks_sealed(value))
}

/// What a sealed envelope's metadata says, for `introspect` and `check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaInfo {
    /// The format and version, e.g. `kubesec v3`.
    pub version: String,
    /// The numeric version (kubesec 1–4), where there is one.
    pub version_number: Option<u8>,
    /// The keys that wrap the data key, in file order.
    pub keys: Vec<KeyId>,
    /// Whether the metadata carries a MAC.
    pub mac: bool,
    /// Whether the format version itself has a MAC (kubesec v1/v2 do not).
    pub mac_in_format: bool,
    /// When ksec generated the data key, if recorded.
    pub rotated: Option<String>,
    /// Sections kept in clear text on purpose.
    pub clear: ClearSections,
    /// Whether kubesec itself can read the envelope.
    pub kubesec_compatible: bool,
    /// Whether it carries ksec's binding.
    pub binding: bool,
}

/// The metadata of a sealed envelope (kubesec footer, sops block). Each
/// format downcasts its own ([`Metadata::as_any`]).
pub trait Metadata: Debug + Send + Sync {
    /// The key lines that can open the data key.
    fn key_lines(&self) -> &[WrappedKey];
    /// The sets of key lines to unwrap; each set opens when any of its
    /// lines does (one set, unless the format splits the data key).
    fn unwrap_sets(&self) -> Vec<&[WrappedKey]> {
        vec![self.key_lines()]
    }
    /// What it says, for people.
    fn info(&self) -> MetaInfo;
    /// For the format's own downcast.
    fn as_any(&self) -> &dyn Any;
    /// The name of its format (`kubesec`, `sops`).
    fn format(&self) -> &'static str;
    /// Whether a Secret value of the envelope may be clear text on purpose
    /// (a section kept clear, an empty value the format never encrypts);
    /// `value` is the site's value.
    fn keeps_clear(&self, site: &ValueSite, value: &str) -> bool {
        let info = self.info();
        info.clear.contains(site.section) || (info.version_number == Some(1) && value.is_empty())
    }
}

/// Whether an envelope's values are encrypted.
#[derive(Debug, Clone)]
pub enum State {
    /// No metadata, every value in clear text.
    Plain,
    /// Metadata, every value (outside clear sections) encrypted.
    Sealed(Arc<dyn Metadata>),
}

/// Values that share one data key: for kubesec one Secret, for sops a file.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The documents it covers: positions in the stream's located documents.
    pub docs: Vec<usize>,
    /// Plain or sealed.
    pub state: State,
}

/// How strictly to open.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// Accept formats without a MAC (kubesec v1/v2).
    pub allow_missing_mac: bool,
    /// Do not check the MAC at all (repair: `recompute-mac`).
    pub skip_mac: bool,
    /// Do not keep each value's token in the result (for output that will
    /// not be sealed again; saves a copy of every ciphertext).
    pub drop_tokens: bool,
    /// The opened values are only written out by [`Format::strip`]: a
    /// format may keep them in its own compact form in [`Opened::extra`]
    /// instead of [`Opened::values`] (kubesec: the clear texts in one
    /// buffer, no record, key or token per value). sops keeps its values.
    pub output_only: bool,
    /// Refuse an envelope without a binding (`binding: required`,
    /// `--require-binding`).
    pub require_binding: bool,
}

/// A clear value of an opened envelope, with its current token.
#[derive(Clone)]
pub struct ClearValue {
    /// Position of its document in the stream.
    pub doc: usize,
    /// Section of the value.
    pub section: Section,
    /// Map key.
    pub key: String,
    /// The clear text (base64 text for `data`).
    pub clear: Zeroizing<String>,
    /// The token it was read from (empty when dropped, for a v1 empty value,
    /// and for a value of a section kept in clear text).
    pub token: String,
}

/// An opened envelope: its data key, metadata, and clear values.
#[derive(Clone)]
pub struct Opened {
    /// The data key.
    pub dek: DataKey,
    /// The metadata as read.
    pub meta: Arc<dyn Metadata>,
    /// The Secret values, in file order.
    pub values: Vec<ClearValue>,
    /// What else the format keeps of the opened envelope (sops: every
    /// value and comment of the file, for sealing it again), for its own
    /// downcast.
    pub extra: Option<Arc<dyn Any + Send + Sync>>,
}

impl Opened {
    /// The keys that hold the data key.
    pub fn keys(&self) -> Vec<KeyId> {
        self.meta
            .key_lines()
            .iter()
            .map(|w| w.key.clone())
            .collect()
    }
}

/// A value to seal. It borrows what the input holds as it is (most values
/// of a clear Secret), so that a large stream's values are not copied.
pub struct Plain<'a> {
    /// Section.
    pub section: Section,
    /// Map key.
    pub key: &'a str,
    /// Clear text (base64 text for `data`).
    pub clear: Clear<'a>,
    /// 1-based line, for errors.
    pub line: usize,
}

impl<'a> Plain<'a> {
    /// The value of `site` as `text` holds it.
    pub fn as_written(text: &'a str, site: &'a ValueSite) -> Self {
        let v = PlainRef::at(text, site);
        Plain {
            section: v.section,
            key: v.key,
            clear: Clear::Text(v.clear),
            line: v.line,
        }
    }
}

/// The values of an envelope to seal, in the order of its sites.
pub enum Plains<'a> {
    /// Listed one by one (values made by `-x` or by decryption, several
    /// documents).
    Listed(Vec<Plain<'a>>),
    /// Every value of one document as the input holds it (a clear Secret
    /// whose values need no encoding, the common case): read from its
    /// sites when asked, so that nothing is listed (a listed value takes
    /// 64 bytes: 6.4 MB for 100,000 values, kept until it is sealed).
    Sites {
        /// The text the document was located in.
        text: &'a str,
        /// The document.
        doc: &'a Document,
    },
}

impl Default for Plains<'_> {
    fn default() -> Self {
        Plains::Listed(Vec::new())
    }
}

impl<'a> Plains<'a> {
    /// How many values.
    pub fn len(&self) -> usize {
        match self {
            Plains::Listed(v) => v.len(),
            Plains::Sites { doc, .. } => doc.sites.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`-th value, borrowed.
    pub fn get(&self, i: usize) -> PlainRef<'_> {
        match self {
            Plains::Listed(v) => {
                let v = &v[i];
                PlainRef {
                    section: v.section,
                    key: v.key,
                    clear: &v.clear,
                    line: v.line,
                }
            }
            Plains::Sites { text, doc } => PlainRef::at(text, &doc.sites[i]),
        }
    }

    /// Every value, borrowed, in order.
    pub fn iter(&self) -> impl Iterator<Item = PlainRef<'_>> {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Every value as a list.
    pub fn into_vec(self) -> Vec<Plain<'a>> {
        match self {
            Plains::Listed(v) => v,
            Plains::Sites { text, doc } => doc
                .sites
                .iter()
                .map(|s| Plain::as_written(text, s))
                .collect(),
        }
    }
}

/// A value of [`Plains`], borrowed.
#[derive(Clone, Copy)]
pub struct PlainRef<'p> {
    /// Section.
    pub section: Section,
    /// Map key.
    pub key: &'p str,
    /// Clear text (base64 text for `data`).
    pub clear: &'p str,
    /// 1-based line, for errors.
    pub line: usize,
}

impl<'p> PlainRef<'p> {
    /// The value of `site` as `text` holds it.
    fn at(text: &'p str, site: &'p ValueSite) -> Self {
        PlainRef {
            section: site.section,
            key: site.key(text),
            clear: site.value(text),
            line: site.line(),
        }
    }
}

/// The clear text of a [`Plain`] value.
pub enum Clear<'a> {
    /// The value's own text in the input.
    Text(&'a str),
    /// Made from it (encoded with `-x`, or decrypted).
    Made(Zeroizing<String>),
}

impl std::ops::Deref for Clear<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Clear::Text(t) => t,
            Clear::Made(m) => m,
        }
    }
}

/// What sealing one envelope needs, decided by the pipeline.
pub struct SealRequest<'a> {
    /// The envelope (its documents and sites).
    pub envelope: &'a Envelope,
    /// The values, in the order of the envelope's sites.
    pub values: Plains<'a>,
    /// The keys to wrap the data key for.
    pub keys: Vec<KeyId>,
    /// What it is sealed against: its own earlier version or a parent
    /// (unchanged values keep their tokens when the data key is the same).
    pub previous: Option<&'a Opened>,
    /// The data key.
    pub dek: DataKey,
    /// When, for a new data key's record.
    pub now: &'a str,
    /// Sections kept in clear text.
    pub clear: ClearSections,
    /// Write a new MAC even when the old one still verifies (`recompute-mac`).
    pub resign: bool,
    /// What the configuration rule says beyond keys.
    pub rule: &'a FormatRule,
}

/// What a configuration rule (`.ksec.yaml`, `.sops.yaml`) says beyond the
/// list of keys, for formats that use it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FormatRule {
    /// The format new files are written in (`format: sops`).
    pub format: Option<&'static str>,
    /// sops: which values are encrypted (`encrypted_regex`, …) as the
    /// metadata field and its value.
    pub selection: Option<(String, String)>,
    /// sops: the MAC covers encrypted values only.
    pub mac_only_encrypted: bool,
    /// sops: key groups (the data key is split between them when there are
    /// two or more); empty for one group of the rule's keys.
    pub key_groups: Vec<Vec<KeyId>>,
    /// sops: how many groups recover the data key (0: all).
    pub shamir_threshold: usize,
    /// How particular keys are used (an AWS key's encryption context).
    pub key_params: Vec<(KeyId, KeyParams)>,
    /// kubesec: AWS KMS keys wrap with the Secret's namespace and name as
    /// encryption context (`aws_context: true`).
    pub aws_context: bool,
    /// Files without a binding are refused when opened (`binding: required`).
    pub binding_required: bool,
}

impl FormatRule {
    /// A rule that says nothing.
    pub const NONE: &'static FormatRule = &FormatRule {
        format: None,
        selection: None,
        mac_only_encrypted: false,
        key_groups: Vec::new(),
        shamir_threshold: 0,
        key_params: Vec::new(),
        aws_context: false,
        binding_required: false,
    };
}

/// An envelope ready to seal once its wraps are made (so that the wraps of
/// many envelopes and files go to the key services in one batch).
pub trait Sealing: Send {
    /// The wraps it needs that the previous version does not hold.
    fn wrap_jobs(&self) -> Vec<WrapJob>;
    /// The work that needs no key service (kubesec: every value's token),
    /// done ahead of [`Sealing::finish`] so that many envelopes can do it
    /// on every core. Optional: `finish` does what was not done.
    fn precompute(&mut self) -> Result<()> {
        Ok(())
    }
    /// The earliest byte of the input its edits may touch, when the format
    /// knows it before sealing (a kubesec Secret: its first value or its
    /// footer). The pipeline writes out what comes before the earliest
    /// place of the envelopes still to seal, so that every edit need not be
    /// held at once. `0` (the default): anywhere.
    fn edits_start(&self) -> usize {
        0
    }
    /// Seals it: its token and metadata edits go to `out` (a large
    /// envelope's written out as they are made, with
    /// [`crate::manifest::Splicer::put`]); returns how to check the result.
    fn finish(
        self: Box<Self>,
        keyring: &Keyring,
        out: &mut crate::manifest::Splicer<'_>,
    ) -> Result<Sealed>;
}

/// A sealed envelope (its edits given to the splicer): a check of the
/// written result.
pub struct Sealed {
    /// Checks the re-located result (the envelope reads back as sealed).
    pub check: Box<dyn SealedCheck>,
    /// How many of its documents were clear text before.
    pub fresh: usize,
}

/// How a sealed envelope is checked once the whole result is written out.
pub trait SealedCheck: Send + Sync {
    /// Ok when the envelope in `out` decrypts to exactly what was sealed.
    /// `out` is the whole result (`first` is 0), or, for a check that
    /// reads one document ([`SealedCheck::document`]), a part of it cut at
    /// document starts whose first document is the whole's `first`.
    fn verify(&self, out: &Stream, first: usize) -> std::result::Result<(), Mismatch>;

    /// The position in the whole result of the one document the check
    /// reads, when it reads one on its own: such a check can be given the
    /// part of the result that holds it. `None` for a check that needs the
    /// whole stream.
    fn document(&self) -> Option<usize> {
        None
    }
}

/// Why a result ksec built does not read back as intended (a bug, reported
/// as an internal error; nothing is written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Mismatch(pub String);

impl From<String> for Mismatch {
    fn from(s: String) -> Self {
        Mismatch(s)
    }
}

/// How clear values are written by [`Format::strip`].
#[derive(Debug, Clone, Copy, Default)]
pub struct StripOptions {
    /// `data` values base64-decoded (`-x`).
    pub cleartext: bool,
}

/// A stripped envelope (its edits given to the splicer): what each value
/// must read back as (digests).
pub struct Stripped {
    /// Per document position: the digest of each site's clear value, in site order.
    pub expected: Vec<(usize, Vec<u64>)>,
    /// A format's own check of the whole result (values outside Secrets).
    pub check: Option<Box<dyn SealedCheck>>,
}

/// One on-disk format.
pub trait Format: Sync {
    /// Its name (`kubesec`).
    fn name(&self) -> &'static str;
    /// Whether one envelope covers the whole stream (sops: one data key and
    /// MAC per file, values of every document), so that ciphertext outside
    /// Secrets is the format's own.
    fn whole_stream(&self) -> bool {
        false
    }
    /// Whether the stream carries this format's metadata.
    fn detect(&self, stream: &Stream) -> bool;
    /// Whether a comment line (from its `#`) is this format's metadata.
    fn is_metadata_comment(&self, line: &str) -> bool;
    /// Whether a value has the shape of this format's encrypted values.
    fn looks_sealed(&self, value: &str) -> bool;
    /// Groups the stream's Secrets into envelopes and classifies each,
    /// refusing mixtures (partly encrypted, tokens without metadata).
    fn envelopes(&self, stream: &Stream) -> Result<Vec<Envelope>>;
    /// Unwraps the data key and decrypts and verifies every value (the
    /// keyring answers from memory when a batch unwrapped it already).
    fn open(
        &self,
        stream: &Stream,
        envelope: &Envelope,
        keyring: &Keyring,
        opts: OpenOptions,
    ) -> Result<Opened>;
    /// Decrypts and verifies with a data key known already.
    fn open_with_key(
        &self,
        stream: &Stream,
        envelope: &Envelope,
        dek: DataKey,
        opts: OpenOptions,
    ) -> Result<Opened>;
    /// Prepares sealing one envelope.
    fn prepare<'a>(
        &self,
        stream: &'a Stream,
        request: SealRequest<'a>,
    ) -> Result<Box<dyn Sealing + 'a>>;
    /// Writes an opened envelope in clear text into `out`: its values,
    /// its metadata removed. A large envelope's edits are written out as
    /// they are made ([`crate::manifest::Splicer::put`]), not all held.
    fn strip(
        &self,
        stream: &Stream,
        envelope: &Envelope,
        opened: &Opened,
        opts: StripOptions,
        out: &mut crate::manifest::Splicer<'_>,
    ) -> Result<Stripped>;
    /// What `git diff` shows for a sealed envelope (`ksec textconv`): its
    /// values decrypted when `opened`, else fingerprints of their tokens;
    /// its metadata with blobs and MACs as fingerprints.
    fn diff_view(&self, stream: &Stream, envelope: &Envelope, opened: Option<&Opened>)
    -> Vec<Edit>;
    /// Every problem `check` reports about the stream's Secrets without
    /// opening them: clear values (each one, also among encrypted ones),
    /// damaged values and metadata, missing MACs. Codes as in the README.
    fn lint(&self, stream: &Stream) -> Vec<Error>;
    /// The edits that remove the format's metadata from the stream and
    /// nothing else (the merge driver compares files without it).
    fn remove_metadata(&self, stream: &Stream) -> Vec<Edit>;
}

#[cfg(test)]
mod tests {
    use super::EntryDigest;
    use crate::manifest::Section::{self, Data, StringData};

    fn run(entries: &[(Section, &str, &str)]) -> u64 {
        let mut d = EntryDigest::default();
        for &(section, key, value) in entries {
            d.add(section, key, value);
        }
        d.finish()
    }

    #[test]
    fn a_run_digest_changes_with_any_section_key_value_or_their_order() {
        let base = run(&[(Data, "ab", "c"), (StringData, "d", "e")]);
        assert_eq!(base, run(&[(Data, "ab", "c"), (StringData, "d", "e")]));
        for other in [
            run(&[(StringData, "ab", "c"), (StringData, "d", "e")]),
            run(&[(Data, "a", "bc"), (StringData, "d", "e")]),
            run(&[(Data, "abc", ""), (StringData, "d", "e")]),
            run(&[(Data, "ab", "d"), (StringData, "d", "e")]),
            run(&[(Data, "", "abc"), (StringData, "d", "e")]),
            run(&[(Data, "ab", "c"), (StringData, "d", "")]),
            run(&[(Data, "ab", "cd"), (StringData, "", "e")]),
            run(&[(StringData, "d", "e"), (Data, "ab", "c")]),
            run(&[(Data, "ab", "c")]),
        ] {
            assert_ne!(base, other);
        }
    }
}
