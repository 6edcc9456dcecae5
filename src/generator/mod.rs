//! The `SecretDecryptor` generator: decrypted Secrets for kustomize and
//! KRM function pipelines (kpt, kustomize, Argo CD, Flux-style tools).
//!
//! One configuration, two ways in:
//!
//! ```yaml
//! apiVersion: ksec.dev/v1
//! kind: SecretDecryptor
//! metadata:
//!   name: app-secrets
//! files:                 # encrypted manifests, relative to the kustomization
//!   - secrets/db.yaml    # (or kpt package) root; never outside it
//! nameSuffixHash: false  # true: kustomize appends a content hash to the names
//! ```
//!
//! * a kustomize legacy exec plugin ([`crate::commands::plugin`]): kustomize
//!   runs `$KUSTOMIZE_PLUGIN_HOME/ksec.dev/v1/secretdecryptor/SecretDecryptor
//!   CONFIG_FILE` in the kustomization root and reads a YAML stream;
//! * a KRM function ([`resource_list`]): a `ResourceList` on stdin, the same
//!   list plus the decrypted objects on stdout.
//!
//! Either way each file goes through `decrypt` exactly as on the command
//! line (every value and MAC verified, nothing out on any error) and its
//! kubectl checks. Files are confined to the root, as kustomize confines its
//! own loads, so a repository cannot make the plugin read other files of the
//! machine that renders it (an Argo CD repo server, say).

pub mod resource_list;

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Exit, Location, Result};
use crate::io::{self, Source};
use crate::manifest::tree::{self, Node};
use crate::pipeline::{self, DecryptOptions, Session};

/// The configuration's `apiVersion`.
pub const API_VERSION: &str = "ksec.dev/v1";
/// The configuration's `kind` (also the exec plugin's file name).
pub const KIND: &str = "SecretDecryptor";
/// The annotation that asks kustomize for a name suffix hash.
pub const NEEDS_HASH: &str = "kustomize.config.k8s.io/needs-hash";

/// A `SecretDecryptor` configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// `ksec.dev/v1`.
    pub api_version: String,
    /// `SecretDecryptor`.
    pub kind: String,
    /// Kept by the tools; ksec reads only annotations from it.
    #[serde(default)]
    pub metadata: Value,
    /// Encrypted manifests, relative to the root.
    pub files: Vec<String>,
    /// Ask kustomize to append a content hash to each generated name.
    #[serde(default)]
    pub name_suffix_hash: bool,
}

impl Config {
    /// Reads and checks a configuration node. `origin` names it in messages.
    pub fn from_node(node: &Node, origin: &str) -> Result<Config> {
        let invalid = |what: String| {
            Error::new(
                Exit::Input,
                "invalid-configuration",
                format!("invalid {KIND} configuration: {what}"),
            )
            .in_file(origin)
        };
        let config: Config =
            serde_json::from_value(node.to_json()).map_err(|e| invalid(e.to_string()))?;
        if config.api_version != API_VERSION || config.kind != KIND {
            return Err(invalid(format!(
                "expected `apiVersion: {API_VERSION}` and `kind: {KIND}`, found `{}` `{}`",
                config.api_version, config.kind
            )));
        }
        if config.files.is_empty() {
            return Err(invalid("`files` lists no file".into()));
        }
        Ok(config)
    }

    /// Reads a configuration file's text (the first document).
    pub fn from_text(text: &str, origin: &str) -> Result<Config> {
        let docs = tree::parse_stream(text).map_err(|e| {
            Error::new(Exit::Input, "invalid-configuration", e.to_string()).in_file(origin)
        })?;
        let node = docs
            .iter()
            .find(|d| !d.is_empty_document())
            .ok_or_else(|| {
                Error::new(
                    Exit::Input,
                    "invalid-configuration",
                    "the configuration is empty",
                )
                .in_file(origin)
            })?;
        Config::from_node(node, origin)
    }
}

/// One decrypted object and the file it came from.
pub struct Generated {
    /// The object.
    pub object: Value,
    /// The configured path it was read from.
    pub file: String,
}

/// Decrypts every configured file (paths relative to `root`) into objects.
pub fn generate(config: &Config, root: &Path, session: &Session) -> Result<Vec<Generated>> {
    let mut streams = Vec::with_capacity(config.files.len());
    for file in &config.files {
        let path = confine(root, file)?;
        let text = io::read_text(&Source::File(path), io::DEFAULT_MAX_INPUT)?;
        let stream = pipeline::parse(file, text)?;
        for doc in &stream.docs {
            pipeline::refuse_hidden_ciphertext(file, &stream.text, doc)?;
            pipeline::refuse_stray_ciphertext(file, doc)?;
        }
        if stream.secrets().next().is_none() {
            return Err(Error::new(
                Exit::Input,
                "no-secret",
                "no Secret to decrypt in this file",
            )
            .in_file(file)
            .hint("list files without Secrets under `resources`, not in the SecretDecryptor"));
        }
        streams.push(stream);
    }
    // Every file's data keys in one batch.
    let decrypted = pipeline::decrypt_all(session, &streams, DecryptOptions::default())?;
    let mut out = Vec::new();
    for (file, clear) in config.files.iter().zip(&decrypted) {
        pipeline::kubectl::check_split(file, &clear.text)?;
        let docs = tree::parse_stream(&clear.text).map_err(|e| {
            Error::internal(format!(
                "internal error: the decrypted stream does not parse again ({e})"
            ))
            .in_file(file)
        })?;
        for doc in docs.iter().filter(|d| !d.is_empty_document()) {
            let mut object = doc.to_json();
            if !object.is_object() {
                return Err(Error::new(
                    Exit::Input,
                    "not-an-object",
                    "a document that is not an object",
                )
                .at(Location::file(file).line(doc.line)));
            }
            let kind = object["kind"].as_str().unwrap_or_default();
            if config.name_suffix_hash && matches!(kind, "Secret" | "ConfigMap") {
                let meta = &mut object["metadata"];
                if !meta["annotations"].is_object() {
                    meta["annotations"] = Value::Object(Default::default());
                }
                meta["annotations"][NEEDS_HASH] = Value::String("true".into());
            }
            out.push(Generated {
                object,
                file: file.clone(),
            });
        }
    }
    Ok(out)
}

/// `root/file`, refused when `file` is absolute or leads outside `root`
/// (also through symbolic links).
fn confine(root: &Path, file: &str) -> Result<PathBuf> {
    let outside = || {
        Error::new(
            Exit::Input,
            "outside-root",
            format!(
                "outside the root {}; a {KIND} reads only files under the kustomization (or kpt package) root",
                root.display()
            ),
        )
        .in_file(file)
    };
    let rel = Path::new(file);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::Prefix(_))) {
        return Err(outside());
    }
    let path = root.join(rel);
    let io_err = |p: &Path, e: std::io::Error| {
        Error::new(
            Exit::Io,
            "unreadable",
            format!("cannot read: {}", io::io_reason(&e)),
        )
        .in_file(&p.display().to_string())
    };
    let real_root = root.canonicalize().map_err(|e| io_err(root, e))?;
    let real = path.canonicalize().map_err(|e| io_err(&path, e))?;
    if !real.starts_with(&real_root) {
        return Err(outside());
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_is_checked() {
        let ok = "apiVersion: ksec.dev/v1\nkind: SecretDecryptor\nmetadata:\n  name: x\nfiles: [a.yaml]\n";
        let c = Config::from_text(ok, "gen.yaml").unwrap();
        assert_eq!(c.files, ["a.yaml"]);
        assert!(!c.name_suffix_hash);
        for (bad, why) in [
            (ok.replace("files", "file"), "unknown field `file`"),
            (ok.replace("[a.yaml]", "[]"), "lists no file"),
            (
                ok.replace("ksec.dev/v1", "ksec.dev/v2"),
                "expected `apiVersion",
            ),
            (
                ok.replace("kind: SecretDecryptor", "kind: ConfigMap"),
                "found",
            ),
            ("a: &x 1\nb: *x\n".to_owned(), "aliases"),
        ] {
            let e = Config::from_text(&bad, "gen.yaml").unwrap_err();
            assert!(e.message.contains(why), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn files_stay_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.yaml"), "").unwrap();
        std::fs::write(dir.path().join("outside.yaml"), "").unwrap();
        assert!(confine(&root, "sub/a.yaml").is_ok());
        assert!(confine(&root, "sub/../sub/a.yaml").is_ok());
        assert!(confine(&root, "../outside.yaml").is_err());
        assert!(confine(&root, dir.path().join("outside.yaml").to_str().unwrap()).is_err());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("outside.yaml"), root.join("link.yaml"))
                .unwrap();
            assert!(confine(&root, "link.yaml").is_err());
        }
    }
}
