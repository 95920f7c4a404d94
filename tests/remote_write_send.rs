//! Remote write out: sonde ships everything it stores to a real Prometheus
//! 2.42 (`--web.enable-remote-write-receiver`) through its durable queue.
//! Prometheus is stopped in the middle of the run and started again; in the
//! end Prometheus holds exactly the samples sonde holds, read back from both
//! with remote read. A destination that answers 404 gets no retries.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::prometheus::Prometheus;
use common::remote::{self, series};
use common::Sonde;
use prost::Message;
use sonde::prompb::{
    LabelMatcher, MatcherType, Query, ReadRequest, ReadResponse, TimeSeries, WriteRequest,
};

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

/// Every sample of every series in [start_ms, end_ms], by remote read,
/// sorted by labels.
fn read_all(base_url: &str, start_ms: i64, end_ms: i64) -> Vec<TimeSeries> {
    let request = ReadRequest {
        queries: vec![Query {
            start_timestamp_ms: start_ms,
            end_timestamp_ms: end_ms,
            matchers: vec![LabelMatcher {
                r#type: MatcherType::Re as i32,
                name: "__name__".into(),
                value: ".+".into(),
            }],
            hints: None,
        }],
        accepted_response_types: vec![0],
    };
    let answer = remote::read(base_url, &request);
    assert_eq!(answer.status, 200, "{base_url}: {}", answer.text());
    let bytes = snap::raw::Decoder::new()
        .decompress_vec(&answer.body)
        .unwrap();
    let mut response = ReadResponse::decode(bytes.as_slice()).unwrap();
    let mut series = std::mem::take(&mut response.results[0].timeseries);
    series.sort_by(|a, b| {
        let key = |s: &TimeSeries| {
            s.labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect::<Vec<_>>()
        };
        key(a).cmp(&key(b))
    });
    series
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

#[test]
fn every_sample_reaches_prometheus_exactly_once_across_an_outage() {
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

    // Besides its own collection rounds (if any collector runs here),
    // samples pushed into sonde at 10 Hz.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let writing = writing.clone();
        let url = sonde.base_url.clone();
        std::thread::spawn(move || {
            let mut written = 0usize;
            // On an exact 100 ms grid, so the store keeps them unaligned.
            let first = now_ms();
            let deadline = Instant::now() + Duration::from_secs(120);
            while writing.load(Ordering::Relaxed) && Instant::now() < deadline {
                let ts = first + 100 * written as i64;
                let request = WriteRequest {
                    timeseries: vec![series("forward_demo", &[], &[(ts, written as f64)])],
                    metadata: vec![],
                };
                remote::write(&url, &request);
                written += 1;
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

    std::thread::sleep(Duration::from_secs(3));
    writing.store(false, Ordering::Relaxed);
    let written = writer.join().unwrap();
    // Everything stored up to `end_ms` is queued by `end_ms` + one round.
    let end_ms = now_ms();
    std::thread::sleep(Duration::from_secs(3));
    wait_for(
        &sonde,
        "the queue to drain",
        Duration::from_secs(60),
        || stat(&sonde, "sonde_remote_write_samples_pending", "prometheus") == 0.0,
    );
    sonde.wait_rounds(2);

    let in_sonde = read_all(&sonde.base_url, start_ms, end_ms);
    let in_prometheus = read_all(&prometheus.base_url, start_ms, end_ms);
    let count = |series: &[TimeSeries]| series.iter().map(|s| s.samples.len()).sum::<usize>();
    let demo = in_sonde
        .iter()
        .find(|s| s.labels.iter().any(|l| l.value == "forward_demo"))
        .expect("forward_demo stored");
    assert_eq!(demo.samples.len(), written);
    assert_eq!(in_prometheus.len(), in_sonde.len(), "same series");
    // sonde forwards samples as collected or received; its store aligns a
    // timestamp within 50 ms of its series' step. So each sample must have
    // exactly one partner within 50 ms and with the same value, away from
    // the range's ends, where alignment may move a sample across.
    let partners = |from: &TimeSeries, to: &TimeSeries, margin: i64| {
        for sample in &from.samples {
            if sample.timestamp < start_ms + margin || sample.timestamp > end_ms - margin {
                continue;
            }
            let near: Vec<_> = to
                .samples
                .iter()
                .filter(|o| (o.timestamp - sample.timestamp).abs() <= 50)
                .collect();
            assert_eq!(near.len(), 1, "{:?} at {}", from.labels, sample.timestamp);
            assert_eq!(
                near[0].value.to_bits(),
                sample.value.to_bits(),
                "{:?} at {}",
                from.labels,
                sample.timestamp
            );
        }
    };
    for (p, s) in in_prometheus.iter().zip(&in_sonde) {
        assert_eq!(p.labels, s.labels);
        partners(p, s, 100);
        partners(s, p, 150);
    }
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
    eprintln!(
        "{} samples in {} series delivered; {} retried",
        count(&in_sonde),
        in_sonde.len(),
        stat(
            &sonde,
            "sonde_remote_write_samples_retried_total",
            "prometheus"
        )
    );
}
