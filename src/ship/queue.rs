//! The durable remote-write queue, inside sonde's database (tables
//! `remote_write_queue` and `remote_write_position`, migration 0003).
//!
//! Every stored batch becomes one row: a snappy-compressed `WriteRequest`.
//! Each destination keeps a position, the last row it delivered or gave up
//! on, and a sender reads the rows after it in order. Rows every destination
//! has passed are deleted.
//!
//! Invariants:
//! - Rows are read in `seq` order and a position only moves forward, after
//!   the receiver accepted (or definitively refused) everything up to it, so
//!   a sample is delivered in order and, once accepted, never sent again —
//!   except when sonde dies between a receiver's answer and the position
//!   update, where the batch is sent once more (a receiver ignores an exact
//!   duplicate).
//! - A destination configured for the first time starts after the last row:
//!   it receives what is stored from then on, not the backlog of others.
//! - Concatenated `WriteRequest` encodings are one valid `WriteRequest` (the
//!   protobuf rule for repeated fields), so a batch of rows is sent without
//!   decoding them.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use prost::Message;
use rusqlite::{params, Connection, OptionalExtension};

use crate::model::{Labels, Sample};
use crate::prompb::{self, compress};

fn connect(db_file: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(db_file)
        .with_context(|| format!("cannot open the database {}", db_file.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// The writing end: appends stored batches to the queue.
pub struct Outbox {
    /// None when no destination is configured: nothing is queued.
    conn: Option<Connection>,
}

impl Outbox {
    /// Opens the queue of an already migrated database for the destinations
    /// `remotes`: a new one starts after the last row, one no longer
    /// configured is forgotten (and no longer holds rows back).
    pub fn open(db_file: &Path, remotes: &[&str]) -> anyhow::Result<Outbox> {
        let mut conn = connect(db_file)?;
        let tx = conn.transaction()?;
        let configured: Vec<String> = {
            let mut stmt = tx.prepare("SELECT remote FROM remote_write_position")?;
            let rows = stmt.query_map([], |row| row.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for gone in configured.iter().filter(|r| !remotes.contains(&r.as_str())) {
            tx.execute(
                "DELETE FROM remote_write_position WHERE remote = ?1",
                [gone],
            )?;
        }
        let last: i64 = tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM remote_write_queue",
            [],
            |row| row.get(0),
        )?;
        for remote in remotes {
            tx.execute(
                "INSERT OR IGNORE INTO remote_write_position (remote, seq) VALUES (?1, ?2)",
                params![remote, last],
            )?;
        }
        trim(&tx)?;
        tx.commit()?;
        Ok(Outbox {
            conn: (!remotes.is_empty()).then_some(conn),
        })
    }

    /// An outbox that queues nothing, for a sonde without `[[remote_write]]`
    /// whose database is not at hand (tests, benchmarks).
    pub fn none() -> Outbox {
        Outbox { conn: None }
    }

    /// Queues a stored batch for every destination.
    pub fn push(&mut self, samples: &[Sample], now_ms: i64) -> anyhow::Result<()> {
        let Some(conn) = &self.conn else {
            return Ok(());
        };
        if samples.is_empty() {
            return Ok(());
        }
        let request = compress(&to_write_request(samples).encode_to_vec());
        conn.prepare_cached(
            "INSERT INTO remote_write_queue (enqueued_ms, samples, request) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![now_ms, samples.len() as i64, request])
        .context("cannot queue samples for remote write")?;
        Ok(())
    }
}

/// Samples grouped into series, in their first appearance's order.
pub fn to_write_request(samples: &[Sample]) -> prompb::WriteRequest {
    let mut index: HashMap<&Labels, usize> = HashMap::new();
    let mut timeseries: Vec<prompb::TimeSeries> = Vec::new();
    for sample in samples {
        let i = *index.entry(&sample.labels).or_insert_with(|| {
            timeseries.push(prompb::TimeSeries {
                labels: sample
                    .labels
                    .iter()
                    .map(|(name, value)| prompb::Label {
                        name: name.to_string(),
                        value: value.to_string(),
                    })
                    .collect(),
                samples: Vec::new(),
            });
            timeseries.len() - 1
        });
        timeseries[i].samples.push(prompb::Sample {
            value: sample.value,
            timestamp: sample.timestamp_ms,
        });
    }
    prompb::WriteRequest {
        timeseries,
        metadata: Vec::new(),
    }
}

/// Deletes the rows every destination has passed.
fn trim(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM remote_write_queue WHERE seq <= \
         (SELECT COALESCE(MIN(seq), (SELECT MAX(seq) FROM remote_write_queue)) \
          FROM remote_write_position)",
        [],
    )?;
    Ok(())
}

/// Consecutive queued rows, ready to send as one request.
pub struct Batch {
    /// The last row in the batch: the position once it is delivered.
    pub last_seq: i64,
    pub samples: u64,
    /// Snappy-compressed `WriteRequest`.
    pub body: Vec<u8>,
}

/// One destination's reading end.
pub struct Cursor {
    conn: Connection,
    remote: String,
    position: i64,
}

impl Cursor {
    /// Opens the position [`Outbox::open`] set up for `remote`.
    pub fn open(db_file: &Path, remote: &str) -> anyhow::Result<Cursor> {
        let conn = connect(db_file)?;
        let position = conn
            .query_row(
                "SELECT seq FROM remote_write_position WHERE remote = ?1",
                [remote],
                |row| row.get(0),
            )
            .optional()?
            .with_context(|| format!("remote_write {remote:?} has no queue position"))?;
        Ok(Cursor {
            conn,
            remote: remote.to_string(),
            position,
        })
    }

    /// The next rows after the position, up to `max_samples` (at least one
    /// row, however large); None when the queue is empty.
    pub fn next_batch(&self, max_samples: usize) -> anyhow::Result<Option<Batch>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, samples, request FROM remote_write_queue WHERE seq > ?1 ORDER BY seq",
        )?;
        let mut rows = stmt.query([self.position])?;
        let mut merged = Vec::new();
        let mut batch = Batch {
            last_seq: self.position,
            samples: 0,
            body: Vec::new(),
        };
        while let Some(row) = rows.next()? {
            let samples: i64 = row.get(1)?;
            if batch.samples > 0 && batch.samples + samples as u64 > max_samples as u64 {
                break;
            }
            let request: Vec<u8> = row.get(2)?;
            let seq: i64 = row.get(0)?;
            let decoded = snap::raw::Decoder::new()
                .decompress_vec(&request)
                .with_context(|| format!("corrupt remote-write queue row {seq}"))?;
            merged.extend(decoded);
            batch.last_seq = seq;
            batch.samples += samples as u64;
        }
        if batch.last_seq == self.position {
            return Ok(None);
        }
        batch.body = compress(&merged);
        Ok(Some(batch))
    }

    /// Moves the position past `seq` (delivered or given up on) and deletes
    /// the rows no destination needs any more.
    pub fn advance(&mut self, seq: i64) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE remote_write_position SET seq = ?2 WHERE remote = ?1 AND seq < ?2",
            params![self.remote, seq],
        )?;
        trim(&tx)?;
        tx.commit()?;
        self.position = self.position.max(seq);
        Ok(())
    }

    /// Samples queued after the position.
    pub fn pending(&self) -> anyhow::Result<u64> {
        let pending: i64 = self.conn.query_row(
            "SELECT COALESCE(SUM(samples), 0) FROM remote_write_queue WHERE seq > ?1",
            [self.position],
            |row| row.get(0),
        )?;
        Ok(pending as u64)
    }

    /// Gives up on the rows queued before `cutoff_ms`: moves past them and
    /// returns how many samples they held.
    pub fn expire(&mut self, cutoff_ms: i64) -> anyhow::Result<u64> {
        let (last, samples): (Option<i64>, i64) = self.conn.query_row(
            "SELECT MAX(seq), COALESCE(SUM(samples), 0) FROM remote_write_queue \
             WHERE seq > ?1 AND enqueued_ms < ?2",
            params![self.position, cutoff_ms],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        match last {
            Some(last) => {
                self.advance(last)?;
                Ok(samples as u64)
            }
            None => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::METRIC_NAME;
    use crate::store::Store;

    fn sample(job: &str, ts: i64) -> Sample {
        Sample {
            labels: Labels::new([(METRIC_NAME, "q"), ("job", job)]),
            timestamp_ms: ts,
            value: ts as f64,
        }
    }

    fn decode(batch: &Batch) -> Vec<(String, i64)> {
        let bytes = snap::raw::Decoder::new()
            .decompress_vec(&batch.body)
            .unwrap();
        let request = prompb::WriteRequest::decode(bytes.as_slice()).unwrap();
        request
            .timeseries
            .iter()
            .flat_map(|s| {
                let job = s.labels.iter().find(|l| l.name == "job").unwrap();
                s.samples
                    .iter()
                    .map(move |p| (job.value.clone(), p.timestamp))
            })
            .collect()
    }

    #[test]
    fn batches_come_in_order_per_destination_and_rows_go_once_all_passed() {
        let dir = std::env::temp_dir().join(format!("sonde-queue-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        drop(Store::open(&dir).unwrap()); // migrates
        let db = dir.join("sonde.db");
        let mut outbox = Outbox::open(&db, &["a", "b"]).unwrap();
        outbox.push(&[sample("x", 1), sample("y", 1)], 0).unwrap();
        outbox.push(&[sample("x", 2)], 0).unwrap();
        outbox.push(&[sample("x", 3), sample("y", 3)], 10).unwrap();

        let mut a = Cursor::open(&db, "a").unwrap();
        assert_eq!(a.pending().unwrap(), 5);
        let first = a.next_batch(3).unwrap().unwrap();
        assert_eq!(first.samples, 3, "two rows fit in 3 samples, the third not");
        assert_eq!(
            decode(&first),
            [("x".into(), 1), ("y".into(), 1), ("x".into(), 2)]
        );
        a.advance(first.last_seq).unwrap();
        let second = a.next_batch(1).unwrap().unwrap();
        assert_eq!(second.samples, 2, "a row larger than the limit goes whole");
        a.advance(second.last_seq).unwrap();
        assert!(a.next_batch(100).unwrap().is_none());

        // b has not moved: every row is still there for it, and a restart
        // keeps both positions.
        drop((a, outbox));
        let mut outbox = Outbox::open(&db, &["a", "b"]).unwrap();
        let mut b = Cursor::open(&db, "b").unwrap();
        assert_eq!(b.pending().unwrap(), 5);
        assert_eq!(b.expire(5).unwrap(), 3, "rows queued before 5 ms");
        assert_eq!(b.pending().unwrap(), 2);
        let a = Cursor::open(&db, "a").unwrap();
        assert_eq!(a.pending().unwrap(), 0);

        // A new destination starts after the last row; one dropped from the
        // config stops holding rows back.
        outbox.push(&[sample("z", 4)], 20).unwrap();
        drop(outbox);
        let _outbox = Outbox::open(&db, &["a", "c"]).unwrap();
        let c = Cursor::open(&db, "c").unwrap();
        assert_eq!(c.pending().unwrap(), 0);
        let rows: i64 = Connection::open(&db)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM remote_write_queue", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1, "only the row a has not sent is left");
        assert!(Cursor::open(&db, "b").is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
