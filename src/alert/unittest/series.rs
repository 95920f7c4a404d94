//! The notations of a rule unit-test file, read as Prometheus 2.42's test
//! language reads them: a series or a sample's labels as a metric
//! (`name{a="1"}`, `{__name__="name"}`, `{}`), and an input series'
//! values in the expanding notation.
//!
//! Values are separated by spaces; each item is one of
//! - `N`: one value (`1`, `-2.5`, `1e3`, `Inf`, `NaN`, `stale` for a stale
//!   marker);
//! - `_`: no sample at that step; `_xK`: K steps without samples;
//! - `NxK`: N repeated, K+1 values in all;
//! - `N+DxK` / `N-DxK`: N, N±D, … N±K·D, K+1 values in all.

use crate::model::{Labels, METRIC_NAME};
use crate::query::STALE_NAN_BITS;

/// A label set in Prometheus's metric notation, with empty values kept (as
/// Go keeps them, so `a=""` is a label an expected sample can hold).
pub type MetricLabels = Vec<(String, String)>;

/// Reads `name{label="value", …}`, `{…}`, `name` or nothing (no labels).
pub fn parse_metric(text: &str) -> Result<MetricLabels, String> {
    let mut reader = Reader {
        text: text.trim(),
        at: 0,
    };
    let mut labels = Vec::new();
    let name = reader.take_while(|c, first| {
        c == '_' || c == ':' || c.is_ascii_alphabetic() || (!first && c.is_ascii_digit())
    });
    if !name.is_empty() {
        labels.push((METRIC_NAME.to_string(), name.to_string()));
    }
    reader.skip_spaces();
    if reader.eat('{') {
        loop {
            reader.skip_spaces();
            if reader.eat('}') {
                break;
            }
            let label = reader.take_while(|c, first| {
                c == '_' || c.is_ascii_alphabetic() || (!first && c.is_ascii_digit())
            });
            if label.is_empty() {
                return Err(reader.unexpected("a label name"));
            }
            reader.skip_spaces();
            if !reader.eat('=') {
                return Err(reader.unexpected("\"=\" after a label name"));
            }
            reader.skip_spaces();
            let value = reader.string()?;
            labels.retain(|(n, _)| n != label);
            labels.push((label.to_string(), value));
            reader.skip_spaces();
            if reader.eat(',') {
                continue;
            }
            if !reader.eat('}') {
                return Err(reader.unexpected("\",\" or \"}\""));
            }
            break;
        }
    } else if name.is_empty() && !reader.rest().is_empty() {
        return Err(reader.unexpected("a metric name or \"{\""));
    }
    reader.skip_spaces();
    if !reader.rest().is_empty() {
        return Err(reader.unexpected("the end of the metric"));
    }
    labels.sort();
    Ok(labels)
}

/// An input series' labels: a metric with a name or at least one label.
pub fn parse_series(text: &str) -> Result<Labels, String> {
    let labels = parse_metric(text)?;
    if labels.is_empty() {
        return Err(format!("no metric name or labels in {text:?}"));
    }
    Ok(Labels::new(labels))
}

/// One step of an input series: a value, or none (`_`).
pub type Step = Option<f64>;

/// Most steps one input series may expand to: far beyond any test, short
/// of exhausting memory.
const MAX_STEPS: u64 = 10_000_000;

/// Expands the values notation into one entry per step.
pub fn parse_values(text: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for item in text.split_ascii_whitespace() {
        expand_item(item, &mut steps).map_err(|err| format!("{err} in {item:?}"))?;
    }
    Ok(steps)
}

fn expand_item(item: &str, steps: &mut Vec<Step>) -> Result<(), String> {
    if let Some(rest) = item.strip_prefix('_') {
        let times = match rest.strip_prefix('x') {
            None if rest.is_empty() => 1,
            Some(count) => repetitions(count)?,
            None => return Err("unexpected text after \"_\"".to_string()),
        };
        room_for(steps, times)?;
        steps.extend(std::iter::repeat_n(None, times as usize));
        return Ok(());
    }
    // The start value runs to the sign of the increment or to the `x`;
    // a sign right after an exponent's `e` belongs to the number.
    let bytes = item.as_bytes();
    let numeric = item
        .trim_start_matches(['+', '-'])
        .starts_with(|c: char| c.is_ascii_digit() || c == '.');
    let start_len = (1..bytes.len())
        .find(|&i| {
            let exponent_sign = numeric && matches!(bytes[i - 1], b'e' | b'E');
            // After a word (`Inf`, `stale`) an `x` is part of the word.
            matches!(bytes[i], b'+' | b'-') && !exponent_sign || bytes[i] == b'x' && numeric
        })
        .unwrap_or(bytes.len());
    let start = value(&item[..start_len])?;
    let rest = &item[start_len..];
    if rest.is_empty() {
        steps.push(Some(start));
        return Ok(());
    }
    let (increment, count) = match rest.split_once('x') {
        Some(("", count)) => (0.0, count),
        Some((delta, count)) => (number(delta)?, count),
        None => return Err("an increment needs a repetition count (\"x\")".to_string()),
    };
    let times = repetitions(count)?;
    room_for(steps, times.saturating_add(1))?;
    let mut current = start;
    for _ in 0..=times {
        steps.push(Some(current));
        current += increment;
    }
    Ok(())
}

/// A value: a number or `stale`.
fn value(text: &str) -> Result<f64, String> {
    if text == "stale" {
        return Ok(f64::from_bits(STALE_NAN_BITS));
    }
    number(text)
}

/// A number as PromQL writes one: optional sign, decimal (a leading `0`
/// means octal for integers, as Go reads them) or scientific, `Inf`, `NaN`.
fn number(text: &str) -> Result<f64, String> {
    let (negative, magnitude) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let value = match magnitude.to_ascii_lowercase().as_str() {
        "inf" => f64::INFINITY,
        "nan" => f64::NAN,
        lower => {
            let valid = lower.starts_with(|c: char| c.is_ascii_digit() || c == '.')
                && lower
                    .bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'));
            let octal = lower.len() > 1
                && lower.starts_with('0')
                && lower.bytes().all(|b| (b'0'..=b'7').contains(&b));
            match (valid, octal) {
                (true, true) => i64::from_str_radix(&lower[1..], 8).map(|n| n as f64).ok(),
                (true, false) => lower.parse::<f64>().ok(),
                (false, _) => None,
            }
            .ok_or_else(|| format!("{text:?} is not a number or \"stale\""))?
        }
    };
    Ok(if negative { -value } else { value })
}

/// The `K` of `xK`: a whole number.
fn repetitions(text: &str) -> Result<u64, String> {
    text.parse::<u64>()
        .map_err(|_| format!("invalid repetition count {text:?}"))
}

/// Refuses to expand past [`MAX_STEPS`] values in all.
fn room_for(steps: &[Step], more: u64) -> Result<(), String> {
    if steps.len() as u64 + more > MAX_STEPS {
        return Err(format!("more than {MAX_STEPS} values"));
    }
    Ok(())
}

/// A cursor over a metric's text.
struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }

    fn skip_spaces(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, c: char) -> bool {
        let found = self.rest().starts_with(c);
        if found {
            self.at += c.len_utf8();
        }
        found
    }

    /// The longest prefix whose characters pass `accept(char, is_first)`.
    fn take_while(&mut self, accept: impl Fn(char, bool) -> bool) -> &'a str {
        let rest = self.rest();
        let len = rest
            .char_indices()
            .find(|&(i, c)| !accept(c, i == 0))
            .map_or(rest.len(), |(i, _)| i);
        self.at += len;
        &rest[..len]
    }

    fn unexpected(&self, wanted: &str) -> String {
        match self.rest().chars().next() {
            Some(c) => format!(
                "unexpected {c:?} at character {} of {:?}, expected {wanted}",
                self.at + 1,
                self.text
            ),
            None => format!("unexpected end of {:?}, expected {wanted}", self.text),
        }
    }

    /// A quoted label value: `"…"` or `'…'` with Go's escapes, or `` `…` ``
    /// taken as written.
    fn string(&mut self) -> Result<String, String> {
        let quote = match self.rest().chars().next() {
            Some(q @ ('"' | '\'' | '`')) => q,
            _ => return Err(self.unexpected("a quoted label value")),
        };
        self.at += 1;
        let mut value = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                self.at += i + 1;
                return Ok(value);
            }
            if c != '\\' || quote == '`' {
                value.push(c);
                continue;
            }
            let escaped = match chars.next().map(|(_, e)| e) {
                Some('n') => '\n',
                Some('t') => '\t',
                Some('r') => '\r',
                Some('a') => '\x07',
                Some('b') => '\x08',
                Some('f') => '\x0c',
                Some('v') => '\x0b',
                Some(e @ ('\\' | '"' | '\'')) => e,
                Some(kind @ ('x' | 'u' | 'U')) => {
                    let digits = match kind {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex: String = chars.by_ref().take(digits).map(|(_, h)| h).collect();
                    u32::from_str_radix(&hex, 16)
                        .ok()
                        .filter(|_| hex.len() == digits)
                        .and_then(char::from_u32)
                        .ok_or_else(|| format!("invalid escape \\{kind}{hex} in {:?}", self.text))?
                }
                _ => return Err(format!("unknown escape sequence in {:?}", self.text)),
            };
            value.push(escaped);
        }
        Err(format!("unterminated quoted string in {:?}", self.text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<Option<f64>> {
        parse_values(text).unwrap()
    }

    #[test]
    fn values_expand() {
        assert_eq!(
            values("1+2x3 _ 5 _x2 -1-1x1"),
            [
                Some(1.0),
                Some(3.0),
                Some(5.0),
                Some(7.0),
                None,
                Some(5.0),
                None,
                None,
                Some(-1.0),
                Some(-2.0)
            ]
        );
        assert_eq!(
            values("0x2 1e3 1.5e-1+1e1x1 010"),
            [
                Some(0.0),
                Some(0.0),
                Some(0.0),
                Some(1000.0),
                Some(0.15),
                Some(10.15),
                Some(8.0)
            ]
        );
        assert_eq!(
            values("Inf -Inf +inf"),
            [
                Some(f64::INFINITY),
                Some(f64::NEG_INFINITY),
                Some(f64::INFINITY)
            ]
        );
        let special = values("stale NaN");
        assert_eq!(special[0].unwrap().to_bits(), STALE_NAN_BITS);
        assert!(special[1].unwrap().is_nan());
        assert!(values("").is_empty());
    }

    #[test]
    fn bad_values_are_named() {
        for bad in [
            "1+2",
            "abc",
            "1x",
            "_x-1",
            "1+x3",
            "_3",
            "1xx2",
            "0x1f",
            "infx2",
            "stalex2",
            "1+-1x2",
            "1x99999999999",
        ] {
            let err = parse_values(bad).unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn metrics_read_as_prometheus_writes_them() {
        assert_eq!(
            parse_metric(r#"up{job="a\"b", instance='x',}"#).unwrap(),
            vec![
                ("__name__".to_string(), "up".to_string()),
                ("instance".to_string(), "x".to_string()),
                ("job".to_string(), "a\"b".to_string()),
            ]
        );
        assert_eq!(parse_metric("{}").unwrap(), vec![]);
        assert_eq!(parse_metric("").unwrap(), vec![]);
        assert_eq!(
            parse_metric(r#"{__name__="m", a=""}"#).unwrap(),
            vec![
                ("__name__".to_string(), "m".to_string()),
                ("a".to_string(), String::new())
            ]
        );
        for bad in [
            "up{",
            "up{a=1}",
            "{a=\"1\"} x",
            "9up",
            "up{a=\"1\" b=\"2\"}",
        ] {
            assert!(parse_metric(bad).is_err(), "{bad}");
        }
        assert!(parse_series("{}").is_err());
    }
}
