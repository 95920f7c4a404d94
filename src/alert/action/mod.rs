//! Actions: a firing alert runs a command (restart a unit, kill the process
//! that floods syscalls, start a capture), configured in
//! `[[alerting.actions]]` of sonde's own config, never in rule files.
//!
//! Why sonde's config and not a rule-file extension: what sonde executes,
//! as the user sonde runs as, is the machine owner's
//! decision, written in the file only they can edit; rule files are shared
//! (mixins, copies from a Prometheus) and stay plain Prometheus files, so
//! loading one can never make sonde run a program. An action picks its
//! alerts with Alertmanager matchers, as a route does.
//!
//! The way of an alert: the rule manager hands every alert due to be sent
//! to [`Actions::send`] on the evaluation thread, which only matches,
//! expands the arguments and queues; a fixed pool of workers runs the
//! commands ([`process`]). So:
//! - evaluation never waits for a command: a full queue turns the run into
//!   `skipped` (counted, logged), never into a wait;
//! - at most `max_running_actions` commands run at once, each killed with
//!   its process group at its `timeout`;
//! - one action runs at most once per `min_interval` for one alert (its
//!   labels); a firing alert sent again (every `resend_delay`) inside the
//!   interval is `skipped`, after it the action runs again;
//! - every decision is counted in `sonde_actions_total{action, result}`
//!   and logged with the exit status and the first bytes of the output;
//!   the last runs (not the skips inside an interval, which only repeat
//!   the run before) are kept for the Alerts view ([`history`]).

pub mod config;
pub mod history;
pub mod process;

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::alert::manager::{now_ms, AlertSender};
use crate::alert::template::{self, AlertData};
use crate::alert::Alert;
use crate::model::{Family, Labels};

pub use config::{Action, ActionConfig};
pub use history::Run;

/// Runs waiting for a worker; beyond it a run is `skipped`.
const QUEUE: usize = 64;

/// What became of one firing alert for one action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    Failed,
    Timeout,
    DryRun,
    Skipped,
}

impl Outcome {
    const ALL: [Outcome; 5] = [
        Outcome::Ok,
        Outcome::Failed,
        Outcome::Timeout,
        Outcome::DryRun,
        Outcome::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Timeout => "timeout",
            Outcome::DryRun => "dry_run",
            Outcome::Skipped => "skipped",
        }
    }
}

/// A command to run for an alert.
struct Job {
    action: String,
    alert: String,
    argv: Vec<String>,
    timeout: std::time::Duration,
}

/// The actions configured, the workers that run them and what they did.
#[derive(Clone)]
pub struct Actions {
    shared: Arc<Shared>,
}

struct Shared {
    plan: Mutex<Plan>,
    /// When each (action, alert labels) last ran; entries older than their
    /// action's interval are dropped at each send, so this holds only the
    /// alerts inside their interval.
    last_run: Mutex<HashMap<(String, Labels), Instant>>,
    queue: SyncSender<Job>,
    counts: Mutex<BTreeMap<(String, Outcome), u64>>,
    history: history::History,
}

/// What the templates need besides the alert, and the actions.
struct Plan {
    actions: Vec<Action>,
    external_labels: Labels,
    external_url: String,
}

impl Actions {
    /// Starts `workers` threads (at least one) for `actions`.
    pub fn start(
        actions: Vec<Action>,
        workers: usize,
        external_labels: Labels,
        external_url: String,
    ) -> Actions {
        let (queue, jobs) = sync_channel(QUEUE);
        let shared = Arc::new(Shared {
            plan: Mutex::new(Plan {
                actions,
                external_labels,
                external_url,
            }),
            last_run: Mutex::new(HashMap::new()),
            queue,
            counts: Mutex::new(BTreeMap::new()),
            history: history::History::default(),
        });
        let jobs = Arc::new(Mutex::new(jobs));
        for n in 0..workers.max(1) {
            let shared = shared.clone();
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("action-{n}"))
                .spawn(move || shared.work(&jobs))
                .expect("cannot start an action worker");
        }
        Actions { shared }
    }

    /// Replaces the actions (at a reload); the workers stay.
    pub fn set_actions(&self, actions: Vec<Action>, external_labels: Labels, external_url: String) {
        *self.shared.plan.lock().expect("lock poisoned") = Plan {
            actions,
            external_labels,
            external_url,
        };
    }

    /// Queues the actions of the firing alerts among `alerts`, as of `now`.
    pub fn send_at(&self, alerts: &[Alert], now: Instant) {
        let plan = self.shared.plan.lock().expect("lock poisoned");
        if plan.actions.is_empty() {
            return;
        }
        let mut last_run = self.shared.last_run.lock().expect("lock poisoned");
        last_run.retain(|(name, _), at| {
            plan.actions
                .iter()
                .any(|a| &a.name == name && now.duration_since(*at) < a.min_interval)
        });
        let wall_ms = now_ms();
        for alert in alerts.iter().filter(|a| !a.resolved_at(wall_ms)) {
            for action in plan.actions.iter().filter(|a| a.matches(&alert.labels)) {
                let key = (action.name.clone(), alert.labels.clone());
                let described = alert.labels.to_string();
                if last_run.contains_key(&key) {
                    self.shared.count(&action.name, Outcome::Skipped);
                    continue;
                }
                let argv = match expand(action, alert, &plan, wall_ms) {
                    Ok(argv) => argv,
                    Err(err) => {
                        tracing::warn!(action = %action.name, alert = %described, "action not run: {err}");
                        self.shared.finish(
                            &action.name,
                            described,
                            Outcome::Failed,
                            format!("not run: {err}"),
                        );
                        last_run.insert(key, now);
                        continue;
                    }
                };
                if action.dry_run {
                    tracing::info!(action = %action.name, alert = %described, "dry run, would run {argv:?}");
                    self.shared.finish(
                        &action.name,
                        described,
                        Outcome::DryRun,
                        format!("would run {argv:?}"),
                    );
                    last_run.insert(key, now);
                    continue;
                }
                let job = Job {
                    action: action.name.clone(),
                    alert: described,
                    argv,
                    timeout: action.timeout,
                };
                match self.shared.queue.try_send(job) {
                    Ok(()) => {
                        last_run.insert(key, now);
                    }
                    Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                        tracing::warn!(action = %job.action, alert = %job.alert, "action skipped: {QUEUE} runs already wait for a worker");
                        self.shared.finish(
                            &job.action,
                            job.alert,
                            Outcome::Skipped,
                            format!("{QUEUE} runs already waited for a worker"),
                        );
                    }
                }
            }
        }
    }

    /// `sonde_actions_total{action, result}`, every result of every
    /// configured action present from the start.
    pub fn families(&self) -> Vec<Family> {
        let names: Vec<String> = {
            let plan = self.shared.plan.lock().expect("lock poisoned");
            plan.actions.iter().map(|a| a.name.clone()).collect()
        };
        let mut counts = self.shared.counts.lock().expect("lock poisoned").clone();
        for name in names {
            for outcome in Outcome::ALL {
                counts.entry((name.clone(), outcome)).or_insert(0);
            }
        }
        let mut family = Family::counter(
            "sonde_actions_total",
            "Alert actions by result: ok, failed (non-zero exit, cannot start, bad argument), timeout (killed), dry_run, skipped (inside min_interval or queue full).",
        );
        for ((name, outcome), count) in counts {
            family.push(
                &[("action", name.as_str()), ("result", outcome.as_str())],
                count as f64,
            );
        }
        vec![family]
    }

    /// The configured actions, for `sonde doctor` and the Alerts view.
    pub fn configured(&self) -> Vec<Action> {
        self.shared
            .plan
            .lock()
            .expect("lock poisoned")
            .actions
            .clone()
    }

    /// The last runs, newest first.
    pub fn recent(&self) -> Vec<Run> {
        self.shared.history.recent()
    }

    #[cfg(test)]
    fn counted(&self, action: &str, outcome: Outcome) -> u64 {
        let counts = self.shared.counts.lock().expect("lock poisoned");
        counts
            .get(&(action.to_string(), outcome))
            .copied()
            .unwrap_or(0)
    }
}

impl AlertSender for Actions {
    fn send(&self, alerts: &[Alert]) {
        self.send_at(alerts, Instant::now());
    }
}

impl Shared {
    fn count(&self, action: &str, outcome: Outcome) {
        *self
            .counts
            .lock()
            .expect("lock poisoned")
            .entry((action.to_string(), outcome))
            .or_insert(0) += 1;
    }

    /// Counts a decision that ran no command and keeps it for the view.
    fn finish(&self, action: &str, alert: String, outcome: Outcome, detail: String) {
        self.count(action, outcome);
        self.history.record(Run {
            at_ms: now_ms(),
            action: action.to_string(),
            alert,
            outcome,
            detail,
            took: None,
            output: String::new(),
        });
    }

    /// A worker: runs queued jobs until sonde exits.
    fn work(&self, jobs: &Mutex<Receiver<Job>>) {
        loop {
            let job = match jobs.lock().expect("lock poisoned").recv() {
                Ok(job) => job,
                Err(_) => return,
            };
            let at_ms = now_ms();
            let run = match process::run(&job.argv, job.timeout) {
                Err(err) => {
                    tracing::warn!(action = %job.action, alert = %job.alert, "action {:?} cannot start: {err}", job.argv[0]);
                    Run {
                        at_ms,
                        outcome: Outcome::Failed,
                        detail: format!("cannot start {:?}: {err}", job.argv[0]),
                        took: None,
                        output: String::new(),
                        action: job.action,
                        alert: job.alert,
                    }
                }
                Ok(finished) => {
                    let outcome = match finished.status {
                        None => Outcome::Timeout,
                        Some(status) if status.success() => Outcome::Ok,
                        Some(_) => Outcome::Failed,
                    };
                    let how = finished.describe(job.timeout);
                    let more = if finished.truncated {
                        " (truncated)"
                    } else {
                        ""
                    };
                    let output = finished.output.trim_end();
                    let took = finished.elapsed.as_secs_f64();
                    if outcome == Outcome::Ok {
                        tracing::info!(action = %job.action, alert = %job.alert, "action ran: {how} in {took:.3}s; output{more}: {output:?}");
                    } else {
                        tracing::warn!(action = %job.action, alert = %job.alert, "action {}: {how} after {took:.3}s; output{more}: {output:?}", outcome.as_str());
                    }
                    Run {
                        at_ms,
                        outcome,
                        detail: how,
                        took: Some(took),
                        output: output.to_string(),
                        action: job.action,
                        alert: job.alert,
                    }
                }
            };
            self.count(&run.action, run.outcome);
            self.history.record(run);
        }
    }
}

/// The action's arguments expanded over the alert; an argument whose
/// template fails stops the run (a command must never see an error text
/// as its argument).
fn expand(action: &Action, alert: &Alert, plan: &Plan, now_ms: i64) -> Result<Vec<String>, String> {
    let data = AlertData {
        labels: alert.labels.clone(),
        external_labels: plan.external_labels.clone(),
        external_url: plan.external_url.clone(),
        value: alert.value,
    };
    let no_query: template::QueryFn =
        &|_, _| Err("query is not available in an action's arguments".to_string());
    action
        .command
        .iter()
        .map(|argument| template::try_expand_alert(&action.name, argument, &data, now_ms, no_query))
        .collect()
}

#[cfg(test)]
mod tests;
