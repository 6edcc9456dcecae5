//! A subset of Go's `text/template`, for `ksec decrypt --template`
//! (kubesec's `--template` took Go templates; the Rust ports are
//! unmaintained, and ksec needs little of the language).
//!
//! Supported (README, "Templates", lists it for users):
//!
//! * text and actions `{{ … }}`, trim markers `{{-` / `-}}`, comments
//!   `{{/* … */}}`;
//! * fields `.a.b`, the dot `.`, variables `$`, `$x`, `$x.a`; literals:
//!   strings (`"…"` with Go escapes, `` `raw` ``), integers, `true`, `false`;
//! * pipelines `x | f a | g`, parentheses, `$x := …` and `$x = …`;
//! * `if` / `else if` / `else`, `range` (over mappings in sorted key order,
//!   and lists; `$k, $v :=`; `else`), `with` / `else`, `end`;
//! * functions: `base64decode` (`b64dec`), `base64encode` (`b64enc`),
//!   `quote`, `squote`, `upper`, `lower`, `trim`, `trimSuffix`,
//!   `trimPrefix`, `replace`, `default`, `index`, `len`, `print`,
//!   `println`, `printf` (`%s %q %v %d %%`), `eq`, `ne`, `not`, `and`, `or`,
//!   `toJson`.
//!
//! Like Go with `missingkey=error`, a missing map key is an error, not
//! `<no value>`. Pure code.

use std::collections::BTreeMap;
use std::fmt::Write as _;

mod funcs;
mod parse;

use zeroize::Zeroizing;

/// A value a template sees. Every YAML scalar is a string.
#[derive(Clone, Debug)]
pub enum Value {
    /// A string (secret values included, hence zeroized).
    Str(Zeroizing<String>),
    /// A mapping, keys sorted.
    Map(BTreeMap<String, Value>),
    /// A sequence.
    List(Vec<Value>),
    /// `true` / `false` (from literals and comparisons).
    Bool(bool),
    /// An integer literal or `len`.
    Int(i64),
    /// Nothing (YAML null).
    Nil,
}

impl Value {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(Zeroizing::new(s.into()))
    }

    pub(crate) fn truthy(&self) -> bool {
        match self {
            Value::Str(s) => !s.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Nil => false,
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Map(_) => "map",
            Value::List(_) => "list",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Nil => "nil",
        }
    }

    /// Go's `fmt.Print` rendering.
    pub(crate) fn print(&self, out: &mut String) {
        match self {
            Value::Str(s) => out.push_str(s),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Nil => out.push_str("<nil>"),
            Value::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.print(out);
                }
                out.push(']');
            }
            Value::Map(m) => {
                out.push_str("map[");
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.print(out);
                }
                out.push(']');
            }
        }
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Str(s) => serde_json::Value::String(s.to_string()),
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Nil => serde_json::Value::Null,
            Value::List(l) => serde_json::Value::Array(l.iter().map(Value::to_json).collect()),
            Value::Map(m) => {
                serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }
}

/// Why a template could not be parsed or run. Never contains values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template:{line}: {message}")]
pub struct TemplateError {
    /// 1-based line in the template.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// A parsed template.
#[derive(Debug)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Text(String),
    Action(Pipe),
    If(Vec<(Pipe, Vec<Node>)>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
}

#[derive(Debug, Clone)]
pub(crate) struct Pipe {
    pub(crate) line: usize,
    /// Variables declared (`:=`) or assigned (`=`).
    pub(crate) vars: Vec<String>,
    pub(crate) declare: bool,
    pub(crate) cmds: Vec<Vec<Operand>>,
}

#[derive(Debug, Clone)]
pub(crate) enum Operand {
    /// `.a.b` (empty: the dot).
    Field(Vec<String>),
    /// `$x.a.b` (`$` alone is the root).
    Var(String, Vec<String>),
    Lit(Value),
    Func(String),
    Paren(Box<Pipe>, Vec<String>),
}

impl Template {
    /// Parses a template.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        Ok(Template {
            nodes: parse::nodes(src)?,
        })
    }

    /// Renders the template with `data` as the dot and `$`.
    pub fn render(&self, data: &Value) -> Result<Zeroizing<String>, TemplateError> {
        let mut out = Zeroizing::new(String::new());
        let mut st = State {
            root: data,
            scopes: vec![Vec::new()],
        };
        st.nodes(&self.nodes, data, &mut out)?;
        Ok(out)
    }
}

/// A template error at `line`.
pub(crate) fn err(line: usize, message: impl Into<String>) -> TemplateError {
    TemplateError {
        line,
        message: message.into(),
    }
}

struct State<'a> {
    root: &'a Value,
    scopes: Vec<Vec<(String, Value)>>,
}

fn field(v: &Value, names: &[String], line: usize) -> Result<Value, TemplateError> {
    let mut cur = v.clone();
    for n in names {
        cur = match &cur {
            Value::Map(m) => m
                .get(n)
                .cloned()
                .ok_or_else(|| err(line, format!("map has no entry for key \"{n}\"")))?,
            other => {
                return Err(err(
                    line,
                    format!("can't get field {n} of a {}", other.kind()),
                ));
            }
        };
    }
    Ok(cur)
}

impl State<'_> {
    fn var(&self, name: &str, line: usize) -> Result<Value, TemplateError> {
        if name.is_empty() {
            return Ok(self.root.clone());
        }
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.iter().rev())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| err(line, format!("undefined variable ${name}")))
    }

    fn set(
        &mut self,
        name: &str,
        v: Value,
        declare: bool,
        line: usize,
    ) -> Result<(), TemplateError> {
        if declare {
            self.scopes
                .last_mut()
                .expect("a scope")
                .push((name.to_owned(), v));
            return Ok(());
        }
        for scope in self.scopes.iter_mut().rev() {
            if let Some(slot) = scope.iter_mut().rev().find(|(n, _)| n == name) {
                slot.1 = v;
                return Ok(());
            }
        }
        Err(err(line, format!("undefined variable ${name}")))
    }

    fn nodes(
        &mut self,
        nodes: &[Node],
        dot: &Value,
        out: &mut String,
    ) -> Result<(), TemplateError> {
        for n in nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipe(p, dot)?;
                    if p.vars.is_empty() {
                        v.print(out);
                    }
                }
                Node::If(branches, alt) => {
                    self.scopes.push(Vec::new());
                    let mut done = false;
                    for (cond, body) in branches {
                        if self.pipe(cond, dot)?.truthy() {
                            self.nodes(body, dot, out)?;
                            done = true;
                            break;
                        }
                    }
                    if !done {
                        self.nodes(alt, dot, out)?;
                    }
                    self.scopes.pop();
                }
                Node::With(p, body, alt) => {
                    self.scopes.push(Vec::new());
                    let v = self.pipe(p, dot)?;
                    if v.truthy() {
                        self.nodes(body, &v, out)?;
                    } else {
                        self.nodes(alt, dot, out)?;
                    }
                    self.scopes.pop();
                }
                Node::Range(p, body, alt) => {
                    let unbound = Pipe {
                        vars: Vec::new(),
                        ..p.clone()
                    };
                    let v = self.pipe(&unbound, dot)?;
                    let pairs: Vec<(Value, Value)> = match v {
                        Value::Map(m) => m.into_iter().map(|(k, v)| (Value::str(k), v)).collect(),
                        Value::List(l) => l
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| (Value::Int(i as i64), v))
                            .collect(),
                        Value::Nil => Vec::new(),
                        Value::Int(n) => (0..n.max(0))
                            .map(|i| (Value::Int(i), Value::Int(i)))
                            .collect(),
                        other => {
                            return Err(err(
                                p.line,
                                format!("range can't iterate over a {}", other.kind()),
                            ));
                        }
                    };
                    if pairs.is_empty() {
                        self.nodes(alt, dot, out)?;
                        continue;
                    }
                    for (k, v) in pairs {
                        self.scopes.push(Vec::new());
                        match p.vars.as_slice() {
                            [one] => self.set(one, v.clone(), true, p.line)?,
                            [a, b] => {
                                self.set(a, k, true, p.line)?;
                                self.set(b, v.clone(), true, p.line)?;
                            }
                            _ => {}
                        }
                        self.nodes(body, &v, out)?;
                        self.scopes.pop();
                    }
                }
            }
        }
        Ok(())
    }

    fn pipe(&mut self, p: &Pipe, dot: &Value) -> Result<Value, TemplateError> {
        let mut piped: Option<Value> = None;
        for cmd in &p.cmds {
            piped = Some(self.cmd(cmd, dot, piped, p.line)?);
        }
        let v = piped.unwrap_or(Value::Nil);
        if let [name] = p.vars.as_slice() {
            self.set(name, v.clone(), p.declare, p.line)?;
        } else if p.vars.len() > 1 {
            return Err(err(p.line, "too many variables in declaration"));
        }
        Ok(v)
    }

    fn operand(&mut self, o: &Operand, dot: &Value, line: usize) -> Result<Value, TemplateError> {
        match o {
            Operand::Field(f) => field(dot, f, line),
            Operand::Var(n, f) => field(&self.var(n, line)?, f, line),
            Operand::Lit(v) => Ok(v.clone()),
            Operand::Func(name) => funcs::call(name, Vec::new(), line),
            Operand::Paren(p, f) => {
                let v = self.pipe(p, dot)?;
                field(&v, f, line)
            }
        }
    }

    fn cmd(
        &mut self,
        cmd: &[Operand],
        dot: &Value,
        piped: Option<Value>,
        line: usize,
    ) -> Result<Value, TemplateError> {
        match &cmd[0] {
            Operand::Func(name) => {
                let mut args = Vec::with_capacity(cmd.len());
                for o in &cmd[1..] {
                    args.push(self.operand(o, dot, line)?);
                }
                if let Some(p) = piped {
                    args.push(p);
                }
                funcs::call(name, args, line)
            }
            first => {
                if cmd.len() > 1 || piped.is_some() {
                    return Err(err(line, "can't give an argument to a non-function"));
                }
                self.operand(first, dot, line)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Value {
        let mut d = BTreeMap::new();
        d.insert("password".into(), Value::str("czNjcjN0"));
        d.insert("user".into(), Value::str("YWRtaW4="));
        d.insert("tls.crt".into(), Value::str("Y2VydA=="));
        let mut meta = BTreeMap::new();
        meta.insert("name".into(), Value::str("db"));
        meta.insert(
            "tags".into(),
            Value::List(vec![Value::str("a"), Value::str("b")]),
        );
        let mut root = BTreeMap::new();
        root.insert("data".into(), Value::Map(d));
        root.insert("metadata".into(), Value::Map(meta));
        root.insert("kind".into(), Value::str("Secret"));
        Value::Map(root)
    }

    fn run(t: &str) -> Result<String, TemplateError> {
        Template::parse(t)?.render(&data()).map(|s| s.to_string())
    }

    #[test]
    fn fields_functions_and_pipelines() {
        assert_eq!(
            run("{{ .data.password | base64decode }}").unwrap(),
            "s3cr3t"
        );
        assert_eq!(run("{{ base64decode .data.user }}").unwrap(), "admin");
        assert_eq!(
            run("{{ index .data \"tls.crt\" | b64dec | upper }}").unwrap(),
            "CERT"
        );
        assert_eq!(run("{{ .metadata.name | quote }}").unwrap(), "\"db\"");
        assert_eq!(
            run("{{ printf \"%s=%q\" .kind \"x\" }}").unwrap(),
            "Secret=\"x\""
        );
        assert_eq!(run("{{ \"YQ==\" | b64dec | b64enc }}").unwrap(), "YQ==");
        assert_eq!(
            run("{{ len .data }} {{ (index .metadata.tags 1) }}").unwrap(),
            "3 b"
        );
        assert_eq!(run("{{ toJson .metadata.tags }}").unwrap(), "[\"a\",\"b\"]");
        assert_eq!(
            run("{{ .missing | default \"d\" }}").unwrap_err().message,
            "map has no entry for key \"missing\""
        );
        assert_eq!(run("{{ default \"d\" \"\" }}").unwrap(), "d");
    }

    #[test]
    fn control_and_variables() {
        assert_eq!(
            run("{{ range $k, $v := .data }}{{ $k }}={{ $v | b64dec }}\n{{ end }}").unwrap(),
            "password=s3cr3t\ntls.crt=cert\nuser=admin\n"
        );
        assert_eq!(
            run("{{ range .metadata.tags }}[{{ . }}]{{ end }}").unwrap(),
            "[a][b]"
        );
        assert_eq!(
            run("{{ range $i, $t := .metadata.tags }}{{ $i }}{{ $t }}{{ end }}").unwrap(),
            "0a1b"
        );
        assert_eq!(
            run("{{ range .nothing }}x{{ else }}none{{ end }}")
                .unwrap_err()
                .line,
            1
        );
        assert_eq!(
            run("{{ if eq .kind \"Secret\" }}yes{{ else if .x }}no{{ else }}other{{ end }}")
                .unwrap(),
            "yes"
        );
        assert_eq!(run("{{ if not .kind }}a{{ else }}b{{ end }}").unwrap(), "b");
        assert_eq!(
            run("{{ with .metadata }}{{ .name }}{{ end }}").unwrap(),
            "db"
        );
        assert_eq!(
            run("{{ $n := .metadata.name }}{{ $n }}-{{ $.kind }}").unwrap(),
            "db-Secret"
        );
        assert_eq!(run("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}").unwrap(), "2");
        assert_eq!(run("a  {{- /* note */ -}}  b").unwrap(), "ab");
        assert_eq!(run("x\n{{- .kind }}\n").unwrap(), "xSecret\n");
        assert_eq!(run("{{ .kind -}}\n  y").unwrap(), "Secrety");
    }

    #[test]
    fn errors_name_the_line() {
        let e = run("ok\n{{ .data.nope }}").unwrap_err();
        assert_eq!(
            (e.line, e.message.as_str()),
            (2, "map has no entry for key \"nope\"")
        );
        assert!(
            run("{{ if .kind }}")
                .unwrap_err()
                .message
                .contains("missing {{end}}")
        );
        assert!(run("{{ end }}").unwrap_err().message.contains("unexpected"));
        assert!(
            run("{{ nosuch .kind }}")
                .unwrap_err()
                .message
                .contains("not defined")
        );
        assert!(run("{{ .kind").unwrap_err().message.contains("unclosed"));
        assert!(
            run("{{ template \"x\" }}")
                .unwrap_err()
                .message
                .contains("not supported")
        );
        assert!(
            run("{{ \"not base64!\" | b64dec }}")
                .unwrap_err()
                .message
                .contains("base64")
        );
        assert!(
            run("{{ .kind.x }}")
                .unwrap_err()
                .message
                .contains("can't get field")
        );
    }
}
