//! From command-line arguments to the files a command works on.
//!
//! Each argument is `-` (standard input, at most once), a file (taken
//! whatever its name), or a directory, walked recursively for files ending
//! in `.yaml`, `.yml` or `.json`. Within a directory the files come in
//! sorted path order (component by component, byte-wise), so runs are
//! reproducible; arguments keep their order, and a file named twice is
//! taken once.
//!
//! The walk skips hidden entries (names starting with `.`: `.git`,
//! `.ksec.yaml`, `.pre-commit-config.yaml`, …), does not follow symbolic
//! links to directories (no loops, nothing outside the tree), and follows a
//! symbolic link to a file only when the file it points to lies inside the
//! directory argument.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Exit, Result};
use crate::io::{Source, io_reason};

/// The files of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// Every input, in order.
    pub sources: Vec<Source>,
    /// Exactly one argument, and it was a file or `-` (not a directory):
    /// commands keep their one-file behaviour and output for it.
    pub single: bool,
    /// Files left out, and why (Helm chart templates, `.ksec.yaml`
    /// `ignore` patterns).
    pub skipped: Vec<(PathBuf, String)>,
}

/// Which files a run leaves out, and why: walks always ask; files named on
/// the command line are asked only when `named` is set (`check`, which
/// pre-commit calls with file names).
pub struct Skip<'a> {
    /// Why a file is left out, or `None` to keep it.
    pub reason: &'a dyn Fn(&Path) -> Option<String>,
    /// Also for files named on the command line.
    pub named: bool,
}

impl Skip<'_> {
    /// Leaves nothing out.
    pub const NONE: Skip<'static> = Skip {
        reason: &|_| None,
        named: false,
    };
}

/// The `Chart.yaml` of the Helm chart whose templates `path` is among:
/// below a `templates/` directory whose parent holds a `Chart.yaml`. Those
/// are Go templates, not YAML, and hold no ksec data. The chart is named as
/// the path was given (relative stays relative) when its directories show
/// it, else absolute.
pub fn helm_chart_of(path: &Path) -> Option<PathBuf> {
    let chart = |p: &Path| -> Option<PathBuf> {
        p.ancestors().skip(1).find_map(|d| {
            let chart = d.parent()?.join("Chart.yaml");
            (d.file_name().is_some_and(|n| n == "templates") && chart.is_file()).then_some(chart)
        })
    };
    chart(path).or_else(|| chart(&crate::config::absolute(path).ok()?))
}

/// Whether a walked file is a manifest by its name.
fn is_manifest_name(name: &str) -> bool {
    [".yaml", ".yml", ".json"]
        .iter()
        .any(|ext| name.len() > ext.len() && name.ends_with(ext))
}

/// Expands arguments; `default` is used when there are none. `skip` says
/// which files to leave out.
pub fn expand(args: &[PathBuf], default: Source, skip: &Skip<'_>) -> Result<Inputs> {
    if args.is_empty() {
        return Ok(Inputs {
            sources: vec![default],
            single: true,
            skipped: Vec::new(),
        });
    }
    let mut sources: Vec<Source> = Vec::new();
    let mut skipped = Vec::new();
    let mut single = args.len() == 1;
    let mut stdin_seen = false;
    for arg in args {
        if arg.as_os_str() == "-" {
            if stdin_seen {
                return Err(Error::usage("`-` (standard input) can be given only once"));
            }
            stdin_seen = true;
            sources.push(Source::Stdin);
            continue;
        }
        let unreadable = |e: std::io::Error| {
            Error::new(
                Exit::Io,
                "unreadable",
                format!("cannot read: {}", io_reason(&e)),
            )
            .in_file(&arg.display().to_string())
        };
        let meta = fs::metadata(arg).map_err(unreadable)?;
        if meta.is_dir() {
            single = false;
            let root = fs::canonicalize(arg).map_err(unreadable)?;
            let mut found = Vec::new();
            walk(arg, &root, &mut found)?;
            if arg.as_os_str() == "." {
                // `./k8s/db.yaml` reads better as `k8s/db.yaml`.
                for p in &mut found {
                    if let Ok(rest) = p.strip_prefix(".") {
                        *p = rest.to_owned();
                    }
                }
            }
            found.sort();
            for p in found {
                match (skip.reason)(&p) {
                    Some(why) => skipped.push((p, why)),
                    None => sources.push(Source::File(p)),
                }
            }
        } else {
            match (skip.reason)(arg).filter(|_| skip.named) {
                Some(why) => skipped.push((arg.clone(), why)),
                None => sources.push(Source::File(arg.clone())),
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    sources.retain(|s| seen.insert(s.clone()));
    Ok(Inputs {
        sources,
        single,
        skipped,
    })
}

/// [`expand`], refusing a run with no file at all (directories without
/// manifests): usually a wrong path, and `decrypt` would print nothing.
pub fn expand_some(args: &[PathBuf], default: Source, skip: &Skip<'_>) -> Result<Inputs> {
    let inputs = expand(args, default, skip)?;
    if inputs.sources.is_empty() {
        let names: Vec<String> = args.iter().map(|a| a.display().to_string()).collect();
        let skipped = match inputs.skipped.len() {
            0 => String::new(),
            n => format!(
                " ({n} file{} left out: {})",
                if n == 1 { "" } else { "s" },
                inputs.skipped[0].1
            ),
        };
        return Err(Error::new(
            Exit::Input,
            "no-manifests",
            format!("no manifests found (*.yaml, *.yml, *.json){skipped}"),
        )
        .in_file(&names.join(", ")));
    }
    Ok(inputs)
}

fn walk(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let fail = |p: &Path, e: std::io::Error| {
        Error::new(
            Exit::Io,
            "unreadable",
            format!("cannot read: {}", io_reason(&e)),
        )
        .in_file(&p.display().to_string())
    };
    for entry in fs::read_dir(dir).map_err(|e| fail(dir, e))? {
        let entry = entry.map_err(|e| fail(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| fail(&path, e))?;
        if kind.is_dir() {
            walk(&path, root, out)?;
        } else if kind.is_file() {
            if is_manifest_name(name) {
                out.push(path);
            }
        } else if kind.is_symlink() && is_manifest_name(name) {
            // Only links to files inside the tree; a dangling link is skipped.
            let inside = fs::canonicalize(&path)
                .is_ok_and(|target| target.starts_with(root) && target.is_file());
            if inside {
                out.push(path);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_sorted_skips_hidden_and_foreign_links() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret.yaml"), "x").unwrap();
        fs::create_dir_all(d.join("b/c")).unwrap();
        fs::create_dir_all(d.join(".git")).unwrap();
        for f in [
            "a.yaml",
            "b/z.yml",
            "b/c/y.json",
            "b/readme.md",
            ".ksec.yaml",
            ".git/x.yaml",
        ] {
            fs::write(d.join(f), "x").unwrap();
        }
        std::os::unix::fs::symlink(d.join("a.yaml"), d.join("b/link.yaml")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.yaml"), d.join("out.yaml")).unwrap();
        std::os::unix::fs::symlink(outside.path(), d.join("outdir")).unwrap();
        let got = expand(&[d.to_owned()], Source::Stdin, &Skip::NONE).unwrap();
        assert!(!got.single);
        let names: Vec<String> = got
            .sources
            .iter()
            .map(|s| match s {
                Source::File(p) => p.strip_prefix(d).unwrap().display().to_string(),
                Source::Stdin => "-".into(),
            })
            .collect();
        assert_eq!(names, ["a.yaml", "b/c/y.json", "b/link.yaml", "b/z.yml"]);
        let one = expand(&[d.join("b/readme.md")], Source::Stdin, &Skip::NONE).unwrap();
        assert!(one.single);
        assert!(expand(&["-".into(), "-".into()], Source::Stdin, &Skip::NONE).is_err());
        assert!(expand(&[d.join("missing")], Source::Stdin, &Skip::NONE).is_err());
        assert_eq!(
            expand(&[], Source::Stdin, &Skip::NONE).unwrap().sources,
            vec![Source::Stdin]
        );
    }
}
