//! Alerts to Alertmanagers, as Prometheus's notifier sends them: a queue of
//! at most [`QUEUE_CAPACITY`] alerts (the oldest dropped, and counted, when
//! full), drained by one thread in batches of [`MAX_BATCH`], each batch
//! posted to every Alertmanager's `POST /api/v2/alerts`.
//!
//! A failed post is not retried: the rule groups send every firing and
//! resolved alert again each resend delay, and an alert's `endsAt` lies four
//! resend delays ahead, so an Alertmanager away for a short while loses
//! nothing. Evaluation never waits on a send.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::alert::manager::AlertSender;
use crate::alert::{rfc3339, Alert};
use crate::model::{Family, Labels};

pub const QUEUE_CAPACITY: usize = 10_000;
pub const MAX_BATCH: usize = 64;
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Alertmanagers {
    shared: Arc<Shared>,
    worker: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    queue: Mutex<VecDeque<Alert>>,
    queued: Condvar,
    stop: AtomicBool,
    dropped: AtomicU64,
    /// Replaced whole at a reload; a target kept keeps its counts.
    targets: Mutex<Vec<Arc<Target>>>,
}

struct Target {
    url: String,
    sent: AtomicU64,
    errors: AtomicU64,
}

impl Alertmanagers {
    /// A sender to each of `urls` (`http://host:9093`); check them with
    /// [`check_url`] first. With none, alerts are dropped uncounted until a
    /// reload names some.
    pub fn start(urls: &[String]) -> anyhow::Result<Alertmanagers> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            queued: Condvar::new(),
            stop: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            targets: Mutex::new(Vec::new()),
        });
        let worker = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("alertmanagers".into())
                .spawn(move || shared.deliver())?
        };
        let alertmanagers = Alertmanagers {
            shared,
            worker: Some(worker),
        };
        alertmanagers.set_urls(urls);
        Ok(alertmanagers)
    }

    /// Sends to `urls` from now on (a reload).
    pub fn set_urls(&self, urls: &[String]) {
        let mut targets = self.shared.targets.lock().expect("lock poisoned");
        let new: Vec<Arc<Target>> = urls
            .iter()
            .map(|url| format!("{}/api/v2/alerts", url.trim_end_matches('/')))
            .map(|url| match targets.iter().find(|t| t.url == url) {
                Some(kept) => kept.clone(),
                None => Arc::new(Target {
                    url,
                    sent: AtomicU64::new(0),
                    errors: AtomicU64::new(0),
                }),
            })
            .collect();
        *targets = new;
    }

    /// `sonde_alertmanager_*`: alerts sent and failed posts per
    /// Alertmanager, alerts dropped from a full queue, the queue's length.
    pub fn families(&self) -> Vec<Family> {
        let mut sent = Family::counter(
            "sonde_alertmanager_alerts_sent_total",
            "Alerts posted to an Alertmanager.",
        );
        let mut errors = Family::counter(
            "sonde_alertmanager_errors_total",
            "Posts of alerts to an Alertmanager that failed.",
        );
        for target in self.shared.targets.lock().expect("lock poisoned").iter() {
            let labels = [("alertmanager", target.url.as_str())];
            sent.push(&labels, target.sent.load(Ordering::Relaxed) as f64);
            errors.push(&labels, target.errors.load(Ordering::Relaxed) as f64);
        }
        let mut dropped = Family::counter(
            "sonde_alertmanager_alerts_dropped_total",
            "Alerts dropped because the queue to the Alertmanagers was full.",
        );
        dropped.push(&[], self.shared.dropped.load(Ordering::Relaxed) as f64);
        let mut length = Family::gauge(
            "sonde_alertmanager_queue_length",
            "Alerts waiting to be posted to the Alertmanagers.",
        );
        length.push(
            &[],
            self.shared.queue.lock().expect("lock poisoned").len() as f64,
        );
        vec![sent, errors, dropped, length]
    }
}

impl AlertSender for Alertmanagers {
    fn send(&self, alerts: &[Alert]) {
        if self
            .shared
            .targets
            .lock()
            .expect("lock poisoned")
            .is_empty()
        {
            return;
        }
        let mut queue = self.shared.queue.lock().expect("lock poisoned");
        queue.extend(alerts.iter().cloned());
        let excess = queue.len().saturating_sub(QUEUE_CAPACITY);
        if excess > 0 {
            queue.drain(..excess);
            self.shared
                .dropped
                .fetch_add(excess as u64, Ordering::Relaxed);
        }
        drop(queue);
        self.shared.queued.notify_one();
    }
}

impl Drop for Alertmanagers {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.queued.notify_all();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl Shared {
    fn deliver(&self) {
        let agent = crate::outbound::agent(TIMEOUT, |config| config);
        loop {
            let batch: Vec<Alert> = {
                let mut queue = self.queue.lock().expect("lock poisoned");
                while queue.is_empty() && !self.stop.load(Ordering::Relaxed) {
                    queue = self.queued.wait(queue).expect("lock poisoned");
                }
                if self.stop.load(Ordering::Relaxed) {
                    return;
                }
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect()
            };
            let body = alerts_json(&batch);
            let targets = self.targets.lock().expect("lock poisoned").clone();
            for target in &targets {
                match post(&agent, &target.url, &body) {
                    Ok(()) => {
                        target.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    }
                    Err(err) => {
                        target.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            "cannot send {} alerts to {}: {err}",
                            batch.len(),
                            target.url
                        );
                    }
                }
            }
        }
    }
}

fn post(agent: &ureq::Agent, url: &str, body: &str) -> Result<(), String> {
    let mut response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)
        .map_err(|err| err.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(crate::outbound::refusal(&mut response))
    }
}

/// Alertmanager API v2's list of `postableAlert`s.
pub fn alerts_json(alerts: &[Alert]) -> String {
    let items: Vec<serde_json::Value> = alerts
        .iter()
        .map(|alert| {
            serde_json::json!({
                "labels": label_object(&alert.labels),
                "annotations": label_object(&alert.annotations),
                "startsAt": rfc3339(alert.starts_at_ms),
                "endsAt": rfc3339(alert.ends_at_ms),
                "generatorURL": alert.generator_url,
            })
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

/// A label set as a JSON object.
pub fn label_object(labels: &Labels) -> serde_json::Map<String, serde_json::Value> {
    labels
        .iter()
        .map(|(name, value)| (name.to_string(), serde_json::Value::from(value)))
        .collect()
}

/// An Alertmanager's address must be `http://` or `https://` with a host.
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(()),
        _ => Err(format!(
            "expected an Alertmanager's address such as \"http://127.0.0.1:9093\", got {url:?}"
        )),
    }
}
