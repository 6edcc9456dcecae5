//! `.ksec.yaml`: which keys a file's Secrets are encrypted to, by path.
//!
//! ```yaml
//! rules:                      # the first rule whose path matches wins
//!   - path: "prod/**"         # a glob, relative to this file's directory
//!     keys:
//!       - aws:arn:aws:kms:eu-west-1:111122223333:key/1234abcd-…
//!       - age:age1…
//!   - path: "**/*.yaml"
//!     keys: [age:age1…]
//!     sections: [data]        # optional: encrypt only `data`; stringData stays clear
//! ```
//!
//! Where it comes from: `--config FILE` / `KSEC_CONFIG`, else the nearest
//! `.ksec.yaml` looking from **the target file's directory** upward (not
//! from the working directory, so `ksec encrypt -i prod/db.yaml` finds the
//! same rules from anywhere; sops looks from the working directory,
//! getsops/sops#242). Standard input has no path and matches no rule.
//!
//! Patterns (globset): matched against the file's path relative to the
//! directory that holds the configuration, with `/` separators; `*`, `?`
//! and `[…]` never match `/`; `**` matches any number of directories
//! (`prod/**` is everything under `prod/`, `**/*.yaml` every YAML file);
//! `{a,b}` alternatives. A pattern without `/` therefore names a file in
//! that directory only. Paths are made absolute and `.`/`..` are resolved
//! lexically (symbolic links are not resolved); a file outside the
//! configuration's directory matches no rule.
//!
//! `sections` (default: both) names the sections whose values are
//! encrypted; the values of the other one stay clear text, recorded in the
//! footer (`# ksec:clear:stringData`) so that `check` and `decrypt` know
//! that it is on purpose. The MAC covers those values too.
//!
//! Parsing (serde-saphyr): duplicate keys, unknown fields, aliases beyond a
//! small budget and wrong types are errors with the line of the problem.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use globset::{GlobBuilder, GlobMatcher};
use serde::Deserialize;
use serde_saphyr::Spanned;

mod sops;

use crate::error::{Error, Exit, Location, Result};
use crate::io::{self, Source};
use crate::keys::KeyId;
use crate::manifest::ClearSections;

/// The configuration file name looked up from a file's directory upward.
pub const FILE_NAME: &str = ".ksec.yaml";
/// sops' configuration, used when no `.ksec.yaml` is found.
pub const SOPS_FILE_NAME: &str = ".sops.yaml";
/// The environment variable naming a configuration file (like `--config`).
pub const ENV_CONFIG: &str = "KSEC_CONFIG";
/// Configuration files are small; refuse anything larger.
const MAX_CONFIG: u64 = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    rules: Vec<RawRule>,
    /// Paths that hold no ksec data (tree walks and `check` leave them out).
    #[serde(default)]
    ignore: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    path: Spanned<String>,
    keys: Vec<Spanned<String>>,
    #[serde(default)]
    sections: Option<Spanned<Vec<String>>>,
    /// `kubesec` (the default) or `sops`: the format new files are written in.
    #[serde(default)]
    format: Option<Spanned<String>>,
    /// `required`: files without a binding are refused (`optional`: the default).
    #[serde(default)]
    binding: Option<Spanned<String>>,
    /// AWS KMS keys of new Secrets wrap with their namespace and name as
    /// encryption context (kubesec format; ksec-only files).
    #[serde(default)]
    aws_context: Option<bool>,
}

/// How a rule matches paths.
#[derive(Debug)]
enum Matcher {
    /// A `.ksec.yaml` glob against the path relative to the configuration.
    Glob(GlobMatcher),
    /// A `.sops.yaml` `path_regex` (unanchored, as sops applies it) against
    /// the relative path, or the absolute one outside the configuration's
    /// directory; `None` matches every file.
    Regex(Option<regex::Regex>),
}

/// One rule: files matching `pattern` are encrypted to `keys`.
#[derive(Debug)]
pub struct Rule {
    /// The pattern as written.
    pub pattern: String,
    /// 1-based line of the rule's `path` in the configuration file.
    pub line: usize,
    /// The keys, normalised as they are written in footers.
    pub keys: Vec<KeyId>,
    /// Sections kept in clear text (none unless `sections` leaves one out).
    pub clear: ClearSections,
    /// The format of new files and what it needs beyond keys.
    pub format: crate::formats::FormatRule,
    matcher: Matcher,
}

impl Rule {
    /// Whether a file with this footer key set and these clear sections is
    /// in line with the rule (key order does not matter).
    pub fn agrees(&self, keys: &[KeyId], clear: ClearSections) -> bool {
        clear == self.clear && self.missing(keys).is_empty() && self.extra(keys).is_empty()
    }

    /// The rule's keys that none of `keys` (a file's) satisfies.
    pub fn missing(&self, keys: &[KeyId]) -> Vec<&KeyId> {
        self.keys
            .iter()
            .filter(|r| !keys.iter().any(|k| k.satisfies(r)))
            .collect()
    }

    /// The file's `keys` that satisfy none of the rule's.
    pub fn extra<'k>(&self, keys: &'k [KeyId]) -> Vec<&'k KeyId> {
        keys.iter()
            .filter(|k| !self.keys.iter().any(|r| k.satisfies(r)))
            .collect()
    }
}

/// A parsed configuration file.
#[derive(Debug)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// The directory patterns are relative to (absolute, normalised).
    pub dir: PathBuf,
    /// The rules, in order.
    pub rules: Vec<Rule>,
    /// `ignore` patterns: files that hold no ksec data.
    pub ignore: Vec<(String, GlobMatcher)>,
    /// A `.sops.yaml` (its `creation_rules`), not a `.ksec.yaml`.
    pub sops: bool,
}

impl Config {
    /// Parses configuration text. `path` is the file it came from: its
    /// directory is what patterns are relative to. A file named
    /// `.sops.yaml`, or one with `creation_rules`, is read as sops'.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let is_sops = path.file_name().is_some_and(|n| n == SOPS_FILE_NAME)
            || text.lines().any(|l| l.starts_with("creation_rules:"));
        if is_sops {
            return sops::parse(text, path);
        }
        let name = path.display().to_string();
        let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| {
            let e = e.without_snippet();
            let line = e.location().map_or(0, |l| l.line());
            let message = e.to_string();
            // The message ends with its own " at line N column M"; keep the
            // line in front, where every ksec message has it.
            let mut message = match message.rfind(" at line ") {
                Some(i) => message[..i].to_owned(),
                None => message,
            };
            // Advice meant for programmers using the library, not for users.
            if let Some(i) = message.find(", set DuplicateKeyPolicy") {
                message.truncate(i);
            }
            Error::new(Exit::Input, "config", message)
                .at(Location::file(&name).line(line as usize))
                .hint("see README, `.ksec.yaml`, for the format")
        })?;
        let dir = absolute(path.parent().unwrap_or(Path::new(".")))?;
        let mut rules = Vec::with_capacity(raw.rules.len());
        for r in raw.rules {
            let line = r.path.referenced.line() as usize;
            let at = |l: u64| Location::file(&name).line(l as usize);
            let bad = |l: u64, m: String| Error::new(Exit::Input, "config", m).at(at(l));
            let pattern = r.path.value;
            let matcher = glob(&pattern)
                .map_err(|e| bad(line as u64, format!("path `{pattern}`: {}", e.kind())))?;
            if r.keys.is_empty() {
                return Err(bad(line as u64, format!("rule `{pattern}` lists no keys")));
            }
            let mut keys: Vec<KeyId> = Vec::with_capacity(r.keys.len());
            for k in &r.keys {
                let key = crate::keys::parse_key(&k.value)
                    .and_then(|key| crate::keys::normalise_config_key(&key))
                    .map_err(|m| {
                        bad(
                            k.referenced.line(),
                            m.0.trim_start_matches("--key ").to_owned(),
                        )
                    })?;
                if keys.contains(&key) {
                    return Err(bad(
                        k.referenced.line(),
                        format!("key {key} is listed twice"),
                    ));
                }
                keys.push(key);
            }
            let mut format = match &r.format {
                None => crate::formats::FormatRule::default(),
                Some(f) => match crate::formats::by_name(&f.value) {
                    Some(format) => crate::formats::FormatRule {
                        format: Some(format.name()),
                        ..Default::default()
                    },
                    None => {
                        return Err(bad(
                            f.referenced.line(),
                            format!("unknown format `{}` (known: kubesec, sops)", f.value),
                        ));
                    }
                },
            };
            if let Some(b) = &r.binding {
                format.binding_required = match b.value.as_str() {
                    "required" => true,
                    "optional" => false,
                    other => {
                        return Err(bad(
                            b.referenced.line(),
                            format!("binding `{other}`: expected `required` or `optional`"),
                        ));
                    }
                };
            }
            format.aws_context = r.aws_context.unwrap_or(false);
            if format.aws_context && format.format == Some("sops") {
                return Err(bad(
                    line as u64,
                    format!(
                        "rule `{pattern}`: `aws_context` is for the kubesec format (a .sops.yaml gives sops keys a `context`)"
                    ),
                ));
            }
            let clear = match &r.sections {
                None => ClearSections::default(),
                Some(s) => {
                    let bad = |m: String| bad(s.referenced.line(), m);
                    if s.value.is_empty() {
                        return Err(bad(
                            "`sections` is empty: name `data`, `stringData` or both".into(),
                        ));
                    }
                    let mut encrypted = ClearSections::default();
                    for name in &s.value {
                        match name.as_str() {
                            "data" => encrypted.data = true,
                            "stringData" => encrypted.string_data = true,
                            other => {
                                return Err(bad(format!(
                                    "unknown section `{other}` (known: data, stringData)"
                                )));
                            }
                        }
                    }
                    ClearSections {
                        data: !encrypted.data,
                        string_data: !encrypted.string_data,
                    }
                }
            };
            if format.format == Some("sops") && !clear.is_empty() {
                return Err(bad(
                    line as u64,
                    format!(
                        "rule `{pattern}`: `sections` is for the kubesec format; the sops format encrypts data and stringData (`encrypted_regex` in a .sops.yaml chooses otherwise)"
                    ),
                ));
            }
            rules.push(Rule {
                pattern,
                line,
                keys,
                clear,
                format,
                matcher: Matcher::Glob(matcher),
            });
        }
        let mut ignore = Vec::with_capacity(raw.ignore.len());
        for p in raw.ignore {
            let matcher = glob(&p.value).map_err(|e| {
                Error::new(
                    Exit::Input,
                    "config",
                    format!("ignore `{}`: {}", p.value, e.kind()),
                )
                .at(Location::file(&name).line(p.referenced.line() as usize))
            })?;
            ignore.push((p.value, matcher));
        }
        Ok(Config {
            path: path.to_owned(),
            dir,
            rules,
            ignore,
            sops: false,
        })
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = io::read_text(&Source::File(path.to_owned()), MAX_CONFIG)?;
        Config::parse(&text, path)
    }

    /// The configuration's path for messages: relative to the working
    /// directory when it lies below it (`.ksec.yaml`, `k8s/.ksec.yaml`).
    pub fn shown(&self) -> String {
        let cwd = std::env::current_dir().ok().and_then(|d| absolute(&d).ok());
        match cwd.as_deref().and_then(|c| self.path.strip_prefix(c).ok()) {
            Some(rel) => rel.display().to_string(),
            None => self.path.display().to_string(),
        }
    }

    /// `file`'s path relative to the configuration's directory, `/`
    /// separated; `None` outside it.
    fn relative(&self, file: &Path) -> Option<String> {
        let abs = absolute(file).ok()?;
        let rel = abs.strip_prefix(&self.dir).ok()?;
        Some(rel.to_str()?.replace(std::path::MAIN_SEPARATOR, "/"))
    }

    /// The first rule matching `file` (any path; made absolute first), with
    /// its index.
    pub fn rule_for(&self, file: &Path) -> Option<(usize, &Rule)> {
        let rel = self.relative(file);
        let abs = absolute(file).ok()?;
        let abs = abs.to_str()?;
        self.rules
            .iter()
            .enumerate()
            .find(|(_, r)| match &r.matcher {
                Matcher::Glob(g) => rel.as_deref().is_some_and(|p| g.is_match(p)),
                Matcher::Regex(None) => true,
                Matcher::Regex(Some(re)) => re.is_match(rel.as_deref().unwrap_or(abs)),
            })
    }

    /// The `ignore` pattern that matches `file`, if any.
    pub fn ignores(&self, file: &Path) -> Option<&str> {
        let rel = self.relative(file)?;
        self.ignore
            .iter()
            .find(|(_, m)| m.is_match(&rel))
            .map(|(p, _)| p.as_str())
    }
}

/// The configurations of a run: `--config` for every file, or the nearest
/// `.ksec.yaml` of each file, read once per directory.
pub struct Configs {
    explicit: Option<Rc<Config>>,
    /// Directory → the configuration that governs it (None: none found).
    by_dir: RefCell<HashMap<PathBuf, Option<Rc<Config>>>>,
}

impl Configs {
    /// `explicit`: the `--config`/`KSEC_CONFIG` file, when given.
    pub fn new(explicit: Option<&Path>) -> Result<Configs> {
        Ok(Configs {
            explicit: explicit.map(Config::load).transpose()?.map(Rc::new),
            by_dir: RefCell::new(HashMap::new()),
        })
    }

    /// No configuration at all (commands that do not use one).
    pub fn none() -> Configs {
        Configs {
            explicit: None,
            by_dir: RefCell::new(HashMap::new()),
        }
    }

    /// The configuration that governs `file`: the explicit one, else the
    /// nearest `.ksec.yaml` from the file's directory upward. A malformed
    /// one is an error.
    pub fn for_file(&self, file: &Path) -> Result<Option<Rc<Config>>> {
        if let Some(c) = &self.explicit {
            return Ok(Some(c.clone()));
        }
        let abs = absolute(file)?;
        let dir = abs.parent().unwrap_or(Path::new("/")).to_owned();
        self.for_dir(&dir)
    }

    /// The nearest `.ksec.yaml` from `dir` upward; when there is none, the
    /// nearest `.sops.yaml`.
    fn for_dir(&self, dir: &Path) -> Result<Option<Rc<Config>>> {
        if let Some(c) = self.by_dir.borrow().get(dir) {
            return Ok(c.clone());
        }
        let found = match self.nearest(dir, FILE_NAME)? {
            Some(c) => Some(c),
            None => self.nearest(dir, SOPS_FILE_NAME)?,
        };
        self.by_dir
            .borrow_mut()
            .insert(dir.to_owned(), found.clone());
        Ok(found)
    }

    fn nearest(&self, dir: &Path, name: &str) -> Result<Option<Rc<Config>>> {
        let mut at = Some(dir);
        while let Some(d) = at {
            let candidate = d.join(name);
            if candidate.is_file() {
                if let Some(c) = self.loaded_from(&candidate) {
                    return Ok(Some(c));
                }
                return Ok(Some(Rc::new(Config::load(&candidate)?)));
            }
            at = d.parent();
        }
        Ok(None)
    }

    /// A configuration read already (so a file is parsed once per run).
    fn loaded_from(&self, path: &Path) -> Option<Rc<Config>> {
        self.by_dir
            .borrow()
            .values()
            .flatten()
            .find(|c| c.path == path)
            .cloned()
    }

    /// The rule for a source: none for standard input.
    pub fn rule(&self, source: &Source) -> Result<Option<(Rc<Config>, usize)>> {
        let Source::File(path) = source else {
            return Ok(None);
        };
        let Some(config) = self.for_file(path)? else {
            return Ok(None);
        };
        let index = config.rule_for(path).map(|(i, _)| i);
        Ok(index.map(|i| (config, i)))
    }

    /// The `.ksec.yaml` `ignore` pattern that leaves `file` out, as a
    /// reason for messages. A configuration that does not parse ignores
    /// nothing here (the error is reported where rules are read).
    pub fn ignored(&self, file: &Path) -> Option<String> {
        let config = self.for_file(file).ok()??;
        config
            .ignores(file)
            .map(|p| format!("ignored by {} (`{p}`)", config.shown()))
    }

    /// Every configuration read so far.
    pub fn loaded(&self) -> Vec<Rc<Config>> {
        let mut out: Vec<Rc<Config>> = self.explicit.iter().cloned().collect();
        for c in self.by_dir.borrow().values().flatten() {
            if !out.iter().any(|o| Rc::ptr_eq(o, c)) {
                out.push(c.clone());
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

/// A pattern as `.ksec.yaml` writes them: `*` does not cross `/`, `**`
/// does, backslash escapes.
fn glob(pattern: &str) -> std::result::Result<GlobMatcher, globset::Error> {
    Ok(GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()?
        .compile_matcher())
}

/// `path` made absolute against the working directory, with `.` and `..`
/// resolved lexically (links are not followed).
pub fn absolute(path: &Path) -> Result<PathBuf> {
    let joined = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map_err(|e| {
                Error::new(
                    Exit::Io,
                    "unreadable",
                    format!("cannot read the working directory: {}", io::io_reason(&e)),
                )
            })?
            .join(path)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGE: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/repo/.ksec.yaml"))
    }

    #[test]
    fn first_match_wins_and_globs_are_relative() {
        let c = parse(&format!(
            "rules:\n  - path: 'prod/**'\n    keys: [age:{AGE}]\n    sections: [data]\n  - path: '*.yaml'\n    keys: ['age:{AGE}']\n"
        ))
        .unwrap();
        assert_eq!(c.rules.len(), 2);
        assert_eq!(c.rules[0].line, 2);
        assert!(c.rules[0].clear.string_data && !c.rules[0].clear.data);
        let idx = |p: &str| c.rule_for(Path::new(p)).map(|(i, _)| i);
        assert_eq!(idx("/repo/prod/a/b.yaml"), Some(0));
        assert_eq!(idx("/repo/top.yaml"), Some(1));
        assert_eq!(idx("/repo/sub/x.yaml"), None, "`*` does not cross `/`");
        assert_eq!(idx("/repo/prod/../top.yaml"), Some(1));
        assert_eq!(idx("/elsewhere/top.yaml"), None);
    }

    #[test]
    fn errors_have_lines() {
        let e = |t: &str| parse(t).unwrap_err().to_string();
        let m = e("rules:\n  - path: a\n    keys: [age:x]\n");
        assert!(m.starts_with("/repo/.ksec.yaml:3:"), "{m}");
        let m = e("rules:\n  - path: a\n    path: b\n    keys: []\n");
        assert!(m.starts_with("/repo/.ksec.yaml:3:"), "{m}");
        assert!(m.contains("duplicate"), "{m}");
        let m = e(&format!(
            "rules:\n  - path: a\n    keys: [age:{AGE}]\n    colour: red\n"
        ));
        assert!(m.contains("colour"), "{m}");
        let m = e(&format!(
            "rules:\n  - path: a\n    keys: [age:{AGE}]\n    sections: [metadata]\n"
        ));
        assert!(
            m.starts_with("/repo/.ksec.yaml:4:") && m.contains("metadata"),
            "{m}"
        );
        let m = e("rules:\n  - path: 'a[/'\n    keys: [pgp:ABC]\n");
        assert!(m.starts_with("/repo/.ksec.yaml:2:"), "{m}");
        let m = e(&format!(
            "rules:\n  - path: a\n    keys: [pgp:alice@example.com, age:{AGE}]\n"
        ));
        assert!(m.contains("fingerprint"), "{m}");
    }

    #[test]
    fn pgp_fingerprints_are_normalised() {
        let c = parse(
            "rules:\n  - path: '**'\n    keys: ['pgp:f4d4 2d6e 0000 0000 0000  0000 0000 0000 0000 00aa']\n",
        )
        .unwrap();
        assert_eq!(
            c.rules[0].keys[0].id,
            format!("F4D42D6E{}00AA", "0".repeat(28))
        );
    }
}
