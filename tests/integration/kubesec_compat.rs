//! Two-way compatibility with kubesec through the built binary and real gpg:
//! every kubesec vector opens and decrypts to what kubesec printed, re-encrypts
//! to the same bytes, and key-set changes behave like kubesec's (except for
//! its replace-with-subset quirk); what ksec writes passes the independent
//! reader `tests/support/kreader.py`; v1/v2 files (no MAC) are refused, read on
//! request, and upgraded by `recompute-mac`.
//!
//! Decrypted output is compared with kubesec's `*.dec.yaml`/`*.dec-x.yaml` as
//! parsed YAML (PyYAML, as kreader.py uses), since ksec writes values in its
//! own quoting style; `!!binary` values compare as bytes. Data keys are
//! recovered with plain `gpg --decrypt`, never through ksec.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ksec::formats::kubesec::codec::{encrypt_value, random_iv};
use ksec::keys::DataKey;

use super::pgp::{ALICE, BOB, Gpg, body, key_blob, key_ids, refusal};
use crate::support::{self, TestEnv, ok_stdout};

// ---------------------------------------------------------------------------
// Vectors and Python helpers

fn vectors() -> PathBuf {
    let d = support::vectors_dir();
    assert!(
        d.join("v3").is_dir(),
        "{} not found; the kubesec vectors belong in testdata/kubesec-vectors",
        d.display()
    );
    d
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn vector(rel: &str) -> PathBuf {
    vectors().join(rel)
}

/// Every `*.enc.yaml` of `v3/` and `v4/`, sorted.
fn enc_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["v3", "v4"]
        .iter()
        .flat_map(|d| fs::read_dir(vectors().join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".enc.yaml"))
        .collect();
    files.sort();
    files
}

/// `X.enc.yaml` → `X<suffix>`.
fn sibling(enc: &Path, suffix: &str) -> PathBuf {
    let s = enc.to_string_lossy();
    PathBuf::from(format!("{}{suffix}", s.strip_suffix(".enc.yaml").unwrap()))
}

fn has_key(text: &str, kind: &str, id: &str) -> bool {
    key_ids(text).contains(&format!("{kind}:{id}"))
}

const PY_INSTALL: &str = "install python3 with `pip install cryptography pyyaml`";

fn python(args: &[&str]) -> Output {
    match Command::new("python3").args(args).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("python3 is not on PATH; these tests need it ({PY_INSTALL})")
        }
        Err(e) => panic!("cannot run python3: {e}"),
    }
}

/// Compares each (actual file, expected file) pair as parsed YAML streams
/// (PyYAML `safe_load_all`); fails listing every pair that differs.
fn assert_same_yaml(pairs: &[(PathBuf, PathBuf)]) {
    const SCRIPT: &str = r#"
import sys, yaml
args = sys.argv[1:]
bad = 0
for a, b in zip(args[0::2], args[1::2]):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        x, y = list(yaml.safe_load_all(fa)), list(yaml.safe_load_all(fb))
    if x != y or not x:
        bad += 1
        print("DIFFERENT:", a, "vs", b)
        print("  ksec:   ", repr(x))
        print("  kubesec:", repr(y))
sys.exit(1 if bad else 0)
"#;
    let mut args = vec!["-c".to_owned(), SCRIPT.to_owned()];
    for (a, b) in pairs {
        args.push(a.to_string_lossy().into_owned());
        args.push(b.to_string_lossy().into_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = python(&args);
    assert!(
        out.status.success(),
        "parsed YAML differs ({PY_INSTALL} if yaml is missing):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `tests/support/kreader.py --key DEK_HEX FILE`; asserts it verifies
/// the MAC and returns its output.
fn kreader(path: &Path, dek_hex: &str) -> String {
    let script = support::kreader();
    let out = python(&[
        script.to_str().unwrap(),
        "--key",
        dek_hex,
        path.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("MAC OK"),
        "kreader.py rejects {} ({PY_INSTALL} if a module is missing):\n{stdout}{}\n--- file:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr),
        read(path)
    );
    stdout
}

/// (section.key, token) of every value of the first Secret of `text`.
fn tokens(text: &str) -> Vec<(String, String)> {
    let docs = ksec::pipeline::locate(text).unwrap();
    let doc = docs.iter().find(|d| d.is_secret).expect("a Secret");
    doc.sites
        .iter()
        .map(|s| (s.label(text), s.value(text).to_owned()))
        .collect()
}

fn mac_line(text: &str) -> Option<&str> {
    text.lines().find(|l| l.starts_with("# kubesec:mac:"))
}

/// `ksec ARGS` in `gpg`'s keyring; returns the output.
fn ksec(gpg: &Gpg, env: &TestEnv, args: &[&str]) -> Output {
    gpg.ksec(env).args(args).output().unwrap()
}

/// `ksec ARGS`, asserting success; returns stdout.
fn ksec_ok(gpg: &Gpg, env: &TestEnv, args: &[&str]) -> String {
    ok_stdout(&ksec(gpg, env, args))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---------------------------------------------------------------------------
// Reading kubesec's files

#[test]
fn kubesec_compat_every_vector_alice_can_open_decrypts_like_kubesec() {
    let env = TestEnv::new();
    let gpg = Gpg::with_vector_keys(&["alice.sec.asc"]);
    let mut pairs = Vec::new();
    let (mut opened, mut aws_only) = (Vec::new(), Vec::new());
    for (i, enc) in enc_files().iter().enumerate() {
        let text = read(enc);
        if !has_key(&text, "pgp", ALICE) {
            // The KMS emulator that wrapped these is gone: nothing can open them.
            assert!(
                key_ids(&text).iter().all(|k| k.starts_with("aws:")),
                "{}: {:?}",
                enc.display(),
                key_ids(&text)
            );
            refusal(&ksec(&gpg, &env, &["decrypt", s(enc)]), 6, &["aws:"]);
            aws_only.push(enc.clone());
            continue;
        }
        for (flag, suffix) in [(None, ".dec.yaml"), (Some("-x"), ".dec-x.yaml")] {
            let mut args = vec!["decrypt"];
            args.extend(flag);
            args.push(s(enc));
            let out = ksec_ok(&gpg, &env, &args);
            let name = format!("{i}{}", suffix);
            pairs.push((env.write(&name, &out), sibling(enc, suffix)));
            if flag.is_some() && read(&sibling(enc, suffix)).contains("!!binary") {
                assert!(
                    out.contains("!!binary"),
                    "{}: decrypt -x must write non-UTF-8 data as !!binary:\n{out}",
                    enc.display()
                );
            }
        }
        opened.push(enc.clone());
    }
    assert!(
        opened.len() >= 12 && aws_only.len() == 2,
        "opened {opened:?}, AWS-only {aws_only:?}"
    );
    assert_same_yaml(&pairs);
}

#[test]
fn kubesec_compat_bob_opens_his_files_with_alice_public_key() {
    let env = TestEnv::new();
    // Both secret keys imported, then Alice's secret removed: Bob's machine
    // with Alice's public key (the signer of every blob).
    let gpg = Gpg::with_vector_keys(&["alice.sec.asc", "bob.sec.asc"]);
    gpg.delete_secret(ALICE);
    let mut pairs = Vec::new();
    let mut bobs = 0;
    for (i, enc) in enc_files().iter().enumerate() {
        let text = read(enc);
        if has_key(&text, "pgp", BOB) {
            bobs += 1;
            let out = ksec_ok(&gpg, &env, &["decrypt", s(enc)]);
            pairs.push((
                env.write(&format!("{i}.yaml"), out),
                sibling(enc, ".dec.yaml"),
            ));
            let out = ksec_ok(&gpg, &env, &["decrypt", "-x", s(enc)]);
            pairs.push((
                env.write(&format!("{i}-x.yaml"), out),
                sibling(enc, ".dec-x.yaml"),
            ));
        } else if has_key(&text, "pgp", ALICE) {
            refusal(
                &ksec(&gpg, &env, &["decrypt", s(enc)]),
                6,
                &[ALICE, "no secret key"],
            );
        }
    }
    assert_eq!(bobs, 3, "bob-alice, alice-plus-bob, replace-with-subset");
    assert_same_yaml(&pairs);
}

#[test]
fn kubesec_compat_reencrypting_unchanged_files_gives_identical_bytes() {
    let env = TestEnv::new();
    let gpg = Gpg::with_vector_keys(&["alice.sec.asc"]);
    let mut checked = 0;
    for enc in enc_files() {
        let text = read(&enc);
        if !has_key(&text, "pgp", ALICE) {
            continue;
        }
        let out = ksec_ok(&gpg, &env, &["encrypt", s(&enc)]);
        assert!(
            out == text,
            "{}: re-encrypting without changes changed the file:\n{out}",
            enc.display()
        );
        // In place: the file stays as it is.
        let copy = env.write("copy.enc.yaml", &text);
        ksec_ok(&gpg, &env, &["encrypt", "-i", s(&copy)]);
        assert_eq!(read(&copy), text, "{}", enc.display());
        checked += 1;
    }
    assert!(checked >= 12, "{checked}");
}

// ---------------------------------------------------------------------------
// Key-set changes

#[test]
fn kubesec_compat_adding_a_key_reproduces_kubesec_byte_for_byte() {
    let env = TestEnv::new();
    let gpg = Gpg::with_vector_keys(&["alice.sec.asc", "bob.pub.asc"]);
    let alice = read(&vector("v3/v3-pgp-alice.enc.yaml"));
    let kubesec = read(&vector("v3/v3-pgp-alice-plus-bob.enc.yaml"));
    let key = format!("--key=+pgp:{BOB}");
    let out = ksec_ok(
        &gpg,
        &env,
        &["encrypt", &key, s(&vector("v3/v3-pgp-alice.enc.yaml"))],
    );
    // The data key and every value (IV included) stay: same body as kubesec's.
    assert_eq!(body(&out), body(&kubesec));
    assert_eq!(body(&out), body(&alice));
    assert_eq!(key_ids(&out), key_ids(&kubesec));
    assert_eq!(
        key_ids(&out),
        vec![format!("pgp:{ALICE}"), format!("pgp:{BOB}")]
    );
    assert!(out.contains("\n# kubesec:v:3\n# kubesec:pgp:"), "{out}");
    // Alice's wrapped key is kept as it was; the MAC is new (it covers key ids).
    assert_eq!(key_blob(&out, "pgp", ALICE), key_blob(&alice, "pgp", ALICE));
    assert_ne!(mac_line(&out), mac_line(&alice));
    assert_eq!(gpg.dek_hex(&out, ALICE), gpg.dek_hex(&alice, ALICE));
    let path = env.write("plus-bob.yaml", &out);
    kreader(&path, &gpg.dek_hex(&out, ALICE));

    // Bob can open the result (his line is signed by Alice, the default key).
    let bob = Gpg::with_vector_keys(&["bob.sec.asc", "alice.pub.asc"]);
    let clear = ksec_ok(&bob, &env, &["decrypt", s(&path)]);
    assert_eq!(clear, read(&vector("v3/v3-pgp-alice.dec.yaml")));
}

#[test]
fn kubesec_compat_removing_a_key_rotates_the_data_key() {
    let env = TestEnv::new();
    let gpg = Gpg::with_vector_keys(&["alice.sec.asc", "bob.pub.asc"]);
    let src = vector("v3/v3-pgp-alice-plus-bob.enc.yaml");
    let before = read(&src);
    let key = format!("--key=-pgp:{BOB}");
    let out = ksec_ok(&gpg, &env, &["encrypt", &key, s(&src)]);
    assert_eq!(key_ids(&out), vec![format!("pgp:{ALICE}")]);
    assert_eq!(
        key_ids(&out),
        key_ids(&read(&vector("v3/v3-pgp-alice-after-minus-bob.enc.yaml")))
    );
    let old = tokens(&before);
    let new = tokens(&out);
    assert_eq!(old.len(), new.len());
    for ((k1, t1), (k2, t2)) in old.iter().zip(&new) {
        assert_eq!(k1, k2);
        assert_ne!(t1, t2, "{k1}: a removed key must rotate every value");
        assert_ne!(
            t1.rsplit('.').nth(1),
            t2.rsplit('.').nth(1),
            "{k1}: IV reused"
        );
    }
    assert_ne!(gpg.dek_hex(&out, ALICE), gpg.dek_hex(&before, ALICE));
    assert_ne!(
        key_blob(&out, "pgp", ALICE),
        key_blob(&before, "pgp", ALICE)
    );
    let path = env.write("minus-bob.yaml", &out);
    kreader(&path, &gpg.dek_hex(&out, ALICE));
    let clear = ksec_ok(&gpg, &env, &["decrypt", s(&path)]);
    assert_eq!(clear, ksec_ok(&gpg, &env, &["decrypt", s(&src)]));
}

#[test]
fn kubesec_compat_removing_the_last_key_is_refused() {
    let env = TestEnv::new();
    let gpg = Gpg::with_vector_keys(&["alice.sec.asc"]);
    let text = read(&vector("v3/v3-pgp-alice.enc.yaml"));
    let copy = env.write("alice.enc.yaml", &text);
    let key = format!("--key=-pgp:{ALICE}");
    // kubesec falls back to gpg's default key (v3-minus-only-key-falls-back-
    // to-default); ksec refuses instead of picking a key nobody asked for.
    refusal(
        &ksec(&gpg, &env, &["encrypt", &key, s(&copy)]),
        2,
        &["no key"],
    );
    refusal(
        &ksec(&gpg, &env, &["encrypt", "-i", &key, s(&copy)]),
        2,
        &["no key"],
    );
    assert_eq!(
        read(&copy),
        text,
        "a refused change must leave the file alone"
    );
}

#[test]
fn kubesec_compat_plain_key_list_means_exactly_that_list() {
    let env = TestEnv::new();
    let gpg = Gpg::with_vector_keys(&["alice.sec.asc", "bob.pub.asc"]);
    let src = vector("v3/v3-pgp-bob-alice.enc.yaml");
    let before = read(&src);
    // kubesec's quirk, recorded in the vectors: a plain list of keys already
    // present changes nothing (Bob stays).
    assert_eq!(
        key_ids(&read(&vector(
            "v3/v3-replace-with-subset-keeps-both.enc.yaml"
        ))),
        vec![format!("pgp:{BOB}"), format!("pgp:{ALICE}")]
    );
    let key = format!("--key=pgp:{ALICE}");
    let out = ksec_ok(&gpg, &env, &["encrypt", &key, s(&src)]);
    assert_eq!(key_ids(&out), vec![format!("pgp:{ALICE}")]);
    // Bob was dropped, so the data key rotates as with --key=-pgp:BOB.
    assert_ne!(gpg.dek_hex(&out, ALICE), gpg.dek_hex(&before, ALICE));
    let path = env.write("only-alice.yaml", &out);
    kreader(&path, &gpg.dek_hex(&out, ALICE));
    assert_eq!(
        ksec_ok(&gpg, &env, &["decrypt", s(&path)]),
        ksec_ok(&gpg, &env, &["decrypt", s(&src)])
    );
}

// ---------------------------------------------------------------------------
// Footer order and the independent reader

#[test]
fn kubesec_compat_footer_order_rules() {
    let env = TestEnv::new();
    let gpg = Gpg::with_vector_keys(&["alice.sec.asc", "bob.pub.asc"]);
    let input = vector("input/secret.yaml");
    let (a, b) = (format!("pgp:{ALICE}"), format!("pgp:{BOB}"));

    // Same-type keys keep the order given, like v3-pgp-bob-alice.
    let out = ksec_ok(&gpg, &env, &["encrypt", "-k", &b, "-k", &a, s(&input)]);
    assert_eq!(key_ids(&out), vec![b.clone(), a.clone()]);
    assert_eq!(
        key_ids(&out),
        key_ids(&read(&vector("v3/v3-pgp-bob-alice.enc.yaml")))
    );
    let path = env.write("bob-alice.yaml", &out);
    kreader(&path, &gpg.dek_hex(&out, ALICE));
    let out = ksec_ok(&gpg, &env, &["encrypt", "-k", &a, "-k", &b, s(&input)]);
    assert_eq!(key_ids(&out), vec![a.clone(), b.clone()]);

    // pgp before aws: adding Bob to kubesec's pgp+aws file keeps the aws
    // line (its blob untouched) after both pgp lines.
    let mixed_path = vector("v3/v3-aws-then-pgp-mixed.enc.yaml");
    let mixed = read(&mixed_path);
    let aws = key_ids(&mixed)
        .into_iter()
        .find(|k| k.starts_with("aws:"))
        .unwrap();
    let add = format!("--key=+{b}");
    let out = ksec_ok(&gpg, &env, &["encrypt", &add, s(&mixed_path)]);
    assert_eq!(key_ids(&out), vec![a.clone(), b.clone(), aws.clone()]);
    let aws_id = aws.strip_prefix("aws:").unwrap();
    assert_eq!(
        key_blob(&out, "aws", aws_id),
        key_blob(&mixed, "aws", aws_id)
    );
    assert_eq!(body(&out), body(&mixed));
    let path = env.write("mixed-plus-bob.yaml", &out);
    kreader(&path, &gpg.dek_hex(&out, ALICE));

    // pgp before age (a ksec addition, ordered after kubesec's types).
    let age = format!("age:{}", env.recipient);
    let out = ksec_ok(&gpg, &env, &["encrypt", "-k", &age, "-k", &a, s(&input)]);
    assert_eq!(key_ids(&out), vec![a.clone(), age.clone()]);
}

#[test]
fn kubesec_compat_kreader_reads_what_ksec_writes_with_pgp_keys() {
    let env = TestEnv::new();
    let gpg = Gpg::with_vector_keys(&["alice.sec.asc", "bob.pub.asc"]);
    let input = vector("input/secret.yaml");
    let (a, b) = (format!("pgp:{ALICE}"), format!("pgp:{BOB}"));
    let age = format!("age:{}", env.recipient);
    let with_string_data = env.write(
        "sd.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: sd\ndata:\n  username: YWRtaW4=\n\
         stringData:\n  note: héllo wörld\n  empty: \"\"\n",
    );
    let cases: Vec<(&str, Vec<&str>, &Path)> = vec![
        ("pgp-only", vec![a.as_str()], &input),
        ("two-pgp", vec![a.as_str(), b.as_str()], &input),
        ("pgp-age", vec![age.as_str(), a.as_str()], &input),
        ("v4", vec![a.as_str()], &with_string_data),
    ];
    for (name, keys, file) in cases {
        let mut args = vec!["encrypt"];
        for k in &keys {
            args.extend(["-k", k]);
        }
        args.push(s(file));
        let out = ksec_ok(&gpg, &env, &args);
        let path = env.write(&format!("{name}.yaml"), &out);
        let report = kreader(&path, &gpg.dek_hex(&out, ALICE));
        if name == "v4" {
            assert!(out.contains("# kubesec:v:4\n"), "{out}");
            assert!(report.contains("'note': 'héllo wörld'"), "{report}");
        } else {
            assert!(out.contains("# kubesec:v:3\n"), "{out}");
            assert!(
                report.contains("'username': 'YWRtaW4='")
                    && report.contains("'password': 'czNjcjN0LXBAc3N3MHJkIQ=='")
                    && report.contains("'empty': ''"),
                "{name}: {report}"
            );
        }
        // Every PGP line carries a signed, armored message.
        for k in keys.iter().filter(|k| k.starts_with("pgp:")) {
            let fpr = k.strip_prefix("pgp:").unwrap();
            let blob = key_blob(&out, "pgp", fpr);
            assert!(blob.starts_with(b"-----BEGIN PGP MESSAGE-----"));
            if fpr == ALICE {
                let d = gpg.decrypt(&blob);
                assert_eq!(d.valid_signer().as_deref(), Some(ALICE));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// v1 and v2: no MAC

/// (key, base64 value) of the legacy fixtures; `empty` shows the v1 rule.
const LEGACY_VALUES: [(&str, &str); 3] = [
    ("empty", ""),
    ("password", "czNjcjN0LXBAc3N3MHJkIQ=="),
    ("username", "YWRtaW4="),
];

/// A kubesec v1 or v2 file written from the format description: sorted
/// `data`, values encrypted under a random data key (in v1 an empty value
/// stays `""`), the data key wrapped for Alice by gpg (signed), no MAC.
fn legacy_file(gpg: &Gpg, version: u8) -> (String, DataKey) {
    let dek = DataKey::generate();
    let mut text = String::from("apiVersion: v1\ndata:\n");
    for (k, v) in LEGACY_VALUES {
        let token = if version == 1 && v.is_empty() {
            "\"\"".to_owned()
        } else {
            encrypt_value(&dek, k, v, &random_iv()).unwrap()
        };
        text.push_str(&format!("  {k}: {token}\n"));
    }
    text.push_str("kind: Secret\nmetadata:\n  name: legacy\n  namespace: default\ntype: Opaque\n");
    let blob = gpg.wrap_signed(dek.as_bytes(), ALICE);
    text.push_str(&format!(
        "# kubesec:v:{version}\n# kubesec:pgp:{ALICE}:{}\n",
        B64.encode(blob)
    ));
    (text, dek)
}

#[test]
fn kubesec_compat_v1_and_v2_need_allow_missing_mac_and_upgrade_with_recompute_mac() {
    let env = TestEnv::new();
    let gpg = Gpg::with_vector_keys(&["alice.sec.asc"]);
    for version in [1u8, 2] {
        let (text, dek) = legacy_file(&gpg, version);
        if version == 1 {
            assert!(text.contains("  empty: \"\"\n"));
        }
        let path = env.write(&format!("v{version}.yaml"), &text);

        // No MAC: refused by default, with both ways out named.
        let out = ksec(&gpg, &env, &["decrypt", s(&path)]);
        refusal(&out, 5, &[&format!("v{version}"), "MAC"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("--allow-missing-mac") && stderr.contains("ksec recompute-mac"),
            "v{version}: the refusal must name both ways out:\n{stderr}"
        );

        // Read on request.
        let clear = ksec_ok(&gpg, &env, &["decrypt", "--allow-missing-mac", s(&path)]);
        for (k, v) in LEGACY_VALUES {
            let want = if v.is_empty() {
                format!("  {k}: \"\"\n")
            } else {
                format!("  {k}: {v}\n")
            };
            assert!(clear.contains(&want), "v{version}: {k}:\n{clear}");
        }
        assert!(!clear.contains("# kubesec:"), "{clear}");

        // Upgrade: shows keys and sizes, never values.
        let out = ksec(&gpg, &env, &["recompute-mac", "--yes", s(&path)]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "v{version}: {stderr}");
        assert!(
            stderr.contains(&format!("pgp:{ALICE}"))
                && stderr.contains(&format!("v{version} → v3"))
                && stderr.contains("data.password (24 bytes)")
                && stderr.contains("data.username (8 bytes)")
                && stderr.contains("data.empty (0 bytes)"),
            "recompute-mac must show what it signs:\n{stderr}"
        );
        for (_, v) in LEGACY_VALUES.iter().filter(|(_, v)| !v.is_empty()) {
            assert!(!stderr.contains(v), "a value reached stderr:\n{stderr}");
        }
        let upgraded = read(&path);
        assert!(upgraded.contains("\n# kubesec:v:3\n"), "{upgraded}");
        assert!(mac_line(&upgraded).is_some(), "{upgraded}");
        assert_eq!(key_ids(&upgraded), vec![format!("pgp:{ALICE}")]);
        // Same data key; non-empty values keep their tokens.
        assert_eq!(gpg.dek_hex(&upgraded, ALICE), hex::encode(dek.as_bytes()));
        let (old, new) = (tokens(&text), tokens(&upgraded));
        for ((k, t1), (_, t2)) in old.iter().zip(&new) {
            if version == 2 || k != "data.empty" {
                assert_eq!(t1, t2, "v{version}: {k} changed");
            } else {
                assert_ne!(t2, "", "the v1 empty value must become a token");
            }
        }
        kreader(&path, &hex::encode(dek.as_bytes()));

        // Now plain decrypt works and gives the same values.
        let after = ksec_ok(&gpg, &env, &["decrypt", s(&path)]);
        assert_eq!(after, clear, "v{version}");
    }
}

// ---------------------------------------------------------------------------
// introspect

fn kubesec_compatible(gpg: &Gpg, env: &TestEnv, path: &Path) -> serde_json::Value {
    let out = ksec_ok(gpg, env, &["introspect", "--json", s(path)]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["documents"][0]["kubesec_compatible"].clone()
}

#[test]
fn kubesec_compat_introspect_says_who_can_read_the_file() {
    let env = TestEnv::new();
    let gpg = Gpg::with_vector_keys(&["alice.sec.asc"]);
    for rel in [
        "v3/v3-pgp-alice.enc.yaml",
        "v3/v3-aws-then-pgp-mixed.enc.yaml",
        "v4/v4-create.enc.yaml",
    ] {
        assert_eq!(
            kubesec_compatible(&gpg, &env, &vector(rel)),
            serde_json::json!(true),
            "{rel}"
        );
    }
    // Written by ksec with kubesec key types only: still kubesec's format.
    let out = ksec_ok(
        &gpg,
        &env,
        &[
            "encrypt",
            "-k",
            &format!("pgp:{ALICE}"),
            s(&vector("input/secret.yaml")),
        ],
    );
    let pgp_only = env.write("pgp-only.yaml", &out);
    assert_eq!(
        kubesec_compatible(&gpg, &env, &pgp_only),
        serde_json::json!(true)
    );
    // An age key makes it ksec-only; the data key and values stay.
    let add = format!("--key=+age:{}", env.recipient);
    let out = ksec_ok(&gpg, &env, &["encrypt", &add, s(&pgp_only)]);
    assert_eq!(body(&out), body(&read(&pgp_only)));
    let with_age = env.write("with-age.yaml", &out);
    assert_eq!(
        kubesec_compatible(&gpg, &env, &with_age),
        serde_json::json!(false)
    );
    let text = ksec_ok(&gpg, &env, &["introspect", s(&with_age)]);
    assert!(text.contains("readable by kubesec: no"), "{text}");
    // Dropping the age key again gives a kubesec file (with a new data key).
    let remove = format!("--key=-age:{}", env.recipient);
    let out = ksec_ok(&gpg, &env, &["encrypt", &remove, s(&with_age)]);
    let back = env.write("back.yaml", &out);
    assert_eq!(
        kubesec_compatible(&gpg, &env, &back),
        serde_json::json!(true)
    );
    kreader(&back, &gpg.dek_hex(&out, ALICE));
}
