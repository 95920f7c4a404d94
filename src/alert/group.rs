//! A rule group: its rules evaluated in order at one timestamp, on a slot of
//! its own within its interval.
//!
//! Invariants, as Prometheus keeps them:
//! - every rule of one evaluation sees the same timestamp, and the series an
//!   earlier rule recorded (they are written before the next rule runs);
//! - a series a rule wrote last time and not this time gets a stale marker
//!   at this timestamp, so it ends at once instead of lingering for the
//!   5-minute lookback; a failed evaluation writes nothing and marks
//!   nothing;
//! - a group's timestamps are `offset + n * interval`, the offset fixed by
//!   the group's file and name exactly as Prometheus fixes it, so groups
//!   spread over the interval, a restart keeps each group on its slot, and
//!   a group run by both sonde and Prometheus evaluates at the same
//!   instants; a slot missed (the evaluation before overran) is skipped,
//!   not caught up.

use std::time::Instant;

use crate::alert::rule::{EvalContext, Health, Rule};
use crate::alert::rulefile::GroupSpec;
use crate::alert::Alert;
use crate::model::{Labels, Sample};
use crate::query::STALE_NAN_BITS;

/// Where recorded series and alert states are written.
pub trait SampleSink {
    fn append(&self, samples: &[Sample]) -> anyhow::Result<()>;
}

/// How a group's alerts go out: Prometheus's resend delay and where the
/// expression can be seen.
pub struct SendOptions<'a> {
    pub resend_delay_ms: i64,
    /// sonde's external URL; an alert's generator URL is its graph page.
    pub external_url: &'a str,
}

#[derive(Clone, Debug)]
pub struct Group {
    pub spec: GroupSpec,
    pub interval_ms: i64,
    pub rules: Vec<Rule>,
    pub last_evaluation_ms: Option<i64>,
    pub evaluation_seconds: f64,
    /// The next slot to evaluate at.
    pub next_ms: i64,
    /// Rule evaluations so far, and how many failed.
    pub rule_evaluations: u64,
    pub rule_failures: u64,
}

impl Group {
    /// A group first evaluated at its first slot after `now_ms`.
    pub fn new(spec: GroupSpec, default_interval_ms: i64, now_ms: i64) -> Group {
        let interval_ms = spec.interval_ms.unwrap_or(default_interval_ms).max(1);
        let rules = spec.rules.iter().cloned().map(Rule::new).collect();
        let mut group = Group {
            spec,
            interval_ms,
            rules,
            last_evaluation_ms: None,
            evaluation_seconds: 0.0,
            next_ms: 0,
            rule_evaluations: 0,
            rule_failures: 0,
        };
        group.next_ms = group.slot_at_or_before(now_ms) + interval_ms;
        group
    }

    /// The group's identity across reloads and restarts.
    pub fn key(&self) -> (String, String) {
        (self.spec.file.clone(), self.spec.name.clone())
    }

    /// The group's slot: the latest evaluation instant at or before `now_ms`.
    pub fn slot_at_or_before(&self, now_ms: i64) -> i64 {
        let offset = slot_offset_ms(&self.spec.file, &self.spec.name, self.interval_ms);
        now_ms - (now_ms - offset).rem_euclid(self.interval_ms)
    }

    /// Evaluates every rule at `ts_ms`, writes what they produce, and
    /// returns the alerts due to be sent.
    pub fn eval(
        &mut self,
        ctx: &EvalContext,
        sink: &dyn SampleSink,
        send: &SendOptions,
        ts_ms: i64,
    ) -> Vec<Alert> {
        let began = Instant::now();
        let mut to_send = Vec::new();
        for rule in &mut self.rules {
            let rule_began = Instant::now();
            match rule.eval(ctx, ts_ms, self.spec.limit) {
                Ok(samples) => {
                    rule.health = Health::Ok;
                    let generator_url = graph_link(
                        send.external_url,
                        &crate::alert::baseline::graph_expr(&rule.spec),
                    );
                    to_send.extend(rule.alerts_to_send(
                        ts_ms,
                        send.resend_delay_ms,
                        self.interval_ms,
                        &generator_url,
                    ));
                    if let Err(err) = write_with_staleness(rule, samples, sink, ts_ms) {
                        rule.health =
                            Health::Err(format!("cannot store the rule's samples: {err:#}"));
                    }
                }
                Err(err) => {
                    self.rule_failures += 1;
                    tracing::warn!(group = %self.spec.name, rule = %rule.spec.name(), "rule evaluation failed: {err}");
                    rule.health = Health::Err(err);
                }
            }
            self.rule_evaluations += 1;
            rule.last_evaluation_ms = Some(ts_ms);
            rule.evaluation_seconds = rule_began.elapsed().as_secs_f64();
        }
        self.last_evaluation_ms = Some(ts_ms);
        self.evaluation_seconds = began.elapsed().as_secs_f64();
        to_send
    }

    /// Carries alert state and written series over from the same group
    /// before a reload: rules match by name and by their place among the
    /// group's rules of that name, as Prometheus matches them.
    pub fn take_state_from(&mut self, old: Group) {
        let mut old_rules = old.rules;
        for (index, rule) in self.rules.iter_mut().enumerate() {
            let ordinal = same_name_ordinal(&self.spec, index);
            let found = old_rules.iter().enumerate().position(|(i, r)| {
                r.spec.name() == rule.spec.name() && same_name_ordinal(&old.spec, i) == ordinal
            });
            if let Some(at) = found {
                let previous = std::mem::replace(&mut old_rules[at], Rule::new(rule.spec.clone()));
                rule.alerts = previous.alerts;
                rule.written = previous.written;
                rule.health = previous.health;
                rule.last_evaluation_ms = previous.last_evaluation_ms;
                rule.evaluation_seconds = previous.evaluation_seconds;
                // Learned bands and recent evaluations hold for the same
                // baseline only.
                if previous.spec == rule.spec {
                    rule.baseline = previous.baseline;
                }
            }
        }
        self.last_evaluation_ms = old.last_evaluation_ms;
        self.evaluation_seconds = old.evaluation_seconds;
        self.rule_evaluations = old.rule_evaluations;
        self.rule_failures = old.rule_failures;
        if old.interval_ms == self.interval_ms {
            self.next_ms = old.next_ms;
        }
    }
}

/// How many rules of the same name come before rule `index`.
pub fn same_name_ordinal(spec: &GroupSpec, index: usize) -> usize {
    let name = spec.rules[index].name();
    spec.rules[..index]
        .iter()
        .filter(|r| r.name() == name)
        .count()
}

fn write_with_staleness(
    rule: &mut Rule,
    samples: Vec<Sample>,
    sink: &dyn SampleSink,
    ts_ms: i64,
) -> anyhow::Result<()> {
    let written: std::collections::HashSet<_> = samples.iter().map(|s| s.labels.clone()).collect();
    let mut batch = samples;
    batch.extend(
        rule.written
            .iter()
            .filter(|labels| !written.contains(*labels))
            .map(|labels| Sample {
                labels: labels.clone(),
                timestamp_ms: ts_ms,
                value: f64::from_bits(STALE_NAN_BITS),
            }),
    );
    rule.written = written;
    sink.append(&batch)
}

/// sonde's graph page for an expression, as Prometheus links an alert to
/// its own: the expression in the table tab.
pub fn graph_link(external_url: &str, expr: &str) -> String {
    let query: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    format!(
        "{}/graph?g0.expr={query}&g0.tab=1",
        external_url.trim_end_matches('/')
    )
}

/// Where in its interval a group evaluates, as Prometheus 2.42 places it,
/// so a group shared with Prometheus writes samples at the same instants:
/// the hash of the label set `{file, name}` modulo the interval counted in
/// nanoseconds, then truncated to the millisecond as Prometheus stamps
/// samples.
fn slot_offset_ms(file: &str, name: &str, interval_ms: i64) -> i64 {
    let hash = Labels::new([("file", file), ("name", name)]).prometheus_hash();
    let interval_ns = interval_ms.unsigned_abs().saturating_mul(1_000_000);
    (hash % interval_ns / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::slot_offset_ms;

    #[test]
    fn slots_fall_where_prometheus_puts_them() {
        // XXH64 of "file\xff/etc/sonde/rules/node.yml\xffname\xffnode\xff"
        // is 0xc2171e7d823b0d8c (libxxhash): modulo 10 s and 1 min in
        // nanoseconds, truncated to milliseconds.
        let file = "/etc/sonde/rules/node.yml";
        assert_eq!(slot_offset_ms(file, "node", 10_000), 2_227);
        assert_eq!(slot_offset_ms(file, "node", 60_000), 12_227);
    }
}
