//! The functions templates can call.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

use super::{TemplateError, Value, err};

/// The functions [`call`] knows; others are refused when parsing, as Go does.
pub(super) const FUNCTIONS: &[&str] = &[
    "base64decode",
    "b64dec",
    "base64encode",
    "b64enc",
    "quote",
    "squote",
    "upper",
    "lower",
    "trim",
    "trimSuffix",
    "trimPrefix",
    "replace",
    "default",
    "index",
    "len",
    "print",
    "println",
    "printf",
    "eq",
    "ne",
    "not",
    "and",
    "or",
    "toJson",
];

fn text_of(v: &Value) -> String {
    let mut s = String::new();
    v.print(&mut s);
    s
}

fn want_str(name: &str, v: &Value, line: usize) -> Result<Zeroizing<String>, TemplateError> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        other => Err(err(
            line,
            format!("{name}: expected a string, got a {}", other.kind()),
        )),
    }
}

fn arity(name: &str, args: &[Value], n: usize, line: usize) -> Result<(), TemplateError> {
    if args.len() != n {
        return Err(err(
            line,
            format!("{name}: wants {n} argument(s), got {}", args.len()),
        ));
    }
    Ok(())
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Nil, Value::Nil) => true,
        _ => false,
    }
}

pub(super) fn call(name: &str, args: Vec<Value>, line: usize) -> Result<Value, TemplateError> {
    let s = |i: usize| want_str(name, &args[i], line);
    Ok(match name {
        "base64decode" | "b64dec" => {
            arity(name, &args, 1, line)?;
            let compact: String = s(0)?.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = B64
                .decode(compact)
                .map_err(|_| err(line, format!("{name}: the value is not base64")))?;
            Value::str(
                String::from_utf8(bytes).map_err(|_| {
                    err(line, format!("{name}: the decoded value is not UTF-8 text"))
                })?,
            )
        }
        "base64encode" | "b64enc" => {
            arity(name, &args, 1, line)?;
            Value::str(B64.encode(s(0)?.as_bytes()))
        }
        "quote" => {
            arity(name, &args, 1, line)?;
            Value::str(serde_json::to_string(&text_of(&args[0])).expect("strings serialise"))
        }
        "squote" => {
            arity(name, &args, 1, line)?;
            Value::str(format!("'{}'", text_of(&args[0]).replace('\'', "'\\''")))
        }
        "upper" => {
            arity(name, &args, 1, line)?;
            Value::str(s(0)?.to_uppercase())
        }
        "lower" => {
            arity(name, &args, 1, line)?;
            Value::str(s(0)?.to_lowercase())
        }
        "trim" => {
            arity(name, &args, 1, line)?;
            Value::str(s(0)?.trim())
        }
        "trimSuffix" => {
            arity(name, &args, 2, line)?;
            let (x, v) = (s(0)?, s(1)?);
            Value::str(v.strip_suffix(x.as_str()).unwrap_or(&v))
        }
        "trimPrefix" => {
            arity(name, &args, 2, line)?;
            let (x, v) = (s(0)?, s(1)?);
            Value::str(v.strip_prefix(x.as_str()).unwrap_or(&v))
        }
        "replace" => {
            arity(name, &args, 3, line)?;
            Value::str(s(2)?.replace(s(0)?.as_str(), &s(1)?))
        }
        "default" => {
            arity(name, &args, 2, line)?;
            if args[1].truthy() {
                args[1].clone()
            } else {
                args[0].clone()
            }
        }
        "index" => {
            if args.is_empty() {
                return Err(err(line, "index: wants at least 1 argument"));
            }
            let mut cur = args[0].clone();
            for k in &args[1..] {
                cur = match (&cur, k) {
                    (Value::Map(m), Value::Str(key)) => {
                        m.get(key.as_str()).cloned().ok_or_else(|| {
                            err(
                                line,
                                format!("map has no entry for key \"{}\"", key.as_str()),
                            )
                        })?
                    }
                    (Value::List(l), Value::Int(i)) => usize::try_from(*i)
                        .ok()
                        .and_then(|i| l.get(i))
                        .cloned()
                        .ok_or_else(|| err(line, format!("index {i} out of range")))?,
                    (c, k) => {
                        return Err(err(
                            line,
                            format!("can't index a {} with a {}", c.kind(), k.kind()),
                        ));
                    }
                };
            }
            cur
        }
        "len" => {
            arity(name, &args, 1, line)?;
            Value::Int(match &args[0] {
                Value::Str(s) => s.len() as i64,
                Value::Map(m) => m.len() as i64,
                Value::List(l) => l.len() as i64,
                other => return Err(err(line, format!("len of a {}", other.kind()))),
            })
        }
        "print" | "println" => {
            // Go's Sprint puts spaces only between operands that are not both strings.
            let mut out = String::new();
            for (i, a) in args.iter().enumerate() {
                let both_str =
                    i > 0 && matches!(args[i - 1], Value::Str(_)) && matches!(a, Value::Str(_));
                if i > 0 && (name == "println" || !both_str) {
                    out.push(' ');
                }
                a.print(&mut out);
            }
            if name == "println" {
                out.push('\n');
            }
            Value::str(out)
        }
        "printf" => {
            if args.is_empty() {
                return Err(err(line, "printf: wants a format"));
            }
            Value::str(printf(&s(0)?, &args[1..], line)?)
        }
        "eq" | "ne" => {
            if args.len() < 2 {
                return Err(err(line, format!("{name}: wants at least 2 arguments")));
            }
            let any = args[1..].iter().any(|b| equal(&args[0], b));
            Value::Bool(if name == "eq" { any } else { !any })
        }
        "not" => {
            arity(name, &args, 1, line)?;
            Value::Bool(!args[0].truthy())
        }
        "and" => args
            .iter()
            .find(|a| !a.truthy())
            .or(args.last())
            .cloned()
            .ok_or_else(|| err(line, "and: wants arguments"))?,
        "or" => args
            .iter()
            .find(|a| a.truthy())
            .or(args.last())
            .cloned()
            .ok_or_else(|| err(line, "or: wants arguments"))?,
        "toJson" => {
            arity(name, &args, 1, line)?;
            Value::str(args[0].to_json().to_string())
        }
        other => return Err(err(line, format!("function \"{other}\" not defined"))),
    })
}

fn printf(format: &str, args: &[Value], line: usize) -> Result<String, TemplateError> {
    let mut out = String::new();
    let mut next = args.iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let verb = chars
            .next()
            .ok_or_else(|| err(line, "printf: % at the end"))?;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let arg = next
            .next()
            .ok_or_else(|| err(line, format!("printf: missing argument for %{verb}")))?;
        match verb {
            's' | 'v' | 'd' => arg.print(&mut out),
            'q' => out.push_str(&serde_json::to_string(&text_of(arg)).expect("strings serialise")),
            other => {
                return Err(err(
                    line,
                    format!("printf: %{other} is not supported (use %s, %q, %v, %d)"),
                ));
            }
        }
    }
    if next.next().is_some() {
        return Err(err(line, "printf: too many arguments"));
    }
    Ok(out)
}
