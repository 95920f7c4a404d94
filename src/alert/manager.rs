//! The rule manager: loads the rule files, evaluates every group on its slot
//! on one thread, hands the alerts due to the senders, and keeps alert state
//! across reloads (in memory) and restarts (in `sonde.db`).
//!
//! A reload reads every file first and swaps the groups only when all of
//! them load: a bad file keeps the old rules running, and the error is kept
//! for the API and the log. A group that survives a reload (same file and
//! name) keeps its alerts and its slot.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::alert::group::{Group, SampleSink, SendOptions};
use crate::alert::persist::{AlertStates, RestorePolicy};
use crate::alert::rule::EvalContext;
use crate::alert::rulefile::{self, GroupSpec};
use crate::alert::Alert;
use crate::config::AlertingConfig;
use crate::model::{Family, Labels};
use crate::query::{Limits, Source};

/// Where alerts go: Alertmanagers, the built-in notifier.
pub trait AlertSender: Send + Sync {
    /// Must not block: a sender queues and delivers on its own.
    fn send(&self, alerts: &[Alert]);
}

/// What of `[alerting]` the evaluation uses, resolved once per (re)load.
#[derive(Clone, Debug)]
pub struct Settings {
    pub rule_files: Vec<String>,
    pub default_interval_ms: i64,
    pub external_labels: Labels,
    pub external_url: String,
    pub resend_delay_ms: i64,
    pub restore: RestorePolicy,
}

impl Settings {
    /// `external_url` is where sonde is reached, for alerts' links.
    pub fn new(config: &AlertingConfig, external_url: String) -> Settings {
        let ms = |d: Duration| d.as_millis() as i64;
        Settings {
            rule_files: config.rule_files.clone(),
            default_interval_ms: ms(config.evaluation_interval),
            external_labels: Labels::new(config.external_labels.clone()),
            external_url: external_url.trim_end_matches('/').to_string(),
            resend_delay_ms: ms(config.resend_delay),
            restore: RestorePolicy {
                outage_tolerance_ms: ms(config.outage_tolerance),
                for_grace_period_ms: ms(config.for_grace_period),
            },
        }
    }
}

pub struct RuleManager {
    groups: Mutex<Loaded>,
    /// Wakes the evaluation thread after a reload or at stop.
    changed: Condvar,
    states: Option<Mutex<AlertStates>>,
    save_error_logged: Mutex<Option<std::time::Instant>>,
    senders: Vec<Arc<dyn AlertSender>>,
}

/// The groups running and the settings they run with.
pub struct Loaded {
    pub groups: Vec<Group>,
    pub settings: Settings,
    /// Why the last reload was refused, if it was.
    pub reload_error: Option<String>,
}

impl RuleManager {
    /// Loads every rule file (any error refuses to start) and restores the
    /// alert state saved in `database`, when there is one.
    pub fn start(
        settings: Settings,
        database: Option<&Path>,
        senders: Vec<Arc<dyn AlertSender>>,
        now_ms: i64,
    ) -> anyhow::Result<RuleManager> {
        let specs = load_groups(&settings.rule_files).map_err(anyhow::Error::msg)?;
        let states = database.map(AlertStates::open).transpose()?;
        let mut groups: Vec<Group> = specs
            .into_iter()
            .map(|spec| Group::new(spec, settings.default_interval_ms, now_ms))
            .collect();
        if let Some(states) = &states {
            for group in &mut groups {
                match states.restore(group, now_ms, settings.restore) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(group = %group.spec.name, "restored {n} alerts"),
                    Err(err) => {
                        tracing::warn!(group = %group.spec.name, "cannot restore alert state: {err:#}")
                    }
                }
            }
        }
        let rules: usize = groups.iter().map(|g| g.rules.len()).sum();
        tracing::info!("rules: {} groups, {rules} rules", groups.len());
        Ok(RuleManager {
            groups: Mutex::new(Loaded {
                groups,
                settings,
                reload_error: None,
            }),
            changed: Condvar::new(),
            states: states.map(Mutex::new),
            save_error_logged: Mutex::new(None),
            senders,
        })
    }

    /// The groups as they run now.
    pub fn loaded(&self) -> MutexGuard<'_, Loaded> {
        self.groups.lock().expect("lock poisoned")
    }

    /// Alerts firing now, across every rule.
    pub fn firing_count(&self) -> usize {
        self.loaded()
            .groups
            .iter()
            .flat_map(|g| &g.rules)
            .flat_map(|r| r.alerts.values())
            .filter(|a| a.state == crate::alert::rule::AlertState::Firing)
            .count()
    }

    /// Re-reads the rule files with `settings`; on any error the running
    /// rules stay and the error is returned (and kept for the API).
    pub fn reload(&self, settings: Settings, now_ms: i64) -> Result<(), String> {
        let specs = load_groups(&settings.rule_files).map_err(|err| self.refuse_reload(err))?;
        let mut loaded = self.loaded();
        let mut old: Vec<Group> = std::mem::take(&mut loaded.groups);
        loaded.groups = specs
            .into_iter()
            .map(|spec| {
                let mut group = Group::new(spec, settings.default_interval_ms, now_ms);
                if let Some(at) = old.iter().position(|g| g.key() == group.key()) {
                    group.take_state_from(old.swap_remove(at));
                }
                group
            })
            .collect();
        loaded.settings = settings;
        loaded.reload_error = None;
        drop(loaded);
        self.changed.notify_all();
        tracing::info!("rule files reloaded");
        Ok(())
    }

    /// Records a reload refused for `err` (for the API, the dashboard and
    /// `sonde_rule_reload_success`) and gives the error back.
    pub fn refuse_reload(&self, err: String) -> String {
        tracing::error!("not reloaded, the old rules keep running: {err}");
        self.loaded().reload_error = Some(err.clone());
        err
    }

    /// Evaluates groups on their slots until `stop`.
    pub fn run(
        &self,
        source: &dyn Source,
        sink: &dyn SampleSink,
        limits: &Limits,
        stop: &AtomicBool,
    ) {
        loop {
            // `stop` is read under the lock `wake` takes, so a stop asked
            // while this computes its wait is seen, not slept through.
            let loaded = self.loaded();
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let now = now_ms();
            let due = loaded
                .groups
                .iter()
                .enumerate()
                .min_by_key(|(_, g)| g.next_ms);
            // Sleeps until the next group's slot: a reload and `stop` wake
            // it (`changed`), and nothing else needs it sooner; an idle host
            // pays one wakeup per evaluation, not one a second.
            let wait = match due {
                Some((_, group)) if group.next_ms <= now => None,
                Some((_, group)) => Some(Duration::from_millis((group.next_ms - now) as u64)),
                None => Some(Duration::MAX),
            };
            if let Some(wait) = wait {
                let (guard, _) = self
                    .changed
                    .wait_timeout(loaded, wait)
                    .expect("lock poisoned");
                drop(guard);
                continue;
            }
            let index = due.expect("a group is due").0;
            self.evaluate(loaded, index, source, sink, limits, now);
        }
    }

    /// `sonde_rule_*`: per group (`rule_group="file;name"`, as Prometheus
    /// names it) evaluations, failed rule evaluations, the last one's
    /// duration and the rules it holds; whether the last reload worked.
    pub fn families(&self) -> Vec<Family> {
        let loaded = self.loaded();
        let mut evaluations = Family::counter(
            "sonde_rule_evaluations_total",
            "Rule evaluations, by rule group.",
        );
        let mut failures = Family::counter(
            "sonde_rule_evaluation_failures_total",
            "Rule evaluations that failed, by rule group.",
        );
        let mut duration = Family::gauge(
            "sonde_rule_group_last_duration_seconds",
            "How long the group's last evaluation took.",
        );
        let mut rules = Family::gauge("sonde_rule_group_rules", "Rules in the group.");
        for group in &loaded.groups {
            let id = format!("{};{}", group.spec.file, group.spec.name);
            let labels = [("rule_group", id.as_str())];
            evaluations.push(&labels, group.rule_evaluations as f64);
            failures.push(&labels, group.rule_failures as f64);
            duration.push(&labels, group.evaluation_seconds);
            rules.push(&labels, group.rules.len() as f64);
        }
        let mut reloaded = Family::gauge(
            "sonde_rule_reload_success",
            "1 when the last reload of the rule files worked, 0 when it was refused.",
        );
        reloaded.push(&[], f64::from(u8::from(loaded.reload_error.is_none())));
        vec![evaluations, failures, duration, rules, reloaded]
    }

    /// Wakes the evaluation thread, to see `stop`: under the lock, so
    /// the thread is either waiting or yet to read `stop`.
    pub fn wake(&self) {
        let _held = self.loaded();
        self.changed.notify_all();
    }

    fn evaluate(
        &self,
        mut loaded: MutexGuard<'_, Loaded>,
        index: usize,
        source: &dyn Source,
        sink: &dyn SampleSink,
        limits: &Limits,
        now: i64,
    ) {
        let settings = loaded.settings.clone();
        let ctx = EvalContext {
            source,
            limits,
            external_labels: &settings.external_labels,
            external_url: &settings.external_url,
        };
        let send = SendOptions {
            resend_delay_ms: settings.resend_delay_ms,
            external_url: &settings.external_url,
        };
        let group = &mut loaded.groups[index];
        let ts = group.next_ms;
        let mut alerts = group.eval(&ctx, sink, &send, ts);
        group.next_ms = ts + group.interval_ms;
        if group.next_ms <= now {
            let missed = (now - group.next_ms) / group.interval_ms + 1;
            tracing::warn!(group = %group.spec.name, "evaluation fell behind: {missed} slots skipped");
            group.next_ms += missed * group.interval_ms;
        }
        if let Some(states) = &self.states {
            if let Err(err) = states.lock().expect("lock poisoned").save(group) {
                // A disk that stays full or read-only fails every
                // evaluation: say so once a minute.
                let mut logged = self.save_error_logged.lock().expect("lock poisoned");
                if logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                    *logged = Some(std::time::Instant::now());
                    tracing::warn!(group = %group.spec.name, "cannot save alert state: {err:#}");
                }
            }
        }
        drop(loaded);
        if alerts.is_empty() {
            return;
        }
        for alert in &mut alerts {
            for (name, value) in settings.external_labels.iter() {
                if alert.labels.get(name).is_none() {
                    alert.labels.set(name.to_string(), value.to_string());
                }
            }
        }
        for sender in &self.senders {
            sender.send(&alerts);
        }
    }
}

/// Every group of every file the patterns name, or every problem found.
pub fn load_groups(patterns: &[String]) -> Result<Vec<GroupSpec>, String> {
    let mut groups = Vec::new();
    let mut problems = Vec::new();
    for path in expand_patterns(patterns)? {
        match rulefile::load(&path) {
            Ok(file) => groups.extend(file.groups),
            Err(err) => problems.push(err),
        }
    }
    if problems.is_empty() {
        Ok(groups)
    } else {
        Err(problems.join("\n"))
    }
}

/// The files a list of rule file patterns names, sorted within a pattern;
/// a wildcard may stand in the file name only.
pub fn expand_patterns(patterns: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for pattern in patterns {
        let path = Path::new(pattern);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.contains(['*', '?']) {
            files.push(path.to_path_buf());
            continue;
        }
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => {
                return Err(format!(
                    "rule_files {pattern:?}: cannot list {}: {err}",
                    dir.display()
                ))
            }
        };
        let mut matched: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| crate::glob::matches(name, n))
            })
            .collect();
        matched.sort();
        files.extend(matched);
    }
    Ok(files)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
