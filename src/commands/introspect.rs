//! `ksec introspect`: what a file holds and who can open it, without keys.
//! SealedSecrets are described too (scope, label, values); with `--cert`
//! and `--recovery-key` it says which certificate their values fit and
//! which key opens them.

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
    /// `--cert`: controller certificates to match SealedSecrets against.
    pub certs: Vec<String>,
    /// `--recovery-key`: controller private keys to try on SealedSecrets.
    pub recovery: Vec<PathBuf>,
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
    /// For a SealedSecret: its scope, values and which key or cert fits.
    #[serde(skip_serializing_if = "Option::is_none")]
    sealed_secret: Option<SealedJson>,
}

#[derive(Serialize)]
struct SealedJson {
    /// `strict`, `namespace-wide`, `cluster-wide`; none when it does not read.
    scope: Option<&'static str>,
    /// The RSA-OAEP label its values are sealed with.
    label: Option<String>,
    /// `encryptedData` keys.
    values: Vec<String>,
    /// `template.data` keys (Go templates over the values).
    templated: Vec<String>,
    /// The RSA key size its values are sealed for.
    key_bits: Option<usize>,
    /// Why it does not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
    /// With --recovery-key: the key that opens it (null: none does).
    #[serde(skip_serializing_if = "Option::is_none")]
    opens_with: Option<Option<String>>,
    /// With --cert: whether its values fit each certificate's key.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    certs: Vec<CertFit>,
}

#[derive(Serialize)]
struct CertFit {
    cert: String,
    fits: bool,
}

/// Runs `introspect`. One input prints as it always did; several print
/// one block per file (text), or a JSON array of the one-file objects.
pub fn run(plan: &IntrospectPlan, ctx: &super::Context) -> Result<()> {
    let configs = ctx.configs()?;
    let inputs = super::inputs(&plan.paths, &configs, false)?;
    let mut certs = Vec::with_capacity(plan.certs.len());
    for c in &plan.certs {
        let cert = ksec::sealed::cert::load(c, plan.max_input, ksec::sealed::cert::FETCH_TIMEOUT)?;
        certs.push((c.clone(), cert));
    }
    let keys = if plan.recovery.is_empty() {
        None
    } else {
        let files: Vec<ksec::io::Source> = plan
            .recovery
            .iter()
            .cloned()
            .map(ksec::io::Source::File)
            .collect();
        Some(ksec::sealed::RecoveryKeys::load(
            &ctx.session(),
            &files,
            plan.max_input,
        )?)
    };
    let mut text = String::new();
    let mut objects = Vec::new();
    for source in &inputs.sources {
        let file = source.display();
        let stream = pipeline::read(source, plan.max_input)?;
        let mut infos = describe(&stream)?;
        add_sealed(&stream, keys.as_ref(), &certs, &mut infos)?;
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
            sealed_secret: None,
        };
        let envelope = classified
            .envelopes
            .iter()
            .find(|e| e.docs.contains(&doc.position));
        if let Some(envelope) = envelope.filter(|_| doc.is_secret) {
            for s in &doc.sites {
                match s.section {
                    Section::Data => info.data_keys.push(s.key(&stream.text).to_owned()),
                    Section::StringData => {
                        info.string_data_keys.push(s.key(&stream.text).to_owned())
                    }
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

/// SealedSecrets: their documents described as such, and those inside
/// Lists added after their List.
fn add_sealed(
    stream: &Stream,
    keys: Option<&ksec::sealed::RecoveryKeys>,
    certs: &[(String, ksec::sealed::Certificate)],
    infos: &mut Vec<DocInfo>,
) -> Result<()> {
    for s in ksec::sealed::inspect::describe(stream, keys, certs)? {
        let json = SealedJson {
            scope: s.scope.map(ksec::sealed::Scope::as_str),
            label: s.label.clone(),
            values: s.values.clone(),
            templated: s.templated.clone(),
            key_bits: s.key_bits,
            problem: s.problem.clone(),
            opens_with: s.opens_with.clone(),
            certs: s
                .certs
                .iter()
                .map(|(cert, fits)| CertFit {
                    cert: cert.clone(),
                    fits: *fits,
                })
                .collect(),
        };
        if s.item.is_empty()
            && let Some(info) = infos
                .iter_mut()
                .find(|i| i.document == s.document && i.item.is_none())
        {
            info.state = "sealed-secret";
            info.sealed_secret = Some(json);
            continue;
        }
        let at = infos
            .iter()
            .rposition(|i| i.document <= s.document)
            .map_or(infos.len(), |p| p + 1);
        infos.insert(
            at,
            DocInfo {
                document: s.document,
                item: Some(s.item.clone()),
                line: s.line,
                kind: Some(ksec::sealed::KIND.to_owned()),
                name: s.name.clone(),
                namespace: s.namespace.clone(),
                state: "sealed-secret",
                format: None,
                version: None,
                keys: Vec::new(),
                mac: false,
                rotated: None,
                kubesec_compatible: None,
                binding: false,
                data_keys: Vec::new(),
                string_data_keys: Vec::new(),
                sealed_secret: Some(json),
            },
        );
    }
    Ok(())
}

fn render_sealed(s: &mut String, sealed: &SealedJson) {
    use std::fmt::Write as _;
    if let Some(p) = &sealed.problem {
        let _ = writeln!(s, "  SealedSecret that does not read: {p}");
        return;
    }
    let label = match &sealed.label {
        Some(l) if l.is_empty() => " (empty label)".to_owned(),
        Some(l) => format!(" (label {l})"),
        None => " (no namespace: its label depends on where it is applied)".to_owned(),
    };
    let _ = writeln!(
        s,
        "  SealedSecret: scope {}{label}",
        sealed.scope.unwrap_or("?")
    );
    let _ = writeln!(
        s,
        "  values: {} sealed{}, {} templated",
        sealed.values.len(),
        if sealed.values.is_empty() {
            String::new()
        } else {
            format!(" ({})", sealed.values.join(", "))
        },
        sealed.templated.len()
    );
    if let Some(bits) = sealed.key_bits {
        let _ = writeln!(s, "  sealed for a {bits}-bit RSA key");
    }
    match &sealed.opens_with {
        Some(Some(k)) => {
            let _ = writeln!(s, "  opens with: {k}");
        }
        Some(None) => {
            let _ = writeln!(s, "  opens with: none of the recovery keys given");
        }
        None => {}
    }
    for c in &sealed.certs {
        let verdict = if c.fits {
            "its values fit this certificate's key (only the private key can prove they were sealed for it)"
        } else {
            "not sealed for this certificate"
        };
        let _ = writeln!(s, "  cert {}: {verdict}", c.cert);
    }
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
            "sealed-secret" => {
                if let Some(sealed) = &i.sealed_secret {
                    render_sealed(&mut s, sealed);
                }
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
