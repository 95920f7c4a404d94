//! Prometheus 2.42's template functions (`template/template.go`): queries
//! and their samples, the humanize family, times, strings, links.

use std::rc::Rc;

use super::builtins::query_escape;
use super::exec::{Env, Function, Param, MAX_OUTPUT};
use super::fmt::{self, format_float, quote, sprintf};
use super::regexp;
use super::time::time_string;
use super::value::{Sample, StrMap, Time, Value};

use Param::{Any, Samples, Str};

type Call = Result<Value, String>;

pub static FUNCTIONS: &[Function] = &[
    Function {
        name: "query",
        params: &[Str],
        variadic: None,
        call: query,
    },
    Function {
        name: "first",
        params: &[Samples],
        variadic: None,
        call: first,
    },
    Function {
        name: "label",
        params: &[Str, Param::Sample],
        variadic: None,
        call: label,
    },
    Function {
        name: "value",
        params: &[Param::Sample],
        variadic: None,
        call: |_, a| Ok(Value::Float(sample(&a[0])?.value)),
    },
    Function {
        name: "strvalue",
        params: &[Param::Sample],
        variadic: None,
        call: |_, a| sample_label(&a[0], "__value__"),
    },
    Function {
        name: "args",
        params: &[],
        variadic: Some(Any),
        call: args,
    },
    Function {
        name: "reReplaceAll",
        params: &[Str, Str, Str],
        variadic: None,
        call: re_replace_all,
    },
    Function {
        name: "safeHtml",
        params: &[Str],
        variadic: None,
        call: |_, a| Ok(Value::Html(text(&a[0]).to_string())),
    },
    Function {
        name: "match",
        params: &[Str, Str],
        variadic: None,
        call: matches,
    },
    Function {
        name: "title",
        params: &[Str],
        variadic: None,
        call: |_, a| Ok(Value::Str(title(text(&a[0])))),
    },
    Function {
        name: "toUpper",
        params: &[Str],
        variadic: None,
        call: |_, a| Ok(Value::Str(to_upper(text(&a[0])))),
    },
    Function {
        name: "toLower",
        params: &[Str],
        variadic: None,
        call: |_, a| Ok(Value::Str(to_lower(text(&a[0])))),
    },
    Function {
        name: "graphLink",
        params: &[Str],
        variadic: None,
        call: |_, a| Ok(Value::Str(graph_link(text(&a[0]), 0))),
    },
    Function {
        name: "tableLink",
        params: &[Str],
        variadic: None,
        call: |_, a| Ok(Value::Str(graph_link(text(&a[0]), 1))),
    },
    Function {
        name: "sortByLabel",
        params: &[Str, Samples],
        variadic: None,
        call: sort_by_label,
    },
    Function {
        name: "stripPort",
        params: &[Str],
        variadic: None,
        call: |_, a| Ok(Value::Str(strip_port(text(&a[0])))),
    },
    Function {
        name: "stripDomain",
        params: &[Str],
        variadic: None,
        call: |_, a| Ok(Value::Str(strip_domain(text(&a[0])))),
    },
    Function {
        name: "humanize",
        params: &[Any],
        variadic: None,
        call: humanize,
    },
    Function {
        name: "humanize1024",
        params: &[Any],
        variadic: None,
        call: humanize_1024,
    },
    Function {
        name: "humanizeDuration",
        params: &[Any],
        variadic: None,
        call: humanize_duration,
    },
    Function {
        name: "humanizePercentage",
        params: &[Any],
        variadic: None,
        call: |_, a| Ok(g4(to_float(&a[0])? * 100.0, "%")),
    },
    Function {
        name: "humanizeTimestamp",
        params: &[Any],
        variadic: None,
        call: humanize_timestamp,
    },
    Function {
        name: "toTime",
        params: &[Any],
        variadic: None,
        call: to_time,
    },
    Function {
        name: "pathPrefix",
        params: &[],
        variadic: None,
        call: |env, _| Ok(Value::Str(url_path(env.external_url))),
    },
    Function {
        name: "externalURL",
        params: &[],
        variadic: None,
        call: |env, _| Ok(Value::Str(env.external_url.to_string())),
    },
    Function {
        name: "parseDuration",
        params: &[Str],
        variadic: None,
        call: parse_duration,
    },
];

/// A string argument (the executor has checked the type).
pub(super) fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

const NIL_DEREFERENCE: &str = "runtime error: invalid memory address or nil pointer dereference";

fn sample(value: &Value) -> Result<&Sample, String> {
    match value {
        Value::Sample(Some(s)) => Ok(s),
        _ => Err(NIL_DEREFERENCE.into()),
    }
}

fn sample_label(value: &Value, name: &str) -> Call {
    Ok(Value::Str(
        sample(value)?.labels.get(name).cloned().unwrap_or_default(),
    ))
}

fn query(env: &Env, args: Vec<Value>) -> Call {
    let samples = (env.query)(text(&args[0]), env.timestamp_ms)?;
    Ok(Value::Samples(Rc::new(
        samples
            .into_iter()
            .map(|s| {
                let labels: StrMap = s
                    .labels
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect();
                Rc::new(Sample {
                    labels: Rc::new(labels),
                    value: s.value,
                })
            })
            .collect(),
    )))
}

fn first(_: &Env, args: Vec<Value>) -> Call {
    match &args[0] {
        Value::Samples(samples) if !samples.is_empty() => {
            Ok(Value::Sample(Some(samples[0].clone())))
        }
        _ => Err("first() called on vector with no elements".into()),
    }
}

fn label(_: &Env, args: Vec<Value>) -> Call {
    sample_label(&args[1], text(&args[0]))
}

fn args(_: &Env, args: Vec<Value>) -> Call {
    let numbered = args
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("arg{i}"), v));
    Ok(Value::AnyMap(Rc::new(numbered.collect())))
}

fn sort_by_label(_: &Env, args: Vec<Value>) -> Call {
    let Value::Samples(samples) = &args[1] else {
        return Ok(args[1].clone());
    };
    let name = text(&args[0]);
    let mut sorted = samples.as_ref().clone();
    let key = |s: &Rc<Sample>| s.labels.get(name).cloned().unwrap_or_default();
    sorted.sort_by_key(key);
    Ok(Value::Samples(Rc::new(sorted)))
}

fn graph_link(expr: &str, tab: u8) -> String {
    format!("/graph?g0.expr={}&g0.tab={tab}", query_escape(expr))
}

/// The path of a URL (`url.URL.Path`), what `pathPrefix` gives.
fn url_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
    let raw = path.split(['?', '#']).next().unwrap_or("");
    // Go's `URL.Path` is decoded: %20 is a space there.
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| raw.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

// ---- strings ----

/// Go maps a rune to one rune; where Unicode's mapping is longer (ß → SS)
/// Go keeps the rune, except İ, whose lower case starts with the i it takes.
fn map_rune(c: char, lower: bool) -> char {
    let mut mapped: Vec<char> = if lower {
        c.to_lowercase().collect()
    } else {
        c.to_uppercase().collect()
    };
    match mapped.len() {
        1 => mapped.remove(0),
        _ if lower => mapped[0],
        _ => c,
    }
}

pub(super) fn to_upper(s: &str) -> String {
    s.chars().map(|c| map_rune(c, false)).collect()
}

pub(super) fn to_lower(s: &str) -> String {
    s.chars().map(|c| map_rune(c, true)).collect()
}

/// `unicode.ToTitle`: upper case, but the title-case form of the Latin digraphs.
pub(super) fn to_title(c: char) -> char {
    match c {
        'Ǆ'..='ǆ' => 'ǅ',
        'Ǉ'..='ǉ' => 'ǈ',
        'Ǌ'..='ǌ' => 'ǋ',
        'Ǳ'..='ǳ' => 'ǲ',
        _ => map_rune(c, false),
    }
}

/// `strings.Title`: the first letter of every word in title case, words
/// being separated by anything but letters, digits and `_`.
fn title(s: &str) -> String {
    let is_separator = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else if c.is_alphabetic() || c.is_numeric() {
            false
        } else {
            c.is_whitespace()
        }
    };
    let mut previous = ' ';
    s.chars()
        .map(|c| {
            let out = if is_separator(previous) {
                to_title(c)
            } else {
                c
            };
            previous = c;
            out
        })
        .collect()
}

/// `net.SplitHostPort`'s host and port, or `None` where it errs.
fn split_host_port(hostport: &str) -> Option<(&str, &str)> {
    let colon = hostport.rfind(':')?;
    let (host, inner_from, inner_to) = if hostport.starts_with('[') {
        let end = hostport.find(']')?;
        if end + 1 != colon {
            return None;
        }
        (&hostport[1..end], 1, end + 1)
    } else {
        let host = &hostport[..colon];
        if host.contains(':') {
            return None;
        }
        (host, 0, 0)
    };
    if hostport[inner_from..].contains('[') || hostport[inner_to..].contains(']') {
        return None;
    }
    Some((host, &hostport[colon + 1..]))
}

fn strip_port(hostport: &str) -> String {
    split_host_port(hostport)
        .map_or(hostport, |(host, _)| host)
        .to_string()
}

fn strip_domain(hostport: &str) -> String {
    let (host, port) = split_host_port(hostport).unwrap_or((hostport, ""));
    if host.parse::<std::net::IpAddr>().is_ok() {
        return hostport.to_string();
    }
    let short = host.split('.').next().unwrap_or_default();
    match port {
        "" => short.to_string(),
        _ if short.contains(':') => format!("[{short}]:{port}"),
        _ => format!("{short}:{port}"),
    }
}

// ---- regular expressions ----

pub(super) fn matches(_: &Env, args: Vec<Value>) -> Call {
    let re = regexp::compile(text(&args[0]))?;
    Ok(Value::Bool(re.is_match(text(&args[1]))))
}

pub(super) fn re_replace_all(_: &Env, args: Vec<Value>) -> Call {
    let pattern = text(&args[0]);
    // Go's MustCompile panics; the template reports the panic's text.
    let re = regexp::compile(pattern).map_err(|e| {
        let shown = if pattern.contains(['`', '\u{feff}'])
            || pattern.chars().any(|c| c.is_control() && c != '\t')
        {
            quote(pattern)
        } else {
            format!("`{pattern}`")
        };
        format!("regexp: Compile({shown}): {e}")
    })?;
    let (replacement, subject) = (text(&args[1]), text(&args[2]));
    // Every position can match: refuse what could not fit an expansion.
    if replacement.len().saturating_mul(subject.len() + 1) > MAX_OUTPUT {
        return Err(format!("replacement could exceed {MAX_OUTPUT} bytes"));
    }
    Ok(Value::Str(
        re.replace_all(subject, replacement).into_owned(),
    ))
}

// ---- numbers ----

/// `strconv.ParseFloat(s, 64)` with Go's error text.
fn parse_float(s: &str) -> Result<f64, String> {
    fmt::parse_float(s).map_err(|why| format!("strconv.ParseFloat: parsing {}: {why}", quote(s)))
}

/// Prometheus's `convertToFloat`: numbers and numeric strings.
fn to_float(value: &Value) -> Result<f64, String> {
    match value {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Str(s) => parse_float(s),
        other => Err(format!("can't convert {} to float", other.type_name())),
    }
}

/// `fmt.Sprintf("%.4g<suffix>", v)`.
fn g4(v: f64, suffix: &str) -> Value {
    Value::Str(sprintf(
        &format!("%.4g{}", suffix.replace('%', "%%")),
        &[Value::Float(v)],
    ))
}

/// Scales `v` by `step` through the prefixes while it stays at or above
/// `step` (growing) or below 1 (shrinking); the last prefix used wins.
fn scale(mut v: f64, prefixes: &[&'static str], step: f64, grow: bool) -> (f64, &'static str) {
    let mut prefix = "";
    for p in prefixes {
        if (grow && v.abs() < step) || (!grow && v.abs() >= 1.0) {
            break;
        }
        prefix = p;
        if grow {
            v /= step;
        } else {
            v *= step;
        }
    }
    (v, prefix)
}

const BIG_PREFIXES: &[&str] = &["k", "M", "G", "T", "P", "E", "Z", "Y"];
const SMALL_PREFIXES: &[&str] = &["m", "u", "n", "p", "f", "a", "z", "y"];

fn humanize(_: &Env, args: Vec<Value>) -> Call {
    let v = to_float(&args[0])?;
    if v == 0.0 || !v.is_finite() {
        return Ok(g4(v, ""));
    }
    let (v, prefix) = if v.abs() >= 1.0 {
        scale(v, BIG_PREFIXES, 1000.0, true)
    } else {
        scale(v, SMALL_PREFIXES, 1000.0, false)
    };
    Ok(g4(v, prefix))
}

fn humanize_1024(_: &Env, args: Vec<Value>) -> Call {
    let v = to_float(&args[0])?;
    if v.abs() <= 1.0 || !v.is_finite() {
        return Ok(g4(v, ""));
    }
    let (v, prefix) = scale(
        v,
        &["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"],
        1024.0,
        true,
    );
    Ok(g4(v, prefix))
}

/// Go's `int64(f)` on amd64: out of range gives the minimum int64.
fn go_int64(f: f64) -> i64 {
    const TWO_TO_63: f64 = 9_223_372_036_854_775_808.0;
    if !(-TWO_TO_63..TWO_TO_63).contains(&f) {
        i64::MIN
    } else {
        f as i64
    }
}

fn humanize_duration(_: &Env, args: Vec<Value>) -> Call {
    let mut v = to_float(&args[0])?;
    if !v.is_finite() {
        return Ok(g4(v, ""));
    }
    if v == 0.0 {
        return Ok(g4(v, "s"));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let duration = go_int64(v);
        let (seconds, minutes) = (duration % 60, duration / 60 % 60);
        let (hours, days) = (duration / 60 / 60 % 24, duration / 60 / 60 / 24);
        let text = if days != 0 {
            format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {minutes}m {seconds}s")
        } else if minutes != 0 {
            format!("{sign}{minutes}m {seconds}s")
        } else {
            // For seconds alone, four significant digits.
            return Ok(Value::Str(sprintf(
                "%s%.4gs",
                &[Value::Str(sign.into()), Value::Float(v)],
            )));
        };
        return Ok(Value::Str(text));
    }
    let (v, prefix) = scale(v, SMALL_PREFIXES, 1000.0, false);
    Ok(g4(v, &format!("{prefix}s")))
}

/// Prometheus's `floatToTime`: seconds to a time, at millisecond precision.
/// `Ok(None)` for NaN and infinities.
fn float_to_time(v: f64) -> Result<Option<Time>, String> {
    if !v.is_finite() {
        return Ok(None);
    }
    let nanos = v * 1e9;
    if nanos > i64::MAX as f64 || nanos < i64::MIN as f64 {
        return Err(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            format_float(v, 'g', None).trim_start_matches('+')
        ));
    }
    let millis = go_int64(nanos) / 1_000_000;
    Ok(Some(Time {
        unix_nanos: i128::from(millis) * 1_000_000,
    }))
}

fn humanize_timestamp(_: &Env, args: Vec<Value>) -> Call {
    let v = to_float(&args[0])?;
    match float_to_time(v)? {
        Some(t) => Ok(Value::Str(time_string(t))),
        None => Ok(g4(v, "")),
    }
}

fn to_time(_: &Env, args: Vec<Value>) -> Call {
    match float_to_time(to_float(&args[0])?)? {
        Some(t) => Ok(Value::Time(t)),
        None => Err("value is NaN or Inf".into()),
    }
}

/// Prometheus's `model.ParseDuration` in seconds: `1y2w3d4h5m6s7ms`, units
/// in that order, each at most once.
fn parse_duration(_: &Env, args: Vec<Value>) -> Call {
    let s = text(&args[0]);
    match s {
        "0" => return Ok(Value::Float(0.0)),
        "" => return Err("empty duration string".into()),
        _ => {}
    }
    const UNITS: &[(&str, i128)] = &[
        ("y", 1000 * 60 * 60 * 24 * 365),
        ("w", 1000 * 60 * 60 * 24 * 7),
        ("d", 1000 * 60 * 60 * 24),
        ("h", 1000 * 60 * 60),
        ("ms", 1),
        ("m", 1000 * 60),
        ("s", 1000),
    ];
    const ORDER: &[&str] = &["y", "w", "d", "h", "m", "s", "ms"];
    let invalid = || format!("not a valid duration string: {}", quote(s));
    let mut rest = s;
    let mut next_unit = 0;
    let mut nanos: i128 = 0;
    let mut out_of_range = false;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(invalid());
        }
        let number: i128 = rest[..digits]
            .parse::<i64>()
            .map_or(i64::MAX as i128, i128::from);
        rest = &rest[digits..];
        let (unit, millis) = UNITS
            .iter()
            .find(|(u, _)| rest.starts_with(u))
            .ok_or_else(invalid)?;
        let position = ORDER.iter().position(|u| u == unit).unwrap_or(0);
        if position < next_unit {
            return Err(invalid());
        }
        next_unit = position + 1;
        rest = &rest[unit.len()..];
        if number > i64::MAX as i128 / millis / 1_000_000 {
            out_of_range = true;
        }
        nanos += number * millis * 1_000_000;
        if nanos > i64::MAX as i128 {
            out_of_range = true;
        }
    }
    if out_of_range {
        return Err("duration out of range".into());
    }
    Ok(Value::Float(nanos as f64 / 1e9))
}
