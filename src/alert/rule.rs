//! One rule's evaluation: a recording rule's samples, an alerting rule's
//! alerts and their state machine, with Prometheus 2.42's semantics.
//!
//! An alerting rule keeps its alerts by label set. At each evaluation:
//! - a label set the expression returns becomes `pending` (active since
//!   now), or stays as it was with its value and annotations refreshed; an
//!   alert resolved earlier starts over as a new pending alert;
//! - a pending alert fires once it has been active for `for`;
//! - a label set the expression no longer returns: a firing alert with
//!   `keep_firing_for` keeps firing until that long after it was first
//!   missed; otherwise a pending alert is dropped and a firing one resolves,
//!   and is kept (and re-sent as resolved) for [`RESOLVED_RETENTION_MS`];
//! - more pending and firing alerts than the group's `limit` is an error
//!   that clears every alert of the rule.
//!
//! The rule writes `ALERTS{alertstate}` (1) and `ALERTS_FOR_STATE` (the
//! Unix second the alert became active) for each pending or firing alert;
//! the group marks the series that end stale.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::alert::baseline;
use crate::alert::rulefile::{RuleKind, RuleSpec};
use crate::alert::template::{self, AlertData, QuerySample};
use crate::alert::Alert;
use crate::model::{Labels, Sample, METRIC_NAME};
use crate::query::{self, Limits, QueryValue, Source};

/// How long a resolved alert is kept, and re-sent as resolved.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }

    pub fn parse(text: &str) -> Option<AlertState> {
        [
            AlertState::Inactive,
            AlertState::Pending,
            AlertState::Firing,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// An alert of an alerting rule; instants in milliseconds, `None` for
/// "not yet".
#[derive(Clone, Debug, PartialEq)]
pub struct RuleAlert {
    pub labels: Labels,
    pub annotations: Labels,
    pub state: AlertState,
    pub value: f64,
    pub active_at_ms: i64,
    pub fired_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    pub last_sent_at_ms: Option<i64>,
    pub valid_until_ms: i64,
    pub keep_firing_since_ms: Option<i64>,
}

impl RuleAlert {
    /// Prometheus's rule: firing or resolved alerts go out again every
    /// `resend_delay`, and at once when they resolved since the last send.
    fn needs_sending(&self, now_ms: i64, resend_delay_ms: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        match (self.resolved_at_ms, self.last_sent_at_ms) {
            (_, None) => true,
            (Some(resolved), Some(sent)) if resolved > sent => true,
            (_, Some(sent)) => sent + resend_delay_ms < now_ms,
        }
    }
}

/// Whether the last evaluation worked, as the rules API reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum Health {
    Unknown,
    Ok,
    Err(String),
}

/// What an evaluation reads and how it expands templates.
pub struct EvalContext<'a> {
    pub source: &'a dyn Source,
    pub limits: &'a Limits,
    pub external_labels: &'a Labels,
    pub external_url: &'a str,
}

impl EvalContext<'_> {
    /// Runs `expr` at `ts_ms` as a rule does: a vector, or a scalar as one
    /// sample without labels.
    pub fn query(&self, expr: &str, ts_ms: i64) -> Result<Vec<(Labels, f64)>, String> {
        match query::instant_query(self.source, self.limits, expr, ts_ms) {
            Ok(QueryValue::Vector(samples)) => {
                Ok(samples.into_iter().map(|s| (s.labels, s.value)).collect())
            }
            Ok(QueryValue::Scalar { value, .. }) => Ok(vec![(Labels::default(), value)]),
            Ok(_) => Err("rule result is not a vector or scalar".to_string()),
            Err(err) => Err(err.to_string()),
        }
    }
}

/// A rule with what it remembers between evaluations.
#[derive(Clone, Debug)]
pub struct Rule {
    pub spec: RuleSpec,
    pub health: Health,
    pub last_evaluation_ms: Option<i64>,
    pub evaluation_seconds: f64,
    /// Alerts by label set (alerting rules only).
    pub alerts: BTreeMap<Labels, RuleAlert>,
    /// The series the last successful evaluation wrote, to mark stale the
    /// ones the next one no longer writes.
    pub written: HashSet<Labels>,
    /// What sonde's keys (baseline, anti-flap) remember per series.
    pub baseline: baseline::Memory,
}

impl Rule {
    pub fn new(spec: RuleSpec) -> Rule {
        Rule {
            spec,
            health: Health::Unknown,
            last_evaluation_ms: None,
            evaluation_seconds: 0.0,
            alerts: BTreeMap::new(),
            written: HashSet::new(),
            baseline: baseline::Memory::default(),
        }
    }

    /// The rule's state for the rules API: its most advanced alert's.
    pub fn state(&self) -> AlertState {
        self.alerts
            .values()
            .map(|a| a.state)
            .max()
            .unwrap_or(AlertState::Inactive)
    }

    /// Evaluates at `ts_ms`: the samples to write (recorded series, or
    /// `ALERTS` and `ALERTS_FOR_STATE`).
    pub fn eval(
        &mut self,
        ctx: &EvalContext,
        ts_ms: i64,
        limit: usize,
    ) -> Result<Vec<Sample>, String> {
        let result = ctx.query(&self.spec.expr, ts_ms)?;
        match &self.spec.kind {
            RuleKind::Recording { record } => {
                record_samples(record, &self.spec.labels, result, ts_ms, limit)
            }
            RuleKind::Alerting {
                alert,
                dynamic: Some(dynamic),
                ..
            } => {
                let outcome =
                    self.baseline
                        .apply(dynamic, alert, &self.spec.expr, ctx, result, ts_ms)?;
                let mut samples =
                    self.eval_alerts(ctx, outcome.active, &outcome.annotations, ts_ms, limit)?;
                samples.extend(outcome.samples);
                Ok(samples)
            }
            RuleKind::Alerting { .. } => {
                self.eval_alerts(ctx, result, &HashMap::new(), ts_ms, limit)
            }
        }
    }

    /// The alert state machine over the expression's `result`;
    /// `added_annotations` by series (a baseline's band) go beside the
    /// rule's own, which win.
    fn eval_alerts(
        &mut self,
        ctx: &EvalContext,
        result: Vec<(Labels, f64)>,
        added_annotations: &HashMap<Labels, Vec<(String, String)>>,
        ts_ms: i64,
        limit: usize,
    ) -> Result<Vec<Sample>, String> {
        let RuleKind::Alerting {
            alert: name,
            for_ms,
            keep_firing_for_ms,
            annotations,
            ..
        } = &self.spec.kind
        else {
            unreachable!("eval_alerts is only called for alerting rules")
        };
        let query_fn = |expr: &str, at_ms: i64| {
            ctx.query(expr, at_ms).map(|samples| {
                samples
                    .into_iter()
                    .map(|(labels, value)| QuerySample { labels, value })
                    .collect()
            })
        };
        let mut current: BTreeMap<Labels, RuleAlert> = BTreeMap::new();
        for (series, value) in result {
            let data = AlertData {
                labels: series.clone(),
                external_labels: ctx.external_labels.clone(),
                external_url: ctx.external_url.to_string(),
                value,
            };
            let expand = |text: &str| template::expand_alert(name, text, &data, ts_ms, &query_fn);
            let added = added_annotations.get(&series).into_iter().flatten();
            let mut labels = series;
            labels.set(METRIC_NAME.to_string(), String::new());
            for (label, text) in &self.spec.labels {
                labels.set(label.clone(), expand(text));
            }
            labels.set("alertname".to_string(), name.clone());
            let annotations = Labels::new(
                added.cloned().chain(
                    annotations
                        .iter()
                        .map(|(n, text)| (n.clone(), expand(text))),
                ),
            );
            if current.contains_key(&labels) {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .to_string(),
                );
            }
            current.insert(
                labels.clone(),
                RuleAlert {
                    labels,
                    annotations,
                    state: AlertState::Pending,
                    value,
                    active_at_ms: ts_ms,
                    fired_at_ms: None,
                    resolved_at_ms: None,
                    last_sent_at_ms: None,
                    valid_until_ms: 0,
                    keep_firing_since_ms: None,
                },
            );
        }
        let returned: HashSet<Labels> = current.keys().cloned().collect();
        for (labels, fresh) in current {
            match self.alerts.get_mut(&labels) {
                Some(known) if known.state != AlertState::Inactive => {
                    known.value = fresh.value;
                    known.annotations = fresh.annotations;
                }
                _ => {
                    self.alerts.insert(labels, fresh);
                }
            }
        }
        let mut samples = Vec::new();
        let mut active = 0;
        self.alerts.retain(|labels, alert| {
            if returned.contains(labels) {
                alert.keep_firing_since_ms = None;
            } else {
                let since = *alert.keep_firing_since_ms.get_or_insert(ts_ms);
                let keep_firing =
                    alert.state == AlertState::Firing && ts_ms - since < *keep_firing_for_ms;
                if !keep_firing {
                    alert.keep_firing_since_ms = None;
                    let expired = alert
                        .resolved_at_ms
                        .is_some_and(|resolved| ts_ms - resolved > RESOLVED_RETENTION_MS);
                    if alert.state == AlertState::Pending || expired {
                        return false;
                    }
                    if alert.state != AlertState::Inactive {
                        alert.state = AlertState::Inactive;
                        alert.resolved_at_ms = Some(ts_ms);
                    }
                    return true;
                }
            }
            active += 1;
            if alert.state == AlertState::Pending && ts_ms - alert.active_at_ms >= *for_ms {
                alert.state = AlertState::Firing;
                alert.fired_at_ms = Some(ts_ms);
            }
            samples.push(state_sample("ALERTS", alert, Some(alert.state), ts_ms, 1.0));
            let active_at_s = alert.active_at_ms.div_euclid(1000) as f64;
            samples.push(state_sample(
                "ALERTS_FOR_STATE",
                alert,
                None,
                ts_ms,
                active_at_s,
            ));
            true
        });
        if limit > 0 && active > limit {
            self.alerts.clear();
            return Err(format!("exceeded limit of {limit} with {active} alerts"));
        }
        Ok(samples)
    }

    /// The alerts due to go out at `ts_ms`, stamped as sent: firing ones
    /// valid for four resend periods (so two failed evaluations or sends do
    /// not resolve them), resolved ones with their end.
    pub fn alerts_to_send(
        &mut self,
        ts_ms: i64,
        resend_delay_ms: i64,
        interval_ms: i64,
        generator_url: &str,
    ) -> Vec<Alert> {
        let mut out = Vec::new();
        for alert in self.alerts.values_mut() {
            if !alert.needs_sending(ts_ms, resend_delay_ms) {
                continue;
            }
            alert.last_sent_at_ms = Some(ts_ms);
            alert.valid_until_ms = ts_ms + 4 * resend_delay_ms.max(interval_ms);
            out.push(Alert {
                labels: alert.labels.clone(),
                annotations: alert.annotations.clone(),
                value: alert.value,
                starts_at_ms: alert.fired_at_ms.unwrap_or(alert.active_at_ms),
                ends_at_ms: alert.resolved_at_ms.unwrap_or(alert.valid_until_ms),
                generator_url: generator_url.to_string(),
            });
        }
        out
    }
}

fn record_samples(
    record: &str,
    labels: &[(String, String)],
    result: Vec<(Labels, f64)>,
    ts_ms: i64,
    limit: usize,
) -> Result<Vec<Sample>, String> {
    let mut seen = HashSet::new();
    let mut samples = Vec::with_capacity(result.len());
    for (mut series, value) in result {
        series.set(METRIC_NAME.to_string(), record.to_string());
        for (name, value) in labels {
            series.set(name.clone(), value.clone());
        }
        if !seen.insert(series.clone()) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels"
                    .to_string(),
            );
        }
        samples.push(Sample {
            labels: series,
            timestamp_ms: ts_ms,
            value,
        });
    }
    if limit > 0 && samples.len() > limit {
        return Err(format!(
            "exceeded limit of {limit} with {} series",
            samples.len()
        ));
    }
    Ok(samples)
}

fn state_sample(
    metric: &str,
    alert: &RuleAlert,
    state: Option<AlertState>,
    ts_ms: i64,
    value: f64,
) -> Sample {
    let mut labels = alert.labels.clone();
    labels.set(METRIC_NAME.to_string(), metric.to_string());
    if let Some(state) = state {
        labels.set("alertstate".to_string(), state.as_str().to_string());
    }
    Sample {
        labels,
        timestamp_ms: ts_ms,
        value,
    }
}
