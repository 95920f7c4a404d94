//! Event rules: alerts on kernel events as they happen, not on series at
//! an evaluation interval. "A child of nginx executes a shell, then
//! connects to a non-local address within 30 s" is a rule here; a single
//! event of interest ("a process wrote under /etc") is one too.
//!
//! - [`spec`]: the `event_rules:` of a rule file group (a sonde extension;
//!   plain Prometheus files are unchanged), checked with the rest of the
//!   file by `sonde check rules`;
//! - [`condition`]: the small `where:` language;
//! - [`engine`]: the per-rule state machine (ordered steps within a span,
//!   keyed by process identity or parent, bounded, exactly once);
//! - [`EventRules`] (here): subscribes the engine to the event stream
//!   ([`crate::collect::events`]) and turns each match into an [`Alert`]
//!   that goes to the same senders as the rules' (Alertmanagers, the
//!   built-in notifier, actions).
//!
//! A match's alert carries `alertname`, the rule's labels, and the key's
//! `pid`, `comm` and `unit` or `container`; its annotations are the rule's
//! (templates, as an alerting rule's, with `$value` the number of events)
//! plus `events`: one line per event matched. It fires from the match and
//! resolves `resolve_after` later (5m unless set); a later match of the
//! same rule and key fires it again. Until then it is listed with the
//! rules' alerts by `/api/v1/alerts` ([`EventRules::firing`]).
//!
//! A reload starts every rule afresh (partial matches are dropped).
//! `sonde test rules` feeds a test group's `input_events` through the same
//! [`Engine`] and compares [`rule_alert`]s
//! ([`crate::alert::unittest`]'s `events`).

pub mod condition;
pub mod engine;
pub mod spec;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::alert::manager::AlertSender;
use crate::alert::rulefile::GroupSpec;
use crate::alert::template::{self, AlertData};
use crate::alert::Alert;
use crate::collect::events::{Event, Subscriber};
use crate::model::{Family, Labels};
use engine::{Engine, Match};

/// Alerts of event rules listed as firing at once, at most: a storm of
/// matches (each process its own alert) keeps the newest.
const MAX_FIRING: usize = 1000;

/// The event rules running, and where their alerts go.
pub struct EventRules {
    engine: Mutex<Engine>,
    senders: Vec<Arc<dyn AlertSender>>,
    external: Mutex<External>,
    /// The alerts sent and not yet resolved, oldest first, as the rules
    /// made them (without the external labels): one per label set, the
    /// latest match's.
    firing: Mutex<VecDeque<Alert>>,
}

/// What of `[alerting]` the alerts carry.
#[derive(Clone, Default)]
pub struct External {
    pub labels: Labels,
    pub url: String,
}

/// Every event rule of `groups`, in order.
pub fn specs(groups: &[&GroupSpec]) -> Vec<spec::EventRuleSpec> {
    groups
        .iter()
        .flat_map(|group| group.event_rules.iter().cloned())
        .collect()
}

impl EventRules {
    pub fn new(
        rules: Vec<spec::EventRuleSpec>,
        senders: Vec<Arc<dyn AlertSender>>,
        external: External,
    ) -> EventRules {
        if !rules.is_empty() {
            tracing::info!("event rules: {}", rules.len());
        }
        EventRules {
            engine: Mutex::new(Engine::new(rules)),
            senders,
            external: Mutex::new(external),
            firing: Mutex::new(VecDeque::new()),
        }
    }

    /// The alerts firing at `now_ms`, oldest first.
    pub fn firing(&self, now_ms: i64) -> Vec<Alert> {
        let mut firing = self.firing.lock().unwrap_or_else(|e| e.into_inner());
        firing.retain(|alert| !alert.resolved_at(now_ms));
        firing.iter().cloned().collect()
    }

    fn note_firing(&self, alerts: &[Alert]) {
        let mut firing = self.firing.lock().unwrap_or_else(|e| e.into_inner());
        for alert in alerts {
            firing.retain(|held| held.labels != alert.labels);
            firing.push_back(alert.clone());
        }
        let now = alerts.iter().map(|a| a.starts_at_ms).max().unwrap_or(0);
        firing.retain(|held| !held.resolved_at(now));
        let excess = firing.len().saturating_sub(MAX_FIRING);
        firing.drain(..excess);
    }

    /// Replaces the rules (partial matches start afresh).
    pub fn reload(&self, rules: Vec<spec::EventRuleSpec>, external: External) {
        *self.engine.lock().unwrap_or_else(|e| e.into_inner()) = Engine::new(rules);
        *self.external.lock().unwrap_or_else(|e| e.into_inner()) = external;
    }

    /// `sonde_event_rule_*` per rule.
    pub fn families(&self) -> Vec<Family> {
        let engine = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        let mut matches = Family::counter(
            "sonde_event_rule_matches_total",
            "Matches of the event rule since its (re)load: each fired an alert.",
        );
        let mut pending = Family::gauge(
            "sonde_event_rule_partial_matches",
            "Sequences of the event rule begun and not yet complete.",
        );
        let mut expired = Family::counter(
            "sonde_event_rule_expired_total",
            "Sequences of the event rule dropped unfinished after `within`.",
        );
        let mut evicted = Family::counter(
            "sonde_event_rule_evictions_total",
            "Sequences of the event rule dropped unfinished because the rule held the most it may (the oldest goes).",
        );
        for rule in &engine.rules {
            let labels = [("alertname", rule.spec.alert.as_str())];
            matches.push(&labels, rule.matches as f64);
            pending.push(&labels, rule.pending() as f64);
            expired.push(&labels, rule.expired as f64);
            evicted.push(&labels, rule.evicted as f64);
        }
        vec![matches, pending, expired, evicted]
    }

    /// Feeds one event through every rule, without sending (benchmarks).
    pub fn observe_quietly(&self, event: &Arc<Event>) -> usize {
        let mut engine = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        engine.observe(event).len()
    }
}

impl Subscriber for EventRules {
    fn observe(&self, event: &Arc<Event>) {
        let matches = self
            .engine
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(event);
        if matches.is_empty() {
            return;
        }
        let external = self
            .external
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let made: Vec<Alert> = matches.iter().map(|m| rule_alert(m, &external)).collect();
        self.note_firing(&made);
        // As sent: the rule's labels with `[alerting]`'s external ones.
        let alerts: Vec<Alert> = made
            .into_iter()
            .map(|mut alert| {
                alert.labels = with_external(&alert.labels, &external);
                alert
            })
            .collect();
        for sender in &self.senders {
            sender.send(&alerts);
        }
    }
}

/// The alert a match raises before the external labels join its labels,
/// as an alerting rule's alert is before it is sent (what `sonde test
/// rules` compares). Its templates see what an alerting rule's do (as in
/// Prometheus): `$labels` without the external labels, which are
/// `$externalLabels`.
pub fn rule_alert(found: &Match, external: &External) -> Alert {
    let rule = &found.rule;
    let last = found.events.last().expect("a match holds its events");
    let first = &found.events[0];
    let (comm, placement) = match rule.by {
        spec::By::Process => (&first.process.comm, Some(&first.process)),
        spec::By::Parent => (&first.parent.comm, None),
    };
    let mut labels = vec![
        ("alertname".to_string(), rule.alert.clone()),
        ("pid".to_string(), found.key.pid.to_string()),
        ("comm".to_string(), comm.clone()),
    ];
    if let Some(process) = placement {
        if let Some(unit) = &process.unit {
            labels.push(("unit".to_string(), unit.clone()));
        }
        if let Some(container) = &process.container {
            labels.push(("container".to_string(), container.clone()));
        }
    }
    let mut labels = Labels::new(labels);
    let data = |labels: &Labels| AlertData {
        labels: labels.clone(),
        external_labels: external.labels.clone(),
        external_url: external.url.clone(),
        value: found.events.len() as f64,
    };
    let no_query = |_: &str, _: i64| Err("event rules run no queries".to_string());
    for (name, text) in &rule.labels {
        let value =
            template::expand_alert(&rule.alert, text, &data(&labels), last.time_ms, &no_query);
        labels.set(name.clone(), value);
    }
    let mut annotations: Vec<(String, String)> = rule
        .annotations
        .iter()
        .map(|(name, text)| {
            let value =
                template::expand_alert(&rule.alert, text, &data(&labels), last.time_ms, &no_query);
            (name.clone(), value)
        })
        .collect();
    let lines: Vec<String> = found.events.iter().map(|e| e.render()).collect();
    annotations.push(("events".to_string(), lines.join("\n")));
    Alert {
        labels,
        annotations: Labels::new(annotations),
        value: found.events.len() as f64,
        starts_at_ms: last.time_ms,
        ends_at_ms: last.time_ms + rule.resolve_after_ms,
        generator_url: format!("{}/api/v1/events", external.url),
    }
}

/// `labels` with each external label it does not set itself.
fn with_external(labels: &Labels, external: &External) -> Labels {
    let mut labels = labels.clone();
    for (name, value) in external.labels.iter() {
        if labels.get(name).is_none() {
            labels.set(name.to_string(), value.to_string());
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fired(pid: usize, starts_at_ms: i64) -> Alert {
        Alert {
            labels: Labels::new([("alertname", "Shell"), ("pid", &pid.to_string())]),
            annotations: Labels::default(),
            value: 2.0,
            starts_at_ms,
            ends_at_ms: starts_at_ms + 300_000,
            generator_url: String::new(),
        }
    }

    #[test]
    fn firing_alerts_are_one_per_label_set_until_they_resolve_and_bounded() {
        let rules = EventRules::new(Vec::new(), Vec::new(), External::default());
        rules.note_firing(&[fired(1, 0), fired(2, 1_000)]);
        rules.note_firing(&[fired(1, 2_000)]);
        let firing = rules.firing(3_000);
        let pids: Vec<_> = firing
            .iter()
            .map(|a| a.labels.get("pid").unwrap())
            .collect();
        assert_eq!(
            pids,
            ["2", "1"],
            "the later match of pid 1 replaced its first"
        );
        assert_eq!(firing[1].starts_at_ms, 2_000);
        assert_eq!(rules.firing(301_000).len(), 1, "pid 2's resolved");
        assert!(rules.firing(302_000).is_empty());

        let storm: Vec<Alert> = (0..MAX_FIRING + 10).map(|pid| fired(pid, 5_000)).collect();
        rules.note_firing(&storm);
        let firing = rules.firing(5_000);
        assert_eq!(firing.len(), MAX_FIRING);
        assert_eq!(firing[0].labels.get("pid"), Some("10"), "the oldest went");
    }
}
