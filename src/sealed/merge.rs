//! `seal --merge-into FILE`: values added to an existing SealedSecret.
//!
//! As kubeseal's, with one difference on purpose: the values are sealed
//! for the **target's** name, namespace and scope (its top-level
//! annotations, which the controller opens them with), not the input's —
//! kubeseal uses the input's scope, and the controller then cannot open a
//! strict value merged into a cluster-wide SealedSecret. FILE is spliced,
//! not re-written: new keys are added to `encryptedData` and the template's
//! labels and annotations, existing ones replaced; every other byte stays.

use std::collections::BTreeMap;

use serde_json::Value;

use super::object::{self, Tree};
use super::seal::{SealOptions, seal_value};
use super::secrets::{clear_secrets, secret_parts};
use super::{Scope, replace};
use crate::error::{Error, Exit, Location, Result};
use crate::manifest::{self, Stream, amend, tree};
use crate::pipeline::{self, Session};

fn refuse(at: &Location, code: &'static str, message: impl Into<String>) -> Error {
    Error::new(Exit::Input, code, message).at(at.clone())
}

/// `--merge-into`: the values of the one Secret of `input` sealed for the
/// one SealedSecret of `target` (its name, namespace and scope), added to
/// or replacing its `encryptedData`; the Secret's labels and annotations
/// join its template's. Returns the new text of `target`.
pub fn merge_into(
    session: &Session,
    input: &Stream,
    target: &Stream,
    opts: &SealOptions<'_>,
) -> Result<String> {
    let file = target.name.as_str();
    let found = clear_secrets(session, std::slice::from_ref(input))?
        .remove(0)
        .secrets;
    let [secret] = found.as_slice() else {
        return Err(Error::new(
            Exit::Input,
            "merge-input",
            format!(
                "--merge-into takes one Secret, and the input holds {}",
                found.len()
            ),
        )
        .in_file(&input.name));
    };
    let roots =
        tree::parse_stream_lenient(&target.text).map_err(|e| pipeline::locate_error(file, &e))?;
    let sites = object::find(&roots, &object::is_sealed_secret);
    let [site] = sites.as_slice() else {
        return Err(Error::new(
            Exit::Input,
            "merge-target",
            format!(
                "--merge-into needs a file with one SealedSecret, and it holds {}",
                sites.len()
            ),
        )
        .in_file(file));
    };
    let at = site.location(file);
    let ss = object::read_sealed(site.node, &at)?;
    if let Some(s) = opts.scope
        && s != ss.scope
    {
        return Err(Error::usage(format!(
            "--scope {} does not match {file}, which is {} (its annotations decide how the controller opens its values)",
            s.as_str(),
            ss.scope.as_str()
        )));
    }
    let in_at = secret.doc.location(&input.name, secret.doc.line);
    let in_roots = Tree(
        tree::parse_stream_lenient(&input.text)
            .map_err(|e| pipeline::locate_error(&input.name, &e))?,
    );
    let (in_node, _) =
        object::at(&in_roots.0, secret.doc.index, &secret.doc.item).ok_or_else(|| {
            Error::internal("internal error: the Secret is missing from the node tree")
        })?;
    let meta = secret_parts(in_node, &in_at)?.meta;
    let in_annotations: BTreeMap<String, String> = match meta.get("annotations") {
        Some(Value::Object(a)) => a
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
            .collect(),
        _ => BTreeMap::new(),
    };
    if opts.scope.is_none() && Scope::from_annotations(&in_annotations) != ss.scope {
        session.reporter.warn(&format!(
            "{in_at}: the Secret's annotations say {} scope; its values are sealed for {file}'s scope, {}",
            Scope::from_annotations(&in_annotations).as_str(),
            ss.scope.as_str()
        ));
    }
    let label = ss.label(opts.namespace).ok_or_else(|| {
        refuse(
            &at,
            "sealed-no-namespace",
            format!(
                "the SealedSecret has no metadata.namespace, which {} scope needs",
                ss.scope.as_str()
            ),
        )
        .hint("pass --namespace NS: the namespace it is applied to")
    })?;
    let mut changes = Vec::new();
    let path = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
    let mut blobs = BTreeMap::new();
    for (k, v) in &secret.values {
        let blob = seal_value(opts.cert, &label, v)?;
        changes.push(amend::Change {
            path: path(&["spec", "encryptedData"]),
            key: k.clone(),
            value: Some(blob.clone()),
        });
        blobs.insert(k.clone(), blob);
    }
    let clean = super::clean_meta(&meta);
    for field in ["labels", "annotations"] {
        if let Some(Value::Object(m)) = clean.get(field) {
            for (k, v) in m {
                if k == super::CLUSTER_WIDE || k == super::NAMESPACE_WIDE {
                    continue;
                }
                if let Some(v) = v.as_str() {
                    changes.push(amend::Change {
                        path: path(&["spec", "template", "metadata", field]),
                        key: k.clone(),
                        value: Some(v.to_owned()),
                    });
                }
            }
        }
    }
    let outline = amend::outline(&target.text).map_err(|e| pipeline::locate_error(file, &e))?;
    let onode = outline_at(&outline, site.document, &site.item).ok_or_else(|| {
        Error::internal("internal error: the SealedSecret is missing from the outline")
    })?;
    let newline = replace::newline_at(&target.text, site.node.range.start);
    let mut edits = amend::amend(&target.text, onode, &changes, newline)
        .map_err(|e| refuse(&at, "merge-target", format!("cannot merge into it: {e}")))?;
    let out = manifest::splice(&target.text, &mut edits);
    let check = || -> std::result::Result<(), String> {
        let roots = tree::parse_stream_lenient(&out).map_err(|e| e.to_string())?;
        let (node, _) =
            object::at(&roots, site.document, &site.item).ok_or("the SealedSecret is gone")?;
        let again = object::read_sealed(node, &at).map_err(|e| e.message)?;
        let before: BTreeMap<&str, &str> = ss
            .values
            .iter()
            .map(|v| (v.key.as_str(), v.text.as_str()))
            .collect();
        let after: BTreeMap<&str, &str> = again
            .values
            .iter()
            .map(|v| (v.key.as_str(), v.text.as_str()))
            .collect();
        for (k, v) in &before {
            if !blobs.contains_key(*k) && after.get(k) != Some(v) {
                return Err(format!("{k} changed"));
            }
        }
        for (k, v) in &blobs {
            if after.get(k.as_str()) != Some(&v.as_str()) {
                return Err(format!("{k} is not as sealed"));
            }
        }
        if again.name != ss.name || again.namespace != ss.namespace || again.scope != ss.scope {
            return Err("its name, namespace or scope changed".into());
        }
        Ok(())
    };
    check().map_err(|why| {
        Error::internal(format!(
            "internal error: the merged result did not verify ({why}); nothing was written"
        ))
        .in_file(file)
    })?;
    pipeline::kubectl::check_split(file, &out)?;
    Ok(out)
}

/// The outline node of the object at `document` and `item`.
fn outline_at<'a>(
    roots: &'a [amend::Node],
    document: usize,
    item: &[usize],
) -> Option<&'a amend::Node> {
    let mut node = roots.get(document.checked_sub(1)?)?;
    for &i in item {
        let amend::Kind::Mapping(m) = &node.kind else {
            return None;
        };
        let amend::Kind::Sequence(items) = &m.get("items")?.value.kind else {
            return None;
        };
        node = items.get(i)?;
    }
    Some(node)
}
