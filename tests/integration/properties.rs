//! Property tests over random Secret manifests (library API, no processes):
//! the round trip is exact, bytes outside values never change, and no clear
//! text survives encryption.

use age::secrecy::ExposeSecret as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ksec::keys::{KeyChange, Keyring};
use ksec::manifest::{self, scalar};
use ksec::pipeline::{
    self, DecryptOptions, KeyPolicy, Parents, SealOptions, Session, decrypt_text, encrypt_text,
};
use proptest::prelude::*;

/// One entry of a generated section.
#[derive(Debug, Clone)]
struct Entry {
    key: String,
    value: String,
    key_style: u8,
    comment: Option<String>,
    /// The comment trails the value on its line instead of standing above it.
    trailing: bool,
}

#[derive(Debug, Clone)]
struct Manifest {
    crlf: bool,
    bom: bool,
    indent: usize,
    lead_comment: String,
    data: Vec<Entry>,
    string_data: Vec<Entry>,
    data_first: bool,
    kind_last: bool,
}

fn key_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][-._a-zA-Z0-9]{0,15}"
}

fn text_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",                         // printable ASCII, incl. quotes, colons, hashes
        "[a-zA-Z0-9 äöüéλ✓🔑]{0,30}",          // unicode
        "[a-z]{1,10}(\n[a-z ]{0,12}){1,4}\n?", // multi-line
        Just("yes".to_owned()),
        Just("0755".to_owned()),
        Just("1e3".to_owned()),
        Just(String::new()),
        "[a-z]{48}",
    ]
}

fn comment() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[a-zA-Z0-9 äöü✓]{0,20}")
}

fn entries(values: impl Strategy<Value = String>) -> impl Strategy<Value = Vec<Entry>> {
    proptest::collection::vec((key_name(), values, 0u8..3, comment(), any::<bool>()), 0..6)
        .prop_map(|v| {
            let mut seen = std::collections::HashSet::new();
            v.into_iter()
                .filter(|(k, ..)| seen.insert(k.clone()))
                .map(|(key, value, key_style, comment, trailing)| Entry {
                    key,
                    value,
                    key_style,
                    comment,
                    trailing,
                })
                .collect()
        })
}

fn manifest() -> impl Strategy<Value = Manifest> {
    (
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(2usize), Just(4usize)],
        "[a-zA-Z äöü✓€]{0,30}",
        entries(proptest::collection::vec(any::<u8>(), 0..70).prop_map(|b| B64.encode(b))),
        entries(text_value()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(crlf, bom, indent, lead_comment, data, string_data, data_first, kind_last)| {
                Manifest {
                    crlf,
                    bom,
                    indent,
                    lead_comment,
                    data,
                    string_data,
                    data_first,
                    kind_last,
                }
            },
        )
}

impl Manifest {
    /// Renders the manifest with values in the style ksec writes.
    fn render(&self) -> String {
        let nl = if self.crlf { "\r\n" } else { "\n" };
        let pad = " ".repeat(self.indent);
        let mut s = String::new();
        if self.bom {
            s.push('\u{feff}');
        }
        s.push_str(&format!("# {}{nl}", self.lead_comment));
        s.push_str(&format!("apiVersion: v1{nl}"));
        if !self.kind_last {
            s.push_str(&format!("kind: Secret{nl}"));
        }
        s.push_str(&format!("metadata:{nl}{pad}name: generated{nl}"));
        let section = |name: &str, entries: &[Entry], s: &mut String| {
            if entries.is_empty() {
                return;
            }
            s.push_str(&format!("{name}:{nl}"));
            for e in entries {
                let key = match e.key_style {
                    0 => e.key.clone(),
                    1 => format!("\"{}\"", e.key),
                    _ => format!("'{}'", e.key),
                };
                let trailing = e
                    .comment
                    .as_ref()
                    .filter(|_| e.trailing)
                    .map(|c| format!(" # {c}"));
                let ctx = scalar::Context {
                    flow: false,
                    indent: self.indent * 2,
                    newline: nl,
                    line_rest_empty: trailing.is_none(),
                    header_comment: trailing.as_deref(),
                };
                let value = scalar::render(&e.value, &ctx);
                // A trailing comment goes on a literal block's header line, as ksec
                // writes it; after any other value it follows on the same line.
                match &e.comment {
                    Some(_) if e.trailing && value.starts_with('|') => {
                        s.push_str(&format!("{pad}{key}: {value}{nl}"))
                    }
                    Some(c) if e.trailing => s.push_str(&format!("{pad}{key}: {value} # {c}{nl}")),
                    Some(c) => s.push_str(&format!("{pad}# {c}{nl}{pad}{key}: {value}{nl}")),
                    None => s.push_str(&format!("{pad}{key}: {value}{nl}")),
                }
            }
        };
        if self.data_first {
            section("data", &self.data, &mut s);
            section("stringData", &self.string_data, &mut s);
        } else {
            section("stringData", &self.string_data, &mut s);
            section("data", &self.data, &mut s);
        }
        if self.kind_last {
            s.push_str(&format!("kind: Secret{nl}"));
        }
        s
    }

    fn values(&self) -> impl Iterator<Item = &str> {
        self.data
            .iter()
            .chain(&self.string_data)
            .map(|e| e.value.as_str())
    }
}

struct Keys {
    session: Session,
    change: KeyChange,
}

fn keys() -> Keys {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    Keys {
        session: Session::quiet(
            Keyring::with_age_identities(identity.to_string().expose_secret()).unwrap(),
        ),
        change: KeyChange::parse(&[format!("age:{recipient}")]).unwrap(),
    }
}

impl Keys {
    /// Encrypts to the test key (or, without `change`, to the keys the
    /// text's Secrets have).
    fn encrypt(
        &self,
        text: &str,
        change: Option<&KeyChange>,
        parents: Option<&Parents>,
        cleartext: bool,
    ) -> String {
        let options = SealOptions {
            policy: KeyPolicy {
                change,
                ..KeyPolicy::default()
            },
            parents,
            cleartext,
            ..SealOptions::default()
        };
        encrypt_text(&self.session, "gen.yaml", text, options)
            .expect("encrypts")
            .text
    }

    fn decrypt(&self, text: &str, cleartext: bool, keep_opened: bool) -> pipeline::Decrypted {
        let opts = DecryptOptions {
            cleartext,
            allow_missing_mac: false,
            ignore_mac: false,
            require_binding: false,
            keep_opened,
        };
        decrypt_text(&self.session, "gen.yaml", text, opts).expect("decrypts")
    }
}

/// The text with every value (and a comment trailing it) replaced by a
/// marker and footers removed: what encryption must never change.
fn skeleton(text: &str) -> String {
    let docs = pipeline::locate(text).expect("parses");
    let mut edits = Vec::new();
    for d in &docs {
        // A comment that trails a value belongs with it: encryption moves a
        // block header's comment behind the token, decryption moves it back.
        edits.extend(d.sites.iter().map(|s| manifest::Edit {
            range: s.range().start..s.trailing_comment().map_or(s.range().end, |c| c.end),
            text: "\u{0}".into(),
        }));
        if let Some(f) = &d.footer {
            edits.push(manifest::remove_footer(text, f));
        }
    }
    manifest::splice(text, &mut edits)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn round_trip_is_exact_and_only_values_change(m in manifest()) {
        let k = keys();
        let text = m.render();
        let enc = k.encrypt(&text, Some(&k.change), None, false);
        let dec = k.decrypt(&enc, false, false).text;
        prop_assert_eq!(&*dec, &text, "decrypt(encrypt(x)) != x");
        prop_assert_eq!(skeleton(&enc), skeleton(&text), "bytes outside values changed");
        // Re-encrypting changes nothing.
        let again = k.encrypt(&enc, None, None, false);
        prop_assert_eq!(&again, &enc, "re-encryption changed the file");
    }

    /// What `ksec edit` relies on: the decrypted view (decoded or not),
    /// encrypted again against the file it came from, is that file, byte
    /// for byte.
    #[test]
    fn decrypted_view_reseals_to_the_same_bytes(m in manifest(), decoded in any::<bool>()) {
        let k = keys();
        let enc = k.encrypt(&m.render(), Some(&k.change), None, false);
        let view = k.decrypt(&enc, decoded, true);
        let parents = Parents { file: "gen.yaml".into(), docs: view.opened };
        let again = k.encrypt(&view.text, None, Some(&parents), decoded);
        prop_assert_eq!(&again, &enc, "the view did not reseal to the same bytes");
    }

    #[test]
    fn no_clear_text_survives(m in manifest()) {
        let k = keys();
        let text = m.render();
        let enc = k.encrypt(&text, Some(&k.change), None, false);
        let outside = skeleton(&text);
        for v in m.values() {
            let chars: Vec<char> = v.chars().collect();
            for w in chars.windows(8) {
                let w: String = w.iter().collect();
                if outside.contains(&w) {
                    continue; // also appears in the manifest's structure or comments
                }
                prop_assert!(!enc.contains(&w), "clear text {:?} survived", w);
            }
        }
    }
}
