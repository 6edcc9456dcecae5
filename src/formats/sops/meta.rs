//! The `sops` metadata entry: reading every layout sops has written (3.x,
//! flat key lists or `key_groups`, empty `kms: []` lists of sops ≤ 3.9,
//! JSON `null`s) and writing sops 3.11's (field order of its struct, empty
//! lists left out, 4-space YAML or the file's JSON indentation).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use serde::Deserialize;
use serde_json::Value as Json;

use super::typed::{self, Typed};
use super::walk::{SELECTION_FIELDS, Selection, Store};
use crate::keys::{KeyId, KeyParams, KeyType, WrappedKey};
use crate::manifest::commented::{Node, Value};
use crate::manifest::scalar;

/// The version ksec writes: the sops release whose format it follows.
pub const SOPS_VERSION: &str = "3.11.0";

/// One wrapped copy of the data key (or of a group's share) as sops
/// records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key and the provider's ciphertext.
    pub wrapped: WrappedKey,
    /// `created_at`, as written (age entries have none).
    pub created_at: Option<String>,
    /// AWS: `role` to assume (kept as written).
    pub role: String,
    /// AWS: `aws_profile` (kept as written).
    pub aws_profile: String,
}

/// A key group: every key in it can open the group's share.
pub type Group = Vec<Entry>;

/// The metadata of a sops file.
#[derive(Debug, Clone, PartialEq)]
pub struct SopsMeta {
    /// Key groups (one unless the data key is split).
    pub groups: Vec<Group>,
    /// `shamir_threshold`, when written.
    pub threshold: Option<usize>,
    /// `lastmodified` as written.
    pub lastmodified: String,
    /// `mac` (an ENC string; empty when missing).
    pub mac: String,
    /// The selection rule, when the file names one.
    pub selection: Option<Selection>,
    /// `mac_only_encrypted`.
    pub mac_only_encrypted: bool,
    /// `version` as written.
    pub version: String,
    /// How the file was parsed.
    pub store: Store,
    /// Every key line, in group order (for [`crate::formats::Metadata::key_lines`]).
    pub lines: Vec<WrappedKey>,
    /// ksec's binding (`ksec_binding`, a field sops ignores): a MAC over
    /// every value's path, which sops' MAC leaves out.
    pub binding: Option<String>,
}

impl SopsMeta {
    /// The rule that applies: the file's, else sops' default.
    pub fn rule(&self) -> Selection {
        self.selection
            .clone()
            .unwrap_or_else(Selection::sops_default)
    }

    /// The number of groups needed to recover the data key.
    pub fn needed(&self) -> usize {
        if self.groups.len() <= 1 {
            1
        } else {
            self.threshold
                .filter(|&t| t > 0)
                .unwrap_or(self.groups.len())
        }
    }

    /// Rebuilds [`SopsMeta::lines`] from the groups.
    pub fn relist(&mut self) {
        self.lines = self
            .groups
            .iter()
            .flatten()
            .map(|e| e.wrapped.clone())
            .collect();
    }
}

/// Why metadata could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaError(pub String);

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawGroup {
    kms: Option<Vec<RawKms>>,
    gcp_kms: Option<Vec<RawGcp>>,
    azure_kv: Option<Vec<RawAzure>>,
    hc_vault: Option<Vec<RawVault>>,
    age: Option<Vec<RawAge>>,
    pgp: Option<Vec<RawPgp>>,
    hckms: Option<Vec<Json>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawMeta {
    shamir_threshold: Option<Json>,
    key_groups: Option<Vec<RawGroup>>,
    #[serde(flatten)]
    flat: RawGroup,
    lastmodified: Option<String>,
    mac: Option<String>,
    unencrypted_suffix: Option<String>,
    encrypted_suffix: Option<String>,
    unencrypted_regex: Option<String>,
    encrypted_regex: Option<String>,
    unencrypted_comment_regex: Option<String>,
    encrypted_comment_regex: Option<String>,
    mac_only_encrypted: Option<bool>,
    version: Option<Json>,
    ksec_binding: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawKms {
    arn: String,
    role: Option<String>,
    context: Option<std::collections::BTreeMap<String, Json>>,
    created_at: Option<String>,
    enc: String,
    aws_profile: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawGcp {
    resource_id: String,
    created_at: Option<String>,
    enc: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawAzure {
    vault_url: String,
    name: String,
    version: String,
    created_at: Option<String>,
    enc: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawVault {
    vault_address: String,
    engine_path: String,
    key_name: String,
    created_at: Option<String>,
    enc: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawAge {
    recipient: String,
    enc: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawPgp {
    created_at: Option<String>,
    enc: String,
    fp: String,
}

/// A node of the metadata as JSON (the way go-yaml decodes it into the
/// metadata struct: plain scalars typed, timestamps kept as their text).
pub fn to_json(node: &Node) -> Json {
    match &node.value {
        Value::Scalar { text, plain, tag } => match typed::resolve(text, *plain, tag.as_deref()) {
            Ok(Typed::Null) => Json::Null,
            Ok(Typed::Bool(b)) => Json::Bool(b),
            Ok(Typed::Int(i)) => Json::from(i),
            Ok(Typed::Float(f)) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
            Ok(Typed::Time(_) | Typed::Str(_)) | Err(_) => Json::String(text.clone()),
        },
        Value::Alias => Json::Null,
        Value::Sequence(items) => Json::Array(
            items
                .iter()
                .filter_map(|i| match i {
                    crate::manifest::commented::Item::Element(n) => Some(to_json(n)),
                    _ => None,
                })
                .collect(),
        ),
        Value::Mapping(items) => {
            let mut map = serde_json::Map::new();
            for i in items {
                if let crate::manifest::commented::Item::Entry(k, v) = i
                    && let Value::Scalar { text, .. } = &k.value
                {
                    map.insert(text.clone(), to_json(v));
                }
            }
            Json::Object(map)
        }
    }
}

fn decode(what: &str, s: &str, url: bool) -> Result<Vec<u8>, MetaError> {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let r = if url {
        B64URL.decode(compact.trim_end_matches('='))
    } else {
        B64.decode(&compact)
    };
    r.map_err(|_| MetaError(format!("the {what} `enc` is not valid base64")))
}

/// The age `enc` (an armored age file) as the binary file the age provider reads.
pub fn dearmor_age(enc: &str) -> Result<Vec<u8>, MetaError> {
    let body: String = enc
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    let armored = enc
        .trim_start()
        .starts_with("-----BEGIN AGE ENCRYPTED FILE-----");
    if !armored {
        return Err(MetaError("the age `enc` is not an armored age file".into()));
    }
    B64.decode(body)
        .map_err(|_| MetaError("the age `enc` is not valid base64".into()))
}

/// A binary age file armored as age (and sops) write it: 64-column lines,
/// final line break.
pub fn armor_age(binary: &[u8]) -> String {
    let b64 = B64.encode(binary);
    let mut out = String::from("-----BEGIN AGE ENCRYPTED FILE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END AGE ENCRYPTED FILE-----\n");
    out
}

fn context_params(context: &Option<std::collections::BTreeMap<String, Json>>) -> KeyParams {
    let encryption_context = context
        .iter()
        .flatten()
        .map(|(k, v)| {
            let v = match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect();
    KeyParams {
        pgp_signed: false,
        encryption_context,
    }
}

fn unsigned() -> KeyParams {
    KeyParams {
        pgp_signed: false,
        encryption_context: Vec::new(),
    }
}

fn entry(
    kind: KeyType,
    id: String,
    params: KeyParams,
    blob: Vec<u8>,
    created_at: Option<String>,
) -> Entry {
    Entry {
        wrapped: WrappedKey {
            key: KeyId { kind, id },
            params,
            blob,
        },
        created_at,
        role: String::new(),
        aws_profile: String::new(),
    }
}

/// The Vault key id of sops' three fields.
pub fn vault_id(address: &str, engine: &str, name: &str) -> String {
    format!(
        "{}/v1/{}/keys/{}",
        address.trim_end_matches('/'),
        engine.trim_matches('/'),
        name
    )
}

/// sops' fields of a Vault key id: address, engine path, key name.
pub fn vault_fields(id: &str) -> Option<(String, String, String)> {
    let (address, rest) = id.split_once("/v1/")?;
    let (engine, name) = rest.rsplit_once("/keys/")?;
    (!address.is_empty() && !engine.is_empty() && !name.is_empty() && !name.contains('/'))
        .then(|| (address.to_owned(), engine.to_owned(), name.to_owned()))
}

/// The Azure key id of sops' fields.
pub fn azure_id(vault_url: &str, name: &str, version: &str) -> String {
    let base = format!("{}/keys/{}", vault_url.trim_end_matches('/'), name);
    if version.is_empty() {
        base
    } else {
        format!("{base}/{version}")
    }
}

/// sops' fields of an Azure key id: vault URL, name, version.
pub fn azure_fields(id: &str) -> Option<(String, String, String)> {
    let (vault, rest) = id.split_once("/keys/")?;
    let (name, version) = rest.split_once('/').unwrap_or((rest, ""));
    (!vault.is_empty() && !name.is_empty())
        .then(|| (vault.to_owned(), name.to_owned(), version.to_owned()))
}

fn group(raw: RawGroup) -> Result<Group, MetaError> {
    if raw.hckms.as_ref().is_some_and(|v| !v.is_empty()) {
        return Err(MetaError(
            "the file lists HuaweiCloud KMS keys (`hckms`), which ksec does not support".into(),
        ));
    }
    let mut out = Vec::new();
    // sops' order within a group when decrypting: age, pgp, then the others.
    for a in raw.age.unwrap_or_default() {
        let blob = dearmor_age(&a.enc)?;
        out.push(entry(
            KeyType::Age,
            a.recipient.trim().to_owned(),
            unsigned(),
            blob,
            None,
        ));
    }
    for p in raw.pgp.unwrap_or_default() {
        let blob = p.enc.trim().as_bytes().to_vec();
        out.push(entry(
            KeyType::Pgp,
            p.fp.replace(' ', ""),
            unsigned(),
            blob,
            p.created_at,
        ));
    }
    for k in raw.kms.unwrap_or_default() {
        let blob = decode("kms", &k.enc, false)?;
        let mut e = entry(
            KeyType::Aws,
            k.arn,
            context_params(&k.context),
            blob,
            k.created_at,
        );
        e.role = k.role.unwrap_or_default();
        e.aws_profile = k.aws_profile.unwrap_or_default();
        out.push(e);
    }
    for g in raw.gcp_kms.unwrap_or_default() {
        let blob = decode("gcp_kms", &g.enc, false)?;
        out.push(entry(
            KeyType::Gcp,
            g.resource_id,
            unsigned(),
            blob,
            g.created_at,
        ));
    }
    for a in raw.azure_kv.unwrap_or_default() {
        let blob = decode("azure_kv", &a.enc, true)?;
        let id = azure_id(&a.vault_url, &a.name, &a.version);
        out.push(entry(KeyType::Azure, id, unsigned(), blob, a.created_at));
    }
    for v in raw.hc_vault.unwrap_or_default() {
        let id = vault_id(&v.vault_address, &v.engine_path, &v.key_name);
        out.push(entry(
            KeyType::Vault,
            id,
            unsigned(),
            v.enc.into_bytes(),
            v.created_at,
        ));
    }
    Ok(out)
}

/// Reads the metadata (the value of the first document's `sops` entry).
pub fn parse(value: &Json, store: Store) -> Result<SopsMeta, MetaError> {
    if !value.is_object() {
        return Err(MetaError("`sops` is not a mapping".into()));
    }
    let raw: RawMeta = serde_json::from_value(value.clone())
        .map_err(|e| MetaError(format!("the sops metadata is not valid: {e}")))?;
    let flat = group(raw.flat)?;
    let groups = if !flat.is_empty() {
        vec![flat]
    } else {
        raw.key_groups
            .unwrap_or_default()
            .into_iter()
            .map(group)
            .collect::<Result<Vec<_>, _>>()?
    };
    if groups.iter().all(Vec::is_empty) {
        return Err(MetaError("the sops metadata lists no keys".into()));
    }
    let threshold = match raw.shamir_threshold {
        None | Some(Json::Null) => None,
        Some(Json::Number(n)) => Some(
            n.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| MetaError("`shamir_threshold` is not a count".into()))?,
        ),
        Some(_) => return Err(MetaError("`shamir_threshold` is not a number".into())),
    };
    if groups.len() > 1 && threshold.is_some_and(|t| t > groups.len()) {
        return Err(MetaError(format!(
            "`shamir_threshold` is {} but there are only {} key groups",
            threshold.unwrap_or(0),
            groups.len()
        )));
    }
    let rules: Vec<(&str, Option<String>)> = vec![
        ("unencrypted_suffix", raw.unencrypted_suffix),
        ("encrypted_suffix", raw.encrypted_suffix),
        ("unencrypted_regex", raw.unencrypted_regex),
        ("encrypted_regex", raw.encrypted_regex),
        ("unencrypted_comment_regex", raw.unencrypted_comment_regex),
        ("encrypted_comment_regex", raw.encrypted_comment_regex),
    ];
    let set: Vec<(&str, String)> = rules
        .into_iter()
        .filter_map(|(f, v)| v.filter(|v| !v.is_empty()).map(|v| (f, v)))
        .collect();
    if set.len() > 1 {
        let names: Vec<&str> = set.iter().map(|(f, _)| *f).collect();
        return Err(MetaError(format!(
            "the metadata names more than one selection rule ({})",
            names.join(", ")
        )));
    }
    let selection = set
        .into_iter()
        .next()
        .and_then(|(f, v)| Selection::from_field(f, v));
    let version = match raw.version {
        Some(Json::String(s)) => s,
        Some(Json::Number(_)) => {
            return Err(MetaError(
                "the file was written by sops 1.x (a numeric `version`), which ksec does not read"
                    .into(),
            ));
        }
        _ => return Err(MetaError("the sops metadata has no `version`".into())),
    };
    if !semver_like(&version) {
        return Err(MetaError(format!(
            "the sops metadata `version` `{}` is not a version number",
            crate::error::one_line(&version)
        )));
    }
    let lastmodified = raw
        .lastmodified
        .ok_or_else(|| MetaError("the sops metadata has no `lastmodified`".into()))?;
    let mut meta = SopsMeta {
        groups,
        threshold,
        lastmodified,
        mac: raw.mac.unwrap_or_default(),
        selection,
        mac_only_encrypted: raw.mac_only_encrypted.unwrap_or(false),
        version,
        store,
        lines: Vec::new(),
        binding: raw.ksec_binding.filter(|b| !b.is_empty()),
    };
    meta.relist();
    Ok(meta)
}

/// sops parses `version` as semver (a leading `v` allowed) and refuses the
/// file otherwise.
fn semver_like(v: &str) -> bool {
    let v = v.strip_prefix('v').unwrap_or(v);
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    (1..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The associated data of the MAC: `lastmodified` as Go formats a parsed
/// RFC 3339 time (seconds, `Z` for a zero offset), or `None` when it does
/// not parse.
pub fn mac_aad(lastmodified: &str) -> Option<String> {
    let s = lastmodified.trim();
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| {
        s.get(r)
            .is_some_and(|p| p.bytes().all(|c| c.is_ascii_digit()))
    };
    if !(digits(0..4)
        && digits(5..7)
        && digits(8..10)
        && digits(11..13)
        && digits(14..16)
        && digits(17..19))
    {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let zone = match rest {
        "Z" | "z" => "Z".to_owned(),
        z if z.len() == 6
            && matches!(z.as_bytes()[0], b'+' | b'-')
            && z.as_bytes()[3] == b':'
            && z[1..3]
                .bytes()
                .chain(z[4..6].bytes())
                .all(|c| c.is_ascii_digit()) =>
        {
            if &z[1..] == "00:00" {
                "Z".to_owned()
            } else {
                z.to_owned()
            }
        }
        _ => return None,
    };
    Some(format!("{}T{}{zone}", &s[..10], &s[11..19]))
}

// ---------------------------------------------------------------------------
// Writing.

/// A YAML scalar for a metadata string: plain when go-yaml would write it
/// plain, else double-quoted.
pub fn yaml_str(s: &str) -> String {
    let is_string = matches!(typed::resolve(s, true, None), Ok(Typed::Str(_)));
    if is_string && plain_shape(s) {
        s.to_owned()
    } else {
        scalar::double_quoted(s)
    }
}

/// Whether `s` can be a plain scalar in block context (go-yaml's shape
/// rules; whether it reads as a string is checked separately).
fn plain_shape(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let printable = s
        .chars()
        .all(|c| (' '..='~').contains(&c) || (c as u32) >= 0xa0);
    let indicator = "-?:,[]{}#&*!|>'\"%@`".contains(first);
    let dash_ok = matches!(first, '-' | '?' | ':') && s.len() > 1 && !s[1..].starts_with(' ');
    printable
        && (!indicator || dash_ok)
        && !s.starts_with(' ')
        && !s.ends_with(' ')
        && !s.ends_with(':')
        && !s.contains(": ")
        && !s.contains(" #")
}

/// The lines of one key entry's fields (without the list dash), each as
/// (field, rendered value or block).
fn fields(e: &Entry) -> Vec<(&'static str, Field)> {
    let w = &e.wrapped;
    let created = || Field::Str(e.created_at.clone().unwrap_or_default());
    match w.key.kind {
        KeyType::Age => vec![
            ("recipient", Field::Str(w.key.id.clone())),
            ("enc", Field::Block(armor_age(&w.blob))),
        ],
        KeyType::Pgp => vec![
            ("created_at", created()),
            (
                "enc",
                Field::Block(String::from_utf8_lossy(&w.blob).trim().to_owned()),
            ),
            ("fp", Field::Str(w.key.id.clone())),
        ],
        KeyType::Aws => {
            let mut f = vec![("arn", Field::Str(w.key.id.clone()))];
            if !e.role.is_empty() {
                f.push(("role", Field::Str(e.role.clone())));
            }
            if !w.params.encryption_context.is_empty() {
                f.push(("context", Field::Map(w.params.encryption_context.clone())));
            }
            f.push(("created_at", created()));
            f.push(("enc", Field::Str(B64.encode(&w.blob))));
            f.push(("aws_profile", Field::Str(e.aws_profile.clone())));
            f
        }
        KeyType::Gcp => vec![
            ("resource_id", Field::Str(w.key.id.clone())),
            ("created_at", created()),
            ("enc", Field::Str(B64.encode(&w.blob))),
        ],
        KeyType::Azure => {
            let (vault, name, version) = azure_fields(&w.key.id).unwrap_or_default();
            vec![
                ("vault_url", Field::Str(vault)),
                ("name", Field::Str(name)),
                ("version", Field::Str(version)),
                ("created_at", created()),
                ("enc", Field::Str(B64URL.encode(&w.blob))),
            ]
        }
        KeyType::Vault => {
            let (address, engine, name) = vault_fields(&w.key.id).unwrap_or_default();
            vec![
                ("vault_address", Field::Str(address)),
                ("engine_path", Field::Str(engine)),
                ("key_name", Field::Str(name)),
                ("created_at", created()),
                (
                    "enc",
                    Field::Str(String::from_utf8_lossy(&w.blob).into_owned()),
                ),
            ]
        }
    }
}

enum Field {
    Str(String),
    /// Multi-line text (a literal block in YAML).
    Block(String),
    Map(Vec<(String, String)>),
}

/// The list names of a group, in sops' struct order, and the kinds in each.
const LISTS: [(&str, KeyType); 6] = [
    ("kms", KeyType::Aws),
    ("gcp_kms", KeyType::Gcp),
    ("azure_kv", KeyType::Azure),
    ("hc_vault", KeyType::Vault),
    ("age", KeyType::Age),
    ("pgp", KeyType::Pgp),
];

/// go-yaml's indentation for a nested block under a node at `i`: the next
/// multiple of `n` above it (`i + 2` right after a sequence dash is handled
/// by the callers).
fn next_indent(i: usize, n: usize) -> usize {
    n * ((i + n) / n)
}

/// Whether a literal block (`|`, `|-`) reads back as `text`: printable
/// lines (tabs allowed after the first character), a first line that does
/// not start with white space, at most one final line break. Armor always
/// is; anything else is written double-quoted, as go-yaml would.
fn block_safe(text: &str) -> bool {
    let body = text.strip_suffix('\n').unwrap_or(text);
    !body.is_empty()
        && !body.ends_with('\n')
        && !body.starts_with([' ', '\t', '\n'])
        && body
            .split('\n')
            .all(|l| l.chars().all(|c| c == '\t' || scalar::printable(c)))
}

fn yaml_block(out: &mut String, text: &str, indent: usize, nl: &str) {
    // `|` keeps one final line break, `|-` none (age armor ends with one,
    // PGP armor does not).
    let (body, chomp) = match text.strip_suffix('\n') {
        Some(b) => (b, ""),
        None => (text, "-"),
    };
    out.push('|');
    out.push_str(chomp);
    for line in body.split('\n') {
        out.push_str(nl);
        if !line.is_empty() {
            out.push_str(&" ".repeat(indent));
            out.push_str(line);
        }
    }
}

/// Writes one list of entries, the `- ` at column `dash`.
fn yaml_entries(out: &mut String, entries: &[&Entry], dash: usize, nl: &str) {
    let field_col = dash + 2;
    for e in entries {
        out.push_str(&" ".repeat(dash));
        out.push_str("- ");
        for (i, (name, value)) in fields(e).into_iter().enumerate() {
            if i > 0 {
                out.push_str(&" ".repeat(field_col));
            }
            out.push_str(name);
            out.push(':');
            match value {
                Field::Str(s) => {
                    out.push(' ');
                    out.push_str(&yaml_str(&s));
                }
                Field::Block(b) if block_safe(&b) => {
                    out.push(' ');
                    yaml_block(out, &b, next_indent(field_col, 4), nl);
                }
                Field::Block(b) => {
                    out.push(' ');
                    out.push_str(&scalar::double_quoted(&b));
                }
                Field::Map(m) => {
                    for (k, v) in m {
                        out.push_str(nl);
                        out.push_str(&" ".repeat(next_indent(field_col, 4)));
                        out.push_str(&yaml_str(&k));
                        out.push_str(": ");
                        out.push_str(&yaml_str(&v));
                    }
                }
            }
            out.push_str(nl);
        }
    }
}

fn of_kind(group: &Group, kind: KeyType) -> Vec<&Entry> {
    group
        .iter()
        .filter(|e| e.wrapped.key.kind == kind)
        .collect()
}

/// The `sops:` entry in YAML, sops' layout: `key` at column `at`, nested
/// levels 4 columns deeper; every line ends with `nl`.
pub fn render_yaml(meta: &SopsMeta, at: usize, nl: &str) -> String {
    let pad = |n: usize| " ".repeat(n);
    let l1 = next_indent(at, 4);
    let mut out = format!("{}sops:{nl}", pad(at));
    let single = meta.groups.len() <= 1;
    if let Some(t) = meta.threshold.filter(|&t| t > 0) {
        out.push_str(&format!("{}shamir_threshold: {t}{nl}", pad(l1)));
    }
    let flat_list = |out: &mut String, name: &str, kind: KeyType| {
        let entries = meta
            .groups
            .first()
            .map(|g| of_kind(g, kind))
            .unwrap_or_default();
        if !entries.is_empty() {
            out.push_str(&format!("{}{name}:{nl}", pad(l1)));
            yaml_entries(out, &entries, next_indent(l1, 4), nl);
        }
    };
    if single {
        for (name, kind) in &LISTS[..5] {
            flat_list(&mut out, name, *kind);
        }
    } else {
        out.push_str(&format!("{}key_groups:{nl}", pad(l1)));
        let dash = next_indent(l1, 4);
        let col = dash + 2;
        for g in &meta.groups {
            // Group fields in sops' order: pgp, kms, gcp_kms, azure_kv,
            // then hc_vault and age always (no omitempty on those two).
            let order = [
                ("pgp", KeyType::Pgp, false),
                ("kms", KeyType::Aws, false),
                ("gcp_kms", KeyType::Gcp, false),
                ("azure_kv", KeyType::Azure, false),
                ("hc_vault", KeyType::Vault, true),
                ("age", KeyType::Age, true),
            ];
            let mut first = true;
            for (name, kind, always) in order {
                let entries = of_kind(g, kind);
                if entries.is_empty() && !always {
                    continue;
                }
                out.push_str(&if first {
                    format!("{}- ", pad(dash))
                } else {
                    pad(col)
                });
                first = false;
                if entries.is_empty() {
                    out.push_str(&format!("{name}: []{nl}"));
                } else {
                    out.push_str(&format!("{name}:{nl}"));
                    yaml_entries(&mut out, &entries, next_indent(col, 4), nl);
                }
            }
        }
    }
    out.push_str(&format!(
        "{}lastmodified: {}{nl}",
        pad(l1),
        yaml_str(&meta.lastmodified)
    ));
    out.push_str(&format!("{}mac: {}{nl}", pad(l1), yaml_str(&meta.mac)));
    if single {
        flat_list(&mut out, "pgp", KeyType::Pgp);
    }
    if let Some(sel) = &meta.selection {
        let (field, value) = sel.field();
        out.push_str(&format!("{}{field}: {}{nl}", pad(l1), yaml_str(value)));
    }
    if meta.mac_only_encrypted {
        out.push_str(&format!("{}mac_only_encrypted: true{nl}", pad(l1)));
    }
    out.push_str(&format!(
        "{}version: {}{nl}",
        pad(l1),
        yaml_str(&meta.version)
    ));
    if let Some(b) = &meta.binding {
        out.push_str(&format!("{}ksec_binding: {}{nl}", pad(l1), yaml_str(b)));
    }
    out
}

fn json_entry(e: &Entry) -> Json {
    let mut m = serde_json::Map::new();
    for (name, value) in fields(e) {
        let v = match value {
            Field::Str(s) | Field::Block(s) => Json::String(s),
            Field::Map(pairs) => Json::Object(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k, Json::String(v)))
                    .collect(),
            ),
        };
        m.insert(name.to_owned(), v);
    }
    Json::Object(m)
}

/// The `"sops"` member's value as JSON, fields in sops' order, indented
/// with `unit` per level starting at `depth` levels.
pub fn render_json(meta: &SopsMeta, unit: &str, depth: usize, nl: &str) -> String {
    let mut fields: Vec<(String, Json)> = Vec::new();
    let single = meta.groups.len() <= 1;
    if let Some(t) = meta.threshold.filter(|&t| t > 0) {
        fields.push(("shamir_threshold".into(), Json::from(t)));
    }
    let list = |g: &Group, kind: KeyType| -> Json {
        let entries = of_kind(g, kind);
        if entries.is_empty() {
            Json::Null
        } else {
            Json::Array(entries.into_iter().map(json_entry).collect())
        }
    };
    if single {
        let g = meta.groups.first().cloned().unwrap_or_default();
        for (name, kind) in &LISTS[..5] {
            if !of_kind(&g, *kind).is_empty() {
                fields.push(((*name).into(), list(&g, *kind)));
            }
        }
    } else {
        let groups = meta
            .groups
            .iter()
            .map(|g| {
                let mut m = serde_json::Map::new();
                for (name, kind) in [
                    ("pgp", KeyType::Pgp),
                    ("kms", KeyType::Aws),
                    ("gcp_kms", KeyType::Gcp),
                    ("azure_kv", KeyType::Azure),
                ] {
                    if !of_kind(g, kind).is_empty() {
                        m.insert(name.into(), list(g, kind));
                    }
                }
                m.insert("hc_vault".into(), list(g, KeyType::Vault));
                m.insert("age".into(), list(g, KeyType::Age));
                Json::Object(m)
            })
            .collect();
        fields.push(("key_groups".into(), Json::Array(groups)));
    }
    fields.push((
        "lastmodified".into(),
        Json::String(meta.lastmodified.clone()),
    ));
    fields.push(("mac".into(), Json::String(meta.mac.clone())));
    if single
        && let Some(g) = meta.groups.first()
        && !of_kind(g, KeyType::Pgp).is_empty()
    {
        fields.push(("pgp".into(), list(g, KeyType::Pgp)));
    }
    if let Some(sel) = &meta.selection {
        let (field, value) = sel.field();
        fields.push((field.into(), Json::String(value.into())));
    }
    if meta.mac_only_encrypted {
        fields.push(("mac_only_encrypted".into(), Json::Bool(true)));
    }
    fields.push(("version".into(), Json::String(meta.version.clone())));
    if let Some(b) = &meta.binding {
        fields.push(("ksec_binding".into(), Json::String(b.clone())));
    }
    let mut out = String::new();
    write_json_object(&mut out, &fields, unit, depth, nl);
    out
}

/// Pretty JSON with a chosen indent unit, object fields in the given order.
fn write_json_object(
    out: &mut String,
    fields: &[(String, Json)],
    unit: &str,
    depth: usize,
    nl: &str,
) {
    out.push('{');
    for (i, (k, v)) in fields.iter().enumerate() {
        out.push_str(if i == 0 { "" } else { "," });
        out.push_str(nl);
        out.push_str(&unit.repeat(depth + 1));
        out.push_str(&serde_json::to_string(k).expect("a string"));
        out.push_str(": ");
        write_json(out, v, unit, depth + 1, nl);
    }
    out.push_str(nl);
    out.push_str(&unit.repeat(depth));
    out.push('}');
}

fn write_json(out: &mut String, v: &Json, unit: &str, depth: usize, nl: &str) {
    match v {
        Json::Object(m) => {
            let fields: Vec<(String, Json)> =
                m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            write_json_object(out, &fields, unit, depth, nl);
        }
        Json::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                out.push_str(if i == 0 { "" } else { "," });
                out.push_str(nl);
                out.push_str(&unit.repeat(depth + 1));
                write_json(out, item, unit, depth + 1, nl);
            }
            out.push_str(nl);
            out.push_str(&unit.repeat(depth));
            out.push(']');
        }
        other => out.push_str(&serde_json::to_string(other).expect("JSON")),
    }
}

/// Whether `name` is a metadata field sops defines (for `check`).
pub fn is_selection_field(name: &str) -> bool {
    SELECTION_FIELDS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `enc` that a literal block cannot hold (a vertical tab, found by
    /// the sops_file fuzz target; a leading space; two final line breaks)
    /// is written double-quoted and reads back the same.
    #[test]
    fn awkward_blobs_render_to_what_parses_back() {
        let sample = include_str!("../../../testdata/sops/upstream/example-3.10.enc.yaml");
        for enc in [
            r#""-----BEGIN PGP MESSAGE-----\n\nwcBM\vx\n-----END PGP MESSAGE-----""#,
            r#"" -----BEGIN PGP MESSAGE-----\nx""#,
            r#""x\n\n""#,
            r#""x\r\ny""#,
        ] {
            let start = sample.find("          enc: |-").unwrap();
            let end = start + sample[start..].find("          fp:").unwrap();
            let text = format!(
                "{}          enc: {enc}\n{}",
                &sample[..start],
                &sample[end..]
            );
            let stream = crate::pipeline::parse("in.yaml", text).unwrap();
            let m = crate::formats::sops::read_meta(&stream).unwrap().unwrap();
            let block = render_yaml(&m, 0, "\n");
            let again = crate::pipeline::parse("again.yaml", block.clone())
                .unwrap_or_else(|e| panic!("{enc}: {e}\n{block}"));
            let reread = crate::formats::sops::read_meta(&again).unwrap().unwrap();
            assert_eq!(reread.lines, m.lines, "{enc}");
        }
    }

    #[test]
    fn mac_aad_as_go_formats_it() {
        assert_eq!(
            mac_aad("2026-11-30T20:03:32Z").as_deref(),
            Some("2026-11-30T20:03:32Z")
        );
        assert_eq!(
            mac_aad("2026-11-30T20:03:32.999Z").as_deref(),
            Some("2026-11-30T20:03:32Z")
        );
        assert_eq!(
            mac_aad("2026-11-30T20:03:32+00:00").as_deref(),
            Some("2026-11-30T20:03:32Z")
        );
        assert_eq!(
            mac_aad("2026-11-30T22:03:32+02:00").as_deref(),
            Some("2026-11-30T22:03:32+02:00")
        );
        assert_eq!(mac_aad("yesterday"), None);
        assert_eq!(mac_aad("2026-11-30 20:03:32Z"), None);
    }

    #[test]
    fn ids_and_fields() {
        let id = vault_id("http://127.0.0.1:8200", "transit", "k");
        assert_eq!(id, "http://127.0.0.1:8200/v1/transit/keys/k");
        assert_eq!(
            vault_fields(&id),
            Some(("http://127.0.0.1:8200".into(), "transit".into(), "k".into()))
        );
        assert_eq!(
            vault_fields("https://v:8200/v1/a/b/keys/k").unwrap().1,
            "a/b"
        );
        let id = azure_id("https://v.vault.azure.net", "k", "abc");
        assert_eq!(
            azure_fields(&id),
            Some(("https://v.vault.azure.net".into(), "k".into(), "abc".into()))
        );
        assert!(
            semver_like("3.11.0") && semver_like("v3.7") && !semver_like("") && !semver_like("x.1")
        );
        let bin = vec![7u8; 200];
        assert_eq!(dearmor_age(&armor_age(&bin)).unwrap(), bin);
    }
}
