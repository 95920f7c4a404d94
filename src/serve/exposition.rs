//! The Prometheus text exposition format, version 0.0.4 (not OpenMetrics):
//! what `/metrics` answers and what `promtool check metrics` reads.

use std::fmt::Write;

use crate::model::{format_float, Family, METRIC_NAME};

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders families in the given order, each with its HELP and TYPE lines.
pub fn render<'a>(families: impl IntoIterator<Item = &'a Family>) -> String {
    let mut out = String::new();
    for family in families {
        if family.series.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(&family.help));
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind.as_str());
        for series in &family.series {
            out.push_str(series.labels.metric_name());
            let mut labels = series.labels.iter().filter(|(n, _)| *n != METRIC_NAME);
            if let Some((name, value)) = labels.next() {
                let _ = write!(out, "{{{name}=\"{}\"", escape_label_value(value));
                for (name, value) in labels {
                    let _ = write!(out, ",{name}=\"{}\"", escape_label_value(value));
                }
                out.push('}');
            }
            out.push(' ');
            out.push_str(&format_float(series.value));
            out.push('\n');
        }
    }
    out
}

fn escape_help(help: &str) -> String {
    help.replace('\\', r"\\").replace('\n', r"\n")
}

fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_help_type_and_escaped_labels() {
        let mut family = Family::counter("demo_total", "A demo.\nSecond line.");
        family.push(&[("path", "C:\\x \"y\"")], 3.0);
        family.push(&[], f64::INFINITY);
        assert_eq!(
            render([&family]),
            "# HELP demo_total A demo.\\nSecond line.\n\
             # TYPE demo_total counter\n\
             demo_total{path=\"C:\\\\x \\\"y\\\"\"} 3\n\
             demo_total +Inf\n"
        );
    }
}
