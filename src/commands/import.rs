//! `ksec import --from STORE:NAME --name N`: an encrypted Secret made from
//! the values in a store ([`ksec::stores::transfer::import`]), for teams
//! moving secrets into git. The clear manifest exists in memory only; it is
//! encrypted like `create`'s (`-k`, else the `.ksec.yaml` rule of the
//! output file, else the local age key; `--format sops`).

use std::path::PathBuf;

use ksec::error::{Error, Exit, Result};
use ksec::keys::KeyChange;
use ksec::pipeline::{self, KeyPolicy, RuleKeys, SealOptions};
use ksec::stores::Address;
use ksec::stores::transfer::{self, ImportOptions};

use super::{Context, note, plural};

/// What `import` was asked to do.
pub struct ImportPlan {
    /// `--from`.
    pub from: Address,
    /// `--name`.
    pub name: String,
    /// `--namespace`.
    pub namespace: Option<String>,
    /// `--type`.
    pub kind: String,
    /// `--data-key`.
    pub data_key: Option<String>,
    /// `--key`.
    pub keys: KeyChange,
    /// `--format`.
    pub format: Option<&'static dyn ksec::formats::Format>,
    /// `-o FILE`; stdout when `None`.
    pub output: Option<PathBuf>,
}

/// Runs `import`.
pub fn run(plan: &ImportPlan, ctx: &Context) -> Result<()> {
    if let Some(out) = &plan.output
        && out.exists()
        && !ctx.force
    {
        return Err(
            Error::new(Exit::State, "exists", "exists already; not overwritten")
                .in_file(&out.display().to_string())
                .hint("pass --force to replace it"),
        );
    }
    let configs = ctx.configs()?;
    let rule = match &plan.output {
        Some(p) => configs.rule(&ksec::io::Source::File(p.clone()))?,
        None => None,
    };
    let session = ctx.session();
    let change = if plan.keys.is_empty() {
        None
    } else {
        Some(session.resolve_change(&plan.keys)?)
    };
    let secret = transfer::import(
        &ctx.stores(),
        &plan.from,
        &ImportOptions {
            name: &plan.name,
            namespace: plan.namespace.as_deref(),
            kind: &plan.kind,
            data_key: plan.data_key.as_deref(),
        },
    )?;
    let clear = secret.to_yaml();
    let name = plan.output.as_ref().map_or_else(
        || format!("<import {}>", plan.from),
        |p| p.display().to_string(),
    );
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
    let out = pipeline::encrypt_text(&session, &name, &clear, options)?;
    let n = secret.data.len();
    match &plan.output {
        Some(p) => ksec::io::write_atomic(p, out.text.as_bytes(), ctx.force)?,
        None => ksec::io::write_stdout(out.text.as_bytes())?,
    }
    note(&format!(
        "imported {n} value{} from {} into Secret {} ({} format)",
        plural(n),
        plan.from,
        plan.name,
        out.format
    ));
    Ok(())
}
