//! Go's `fmt` and `strconv` as templates see them: `%v` of every template
//! value (what an action prints), `Sprint`, `Sprintln`, `Sprintf` with its
//! verbs, flags and `%!verb(type=value)` complaints, `strconv.Quote` and
//! `strconv.ParseFloat`.

use std::fmt::Write;
use std::rc::Rc;

use super::time::time_string;
use super::value::{AlertFields, Sample, Value};

/// `strconv.FormatFloat(v, fmt, prec, 64)` for `fmt` in `e E f F g G`;
/// `prec` `None` is Go's -1, the shortest digits that read back the same.
pub fn format_float(v: f64, verb: char, prec: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let sign = if v.is_sign_negative() { "-" } else { "" };
    let abs = v.abs();
    let body = match verb.to_ascii_lowercase() {
        'e' => {
            let digits = match prec {
                None => Digits::shortest(abs),
                Some(p) => Digits::significant(abs, p + 1),
            };
            let frac = prec.unwrap_or(digits.digits.len().saturating_sub(1));
            digits.exponential(frac, verb.is_ascii_uppercase())
        }
        'f' => match prec {
            None => {
                let digits = Digits::shortest(abs);
                let frac = (digits.digits.len() as i32 - digits.point).max(0) as usize;
                digits.fixed(frac)
            }
            Some(p) => format!("{abs:.p$}"),
        },
        _ => general(abs, prec, verb == 'G'),
    };
    format!("{sign}{body}")
}

/// Decimal digits of a non-negative finite float, without trailing zeros,
/// and where the decimal point goes: value = 0.d1d2d3… × 10^point.
struct Digits {
    digits: Vec<u8>,
    point: i32,
}

impl Digits {
    fn shortest(abs: f64) -> Digits {
        Digits::from_exponential(&format!("{abs:e}"))
    }

    /// Rounded (half to even, as Go's decimal rounding) to `n` significant digits.
    fn significant(abs: f64, n: usize) -> Digits {
        let n = n.max(1);
        Digits::from_exponential(&format!("{abs:.prec$e}", prec = n - 1))
    }

    fn from_exponential(text: &str) -> Digits {
        let (mantissa, exponent) = text.split_once('e').unwrap_or((text, "0"));
        let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
        while digits.last() == Some(&b'0') {
            digits.pop();
        }
        if digits.is_empty() {
            return Digits { digits, point: 0 };
        }
        let point = exponent.parse::<i32>().unwrap_or(0) + 1;
        Digits { digits, point }
    }

    fn digit(&self, i: i32) -> char {
        if i >= 0 && (i as usize) < self.digits.len() {
            self.digits[i as usize] as char
        } else {
            '0'
        }
    }

    /// Go's `fmtE`: d.ddd with `frac` digits after the point, and a signed
    /// exponent of at least two digits.
    fn exponential(&self, frac: usize, upper: bool) -> String {
        let mut out = String::new();
        out.push(self.digit(0));
        if frac > 0 {
            out.push('.');
            for i in 1..=frac as i32 {
                out.push(self.digit(i));
            }
        }
        let exp = if self.digits.is_empty() {
            0
        } else {
            self.point - 1
        };
        out.push(if upper { 'E' } else { 'e' });
        out.push(if exp < 0 { '-' } else { '+' });
        write!(out, "{:02}", exp.abs()).ok();
        out
    }

    /// Go's `fmtF`: the integer part, then `frac` digits after the point.
    fn fixed(&self, frac: usize) -> String {
        let mut out = String::new();
        if self.point > 0 {
            for i in 0..self.point {
                out.push(self.digit(i));
            }
        } else {
            out.push('0');
        }
        if frac > 0 {
            out.push('.');
            for i in 0..frac as i32 {
                out.push(self.digit(self.point + i));
            }
        }
        out
    }
}

/// Go's `%g`: exponential when the exponent is below -4 or reaches the
/// precision (6 for the shortest form), fixed otherwise.
fn general(abs: f64, prec: Option<usize>, upper: bool) -> String {
    let (digits, mut precision) = match prec {
        None => {
            let d = Digits::shortest(abs);
            let n = d.digits.len();
            (d, n)
        }
        Some(p) => (Digits::significant(abs, p.max(1)), p.max(1)),
    };
    let nd = digits.digits.len();
    let mut eprec = precision as i32;
    if eprec > nd as i32 && nd as i32 >= digits.point {
        eprec = nd as i32;
    }
    if prec.is_none() {
        eprec = 6;
    }
    let exp = digits.point - 1;
    if exp < -4 || exp >= eprec {
        precision = precision.min(nd);
        return digits.exponential(precision.saturating_sub(1), upper);
    }
    if precision as i32 > digits.point {
        precision = nd;
    }
    digits.fixed((precision as i32 - digits.point).max(0) as usize)
}

/// `strconv.Quote`: a double-quoted Go string literal.
pub fn quote(s: &str) -> String {
    quote_with(s, '"', false)
}

/// `strconv.Quote`, or with `ascii_only` `strconv.QuoteToASCII`.
fn quote_with(s: &str, delimiter: char, ascii_only: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(delimiter);
    for c in s.chars() {
        match c {
            _ if c == delimiter || c == '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            _ if (c.is_ascii() || !ascii_only) && is_print(c) => out.push(c),
            _ if (c as u32) < 0x20 || c == '\x7f' => {
                write!(out, "\\x{:02x}", c as u32).ok();
            }
            _ if (c as u32) < 0x10000 => {
                write!(out, "\\u{:04x}", c as u32).ok();
            }
            _ => {
                write!(out, "\\U{:08x}", c as u32).ok();
            }
        }
    }
    out.push(delimiter);
    out
}

/// `strconv.CanBackquote`: a raw string literal can hold `s`.
fn can_backquote(s: &str) -> bool {
    !s.chars()
        .any(|c| c == '`' || c == '\u{feff}' || (c.is_control() && c != '\t'))
}

/// Go's `unicode.IsPrint`, near enough: graphic characters and the ASCII
/// space, not controls, other spaces or invisible format characters.
pub fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
        || ('\u{e000}'..='\u{f8ff}').contains(&c))
}

/// `fmt.Sprint`: operands printed with `%v`, a space between two operands
/// when neither is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 && arg.as_str().is_none() && args[i - 1].as_str().is_none() {
            out.push(' ');
        }
        Printer::plain().arg(&mut out, arg, 'v');
    }
    out
}

/// `fmt.Sprintln`: operands with `%v`, always a space between, a newline after.
pub fn sprintln(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        Printer::plain().arg(&mut out, arg, 'v');
    }
    out.push('\n');
    out
}

/// What a template action prints for a value (`fmt.Fprint` after
/// text/template's indirection): a pointer prints as what it points to.
pub fn print_value(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Nil | Value::NilInterface => out.push_str("<no value>"),
        Value::Sample(Some(sample)) => Printer::plain().sample_fields(&mut out, sample, 'v'),
        Value::Sample(None) => out.push_str("<nil>"),
        _ => Printer::plain().arg(&mut out, value, 'v'),
    }
    out
}

/// `fmt.Sprintf`.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut next_arg = 0;
    let mut chars = format.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut printer = Printer::plain();
        while let Some(&(_, flag)) = chars.peek() {
            match flag {
                '+' => printer.plus = true,
                '-' => printer.minus = true,
                '#' => printer.sharp = true,
                ' ' => printer.space = true,
                '0' => printer.zero = true,
                _ => break,
            }
            chars.next();
        }
        if matches!(chars.peek(), Some((_, '*'))) {
            chars.next();
            match star_argument(args, &mut next_arg) {
                // A negative width pads on the right.
                Some(width) if width < 0 => {
                    printer.minus = true;
                    printer.zero = false;
                    printer.width = Some(width.unsigned_abs() as usize);
                }
                Some(width) => printer.width = Some(width as usize),
                None => out.push_str("%!(BADWIDTH)"),
            }
        } else {
            printer.width = read_number(&mut chars);
        }
        if matches!(chars.peek(), Some((_, '.'))) {
            chars.next();
            if matches!(chars.peek(), Some((_, '*'))) {
                chars.next();
                match star_argument(args, &mut next_arg) {
                    Some(precision) if precision >= 0 => {
                        printer.precision = Some(precision as usize)
                    }
                    _ => out.push_str("%!(BADPREC)"),
                }
            } else {
                printer.precision = Some(read_number(&mut chars).unwrap_or(0));
            }
        }
        let Some((_, verb)) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next_arg) else {
            write!(out, "%!{verb}(MISSING)").ok();
            continue;
        };
        next_arg += 1;
        match verb {
            // Go pads a nil's "<nil>" but never cuts it to the precision.
            'T' if matches!(arg, Value::Nil) => printer.pad(&mut out, "<nil>"),
            'T' => {
                let name = arg.type_name();
                printer.string(&mut out, &Value::Str(name.into()), name, 's');
            }
            'v' => {
                // `%+v` names struct fields rather than signing numbers;
                // `%#v` asks for Go syntax.
                printer.field_names = printer.plus;
                printer.go_syntax = printer.sharp;
                printer.plus = false;
                printer.sharp = false;
                printer.arg(&mut out, arg, verb);
            }
            _ => printer.arg(&mut out, arg, verb),
        }
    }
    if next_arg < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, arg) in args[next_arg..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            match arg {
                Value::Nil | Value::NilInterface => out.push_str("<nil>"),
                _ => {
                    write!(out, "{}=", arg.type_name()).ok();
                    Printer::plain().arg(&mut out, arg, 'v');
                }
            }
        }
        out.push(')');
    }
    out
}

/// A width or precision given as digits (Go ignores one above a million).
fn read_number(chars: &mut std::iter::Peekable<std::str::CharIndices>) -> Option<usize> {
    let mut number: Option<usize> = None;
    while let Some(&(_, d)) = chars.peek() {
        let Some(digit) = d.to_digit(10) else { break };
        number = Some((number.unwrap_or(0) * 10 + digit as usize).min(1_000_000));
        chars.next();
    }
    number
}

/// The int argument a `*` width or precision takes: `None` where Go
/// reports it bad (missing, not an integer, beyond a million).
fn star_argument(args: &[Value], next_arg: &mut usize) -> Option<i64> {
    let arg = args.get(*next_arg)?;
    *next_arg += 1;
    let n = match arg {
        Value::Int(n) => *n,
        Value::Byte(b) => i64::from(*b),
        _ => return None,
    };
    (-1_000_000..=1_000_000).contains(&n).then_some(n)
}

/// One verb's flags, width and precision (Go's `fmt.fmt` state).
#[derive(Clone, Copy, Default)]
struct Printer {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    /// `%+v`: structs print their field names.
    field_names: bool,
    /// `%#v`: Go syntax, which sonde gives for strings only (quoted).
    go_syntax: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

impl Printer {
    fn plain() -> Printer {
        Printer::default()
    }

    /// Pads to the width: spaces, or zeros when asked for (strings too, as in Go 1.19).
    fn pad(&self, out: &mut String, text: &str) {
        let len = text.chars().count();
        let fill = self.width.unwrap_or(0).saturating_sub(len);
        if self.minus {
            out.push_str(text);
            out.extend(std::iter::repeat_n(' ', fill));
        } else {
            let pad = if self.zero { '0' } else { ' ' };
            out.extend(std::iter::repeat_n(pad, fill));
            out.push_str(text);
        }
    }

    /// `%!verb(type=value)`, the value printed with `%v` under the same
    /// flags, width and precision, as Go does.
    fn bad_verb(&self, out: &mut String, value: &Value, verb: char) {
        match value {
            Value::Nil | Value::NilInterface => {
                write!(out, "%!{verb}(<nil>)").ok();
            }
            _ => {
                write!(out, "%!{verb}({}=", value.type_name()).ok();
                self.arg(out, value, 'v');
                out.push(')');
            }
        }
    }

    fn arg(&self, out: &mut String, value: &Value, verb: char) {
        match value {
            Value::Nil | Value::NilInterface => match verb {
                'v' => self.pad(out, "<nil>"),
                _ => self.bad_verb(out, value, verb),
            },
            Value::Bool(b) => match verb {
                'v' | 't' => self.pad(out, if *b { "true" } else { "false" }),
                _ => self.bad_verb(out, value, verb),
            },
            Value::Int(i) => self.integer(out, value, *i as i128, verb),
            Value::Byte(b) => self.integer(out, value, *b as i128, verb),
            Value::Float(f) => self.float(out, value, *f, verb),
            Value::Str(s) | Value::Html(s) => self.string(out, value, s, verb),
            Value::Time(t) => match verb {
                'v' | 's' | 'q' | 'x' | 'X' => {
                    self.string(out, value, &time_string(*t), verb);
                }
                _ => self.bad_verb(out, value, verb),
            },
            Value::StrMap(map) if self.go_syntax => {
                out.push_str("map[string]string{");
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    self.string(out, &Value::Str(k.clone()), k, verb);
                    out.push(':');
                    self.string(out, &Value::Str(v.clone()), v, verb);
                }
                out.push('}');
            }
            Value::StrMap(map) => {
                out.push_str("map[");
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    self.string(out, &Value::Str(k.clone()), k, verb);
                    out.push(':');
                    self.string(out, &Value::Str(v.clone()), v, verb);
                }
                out.push(']');
            }
            Value::AnyMap(map) if self.go_syntax => {
                out.push_str("map[string]interface {}{");
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    self.string(out, &Value::Str(k.clone()), k, verb);
                    out.push(':');
                    match v {
                        Value::Nil => out.push_str("interface {}(nil)"),
                        _ => self.nested(out, v, verb),
                    }
                }
                out.push('}');
            }
            Value::AnyMap(map) => {
                out.push_str("map[");
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    self.string(out, &Value::Str(k.clone()), k, verb);
                    out.push(':');
                    self.nested(out, v, verb);
                }
                out.push(']');
            }
            Value::Samples(samples) => {
                out.push('[');
                for (i, sample) in samples.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    self.nested(out, &Value::Sample(Some(sample.clone())), verb);
                }
                out.push(']');
            }
            Value::Sample(None) => self.pad(out, "<nil>"),
            Value::Sample(Some(sample)) => {
                out.push('&');
                self.sample_fields(out, sample, verb);
            }
            Value::Alert(alert) => self.alert_fields(out, alert, verb),
            Value::Kv(map) => self.arg(out, &Value::StrMap(map.clone()), verb),
            Value::Strings(items) => {
                self.list(out, items.iter().map(|s| Value::Str(s.clone())), verb)
            }
            Value::Pairs(pairs) => self.list(
                out,
                pairs.iter().map(|p| Value::Pair(Rc::new(p.clone()))),
                verb,
            ),
            Value::Pair(pair) => self.fields(
                out,
                &[
                    ("Name", Value::Str(pair.0.clone())),
                    ("Value", Value::Str(pair.1.clone())),
                ],
                verb,
            ),
            Value::Alerts { list, .. } => self.list(
                out,
                list.iter().map(|a| Value::NotifiedAlert(a.clone())),
                verb,
            ),
            Value::NotifiedAlert(alert) => self.fields(
                out,
                &[
                    ("Status", Value::Str(alert.status.clone())),
                    ("Labels", Value::Kv(alert.labels.clone())),
                    ("Annotations", Value::Kv(alert.annotations.clone())),
                    ("StartsAt", Value::Time(alert.starts_at)),
                    ("EndsAt", Value::Time(alert.ends_at)),
                    ("GeneratorURL", Value::Str(alert.generator_url.clone())),
                    ("Fingerprint", Value::Str(alert.fingerprint.clone())),
                ],
                verb,
            ),
            Value::Notification(data) => {
                out.push('&');
                self.fields(
                    out,
                    &[
                        ("Receiver", Value::Str(data.receiver.clone())),
                        ("Status", Value::Str(data.status.clone())),
                        (
                            "Alerts",
                            Value::Alerts {
                                list: data.alerts.clone(),
                                named: true,
                            },
                        ),
                        ("GroupLabels", Value::Kv(data.group_labels.clone())),
                        ("CommonLabels", Value::Kv(data.common_labels.clone())),
                        (
                            "CommonAnnotations",
                            Value::Kv(data.common_annotations.clone()),
                        ),
                        ("ExternalURL", Value::Str(data.external_url.clone())),
                    ],
                    verb,
                );
            }
        }
    }

    /// A slice: its elements between brackets, space-separated.
    fn list(&self, out: &mut String, items: impl Iterator<Item = Value>, verb: char) {
        out.push('[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                out.push(' ');
            }
            self.nested(out, &item, verb);
        }
        out.push(']');
    }

    /// A struct: its fields between braces, space-separated.
    fn fields(&self, out: &mut String, fields: &[(&str, Value)], verb: char) {
        out.push('{');
        for (i, (name, value)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            self.field_name(out, name);
            self.nested(out, value, verb);
        }
        out.push('}');
    }

    /// A value inside a map or slice: pointers print as addresses there.
    fn nested(&self, out: &mut String, value: &Value, verb: char) {
        match value {
            Value::Sample(Some(sample)) => {
                // Go prints the address; any stable stand-in will do.
                write!(
                    out,
                    "0xc{:09x}",
                    (std::rc::Rc::as_ptr(sample) as usize) & 0xf_ffff_fff0
                )
                .ok();
            }
            _ => self.arg(out, value, verb),
        }
    }

    /// Under `%+v`, a struct field's name before its value.
    fn field_name(&self, out: &mut String, name: &str) {
        if self.field_names {
            out.push_str(name);
            out.push(':');
        }
    }

    fn sample_fields(&self, out: &mut String, sample: &Sample, verb: char) {
        out.push('{');
        self.field_name(out, "Labels");
        self.arg(out, &Value::StrMap(sample.labels.clone()), verb);
        out.push(' ');
        self.field_name(out, "Value");
        self.arg(out, &Value::Float(sample.value), verb);
        out.push('}');
    }

    fn alert_fields(&self, out: &mut String, alert: &AlertFields, verb: char) {
        out.push('{');
        self.field_name(out, "Labels");
        self.arg(out, &Value::StrMap(alert.labels.clone()), verb);
        out.push(' ');
        self.field_name(out, "ExternalLabels");
        self.arg(out, &Value::StrMap(alert.external_labels.clone()), verb);
        out.push(' ');
        self.field_name(out, "ExternalURL");
        let url = &alert.external_url;
        self.string(out, &Value::Str(url.clone()), url, verb);
        out.push(' ');
        self.field_name(out, "Value");
        self.arg(out, &Value::Float(alert.value), verb);
        out.push('}');
    }

    fn string(&self, out: &mut String, value: &Value, s: &str, verb: char) {
        let truncated: String;
        let s = match self.precision {
            Some(p) if matches!(verb, 'v' | 's' | 'q') => {
                truncated = s.chars().take(p).collect();
                &truncated
            }
            _ => s,
        };
        match verb {
            'v' if self.go_syntax => self.pad(out, &quote(s)),
            'v' | 's' => self.pad(out, s),
            'q' if self.sharp && can_backquote(s) => self.pad(out, &format!("`{s}`")),
            'q' => self.pad(out, &quote_with(s, '"', self.plus)),
            'x' | 'X' => {
                let bytes = match self.precision {
                    Some(p) => &s.as_bytes()[..p.min(s.len())],
                    None => s.as_bytes(),
                };
                let prefix = if verb == 'x' { "0x" } else { "0X" };
                let mut hex = String::new();
                for (i, b) in bytes.iter().enumerate() {
                    if i > 0 && self.space {
                        hex.push(' ');
                    }
                    // `%#x` prefixes the string, `% #x` every byte.
                    if self.sharp && (i == 0 || self.space) {
                        hex.push_str(prefix);
                    }
                    if verb == 'x' {
                        write!(hex, "{b:02x}").ok();
                    } else {
                        write!(hex, "{b:02X}").ok();
                    }
                }
                self.pad(out, &hex);
            }
            _ => self.bad_verb(out, value, verb),
        }
    }

    fn integer(&self, out: &mut String, value: &Value, n: i128, verb: char) {
        let magnitude = n.unsigned_abs();
        let unpadded = Printer {
            zero: false,
            ..*self
        };
        let mut digits = match verb {
            // Go syntax for a byte is hexadecimal.
            'v' if self.go_syntax && matches!(value, Value::Byte(_)) => {
                let digits = self.precision.unwrap_or(0);
                return self.pad(out, &format!("0x{magnitude:0digits$x}"));
            }
            'v' | 'd' => magnitude.to_string(),
            'x' => format!("{magnitude:x}"),
            'X' => format!("{magnitude:X}"),
            'o' | 'O' => format!("{magnitude:o}"),
            'b' => format!("{magnitude:b}"),
            'c' => {
                let c = char::from_u32(n as u32).unwrap_or('\u{fffd}');
                return self.pad(out, &c.to_string());
            }
            'q' => {
                let c = char::from_u32(n as u32).unwrap_or('\u{fffd}');
                return self.pad(out, &quote_with(&c.to_string(), '\'', self.plus));
            }
            // Go shows a negative code point as its two's complement, and
            // with `#` the character too.
            'U' => {
                let width = self.precision.unwrap_or(0).max(4);
                let mut text = format!("U+{:0width$X}", n as i64 as u64);
                if let Some(c) = char::from_u32(n as u32).filter(|c| self.sharp && is_print(*c)) {
                    text.push_str(&format!(" '{c}'"));
                }
                return unpadded.pad(out, &text);
            }
            _ => return self.bad_verb(out, value, verb),
        };
        let sign = if n < 0 {
            "-"
        } else if self.plus {
            "+"
        } else if self.space {
            " "
        } else {
            ""
        };
        let mut min_digits = self.precision;
        if min_digits == Some(0) && n == 0 {
            // Nothing but the padding: no sign, no prefix, no zeros.
            return unpadded.pad(out, "");
        }
        if min_digits.is_none() && self.zero && !self.minus {
            if let Some(width) = self.width {
                min_digits = Some(width.saturating_sub(sign.len()));
            }
        }
        if let Some(min) = min_digits {
            if digits.len() < min {
                digits = "0".repeat(min - digits.len()) + &digits;
            }
        }
        let prefix = match verb {
            'x' if self.sharp => "0x",
            'X' if self.sharp => "0X",
            'o' if self.sharp && !digits.starts_with('0') => "0",
            'O' if self.sharp && !digits.starts_with('0') => "0o0",
            'O' => "0o",
            'b' if self.sharp => "0b",
            _ => "",
        };
        Printer {
            zero: false,
            ..*self
        }
        .pad(out, &format!("{sign}{prefix}{digits}"));
    }

    fn float(&self, out: &mut String, value: &Value, f: f64, verb: char) {
        let text = match verb {
            'v' => format_float(f, 'g', self.precision),
            'e' | 'E' | 'f' | 'F' => format_float(f, verb, Some(self.precision.unwrap_or(6))),
            'g' | 'G' => format_float(f, verb, self.precision),
            'x' | 'X' => hex_float(f, verb == 'X', self.precision),
            'b' => binary_exponent(f),
            _ => return self.bad_verb(out, value, verb),
        };
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(&text)),
        };
        let with_point;
        let unsigned = if self.sharp && f.is_finite() && verb != 'b' {
            with_point = self.force_point(unsigned, verb);
            &with_point
        } else {
            unsigned
        };
        if f.is_nan() || f.is_infinite() {
            // Not numbers to Go: never zero-padded, and +Inf keeps its sign.
            let sign = if negative {
                "-"
            } else if f.is_infinite() || self.plus {
                "+"
            } else if self.space {
                " "
            } else {
                ""
            };
            return Printer {
                zero: false,
                ..*self
            }
            .pad(out, &format!("{sign}{unsigned}"));
        }
        let sign = if negative {
            "-"
        } else if self.plus {
            "+"
        } else if self.space {
            " "
        } else {
            ""
        };
        match self.width {
            Some(width) if self.zero && !self.minus && width > sign.len() + unsigned.len() => {
                out.push_str(sign);
                out.extend(std::iter::repeat_n(
                    '0',
                    width - sign.len() - unsigned.len(),
                ));
                out.push_str(unsigned);
            }
            _ => self.pad(out, &format!("{sign}{unsigned}")),
        }
    }
}

impl Printer {
    /// `%#` of a float: always a decimal point, and for `%g` (and `%v`
    /// complaining about a verb) trailing zeros up to the precision, 6 by default.
    fn force_point(&self, number: &str, verb: char) -> String {
        let mut digits: i64 = match verb {
            // Go lists lowercase `x` only: `%#X` adds no zeros.
            'v' | 'g' | 'G' | 'x' => self.precision.map_or(6, |p| p as i64),
            _ => 0,
        };
        let split = number
            .find(|c: char| {
                matches!(c, 'p' | 'P') || (matches!(c, 'e' | 'E') && !matches!(verb, 'x' | 'X'))
            })
            .unwrap_or(number.len());
        let (mantissa, tail) = number.split_at(split);
        let mut seen_nonzero = false;
        for c in mantissa.chars().filter(|c| *c != '.') {
            seen_nonzero |= c != '0';
            if seen_nonzero {
                digits -= 1;
            }
        }
        let mut out = mantissa.to_string();
        if !mantissa.contains('.') {
            if mantissa == "0" {
                digits -= 1;
            }
            out.push('.');
        }
        out.extend(std::iter::repeat_n('0', digits.max(0) as usize));
        out.push_str(tail);
        out
    }
}

/// `%b` of a float: strconv's decimal mantissa and binary exponent (`4503599627370496p-52`).
fn binary_exponent(f: f64) -> String {
    if !f.is_finite() {
        return format_float(f, 'g', None);
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    let bits = f.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let mut mantissa = bits & ((1 << 52) - 1);
    let exponent = if biased == 0 {
        -1074
    } else {
        mantissa |= 1 << 52;
        biased - 1075
    };
    let esign = if exponent < 0 { '-' } else { '+' };
    format!("{sign}{mantissa}p{esign}{}", exponent.abs())
}

/// `%x` of a float: Go's hexadecimal mantissa and binary exponent (`0x1.8p+00`).
fn hex_float(f: f64, upper: bool, precision: Option<usize>) -> String {
    if f.is_nan() || f.is_infinite() {
        return format_float(f, 'g', None);
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    let bits = f.abs().to_bits();
    let (mut mantissa, mut exp) = ((bits & ((1 << 52) - 1)), ((bits >> 52) & 0x7ff) as i64);
    if f == 0.0 {
        exp = 0;
    } else if exp == 0 {
        // Subnormal: normalise so the leading 1 is implicit again.
        let shift = mantissa.leading_zeros() as i64 - 11;
        mantissa = (mantissa << shift) & ((1 << 52) - 1);
        exp = 1 - 1023 - shift;
    } else {
        exp -= 1023;
    }
    let lead = if f == 0.0 { 0 } else { 1 };
    let mut frac = format!("{mantissa:013x}");
    match precision {
        Some(p) if p < 13 => {
            // Round half to even at the requested number of hex digits.
            let full = ((lead as u64) << 52) | mantissa;
            let drop = (13 - p) * 4;
            let mut kept = full >> drop;
            let rest = full & ((1u64 << drop) - 1);
            let half = 1u64 << (drop - 1);
            if rest > half || (rest == half && kept & 1 == 1) {
                kept += 1;
            }
            let (lead2, kept) = if kept >> (p * 4) >= 2 {
                exp += 1;
                (1, kept >> 1)
            } else {
                (kept >> (p * 4), kept)
            };
            let mask = if p == 0 { 0 } else { (1u64 << (p * 4)) - 1 };
            frac = if p == 0 {
                String::new()
            } else {
                format!("{:0width$x}", kept & mask, width = p)
            };
            return finish_hex_float(sign, lead2 as u8, &frac, exp, upper);
        }
        Some(p) => frac.extend(std::iter::repeat_n('0', p - 13)),
        None => {
            while frac.ends_with('0') {
                frac.pop();
            }
        }
    }
    finish_hex_float(sign, lead, &frac, exp, upper)
}

fn finish_hex_float(sign: &str, lead: u8, frac: &str, exp: i64, upper: bool) -> String {
    let point = if frac.is_empty() { "" } else { "." };
    let esign = if exp < 0 { '-' } else { '+' };
    let text = format!("{sign}0x{lead}{point}{frac}p{esign}{:02}", exp.abs());
    if upper {
        text.to_uppercase()
    } else {
        text
    }
}

/// Go's `underscoreOK`: underscores only between digits (a base prefix
/// counts as a digit).
pub fn underscores_ok(digits: &str) -> bool {
    let bytes = digits.as_bytes();
    bytes.iter().enumerate().all(|(i, b)| {
        *b != b'_'
            || (i > 0
                && bytes[i - 1].is_ascii_alphanumeric()
                && bytes.get(i + 1).is_some_and(u8::is_ascii_alphanumeric))
    })
}

/// `strconv.ParseFloat(s, 64)`: the value, or why not (`invalid syntax`,
/// `value out of range`).
pub fn parse_float(s: &str) -> Result<f64, &'static str> {
    const SYNTAX: &str = "invalid syntax";
    let (negative, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let magnitude = match lower.as_str() {
        "inf" | "infinity" => f64::INFINITY,
        // Go takes no sign before NaN.
        "nan" if body.len() == s.len() => f64::NAN,
        _ if !underscores_ok(body) || body.starts_with(['+', '-']) => return Err(SYNTAX),
        _ => {
            let digits = lower.replace('_', "");
            let value = match digits.strip_prefix("0x") {
                Some(hex) => parse_hex_float(hex).ok_or(SYNTAX)?,
                None if digits
                    .bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-')) =>
                {
                    digits.parse::<f64>().map_err(|_| SYNTAX)?
                }
                None => return Err(SYNTAX),
            };
            if value.is_infinite() {
                return Err("value out of range");
            }
            value
        }
    };
    Ok(if negative { -magnitude } else { magnitude })
}

/// The part of a hexadecimal float after `0x`: hex digits with an optional
/// point, then the `p` exponent Go requires (`1.8p3` is 12).
fn parse_hex_float(text: &str) -> Option<f64> {
    let (mantissa, exponent) = text.split_once('p')?;
    let exponent: i32 = exponent.parse().ok()?;
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let mut value = 0f64;
    for c in whole.chars().chain(fraction.chars()) {
        value = value * 16.0 + f64::from(c.to_digit(16)?);
    }
    let scale = exponent.checked_sub(4 * fraction.len() as i32)?;
    Some(value * 2f64.powi(scale))
}
