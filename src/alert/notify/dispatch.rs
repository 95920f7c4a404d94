//! The dispatcher: one thread that owns the alerts, the aggregation groups
//! and their timers, and the notification log, as Alertmanager's
//! dispatcher, aggregation groups and notification pipeline do.
//!
//! An alert received is merged with the one of the same label set (the
//! earliest start wins; the newest end, unless an older firing one ends
//! later), stored by fingerprint, and put into one aggregation group per
//! route it matches, keyed by the route and the alert's `group_by` labels.
//!
//! Timing invariants, per group:
//! - The first flush is `group_wait` after the group is created, or at
//!   once when an alert joins a group that has never flushed and that
//!   alert started `group_wait` ago or more.
//! - After a flush the next is `group_interval` later, always; a flush
//!   while the previous one is still being delivered is skipped.
//! - A flush notifies an integration only when the notification log says
//!   there is news: a firing alert it was not told of, every alert now
//!   resolved after some were told firing, or (with `send_resolved`) an
//!   alert newly resolved; otherwise only once `repeat_interval` has passed
//!   since it was last notified. So an unchanged firing group is repeated
//!   every `repeat_interval`, rounded up to the next flush.
//! - A delivery is retried until the group's next flush is due, then given
//!   up: the log did not record it, so that flush tries again.
//! - Silenced and inhibited alerts are left out of a flush; a flush left
//!   with no alert notifies no one and logs nothing.
//! - Once a flush has been delivered to every integration that needed it,
//!   the group forgets its resolved alerts that have not changed since; a
//!   group with no alert left is removed.
//! - A reload rebuilds the groups from the stored alerts, under the same
//!   first-flush rule (so a group of alerts older than `group_wait` flushes
//!   at once); the notification log keeps them from repeating what was
//!   already told.
//! - Stopping waits (5 s at most) for the deliveries under way, so the log
//!   records them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver as Inbox, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::inhibit::Inhibitor;
use super::nflog::{Entry, NotificationLog};
use super::notification::{alert_order, fingerprint, Fingerprint, Notification, NotifiedAlert};
use super::receivers::{Delivery, Report, Worker};
use super::route::{group_key, Route};
use super::{Plan, Rules, State, ViewAlert, ViewGroup};
use crate::alert::Alert;
use crate::collect::now_ms;
use crate::model::Labels;

/// Most distinct alerts held; alerts with new label sets beyond it are
/// dropped (and counted) until some resolve.
pub const MAX_ALERTS: usize = 10_000;
/// How often resolved alerts and empty groups are looked for, while the
/// dispatcher holds any.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(1);
/// How often expired silences and old notification log entries are looked
/// for: their retention is hours, and a dispatcher with nothing to send
/// wakes only for this.
const GARBAGE_EVERY: Duration = Duration::from_secs(60);
/// Longest a stopping notifier waits for deliveries under way.
const DRAIN: Duration = Duration::from_secs(5);

pub enum Message {
    Alerts(Vec<Alert>),
    Reload(Box<Plan>),
    Delivered(Report),
    Stop,
}

/// One aggregation group.
struct Group {
    receiver: String,
    labels: Labels,
    group_interval: Duration,
    group_wait: Duration,
    repeat_interval: Duration,
    alerts: BTreeMap<Fingerprint, Alert>,
    next_flush: Instant,
    flushed: bool,
    in_flight: Option<InFlight>,
}

/// A group's identity: its route's id and its group key.
type GroupId = (usize, String);

/// A flush being delivered.
struct InFlight {
    flush: u64,
    pending: usize,
    failed: bool,
    /// The resolved alerts it told of, as they were then.
    resolved: Vec<(Fingerprint, Alert)>,
}

pub struct Dispatcher {
    state: Arc<State>,
    rules: Arc<Rules>,
    workers: HashMap<String, Vec<Worker>>,
    alerts: HashMap<Fingerprint, Alert>,
    /// By route id and group key.
    groups: HashMap<GroupId, Group>,
    nflog: NotificationLog,
    external_url: String,
    /// The channel's own sending end, for the workers' reports.
    reports: SyncSender<Message>,
    flushes: u64,
}

impl Dispatcher {
    pub fn new(
        plan: Plan,
        state: Arc<State>,
        nflog: NotificationLog,
        external_url: String,
        reports: SyncSender<Message>,
    ) -> anyhow::Result<Dispatcher> {
        let mut dispatcher = Dispatcher {
            state,
            rules: Arc::new(Rules::default()),
            workers: HashMap::new(),
            alerts: HashMap::new(),
            groups: HashMap::new(),
            nflog,
            external_url,
            reports,
            flushes: 0,
        };
        dispatcher.apply(plan)?;
        Ok(dispatcher)
    }

    /// Handles messages and flushes groups until told to stop (or every
    /// sender is gone).
    pub fn run(mut self, inbox: Inbox<Message>) {
        let mut next_maintenance = Instant::now();
        let mut next_garbage = Instant::now();
        loop {
            let next_flush = self.groups.values().map(|g| g.next_flush).min();
            let idle = self.alerts.is_empty() && self.groups.is_empty();
            let next_look = if idle { next_garbage } else { next_maintenance };
            let wake = next_flush.map_or(next_look, |t| t.min(next_look));
            match inbox.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(Message::Stop) => return self.drain(&inbox),
                Err(RecvTimeoutError::Disconnected) => return,
                Ok(Message::Alerts(alerts)) => {
                    for alert in alerts {
                        self.receive(alert);
                    }
                    self.publish();
                }
                Ok(Message::Reload(plan)) => {
                    if let Err(err) = self.apply(*plan) {
                        tracing::error!("notify: reload failed, the old receivers stay: {err:#}");
                    }
                    self.publish();
                }
                Ok(Message::Delivered(report)) => self.delivered(report),
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            let due: Vec<GroupId> = self
                .groups
                .iter()
                .filter(|(_, g)| g.next_flush <= now)
                .map(|(key, _)| key.clone())
                .collect();
            for id in due {
                self.flush(&id);
            }
            if next_maintenance <= now {
                next_maintenance = now + MAINTENANCE_EVERY;
                self.maintain();
            }
            if next_garbage <= now {
                next_garbage = now + GARBAGE_EVERY;
                self.collect_garbage();
            }
        }
    }

    /// At stop: waits (at most [`DRAIN`]) for the deliveries under way to
    /// report, so the log keeps what they told and a restart does not tell
    /// it again. Workers no longer retry once stopping.
    fn drain(&mut self, inbox: &Inbox<Message>) {
        self.workers.clear();
        let deadline = Instant::now() + DRAIN;
        while self.groups.values().any(|g| g.in_flight.is_some()) {
            match inbox.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Message::Delivered(report)) => self.delivered(report),
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }

    /// Takes a new plan: new workers, rules, and groups rebuilt from the
    /// stored alerts.
    fn apply(&mut self, plan: Plan) -> anyhow::Result<()> {
        let mut workers = HashMap::new();
        let mut counters = Vec::new();
        for receiver in plan.receivers {
            let mut started = Vec::new();
            for integration in receiver.integrations {
                let counter = self.state.counters(&receiver.name, integration.kind());
                counters.push((receiver.name.clone(), integration.kind(), counter.clone()));
                let reports = self.reports.clone();
                started.push(Worker::start(
                    integration,
                    &receiver.name,
                    counter,
                    move |report| {
                        let _ = reports.send(Message::Delivered(report));
                    },
                    self.state.stop.clone(),
                )?);
            }
            workers.insert(receiver.name, started);
        }
        self.workers = workers;
        *self.state.counters.lock().expect("lock poisoned") = counters;
        self.rules = Arc::new(plan.rules);
        self.state.silences.set_retention(self.rules.retention);
        self.groups.clear();
        let alerts: Vec<Alert> = self.alerts.values().cloned().collect();
        for alert in alerts {
            self.route(&alert, fingerprint(&alert.labels));
        }
        Ok(())
    }

    /// Stores an alert (merged with the one it updates) and routes it.
    fn receive(&mut self, alert: Alert) {
        let stats = &self.state.stats;
        stats.received.fetch_add(1, Ordering::Relaxed);
        if alert.labels.is_empty() || alert.ends_at_ms < alert.starts_at_ms {
            stats.invalid.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let fp = fingerprint(&alert.labels);
        let merged = match self.alerts.get(&fp) {
            Some(old) if overlaps(old, &alert) => merge(old, alert),
            Some(_) => alert,
            None if self.alerts.len() >= MAX_ALERTS => {
                stats.over_limit.fetch_add(1, Ordering::Relaxed);
                return;
            }
            None => alert,
        };
        self.alerts.insert(fp, merged.clone());
        self.route(&merged, fp);
    }

    /// Puts an alert into the group of every route it matches.
    fn route(&mut self, alert: &Alert, fp: Fingerprint) {
        let Some(root) = &self.rules.route else {
            return;
        };
        let now = Instant::now();
        let now_ms = now_ms();
        for route in root.matches(&alert.labels) {
            let labels = route.group_labels(&alert.labels);
            let id = (route.id, group_key(route, &labels));
            let group = self
                .groups
                .entry(id)
                .or_insert_with(|| new_group(route, labels, now));
            group.alerts.insert(fp, alert.clone());
            let waited = alert.starts_at_ms + group.group_wait.as_millis() as i64 <= now_ms;
            if !group.flushed && waited {
                group.next_flush = now;
            }
        }
    }

    fn flush(&mut self, id: &GroupId) {
        let now = Instant::now();
        let now_ms = now_ms();
        let Some(group) = self.groups.get_mut(id) else {
            return;
        };
        let key = id.1.as_str();
        group.next_flush = now + group.group_interval;
        group.flushed = true;
        if group.in_flight.is_some() {
            return;
        }
        let firing_now = self
            .alerts
            .iter()
            .filter(|(_, a)| !a.resolved_at(now_ms))
            .map(|(fp, a)| (*fp, &a.labels));
        let inhibitor = Inhibitor::new(&self.rules.inhibit_rules, firing_now);
        let mut ordered: Vec<(&Fingerprint, &Alert)> = group.alerts.iter().collect();
        ordered.sort_by(|(_, a), (_, b)| alert_order(&a.labels, &b.labels));
        let shown: Vec<NotifiedAlert> = ordered
            .into_iter()
            .filter(|(_, a)| {
                self.state
                    .silences
                    .silenced_by(&a.labels, now_ms)
                    .is_empty()
                    && inhibitor.inhibited_by(&a.labels).is_none()
            })
            .map(|(fp, a)| NotifiedAlert {
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                starts_at_ms: a.starts_at_ms,
                ends_at_ms: a.resolved_at(now_ms).then_some(a.ends_at_ms),
                generator_url: a.generator_url.clone(),
                fingerprint: *fp,
            })
            .collect();
        let resolved_alerts: Vec<(Fingerprint, Alert)> = group
            .alerts
            .iter()
            .filter(|(_, a)| a.resolved_at(now_ms))
            .map(|(fp, a)| (*fp, a.clone()))
            .collect();
        self.flushes += 1;
        let mut in_flight = InFlight {
            flush: self.flushes,
            pending: 0,
            failed: false,
            resolved: resolved_alerts,
        };
        if !shown.is_empty() {
            let firing: BTreeSet<Fingerprint> = shown
                .iter()
                .filter(|a| !a.resolved())
                .map(|a| a.fingerprint)
                .collect();
            let resolved: BTreeSet<Fingerprint> = shown
                .iter()
                .filter(|a| a.resolved())
                .map(|a| a.fingerprint)
                .collect();
            let notification = Arc::new(Notification {
                receiver: group.receiver.clone(),
                group_key: key.to_string(),
                group_labels: group.labels.clone(),
                alerts: shown,
                external_url: self.external_url.clone(),
            });
            let only_firing = Arc::new(Notification {
                alerts: notification.firing().cloned().collect(),
                ..(*notification).clone()
            });
            let workers = self
                .workers
                .get(&group.receiver)
                .map_or(&[][..], Vec::as_slice);
            for worker in workers {
                let last = self.nflog.get(key, &group.receiver, worker.kind);
                let repeat = group.repeat_interval;
                if !Entry::needs_update(
                    last,
                    &firing,
                    &resolved,
                    worker.send_resolved,
                    repeat,
                    now_ms,
                ) {
                    continue;
                }
                let report = Report {
                    route: id.0,
                    group_key: key.to_string(),
                    receiver: group.receiver.clone(),
                    integration: worker.kind,
                    firing: firing.iter().copied().collect(),
                    resolved: resolved.iter().copied().collect(),
                    flush: in_flight.flush,
                    delivered: true,
                };
                if !worker.send_resolved && firing.is_empty() {
                    // Nothing this integration wants to hear, but the log
                    // must learn the alerts resolved.
                    log(&mut self.nflog, &report);
                    continue;
                }
                let delivery = Delivery {
                    notification: if worker.send_resolved {
                        notification.clone()
                    } else {
                        only_firing.clone()
                    },
                    deadline: group.next_flush,
                    report,
                };
                if worker.queue(delivery) {
                    in_flight.pending += 1;
                } else {
                    in_flight.failed = true;
                }
            }
        }
        if in_flight.pending == 0 {
            complete(group, in_flight);
        } else {
            group.in_flight = Some(in_flight);
        }
    }

    fn delivered(&mut self, report: Report) {
        if report.delivered {
            log(&mut self.nflog, &report);
        }
        let id = (report.route, report.group_key.clone());
        let Some(group) = self.groups.get_mut(&id) else {
            return;
        };
        let Some(in_flight) = &mut group.in_flight else {
            return;
        };
        if in_flight.flush != report.flush {
            return;
        }
        in_flight.pending -= 1;
        in_flight.failed |= !report.delivered;
        if in_flight.pending == 0 {
            let done = group.in_flight.take().expect("checked above");
            complete(group, done);
        }
    }

    /// Forgets resolved alerts, empty groups, expired silences and old log
    /// entries.
    fn maintain(&mut self) {
        let now_ms = now_ms();
        let before = self.alerts.len();
        self.alerts.retain(|_, a| !a.resolved_at(now_ms));
        self.groups
            .retain(|_, g| !g.alerts.is_empty() || g.in_flight.is_some());
        if self.alerts.len() != before {
            self.publish();
        }
        self.state
            .stats
            .groups
            .store(self.groups.len() as u64, Ordering::Relaxed);
    }

    /// Deletes silences and notification log entries past their retention.
    fn collect_garbage(&mut self) {
        let now_ms = now_ms();
        if let Err(err) = self.nflog.collect_garbage(now_ms, self.rules.retention) {
            tracing::warn!("notify: cannot prune the notification log: {err:#}");
        }
        if let Err(err) = self.state.silences.collect_garbage(now_ms) {
            tracing::warn!("notify: cannot prune expired silences: {err:#}");
        }
    }

    /// Hands the API the alerts as they are now.
    fn publish(&self) {
        let alerts: Vec<ViewAlert> = self
            .alerts
            .iter()
            .map(|(fp, alert)| ViewAlert {
                fingerprint: *fp,
                alert: alert.clone(),
                receivers: self
                    .rules
                    .route
                    .as_ref()
                    .map_or(Vec::new(), |root| receivers(root, &alert.labels)),
            })
            .collect();
        let groups: Vec<ViewGroup> = self
            .groups
            .values()
            .map(|g| ViewGroup {
                receiver: g.receiver.clone(),
                labels: g.labels.clone(),
                alerts: g.alerts.keys().copied().collect(),
            })
            .collect();
        let mut view = self.state.view.write().expect("lock poisoned");
        view.alerts = Arc::new(alerts);
        view.groups = Arc::new(groups);
        view.rules = self.rules.clone();
    }
}

fn new_group(route: &Route, labels: Labels, now: Instant) -> Group {
    Group {
        receiver: route.receiver.clone(),
        labels,
        group_interval: route.group_interval,
        group_wait: route.group_wait,
        repeat_interval: route.repeat_interval,
        alerts: BTreeMap::new(),
        next_flush: now + route.group_wait,
        flushed: false,
        in_flight: None,
    }
}

/// The receivers an alert's routes name, each once.
fn receivers(root: &Route, labels: &Labels) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for route in root.matches(labels) {
        if !names.contains(&route.receiver) {
            names.push(route.receiver.clone());
        }
    }
    names
}

fn log(nflog: &mut NotificationLog, report: &Report) {
    let entry = Entry {
        firing: report.firing.iter().copied().collect(),
        resolved: report.resolved.iter().copied().collect(),
        sent_at_ms: now_ms(),
    };
    if let Err(err) = nflog.log(
        &report.group_key,
        &report.receiver,
        report.integration,
        entry,
    ) {
        tracing::warn!("notify: cannot write the notification log: {err:#}");
    }
}

/// A flush is over: if every delivery succeeded, the resolved alerts it
/// told of leave the group, unless they changed meanwhile.
fn complete(group: &mut Group, done: InFlight) {
    if done.failed {
        return;
    }
    for (fp, told) in done.resolved {
        if group.alerts.get(&fp) == Some(&told) {
            group.alerts.remove(&fp);
        }
    }
}

/// Whether `new` updates `old` (their active times overlap) rather than
/// starting anew.
fn overlaps(old: &Alert, new: &Alert) -> bool {
    (new.ends_at_ms > old.starts_at_ms && new.ends_at_ms < old.ends_at_ms)
        || (new.starts_at_ms >= old.starts_at_ms && new.starts_at_ms <= old.ends_at_ms)
}

/// Alertmanager's merge, `new` being the more recent: its labels and
/// annotations, the earliest start, and its end unless `old` (firing, or
/// both resolved) ends later.
fn merge(old: &Alert, new: Alert) -> Alert {
    let now_ms = now_ms();
    let mut merged = new;
    merged.starts_at_ms = merged.starts_at_ms.min(old.starts_at_ms);
    let new_resolved = merged.resolved_at(now_ms);
    let later = old.ends_at_ms > merged.ends_at_ms;
    if later && (!new_resolved || old.resolved_at(now_ms)) {
        merged.ends_at_ms = old.ends_at_ms;
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(starts: i64, ends: i64) -> Alert {
        Alert {
            labels: Labels::new([("alertname", "X")]),
            annotations: Labels::default(),
            value: 1.0,
            starts_at_ms: starts,
            ends_at_ms: ends,
            generator_url: String::new(),
        }
    }

    #[test]
    fn merging_keeps_the_first_start_and_resolves() {
        let now = now_ms();
        let firing = alert(now - 60_000, now + 60_000);
        let refreshed = merge(&firing, alert(now - 1000, now + 120_000));
        assert_eq!(refreshed.starts_at_ms, now - 60_000);
        assert_eq!(refreshed.ends_at_ms, now + 120_000);
        let resolved = alert(now - 1000, now - 500);
        assert!(overlaps(&firing, &resolved));
        let merged = merge(&firing, resolved);
        assert!(merged.resolved_at(now), "a resolution ends a firing alert");
        assert!(!overlaps(&alert(0, 10), &alert(20, 30)));
    }
}
