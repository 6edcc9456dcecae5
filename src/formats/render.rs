//! Writing clear values back into a manifest, shared by every format's
//! `strip`: how a value is rendered at its site, and the edit that puts it
//! there.

use zeroize::Zeroizing;

use crate::k8s;
use crate::manifest::scalar::{self, Context};
use crate::manifest::{Document, Edit, Section, ValueSite};

/// The text to write for a clear value, and the string it parses back to.
/// With `cleartext`, a `data` value is written base64-decoded (non-UTF-8
/// bytes as `!!binary`).
pub fn render_clear(
    site: &ValueSite,
    clear: &str,
    cleartext: bool,
    ctx: &Context<'_>,
) -> (String, Zeroizing<String>) {
    if cleartext
        && site.section == Section::Data
        && let Some(bytes) = k8s::decode_base64(clear)
    {
        return match std::str::from_utf8(&bytes) {
            Ok(s) => (scalar::render(s, ctx), Zeroizing::new(s.to_owned())),
            Err(_) => {
                let b64 = k8s::encode_base64(&bytes);
                let flat = Context {
                    line_rest_empty: false,
                    header_comment: None,
                    ..*ctx
                };
                (format!("!!binary {}", scalar::render(&b64, &flat)), b64)
            }
        };
    }
    (scalar::render(clear, ctx), Zeroizing::new(clear.to_owned()))
}

/// The edit that writes `clear` at `site` of `doc` in `text`, and the
/// string the written value parses back to. A comment after the token can
/// go back onto a literal block's header line, where encryption found it.
pub fn clear_edit(
    text: &str,
    doc: &Document,
    site: &ValueSite,
    clear: &str,
    cleartext: bool,
) -> (Edit, Zeroizing<String>) {
    let comment = site.trailing_comment();
    let ctx = Context {
        header_comment: comment.clone().map(|r| &text[r]),
        ..site.context(doc.newline)
    };
    let (rendered, parsed) = render_clear(site, clear, cleartext, &ctx);
    let range = match comment {
        Some(c) if rendered.starts_with('|') => site.range().start..c.end,
        None if rendered.starts_with('|') => {
            site.range().start..scalar::past_blanks(text, site.range().end)
        }
        _ => site.range(),
    };
    (
        Edit {
            range,
            text: rendered,
        },
        parsed,
    )
}

/// The edit that writes `token` at a value's site: double-quoted in flow
/// context, a block scalar's header comment kept after it.
pub fn token_edit(site: &ValueSite, token: String) -> Edit {
    let mut t = if site.flow() {
        format!("\"{token}\"")
    } else {
        token
    };
    if let Some(c) = site.header_comment() {
        // The block header's comment, white space before it included.
        t.push_str(c);
    }
    Edit {
        range: site.range(),
        text: t,
    }
}

/// The edit that writes a value of a section kept in clear text: nothing
/// when the site holds it already, else the value rendered as `decrypt`
/// would (the section was encrypted before).
pub fn kept_clear_edit(text: &str, doc: &Document, site: &ValueSite, clear: &str) -> Option<Edit> {
    if site.value(text) == clear {
        return None;
    }
    let ctx = site.context(doc.newline);
    Some(Edit {
        range: site.range(),
        text: scalar::render(clear, &ctx),
    })
}
