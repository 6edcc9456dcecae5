//! Google credentials: sops' two variables, then the Application Default
//! Credentials chain as Google's client libraries walk it.
//!
//! 1. `GOOGLE_CREDENTIALS` (sops): a credentials file's path or its JSON.
//! 2. `GOOGLE_OAUTH_ACCESS_TOKEN` (sops): an access token as is (e.g.
//!    `gcloud auth print-access-token` in CI).
//! 3. `GOOGLE_APPLICATION_CREDENTIALS`: a credentials file (a missing file is
//!    an error, not a fall-through).
//! 4. gcloud's ADC file, `$CLOUDSDK_CONFIG/application_default_credentials.json`
//!    (default `~/.config/gcloud/`), written by `gcloud auth
//!    application-default login`.
//! 5. The metadata server of GCE, GKE (Workload Identity) and Cloud Run:
//!    `GCE_METADATA_HOST` (host:port) or 169.254.169.254; skipped with
//!    `NO_GCE_CHECK=true`.
//!
//! Credentials files, by `type`:
//!
//! * `service_account`: a JWT signed with the key (RS256, `kid` = the key's
//!   id) exchanged at `token_uri` (RFC 7523 grant).
//! * `authorized_user`: the refresh token exchanged at `token_uri`.
//! * `external_account` (workload identity federation, e.g. GitHub Actions
//!   OIDC): the subject token from `credential_source` (`file`, `url`, or
//!   `executable` with `GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1`)
//!   exchanged at the STS `token_url` (RFC 8693), then, with
//!   `service_account_impersonation_url`, for a service account's token.
//! * `external_account_authorized_user`, `impersonated_service_account`.
//!
//! Tokens are for the `cloud-platform` scope and fetched once per run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use zeroize::Zeroizing;

use crate::keys::jws::RsaSigner;
use crate::net::NetOptions;

mod exchange;

/// The OAuth scope asked for.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's token endpoint, when a file names none.
pub const TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// An access token and the project to bill (`x-goog-user-project`).
#[derive(Clone)]
pub struct Token {
    /// The bearer token.
    pub access: Zeroizing<String>,
    /// `quota_project_id` of the file, or `GOOGLE_CLOUD_QUOTA_PROJECT`.
    pub quota_project: Option<String>,
}

/// Where the credentials come from.
pub struct Credentials {
    /// For messages and `-v`: `GOOGLE_APPLICATION_CREDENTIALS (/p/sa.json, service account x@p.iam…)`.
    pub describe: String,
    source: Source,
    quota_project: Option<String>,
    /// Whether the metadata server is only the last resort (nothing else
    /// was configured), so that its absence means "no credentials".
    pub fallback: bool,
    /// What was looked for before the metadata server, for the "no
    /// credentials" message.
    pub tried: Vec<String>,
}

enum Source {
    Static(Zeroizing<String>),
    File(FileCreds),
    Metadata { base: String },
}

enum FileCreds {
    ServiceAccount {
        email: String,
        key_id: String,
        signer: Box<RsaSigner>,
        token_uri: String,
    },
    AuthorizedUser {
        client_id: String,
        client_secret: Zeroizing<String>,
        refresh_token: Zeroizing<String>,
        token_uri: String,
    },
    External(Box<External>),
    ExternalAuthorizedUser {
        token_url: String,
        client_id: String,
        client_secret: Zeroizing<String>,
        refresh_token: Zeroizing<String>,
    },
    Impersonated {
        source: Box<FileCreds>,
        url: String,
        delegates: Vec<String>,
    },
}

struct External {
    audience: String,
    subject_token_type: String,
    token_url: String,
    source: SubjectSource,
    impersonation_url: Option<String>,
    client: Option<(String, Zeroizing<String>)>,
    workforce_user_project: Option<String>,
}

enum SubjectSource {
    File {
        path: PathBuf,
        field: Option<String>,
    },
    Url {
        url: String,
        headers: Vec<(String, String)>,
        field: Option<String>,
    },
    Executable {
        command: String,
        timeout: Duration,
        output_file: Option<String>,
    },
}

/// A credentials problem, for the provider to turn into a key error:
/// `Missing` means nothing is configured here (a key that others can
/// open), `Refused` and `Broken` mean something is configured and wrong.
#[derive(Debug, Clone)]
pub enum CredError {
    /// No credentials anywhere.
    Missing(String),
    /// The token endpoint (or metadata server) refused what we sent.
    Refused(String),
    /// A file or setting that cannot be used.
    Broken(String),
    /// The token endpoint could not be reached or timed out.
    Transport(String),
}

impl CredError {
    /// The message.
    pub fn message(&self) -> &str {
        match self {
            CredError::Missing(m)
            | CredError::Refused(m)
            | CredError::Broken(m)
            | CredError::Transport(m) => m,
        }
    }
}

type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn str_field(v: &Value, k: &str) -> Option<String> {
    v.get(k)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn need(v: &Value, k: &str, what: &str) -> Result<String, CredError> {
    str_field(v, k).ok_or_else(|| CredError::Broken(format!("{what} has no `{k}`")))
}

impl Credentials {
    /// Finds the credentials to use (reads files; no network).
    pub fn discover(var: Lookup<'_>, home: Option<&Path>) -> Result<Credentials, CredError> {
        let set = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let quota_env = set("GOOGLE_CLOUD_QUOTA_PROJECT");
        let from_file = |origin: &str, path: &Path| -> Result<Credentials, CredError> {
            let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                CredError::Broken(format!(
                    "{origin} names {}, which cannot be read: {e}",
                    path.display()
                ))
            })?);
            let what = format!("{origin} ({})", path.display());
            Credentials::from_json(&text, &what, quota_env.clone(), var)
        };
        if let Some(c) = set("GOOGLE_CREDENTIALS") {
            let c = Zeroizing::new(c);
            return if c.trim_start().starts_with('{') {
                Credentials::from_json(&c, "GOOGLE_CREDENTIALS (JSON)", quota_env, var)
            } else {
                from_file("GOOGLE_CREDENTIALS", Path::new(c.trim()))
            };
        }
        if let Some(t) = set("GOOGLE_OAUTH_ACCESS_TOKEN") {
            return Ok(Credentials {
                describe: "GOOGLE_OAUTH_ACCESS_TOKEN".into(),
                source: Source::Static(Zeroizing::new(t.trim().to_owned())),
                quota_project: quota_env,
                fallback: false,
                tried: Vec::new(),
            });
        }
        if let Some(p) = set("GOOGLE_APPLICATION_CREDENTIALS") {
            return from_file("GOOGLE_APPLICATION_CREDENTIALS", Path::new(p.trim()));
        }
        let gcloud_dir = set("CLOUDSDK_CONFIG")
            .map(PathBuf::from)
            .or_else(|| home.map(|h| h.join(".config/gcloud")));
        let mut tried = vec!["GOOGLE_APPLICATION_CREDENTIALS (not set)".to_owned()];
        if let Some(dir) = gcloud_dir {
            let adc = dir.join("application_default_credentials.json");
            if adc.is_file() {
                return from_file("gcloud's ADC file", &adc);
            }
            tried.push(format!("gcloud's ADC file ({}: none)", adc.display()));
        }
        if set("NO_GCE_CHECK").is_some_and(|v| matches!(v.trim(), "true" | "True" | "TRUE" | "1")) {
            return Err(CredError::Missing(format!(
                "no Google credentials: tried {} (the metadata server is off: NO_GCE_CHECK)",
                tried.join(", ")
            )));
        }
        let host = set("GCE_METADATA_HOST").unwrap_or_else(|| "169.254.169.254".into());
        Ok(Credentials {
            describe: format!("the metadata server ({host})"),
            source: Source::Metadata {
                base: format!("http://{}", host.trim()),
            },
            quota_project: quota_env,
            fallback: true,
            tried,
        })
    }

    fn from_json(
        text: &str,
        what: &str,
        quota_env: Option<String>,
        var: Lookup<'_>,
    ) -> Result<Credentials, CredError> {
        let v: Value = serde_json::from_str(text).map_err(|e| {
            CredError::Broken(format!("{what} is not a JSON credentials file: {e}"))
        })?;
        let kind = str_field(&v, "type").unwrap_or_default();
        let creds = file_creds(&v, what, var)?;
        let quota_project = quota_env.or_else(|| str_field(&v, "quota_project_id"));
        let describe = match &creds {
            FileCreds::ServiceAccount { email, .. } => format!("{what}: service account {email}"),
            _ => format!("{what}: {kind}"),
        };
        Ok(Credentials {
            describe,
            source: Source::File(creds),
            quota_project,
            fallback: false,
            tried: Vec::new(),
        })
    }

    /// An access token (network: token endpoint, STS, metadata server).
    pub async fn token(&self, http: &reqwest::Client, net: NetOptions) -> Result<Token, CredError> {
        let access = match &self.source {
            Source::Static(t) => t.clone(),
            Source::File(f) => exchange::file_token(f, http, net, &self.describe).await?,
            Source::Metadata { base } => exchange::metadata_token(self, base, http, net).await?,
        };
        Ok(Token {
            access,
            quota_project: self.quota_project.clone(),
        })
    }
}

fn file_creds(v: &Value, what: &str, var: Lookup<'_>) -> Result<FileCreds, CredError> {
    let kind = str_field(v, "type").unwrap_or_default();
    Ok(match kind.as_str() {
        "service_account" => {
            let pem = Zeroizing::new(need(v, "private_key", what)?);
            let signer = RsaSigner::from_pem(&pem)
                .map_err(|e| CredError::Broken(format!("{what}: private_key: {e}")))?;
            FileCreds::ServiceAccount {
                email: need(v, "client_email", what)?,
                key_id: str_field(v, "private_key_id").unwrap_or_default(),
                signer: Box::new(signer),
                token_uri: str_field(v, "token_uri").unwrap_or_else(|| TOKEN_URI.into()),
            }
        }
        "authorized_user" => FileCreds::AuthorizedUser {
            client_id: need(v, "client_id", what)?,
            client_secret: Zeroizing::new(need(v, "client_secret", what)?),
            refresh_token: Zeroizing::new(need(v, "refresh_token", what)?),
            token_uri: str_field(v, "token_uri").unwrap_or_else(|| TOKEN_URI.into()),
        },
        "external_account" => FileCreds::External(Box::new(external(v, what, var)?)),
        "external_account_authorized_user" => FileCreds::ExternalAuthorizedUser {
            token_url: need(v, "token_url", what)?,
            client_id: need(v, "client_id", what)?,
            client_secret: Zeroizing::new(need(v, "client_secret", what)?),
            refresh_token: Zeroizing::new(need(v, "refresh_token", what)?),
        },
        "impersonated_service_account" => {
            let source = v
                .get("source_credentials")
                .ok_or_else(|| CredError::Broken(format!("{what} has no `source_credentials`")))?;
            FileCreds::Impersonated {
                source: Box::new(file_creds(
                    source,
                    &format!("{what} (source_credentials)"),
                    var,
                )?),
                url: need(v, "service_account_impersonation_url", what)?,
                delegates: v
                    .get("delegates")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|d| d.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        }
        "" => return Err(CredError::Broken(format!("{what} has no `type`"))),
        other => {
            return Err(CredError::Broken(format!(
                "{what}: credentials of type `{other}` are not supported by ksec (service_account, authorized_user, external_account, external_account_authorized_user, impersonated_service_account are)"
            )));
        }
    })
}

fn external(v: &Value, what: &str, var: Lookup<'_>) -> Result<External, CredError> {
    let src = v
        .get("credential_source")
        .ok_or_else(|| CredError::Broken(format!("{what} has no `credential_source`")))?;
    let format = src.get("format");
    let field = match format.and_then(|f| str_field(f, "type")).as_deref() {
        None | Some("text") => None,
        Some("json") => Some(
            format
                .and_then(|f| str_field(f, "subject_token_field_name"))
                .ok_or_else(|| {
                    CredError::Broken(format!(
                        "{what}: credential_source.format has no subject_token_field_name"
                    ))
                })?,
        ),
        Some(other) => {
            return Err(CredError::Broken(format!(
                "{what}: credential_source.format.type `{other}` is neither text nor json"
            )));
        }
    };
    let source = if let Some(path) = str_field(src, "file") {
        SubjectSource::File {
            path: PathBuf::from(path),
            field,
        }
    } else if let Some(url) = str_field(src, "url") {
        let headers = src
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| {
                h.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        SubjectSource::Url {
            url,
            headers,
            field,
        }
    } else if let Some(exe) = src.get("executable") {
        if var("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES").as_deref() != Some("1") {
            return Err(CredError::Broken(format!(
                "{what} runs an executable for its subject token; allow that with GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1"
            )));
        }
        let timeout = exe
            .get("timeout_millis")
            .and_then(Value::as_u64)
            .unwrap_or(30_000);
        SubjectSource::Executable {
            command: need(
                exe,
                "command",
                &format!("{what} (credential_source.executable)"),
            )?,
            timeout: Duration::from_millis(timeout),
            output_file: str_field(exe, "output_file"),
        }
    } else if src.get("environment_id").is_some() {
        return Err(CredError::Broken(format!(
            "{what}: an AWS credential source (environment_id aws1) is not supported by ksec; give the subject token through a `file` or `url` source"
        )));
    } else {
        return Err(CredError::Broken(format!(
            "{what}: credential_source has neither `file`, `url` nor `executable`"
        )));
    };
    let client = match (str_field(v, "client_id"), str_field(v, "client_secret")) {
        (Some(id), Some(secret)) => Some((id, Zeroizing::new(secret))),
        _ => None,
    };
    Ok(External {
        audience: need(v, "audience", what)?,
        subject_token_type: need(v, "subject_token_type", what)?,
        token_url: str_field(v, "token_url")
            .unwrap_or_else(|| "https://sts.googleapis.com/v1/token".into()),
        source,
        impersonation_url: str_field(v, "service_account_impersonation_url"),
        client,
        workforce_user_project: str_field(v, "workforce_pool_user_project"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn discover(vars: &[(&str, &str)], home: Option<&Path>) -> Result<Credentials, CredError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Credentials::discover(&|k| map.get(k).cloned(), home)
    }

    #[test]
    fn the_chain_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let adc = dir.path().join(".config/gcloud");
        std::fs::create_dir_all(&adc).unwrap();
        std::fs::write(
            adc.join("application_default_credentials.json"),
            r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r","quota_project_id":"billing"}"#,
        )
        .unwrap();
        let c = discover(&[("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.x")], Some(dir.path())).unwrap();
        assert_eq!(c.describe, "GOOGLE_OAUTH_ACCESS_TOKEN");
        let c = discover(&[], Some(dir.path())).unwrap();
        assert!(
            c.describe.starts_with("gcloud's ADC file"),
            "{}",
            c.describe
        );
        assert_eq!(c.quota_project.as_deref(), Some("billing"));
        let c = discover(&[("GOOGLE_CLOUD_QUOTA_PROJECT", "other")], Some(dir.path())).unwrap();
        assert_eq!(c.quota_project.as_deref(), Some("other"));
        let c = discover(&[("GCE_METADATA_HOST", "127.0.0.1:1")], None).unwrap();
        assert!(
            c.fallback && c.describe.contains("127.0.0.1:1"),
            "{}",
            c.describe
        );
        let e = discover(&[("NO_GCE_CHECK", "true")], None).err().unwrap();
        assert!(matches!(e, CredError::Missing(_)));
        let e = discover(
            &[("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent.json")],
            None,
        )
        .err()
        .unwrap();
        assert!(e.message().contains("cannot be read"), "{}", e.message());
    }

    #[test]
    fn files_are_checked_before_any_call() {
        let e = discover(
            &[("GOOGLE_CREDENTIALS", r#"{"type":"gdch_service_account"}"#)],
            None,
        )
        .err()
        .unwrap();
        assert!(e.message().contains("not supported"), "{}", e.message());
        let e = discover(
            &[(
                "GOOGLE_CREDENTIALS",
                r#"{"type":"service_account","client_email":"a@b","private_key":"x"}"#,
            )],
            None,
        )
        .err()
        .unwrap();
        assert!(e.message().contains("private_key"), "{}", e.message());
        let aws = r#"{"type":"external_account","audience":"a","subject_token_type":"t","credential_source":{"environment_id":"aws1"}}"#;
        let e = discover(&[("GOOGLE_CREDENTIALS", aws)], None)
            .err()
            .unwrap();
        assert!(
            e.message().contains("AWS credential source"),
            "{}",
            e.message()
        );
        let exe = r#"{"type":"external_account","audience":"a","subject_token_type":"t","credential_source":{"executable":{"command":"x"}}}"#;
        let e = discover(&[("GOOGLE_CREDENTIALS", exe)], None)
            .err()
            .unwrap();
        assert!(
            e.message()
                .contains("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES"),
            "{}",
            e.message()
        );
        assert!(
            discover(
                &[
                    ("GOOGLE_CREDENTIALS", exe),
                    ("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1")
                ],
                None
            )
            .is_ok()
        );
    }
}
