//! Alert templates: Go's text/template with Prometheus's template functions,
//! expanding the annotations and labels of alerting rules; and, with
//! Alertmanager's functions, the texts of notifications.
//!
//! The rule this module keeps: for any template, the text it expands to (or
//! the error it reports) is the one Prometheus 2.42 gives, byte for byte,
//! Go's `fmt` number formatting and error positions included. Where that is
//! out of reach (Go's regexp error texts beyond the common ones, complex
//! numbers, `printf` of a time under a number verb, `%#v` beyond strings and
//! maps, the order of `query` results, which is the engine's) the result is
//! close, never a crash: a template from a user's file cannot take sonde
//! down, and recursion depth, execution steps and output size are bounded.
//!
//! - `lex`, `parse`: the lexer and parser, Go's error texts.
//! - `exec`: evaluation: pipelines, variables, `if`/`range`/`with`, calls.
//! - `builtins`: Go's predefined functions (`printf`, `index`, `eq`, …).
//! - `functions`: Prometheus's (`query`, `humanize`, `match`, …).
//! - `regexp`: Go's regular expressions on the regex crate.
//! - `time`: the `time.Time` that `toTime` returns, its methods and `Format`.
//! - `fmt`: Go's `fmt` and `strconv` formatting, which every value passes through.
//! - `notification`: the same engine over Alertmanager's notification data,
//!   with Alertmanager's functions, for receivers' texts.

mod builtins;
mod exec;
mod fmt;
mod functions;
mod lex;
pub mod notification;
mod parse;
mod regexp;
mod time;
mod value;

use std::rc::Rc;

use crate::model::Labels;

use value::{AlertFields, Value};
pub use value::{NotificationData, NotifiedAlert as TemplateAlert, StrMap, Time};

/// What an alert's templates see.
pub struct AlertData {
    pub labels: Labels,
    pub external_labels: Labels,
    pub external_url: String,
    pub value: f64,
}

/// One sample of a `query` result.
pub struct QuerySample {
    pub labels: Labels,
    pub value: f64,
}

/// Runs a PromQL instant query at the alert's evaluation time for the `query` function.
pub type QueryFn<'a> = &'a dyn Fn(&str, i64) -> Result<Vec<QuerySample>, String>;

/// The variables Prometheus defines before every alert template.
const ALERT_PREFIX: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

fn template_name(rule_name: &str) -> String {
    format!("__alert_{rule_name}")
}

/// Expands an alerting rule's annotation or label template exactly as Prometheus does
/// (rules/alerting.go): prefix `{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}`,
/// template name `__alert_<rule name>`; on a parse or execution error the result is
/// `<error expanding template: ...>` with Prometheus's error text.
pub fn expand_alert(
    rule_name: &str,
    text: &str,
    data: &AlertData,
    timestamp_ms: i64,
    query: QueryFn,
) -> String {
    try_expand_alert(rule_name, text, data, timestamp_ms, query)
        .unwrap_or_else(|e| format!("<error expanding template: {e}>"))
}

/// As [`expand_alert`], the error given back instead of written into the
/// text: for an action's arguments, where an error must stop the command.
pub fn try_expand_alert(
    rule_name: &str,
    text: &str,
    data: &AlertData,
    timestamp_ms: i64,
    query: QueryFn,
) -> Result<String, String> {
    let name = template_name(rule_name);
    let source = format!("{ALERT_PREFIX}{text}");
    let parsed = parse::parse(&name, &source, &exec::has_function)
        .map_err(|e| format!("error parsing template {name}: {e}"))?;
    let to_map = |labels: &Labels| -> Rc<StrMap> {
        Rc::new(
            labels
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    };
    let dot = Value::Alert(Rc::new(AlertFields {
        labels: to_map(&data.labels),
        external_labels: to_map(&data.external_labels),
        external_url: data.external_url.clone(),
        value: data.value,
    }));
    let env = exec::Env {
        query,
        timestamp_ms,
        external_url: &data.external_url,
        functions: functions::FUNCTIONS,
        html: false,
    };
    exec::execute(&name, &source, &parsed, dot, &env)
        .map_err(|e| format!("error executing template {name}: {e}"))
}

/// Parse-only check for `sonde check rules`: Err carries Go's parse error text.
pub fn check(rule_name: &str, text: &str) -> Result<(), String> {
    let source = format!("{ALERT_PREFIX}{text}");
    parse::parse(&template_name(rule_name), &source, &exec::has_function).map(|_| ())
}

#[cfg(test)]
mod tests;
