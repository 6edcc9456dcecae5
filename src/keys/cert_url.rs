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

/// Fetches `url` (`http://` or `https://`) and returns its body as text.
/// The error says why, without the body.
#[cfg(feature = "net")]
pub fn fetch(url: &str, timeout: Duration) -> Result<String, String> {
    use crate::net;
    let shown = net::without_query(url);
    let rt = net::runtime()?;
    let client = net::client(&net::Tls::default(), timeout)?;
    rt.block_on(async {
        let get = async {
            let mut response = client
                .get(url)
                .send()
                .await
                .map_err(|e| net::transport(&e).describe(shown, timeout))?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("the server answered {status}"));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| net::transport(&e).describe(shown, timeout))?
            {
                body.extend_from_slice(&chunk);
                if body.len() > LIMIT {
                    return Err("the answer is larger than a certificate can be (1 MiB)".into());
                }
            }
            String::from_utf8(body).map_err(|_| "the answer is not text (PEM)".to_owned())
        };
        net::deadline(timeout, get)
            .await
            .map_err(|t| t.describe(shown, timeout))?
    })
}

/// Without the shared HTTPS client (a build without the `net` feature),
/// URLs are refused with a message.
#[cfg(not(feature = "net"))]
pub fn fetch(_url: &str, _timeout: Duration) -> Result<String, String> {
    Err(
        "this ksec was built without network support (feature `net`); download the certificate and pass the file"
            .to_owned(),
    )
}
