//! Durability: sonde is killed with SIGKILL at random moments while a client
//! remote-writes into it as fast as it can (and sonde stores its own
//! collection rounds), with a `[[remote_write]]` destination, a real
//! Prometheus 2.42. Every request also carries a duplicate and an
//! out-of-order sample, which the store refuses. After every kill the
//! database passes `PRAGMA integrity_check`; at the end every acknowledged
//! sample is there, no series has a duplicate or out-of-order sample, the
//! head resumed after each restart (later writes to the same series were
//! stored), and once restarted sonde has delivered, Prometheus holds exactly
//! the samples sonde stored: none lost, none twice, none the store refused.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::prometheus::Prometheus;
use common::remote::{self, wait_identical};
use common::{Sonde, TempDir};
use sonde::model::{MatchOp, Matcher, METRIC_NAME};
use sonde::prompb::WriteRequest;
use sonde::store::Store;

const SERIES: usize = 20;
const SAMPLES_PER_REQUEST: i64 = 7;
const KILLS: usize = 24;
/// Between two samples of a written series: small, so that all of them fit
/// in the hour before the newest sample that Prometheus accepts.
const STEP_MS: i64 = 10;

/// What the writer sent: per request, the first timestamp and whether the
/// receiver acknowledged it (204) before the kill.
struct Sent {
    first_ts: i64,
    acked: bool,
}

fn value(series: usize, t: i64) -> f64 {
    (t / 1000) as f64 * 0.5 + series as f64
}

fn integrity(db: &std::path::Path) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn sigkill_during_ingest_loses_nothing_acknowledged() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("seed {seed}");
    let mut rng = seed | 1;
    let mut random = move |bound: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % bound
    };
    let mut data = TempDir::new("crash");
    let prometheus = Prometheus::start(
        "global:\n  scrape_interval: 1h\n",
        &["--web.enable-remote-write-receiver"],
    );
    let config = format!(
        "[[remote_write]]\nurl = \"{}/api/v1/write\"\nmin_backoff = \"50ms\"\nmax_backoff = \"1s\"\n",
        prometheus.base_url
    );
    // Timestamps of the written series start ten minutes back.
    let first_ts: i64 = (seed / 1_000_000) as i64 - 600_000;
    let mut next_ts = first_ts;
    let mut sent: Vec<Sent> = Vec::new();
    for kill in 0..KILLS {
        let mut sonde = Sonde::start_in(data, &config);
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            let base_url = sonde.base_url.clone();
            let start_ts = next_ts;
            std::thread::spawn(move || {
                let mut sent = Vec::new();
                let mut t = start_ts;
                let deadline = Instant::now() + Duration::from_secs(10);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let request = WriteRequest {
                        timeseries: (0..SERIES)
                            .map(|s| {
                                let mut samples: Vec<(i64, f64)> = (0..SAMPLES_PER_REQUEST)
                                    .map(|i| (t + i * STEP_MS, value(s, t + i * STEP_MS)))
                                    .collect();
                                // Refused by the store: a repeat of the last
                                // sample, and a sample before it.
                                samples.push(samples[samples.len() - 1]);
                                samples.push((t + 3 * STEP_MS, -1.0));
                                remote::series("crash_demo", &[("s", &s.to_string())], &samples)
                            })
                            .collect(),
                        metadata: vec![],
                    };
                    let url = format!("{base_url}/api/v1/write");
                    let body = sonde::prompb::compress(&prost::Message::encode_to_vec(&request));
                    let answer = remote::post(&url, &body, &remote::WRITE_HEADERS);
                    let acked = matches!(&answer, Ok(a) if a.status == 204);
                    sent.push(Sent { first_ts: t, acked });
                    t += SAMPLES_PER_REQUEST * STEP_MS;
                    if answer.is_err() {
                        break; // sonde is gone
                    }
                }
                (sent, t)
            })
        };
        std::thread::sleep(Duration::from_millis(50 + random(700)));
        sonde.child.kill().unwrap(); // SIGKILL
        let _ = sonde.child.wait();
        stop.store(true, Ordering::Relaxed);
        let (mut batch, after) = writer.join().unwrap();
        assert!(
            batch.iter().any(|s| s.acked),
            "kill {kill}: no write was acknowledged:\n{}",
            sonde.log_text()
        );
        sent.append(&mut batch);
        next_ts = after;
        data = std::mem::replace(&mut sonde.data, TempDir(std::path::PathBuf::new()));
        drop(sonde);
        let db = data.0.join("store").join("sonde.db");
        assert_eq!(integrity(&db), "ok", "after kill {kill}");
    }

    // Restarted, sonde delivers what the kills left queued; rounds it
    // collects from now on are later than `end_ms`.
    let end_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let sonde = Sonde::start_in(data, &config);
    let delivered = wait_identical(
        &sonde.base_url,
        &prometheus.base_url,
        first_ts,
        end_ms,
        Duration::from_secs(90),
    );
    let data = sonde.stop();

    let store = Store::open(&data.0.join("store")).unwrap();
    let written = store
        .select(&[Matcher::equal(METRIC_NAME, "crash_demo")], 0, i64::MAX)
        .unwrap();
    assert_eq!(written.len(), SERIES);
    for series in &written {
        let s: usize = series.labels.get("s").unwrap().parse().unwrap();
        let stored: Vec<i64> = series.samples.iter().map(|x| x.0).collect();
        assert!(
            stored.windows(2).all(|w| w[0] < w[1]),
            "{}: duplicate or out of order",
            series.labels
        );
        for &(t, v) in &series.samples {
            assert_eq!(v, value(s, t), "{} at {t}", series.labels);
        }
        for request in sent.iter().filter(|r| r.acked) {
            for i in 0..SAMPLES_PER_REQUEST {
                let t = request.first_ts + i * STEP_MS;
                assert!(
                    stored.binary_search(&t).is_ok(),
                    "{}: acknowledged sample at {t} lost",
                    series.labels
                );
            }
        }
    }
    // sonde's own series, written every round across the kills.
    let all = store
        .select(
            &[Matcher::new(MatchOp::Regex, METRIC_NAME, "sonde_.+").unwrap()],
            0,
            i64::MAX,
        )
        .unwrap();
    assert!(!all.is_empty());
    for series in &all {
        assert!(
            series.samples.windows(2).all(|w| w[0].0 < w[1].0),
            "{}: duplicate or out of order",
            series.labels
        );
    }
    let acked = sent.iter().filter(|r| r.acked).count();
    println!(
        "{KILLS} kills, {acked} of {} writes acknowledged; Prometheus holds the {delivered} samples sonde stored",
        sent.len()
    );
}
