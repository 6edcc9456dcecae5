//! `.sops.yaml`: sops' `creation_rules`, read as ksec rules that write the
//! SOPS format, so a repository set up for sops needs no new configuration.
//!
//! ```yaml
//! creation_rules:
//!   - path_regex: prod/.*\.yaml$          # unanchored, as sops applies it
//!     encrypted_regex: ^(data|stringData)$
//!     age: age1…,age1…                      # a comma-separated string or a list
//!     pgp: [FINGERPRINT]
//!     kms: arn:aws:kms:…
//!   - path_regex: shared/
//!     shamir_threshold: 2
//!     key_groups:
//!       - age: [age1…]
//!       - pgp: [FINGERPRINT]
//!         kms: [{arn: "arn:aws:kms:…", context: {team: db}}]
//! ```
//!
//! What differs from sops: the file is looked up from the target file's
//! directory upward (sops looks from the working directory,
//! getsops/sops#242), and only when no `.ksec.yaml` is found. `path_regex`
//! is matched as sops matches it: against the path relative to the
//! configuration's directory, or the absolute path for a file outside it.
//! Unknown fields are ignored, as sops ignores them.

use std::path::Path;

use serde::Deserialize;

use super::{Config, Matcher, Rule, absolute};
use crate::error::{Error, Exit, Location, Result};
use crate::formats::FormatRule;
use crate::keys::{KeyId, KeyParams, KeyType};
use crate::manifest::ClearSections;

/// A string or a list of strings (sops accepts both; a string is split at
/// commas).
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Keys {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Keys {
    fn list(&self) -> Vec<String> {
        let raw: Vec<&str> = match self {
            Keys::None => Vec::new(),
            Keys::One(s) => s.split(',').collect(),
            Keys::Many(v) => v.iter().map(String::as_str).collect(),
        };
        raw.into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[derive(Deserialize, Default)]
struct RawFile {
    #[serde(default)]
    creation_rules: Vec<RawRule>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawRule {
    path_regex: Option<String>,
    age: Keys,
    pgp: Keys,
    kms: Keys,
    aws_profile: Option<String>,
    gcp_kms: Keys,
    azure_keyvault: Keys,
    hc_vault_transit_uri: Keys,
    key_groups: Vec<RawGroup>,
    shamir_threshold: Option<usize>,
    unencrypted_suffix: Option<String>,
    encrypted_suffix: Option<String>,
    unencrypted_regex: Option<String>,
    encrypted_regex: Option<String>,
    unencrypted_comment_regex: Option<String>,
    encrypted_comment_regex: Option<String>,
    mac_only_encrypted: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawGroup {
    age: Vec<String>,
    pgp: Vec<String>,
    kms: Vec<RawKms>,
    gcp_kms: Vec<RawGcp>,
    azure_keyvault: Vec<RawAzure>,
    hc_vault: Vec<String>,
    merge: Vec<RawGroup>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawKms {
    arn: String,
    role: Option<String>,
    context: Option<std::collections::BTreeMap<String, String>>,
    aws_profile: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawGcp {
    resource_id: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawAzure {
    vault_url: String,
    key: String,
    version: String,
}

/// A group's keys and the parameters of those that have some.
#[derive(Default)]
struct Group {
    keys: Vec<KeyId>,
    params: Vec<(KeyId, KeyParams)>,
}

impl Group {
    fn push(&mut self, key: KeyId) {
        if !self.keys.contains(&key) {
            self.keys.push(key);
        }
    }
}

/// Parses a `.sops.yaml`.
pub fn parse(text: &str, path: &Path) -> Result<Config> {
    let name = path.display().to_string();
    let raw: RawFile = serde_saphyr::from_str(text).map_err(|e| {
        let e = e.without_snippet();
        let line = e.location().map_or(0, |l| l.line());
        let message = e.to_string();
        let message = match message.rfind(" at line ") {
            Some(i) => message[..i].to_owned(),
            None => message,
        };
        Error::new(Exit::Input, "config", message).at(Location::file(&name).line(line as usize))
    })?;
    let dir = absolute(path.parent().unwrap_or(Path::new(".")))?;
    let mut rules = Vec::with_capacity(raw.creation_rules.len());
    for (i, r) in raw.creation_rules.into_iter().enumerate() {
        let line = rule_line(text, i);
        let bad = |m: String| {
            Error::new(Exit::Input, "config", m)
                .at(Location::file(&name).line(line))
                .hint("see README, \"From sops\", for what ksec reads from a .sops.yaml")
        };
        rules.push(rule(r, line, &bad)?);
    }
    Ok(Config {
        path: path.to_owned(),
        dir,
        rules,
        ignore: Vec::new(),
        sops: true,
    })
}

/// The 1-based line of the `i`-th creation rule (for messages).
fn rule_line(text: &str, i: usize) -> usize {
    let mut in_rules = false;
    let mut seen = 0;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("creation_rules:") {
            in_rules = true;
            continue;
        }
        if in_rules && line.trim_start().starts_with("- ") {
            let indent = line.len() - line.trim_start().len();
            if indent <= 2 {
                if seen == i {
                    return n + 1;
                }
                seen += 1;
            }
        }
    }
    1
}

fn rule(r: RawRule, line: usize, bad: &dyn Fn(String) -> Error) -> Result<Rule> {
    let selections: Vec<(&str, String)> = [
        ("unencrypted_suffix", r.unencrypted_suffix.clone()),
        ("encrypted_suffix", r.encrypted_suffix.clone()),
        ("unencrypted_regex", r.unencrypted_regex.clone()),
        ("encrypted_regex", r.encrypted_regex.clone()),
        (
            "unencrypted_comment_regex",
            r.unencrypted_comment_regex.clone(),
        ),
        ("encrypted_comment_regex", r.encrypted_comment_regex.clone()),
    ]
    .into_iter()
    .filter_map(|(f, v)| v.filter(|v| !v.is_empty()).map(|v| (f, v)))
    .collect();
    if selections.len() > 1 {
        let names: Vec<&str> = selections.iter().map(|(f, _)| *f).collect();
        return Err(bad(format!(
            "a creation rule names more than one of {} (sops allows one)",
            names.join(", ")
        )));
    }
    let selection = selections
        .into_iter()
        .next()
        .map(|(f, v)| (f.to_owned(), v));
    if let Some((field, value)) = &selection
        && field.ends_with("regex")
        && let Err(e) = regex::Regex::new(value)
    {
        return Err(bad(format!(
            "`{field}` is not a valid regular expression: {}",
            crate::error::one_line(&e.to_string())
        )));
    }
    let matcher = match r.path_regex.as_deref().filter(|p| !p.is_empty()) {
        None => Matcher::Regex(None),
        Some(p) => Matcher::Regex(Some(regex::Regex::new(p).map_err(|e| {
            bad(format!(
                "`path_regex` is not a valid regular expression: {}",
                crate::error::one_line(&e.to_string())
            ))
        })?)),
    };
    if r.aws_profile.as_deref().is_some_and(|p| !p.is_empty()) {
        return Err(bad(
            "`aws_profile` per rule is not supported; set AWS_PROFILE (ksec uses the AWS default credential chain)".into(),
        ));
    }
    let groups: Vec<Group> = if r.key_groups.is_empty() {
        let mut g = Group::default();
        add_flat(&mut g, &r, bad)?;
        vec![g]
    } else {
        r.key_groups
            .iter()
            .map(|raw| {
                let mut g = Group::default();
                add_group(&mut g, raw, bad)?;
                Ok(g)
            })
            .collect::<Result<_>>()?
    };
    let keys: Vec<KeyId> = {
        let mut all: Vec<KeyId> = Vec::new();
        for k in groups.iter().flat_map(|g| &g.keys) {
            if !all.contains(k) {
                all.push(k.clone());
            }
        }
        all
    };
    let threshold = r.shamir_threshold.unwrap_or(0);
    if groups.len() > 1 && (threshold == 1 || threshold > groups.len()) {
        return Err(bad(format!(
            "`shamir_threshold: {threshold}` with {} key groups: it must be between 2 and the number of groups",
            groups.len()
        )));
    }
    let key_params = groups.iter().flat_map(|g| g.params.clone()).collect();
    Ok(Rule {
        pattern: r.path_regex.clone().unwrap_or_default(),
        line,
        keys,
        clear: ClearSections::default(),
        format: FormatRule {
            format: Some("sops"),
            selection,
            mac_only_encrypted: r.mac_only_encrypted.unwrap_or(false),
            key_groups: if groups.len() > 1 {
                groups.into_iter().map(|g| g.keys).collect()
            } else {
                Vec::new()
            },
            shamir_threshold: threshold,
            key_params,
            ..FormatRule::default()
        },
        matcher,
    })
}

/// A key id from a `.sops.yaml` entry, checked as ksec checks `--key`.
fn key(kind: KeyType, id: &str, bad: &dyn Fn(String) -> Error) -> Result<KeyId> {
    let spec = format!("{}:{}", kind.as_str(), id.trim());
    crate::keys::parse_key(&spec)
        .and_then(|k| crate::keys::normalise_config_key(&k))
        .map_err(|e| bad(e.0.trim_start_matches("--key ").to_owned()))
}

fn aws_key(arn: &str, bad: &dyn Fn(String) -> Error) -> Result<KeyId> {
    if let Some((_, role)) = arn.split_once('+') {
        return Err(bad(format!(
            "the KMS key `{arn}` names a role to assume (`+{role}`); ksec uses the AWS default credential chain: assume the role there (AWS_PROFILE with role_arn, or AWS_ROLE_ARN)"
        )));
    }
    key(KeyType::Aws, arn, bad)
}

fn add_flat(g: &mut Group, r: &RawRule, bad: &dyn Fn(String) -> Error) -> Result<()> {
    for id in r.age.list() {
        g.push(key(KeyType::Age, &id, bad)?);
    }
    for id in r.pgp.list() {
        g.push(key(KeyType::Pgp, &id, bad)?);
    }
    for id in r.kms.list() {
        g.push(aws_key(&id, bad)?);
    }
    for id in r.gcp_kms.list() {
        g.push(key(KeyType::Gcp, &id, bad)?);
    }
    for id in r.azure_keyvault.list() {
        g.push(key(KeyType::Azure, &id, bad)?);
    }
    for id in r.hc_vault_transit_uri.list() {
        g.push(key(KeyType::Vault, &id, bad)?);
    }
    Ok(())
}

fn add_group(g: &mut Group, raw: &RawGroup, bad: &dyn Fn(String) -> Error) -> Result<()> {
    for m in &raw.merge {
        add_group(g, m, bad)?;
    }
    for id in &raw.age {
        g.push(key(KeyType::Age, id, bad)?);
    }
    for id in &raw.pgp {
        g.push(key(KeyType::Pgp, id, bad)?);
    }
    for k in &raw.kms {
        if k.role.as_deref().is_some_and(|r| !r.is_empty()) {
            return Err(bad(format!(
                "the KMS key `{}` names a role to assume; ksec uses the AWS default credential chain: assume the role there",
                k.arn
            )));
        }
        if k.aws_profile.as_deref().is_some_and(|p| !p.is_empty()) {
            return Err(bad(
                "`aws_profile` per key is not supported; set AWS_PROFILE".into(),
            ));
        }
        let id = aws_key(&k.arn, bad)?;
        if let Some(ctx) = &k.context {
            g.params.push((
                id.clone(),
                KeyParams {
                    pgp_signed: false,
                    encryption_context: ctx.iter().map(|(a, b)| (a.clone(), b.clone())).collect(),
                },
            ));
        }
        g.push(id);
    }
    for k in &raw.gcp_kms {
        g.push(key(KeyType::Gcp, &k.resource_id, bad)?);
    }
    for k in &raw.azure_keyvault {
        let id = crate::formats::sops::meta::azure_id(&k.vault_url, &k.key, &k.version);
        g.push(key(KeyType::Azure, &id, bad)?);
    }
    for uri in &raw.hc_vault {
        g.push(key(KeyType::Vault, uri, bad)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGE1: &str = "age1ms44zv6pmxxml7w7nyeqcsuqh0zl74t00wkvxhdwldj7l25pnugsvtsnwn";
    const AGE2: &str = "age1xfkr53tnynx87rl598fl34vtz4uppadq2qkujvttny02lrhx036qnv4jh8";

    fn parse_at(text: &str) -> Result<Config> {
        parse(text, Path::new("/repo/.sops.yaml"))
    }

    #[test]
    fn creation_rules() {
        let c = parse_at(&format!(
            "creation_rules:\n  - path_regex: prod/.*\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: {AGE1},{AGE2}\n  - unknown_field: 1\n    age: [{AGE1}]\n    mac_only_encrypted: true\n"
        ))
        .unwrap();
        assert!(c.sops);
        assert_eq!(c.rules.len(), 2);
        assert_eq!(c.rules[0].keys.len(), 2);
        assert_eq!(c.rules[0].line, 2);
        assert_eq!(c.rules[1].line, 5);
        assert_eq!(
            c.rules[0].format.selection,
            Some(("encrypted_regex".into(), "^(data|stringData)$".into()))
        );
        assert!(c.rules[1].format.mac_only_encrypted);
        let idx = |p: &str| c.rule_for(Path::new(p)).map(|(i, _)| i);
        assert_eq!(idx("/repo/prod/db.yaml"), Some(0));
        assert_eq!(idx("/repo/dev/db.yaml"), Some(1));
        // Unanchored: `prod/` anywhere in the relative path.
        assert_eq!(idx("/repo/x/prod/db.yaml"), Some(0));
    }

    #[test]
    fn key_groups_and_refusals() {
        let c = parse_at(&format!(
            "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age: [{AGE1}]\n      - age: [{AGE2}]\n        kms:\n          - arn: arn:aws:kms:us-east-1:111122223333:key/abcd\n            context: {{team: db}}\n"
        ))
        .unwrap();
        let f = &c.rules[0].format;
        assert_eq!(f.key_groups.len(), 2);
        assert_eq!(f.shamir_threshold, 2);
        assert_eq!(
            f.key_params[0].1.encryption_context,
            vec![("team".into(), "db".into())]
        );
        assert_eq!(c.rules[0].keys.len(), 3);
        for bad in [
            "creation_rules:\n  - encrypted_regex: a\n    unencrypted_regex: b\n",
            "creation_rules:\n  - path_regex: '('\n",
            "creation_rules:\n  - age: not-a-recipient\n",
            "creation_rules:\n  - kms: arn:aws:kms:us-east-1:1:key/a+arn:aws:iam::1:role/r\n",
            "creation_rules:\n  - shamir_threshold: 3\n    key_groups:\n      - age: [age1ms44zv6pmxxml7w7nyeqcsuqh0zl74t00wkvxhdwldj7l25pnugsvtsnwn]\n      - age: [age1xfkr53tnynx87rl598fl34vtz4uppadq2qkujvttny02lrhx036qnv4jh8]\n",
        ] {
            assert!(parse_at(bad).is_err(), "{bad}");
        }
    }
}
