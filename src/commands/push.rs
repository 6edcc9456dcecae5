//! `ksec push FILE --to STORE:NAME`: an encrypted Secret's values written
//! into a store ([`ksec::stores::transfer::push`]), for teams moving toward
//! a controller. `--dry-run` says what would be written — keys and sizes,
//! never values — without calling the store; `--emit-externalsecret`
//! prints the SecretStore and ExternalSecret that read the values back.

use zeroize::Zeroizing;

use ksec::error::{Error, Exit, Result};
use ksec::io::Source;
use ksec::manifest::Section;
use ksec::pipeline::{self, DecryptOptions};
use ksec::stores::{Address, transfer};

use super::{Context, note, plural};

/// What `push` was asked to do.
pub struct PushPlan {
    /// The encrypted file.
    pub source: Source,
    /// `--to`.
    pub to: Address,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--emit-externalsecret`.
    pub emit: bool,
    /// `--kms-key`.
    pub kms_key: Option<String>,
    /// Input size limit.
    pub max_input: u64,
}

/// The one Secret's name, namespace, type and values (`stringData` wins
/// over `data`, as the API server has it).
struct Values {
    name: String,
    namespace: Option<String>,
    kind: String,
    values: Vec<(String, Zeroizing<Vec<u8>>)>,
}

fn values_of(file: &str, clear: &str) -> Result<Values> {
    let stream = pipeline::parse(file, clear.to_owned())?;
    let secrets: Vec<_> = stream.secrets().collect();
    let doc = match secrets.as_slice() {
        [one] => *one,
        [] => {
            return Err(Error::new(Exit::Input, "push", "no Secret to push").in_file(file));
        }
        many => {
            return Err(Error::new(
                Exit::Input,
                "push",
                format!(
                    "{} Secrets; push writes one Secret's values to one place",
                    many.len()
                ),
            )
            .in_file(file)
            .hint("split the file, one Secret per push"));
        }
    };
    let mut values: Vec<(String, Zeroizing<Vec<u8>>)> = Vec::new();
    for section in [Section::Data, Section::StringData] {
        for site in doc.sites.iter().filter(|s| s.section == section) {
            let bytes = match section {
                Section::Data => {
                    ksec::k8s::decode_base64(site.value(&stream.text)).ok_or_else(|| {
                        Error::new(Exit::Input, "invalid-base64", "not base64")
                            .at(doc.site_location(file, &stream.text, site))
                    })?
                }
                Section::StringData => Zeroizing::new(site.value(&stream.text).as_bytes().to_vec()),
            };
            values.retain(|(k, _)| k != site.key(&stream.text));
            values.push((site.key(&stream.text).to_owned(), bytes));
        }
    }
    values.sort_by(|a, b| a.0.cmp(&b.0));
    let kind = clear_type(&stream, doc);
    Ok(Values {
        name: doc.name.clone().unwrap_or_default(),
        namespace: doc.namespace.clone(),
        kind,
        values,
    })
}

/// The Secret's `type` (default `Opaque`).
fn clear_type(stream: &ksec::manifest::Stream, doc: &ksec::manifest::Document) -> String {
    ksec::manifest::tree::parse_stream(&stream.text)
        .ok()
        .and_then(|docs| docs.into_iter().nth(doc.index - 1))
        .and_then(|root| {
            let node = doc.item.iter().try_fold(root, |n, i| {
                n.get("items")
                    .and_then(|items| items.items())
                    .and_then(|v| v.get(*i).cloned())
            })?;
            node.get("type").and_then(|t| t.as_str()).map(str::to_owned)
        })
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "Opaque".to_owned())
}

/// Runs `push`.
pub fn run(plan: &PushPlan, ctx: &Context) -> Result<()> {
    let session = ctx.session();
    let stream = pipeline::read(&plan.source, plan.max_input)?;
    let clear = pipeline::decrypt(&session, &stream, DecryptOptions::default())?;
    let v = values_of(&stream.name, &clear.text)?;
    let n = v.values.len();
    let connector = ctx.stores();
    if plan.dry_run {
        note(&format!(
            "dry run: would write {n} value{} of Secret {} to {}:",
            plural(n),
            v.name,
            plan.to
        ));
        for (k, bytes) in &v.values {
            eprintln!("  {k} ({} byte{})", bytes.len(), plural(bytes.len()));
        }
    }
    let mut kv = None;
    if !plan.dry_run {
        let report = transfer::push(&connector, &plan.to, &v.values, plan.kms_key.as_deref())?;
        kv = report.kv;
        for line in &report.lines {
            note(line);
        }
        note(&format!(
            "pushed {n} value{} of Secret {} to {}",
            plural(n),
            v.name,
            plan.to
        ));
    }
    if plan.emit {
        let location = match plan.to {
            Address::Vault { .. } => ["VAULT_ADDR", "BAO_ADDR"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty())),
            _ => connector.aws_region(),
        };
        let keys: Vec<&str> = v.values.iter().map(|(k, _)| k.as_str()).collect();
        let yaml = transfer::external_secret(
            &plan.to,
            location.as_deref(),
            kv,
            &v.name,
            v.namespace.as_deref(),
            &v.kind,
            &keys,
        );
        ksec::io::write_stdout(yaml.as_bytes())?;
    }
    Ok(())
}
