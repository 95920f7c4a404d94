//! Event rules as written in a rule file: a group's `event_rules:` list, a
//! sonde extension beside Prometheus's `rules:` (a file without it is a
//! plain Prometheus file, read as before).
//!
//! ```yaml
//! groups:
//!   - name: intrusion
//!     event_rules:
//!       - alert: ShellUnderNginx          # one event: fires at each match
//!         event: exec
//!         where: 'exe =~ ".*/(ba|da)?sh" && parent.comm == "nginx"'
//!       - alert: WebShellConnectsOut      # an ordered sequence
//!         sequence:
//!           by: process                   # or parent
//!           within: 30s
//!           steps:
//!             - event: exec
//!               where: 'exe =~ ".*/(ba|da)?sh" && unit == "nginx.service"'
//!             - event: connect
//!               where: '!is_local(peer)'
//!         labels: { severity: page }
//!         annotations: { summary: "{{ $labels.comm }} ({{ $labels.pid }}) connected out" }
//!         resolve_after: 5m
//! ```
//!
//! Checked as the rest of the file: every problem names the group, the
//! event rule (1-based) and the key.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::condition::Condition;
use crate::alert::rulefile::{prometheus_duration, rule_duration, Scalar};
use crate::alert::template;
use crate::collect::events::Kind;

/// How long a matched rule's alert fires when `resolve_after` is not set.
pub const DEFAULT_RESOLVE_AFTER_MS: i64 = 5 * 60 * 1000;

/// One checked event rule.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRuleSpec {
    pub alert: String,
    /// One step for a single-event rule; the sequence's steps in order.
    pub steps: Vec<Step>,
    pub by: By,
    /// A sequence matches only when its last step comes at most this long
    /// after its first; 0 for a single event.
    pub within_ms: i64,
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    /// The alert resolves this long after the match.
    pub resolve_after_ms: i64,
}

impl EventRuleSpec {
    /// The rule in one line, in its file's words, where a rules API shows
    /// a rule's query: `exec where 'comm == "nc"'`, or `by process within
    /// 30s: exec where '...' then connect where '...'`.
    pub fn describe(&self) -> String {
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|step| match step.text.as_str() {
                "" => step.kind.name().to_string(),
                text => format!("{} where '{text}'", step.kind.name()),
            })
            .collect();
        let steps = steps.join(" then ");
        if self.within_ms == 0 {
            return steps;
        }
        let by = match self.by {
            By::Process => "process",
            By::Parent => "parent",
        };
        let within = prometheus_duration(self.within_ms);
        format!("by {by} within {within}: {steps}")
    }
}

#[derive(Clone, Debug)]
pub struct Step {
    pub kind: Kind,
    pub condition: Condition,
    /// The `where:` as written, which the condition is parsed from.
    pub text: String,
}

/// Steps are the same when written the same (a compiled regex has no `==`).
impl PartialEq for Step {
    fn eq(&self, other: &Step) -> bool {
        self.kind == other.kind && self.text == other.text
    }
}

/// Whose events make one sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    /// One process (pid and start time).
    Process,
    /// One parent (pid and start time): the events of all its children
    /// count together, as one process's do.
    Parent,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEventRule {
    #[serde(default)]
    pub(crate) alert: String,
    event: Option<String>,
    r#where: Option<String>,
    sequence: Option<RawSequence>,
    labels: Option<BTreeMap<String, Scalar>>,
    annotations: Option<BTreeMap<String, Scalar>>,
    resolve_after: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSequence {
    by: Option<String>,
    within: Option<String>,
    #[serde(default)]
    steps: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    event: Option<String>,
    r#where: Option<String>,
}

fn step(event: Option<String>, text: Option<String>, at: &str) -> Result<Step, String> {
    let kind = match event.as_deref() {
        None => return Err(format!("{at}event: must be set")),
        Some(name) => Kind::from_name(name).ok_or_else(|| {
            format!(
                "{at}event: {name:?}: expected one of {}",
                Kind::ALL.map(Kind::name).join(", ")
            )
        })?,
    };
    let text = text.unwrap_or_default();
    let condition = Condition::parse(&text).map_err(|err| format!("{at}where: {err}"))?;
    Ok(Step {
        kind,
        condition,
        text,
    })
}

fn string_map(map: Option<BTreeMap<String, Scalar>>) -> Vec<(String, String)> {
    map.unwrap_or_default()
        .into_iter()
        .map(|(name, value)| (name, value.0))
        .collect()
}

/// Checks one event rule; every problem found, each naming its key.
pub(crate) fn check(raw: RawEventRule) -> Result<EventRuleSpec, Vec<String>> {
    let mut problems = Vec::new();
    if raw.alert.is_empty() {
        problems.push("alert: must be set".to_string());
    }
    let mut steps = Vec::new();
    let (mut by, mut within_ms) = (By::Process, 0);
    match (raw.event, raw.sequence) {
        (Some(_), Some(_)) => {
            problems.push("only one of 'event' and 'sequence' must be set".into())
        }
        (None, None) => problems.push("one of 'event' or 'sequence' must be set".into()),
        (event, None) => match step(event, raw.r#where, "") {
            Ok(step) => steps.push(step),
            Err(err) => problems.push(err),
        },
        (None, Some(sequence)) => {
            if raw.r#where.is_some() {
                problems.push("where: belongs to each step of a sequence".into());
            }
            match sequence.by.as_deref() {
                None | Some("process") => {}
                Some("parent") => by = By::Parent,
                Some(other) => problems.push(format!(
                    "sequence.by: {other:?}: expected process or parent"
                )),
            }
            match sequence.within.as_deref().map(rule_duration) {
                None => problems.push("sequence.within: must be set (30s, 5m...)".into()),
                Some(Ok(ms)) if ms > 0 => within_ms = ms,
                Some(Ok(_)) => problems.push("sequence.within: must be more than 0".into()),
                Some(Err(err)) => problems.push(format!("sequence.within: {err}")),
            }
            if sequence.steps.len() < 2 {
                problems.push(format!(
                    "sequence.steps: {} step(s): a sequence takes at least 2 (one event is `event:`)",
                    sequence.steps.len()
                ));
            }
            for (index, raw_step) in sequence.steps.into_iter().enumerate() {
                let at = format!("sequence.steps[{}].", index + 1);
                match step(raw_step.event, raw_step.r#where, &at) {
                    Ok(step) => steps.push(step),
                    Err(err) => problems.push(err),
                }
            }
        }
    }
    let resolve_after_ms = match raw.resolve_after.as_deref().map(rule_duration) {
        None => DEFAULT_RESOLVE_AFTER_MS,
        Some(Ok(ms)) if ms > 0 => ms,
        Some(Ok(_)) => {
            problems.push("resolve_after: must be more than 0".into());
            0
        }
        Some(Err(err)) => {
            problems.push(format!("resolve_after: {err}"));
            0
        }
    };
    let labels = string_map(raw.labels);
    let annotations = string_map(raw.annotations);
    for (name, text) in labels.iter().chain(&annotations) {
        if let Err(err) = template::check(&raw.alert, text) {
            problems.push(format!("{name}: {err}"));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(EventRuleSpec {
        alert: raw.alert,
        steps,
        by,
        within_ms,
        labels,
        annotations,
        resolve_after_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(yaml: &str) -> Result<EventRuleSpec, Vec<String>> {
        check(serde_yaml::from_str(yaml).unwrap())
    }

    #[test]
    fn reads_single_events_and_sequences() {
        let single = parsed("alert: A\nevent: exec\nwhere: 'comm == \"sh\"'\n").unwrap();
        assert_eq!(single.steps.len(), 1);
        assert_eq!(single.resolve_after_ms, DEFAULT_RESOLVE_AFTER_MS);
        let sequence = parsed(
            "alert: B\nsequence:\n  by: parent\n  within: 30s\n  steps:\n    - event: exec\n    - event: connect\n      where: '!is_local(peer)'\nresolve_after: 1m\n",
        )
        .unwrap();
        assert_eq!(sequence.by, By::Parent);
        assert_eq!(sequence.within_ms, 30_000);
        assert_eq!(sequence.steps[1].kind, Kind::Connect);
        assert_eq!(sequence.resolve_after_ms, 60_000);
    }

    #[test]
    fn names_every_bad_key() {
        let problems = parsed(
            "alert: B\nsequence:\n  by: pid\n  within: soon\n  steps:\n    - event: fork\n    - event: connect\n      where: 'peer =='\n",
        )
        .unwrap_err()
        .join("\n");
        assert!(
            problems.contains("sequence.by: \"pid\": expected process or parent"),
            "{problems}"
        );
        assert!(
            problems.contains("sequence.within: not a valid duration"),
            "{problems}"
        );
        assert!(
            problems.contains("sequence.steps[1].event: \"fork\": expected one of exec"),
            "{problems}"
        );
        assert!(
            problems.contains("sequence.steps[2].where: expected a value after peer =="),
            "{problems}"
        );
        let problems = parsed("alert: C\n").unwrap_err().join("\n");
        assert!(
            problems.contains("one of 'event' or 'sequence' must be set"),
            "{problems}"
        );
    }
}
