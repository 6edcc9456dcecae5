//! `ksec create NAME`: a new encrypted Secret from the command line.
//!
//! The clear manifest is built in memory (kubectl's field order, keys
//! sorted) and encrypted like any other; nothing clear touches the disk.

use std::path::PathBuf;

use ksec::error::{Error, Exit, Result};
use ksec::keys::KeyChange;
use ksec::manifest::Section;
use ksec::manifest::scalar::{self, Context};
use ksec::pipeline::{self, KeyPolicy, RuleKeys, SealOptions};

use super::Context as Run;
use super::spec::{MetaSpec, ValueSpec, read_values, stored};

/// What `create` was asked to do.
pub struct CreatePlan {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// `-d` and `-s` values, in command-line order.
    pub values: Vec<ValueSpec>,
    /// `-l`.
    pub labels: Vec<MetaSpec>,
    /// `-a`.
    pub annotations: Vec<MetaSpec>,
    /// `--type`.
    pub kind: String,
    /// `--key`.
    pub keys: KeyChange,
    /// `-o FILE`; stdout when `None`.
    pub output: Option<PathBuf>,
    /// `--format`: the format of files not encrypted yet.
    pub format: Option<&'static dyn ksec::formats::Format>,
    /// Size limit for values read from files or stdin.
    pub max_input: u64,
}

/// Runs `create`.
pub fn run(plan: &CreatePlan, ctx: &Run) -> Result<()> {
    if let Some(out) = &plan.output
        && out.exists()
        && !ctx.force
    {
        return Err(
            Error::new(Exit::State, "exists", "exists already; not overwritten")
                .in_file(&out.display().to_string())
                .hint("pass --force to replace it, or `ksec patch` to change it"),
        );
    }
    let session = ctx.session();
    let configs = ctx.configs()?;
    let values = read_values(&plan.values, plan.max_input)?;
    let mut entries: Vec<(Section, String, zeroize::Zeroizing<String>)> = Vec::new();
    for v in values {
        let Some(bytes) = v.bytes else { continue };
        entries.retain(|(s, k, _)| !(*s == v.spec.section && *k == v.spec.key));
        entries.push((
            v.spec.section,
            v.spec.key.clone(),
            stored(v.spec.section, &bytes, None),
        ));
    }
    entries.sort_by(|a, b| (a.0, a.1.as_bytes()).cmp(&(b.0, b.1.as_bytes())));
    let text = zeroize::Zeroizing::new(manifest_text(plan, &entries));
    let name = plan.output.as_ref().map_or_else(
        || format!("<create {}>", plan.name),
        |p| p.display().to_string(),
    );
    // A `.ksec.yaml` rule for the output file gives its keys (unless --key).
    let rule = match &plan.output {
        Some(p) => configs.rule(&ksec::io::Source::File(p.clone()))?,
        None => None,
    };
    let change = if plan.keys.is_empty() {
        None
    } else {
        Some(session.resolve_change(&plan.keys)?)
    };
    let options = SealOptions {
        policy: KeyPolicy {
            change: change.as_ref(),
            rule: rule.as_ref().map(|(c, i)| RuleKeys {
                keys: &c.rules[*i].keys,
                clear: c.rules[*i].clear,
                format: Some(&c.rules[*i].format),
            }),
            ..KeyPolicy::default()
        },
        format: plan.format,
        ..SealOptions::default()
    };
    let out = pipeline::encrypt_text(&session, &name, &text, options)?;
    match &plan.output {
        Some(p) => ksec::io::write_atomic(p, out.text.as_bytes(), ctx.force),
        None => ksec::io::write_stdout(out.text.as_bytes()),
    }
}

/// The clear manifest, in kubectl's order: apiVersion, kind, metadata
/// (name, namespace, labels, annotations), type, data, stringData.
fn manifest_text(
    plan: &CreatePlan,
    entries: &[(Section, String, zeroize::Zeroizing<String>)],
) -> String {
    let ctx = |indent| Context {
        flow: false,
        indent,
        newline: "\n",
        line_rest_empty: true,
        header_comment: None,
    };
    let key = |k: &str| {
        if scalar::plain_safe(k) {
            k.to_owned()
        } else {
            scalar::double_quoted(k)
        }
    };
    let mut s = String::from("apiVersion: v1\nkind: Secret\nmetadata:\n");
    s.push_str(&format!(
        "  name: {}\n",
        scalar::render(&plan.name, &ctx(4))
    ));
    if let Some(ns) = &plan.namespace {
        s.push_str(&format!("  namespace: {}\n", scalar::render(ns, &ctx(4))));
    }
    for (title, specs) in [("labels", &plan.labels), ("annotations", &plan.annotations)] {
        let mut set: Vec<(&str, &str)> = Vec::new();
        for m in specs.iter() {
            set.retain(|(k, _)| *k != m.key);
            if let Some(v) = &m.value {
                set.push((&m.key, v));
            }
        }
        set.sort();
        if !set.is_empty() {
            s.push_str(&format!("  {title}:\n"));
            for (k, v) in set {
                s.push_str(&format!("    {}: {}\n", key(k), scalar::render(v, &ctx(6))));
            }
        }
    }
    s.push_str(&format!("type: {}\n", scalar::render(&plan.kind, &ctx(2))));
    for section in [Section::Data, Section::StringData] {
        let mine: Vec<_> = entries.iter().filter(|(s, ..)| *s == section).collect();
        if mine.is_empty() {
            continue;
        }
        s.push_str(&format!("{}:\n", section.as_str()));
        for (_, k, v) in mine {
            s.push_str(&format!("  {}: {}\n", key(k), scalar::render(v, &ctx(4))));
        }
    }
    s
}
