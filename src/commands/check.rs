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
//! * SealedSecrets that do not read (another apiVersion, no name, both the
//!   deprecated `spec.data` and `encryptedData`) and sealed values that
//!   are not base64 or too short to be one; their values are never clear
//!   text;
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

use ksec::config::{self, Config, Configs};
use ksec::error::{Error, Exit, Result};
use ksec::formats::{self, OpenOptions, State};
use ksec::io;
use ksec::keys::KeyId;
use ksec::manifest::{ClearSections, Stream};
use ksec::pipeline::{self, Exposure, Session};

use super::{Context, note, plural};
use crate::progress::Progress;

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

impl Finding {
    /// A finding from an error: its file (else `file`), line, code, and
    /// what follows the location.
    fn of(file: &str, e: &Error) -> Finding {
        Finding {
            file: e.at.file.clone().unwrap_or_else(|| file.to_owned()),
            line: e.at.line,
            code: e.code,
            message: e.describe(),
        }
    }
}

#[derive(Serialize)]
struct Report<'a> {
    files_checked: usize,
    problems: &'a [Finding],
    /// What does not fail the check but should be looked at (comments
    /// inside the values of encrypted Secrets).
    warnings: &'a [Finding],
}

/// Runs `check`. Keys are used only for `--verify`.
pub fn run(plan: &CheckPlan, ctx: &Context) -> Result<()> {
    let args = if plan.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        plan.paths.clone()
    };
    let configs = ctx.configs()?;
    let inputs = super::inputs(&args, &configs, true)?;
    let mut progress = Progress::new(inputs.sources.len());
    let mut findings = Vec::new();
    let mut warnings = Vec::new();
    let mut files = Vec::with_capacity(inputs.sources.len());
    for (i, source) in inputs.sources.iter().enumerate() {
        progress.files("reading", i);
        match pipeline::read(source, plan.max_input) {
            Ok(stream) => files.push((source, stream)),
            Err(e) => findings.push(Finding::of(&source.display(), &e)),
        }
    }
    let session = plan.verify.then(|| ctx.session());
    if let Some(s) = &session {
        // `--verify`: every data key of every file in one batch.
        let envelopes: Vec<formats::Envelope> = files
            .iter()
            .filter_map(|(_, stream)| pipeline::classify(stream).ok())
            .flat_map(|c| c.envelopes)
            .collect();
        pipeline::warm_unwraps(&s.keyring, &envelopes, false);
    }
    let mut used: HashSet<(PathBuf, usize)> = HashSet::new();
    let mut config_errors: HashSet<String> = HashSet::new();
    for (i, (source, stream)) in files.iter().enumerate() {
        progress.files("checking", i);
        let rule = match configs.rule(source) {
            Ok(r) => r,
            Err(e) => {
                if config_errors.insert(e.to_string()) {
                    findings.push(Finding::of(&stream.name, &e));
                }
                None
            }
        };
        if let Some((c, i)) = &rule {
            used.insert((c.path.clone(), *i));
        }
        check_stream(stream, rule.as_ref(), session.as_ref(), &mut findings);
        warnings.extend(
            sealed_value_comments(stream)
                .iter()
                .map(|e| Finding::of(&stream.name, e)),
        );
    }
    progress.clear();
    stale_temps(&inputs.sources, &mut findings);
    unused_rules(&args, &configs, &used, &mut findings);
    findings.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    report(plan, inputs.sources.len(), &findings, &warnings)
}

/// Temporary files of interrupted ksec runs next to the checked files: they
/// may hold clear text (`decrypt -i` writes clear text there).
fn stale_temps(sources: &[ksec::io::Source], findings: &mut Vec<Finding>) {
    let mut dirs: Vec<PathBuf> = sources
        .iter()
        .filter_map(|s| match s {
            ksec::io::Source::File(p) => Some(match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
                _ => PathBuf::from("."),
            }),
            ksec::io::Source::Stdin => None,
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        for (path, pid) in ksec::stale::stale_temps(&dir) {
            let shown = path
                .strip_prefix("./")
                .unwrap_or(&path)
                .display()
                .to_string();
            let e = Error::new(
                Exit::Findings,
                "stale-temp",
                format!("a temporary file of an interrupted ksec run (process {pid}, gone); it may hold clear text"),
            )
            .in_file(&shown)
            .hint("delete it; the next ksec that writes in this directory removes it too");
            findings.push(Finding::of(&shown, &e));
        }
    }
}

/// Comments inside the values of the stream's encrypted Secrets.
fn sealed_value_comments(stream: &Stream) -> Vec<Error> {
    let Ok(c) = pipeline::classify(stream) else {
        return Vec::new();
    };
    let sealed: HashSet<usize> = c
        .envelopes
        .iter()
        .filter(|e| matches!(e.state, State::Sealed(_)))
        .flat_map(|e| e.docs.iter().copied())
        .collect();
    pipeline::value_comments(stream)
        .into_iter()
        .filter(|e| {
            stream.docs.iter().any(|d| {
                sealed.contains(&d.position)
                    && Some(d.index) == e.at.document
                    && d.item_path() == e.at.item
            })
        })
        .collect()
}

/// Prints the findings (warnings on stderr); exit 8 when there is a problem.
fn report(
    plan: &CheckPlan,
    files: usize,
    findings: &[Finding],
    warnings: &[Finding],
) -> Result<()> {
    if !plan.json {
        for w in warnings {
            super::warn(&format!("{}:{}: {}", w.file, w.line, w.message));
        }
    }
    let out = if plan.json {
        let report = Report {
            files_checked: files,
            problems: findings,
            warnings,
        };
        let mut s = serde_json::to_string_pretty(&report).expect("check JSON serialises");
        s.push('\n');
        s
    } else {
        let mut s = String::new();
        for f in findings {
            if f.line > 0 {
                s.push_str(&format!("{}:{}: {}\n", f.file, f.line, f.message));
            } else {
                s.push_str(&format!("{}: {}\n", f.file, f.message));
            }
        }
        s
    };
    io::write_stdout(out.as_bytes())?;
    if findings.is_empty() {
        note(&format!(
            "{files} file{} checked, no problems",
            plural(files)
        ));
        return Ok(());
    }
    Err(Error::new(
        Exit::Findings,
        "findings",
        format!(
            "check: {} problem{} ({files} file{} checked)",
            findings.len(),
            plural(findings.len()),
            plural(files)
        ),
    ))
}

/// Every problem of one stream: its documents' shapes, its format's
/// findings, and its sealed Secrets against their rule (and, with
/// `--verify`, opened).
fn check_stream(
    stream: &Stream,
    rule: Option<&(Rc<Config>, usize)>,
    session: Option<&Session>,
    out: &mut Vec<Finding>,
) {
    let mut found = document_problems(stream);
    // SealedSecrets: ones that do not read, values that are not sealed
    // values. Their values are never clear text.
    found.extend(ksec::sealed::inspect::lint(stream));
    let format = match formats::detect(stream) {
        Ok(f) => f,
        Err(e) => {
            found.push(e);
            out.extend(found.iter().map(|e| Finding::of(&stream.name, e)));
            return;
        }
    };
    let lint = format.lint(stream);
    // Secrets with a format problem are not checked further.
    let troubled: HashSet<(usize, String)> = lint
        .iter()
        .filter_map(|e| e.at.document.map(|d| (d, e.at.item.clone())))
        .collect();
    found.extend(lint);
    if let Ok(classified) = pipeline::classify(stream) {
        let rule = rule.map(|(c, i)| (c.as_ref(), &c.rules[*i]));
        for e in &classified.envelopes {
            let doc = &stream.docs[e.docs[0]];
            let clean = !troubled.contains(&(doc.index, doc.item_path()));
            found.extend(envelope_problems(
                &classified,
                e,
                rule,
                session.filter(|_| clean),
            ));
        }
    }
    out.extend(found.iter().map(|e| Finding::of(&stream.name, e)));
}

/// What is wrong with the stream's documents, whatever their format:
/// streams kubectl would split differently, ciphertext or clear values
/// where ksec does not handle Secrets, Secrets the locator refused, clear
/// copies in `last-applied-configuration`.
fn document_problems(stream: &Stream) -> Vec<Error> {
    let file = stream.name.as_str();
    let mut found = Vec::new();
    if stream.secrets().next().is_some()
        && let Err(e) = pipeline::kubectl::check_split(file, &stream.text)
    {
        found.push(e);
    }
    for doc in &stream.docs {
        found.extend(pipeline::refuse_stray_ciphertext(file, doc).err());
        for stray in &doc.strays {
            for value in stray
                .values
                .iter()
                .filter(|v| !formats::looks_sealed(&v.value))
            {
                let e = Exposure::Stray { doc, stray, value };
                found.push(pipeline::exposure_error(file, &stream.text, &e, false));
            }
        }
        if !doc.is_secret {
            if let Err(e) = pipeline::refuse_hidden_ciphertext(file, &stream.text, doc) {
                found.push(e);
            } else if doc
                .kind
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case("secret"))
            {
                for site in doc
                    .sites
                    .iter()
                    .filter(|s| !formats::looks_sealed(s.value(&stream.text)))
                {
                    let e = Exposure::NotV1 { doc, site };
                    found.push(pipeline::exposure_error(file, &stream.text, &e, false));
                }
            }
            continue;
        }
        found.extend(
            doc.problems
                .iter()
                .map(|p| pipeline::problem_error(file, doc, p)),
        );
        if let Some(line) = doc.last_applied_line {
            found.push(
                Error::new(
                    Exit::Input,
                    "last-applied-configuration",
                    format!(
                        "metadata.annotations holds {}, a clear copy of the whole Secret",
                        ksec::manifest::LAST_APPLIED
                    ),
                )
                .at(doc.location(file, line)),
            );
        }
    }
    found
}

/// A sealed Secret's keys against its rule, and with a session (`--verify`)
/// whether it opens and verifies.
fn envelope_problems(
    c: &pipeline::Classified<'_>,
    e: &formats::Envelope,
    rule: Option<(&Config, &config::Rule)>,
    session: Option<&Session>,
) -> Vec<Error> {
    let State::Sealed(meta) = &e.state else {
        return Vec::new();
    };
    let (stream, file) = (c.stream, c.stream.name.as_str());
    let doc = &stream.docs[e.docs[0]];
    let info = meta.info();
    let mut found = Vec::new();
    if let Some((config, r)) = rule
        && !r.agrees(&info.keys, info.clear)
    {
        found.push(
            Error::new(
                Exit::State,
                "keys-differ",
                format!(
                    "{} (rule `{}`, {}:{}); run `ksec updatekeys {file}`",
                    rule_difference(r, &info.keys, info.clear),
                    r.pattern,
                    config.shown(),
                    r.line
                ),
            )
            .at(doc.location(file, doc.footer.as_ref().map_or(doc.line, |b| b.line))),
        );
    }
    if let Some((config, r)) = rule
        && r.format.binding_required
        && !info.binding
    {
        found.push(
            Error::new(
                Exit::Integrity,
                "binding-missing",
                format!(
                    "no binding, and the rule `{}` ({}:{}) requires one; `ksec recompute-mac {file}` adds it",
                    r.pattern,
                    config.shown(),
                    r.line
                ),
            )
            .at(doc.location(file, doc.footer.as_ref().map_or(doc.line, |b| b.line))),
        );
    }
    if let Some(s) = session
        && info.mac
        && info.mac_in_format
        && let Err(mut err) = c.format.open(stream, e, &s.keyring, OpenOptions::default())
    {
        err.code = "verify";
        found.push(err);
    }
    found
}

/// What differs between a footer and its rule, keys named.
fn rule_difference(rule: &config::Rule, keys: &[KeyId], clear: ClearSections) -> String {
    let missing: Vec<String> = rule.missing(keys).iter().map(ToString::to_string).collect();
    let extra: Vec<String> = rule.extra(keys).iter().map(ToString::to_string).collect();
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
                    file: c.shown(),
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
