//! Classifying streams by format, and opening every sealed envelope of a
//! run with one batch of unwraps.
//!
//! The keyring remembers every unwrap of the run, so after
//! [`warm_unwraps`] the per-envelope `open` calls are answered from memory:
//! a tree of 200 files with one AWS key costs one concurrent round of KMS
//! calls (bounded by `--jobs`), not 200 sequential ones.

use super::{Session, check_problems};
use crate::error::Result;
use crate::formats::{self, Envelope, Format, OpenOptions, Opened, State};
use crate::keys::{Keyring, WrappedKey};
use crate::manifest::Stream;

/// A stream with its format and envelopes.
pub struct Classified<'s> {
    /// The stream.
    pub stream: &'s Stream,
    /// The format it is written in (the default when nothing is sealed).
    pub format: &'static dyn Format,
    /// Its envelopes, in text order.
    pub envelopes: Vec<Envelope>,
}

impl Classified<'_> {
    /// How many envelopes are sealed.
    pub fn sealed(&self) -> usize {
        self.envelopes
            .iter()
            .filter(|e| matches!(e.state, State::Sealed(_)))
            .count()
    }
}

/// Detects a stream's format and classifies its Secrets. Refuses a Secret
/// the locator found invalid, and mixtures the format refuses.
pub fn classify(stream: &Stream) -> Result<Classified<'_>> {
    classify_as(stream, None)
}

/// The format of a stream: the one whose metadata it carries, else
/// `preferred` (the format to write a clear stream in), else the default.
pub fn format_of(
    stream: &Stream,
    preferred: Option<&'static dyn Format>,
) -> Result<&'static dyn Format> {
    Ok(formats::detected(stream)?
        .or(preferred)
        .unwrap_or(formats::FORMATS[0]))
}

/// [`classify`], a clear stream taken as `preferred`'s when given.
pub fn classify_as<'s>(
    stream: &'s Stream,
    preferred: Option<&'static dyn Format>,
) -> Result<Classified<'s>> {
    let format = format_of(stream, preferred)?;
    // A file a whole-stream format (sops) encrypted is that format's tree:
    // Secrets Kubernetes would refuse still decrypt as sops decrypts them.
    let sealed_whole = format.whole_stream() && formats::detected(stream)?.is_some();
    if !sealed_whole {
        for doc in stream.secrets() {
            check_problems(&stream.name, doc)?;
        }
    }
    let envelopes = format.envelopes(stream)?;
    Ok(Classified {
        stream,
        format,
        envelopes,
    })
}

/// Asks the key services for the data key of every sealed envelope in one
/// batch. Failures are remembered, not returned: each envelope reports its
/// own when it is opened. Envelopes whose format version has no MAC are
/// left out unless `allow_missing_mac` (they are refused before any key is
/// asked otherwise).
pub fn warm_unwraps<'a>(
    keyring: &Keyring,
    envelopes: impl IntoIterator<Item = &'a Envelope>,
    allow_missing_mac: bool,
) -> usize {
    let metas: Vec<_> = envelopes
        .into_iter()
        .filter_map(|e| match &e.state {
            State::Sealed(meta) if allow_missing_mac || meta.info().mac_in_format => {
                Some(meta.clone())
            }
            _ => None,
        })
        .collect();
    let sets: Vec<&[WrappedKey]> = metas.iter().flat_map(|m| m.unwrap_sets()).collect();
    if !sets.is_empty() {
        keyring.unwrap_all(&sets);
    }
    metas.len()
}

/// A classified stream with every sealed envelope opened.
pub struct OpenedStream<'s> {
    /// The stream and its envelopes.
    pub classified: Classified<'s>,
    /// Per envelope: the opened one, or `None` when it is plain.
    pub opened: Vec<Option<Opened>>,
}

/// Opens every sealed envelope of every stream: one batch of unwraps for
/// all, then each envelope decrypted and verified. The first failure ends
/// the run.
pub fn open_all<'s>(
    session: &Session,
    streams: &'s [Stream],
    opts: OpenOptions,
) -> Result<Vec<OpenedStream<'s>>> {
    let classified: Vec<Classified<'s>> = streams.iter().map(classify).collect::<Result<_>>()?;
    warm_unwraps(
        &session.keyring,
        classified.iter().flat_map(|c| &c.envelopes),
        opts.allow_missing_mac || opts.skip_mac,
    );
    classified
        .into_iter()
        .map(|c| {
            let opened = open_envelopes(session, &c, opts)?;
            Ok(OpenedStream {
                classified: c,
                opened,
            })
        })
        .collect()
}

/// Opens the sealed envelopes of one classified stream.
pub fn open_envelopes(
    session: &Session,
    c: &Classified<'_>,
    opts: OpenOptions,
) -> Result<Vec<Option<Opened>>> {
    c.envelopes
        .iter()
        .map(|e| open_envelope(session, c, e, opts))
        .collect()
}

/// Opens one envelope of a classified stream (`None` when it is clear
/// text), warning when its format has no MAC and one is not required.
pub fn open_envelope(
    session: &Session,
    c: &Classified<'_>,
    e: &Envelope,
    opts: OpenOptions,
) -> Result<Option<Opened>> {
    match &e.state {
        State::Plain => Ok(None),
        State::Sealed(meta) => {
            let info = meta.info();
            if !info.mac_in_format && opts.allow_missing_mac && !opts.skip_mac {
                let doc = &c.stream.docs[e.docs[0]];
                session.reporter.warn(&format!(
                    "{}: format {} has no MAC; values are not protected against tampering",
                    doc.location(&c.stream.name, doc.line),
                    info.version.trim_start_matches("kubesec ")
                ));
            }
            c.format.open(c.stream, e, &session.keyring, opts).map(Some)
        }
    }
}
