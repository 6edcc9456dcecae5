//! `ksec decrypt`: the clear manifest, for `kubectl apply -f -`.
//!
//! One file gives exactly its decrypted bytes; several give one stream that
//! kubectl reads as they were ([`pipeline::join_streams`]), or with `-i`
//! each file is rewritten. Nothing is written unless every input decrypts.
//!
//! And a warning: client-side `kubectl apply` copies the whole manifest,
//! clear values included, into the `kubectl.kubernetes.io/last-applied-configuration`
//! annotation, which `kubectl describe` prints and every reader of the
//! object's metadata sees. Whenever decrypted Secrets go to stdout and stdout
//! is not a terminal (a pipe or a file, so probably on the way to kubectl),
//! ksec says so once on stderr and suggests `--server-side`; `--quiet`
//! silences it.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::PathBuf;

use zeroize::Zeroizing;

use ksec::error::{Error, Exit, Result};
use ksec::io::Source;
use ksec::manifest::{self, amend};
use ksec::pipeline::{self, DecryptOptions};
use ksec::template::{Template, Value};

use super::{Context, Output, read_all, warn};

/// What `decrypt` was asked to do.
pub struct DecryptPlan {
    /// Files and directories (`-` or nothing: stdin).
    pub paths: Vec<PathBuf>,
    /// Where the result goes.
    pub output: Output,
    /// Write `data` values base64-decoded (non-UTF-8 as `!!binary`).
    pub cleartext: bool,
    /// Accept v1/v2 files, which have no MAC.
    pub allow_missing_mac: bool,
    /// Do not check MACs.
    pub ignore_mac: bool,
    /// Refuse Secrets without a binding.
    pub require_binding: bool,
    /// Render this Go-style template per Secret instead of the manifest.
    pub template: Option<TemplateSource>,
    /// Input size limit.
    pub max_input: u64,
    /// No advice on stderr about where the output goes.
    pub quiet: bool,
}

/// Where `--template` comes from.
pub enum TemplateSource {
    /// `--template TEXT`.
    Text(String),
    /// `--template-file FILE`.
    File(PathBuf),
}

/// Runs `decrypt`: every input is decrypted (the data keys of all of them
/// in one batch) before anything is written.
pub fn run(plan: &DecryptPlan, ctx: &Context) -> Result<()> {
    let configs = ctx.configs()?;
    let inputs = super::inputs(&plan.paths, &configs, false)?;
    let template = plan.template.as_ref().map(load_template).transpose()?;
    if plan.output.is_in_place() && inputs.sources.contains(&Source::Stdin) {
        plan.output.for_source(&Source::Stdin)?;
    }
    let session = ctx.session();
    let streams = read_all(&inputs.sources, plan.max_input)?;
    // A rule's `binding: required` applies to the files it matches. The
    // configuration is otherwise not needed here: one that does not parse
    // only means its binding rules are not applied (said on stderr), so a
    // broken .ksec.yaml never stops a deployment.
    let mut broken = false;
    let each: Vec<DecryptOptions> = inputs
        .sources
        .iter()
        .map(|source| {
            let required = match configs.rule(source) {
                Ok(rule) => rule.is_some_and(|(c, i)| c.rules[i].format.binding_required),
                Err(e) => {
                    if !broken {
                        warn(&format!(
                            "{e}; its `binding: required` rules are not applied"
                        ));
                    }
                    broken = true;
                    false
                }
            };
            DecryptOptions {
                cleartext: plan.cleartext,
                allow_missing_mac: plan.allow_missing_mac,
                ignore_mac: plan.ignore_mac,
                require_binding: plan.require_binding || required,
                keep_opened: false,
            }
        })
        .collect();
    let decrypted = pipeline::decrypt_each(&session, &streams, &each)?;
    if plan.ignore_mac {
        warn(
            "--ignore-mac: the MACs were not checked; values may have been deleted, reordered or swapped within a file",
        );
    }
    if inputs.single && decrypted[0].envelopes == 0 {
        warn(&format!(
            "{}: no Secret documents; the input is passed through unchanged",
            streams[0].name
        ));
    }
    if let Some(t) = template {
        let mut rendered = Zeroizing::new(String::new());
        for (s, d) in streams.iter().zip(&decrypted) {
            rendered.push_str(&render_template(&s.name, &d.text, &t)?);
        }
        let original = if inputs.single {
            streams[0].text.as_str()
        } else {
            ""
        };
        return plan.output.write(original, &rendered, ctx.force);
    }
    if plan.output.is_in_place() {
        for ((s, d), source) in streams.iter().zip(&decrypted).zip(&inputs.sources) {
            plan.output
                .for_source(source)?
                .write(&s.text, &d.text, ctx.force)?;
        }
        return Ok(());
    }
    let (name, original, out) = if inputs.single {
        let d = decrypted.into_iter().next().expect("one input");
        (streams[0].name.clone(), streams[0].text.as_str(), d.text)
    } else {
        let parts: Vec<&str> = decrypted.iter().map(|d| d.text.as_str()).collect();
        (
            "<joined stream>".to_owned(),
            "",
            pipeline::join_streams(&parts),
        )
    };
    pipeline::kubectl::check_split(&name, &out)?;
    if plan.output == Output::Stdout && !plan.quiet && !std::io::stdout().is_terminal() {
        super::advise_clear_output(
            streams.iter().any(|s| s.secrets().next().is_some()),
            plan.cleartext,
        );
    }
    plan.output.write(original, &out, ctx.force)
}

fn load_template(source: &TemplateSource) -> Result<Template> {
    let text = match source {
        TemplateSource::Text(t) => t.clone(),
        TemplateSource::File(f) => std::fs::read_to_string(f).map_err(|e| {
            Error::new(
                Exit::Io,
                "unreadable",
                format!("cannot read: {}", ksec::io::io_reason(&e)),
            )
            .in_file(&f.display().to_string())
        })?,
    };
    Template::parse(&text).map_err(|e| Error::usage(format!("--template: {e}")))
}

/// Renders `template` once per Secret of the decrypted stream, in order.
fn render_template(file: &str, clear: &str, template: &Template) -> Result<Zeroizing<String>> {
    let stream = pipeline::parse(file, clear.to_owned())?;
    let roots = amend::outline(clear).map_err(|e| pipeline::locate_error(file, &e))?;
    let mut out = Zeroizing::new(String::new());
    for doc in stream.secrets() {
        let node = manifest::outline::object(&roots, doc).ok_or_else(|| {
            Error::internal("internal error: the decrypted document cannot be found again")
                .at(doc.location(file, doc.line))
        })?;
        let text = template.render(&to_value(node)).map_err(|e| {
            Error::new(Exit::Input, "template", format!("--template: {e}"))
                .at(doc.location(file, doc.line))
        })?;
        out.push_str(&text);
    }
    Ok(out)
}

/// A document as the template sees it: scalars are strings (null is nil).
fn to_value(node: &amend::Node) -> Value {
    match &node.kind {
        amend::Kind::Scalar(_) if node.range.is_empty() => Value::Nil,
        amend::Kind::Scalar(s) => Value::str(s.clone()),
        amend::Kind::Mapping(m) => Value::Map(
            m.entries
                .iter()
                .map(|e| (e.key.clone(), to_value(&e.value)))
                .collect::<BTreeMap<_, _>>(),
        ),
        amend::Kind::Sequence(items) => Value::List(items.iter().map(to_value).collect()),
        amend::Kind::Other => Value::Nil,
    }
}
