//! The token exchanges of [`super`]: the OAuth grants (RFC 7523 JWT bearer,
//! refresh token), the STS token exchange (RFC 8693) with its subject token
//! from a file, a URL or an executable, service-account impersonation, and
//! the metadata server. Every answer is read by [`access_token`], which
//! turns OAuth and Google API errors into one line.

use std::time::Duration;

use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::{
    ACCESS_TOKEN_TYPE, CredError, Credentials, External, FileCreds, JWT_BEARER, SCOPE,
    SubjectSource, TOKEN_EXCHANGE, str_field,
};
use crate::keys::jws::now;
use crate::net::{self, NetOptions, Reply};

/// A token from the metadata server (GCE, GKE Workload Identity, Cloud Run).
pub(super) async fn metadata_token(
    creds: &Credentials,
    base: &str,
    http: &reqwest::Client,
    net: NetOptions,
) -> Result<Zeroizing<String>, CredError> {
    let url = format!("{base}/computeMetadata/v1/instance/service-accounts/default/token");
    let request = http
        .get(&url)
        .header("Metadata-Flavor", "Google")
        .timeout(net.timeout.min(Duration::from_secs(3)));
    // One attempt: off GCP nothing answers, and that is the common case.
    let reply = net::send(request, 1).await;
    let none = |why: String| {
        if creds.fallback {
            CredError::Missing(format!(
                "no Google credentials: tried {}, and the metadata server ({base}): {why}",
                creds.tried.join(", ")
            ))
        } else {
            CredError::Transport(format!("the metadata server ({base}): {why}"))
        }
    };
    let reply = reply.map_err(|t| none(t.describe("no answer", net.timeout)))?;
    if !reply.ok() {
        return Err(none(format!("status {}", reply.status)));
    }
    access_token(&reply, "the metadata server", "access_token").map_err(|e| match e {
        CredError::Refused(m) => none(m),
        other => other,
    })
}

/// `application/x-www-form-urlencoded` of the pairs, wiped when dropped.
fn form(pairs: &[(&str, &str)]) -> Zeroizing<String> {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    Zeroizing::new(s.finish())
}

/// POSTs a form to a token endpoint and reads `field` of the answer.
async fn post_form(
    http: &reqwest::Client,
    net: NetOptions,
    url: &str,
    body: Zeroizing<String>,
    basic: Option<(&str, &str)>,
    what: &str,
) -> Result<Zeroizing<String>, CredError> {
    let mut request = http
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.as_bytes().to_vec());
    if let Some((user, password)) = basic {
        request = request.basic_auth(user, Some(password));
    }
    let reply = net::send(request, net.max_attempts).await.map_err(|t| {
        CredError::Transport(t.describe(
            &format!("{what} at {}", net::without_query(url)),
            net.timeout,
        ))
    })?;
    access_token(
        &reply,
        &format!("{what} at {}", net::without_query(url)),
        "access_token",
    )
}

/// `field` of a successful token answer, or what the endpoint said.
fn access_token(reply: &Reply, what: &str, field: &str) -> Result<Zeroizing<String>, CredError> {
    let json = reply.json();
    if reply.ok() {
        return json
            .get(field)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(|t| Zeroizing::new(t.to_owned()))
            .ok_or_else(|| CredError::Refused(format!("{what} answered without `{field}`")));
    }
    // OAuth errors: {"error": "invalid_grant", "error_description": "…"};
    // Google API errors: {"error": {"message": …, "status": …}}.
    let said = match (json.get("error"), json.get("error_description")) {
        (Some(Value::String(e)), Some(Value::String(d))) => format!("{e}: {d}"),
        (Some(Value::String(e)), _) => e.clone(),
        (Some(Value::Object(o)), _) => o
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        _ => String::new(),
    };
    let said = if said.is_empty() {
        format!("status {}", reply.status)
    } else {
        format!("{} ({})", net::short(&said), reply.status)
    };
    Err(CredError::Refused(format!(
        "{what} refused the credentials: {said}"
    )))
}

pub(super) async fn file_token(
    creds: &FileCreds,
    http: &reqwest::Client,
    net: NetOptions,
    what: &str,
) -> Result<Zeroizing<String>, CredError> {
    match creds {
        FileCreds::ServiceAccount {
            email,
            key_id,
            signer,
            token_uri,
        } => {
            let iat = now();
            let mut header = json!({});
            if !key_id.is_empty() {
                header["kid"] = Value::from(key_id.as_str());
            }
            let claims = json!({
                "iss": email,
                "scope": SCOPE,
                "aud": token_uri,
                "iat": iat,
                "exp": iat + 3600,
            });
            let assertion = signer
                .sign_jwt(&header, &claims)
                .map_err(|e| CredError::Broken(format!("{what}: {e}")))?;
            let body = form(&[("grant_type", JWT_BEARER), ("assertion", &assertion)]);
            post_form(http, net, token_uri, body, None, "the token endpoint").await
        }
        FileCreds::AuthorizedUser {
            client_id,
            client_secret,
            refresh_token,
            token_uri,
        } => {
            let body = form(&[
                ("grant_type", "refresh_token"),
                ("client_id", client_id),
                ("client_secret", client_secret),
                ("refresh_token", refresh_token),
            ]);
            post_form(http, net, token_uri, body, None, "the token endpoint").await
        }
        FileCreds::ExternalAuthorizedUser {
            token_url,
            client_id,
            client_secret,
            refresh_token,
        } => {
            let body = form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ]);
            post_form(
                http,
                net,
                token_url,
                body,
                Some((client_id, client_secret)),
                "the token endpoint",
            )
            .await
        }
        FileCreds::External(x) => {
            let subject = subject_token(x, http, net, what).await?;
            let options = x
                .workforce_user_project
                .as_ref()
                .map(|p| json!({"userProject": p}).to_string());
            let mut pairs = vec![
                ("grant_type", TOKEN_EXCHANGE),
                ("audience", x.audience.as_str()),
                ("scope", SCOPE),
                ("requested_token_type", ACCESS_TOKEN_TYPE),
                ("subject_token", subject.as_str()),
                ("subject_token_type", x.subject_token_type.as_str()),
            ];
            if let Some(o) = &options {
                pairs.push(("options", o));
            }
            let basic = x.client.as_ref().map(|(id, s)| (id.as_str(), s.as_str()));
            let sts = post_form(
                http,
                net,
                &x.token_url,
                form(&pairs),
                basic,
                "the STS endpoint",
            )
            .await?;
            match &x.impersonation_url {
                Some(url) => impersonate(http, net, url, &sts, &[]).await,
                None => Ok(sts),
            }
        }
        FileCreds::Impersonated {
            source,
            url,
            delegates,
        } => {
            let source_token = Box::pin(file_token(source, http, net, what)).await?;
            impersonate(http, net, url, &source_token, delegates).await
        }
    }
}

/// IAM Credentials `generateAccessToken` for a service account.
async fn impersonate(
    http: &reqwest::Client,
    net: NetOptions,
    url: &str,
    bearer: &str,
    delegates: &[String],
) -> Result<Zeroizing<String>, CredError> {
    let mut body = json!({"scope": [SCOPE], "lifetime": "3600s"});
    if !delegates.is_empty() {
        body["delegates"] = json!(delegates);
    }
    let request = http
        .post(url)
        .bearer_auth(bearer)
        .header("Content-Type", "application/json")
        .body(body.to_string());
    let what = format!(
        "service account impersonation at {}",
        net::without_query(url)
    );
    let reply = net::send(request, net.max_attempts)
        .await
        .map_err(|t| CredError::Transport(t.describe(&what, net.timeout)))?;
    access_token(&reply, &what, "accessToken")
}

/// The external account's subject token, from its file, URL or executable.
async fn subject_token(
    x: &External,
    http: &reqwest::Client,
    net: NetOptions,
    what: &str,
) -> Result<Zeroizing<String>, CredError> {
    let pick = |text: &str,
                field: &Option<String>,
                origin: &str|
     -> Result<Zeroizing<String>, CredError> {
        match field {
            None => Ok(Zeroizing::new(text.trim().to_owned())),
            Some(f) => serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|j| str_field(&j, f))
                .map(Zeroizing::new)
                .ok_or_else(|| {
                    CredError::Broken(format!("{what}: {origin} holds no JSON field `{f}`"))
                }),
        }
    };
    let token = match &x.source {
        SubjectSource::File { path, field } => {
            let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                CredError::Broken(format!(
                    "{what}: cannot read the subject token file {}: {e}",
                    path.display()
                ))
            })?);
            pick(&text, field, &path.display().to_string())?
        }
        SubjectSource::Url {
            url,
            headers,
            field,
        } => {
            let mut request = http.get(url);
            for (k, v) in headers {
                request = request.header(k.as_str(), v.as_str());
            }
            let origin = format!("the subject token URL {}", net::without_query(url));
            let reply = net::send(request, net.max_attempts)
                .await
                .map_err(|t| CredError::Transport(t.describe(&origin, net.timeout)))?;
            if !reply.ok() {
                return Err(CredError::Refused(format!(
                    "{origin} answered status {}",
                    reply.status
                )));
            }
            pick(&reply.body, field, &origin)?
        }
        SubjectSource::Executable {
            command,
            timeout,
            output_file,
        } => executable_token(x, command, *timeout, output_file.as_deref(), what)?,
    };
    if token.is_empty() {
        return Err(CredError::Broken(format!(
            "{what}: the subject token is empty"
        )));
    }
    Ok(token)
}

/// Runs the credential source's executable (Google's executable-sourced
/// credentials contract: JSON on stdout, `success`, the token by type).
fn executable_token(
    x: &External,
    command: &str,
    timeout: Duration,
    output_file: Option<&str>,
    what: &str,
) -> Result<Zeroizing<String>, CredError> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let Some((program, args)) = words.split_first() else {
        return Err(CredError::Broken(format!(
            "{what}: the executable command is empty"
        )));
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .env("GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE", &x.audience)
        .env("GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE", &x.subject_token_type)
        .env("GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE", "0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    if let Some(f) = output_file {
        cmd.env("GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE", f);
    }
    if let Some(email) = x
        .impersonation_url
        .as_deref()
        .and_then(|u| u.rsplit('/').next())
        .and_then(|s| s.strip_suffix(":generateAccessToken"))
    {
        cmd.env("GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL", email);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| CredError::Broken(format!("{what}: cannot run `{program}`: {e}")))?;
    let started = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CredError::Transport(format!(
                    "{what}: `{program}` did not finish within {}",
                    net::seconds(timeout)
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(CredError::Broken(format!("{what}: `{program}`: {e}"))),
        }
    };
    let mut out = Zeroizing::new(String::new());
    if let Some(mut stdout) = child.stdout.take() {
        use std::io::Read as _;
        let _ = stdout.read_to_string(&mut out);
    }
    if !status.success() {
        return Err(CredError::Refused(format!(
            "{what}: `{program}` failed ({status})"
        )));
    }
    let j: Value = serde_json::from_str(&out)
        .map_err(|_| CredError::Broken(format!("{what}: `{program}` printed no JSON")))?;
    if j.get("success").and_then(Value::as_bool) != Some(true) {
        let msg = str_field(&j, "message").unwrap_or_else(|| "no message".into());
        return Err(CredError::Refused(format!(
            "{what}: `{program}` reported failure: {}",
            net::short(&msg)
        )));
    }
    if let Some(exp) = j.get("expiration_time").and_then(Value::as_u64)
        && exp <= now()
    {
        return Err(CredError::Refused(format!(
            "{what}: `{program}` returned an expired token"
        )));
    }
    str_field(&j, "id_token")
        .or_else(|| str_field(&j, "saml_response"))
        .map(Zeroizing::new)
        .ok_or_else(|| {
            CredError::Broken(format!(
                "{what}: `{program}` returned no id_token or saml_response"
            ))
        })
}
