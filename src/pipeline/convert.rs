//! Converting encrypted streams between formats (`ksec convert --to`):
//! open every envelope, seal the clear text in the target format to the
//! same keys under a new data key, and check that the result decrypts to
//! exactly the same clear text before returning it. Clear text stays in
//! memory.
//!
//! Refused, with the reason, when the target cannot hold what the source
//! protects: Secrets of one sops file need one key set (kubesec files may
//! give every Secret its own); kubesec encrypts Secret values only, so a
//! sops file with encrypted values outside Secrets, encrypted comments,
//! key groups or a KMS encryption context cannot become one.

use std::collections::HashSet;

use super::decrypt::{DecryptOptions, decrypt_all};
use super::policy::{KeyPolicy, RuleKeys};
use super::seal::{SealJob, SealOptions, seal_all};
use super::{Session, parse};
use crate::error::{Error, Exit, Result};
use crate::formats::{self, Format, FormatRule, Metadata};
use crate::keys::{KeyChange, KeyId};
use crate::manifest::{ClearSections, Stream};

/// One converted stream.
pub struct Converted {
    /// The text in the target format.
    pub text: String,
    /// Whether it was in the target format already (then `text` is the input).
    pub unchanged: bool,
}

/// Converts every stream to `target`; `rules` gives each stream's
/// configuration rule (sops selection rule, key groups), if any.
pub fn convert_all(
    session: &Session,
    streams: &[Stream],
    target: &'static dyn Format,
    rules: &[Option<RuleKeys<'_>>],
) -> Result<Vec<Converted>> {
    let mut todo = Vec::new();
    for (i, stream) in streams.iter().enumerate() {
        let format = super::format_of(stream, None)?;
        if formats::detected(stream)?.is_none() {
            return Err(
                Error::new(Exit::State, "not-encrypted", "the file is not encrypted")
                    .in_file(&stream.name)
                    .hint(format!(
                        "encrypt it in the format you want: `ksec encrypt --format {} {}`",
                        target.name(),
                        stream.name
                    )),
            );
        }
        if format.name() != target.name() {
            todo.push(i);
        }
    }
    let sources: Vec<Stream> = todo.iter().map(|&i| streams[i].clone()).collect();
    let opened = decrypt_all(
        session,
        &sources,
        DecryptOptions {
            keep_opened: true,
            ..DecryptOptions::default()
        },
    )?;
    // What each stream is sealed with.
    let mut plans = Vec::with_capacity(todo.len());
    for (stream, d) in sources.iter().zip(&opened) {
        let metas: Vec<&dyn Metadata> = d.opened.iter().map(|p| p.opened.meta.as_ref()).collect();
        let (keys, clear) = key_set(stream, &metas)?;
        if target.name() == "kubesec" {
            kubesec_can_hold(stream, d)?;
        }
        let clear_text = parse(&stream.name, d.text.to_string())?;
        plans.push((clear_text, KeyChange::exactly(keys), clear));
    }
    let selections: Vec<FormatRule> = plans
        .iter()
        .zip(&todo)
        .map(|((_, _, clear), &i)| target_rule(rules[i].and_then(|r| r.format), *clear))
        .collect();
    let jobs: Vec<SealJob<'_>> = plans
        .iter()
        .zip(&selections)
        .map(|((clear_text, change, clear), rule)| SealJob {
            stream: clear_text,
            options: SealOptions {
                policy: KeyPolicy {
                    change: Some(change),
                    rule: Some(RuleKeys {
                        keys: &[],
                        clear: *clear,
                        format: Some(rule),
                    }),
                    ..KeyPolicy::default()
                },
                format: Some(target),
                ..SealOptions::default()
            },
        })
        .collect();
    let sealed = seal_all(session, &jobs)?;
    // The converted text must decrypt to the same clear text.
    let again: Vec<Stream> = sealed
        .iter()
        .zip(&sources)
        .map(|(s, src)| parse(&src.name, s.text.clone()))
        .collect::<Result<_>>()?;
    let reopened = decrypt_all(session, &again, DecryptOptions::default())?;
    for ((r, d), src) in reopened.iter().zip(&opened).zip(&sources) {
        if r.text != d.text {
            return Err(Error::internal(
                "internal error: the converted file does not decrypt to the same clear text; nothing was written",
            )
            .in_file(&src.name));
        }
    }
    let mut out: Vec<Converted> = streams
        .iter()
        .map(|s| Converted {
            text: s.text.clone(),
            unchanged: true,
        })
        .collect();
    for (&i, s) in todo.iter().zip(sealed) {
        out[i] = Converted {
            text: s.text,
            unchanged: false,
        };
    }
    Ok(out)
}

/// The one key set of a stream's envelopes, and the sections kept clear.
fn key_set(stream: &Stream, metas: &[&dyn Metadata]) -> Result<(Vec<KeyId>, ClearSections)> {
    let mut sets: Vec<(Vec<KeyId>, ClearSections)> = Vec::new();
    for m in metas {
        let info = m.info();
        let mut keys = info.keys.clone();
        keys.dedup();
        let set: HashSet<&KeyId> = keys.iter().collect();
        if !sets
            .iter()
            .any(|(k, c)| *c == info.clear && k.iter().collect::<HashSet<_>>() == set)
        {
            sets.push((keys, info.clear));
        }
        if m.unwrap_sets().len() > 1 {
            return Err(Error::new(
                Exit::State,
                "cannot-convert",
                "the file splits its data key between key groups (shamir_threshold), which the kubesec format cannot hold",
            )
            .in_file(&stream.name));
        }
        if m.key_lines()
            .iter()
            .any(|w| !w.params.encryption_context.is_empty())
        {
            return Err(Error::new(
                Exit::State,
                "cannot-convert",
                "an AWS KMS key of the file has an encryption context, which the kubesec format cannot hold",
            )
            .in_file(&stream.name));
        }
    }
    match sets.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::new(Exit::State, "not-encrypted", "the file holds no encrypted Secret").in_file(&stream.name)),
        _ => Err(Error::new(
            Exit::State,
            "cannot-convert",
            "the Secrets of this file have different keys (or clear sections); a sops file has one set for the whole file",
        )
        .in_file(&stream.name)
        .hint("split the file so that each part has one key set, or align the keys with `ksec encrypt -i -k … FILE`")),
    }
}

/// The kubesec format encrypts Secret values only: a sops file whose rule
/// encrypted anything else (metadata, other documents, comments) would
/// lose that protection.
fn kubesec_can_hold(stream: &Stream, d: &super::Decrypted) -> Result<()> {
    let Some(opened) = d.opened.first().map(|p| &p.opened) else {
        return Ok(());
    };
    let Some(x) = formats::sops::opened_leaves(opened) else {
        return Ok(());
    };
    let sites: HashSet<usize> = stream
        .secrets()
        .flat_map(|doc| doc.sites.iter().map(|s| s.range().start))
        .collect();
    for (start, comment) in x {
        if comment {
            return Err(Error::new(
                Exit::State,
                "cannot-convert",
                "the file has encrypted comments, which the kubesec format would keep in clear text",
            )
            .in_file(&stream.name)
            .hint("remove those comments (ksec edit), then convert"));
        }
        if !sites.contains(&start) {
            return Err(Error::new(
                Exit::State,
                "cannot-convert",
                "the file's rule encrypts values outside Secrets' data and stringData, which the kubesec format would keep in clear text",
            )
            .in_file(&stream.name)
            .hint("keep the sops format for this file, or re-encrypt it with `encrypted_regex: ^(data|stringData)$` first"));
        }
    }
    Ok(())
}

/// The rule for the target format: the file's configuration rule when it
/// is for that format, else the sops rule matching kubesec's clear
/// sections.
fn target_rule(rule: Option<&FormatRule>, clear: ClearSections) -> FormatRule {
    if let Some(r) = rule
        && r.format == Some("sops")
    {
        return r.clone();
    }
    let selection = match (clear.data, clear.string_data) {
        (false, true) => Some(("encrypted_regex".to_owned(), "^data$".to_owned())),
        (true, false) => Some(("encrypted_regex".to_owned(), "^stringData$".to_owned())),
        _ => None,
    };
    FormatRule {
        selection,
        ..FormatRule::default()
    }
}
