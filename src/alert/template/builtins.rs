//! Go text/template's predefined functions (Go 1.19): logic, comparison,
//! `index`, `slice`, `len`, printing and escaping.

use std::fmt::Write;

use super::exec::{Env, Function, Param};
use super::fmt::{print_value, sprint, sprintf, sprintln};
use super::value::Value;

use Param::{Any, Str};

type Call = Result<Value, String>;

pub static BUILTINS: &[Function] = &[
    // The executor evaluates `and` and `or` lazily, stopping at the
    // argument that settles them; these bodies say the same eagerly.
    Function {
        name: "and",
        params: &[Any],
        variadic: Some(Any),
        call: |_, args| Ok(settle(args, false)),
    },
    Function {
        name: "or",
        params: &[Any],
        variadic: Some(Any),
        call: |_, args| Ok(settle(args, true)),
    },
    Function {
        name: "not",
        params: &[Any],
        variadic: None,
        call: |_, args| Ok(Value::Bool(!args[0].is_true())),
    },
    Function {
        name: "len",
        params: &[Any],
        variadic: None,
        call: length,
    },
    Function {
        name: "index",
        params: &[Any],
        variadic: Some(Any),
        call: index,
    },
    Function {
        name: "slice",
        params: &[Any],
        variadic: Some(Any),
        call: slice,
    },
    Function {
        name: "print",
        params: &[],
        variadic: Some(Any),
        call: |_, args| Ok(Value::Str(sprint(&args))),
    },
    Function {
        name: "println",
        params: &[],
        variadic: Some(Any),
        call: |_, args| Ok(Value::Str(sprintln(&args))),
    },
    Function {
        name: "printf",
        params: &[Str],
        variadic: Some(Any),
        call: printf,
    },
    Function {
        name: "html",
        params: &[],
        variadic: Some(Any),
        call: |_, args| Ok(Value::Str(html_escape(&eval_args(&args)))),
    },
    Function {
        name: "js",
        params: &[],
        variadic: Some(Any),
        call: |_, args| Ok(Value::Str(js_escape(&eval_args(&args)))),
    },
    Function {
        name: "urlquery",
        params: &[],
        variadic: Some(Any),
        call: |_, args| Ok(Value::Str(query_escape(&eval_args(&args)))),
    },
    Function {
        name: "eq",
        params: &[Any],
        variadic: Some(Any),
        call: eq,
    },
    Function {
        name: "ne",
        params: &[Any, Any],
        variadic: None,
        call: |_, args| Ok(Value::Bool(!equal(&args[0], &args[1])?)),
    },
    Function {
        name: "lt",
        params: &[Any, Any],
        variadic: None,
        call: |_, args| Ok(Value::Bool(less(&args[0], &args[1])?)),
    },
    Function {
        name: "le",
        params: &[Any, Any],
        variadic: None,
        call: |_, args| Ok(Value::Bool(less_or_equal(&args[0], &args[1])?)),
    },
    Function {
        name: "gt",
        params: &[Any, Any],
        variadic: None,
        call: |_, args| Ok(Value::Bool(!less_or_equal(&args[0], &args[1])?)),
    },
    Function {
        name: "ge",
        params: &[Any, Any],
        variadic: None,
        call: |_, args| Ok(Value::Bool(!less(&args[0], &args[1])?)),
    },
];

/// The first argument whose truth is `truth`, else the last.
fn settle(args: Vec<Value>, truth: bool) -> Value {
    let last = args.last().cloned().unwrap_or(Value::Nil);
    args.into_iter()
        .find(|a| a.is_true() == truth)
        .unwrap_or(last)
}

fn printf(_: &Env, args: Vec<Value>) -> Call {
    let format = args[0].as_str().unwrap_or_default().to_string();
    Ok(Value::Str(sprintf(&format, &args[1..])))
}

fn length(_: &Env, args: Vec<Value>) -> Call {
    Ok(Value::Int(match &args[0] {
        Value::Str(s) | Value::Html(s) => s.len(),
        Value::StrMap(m) | Value::Kv(m) => m.len(),
        Value::AnyMap(m) => m.len(),
        Value::Samples(v) => v.len(),
        Value::Strings(v) => v.len(),
        Value::Pairs(v) => v.len(),
        Value::Alerts { list, .. } => list.len(),
        Value::Sample(None) => return Err("len of nil pointer".into()),
        Value::Nil => return Err("reflect: call of reflect.Value.Type on zero Value".into()),
        other => return Err(format!("len of type {}", pointee_type(other))),
    } as i64))
}

/// The type a pointer points to, as Go names it after indirection.
fn pointee_type(value: &Value) -> &'static str {
    match value {
        Value::Sample(_) => "template.sample",
        Value::Time(_) => "time.Time",
        other => other.type_name(),
    }
}

/// An index into a string or slice of length `len`; Go lets `len` itself
/// through here and fails on it afterwards.
fn index_arg(index: &Value, len: usize) -> Result<usize, String> {
    let x = match index {
        Value::Int(i) => *i,
        Value::Byte(b) => i64::from(*b),
        Value::Nil => return Err("cannot index slice/array with nil".into()),
        other => {
            return Err(format!(
                "cannot index slice/array with type {}",
                other.type_name()
            ))
        }
    };
    if x < 0 || x as u64 > len as u64 {
        return Err(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

fn map_key(index: &Value) -> Result<&str, String> {
    match index {
        Value::Str(s) => Ok(s),
        Value::Nil => Err("value is nil; should be of type string".into()),
        other => Err(format!(
            "value has type {}; should be string",
            other.type_name()
        )),
    }
}

fn index(_: &Env, args: Vec<Value>) -> Call {
    let mut item = args[0].clone();
    if matches!(item, Value::Nil) {
        return Err("index of untyped nil".into());
    }
    for index in &args[1..] {
        item = match &item {
            Value::Str(s) | Value::Html(s) => {
                let i = index_arg(index, s.len())?;
                Value::Byte(
                    *s.as_bytes()
                        .get(i)
                        .ok_or("reflect: string index out of range")?,
                )
            }
            Value::Samples(samples) => {
                let i = index_arg(index, samples.len())?;
                Value::Sample(Some(
                    samples
                        .get(i)
                        .ok_or("reflect: slice index out of range")?
                        .clone(),
                ))
            }
            Value::Strings(items) => {
                let i = index_arg(index, items.len())?;
                Value::Str(
                    items
                        .get(i)
                        .ok_or("reflect: slice index out of range")?
                        .clone(),
                )
            }
            Value::Pairs(pairs) => {
                let i = index_arg(index, pairs.len())?;
                let pair = pairs.get(i).ok_or("reflect: slice index out of range")?;
                Value::Pair(std::rc::Rc::new(pair.clone()))
            }
            Value::Alerts { list, .. } => {
                let i = index_arg(index, list.len())?;
                Value::NotifiedAlert(
                    list.get(i)
                        .ok_or("reflect: slice index out of range")?
                        .clone(),
                )
            }
            Value::StrMap(map) | Value::Kv(map) => {
                Value::Str(map.get(map_key(index)?).cloned().unwrap_or_default())
            }
            Value::AnyMap(map) => map.get(map_key(index)?).cloned().unwrap_or(Value::Nil),
            // A nil pointer, or the nil a missing `args` key gives.
            Value::Sample(None) | Value::Nil => return Err("index of nil pointer".into()),
            other => return Err(format!("can't index item of type {}", pointee_type(other))),
        };
    }
    Ok(item)
}

fn slice(_: &Env, args: Vec<Value>) -> Call {
    let item = &args[0];
    let indexes = &args[1..];
    if matches!(item, Value::Nil) {
        return Err("slice of untyped nil".into());
    }
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let len = match item {
        Value::Str(s) | Value::Html(s) => {
            if indexes.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Value::Samples(samples) => samples.len(),
        // Unlike index and len, slice does not follow pointers.
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut bounds = [0, len, len];
    for (i, index) in indexes.iter().enumerate() {
        bounds[i] = index_arg(index, len)?;
    }
    if bounds[0] > bounds[1] {
        return Err(format!(
            "invalid slice index: {} > {}",
            bounds[0], bounds[1]
        ));
    }
    if indexes.len() == 3 && bounds[1] > bounds[2] {
        return Err(format!(
            "invalid slice index: {} > {}",
            bounds[1], bounds[2]
        ));
    }
    let (from, to) = (bounds[0], bounds[1]);
    Ok(match item {
        Value::Str(s) | Value::Html(s) => {
            let text = String::from_utf8_lossy(&s.as_bytes()[from..to]).into_owned();
            match item {
                Value::Html(_) => Value::Html(text),
                _ => Value::Str(text),
            }
        }
        Value::Samples(samples) => Value::Samples(std::rc::Rc::new(samples[from..to].to_vec())),
        _ => unreachable!("only strings and slices are sliced"),
    })
}

/// Go's comparison classes: values compare only within one.
#[derive(PartialEq)]
enum Basic<'a> {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

fn basic(value: &Value) -> Option<Basic<'_>> {
    Some(match value {
        Value::Bool(b) => Basic::Bool(*b),
        Value::Int(i) => Basic::Int(*i),
        Value::Byte(b) => Basic::Int(i64::from(*b)),
        Value::Float(f) => Basic::Float(*f),
        Value::Str(s) | Value::Html(s) => Basic::Str(s),
        _ => return None,
    })
}

const BAD_COMPARISON_TYPE: &str = "invalid type for comparison";
const BAD_COMPARISON: &str = "incompatible types for comparison";

fn eq(_: &Env, args: Vec<Value>) -> Call {
    if args.len() < 2 {
        return Err("missing argument for comparison".into());
    }
    for other in &args[1..] {
        if equal(&args[0], other)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

fn equal(a: &Value, b: &Value) -> Result<bool, String> {
    match (basic(a), basic(b)) {
        (Some(x), Some(y)) => match (&x, &y) {
            (Basic::Bool(_), Basic::Bool(_))
            | (Basic::Int(_), Basic::Int(_))
            | (Basic::Float(_), Basic::Float(_))
            | (Basic::Str(_), Basic::Str(_)) => Ok(x == y),
            _ => Err(BAD_COMPARISON.into()),
        },
        // A nil compares unequal to anything but nil.
        _ if matches!(a, Value::Nil) || matches!(b, Value::Nil) => {
            Ok(matches!(a, Value::Nil) && matches!(b, Value::Nil))
        }
        (Some(_), None) | (None, Some(_)) => Err(BAD_COMPARISON.into()),
        (None, None) => match (a, b) {
            (Value::Sample(x), Value::Sample(y)) => Ok(match (x, y) {
                (Some(x), Some(y)) => std::rc::Rc::ptr_eq(x, y),
                (None, None) => true,
                _ => false,
            }),
            (Value::Time(x), Value::Time(y)) => Ok(x == y),
            _ if go_kind(a) != go_kind(b) => Err(format!(
                "non-comparable types {}: {}, {}: {}",
                sprintf("%s", std::slice::from_ref(a)),
                a.type_name(),
                b.type_name(),
                print_value(b)
            )),
            // Maps, slices and structs holding them have no == in Go.
            _ => Err(format!(
                "non-comparable type {}: {}",
                sprintf("%s", std::slice::from_ref(b)),
                b.type_name()
            )),
        },
    }
}

/// The reflect kind of a value that is not a basic one.
fn go_kind(value: &Value) -> &'static str {
    match value {
        Value::StrMap(_) | Value::AnyMap(_) | Value::Kv(_) => "map",
        Value::Samples(_) | Value::Strings(_) | Value::Pairs(_) | Value::Alerts { .. } => "slice",
        Value::Sample(_) | Value::Time(_) | Value::Notification(_) => "ptr",
        Value::Alert(_) | Value::Pair(_) | Value::NotifiedAlert(_) => "struct",
        _ => "basic",
    }
}

fn less(a: &Value, b: &Value) -> Result<bool, String> {
    let (Some(x), Some(y)) = (basic(a), basic(b)) else {
        return Err(BAD_COMPARISON_TYPE.into());
    };
    match (x, y) {
        (Basic::Int(x), Basic::Int(y)) => Ok(x < y),
        (Basic::Float(x), Basic::Float(y)) => Ok(x < y),
        (Basic::Str(x), Basic::Str(y)) => Ok(x < y),
        (Basic::Bool(_), Basic::Bool(_)) => Err(BAD_COMPARISON_TYPE.into()),
        _ => Err(BAD_COMPARISON.into()),
    }
}

fn less_or_equal(a: &Value, b: &Value) -> Result<bool, String> {
    Ok(less(a, b)? || equal(a, b)?)
}

/// Go's `evalArgs`: a lone string as is, otherwise `fmt.Sprint` of the
/// arguments with pointers followed, as an action prints them.
fn eval_args(args: &[Value]) -> String {
    if let [Value::Str(s)] = args {
        return s.clone();
    }
    let printable: Vec<Value> = args
        .iter()
        .map(|arg| match arg {
            Value::Nil | Value::Sample(Some(_)) => Value::Str(print_value(arg)),
            other => other.clone(),
        })
        .collect();
    sprint(&printable)
}

/// `template.HTMLEscapeString`.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{fffd}'),
            _ => out.push(c),
        }
    }
    out
}

/// `template.JSEscapeString`.
fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' | '>' | '&' | '=' => {
                write!(out, "\\u{:04X}", c as u32).ok();
            }
            _ if (c as u32) < 0x20 => {
                write!(out, "\\u{:04X}", c as u32).ok();
            }
            _ if c.is_ascii() || super::fmt::is_print(c) => out.push(c),
            _ => {
                write!(out, "\\u{:04X}", c as u32).ok();
            }
        }
    }
    out
}

/// `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                write!(out, "%{b:02X}").ok();
            }
        }
    }
    out
}
