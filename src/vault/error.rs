//! What can go wrong talking to Vault, as data: a kind callers can branch
//! on, and one line for people (never a token, never a body).

use std::fmt;

/// The kind of a Vault failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No token: none in the environment, no login configured, no
    /// `~/.vault-token`.
    MissingToken,
    /// The token was refused: invalid, expired or revoked (Vault answers a
    /// plain `permission denied`).
    TokenRejected,
    /// The token is valid but its policy does not allow this path.
    PermissionDenied,
    /// A login (AppRole, Kubernetes, JWT) was refused.
    LoginFailed,
    /// No such path (404): an unknown mount or route, or a missing secret.
    NotFound,
    /// The request was refused as invalid (400), e.g. `encryption key not
    /// found`, `cipher: message authentication failed`.
    Invalid,
    /// Vault is sealed (503).
    Sealed,
    /// The server failed or throttled (5xx, 429), after retries.
    Unavailable,
    /// No answer within the timeout (a silent or overloaded endpoint).
    Timeout,
    /// No connection (refused, DNS, no route).
    Unreachable,
    /// The TLS handshake failed (untrusted certificate, wrong name).
    Tls,
    /// The settings are unusable (a bad address, an unreadable CA file).
    Config,
    /// An answer that is not what Vault sends.
    Protocol,
}

/// A Vault failure: its kind, what Vault said, and a message in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// Vault's own messages (`errors` in its JSON answer), one line each.
    pub errors: Vec<String>,
    /// The whole message, one line, naming the server and the path.
    pub message: String,
    /// What to do about it, when there is something to do.
    pub hint: Option<String>,
}

impl VaultError {
    /// An error without an HTTP answer.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> VaultError {
        VaultError {
            kind,
            status: None,
            errors: Vec::new(),
            message: crate::error::one_line(&message.into()),
            hint: None,
        }
    }

    /// The same error with a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> VaultError {
        self.hint = Some(hint.into());
        self
    }

    /// Whether Vault said `text` (case-insensitive) in one of its messages.
    pub fn says(&self, text: &str) -> bool {
        let t = text.to_ascii_lowercase();
        self.errors
            .iter()
            .any(|e| e.to_ascii_lowercase().contains(&t))
    }

    /// The message and its hint as one line (`…; hint`), as key errors are
    /// written.
    pub fn with_hint(&self) -> String {
        match &self.hint {
            Some(h) => format!("{}; {h}", self.message),
            None => self.message.clone(),
        }
    }

    /// As a user's error: exit 6 (a key service failed), code `vault`.
    pub fn to_error(&self) -> crate::error::Error {
        crate::error::Error::new(crate::error::Exit::Key, "vault", self.message.clone())
            .maybe_hint(self.hint.clone())
    }
}

impl fmt::Display for VaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for VaultError {}
