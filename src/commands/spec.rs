//! The value and metadata arguments of `create` and `patch`, kubesec's
//! shapes: `KEY=VALUE`, `KEY=-` (standard input), `file:PATH` (key = the
//! file's name), `file:KEY=PATH`, and `~KEY` to remove. Parsed and checked
//! before any file is read; values are read by [`read_values`].

use std::path::PathBuf;

use zeroize::Zeroizing;

use ksec::error::{Error, Exit, Result};
use ksec::k8s;
use ksec::manifest::Section;

/// Where a value comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum ValueSource {
    /// Given on the command line.
    Literal(Zeroizing<String>),
    /// Read from standard input (`KEY=-`).
    Stdin,
    /// Read from a file.
    File(PathBuf),
}

impl std::fmt::Debug for ValueSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueSource::Literal(_) => f.write_str("Literal([REDACTED])"),
            ValueSource::Stdin => f.write_str("Stdin"),
            ValueSource::File(p) => write!(f, "File({})", p.display()),
        }
    }
}

/// One `-d`/`-s` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueSpec {
    /// `data` or `stringData`.
    pub section: Section,
    /// The map key.
    pub key: String,
    /// The value; `None` removes the key (`~KEY`).
    pub source: Option<ValueSource>,
}

/// One `-a`/`-l`/`-m` argument: set or (`~KEY`) remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaSpec {
    /// The key.
    pub key: String,
    /// The value; `None` removes the key.
    pub value: Option<String>,
}

/// Parses `-d` (`Section::Data`) or `-s` arguments. `allow_remove` is
/// false for `create`.
pub fn parse_values(
    args: &[String],
    section: Section,
    allow_remove: bool,
) -> Result<Vec<ValueSpec>> {
    let flag = match section {
        Section::Data => "--data",
        Section::StringData => "--string-data",
    };
    let mut out = Vec::with_capacity(args.len());
    for arg in args {
        let bad = |what: String| {
            Error::usage(format!("{flag} `{}`: {what}", shown(arg)))
                .hint("use KEY=VALUE, KEY=- (standard input), file:PATH, file:KEY=PATH or ~KEY")
        };
        let (key, source) = if let Some(key) = arg.strip_prefix('~') {
            if !allow_remove {
                return Err(bad("~KEY removes a key, which only `patch` does".into()));
            }
            (key.to_owned(), None)
        } else if let Some(rest) = arg.strip_prefix("file:") {
            match rest.split_once('=') {
                Some((k, path)) if k8s::valid_key(k) && !path.is_empty() => {
                    (k.to_owned(), Some(ValueSource::File(PathBuf::from(path))))
                }
                _ => {
                    let path = PathBuf::from(rest);
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .ok_or_else(|| bad("no file name".into()))?;
                    (name, Some(ValueSource::File(path)))
                }
            }
        } else {
            let (k, v) = arg
                .split_once('=')
                .ok_or_else(|| bad("expected KEY=VALUE".into()))?;
            let source = if v == "-" {
                ValueSource::Stdin
            } else {
                ValueSource::Literal(Zeroizing::new(v.to_owned()))
            };
            (k.to_owned(), Some(source))
        };
        if !k8s::valid_key(&key) {
            return Err(bad(format!(
                "`{key}` is not a valid Secret key (letters, digits, `-`, `_` and `.`)"
            )));
        }
        out.push(ValueSpec {
            section,
            key,
            source,
        });
    }
    Ok(out)
}

/// The argument as it may appear in a message: never the value.
fn shown(arg: &str) -> String {
    match arg.split_once('=') {
        Some((k, _)) if !arg.starts_with("file:") => format!("{k}=…"),
        _ => arg.to_owned(),
    }
}

/// Parses `-a`/`-l` (or `-m`) arguments: `KEY=VALUE` or, when
/// `allow_remove`, `~KEY`.
pub fn parse_meta(args: &[String], flag: &str, allow_remove: bool) -> Result<Vec<MetaSpec>> {
    args.iter()
        .map(|arg| {
            let bad = |what: &str| Error::usage(format!("{flag} `{arg}`: {what}"));
            let (key, value) = match arg.strip_prefix('~') {
                Some(k) if allow_remove => (k.to_owned(), None),
                Some(_) => return Err(bad("~KEY removes a key, which only `patch` does")),
                None => {
                    let (k, v) = arg
                        .split_once('=')
                        .ok_or_else(|| bad("expected KEY=VALUE"))?;
                    (k.to_owned(), Some(v.to_owned()))
                }
            };
            if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(bad("the key is empty or has blanks"));
            }
            Ok(MetaSpec { key, value })
        })
        .collect()
}

/// Checks `-m` arguments: only `name` and `namespace`.
pub fn check_metadata(specs: &[MetaSpec]) -> Result<()> {
    for m in specs {
        if !matches!(m.key.as_str(), "name" | "namespace") {
            return Err(Error::usage(format!(
                "--metadata `{}`: only name and namespace can be set here",
                m.key
            ))
            .hint("labels and annotations have their own flags: -l KEY=VALUE, -a KEY=VALUE"));
        }
        if m.key == "name" && m.value.as_deref().is_none_or(str::is_empty) {
            return Err(Error::usage("--metadata: a Secret needs a name"));
        }
    }
    Ok(())
}

/// Refuses more than one `KEY=-`: standard input can be read once.
pub fn check_one_stdin(specs: &[ValueSpec]) -> Result<()> {
    let n = specs
        .iter()
        .filter(|s| s.source == Some(ValueSource::Stdin))
        .count();
    if n > 1 {
        return Err(
            Error::usage("only one value can be read from standard input (KEY=-)")
                .hint("read the others from files: file:KEY=PATH"),
        );
    }
    Ok(())
}

/// A value read for a key: its bytes.
pub struct ReadValue {
    /// The spec it came from.
    pub spec: ValueSpec,
    /// The bytes (`None` for a removal).
    pub bytes: Option<Zeroizing<Vec<u8>>>,
}

/// Reads every value (files, standard input) and checks what the section
/// can hold: `stringData` values must be UTF-8 without NUL.
pub fn read_values(specs: &[ValueSpec], limit: u64) -> Result<Vec<ReadValue>> {
    use std::io::Read as _;
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let label = format!("{}.{}", spec.section.as_str(), spec.key);
        let bytes = match &spec.source {
            None => None,
            Some(ValueSource::Literal(v)) => Some(Zeroizing::new(v.as_bytes().to_vec())),
            Some(ValueSource::Stdin) => {
                let mut b = Zeroizing::new(Vec::new());
                std::io::stdin()
                    .lock()
                    .take(limit + 1)
                    .read_to_end(&mut b)
                    .map_err(|e| {
                        Error::new(
                            Exit::Io,
                            "unreadable",
                            format!(
                                "{label}: cannot read standard input: {}",
                                ksec::io::io_reason(&e)
                            ),
                        )
                    })?;
                Some(b)
            }
            Some(ValueSource::File(p)) => {
                let cannot_read = |e: std::io::Error| {
                    Error::new(
                        Exit::Io,
                        "unreadable",
                        format!(
                            "{label}: {}: cannot read: {}",
                            p.display(),
                            ksec::io::io_reason(&e)
                        ),
                    )
                };
                let f = std::fs::File::open(p).map_err(cannot_read)?;
                let mut b = Zeroizing::new(Vec::new());
                f.take(limit + 1).read_to_end(&mut b).map_err(cannot_read)?;
                Some(b)
            }
        };
        if let Some(b) = &bytes {
            if b.len() as u64 > limit {
                return Err(Error::new(
                    Exit::Input,
                    "invalid-value",
                    format!(
                        "{label}: the value is larger than the limit of {}",
                        ksec::io::human_size(limit)
                    ),
                ));
            }
            if spec.section == Section::StringData
                && (std::str::from_utf8(b).is_err() || b.contains(&0))
            {
                return Err(Error::new(
                    Exit::Input,
                    "invalid-value",
                    format!(
                        "{label}: the value is not UTF-8 text without NUL, which stringData needs"
                    ),
                )
                .hint("use --data (-d): data values hold any bytes"));
            }
        }
        out.push(ReadValue {
            spec: spec.clone(),
            bytes,
        });
    }
    Ok(out)
}

/// The clear value to store: base64 text for `data` (keeping `prior` when
/// it holds the same bytes), the text itself for `stringData`.
pub fn stored(section: Section, bytes: &[u8], prior: Option<&str>) -> Zeroizing<String> {
    match section {
        Section::Data => k8s::encode_data_like(bytes, prior),
        Section::StringData => Zeroizing::new(String::from_utf8_lossy(bytes).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(arg: &str) -> ValueSpec {
        parse_values(&[arg.to_owned()], Section::Data, true)
            .unwrap()
            .remove(0)
    }

    #[test]
    fn shapes() {
        let s = one("user=admin=x");
        assert_eq!(s.key, "user");
        assert_eq!(
            s.source,
            Some(ValueSource::Literal(Zeroizing::new("admin=x".into())))
        );
        assert_eq!(one("pw=-").source, Some(ValueSource::Stdin));
        let f = one("file:pki/ca.crt");
        assert_eq!(
            (f.key.as_str(), f.source),
            ("ca.crt", Some(ValueSource::File("pki/ca.crt".into())))
        );
        let f = one("file:tls.key=pki/private/server.key");
        assert_eq!(f.key, "tls.key");
        assert_eq!(
            f.source,
            Some(ValueSource::File("pki/private/server.key".into()))
        );
        // `a/b` is no key, so the whole rest is a path, whose name is no key.
        assert!(parse_values(&["file:a/b=c.txt".into()], Section::Data, true).is_err());
        assert_eq!(one("file:dir=x/f.txt").key, "dir");
        assert_eq!(one("~old").source, None);
        let bad = |a: &str| parse_values(&[a.to_owned()], Section::Data, false).unwrap_err();
        assert!(bad("novalue").message.contains("KEY=VALUE"));
        assert!(bad("bad key=x").message.contains("not a valid Secret key"));
        assert!(
            !bad("bad key=s3cr3t").message.contains("s3cr3t"),
            "values stay out of messages"
        );
        assert!(bad("~x").message.contains("only `patch`"));
        let two = parse_values(&["a=-".into(), "b=-".into()], Section::Data, false).unwrap();
        assert!(check_one_stdin(&two).is_err());
    }

    #[test]
    fn meta() {
        let m = parse_meta(&["app=demo".into(), "~old".into()], "--label", true).unwrap();
        assert_eq!(m[0].value.as_deref(), Some("demo"));
        assert_eq!(m[1].value, None);
        assert!(parse_meta(&["x".into()], "--label", true).is_err());
        assert!(check_metadata(&parse_meta(&["team=a".into()], "-m", true).unwrap()).is_err());
        assert!(check_metadata(&parse_meta(&["namespace=a".into()], "-m", true).unwrap()).is_ok());
    }
}
