//! Remote write out: one thread per `[[remote_write]]` destination sends the
//! durable queue ([`super::queue`]) to it in order, as Prometheus's
//! remote-write protocol 1.0 asks.
//!
//! What a receiver's answer does to a batch:
//! - 2xx: delivered; the position moves past it.
//! - 429, 5xx, no answer (connection refused, timeout): retried, the same
//!   batch, after a backoff doubling from `min_backoff` to `max_backoff`
//!   (or the `Retry-After` a 429/503 names), for as long as it takes.
//! - any other status: the receiver refuses this data for good (a bad label,
//!   an out-of-order sample); the batch is dropped, counted as failed and
//!   logged, and sending goes on with the next.
//!
//! Rows older than `max_queue_age` are dropped and counted as failed.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;

use super::queue::{Batch, Cursor};
use crate::config::RemoteWriteConfig;
use crate::model::Family;

/// What a destination has done since sonde started.
#[derive(Default)]
pub struct Stats {
    pending: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
}

/// The running senders; they stop when sonde exits or [`Senders::stop`].
pub struct Senders {
    stats: Vec<(String, Arc<Stats>)>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::Thread>,
}

impl Senders {
    /// Starts a sender per destination over the queue in `db_file` (opened
    /// by [`super::queue::configure`] first). Fails on an unreadable
    /// password, token or certificate file.
    pub fn start(configs: &[RemoteWriteConfig], db_file: &Path) -> anyhow::Result<Senders> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut senders = Senders {
            stats: Vec::new(),
            stop: stop.clone(),
            threads: Vec::new(),
        };
        for config in configs {
            let destination = Destination::new(config.clone())
                .with_context(|| format!("remote_write {:?}", config.name()))?;
            let cursor = Cursor::open(db_file, config.name())?;
            let stats = Arc::new(Stats::default());
            senders
                .stats
                .push((config.name().to_string(), stats.clone()));
            let stop = stop.clone();
            let handle = std::thread::Builder::new()
                .name("remote-write".into())
                .spawn(move || destination.run(cursor, &stats, &stop))?;
            senders.threads.push(handle.thread().clone());
            tracing::info!(
                "remote_write {:?}: sending to {}",
                config.name(),
                config.url
            );
        }
        Ok(senders)
    }

    /// Asks every sender to stop after its current request.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in &self.threads {
            thread.unpark();
        }
    }

    /// Self-metrics, one series per destination (label `remote`).
    pub fn families(&self) -> Vec<Family> {
        if self.stats.is_empty() {
            return Vec::new();
        }
        let mut pending = Family::gauge(
            "sonde_remote_write_samples_pending",
            "Samples queued for a remote_write destination and not yet delivered.",
        );
        let mut sent = Family::counter(
            "sonde_remote_write_samples_sent_total",
            "Samples a remote_write destination accepted.",
        );
        let mut failed = Family::counter(
            "sonde_remote_write_samples_failed_total",
            "Samples dropped: refused by the destination (4xx other than 429) or queued longer than max_queue_age.",
        );
        let mut retried = Family::counter(
            "sonde_remote_write_samples_retried_total",
            "Samples sent again after a 429, a 5xx or no answer.",
        );
        for (name, stats) in &self.stats {
            let labels = [("remote", name.as_str())];
            let value = |n: &AtomicU64| n.load(Ordering::Relaxed) as f64;
            pending.push(&labels, value(&stats.pending));
            sent.push(&labels, value(&stats.sent));
            failed.push(&labels, value(&stats.failed));
            retried.push(&labels, value(&stats.retried));
        }
        vec![pending, sent, failed, retried]
    }
}

/// A receiver's verdict on one request.
enum Outcome {
    Delivered,
    /// Try again, not before the given wait (from `Retry-After`) if any.
    Retry(String, Option<Duration>),
    Refused(String),
}

/// How long an idle sender waits before looking at the queue again.
const POLL: Duration = Duration::from_secs(1);
/// How often queued rows are checked against `max_queue_age`.
const EXPIRE_EVERY: Duration = Duration::from_secs(10);
/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

struct Destination {
    config: RemoteWriteConfig,
    agent: ureq::Agent,
    authorization: Option<String>,
}

impl Destination {
    fn new(config: RemoteWriteConfig) -> anyhow::Result<Destination> {
        let authorization = authorization(&config)?;
        let tls = tls_config(&config)?;
        let agent = crate::outbound::agent(config.timeout, |builder| builder.tls_config(tls));
        Ok(Destination {
            config,
            agent,
            authorization,
        })
    }

    fn name(&self) -> &str {
        self.config.name()
    }

    fn run(&self, mut cursor: Cursor, stats: &Stats, stop: &AtomicBool) {
        let mut backoff = self.config.min_backoff;
        let mut last_expiry: Option<Instant> = None;
        let mut batch: Option<Batch> = None;
        while !stop.load(Ordering::Relaxed) {
            if last_expiry.is_none_or(|t| t.elapsed() >= EXPIRE_EVERY) {
                last_expiry = Some(Instant::now());
                self.expire(&mut cursor, stats, &mut batch);
            }
            if batch.is_none() {
                match cursor.next_batch(self.config.max_samples_per_send) {
                    Ok(next) => batch = next,
                    Err(err) => tracing::error!("remote_write {:?}: {err:#}", self.name()),
                }
            }
            if let Ok(pending) = cursor.pending() {
                stats.pending.store(pending, Ordering::Relaxed);
            }
            let Some(current) = &batch else {
                std::thread::park_timeout(POLL);
                continue;
            };
            match self.send(&current.body) {
                Outcome::Delivered => {
                    stats.sent.fetch_add(current.samples, Ordering::Relaxed);
                    backoff = self.config.min_backoff;
                    self.advance(&mut cursor, current.last_seq);
                    batch = None;
                }
                Outcome::Retry(reason, retry_after) => {
                    stats.retried.fetch_add(current.samples, Ordering::Relaxed);
                    let wait = retry_after.unwrap_or(backoff);
                    tracing::warn!(
                        "remote_write {:?}: {} samples not delivered ({reason}); retrying in {}",
                        self.name(),
                        current.samples,
                        humantime::format_duration(wait)
                    );
                    std::thread::park_timeout(wait);
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
                Outcome::Refused(reason) => {
                    stats.failed.fetch_add(current.samples, Ordering::Relaxed);
                    tracing::error!(
                        "remote_write {:?}: {} samples refused and dropped: {reason}",
                        self.name(),
                        current.samples
                    );
                    self.advance(&mut cursor, current.last_seq);
                    batch = None;
                }
            }
        }
    }

    fn advance(&self, cursor: &mut Cursor, seq: i64) {
        // On failure the position stays: the batch is sent again later,
        // which a receiver ignores as an exact duplicate.
        if let Err(err) = cursor.advance(seq) {
            tracing::error!("remote_write {:?}: {err:#}", self.name());
        }
    }

    fn expire(&self, cursor: &mut Cursor, stats: &Stats, batch: &mut Option<Batch>) {
        let cutoff =
            crate::collect::now_ms().saturating_sub(self.config.max_queue_age.as_millis() as i64);
        match cursor.expire(cutoff) {
            Ok(0) => {}
            Ok(dropped) => {
                stats.failed.fetch_add(dropped, Ordering::Relaxed);
                tracing::error!(
                    "remote_write {:?}: {dropped} samples queued longer than max_queue_age ({}) dropped",
                    self.name(),
                    humantime::format_duration(self.config.max_queue_age)
                );
                // The batch in hand may hold expired rows: build it anew.
                *batch = None;
            }
            Err(err) => tracing::error!("remote_write {:?}: {err:#}", self.name()),
        }
    }

    fn send(&self, body: &[u8]) -> Outcome {
        let mut request = self
            .agent
            .post(&self.config.url)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0");
        if let Some(authorization) = &self.authorization {
            request = request.header("Authorization", authorization.as_str());
        }
        for (name, value) in &self.config.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let mut response = match request.send(body) {
            Ok(response) => response,
            Err(err) => return Outcome::Retry(err.to_string(), None),
        };
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Outcome::Delivered;
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
        let reason = crate::outbound::refusal(&mut response);
        if crate::outbound::worth_retrying(status) {
            Outcome::Retry(reason, retry_after)
        } else {
            Outcome::Refused(reason)
        }
    }
}

fn read_secret(path: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text.trim().to_string())
}

/// The `Authorization` header value, if the destination has credentials.
fn authorization(config: &RemoteWriteConfig) -> anyhow::Result<Option<String>> {
    if let Some(auth) = &config.basic_auth {
        let password = match (&auth.password, &auth.password_file) {
            (Some(password), _) => password.clone(),
            (None, Some(file)) => read_secret(file)?,
            (None, None) => String::new(),
        };
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{password}", auth.username));
        return Ok(Some(format!("Basic {credentials}")));
    }
    let token = match (&config.bearer_token, &config.bearer_token_file) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(file)) => Some(read_secret(file)?),
        (None, None) => None,
    };
    Ok(token.map(|t| format!("Bearer {t}")))
}

fn tls_config(config: &RemoteWriteConfig) -> anyhow::Result<ureq::tls::TlsConfig> {
    use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};
    let certificates = |path: &Path| -> anyhow::Result<Vec<Certificate<'static>>> {
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(PemItem::Certificate(cert)) => Some(cert),
                _ => None,
            })
            .collect();
        anyhow::ensure!(
            !certs.is_empty(),
            "{} holds no PEM certificate",
            path.display()
        );
        Ok(certs)
    };
    let tls = &config.tls;
    let mut builder = TlsConfig::builder().disable_verification(tls.insecure_skip_verify);
    if let Some(ca_file) = &tls.ca_file {
        builder = builder.root_certs(RootCerts::new_with_certs(&certificates(ca_file)?));
    }
    if let (Some(cert_file), Some(key_file)) = (&tls.cert_file, &tls.key_file) {
        let chain = certificates(cert_file)?;
        let pem = std::fs::read(key_file)
            .with_context(|| format!("cannot read {}", key_file.display()))?;
        let key = PrivateKey::from_pem(&pem)
            .with_context(|| format!("{} holds no PEM private key", key_file.display()))?;
        builder = builder.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    Ok(builder.build())
}
