//! Receivers and their integrations (webhook, Slack, Telegram, e-mail), and
//! the delivery of notifications to them.
//!
//! Each integration of each receiver has a worker thread with a bounded
//! queue: the dispatcher hands it a notification and never waits. The
//! worker retries a failed attempt after a backoff (500 ms doubling, at
//! most a minute) until the notification is delivered, refused for good
//! (a 4xx other than 429), or the next flush of its group is due (the
//! deadline, as Alertmanager gives up a flush after `group_interval`); then
//! it reports back to the dispatcher, which logs what was notified. A
//! notification that finds the queue full is counted as failed: the next
//! flush tries again.

mod email;
mod slack;
mod telegram;
mod webhook;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver as Queue, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::config::ReceiverConfig;
use super::notification::{Fingerprint, Notification};

/// Notifications waiting for one integration; beyond, they fail at once.
const QUEUE: usize = 64;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Longest a single HTTP request or SMTP exchange may take.
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why an attempt failed, and whether another may succeed.
#[derive(Debug)]
pub enum Failure {
    Retry(String),
    Refused(String),
}

/// One integration, built from its config with its secrets read.
pub enum Integration {
    Webhook(webhook::Webhook),
    Slack(slack::Slack),
    Telegram(telegram::Telegram),
    Email(email::Email),
}

impl Integration {
    /// The name metrics and logs give it, as Alertmanager's `integration`
    /// label does.
    pub fn kind(&self) -> &'static str {
        match self {
            Integration::Webhook(_) => "webhook",
            Integration::Slack(_) => "slack",
            Integration::Telegram(_) => "telegram",
            Integration::Email(_) => "email",
        }
    }

    pub fn send_resolved(&self) -> bool {
        match self {
            Integration::Webhook(w) => w.send_resolved,
            Integration::Slack(s) => s.send_resolved,
            Integration::Telegram(t) => t.send_resolved,
            Integration::Email(e) => e.send_resolved,
        }
    }

    fn notify(&self, notification: &Notification) -> Result<(), Failure> {
        match self {
            Integration::Webhook(w) => w.notify(notification),
            Integration::Slack(s) => s.notify(notification),
            Integration::Telegram(t) => t.notify(notification),
            Integration::Email(e) => e.notify(notification),
        }
    }
}

/// A receiver: its name and integrations.
pub struct Receiver {
    pub name: String,
    pub integrations: Vec<Integration>,
}

impl Receiver {
    /// The receiver of `[[notify.receivers]]` number `index`.
    pub fn build(config: &ReceiverConfig, index: usize) -> anyhow::Result<Receiver> {
        let key = format!("notify.receivers[{index}]");
        if config.name.is_empty() {
            anyhow::bail!("key {key}.name: expected a name the routes can use");
        }
        let mut integrations = Vec::new();
        if let Some(c) = &config.webhook {
            let built = webhook::Webhook::build(c).with_context(|| format!("{key}.webhook"))?;
            integrations.push(Integration::Webhook(built));
        }
        if let Some(c) = &config.slack {
            let built = slack::Slack::build(c).with_context(|| format!("{key}.slack"))?;
            integrations.push(Integration::Slack(built));
        }
        if let Some(c) = &config.telegram {
            let built = telegram::Telegram::build(c).with_context(|| format!("{key}.telegram"))?;
            integrations.push(Integration::Telegram(built));
        }
        if let Some(c) = &config.email {
            let built = email::Email::build(c).with_context(|| format!("{key}.email"))?;
            integrations.push(Integration::Email(built));
        }
        Ok(Receiver {
            name: config.name.clone(),
            integrations,
        })
    }
}

/// What one integration has done since sonde started.
#[derive(Default)]
pub struct Counters {
    pub notifications: AtomicU64,
    pub failed: AtomicU64,
    pub requests: AtomicU64,
    pub requests_failed: AtomicU64,
}

/// A notification to deliver, and what to report when done.
pub struct Delivery {
    pub notification: Arc<Notification>,
    /// When to stop retrying: the group's next flush.
    pub deadline: Instant,
    pub report: Report,
}

/// A delivery's outcome, for the notification log.
#[derive(Clone, Debug)]
pub struct Report {
    /// The group: its route's id and its key.
    pub route: usize,
    pub group_key: String,
    pub receiver: String,
    pub integration: &'static str,
    pub firing: Vec<Fingerprint>,
    pub resolved: Vec<Fingerprint>,
    /// Which flush of the group it belongs to.
    pub flush: u64,
    pub delivered: bool,
}

/// The sending end of an integration's worker.
pub struct Worker {
    queue: SyncSender<Delivery>,
    pub send_resolved: bool,
    pub kind: &'static str,
    counters: Arc<Counters>,
}

impl Worker {
    /// Starts the worker thread of `integration`; it reports on `reports`
    /// and ends once this `Worker` is dropped and its queue is empty.
    pub fn start(
        integration: Integration,
        receiver: &str,
        counters: Arc<Counters>,
        reports: impl Fn(Report) + Send + 'static,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<Worker> {
        let (queue, deliveries) = std::sync::mpsc::sync_channel(QUEUE);
        let worker = Worker {
            queue,
            send_resolved: integration.send_resolved(),
            kind: integration.kind(),
            counters: counters.clone(),
        };
        let name = format!("{receiver}/{}", integration.kind());
        std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || {
                deliver_all(&integration, &name, &deliveries, &counters, &reports, &stop)
            })?;
        Ok(worker)
    }

    /// Queues a delivery; whether it was (a full queue fails it at once).
    pub fn queue(&self, delivery: Delivery) -> bool {
        self.counters.notifications.fetch_add(1, Ordering::Relaxed);
        match self.queue.try_send(delivery) {
            Ok(()) => true,
            Err(TrySendError::Full(d) | TrySendError::Disconnected(d)) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    "notify {:?}/{}: the delivery queue is full, notification dropped",
                    d.report.receiver,
                    self.kind
                );
                false
            }
        }
    }
}

fn deliver_all(
    integration: &Integration,
    name: &str,
    deliveries: &Queue<Delivery>,
    counters: &Counters,
    reports: &dyn Fn(Report),
    stop: &AtomicBool,
) {
    for delivery in deliveries {
        let mut backoff = FIRST_BACKOFF;
        let delivered = loop {
            counters.requests.fetch_add(1, Ordering::Relaxed);
            let failure = match integration.notify(&delivery.notification) {
                Ok(()) => break true,
                Err(failure) => failure,
            };
            counters.requests_failed.fetch_add(1, Ordering::Relaxed);
            let retry_at = Instant::now() + backoff;
            match failure {
                Failure::Retry(reason)
                    if retry_at < delivery.deadline && !stop.load(Ordering::Relaxed) =>
                {
                    tracing::warn!(
                        "notify {name}: {reason}; retrying in {}",
                        humantime::format_duration(backoff)
                    );
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Failure::Retry(reason) | Failure::Refused(reason) => {
                    tracing::error!(
                        "notify {name}: notification for group {} not delivered: {reason}",
                        delivery.notification.group_key
                    );
                    break false;
                }
            }
        };
        if !delivered {
            counters.failed.fetch_add(1, Ordering::Relaxed);
        }
        reports(Report {
            delivered,
            ..delivery.report
        });
    }
}

/// An HTTP agent for notification endpoints: statuses are answers, not
/// errors, and every request is bounded in time.
fn http_agent() -> ureq::Agent {
    crate::outbound::agent(ATTEMPT_TIMEOUT, |config| config)
}

/// POSTs JSON; a 2xx delivers, a 429 or 5xx or no answer may be retried,
/// any other status refuses.
fn post_json(agent: &ureq::Agent, url: &str, body: &serde_json::Value) -> Result<(), Failure> {
    let mut response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body.to_string().as_bytes())
        .map_err(|err| Failure::Retry(err.to_string()))?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let reason = crate::outbound::refusal(&mut response);
    if crate::outbound::worth_retrying(status) {
        Err(Failure::Retry(reason))
    } else {
        Err(Failure::Refused(reason))
    }
}

/// `text` cut to at most `max` characters, ending with "…" when cut, as
/// Alertmanager cuts titles and messages; in `html`, never inside an HTML
/// entity (a cut entity makes Telegram refuse the message).
fn truncate(text: &str, max: usize, html: bool) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    if let Some(amp) = cut.rfind('&').filter(|_| html) {
        if !cut[amp..].contains(';') {
            cut.truncate(amp);
        }
    }
    cut.push('…');
    cut
}

/// Checks an endpoint URL from the config.
fn http_url(key: &str, url: &str) -> anyhow::Result<String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        // The URL may hold a secret (Slack's does): not repeated here.
        anyhow::bail!("key {key}: expected an http:// or https:// URL");
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn long_texts_are_cut_outside_entities() {
        let cut = truncate(&"a".repeat(5000), 4096, true);
        assert_eq!(cut.chars().count(), 4096);
        assert!(cut.ends_with('…'));
        let entity = format!("{}&amp;", "a".repeat(4093));
        assert_eq!(
            truncate(&entity, 4096, true),
            format!("{}…", "a".repeat(4093))
        );
        assert_eq!(
            truncate(&entity, 4096, false),
            format!("{}&a…", "a".repeat(4093))
        );
        assert_eq!(truncate("short", 4096, true), "short");
    }
}
