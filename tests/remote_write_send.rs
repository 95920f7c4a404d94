//! Remote write out, and exact data: sonde collects at 1 s for two minutes
//! and ships everything it stores to a real Prometheus 2.42
//! (`--web.enable-remote-write-receiver`) through its durable queue, while a
//! client remote-writes jittered timestamps into sonde. Prometheus is stopped
//! in the middle of the run and started again. In the end every raw sample
//! of every series is the same in both, timestamp and value (read back with
//! remote read), the jittered samples are stored exactly as sent, and the
//! PromQL corpus of tests/promql/ answers alike from both. A destination
//! that answers 404 gets no retries.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::prometheus::Prometheus;
use common::promql::{compare, corpus_unlabelled};
use common::remote::{self, read_all, series, wait_identical};
use common::Sonde;
use sonde::prompb::WriteRequest;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A self-metric of sonde for one destination (0 when not exposed yet).
fn stat(sonde: &Sonde, name: &str, remote: &str) -> f64 {
    sonde
        .metrics()
        .iter()
        .find(|s| s.name == name && s.label("remote") == Some(remote))
        .map_or(0.0, |s| s.value)
}

fn wait_for(sonde: &Sonde, what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "timed out after {timeout:?} waiting for {what}\nmetrics:\n{}\nlog:\n{}",
        sonde.get_ok("/metrics"),
        sonde.log_text()
    );
}

/// How long sonde collects (at 1 s) before the comparison.
const COLLECTION: Duration = Duration::from_secs(120);

#[test]
fn prometheus_holds_exactly_what_sonde_stored_and_answers_alike() {
    let start_ms = now_ms() - 1_000;
    let mut prometheus = Prometheus::start(
        "global:\n  scrape_interval: 1h\n",
        &["--web.enable-remote-write-receiver"],
    );
    let sonde = Sonde::start(&format!(
        "[[remote_write]]\nurl = \"{0}/api/v1/write\"\nname = \"prometheus\"\n\
         min_backoff = \"50ms\"\nmax_backoff = \"1s\"\ntimeout = \"5s\"\n\
         [[remote_write]]\nurl = \"{0}/no/such/path\"\nname = \"wrong-path\"\n",
        prometheus.base_url
    ));
    let started = Instant::now();

    // Besides sonde's own rounds, samples pushed into sonde at 10 Hz with
    // the jitter of a busy sender: 0 to 40 ms after each 100 ms tick.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let writing = writing.clone();
        let url = sonde.base_url.clone();
        std::thread::spawn(move || {
            let mut written = Vec::new();
            let first = now_ms();
            let deadline = Instant::now() + COLLECTION + Duration::from_secs(60);
            while writing.load(Ordering::Relaxed) && Instant::now() < deadline {
                let k = written.len() as i64;
                let sample = (first + 100 * k + (k * 7919) % 41, k as f64);
                let request = WriteRequest {
                    timeseries: vec![series("forward_demo", &[], &[sample])],
                    metadata: vec![],
                };
                remote::write(&url, &request);
                written.push(sample);
                std::thread::sleep(Duration::from_millis(100));
            }
            written
        })
    };

    wait_for(&sonde, "first deliveries", Duration::from_secs(30), || {
        stat(
            &sonde,
            "sonde_remote_write_samples_sent_total",
            "prometheus",
        ) > 0.0
    });
    wait_for(
        &sonde,
        "the 404 destination to drop a batch",
        Duration::from_secs(30),
        || {
            stat(
                &sonde,
                "sonde_remote_write_samples_failed_total",
                "wrong-path",
            ) > 0.0
        },
    );
    assert_eq!(
        stat(
            &sonde,
            "sonde_remote_write_samples_retried_total",
            "wrong-path"
        ),
        0.0,
        "a 404 is not retried"
    );

    // The outage: samples pile up in the queue and are retried.
    prometheus.stop();
    wait_for(
        &sonde,
        "retries during the outage",
        Duration::from_secs(30),
        || {
            stat(
                &sonde,
                "sonde_remote_write_samples_retried_total",
                "prometheus",
            ) > 0.0
        },
    );
    std::thread::sleep(Duration::from_secs(15));
    let pending = stat(&sonde, "sonde_remote_write_samples_pending", "prometheus");
    assert!(pending > 0.0, "samples queued while Prometheus is down");
    prometheus.restart();

    std::thread::sleep(COLLECTION.saturating_sub(started.elapsed()));
    writing.store(false, Ordering::Relaxed);
    let written = writer.join().unwrap();
    // Everything stored up to `end_ms` is queued by then: a round is stored
    // and queued in one transaction, a moment after the instant it carries.
    let end_ms = now_ms() - 1_000;
    let identical = wait_identical(
        &sonde.base_url,
        &prometheus.base_url,
        start_ms,
        end_ms,
        Duration::from_secs(60),
    );

    let in_sonde = read_all(&sonde.base_url, start_ms, end_ms);
    let demo = in_sonde
        .iter()
        .find(|s| s.labels.iter().any(|l| l.value == "forward_demo"))
        .expect("forward_demo stored");
    let stored: Vec<(i64, f64)> = demo
        .samples
        .iter()
        .map(|p| (p.timestamp, p.value))
        .collect();
    let sent: Vec<(i64, f64)> = written.into_iter().filter(|s| s.0 <= end_ms).collect();
    assert_eq!(stored, sent, "jittered timestamps stored exactly as sent");
    assert_eq!(
        stat(
            &sonde,
            "sonde_remote_write_samples_failed_total",
            "prometheus"
        ),
        0.0,
        "nothing refused: no sample arrived twice or out of order\n{}",
        sonde.log_text()
    );

    // The same PromQL answers from both over the collected rounds: ranges on
    // a 1 s grid and an awkward one, instants in the middle and at the end.
    let (from, to) = (start_ms / 1000 + 20, end_ms / 1000);
    let requests = [
        format!("/api/v1/query_range?start={from}&end={to}&step=1"),
        format!("/api/v1/query_range?start={from}.317&end={to}&step=7"),
        format!("/api/v1/query?time={}.5", (from + to) / 2),
        format!("/api/v1/query?time={to}"),
    ];
    let queries = corpus_unlabelled("10s");
    let (compared, failures) = compare(&prometheus.base_url, &sonde.base_url, &queries, &requests);
    eprintln!(
        "{} samples in {} series identical in both; {compared} PromQL answers compared, {} differ; {} retried",
        identical,
        in_sonde.len(),
        failures.len(),
        stat(
            &sonde,
            "sonde_remote_write_samples_retried_total",
            "prometheus"
        )
    );
    assert!(
        failures.is_empty(),
        "{} of {compared} answers differ from Prometheus:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
