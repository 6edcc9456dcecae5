//! What the network key services share (Vault/OpenBao, GCP Cloud KMS, Azure
//! Key Vault; AWS KMS takes the settings too): the run's timeout, concurrency
//! and retry settings, and (feature `net`) one async HTTPS client (reqwest on rustls with ring), a
//! current-thread tokio runtime created only when such a key is used, the
//! operation timeout and retries, bounded concurrency, and one-line
//! descriptions of transport failures.
//!
//! Nothing here knows a service. Callers trace each call through the
//! [`Reporter`](crate::report::Reporter) themselves (method, path, status,
//! time — never a body: bodies carry data keys and tokens).

#[cfg(feature = "net")]
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

#[cfg(feature = "net")]
use futures_util::StreamExt as _;

/// Default time for one key-service operation, retries included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on concurrent key-service calls.
pub const DEFAULT_JOBS: usize = 16;
/// Default number of attempts of a call that failed transiently.
pub const DEFAULT_ATTEMPTS: u32 = 3;

/// The global network settings of a run (`--timeout`, `--jobs`,
/// `--max-attempts`), the same for every provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetOptions {
    /// Time for one operation (a wrap, an unwrap, a login), retries included.
    pub timeout: Duration,
    /// Concurrent calls at most.
    pub jobs: usize,
    /// Attempts of a call that failed transiently (connection reset, 429,
    /// 5xx); 1 = no retry.
    pub max_attempts: u32,
}

impl Default for NetOptions {
    fn default() -> Self {
        NetOptions {
            timeout: DEFAULT_TIMEOUT,
            jobs: DEFAULT_JOBS,
            max_attempts: DEFAULT_ATTEMPTS,
        }
    }
}

/// TLS settings beyond the system's roots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// PEM files of extra trusted roots (Vault: `VAULT_CACERT`).
    pub ca_files: Vec<PathBuf>,
    /// Directories of PEM roots (`VAULT_CAPATH`).
    pub ca_dirs: Vec<PathBuf>,
    /// Trust only these roots, not the system's (when a CA is given, as the
    /// vault CLI does).
    pub only_given_roots: bool,
    /// Client certificate and key, PEM (mutual TLS).
    pub client_identity: Option<(PathBuf, PathBuf)>,
    /// Accept any server certificate (`VAULT_SKIP_VERIFY`; warned about).
    pub skip_verify: bool,
}

#[cfg(feature = "net")]
/// Why the runtime or the HTTPS client could not be set up. Every message
/// names the file or setting involved.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot start the async runtime: {0}")]
    /// The tokio runtime.
    Runtime(std::io::Error),
    /// A file that cannot be read.
    #[error("cannot read the {what} {}: {source}", path.display())]
    Read {
        /// What the file is for.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A CA directory that cannot be listed.
    #[error("cannot read the CA directory {}: {source}", path.display())]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A CA file without a certificate.
    #[error("{} holds no usable PEM certificate{}", path.display(), cause.as_deref().map(|c| format!(": {c}")).unwrap_or_default())]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// What the PEM reader said, if anything.
        cause: Option<String>,
    },
    /// A client certificate and key that do not make an identity.
    #[error("cannot use the client certificate {} and key {}: {cause}", cert.display(), key.display())]
    ClientIdentity {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why they were refused.
        cause: String,
    },
    #[error("cannot set up HTTPS: {0}")]
    /// The client builder refused the settings.
    Https(String),
}

#[cfg(feature = "net")]
/// A current-thread runtime: the network providers' futures run on it, one
/// batch at a time.
pub fn runtime() -> Result<tokio::runtime::Runtime, SetupError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SetupError::Runtime)
}

#[cfg(feature = "net")]
/// rustls with ring as the process's TLS provider (reqwest is built without
/// one of its own). Idempotent.
fn install_ring() {
    // Err means a provider is installed already (ours, by an earlier call).
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(feature = "net")]
/// An HTTP client with `tls` and the run's timeout (per request; callers
/// bound whole operations with [`deadline`]).
pub fn client(tls: &Tls, timeout: Duration) -> Result<reqwest::Client, SetupError> {
    install_ring();
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(3).min(timeout))
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("ksec/", env!("CARGO_PKG_VERSION")));
    let mut roots = Vec::new();
    for f in &tls.ca_files {
        roots.extend(read_roots(f)?);
    }
    for d in &tls.ca_dirs {
        let entries = std::fs::read_dir(d).map_err(|source| SetupError::ReadDir {
            path: d.clone(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files.iter().filter(|f| f.is_file()) {
            // Like OpenSSL's CApath: files that hold no certificate are skipped.
            roots.extend(read_roots(f).unwrap_or_default());
        }
    }
    if !roots.is_empty() {
        b = if tls.only_given_roots {
            b.tls_certs_only(roots)
        } else {
            b.tls_certs_merge(roots)
        };
    }
    if let Some((cert, key)) = &tls.client_identity {
        let mut pem = read(cert, "client certificate")?;
        pem.extend_from_slice(b"\n");
        pem.extend_from_slice(&zeroize::Zeroizing::new(read(key, "client key")?));
        let pem = zeroize::Zeroizing::new(pem);
        let id = reqwest::Identity::from_pem(&pem).map_err(|e| SetupError::ClientIdentity {
            cert: cert.clone(),
            key: key.clone(),
            cause: innermost(&e),
        })?;
        b = b.identity(id);
    }
    if tls.skip_verify {
        b = b.tls_danger_accept_invalid_certs(true);
    }
    b.build().map_err(|e| SetupError::Https(innermost(&e)))
}

#[cfg(feature = "net")]
fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, SetupError> {
    std::fs::read(path).map_err(|source| SetupError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

#[cfg(feature = "net")]
fn read_roots(path: &Path) -> Result<Vec<reqwest::Certificate>, SetupError> {
    let pem = read(path, "CA certificate file")?;
    let certs =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| SetupError::NoCertificate {
            path: path.to_owned(),
            cause: Some(e.to_string()),
        })?;
    if certs.is_empty() {
        return Err(SetupError::NoCertificate {
            path: path.to_owned(),
            cause: None,
        });
    }
    Ok(certs)
}

/// Why a call did not get an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// No answer in time: a silent endpoint, or a slow one.
    Timeout,
    /// No connection (refused, no route, DNS).
    Unreachable(String),
    /// The TLS handshake failed (certificate not trusted, wrong name).
    Tls(String),
    /// Anything else on the way (connection reset mid-answer).
    Other(String),
}

impl Transport {
    /// Whether trying again may help (not for TLS: it fails the same way).
    pub fn transient(&self) -> bool {
        matches!(self, Transport::Unreachable(_) | Transport::Other(_))
    }

    /// One line: `cannot reach URL: cause` and the like.
    pub fn describe(&self, what: &str, timeout: Duration) -> String {
        match self {
            Transport::Timeout => format!(
                "{what}: no answer within {}; check the address and the network, or raise --timeout",
                seconds(timeout)
            ),
            Transport::Unreachable(c) => format!("cannot reach {what}: {c}"),
            Transport::Tls(c) => format!("TLS with {what} failed: {c}"),
            Transport::Other(c) => format!("{what}: {c}"),
        }
    }
}

/// A duration as `--timeout` takes it: `10s`, `500ms`, `2.5s`.
pub fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f32())
    }
}

#[cfg(feature = "net")]
/// Classifies a reqwest failure without its URL (which the caller names).
pub fn transport(e: &reqwest::Error) -> Transport {
    let cause = innermost(e);
    let lower = error_chain(e).to_ascii_lowercase();
    if e.is_timeout() {
        Transport::Timeout
    } else if lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("handshake")
        || lower.contains("invalid peer")
    {
        Transport::Tls(cause)
    } else if e.is_connect() {
        Transport::Unreachable(cause)
    } else {
        Transport::Other(cause)
    }
}

/// The error and its sources, joined: `a: b: c`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// The deepest cause, without Rust's `(os error N)`.
pub fn innermost(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(s) = cur.source() {
        cur = s;
    }
    let t = cur.to_string();
    match t.find(" (os error") {
        Some(i) => t[..i].to_owned(),
        None => t,
    }
}

/// Whether an HTTP status says "try again later".
pub fn transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// The pause before attempt `n` (2, 3, …): 100 ms, 200 ms, 400 ms, … at most 2 s.
pub fn backoff(n: u32) -> Duration {
    let exp = n.saturating_sub(2).min(5);
    Duration::from_millis(100u64 << exp).min(Duration::from_secs(2))
}

#[cfg(feature = "net")]
/// Runs `fut`, giving up after `timeout`.
pub async fn deadline<T>(
    timeout: Duration,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, Transport> {
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| Transport::Timeout)
}

/// An HTTP answer: status and body (wiped when dropped: bodies carry data
/// keys and tokens).
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The body as text.
    pub body: zeroize::Zeroizing<String>,
}

impl Reply {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(feature = "net")]
/// Sends a request, up to `attempts` times while the failure is transient
/// (a dropped connection, 429, 5xx), pausing between attempts. The last
/// answer is returned whatever its status; only a transport failure on the
/// last attempt is an error. Callers bound the whole with [`deadline`].
pub async fn send(request: reqwest::RequestBuilder, attempts: u32) -> Result<Reply, Transport> {
    let attempts = attempts.max(1);
    let mut n = 1;
    loop {
        let Some(this) = request.try_clone() else {
            return Err(Transport::Other(
                "a request body that cannot be sent twice".into(),
            ));
        };
        let result: Result<Reply, Transport> = async {
            let response = this.send().await.map_err(|e| transport(&e))?;
            let status = response.status().as_u16();
            let body = response.text().await.map_err(|e| transport(&e))?;
            Ok(Reply {
                status,
                body: zeroize::Zeroizing::new(body),
            })
        }
        .await;
        let again = match &result {
            Ok(r) => transient_status(r.status),
            Err(t) => t.transient(),
        };
        if !again || n >= attempts {
            return result;
        }
        n += 1;
        tokio::time::sleep(backoff(n)).await;
    }
}

#[cfg(feature = "net")]
/// Runs one future per item, at most `jobs` at a time, results in order.
pub fn run_all<T, F>(rt: &tokio::runtime::Runtime, jobs: usize, futures: Vec<F>) -> Vec<T>
where
    F: std::future::Future<Output = T>,
{
    rt.block_on(
        futures_util::stream::iter(futures)
            .buffered(jobs.max(1))
            .collect(),
    )
}

/// The JSON error of a key service, shortened to one line: at most 300
/// characters, whitespace collapsed.
pub fn short(text: &str) -> String {
    let mut collapsed = String::with_capacity(text.len());
    for w in text.split_whitespace() {
        if !collapsed.is_empty() {
            collapsed.push(' ');
        }
        collapsed.push_str(w);
    }
    let collapsed = crate::error::one_line(&collapsed);
    if collapsed.chars().count() > 300 {
        let cut: String = collapsed.chars().take(300).collect();
        format!("{cut}…")
    } else {
        collapsed
    }
}

/// A path or URL for messages with any query string removed (query strings
/// may carry tokens or signatures).
pub fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert_eq!(backoff(2), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(200));
        assert_eq!(backoff(30), Duration::from_secs(2));
    }

    #[test]
    fn durations_read_as_typed() {
        assert_eq!(seconds(Duration::from_secs(10)), "10s");
        assert_eq!(seconds(Duration::from_millis(500)), "500ms");
        assert_eq!(seconds(Duration::from_millis(2500)), "2.5s");
    }

    #[test]
    fn messages_are_one_short_line() {
        assert_eq!(short("a\n\t* b\n\n"), "a * b");
        assert!(short(&"x ".repeat(400)).ends_with('…'));
        assert_eq!(without_query("https://h/p?sig=1"), "https://h/p");
    }
}
