//! Reading a custom resource field by field, with the field's path and line
//! in every complaint (`spec.data[2].remoteRef: missing `key``).
//!
//! ExternalSecrets have many fields ksec does not implement; a field that
//! would change the result and is not implemented is refused by name, and
//! a field the controllers do not know is reported as a warning (the API
//! server would prune it).

use crate::manifest::tree::{Node, NodeValue};

/// A complaint about a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// 1-based line.
    pub line: usize,
    /// `spec.data[2].remoteRef`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn node_str(node: &Node) -> Option<&str> {
    match (&node.value, node.to_json()) {
        (NodeValue::Scalar { text, .. }, serde_json::Value::String(_)) => Some(text),
        _ => None,
    }
}

/// A field: a node and its path.
#[derive(Clone, Copy)]
pub struct Field<'a> {
    /// The node.
    pub node: &'a Node,
    path: &'a str,
}

/// A field owned with its path (for lists).
pub struct Owned<'a> {
    node: &'a Node,
    path: String,
}

impl<'a> Owned<'a> {
    /// Borrows it as a [`Field`].
    pub fn field(&self) -> Field<'_> {
        Field {
            node: self.node,
            path: &self.path,
        }
    }
}

impl<'a> Field<'a> {
    /// The root of a document.
    pub fn root(node: &'a Node) -> Field<'a> {
        Field { node, path: "" }
    }

    /// Its path (`spec.target`).
    pub fn path(&self) -> &str {
        self.path
    }

    /// Its line.
    pub fn line(&self) -> usize {
        self.node.line
    }

    /// A complaint about this field.
    pub fn error(&self, message: impl Into<String>) -> FieldError {
        FieldError {
            line: self.node.line,
            path: self.path.to_owned(),
            message: message.into(),
        }
    }

    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// A member, if present and not null.
    pub fn get(&self, key: &str) -> Option<Owned<'a>> {
        let v = self.node.get(key)?;
        if matches!(v.to_json(), serde_json::Value::Null) {
            return None;
        }
        Some(Owned {
            node: v,
            path: self.child_path(key),
        })
    }

    /// Fails unless this is a mapping.
    pub fn mapping(&self) -> Result<(), FieldError> {
        match &self.node.value {
            NodeValue::Mapping(_) => Ok(()),
            _ => Err(self.error("expected a mapping")),
        }
    }

    /// This scalar as a string.
    pub fn as_str(&self) -> Result<&'a str, FieldError> {
        node_str(self.node).ok_or_else(|| self.error("expected a string (quote it)"))
    }

    /// A string member.
    pub fn str(&self, key: &str) -> Result<Option<&'a str>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(f) => node_str(f.node)
                .map(Some)
                .ok_or_else(|| f.field().error("expected a string (quote it)")),
        }
    }

    /// A string member that must be there (and not empty).
    pub fn required(&self, key: &str) -> Result<&'a str, FieldError> {
        match self.str(key)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(self.error(format!("`{key}` is required"))),
        }
    }

    /// A boolean member.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(f) => match f.node.to_json() {
                serde_json::Value::Bool(b) => Ok(Some(b)),
                _ => Err(f.field().error("expected true or false")),
            },
        }
    }

    /// An integer member (a quoted number is accepted too).
    pub fn int(&self, key: &str) -> Result<Option<i64>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(f) => match f.node.to_json() {
                serde_json::Value::Number(n) if n.is_i64() => Ok(n.as_i64()),
                serde_json::Value::String(s) if s.parse::<i64>().is_ok() => Ok(s.parse().ok()),
                _ => Err(f.field().error("expected an integer")),
            },
        }
    }

    /// The items of a list member (empty when absent).
    pub fn list(&self, key: &str) -> Result<Vec<Owned<'a>>, FieldError> {
        let Some(f) = self.get(key) else {
            return Ok(Vec::new());
        };
        let items = f
            .node
            .items()
            .ok_or_else(|| f.field().error("expected a list"))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, node)| Owned {
                node,
                path: format!("{}[{i}]", f.path),
            })
            .collect())
    }

    /// The entries of a mapping member whose values are strings.
    pub fn string_map(&self, key: &str) -> Result<Vec<(String, String)>, FieldError> {
        let Some(f) = self.get(key) else {
            return Ok(Vec::new());
        };
        let NodeValue::Mapping(entries) = &f.node.value else {
            return Err(f.field().error("expected a mapping"));
        };
        let mut out = Vec::new();
        for (k, v) in entries {
            let name = match k.to_json() {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            let child = Owned {
                node: v,
                path: format!("{}.{name}", f.path),
            };
            let value = match v.to_json() {
                serde_json::Value::Null => String::new(),
                _ => child.field().as_str()?.to_owned(),
            };
            out.push((name, value));
        }
        Ok(out)
    }

    /// The names of a mapping's members.
    pub fn keys(&self) -> Vec<String> {
        match &self.node.value {
            NodeValue::Mapping(entries) => entries
                .iter()
                .filter_map(|(k, _)| k.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Checks the members against what is implemented: a member in
    /// `refused` (with why) fails; one in neither list is returned, for a
    /// warning.
    pub fn check(
        &self,
        known: &[&str],
        refused: &[(&str, &str)],
    ) -> Result<Vec<String>, FieldError> {
        self.mapping()?;
        let mut unknown = Vec::new();
        for k in self.keys() {
            if let Some((_, why)) = refused.iter().find(|(r, _)| *r == k) {
                let f = self.get(&k);
                let at = f.as_ref().map_or(*self, |o| o.field());
                return Err(at.error(format!("`{k}` is not supported by ksec resolve: {why}")));
            }
            if !known.contains(&k.as_str()) {
                unknown.push(self.child_path(&k));
            }
        }
        Ok(unknown)
    }
}
