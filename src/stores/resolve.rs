//! `ksec resolve`: every ExternalSecret of a stream replaced by the Secret
//! its controller would create; every other document untouched.
//!
//! 1. **Read**: the stores (`SecretStore`, `ClusterSecretStore`) of every
//!    input and `--store` file, then every ExternalSecret (ESO or KES) into
//!    its model; a field that is wrong or not implemented ends the run.
//! 2. **Plan**: the remote reads of every ExternalSecret, deduplicated: one
//!    call per distinct store, key and version, one listing per `find`.
//! 3. **Fetch**: per store, one batch ([`super::Store::get_many`]).
//! 4. **Assemble** each Secret in its controller's merge order.
//! 5. **Splice** each Secret over its ExternalSecret's bytes, and check the
//!    result: it is read again, every Secret must carry exactly the values
//!    meant, and kubectl must split it as ksec does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

use zeroize::Zeroizing;

use super::eso::{self, Fetched, ItemError, Need};
use super::fields::{Field, FieldError};
use super::kes;
use super::secret::SecretOut;
use super::{Backend, Connect, Find, Get, Remote, StoreError};
use crate::error::{Error, Exit, Location, Result};
use crate::manifest::{self, Stream, tree};
use crate::report::Reporter;

/// One input, resolved.
pub struct ResolvedStream {
    /// The text: Secrets where the ExternalSecrets were.
    pub text: Zeroizing<String>,
    /// How many ExternalSecrets were resolved.
    pub resolved: usize,
}

/// An ExternalSecret of either controller.
enum Model {
    Eso(eso::ExternalSecret),
    Kes(kes::ExternalSecret),
}

/// An ExternalSecret and where it is.
struct Found {
    stream: usize,
    /// 1-based document of the stream.
    index: usize,
    range: Range<usize>,
    column: usize,
    at: Location,
    model: Model,
}

fn located(stream: &Stream, index: usize, line: usize) -> Location {
    stream
        .docs
        .iter()
        .find(|d| d.index == index && d.item.is_empty())
        .map(|d| d.location(&stream.name, line))
        .unwrap_or_else(|| Location::file(&stream.name).line(line))
}

fn field_error(at: &Location, e: FieldError) -> Error {
    let mut loc = at.clone();
    loc.line = e.line;
    if !e.path.is_empty() {
        loc.key = Some(e.path);
    }
    Error::new(Exit::Input, "externalsecret", e.message).at(loc)
}

fn item_error(at: &Location, e: ItemError) -> Error {
    match e {
        ItemError::Field(f) => field_error(at, f),
        ItemError::Value(f) => {
            let mut err = field_error(at, f);
            err.exit = Exit::Store;
            err.code = "store-value";
            err
        }
        ItemError::Store(f) => {
            let mut err = f.error.to_error();
            err.message = format!("{}: {}", f.backend, f.error.message);
            let mut loc = at.clone();
            loc.line = f.line;
            loc.key = Some(f.path);
            err.at(loc)
        }
    }
}

fn warn_unknown(reporter: &dyn Reporter, at: &Location, fields: &[String]) {
    for f in fields {
        reporter.warn(&format!(
            "{at}: `{f}` is not a field ksec knows; ignored (the API server would drop it)"
        ));
    }
}

/// Reads the stores and ExternalSecrets of `streams` (resolved) and
/// `store_files` (stores only).
fn read(
    streams: &[Stream],
    store_files: &[Stream],
    reporter: &dyn Reporter,
) -> Result<(Vec<Found>, Vec<eso::Store>)> {
    let mut stores: Vec<(eso::Store, Location)> = Vec::new();
    let mut found = Vec::new();
    for (si, stream) in streams.iter().chain(store_files).enumerate() {
        let parsed = tree::parse_stream_full(&stream.text)
            .map_err(|e| crate::pipeline::locate_error(&stream.name, &e))?;
        for (di, node) in parsed.docs.iter().enumerate() {
            let root = Field::root(node);
            let (Some(api), Some(kind)) = (
                node.get("apiVersion").and_then(|n| n.as_str()),
                node.get("kind").and_then(|n| n.as_str()),
            ) else {
                continue;
            };
            let at = located(stream, di + 1, node.line);
            let mut warnings = Vec::new();
            if eso::is_store(api, kind) {
                let s = eso::parse_store(root, &mut warnings).map_err(|e| field_error(&at, e))?;
                if let Some((_, first)) = stores.iter().find(|(o, _)| {
                    o.name == s.name && o.cluster == s.cluster && o.namespace == s.namespace
                }) {
                    return Err(Error::new(
                        Exit::Input,
                        "externalsecret",
                        format!("a second {kind} `{}` (the first is at {first})", s.name),
                    )
                    .at(at));
                }
                warn_unknown(reporter, &at, &warnings);
                stores.push((s, at));
                continue;
            }
            if si >= streams.len() {
                continue;
            }
            let model = if eso::is_external_secret(api, kind) {
                Model::Eso(eso::parse(root, &mut warnings).map_err(|e| field_error(&at, e))?)
            } else if kes::is_external_secret(api, kind) {
                Model::Kes(kes::parse(root, &mut warnings).map_err(|e| field_error(&at, e))?)
            } else {
                if kind == "ClusterExternalSecret" && api.starts_with("external-secrets.io/") {
                    reporter.warn(&format!(
                        "{at}: a ClusterExternalSecret passes through unchanged (ksec resolves ExternalSecrets)"
                    ));
                }
                continue;
            };
            warn_unknown(reporter, &at, &warnings);
            found.push(Found {
                stream: si,
                index: di + 1,
                range: node.range.clone(),
                column: node.column,
                at,
                model,
            });
        }
    }
    Ok((found, stores.into_iter().map(|(s, _)| s).collect()))
}

/// What makes two finds the same ([`Find::identity`]).
type FindId = (Option<String>, Option<String>, bool);

/// What every remote read of the run returned.
#[derive(Default)]
struct Results {
    values: HashMap<(Backend, Get), std::result::Result<Remote, StoreError>>,
    listings: HashMap<(Backend, FindId), super::Listing>,
}

fn fetch(needs: &[Vec<Need>], connect: &dyn Connect, reporter: &dyn Reporter) -> Results {
    let mut gets: BTreeMap<Backend, BTreeSet<Get>> = BTreeMap::new();
    let mut finds: Vec<(Backend, Find)> = Vec::new();
    for n in needs.iter().flatten() {
        match n {
            Need::Get(b, g) => {
                gets.entry(b.clone()).or_default().insert(g.clone());
            }
            Need::Find(b, f) => {
                if !finds
                    .iter()
                    .any(|(x, y)| x == b && y.identity() == f.identity())
                {
                    finds.push((b.clone(), f.clone()));
                }
            }
        }
    }
    let mut backends: BTreeSet<Backend> = gets.keys().cloned().collect();
    backends.extend(finds.iter().map(|(b, _)| b.clone()));
    let mut results = Results::default();
    for backend in backends {
        let store = connect.connect(&backend);
        let mine: Vec<Get> = gets
            .remove(&backend)
            .unwrap_or_default()
            .into_iter()
            .collect();
        if !mine.is_empty() && reporter.tracing() {
            reporter.trace(&format!(
                "resolve: {} value{} from {backend} in one batch",
                mine.len(),
                if mine.len() == 1 { "" } else { "s" }
            ));
        }
        let got: Vec<std::result::Result<Remote, StoreError>> = match &store {
            Ok(s) => s.get_many(&mine),
            Err(e) => mine.iter().map(|_| Err(e.clone())).collect(),
        };
        for (g, r) in mine.into_iter().zip(got) {
            results.values.insert((backend.clone(), g), r);
        }
        for (b, f) in finds.iter().filter(|(b, _)| *b == backend) {
            let r = match &store {
                Ok(s) => s.find(f),
                Err(e) => Err(e.clone()),
            };
            results.listings.insert((b.clone(), f.identity()), r);
        }
    }
    results
}

/// Resolves every ExternalSecret of `streams` with the stores they and
/// `store_files` define; nothing is returned unless all resolved and the
/// results read back as meant.
pub fn resolve_all(
    streams: &[Stream],
    store_files: &[Stream],
    connect: &dyn Connect,
    reporter: &dyn Reporter,
) -> Result<Vec<ResolvedStream>> {
    let (found, stores) = read(streams, store_files, reporter)?;
    let needs: Vec<Vec<Need>> = found
        .iter()
        .map(|f| match &f.model {
            Model::Eso(es) => eso::needs(es, &stores).map_err(|e| field_error(&f.at, e)),
            Model::Kes(es) => Ok(kes::needs(es)),
        })
        .collect::<Result<_>>()?;
    let results = fetch(&needs, connect, reporter);
    let mut secrets: Vec<Option<SecretOut>> = Vec::with_capacity(found.len());
    for (f, needs) in found.iter().zip(&needs) {
        let fetched: Vec<Fetched<'_>> = needs
            .iter()
            .map(|n| match n {
                Need::Get(b, g) => Fetched::Value(&results.values[&(b.clone(), g.clone())]),
                Need::Find(b, fd) => {
                    Fetched::Listing(&results.listings[&(b.clone(), fd.identity())])
                }
            })
            .collect();
        let backends: Vec<Backend> = needs
            .iter()
            .map(|n| match n {
                Need::Get(b, _) | Need::Find(b, _) => b.clone(),
            })
            .collect();
        let mut notes = Vec::new();
        let secret = match &f.model {
            Model::Eso(es) => eso::assemble(es, &backends, &fetched, &mut notes),
            Model::Kes(es) => kes::assemble(es, &fetched, &mut notes).map(Some),
        }
        .map_err(|e| item_error(&f.at, e))?;
        for n in notes {
            reporter.warn(&format!("{}: {n}", f.at));
        }
        if secret.is_none() {
            reporter.note(&format!(
                "{}: creationPolicy None: the controller creates no Secret, so none is printed",
                f.at
            ));
        }
        secrets.push(secret);
    }
    let mut out = Vec::with_capacity(streams.len());
    for (si, stream) in streams.iter().enumerate() {
        let mut edits = Vec::new();
        let mut expected = Vec::new();
        for (f, s) in found.iter().zip(&secrets).filter(|(f, _)| f.stream == si) {
            let text = match s {
                Some(s) => {
                    expected.push((f.index, s));
                    s.to_yaml()
                }
                None => Zeroizing::new(format!(
                    "# {}: creationPolicy None, no Secret\n",
                    f.at.object.clone().unwrap_or_default()
                )),
            };
            let body = text.trim_end_matches('\n');
            let lead = if f.column > 0 { "\n" } else { "" };
            edits.push(manifest::Edit {
                range: f.range.clone(),
                text: format!("{lead}{body}"),
            });
        }
        let n = edits.len();
        let text = Zeroizing::new(manifest::splice(&stream.text, &mut edits));
        verify(&stream.name, &text, &expected)?;
        crate::pipeline::kubectl::check_split(&stream.name, &text)?;
        out.push(ResolvedStream { text, resolved: n });
    }
    Ok(out)
}

/// Reads the result again: every resolved Secret must be there, in its
/// ExternalSecret's document, a valid Secret, with exactly its values.
fn verify(name: &str, text: &str, expected: &[(usize, &SecretOut)]) -> Result<()> {
    let failed = |what: String| {
        Error::internal(format!(
            "internal error: the resolved stream does not read back: {what}"
        ))
        .at(Location::file(name))
    };
    let stream = crate::pipeline::parse(name, text.to_owned())?;
    let secrets: Vec<&manifest::Document> = stream.secrets().collect();
    for (index, want) in expected {
        let doc = secrets
            .iter()
            .find(|d| d.index == *index && d.item.is_empty())
            .filter(|d| {
                d.name.as_deref() == Some(want.name.as_str()) && d.namespace == want.namespace
            })
            .ok_or_else(|| failed(format!("Secret {} is missing", want.name)))?;
        if let Some(p) = doc.problems.first() {
            return Err(crate::pipeline::problem_error(name, doc, p));
        }
        let mut got: BTreeMap<&str, Zeroizing<Vec<u8>>> = BTreeMap::new();
        for site in &doc.sites {
            let bytes = crate::k8s::decode_base64(site.value(&stream.text))
                .ok_or_else(|| failed(format!("{}: not base64", site.label(&stream.text))))?;
            got.insert(site.key(&stream.text), bytes);
        }
        let same = got.len() == want.data.len()
            && want.data.iter().all(|(k, v)| {
                got.get(k.as_str())
                    .is_some_and(|g| g.as_slice() == v.as_slice())
            });
        if !same {
            return Err(failed(format!(
                "Secret {} has other values than resolved",
                want.name
            )));
        }
    }
    Ok(())
}
