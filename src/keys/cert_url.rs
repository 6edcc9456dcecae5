//! A sealed-secrets controller certificate fetched from a URL, as kubeseal
//! takes `--cert https://…` (a certificate published next to the cluster,
//! or the controller's `/v1/cert.pem` behind a proxy). Public data, but it
//! decides who can open what ksec seals, so https verifies the server
//! against the system's roots (as Go does; `SSL_CERT_FILE` names other
//! roots). One request through the HTTPS client the network key services
//! share ([`crate::net`]), bounded in size and time.

use std::time::Duration;

/// Certificates are small; anything larger is not one.
#[cfg(feature = "net")]
const LIMIT: usize = 1024 * 1024;

/// Why a certificate could not be fetched; never the body.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The HTTPS client could not be set up.
    #[cfg(feature = "net")]
    #[error(transparent)]
    Setup(#[from] crate::net::SetupError),
    /// No answer (unreachable, TLS, timeout).
    #[cfg(feature = "net")]
    #[error("{}", cause.describe(url, *timeout))]
    Transport {
        /// The URL, without its query.
        url: String,
        /// The time allowed.
        timeout: Duration,
        /// What went wrong on the way.
        cause: crate::net::Transport,
    },
    /// An answer that is not a success.
    #[error("the server answered {0}")]
    Status(String),
    #[error("the answer is larger than a certificate can be (1 MiB)")]
    /// An answer over 1 MiB.
    TooLarge,
    #[error("the answer is not text (PEM)")]
    /// An answer that is not UTF-8.
    NotText,
    /// A build without the shared HTTPS client.
    #[error(
        "this ksec was built without network support (feature `net`); download the certificate and pass the file"
    )]
    NoNetwork,
}

/// Fetches `url` (`http://` or `https://`) and returns its body as text.
/// The error says why, without the body.
#[cfg(feature = "net")]
pub fn fetch(url: &str, timeout: Duration) -> Result<String, FetchError> {
    use crate::net;
    let shown = net::without_query(url);
    let transport = |cause: net::Transport| FetchError::Transport {
        url: shown.to_owned(),
        timeout,
        cause,
    };
    let rt = net::runtime()?;
    let client = net::client(&net::Tls::default(), timeout)?;
    rt.block_on(async {
        let get = async {
            let mut response = client
                .get(url)
                .send()
                .await
                .map_err(|e| transport(net::transport(&e)))?;
            let status = response.status();
            if !status.is_success() {
                return Err(FetchError::Status(status.to_string()));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| transport(net::transport(&e)))?
            {
                body.extend_from_slice(&chunk);
                if body.len() > LIMIT {
                    return Err(FetchError::TooLarge);
                }
            }
            String::from_utf8(body).map_err(|_| FetchError::NotText)
        };
        net::deadline(timeout, get).await.map_err(transport)?
    })
}

/// Without the shared HTTPS client (a build without the `net` feature),
/// URLs are refused with a message.
#[cfg(not(feature = "net"))]
pub fn fetch(_url: &str, _timeout: Duration) -> Result<String, FetchError> {
    Err(FetchError::NoNetwork)
}
