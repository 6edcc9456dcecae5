//! The walk sops makes over a file: every scalar and comment of every
//! document (the top-level `sops` entries left out), in order, with its
//! path and whether the file's selection rule encrypts it.
//!
//! The order is the order of the MAC, the path is the value's associated
//! data (mapping keys only, sequence indices left out), and the decision
//! follows sops' `shouldBeEncrypted`: a key rule looks at every key on the
//! path (so a matching key encrypts or keeps clear its whole subtree), a
//! comment rule at the comments just before the value at its own level and
//! before each of its ancestors.

use std::ops::Range;

use regex::Regex;

use super::typed::{self, Typed};
use crate::manifest::commented::{Comment, Doc, Item, Node, Value};

/// Which values a file encrypts: sops' six rules (one per file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Values under a key ending in the suffix stay clear (sops' default,
    /// `_unencrypted`).
    UnencryptedSuffix(String),
    /// Only values under a key ending in the suffix are encrypted.
    EncryptedSuffix(String),
    /// Values under a key matching the regex stay clear.
    UnencryptedRegex(String),
    /// Only values under a key matching the regex are encrypted
    /// (`^(data|stringData)$` for Kubernetes Secrets).
    EncryptedRegex(String),
    /// Values after a comment matching the regex stay clear.
    UnencryptedCommentRegex(String),
    /// Only values after a comment matching the regex are encrypted.
    EncryptedCommentRegex(String),
}

/// The field names of the rules, in the order sops writes them.
pub const SELECTION_FIELDS: [&str; 6] = [
    "unencrypted_suffix",
    "encrypted_suffix",
    "unencrypted_regex",
    "encrypted_regex",
    "unencrypted_comment_regex",
    "encrypted_comment_regex",
];

/// The rule ksec writes for Kubernetes manifests (what Flux documents).
pub const KUBERNETES_REGEX: &str = "^(data|stringData)$";

impl Selection {
    /// sops' default when a file names no rule.
    pub fn sops_default() -> Selection {
        Selection::UnencryptedSuffix("_unencrypted".into())
    }

    /// ksec's default for Kubernetes manifests.
    pub fn kubernetes() -> Selection {
        Selection::EncryptedRegex(KUBERNETES_REGEX.into())
    }

    /// The rule named by a metadata field.
    pub fn from_field(field: &str, value: String) -> Option<Selection> {
        Some(match field {
            "unencrypted_suffix" => Selection::UnencryptedSuffix(value),
            "encrypted_suffix" => Selection::EncryptedSuffix(value),
            "unencrypted_regex" => Selection::UnencryptedRegex(value),
            "encrypted_regex" => Selection::EncryptedRegex(value),
            "unencrypted_comment_regex" => Selection::UnencryptedCommentRegex(value),
            "encrypted_comment_regex" => Selection::EncryptedCommentRegex(value),
            _ => return None,
        })
    }

    /// Its metadata field and value.
    pub fn field(&self) -> (&'static str, &str) {
        match self {
            Selection::UnencryptedSuffix(s) => ("unencrypted_suffix", s),
            Selection::EncryptedSuffix(s) => ("encrypted_suffix", s),
            Selection::UnencryptedRegex(s) => ("unencrypted_regex", s),
            Selection::EncryptedRegex(s) => ("encrypted_regex", s),
            Selection::UnencryptedCommentRegex(s) => ("unencrypted_comment_regex", s),
            Selection::EncryptedCommentRegex(s) => ("encrypted_comment_regex", s),
        }
    }

    /// The regex of a regex rule, when it compiles.
    pub fn regex(&self) -> Option<Result<Regex, regex::Error>> {
        match self {
            Selection::UnencryptedRegex(r)
            | Selection::EncryptedRegex(r)
            | Selection::UnencryptedCommentRegex(r)
            | Selection::EncryptedCommentRegex(r) => Some(Regex::new(r)),
            _ => None,
        }
    }
}

/// A rule ready to apply. A regex that does not compile matches nothing,
/// as in sops (which discards the error); ksec refuses to *write* one.
pub struct Selector {
    selection: Selection,
    regex: Option<Regex>,
}

impl Selector {
    /// Compiles the rule.
    pub fn new(selection: &Selection) -> Selector {
        Selector {
            selection: selection.clone(),
            regex: selection.regex().and_then(Result::ok),
        }
    }

    fn matches(&self, s: &str) -> bool {
        self.regex.as_ref().is_some_and(|r| r.is_match(s))
    }

    /// sops' `shouldBeEncrypted`.
    fn encrypts(&self, path: &[&str], stack: &[Vec<&str>], is_comment: bool) -> bool {
        match &self.selection {
            Selection::UnencryptedSuffix(s) => !path.iter().any(|k| k.ends_with(s.as_str())),
            Selection::EncryptedSuffix(s) => path.iter().any(|k| k.ends_with(s.as_str())),
            Selection::UnencryptedRegex(_) => !path.iter().any(|k| self.matches(k)),
            Selection::EncryptedRegex(_) => path.iter().any(|k| self.matches(k)),
            Selection::UnencryptedCommentRegex(_) => {
                !stack.iter().flatten().any(|c| self.matches(c))
            }
            Selection::EncryptedCommentRegex(_) => {
                let last = stack.len().saturating_sub(1);
                stack.iter().enumerate().any(|(i, cs)| {
                    cs.iter().enumerate().any(|(j, c)| {
                        // The marker comment itself stays clear.
                        let itself = is_comment && i == last && j + 1 == cs.len();
                        !itself && self.matches(c)
                    })
                })
            }
        }
    }
}

/// Which parser typed the scalars: go-yaml (YAML files) or encoding/json.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// YAML.
    Yaml,
    /// JSON: every number is a float.
    Json,
}

/// A scalar or comment of the walk.
#[derive(Debug)]
pub struct Leaf<'d> {
    /// 0-based document.
    pub doc: usize,
    /// Mapping keys from the document root.
    pub path: Vec<&'d str>,
    /// The file's rule encrypts it.
    pub encrypt: bool,
    /// What it is.
    pub what: What<'d>,
}

/// A leaf's content.
#[derive(Debug)]
pub enum What<'d> {
    /// A scalar.
    Value(Scalar<'d>),
    /// A comment.
    Comment(&'d Comment),
}

/// A scalar leaf.
#[derive(Debug)]
pub struct Scalar<'d> {
    /// The node.
    pub node: &'d Node,
    /// Its text.
    pub text: &'d str,
    /// Plain style.
    pub plain: bool,
    /// Tag suffix.
    pub tag: Option<&'d str>,
    /// Inside a flow collection (or JSON): written double-quoted.
    pub flow: bool,
    /// A direct element of a sequence.
    pub element: bool,
    /// Column for a literal block's content.
    pub indent: usize,
}

impl Leaf<'_> {
    /// The associated data: keys joined with `:`, plus `:`.
    pub fn aad(&self) -> String {
        super::value::aad(&self.path)
    }

    /// 1-based line.
    pub fn line(&self) -> usize {
        match &self.what {
            What::Value(s) => s.node.line,
            What::Comment(c) => c.line,
        }
    }

    /// Its bytes in the text.
    pub fn range(&self) -> Range<usize> {
        match &self.what {
            What::Value(s) => s.node.range.clone(),
            What::Comment(c) => c.range.clone(),
        }
    }

    /// `data.password` style name for messages.
    pub fn label(&self) -> String {
        if self.path.is_empty() {
            "(top level)".into()
        } else {
            self.path.join(".")
        }
    }
}

/// Why a file cannot be walked as sops walks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkError {
    /// 1-based line.
    pub line: usize,
    /// What.
    pub message: String,
}

impl Scalar<'_> {
    /// How sops types it.
    pub fn typed(&self, store: Store) -> Result<Typed, typed::TypeError> {
        match store {
            Store::Yaml => typed::resolve(self.text, self.plain, self.tag),
            Store::Json => Ok(json_typed(self.text, self.plain)),
        }
    }
}

/// encoding/json's view: numbers are floats, `true`/`false`/`null`.
fn json_typed(text: &str, plain: bool) -> Typed {
    if !plain {
        return Typed::Str(text.to_owned());
    }
    match text {
        "null" => Typed::Null,
        "true" => Typed::Bool(true),
        "false" => Typed::Bool(false),
        _ => text
            .parse::<f64>()
            .map(Typed::Float)
            .unwrap_or_else(|_| Typed::Str(text.to_owned())),
    }
}

/// Walks every document in sops' order.
pub fn walk<'d>(docs: &'d [Doc], selector: &Selector) -> Result<Vec<Leaf<'d>>, WalkError> {
    let mut out = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let mut w = Walker {
            doc: i,
            selector,
            out: &mut out,
            path: Vec::new(),
            stack: Vec::new(),
        };
        for c in &doc.loose {
            w.stack_push();
            w.comment(c);
            w.stack.pop();
        }
        match &doc.root {
            None => {}
            Some(root) => match &root.value {
                Value::Mapping(items) => w.items(items, true, root.flow, true, 2)?,
                _ => {
                    return Err(WalkError {
                        line: root.line,
                        message: "the document is not a mapping, which sops requires".into(),
                    });
                }
            },
        }
    }
    Ok(out)
}

/// Whether the top-level entry `item` is the sops metadata.
pub fn is_metadata_entry(item: &Item) -> bool {
    matches!(item, Item::Entry(k, _) if matches!(&k.value, Value::Scalar { text, .. } if text == "sops"))
}

struct Walker<'d, 'o> {
    doc: usize,
    selector: &'o Selector,
    out: &'o mut Vec<Leaf<'d>>,
    path: Vec<&'d str>,
    stack: Vec<Vec<&'d str>>,
}

impl<'d> Walker<'d, '_> {
    fn stack_push(&mut self) {
        self.stack.push(Vec::new());
    }

    fn comment(&mut self, c: &'d Comment) {
        self.stack
            .last_mut()
            .expect("a level is open")
            .push(c.text.as_str());
        let encrypt = self.selector.encrypts(&self.path, &self.stack, true);
        self.out.push(Leaf {
            doc: self.doc,
            path: self.path.clone(),
            encrypt,
            what: What::Comment(c),
        });
    }

    fn clear_level(&mut self) {
        if let Some(level) = self.stack.last_mut() {
            level.clear();
        }
    }

    /// Walks a collection's items; `step` is its indentation step (for
    /// literal blocks written at its values).
    fn items(
        &mut self,
        items: &'d [Item],
        mapping: bool,
        flow: bool,
        top: bool,
        step: usize,
    ) -> Result<(), WalkError> {
        self.stack_push();
        for item in items {
            match item {
                Item::Comment(c) => self.comment(c),
                Item::Entry(_, _) if top && is_metadata_entry(item) => {}
                Item::Entry(k, v) => {
                    let key = key_text(k)?;
                    self.path.push(key);
                    self.value(v, flow, false, k.column, step)?;
                    self.path.pop();
                    self.clear_level();
                }
                Item::Element(n) => {
                    debug_assert!(!mapping);
                    self.value(n, flow, true, n.column.saturating_sub(step), step)?;
                    self.clear_level();
                }
            }
        }
        self.stack.pop();
        Ok(())
    }

    /// Walks a value whose key (or sequence dash) sits at `column`.
    fn value(
        &mut self,
        node: &'d Node,
        in_flow: bool,
        element: bool,
        column: usize,
        step: usize,
    ) -> Result<(), WalkError> {
        let indent = column + step;
        // A nested block collection's own step, from its column.
        let inner = if node.column > column {
            node.column - column
        } else {
            step
        };
        match &node.value {
            Value::Scalar { text, plain, tag } => {
                let encrypt = self.selector.encrypts(&self.path, &self.stack, false);
                self.out.push(Leaf {
                    doc: self.doc,
                    path: self.path.clone(),
                    encrypt,
                    what: What::Value(Scalar {
                        node,
                        text,
                        plain: *plain,
                        tag: tag.as_deref(),
                        flow: in_flow,
                        element,
                        indent,
                    }),
                });
                Ok(())
            }
            Value::Mapping(items) => self.items(items, true, in_flow || node.flow, false, inner),
            Value::Sequence(items) => self.items(items, false, in_flow || node.flow, false, inner),
            Value::Alias => Err(WalkError {
                line: node.line,
                message: "YAML aliases (`*name`) cannot be kept byte for byte in the SOPS format (sops expands them)".into(),
            }),
        }
    }
}

/// A mapping key as sops requires it: a string.
fn key_text(k: &Node) -> Result<&str, WalkError> {
    let refuse = |what: &str| WalkError {
        line: k.line,
        message: format!("{what}: sops supports only string keys"),
    };
    match &k.value {
        Value::Scalar { text, plain, tag } => match typed::resolve(text, *plain, tag.as_deref()) {
            Ok(Typed::Str(_)) => Ok(text),
            _ if tag.as_deref() == Some("binary") => Err(refuse("a `!!binary` key")),
            _ => Err(refuse(&format!(
                "the key `{}` reads as a number, boolean, date or null",
                crate::error::one_line(text)
            ))),
        },
        _ => Err(refuse("a key that is not a scalar")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::commented;

    fn decisions(text: &str, sel: Selection) -> Vec<(String, bool)> {
        let docs = commented::parse(text).unwrap();
        let leaves = walk(&docs, &Selector::new(&sel)).unwrap();
        leaves
            .iter()
            .map(|l| {
                let what = match &l.what {
                    What::Value(s) => s.text.to_owned(),
                    What::Comment(c) => format!("#{}", c.text),
                };
                (what, l.encrypt)
            })
            .collect()
    }

    #[test]
    fn rules_decide_as_sops_does() {
        let text = "apiVersion: v1\nkind: Secret\n# top\ndata:\n  # c\n  a: x\n  l: [p, q]\nb_unencrypted: y\nsops: {x: 1}\n";
        let d = decisions(text, Selection::kubernetes());
        assert_eq!(
            d,
            vec![
                ("v1".into(), false),
                ("Secret".into(), false),
                ("# top".into(), false),
                ("# c".into(), true),
                ("x".into(), true),
                ("p".into(), true),
                ("q".into(), true),
                ("y".into(), false),
            ]
        );
        let d = decisions(text, Selection::sops_default());
        assert!(d.iter().filter(|(w, _)| w != "y").all(|(_, e)| *e));
        assert!(!d.iter().find(|(w, _)| w == "y").unwrap().1);
        let text = "a: 1\n# sops:enc\nb:\n  c: 2\n  # sops:enc\n  d: 3\ne: 4\n";
        let d = decisions(text, Selection::EncryptedCommentRegex("sops:enc".into()));
        assert_eq!(
            d,
            vec![
                ("1".into(), false),
                ("# sops:enc".into(), false),
                ("2".into(), true),
                ("# sops:enc".into(), true),
                ("3".into(), true),
                ("4".into(), false),
            ]
        );
    }

    #[test]
    fn refusals() {
        let docs = commented::parse("a: &x 1\nb: *x\n").unwrap();
        assert!(walk(&docs, &Selector::new(&Selection::kubernetes())).is_err());
        let docs = commented::parse("1: x\n").unwrap();
        assert!(walk(&docs, &Selector::new(&Selection::kubernetes())).is_err());
        let docs = commented::parse("- a\n").unwrap();
        assert!(walk(&docs, &Selector::new(&Selection::kubernetes())).is_err());
        let docs = commented::parse("'1': x\n").unwrap();
        assert!(walk(&docs, &Selector::new(&Selection::kubernetes())).is_ok());
    }
}
