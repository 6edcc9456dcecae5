//! The kubesec interoperability vectors (`vectors.json` and the `*.enc.yaml`
//! files next to it), checked through the library API: value codec, MAC AAD
//! and MAC, footer parsing, and opening whole documents with the recorded
//! data keys (the AWS files included: their KMS blobs cannot be unwrapped,
//! but their data keys are recorded).
//!
//! Each test walks every vector and collects all failures before asserting,
//! so one bad vector does not hide the others.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ksec::formats::kubesec::codec::{self, CodecError, Iv, Token};
use ksec::formats::kubesec::mac;
use ksec::formats::kubesec::{Footer, Kubesec};
use ksec::formats::{Envelope, Format as _, OpenOptions, Opened, State};
use ksec::keys::{DataKey, KeyId, KeyType};
use ksec::manifest::{Document, Section};
use serde_json::Value;

use crate::support;

/// One recorded encrypted value.
struct RecValue {
    section: Section,
    key: String,
    iv_b64: String,
    encoded: String,
    padded_len: usize,
    plaintext: String,
}

/// One `*.enc.yaml` entry of `vectors.json`.
struct Vector {
    /// Path relative to the vectors directory, e.g. `v3/v3-pgp-alice.enc.yaml`.
    name: String,
    version: u8,
    keys: Vec<KeyId>,
    mac: String,
    dek: [u8; 32],
    values: Vec<RecValue>,
    mac_aad: String,
    mac_valid: bool,
}

impl Vector {
    fn dek(&self) -> DataKey {
        DataKey::from_bytes(self.dek)
    }

    fn path(&self) -> PathBuf {
        support::vectors_dir().join(&self.name)
    }

    /// `(key, plaintext)` pairs of one section, in recorded order.
    fn section(&self, section: Section) -> Vec<(&str, &str)> {
        self.values
            .iter()
            .filter(|v| v.section == section)
            .map(|v| (v.key.as_str(), v.plaintext.as_str()))
            .collect()
    }

    /// The MAC AAD built by the library from the recorded plaintexts and keys.
    fn library_aad(&self) -> Vec<u8> {
        mac::aad(
            &self.section(Section::Data),
            &self.section(Section::StringData),
            &self.keys,
        )
        .to_vec()
    }
}

fn vectors_json() -> Value {
    let path = support::vectors_dir().join("vectors.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); the kubesec vectors belong in testdata/kubesec-vectors",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("vectors.json is valid JSON")
}

fn str_field<'a>(v: &'a Value, field: &str, ctx: &str) -> &'a str {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{ctx}: missing string field `{field}`"))
}

fn parse_section(s: &str, ctx: &str) -> Section {
    match s {
        "data" => Section::Data,
        "stringData" => Section::StringData,
        other => panic!("{ctx}: unknown section `{other}`"),
    }
}

/// Every `*.enc.yaml` entry of `vectors.json`, in its order.
fn vectors() -> Vec<Vector> {
    let json = vectors_json();
    let obj = json.as_object().expect("vectors.json is an object");
    let mut out = Vec::new();
    for (name, e) in obj {
        if !name.ends_with(".enc.yaml") {
            continue;
        }
        let ctx = name.as_str();
        let version = str_field(e, "version", ctx)
            .parse::<u8>()
            .unwrap_or_else(|_| panic!("{ctx}: bad version"));
        let keys = e["keys"]
            .as_array()
            .unwrap_or_else(|| panic!("{ctx}: `keys` is not a list"))
            .iter()
            .map(|k| KeyId {
                kind: KeyType::parse(str_field(k, "type", ctx))
                    .unwrap_or_else(|| panic!("{ctx}: unknown key type in {k}")),
                id: str_field(k, "id", ctx).to_owned(),
            })
            .collect();
        let dek: [u8; 32] = hex::decode(str_field(e, "dek_hex", ctx))
            .unwrap_or_else(|_| panic!("{ctx}: dek_hex is not hex"))
            .try_into()
            .unwrap_or_else(|_| panic!("{ctx}: dek_hex is not 32 bytes"));
        let values = e["values"]
            .as_array()
            .unwrap_or_else(|| panic!("{ctx}: `values` is not a list"))
            .iter()
            .map(|v| RecValue {
                section: parse_section(str_field(v, "section", ctx), ctx),
                key: str_field(v, "key", ctx).to_owned(),
                iv_b64: str_field(v, "iv_b64", ctx).to_owned(),
                encoded: str_field(v, "encoded", ctx).to_owned(),
                padded_len: v["padded_len"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{ctx}: padded_len is not a number"))
                    as usize,
                plaintext: str_field(v, "plaintext", ctx).to_owned(),
            })
            .collect();
        out.push(Vector {
            name: name.clone(),
            version,
            keys,
            mac: str_field(e, "mac", ctx).to_owned(),
            dek,
            values,
            mac_aad: str_field(e, "mac_aad_utf8", ctx).to_owned(),
            mac_valid: e["mac_valid"]
                .as_bool()
                .unwrap_or_else(|| panic!("{ctx}: mac_valid is not a bool")),
        });
    }
    assert!(!out.is_empty(), "vectors.json has no *.enc.yaml entries");
    out
}

/// Collects failures across all vectors and reports them together.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.0.push(msg());
        }
    }

    fn push(&mut self, msg: String) {
        self.0.push(msg);
    }

    fn assert_none(self, what: &str) {
        assert!(
            self.0.is_empty(),
            "{what}: {} failure(s):\n  - {}",
            self.0.len(),
            self.0.join("\n  - ")
        );
    }
}

fn iv_from_b64(s: &str) -> Option<Iv> {
    B64.decode(s).ok()?.try_into().ok()
}

/// Reads a vector file and returns its text and its single Secret document.
fn load_doc(v: &Vector) -> Result<(String, Document), String> {
    let text = fs::read_to_string(v.path()).map_err(|e| format!("cannot read: {e}"))?;
    let docs = ksec::pipeline::locate(&text).map_err(|e| format!("locate failed: {e}"))?;
    let mut secrets: Vec<Document> = docs.into_iter().filter(|d| d.is_secret).collect();
    if secrets.len() != 1 {
        return Err(format!(
            "expected exactly one Secret document, found {}",
            secrets.len()
        ));
    }
    let doc = secrets.remove(0);
    if !doc.problems.is_empty() {
        return Err(format!("document has problems: {:?}", doc.problems));
    }
    Ok((text, doc))
}

fn encrypted_footer(v: &Vector, doc: &Document) -> Result<Footer, String> {
    let block = doc
        .footer
        .as_ref()
        .ok_or("classified as plain, expected encrypted")?;
    Footer::parse(block.lines.iter().map(String::as_str))
        .map_err(|e| format!("footer does not parse: {e} ({})", v.name))
}

/// Opens a vector's Secret with a given footer and data key through the
/// kubesec format's seam; errors by their stable code.
fn open_with(
    text: &str,
    doc: &Document,
    footer: Footer,
    dek: DataKey,
) -> Result<Opened, &'static str> {
    open_as(text, doc, footer, dek, OpenOptions::default()).map(|(o, _)| o)
}

/// [`open_with`] with `opts`, and the stream written in clear text from
/// what was opened (`Format::strip`).
fn open_as(
    text: &str,
    doc: &Document,
    footer: Footer,
    dek: DataKey,
    opts: OpenOptions,
) -> Result<(Opened, String), &'static str> {
    let stream = ksec::pipeline::parse("vector.yaml", text.to_owned()).map_err(|e| e.code)?;
    let envelope = Envelope {
        docs: vec![doc.position],
        state: State::Sealed(std::sync::Arc::new(footer)),
    };
    let opened = Kubesec
        .open_with_key(&stream, &envelope, dek, opts)
        .map_err(|e| e.code)?;
    let mut out = ksec::manifest::Splicer::new(&stream.text);
    Kubesec
        .strip(&stream, &envelope, &opened, Default::default(), &mut out)
        .map_err(|e| e.code)?;
    Ok((opened, out.finish().map_err(|_| "late-edit")?))
}

// ---------------------------------------------------------------------------

#[test]
fn cipher_level_vector_matches_kubesec() {
    let json = vectors_json();
    let c = &json["_cipher_level"];
    let dek_ascii = str_field(c, "dek_ascii", "_cipher_level");
    let iv_ascii = str_field(c, "iv_ascii", "_cipher_level");
    assert_eq!(dek_ascii, "f".repeat(32));
    assert_eq!(iv_ascii, "f".repeat(12));
    assert_eq!(str_field(c, "aad", "_cipher_level"), "KEY");
    let key = DataKey::from_slice(dek_ascii.as_bytes()).unwrap();
    let iv: Iv = iv_ascii.as_bytes().try_into().unwrap();
    let token = codec::seal_raw(&key, &iv, b"VALUE", b"KEY");
    assert_eq!(token.render(), str_field(c, "encoded", "_cipher_level"));
    assert_eq!(
        token.render(),
        "ZHNaYVQ=.ZmZmZmZmZmZmZmZm.pcgqz0hb478fIRa/buj8CA=="
    );
    // And it opens again with the raw primitive.
    let parsed = Token::parse(&token.render()).unwrap();
    assert_eq!(
        &codec::open_raw(&key, &parsed, b"KEY").unwrap()[..],
        b"VALUE"
    );
}

/// vectors.json covers exactly the `*.enc.yaml` files on disk, so a file
/// added later without an entry is noticed.
#[test]
fn vectors_json_covers_every_enc_file() {
    let dir = support::vectors_dir();
    let mut on_disk = BTreeSet::new();
    for sub in ["v3", "v4"] {
        for entry in fs::read_dir(dir.join(sub)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".enc.yaml") {
                on_disk.insert(format!("{sub}/{name}"));
            }
        }
    }
    let in_json: BTreeSet<String> = vectors().into_iter().map(|v| v.name).collect();
    assert_eq!(on_disk, in_json);
    // The AWS files are part of the set (their DEK is recorded).
    assert!(
        in_json.iter().filter(|n| n.contains("aws")).count() >= 3,
        "expected the AWS vectors: {in_json:?}"
    );
}

#[test]
fn vectors_every_value_decrypts_to_recorded_plaintext() {
    let mut f = Failures::default();
    let mut n = 0;
    for v in vectors() {
        let dek = v.dek();
        for r in &v.values {
            n += 1;
            match codec::decrypt_value(&dek, &r.key, &r.encoded) {
                Ok(clear) => f.check(*clear == r.plaintext, || {
                    format!(
                        "{} {}.{}: decrypted {:?}, recorded {:?}",
                        v.name,
                        r.section.as_str(),
                        r.key,
                        &*clear,
                        r.plaintext
                    )
                }),
                Err(e) => f.push(format!(
                    "{} {}.{}: decrypt_value failed: {e}",
                    v.name,
                    r.section.as_str(),
                    r.key
                )),
            }
            match Token::parse(&r.encoded) {
                Ok(t) => {
                    f.check(t.ciphertext.len() == r.padded_len, || {
                        format!(
                            "{} {}: ciphertext is {} bytes, recorded padded_len {}",
                            v.name,
                            r.key,
                            t.ciphertext.len(),
                            r.padded_len
                        )
                    });
                    f.check(B64.encode(t.iv) == r.iv_b64, || {
                        format!("{} {}: token IV differs from iv_b64", v.name, r.key)
                    });
                }
                Err(e) => f.push(format!("{} {}: Token::parse failed: {e}", v.name, r.key)),
            }
            // The AAD is the map key: another key name must not open it.
            let other = format!("{}x", r.key);
            f.check(
                codec::decrypt_value(&dek, &other, &r.encoded) == Err(CodecError::Authentication),
                || format!("{} {}: opened under the wrong map key", v.name, r.key),
            );
        }
    }
    assert!(n > 0);
    f.assert_none("decrypting recorded values");
}

#[test]
fn vectors_encrypt_with_recorded_iv_reproduces_token() {
    let mut f = Failures::default();
    for v in vectors() {
        let dek = v.dek();
        for r in &v.values {
            let Some(iv) = iv_from_b64(&r.iv_b64) else {
                f.push(format!("{} {}: iv_b64 is not 12 bytes", v.name, r.key));
                continue;
            };
            match codec::encrypt_value(&dek, &r.key, &r.plaintext, &iv) {
                Ok(t) => f.check(t == r.encoded, || {
                    format!(
                        "{} {}.{}:\n      got      {t}\n      recorded {}",
                        v.name,
                        r.section.as_str(),
                        r.key,
                        r.encoded
                    )
                }),
                Err(e) => f.push(format!("{} {}: encrypt_value failed: {e}", v.name, r.key)),
            }
        }
    }
    f.assert_none("re-encrypting with recorded IVs");
}

#[test]
fn vectors_mac_aad_matches_recorded_bytes() {
    let mut f = Failures::default();
    for v in vectors() {
        let aad = v.library_aad();
        f.check(aad == v.mac_aad.as_bytes(), || {
            format!(
                "{}:\n      got      {:?}\n      recorded {:?}",
                v.name,
                String::from_utf8_lossy(&aad),
                v.mac_aad
            )
        });
    }
    f.assert_none("MAC AAD");
}

#[test]
fn vectors_mac_verifies_as_recorded() {
    let vs = vectors();
    let invalid: Vec<&str> = vs
        .iter()
        .filter(|v| !v.mac_valid)
        .map(|v| v.name.as_str())
        .collect();
    // At the time of writing every vector's MAC is valid; the loop below
    // also covers `mac_valid: false` entries should any be added.
    eprintln!("vectors with mac_valid = false: {invalid:?}");
    let mut f = Failures::default();
    for v in &vs {
        let dek = v.dek();
        // Against the recorded AAD bytes and against the library's AAD.
        for (what, aad) in [
            ("recorded AAD", v.mac_aad.as_bytes().to_vec()),
            ("library AAD", v.library_aad()),
        ] {
            let verified = mac::verify(&dek, &aad, &v.mac);
            f.check(verified.is_ok() == v.mac_valid, || {
                format!(
                    "{} ({what}): mac::verify = {verified:?}, mac_valid = {}",
                    v.name, v.mac_valid
                )
            });
        }
        // Negative controls: the check is not vacuous.
        let mut changed = v.mac_aad.as_bytes().to_vec();
        changed.push(b'x');
        f.check(mac::verify(&dek, &changed, &v.mac).is_err(), || {
            format!("{}: MAC verifies over a changed AAD", v.name)
        });
        let mut other = v.dek;
        other[0] ^= 1;
        f.check(
            mac::verify(&DataKey::from_bytes(other), v.mac_aad.as_bytes(), &v.mac).is_err(),
            || format!("{}: MAC verifies under another data key", v.name),
        );
    }
    f.assert_none("MAC verification");
}

#[test]
fn vectors_files_parse_and_footer_matches_record() {
    let mut f = Failures::default();
    for v in vectors() {
        let (text, doc) = match load_doc(&v) {
            Ok(x) => x,
            Err(e) => {
                f.push(format!("{}: {e}", v.name));
                continue;
            }
        };
        let footer = match encrypted_footer(&v, &doc) {
            Ok(x) => x,
            Err(e) => {
                f.push(format!("{}: {e}", v.name));
                continue;
            }
        };
        f.check(footer.version == v.version, || {
            format!(
                "{}: footer version {}, recorded {}",
                v.name, footer.version, v.version
            )
        });
        let ids: Vec<KeyId> = footer.keys.iter().map(|k| k.key.clone()).collect();
        f.check(ids == v.keys, || {
            format!("{}: footer keys {ids:?}, recorded {:?}", v.name, v.keys)
        });
        f.check(footer.keys.iter().all(|k| !k.blob.is_empty()), || {
            format!("{}: a key line has an empty blob", v.name)
        });
        f.check(footer.mac.as_deref() == Some(v.mac.as_str()), || {
            format!(
                "{}: footer MAC {:?}, recorded {}",
                v.name, footer.mac, v.mac
            )
        });
        f.check(footer.kubesec_compatible(), || {
            format!("{}: footer not kubesec-compatible", v.name)
        });
        // Rendering the parsed footer gives back the file's footer lines.
        let rendered = footer.render_lines();
        let block = doc.footer.as_ref().expect("encrypted doc has a footer");
        f.check(rendered == block.lines, || {
            format!(
                "{}: footer renders differently:\n      {rendered:?}\n      {:?}",
                v.name, block.lines
            )
        });
        f.check(
            text[block.range.clone()].starts_with("# kubesec:v:"),
            || {
                format!(
                    "{}: footer range does not start at the version line",
                    v.name
                )
            },
        );
        // The file's value sites are the recorded tokens.
        let sites: Vec<(Section, &str, &str)> = doc
            .sites
            .iter()
            .map(|s| (s.section, s.key(&text), s.value(&text)))
            .collect();
        let recorded: Vec<(Section, &str, &str)> = v
            .values
            .iter()
            .map(|r| (r.section, r.key.as_str(), r.encoded.as_str()))
            .collect();
        f.check(sorted(sites.clone()) == sorted(recorded.clone()), || {
            format!(
                "{}: value sites differ from vectors.json:\n      file {sites:?}\n      json {recorded:?}",
                v.name
            )
        });
    }
    f.assert_none("parsing vector files");
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

#[test]
fn vectors_files_open_with_recorded_dek() {
    let mut f = Failures::default();
    for v in vectors() {
        let (text, doc) = match load_doc(&v) {
            Ok(x) => x,
            Err(e) => {
                f.push(format!("{}: {e}", v.name));
                continue;
            }
        };
        let footer = match encrypted_footer(&v, &doc) {
            Ok(x) => x,
            Err(e) => {
                f.push(format!("{}: {e}", v.name));
                continue;
            }
        };
        // Opened only to be written out (what `decrypt` does): the values
        // in the format's compact form, the same checks, the same output.
        let lean = OpenOptions {
            output_only: true,
            ..OpenOptions::default()
        };
        let compact = open_as(&text, &doc, footer.clone(), v.dek(), lean);
        let opened = open_as(&text, &doc, footer, v.dek(), OpenOptions::default());
        if !v.mac_valid {
            f.check(matches!(opened, Err("mac-mismatch")), || {
                format!("{}: mac_valid is false but the file opened", v.name)
            });
            f.check(matches!(compact, Err("mac-mismatch")), || {
                format!(
                    "{}: mac_valid is false but the file opened for output",
                    v.name
                )
            });
            continue;
        }
        let (opened, clear) = match opened {
            Ok(o) => o,
            Err(e) => {
                f.push(format!("{}: open_with_key failed: {e:?}", v.name));
                continue;
            }
        };
        match compact {
            Ok((c, compact_clear)) => {
                f.check(c.values.is_empty() && compact_clear == clear, || {
                    format!("{}: opened for output, it writes other clear text", v.name)
                });
            }
            Err(e) => f.push(format!("{}: opening for output failed: {e:?}", v.name)),
        }
        f.check(opened.dek.as_bytes() == &v.dek, || {
            format!("{}: opened with a different data key", v.name)
        });
        let got: Vec<(Section, String, String, String)> = opened
            .values
            .iter()
            .map(|c| {
                (
                    c.section,
                    c.key.clone(),
                    c.clear.to_string(),
                    c.token.clone(),
                )
            })
            .collect();
        let want: Vec<(Section, String, String, String)> = v
            .values
            .iter()
            .map(|r| {
                (
                    r.section,
                    r.key.clone(),
                    r.plaintext.clone(),
                    r.encoded.clone(),
                )
            })
            .collect();
        f.check(sorted(got.clone()) == sorted(want.clone()), || {
            format!(
                "{}: opened values differ:\n      got  {got:?}\n      want {want:?}",
                v.name
            )
        });
    }
    f.assert_none("opening vector files with the recorded DEK");
}

/// Opening is not vacuous: the wrong data key and a changed MAC are refused.
#[test]
fn vectors_files_refuse_wrong_dek_and_changed_mac() {
    let mut f = Failures::default();
    for v in vectors() {
        let (text, doc) = match load_doc(&v) {
            Ok(x) => x,
            Err(e) => {
                f.push(format!("{}: {e}", v.name));
                continue;
            }
        };
        let footer = match encrypted_footer(&v, &doc) {
            Ok(x) => x,
            Err(e) => {
                f.push(format!("{}: {e}", v.name));
                continue;
            }
        };
        let mut wrong = v.dek;
        wrong[31] ^= 0x80;
        let r = open_with(&text, &doc, footer.clone(), DataKey::from_bytes(wrong));
        f.check(matches!(r, Err("authentication")), || {
            format!("{}: wrong DEK gave {:?}", v.name, r.as_ref().err())
        });
        // A well-formed MAC with a wrong tag must not verify.
        let mut bad = footer.clone();
        bad.mac = Some("AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA==".into());
        let r = open_with(&text, &doc, bad, v.dek());
        f.check(matches!(r, Err("mac-mismatch")), || {
            format!("{}: zeroed MAC gave {:?}", v.name, r.as_ref().err())
        });
        // A dropped key line changes the AAD (when there is more than one).
        if footer.keys.len() > 1 {
            let mut fewer = footer.clone();
            fewer.keys.pop();
            let r = open_with(&text, &doc, fewer, v.dek());
            f.check(matches!(r, Err("mac-mismatch")), || {
                format!(
                    "{}: dropping a key line gave {:?}",
                    v.name,
                    r.as_ref().err()
                )
            });
        }
    }
    f.assert_none("refusals");
}
