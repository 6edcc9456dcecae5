//! What `check` reports about a sops file without opening it: metadata that
//! does not parse, clear values where the file's rule says encrypted,
//! damaged values, a missing MAC, and a rule that encrypts nothing at all
//! (getsops/sops#1886: a typo in `encrypted_regex` leaves every value in
//! clear text, and sops says nothing).

use super::open::{classify, leaves};
use super::read_meta;
use super::walk::What;
use crate::error::{Error, Exit, Location};
use crate::manifest::Stream;

/// Every problem of the stream's sops data.
pub fn lint(stream: &Stream) -> Vec<Error> {
    let meta = match read_meta(stream) {
        Ok(Some(m)) => m,
        Ok(None) => return Vec::new(),
        Err(e) => return vec![e],
    };
    let mut out = Vec::new();
    if let Err(e) = classify(stream, &meta) {
        out.push(e);
    }
    match leaves(stream, &meta) {
        Ok(leaves) => {
            let encrypted = leaves
                .iter()
                .any(|l| l.encrypt && matches!(l.what, What::Value(_)));
            if !encrypted {
                let rule = meta.rule();
                let (field, value) = rule.field();
                out.push(
                    Error::new(
                        Exit::State,
                        "encrypts-nothing",
                        format!("the file's rule `{field}: {value}` encrypts no value: everything is in clear text"),
                    )
                    .at(Location::file(&stream.name).line(1))
                    .hint("fix the rule (sops and ksec both read it from the file's `sops:` metadata), then decrypt and encrypt the file again"),
                );
            }
        }
        Err(e) => out.push(e),
    }
    if meta.mac.is_empty() {
        out.push(
            Error::new(
                Exit::Integrity,
                "no-mac",
                "the sops metadata has no MAC, so tampering cannot be ruled out",
            )
            .in_file(&stream.name)
            .hint(format!(
                "if you trust the values, sign them again with `ksec recompute-mac {}`",
                stream.name
            )),
        );
    }
    out
}
