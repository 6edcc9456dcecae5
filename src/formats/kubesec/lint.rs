//! What `check` reports about kubesec Secrets without opening them: every
//! clear value (also each one among encrypted values, which sops'
//! `filestatus` misses, getsops/sops#571), damaged tokens and footers,
//! missing footers and MACs, and a version line that disagrees with the
//! sections (the MAC does not cover it).

use super::codec;
use super::open::{parse_footer, token_shaped};
use crate::error::{Error, Exit};
use crate::manifest::{Document, Section, Stream};

/// Every format problem of every Secret of the stream. Secrets the locator
/// refused are left to the caller (`invalid-secret`).
pub fn lint(stream: &Stream) -> Vec<Error> {
    let mut out = Vec::new();
    for doc in stream.secrets().filter(|d| d.problems.is_empty()) {
        lint_document(&stream.name, &stream.text, doc, &mut out);
    }
    out
}

fn finding(
    doc: &Document,
    file: &str,
    line: usize,
    exit: Exit,
    code: &'static str,
    message: &str,
) -> Error {
    Error::new(exit, code, message).at(doc.location(file, line))
}

fn lint_document(file: &str, text: &str, doc: &Document, out: &mut Vec<Error>) {
    let footer = match parse_footer(file, doc) {
        Ok(f) => f,
        Err(e) => {
            out.push(e);
            return;
        }
    };
    let clear = footer.as_ref().map(|f| f.clear).unwrap_or_default();
    let v1 = footer.as_ref().is_some_and(|f| f.version == 1);
    let mut tokens = 0;
    let mut clear_values = Vec::new();
    for s in doc.sites.iter().filter(|s| !clear.contains(s.section)) {
        let value = s.value(text);
        if codec::looks_encrypted(value) || (v1 && value.is_empty()) {
            tokens += 1;
        } else if footer.is_some() && token_shaped(value) {
            out.push(
                Error::new(
                    Exit::Integrity,
                    "malformed-value",
                    "the encrypted value is damaged (not valid base64 `ciphertext.iv.tag`)",
                )
                .at(doc.site_location(file, text, s)),
            );
        } else {
            clear_values.push(s);
        }
    }
    if footer.is_none() && tokens > 0 {
        out.push(finding(
            doc,
            file,
            doc.line,
            Exit::Integrity,
            "missing-footer",
            "encrypted values but no `# kubesec:` footer",
        ));
    }
    for s in &clear_values {
        let (code, why) = if footer.is_some() {
            (
                "partly-encrypted",
                "clear-text value in an encrypted Secret (partly encrypted: added or changed outside ksec?)",
            )
        } else {
            (
                "clear-value",
                "clear-text value: the Secret is not encrypted",
            )
        };
        out.push(Error::new(Exit::State, code, why).at(doc.site_location(file, text, s)));
    }
    let Some(footer) = footer else {
        return;
    };
    let footer_line = doc.footer.as_ref().map_or(doc.line, |b| b.line);
    if footer.version < 3 {
        out.push(finding(
            doc,
            file,
            footer_line,
            Exit::Integrity,
            "no-mac",
            &format!(
                "format v{} carries no MAC, so tampering cannot be detected (ksec recompute-mac)",
                footer.version
            ),
        ));
    } else if footer.mac.is_none() {
        out.push(finding(
            doc,
            file,
            footer_line,
            Exit::Integrity,
            "no-mac",
            "the footer has no MAC line (`# kubesec:mac:`)",
        ));
    }
    // kubesec writes v4 exactly when stringData has values; the MAC does not
    // cover the version line, so a v3 with stringData was edited by hand
    // (a v3 reader may not decrypt stringData at all).
    let has_string_data = doc.sites.iter().any(|s| s.section == Section::StringData);
    if footer.version == 3 && has_string_data {
        out.push(finding(
            doc,
            file,
            footer_line,
            Exit::Integrity,
            "version-mismatch",
            "the footer says v3 but the Secret has stringData values (kubesec writes v4): the version line is not covered by the MAC, so it was changed outside ksec",
        ));
    }
}
