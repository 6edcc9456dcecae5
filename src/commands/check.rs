//! `ksec check`: what pre-commit and CI ask before a Secret reaches git.
//!
//! Lists every problem as `path:line: problem` (or JSON) and exits 8 when
//! there is any; 0 when there is none. Checked, per file:
//!
//! * invalid YAML, misplaced or malformed footers, Secrets ksec refuses
//!   (anchors, duplicate keys, non-string values, …);
//! * a Secret with a clear-text value: every value of a Secret that is not
//!   encrypted, and — what sops' `filestatus` misses (getsops/sops#571) —
//!   **each** clear value among encrypted ones, not just the first;
//! * a value that looks like a damaged token;
//! * a format without a MAC (v1/v2), or a v3/v4 footer without its MAC line;
//! * a Secret carrying `kubectl.kubernetes.io/last-applied-configuration`
//!   (a clear copy of the whole Secret);
//! * ciphertext or a footer in a document that is not a v1 Secret;
//! * a file whose keys or clear sections differ from its `.ksec.yaml` rule;
//! * a rule that matches no file (when the check covers the rule's whole
//!   directory), and a configuration that does not parse;
//! * with `--verify`: every MAC and value must verify and an available key
//!   must open every data key (the only part that needs keys or network).
//!
//! Values of sections a rule keeps in clear text (`sections:`) are not
//! problems.

use std::collections::HashSet;
use std::path::PathBuf;
use std::rc::Rc;

use serde::Serialize;

use super::batch::{self, Loaded};
use super::doc_failure;
use crate::config::{self, Config, Configs};
use crate::envelope::codec;
use crate::envelope::footer::{ClearSections, Footer, KeyId};
use crate::error::{Exit, Failure, Result};
use crate::io::{self, Source};
use crate::keys::Keyring;
use crate::manifest;
use crate::paths;
use crate::progress::Progress;
use crate::secret::{self, OpenOptions};

/// What `check` was asked to do.
pub struct CheckPlan {
    /// Files and directories (default: the current directory).
    pub paths: Vec<PathBuf>,
    /// Open every Secret too (needs keys).
    pub verify: bool,
    /// JSON output.
    pub json: bool,
    /// Input size limit.
    pub max_input: u64,
}

/// One problem.
#[derive(Debug, Serialize)]
struct Finding {
    file: String,
    /// 1-based; 0 when the problem has no line.
    line: usize,
    /// A stable name for machines.
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct Report<'a> {
    files_checked: usize,
    problems: &'a [Finding],
}

/// Runs `check`. `keyring` is called only for `--verify`.
pub fn run(plan: &CheckPlan, keyring: &dyn Fn() -> Keyring, configs: &Configs) -> Result<()> {
    let args = if plan.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        plan.paths.clone()
    };
    let inputs = paths::expand(&args, Source::Stdin)?;
    let mut progress = Progress::new(inputs.sources.len());
    let mut findings = Vec::new();
    let mut files = Vec::with_capacity(inputs.sources.len());
    for (i, source) in inputs.sources.iter().enumerate() {
        progress.files("reading", i);
        let name = source.display();
        let text = match io::read_text(source, plan.max_input) {
            Ok(t) => t,
            Err(e) => {
                findings.push(from_failure(&name, "unreadable", &e));
                continue;
            }
        };
        match manifest::locate(&text) {
            Ok(docs) => files.push(Loaded {
                source: source.clone(),
                name,
                text,
                docs,
            }),
            Err(e) => findings.push(from_failure(
                &name,
                "invalid-yaml",
                &super::locate_failure(&name, &e),
            )),
        }
    }
    let keyring = plan.verify.then(keyring);
    if let Some(k) = &keyring {
        batch::unwrap_everything(k, &files, false, &mut progress);
    }
    let mut used: HashSet<(PathBuf, usize)> = HashSet::new();
    let mut config_errors: HashSet<String> = HashSet::new();
    for (i, f) in files.iter().enumerate() {
        progress.files("checking", i);
        let rule = match configs.rule(&f.source) {
            Ok(r) => r,
            Err(e) => {
                if config_errors.insert(e.message.clone()) {
                    findings.push(from_failure(&f.name, "config", &e));
                }
                None
            }
        };
        if let Some((c, i)) = &rule {
            used.insert((c.path.clone(), *i));
        }
        check_file(f, rule.as_ref(), keyring.as_ref(), &mut findings);
    }
    progress.clear();
    unused_rules(&args, configs, &used, &mut findings);
    findings.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));

    let out = if plan.json {
        let report = Report {
            files_checked: inputs.sources.len(),
            problems: &findings,
        };
        let mut s = serde_json::to_string_pretty(&report).expect("check JSON serialises");
        s.push('\n');
        s
    } else {
        let mut s = String::new();
        for f in &findings {
            if f.line > 0 {
                s.push_str(&format!("{}:{}: {}\n", f.file, f.line, f.message));
            } else {
                s.push_str(&format!("{}: {}\n", f.file, f.message));
            }
        }
        s
    };
    io::write_stdout(out.as_bytes())?;
    let n = inputs.sources.len();
    if findings.is_empty() {
        super::note(&format!(
            "{n} file{} checked, no problems",
            super::encrypt::plural(n)
        ));
        return Ok(());
    }
    Err(Failure::new(
        Exit::Findings,
        format!(
            "check: {} problem{} ({n} file{} checked)",
            findings.len(),
            super::encrypt::plural(findings.len()),
            super::encrypt::plural(n)
        ),
    ))
}

/// A failure whose message starts with `FILE:LINE: ` as a finding.
fn from_failure(file: &str, code: &'static str, e: &Failure) -> Finding {
    let (file, line, message) = split_location(&e.message).unwrap_or((file, 0, &e.message));
    Finding {
        file: file.to_owned(),
        line,
        code,
        message: message.to_owned(),
    }
}

/// `FILE:LINE: rest` or `FILE:LINE:COLUMN: rest` → (FILE, LINE, rest).
fn split_location(m: &str) -> Option<(&str, usize, &str)> {
    let mut search = 0;
    while let Some(i) = m[search..].find(':').map(|i| i + search) {
        let rest = &m[i + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && rest[digits..].starts_with(':') {
            let line = rest[..digits].parse().ok()?;
            let mut tail = &rest[digits + 1..];
            // A column after the line.
            let col = tail.bytes().take_while(u8::is_ascii_digit).count();
            if col > 0 && tail[col..].starts_with(':') {
                tail = &tail[col + 1..];
            }
            return Some((&m[..i], line, tail.trim_start()));
        }
        search = i + 1;
    }
    None
}

fn check_file(
    f: &Loaded,
    rule: Option<&(Rc<Config>, usize)>,
    keyring: Option<&Keyring>,
    out: &mut Vec<Finding>,
) {
    let file = f.name.as_str();
    let mut push = |line: usize, code: &'static str, message: String| {
        out.push(Finding {
            file: file.to_owned(),
            line,
            code,
            message,
        });
    };
    let rule = rule.map(|(c, i)| (c, &c.rules[*i]));
    let rule_clear = rule.map_or(ClearSections::default(), |(_, r)| r.clear);
    if f.docs.iter().any(|d| d.is_secret)
        && let Err(e) = super::decrypt::check_kubectl_split(file, &f.text)
    {
        push(
            0,
            "kubectl-split",
            e.message
                .trim_start_matches(&format!("{file}: "))
                .to_owned(),
        );
    }
    for doc in &f.docs {
        if let Err(e) = super::decrypt::refuse_stray_ciphertext(file, doc) {
            let (_, line, m) = split_location(&e.message).unwrap_or((file, doc.line, &e.message));
            push(line, "ciphertext-outside-secret", m.to_owned());
        }
        for stray in &doc.strays {
            for v in stray
                .values
                .iter()
                .filter(|v| !codec::looks_encrypted(&v.value))
            {
                let e = super::exposure::failure(
                    file,
                    &super::exposure::Exposure::Stray {
                        doc,
                        stray,
                        value: v,
                    },
                    false,
                );
                let (_, line, m) = split_location(&e.message).unwrap_or((file, v.line, &e.message));
                push(line, "clear-value", m.to_owned());
            }
        }
        if !doc.is_secret {
            if let Err(e) = super::decrypt::refuse_hidden_ciphertext(file, doc) {
                let (_, line, m) =
                    split_location(&e.message).unwrap_or((file, doc.line, &e.message));
                push(line, "ciphertext-outside-secret", m.to_owned());
            } else if doc
                .kind
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case("secret"))
            {
                for site in doc
                    .sites
                    .iter()
                    .filter(|s| !codec::looks_encrypted(&s.value))
                {
                    let e = super::exposure::failure(
                        file,
                        &super::exposure::Exposure::NotV1 { doc, site },
                        false,
                    );
                    let (_, line, m) =
                        split_location(&e.message).unwrap_or((file, site.line, &e.message));
                    push(line, "clear-value", m.to_owned());
                }
            }
            continue;
        }
        let who = super::place(file, doc, 0)
            .trim_start_matches(&format!("{file}:0: "))
            .to_owned();
        for p in &doc.problems {
            let key = p.key.as_ref().map(|k| format!(", {k}")).unwrap_or_default();
            push(
                p.line,
                "invalid-secret",
                format!("{}{key}: {}", who, p.message),
            );
        }
        if let Some(line) = doc.last_applied_line {
            push(
                line,
                "last-applied-configuration",
                format!(
                    "{}: metadata.annotations holds {}, a clear copy of the whole Secret",
                    who,
                    manifest::LAST_APPLIED
                ),
            );
        }
        if !doc.problems.is_empty() {
            continue;
        }
        let footer = match &doc.footer {
            None => None,
            Some(block) => match Footer::parse(block.lines.iter().map(String::as_str)) {
                Ok(footer) => Some(footer),
                Err(_) => {
                    // classify places the error on the offending line.
                    let e = secret::classify(doc).err();
                    let msg = e
                        .map(|e| doc_failure(file, doc, e).message)
                        .unwrap_or_default();
                    let (_, line, m) = split_location(&msg).unwrap_or((file, block.line, &msg));
                    push(line, "malformed-footer", m.to_owned());
                    continue;
                }
            },
        };
        let clear = footer.as_ref().map_or(rule_clear, |f| f.clear);
        let v1 = footer.as_ref().is_some_and(|f| f.version == 1);
        let mut tokens = 0;
        let mut clear_values = Vec::new();
        for s in doc
            .sites
            .iter()
            .filter(|s| !secret::is_clear(clear, s.section))
        {
            if codec::looks_encrypted(&s.value) || (v1 && s.value.is_empty()) {
                tokens += 1;
            } else if footer.is_some() && secret::token_shaped(&s.value) {
                push(
                    s.line,
                    "malformed-value",
                    format!(
                        "{}, {}: the encrypted value is damaged (not valid base64 `ciphertext.iv.tag`)",
                        who,
                        secret::label(s)
                    ),
                );
            } else {
                clear_values.push(s);
            }
        }
        if footer.is_none() && tokens > 0 {
            push(
                doc.line,
                "missing-footer",
                format!("{}: encrypted values but no `# kubesec:` footer", who),
            );
        }
        for s in &clear_values {
            let why = if footer.is_some() {
                "clear-text value in an encrypted Secret (partly encrypted: added or changed outside ksec?)"
            } else {
                "clear-text value: the Secret is not encrypted"
            };
            push(
                s.line,
                if footer.is_some() {
                    "partly-encrypted"
                } else {
                    "clear-value"
                },
                format!("{}, {}: {why}", who, secret::label(s)),
            );
        }
        let Some(footer) = footer else {
            continue;
        };
        let footer_line = doc.footer.as_ref().map_or(doc.line, |b| b.line);
        if footer.version < 3 {
            push(
                footer_line,
                "no-mac",
                format!(
                    "{}: format v{} carries no MAC, so tampering cannot be detected (ksec recompute-mac)",
                    who, footer.version
                ),
            );
        } else if footer.mac.is_none() {
            push(
                footer_line,
                "no-mac",
                format!("{}: the footer has no MAC line (`# kubesec:mac:`)", who),
            );
        }
        if let Some((config, r)) = rule {
            let keys: Vec<KeyId> = footer.keys.iter().map(|w| w.key.clone()).collect();
            if !r.agrees(&keys, footer.clear) {
                push(
                    footer_line,
                    "keys-differ",
                    format!(
                        "{}: {} (rule `{}`, {}:{}); run `ksec updatekeys {file}`",
                        who,
                        rule_difference(r, &keys, footer.clear),
                        r.pattern,
                        config.path.display(),
                        r.line
                    ),
                );
            }
        }
        if let Some(k) = keyring
            && clear_values.is_empty()
            && footer.version >= 3
            && footer.mac.is_some()
            && let Err(e) = secret::open(doc, footer, k, OpenOptions::default())
        {
            let msg = doc_failure(file, doc, e).message;
            let (_, line, m) = split_location(&msg).unwrap_or((file, doc.line, &msg));
            push(line, "verify", m.to_owned());
        }
    }
}

/// What differs between a footer and its rule, keys named.
fn rule_difference(rule: &config::Rule, keys: &[KeyId], clear: ClearSections) -> String {
    let missing: Vec<String> = rule
        .keys
        .iter()
        .filter(|k| !keys.contains(k))
        .map(ToString::to_string)
        .collect();
    let extra: Vec<String> = keys
        .iter()
        .filter(|k| !rule.keys.contains(k))
        .map(ToString::to_string)
        .collect();
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing key {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        parts.push(format!("key not in the rule {}", extra.join(", ")));
    }
    if clear != rule.clear {
        parts.push(format!(
            "sections in clear text: {} (rule: {})",
            clear.describe(),
            rule.clear.describe()
        ));
    }
    format!("keys differ from .ksec.yaml: {}", parts.join("; "))
}

/// Rules that no checked file used, for configurations whose whole
/// directory the check covered (a check of `prod/` says nothing about a
/// rule for `staging/`).
fn unused_rules(
    args: &[PathBuf],
    configs: &Configs,
    used: &HashSet<(PathBuf, usize)>,
    out: &mut Vec<Finding>,
) {
    let roots: Vec<PathBuf> = args
        .iter()
        .filter(|a| a.is_dir())
        .filter_map(|a| config::absolute(a).ok())
        .collect();
    for c in configs.loaded() {
        if !roots.iter().any(|r| c.dir.starts_with(r)) {
            continue;
        }
        for (i, r) in c.rules.iter().enumerate() {
            if !used.contains(&(c.path.clone(), i)) {
                out.push(Finding {
                    file: c.path.display().to_string(),
                    line: r.line,
                    code: "unused-rule",
                    message: format!(
                        "rule `{}` matches no checked file (or only files an earlier rule takes)",
                        r.pattern
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_location;

    #[test]
    fn locations() {
        assert_eq!(
            split_location("a/b.yaml:3: x: y"),
            Some(("a/b.yaml", 3, "x: y"))
        );
        assert_eq!(
            split_location("a.yaml:3:7: bad"),
            Some(("a.yaml", 3, "bad"))
        );
        assert_eq!(split_location("no location"), None);
    }
}
