//! Rule files: Prometheus's YAML format (`groups:` of recording and alerting
//! rules), read and checked as Prometheus 2.42 and `promtool check rules` do.
//!
//! A file either loads whole or is refused with every problem found, each
//! naming the group, the rule (1-based, as promtool counts) and what is
//! wrong, so the user fixes them all in one pass. Checks, as Prometheus's
//! `rulefmt`: no unknown keys; group names present and unique in a file;
//! exactly one of `record` and `alert`; `expr` present and valid PromQL;
//! recording rules without `for`, `keep_firing_for` or `annotations` and
//! named as a metric; label and annotation names valid, `__name__` not a
//! rule label; alerting rules' label and annotation templates parse.
//! sonde's own keys on alerting rules (`baseline`, `anti_flap`,
//! `keep_firing_while`) are read and checked by
//! [`crate::alert::baseline::spec`].

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::alert::baseline::{self, DynamicSpec};
use crate::alert::sequence::spec::{self as event_spec, EventRuleSpec, RawEventRule};
use crate::alert::template;

/// One loaded rule file.
#[derive(Clone, Debug)]
pub struct RuleFile {
    pub path: PathBuf,
    pub groups: Vec<GroupSpec>,
}

/// A rule group as written: its rules run in order, at one timestamp, every
/// `interval` (the file's, or the global evaluation interval).
#[derive(Clone, Debug, PartialEq)]
pub struct GroupSpec {
    pub name: String,
    /// The file the group came from, as Prometheus names it in its APIs.
    pub file: String,
    pub interval_ms: Option<i64>,
    /// Most series a recording rule, or alerts an alerting rule, may
    /// produce; 0 for no limit.
    pub limit: usize,
    pub rules: Vec<RuleSpec>,
    /// sonde's extension: rules on kernel events ([`crate::alert::sequence`]).
    pub event_rules: Vec<EventRuleSpec>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RuleSpec {
    pub kind: RuleKind,
    /// The expression as written in the file.
    pub expr: String,
    /// Labels to add or overwrite, in name order (templates for alerts).
    pub labels: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RuleKind {
    Recording {
        record: String,
    },
    Alerting {
        alert: String,
        for_ms: i64,
        keep_firing_for_ms: i64,
        /// Annotation templates, in name order.
        annotations: Vec<(String, String)>,
        /// sonde's keys (`baseline`, `anti_flap`, `keep_firing_while`),
        /// `None` for a plain
        /// Prometheus rule.
        dynamic: Option<DynamicSpec>,
    },
}

impl RuleSpec {
    /// The recorded metric or the alert's name.
    pub fn name(&self) -> &str {
        match &self.kind {
            RuleKind::Recording { record } => record,
            RuleKind::Alerting { alert, .. } => alert,
        }
    }
}

impl RuleFile {
    /// Rules of both kinds: Prometheus's and event rules.
    pub fn rule_count(&self) -> usize {
        self.groups
            .iter()
            .map(|g| g.rules.len() + g.event_rules.len())
            .sum()
    }
}

/// Reads and checks one rule file. The error lists every problem, one per
/// line, each prefixed with the file's path.
pub fn load(path: &Path) -> Result<RuleFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("{}: cannot read the rule file: {err}", path.display()))?;
    parse(path, &text)
}

/// As [`load`], for text already read.
pub fn parse(path: &Path, text: &str) -> Result<RuleFile, String> {
    let file = path.display().to_string();
    let in_file = |problems: Vec<String>| {
        problems
            .iter()
            .map(|p| format!("{file}: {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let raw: RawFile = if is_blank_yaml(text) {
        RawFile::default()
    } else {
        serde_yaml::from_str(text).map_err(|err| in_file(vec![yaml_error(&err)]))?
    };
    let mut problems = Vec::new();
    let mut names = HashSet::new();
    let mut groups = Vec::new();
    for raw_group in raw.groups {
        if raw_group.name.is_empty() {
            problems.push("Groupname must not be empty".to_string());
        } else if !names.insert(raw_group.name.clone()) {
            problems.push(format!(
                "groupname: \"{}\" is repeated in the same file",
                raw_group.name
            ));
        }
        match check_group(&file, raw_group) {
            Ok(group) => groups.push(group),
            Err(mut errs) => problems.append(&mut errs),
        }
    }
    if problems.is_empty() {
        Ok(RuleFile {
            path: path.to_path_buf(),
            groups,
        })
    } else {
        Err(in_file(problems))
    }
}

fn check_group(file: &str, raw: RawGroup) -> Result<GroupSpec, Vec<String>> {
    let mut problems = Vec::new();
    let interval_ms = match raw.interval.as_deref() {
        None => None,
        Some(text) => match rule_duration(text) {
            Ok(0) => None,
            Ok(ms) => Some(ms),
            Err(err) => {
                problems.push(format!("group {:?}: interval: {err}", raw.name));
                None
            }
        },
    };
    let mut rules = Vec::new();
    for (index, raw_rule) in raw.rules.into_iter().enumerate() {
        let name = raw_rule
            .alert
            .clone()
            .or_else(|| raw_rule.record.clone())
            .unwrap_or_default();
        match check_rule(raw_rule) {
            Ok(rule) => rules.push(rule),
            Err(errs) => {
                problems.extend(errs.into_iter().map(|err| {
                    format!("group {:?}, rule {}, {name:?}: {err}", raw.name, index + 1)
                }))
            }
        }
    }
    let mut event_rules = Vec::new();
    for (index, raw_rule) in raw.event_rules.into_iter().enumerate() {
        let name = raw_rule.alert.clone();
        match event_spec::check(raw_rule) {
            Ok(rule) => event_rules.push(rule),
            Err(errs) => problems.extend(errs.into_iter().map(|err| {
                format!(
                    "group {:?}, event rule {}, {name:?}: {err}",
                    raw.name,
                    index + 1
                )
            })),
        }
    }
    if problems.is_empty() {
        Ok(GroupSpec {
            name: raw.name,
            file: file.to_string(),
            interval_ms,
            limit: raw.limit,
            rules,
            event_rules,
        })
    } else {
        Err(problems)
    }
}

fn check_rule(raw: RawRule) -> Result<RuleSpec, Vec<String>> {
    let mut problems = Vec::new();
    let expr = raw.expr.map(|s| s.0).unwrap_or_default();
    if expr.is_empty() {
        problems.push("field 'expr' must be set in rule".to_string());
    } else if let Err(err) = crate::query::parse(&expr) {
        problems.push(format!("could not parse expression: {err}"));
    }
    let labels = string_map(raw.labels);
    for (name, _) in &labels {
        if !is_label_name(name) || name == crate::model::METRIC_NAME {
            problems.push(format!("invalid label name: {name}"));
        }
    }
    let duration = |field: &str, value: Option<String>, problems: &mut Vec<String>| match value {
        None => 0,
        Some(text) => rule_duration(&text).unwrap_or_else(|err| {
            problems.push(format!("{field}: {err}"));
            0
        }),
    };
    let for_ms = duration("for", raw.r#for.clone(), &mut problems);
    let keep_firing_for_ms = duration(
        "keep_firing_for",
        raw.keep_firing_for.clone(),
        &mut problems,
    );
    let sonde_keys = baseline::spec::RawKeys {
        baseline: raw.baseline,
        anti_flap: raw.anti_flap,
        keep_firing_while: raw.keep_firing_while.map(|s| s.0),
    };
    let kind = match (raw.record, raw.alert) {
        (Some(_), Some(_)) => {
            problems.push("only one of 'record' and 'alert' must be set".to_string());
            None
        }
        (None, None) => {
            problems.push("one of 'record' or 'alert' must be set".to_string());
            None
        }
        (Some(record), None) => {
            if raw.annotations.is_some() {
                problems.push("invalid field 'annotations' in recording rule".to_string());
            }
            if raw.r#for.is_some() {
                problems.push("invalid field 'for' in recording rule".to_string());
            }
            if raw.keep_firing_for.is_some() {
                problems.push("invalid field 'keep_firing_for' in recording rule".to_string());
            }
            for key in sonde_keys.present() {
                problems.push(format!("invalid field '{key}' in recording rule"));
            }
            if !is_metric_name(&record) {
                problems.push(format!("invalid recording rule name: {record}"));
            }
            Some(RuleKind::Recording { record })
        }
        (None, Some(alert)) => {
            if alert.is_empty() {
                problems.push("one of 'record' or 'alert' must be set".to_string());
            }
            let annotations = string_map(raw.annotations);
            for (name, _) in &annotations {
                if !is_label_name(name) {
                    problems.push(format!("invalid annotation name: {name}"));
                }
            }
            for (_, text) in labels.iter().chain(&annotations) {
                if let Err(err) = template::check(&alert, text) {
                    problems.push(format!("msg={err}"));
                }
            }
            let dynamic = baseline::spec::check(sonde_keys, &expr, &mut problems);
            Some(RuleKind::Alerting {
                alert,
                for_ms,
                keep_firing_for_ms,
                annotations,
                dynamic,
            })
        }
    };
    match kind {
        Some(kind) if problems.is_empty() => Ok(RuleSpec { kind, expr, labels }),
        _ => Err(problems),
    }
}

/// A duration as Prometheus's `model.Duration.String`: `0s`, `1m30s`,
/// `2w`, `90d`.
pub fn prometheus_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let mut left = ms;
    let mut text = String::new();
    let day = 24 * 3_600_000;
    for (unit, size, only_exact) in [
        ("y", 365 * day, true),
        ("w", 7 * day, true),
        ("d", day, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1000, false),
        ("ms", 1, false),
    ] {
        if only_exact && left % size != 0 {
            continue;
        }
        if left / size > 0 {
            text.push_str(&format!("{}{unit}", left / size));
            left %= size;
        }
    }
    text
}

/// A duration in a rule file, as Prometheus's `model.ParseDuration` reads
/// it: `0`, or units from years down to milliseconds (`1h30m`), no
/// fractions; milliseconds.
pub fn rule_duration(text: &str) -> Result<i64, String> {
    if text == "0" {
        return Ok(0);
    }
    let well_formed = !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric());
    match crate::serve::api::parse_duration(text) {
        Ok(ms) if well_formed && text.parse::<f64>().is_err() => Ok(ms),
        _ => Err(format!("not a valid duration string: {text:?}")),
    }
}

/// Prometheus's label name rule: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Prometheus's metric name rule: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn is_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_' | b':'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

fn string_map(map: Option<BTreeMap<String, Scalar>>) -> Vec<(String, String)> {
    map.unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (name, value.0))
        .collect()
}

/// A file of only comments and blank lines holds no groups (serde would
/// call it a missing document).
fn is_blank_yaml(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|line| line.is_empty() || line.starts_with('#') || line == "---")
}

fn yaml_error(err: &serde_yaml::Error) -> String {
    match err.location() {
        Some(at) => format!(
            "yaml: line {}, column {}: {}",
            at.line(),
            at.column(),
            strip_location(&err.to_string())
        ),
        None => format!("yaml: {err}"),
    }
}

/// serde_yaml appends " at line L column C"; the location is said first.
fn strip_location(message: &str) -> &str {
    message
        .rfind(" at line ")
        .map_or(message, |at| &message[..at])
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Vec<RawGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    name: String,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    limit: usize,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    event_rules: Vec<RawEventRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    record: Option<String>,
    alert: Option<String>,
    expr: Option<Scalar>,
    r#for: Option<String>,
    keep_firing_for: Option<String>,
    labels: Option<BTreeMap<String, Scalar>>,
    annotations: Option<BTreeMap<String, Scalar>>,
    /// sonde's keys, see [`crate::alert::baseline`].
    baseline: Option<baseline::spec::RawBaseline>,
    anti_flap: Option<baseline::spec::RawAntiFlap>,
    keep_firing_while: Option<Scalar>,
}

/// Any YAML scalar as text, as Go's YAML decoder gives a `string` field:
/// the scalar as written, so `expr: 1` and `severity: 010` are the strings
/// "1" and "010", and `values: 0x12` stays "0x12" (not the number 18); a
/// null (`~`, `null`, nothing) is "".
#[derive(Clone, Default)]
pub(crate) struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scalar, D::Error> {
        let text = Option::<AsWritten>::deserialize(deserializer)?;
        Ok(Scalar(text.map_or_else(String::new, |t| t.0)))
    }
}

/// A non-null scalar's text.
struct AsWritten(String);

impl<'de> Deserialize<'de> for AsWritten {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<AsWritten, D::Error> {
        deserializer.deserialize_str(AsWritten(String::new()))
    }
}

impl serde::de::Visitor<'_> for AsWritten {
    type Value = AsWritten;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<AsWritten, E> {
        Ok(AsWritten(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<RuleFile, String> {
        parse(Path::new("rules.yml"), text)
    }

    #[test]
    fn reads_both_kinds_of_rule() {
        let file = parse_text(
            r#"
groups:
  - name: node
    interval: 30s
    limit: 10
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
        labels: { tier: 01 }
      - alert: Down
        expr: up == 0
        for: 5m
        keep_firing_for: 1m
        labels: { severity: page }
        annotations:
          summary: "{{ $labels.instance }} is down"
"#,
        )
        .unwrap();
        let group = &file.groups[0];
        assert_eq!(group.interval_ms, Some(30_000));
        assert_eq!(group.limit, 10);
        assert_eq!(group.rules[0].labels, vec![("tier".into(), "01".into())]);
        assert_eq!(
            group.rules[1].kind,
            RuleKind::Alerting {
                alert: "Down".into(),
                for_ms: 300_000,
                keep_firing_for_ms: 60_000,
                annotations: vec![("summary".into(), "{{ $labels.instance }} is down".into())],
                dynamic: None,
            }
        );
        assert_eq!(file.rule_count(), 2);
    }

    #[test]
    fn every_problem_is_named_with_its_group_and_rule() {
        let err = parse_text(
            r#"
groups:
  - name: g
    rules:
      - record: "bad name"
        expr: up
        for: 1m
      - alert: A
        expr: "sum("
      - expr: up
  - name: g
    rules: []
"#,
        )
        .unwrap_err();
        assert!(
            err.contains(
                r#"rules.yml: group "g", rule 1, "bad name": invalid field 'for' in recording rule"#
            ),
            "{err}"
        );
        assert!(
            err.contains("invalid recording rule name: bad name"),
            "{err}"
        );
        assert!(
            err.contains(r#"group "g", rule 2, "A": could not parse expression"#),
            "{err}"
        );
        assert!(
            err.contains(r#"rule 3, "": one of 'record' or 'alert' must be set"#),
            "{err}"
        );
        assert!(
            err.contains(r#"groupname: "g" is repeated in the same file"#),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_durations_are_refused() {
        let err =
            parse_text("groups:\n  - name: g\n    rules:\n      - alert: A\n        exp: up\n")
                .unwrap_err();
        assert!(err.contains("unknown field `exp`"), "{err}");
        assert!(err.contains("line 5"), "{err}");
        let err = parse_text("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        for: 5\n")
            .unwrap_err();
        assert!(
            err.contains(r#"for: not a valid duration string: "5""#),
            "{err}"
        );
    }

    #[test]
    fn an_empty_file_has_no_groups() {
        assert_eq!(parse_text("# nothing yet\n").unwrap().rule_count(), 0);
    }
}
