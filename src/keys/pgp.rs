//! OpenPGP keys through the `gpg` binary, wrapped exactly as kubesec does.
//!
//! Shelling out (rather than linking an OpenPGP library) gives us gpg-agent,
//! pinentry and smartcards for free, and byte-for-byte kubesec behaviour:
//! the data key is encrypted to the key **and signed** (by gpg's default key
//! or `--pgp-signer`), ASCII-armored, and the armored text is what the footer
//! line carries (base64-encoded once more).
//!
//! Rules: argument vectors, never a shell; the data key passes through
//! stdin/stdout, never a file; the outcome is read from `--status-fd`, not
//! from gpg's exit code or prose; passphrases only via `--passphrase-file`
//! with loopback pinentry. `GNUPGHOME` is honoured because gpg reads it.

use std::cell::OnceCell;
use std::collections::HashSet;
use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use zeroize::Zeroizing;

use super::{KeyError, KeyType, Provider, Secret, UnwrapRequest, WrapRequest};
use crate::report::Reporter;

/// Environment variable naming the gpg binary.
pub const ENV_GPG: &str = "KSEC_GPG";

/// How ksec runs gpg.
#[derive(Debug, Clone, Default)]
pub struct PgpOptions {
    /// Sign wrapped data keys with this key instead of gpg's default.
    pub signer: Option<String>,
    /// An extra public keyring file (`gpg --keyring`).
    pub keyring: Option<PathBuf>,
    /// Read the passphrase from this file (loopback pinentry).
    pub passphrase_file: Option<PathBuf>,
    /// Accept data keys whose signature is missing or cannot be verified.
    pub allow_unsigned: bool,
}

/// The PGP provider.
pub struct PgpProvider {
    options: PgpOptions,
    reporter: std::rc::Rc<dyn Reporter>,
    binary: OnceCell<Result<OsString, String>>,
    /// Fingerprints (primary and subkeys) with a secret key here.
    secret_fprs: OnceCell<Result<HashSet<String>, KeyError>>,
    warned_unsigned: std::cell::Cell<bool>,
}

/// What gpg said: its status channel, and its prose for messages.
#[derive(Debug, Default)]
struct Status {
    lines: Vec<String>,
    prose: Vec<String>,
}

/// What went wrong in gpg, as far as its status channel tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trouble {
    BadPassphrase,
    Pinentry,
    NoSecretKey,
    Other,
}

/// libgpg-error codes that show up in `ERROR`/`FAILURE` status lines.
const GPG_ERR_BAD_PASSPHRASE: u32 = 11;
const GPG_ERR_NO_SECKEY: u32 = 17;
const GPG_ERR_NO_PIN_ENTRY: u32 = 85;
const GPG_ERR_PIN_ENTRY: u32 = 86;
const GPG_ERR_CANCELED: u32 = 99;

impl Status {
    fn has(&self, keyword: &str) -> bool {
        self.lines
            .iter()
            .any(|l| l == keyword || l.starts_with(&format!("{keyword} ")))
    }

    fn args(&self, keyword: &str) -> Option<Vec<&str>> {
        let prefix = format!("{keyword} ");
        self.lines
            .iter()
            .find(|l| l.starts_with(&prefix) || *l == keyword)
            .map(|l| l.split(' ').skip(1).collect())
    }

    /// Error codes of `ERROR <where> <code>` and `FAILURE <where> <code>`
    /// lines (gpg 2.2 reports a bad passphrase in loopback mode only this way).
    fn codes(&self) -> Vec<u32> {
        self.lines
            .iter()
            .filter(|l| l.starts_with("ERROR ") || l.starts_with("FAILURE "))
            .filter_map(|l| l.split(' ').nth(2)?.parse::<u32>().ok())
            .map(|c| c & 0xFFFF)
            .collect()
    }

    fn trouble(&self) -> Trouble {
        let codes = self.codes();
        let prose = |needle: &str| self.prose.iter().any(|p| p.contains(needle));
        if self.has("BAD_PASSPHRASE")
            || self.has("MISSING_PASSPHRASE")
            || codes.contains(&GPG_ERR_BAD_PASSPHRASE)
            || prose("Bad passphrase")
        {
            Trouble::BadPassphrase
        } else if codes.iter().any(|c| {
            matches!(
                *c,
                GPG_ERR_NO_PIN_ENTRY | GPG_ERR_PIN_ENTRY | GPG_ERR_CANCELED
            )
        }) || prose("Inappropriate ioctl")
            || prose("pinentry")
        {
            Trouble::Pinentry
        } else if self.has("NO_SECKEY") || codes.contains(&GPG_ERR_NO_SECKEY) {
            Trouble::NoSecretKey
        } else {
            Trouble::Other
        }
    }

    /// gpg's own reason, for messages: its most specific line of prose.
    fn reason(&self) -> String {
        const SPECIFIC: [&str; 8] = [
            "Bad passphrase",
            "Inappropriate ioctl",
            "No pinentry",
            "Operation cancelled",
            "expired",
            "revoked",
            "unusable",
            "No secret key",
        ];
        SPECIFIC
            .iter()
            .find_map(|n| self.prose.iter().find(|p| p.contains(n)))
            .or_else(|| self.prose.iter().find(|p| p.contains("failed")))
            .or_else(|| self.prose.last())
            .cloned()
            .unwrap_or_else(|| "gpg gave no reason".into())
    }
}

/// Normalises what a user typed: hex fingerprints and key ids without spaces
/// or `0x`, upper case; anything else (user id, email) as is.
fn normalise(id: &str) -> String {
    let compact: String = id.chars().filter(|c| !c.is_whitespace()).collect();
    let hex = compact.strip_prefix("0x").unwrap_or(&compact);
    if matches!(hex.len(), 8 | 16 | 40 | 64) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        hex.to_ascii_uppercase()
    } else {
        id.trim().to_owned()
    }
}

/// The gpg search pattern that matches `who` exactly: hex ids as they are,
/// an email as `<email>`, a full user id as `=uid`. gpg's plain patterns are
/// substrings (`alice@example.test` would also find `malice@example.test`),
/// which could silently encrypt to the wrong person.
fn exact(who: &str) -> String {
    if who.chars().all(|c| c.is_ascii_hexdigit()) {
        who.to_owned()
    } else if who.contains('@') && !who.contains(['<', ' ']) {
        format!("<{who}>")
    } else {
        format!("={who}")
    }
}

impl PgpProvider {
    /// A provider with these options; gpg is located on first use. Its
    /// command lines (with `-v`) and warnings go to `reporter`.
    pub fn new(options: PgpOptions, reporter: std::rc::Rc<dyn Reporter>) -> Self {
        PgpProvider {
            options,
            reporter,
            binary: OnceCell::new(),
            secret_fprs: OnceCell::new(),
            warned_unsigned: std::cell::Cell::new(false),
        }
    }

    fn binary(&self) -> Result<&OsString, KeyError> {
        // A passphrase file that cannot be read makes gpg fail in ways it
        // reports as "no secret key"; say what is really wrong instead.
        if let Some(p) = &self.options.passphrase_file
            && let Err(e) = std::fs::File::open(p)
        {
            return Err(KeyError::Unavailable(format!(
                "--passphrase-file {}: cannot read: {}",
                p.display(),
                crate::io::io_reason(&e)
            )));
        }
        self.binary
            .get_or_init(|| {
                if let Some(b) = std::env::var_os(ENV_GPG).filter(|b| !b.is_empty()) {
                    return Ok(b);
                }
                for name in ["gpg", "gpg2"] {
                    if which(name) {
                        return Ok(name.into());
                    }
                }
                Err(format!(
                    "gpg is not installed (install GnuPG, e.g. `apt-get install gnupg` or `brew install gnupg`, or point {ENV_GPG} at the gpg binary)"
                ))
            })
            .as_ref()
            .map_err(|m| KeyError::Unavailable(m.clone()))
    }

    /// Runs gpg with `args` (after the common ones), `input` on stdin.
    /// Returns stdout and the parsed status channel.
    fn run(
        &self,
        args: &[&str],
        input: &[u8],
    ) -> Result<(Zeroizing<Vec<u8>>, Status, bool), KeyError> {
        let bin = self.binary()?;
        let mut argv: Vec<OsString> = vec![
            "--batch".into(),
            "--no-tty".into(),
            "--status-fd".into(),
            "2".into(),
        ];
        if let Some(k) = &self.options.keyring {
            argv.push("--keyring".into());
            argv.push(k.into());
        }
        if let Some(p) = &self.options.passphrase_file {
            argv.extend([
                "--pinentry-mode".into(),
                "loopback".into(),
                "--passphrase-file".into(),
                p.into(),
            ]);
        }
        argv.extend(args.iter().map(OsString::from));
        if self.reporter.tracing() {
            let shown: Vec<String> = argv
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            self.reporter.trace(&format!(
                "running {} {}",
                bin.to_string_lossy(),
                shown.join(" ")
            ));
        }
        let mut child = Command::new(bin)
            .args(&argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                KeyError::Unavailable(format!(
                    "cannot run {}: {} (point {ENV_GPG} at the gpg binary)",
                    bin.to_string_lossy(),
                    crate::io::io_reason(&e)
                ))
            })?;
        {
            let mut stdin = child.stdin.take().expect("piped stdin");
            // A gpg that exits early closes the pipe; its status says why.
            let _ = stdin.write_all(input);
        }
        let out = child
            .wait_with_output()
            .map_err(|e| KeyError::Failed(format!("gpg failed: {}", crate::io::io_reason(&e))))?;
        let mut status = Status::default();
        for line in String::from_utf8_lossy(&out.stderr).lines() {
            if let Some(s) = line.strip_prefix("[GNUPG:] ") {
                status.lines.push(s.to_owned());
            } else if let Some(prose) = line.strip_prefix("gpg: ") {
                let prose = prose.trim();
                if !prose.is_empty() && !prose.starts_with("WARNING: This key is not certified") {
                    status.prose.push(prose.to_owned());
                }
            }
        }
        Ok((Zeroizing::new(out.stdout), status, out.status.success()))
    }

    /// Looks a key up in the public keyring.
    fn lookup(&self, who: &str) -> Result<Vec<Listed>, KeyError> {
        let (out, status, _) = self.run(
            &[
                "--with-colons",
                "--fixed-list-mode",
                "--list-keys",
                "--",
                who,
            ],
            b"",
        )?;
        let keys = parse_listing(&String::from_utf8_lossy(&out), "pub");
        if keys.is_empty()
            && !status.prose.is_empty()
            && !status.prose.iter().any(|r| r.contains("No public key"))
        {
            // Something other than "not found" went wrong (bad keyring file, agent, …).
            return Err(KeyError::Failed(format!(
                "gpg cannot list keys: {}",
                status.reason()
            )));
        }
        Ok(keys)
    }

    /// gpg's default secret key: the first one that can encrypt.
    fn default_key(&self) -> Result<String, KeyError> {
        let (out, _, _) = self.run(
            &["--with-colons", "--fixed-list-mode", "--list-secret-keys"],
            b"",
        )?;
        parse_listing(&String::from_utf8_lossy(&out), "sec")
            .into_iter()
            .find(|k| k.can_encrypt && k.usable())
            .map(|k| k.fingerprint)
            .ok_or_else(|| {
                KeyError::Unavailable(
                    "pgp:default: gpg has no secret key that can encrypt (create one with `gpg --quick-gen-key`, or name a key with pgp:FINGERPRINT)".into(),
                )
            })
    }

    fn secret_fingerprints(&self) -> Result<&HashSet<String>, KeyError> {
        self.secret_fprs
            .get_or_init(|| {
                let (out, _, _) = self.run(
                    &["--with-colons", "--fixed-list-mode", "--list-secret-keys"],
                    b"",
                )?;
                Ok(String::from_utf8_lossy(&out)
                    .lines()
                    .filter(|l| l.starts_with("fpr:"))
                    .filter_map(|l| l.split(':').nth(9).map(str::to_owned))
                    .collect())
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// A primary key from `gpg --with-colons` output.
#[derive(Debug, Clone)]
struct Listed {
    fingerprint: String,
    /// The key as a whole can encrypt (capital `E`: some valid subkey can).
    can_encrypt: bool,
    /// gpg's validity flag (`e` expired, `r` revoked, `d` disabled, `i` invalid).
    validity: char,
}

impl Listed {
    fn usable(&self) -> bool {
        !matches!(self.validity, 'e' | 'r' | 'd' | 'i')
    }
}

/// Primary keys of a colon listing: each `pub`/`sec` record and the `fpr`
/// record right after it.
fn parse_listing(text: &str, record: &str) -> Vec<Listed> {
    let mut keys = Vec::new();
    let mut pending: Option<(bool, char)> = None;
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.first() == Some(&record) {
            let validity = f.get(1).and_then(|v| v.chars().next()).unwrap_or('-');
            pending = Some((f.get(11).is_some_and(|c| c.contains('E')), validity));
        } else if f.first() == Some(&"fpr")
            && let Some((can_encrypt, validity)) = pending.take()
        {
            keys.push(Listed {
                fingerprint: f.get(9).copied().unwrap_or("").to_owned(),
                can_encrypt,
                validity,
            });
        }
    }
    keys
}

fn which(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
}

/// A readable reason for a failed encryption, from gpg's status lines.
fn encrypt_failure(status: &Status, fpr: &str) -> KeyError {
    if let Some(a) = status.args("INV_RECP") {
        let why = match a.first().copied() {
            Some("1") => "not found",
            Some("2") => "ambiguous",
            Some("3") => "cannot encrypt (wrong key usage)",
            Some("4") => "revoked",
            Some("5") => "expired",
            Some("10") => "not trusted",
            _ => "not usable",
        };
        return KeyError::Failed(format!(
            "gpg cannot encrypt to {fpr}: key {why} ({})",
            status.reason()
        ));
    }
    if let Some(a) = status.args("INV_SGNR") {
        let who = a.get(1).copied().unwrap_or("the signing key");
        return KeyError::Failed(format!(
            "gpg cannot sign with {who} ({}); name another with --pgp-signer",
            status.reason()
        ));
    }
    if status.has("NO_SGNR")
        || status
            .prose
            .iter()
            .any(|r| r.contains("no default secret key"))
    {
        return KeyError::Unavailable(format!(
            "the wrapped data key must be signed, but gpg has no secret key to sign with ({}); import or create one, or name it with --pgp-signer",
            status.reason()
        ));
    }
    match status.trouble() {
        Trouble::BadPassphrase => {
            return KeyError::Failed(format!(
                "bad or missing passphrase for the signing key ({}); use --passphrase-file or a running gpg-agent",
                status.reason()
            ));
        }
        Trouble::Pinentry => {
            return KeyError::Failed(format!(
                "gpg-agent/pinentry failed ({}); use --passphrase-file or unlock the key in gpg-agent first",
                status.reason()
            ));
        }
        Trouble::NoSecretKey => {
            return KeyError::Unavailable(format!(
                "the wrapped data key must be signed, but gpg has no usable secret key to sign with ({}); import or create one, or name it with --pgp-signer",
                status.reason()
            ));
        }
        Trouble::Other => {}
    }
    KeyError::Failed(format!(
        "gpg failed to encrypt to {fpr}: {}",
        status.reason()
    ))
}

impl Provider for PgpProvider {
    fn kind(&self) -> KeyType {
        KeyType::Pgp
    }

    fn resolve(&self, id: &str) -> Result<String, KeyError> {
        if id == "default" {
            return self.default_key();
        }
        let who = normalise(id);
        let keys = self.lookup(&exact(&who))?;
        let Listed {
            fingerprint: fpr,
            can_encrypt,
            validity,
        } = match keys.as_slice() {
            [] => {
                return Err(KeyError::InvalidId(format!(
                    "no PGP key `{who}` in the keyring (import it with `gpg --import`; name keys by fingerprint, key id, email, or the whole user id)"
                )));
            }
            [one] => one.clone(),
            many => {
                let list: Vec<&str> = many.iter().map(|k| k.fingerprint.as_str()).collect();
                return Err(KeyError::InvalidId(format!(
                    "`{who}` matches {} PGP keys ({}); give the full fingerprint",
                    many.len(),
                    list.join(", ")
                )));
            }
        };
        match validity {
            'r' => return Err(KeyError::InvalidId(format!("PGP key {fpr} is revoked"))),
            'e' => return Err(KeyError::InvalidId(format!("PGP key {fpr} has expired"))),
            'd' | 'i' => {
                return Err(KeyError::InvalidId(format!(
                    "PGP key {fpr} is disabled or invalid"
                )));
            }
            _ => {}
        }
        if !can_encrypt {
            return Err(KeyError::InvalidId(format!(
                "PGP key {fpr} has no valid encryption (sub)key"
            )));
        }
        Ok(fpr)
    }

    fn wrap(&self, request: &WrapRequest<'_>) -> Result<Vec<u8>, KeyError> {
        let fpr = request.id;
        let signed = request.params.pgp_signed;
        let mut args = vec!["--armor", "--trust-model", "always"];
        if signed {
            args.push("--sign");
        }
        args.extend(["--encrypt", "--recipient", fpr]);
        if let (true, Some(s)) = (signed, &self.options.signer) {
            args.extend(["--local-user", s.as_str()]);
        }
        let (out, status, _) = self.run(&args, request.secret)?;
        if !status.has("END_ENCRYPTION") || (signed && !status.has("SIG_CREATED")) || out.is_empty()
        {
            return Err(encrypt_failure(&status, fpr));
        }
        Ok(out.to_vec())
    }

    fn unwrap(&self, request: &UnwrapRequest<'_>) -> Result<Secret, KeyError> {
        let (fpr, blob) = (request.id, request.blob);
        if !self.secret_fingerprints()?.contains(fpr) {
            return Err(KeyError::Unavailable(
                "no secret key for it in the gpg keyring".into(),
            ));
        }
        let (out, status, _) = self.run(&["--decrypt"], blob)?;
        if !status.has("DECRYPTION_OKAY") {
            let reason = match status.trouble() {
                Trouble::BadPassphrase => format!(
                    "bad or missing passphrase ({}); use --passphrase-file or a running gpg-agent",
                    status.reason()
                ),
                Trouble::Pinentry => format!(
                    "gpg-agent/pinentry failed ({}); use --passphrase-file or unlock the key in gpg-agent first",
                    status.reason()
                ),
                Trouble::NoSecretKey => {
                    format!("gpg has no secret key for it ({})", status.reason())
                }
                Trouble::Other => format!(
                    "gpg cannot decrypt the wrapped data key: {}",
                    status.reason()
                ),
            };
            return Err(KeyError::Failed(reason));
        }
        let signed_ok = status.has("GOODSIG") && status.has("VALIDSIG");
        if request.params.pgp_signed && !signed_ok {
            let problem = if let Some(a) =
                status.args("ERRSIG").or_else(|| status.args("NO_PUBKEY"))
            {
                let keyid = a.first().copied().unwrap_or("?");
                format!(
                    "the wrapped data key is signed by key {keyid}, whose public key is not in the keyring; import it (`gpg --import` or `gpg --recv-keys {keyid}`)"
                )
            } else if status.has("BADSIG") {
                "the signature on the wrapped data key is BAD (tampered?)".to_owned()
            } else if status.has("EXPKEYSIG") || status.has("REVKEYSIG") {
                format!(
                    "the wrapped data key is signed by an expired or revoked key ({})",
                    status.reason()
                )
            } else {
                "the wrapped data key is not signed".to_owned()
            };
            if status.has("BADSIG") || !self.options.allow_unsigned {
                return Err(KeyError::Failed(format!(
                    "{problem}; or pass --pgp-allow-unsigned to accept it"
                )));
            }
            if !self.warned_unsigned.replace(true) {
                self.reporter.warn(&format!(
                    "{problem}; accepted because of --pgp-allow-unsigned"
                ));
            }
        }
        if out.is_empty() {
            return Err(KeyError::Failed(
                "gpg decrypted the wrapped data key to nothing".into(),
            ));
        }
        Ok(out)
    }

    fn is_local(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn normalises_fingerprints_and_ids() {
        assert_eq!(
            normalise("f4d4 7a60 826f 85bf 96ed  33e3 c2e1 d6e0 c9ef c029"),
            "F4D47A60826F85BF96ED33E3C2E1D6E0C9EFC029"
        );
        assert_eq!(normalise("0xc2e1d6e0c9efc029"), "C2E1D6E0C9EFC029");
        assert_eq!(normalise("alice@example.com"), "alice@example.com");
        assert_eq!(normalise("Alice Example"), "Alice Example");
    }

    #[test]
    fn lookups_are_exact() {
        use super::exact;
        assert_eq!(exact("C2E1D6E0C9EFC029"), "C2E1D6E0C9EFC029");
        assert_eq!(exact("alice@example.test"), "<alice@example.test>");
        assert_eq!(
            exact("Alice <alice@example.test>"),
            "=Alice <alice@example.test>"
        );
        assert_eq!(exact("Alice"), "=Alice");
    }
}
