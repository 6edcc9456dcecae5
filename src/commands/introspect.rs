//! `ksec introspect`: what a file holds and who can open it, without keys.

use std::path::PathBuf;

use serde::Serialize;

use ksec::error::Result;
use ksec::formats::State;
use ksec::io;
use ksec::manifest::{Section, Stream};
use ksec::pipeline;

/// What `introspect` was asked to do.
pub struct IntrospectPlan {
    /// Files and directories (`-` or nothing: stdin).
    pub paths: Vec<PathBuf>,
    /// Machine-readable output.
    pub json: bool,
    /// Input size limit.
    pub max_input: u64,
}

#[derive(Serialize)]
struct KeyInfo {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
}

#[derive(Serialize)]
struct DocInfo {
    document: usize,
    /// For a Secret in a List: `items[i]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<String>,
    line: usize,
    kind: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
    /// "encrypted", "plain", or "not-a-secret".
    state: &'static str,
    /// The format and its version (`kubesec v3`).
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<String>,
    version: Option<u8>,
    keys: Vec<KeyInfo>,
    mac: bool,
    /// When ksec generated the data key (`# ksec:rotated:`), if recorded.
    rotated: Option<String>,
    kubesec_compatible: Option<bool>,
    /// Whether it carries ksec's binding (`# ksec:bind:`, `ksec_binding`).
    binding: bool,
    data_keys: Vec<String>,
    string_data_keys: Vec<String>,
}

/// Runs `introspect`. One input prints as it always did; several print
/// one block per file (text), or a JSON array of the one-file objects.
pub fn run(plan: &IntrospectPlan, ctx: &super::Context) -> Result<()> {
    let configs = ctx.configs()?;
    let inputs = super::inputs(&plan.paths, &configs, false)?;
    let mut text = String::new();
    let mut objects = Vec::new();
    for source in &inputs.sources {
        let file = source.display();
        let stream = pipeline::read(source, plan.max_input)?;
        let infos = describe(&stream)?;
        if plan.json {
            objects.push(serde_json::json!({ "file": file, "documents": infos }));
        } else {
            text.push_str(&render_text(&file, &infos));
        }
    }
    if !plan.json {
        return io::write_stdout(text.as_bytes());
    }
    let value = if inputs.single {
        objects.remove(0)
    } else {
        serde_json::Value::Array(objects)
    };
    let mut s = serde_json::to_string_pretty(&value).expect("introspect JSON serialises");
    s.push('\n');
    io::write_stdout(s.as_bytes())
}

fn describe(stream: &Stream) -> Result<Vec<DocInfo>> {
    let classified = pipeline::classify(stream)?;
    let mut infos = Vec::with_capacity(stream.docs.len());
    for doc in &stream.docs {
        let mut info = DocInfo {
            document: doc.index,
            item: doc.is_nested().then(|| doc.item_path()),
            line: doc.line,
            kind: doc.kind.clone(),
            name: doc.name.clone(),
            namespace: doc.namespace.clone(),
            state: "not-a-secret",
            format: None,
            version: None,
            keys: Vec::new(),
            mac: false,
            rotated: None,
            kubesec_compatible: None,
            binding: false,
            data_keys: Vec::new(),
            string_data_keys: Vec::new(),
        };
        let envelope = classified
            .envelopes
            .iter()
            .find(|e| e.docs.contains(&doc.position));
        if let Some(envelope) = envelope.filter(|_| doc.is_secret) {
            for s in &doc.sites {
                match s.section {
                    Section::Data => info.data_keys.push(s.key.clone()),
                    Section::StringData => info.string_data_keys.push(s.key.clone()),
                }
            }
            match &envelope.state {
                State::Plain => info.state = "plain",
                State::Sealed(meta) => {
                    let m = meta.info();
                    info.state = "encrypted";
                    info.version = m.version_number;
                    info.format = Some(m.version);
                    info.mac = m.mac;
                    info.rotated = m.rotated;
                    info.kubesec_compatible = Some(m.kubesec_compatible);
                    info.binding = m.binding;
                    info.keys = m
                        .keys
                        .iter()
                        .map(|k| KeyInfo {
                            kind: k.kind.as_str(),
                            id: k.id.clone(),
                        })
                        .collect();
                }
            }
        }
        infos.push(info);
    }
    Ok(infos)
}

fn render_text(file: &str, infos: &[DocInfo]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for i in infos {
        let name = match (&i.namespace, &i.name) {
            (Some(ns), Some(n)) => format!("{ns}/{n}"),
            (None, Some(n)) => n.clone(),
            _ => "(unnamed)".into(),
        };
        let kind = i.kind.as_deref().unwrap_or("(no kind)");
        let item = i
            .item
            .as_ref()
            .map(|p| format!(", {p}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "{file}: document {}{item} (line {}): {kind} {name}",
            i.document, i.line
        );
        match i.state {
            "not-a-secret" => {
                let _ = writeln!(s, "  not a Secret: passed through unchanged");
            }
            "plain" => {
                let _ = writeln!(
                    s,
                    "  not encrypted: {} data and {} stringData values in clear text",
                    i.data_keys.len(),
                    i.string_data_keys.len()
                );
            }
            _ => {
                let _ = writeln!(s, "  format: {}", i.format.as_deref().unwrap_or("?"));
                let _ = writeln!(
                    s,
                    "  values: {} data, {} stringData",
                    i.data_keys.len(),
                    i.string_data_keys.len()
                );
                let _ = writeln!(s, "  keys that can open it:");
                for k in &i.keys {
                    let _ = writeln!(s, "    {} {}", k.kind, k.id);
                }
                let _ = writeln!(
                    s,
                    "  mac: {}",
                    if i.mac {
                        "present"
                    } else {
                        "absent (no tamper protection)"
                    }
                );
                let _ = writeln!(
                    s,
                    "  data key generated: {}",
                    i.rotated
                        .as_deref()
                        .unwrap_or("not recorded (written by kubesec or before ksec recorded it)")
                );
                let _ = writeln!(
                    s,
                    "  binding: {}",
                    if i.binding {
                        "present (name, namespace, type and sections are bound)"
                    } else {
                        "absent"
                    }
                );
                let compat = if i.kubesec_compatible == Some(true) {
                    "yes"
                } else if i.format.as_deref().is_some_and(|f| f.starts_with("sops")) {
                    "no (a SOPS file: sops and ksec read it)"
                } else {
                    "no (age keys, clear sections and AWS context are ksec additions; only ksec can open this file)"
                };
                let _ = writeln!(s, "  readable by kubesec: {compat}");
            }
        }
    }
    s
}
