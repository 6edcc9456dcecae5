//! Sealing streams: one prepare → wrap → finish batch for every Secret of
//! every file of a run, and the result checked before it is returned.
//!
//! 1. **Check and classify** each stream: ciphertext outside a Secret,
//!    Secrets ksec cannot encrypt in place, streams kubectl would split
//!    differently, clear copies in `last-applied-configuration`, invalid
//!    Secret keys — all refused before any key is asked.
//! 2. **Unwrap** the data keys of every encrypted Secret in one batch.
//! 3. **Decide** each Secret's values, keys, data key and clear sections
//!    ([`KeyPolicy`]), against its own earlier version or its parent.
//! 4. **Wrap** every new data key for every new key in one batch.
//! 5. **Finish**: the format writes tokens and metadata; the result is
//!    located again, every Secret must decrypt to exactly what was meant,
//!    and no Secret-shaped mapping may hold a clear value.

use zeroize::Zeroizing;

use super::checks::{
    check_keys, refuse_clear_copy, refuse_exposed, refuse_hidden_ciphertext, refuse_unencryptable,
};
use super::open::{Classified, classify_as, format_of, warm_unwraps};
use super::parents::{ParentDoc, Parents};
use super::policy::KeyPolicy;
use super::{Session, kubectl};
use crate::error::{Error, Exit, Result};
use crate::formats::{
    Clear, Envelope, Format, FormatRule, OpenOptions, Opened, Plain, Plains, SealRequest,
    SealedCheck, Sealing, State,
};
use crate::k8s;
use crate::keys::WrapJob;
use crate::manifest::{self, Document, Section, Stream};

/// How to seal one stream.
#[derive(Clone, Copy, Default)]
pub struct SealOptions<'a> {
    /// Keys, data keys and clear sections.
    pub policy: KeyPolicy<'a>,
    /// `data` values are plain text (or `!!binary`) to be base64-encoded.
    pub cleartext: bool,
    /// Earlier versions: a clear Secret takes its match's data key, key
    /// lines and the tokens of unchanged values.
    pub parents: Option<&'a Parents>,
    /// Refuse a Secret that is not encrypted yet instead of encrypting it
    /// (`updatekeys`, `recompute-mac` rewrite encrypted files only).
    pub only_sealed: bool,
    /// How encrypted Secrets are opened (`recompute-mac` skips the MAC).
    pub open: OpenOptions,
    /// Write a new MAC even when the old one still verifies.
    pub resign: bool,
    /// The format to write a clear stream in (`--format`); otherwise its
    /// parent's, its rule's, or the default. A stream already encrypted
    /// keeps its format.
    pub format: Option<&'static dyn crate::formats::Format>,
}

/// One stream to seal.
pub struct SealJob<'a> {
    /// The stream.
    pub stream: &'a Stream,
    /// How.
    pub options: SealOptions<'a>,
}

/// A sealed stream, verified.
pub struct SealedStream {
    /// The text to write.
    pub text: String,
    /// How many Secrets it holds, all encrypted.
    pub secrets: usize,
    /// How many of them were encrypted for the first time.
    pub fresh: usize,
    /// The format it is written in.
    pub format: &'static str,
}

/// A sealed stream whose result is not verified yet ([`seal_unverified`]).
/// It borrows nothing of its input, so a caller can free the input's
/// text and located values before the result is read back
/// ([`Unverified::verify`]): for one Secret of 100,000 values, 7 MB.
pub struct Unverified {
    name: String,
    text: String,
    checks: Vec<Box<dyn SealedCheck>>,
    /// Documents the input had, nested ones included.
    documents: usize,
    secrets: usize,
    fresh: usize,
    format: &'static str,
}

impl Unverified {
    /// The result, not verified yet.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The format it is written in.
    pub fn format(&self) -> &'static str {
        self.format
    }

    /// Reads the result back: it must hold as many documents as the input,
    /// every Secret must decrypt to exactly what was meant, and no
    /// Secret-shaped mapping may hold a clear value. Only then is it
    /// returned.
    pub fn verify(self) -> Result<SealedStream> {
        let text = if verified_in_parts(&self.name, &self.text, &self.checks, self.documents) {
            self.text
        } else {
            verify_whole(&self.name, self.text, &self.checks, self.documents)?
        };
        Ok(SealedStream {
            text,
            secrets: self.secrets,
            fresh: self.fresh,
            format: self.format,
        })
    }
}

/// Encrypts one text with `options` (a convenience over [`seal_all`]).
pub fn encrypt_text(
    session: &Session,
    name: &str,
    text: &str,
    options: SealOptions<'_>,
) -> Result<SealedStream> {
    let stream = super::parse(name, text.to_owned())?;
    let sealed = seal_unverified(
        session,
        &[SealJob {
            stream: &stream,
            options,
        }],
    )?
    .remove(0);
    // Its copy of the text and its located values are freed before the
    // result is read back.
    drop(stream);
    sealed.verify()
}

/// What one envelope will be sealed with.
struct EnvelopePlan<'a> {
    envelope: Envelope,
    values: Option<Plains<'a>>,
    /// The envelope as it was, when it was encrypted already.
    own: Option<Opened>,
    /// Its `--parent` (or edited file's) match, when it was clear text.
    parent: Option<&'a ParentDoc>,
    keys: Vec<crate::keys::KeyId>,
    dek: crate::keys::DataKey,
    clear: manifest::ClearSections,
}

impl EnvelopePlan<'_> {
    /// What it is sealed against: its own old version, or its parent.
    fn previous(&self) -> Option<&Opened> {
        self.own.as_ref().or(self.parent.map(|p| &p.opened))
    }
}

/// Seals every stream: checks all, unwraps every data key in one batch,
/// decides every Secret, makes every wrap in one batch, then seals and
/// verifies each. The first failure ends the run; nothing is returned
/// unless every stream verified.
pub fn seal_all(session: &Session, jobs: &[SealJob<'_>]) -> Result<Vec<SealedStream>> {
    seal_unverified(session, jobs)?
        .into_iter()
        .map(Unverified::verify)
        .collect()
}

/// [`seal_all`] up to the results, which are not verified yet: the caller
/// must [`Unverified::verify`] each before it uses it (after freeing what
/// it no longer needs of the inputs).
pub fn seal_unverified(session: &Session, jobs: &[SealJob<'_>]) -> Result<Vec<Unverified>> {
    let classified: Vec<Classified<'_>> = jobs
        .iter()
        .map(|j| check_and_classify(j.stream, preferred_format(&j.options)))
        .collect::<Result<_>>()?;
    warm_unwraps(
        &session.keyring,
        classified.iter().flat_map(|c| &c.envelopes),
        jobs.iter()
            .any(|j| j.options.open.allow_missing_mac || j.options.open.skip_mac),
    );
    let mut plans: Vec<Vec<EnvelopePlan<'_>>> = Vec::with_capacity(jobs.len());
    for (job, c) in jobs.iter().zip(&classified) {
        plans.push(plan_stream(session, job, c)?);
    }
    let mut sealings: Vec<Vec<Box<dyn Sealing + '_>>> = Vec::with_capacity(jobs.len());
    for ((job, c), plans) in jobs.iter().zip(&classified).zip(&mut plans) {
        let values: Vec<Plains> = plans
            .iter_mut()
            .map(|p| p.values.take().unwrap_or_default())
            .collect();
        let mut mine = Vec::with_capacity(plans.len());
        let rule = job
            .options
            .policy
            .rule
            .and_then(|r| r.format)
            .unwrap_or(FormatRule::NONE);
        for (plan, values) in plans.iter().zip(values) {
            mine.push(c.format.prepare(
                job.stream,
                SealRequest {
                    envelope: &plan.envelope,
                    values,
                    keys: plan.keys.clone(),
                    previous: plan.previous(),
                    dek: plan.dek.clone(),
                    now: &session.now,
                    clear: plan.clear,
                    resign: job.options.resign,
                    rule,
                },
            )?);
        }
        sealings.push(mine);
    }
    let wraps: Vec<WrapJob> = sealings
        .iter()
        .flatten()
        .flat_map(|s| s.wrap_jobs())
        .collect();
    session
        .keyring
        .wrap_all(&wraps)
        .map_err(|(k, e)| crate::keys::key_error(&e, &k))?;
    jobs.iter()
        .zip(sealings)
        .zip(&classified)
        .map(|((job, sealings), c)| finish_stream(session, job.stream, c.format, sealings))
        .collect()
}

/// The format a job writes a clear stream in: `--format`, else its
/// parent's, else its rule's.
fn preferred_format(options: &SealOptions<'_>) -> Option<&'static dyn Format> {
    options
        .format
        .or_else(|| options.parents.and_then(|p| p.format()))
        .or_else(|| {
            options
                .policy
                .rule
                .and_then(|r| r.format)
                .and_then(|f| f.format)
                .and_then(crate::formats::by_name)
        })
}

/// Step 1 for one stream: every refusal that needs no key.
fn check_and_classify<'s>(
    stream: &'s Stream,
    preferred: Option<&'static dyn Format>,
) -> Result<Classified<'s>> {
    let file = &stream.name;
    let format = format_of(stream, preferred)?;
    if let Some(want) = preferred
        && want.name() != format.name()
    {
        return Err(Error::new(
            Exit::State,
            "other-format",
            format!(
                "the file is encrypted in the {} format, not {}",
                format.name(),
                want.name()
            ),
        )
        .in_file(file)
        .hint(format!(
            "`ksec convert --to {} {file}` changes its format",
            want.name()
        )));
    }
    if !format.whole_stream() {
        // Ciphertext or a footer outside a v1 Secret is a damaged Secret
        // (say, an edited `kind`); encrypting around it would hide the
        // damage.
        for doc in &stream.docs {
            refuse_hidden_ciphertext(file, &stream.text, doc)?;
        }
        // Secrets in shapes ksec cannot encrypt in place would pass
        // through in clear text: refuse them with a hint (the final check
        // would too). A whole-stream format encrypts them where they are.
        refuse_unencryptable(stream)?;
    }
    if stream.secrets().next().is_some() {
        // decrypt refuses what kubectl would split differently; so does
        // encrypt, rather than write a file that cannot be deployed.
        kubectl::check_split(file, &stream.text)?;
    }
    let c = classify_as(stream, Some(format))?;
    for doc in stream.secrets() {
        refuse_clear_copy(file, doc)?;
        check_keys(file, &stream.text, doc)?;
    }
    Ok(c)
}

/// Step 3 for one stream.
fn plan_stream<'p>(
    session: &Session,
    job: &SealJob<'p>,
    c: &Classified<'_>,
) -> Result<Vec<EnvelopePlan<'p>>> {
    let stream = job.stream;
    let opts = &job.options;
    // Every Secret of every envelope, matched to the parents' Secrets.
    let secrets: Vec<&Document> = c
        .envelopes
        .iter()
        .flat_map(|e| secrets_of(stream, e))
        .collect();
    let assigned = opts
        .parents
        .map_or_else(|| vec![None; secrets.len()], |p| p.assign(&secrets));
    let parent_of = |d: &Document| -> Option<&'p ParentDoc> {
        let i = secrets.iter().position(|s| s.position == d.position)?;
        assigned[i].and_then(|j| opts.parents.map(|p| &p.docs[j]))
    };
    let mut plans = Vec::with_capacity(c.envelopes.len());
    for envelope in &c.envelopes {
        let mine: Vec<&Document> = secrets_of(stream, envelope).collect();
        // The document errors are reported at, and its parent.
        let lead = mine
            .first()
            .copied()
            .unwrap_or(&stream.docs[envelope.docs[0]]);
        let parent = mine.iter().find_map(|d| parent_of(d)).or_else(|| {
            // A whole-stream envelope (sops) has one parent: the file's.
            c.format
                .whole_stream()
                .then(|| opts.parents.and_then(|p| p.docs.first()))
                .flatten()
        });
        let no_values = mine.iter().all(|d| d.sites.is_empty());
        let (values, own) = match &envelope.state {
            State::Plain if opts.only_sealed && no_values => continue,
            State::Plain if opts.only_sealed => return Err(plain_secret_kept(&stream.name, lead)),
            State::Plain => {
                let mut each = Vec::with_capacity(mine.len());
                for d in &mine {
                    each.push(plain_values(
                        &stream.name,
                        &stream.text,
                        d,
                        opts.cleartext,
                        parent_of(d),
                    )?);
                }
                let values = match <[Plains; 1]>::try_from(each) {
                    Ok([one]) => one,
                    Err(each) => {
                        Plains::Listed(each.into_iter().flat_map(Plains::into_vec).collect())
                    }
                };
                (values, None)
            }
            State::Sealed(_) => {
                let opened = c
                    .format
                    .open(stream, envelope, &session.keyring, opts.open)?;
                let values = mine
                    .iter()
                    .flat_map(|d| reopened_values(&stream.text, d, &opened))
                    .collect();
                (Plains::Listed(values), Some(opened))
            }
        };
        let previous = own.as_ref().or(parent.map(|p| &p.opened));
        let decision = opts.policy.decide(session, &stream.name, lead, previous)?;
        plans.push(EnvelopePlan {
            envelope: envelope.clone(),
            values: Some(values),
            own,
            parent,
            keys: decision.keys,
            dek: decision.dek,
            clear: decision.clear,
        });
    }
    Ok(plans)
}

/// The Secrets of an envelope, in stream order.
fn secrets_of<'s>(stream: &'s Stream, e: &Envelope) -> impl Iterator<Item = &'s Document> {
    e.docs
        .iter()
        .map(|&d| &stream.docs[d])
        .filter(|d| d.is_secret)
}

/// The fewest Secrets worth a thread of their own when their tokens are
/// made or the result is checked (about 50 µs each at 100 values).
const CHECKS_PER_THREAD: usize = 16;

/// How many envelopes are sealed at a time when a stream is written out as
/// it is sealed: enough for every core to take [`CHECKS_PER_THREAD`] (for
/// Secrets of 100 values, about 350 KB of tokens on two cores).
fn group_size() -> usize {
    crate::par::threads() * CHECKS_PER_THREAD
}

/// Step 5 for one stream: seal and splice (the caller verifies).
///
/// Envelopes are sealed a group at a time (each group's tokens made on
/// every core) and written out as soon as no envelope still to seal can
/// edit before them, so that only one group's tokens and edits exist at
/// once, not the whole stream's.
fn finish_stream(
    session: &Session,
    stream: &Stream,
    format: &'static dyn Format,
    sealings: Vec<Box<dyn Sealing + '_>>,
) -> Result<Unverified> {
    let internal = |why: String| {
        Error::internal(format!(
            "internal error: the encrypted result did not verify ({why}); nothing was written"
        ))
        .in_file(&stream.name)
    };
    // floor[i]: the earliest byte any envelope from the i-th on may edit.
    let mut floor = vec![usize::MAX; sealings.len() + 1];
    for (i, s) in sealings.iter().enumerate().rev() {
        floor[i] = floor[i + 1].min(s.edits_start());
    }
    let mut out = manifest::Splicer::new(&stream.text);
    let mut checks = Vec::with_capacity(sealings.len());
    let mut fresh = 0;
    let mut rest = sealings.into_iter();
    loop {
        let mut group: Vec<_> = rest.by_ref().take(group_size()).collect();
        if group.is_empty() {
            break;
        }
        // What needs no key service (each Secret's tokens) on every core;
        // the first failure in file order is the one reported.
        crate::par::map_mut(&mut group, CHECKS_PER_THREAD, |s| s.precompute())
            .into_iter()
            .collect::<Result<()>>()?;
        for s in group {
            // What it writes out at once must end before any envelope
            // still to seal may edit.
            out.limit(floor[checks.len() + 1]);
            let sealed = s.finish(&session.keyring, &mut out)?;
            checks.push(sealed.check);
            fresh += sealed.fresh;
            out.flush(floor[checks.len()])
                .map_err(|e| internal(e.to_string()))?;
        }
    }
    let text = out.finish().map_err(|e| internal(e.to_string()))?;
    let secrets = if format.whole_stream() && !checks.is_empty() {
        stream.secrets().count()
    } else {
        checks.len()
    };
    Ok(Unverified {
        name: stream.name.clone(),
        text,
        checks,
        documents: stream.docs.len(),
        secrets,
        fresh: if format.whole_stream() && fresh > 0 {
            secrets
        } else {
            fresh
        },
        format: format.name(),
    })
}

/// The result verified whole: it reads as as many documents as the input,
/// every envelope reads back as sealed (many on every core, the first
/// failure in file order reported), and no Secret-shaped mapping holds a
/// clear value.
fn verify_whole(
    name: &str,
    out: String,
    checks: &[Box<dyn SealedCheck>],
    documents: usize,
) -> Result<String> {
    let internal = |why: String| {
        Error::internal(format!(
            "internal error: the encrypted result did not verify ({why}); nothing was written"
        ))
        .in_file(name)
    };
    let written = super::parse(name, out).map_err(|e| internal(e.to_string()))?;
    if written.docs.len() != documents {
        return Err(internal(format!(
            "{} documents instead of {documents}",
            written.docs.len(),
        )));
    }
    crate::par::try_each(checks.len(), CHECKS_PER_THREAD, |i| {
        checks[i].verify(&written, 0)
    })
    .map_err(|m| internal(m.0))?;
    refuse_exposed(&written)?;
    Ok(written.text)
}

/// Bytes of a result verified at a time by [`verified_in_parts`].
const VERIFY_PART: usize = 256 << 10;

/// [`verify_whole`] a part at a time, so that the located values of a few
/// parts exist at once instead of the whole result's (32 bytes a value: for
/// 100,000 values in 1,000 Secrets, 3.2 MB next to the output). The result
/// is cut at document starts into parts that read, each on its own, as
/// they read in the whole ([`manifest::part_cuts`]); as many parts as there
/// are cores are located at once, then their Secrets checked. True when
/// every part passed every check of [`verify_whole`]; false when the result
/// cannot be cut (small, one document, a whole-stream format), and on any
/// failure, for which the caller verifies the whole and reports exactly
/// what it finds.
fn verified_in_parts(
    name: &str,
    text: &str,
    checks: &[Box<dyn SealedCheck>],
    documents: usize,
) -> bool {
    let Some(positions) = checks
        .iter()
        .map(|c| c.document())
        .collect::<Option<Vec<usize>>>()
    else {
        return false;
    };
    if !positions.is_sorted() {
        return false;
    }
    let cuts = manifest::part_cuts(text, VERIFY_PART);
    if cuts.is_empty() {
        return false;
    }
    let starts: Vec<usize> = std::iter::once(0).chain(cuts.iter().copied()).collect();
    let part = |i: usize| starts[i]..starts.get(i + 1).copied().unwrap_or(text.len());
    // Position of the next part's first document; checks done so far.
    let (mut first, mut checked) = (0, 0);
    for batch in (0..starts.len())
        .collect::<Vec<_>>()
        .chunks(crate::par::threads())
    {
        let located = crate::par::map(batch, 1, |&i| {
            super::parse(name, text[part(i)].to_owned()).ok()
        });
        let mut work = Vec::with_capacity(located.len());
        for stream in &located {
            let Some(stream) = stream else {
                return false;
            };
            let end = first + stream.docs.len();
            let mine = checked..checked + positions[checked..].partition_point(|&p| p < end);
            work.push((stream, first, mine.clone()));
            (first, checked) = (end, mine.end);
        }
        let passed = crate::par::map(&work, 1, |(stream, first, mine)| {
            checks[mine.clone()]
                .iter()
                .all(|c| c.verify(stream, *first).is_ok())
                && super::checks::exposed(stream).is_none()
        });
        if passed.contains(&false) {
            return false;
        }
    }
    first == documents && checked == checks.len()
}

/// A command that rewrites encrypted files met a Secret that is not
/// encrypted: writing the file back would write its values in clear text.
fn plain_secret_kept(file: &str, doc: &Document) -> Error {
    Error::new(
        Exit::State,
        "clear-value",
        "the Secret is not encrypted, and this file would be written back with its values in clear text",
    )
    .at(doc.location(file, doc.line))
    .hint(format!("encrypt it first: ksec encrypt -i {file}"))
}

/// The values of an opened envelope's document, ready to seal again.
fn reopened_values<'a>(text: &'a str, doc: &'a Document, opened: &Opened) -> Vec<Plain<'a>> {
    opened
        .values
        .iter()
        .filter(|v| v.doc == doc.position)
        .zip(&doc.sites)
        .map(|(v, s)| Plain {
            section: v.section,
            key: s.key(text),
            clear: Clear::Made(v.clear.clone()),
            line: s.line(),
        })
        .collect()
}

/// The clear values of a plain document, checked and (with `-x`) encoded.
/// With `-x`, a `data` value whose bytes equal the parent's keeps the
/// parent's base64 text, so that its token can be reused. When every value
/// is sealed as the input holds it, none is listed: they are read from the
/// document's sites when sealed ([`Plains::Sites`]).
fn plain_values<'a>(
    file: &str,
    text: &'a str,
    doc: &'a Document,
    cleartext: bool,
    parent: Option<&ParentDoc>,
) -> Result<Plains<'a>> {
    let not_base64 = |s| {
        Error::new(
            Exit::Input,
            "not-base64",
            "the value is not valid base64, which `data` values must be",
        )
        .at(doc.site_location(file, text, s))
        .hint("use --cleartext (-x) to have ksec base64-encode plain text, or move the value to stringData")
    };
    // Listed from the first value that is not the input's own text on.
    let mut listed: Option<Vec<Plain<'a>>> = None;
    for (i, s) in doc.sites.iter().enumerate() {
        let (key, value) = (s.key(text), s.value(text));
        let prior = || parent.and_then(|p| p.value(Section::Data, key));
        let clear = match s.section {
            Section::StringData => Clear::Text(value),
            Section::Data if cleartext && !s.binary() => {
                Clear::Made(k8s::encode_data_like(value.as_bytes(), prior()))
            }
            Section::Data if s.binary() && !cleartext => {
                return Err(Error::new(
                    Exit::Input,
                    "invalid-value",
                    "`!!binary` values are only accepted with --cleartext",
                )
                .at(doc.site_location(file, text, s))
                .hint("drop the tag (data values are base64 already) or pass -x"));
            }
            Section::Data if s.binary() => {
                let v: String = value.chars().filter(|c| !c.is_whitespace()).collect();
                let v = match (prior(), k8s::decode_base64(&v)) {
                    (Some(p), Some(bytes)) => k8s::encode_data_like(&bytes, Some(p)).to_string(),
                    _ => v,
                };
                if !k8s::valid_base64(&v) {
                    return Err(not_base64(s));
                }
                Clear::Made(Zeroizing::new(v))
            }
            // base64 text already: sealed as it is written.
            Section::Data => {
                if !k8s::valid_base64(value) {
                    return Err(not_base64(s));
                }
                Clear::Text(value)
            }
        };
        let plain = Plain {
            section: s.section,
            key,
            clear,
            line: s.line(),
        };
        match (&mut listed, &plain.clear) {
            (Some(list), _) => list.push(plain),
            (None, Clear::Text(_)) => {}
            (None, Clear::Made(_)) => {
                let mut list = Vec::with_capacity(doc.sites.len());
                list.extend(doc.sites[..i].iter().map(|s| Plain::as_written(text, s)));
                list.push(plain);
                listed = Some(list);
            }
        }
    }
    Ok(listed.map_or(Plains::Sites { text, doc }, Plains::Listed))
}

#[cfg(test)]
mod tests {
    use super::{VERIFY_PART, plain_values, verified_in_parts};
    use crate::formats::{Mismatch, Plains, SealedCheck};
    use crate::manifest::Stream;

    /// (section, key, clear text) of every value, in order.
    fn listed(p: &Plains) -> Vec<(String, String, String)> {
        p.iter()
            .map(|v| (v.section.as_str().into(), v.key.into(), v.clear.into()))
            .collect()
    }

    #[test]
    fn values_sealed_as_written_are_read_from_their_sites() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n\
stringData:\n  a: one\n  b: two\ndata:\n  c: three\n  d: four\n";
        let stream = super::super::parse("f", text.into()).unwrap();
        let doc = &stream.docs[0];
        let entry = |s: &str, k: &str, v: &str| (s.to_string(), k.to_string(), v.to_string());
        // Without -x every value is the input's own text: none is listed.
        let base64 = text
            .replace("c: three", "c: dGhyZWU=")
            .replace("d: four", "d: Zm91cg==");
        let b64 = super::super::parse("f", base64).unwrap();
        let plain = plain_values("f", &b64.text, &b64.docs[0], false, None).unwrap();
        let want = [
            entry("stringData", "a", "one"),
            entry("stringData", "b", "two"),
            entry("data", "c", "dGhyZWU="),
            entry("data", "d", "Zm91cg=="),
        ];
        assert!(matches!(plain, Plains::Sites { .. }));
        assert_eq!(listed(&plain), want);
        // With -x the data values are made (encoded): listed from the
        // first one on, the earlier ones as written, in order.
        let made = plain_values("f", &stream.text, doc, true, None).unwrap();
        assert!(matches!(made, Plains::Listed(_)));
        assert_eq!(listed(&made), want);
        assert_eq!(made.len(), 4);
        assert_eq!(made.get(3).line, 10);
    }

    /// Reads the document at `position`: it must be named `want`.
    struct Named {
        position: usize,
        want: String,
        whole_stream: bool,
    }

    impl SealedCheck for Named {
        fn verify(&self, out: &Stream, first: usize) -> Result<(), Mismatch> {
            let doc = self
                .position
                .checked_sub(first)
                .and_then(|i| out.docs.get(i));
            match doc.and_then(|d| d.name.as_deref()) {
                Some(n) if n == self.want => Ok(()),
                other => Err(format!("{} is {other:?}", self.position).into()),
            }
        }

        fn document(&self) -> Option<usize> {
            (!self.whole_stream).then_some(self.position)
        }
    }

    /// `n` ConfigMaps named `c0`…, each about 400 bytes.
    fn stream(n: usize) -> String {
        let pad = "x".repeat(300);
        (0..n)
            .map(|i| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\ndata:\n  pad: {pad}\n"))
            .collect::<Vec<_>>()
            .join("---\n")
    }

    fn checks(n: usize, every: usize) -> Vec<Box<dyn SealedCheck>> {
        (0..n)
            .step_by(every)
            .map(|i| {
                Box::new(Named {
                    position: i,
                    want: format!("c{i}"),
                    whole_stream: false,
                }) as Box<dyn SealedCheck>
            })
            .collect()
    }

    #[test]
    fn a_result_is_verified_in_parts_only_when_every_part_passes() {
        let n = 4000;
        let text = stream(n);
        assert!(text.len() > 5 * VERIFY_PART, "enough for several parts");
        // Every check finds its document in its part, whichever part.
        assert!(verified_in_parts("f", &text, &checks(n, 7), n));
        assert!(verified_in_parts("f", &text, &[], n));
        // A check that fails in a late part, or a document count that
        // differs: the caller verifies the whole instead.
        let mut wrong = checks(n, 7);
        wrong.push(Box::new(Named {
            position: n - 2,
            want: "c1".into(),
            whole_stream: false,
        }));
        assert!(!verified_in_parts("f", &text, &wrong, n));
        assert!(!verified_in_parts("f", &text, &checks(n, 7), n + 1));
        // Checks out of document order, or one that needs the whole stream.
        let mut unsorted = checks(n, 7);
        unsorted.reverse();
        assert!(!verified_in_parts("f", &text, &unsorted, n));
        let whole: Vec<Box<dyn SealedCheck>> = vec![Box::new(Named {
            position: 0,
            want: "c0".into(),
            whole_stream: true,
        })];
        assert!(!verified_in_parts("f", &text, &whole, n));
        // A Secret in clear text in the last part is an exposure; the same
        // document as a ConfigMap is not.
        let last = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  k: clear\n";
        let exposed = format!("{text}---\n{last}");
        assert!(!verified_in_parts("f", &exposed, &checks(n, 7), n + 1));
        let fine = format!("{text}---\n{}", last.replace("Secret", "ConfigMap"));
        assert!(verified_in_parts("f", &fine, &checks(n, 7), n + 1));
        // A stream that cannot be cut (one document) is verified whole.
        let one = stream(1).replace("pad: ", &format!("pad: {}", "y".repeat(3 * VERIFY_PART)));
        assert!(!verified_in_parts("f", &one, &checks(1, 1), 1));
    }
}
