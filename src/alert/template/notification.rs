//! Notification templates: the same Go text/template, over Alertmanager
//! 0.25's notification data (`template.Data`: `.Status`, `.Receiver`,
//! `.GroupLabels`, `.CommonLabels`, `.CommonAnnotations`, `.ExternalURL`,
//! `.Alerts` with `.Firing` and `.Resolved`; `template.KV` with
//! `SortedPairs`, `Remove`, `Names`, `Values`) and with Alertmanager's
//! functions instead of Prometheus's (`toUpper`, `toLower`, `title`,
//! `join`, `match`, `safeHtml`, `reReplaceAll`, `stringSlice`).
//!
//! The rule kept: a receiver's text expands to what Alertmanager 0.25
//! sends, byte for byte, for the same alerts and template. An HTML message
//! (Telegram's `parse_mode = "HTML"`) is escaped as Alertmanager's
//! html/template escapes text in element content; html/template's other
//! contexts (attributes, scripts) are not told apart.

use std::rc::Rc;

use super::exec::{self, Env, Function, Param};
use super::functions::{matches, re_replace_all, text, to_lower, to_title, to_upper};
use super::parse::{self, Parsed};
use super::value::{NotificationData, NotifiedAlert, StrMap, Value};

/// Alertmanager's functions (`template.DefaultFuncs`).
static FUNCTIONS: &[Function] = &[
    Function {
        name: "toUpper",
        params: &[Param::Str],
        variadic: None,
        call: |_, a| Ok(Value::Str(to_upper(text(&a[0])))),
    },
    Function {
        name: "toLower",
        params: &[Param::Str],
        variadic: None,
        call: |_, a| Ok(Value::Str(to_lower(text(&a[0])))),
    },
    Function {
        name: "title",
        params: &[Param::Str],
        variadic: None,
        call: |_, a| Ok(Value::Str(title_words(text(&a[0])))),
    },
    // The separator first, so that a pipeline can end in `join ", "`.
    Function {
        name: "join",
        params: &[Param::Str, Param::Strings],
        variadic: None,
        call: |_, a| Ok(Value::Str(strings(&a[1]).join(text(&a[0])))),
    },
    Function {
        name: "match",
        params: &[Param::Str, Param::Str],
        variadic: None,
        call: matches,
    },
    Function {
        name: "safeHtml",
        params: &[Param::Str],
        variadic: None,
        call: |_, a| Ok(Value::Html(text(&a[0]).to_string())),
    },
    Function {
        name: "reReplaceAll",
        params: &[Param::Str, Param::Str, Param::Str],
        variadic: None,
        call: re_replace_all,
    },
    Function {
        name: "stringSlice",
        params: &[],
        variadic: Some(Param::Str),
        call: |_, a| {
            Ok(Value::Strings(Rc::new(
                a.iter().map(|v| text(v).to_string()).collect(),
            )))
        },
    },
];

/// A method without arguments; `body` maps the receiver's value.
macro_rules! method {
    ($name:literal, $variant:ident, |$it:ident| $body:expr) => {
        Function {
            name: $name,
            params: &[],
            variadic: None,
            call: |_, args| match &args[0] {
                Value::$variant($it) => Ok($body),
                other => Err(format!("{} has no method {}", other.type_name(), $name)),
            },
        }
    };
}

static KV_METHODS: &[Function] = &[
    method!("SortedPairs", Kv, |kv| Value::Pairs(Rc::new(sorted_pairs(
        kv
    )))),
    method!("Names", Kv, |kv| names(&sorted_pairs(kv))),
    method!("Values", Kv, |kv| values(&sorted_pairs(kv))),
    Function {
        name: "Remove",
        params: &[Param::Strings],
        variadic: None,
        call: |_, args| {
            let Value::Kv(kv) = &args[0] else {
                return Err("Remove needs a template.KV".into());
            };
            let removed = strings(&args[1]);
            Ok(Value::Kv(Rc::new(
                kv.iter()
                    .filter(|(name, _)| !removed.contains(name))
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect(),
            )))
        },
    },
];

static PAIRS_METHODS: &[Function] = &[
    method!("Names", Pairs, |pairs| names(pairs)),
    method!("Values", Pairs, |pairs| values(pairs)),
];

/// `template.Alerts`' methods: the firing or resolved ones, as a plain
/// slice (which has no such methods).
static ALERTS_METHODS: &[Function] = &[
    Function {
        name: "Firing",
        params: &[],
        variadic: None,
        call: |_, args| Ok(alerts_with_status(&args[0], "firing")),
    },
    Function {
        name: "Resolved",
        params: &[],
        variadic: None,
        call: |_, args| Ok(alerts_with_status(&args[0], "resolved")),
    },
];

/// The method `name` of a notification value, if its type has one.
pub(super) fn method(receiver: &Value, name: &str) -> Option<&'static Function> {
    let methods = match receiver {
        Value::Kv(_) => KV_METHODS,
        Value::Pairs(_) => PAIRS_METHODS,
        Value::Alerts { named: true, .. } => ALERTS_METHODS,
        _ => return None,
    };
    methods.iter().find(|m| m.name == name)
}

/// A field of `template.Data`.
pub(super) fn data_field(data: &NotificationData, name: &str) -> Option<Value> {
    Some(match name {
        "Receiver" => Value::Str(data.receiver.clone()),
        "Status" => Value::Str(data.status.clone()),
        "Alerts" => Value::Alerts {
            list: data.alerts.clone(),
            named: true,
        },
        "GroupLabels" => Value::Kv(data.group_labels.clone()),
        "CommonLabels" => Value::Kv(data.common_labels.clone()),
        "CommonAnnotations" => Value::Kv(data.common_annotations.clone()),
        "ExternalURL" => Value::Str(data.external_url.clone()),
        _ => return None,
    })
}

/// A field of `template.Alert`.
pub(super) fn alert_field(alert: &NotifiedAlert, name: &str) -> Option<Value> {
    Some(match name {
        "Status" => Value::Str(alert.status.clone()),
        "Labels" => Value::Kv(alert.labels.clone()),
        "Annotations" => Value::Kv(alert.annotations.clone()),
        "StartsAt" => Value::Time(alert.starts_at),
        "EndsAt" => Value::Time(alert.ends_at),
        "GeneratorURL" => Value::Str(alert.generator_url.clone()),
        "Fingerprint" => Value::Str(alert.fingerprint.clone()),
        _ => return None,
    })
}

fn strings(value: &Value) -> &[String] {
    match value {
        Value::Strings(items) => items,
        _ => &[],
    }
}

/// `KV.SortedPairs`: `alertname` first, then by name.
fn sorted_pairs(kv: &StrMap) -> Vec<(String, String)> {
    let (first, rest): (Vec<_>, Vec<_>) = kv
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .partition(|(name, _)| name == "alertname");
    first.into_iter().chain(rest).collect()
}

fn names(pairs: &[(String, String)]) -> Value {
    Value::Strings(Rc::new(pairs.iter().map(|(n, _)| n.clone()).collect()))
}

fn values(pairs: &[(String, String)]) -> Value {
    Value::Strings(Rc::new(pairs.iter().map(|(_, v)| v.clone()).collect()))
}

fn alerts_with_status(alerts: &Value, status: &str) -> Value {
    let list = match alerts {
        Value::Alerts { list, .. } => list
            .iter()
            .filter(|a| a.status == status)
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    Value::Alerts {
        list: Rc::new(list),
        named: false,
    }
}

/// Alertmanager's `title` (`cases.Title` for American English): each word
/// starts in title case and goes on in lower case. A word is a run of
/// letters, digits and `_`, which an apostrophe, `.` or `:` between two
/// letters does not end (Unicode's word breaking, in its common cases).
fn title_words(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for (i, &c) in chars.iter().enumerate() {
        if c.is_alphanumeric() || c == '_' {
            if in_word {
                out.extend(c.to_lowercase());
            } else {
                out.push(to_title(c));
            }
            in_word = true;
            continue;
        }
        let joins_letters = matches!(c, '\'' | '’' | '.' | ':' | '·')
            && i > 0
            && chars[i - 1].is_alphabetic()
            && chars.get(i + 1).is_some_and(|n| n.is_alphabetic());
        in_word = in_word && joins_letters;
        out.push(c);
    }
    out
}

/// html/template's escaping of a value in element content: `"`, `'`, `&`,
/// `+`, `<`, `>` as entities, NUL as U+FFFD.
pub(super) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\0' => out.push('\u{fffd}'),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '+' => out.push_str("&#43;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn has_function(name: &str) -> bool {
    exec::find_function(FUNCTIONS, name).is_some()
}

/// A receiver's field (a Slack title, a Telegram message), parsed, with
/// the default definitions it may call by name.
pub struct NotificationTemplate {
    source: String,
    parsed: Parsed,
}

impl NotificationTemplate {
    /// Parses `text` beside `defaults` (only `define`s); a `define` in
    /// `text` replaces the default of its name, as a template file given to
    /// Alertmanager does. Err carries Go's parse error.
    pub fn parse(text: &str, defaults: &str) -> Result<NotificationTemplate, String> {
        let mut parsed = parse::parse("", text, &has_function)?;
        let defaults = parse::parse("defaults", defaults, &has_function)
            .map_err(|err| format!("in the default templates: {err}"))?;
        for (name, list) in defaults.defines {
            parsed.defines.entry(name).or_insert(list);
        }
        Ok(NotificationTemplate {
            source: text.to_string(),
            parsed,
        })
    }

    /// The text for `data`; `html` escapes values for an HTML message.
    /// Err carries Go's execution error (whose position is in `text`).
    pub fn expand(&self, data: &Rc<NotificationData>, html: bool) -> Result<String, String> {
        let no_query = |_: &str, _: i64| Err("no queries in notification templates".to_string());
        let env = Env {
            query: &no_query,
            timestamp_ms: 0,
            external_url: &data.external_url,
            functions: FUNCTIONS,
            html,
        };
        let dot = Value::Notification(data.clone());
        exec::execute("", &self.source, &self.parsed, dot, &env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::template::value::Time;

    fn data() -> Rc<NotificationData> {
        let map = |pairs: &[(&str, &str)]| -> Rc<StrMap> {
            Rc::new(
                pairs
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
            )
        };
        let alert = |instance: &str, status: &str| {
            Rc::new(NotifiedAlert {
                status: status.into(),
                labels: map(&[("alertname", "Load"), ("instance", instance), ("a", "1")]),
                annotations: map(&[("summary", "x+y <z>")]),
                starts_at: Time::from_millis(1_700_000_000_120),
                ends_at: Time::ZERO,
                generator_url: "http://g".into(),
                fingerprint: "00000000000000ab".into(),
            })
        };
        Rc::new(NotificationData {
            receiver: "ops".into(),
            status: "firing".into(),
            alerts: Rc::new(vec![alert("b", "firing"), alert("c", "resolved")]),
            group_labels: map(&[("alertname", "Load")]),
            common_labels: map(&[("alertname", "Load"), ("a", "1")]),
            common_annotations: map(&[("summary", "x+y <z>")]),
            external_url: "http://am".into(),
        })
    }

    fn expand(text: &str, html: bool) -> String {
        NotificationTemplate::parse(text, "{{ define \"d\" }}[{{ .Status }}]{{ end }}")
            .unwrap()
            .expand(&data(), html)
            .unwrap_or_else(|e| e)
    }

    #[test]
    fn data_fields_methods_and_functions() {
        assert_eq!(
            expand("{{ .CommonLabels.SortedPairs.Names | join \",\" }}", false),
            "alertname,a"
        );
        assert_eq!(
            expand(
                "{{ (.CommonLabels.Remove .GroupLabels.Names).Values }}",
                false
            ),
            "[1]"
        );
        assert_eq!(
            expand("{{ len .Alerts.Firing }}/{{ len .Alerts.Resolved }}", false),
            "1/1"
        );
        assert_eq!(
            expand("{{ range .Alerts }}{{ .Labels.instance }}{{ end }}", false),
            "bc"
        );
        assert_eq!(
            expand(
                "{{ (index .Alerts 0).StartsAt }}|{{ (index .Alerts 0).EndsAt }}",
                false
            ),
            "2023-11-14 22:13:20.12 +0000 UTC|0001-01-01 00:00:00 +0000 UTC"
        );
        assert_eq!(expand("{{ template \"d\" . }}", false), "[firing]");
        assert_eq!(
            expand(
                "{{ stringSlice \"a\" \"b\" | join \"-\" }} {{ title \"hELLO wORLD's\" }}",
                false
            ),
            "a-b Hello World's"
        );
        // Alertmanager's functions, not Prometheus's.
        assert!(NotificationTemplate::parse("{{ humanize 1 }}", "").is_err());
        // .Alerts.Firing is a plain slice: no Firing method of its own.
        assert!(
            expand("{{ .Alerts.Firing.Firing }}", false).contains("can't evaluate field Firing")
        );
    }

    #[test]
    fn html_escapes_values_not_markup() {
        assert_eq!(
            expand(
                "<b>{{ .CommonAnnotations.summary }}</b>{{ \"<i>\" | safeHtml }}",
                true
            ),
            "<b>x&#43;y &lt;z&gt;</b><i>"
        );
    }
}
