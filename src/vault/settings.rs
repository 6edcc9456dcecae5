//! Vault settings as the `vault` CLI reads them (and OpenBao's `bao`, whose
//! `BAO_*` names are read too), plus the logins CI jobs and clusters use.
//!
//! | setting | variables |
//! | --- | --- |
//! | address (for [`Client::from_settings`](super::Client::from_settings)) | `VAULT_ADDR`, `BAO_ADDR` |
//! | token | `VAULT_TOKEN`, `BAO_TOKEN`, else a login below, else `~/.vault-token` |
//! | namespace | `VAULT_NAMESPACE`, `BAO_NAMESPACE` (header `X-Vault-Namespace`) |
//! | TLS | `VAULT_CACERT`, `VAULT_CAPATH`, `VAULT_CLIENT_CERT` + `VAULT_CLIENT_KEY`, `VAULT_SKIP_VERIFY` (and `BAO_*`) |
//! | login method | `KSEC_VAULT_AUTH` = `token`, `approle`, `kubernetes` or `jwt` (else chosen by what is set) |
//! | login mount | `KSEC_VAULT_AUTH_MOUNT` (default: the method's name) |
//! | AppRole | `VAULT_ROLE_ID` and `VAULT_SECRET_ID` or `VAULT_SECRET_ID_FILE` |
//! | JWT/OIDC | `KSEC_VAULT_JWT` or `KSEC_VAULT_JWT_FILE`, role `KSEC_VAULT_ROLE` (else the mount's default role) |
//! | Kubernetes | role `KSEC_VAULT_ROLE`, token `KSEC_VAULT_K8S_TOKEN_FILE` (default: the pod's service-account token) |
//!
//! The vault CLI has no variables for logins (`vault write auth/approle/login
//! role_id=… secret_id=…`); `VAULT_ROLE_ID`/`VAULT_SECRET_ID` are the names
//! most CI integrations use, the rest are ksec's own.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::error::{ErrorKind, VaultError};
use crate::net::{NetOptions, Tls};

/// The service-account token a pod gets.
pub const K8S_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// How a client gets its token.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// A token as is.
    Token {
        /// The token.
        token: Zeroizing<String>,
        /// Where it came from (`VAULT_TOKEN`, `~/.vault-token`), for messages.
        source: String,
    },
    /// AppRole login (`POST auth/MOUNT/login {role_id, secret_id}`).
    AppRole {
        /// The auth mount (`approle`).
        mount: String,
        /// The role id.
        role_id: String,
        /// The secret id.
        secret_id: Zeroizing<String>,
    },
    /// Kubernetes login with the pod's service-account token.
    Kubernetes {
        /// The auth mount (`kubernetes`).
        mount: String,
        /// The Vault role.
        role: String,
        /// The service-account token file (read at login).
        token_file: PathBuf,
    },
    /// JWT/OIDC login with a token the platform issued (a CI job's OIDC
    /// token, a projected service-account token).
    Jwt {
        /// The auth mount (`jwt`).
        mount: String,
        /// The Vault role; empty for the mount's default role.
        role: String,
        /// The JWT.
        jwt: Zeroizing<String>,
        /// Where it came from, for messages.
        source: String,
    },
    /// Nothing configured; says what was looked for.
    Missing,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Auth {
    /// What it is, for messages and `-v` (never the secret).
    pub fn describe(&self) -> String {
        match self {
            Auth::Token { source, .. } => format!("the token from {source}"),
            Auth::AppRole { mount, .. } => format!("AppRole login at auth/{mount}"),
            Auth::Kubernetes { mount, role, .. } => {
                format!("Kubernetes login at auth/{mount} as role `{role}`")
            }
            Auth::Jwt {
                mount,
                role,
                source,
                ..
            } => {
                if role.is_empty() {
                    format!("JWT login at auth/{mount} with the token from {source}")
                } else {
                    format!(
                        "JWT login at auth/{mount} as role `{role}` with the token from {source}"
                    )
                }
            }
            Auth::Missing => "no token".into(),
        }
    }
}

/// Everything a client needs besides the address of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `VAULT_ADDR` / `BAO_ADDR`, when set.
    pub address: Option<String>,
    /// How to get a token.
    pub auth: Auth,
    /// `VAULT_NAMESPACE`, sent as `X-Vault-Namespace`.
    pub namespace: Option<String>,
    /// TLS beyond the system's roots.
    pub tls: Tls,
    /// Timeout, concurrency, retries.
    pub net: NetOptions,
}

/// The hint for a missing token.
pub const MISSING_TOKEN_HINT: &str = "set VAULT_TOKEN, run `vault login` (or `bao login`) to write ~/.vault-token, or configure a login: VAULT_ROLE_ID + VAULT_SECRET_ID (AppRole), KSEC_VAULT_JWT or KSEC_VAULT_JWT_FILE (JWT/OIDC), KSEC_VAULT_AUTH=kubernetes + KSEC_VAULT_ROLE (Kubernetes)";

impl Settings {
    /// Settings from the process environment and `$HOME`.
    pub fn from_env(net: NetOptions) -> Result<Settings, VaultError> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Settings::from_lookup(|k| std::env::var(k).ok(), home.as_deref(), net)
    }

    /// Settings from `var` (a variable lookup) and the home directory.
    pub fn from_lookup(
        var: impl Fn(&str) -> Option<String>,
        home: Option<&Path>,
        net: NetOptions,
    ) -> Result<Settings, VaultError> {
        // The vault CLI's name first, OpenBao's second; empty counts as unset.
        let get = |names: &[&str]| -> Option<(String, String)> {
            names.iter().find_map(|n| {
                var(n)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| ((*n).to_owned(), v))
            })
        };
        let path = |names: &[&str]| get(names).map(|(_, v)| PathBuf::from(v));
        let skip_verify = match get(&["VAULT_SKIP_VERIFY", "BAO_SKIP_VERIFY"]) {
            Some((name, v)) => parse_bool(&v).ok_or_else(|| {
                VaultError::new(
                    ErrorKind::Config,
                    format!("{name}=`{v}` is not a boolean (use true or false)"),
                )
            })?,
            None => false,
        };
        let ca_files: Vec<PathBuf> = path(&["VAULT_CACERT", "BAO_CACERT"]).into_iter().collect();
        let ca_dirs: Vec<PathBuf> = path(&["VAULT_CAPATH", "BAO_CAPATH"]).into_iter().collect();
        let client_identity = match (
            path(&["VAULT_CLIENT_CERT", "BAO_CLIENT_CERT"]),
            path(&["VAULT_CLIENT_KEY", "BAO_CLIENT_KEY"]),
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(VaultError::new(
                    ErrorKind::Config,
                    "VAULT_CLIENT_CERT and VAULT_CLIENT_KEY go together: set both or neither",
                ));
            }
        };
        let tls = Tls {
            only_given_roots: !ca_files.is_empty() || !ca_dirs.is_empty(),
            ca_files,
            ca_dirs,
            client_identity,
            skip_verify,
        };
        Ok(Settings {
            address: get(&["VAULT_ADDR", "BAO_ADDR"]).map(|(_, v)| v.trim().to_owned()),
            auth: auth(&get, home)?,
            namespace: get(&["VAULT_NAMESPACE", "BAO_NAMESPACE"])
                .map(|(_, v)| v.trim().trim_matches('/').to_owned()),
            tls,
            net,
        })
    }
}

/// Go's `strconv.ParseBool`, which the vault CLI uses for its switches.
fn parse_bool(v: &str) -> Option<bool> {
    match v.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

type Lookup<'a> = dyn Fn(&[&str]) -> Option<(String, String)> + 'a;

/// The login method: `KSEC_VAULT_AUTH` when set, else the first that is
/// configured of a token, AppRole, JWT, Kubernetes (a role and the pod's
/// token file), `~/.vault-token`.
fn auth(get: &Lookup<'_>, home: Option<&Path>) -> Result<Auth, VaultError> {
    let config = |m: String| VaultError::new(ErrorKind::Config, m);
    let mount = |default: &str| {
        get(&["KSEC_VAULT_AUTH_MOUNT"])
            .map(|(_, m)| m.trim().trim_matches('/').to_owned())
            .unwrap_or_else(|| default.to_owned())
    };
    let role = || get(&["KSEC_VAULT_ROLE"]).map(|(_, r)| r.trim().to_owned());
    let token = get(&["VAULT_TOKEN", "BAO_TOKEN"]).map(|(name, t)| Auth::Token {
        token: Zeroizing::new(t.trim().to_owned()),
        source: name,
    });
    let approle = || -> Result<Option<Auth>, VaultError> {
        let Some((_, role_id)) = get(&["VAULT_ROLE_ID"]) else {
            return Ok(None);
        };
        let secret_id = match (get(&["VAULT_SECRET_ID"]), get(&["VAULT_SECRET_ID_FILE"])) {
            (Some((_, s)), _) => Zeroizing::new(s.trim().to_owned()),
            (None, Some((_, f))) => read_secret(Path::new(&f), "VAULT_SECRET_ID_FILE")?,
            (None, None) => {
                return Err(config(
                    "VAULT_ROLE_ID is set but neither VAULT_SECRET_ID nor VAULT_SECRET_ID_FILE: AppRole login needs both ids".into(),
                ));
            }
        };
        Ok(Some(Auth::AppRole {
            mount: mount("approle"),
            role_id: role_id.trim().to_owned(),
            secret_id,
        }))
    };
    let jwt = || -> Result<Option<Auth>, VaultError> {
        let (jwt, source) = match (get(&["KSEC_VAULT_JWT"]), get(&["KSEC_VAULT_JWT_FILE"])) {
            (Some((_, j)), _) => (Zeroizing::new(j.trim().to_owned()), "KSEC_VAULT_JWT".into()),
            (None, Some((_, f))) => (read_secret(Path::new(&f), "KSEC_VAULT_JWT_FILE")?, f),
            (None, None) => return Ok(None),
        };
        Ok(Some(Auth::Jwt {
            mount: mount("jwt"),
            role: role().unwrap_or_default(),
            jwt,
            source,
        }))
    };
    let kubernetes = |required: bool| -> Result<Option<Auth>, VaultError> {
        let token_file = get(&["KSEC_VAULT_K8S_TOKEN_FILE"])
            .map(|(_, f)| PathBuf::from(f))
            .unwrap_or_else(|| PathBuf::from(K8S_TOKEN_FILE));
        let Some(role) = role() else {
            return if required {
                Err(config(
                    "KSEC_VAULT_AUTH=kubernetes needs the Vault role in KSEC_VAULT_ROLE".into(),
                ))
            } else {
                Ok(None)
            };
        };
        if !required && !token_file.exists() {
            return Ok(None);
        }
        Ok(Some(Auth::Kubernetes {
            mount: mount("kubernetes"),
            role,
            token_file,
        }))
    };
    let token_file = || -> Result<Option<Auth>, VaultError> {
        let Some(path) = home.map(|h| h.join(".vault-token")) else {
            return Ok(None);
        };
        if !path.exists() {
            return Ok(None);
        }
        let t = read_secret(&path, "the token helper file")?;
        Ok((!t.is_empty()).then(|| Auth::Token {
            token: t,
            source: "~/.vault-token".into(),
        }))
    };
    if let Some((_, method)) = get(&["KSEC_VAULT_AUTH"]) {
        let picked = match method.trim() {
            "token" => match token {
                Some(t) => Some(t),
                None => token_file()?,
            },
            "approle" => Some(approle()?.ok_or_else(|| {
                config("KSEC_VAULT_AUTH=approle needs VAULT_ROLE_ID and VAULT_SECRET_ID (or VAULT_SECRET_ID_FILE)".into())
            })?),
            "jwt" | "oidc" => Some(jwt()?.ok_or_else(|| {
                config("KSEC_VAULT_AUTH=jwt needs the token in KSEC_VAULT_JWT or KSEC_VAULT_JWT_FILE".into())
            })?),
            "kubernetes" => kubernetes(true)?,
            other => {
                return Err(config(format!(
                    "KSEC_VAULT_AUTH=`{}`: expected token, approle, jwt or kubernetes",
                    crate::error::one_line(other)
                )));
            }
        };
        return Ok(picked.unwrap_or(Auth::Missing));
    }
    if let Some(t) = token {
        return Ok(t);
    }
    // In order, each looked at only when the ones before are not configured.
    if let Some(a) = approle()? {
        return Ok(a);
    }
    if let Some(a) = jwt()? {
        return Ok(a);
    }
    if let Some(a) = kubernetes(false)? {
        return Ok(a);
    }
    Ok(token_file()?.unwrap_or(Auth::Missing))
}

/// A secret from a file, trimmed (files usually end in a line break).
fn read_secret(path: &Path, what: &str) -> Result<Zeroizing<String>, VaultError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        VaultError::new(
            ErrorKind::Config,
            format!("cannot read {what} {}: {e}", path.display()),
        )
    })?;
    let text = Zeroizing::new(text);
    Ok(Zeroizing::new(text.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)], home: Option<&Path>) -> Result<Settings, VaultError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned(), home, NetOptions::default())
    }

    #[test]
    fn token_wins_then_logins_then_the_token_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".vault-token"), "from-file\n").unwrap();
        let home = Some(dir.path());
        let s = settings(&[("VAULT_TOKEN", "t"), ("VAULT_ROLE_ID", "r")], home).unwrap();
        assert!(matches!(&s.auth, Auth::Token { source, .. } if source == "VAULT_TOKEN"));
        let s = settings(&[("BAO_TOKEN", "t")], home).unwrap();
        assert!(matches!(&s.auth, Auth::Token { source, .. } if source == "BAO_TOKEN"));
        let s = settings(&[("VAULT_ROLE_ID", "r"), ("VAULT_SECRET_ID", "s")], home).unwrap();
        assert!(matches!(&s.auth, Auth::AppRole { mount, .. } if mount == "approle"));
        let s = settings(
            &[
                ("KSEC_VAULT_JWT", "a.b.c"),
                ("KSEC_VAULT_ROLE", "ci"),
                ("KSEC_VAULT_AUTH_MOUNT", "/gitlab/"),
            ],
            home,
        )
        .unwrap();
        assert!(
            matches!(&s.auth, Auth::Jwt { mount, role, .. } if mount == "gitlab" && role == "ci")
        );
        let s = settings(&[], home).unwrap();
        match &s.auth {
            Auth::Token { token, source } => {
                assert_eq!(token.as_str(), "from-file");
                assert_eq!(source, "~/.vault-token");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(settings(&[], None).unwrap().auth, Auth::Missing);
        // Kubernetes only when its token file exists (or asked for).
        let sa = dir.path().join("sa-token");
        let s = settings(&[("KSEC_VAULT_ROLE", "app")], None).unwrap();
        assert_eq!(s.auth, Auth::Missing);
        std::fs::write(&sa, "jwt").unwrap();
        let s = settings(
            &[
                ("KSEC_VAULT_ROLE", "app"),
                ("KSEC_VAULT_K8S_TOKEN_FILE", sa.to_str().unwrap()),
            ],
            None,
        )
        .unwrap();
        assert!(matches!(&s.auth, Auth::Kubernetes { role, .. } if role == "app"));
    }

    #[test]
    fn explicit_method_and_refusals() {
        let e = settings(&[("KSEC_VAULT_AUTH", "approle")], None).unwrap_err();
        assert!(e.message.contains("VAULT_ROLE_ID"), "{e}");
        let e = settings(&[("KSEC_VAULT_AUTH", "ldap")], None).unwrap_err();
        assert!(e.message.contains("expected token"), "{e}");
        let e = settings(&[("VAULT_ROLE_ID", "r")], None).unwrap_err();
        assert!(e.message.contains("VAULT_SECRET_ID"), "{e}");
        let e = settings(&[("KSEC_VAULT_AUTH", "kubernetes")], None).unwrap_err();
        assert!(e.message.contains("KSEC_VAULT_ROLE"), "{e}");
        let e = settings(&[("VAULT_SKIP_VERIFY", "maybe")], None).unwrap_err();
        assert!(e.message.contains("not a boolean"), "{e}");
        let e = settings(&[("VAULT_CLIENT_CERT", "c.pem")], None).unwrap_err();
        assert!(e.message.contains("go together"), "{e}");
        // KSEC_VAULT_AUTH=token skips the logins even when they are configured.
        let s = settings(
            &[
                ("KSEC_VAULT_AUTH", "token"),
                ("VAULT_ROLE_ID", "r"),
                ("VAULT_SECRET_ID", "s"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(s.auth, Auth::Missing);
    }

    #[test]
    fn tls_and_namespace() {
        let s = settings(
            &[
                ("VAULT_CACERT", "/ca.pem"),
                ("VAULT_SKIP_VERIFY", "1"),
                ("VAULT_NAMESPACE", "team1/"),
                ("VAULT_ADDR", "https://v:8200"),
            ],
            None,
        )
        .unwrap();
        assert!(s.tls.only_given_roots && s.tls.skip_verify);
        assert_eq!(s.tls.ca_files, vec![PathBuf::from("/ca.pem")]);
        assert_eq!(s.namespace.as_deref(), Some("team1"));
        assert_eq!(s.address.as_deref(), Some("https://v:8200"));
        let s = settings(&[], None).unwrap();
        assert!(!s.tls.only_given_roots && !s.tls.skip_verify);
    }

    #[test]
    fn debug_never_shows_secrets() {
        let s = settings(
            &[("VAULT_ROLE_ID", "r"), ("VAULT_SECRET_ID", "very-secret")],
            None,
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("very-secret"));
        let s = settings(&[("VAULT_TOKEN", "hvs.tokentoken")], None).unwrap();
        assert!(!format!("{s:?}").contains("tokentoken"));
    }
}
