//! Lexing and parsing templates into [`Node`]s.

use super::funcs::FUNCTIONS;
use super::{Node, Operand, Pipe, TemplateError, Value, err};

/// Parses a whole template.
pub(super) fn nodes(src: &str) -> Result<Vec<Node>, TemplateError> {
    let items = items(src)?;
    let mut p = Parser { items, pos: 0 };
    let (nodes, end) = p.list()?;
    if let Some((line, word)) = end {
        return Err(err(line, format!("unexpected {{{{{word}}}}}")));
    }
    Ok(nodes)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Str(String),
    Int(i64),
    Ident(String),
    Declare,
    Assign,
    Pipe,
    Open,
    Close,
    Comma,
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `.a.b` after the first `.`: field names.
fn fields(chars: &[char], i: &mut usize) -> Vec<String> {
    let mut out = Vec::new();
    while *i < chars.len() && chars[*i] == '.' {
        let start = *i + 1;
        let mut j = start;
        while j < chars.len() && is_ident(chars[j]) {
            j += 1;
        }
        if j == start {
            break;
        }
        out.push(chars[start..j].iter().collect());
        *i = j;
    }
    out
}

fn lex(action: &str, line: usize) -> Result<Vec<Tok>, TemplateError> {
    let chars: Vec<char> = action.chars().collect();
    let mut i = 0;
    let mut toks = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                toks.push(Tok::Open);
                i += 1;
            }
            ')' => {
                toks.push(Tok::Close);
                i += 1;
                if i < chars.len() && chars[i] == '.' {
                    let f = fields(&chars, &mut i);
                    toks.push(Tok::Field(f));
                }
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                toks.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                toks.push(Tok::Assign);
                i += 1;
            }
            '.' => {
                if chars.get(i + 1).is_some_and(|c| is_ident(*c)) {
                    toks.push(Tok::Field(fields(&chars, &mut i)));
                } else {
                    toks.push(Tok::Field(Vec::new()));
                    i += 1;
                }
            }
            '$' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && is_ident(chars[j]) {
                    j += 1;
                }
                let name: String = chars[start..j].iter().collect();
                i = j;
                let f = fields(&chars, &mut i);
                toks.push(Tok::Var(name, f));
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err(err(line, "unterminated string"));
                    };
                    i += 1;
                    match c {
                        '"' => break,
                        '\\' => {
                            let e = chars
                                .get(i)
                                .copied()
                                .ok_or_else(|| err(line, "unterminated string"))?;
                            i += 1;
                            s.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                '\\' => '\\',
                                '"' => '"',
                                '\'' => '\'',
                                '0' => '\0',
                                other => {
                                    return Err(err(line, format!("unknown escape \\{other}")));
                                }
                            });
                        }
                        c => s.push(c),
                    }
                }
                toks.push(Tok::Str(s));
            }
            '`' => {
                let start = i + 1;
                let end = chars[start..]
                    .iter()
                    .position(|c| *c == '`')
                    .ok_or_else(|| err(line, "unterminated raw string"))?;
                toks.push(Tok::Str(chars[start..start + end].iter().collect()));
                i = start + end + 1;
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                toks.push(Tok::Int(
                    s.parse()
                        .map_err(|_| err(line, format!("bad number {s}")))?,
                ));
            }
            c if is_ident(c) => {
                let start = i;
                while i < chars.len() && (is_ident(chars[i]) || chars[i] == '.') {
                    i += 1;
                }
                toks.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => {
                return Err(err(
                    line,
                    format!("unexpected character {other:?} in action"),
                ));
            }
        }
    }
    Ok(toks)
}

struct Item {
    line: usize,
    kind: ItemKind,
}

enum ItemKind {
    Text(String),
    Action(Vec<Tok>),
}

/// Splits the template into text and actions, applying trim markers.
fn items(src: &str) -> Result<Vec<Item>, TemplateError> {
    let mut out: Vec<Item> = Vec::new();
    let mut rest = src;
    let mut line = 1;
    let mut trim_next = false;
    while !rest.is_empty() {
        let Some(open) = rest.find("{{") else {
            let mut t = rest.to_owned();
            if trim_next {
                t = t.trim_start().to_owned();
            }
            out.push(Item {
                line,
                kind: ItemKind::Text(t),
            });
            break;
        };
        let mut text = rest[..open].to_owned();
        if trim_next {
            text = text.trim_start().to_owned();
        }
        let after = &rest[open + 2..];
        let trim_left =
            after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        if trim_left {
            text = text.trim_end().to_owned();
        }
        line += rest[..open].matches('\n').count();
        if !text.is_empty() {
            out.push(Item {
                line,
                kind: ItemKind::Text(text),
            });
        }
        let body_start = if trim_left { 1 } else { 0 };
        let close = after
            .find("}}")
            .ok_or_else(|| err(line, "unclosed action"))?;
        let mut body = &after[body_start..close];
        trim_next = body.ends_with(" -") || body.ends_with("\t-") || body.ends_with("\n-");
        if trim_next {
            body = &body[..body.len() - 1];
        }
        let trimmed = body.trim();
        if trimmed.starts_with("/*") {
            if !trimmed.ends_with("*/") {
                return Err(err(line, "unclosed comment"));
            }
        } else {
            out.push(Item {
                line,
                kind: ItemKind::Action(lex(body, line)?),
            });
        }
        line += after[..close].matches('\n').count();
        rest = &after[close + 2..];
    }
    Ok(out)
}

struct Parser {
    items: Vec<Item>,
    pos: usize,
}

/// How a list of nodes ended: `{{else …}}` or `{{end}}`, with its line and
/// the tokens after `else`.
type ListEnd = Option<(usize, String)>;

impl Parser {
    /// Nodes up to `{{end}}`/`{{else…}}` (returned as the word) or the end.
    fn list(&mut self) -> Result<(Vec<Node>, ListEnd), TemplateError> {
        let mut nodes = Vec::new();
        while self.pos < self.items.len() {
            let item = &self.items[self.pos];
            self.pos += 1;
            let line = item.line;
            let toks = match &item.kind {
                ItemKind::Text(t) => {
                    nodes.push(Node::Text(t.clone()));
                    continue;
                }
                ItemKind::Action(t) => t.clone(),
            };
            match toks.first() {
                Some(Tok::Ident(w)) if w == "end" => {
                    if toks.len() > 1 {
                        return Err(err(line, "unexpected tokens after end"));
                    }
                    return Ok((nodes, Some((line, "end".into()))));
                }
                Some(Tok::Ident(w)) if w == "else" => {
                    // Keep the rest (e.g. `else if …`) for the caller.
                    self.pos -= 1;
                    return Ok((nodes, Some((line, "else".into()))));
                }
                Some(Tok::Ident(w)) if w == "if" => nodes.push(self.if_(line, &toks[1..])?),
                Some(Tok::Ident(w)) if w == "range" || w == "with" => {
                    let pipe = pipe(&toks[1..], line)?;
                    let (body, alt) = self.body_else(line, w)?;
                    nodes.push(if w == "range" {
                        if pipe.vars.len() > 2 {
                            return Err(err(line, "range declares at most two variables"));
                        }
                        Node::Range(pipe, body, alt)
                    } else {
                        Node::With(pipe, body, alt)
                    });
                }
                Some(Tok::Ident(w))
                    if matches!(
                        w.as_str(),
                        "define" | "template" | "block" | "break" | "continue"
                    ) =>
                {
                    return Err(err(line, format!("`{w}` is not supported")));
                }
                None => return Err(err(line, "empty action")),
                _ => nodes.push(Node::Action(pipe(&toks, line)?)),
            }
        }
        Ok((nodes, None))
    }

    /// The body of range/with and its optional `{{else}}` part, up to `{{end}}`.
    fn body_else(
        &mut self,
        line: usize,
        what: &str,
    ) -> Result<(Vec<Node>, Vec<Node>), TemplateError> {
        let (body, end) = self.list()?;
        match end {
            Some((_, w)) if w == "end" => Ok((body, Vec::new())),
            Some((l, _)) => {
                let toks = self.take_action();
                if toks.len() != 1 {
                    return Err(err(l, format!("{what}: `else` takes nothing here")));
                }
                let (alt, end) = self.list()?;
                match end {
                    Some((_, w)) if w == "end" => Ok((body, alt)),
                    _ => Err(err(l, format!("{what}: missing {{{{end}}}}"))),
                }
            }
            None => Err(err(line, format!("{what}: missing {{{{end}}}}"))),
        }
    }

    fn take_action(&mut self) -> Vec<Tok> {
        let item = &self.items[self.pos];
        self.pos += 1;
        match &item.kind {
            ItemKind::Action(t) => t.clone(),
            ItemKind::Text(_) => Vec::new(),
        }
    }

    fn if_(&mut self, line: usize, cond: &[Tok]) -> Result<Node, TemplateError> {
        let mut branches = vec![(pipe(cond, line)?, Vec::new())];
        loop {
            let (body, end) = self.list()?;
            branches.last_mut().expect("one branch").1 = body;
            match end {
                Some((_, w)) if w == "end" => return Ok(Node::If(branches, Vec::new())),
                Some((l, _)) => {
                    let toks = self.take_action();
                    match toks.get(1) {
                        Some(Tok::Ident(w)) if w == "if" => {
                            branches.push((pipe(&toks[2..], l)?, Vec::new()))
                        }
                        None => {
                            let (alt, end) = self.list()?;
                            return match end {
                                Some((_, w)) if w == "end" => Ok(Node::If(branches, alt)),
                                _ => Err(err(l, "if: missing {{end}}")),
                            };
                        }
                        Some(_) => return Err(err(l, "else: expected `else` or `else if`")),
                    }
                }
                None => return Err(err(line, "if: missing {{end}}")),
            }
        }
    }
}

/// Parses a pipeline, with an optional `$a, $b :=` / `$a =` head.
fn pipe(toks: &[Tok], line: usize) -> Result<Pipe, TemplateError> {
    let mut vars = Vec::new();
    let mut declare = true;
    let mut rest = toks;
    let assign_at = toks
        .iter()
        .position(|t| matches!(t, Tok::Declare | Tok::Assign));
    if let Some(at) = assign_at {
        let head = &toks[..at];
        let ok = head.iter().enumerate().all(|(i, t)| match t {
            Tok::Var(_, f) => i % 2 == 0 && f.is_empty(),
            Tok::Comma => i % 2 == 1,
            _ => false,
        });
        if !ok || head.is_empty() {
            return Err(err(line, "bad variable declaration"));
        }
        vars = head
            .iter()
            .filter_map(|t| match t {
                Tok::Var(n, _) => Some(n.clone()),
                _ => None,
            })
            .collect();
        declare = matches!(toks[at], Tok::Declare);
        rest = &toks[at + 1..];
    }
    let mut cmds = Vec::new();
    let mut i = 0;
    let mut cmd = Vec::new();
    while i < rest.len() {
        match &rest[i] {
            Tok::Pipe => {
                if cmd.is_empty() {
                    return Err(err(line, "missing command before |"));
                }
                cmds.push(std::mem::take(&mut cmd));
                i += 1;
            }
            _ => {
                cmd.push(operand(rest, &mut i, line)?);
            }
        }
    }
    if cmd.is_empty() {
        return Err(err(line, "missing command"));
    }
    cmds.push(cmd);
    Ok(Pipe {
        line,
        vars,
        declare,
        cmds,
    })
}

fn operand(toks: &[Tok], i: &mut usize, line: usize) -> Result<Operand, TemplateError> {
    let t = toks[*i].clone();
    *i += 1;
    Ok(match t {
        Tok::Field(f) => Operand::Field(f),
        Tok::Var(n, f) => Operand::Var(n, f),
        Tok::Str(s) => Operand::Lit(Value::str(s)),
        Tok::Int(n) => Operand::Lit(Value::Int(n)),
        Tok::Ident(w) => match w.as_str() {
            "true" => Operand::Lit(Value::Bool(true)),
            "false" => Operand::Lit(Value::Bool(false)),
            "nil" => Operand::Lit(Value::Nil),
            _ if w.contains('.') => return Err(err(line, format!("unexpected `{w}`"))),
            _ if !FUNCTIONS.contains(&w.as_str()) => {
                return Err(err(line, format!("function \"{w}\" not defined")));
            }
            _ => Operand::Func(w),
        },
        Tok::Open => {
            let start = *i;
            let mut depth = 1;
            while *i < toks.len() {
                match toks[*i] {
                    Tok::Open => depth += 1,
                    Tok::Close => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                *i += 1;
            }
            if depth != 0 {
                return Err(err(line, "unclosed ("));
            }
            let inner = pipe(&toks[start..*i], line)?;
            *i += 1;
            let f = match toks.get(*i) {
                Some(Tok::Field(f)) => {
                    *i += 1;
                    f.clone()
                }
                _ => Vec::new(),
            };
            Operand::Paren(Box::new(inner), f)
        }
        other => return Err(err(line, format!("unexpected {other:?}"))),
    })
}
