//! How `promtool test rules` writes what it compared: label sets and floats
//! as Go prints them, durations in Go's and Prometheus's notations, and the
//! expected-versus-got layout of a failed alert or expression test.

use super::series::MetricLabels;
use crate::alert::rulefile::prometheus_duration;

/// An alert as a test compares it: its labels and expanded annotations.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LabelsAndAnnotations {
    pub labels: MetricLabels,
    pub annotations: MetricLabels,
}

/// A label set as Go's `labels.Labels.String` writes it:
/// `{__name__="up", job="a"}`.
pub fn labels(set: &MetricLabels) -> String {
    let pairs: Vec<String> = set
        .iter()
        .map(|(name, value)| format!("{name}={}", go_quote(value)))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

/// A string as Go's `%q` quotes it.
pub fn go_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            '\r' => quoted.push_str("\\r"),
            '\x07' => quoted.push_str("\\a"),
            '\x08' => quoted.push_str("\\b"),
            '\x0c' => quoted.push_str("\\f"),
            '\x0b' => quoted.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                quoted.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// A float as Go's `strconv.FormatFloat(v, 'E', -1, 64)`: the shortest
/// digits that read back exactly, `1.5E+02`.
pub fn float_e(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let rust = format!("{value:e}");
    let (mantissa, exponent) = rust.split_once('e').expect("{:e} writes an exponent");
    let exponent: i32 = exponent.parse().expect("{:e} writes a decimal exponent");
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}E{sign}{:02}", exponent.abs())
}

/// A duration as Go's `time.Duration.String`: `0s`, `1m30s`, `1h0m0s`,
/// `250ms`.
pub fn go_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    if ms.abs() < 1000 {
        return format!("{ms}ms");
    }
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    let (hours, minutes) = (ms / 3_600_000, ms / 60_000 % 60);
    let seconds = match ms % 1000 {
        0 => format!("{}s", ms / 1000 % 60),
        millis => format!(
            "{}.{}s",
            ms / 1000 % 60,
            format!("{millis:03}").trim_end_matches('0')
        ),
    };
    match (hours, minutes) {
        (0, 0) => format!("{sign}{seconds}"),
        (0, m) => format!("{sign}{m}m{seconds}"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}"),
    }
}

/// Prefixes every line but the first with `indent`, as promtool's
/// `indentLines` does.
pub fn indent_lines(text: &str, indent: &str) -> String {
    text.split('\n')
        .collect::<Vec<_>>()
        .join(&format!("\n{indent}"))
}

/// A list of alerts as promtool prints it: `[]`, or numbered entries of
/// labels and annotations.
pub fn alerts(list: &[LabelsAndAnnotations]) -> String {
    if list.is_empty() {
        return "[]".to_string();
    }
    let entries: Vec<String> = list
        .iter()
        .enumerate()
        .map(|(i, alert)| {
            let entry = format!(
                "\nLabels:{}\nAnnotations:{}",
                labels(&alert.labels),
                labels(&alert.annotations)
            );
            format!("{i}:{}", indent_lines(&entry, "  "))
        })
        .collect();
    format!("[\n{}\n]", entries.join(",\n"))
}

/// An alert test's failure: what was expected and what fired.
pub fn alert_mismatch(
    test_name: &str,
    alertname: &str,
    eval_time_ms: i64,
    expected: &[LabelsAndAnnotations],
    got: &[LabelsAndAnnotations],
) -> String {
    let indent = "            ";
    format!(
        "{}    alertname: {alertname}, time: {}, \n        exp:{}, \n        got:{}",
        name_line(test_name),
        prometheus_duration(eval_time_ms),
        indent_lines(&alerts(expected), indent),
        indent_lines(&alerts(got), indent),
    )
}

/// The line that names a failed test group, when it has a name.
fn name_line(test_name: &str) -> String {
    if test_name.is_empty() {
        String::new()
    } else {
        format!("    name: {test_name},\n")
    }
}

/// Samples as promtool prints them: `{a="1"} 1E+00, …`, or `nil`.
pub fn samples(list: &[(MetricLabels, f64)]) -> String {
    if list.is_empty() {
        return "nil".to_string();
    }
    list.iter()
        .map(|(set, value)| format!("{} {}", labels(set), float_e(*value)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An expression test's failure: the samples expected and returned.
pub fn samples_mismatch(
    expr: &str,
    eval_time_ms: i64,
    expected: &[(MetricLabels, f64)],
    got: &[(MetricLabels, f64)],
) -> String {
    format!(
        "    expr: {}, time: {},\n        exp: {}\n        got: {}",
        go_quote(expr),
        prometheus_duration(eval_time_ms),
        samples(expected),
        samples(got)
    )
}

/// An expression test that could not run.
pub fn expr_error(expr: &str, eval_time_ms: i64, err: &str) -> String {
    format!(
        "    expr: {}, time: {}, err: {err}",
        go_quote(expr),
        prometheus_duration(eval_time_ms)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> MetricLabels {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn floats_as_go_writes_them() {
        assert_eq!(float_e(6.0), "6E+00");
        assert_eq!(float_e(0.1 + 0.2), "3.0000000000000004E-01");
        assert_eq!(float_e(1234.5), "1.2345E+03");
        assert_eq!(float_e(-1e-300), "-1E-300");
        assert_eq!(float_e(f64::NAN), "NaN");
        assert_eq!(float_e(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn durations_in_both_notations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(60_000), "1m0s");
        assert_eq!(go_duration(3_690_500), "1h1m30.5s");
        assert_eq!(go_duration(250), "250ms");
        assert_eq!(prometheus_duration(0), "0s");
        assert_eq!(prometheus_duration(90_000), "1m30s");
        assert_eq!(prometheus_duration(14 * 86_400_000), "2w");
        assert_eq!(prometheus_duration(90 * 86_400_000), "90d");
        assert_eq!(prometheus_duration(1_500), "1s500ms");
    }

    #[test]
    fn an_alert_mismatch_reads_as_promtool_writes_it() {
        let expected = [LabelsAndAnnotations {
            labels: set(&[("a", "1"), ("alertname", "High"), ("severity", "page")]),
            annotations: set(&[("summary", "v 4")]),
        }];
        assert_eq!(
            alert_mismatch("", "High", 180_000, &expected, &[]),
            "    alertname: High, time: 3m, \n        exp:[\n            0:\n              \
             Labels:{a=\"1\", alertname=\"High\", severity=\"page\"}\n              \
             Annotations:{summary=\"v 4\"}\n            ], \n        got:[]"
        );
        assert_eq!(
            samples_mismatch(
                "rec",
                120_000,
                &[(set(&[("__name__", "rec"), ("a", "1")]), 6.0)],
                &[]
            ),
            "    expr: \"rec\", time: 2m,\n        exp: {__name__=\"rec\", a=\"1\"} 6E+00\n        got: nil"
        );
    }
}
