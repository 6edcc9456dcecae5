//! The generator as a KRM function: a `ResourceList` in, the same list with
//! the decrypted objects added out (the KRM Functions Specification,
//! `config.kubernetes.io/v1`).
//!
//! The items that pass through are not re-serialised: the output is the
//! input text with edits spliced in (new items appended to `items` as JSON
//! flow mappings, which are YAML), so kpt gets back exactly the bytes it sent
//! for everything we did not generate. An item with the same apiVersion,
//! kind, namespace and name as a generated object (typically the encrypted
//! file itself, which kpt reads as part of the package) is replaced by it.
//! A Secret that still holds kubesec ciphertext afterwards is refused: kubectl
//! would store the ciphertext as its data.
//!
//! Where the files are: relative to the package root, which `kpt fn render`
//! passes in the configuration's `internal.config.kubernetes.io/package-path`
//! annotation; without it (`kpt fn eval`, or kustomize, which runs functions
//! in the kustomization root), relative to the working directory.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{Config, Generated, generate};
use crate::error::{Error, Exit, Result};
use crate::formats::{is_metadata_comment as is_footer_line, looks_sealed};
use crate::manifest::tree::{self, Node, NodeValue};
use crate::manifest::{Edit, splice};
use crate::pipeline::Session;

/// The wire format's `apiVersion` and `kind`.
const LIST_API_VERSION: &str = "config.kubernetes.io/v1";
const LIST_KIND: &str = "ResourceList";
const PACKAGE_PATH: &str = "internal.config.kubernetes.io/package-path";

/// Runs the function over a `ResourceList` text; `cwd` is the fallback root.
pub fn process(input: &str, cwd: &Path, session: &Session) -> Result<String> {
    let bad =
        |what: &str| Error::new(Exit::Input, "invalid-resource-list", what).in_file("<stdin>");
    let docs = tree::parse_stream(input).map_err(|e| bad(&e.to_string()))?;
    let mut content = docs.iter().filter(|d| !d.is_empty_document());
    let (Some(list), None) = (content.next(), content.next()) else {
        return Err(bad("expected exactly one ResourceList document"));
    };
    if list.get("kind").and_then(Node::as_str) != Some(LIST_KIND)
        || list.get("apiVersion").and_then(Node::as_str) != Some(LIST_API_VERSION)
    {
        return Err(bad(&format!(
            "expected `apiVersion: {LIST_API_VERSION}` and `kind: {LIST_KIND}`"
        )));
    }
    let config_node = list
        .get("functionConfig")
        .filter(|n| matches!(n.value, NodeValue::Mapping(_)))
        .ok_or_else(|| {
            bad(&format!(
                "no functionConfig: this function needs a {} configuration",
                super::KIND
            ))
        })?;
    let config = Config::from_node(config_node, "functionConfig")?;
    let root = package_root(&config).unwrap_or_else(|| cwd.to_owned());
    let generated = generate(&config, &root, session)?;
    let output = add_items(input, list, &generated)?;
    verify(&output, list, &generated)?;
    Ok(output)
}

/// The package root, from the configuration's package-path annotation.
fn package_root(config: &Config) -> Option<PathBuf> {
    let pointer = format!("/annotations/{}", PACKAGE_PATH.replace('/', "~1"));
    config
        .metadata
        .pointer(&pointer)
        .and_then(Value::as_str)
        .map(PathBuf::from)
}

/// The output for a failure: no items, one error result.
pub fn failure_list(f: &Error) -> String {
    let mut message = f.to_string();
    if let Some(h) = &f.hint {
        message.push_str(" (hint: ");
        message.push_str(h);
        message.push(')');
    }
    let list = json!({
        "apiVersion": LIST_API_VERSION,
        "kind": LIST_KIND,
        "items": [],
        "results": [{"message": message, "severity": "error"}],
    });
    format!("{list}\n")
}

/// apiVersion, kind, namespace, name.
type Id = (String, String, String, String);

fn id_of(v: &Value) -> Id {
    let s = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (
        s("/apiVersion"),
        s("/kind"),
        s("/metadata/namespace"),
        s("/metadata/name"),
    )
}

fn one_line(v: &Value) -> String {
    // serde_json writes one line; JSON is a YAML flow node.
    v.to_string()
}

fn add_items(input: &str, list: &Node, generated: &[Generated]) -> Result<String> {
    let items: &[Node] = match list.get("items") {
        Some(n) => n.items().unwrap_or(&[]),
        None => &[],
    };
    let ids: Vec<Id> = items.iter().map(|n| id_of(&n.to_json())).collect();
    let mut edits = Vec::new();
    let mut appended = Vec::new();
    for g in generated {
        let id = id_of(&g.object);
        match ids.iter().position(|i| *i == id) {
            Some(at) => edits.push(Edit {
                range: items[at].range.start..with_footer(input, items[at].range.end),
                text: one_line(&g.object),
            }),
            None => appended.push(one_line(&g.object)),
        }
    }
    let replaced: Vec<usize> = generated
        .iter()
        .filter_map(|g| ids.iter().position(|i| *i == id_of(&g.object)))
        .collect();
    for (i, item) in items.iter().enumerate() {
        if !replaced.contains(&i) {
            refuse_ciphertext(item, i)?;
        }
    }
    let summary = json!([{
        "message": format!(
            "decrypted {} object(s); this output holds clear text: send it to kubectl, never back into the package or git",
            generated.len()
        ),
        "severity": "info",
    }]);
    match list.get("items") {
        Some(seq) if seq.items().is_some() && !appended.is_empty() => {
            if seq.flow {
                let close = seq.range.end - 1;
                let sep = if items.is_empty() { "" } else { ", " };
                edits.push(Edit {
                    range: close..close,
                    text: format!("{sep}{}", appended.join(", ")),
                });
            } else {
                let indent = " ".repeat(seq.column);
                let text: String = appended
                    .iter()
                    .map(|a| format!("\n{indent}- {a}"))
                    .collect();
                edits.push(Edit {
                    range: seq.range.end..seq.range.end,
                    text,
                });
            }
        }
        Some(seq) if seq.items().is_some() => {}
        Some(empty) => edits.push(Edit {
            range: empty.range.clone(),
            text: format!(" [{}]", appended.join(", ")),
        }),
        None => edits.push(add_key(
            list,
            "items",
            &format!("[{}]", appended.join(", ")),
        )),
    }
    if list.get("results").is_none() {
        edits.push(add_key(list, "results", &summary.to_string()));
    }
    Ok(splice(input, &mut edits))
}

/// Extends the end of a replaced item over the kubesec footer comments that
/// follow it (kpt hands them over with the encrypted item), so that no
/// footer reaches the output.
fn with_footer(input: &str, end: usize) -> usize {
    let mut end = end;
    let mut pos = match input[end..].find('\n') {
        Some(i) => end + i + 1,
        None => return end,
    };
    while pos < input.len() {
        let line_end = input[pos..].find('\n').map_or(input.len(), |i| pos + i);
        let line = input[pos..line_end].trim_start().trim_end_matches('\r');
        if !is_footer_line(line) {
            break;
        }
        end = line_end;
        pos = line_end + 1;
    }
    end
}

/// An edit that adds `key: value` at the end of a mapping.
fn add_key(map: &Node, key: &str, value: &str) -> Edit {
    if map.flow {
        let close = map.range.end - 1;
        Edit {
            range: close..close,
            text: format!(", \"{key}\": {value}"),
        }
    } else {
        Edit {
            range: map.range.end..map.range.end,
            text: format!("\n{}{key}: {value}", " ".repeat(map.column)),
        }
    }
}

/// A v1 Secret item whose values are kubesec tokens.
fn refuse_ciphertext(item: &Node, index: usize) -> Result<()> {
    let v = item.to_json();
    if v["apiVersion"] != "v1" || v["kind"] != "Secret" {
        return Ok(());
    }
    let encrypted = ["data", "stringData"].iter().any(|s| {
        v[*s]
            .as_object()
            .is_some_and(|m| m.values().any(|x| x.as_str().is_some_and(looks_sealed)))
    });
    if !encrypted {
        return Ok(());
    }
    let (_, _, ns, name) = id_of(&v);
    let path = v
        .pointer("/metadata/annotations/config.kubernetes.io~1path")
        .and_then(Value::as_str)
        .unwrap_or("?");
    Err(Error::new(
        Exit::Input,
        "ciphertext-outside-secret",
        format!(
            "items[{index}] (Secret {}{name}, file {path}) holds kubesec ciphertext that this {} does not decrypt; kubectl would store the ciphertext as data",
            if ns.is_empty() { String::new() } else { format!("{ns}/") },
            super::KIND
        ),
    )
    .hint("add its file to `files`, or keep it out of the package's resources"))
}

/// The output parses, has the expected number of items, and every generated
/// object reads back as itself.
fn verify(output: &str, input_list: &Node, generated: &[Generated]) -> Result<()> {
    let internal = |why: &str| {
        Error::internal(format!(
            "internal error: the ResourceList written did not verify ({why})"
        ))
    };
    let docs = tree::parse_stream(output).map_err(|e| internal(&e.to_string()))?;
    let list = docs
        .iter()
        .find(|d| !d.is_empty_document())
        .ok_or_else(|| internal("empty"))?;
    let out: Vec<Value> = list
        .get("items")
        .and_then(Node::items)
        .ok_or_else(|| internal("no items"))?
        .iter()
        .map(Node::to_json)
        .collect();
    let before = input_list
        .get("items")
        .and_then(Node::items)
        .map_or(0, <[Node]>::len);
    let new = generated
        .iter()
        .filter(|g| {
            !input_list
                .get("items")
                .and_then(Node::items)
                .unwrap_or(&[])
                .iter()
                .any(|n| id_of(&n.to_json()) == id_of(&g.object))
        })
        .count();
    if out.len() != before + new {
        return Err(internal("item count"));
    }
    for g in generated {
        if !out.contains(&g.object) {
            return Err(internal("a generated object does not read back"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> Node {
        tree::parse_stream(text).unwrap().remove(0)
    }

    fn gen_secret() -> Vec<Generated> {
        vec![Generated {
            object: json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a": "b: c"}}),
            file: "s.yaml".into(),
        }]
    }

    #[test]
    fn block_items_keep_their_bytes() {
        let input = "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n- # keep me\n  apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: c\n  data:\n    b: yes\n    c: 0755\nfunctionConfig:\n  kind: x\n";
        let g = gen_secret();
        let out = add_items(input, &list(input), &g).unwrap();
        assert!(out.starts_with(&input[..input.find("functionConfig").unwrap() - 1]));
        assert!(
            out.contains("    c: 0755\n- {\"apiVersion\":\"v1\""),
            "{out}"
        );
        assert!(out.contains("\nresults: [{"), "{out}");
        verify(&out, &list(input), &g).unwrap();
    }

    #[test]
    fn flow_and_json_lists() {
        for input in [
            "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: []\n",
            "{\"apiVersion\": \"config.kubernetes.io/v1\", \"kind\": \"ResourceList\", \"items\": [{\"kind\": \"A\"}]}",
            "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\n",
        ] {
            let g = gen_secret();
            let out = add_items(input, &list(input), &g).unwrap();
            verify(&out, &list(input), &g)
                .unwrap_or_else(|e| panic!("{input}: {out}: {}", e.message));
        }
    }

    #[test]
    fn same_object_is_replaced_and_leftover_ciphertext_refused() {
        let token = "5+89EuYTsIOYqfIMbY0shYmnO2YEm3gVjPMkcaNaHNtuTeikM+FTs25WWhgus9Jz.pzbfTMkl6QYAoYeB.MAYyKFY2xXIO3pkz63rnPg==";
        let input = format!(
            "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata:\n    name: s\n  stringData:\n    a: {token}\n"
        );
        let g = gen_secret();
        let input = format!("{input}# kubesec:v:4\n# kubesec:mac:x.y\n- kind: Other\n");
        let out = add_items(&input, &list(&input), &g).unwrap();
        assert!(!out.contains(token) && !out.contains("kubesec"), "{out}");
        assert!(out.contains("\n- kind: Other\n"), "{out}");
        verify(&out, &list(&input), &g).unwrap();
        let other = input.replace("name: s", "name: t");
        let e = add_items(&other, &list(&other), &g).unwrap_err();
        assert!(e.message.contains("items[0] (Secret t"), "{}", e.message);
    }
}
