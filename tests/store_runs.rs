//! Runs of chunks: a series' full chunks end up several to a row, and every
//! reader still gets each chunk whole, byte for byte the XOR chunk the head
//! cut, with its own time span; a database written before runs existed
//! opens with its samples and grows runs from then on.

mod common;

use common::TempDir;
use sonde::model::{Labels, Matcher, Sample, METRIC_NAME};
use sonde::store::{xor, Store};

const INTERVAL: i64 = 10_000;

fn labels(name: &str) -> Labels {
    Labels::new([(METRIC_NAME, name), ("job", "runs")])
}

/// A busy series (a counter with uneven increments) and a quiet one.
fn value(name: &str, i: i64) -> f64 {
    match name {
        "busy" => (i * i % 97 + i * 13) as f64,
        _ => 7.0,
    }
}

fn append_rounds(store: &mut Store, rounds: std::ops::Range<i64>) {
    for i in rounds {
        let batch: Vec<Sample> = ["busy", "quiet"]
            .iter()
            .map(|name| Sample {
                labels: labels(name),
                timestamp_ms: i * INTERVAL,
                value: value(name, i),
            })
            .collect();
        store.append(&batch).unwrap();
    }
}

/// (rows, chunks) of the chunks table.
fn rows_and_chunks(db: &std::path::Path) -> (i64, i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT count(*), total(chunk_count) FROM chunks", [], |r| {
        Ok((r.get(0)?, r.get::<_, f64>(1)? as i64))
    })
    .unwrap()
}

/// Every chunk of `name` is a whole XOR chunk of 120 samples (the head's
/// open one aside) whose span is its own, and together they hold `rounds`.
fn check_chunks(store: &Store, name: &str, rounds: std::ops::Range<i64>) {
    let selected = store
        .select_chunks(&[Matcher::equal(METRIC_NAME, name)], 0, i64::MAX)
        .unwrap();
    let chunks = &selected[0].chunks;
    let mut samples = Vec::new();
    for (k, chunk) in chunks.iter().enumerate() {
        let decoded = xor::decode(&chunk.data).unwrap();
        if k + 1 < chunks.len() {
            assert_eq!(decoded.len(), 120, "{name} chunk {k}");
        }
        assert_eq!(chunk.min_time, decoded[0].0, "{name} chunk {k}");
        assert_eq!(
            chunk.max_time,
            decoded.last().unwrap().0,
            "{name} chunk {k}"
        );
        assert_eq!(xor::encode(&decoded), chunk.data, "{name} chunk {k}");
        samples.extend(decoded);
    }
    let expected: Vec<(i64, f64)> = rounds.map(|i| (i * INTERVAL, value(name, i))).collect();
    assert_eq!(samples, expected, "{name}");
}

#[test]
fn runs_hand_out_whole_chunks_and_only_those_in_range() {
    let dir = TempDir::new("runs");
    let db = dir.0.join("sonde.db");
    let mut store = Store::open(&dir.0).unwrap();
    // Two days at 10 s: 144 chunks a series.
    let day = 8_640;
    append_rounds(&mut store, 0..day);
    // A restart in the middle: the head resumes, runs go on.
    drop(store);
    let mut store = Store::open(&dir.0).unwrap();
    append_rounds(&mut store, day..2 * day);
    store.checkpoint().unwrap();
    let (rows, chunks) = rows_and_chunks(&db);
    assert!(chunks >= 2 * 143, "{chunks} chunks stored");
    assert!(rows * 4 < chunks, "{rows} rows for {chunks} chunks");
    check_chunks(&store, "busy", 0..2 * day);
    check_chunks(&store, "quiet", 0..2 * day);

    // A range inside a run gets only the chunks that overlap it.
    let (start, end) = (30 * 3_600_000, 30 * 3_600_000 + 1_800_000);
    let some = store
        .select_chunks(&[Matcher::equal(METRIC_NAME, "busy")], start, end)
        .unwrap();
    let spans: Vec<(i64, i64)> = some[0]
        .chunks
        .iter()
        .map(|c| (c.min_time, c.max_time))
        .collect();
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert!(spans.iter().all(|&(min, max)| max >= start && min <= end));
    let samples = store
        .select(&[Matcher::equal(METRIC_NAME, "busy")], start, end)
        .unwrap();
    assert_eq!(samples[0].samples.len(), 181);
    assert_eq!(
        samples[0].samples[0],
        (start, value("busy", start / INTERVAL))
    );
}

#[test]
fn a_database_from_before_runs_keeps_its_samples_and_grows_runs() {
    let dir = TempDir::new("runs-upgrade");
    std::fs::create_dir_all(&dir.0).unwrap();
    let db = dir.0.join("sonde.db");
    // The file as sonde wrote it with schema 4: 4 KiB pages, auto-vacuum,
    // one chunk per row, a series whose head was closed.
    let old: Vec<(i64, f64)> = (0..360).map(|i| (i * INTERVAL, value("busy", i))).collect();
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .unwrap();
        for sql in [
            include_str!("../migrations/0001_store_v0.sql"),
            include_str!("../migrations/0002_chunks.sql"),
            include_str!("../migrations/0003_remote_write_queue.sql"),
            include_str!("../migrations/0004_chunks_in_rowid_tables.sql"),
        ] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
        conn.execute(
            "INSERT INTO series (id, name, labels) VALUES (1, 'busy', ?1)",
            [r#"[["__name__","busy"],["job","runs"]]"#],
        )
        .unwrap();
        conn.execute_batch(
            "INSERT INTO postings VALUES ('__name__', 'busy', 1), ('job', 'runs', 1);",
        )
        .unwrap();
        for chunk in old.chunks(120) {
            conn.execute(
                "INSERT INTO chunks (series_id, min_time, max_time, samples, data)
                 VALUES (1, ?1, ?2, ?3, ?4)",
                rusqlite::params![
                    chunk[0].0,
                    chunk.last().unwrap().0,
                    chunk.len(),
                    xor::encode(chunk)
                ],
            )
            .unwrap();
        }
    }
    let mut store = Store::open(&dir.0).unwrap();
    let busy = [Matcher::equal(METRIC_NAME, "busy")];
    assert_eq!(store.select(&busy, 0, i64::MAX).unwrap()[0].samples, old);
    // The same series goes on (the quiet one starts later), for a day.
    for i in 360..8_640 {
        store
            .append(&[Sample {
                labels: labels("busy"),
                timestamp_ms: i * INTERVAL,
                value: value("busy", i),
            }])
            .unwrap();
    }
    store.checkpoint().unwrap();
    let (rows, chunks) = rows_and_chunks(&db);
    assert!(rows * 2 < chunks, "{rows} rows for {chunks} chunks");
    check_chunks(&store, "busy", 0..8_640);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}
