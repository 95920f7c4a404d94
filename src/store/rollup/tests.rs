//! The rollup tiers' tests: rate() and gauge aggregates over buckets, the
//! head tier's state, and the buckets' second moment against the samples'
//! own spread, through the store (restart, retention, old rows).

use std::time::Duration;

use super::*;
use crate::alert::baseline::band;
use crate::store::rng::Rng;
use crate::store::tests::{name, sample, TempDir};
use crate::store::{Store, StoreOptions};

/// A counter's increase over samples in [from, to]: the sum of positive
/// differences, a drop counting as a reset to zero (as PromQL's
/// increase() does before extrapolation).
fn increase(samples: &[(i64, f64)], from: i64, to: i64) -> f64 {
    let inside: Vec<f64> = samples
        .iter()
        .filter(|s| s.0 >= from && s.0 <= to)
        .map(|s| s.1)
        .collect();
    inside
        .windows(2)
        .map(|w| if w[1] >= w[0] { w[1] - w[0] } else { w[1] })
        .sum()
}

fn roll(samples: &[(i64, f64)], resolution: Resolution) -> Vec<Bucket> {
    let mut tier = TierHead::new(resolution);
    let mut buckets = Vec::new();
    for &(t, v) in samples {
        if let Some(full) = tier.add(t, v) {
            buckets.extend(decode(&full.encode()).unwrap());
        }
    }
    buckets.extend(tier.buckets().unwrap());
    buckets
}

#[test]
fn rate_over_rollups_differs_only_at_the_edges() {
    let mut rng = Rng::new(5);
    // 12 hours of a counter at a jittered 10 s, with bursts and resets.
    let mut samples = Vec::new();
    let (mut t, mut v) = (1_700_000_003_217i64, 0.0);
    for i in 0..4320 {
        samples.push((t, v));
        t += 10_000 + rng.below(80) as i64 - 40;
        v += if i % 700 < 40 {
            500.0
        } else {
            rng.below(30) as f64
        };
        if i % 1500 == 1499 {
            v = rng.below(5) as f64; // restart: the counter resets
        }
    }
    for resolution in Resolution::TIERS {
        let width = resolution.bucket_ms();
        let buckets = roll(&samples, resolution);
        let lasts: Vec<(i64, f64)> = buckets.iter().map(|b| (b.last_ms, b.last)).collect();
        for window in [width * 3, width * 7, 6 * 3_600_000] {
            let mut from = samples[0].0.div_euclid(width) * width + width;
            while from + window <= samples.last().unwrap().0 {
                let to = from + window;
                let raw = increase(&samples, from, to);
                let rolled = increase(&lasts, from, to);
                // What the resolution explains: the raw increase inside
                // the first bucket of the window (the rollup's first kept
                // sample is that bucket's last) and the last, plus reset losses
                // bounded by max - last of the buckets with a reset.
                let edge =
                    increase(&samples, from, from + width) + increase(&samples, to - width, to);
                let resets: f64 = buckets
                    .iter()
                    .filter(|b| b.start_ms >= from && b.start_ms < to && b.last < b.max)
                    .map(|b| b.max - b.last)
                    .sum();
                assert!(
                    (raw - rolled).abs() <= edge + resets + 1e-9,
                    "{resolution:?} [{from}, {to}]: raw {raw}, rollup {rolled}, edge {edge}"
                );
                from += width * (window / 2 / width).max(1);
            }
        }
    }
}

#[test]
fn gauge_aggregates_are_exact_over_aligned_windows() {
    let mut rng = Rng::new(9);
    let mut samples = Vec::new();
    let mut t = 1_700_000_000_000i64;
    for _ in 0..2000 {
        samples.push((t, (rng.below(1000) as f64) / 8.0 - 40.0));
        t += 10_000 + rng.below(50) as i64;
    }
    let buckets = roll(&samples, Resolution::Minute);
    let (from, to) = (buckets[3].start_ms, buckets[40].start_ms);
    let raw: Vec<f64> = samples
        .iter()
        .filter(|s| s.0 >= from && s.0 < to)
        .map(|s| s.1)
        .collect();
    let in_window: Vec<&Bucket> = buckets
        .iter()
        .filter(|b| b.start_ms >= from && b.start_ms < to)
        .collect();
    let fold = |f: fn(f64, f64) -> f64, pick: fn(&Bucket) -> f64| {
        in_window.iter().map(|b| pick(b)).reduce(f).unwrap()
    };
    assert_eq!(
        fold(f64::min, |b| b.min),
        raw.iter().copied().reduce(f64::min).unwrap()
    );
    assert_eq!(
        fold(f64::max, |b| b.max),
        raw.iter().copied().reduce(f64::max).unwrap()
    );
    assert_eq!(fold(|a, b| a + b, |b| b.count), raw.len() as f64);
    let sum: f64 = raw.iter().sum();
    assert!((fold(|a, b| a + b, |b| b.sum) - sum).abs() < 1e-6 * sum.abs().max(1.0));
}

#[test]
fn tier_state_survives_serialization() {
    let mut tier = TierHead::new(Resolution::Minute);
    for i in 0..500 {
        tier.add(i * 7_000, (i % 13) as f64);
    }
    let mut w = ByteWriter::default();
    tier.write(&mut w);
    tier.write_m2(&mut w);
    let bytes = w.into_inner();
    let mut r = ByteReader::new(&bytes);
    let mut back = TierHead::read(Resolution::Minute, &mut r).unwrap();
    back.read_m2(&mut r).unwrap();
    assert_eq!(back.buckets().unwrap(), tier.buckets().unwrap());
    assert_eq!(back.chunk.min_time(), tier.chunk.min_time());
}

#[test]
fn step_picks_the_coarsest_tier_not_wider_than_it() {
    assert_eq!(Resolution::for_step(15_000), Resolution::Raw);
    assert_eq!(Resolution::for_step(60_000), Resolution::Minute);
    assert_eq!(Resolution::for_step(1_800_000), Resolution::Minute);
    assert_eq!(Resolution::for_step(86_400_000), Resolution::Hour);
}

/// A chunk of `buckets`, and its bytes as written before buckets kept M2:
/// its first five streams.
fn chunk_written_before_m2(buckets: &[Bucket]) -> (RollupAppender, Vec<u8>) {
    let mut chunk = RollupAppender::default();
    buckets.iter().for_each(|b| chunk.append(b));
    let mut w = ByteWriter::default();
    for stream in &chunk.streams()[..5] {
        w.bytes(stream.bytes());
    }
    (chunk, w.into_inner())
}

fn without_m2(buckets: &[Bucket]) -> Vec<Bucket> {
    buckets
        .iter()
        .map(|b| Bucket {
            scaled_m2: None,
            ..*b
        })
        .collect()
}

#[test]
fn chunks_written_before_buckets_kept_m2_read_with_m2_unknown() {
    let buckets = fold_buckets((0..600).map(|i| (i * 10_000, (i % 7) as f64)), 60_000);
    let (chunk, old) = chunk_written_before_m2(&buckets);
    assert_eq!(decode(&old).unwrap(), without_m2(&buckets));
    assert_eq!(decode(&chunk.encode()).unwrap(), buckets);
    assert_eq!(
        decode_last(&old).unwrap(),
        decode_last(&chunk.encode()).unwrap()
    );
    // A packed row of such buckets is written as rows were before.
    let mut columns = TimestampColumns::default();
    let row = pack(&mut columns, Resolution::Minute, &old).unwrap();
    assert_eq!(packed::decode_rollup_row(&row).unwrap().scaled_m2, None);
}

/// The (population) standard deviation of `values`, in two passes.
fn stddev_of(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// The spread `method: stddev` learns from `buckets`.
fn pooled_stddev(buckets: &[Bucket]) -> f64 {
    band::pooled_mean_and_stddev(buckets)
        .expect("three buckets or more")
        .1
}

const HOUR: i64 = 3_600_000;

#[test]
fn pooled_stddev_of_minute_and_hour_buckets_is_the_samples_own() {
    let dir = TempDir::new("second-moment");
    let options = StoreOptions {
        retention: Duration::from_secs(3 * 3600),
        ..StoreOptions::default()
    };
    let mut store = Store::open_with(&dir.0, options.clone()).unwrap();
    // 30 hours at a jittered 10 s of a noisy decimal gauge and of a
    // counter near 1e12 (where a raw Σx² would be all rounding).
    let mut rng = Rng::new(17);
    let start = 1_700_000_003_217i64;
    let (mut t, mut counter) = (start, 1e12);
    let mut samples: Vec<(i64, f64, f64)> = Vec::new();
    for i in 0..30 * 360 {
        let gauge = 20.0 + (i % 360) as f64 / 8.0 + rng.below(1000) as f64 / 7.0;
        counter += rng.below(300) as f64;
        samples.push((t, gauge, counter));
        store
            .append(&[sample("g", "a", t, gauge), sample("c", "a", t, counter)])
            .unwrap();
        if i % 360 == 0 {
            store.maintain().unwrap();
        }
        if i == 13 * 360 + 170 {
            // A restart in the middle of an hour bucket and of a minute.
            drop(store);
            store = Store::open_with(&dir.0, options.clone()).unwrap();
        }
        t += 10_000 + rng.below(80) as i64 - 40;
    }
    store.maintain().unwrap();
    drop(store);
    let store = Store::open_with(&dir.0, options).unwrap();
    let raw = store.select(&[name("g")], 0, i64::MAX).unwrap();
    let raw_from = raw[0].samples[0].0;
    assert!(
        raw_from > start + 20 * HOUR,
        "retention deleted raw samples"
    );

    let first_hour = start.div_euclid(HOUR) * HOUR + HOUR;
    let minutes_stored = (raw_from.div_euclid(HOUR) - 2) * HOUR;
    let recent = (raw_from.div_euclid(HOUR) + 1) * HOUR;
    // [from, to) in whole buckets: hours across the restart, minutes stored
    // by retention, minutes across stored and folded from raw, and recent
    // minutes only folded.
    let windows = [
        (Resolution::Hour, first_hour, first_hour + 24 * HOUR),
        (
            Resolution::Hour,
            first_hour + 10 * HOUR,
            first_hour + 16 * HOUR,
        ),
        (
            Resolution::Minute,
            first_hour + 12 * HOUR,
            first_hour + 15 * HOUR,
        ),
        (
            Resolution::Minute,
            minutes_stored,
            minutes_stored + 4 * HOUR,
        ),
        (Resolution::Minute, recent, recent + HOUR),
    ];
    for (metric, pick) in [("g", 1), ("c", 2)] {
        for (resolution, from, to) in windows {
            let buckets = store
                .select_rollups(&[name(metric)], from, to - 1, resolution)
                .unwrap();
            let buckets = &buckets[0].buckets;
            assert!(buckets.iter().all(|b| b.scaled_m2.is_some()));
            let values: Vec<f64> = samples
                .iter()
                .filter(|s| (from..to).contains(&s.0))
                .map(|s| if pick == 1 { s.1 } else { s.2 })
                .collect();
            let want = stddev_of(&values);
            let got = pooled_stddev(buckets);
            assert!(
                (got - want).abs() <= 1e-9 * want,
                "{metric} {resolution:?} [{from}, {to}): {got} from buckets, {want} from samples"
            );
        }
    }
}

#[test]
fn databases_written_before_buckets_kept_m2_open_and_answer() {
    let dir = TempDir::new("before-m2");
    let options = StoreOptions {
        retention: Duration::from_secs(3600),
        ..StoreOptions::default()
    };
    let start = 100 * HOUR;
    let value = |i: i64| 50.0 + (i * 13 % 29) as f64 / 4.0;
    let before = {
        let mut store = Store::open_with(&dir.0, options.clone()).unwrap();
        for i in 0..4 * 360 {
            store
                .append(&[sample("g", "a", start + i * 10_000, value(i))])
                .unwrap();
        }
        store.maintain().unwrap();
        store
            .select_rollups(&[name("g")], 0, i64::MAX, Resolution::Minute)
            .unwrap()
    };
    // Rewrite the stored rows as sonde wrote them before: packed minute
    // rows without the M2 array, and an XOR chunk of hour buckets (five
    // streams) for the two hours before the samples.
    let old_hours = fold_buckets(
        (0..720).map(|i| (start - 2 * HOUR + i * 10_000, 7.0 + (i % 3) as f64)),
        HOUR,
    );
    {
        let conn = rusqlite::Connection::open(dir.0.join("sonde.db")).unwrap();
        let rows: Vec<(i64, Vec<u8>)> = conn
            .prepare("SELECT rowid, data FROM rollups WHERE packed = 1")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!rows.is_empty(), "retention stored minute buckets");
        for (rowid, data) in rows {
            let mut p = packed::decode_rollup_row(&data).unwrap();
            assert!(p.scaled_m2.is_some());
            p.scaled_m2 = None;
            let old = packed::encode_rollup_row(&p);
            conn.execute(
                "UPDATE rollups SET data = ?1 WHERE rowid = ?2",
                rusqlite::params![old, rowid],
            )
            .unwrap();
        }
        let (chunk, old) = chunk_written_before_m2(&old_hours);
        let series: i64 = conn
            .query_row("SELECT id FROM series", [], |r| r.get(0))
            .unwrap();
        conn.execute(
            "INSERT INTO rollups (tier, series_id, min_time, max_time, packed, data) VALUES (60, ?1, ?2, ?3, 0, ?4)",
            rusqlite::params![series, chunk.min_time(), chunk.max_time(), old],
        )
        .unwrap();
        conn.pragma_update(None, "user_version", 9).unwrap();
    }
    let store = Store::open_with(&dir.0, options).unwrap();
    let minutes = store
        .select_rollups(&[name("g")], 0, i64::MAX, Resolution::Minute)
        .unwrap();
    let minutes = &minutes[0].buckets;
    assert_eq!(minutes.len(), before[0].buckets.len());
    let stored = minutes.iter().filter(|b| b.scaled_m2.is_none()).count();
    assert!(stored >= 2 * 60, "{stored} minutes read from old rows");
    for (got, was) in minutes.iter().zip(&before[0].buckets) {
        assert_eq!(
            Bucket {
                scaled_m2: was.scaled_m2,
                ..*got
            },
            *was
        );
    }
    let hours = store
        .select_rollups(&[name("g")], 0, start - 1, Resolution::Hour)
        .unwrap();
    assert_eq!(hours[0].buckets, without_m2(&old_hours));
    // stddev still answers: old buckets count with the spread of their
    // means, new ones with their samples'.
    assert!(pooled_stddev(minutes).is_finite());
}
