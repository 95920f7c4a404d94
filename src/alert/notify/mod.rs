//! The built-in notifier, for the server whose owner runs no Alertmanager:
//! Alertmanager 0.25's routing, grouping, receivers (webhook, Slack,
//! Telegram, e-mail), silences and inhibition, embedded in sonde and kept
//! in sonde.db.
//!
//! - [`config`]: `[notify]` in sonde's TOML; a [`Plan`] is that config
//!   checked, its secrets read.
//! - `route` and `matcher`: the routing tree and its matchers.
//! - `dispatch`: the thread that owns alerts, aggregation groups, timers
//!   and the notification log (`nflog`); its module doc lists the
//!   timing rules.
//! - `receivers`: the integrations, each delivering from a worker thread
//!   with retries; `notification` is what they are told.
//! - [`silence`] and `inhibit`: what mutes an alert.
//!
//! [`Notifier::send`] never blocks: alerts go through a bounded channel
//! and a full channel drops them (counted). HTTP handlers reach silences
//! and alerts through [`Notifier`], never the dispatcher's own state.
//!
//! Every map stays bounded:
//! - alerts by fingerprint: at most `dispatch::MAX_ALERTS`; a resolved
//!   alert is forgotten within a second of resolving (the rule engine
//!   tells a resolution more than once; each time merges alike);
//! - aggregation groups: one per (route, group labels) of a stored or
//!   not-yet-notified alert; a group forgets its resolved alerts once they
//!   are notified, and is removed when empty;
//! - the notification log: one entry per group and integration notified
//!   within `retention`, deleted `retention` after it was last written;
//! - silences: expired ones are deleted `retention` after their end;
//! - delivery queues: `receivers`' bounded queue per integration;
//!   counters: one set per configured integration.

pub mod config;
mod dispatch;
mod inhibit;
mod matcher;
mod nflog;
mod notification;
mod receivers;
mod route;
pub mod silence;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

pub use config::NotifyConfig;
use dispatch::{Dispatcher, Message};
use inhibit::{InhibitRule, Inhibitor};
pub use matcher::parse as parse_matcher;
pub use matcher::to_string as format_matcher;
pub use notification::{fingerprint_hex, labels_json, rfc3339_millis, Fingerprint};
use receivers::{Counters, Receiver};
use route::Route;
use silence::Silences;

use crate::alert::Alert;
use crate::model::Family;

/// Batches of alerts waiting for the dispatcher; beyond, `send` drops.
const INBOX: usize = 256;

/// A checked `[notify]`: the receivers with their secrets read, and the
/// rules.
pub struct Plan {
    receivers: Vec<Receiver>,
    rules: Rules,
}

/// What decides where alerts go and what mutes them.
#[derive(Default)]
pub struct Rules {
    /// `None` when no receiver is configured: alerts are kept (for the
    /// API and inhibition) and notify no one.
    route: Option<Route>,
    inhibit_rules: Vec<InhibitRule>,
    retention: Duration,
}

impl Plan {
    /// Checks `config`, reading its secret files; errors name the key.
    pub fn build(config: &NotifyConfig) -> anyhow::Result<Plan> {
        let mut receivers = Vec::new();
        let mut names = HashSet::new();
        for (index, receiver) in config.receivers.iter().enumerate() {
            let built = Receiver::build(receiver, index)?;
            if !names.insert(built.name.clone()) {
                anyhow::bail!(
                    "key notify.receivers[{index}].name: another receiver is named {:?}",
                    built.name
                );
            }
            receivers.push(built);
        }
        let names: Vec<&str> = config.receivers.iter().map(|r| r.name.as_str()).collect();
        let unrouted = config.route.receiver.is_none() && config.route.routes.is_empty();
        let route = if receivers.is_empty() && unrouted {
            None
        } else {
            Some(Route::build(&config.route, &names)?)
        };
        let inhibit_rules = config
            .inhibit_rules
            .iter()
            .enumerate()
            .map(|(index, rule)| InhibitRule::build(rule, index))
            .collect::<anyhow::Result<_>>()?;
        if config.retention.is_zero() {
            anyhow::bail!("key notify.retention: expected more than 0s");
        }
        Ok(Plan {
            receivers,
            rules: Rules {
                route,
                inhibit_rules,
                retention: config.retention,
            },
        })
    }
}

/// The database the store has migrated, checked that it has.
fn connect(db_file: &Path) -> anyhow::Result<crate::store::SideDatabase> {
    let db = crate::store::SideDatabase::new(db_file);
    let migrated: bool = db.with(|conn| {
        Ok(conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'notify_silences')",
            [],
            |row| row.get(0),
        )?)
    })?;
    if !migrated {
        anyhow::bail!(
            "{} has no notifier tables: open the store first (it applies the migrations)",
            db_file.display()
        );
    }
    Ok(db)
}

/// The dispatcher's alerts as the API last saw them.
#[derive(Default)]
struct View {
    alerts: Arc<Vec<ViewAlert>>,
    groups: Arc<Vec<ViewGroup>>,
    rules: Arc<Rules>,
}

/// An aggregation group: its receiver, labels and alerts' fingerprints.
struct ViewGroup {
    receiver: String,
    labels: crate::model::Labels,
    alerts: Vec<Fingerprint>,
}

struct ViewAlert {
    fingerprint: Fingerprint,
    alert: Alert,
    receivers: Vec<String>,
}

#[derive(Default)]
struct Stats {
    received: AtomicU64,
    dropped: AtomicU64,
    invalid: AtomicU64,
    over_limit: AtomicU64,
    groups: AtomicU64,
}

/// What the dispatcher shares with the handle.
struct State {
    silences: Silences,
    view: RwLock<View>,
    stats: Stats,
    counters: Mutex<Vec<(String, &'static str, Arc<Counters>)>>,
    stop: Arc<AtomicBool>,
    started_ms: i64,
}

impl State {
    /// The counters of an integration, the same across reloads.
    fn counters(&self, receiver: &str, kind: &'static str) -> Arc<Counters> {
        self.counters
            .lock()
            .expect("lock poisoned")
            .iter()
            .find(|(r, k, _)| r == receiver && *k == kind)
            .map_or_else(Arc::default, |(_, _, c)| c.clone())
    }
}

/// Whether an alert notifies, and what mutes it if not.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertStatus {
    pub alert: Alert,
    pub fingerprint: Fingerprint,
    /// The receivers its routes name.
    pub receivers: Vec<String>,
    /// Ids of the active silences that match it.
    pub silenced_by: Vec<String>,
    /// Fingerprints of the firing alerts that inhibit it.
    pub inhibited_by: Vec<Fingerprint>,
}

impl AlertStatus {
    /// Alertmanager's state: "suppressed" when silenced or inhibited.
    pub fn state(&self) -> &'static str {
        if self.silenced_by.is_empty() && self.inhibited_by.is_empty() {
            "active"
        } else {
            "suppressed"
        }
    }
}

/// An aggregation group with its firing alerts, as
/// `GET /api/v2/alerts/groups` lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertGroup {
    pub receiver: String,
    pub labels: crate::model::Labels,
    pub alerts: Vec<AlertStatus>,
}

/// The running notifier; clones share it. It stops when the last clone is
/// dropped.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    inbox: SyncSender<Message>,
    state: Arc<State>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        let _ = self.inbox.send(Message::Stop);
        if let Some(thread) = self.thread.lock().expect("lock poisoned").take() {
            let _ = thread.join();
        }
    }
}

impl Notifier {
    /// Starts the dispatcher on `database` (already migrated by the
    /// store); `external_url` is where notifications say sonde is.
    pub fn start(
        config: &NotifyConfig,
        database: &Path,
        external_url: &str,
    ) -> anyhow::Result<Notifier> {
        let plan = Plan::build(config)?;
        let silences = Silences::open(database, config.retention)?;
        let nflog = nflog::NotificationLog::open(database)?;
        let state = Arc::new(State {
            silences,
            view: RwLock::new(View::default()),
            stats: Stats::default(),
            counters: Mutex::new(Vec::new()),
            stop: Arc::new(AtomicBool::new(false)),
            started_ms: crate::collect::now_ms(),
        });
        let (inbox, messages) = std::sync::mpsc::sync_channel(INBOX);
        let external_url = external_url.trim_end_matches('/').to_string();
        let dispatcher = Dispatcher::new(plan, state.clone(), nflog, external_url, inbox.clone())?;
        let thread = std::thread::Builder::new()
            .name("notify-dispatch".into())
            .spawn(move || dispatcher.run(messages))?;
        Ok(Notifier {
            inner: Arc::new(Inner {
                inbox,
                state,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Hands alerts over, as `POST /api/v2/alerts` does; never blocks.
    pub fn send(&self, alerts: Vec<Alert>) {
        if alerts.is_empty() {
            return;
        }
        let count = alerts.len() as u64;
        match self.inner.inbox.try_send(Message::Alerts(alerts)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.inner
                    .state
                    .stats
                    .dropped
                    .fetch_add(count, Ordering::Relaxed);
            }
        }
    }

    /// Takes a new `[notify]`; a bad one is refused and the running one
    /// stays.
    pub fn reload(&self, config: &NotifyConfig) -> anyhow::Result<()> {
        let plan = Plan::build(config)?;
        self.inner
            .inbox
            .send(Message::Reload(Box::new(plan)))
            .map_err(|_| anyhow::anyhow!("the notifier has stopped"))
    }

    pub fn silences(&self) -> &Silences {
        &self.inner.state.silences
    }

    /// When the notifier started, in milliseconds since the epoch.
    pub fn started_ms(&self) -> i64 {
        self.inner.state.started_ms
    }

    /// The alerts that fire now, each with what mutes it.
    pub fn alerts(&self) -> Vec<AlertStatus> {
        let now_ms = crate::collect::now_ms();
        let (alerts, rules) = {
            let view = self.inner.state.view.read().expect("lock poisoned");
            (view.alerts.clone(), view.rules.clone())
        };
        let firing = alerts
            .iter()
            .filter(|v| !v.alert.resolved_at(now_ms))
            .map(|v| (v.fingerprint, &v.alert.labels));
        let inhibitor = Inhibitor::new(&rules.inhibit_rules, firing.clone());
        let mut statuses: Vec<AlertStatus> = alerts
            .iter()
            .filter(|v| !v.alert.resolved_at(now_ms))
            .map(|v| AlertStatus {
                alert: v.alert.clone(),
                fingerprint: v.fingerprint,
                receivers: v.receivers.clone(),
                silenced_by: self.silences().silenced_by(&v.alert.labels, now_ms),
                inhibited_by: inhibitor
                    .inhibited_by(&v.alert.labels)
                    .into_iter()
                    .collect(),
            })
            .collect();
        statuses.sort_by(|a, b| a.alert.labels.cmp(&b.alert.labels));
        statuses
    }

    /// The aggregation groups with their firing alerts (a group whose
    /// alerts all resolved is left out), by labels then receiver.
    pub fn alert_groups(&self) -> Vec<AlertGroup> {
        let groups = self
            .inner
            .state
            .view
            .read()
            .expect("lock poisoned")
            .groups
            .clone();
        let statuses: std::collections::HashMap<Fingerprint, AlertStatus> = self
            .alerts()
            .into_iter()
            .map(|status| (status.fingerprint, status))
            .collect();
        let mut listed: Vec<AlertGroup> = groups
            .iter()
            .map(|group| AlertGroup {
                receiver: group.receiver.clone(),
                labels: group.labels.clone(),
                alerts: group
                    .alerts
                    .iter()
                    .filter_map(|fp| statuses.get(fp).cloned())
                    .collect(),
            })
            .filter(|group| !group.alerts.is_empty())
            .collect();
        listed.sort_by(|a, b| (&a.labels, &a.receiver).cmp(&(&b.labels, &b.receiver)));
        listed
    }

    /// Self-metrics: notifications and requests per integration, alerts
    /// received and dropped, alerts and silences by state.
    pub fn families(&self) -> Vec<Family> {
        let state = &self.inner.state;
        let value = |n: &AtomicU64| n.load(Ordering::Relaxed) as f64;
        let mut notifications = Family::counter(
            "sonde_notifications_total",
            "Notifications the built-in notifier attempted to deliver, per receiver and integration.",
        );
        let mut failed = Family::counter(
            "sonde_notifications_failed_total",
            "Notifications not delivered after every retry (or dropped from a full delivery queue).",
        );
        let mut requests = Family::counter(
            "sonde_notification_requests_total",
            "Delivery attempts (HTTP requests, SMTP sessions), retries included.",
        );
        let mut requests_failed = Family::counter(
            "sonde_notification_requests_failed_total",
            "Delivery attempts that failed.",
        );
        for (receiver, kind, counters) in state.counters.lock().expect("lock poisoned").iter() {
            let labels = [("receiver", receiver.as_str()), ("integration", *kind)];
            notifications.push(&labels, value(&counters.notifications));
            failed.push(&labels, value(&counters.failed));
            requests.push(&labels, value(&counters.requests));
            requests_failed.push(&labels, value(&counters.requests_failed));
        }
        let mut received = Family::counter(
            "sonde_notify_alerts_received_total",
            "Alerts handed to the built-in notifier.",
        );
        received.push(&[], value(&state.stats.received));
        let mut dropped = Family::counter(
            "sonde_notify_alerts_dropped_total",
            "Alerts the built-in notifier did not take: its queue was full, the alert was invalid (no labels, end before start), or it held as many alerts as it may.",
        );
        dropped.push(&[("reason", "queue_full")], value(&state.stats.dropped));
        dropped.push(&[("reason", "invalid")], value(&state.stats.invalid));
        dropped.push(&[("reason", "limit")], value(&state.stats.over_limit));
        let statuses = self.alerts();
        let suppressed = statuses
            .iter()
            .filter(|s| s.state() == "suppressed")
            .count();
        let mut alerts = Family::gauge(
            "sonde_notify_alerts",
            "Firing alerts the built-in notifier holds, by state (suppressed: silenced or inhibited).",
        );
        alerts.push(&[("state", "active")], (statuses.len() - suppressed) as f64);
        alerts.push(&[("state", "suppressed")], suppressed as f64);
        let mut silences = Family::gauge("sonde_notify_silences", "Silences by state.");
        for (silence_state, count) in self.silences().count_by_state(crate::collect::now_ms()) {
            silences.push(&[("state", silence_state.as_str())], count as f64);
        }
        let mut groups = Family::gauge(
            "sonde_notify_aggregation_groups",
            "Aggregation groups the built-in notifier holds.",
        );
        groups.push(&[], value(&state.stats.groups));
        vec![
            notifications,
            failed,
            requests,
            requests_failed,
            received,
            dropped,
            alerts,
            silences,
            groups,
        ]
    }
}
