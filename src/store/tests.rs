//! The engine behind `append` and `select`: matchers, chunking, restart and
//! crash recovery, the out-of-order rule, the series guard, retention, the
//! size cap, rollup reads and the v0 import.

use super::*;
use crate::model::METRIC_NAME;

pub(super) fn sample(name: &str, job: &str, ts: i64, value: f64) -> Sample {
    Sample {
        labels: Labels::new([(METRIC_NAME, name), ("job", job)]),
        timestamp_ms: ts,
        value,
    }
}

pub(super) struct TempDir(pub(super) std::path::PathBuf);

impl TempDir {
    pub(super) fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "sonde-store-{what}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn name(n: &str) -> Matcher {
    Matcher::equal(METRIC_NAME, n)
}

#[test]
fn samples_survive_reopen_and_select_by_matchers() {
    let dir = TempDir::new("reopen");
    {
        let mut store = Store::open(&dir.0).unwrap();
        store
            .append(&[sample("up", "a", 1000, 1.0), sample("up", "b", 1000, 0.0)])
            .unwrap();
        store.append(&[sample("up", "a", 2000, 1.0)]).unwrap();
        store.append(&[sample("down", "a", 2000, 5.0)]).unwrap();
    }
    let store = Store::open(&dir.0).unwrap();
    let picked = store
        .select(&[name("up"), Matcher::equal("job", "a")], 0, 5000)
        .unwrap();
    assert_eq!(picked.len(), 1);
    assert_eq!(picked[0].samples, vec![(1000, 1.0), (2000, 1.0)]);
    let in_range = store.select(&[name("up")], 1500, 5000).unwrap();
    assert_eq!(in_range.len(), 1, "series b has no sample after 1500");

    let jobs = |matchers: &[Matcher]| -> Vec<String> {
        store
            .select(matchers, 0, 5000)
            .unwrap()
            .iter()
            .map(|s| format!("{}", s.labels))
            .collect()
    };
    let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
    assert_eq!(
        jobs(&[m(MatchOp::NotEqual, "job", "a")]),
        [r#"up{job="b"}"#]
    );
    assert_eq!(
        jobs(&[
            m(MatchOp::Regex, METRIC_NAME, "u.|do.*"),
            m(MatchOp::NotRegex, "job", "b")
        ]),
        [r#"down{job="a"}"#, r#"up{job="a"}"#]
    );
    assert_eq!(jobs(&[m(MatchOp::Equal, "job", "")]), Vec::<String>::new());
    assert_eq!(jobs(&[m(MatchOp::Equal, "absent", "")]).len(), 3);
    assert_eq!(jobs(&[m(MatchOp::Regex, "job", "")]).len(), 0);
}

#[test]
fn reads_touch_only_chunks_in_range() {
    let dir = TempDir::new("chunks");
    let mut store = Store::open(&dir.0).unwrap();
    let batch: Vec<Sample> = (0..1000)
        .map(|i| sample("c", "a", i * 10_000, i as f64))
        .collect();
    store.append(&batch).unwrap();
    let all = store.select_chunks(&[name("c")], 0, i64::MAX).unwrap();
    // 8 full chunks of 120 and the open one with 40.
    assert_eq!(all[0].chunks.len(), 9);
    let some = store
        .select_chunks(&[name("c")], 2_000_000, 2_500_000)
        .unwrap();
    assert_eq!(
        some[0].chunks.len(),
        2,
        "{:?}",
        some[0]
            .chunks
            .iter()
            .map(|c| (c.min_time, c.max_time))
            .collect::<Vec<_>>()
    );
    let samples = store.select(&[name("c")], 2_000_000, 2_500_000).unwrap();
    assert_eq!(samples[0].samples.len(), 51);
    assert_eq!(samples[0].samples[0], (2_000_000, 200.0));
    // The chunks are Prometheus XOR chunks, whole.
    let decoded = xor::decode(&some[0].chunks[0].data).unwrap();
    assert_eq!(decoded.len(), 120);
}

#[test]
fn a_crash_loses_nothing_appended_and_duplicates_nothing() {
    let dir = TempDir::new("crash");
    let mut expected = Vec::new();
    for round in 0..5 {
        let mut store = Store::open(&dir.0).unwrap();
        for i in 0..97 {
            let t = (round * 97 + i) * 10_000;
            let batch: Vec<Sample> = (0..20)
                .map(|s| sample("m", &s.to_string(), t, (t + s) as f64))
                .collect();
            store.append(&batch).unwrap();
            expected.push(t);
        }
        // No drop: as if the process died (the final checkpoint never runs).
        std::mem::forget(store);
    }
    let store = Store::open(&dir.0).unwrap();
    let got = store.select(&[name("m")], i64::MIN, i64::MAX).unwrap();
    assert_eq!(got.len(), 20);
    for series in got {
        let ts: Vec<i64> = series.samples.iter().map(|s| s.0).collect();
        assert_eq!(ts, expected, "{}", series.labels);
    }
    let ok: String = store
        .conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn out_of_order_and_duplicates_are_counted_not_stored() {
    let dir = TempDir::new("ooo");
    let mut store = Store::open(&dir.0).unwrap();
    store.append(&[sample("o", "a", 2000, 1.0)]).unwrap();
    store
        .append(&[
            sample("o", "a", 2000, 1.0),
            sample("o", "a", 2000, 7.0),
            sample("o", "a", 1000, 1.0),
            sample("o", "a", 3000, 2.0),
        ])
        .unwrap();
    let got = store.select(&[name("o")], 0, 10_000).unwrap();
    assert_eq!(got[0].samples, vec![(2000, 1.0), (3000, 2.0)]);
    assert_eq!(store.stats().samples_duplicate, 1);
    assert_eq!(store.stats().samples_out_of_order, 2);
}

#[test]
fn each_sample_reaches_its_series_whatever_its_place_in_the_batch() {
    let dir = TempDir::new("order");
    let options = StoreOptions {
        idle_after: Duration::from_secs(5),
        ..StoreOptions::default()
    };
    let mut store = Store::open_with(&dir.0, options).unwrap();
    let round = |t: i64, jobs: &[&str]| -> Vec<Sample> {
        let scale = (t / 1000) as f64;
        jobs.iter()
            .map(|job| sample("p", job, t, scale * job.as_bytes()[0] as f64))
            .collect()
    };
    store.append(&round(1000, &["a", "b", "c"])).unwrap();
    // Moved places, and a new series between them.
    store.append(&round(2000, &["c", "a", "d", "b"])).unwrap();
    store.append(&round(3000, &["c", "a", "d", "b"])).unwrap();
    // All but d close, then come back at the places they had.
    store.append(&round(10_000, &["d"])).unwrap();
    store.maintain().unwrap();
    assert_eq!(store.active_series(), 1);
    store.append(&round(11_000, &["c", "a", "d", "b"])).unwrap();
    let got = store.select(&[name("p")], 0, 20_000).unwrap();
    let times = |job: &str| match job {
        "d" => vec![2000, 3000, 10_000, 11_000],
        _ => vec![1000, 2000, 3000, 11_000],
    };
    assert_eq!(got.len(), 4);
    for series in got {
        let job = series.labels.get("job").unwrap();
        let want: Vec<(i64, f64)> = times(job)
            .into_iter()
            .map(|t| (t, (t / 1000) as f64 * job.as_bytes()[0] as f64))
            .collect();
        assert_eq!(series.samples, want, "series {job}");
    }
}

#[test]
fn new_series_beyond_the_limit_are_refused() {
    let dir = TempDir::new("guard");
    let options = StoreOptions {
        max_series: 3,
        ..StoreOptions::default()
    };
    let mut store = Store::open_with(&dir.0, options).unwrap();
    let batch: Vec<Sample> = (0..5)
        .map(|i| sample("g", &i.to_string(), 1000, 1.0))
        .collect();
    store.append(&batch).unwrap();
    assert_eq!(store.active_series(), 3);
    assert_eq!(store.stats().series_refused, 2);
    // The admitted ones keep working.
    let batch: Vec<Sample> = (0..5)
        .map(|i| sample("g", &i.to_string(), 2000, 1.0))
        .collect();
    store.append(&batch).unwrap();
    assert_eq!(store.select(&[name("g")], 0, 5000).unwrap().len(), 3);
    let exported = store
        .families()
        .into_iter()
        .find(|f| f.name == "sonde_store_series_refused_total")
        .unwrap();
    assert_eq!(exported.series[0].value, 4.0);
}

#[test]
fn idle_series_close_and_retention_deletes_old_chunks() {
    let dir = TempDir::new("retention");
    let options = StoreOptions {
        retention: Duration::from_secs(6 * 3600),
        ..StoreOptions::default()
    };
    let mut store = Store::open_with(&dir.0, options).unwrap();
    // "old" stops after 2 hours; "live" goes on for 12.
    for i in 0..(12 * 360) {
        let t = i * 10_000;
        let mut batch = vec![sample("live", "a", t, i as f64)];
        if t < 2 * 3_600_000 {
            batch.push(sample("old", "a", t, 1.0));
        }
        store.append(&batch).unwrap();
        if i % 360 == 0 {
            store.maintain().unwrap();
        }
    }
    store.maintain().unwrap();
    assert_eq!(store.active_series(), 1, "the idle series left the head");
    // Chunks, not rows: the first run of "live" (one row of 16 chunks,
    // 5 h 20 min) ended before the cutoff.
    assert!(
        store.stats().chunks_deleted >= 16,
        "{}",
        store.stats().chunks_deleted
    );
    assert!(store
        .select(&[name("old")], 0, i64::MAX)
        .unwrap()
        .is_empty());
    let live = store.select(&[name("live")], 0, i64::MAX).unwrap();
    let first = live[0].samples[0].0;
    let newest = 12 * 3_600_000 - 10_000;
    // Rows go whole: a run of chunks when all of it is past.
    assert!(
        first >= newest - 6 * 3_600_000 - super::RUN_SPAN_MS && first <= newest - 6 * 3_600_000,
        "{first}"
    );
    // The rollups outlive the raw samples.
    let minutes = store
        .select_rollups(&[name("old")], 0, i64::MAX, Resolution::Minute)
        .unwrap();
    assert_eq!(minutes[0].buckets.len(), 120);
    assert!(minutes[0]
        .buckets
        .iter()
        .all(|b| b.count == 6.0 && b.last == 1.0));
}

#[test]
fn retention_deletes_chunks_written_before_what_it_last_saw() {
    let dir = TempDir::new("backfill");
    let options = StoreOptions {
        retention: Duration::from_secs(3600),
        ..StoreOptions::default()
    };
    let mut store = Store::open_with(&dir.0, options).unwrap();
    let hour = 3_600_000;
    for t in (5 * hour..6 * hour).step_by(10_000) {
        store.append(&[sample("now", "a", t, 1.0)]).unwrap();
    }
    // Nothing expires yet: the oldest chunk starts at the cutoff.
    store.maintain().unwrap();
    assert_eq!(store.stats().chunks_deleted, 0);
    // A new series backfilled from long before: its chunks reach the file
    // (the last one as it is closed, idle) starting before anything
    // retention saw.
    for t in (0..hour).step_by(10_000) {
        store.append(&[sample("old", "a", t, 1.0)]).unwrap();
    }
    store.maintain().unwrap();
    assert_eq!(store.stats().chunks_deleted, 3);
    assert!(store
        .select(&[name("old")], 0, i64::MAX)
        .unwrap()
        .is_empty());
    assert_eq!(store.select(&[name("now")], 0, i64::MAX).unwrap().len(), 1);
}

#[test]
fn the_files_stop_growing_under_the_size_cap() {
    let dir = TempDir::new("cap");
    let cap = 3 << 20;
    let options = StoreOptions {
        retention_size: cap,
        ..StoreOptions::default()
    };
    let mut store = Store::open_with(&dir.0, options).unwrap();
    let mut rng = rng::Rng::new(1);
    let mut sizes = Vec::new();
    for i in 0..3000i64 {
        let batch: Vec<Sample> = (0..200)
            .map(|s| sample("noise", &s.to_string(), i * 10_000, rng.f64()))
            .collect();
        store.append(&batch).unwrap();
        if i % 100 == 99 {
            store.maintain().unwrap();
            sizes.push(store.size_on_disk());
        }
    }
    // Random values cost ~9 bytes a sample: 600,000 samples are ~5 MB, so
    // without the cap the files would pass 5 MB.
    assert!(store.stats().chunks_deleted > 0);
    assert!(sizes.iter().all(|&s| s <= cap), "{sizes:?}");
    assert!(sizes.last().unwrap() * 10 > cap * 7, "{sizes:?}");
    let kept = store.select(&[name("noise")], 0, i64::MAX).unwrap();
    // Oldest data goes first, whatever its tier: the newest raw samples stay.
    assert_eq!(kept[0].samples.last().unwrap().0, 2999 * 10_000);
    assert!(kept[0].samples.len() >= 360, "{}", kept[0].samples.len());
}

#[test]
fn coarse_steps_read_the_rollup_tiers() {
    let dir = TempDir::new("rollup");
    let mut store = Store::open(&dir.0).unwrap();
    for i in 0..(3 * 360) {
        store
            .append(&[sample("r", "a", 1_000 + i * 10_000, i as f64)])
            .unwrap();
    }
    let raw = store
        .select_step(&[name("r")], 0, i64::MAX, 15_000)
        .unwrap();
    assert_eq!(raw[0].samples.len(), 3 * 360);
    let minutes = store
        .select_step(&[name("r")], 0, i64::MAX, 60_000)
        .unwrap();
    assert_eq!(minutes[0].samples.len(), 3 * 60);
    assert_eq!(minutes[0].samples[0], (51_000, 5.0));
    let hours = store
        .select_step(&[name("r")], 0, i64::MAX, 3_600_000)
        .unwrap();
    assert_eq!(hours[0].samples.len(), 3);
    let buckets = store
        .select_rollups(&[name("r")], 0, i64::MAX, Resolution::Hour)
        .unwrap();
    assert_eq!(buckets[0].buckets[1].count, 360.0);
    assert_eq!(buckets[0].buckets[1].min, 360.0);
    assert_eq!(buckets[0].buckets[1].max, 719.0);
}

#[test]
fn store_v0_samples_are_moved_into_chunks() {
    let dir = TempDir::new("v0");
    std::fs::create_dir_all(&dir.0).unwrap();
    {
        let conn = Connection::open(dir.0.join("sonde.db")).unwrap();
        conn.execute_batch(include_str!("../../migrations/0001_store_v0.sql"))
            .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO series (id, name, labels) VALUES (7, 'up', '[[\"__name__\",\"up\"],[\"job\",\"x\"]]')",
            [],
        )
        .unwrap();
        for i in 0..300 {
            conn.execute(
                "INSERT INTO samples (series_id, ts, value) VALUES (7, ?1, ?2)",
                params![i * 1000, i as f64],
            )
            .unwrap();
        }
    }
    let mut store = Store::open(&dir.0).unwrap();
    let got = store
        .select(&[Matcher::equal("job", "x")], 0, i64::MAX)
        .unwrap();
    assert_eq!(got[0].samples.len(), 300);
    store.append(&[sample("up", "x", 300_000, 1.0)]).unwrap();
    drop(store);
    let store = Store::open(&dir.0).unwrap();
    assert_eq!(
        store.select(&[name("up")], 0, i64::MAX).unwrap()[0]
            .samples
            .len(),
        301
    );
}

#[test]
fn step_reads_return_each_buckets_last_raw_sample() {
    let dir = TempDir::new("step-lasts");
    let mut store = Store::open(&dir.0).unwrap();
    // 10 hours at 10 s: five stored chunks of minute buckets, and the head's.
    for i in 0..3600 {
        let value = (i * i % 97) as f64;
        store
            .append(&[sample("s", "a", 7_000 + i * 10_000, value)])
            .unwrap();
    }
    let raw = store.select(&[name("s")], 0, i64::MAX).unwrap();
    let mut lasts: Vec<(i64, f64)> = Vec::new();
    for &(t, v) in &raw[0].samples {
        match lasts.last_mut() {
            Some(last) if last.0.div_euclid(60_000) == t.div_euclid(60_000) => *last = (t, v),
            _ => lasts.push((t, v)),
        }
    }
    let hour = 3_600_000;
    for (start, end) in [
        (0, i64::MAX),
        (hour, 3 * hour + 1),
        (8 * hour + 5_000, 9 * hour + 30_000),
        (20 * hour, 30 * hour),
    ] {
        let got = store.select_step(&[name("s")], start, end, 60_000).unwrap();
        let want: Vec<(i64, f64)> = lasts
            .iter()
            .copied()
            .filter(|s| s.0 >= start && s.0 <= end)
            .collect();
        let got = got.first().map(|s| s.samples.clone()).unwrap_or_default();
        assert_eq!(got, want, "[{start}, {end}]");
    }
}

#[test]
fn minute_buckets_stay_the_same_when_retention_deletes_their_raw_samples() {
    let dir = TempDir::new("minutes");
    let options = StoreOptions {
        retention: Duration::from_secs(3 * 3600),
        ..StoreOptions::default()
    };
    let mut store = Store::open_with(&dir.0, options).unwrap();
    // 12 hours of a counter at a jittered 10 s, starting inside a minute,
    // with decimal and float-sum values.
    let mut samples = Vec::new();
    let (mut t, mut v) = (3_217i64, 0.0);
    for i in 0..4320i64 {
        samples.push((t, v));
        t += 10_000 + (i * 7 % 13);
        v += (i % 5) as f64 * 0.25 + if i % 700 == 0 { 0.1 } else { 0.0 };
    }
    // The buckets as the head once rolled them up: each minute's samples.
    let want: Vec<Bucket> = samples
        .chunk_by(|a, b| a.0.div_euclid(60_000) == b.0.div_euclid(60_000))
        .map(|minute| {
            let values = minute.iter().map(|s| s.1);
            let (last_ms, last) = minute[minute.len() - 1];
            // count·M2 from the samples less the minute's first.
            let d = values.clone().map(|v| v - minute[0].1);
            let (sum_d, squares) = (d.clone().sum::<f64>(), d.map(|d| d * d).sum::<f64>());
            Bucket {
                start_ms: minute[0].0.div_euclid(60_000) * 60_000,
                last_ms,
                min: values.clone().fold(f64::INFINITY, f64::min),
                max: values.clone().fold(f64::NEG_INFINITY, f64::max),
                sum: values.sum(),
                count: minute.len() as f64,
                last,
                scaled_m2: Some((minute.len() as f64 * squares - sum_d * sum_d).max(0.0)),
            }
        })
        .collect();
    for (i, &(t, v)) in samples.iter().enumerate() {
        store.append(&[sample("m", "a", t, v)]).unwrap();
        if i % 360 == 0 {
            store.maintain().unwrap();
        }
    }
    store.maintain().unwrap();
    let raw = store.select(&[name("m")], 0, i64::MAX).unwrap();
    assert!(raw[0].samples[0].0 > 6 * 3_600_000, "raw samples deleted");
    let got = store
        .select_rollups(&[name("m")], 0, i64::MAX, Resolution::Minute)
        .unwrap();
    assert_eq!(got[0].buckets, want);
    // The same after a restart, and from the stored buckets alone.
    drop(store);
    let store = Store::open(&dir.0).unwrap();
    let got = store
        .select_rollups(&[name("m")], 0, 5 * 3_600_000, Resolution::Minute)
        .unwrap();
    let early: Vec<Bucket> = want
        .iter()
        .copied()
        .filter(|b| b.start_ms <= 5 * 3_600_000)
        .collect();
    assert_eq!(got[0].buckets, early);
}

/// Rows of `series`, and rows of `postings` or `head` naming no series.
fn series_rows(store: &Store) -> (i64, i64) {
    let count = |sql: &str| store.conn.query_row(sql, [], |r| r.get(0)).unwrap();
    let series = count("SELECT count(*) FROM series");
    let orphans = count(
        "SELECT (SELECT count(*) FROM postings WHERE series_id NOT IN (SELECT id FROM series))
              + (SELECT count(*) FROM head WHERE series_id NOT IN (SELECT id FROM series))",
    );
    (series, orphans)
}

#[test]
fn series_without_data_are_deleted_and_come_back_fresh() {
    let dir = TempDir::new("dead-series");
    let options = StoreOptions {
        retention: Duration::from_secs(3600),
        minute_retention: Duration::from_secs(2 * 3600),
        hour_retention: Duration::from_secs(3 * 3600),
        ..StoreOptions::default()
    };
    let mut store = Store::open_with(&dir.0, options).unwrap();
    // 40 series live for 20 minutes, "live" for 6 hours.
    let mut checked_while_rollups_remain = false;
    for i in 0..(6 * 360) {
        let t = i * 10_000;
        let mut batch = vec![sample("live", "a", t, i as f64)];
        if t < 20 * 60_000 {
            batch.extend((0..40).map(|s| sample("gone", &s.to_string(), t, 1.0)));
        }
        store.append(&batch).unwrap();
        if i % 60 == 0 {
            store.maintain().unwrap();
        }
        // Past raw and minute retention, the hour tier still holds them.
        if t == 2 * 3_600_000 + 50 * 60_000 {
            assert_eq!(store.active_series(), 1);
            assert_eq!(series_rows(&store), (41, 0));
            let hours = store
                .select_rollups(&[name("gone")], 0, i64::MAX, Resolution::Hour)
                .unwrap();
            assert_eq!(hours.len(), 40);
            checked_while_rollups_remain = true;
        }
    }
    assert!(checked_while_rollups_remain);
    store.maintain().unwrap();
    assert_eq!(store.stats().series_deleted, 40);
    assert_eq!(series_rows(&store), (1, 0));
    assert_eq!(store.series_ids.len(), 1);
    let postings: i64 = store
        .conn
        .query_row("SELECT count(*) FROM postings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(postings, 2, "the live series' two labels");

    // The same labels again: a new series, without the old one's past.
    let old_ids = store.next_series_id;
    let t = 6 * 3_600_000;
    store.append(&[sample("gone", "3", t, 7.0)]).unwrap();
    let back = store.select(&[name("gone")], 0, i64::MAX).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].samples, [(t, 7.0)]);
    assert_eq!(store.series_ids[&back[0].labels], old_ids);
    assert_eq!(series_rows(&store), (2, 0));
}

#[test]
fn logged_samples_of_a_deleted_series_do_not_come_back_after_a_crash() {
    let dir = TempDir::new("dead-series-log");
    let options = StoreOptions {
        retention: Duration::from_secs(3600),
        minute_retention: Duration::from_secs(3600),
        hour_retention: Duration::from_secs(3600),
        ..StoreOptions::default()
    };
    let mut store = Store::open_with(&dir.0, options.clone()).unwrap();
    for i in 0..3 {
        store
            .append(&[
                sample("live", "a", i * 10_000, 1.0),
                sample("gone", "a", i * 10_000, 2.0),
            ])
            .unwrap();
    }
    // One append carries "live" 5 hours on: "gone" goes idle, its chunks
    // pass retention and it is deleted, while the ingest log still holds
    // its samples (no checkpoint since).
    let later: Vec<Sample> = (3..(5 * 360))
        .map(|i| sample("live", "a", i * 10_000, 1.0))
        .collect();
    store.append(&later).unwrap();
    store.maintain().unwrap();
    assert_eq!(store.stats().series_deleted, 1);
    assert!(store.log_rows > 0, "the log still holds the deleted series");
    let deleted_id = store.next_series_id - 1;
    std::mem::forget(store); // a crash: no final checkpoint

    let mut store = Store::open_with(&dir.0, options).unwrap();
    assert!(store
        .select(&[name("gone")], 0, i64::MAX)
        .unwrap()
        .is_empty());
    assert_eq!(series_rows(&store), (1, 0));
    assert_eq!(store.active_series(), 1);
    let live = store.select(&[name("live")], 0, i64::MAX).unwrap();
    assert_eq!(live[0].samples.last().unwrap().0, (5 * 360 - 1) * 10_000);
    store
        .append(&[sample("gone", "a", 5 * 3_600_000, 3.0)])
        .unwrap();
    let back = store.select(&[name("gone")], 0, i64::MAX).unwrap();
    assert_eq!(back[0].samples, [(5 * 3_600_000, 3.0)]);
    assert!(
        store.series_ids[&back[0].labels] > deleted_id,
        "no id reused"
    );
}

#[test]
fn only_an_unwritable_file_calls_for_a_new_connection() {
    let failure = |code| {
        let err = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        anyhow::Error::from(err).context("commit")
    };
    assert!(wants_new_connection(&failure(
        rusqlite::ffi::SQLITE_READONLY
    )));
    assert!(wants_new_connection(&failure(
        rusqlite::ffi::SQLITE_IOERR_WRITE
    )));
    assert!(wants_new_connection(&failure(
        rusqlite::ffi::SQLITE_CANTOPEN
    )));
    // A full disk takes writes again on the same connection.
    assert!(!wants_new_connection(&failure(rusqlite::ffi::SQLITE_FULL)));
    assert!(!wants_new_connection(&anyhow::anyhow!("not SQLite")));
}
