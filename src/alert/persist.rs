//! Alert state that outlives a restart: each group's alerts, saved in
//! `sonde.db` after every evaluation, restored when sonde starts.
//!
//! Prometheus restores only how long an alert has been active, from its
//! `ALERTS_FOR_STATE` series, and only for rules whose `for` is at least the
//! grace period: a firing alert of a shorter `for` goes back to pending, and
//! an Alertmanager that hears nothing for four resend periods resolves it,
//! then gets it firing again. sonde saves the whole state machine instead,
//! so that after a restart:
//! - nothing is restored when the state is older than the outage tolerance
//!   (as Prometheus);
//! - a firing alert is still firing, since the same instant, and a resolved
//!   one is still re-sent as resolved: no spurious resolve, no second start;
//! - a firing alert kept by `keep_firing_for` keeps its deadline;
//! - a pending alert counts its `for` as Prometheus does: the time it was
//!   down does not count, and at least the grace period is left when it
//!   would fire (rules whose `for` is under the grace period start over).

use std::path::Path;

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::alert::group::{same_name_ordinal, Group};
use crate::alert::rule::{AlertState, RuleAlert};
use crate::alert::rulefile::RuleKind;
use crate::model::Labels;
use crate::store::SideDatabase;

/// How restored state is judged, from `[alerting]`.
#[derive(Clone, Copy, Debug)]
pub struct RestorePolicy {
    pub outage_tolerance_ms: i64,
    pub for_grace_period_ms: i64,
}

pub struct AlertStates {
    db: SideDatabase,
    /// Groups whose saved state holds no alert: saving them again without
    /// alerts would change nothing a restore reads.
    saved_empty: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
}

#[derive(Serialize, Deserialize)]
struct SavedAlert {
    rule: String,
    ordinal: usize,
    labels: Vec<(String, String)>,
    annotations: Vec<(String, String)>,
    state: String,
    value: f64,
    active_at: i64,
    fired_at: Option<i64>,
    resolved_at: Option<i64>,
    last_sent_at: Option<i64>,
    valid_until: i64,
    keep_firing_since: Option<i64>,
}

impl AlertStates {
    /// Opens the database the store keeps (its migrations made the table).
    pub fn open(database: &Path) -> anyhow::Result<AlertStates> {
        let db = SideDatabase::new(database);
        db.with(|_| Ok(()))?;
        Ok(AlertStates {
            db,
            saved_empty: Default::default(),
        })
    }

    /// Saves the group's alerts as of its last evaluation.
    pub fn save(&self, group: &Group) -> anyhow::Result<()> {
        let Some(evaluated_at) = group.last_evaluation_ms else {
            return Ok(());
        };
        let mut saved = Vec::new();
        for (index, rule) in group.rules.iter().enumerate() {
            for alert in rule.alerts.values() {
                saved.push(SavedAlert {
                    rule: rule.spec.name().to_string(),
                    ordinal: same_name_ordinal(&group.spec, index),
                    labels: pairs(&alert.labels),
                    annotations: pairs(&alert.annotations),
                    state: alert.state.as_str().to_string(),
                    value: alert.value,
                    active_at: alert.active_at_ms,
                    fired_at: alert.fired_at_ms,
                    resolved_at: alert.resolved_at_ms,
                    last_sent_at: alert.last_sent_at_ms,
                    valid_until: alert.valid_until_ms,
                    keep_firing_since: alert.keep_firing_since_ms,
                });
            }
        }
        let key = (group.spec.file.clone(), group.spec.name.clone());
        let mut saved_empty = self.saved_empty.lock().expect("lock poisoned");
        if saved.is_empty() && saved_empty.contains(&key) {
            return Ok(());
        }
        let json = serde_json::to_string(&saved)?;
        self.db.with(|conn| {
            conn.execute(
                "INSERT INTO alert_group_state (file, name, evaluated_at, alerts) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (file, name) DO UPDATE SET evaluated_at = excluded.evaluated_at, alerts = excluded.alerts",
                params![group.spec.file, group.spec.name, evaluated_at, json],
            )?;
            Ok(())
        })?;
        if saved.is_empty() {
            saved_empty.insert(key);
        } else {
            saved_empty.remove(&key);
        }
        Ok(())
    }

    /// Gives the group the alerts it had when sonde stopped, judged by
    /// `policy` at `now_ms`.
    pub fn restore(
        &self,
        group: &mut Group,
        now_ms: i64,
        policy: RestorePolicy,
    ) -> anyhow::Result<usize> {
        let row: Option<(i64, String)> = self.db.with(|conn| {
            Ok(conn
                .query_row(
                    "SELECT evaluated_at, alerts FROM alert_group_state WHERE file = ?1 AND name = ?2",
                    params![group.spec.file, group.spec.name],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?)
        })?;
        let Some((down_at, json)) = row else {
            return Ok(0);
        };
        if now_ms - down_at > policy.outage_tolerance_ms {
            return Ok(0);
        }
        let saved: Vec<SavedAlert> = serde_json::from_str(&json)?;
        let mut restored = 0;
        for alert in saved {
            let Some(index) = (0..group.rules.len()).find(|&i| {
                group.rules[i].spec.name() == alert.rule
                    && same_name_ordinal(&group.spec, i) == alert.ordinal
            }) else {
                continue;
            };
            let RuleKind::Alerting { for_ms, .. } = group.rules[index].spec.kind else {
                continue;
            };
            let Some(state) = AlertState::parse(&alert.state) else {
                continue;
            };
            let Some(active_at_ms) =
                restored_active_at(state, alert.active_at, for_ms, down_at, now_ms, policy)
            else {
                continue;
            };
            let labels = Labels::new(alert.labels);
            group.rules[index].alerts.insert(
                labels.clone(),
                RuleAlert {
                    labels,
                    annotations: Labels::new(alert.annotations),
                    state,
                    value: alert.value,
                    active_at_ms,
                    fired_at_ms: alert.fired_at,
                    resolved_at_ms: alert.resolved_at,
                    last_sent_at_ms: alert.last_sent_at,
                    valid_until_ms: alert.valid_until,
                    keep_firing_since_ms: alert.keep_firing_since,
                },
            );
            restored += 1;
        }
        Ok(restored)
    }
}

/// When a restored alert counts as active from, or `None` when a pending
/// alert starts over (Prometheus's rule for `for` under the grace period).
fn restored_active_at(
    state: AlertState,
    active_at: i64,
    hold_ms: i64,
    down_at: i64,
    now_ms: i64,
    policy: RestorePolicy,
) -> Option<i64> {
    if state != AlertState::Pending {
        return Some(active_at);
    }
    if hold_ms < policy.for_grace_period_ms {
        return None;
    }
    let remaining = hold_ms - (down_at - active_at);
    Some(if remaining <= 0 {
        active_at
    } else if remaining < policy.for_grace_period_ms {
        now_ms + policy.for_grace_period_ms - hold_ms
    } else {
        active_at + (now_ms - down_at)
    })
}

fn pairs(labels: &Labels) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RestorePolicy = RestorePolicy {
        outage_tolerance_ms: 3_600_000,
        for_grace_period_ms: 600_000,
    };
    const MIN: i64 = 60_000;

    #[test]
    fn pending_alerts_count_their_for_as_prometheus_does() {
        // for 30m, active 10m before going down, down 5m: 20m left after.
        let at = restored_active_at(AlertState::Pending, 0, 30 * MIN, 10 * MIN, 15 * MIN, POLICY);
        assert_eq!(at, Some(5 * MIN));
        // for 30m, 25m done: 5m left, less than the grace period, so 10m.
        let at = restored_active_at(AlertState::Pending, 0, 30 * MIN, 25 * MIN, 26 * MIN, POLICY);
        assert_eq!(at, Some(26 * MIN + 10 * MIN - 30 * MIN));
        // for under the grace period: starts over.
        assert_eq!(
            restored_active_at(AlertState::Pending, 0, 5 * MIN, MIN, 2 * MIN, POLICY),
            None
        );
        // firing stays firing since when it was.
        assert_eq!(
            restored_active_at(AlertState::Firing, 7, 5 * MIN, MIN, 2 * MIN, POLICY),
            Some(7)
        );
    }
}
