//! Azure credentials: the chain other Azure SDKs call `DefaultAzureCredential`,
//! built from `azure_identity`'s credentials (its Rust release has no such
//! chain, and its certificate credential needs OpenSSL).
//!
//! In order, each tried only when configured (the last two always):
//!
//! 1. Environment: `AZURE_TENANT_ID` + `AZURE_CLIENT_ID` with
//!    `AZURE_CLIENT_SECRET` (client secret) or `AZURE_CLIENT_CERTIFICATE_PATH`
//!    (a PEM file with the certificate and its unencrypted private key; the
//!    assertion is an RS256 JWT with the certificate's SHA-1 thumbprint as
//!    `x5t`, and the chain as `x5c` with `AZURE_CLIENT_SEND_CERTIFICATE_CHAIN=1`).
//! 2. Workload identity (AKS, GitHub Actions OIDC federation):
//!    `AZURE_FEDERATED_TOKEN_FILE` + `AZURE_CLIENT_ID` + `AZURE_TENANT_ID`.
//! 3. Managed identity: App Service / Container Apps (`IDENTITY_ENDPOINT`,
//!    `IDENTITY_HEADER`) or the VM's IMDS; `AZURE_CLIENT_ID` picks a
//!    user-assigned identity.
//! 4. The Azure CLI: `az account get-access-token` (`AZURE_TENANT_ID` when set).
//!
//! `AZURE_TOKEN_CREDENTIALS` narrows the chain as the other SDKs do: `dev`
//! (Azure CLI), `prod` (1–3), or one of `EnvironmentCredential`,
//! `WorkloadIdentityCredential`, `ManagedIdentityCredential`,
//! `AzureCliCredential`. `AZURE_AUTHORITY_HOST` names the Entra ID host
//! (https). A credential that is configured and refused (a wrong secret, an
//! untrusted certificate or federated token) ends the chain with its error;
//! one that is not available here (no managed identity, no `az`) passes to
//! the next.

use std::sync::{Arc, Mutex};

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::error::{Error, ErrorKind};
use azure_core::http::{ClientMethodOptions, ClientOptions};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use serde_json::json;
use zeroize::Zeroizing;

use crate::keys::jws::{RsaSigner, now, pem_blocks};

type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// One credential of the chain.
struct Link {
    name: String,
    credential: Arc<dyn TokenCredential>,
    /// Configured explicitly (environment, workload identity): a refusal
    /// ends the chain instead of passing to the next.
    configured: bool,
}

/// The chain; remembers the credential that worked.
pub struct Chain {
    links: Vec<Link>,
    chosen: Mutex<Option<usize>>,
    /// Set up before any call: `AZURE_TOKEN_CREDENTIALS` and variables
    /// that were given but cannot be used.
    problem: Option<String>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.links.iter().map(|l| l.name.as_str()).collect();
        f.debug_struct("Chain").field("links", &names).finish()
    }
}

/// The hint when nothing worked.
pub const HINT: &str = "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH), use workload identity (AZURE_FEDERATED_TOKEN_FILE), a managed identity, or `az login`";

fn set(var: Lookup<'_>, k: &str) -> Option<String> {
    var(k)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

impl Chain {
    /// The chain this environment configures. `options` (our HTTP client,
    /// retries) go to every credential.
    pub fn from_env(var: Lookup<'_>, options: &ClientOptions) -> Chain {
        let mut links = Vec::new();
        let mut problem = None;
        let only = set(var, "AZURE_TOKEN_CREDENTIALS");
        let wanted = |name: &str, prod: bool| match only.as_deref() {
            None => true,
            Some("dev") => !prod,
            Some("prod") => prod,
            Some(n) => n.eq_ignore_ascii_case(name),
        };
        if let Some(o) = &only
            && ![
                "dev",
                "prod",
                "EnvironmentCredential",
                "WorkloadIdentityCredential",
                "ManagedIdentityCredential",
                "AzureCliCredential",
            ]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(o))
        {
            problem = Some(format!(
                "AZURE_TOKEN_CREDENTIALS=`{}`: expected dev, prod, EnvironmentCredential, WorkloadIdentityCredential, ManagedIdentityCredential or AzureCliCredential",
                crate::error::one_line(o)
            ));
        }
        let tenant = set(var, "AZURE_TENANT_ID");
        let client = set(var, "AZURE_CLIENT_ID");
        if wanted("EnvironmentCredential", true) {
            match environment(var, tenant.as_deref(), client.as_deref(), options) {
                Ok(Some(link)) => links.push(link),
                Ok(None) => {}
                Err(m) => problem = problem.or(Some(m)),
            }
        }
        if wanted("WorkloadIdentityCredential", true)
            && let (Some(file), Some(t), Some(c)) =
                (set(var, "AZURE_FEDERATED_TOKEN_FILE"), &tenant, &client)
        {
            let opts = azure_identity::WorkloadIdentityCredentialOptions {
                credential_options: azure_identity::ClientAssertionCredentialOptions {
                    client_options: options.clone(),
                },
                client_id: Some(c.clone()),
                tenant_id: Some(t.clone()),
                token_file_path: Some(file.clone().into()),
            };
            match azure_identity::WorkloadIdentityCredential::new(Some(opts)) {
                Ok(cred) => links.push(Link {
                    name: format!("workload identity (AZURE_FEDERATED_TOKEN_FILE {file})"),
                    credential: cred,
                    configured: true,
                }),
                Err(e) => {
                    problem = problem.or(Some(format!("workload identity: {}", first_line(&e))))
                }
            }
        }
        if wanted("ManagedIdentityCredential", true) {
            let app_service = set(var, "IDENTITY_ENDPOINT").is_some();
            let opts = azure_identity::ManagedIdentityCredentialOptions {
                user_assigned_id: client.clone().map(azure_identity::UserAssignedId::ClientId),
                client_options: options.clone(),
            };
            if let Ok(cred) = azure_identity::ManagedIdentityCredential::new(Some(opts)) {
                links.push(Link {
                    name: if app_service {
                        "managed identity (IDENTITY_ENDPOINT)".into()
                    } else {
                        "managed identity (IMDS)".into()
                    },
                    credential: cred,
                    configured: app_service,
                });
            }
        }
        if wanted("AzureCliCredential", false) {
            let opts = azure_identity::AzureCliCredentialOptions {
                tenant_id: tenant.clone(),
                ..Default::default()
            };
            if let Ok(cred) = azure_identity::AzureCliCredential::new(Some(opts)) {
                links.push(Link {
                    name: "the Azure CLI (az account get-access-token)".into(),
                    credential: cred,
                    configured: false,
                });
            }
        }
        Chain {
            links,
            chosen: Mutex::new(None),
            problem,
        }
    }

    /// The credential that worked, once one has.
    pub fn chosen(&self) -> Option<String> {
        let i = (*self.chosen.lock().ok()?)?;
        self.links.get(i).map(|l| l.name.clone())
    }
}

/// The environment credential: a client secret or a certificate.
fn environment(
    var: Lookup<'_>,
    tenant: Option<&str>,
    client: Option<&str>,
    options: &ClientOptions,
) -> Result<Option<Link>, String> {
    let secret = set(var, "AZURE_CLIENT_SECRET");
    let cert = set(var, "AZURE_CLIENT_CERTIFICATE_PATH");
    if secret.is_none() && cert.is_none() {
        return Ok(None);
    }
    let (Some(tenant), Some(client)) = (tenant, client) else {
        return Err(format!(
            "{} is set, but AZURE_TENANT_ID and AZURE_CLIENT_ID must be set too",
            if secret.is_some() {
                "AZURE_CLIENT_SECRET"
            } else {
                "AZURE_CLIENT_CERTIFICATE_PATH"
            }
        ));
    };
    if let Some(secret) = secret {
        let cred = azure_identity::ClientSecretCredential::new(
            tenant,
            client.to_owned(),
            Secret::new(secret),
            Some(azure_identity::ClientSecretCredentialOptions {
                client_options: options.clone(),
            }),
        )
        .map_err(|e| format!("client secret credential: {}", first_line(&e)))?;
        return Ok(Some(Link {
            name: format!("client secret of {client} (AZURE_CLIENT_SECRET)"),
            credential: cred,
            configured: true,
        }));
    }
    let path = cert.unwrap_or_default();
    if set(var, "AZURE_CLIENT_CERTIFICATE_PASSWORD").is_some() {
        return Err(format!(
            "AZURE_CLIENT_CERTIFICATE_PATH ({path}): password-protected certificates are not supported by ksec; give a PEM file with the certificate and an unencrypted key (openssl pkcs12 -in cert.pfx -nodes -out cert.pem)"
        ));
    }
    let assertion = CertificateAssertion::load(
        &path,
        tenant,
        client,
        set(var, "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN").as_deref() == Some("1")
            || set(var, "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN").as_deref() == Some("true"),
        &set(var, "AZURE_AUTHORITY_HOST")
            .unwrap_or_else(|| "https://login.microsoftonline.com".into()),
    )?;
    let cred = azure_identity::ClientAssertionCredential::new(
        tenant.to_owned(),
        client.to_owned(),
        assertion,
        Some(azure_identity::ClientAssertionCredentialOptions {
            client_options: options.clone(),
        }),
    )
    .map_err(|e| format!("certificate credential: {}", first_line(&e)))?;
    Ok(Some(Link {
        name: format!("certificate of {client} (AZURE_CLIENT_CERTIFICATE_PATH {path})"),
        credential: cred,
        configured: true,
    }))
}

/// A certificate's client assertion (RFC 7523 §2.2, as Entra ID wants it).
struct CertificateAssertion {
    signer: RsaSigner,
    thumbprint: String,
    chain: Vec<String>,
    audience: String,
    client: String,
}

impl std::fmt::Debug for CertificateAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAssertion")
            .field("x5t", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

impl CertificateAssertion {
    fn load(
        path: &str,
        tenant: &str,
        client: &str,
        send_chain: bool,
        authority: &str,
    ) -> Result<CertificateAssertion, String> {
        let what = format!("AZURE_CLIENT_CERTIFICATE_PATH ({path})");
        let bytes =
            Zeroizing::new(std::fs::read(path).map_err(|e| format!("{what} cannot be read: {e}"))?);
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            format!("{what} is not a PEM file (a PFX? convert it: openssl pkcs12 -in cert.pfx -nodes -out cert.pem)")
        })?;
        let blocks = pem_blocks(text).map_err(|e| format!("{what}: {e}"))?;
        let certs: Vec<&[u8]> = blocks
            .iter()
            .filter(|b| b.label == "CERTIFICATE")
            .map(|b| b.der.as_slice())
            .collect();
        let Some(leaf) = certs.first() else {
            return Err(format!(
                "{what} holds no certificate (-----BEGIN CERTIFICATE-----)"
            ));
        };
        let signer = RsaSigner::from_pem(text).map_err(|e| format!("{what}: {e}"))?;
        let thumbprint = B64URL
            .encode(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf).as_ref());
        Ok(CertificateAssertion {
            signer,
            thumbprint,
            chain: if send_chain {
                certs.iter().map(|c| B64.encode(c)).collect()
            } else {
                Vec::new()
            },
            audience: format!(
                "{}/{tenant}/oauth2/v2.0/token",
                authority.trim_end_matches('/')
            ),
            client: client.to_owned(),
        })
    }
}

#[async_trait::async_trait]
impl azure_identity::ClientAssertion for CertificateAssertion {
    async fn secret(&self, _: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        let iat = now();
        let mut header = json!({ "x5t": self.thumbprint });
        if !self.chain.is_empty() {
            header["x5c"] = json!(self.chain);
        }
        let mut jti = [0u8; 16];
        use rand::RngCore as _;
        rand::rngs::OsRng.fill_bytes(&mut jti);
        let claims = json!({
            "aud": self.audience,
            "iss": self.client,
            "sub": self.client,
            "jti": hex_string(&jti),
            "nbf": iat,
            "iat": iat,
            "exp": iat + 600,
        });
        self.signer
            .sign_jwt(&header, &claims)
            .map(|j| j.to_string())
            .map_err(|m| Error::with_message(ErrorKind::Credential, m.to_string()))
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first line of an SDK error (the SDK appends a troubleshooting link
/// on the next line).
pub fn first_line(e: &Error) -> String {
    let text = e.to_string();
    text.lines().next().unwrap_or("").trim().to_owned()
}

/// Every error of the chain, outermost first.
pub fn chain_of(e: &Error) -> Vec<&(dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        out.push(err);
        cur = err.source();
    }
    out
}

/// Entra ID's own words (`AADSTS70021: No matching federated identity
/// record…`), wherever they are in an error: azure_identity 1.0 fails to
/// read Entra's error bodies (it borrows `error_description`, which Entra
/// escapes: `\r\n Trace ID…`), so the description only survives inside
/// the deserialization error's text.
pub fn entra_says(e: &Error) -> Option<String> {
    for err in chain_of(e) {
        let text = err.to_string();
        if let Some(i) = text.find("AADSTS") {
            let rest = &text[i..];
            let end = ["\\r\\n", "\r\n", "\r", "\n", "\"", " Trace ID"]
                .iter()
                .filter_map(|m| rest.find(m))
                .min()
                .unwrap_or(rest.len());
            return Some(rest[..end].trim().to_owned());
        }
    }
    None
}

/// Whether a credential's failure is a refusal (Entra ID or the identity
/// endpoint answered and said no), not "this credential is not available
/// here".
fn refused(e: &Error) -> bool {
    if entra_says(e).is_some() {
        return true;
    }
    chain_of(e).iter().any(|err| {
        err.downcast_ref::<Error>().is_some_and(|az| {
            matches!(az.kind(), ErrorKind::HttpResponse { status, .. }
                if (400..500).contains(&u16::from(*status)))
        })
    })
}

/// A credential's failure in one line: Entra's words when it answered,
/// else the SDK's first line.
fn said(e: &Error) -> String {
    if let Some(m) = entra_says(e) {
        return m;
    }
    let first = first_line(e);
    // "… retry policy expired": the cause is more useful.
    if first.contains("retry policy") {
        let cause = crate::net::innermost(e);
        return format!("{}: {cause}", first.split('.').next().unwrap_or(&first));
    }
    first
}

#[async_trait::async_trait]
impl TokenCredential for Chain {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        if let Some(p) = &self.problem {
            return Err(Error::with_message(ErrorKind::Credential, p.clone()));
        }
        let chosen = self.chosen.lock().ok().and_then(|c| *c);
        if let Some(i) = chosen {
            return self.links[i].credential.get_token(scopes, options).await;
        }
        let mut tried = Vec::new();
        for (i, link) in self.links.iter().enumerate() {
            match link.credential.get_token(scopes, options.clone()).await {
                Ok(token) => {
                    if let Ok(mut c) = self.chosen.lock() {
                        *c = Some(i);
                    }
                    return Ok(token);
                }
                Err(e) if link.configured && refused(&e) => {
                    return Err(Error::with_message(
                        ErrorKind::Credential,
                        format!("{} was refused: {}", link.name, said(&e)),
                    ));
                }
                Err(e) => tried.push(format!("{}: {}", link.name, said(&e))),
            }
        }
        Err(Error::with_message(
            ErrorKind::Credential,
            if tried.is_empty() {
                "no Azure credentials configured (AZURE_TOKEN_CREDENTIALS excludes them all)"
                    .to_owned()
            } else {
                format!("no Azure credentials worked: {}", tried.join("; "))
            },
        ))
    }
}
