//! The project's independent reader, `tests/support/kreader.py`, checked on
//! its own: it reads every kubesec vector to the plaintexts that
//! `vectors.json` records, and it rejects tampered files (exit 1, nothing on
//! stdout, the reason on stderr). interop_age and kubesec_compat trust its
//! "MAC OK"; a reader that accepted anything would make them pass for
//! nothing. None of this goes through ksec.
//!
//! Needs `python3` with `cryptography` and `PyYAML`; fails (never skips)
//! without them.

use std::fs;
use std::process::{Command, Output};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use crate::support::{self, TestEnv};

const INSTALL: &str = "scripts/install-test-tools installs python3's cryptography and PyYAML";

/// `python3 tests/support/kreader.py ARGS…`.
fn kreader(args: &[&str]) -> Output {
    match Command::new("python3")
        .arg(support::kreader())
        .args(args)
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("python3 is not on PATH; these tests need it ({INSTALL})")
        }
        Err(e) => panic!("cannot run python3: {e}"),
    }
}

fn vectors_json() -> Value {
    let path = support::vectors_dir().join("vectors.json");
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {} ({e})", path.display()));
    serde_json::from_str(&text).expect("vectors.json is valid JSON")
}

fn dek_hex(vectors: &Value, name: &str) -> String {
    vectors[name]["dek_hex"]
        .as_str()
        .unwrap_or_else(|| panic!("vectors.json has no dek_hex for {name}"))
        .to_owned()
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn kreader_reads_every_kubesec_vector() {
    let vectors = vectors_json();
    let mut failures = Vec::new();
    let mut read = 0;
    for (name, v) in vectors.as_object().expect("an object") {
        if name.starts_with('_') {
            continue;
        }
        let path = support::vectors_dir().join(name);
        let out = kreader(&[
            "--json",
            "--key",
            &dek_hex(&vectors, name),
            path.to_str().unwrap(),
        ]);
        let mac_valid = v["mac_valid"].as_bool().expect("mac_valid");
        if out.status.success() != mac_valid {
            failures.push(format!(
                "{name}: mac_valid is {mac_valid}, but {}",
                show(&out)
            ));
            continue;
        }
        if !mac_valid {
            continue;
        }
        read += 1;
        let got: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{name}: kreader --json printed no JSON ({e}): {}",
                show(&out)
            )
        });
        let version: u64 = v["version"].as_str().unwrap().parse().unwrap();
        if got["version"].as_u64() != Some(version) {
            failures.push(format!("{name}: version {} ≠ {version}", got["version"]));
        }
        if got["keys"] != v["keys"] {
            failures.push(format!("{name}: keys {} ≠ {}", got["keys"], v["keys"]));
        }
        let values = v["values"].as_array().unwrap();
        let count = |s: &str| got[s].as_object().map_or(0, |m| m.len());
        if count("data") + count("stringData") != values.len() {
            failures.push(format!(
                "{name}: {} values read, {} recorded",
                count("data") + count("stringData"),
                values.len()
            ));
        }
        for rec in values {
            let (section, key) = (
                rec["section"].as_str().unwrap(),
                rec["key"].as_str().unwrap(),
            );
            if got[section][key] != rec["plaintext"] {
                failures.push(format!(
                    "{name}: {section}.{key} = {} ≠ {}",
                    got[section][key], rec["plaintext"]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(read >= 14, "only {read} vectors were read");
}

/// `token` with one bit flipped in its `field`-th dot-separated part.
fn flip_bit(token: &str, field: usize) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut raw = B64.decode(&parts[field]).expect("base64");
    raw[0] ^= 0x01;
    parts[field] = B64.encode(raw);
    parts.join(".")
}

/// `text` with the line that starts with `prefix` changed by `f` (applied to
/// the rest of the line).
fn edit_line(text: &str, prefix: &str, f: impl Fn(&str) -> String) -> String {
    let mut found = false;
    let out: Vec<String> = text
        .split('\n')
        .map(|l| match l.strip_prefix(prefix) {
            Some(rest) if !found => {
                found = true;
                format!("{prefix}{}", f(rest))
            }
            _ => l.to_owned(),
        })
        .collect();
    assert!(found, "no line starts with {prefix:?}");
    out.join("\n")
}

/// The rest of the line that starts with `prefix`.
fn line_value<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starts with {prefix:?}"))
}

/// Swaps the lines at `a` and `b` (whole lines, found by prefix).
fn swap_lines(text: &str, a: &str, b: &str) -> String {
    let mut lines: Vec<&str> = text.split('\n').collect();
    let i = lines.iter().position(|l| l.starts_with(a)).unwrap();
    let j = lines.iter().position(|l| l.starts_with(b)).unwrap();
    lines.swap(i, j);
    lines.join("\n")
}

/// Runs kreader on `text` written to a file; returns the output.
fn read_text(env: &TestEnv, name: &str, text: &str, dek: &str) -> Output {
    let path = env.write(name, text);
    kreader(&["--key", dek, path.to_str().unwrap()])
}

fn assert_rejected(what: &str, out: &Output, reason: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: {}", show(out));
    assert!(
        out.stdout.is_empty(),
        "{what}: printed something: {}",
        show(out)
    );
    assert!(
        stderr.contains(reason),
        "{what}: expected {reason:?} in {}",
        show(out)
    );
}

fn assert_accepted(what: &str, out: &Output) {
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("MAC OK"),
        "{what}: {}",
        show(out)
    );
}

const NO_DECRYPT: &str = "does not decrypt";
const BAD_MAC: &str = "the MAC does not verify";

#[test]
fn kreader_rejects_a_flipped_ciphertext_bit_and_every_other_tampering() {
    let vectors = vectors_json();
    let env = TestEnv::new();
    let name = "v3/v3-pgp-alice.enc.yaml";
    let dek = dek_hex(&vectors, name);
    let text = fs::read_to_string(support::vectors_dir().join(name)).unwrap();
    assert_accepted(
        "the untouched vector",
        &read_text(&env, "orig.yaml", &text, &dek),
    );

    let password = "  password: ";
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "a flipped ciphertext bit",
            edit_line(&text, password, |t| flip_bit(t, 0)),
            NO_DECRYPT,
        ),
        (
            "a flipped IV bit",
            edit_line(&text, password, |t| flip_bit(t, 1)),
            NO_DECRYPT,
        ),
        (
            "a flipped tag bit",
            edit_line(&text, password, |t| flip_bit(t, 2)),
            NO_DECRYPT,
        ),
        (
            "a flipped bit in the empty value's tag",
            edit_line(&text, "  empty: ", |t| flip_bit(t, 1)),
            NO_DECRYPT,
        ),
        (
            "a flipped MAC tag bit",
            edit_line(&text, "# kubesec:mac:", |t| flip_bit(t, 1)),
            BAD_MAC,
        ),
        (
            "a flipped MAC IV bit",
            edit_line(&text, "# kubesec:mac:", |t| flip_bit(t, 0)),
            BAD_MAC,
        ),
        (
            "two values swapped",
            {
                let (u, p) = (
                    line_value(&text, "  username: "),
                    line_value(&text, password),
                );
                let t = edit_line(&text, "  username: ", |_| p.to_owned());
                edit_line(&t, password, |_| u.to_owned())
            },
            NO_DECRYPT,
        ),
        (
            "a renamed key",
            text.replace("\n  username: ", "\n  usernamf: "),
            NO_DECRYPT,
        ),
        (
            "a deleted value line",
            text.replace(&format!("\n{password}{}", line_value(&text, password)), ""),
            BAD_MAC,
        ),
        (
            "a changed key id",
            text.replace("# kubesec:pgp:F4D4", "# kubesec:pgp:F4D5"),
            BAD_MAC,
        ),
        (
            "the MAC line removed",
            text.replace(
                &format!("\n# kubesec:mac:{}", line_value(&text, "# kubesec:mac:")),
                "",
            ),
            "no `# kubesec:mac:` line",
        ),
        (
            "the version lowered to 2 (no MAC)",
            text.replace("# kubesec:v:3", "# kubesec:v:2"),
            "carries no MAC",
        ),
        (
            "a clear value",
            edit_line(&text, password, |_| "czNjcjN0".to_owned()),
            "not an encrypted value",
        ),
    ];
    for (what, tampered, reason) in &cases {
        assert_ne!(tampered, &text, "{what}: the file did not change");
        assert_rejected(
            what,
            &read_text(&env, "tampered.yaml", tampered, &dek),
            reason,
        );
    }

    // The right file with another data key.
    let mut wrong = hex::decode(&dek).unwrap();
    wrong[31] ^= 0x01;
    assert_rejected(
        "another data key",
        &read_text(&env, "orig.yaml", &text, &hex::encode(wrong)),
        NO_DECRYPT,
    );

    // What the MAC does not cover, or covers in sorted order, may change.
    let reordered = swap_lines(&text, "  username: ", "  empty: ");
    assert_accepted(
        "data lines reordered",
        &read_text(&env, "r.yaml", &reordered, &dek),
    );
    let crlf = text.replace('\n', "\r\n");
    assert_accepted("CRLF line ends", &read_text(&env, "crlf.yaml", &crlf, &dek));
    let renamed = text.replace("  name: kubesec-vector", "  name: other");
    assert_ne!(renamed, text);
    assert_accepted(
        "metadata changed",
        &read_text(&env, "m.yaml", &renamed, &dek),
    );
}

#[test]
fn kreader_rejects_tampered_string_data() {
    let vectors = vectors_json();
    let env = TestEnv::new();
    let name = "v4/v4-create.enc.yaml";
    let dek = dek_hex(&vectors, name);
    let text = fs::read_to_string(support::vectors_dir().join(name)).unwrap();
    assert_accepted(
        "the untouched vector",
        &read_text(&env, "orig.yaml", &text, &dek),
    );
    let flipped = edit_line(&text, "  plain: ", |t| flip_bit(t, 0));
    assert_rejected(
        "a flipped stringData ciphertext bit",
        &read_text(&env, "t.yaml", &flipped, &dek),
        NO_DECRYPT,
    );
    // A renamed key changes its value's associated data.
    let moved = text.replace("\n  plain: ", "\n  zz: ");
    assert_rejected(
        "a renamed stringData key",
        &read_text(&env, "m.yaml", &moved, &dek),
        NO_DECRYPT,
    );
}

#[test]
fn kreader_orders_key_ids_like_kubesec() {
    let vectors = vectors_json();
    let env = TestEnv::new();

    // pgp sorts before aws: a footer written aws-first still verifies,
    // because kubesec's sort moves the pgp id first in the MAC.
    let name = "v3/v3-aws-then-pgp-mixed.enc.yaml";
    let text = fs::read_to_string(support::vectors_dir().join(name)).unwrap();
    let aws_first = swap_lines(&text, "# kubesec:pgp:", "# kubesec:aws:");
    assert_ne!(aws_first, text);
    assert_accepted(
        "aws line before the pgp line",
        &read_text(&env, "mixed.yaml", &aws_first, &dek_hex(&vectors, name)),
    );

    // Keys of one type keep their order: swapping Bob and Alice breaks it.
    let name = "v3/v3-pgp-bob-alice.enc.yaml";
    let text = fs::read_to_string(support::vectors_dir().join(name)).unwrap();
    let swapped = swap_lines(&text, "# kubesec:pgp:0E53A3F7", "# kubesec:pgp:F4D47A60");
    assert_rejected(
        "two pgp lines swapped",
        &read_text(&env, "pgp.yaml", &swapped, &dek_hex(&vectors, name)),
        BAD_MAC,
    );
}

#[test]
fn kreader_takes_the_data_key_from_a_file_and_reads_stdin() {
    let vectors = vectors_json();
    let env = TestEnv::new();
    let name = "v3/v3-pgp-alice.enc.yaml";
    let dek = dek_hex(&vectors, name);
    let path = support::vectors_dir().join(name);
    let expected = kreader(&["--key", &dek, path.to_str().unwrap()]);
    assert_accepted("--key", &expected);

    let hex_file = env.write("dek.hex", format!("{dek}\n"));
    let raw_file = env.write("dek.bin", hex::decode(&dek).unwrap());
    for key_file in [&hex_file, &raw_file] {
        let out = kreader(&[
            "--key-file",
            key_file.to_str().unwrap(),
            path.to_str().unwrap(),
        ]);
        assert_eq!(out.stdout, expected.stdout, "{}", show(&out));
    }

    let out = Command::new("python3")
        .arg(support::kreader())
        .args(["--key", &dek, "-"])
        .stdin(fs::File::open(&path).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.stdout, expected.stdout, "{}", show(&out));

    // A data key of the wrong length is a usage error of its own.
    let out = kreader(&["--key", &dek[..62], path.to_str().unwrap()]);
    assert_rejected("a short key", &out, "64 hex digits");
}
