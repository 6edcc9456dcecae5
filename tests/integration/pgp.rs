//! The PGP provider end to end, with the real `gpg` (2.2) in a private
//! `GNUPGHOME` per test: wrapping (armored, encrypted and signed), checking
//! the signature on unwrap, key resolution, and every refusal.
//!
//! Nothing is mocked. Wrapped data keys are checked with plain `gpg
//! --decrypt --status-fd`, never through ksec. Throwaway keys are ed25519
//! (sign, certify) with a cv25519 encryption subkey, which gpg generates in a
//! few milliseconds; Alice and Bob are the RSA test keys of the kubesec
//! vectors.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tempfile::TempDir;

use crate::support::{self, TestEnv, ok_stdout};

/// Alice's primary fingerprint (vectors `keys/alice.*`), RSA `[SC]` + `[E]` subkey.
pub(crate) const ALICE: &str = "F4D47A60826F85BF96ED33E3C2E1D6E0C9EFC029";
/// Alice's long key id: the signer of every PGP blob in the vectors.
pub(crate) const ALICE_KEYID: &str = "C2E1D6E0C9EFC029";
/// Bob's primary fingerprint (vectors `keys/bob.*`).
pub(crate) const BOB: &str = "0E53A3F7D865B817F37450F30CB01E36447DE26E";

const GPG_INSTALL: &str = "install GnuPG 2.2, e.g. `apt-get install -y gnupg`";

// ---------------------------------------------------------------------------
// A private gpg home

/// A private, short `GNUPGHOME` (0700) under /tmp, so that gpg-agent's
/// socket path stays within the length limit. Dropping it stops the agent
/// (and anything else gpgconf started) for that home.
pub(crate) struct Gpg {
    _dir: TempDir,
    home: PathBuf,
}

/// What plain `gpg --decrypt` made of a wrapped data key.
pub(crate) struct Decrypted {
    /// The plaintext (the raw data key).
    pub(crate) plain: Vec<u8>,
    /// The `[GNUPG:]` status lines, without the prefix.
    pub(crate) status: Vec<String>,
}

impl Decrypted {
    /// The primary fingerprint of a valid signature (`VALIDSIG`'s last
    /// field), if there is one.
    pub(crate) fn valid_signer(&self) -> Option<String> {
        self.status
            .iter()
            .find_map(|l| l.strip_prefix("VALIDSIG "))
            .map(|rest| rest.split(' ').next_back().unwrap_or_default().to_owned())
    }
}

impl Gpg {
    /// An empty keyring.
    pub(crate) fn new() -> Gpg {
        let dir = tempfile::Builder::new()
            .prefix("kg")
            .tempdir_in("/tmp")
            .expect("temp dir for GNUPGHOME");
        let home = dir.path().join("g");
        fs::create_dir(&home).unwrap();
        fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
        // No passphrase caching: a right passphrase must not make a later
        // wrong one work.
        fs::write(
            home.join("gpg-agent.conf"),
            "default-cache-ttl 0\nmax-cache-ttl 0\nallow-loopback-pinentry\n",
        )
        .unwrap();
        Gpg { _dir: dir, home }
    }

    /// A keyring with these files of the vectors' `keys/` imported, e.g.
    /// `["alice.sec.asc", "bob.pub.asc"]`.
    pub(crate) fn with_vector_keys(files: &[&str]) -> Gpg {
        let g = Gpg::new();
        for f in files {
            g.import(&support::vectors_dir().join("keys").join(f));
        }
        g
    }

    /// The `GNUPGHOME` path.
    pub(crate) fn home(&self) -> &Path {
        &self.home
    }

    /// `ksec` in `env` with this `GNUPGHOME` (and no way to reach AWS
    /// instance metadata, for the kubesec files that carry `aws` lines).
    pub(crate) fn ksec(&self, env: &TestEnv) -> assert_cmd::Command {
        let mut c = env.ksec();
        c.env("GNUPGHOME", &self.home)
            .env("AWS_EC2_METADATA_DISABLED", "true");
        c
    }

    /// Runs `gpg --batch --no-tty ARGS` with `input` on stdin.
    pub(crate) fn run(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = match Command::new("gpg")
            .env("GNUPGHOME", &self.home)
            .env("LC_ALL", "C")
            .args(["--batch", "--no-tty"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("`gpg` is not on PATH; the PGP tests need it ({GPG_INSTALL})")
            }
            Err(e) => panic!("cannot run gpg: {e}"),
        };
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().unwrap();
            let _ = stdin.write_all(input);
        }
        child.wait_with_output().unwrap()
    }

    /// Like [`Gpg::run`], asserting success.
    pub(crate) fn ok(&self, args: &[&str], input: &[u8]) -> Output {
        let out = self.run(args, input);
        assert!(
            out.status.success(),
            "gpg {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `gpg --import FILE`.
    pub(crate) fn import(&self, path: &Path) {
        self.ok(&["--import", path.to_str().unwrap()], b"");
    }

    /// The primary fingerprint of the one key matching `who`.
    pub(crate) fn fingerprint(&self, who: &str) -> String {
        let fprs = self.fingerprints(who);
        fprs.first()
            .unwrap_or_else(|| panic!("no key {who}"))
            .clone()
    }

    /// Every fingerprint (primary first, then subkeys) of the key matching `who`.
    pub(crate) fn fingerprints(&self, who: &str) -> Vec<String> {
        let out = self.ok(
            &["--with-colons", "--fixed-list-mode", "--list-keys", who],
            b"",
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("fpr:"))
            .map(|l| l.split(':').nth(9).unwrap().to_owned())
            .collect()
    }

    /// A new key without passphrase: ed25519 primary (sign, certify) and a
    /// cv25519 encryption subkey. Returns the primary fingerprint.
    pub(crate) fn gen_key(&self, uid: &str) -> String {
        self.gen_key_with(uid, "", &[])
    }

    /// A new key: ed25519 `[SC]` primary plus cv25519 `[E]` subkey, protected
    /// by `passphrase` (empty: none), made with `extra` gpg options (e.g.
    /// `--faked-system-time`).
    pub(crate) fn gen_key_with(&self, uid: &str, passphrase: &str, extra: &[&str]) -> String {
        let fpr = self.gen_primary(uid, passphrase, extra, "never");
        let mut args = vec!["--pinentry-mode", "loopback", "--passphrase", passphrase];
        args.extend_from_slice(extra);
        args.extend(["--quick-add-key", &fpr, "cv25519", "encr", "never"]);
        self.ok(&args, b"");
        fpr
    }

    /// A new key with only an ed25519 `[SC]` primary: it cannot encrypt.
    pub(crate) fn gen_sign_only(&self, uid: &str) -> String {
        self.gen_primary(uid, "", &[], "never")
    }

    fn gen_primary(&self, uid: &str, passphrase: &str, extra: &[&str], expire: &str) -> String {
        let mut args = vec!["--pinentry-mode", "loopback", "--passphrase", passphrase];
        args.extend_from_slice(extra);
        args.extend(["--quick-gen-key", uid, "ed25519", "sign,cert", expire]);
        let out = self.ok(&args, b"");
        let text = String::from_utf8_lossy(&out.stderr);
        // "revocation certificate stored as '.../openpgp-revocs.d/FPR.rev'"
        let fpr = text
            .split("openpgp-revocs.d/")
            .nth(1)
            .and_then(|s| s.get(..40))
            .unwrap_or_else(|| panic!("cannot find the new key's fingerprint in:\n{text}"))
            .to_owned();
        assert!(fpr.chars().all(|c| c.is_ascii_hexdigit()), "{fpr}");
        fpr
    }

    /// Revokes `fpr` by importing the revocation certificate gpg stored when
    /// it created the key (gpg prefixes its armor line with `:` so that it
    /// is not imported by accident).
    pub(crate) fn revoke(&self, fpr: &str) {
        let cert = self
            .home
            .join("openpgp-revocs.d")
            .join(format!("{fpr}.rev"));
        let text = fs::read_to_string(&cert).unwrap();
        let armed = text.replace(
            ":-----BEGIN PGP PUBLIC KEY BLOCK-----",
            "-----BEGIN PGP PUBLIC KEY BLOCK-----",
        );
        let path = self.home.join("revoke.asc");
        fs::write(&path, armed).unwrap();
        self.import(&path);
        let listing = self.ok(&["--with-colons", "--list-keys", fpr], b"");
        assert!(
            String::from_utf8_lossy(&listing.stdout)
                .lines()
                .any(|l| l.starts_with("pub:r:")),
            "key {fpr} is not revoked after importing its revocation certificate"
        );
    }

    /// Deletes the secret part of `fpr` (primary and subkeys), keeping the public key.
    pub(crate) fn delete_secret(&self, fpr: &str) {
        self.ok(&["--yes", "--delete-secret-keys", fpr], b"");
    }

    /// Plain `gpg --decrypt` of a wrapped data key, with its status lines.
    pub(crate) fn decrypt(&self, blob: &[u8]) -> Decrypted {
        let out = self.run(&["--status-fd", "2", "--decrypt"], blob);
        let status = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter_map(|l| l.strip_prefix("[GNUPG:] "))
            .map(str::to_owned)
            .collect();
        assert!(
            out.status.success(),
            "gpg --decrypt failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Decrypted {
            plain: out.stdout,
            status,
        }
    }

    /// Wraps `dek` as kubesec does: armored, encrypted to `recipient`, signed
    /// by gpg's default key.
    pub(crate) fn wrap_signed(&self, dek: &[u8], recipient: &str) -> Vec<u8> {
        let args = [
            "--armor",
            "--trust-model",
            "always",
            "--sign",
            "--encrypt",
            "--recipient",
            recipient,
        ];
        self.ok(&args, dek).stdout
    }

    /// Wraps `dek` encrypted to `recipient` but **not** signed.
    pub(crate) fn wrap_unsigned(&self, dek: &[u8], recipient: &str) -> Vec<u8> {
        let args = [
            "--armor",
            "--trust-model",
            "always",
            "--encrypt",
            "--recipient",
            recipient,
        ];
        self.ok(&args, dek).stdout
    }

    /// The data key of `encrypted` as lower-case hex, recovered with plain
    /// gpg from the key line of `fpr`.
    pub(crate) fn dek_hex(&self, encrypted: &str, fpr: &str) -> String {
        let blob = key_blob(encrypted, "pgp", fpr);
        let d = self.decrypt(&blob);
        assert_eq!(d.plain.len(), 32, "the wrapped data key is not 32 bytes");
        hex::encode(&d.plain)
    }
}

impl Gpg {
    /// Stops the gpg-agent (and any other gpg daemon) of this home.
    pub(crate) fn kill_agent(&self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", &self.home)
            .args(["--kill", "all"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        self.kill_agent();
    }
}

// ---------------------------------------------------------------------------
// Footers and results

/// The key lines of an encrypted manifest as (type, id, blob bytes), in file order.
pub(crate) fn key_lines(encrypted: &str) -> Vec<(String, String, Vec<u8>)> {
    encrypted
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("# kubesec:"))
        .filter(|rest| !rest.starts_with("v:") && !rest.starts_with("mac:"))
        .map(|rest| {
            let (kind, rest) = rest.split_once(':').unwrap();
            let (id, b64) = rest.rsplit_once(':').unwrap();
            let blob = B64
                .decode(b64)
                .unwrap_or_else(|e| panic!("key line blob of {kind}:{id} is not base64: {e}"));
            (kind.to_owned(), id.to_owned(), blob)
        })
        .collect()
}

/// `type:id` of every key line, in file order.
pub(crate) fn key_ids(encrypted: &str) -> Vec<String> {
    key_lines(encrypted)
        .into_iter()
        .map(|(k, id, _)| format!("{k}:{id}"))
        .collect()
}

/// The blob of the key line `kind:id`.
pub(crate) fn key_blob(encrypted: &str, kind: &str, id: &str) -> Vec<u8> {
    key_lines(encrypted)
        .into_iter()
        .find(|(k, i, _)| k == kind && i == id)
        .map(|(_, _, b)| b)
        .unwrap_or_else(|| panic!("no {kind}:{id} key line in:\n{encrypted}"))
}

/// Everything but the footer lines.
pub(crate) fn body(text: &str) -> String {
    text.split_inclusive('\n')
        .filter(|l| !l.starts_with("# kubesec:") && !l.starts_with("# ksec:bind:"))
        .collect()
}

/// Asserts a refusal: exit `code`, nothing on stdout, exactly one
/// `ksec: error:` line containing every needle, and nothing else on stderr
/// but hint lines (and `ksec: running` lines under `-v`). Returns the error line.
#[track_caller]
pub(crate) fn refusal(out: &Output, code: i32, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stderr:\n{stderr}");
    assert!(
        out.stdout.is_empty(),
        "a refusal printed to stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("ksec: error: "))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "exactly one error line expected:\n{stderr}"
    );
    for l in stderr.lines() {
        assert!(
            l.starts_with("ksec: error: ")
                || l.starts_with("  hint: ")
                || l.starts_with("ksec: running "),
            "unexpected stderr line {l:?} (gpg's own output must not leak):\n{stderr}"
        );
    }
    for n in needles {
        assert!(
            errors[0].to_lowercase().contains(&n.to_lowercase()),
            "the error line lacks {n:?}:\n{stderr}"
        );
    }
    errors[0].to_owned()
}

fn vector(rel: &str) -> PathBuf {
    support::vectors_dir().join(rel)
}

fn read_vector(rel: &str) -> String {
    let p = vector(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; the kubesec vectors belong in testdata/kubesec-vectors",
            p.display()
        )
    })
}

const SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: db
data:
  username: YWRtaW4=
  password: czNjcjN0LXBAc3N3MHJkIQ==
stringData:
  note: hello world
";

/// `ksec encrypt -k KEY…` of [`SECRET`] from stdin; returns stdout.
fn encrypt(gpg: &Gpg, env: &TestEnv, keys: &[&str]) -> String {
    let mut c = gpg.ksec(env);
    c.arg("encrypt");
    for k in keys {
        c.arg("-k").arg(k);
    }
    ok_stdout(&c.write_stdin(SECRET).output().unwrap())
}

/// `ksec decrypt` of `text` from stdin (`-q`: no kubectl advice on stderr,
/// which these tests read for gpg's messages).
fn decrypt(gpg: &Gpg, env: &TestEnv, text: &str, extra: &[&str]) -> Output {
    gpg.ksec(env)
        .args(["decrypt", "-q"])
        .args(extra)
        .write_stdin(text)
        .output()
        .unwrap()
}

/// The footer fingerprint that `--key pgp:SPEC` resolves to.
fn resolved(gpg: &Gpg, env: &TestEnv, spec: &str) -> String {
    let out = encrypt(gpg, env, &[&format!("pgp:{spec}")]);
    let ids = key_ids(&out);
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids[0].strip_prefix("pgp:").unwrap().to_owned()
}

// ---------------------------------------------------------------------------
// Wrapping

#[test]
fn pgp_wrap_is_armored_encrypted_and_signed_by_the_default_key() {
    let env = TestEnv::new();
    // Alice is the only secret key, so gpg's default signer; Bob only public.
    let gpg = Gpg::with_vector_keys(&["alice.sec.asc", "bob.pub.asc"]);
    let out = encrypt(&gpg, &env, &[&format!("pgp:{BOB}")]);
    let lines = key_lines(&out);
    assert_eq!(lines.len(), 1);
    let (kind, id, blob) = &lines[0];
    assert_eq!((kind.as_str(), id.as_str()), ("pgp", BOB));
    let armored = String::from_utf8(blob.clone()).expect("the blob is armored text");
    assert!(
        armored.starts_with("-----BEGIN PGP MESSAGE-----\n")
            && armored.trim_end().ends_with("-----END PGP MESSAGE-----"),
        "the footer blob must be base64 of the ASCII-armored message:\n{armored}"
    );
    // Encrypted to Bob: only Bob's keyring opens it, and it says who signed.
    let bob = Gpg::with_vector_keys(&["bob.sec.asc", "alice.pub.asc"]);
    let d = bob.decrypt(blob);
    assert_eq!(d.plain.len(), 32);
    assert!(
        d.status.iter().any(|l| l.starts_with("GOODSIG ")),
        "{:?}",
        d.status
    );
    assert_eq!(d.valid_signer().as_deref(), Some(ALICE), "{:?}", d.status);
    // And ksec in Bob's keyring opens the file.
    let clear = ok_stdout(&decrypt(&bob, &env, &out, &[]));
    assert!(clear.contains("username: YWRtaW4=") && clear.contains("note: hello world"));
}

#[test]
fn pgp_signer_flag_chooses_the_signing_key() {
    let env = TestEnv::new();
    let gpg = Gpg::with_vector_keys(&["alice.sec.asc", "bob.sec.asc"]);
    let out = ok_stdout(
        &gpg.ksec(&env)
            .args(["--pgp-signer", BOB, "encrypt", "-k"])
            .arg(format!("pgp:{ALICE}"))
            .write_stdin(SECRET)
            .output()
            .unwrap(),
    );
    let d = gpg.decrypt(&key_blob(&out, "pgp", ALICE));
    assert_eq!(d.valid_signer().as_deref(), Some(BOB), "{:?}", d.status);
    // Without the flag, gpg's default key (the first secret key, Alice) signs.
    let out = encrypt(&gpg, &env, &[&format!("pgp:{ALICE}")]);
    let d = gpg.decrypt(&key_blob(&out, "pgp", ALICE));
    assert_eq!(d.valid_signer().as_deref(), Some(ALICE), "{:?}", d.status);
}

#[test]
fn pgp_signer_without_a_secret_key_is_refused() {
    let env = TestEnv::new();
    let gpg = Gpg::with_vector_keys(&["alice.sec.asc", "bob.pub.asc"]);
    let out = gpg
        .ksec(&env)
        .args(["--pgp-signer", BOB, "encrypt", "-k"])
        .arg(format!("pgp:{ALICE}"))
        .write_stdin(SECRET)
        .output()
        .unwrap();
    refusal(&out, 6, &["--pgp-signer"]);
}

#[test]
fn pgp_wrap_needs_a_secret_key_to_sign_with() {
    let env = TestEnv::new();
    // Only public keys: the data key could be encrypted, but not signed.
    let gpg = Gpg::with_vector_keys(&["bob.pub.asc"]);
    let out = gpg
        .ksec(&env)
        .args(["encrypt", "-k"])
        .arg(format!("pgp:{BOB}"))
        .write_stdin(SECRET)
        .output()
        .unwrap();
    refusal(&out, 6, &[BOB, "sign", "no secret key", "--pgp-signer"]);
}

// ---------------------------------------------------------------------------
// Signatures on unwrap (kubesec issue #21)

/// Encrypted to Bob (and Alice), signed by Alice; Bob's keyring lacks
/// Alice's public key.
#[test]
fn pgp_unwrap_names_the_missing_signer_key_issue_21() {
    let env = TestEnv::new();
    let file = read_vector("v3/v3-pgp-bob-alice.enc.yaml");
    let bob = Gpg::with_vector_keys(&["bob.sec.asc"]);
    let out = decrypt(&bob, &env, &file, &[]);
    let err = refusal(
        &out,
        6,
        &[ALICE_KEYID, "gpg --import", "--pgp-allow-unsigned"],
    );
    assert!(
        err.contains(&format!("signed by key {ALICE_KEYID}")),
        "the error must name exactly the signer's key id:\n{err}"
    );

    // Opting in accepts it, with a warning on stderr.
    let out = decrypt(&bob, &env, &file, &["--pgp-allow-unsigned"]);
    let clear = ok_stdout(&out);
    assert_eq!(clear, read_vector("v3/v3-pgp-bob-alice.dec.yaml"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ksec: warning:") && stderr.contains(ALICE_KEYID),
        "--pgp-allow-unsigned must warn:\n{stderr}"
    );

    // After importing Alice's public key it works without the flag or a warning.
    bob.import(&vector("keys/alice.pub.asc"));
    let out = decrypt(&bob, &env, &file, &[]);
    assert_eq!(ok_stdout(&out), read_vector("v3/v3-pgp-bob-alice.dec.yaml"));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pgp_keyring_flag_supplies_the_signer_public_key() {
    let env = TestEnv::new();
    let bob = Gpg::with_vector_keys(&["bob.sec.asc"]);
    let ring = bob.home().join("extra.kbx");
    let ring_s = ring.to_str().unwrap();
    bob.ok(
        &[
            "--no-default-keyring",
            "--keyring",
            ring_s,
            "--import",
            vector("keys/alice.pub.asc").to_str().unwrap(),
        ],
        b"",
    );
    let out = bob
        .ksec(&env)
        .args(["--keyring", ring_s, "decrypt"])
        .arg(vector("v3/v3-pgp-bob-alice.enc.yaml"))
        .output()
        .unwrap();
    assert_eq!(ok_stdout(&out), read_vector("v3/v3-pgp-bob-alice.dec.yaml"));
}

#[test]
fn pgp_unsigned_wrapped_key_is_refused_unless_allowed() {
    let env = TestEnv::new();
    let gpg = Gpg::with_vector_keys(&["alice.sec.asc"]);
    let original = read_vector("v3/v3-pgp-alice.enc.yaml");
    let dek = hex::decode(gpg.dek_hex(&original, ALICE)).unwrap();
    // Same data key, wrapped without a signature. The MAC covers key ids,
    // not blobs, so only the signature check can notice.
    let unsigned = gpg.wrap_unsigned(&dek, ALICE);
    let old_line = original
        .lines()
        .find(|l| l.starts_with("# kubesec:pgp:"))
        .unwrap();
    let new_line = format!("# kubesec:pgp:{ALICE}:{}", B64.encode(&unsigned));
    let file = original.replace(old_line, &new_line);
    assert_ne!(file, original);

    refusal(
        &decrypt(&gpg, &env, &file, &[]),
        6,
        &[ALICE, "not signed", "--pgp-allow-unsigned"],
    );
    let out = decrypt(&gpg, &env, &file, &["--pgp-allow-unsigned"]);
    assert_eq!(ok_stdout(&out), read_vector("v3/v3-pgp-alice.dec.yaml"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ksec: warning:") && stderr.contains("not signed"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------
// Resolving key specs

#[test]
fn pgp_key_specs_resolve_to_the_primary_fingerprint() {
    let env = TestEnv::new();
    let gpg = Gpg::with_vector_keys(&["alice.sec.asc"]);
    let spaced: String = ALICE
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    let alice_fprs = gpg.fingerprints(ALICE);
    assert_eq!(
        alice_fprs.len(),
        2,
        "Alice has a primary key and one subkey"
    );
    let subkey = alice_fprs[1].clone();
    let uid = {
        let out = gpg.ok(&["--with-colons", "--list-keys", ALICE], b"");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with("uid:"))
            .map(|l| l.split(':').nth(9).unwrap().to_owned())
            .unwrap()
    };
    let email = uid
        .split_once('<')
        .and_then(|(_, r)| r.strip_suffix('>'))
        .unwrap_or_else(|| panic!("Alice's user id has no email: {uid}"))
        .to_owned();
    for spec in [
        ALICE.to_owned(),
        ALICE.to_lowercase(),
        spaced.clone(),
        spaced.to_lowercase(),
        ALICE_KEYID.to_owned(),
        ALICE_KEYID.to_lowercase(),
        format!("0x{ALICE_KEYID}"),
        email,
        uid,
        subkey.clone(),
        subkey[24..].to_owned(),
    ] {
        assert_eq!(resolved(&gpg, &env, &spec), ALICE, "pgp:{spec}");
    }
}

#[test]
fn pgp_ambiguous_user_id_is_refused() {
    let env = TestEnv::new();
    let gpg = Gpg::new();
    let a = gpg.gen_key("Carol <carol@example.test>");
    let b = gpg.gen_key("Carol Twin <carol@example.test>");
    let out = gpg
        .ksec(&env)
        .args(["encrypt", "-k", "pgp:carol@example.test"])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    refusal(&out, 2, &[&a, &b, "full fingerprint"]);
    // A bare name is not a substring search: it must be a whole user id.
    let out = gpg
        .ksec(&env)
        .args(["encrypt", "-k", "pgp:Carol"])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    refusal(&out, 2, &["no PGP key", "whole user id"]);
    // The full fingerprint settles it.
    assert_eq!(resolved(&gpg, &env, &b), b);
}

/// An email names exactly that address: `alice@…` must not pick up the key
/// of `malice@…` (gpg's default lookup is a substring match).
#[test]
fn pgp_email_spec_does_not_match_a_longer_address() {
    let env = TestEnv::new();
    let gpg = Gpg::new();
    let malice = gpg.gen_key("Malice <malice@example.test>");
    let out = gpg
        .ksec(&env)
        .args(["encrypt", "-k", "pgp:alice@example.test"])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains(&malice),
        "pgp:alice@example.test was resolved to Malice's key {malice}"
    );
    refusal(&out, 2, &["alice@example.test"]);
}

#[test]
fn pgp_key_not_found_is_a_usage_error() {
    let env = TestEnv::new();
    let gpg = Gpg::with_vector_keys(&["alice.sec.asc"]);
    let out = gpg
        .ksec(&env)
        .args(["encrypt", "-k"])
        .arg(format!("pgp:{BOB}"))
        .write_stdin(SECRET)
        .output()
        .unwrap();
    refusal(&out, 2, &[BOB, "gpg --import"]);
    let out = gpg
        .ksec(&env)
        .args(["encrypt", "-k", "pgp:nobody@example.test"])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    refusal(&out, 2, &["nobody@example.test"]);
}

#[test]
fn pgp_default_is_the_first_secret_key_that_can_encrypt() {
    let env = TestEnv::new();
    let gpg = Gpg::new();
    // The first secret key cannot encrypt, so `default` skips it.
    gpg.gen_sign_only("Signer <signer@example.test>");
    let dave = gpg.gen_key("Dave <dave@example.test>");
    assert_eq!(resolved(&gpg, &env, "default"), dave);
    let gpg = Gpg::with_vector_keys(&["alice.sec.asc", "bob.pub.asc"]);
    assert_eq!(resolved(&gpg, &env, "default"), ALICE);
}

#[test]
fn pgp_default_with_an_empty_keyring_is_refused() {
    let env = TestEnv::new();
    let gpg = Gpg::new();
    let out = gpg
        .ksec(&env)
        .args(["encrypt", "-k", "pgp:default"])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    refusal(&out, 6, &["pgp:default", "no secret key that can encrypt"]);
    // Public keys alone do not make a default.
    gpg.import(&vector("keys/bob.pub.asc"));
    let out = gpg
        .ksec(&env)
        .args(["encrypt", "-k", "pgp:default"])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    refusal(&out, 6, &["pgp:default", "no secret key that can encrypt"]);
}

// ---------------------------------------------------------------------------
// Key shapes and states

#[test]
fn pgp_signing_primary_with_encryption_subkey_works() {
    let env = TestEnv::new();
    let gpg = Gpg::new();
    let erin = gpg.gen_key("Erin <erin@example.test>");
    let fprs = gpg.fingerprints(&erin);
    assert_eq!(fprs.len(), 2, "[SC] primary + [E] subkey");
    let out = encrypt(&gpg, &env, &[&format!("pgp:{erin}")]);
    assert_eq!(key_ids(&out), vec![format!("pgp:{erin}")]);
    // gpg encrypted to the subkey; the decryption matches it to the primary.
    let d = gpg.decrypt(&key_blob(&out, "pgp", &erin));
    let subkey_id = &fprs[1][24..];
    assert!(
        d.status
            .iter()
            .any(|l| l.starts_with(&format!("ENC_TO {subkey_id}"))),
        "{:?}",
        d.status
    );
    let clear = ok_stdout(&decrypt(&gpg, &env, &out, &[]));
    assert!(clear.contains("password: czNjcjN0LXBAc3N3MHJkIQ=="));
    // The subkey's fingerprint names the same key.
    assert_eq!(resolved(&gpg, &env, &fprs[1]), erin);
}

#[test]
fn pgp_decrypt_with_only_secret_subkeys() {
    // A laptop that holds Alice's secret subkeys but not her primary secret key.
    let env = TestEnv::new();
    let full = Gpg::with_vector_keys(&["alice.sec.asc"]);
    let subkeys = full
        .ok(&["--armor", "--export-secret-subkeys", ALICE], b"")
        .stdout;
    let laptop = Gpg::new();
    let path = laptop.home().join("subkeys.asc");
    fs::write(&path, subkeys).unwrap();
    laptop.import(&path);
    // The primary secret key is a stub (`sec#`): only the subkey can decrypt.
    let listing = laptop.ok(&["--list-secret-keys"], b"").stdout;
    assert!(
        String::from_utf8_lossy(&listing).contains("sec#"),
        "expected a subkeys-only keyring:\n{}",
        String::from_utf8_lossy(&listing)
    );
    let out = laptop
        .ksec(&env)
        .arg("decrypt")
        .arg(vector("v3/v3-pgp-alice.enc.yaml"))
        .output()
        .unwrap();
    assert_eq!(ok_stdout(&out), read_vector("v3/v3-pgp-alice.dec.yaml"));
}

#[test]
fn pgp_sign_only_key_is_refused() {
    let env = TestEnv::new();
    let gpg = Gpg::new();
    let frank = gpg.gen_sign_only("Frank <frank@example.test>");
    let out = gpg
        .ksec(&env)
        .args(["encrypt", "-k"])
        .arg(format!("pgp:{frank}"))
        .write_stdin(SECRET)
        .output()
        .unwrap();
    refusal(&out, 2, &[&frank, "no valid encryption"]);
}

#[test]
fn pgp_expired_key_is_refused() {
    let env = TestEnv::new();
    let gpg = Gpg::new();
    // Made on 2020-01-01 with a one-day lifetime (primary and subkey).
    let faked = ["--faked-system-time", "20200101T000000"];
    let fpr = gpg.gen_primary("Old <old@example.test>", "", &faked, "1d");
    let mut args = vec!["--pinentry-mode", "loopback", "--passphrase", ""];
    args.extend_from_slice(&faked);
    args.extend(["--quick-add-key", &fpr, "cv25519", "encr", "1d"]);
    gpg.ok(&args, b"");
    let listing = gpg.ok(&["--with-colons", "--list-keys", &fpr], b"").stdout;
    assert!(
        String::from_utf8_lossy(&listing).contains("\npub:e:"),
        "key not expired"
    );
    let out = gpg
        .ksec(&env)
        .args(["encrypt", "-k"])
        .arg(format!("pgp:{fpr}"))
        .write_stdin(SECRET)
        .output()
        .unwrap();
    refusal(&out, 2, &[&fpr, "expired"]);
}

#[test]
fn pgp_revoked_key_is_refused() {
    let env = TestEnv::new();
    let gpg = Gpg::new();
    let grace = gpg.gen_key("Grace <grace@example.test>");
    // Usable before the revocation…
    encrypt(&gpg, &env, &[&format!("pgp:{grace}")]);
    gpg.revoke(&grace);
    // …refused after it, by fingerprint and by email.
    for spec in [format!("pgp:{grace}"), "pgp:grace@example.test".to_owned()] {
        let out = gpg
            .ksec(&env)
            .args(["encrypt", "-k", &spec])
            .write_stdin(SECRET)
            .output()
            .unwrap();
        refusal(&out, 2, &[&grace, "revoked"]);
    }
}

// ---------------------------------------------------------------------------
// Unwrapping: which lines are tried

#[test]
fn pgp_only_lines_with_a_local_secret_key_are_tried() {
    let env = TestEnv::new();
    // Bob's line comes first in this file; only Alice's secret key is here.
    let gpg = Gpg::with_vector_keys(&["alice.sec.asc"]);
    let out = gpg
        .ksec(&env)
        .args(["-v", "decrypt"])
        .arg(vector("v3/v3-pgp-bob-alice.enc.yaml"))
        .output()
        .unwrap();
    assert_eq!(ok_stdout(&out), read_vector("v3/v3-pgp-bob-alice.dec.yaml"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let decrypts = stderr
        .lines()
        .filter(|l| l.starts_with("ksec: running") && l.contains("--decrypt"))
        .count();
    assert_eq!(
        decrypts, 1,
        "only Alice's line may reach gpg --decrypt:\n{stderr}"
    );
}

#[test]
fn pgp_no_secret_key_is_refused() {
    let env = TestEnv::new();
    let gpg = Gpg::with_vector_keys(&["bob.sec.asc", "alice.pub.asc"]);
    let out = gpg
        .ksec(&env)
        .arg("decrypt")
        .arg(vector("v3/v3-pgp-alice.enc.yaml"))
        .output()
        .unwrap();
    refusal(&out, 6, &[&format!("pgp:{ALICE}"), "no secret key"]);
}

// ---------------------------------------------------------------------------
// gpg missing

#[test]
fn pgp_gpg_missing_says_how_to_install() {
    let env = TestEnv::new();
    let gpg = Gpg::with_vector_keys(&["alice.sec.asc"]);
    let key = format!("pgp:{ALICE}");
    let enc = vector("v3/v3-pgp-alice.enc.yaml");

    // KSEC_GPG names a binary that does not exist.
    let out = gpg
        .ksec(&env)
        .env("KSEC_GPG", "/nonexistent/gpg")
        .args(["encrypt", "-k", &key])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    refusal(&out, 6, &["/nonexistent/gpg", "KSEC_GPG"]);
    let out = gpg
        .ksec(&env)
        .env("KSEC_GPG", "/nonexistent/gpg")
        .arg("decrypt")
        .arg(&enc)
        .output()
        .unwrap();
    refusal(&out, 6, &["/nonexistent/gpg", "KSEC_GPG"]);

    // No gpg on PATH at all.
    let empty = tempfile::tempdir().unwrap();
    let out = gpg
        .ksec(&env)
        .env("PATH", empty.path())
        .args(["encrypt", "-k", &key])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    refusal(
        &out,
        6,
        &["gpg is not installed", "install GnuPG", "KSEC_GPG"],
    );
    let out = gpg
        .ksec(&env)
        .env("PATH", empty.path())
        .arg("decrypt")
        .arg(&enc)
        .output()
        .unwrap();
    refusal(&out, 6, &["gpg is not installed", "KSEC_GPG"]);

    // KSEC_GPG pointing at the real gpg works even without PATH.
    let real = which_gpg();
    let out = gpg
        .ksec(&env)
        .env("PATH", empty.path())
        .env("KSEC_GPG", &real)
        .arg("decrypt")
        .arg(&enc)
        .output()
        .unwrap();
    assert_eq!(ok_stdout(&out), read_vector("v3/v3-pgp-alice.dec.yaml"));
}

fn which_gpg() -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("gpg"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("gpg is not on PATH ({GPG_INSTALL})"))
}

// ---------------------------------------------------------------------------
// Passphrases and verbosity

const PASSPHRASE: &str = "tr0ub4dor&3 correct horse";

#[test]
fn pgp_passphrase_file_wrong_then_right() {
    let env = TestEnv::new();
    let gpg = Gpg::new();
    let mut args = vec!["--pinentry-mode", "loopback", "--passphrase", PASSPHRASE];
    args.extend([
        "--quick-gen-key",
        "Heidi <heidi@example.test>",
        "ed25519",
        "sign,cert",
        "never",
    ]);
    gpg.ok(&args, b"");
    let heidi = gpg.fingerprint("heidi@example.test");
    gpg.ok(
        &[
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            PASSPHRASE,
            "--quick-add-key",
            &heidi,
            "cv25519",
            "encr",
            "never",
        ],
        b"",
    );
    let wrong = env.write("wrong.txt", "not the passphrase\n");
    let right = env.write("right.txt", format!("{PASSPHRASE}\n"));
    let key = format!("pgp:{heidi}");

    // Encrypting signs with Heidi's key, which needs her passphrase.
    let out = gpg
        .ksec(&env)
        .arg("--passphrase-file")
        .arg(&wrong)
        .args(["encrypt", "-k", &key])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    refusal(&out, 6, &[&heidi, "passphrase"]);

    let out = gpg
        .ksec(&env)
        .arg("-v")
        .arg("--passphrase-file")
        .arg(&right)
        .args(["encrypt", "-k", &key])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    let encrypted = ok_stdout(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--passphrase-file"), "{stderr}");
    assert!(
        !stderr.contains(PASSPHRASE) && !stderr.contains("tr0ub4dor"),
        "the passphrase reached stderr:\n{stderr}"
    );
    assert_eq!(key_ids(&encrypted), vec![key.clone()]);

    // Decrypting needs it too (no passphrase may linger in the agent).
    gpg.kill_agent();
    let out = gpg
        .ksec(&env)
        .arg("--passphrase-file")
        .arg(&wrong)
        .arg("decrypt")
        .write_stdin(encrypted.as_str())
        .output()
        .unwrap();
    refusal(&out, 6, &[&heidi, "passphrase"]);

    let out = gpg
        .ksec(&env)
        .arg("-v")
        .arg("--passphrase-file")
        .arg(&right)
        .arg("decrypt")
        .write_stdin(encrypted.as_str())
        .output()
        .unwrap();
    assert!(ok_stdout(&out).contains("username: YWRtaW4="));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--passphrase-file"), "{stderr}");
    assert!(
        !stderr.contains("tr0ub4dor"),
        "the passphrase reached stderr:\n{stderr}"
    );
}

#[test]
fn pgp_verbose_shows_gpg_command_lines_but_no_key_material() {
    let env = TestEnv::new();
    let gpg = Gpg::with_vector_keys(&["alice.sec.asc"]);
    let out = gpg
        .ksec(&env)
        .args(["-v", "encrypt", "-k"])
        .arg(format!("pgp:{ALICE}"))
        .write_stdin(SECRET)
        .output()
        .unwrap();
    let encrypted = ok_stdout(&out);
    let enc_err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        enc_err.lines().any(|l| l.starts_with("ksec: running ")
            && l.contains("gpg")
            && l.contains("--sign")
            && l.contains("--encrypt")
            && l.contains(&format!("--recipient {ALICE}"))),
        "-v must show the gpg command line:\n{enc_err}"
    );
    let out = gpg
        .ksec(&env)
        .args(["-v", "decrypt", "-q"])
        .write_stdin(encrypted.as_str())
        .output()
        .unwrap();
    ok_stdout(&out);
    let dec_err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        dec_err
            .lines()
            .any(|l| l.starts_with("ksec: running ") && l.contains("--decrypt")),
        "{dec_err}"
    );
    let dek_hex = gpg.dek_hex(&encrypted, ALICE);
    let dek = hex::decode(&dek_hex).unwrap();
    for stderr in [&enc_err, &dec_err] {
        for needle in [
            dek_hex.clone(),
            dek_hex.to_uppercase(),
            B64.encode(&dek),
            B64.encode(&dek).trim_end_matches('=').to_owned(),
        ] {
            assert!(
                !stderr.contains(&needle),
                "key material on stderr:\n{stderr}"
            );
        }
        // Neither clear values nor gpg's own chatter.
        assert!(
            !stderr.contains("YWRtaW4=") && !stderr.contains("hello world"),
            "{stderr}"
        );
        assert!(stderr.lines().all(|l| l.starts_with("ksec: ")), "{stderr}");
    }
}

/// gpg failures name their real cause and the fix, never "no secret key"
/// when the key is there (issue 11): a passphrase-protected key without a
/// way to enter the passphrase, a `--passphrase-file` that cannot be read,
/// and a gpg that cannot be run.
#[test]
fn pgp_failures_name_their_real_cause() {
    let env = TestEnv::new();
    let gpg = Gpg::new();
    let ivy = gpg.gen_key_with("Ivy <ivy@example.test>", PASSPHRASE, &[]);
    let right = env.write("right.txt", format!("{PASSPHRASE}\n"));
    let key = format!("pgp:{ivy}");
    let out = gpg
        .ksec(&env)
        .arg("--passphrase-file")
        .arg(&right)
        .args(["encrypt", "-k", &key])
        .write_stdin(SECRET)
        .output()
        .unwrap();
    let encrypted = ok_stdout(&out);
    gpg.kill_agent();

    // No passphrase source: gpg cannot ask in batch mode.
    let out = decrypt(&gpg, &env, &encrypted, &[]);
    let line = refusal(&out, 6, &[&ivy, "pinentry", "--passphrase-file"]);
    assert!(!line.contains("no secret key"), "{line}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("import the secret key"), "{stderr}");

    // A passphrase file that is not there.
    for args in [vec!["decrypt"], vec!["encrypt", "-k", &key]] {
        let out = gpg
            .ksec(&env)
            .args(["--passphrase-file", "/nonexistent/passphrase"])
            .args(&args)
            .write_stdin(if args[0] == "decrypt" {
                encrypted.as_str()
            } else {
                SECRET
            })
            .output()
            .unwrap();
        let line = refusal(
            &out,
            6,
            &["--passphrase-file /nonexistent/passphrase: cannot read: no such file"],
        );
        assert!(!line.contains("no secret key"), "{line}");
    }

    // A gpg that exists but cannot be run.
    let notexec = env.write("gpg-not-executable", "#!/bin/sh\n");
    let out = gpg
        .ksec(&env)
        .env("KSEC_GPG", &notexec)
        .arg("decrypt")
        .write_stdin(encrypted.as_str())
        .output()
        .unwrap();
    refusal(&out, 6, &["cannot run", "permission denied", "KSEC_GPG"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("import the secret key"), "{stderr}");
}
