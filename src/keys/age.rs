//! age X25519 keys: the built-in, offline key type.
//!
//! A key line is `# kubesec:age:<recipient>:<base64 of a binary age file
//! whose payload is the 32-byte data key>`, so `base64 -d | age -d -i
//! keys.txt` recovers the data key with the age CLI. Identity files made by
//! `age-keygen` work as they are.
//!
//! Identities for unwrapping come from `KSEC_AGE_KEY` (the key text),
//! `KSEC_AGE_KEY_FILE`, and the default file
//! (`$XDG_CONFIG_HOME/ksec/age/keys.txt`, else `~/.config/ksec/age/keys.txt`).

use std::cell::OnceCell;
use std::fs;
use std::io::{Read as _, Write as _};
use std::iter;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::OnceLock;

use age::secrecy::ExposeSecret as _;
use age::x25519;
use zeroize::Zeroizing;

use super::{KeyError, KeyType, Provider, Secret, UnwrapRequest, WrapRequest};
use crate::report::Reporter;

/// Why an identity could not be found, read or parsed. The message names
/// the source and line, never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdentityError(pub String);

impl From<String> for IdentityError {
    fn from(s: String) -> Self {
        IdentityError(s)
    }
}

impl From<&str> for IdentityError {
    fn from(s: &str) -> Self {
        IdentityError(s.to_owned())
    }
}

/// Environment variable holding identity text.
pub const ENV_KEY: &str = "KSEC_AGE_KEY";
/// Environment variable naming an identity file.
pub const ENV_KEY_FILE: &str = "KSEC_AGE_KEY_FILE";
/// sops' variable holding identity text (read too, so that sops users'
/// settings work unchanged).
pub const ENV_SOPS_KEY: &str = "SOPS_AGE_KEY";
/// sops' variable naming an identity file.
pub const ENV_SOPS_KEY_FILE: &str = "SOPS_AGE_KEY_FILE";

/// sops' default identity file: `$XDG_CONFIG_HOME/sops/age/keys.txt`, else
/// `~/.config/sops/age/keys.txt`.
fn sops_identity_path() -> Option<PathBuf> {
    let config = match std::env::var_os("XDG_CONFIG_HOME").filter(|p| !p.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME").filter(|p| !p.is_empty())?).join(".config"),
    };
    Some(config.join("sops").join("age").join("keys.txt"))
}

/// Where the local identity lives: `$KSEC_AGE_KEY_FILE`, else the default file.
pub fn identity_path() -> Result<PathBuf, IdentityError> {
    if let Some(p) = std::env::var_os(ENV_KEY_FILE).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    default_identity_path()
}

fn default_identity_path() -> Result<PathBuf, IdentityError> {
    let config = match std::env::var_os("XDG_CONFIG_HOME").filter(|p| !p.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => match std::env::var_os("HOME").filter(|p| !p.is_empty()) {
            Some(h) => PathBuf::from(h).join(".config"),
            None => {
                return Err(
                    "neither XDG_CONFIG_HOME nor HOME is set; set KSEC_AGE_KEY_FILE".into(),
                );
            }
        },
    };
    Ok(config.join("ksec").join("age").join("keys.txt"))
}

/// Parses identity text (the format of `age-keygen` files: comments, blank
/// lines and `AGE-SECRET-KEY-1…` lines). `origin` names the source in errors.
pub fn parse_identities(text: &str, origin: &str) -> Result<Vec<x25519::Identity>, IdentityError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with("AGE-PLUGIN-") {
            return Err(format!(
                "{origin}:{}: age plugin identities are not supported",
                n + 1
            )
            .into());
        }
        let id = x25519::Identity::from_str(line).map_err(|_| {
            format!(
                "{origin}:{}: not an age X25519 identity (expected AGE-SECRET-KEY-1…)",
                n + 1
            )
        })?;
        out.push(id);
    }
    Ok(out)
}

/// Reads identities from a file.
pub fn read_identity_file(path: &Path) -> Result<Vec<x25519::Identity>, IdentityError> {
    let origin = path.display().to_string();
    let text = Zeroizing::new(
        fs::read_to_string(path)
            .map_err(|e| format!("{origin}: cannot read: {}", crate::io::io_reason(&e)))?,
    );
    parse_identities(&text, &origin)
}

/// Generates a new identity and writes it to `path` (0600, parent
/// directories 0700), refusing to overwrite. Returns the recipient.
pub fn generate_identity_file(path: &Path) -> Result<String, GenerateError> {
    if path.exists() {
        return Err(GenerateError::Exists);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let io = |what: &str, e: std::io::Error| {
        GenerateError::Io(format!(
            "{}: cannot {what}: {}",
            path.display(),
            crate::io::io_reason(&e)
        ))
    };
    create_private_dir(&dir).map_err(|e| io("create its directory", e))?;
    let identity = x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let secret = identity.to_string();
    let body = Zeroizing::new(format!(
        "# created: {}\n# public key: {recipient}\n{}\n",
        crate::clock::now_rfc3339(),
        secret.expose_secret()
    ));
    // tempfile creates 0600 files; persist_noclobber refuses to replace an
    // identity that appeared meanwhile.
    let mut tmp = tempfile::Builder::new()
        .prefix(".ksec-key-")
        .tempfile_in(&dir)
        .map_err(|e| io("create a file next to it", e))?;
    tmp.write_all(body.as_bytes()).map_err(|e| io("write", e))?;
    tmp.as_file().sync_all().map_err(|e| io("sync", e))?;
    tmp.persist_noclobber(path).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            GenerateError::Exists
        } else {
            io("write", e.error)
        }
    })?;
    Ok(recipient)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(dir)
}

/// A warning when an identity file can be read by group or others (as ssh
/// warns about private keys).
pub fn permission_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "{}: the age identity is readable by others (mode {mode:04o}); protect it with `chmod 600 {}`",
            path.display(),
            path.display()
        )
    })
}

/// Why a new identity file was not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenerateError {
    /// The file exists already.
    Exists,
    /// Writing failed.
    Io(String),
}

/// The recipient of the local identity, created on first use. Returns the
/// recipient and, when a new identity was written, its path.
pub fn local_recipient() -> Result<(String, Option<PathBuf>), IdentityError> {
    if let Ok(text) = std::env::var(ENV_KEY) {
        let ids = parse_identities(&Zeroizing::new(text), ENV_KEY)?;
        return ids
            .first()
            .map(|i| (i.to_public().to_string(), None))
            .ok_or_else(|| format!("{ENV_KEY} holds no identity").into());
    }
    let path = identity_path()?;
    if path.exists() {
        let ids = read_identity_file(&path)?;
        let first = ids
            .first()
            .ok_or_else(|| format!("{}: holds no identity", path.display()))?;
        return Ok((first.to_public().to_string(), None));
    }
    match generate_identity_file(&path) {
        Ok(r) => Ok((r, Some(path))),
        // Lost a race with another process: use the identity it wrote.
        Err(GenerateError::Exists) => local_recipient(),
        Err(GenerateError::Io(m)) => Err(m.into()),
    }
}

/// The age provider. Identities are loaded on first unwrap.
pub struct AgeProvider {
    identities: OnceCell<Result<Vec<Ident>, IdentityError>>,
    reporter: std::rc::Rc<dyn Reporter>,
}

impl AgeProvider {
    /// Checks an age X25519 recipient and returns it as it is written.
    pub fn parse_recipient(id: &str) -> Result<String, IdentityError> {
        x25519::Recipient::from_str(id)
            .map(|r| r.to_string())
            .map_err(|_| format!("`{id}` is not an age X25519 recipient (age1…)").into())
    }

    /// A provider reading identities from the environment and default file;
    /// warnings (an identity file others can read) go to `reporter`.
    pub fn from_env(reporter: std::rc::Rc<dyn Reporter>) -> Self {
        AgeProvider {
            identities: OnceCell::new(),
            reporter,
        }
    }

    /// A provider with exactly the identities in `text`.
    pub fn from_text(text: &str) -> Result<Self, IdentityError> {
        let ids = parse_identities(text, "identities")?;
        Ok(AgeProvider {
            identities: OnceCell::from(Ok(ids.into_iter().map(Ident::new).collect())),
            reporter: std::rc::Rc::new(crate::report::Silent),
        })
    }

    fn load(&self) -> Result<Vec<Ident>, IdentityError> {
        let read = |p: &Path| {
            if let Some(w) = permission_warning(p) {
                self.reporter.warn(&w);
            }
            read_identity_file(p)
        };
        let mut ids = Vec::new();
        // ksec's own sources, then sops' (the same three kinds).
        for (text_var, file_var) in [(ENV_KEY, ENV_KEY_FILE), (ENV_SOPS_KEY, ENV_SOPS_KEY_FILE)] {
            if let Ok(text) = std::env::var(text_var) {
                ids.extend(parse_identities(&Zeroizing::new(text), text_var)?);
            }
            if let Some(p) = std::env::var_os(file_var).filter(|p| !p.is_empty()) {
                let p = PathBuf::from(p);
                if !p.exists() {
                    return Err(
                        format!("{file_var} names {}, which does not exist", p.display()).into(),
                    );
                }
                ids.extend(read(&p)?);
            }
        }
        for p in [default_identity_path().ok(), sops_identity_path()]
            .into_iter()
            .flatten()
        {
            if p.exists() {
                ids.extend(read(&p)?);
            }
        }
        Ok(ids.into_iter().map(Ident::new).collect())
    }

    fn identities(&self) -> Result<&[Ident], KeyError> {
        self.identities
            .get_or_init(|| self.load())
            .as_deref()
            .map_err(|e| KeyError::Unavailable(e.0.clone()))
    }
}

impl Provider for AgeProvider {
    fn kind(&self) -> KeyType {
        KeyType::Age
    }

    fn resolve(&self, id: &str) -> Result<String, KeyError> {
        AgeProvider::parse_recipient(id).map_err(|e| KeyError::InvalidId(e.0))
    }

    fn wrap(&self, request: &WrapRequest<'_>) -> Result<Vec<u8>, KeyError> {
        wrap_one(request)
    }

    fn unwrap(&self, request: &UnwrapRequest<'_>) -> Result<Secret, KeyError> {
        unwrap_one(self.identities()?, request)
    }

    /// Each wrap is an X25519 exchange of its own: a stream of many
    /// Secrets spreads them over the cores.
    fn wrap_many(&self, requests: &[WrapRequest<'_>]) -> Vec<Result<Vec<u8>, KeyError>> {
        crate::par::map(requests, PER_THREAD, wrap_one)
    }

    fn unwrap_many(&self, requests: &[UnwrapRequest<'_>]) -> Vec<Result<Secret, KeyError>> {
        match self.identities() {
            Ok(ids) => crate::par::map(requests, PER_THREAD, |r| unwrap_one(ids, r)),
            Err(e) => requests.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    fn is_local(&self) -> bool {
        true
    }
}

/// The fewest wraps or unwraps (about 0.1 ms each) worth a thread.
const PER_THREAD: usize = 4;

fn wrap_one(request: &WrapRequest<'_>) -> Result<Vec<u8>, KeyError> {
    let id = request.id;
    let recipient = x25519::Recipient::from_str(id).map_err(|_| {
        KeyError::InvalidId(format!("`{id}` is not an age X25519 recipient (age1…)"))
    })?;
    let failed =
        |e: &dyn std::fmt::Display| KeyError::Failed(format!("age encryption failed: {e}"));
    let encryptor = age::Encryptor::with_recipients(iter::once(&recipient as &dyn age::Recipient))
        .map_err(|e| failed(&e))?;
    let mut out = Vec::with_capacity(256);
    let mut w = encryptor.wrap_output(&mut out).map_err(|e| failed(&e))?;
    w.write_all(request.secret).map_err(|e| failed(&e))?;
    w.finish().map_err(|e| failed(&e))?;
    Ok(out)
}

/// An identity and its recipient, derived when first needed (an X25519
/// base-point multiplication each).
pub(super) struct Ident {
    public: OnceLock<String>,
    key: x25519::Identity,
}

impl Ident {
    fn new(key: x25519::Identity) -> Ident {
        Ident {
            public: OnceLock::new(),
            key,
        }
    }

    fn public(&self) -> &str {
        self.public.get_or_init(|| self.key.to_public().to_string())
    }
}

fn unwrap_one(ids: &[Ident], request: &UnwrapRequest<'_>) -> Result<Secret, KeyError> {
    // Recipients are derived in order until one matches: identities after
    // the match are never derived.
    let Some(ident) = ids.iter().find(|i| i.public() == request.id) else {
        return Err(KeyError::Unavailable(format!(
            "no identity for this recipient (looked in {ENV_KEY}, {ENV_KEY_FILE}, {ENV_SOPS_KEY}, {ENV_SOPS_KEY_FILE}, {} and {})",
            default_identity_path().map_or_else(|e| e.0, |p| p.display().to_string()),
            sops_identity_path().map_or_else(
                || "~/.config/sops/age/keys.txt".into(),
                |p| p.display().to_string()
            )
        )));
    };
    open_blob(&ident.key, request.blob)
}

/// The data key in an age file `blob`, opened with `identity`.
fn open_blob(identity: &x25519::Identity, blob: &[u8]) -> Result<Secret, KeyError> {
    let bad = |e: &dyn std::fmt::Display| {
        KeyError::Failed(format!("cannot decrypt the age-wrapped data key: {e}"))
    };
    let decryptor = age::Decryptor::new(blob).map_err(|e| bad(&e))?;
    let mut reader = decryptor
        .decrypt(iter::once(identity as &dyn age::Identity))
        .map_err(|e| bad(&e))?;
    let mut secret = Zeroizing::new(Vec::with_capacity(33));
    reader.read_to_end(&mut secret).map_err(|e| bad(&e))?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_and_refusals() {
        let identity = x25519::Identity::generate();
        let recipient = identity.to_public().to_string();
        let p = AgeProvider {
            identities: OnceCell::from(Ok(vec![Ident::new(identity)])),
            reporter: std::rc::Rc::new(crate::report::Silent),
        };
        let params = super::super::KeyParams::default();
        let secret = [5u8; 32];
        let wrap = |id: &str| {
            p.wrap(&WrapRequest {
                id,
                secret: &secret,
                params: &params,
            })
        };
        let unwrap = |id: &str, blob: &[u8]| {
            p.unwrap(&UnwrapRequest {
                id,
                blob,
                params: &params,
            })
        };
        let blob = wrap(&recipient).unwrap();
        assert_eq!(*unwrap(&recipient, &blob).unwrap(), secret.to_vec());
        let other = x25519::Identity::generate().to_public().to_string();
        assert!(matches!(
            unwrap(&other, &blob),
            Err(KeyError::Unavailable(_))
        ));
        assert!(matches!(
            unwrap(&recipient, b"garbage"),
            Err(KeyError::Failed(_))
        ));
        assert!(p.resolve("age1nope").is_err());
    }

    #[test]
    fn identity_text() {
        let i = x25519::Identity::generate();
        let text = format!(
            "# created: x\n# public key: y\n\n{}\n",
            i.to_string().expose_secret()
        );
        assert_eq!(parse_identities(&text, "t").unwrap().len(), 1);
        assert!(
            parse_identities("AGE-PLUGIN-YUBIKEY-1XYZ", "t")
                .err()
                .unwrap()
                .0
                .contains("plugin")
        );
        assert!(
            parse_identities("hello", "t")
                .err()
                .unwrap()
                .0
                .starts_with("t:1:")
        );
    }
}
