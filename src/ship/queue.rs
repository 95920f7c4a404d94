//! The durable remote-write queue, inside sonde's database (tables
//! `remote_write_queue` and `remote_write_position`, migration 0003): the
//! reading end and the destinations' positions. The store writes the rows,
//! each append's stored samples as a snappy-compressed `WriteRequest`, in
//! the transaction that stores them (see `store/outbox.rs`).
//!
//! Each destination keeps a position, the last row it delivered or gave up
//! on, and a sender reads the rows after it in order. Rows every destination
//! has passed are deleted.
//!
//! Invariants:
//! - Rows are read in `seq` order and a position only moves forward, after
//!   the receiver accepted (or definitively refused) everything up to it, so
//!   a sample is delivered in order and, once accepted, never sent again —
//!   except when sonde dies between a receiver's answer and the position
//!   update.
//! - A batch's last row is recorded (`in_flight`) before the batch is sent,
//!   and after a restart that batch goes first, alone and whole. A receiver
//!   that already took it either ignores it or refuses it (Prometheus
//!   answers 400 to a sample older than its series' newest), and the
//!   refusal drops only what it already holds, never newer rows.
//! - A destination configured for the first time starts after the last row:
//!   it receives what is stored from then on, not the backlog of others.
//! - Concatenated `WriteRequest` encodings are one valid `WriteRequest` (the
//!   protobuf rule for repeated fields), so a batch of rows is sent without
//!   decoding them.

use std::path::Path;

use anyhow::Context;
use rusqlite::{params, Connection, OptionalExtension};

use crate::prompb::compress;

/// Sets the queue up for the destinations `remotes` (the database is
/// already migrated): a new one starts after the last row, one no longer
/// configured is forgotten (and no longer holds rows back).
pub fn configure(db_file: &Path, remotes: &[&str]) -> anyhow::Result<()> {
    let mut conn = crate::store::side_connection(db_file)?;
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
    Ok(())
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
    /// The last row of the batch sent before a restart, if beyond the
    /// position: the next batch ends there.
    in_flight: i64,
}

impl Cursor {
    /// Opens the position [`configure`] set up for `remote`.
    pub fn open(db_file: &Path, remote: &str) -> anyhow::Result<Cursor> {
        let conn = crate::store::side_connection(db_file)?;
        let (position, in_flight) = conn
            .query_row(
                "SELECT seq, in_flight FROM remote_write_position WHERE remote = ?1",
                [remote],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?
            .with_context(|| format!("remote_write {remote:?} has no queue position"))?;
        Ok(Cursor {
            conn,
            remote: remote.to_string(),
            position,
            in_flight,
        })
    }

    /// The next rows after the position, up to `max_samples` (at least one
    /// row, however large), or exactly the rows in flight at the last stop;
    /// recorded as in flight. None when the queue is empty.
    pub fn next_batch(&mut self, max_samples: usize) -> anyhow::Result<Option<Batch>> {
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
            let seq: i64 = row.get(0)?;
            let full = if self.in_flight > self.position {
                seq > self.in_flight
            } else {
                batch.samples > 0 && batch.samples + samples as u64 > max_samples as u64
            };
            if full {
                break;
            }
            let request: Vec<u8> = row.get(2)?;
            let decoded = snap::raw::Decoder::new()
                .decompress_vec(&request)
                .with_context(|| format!("corrupt remote-write queue row {seq}"))?;
            merged.extend(decoded);
            batch.last_seq = seq;
            batch.samples += samples as u64;
        }
        drop(rows);
        drop(stmt);
        if batch.last_seq == self.position {
            return Ok(None);
        }
        self.conn.execute(
            "UPDATE remote_write_position SET in_flight = ?2 WHERE remote = ?1",
            params![self.remote, batch.last_seq],
        )?;
        self.in_flight = batch.last_seq;
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
    use crate::model::{Labels, Sample, METRIC_NAME};
    use crate::prompb::WriteRequest;
    use crate::store::{Store, StoreOptions};
    use prost::Message;

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
        let request = WriteRequest::decode(bytes.as_slice()).unwrap();
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

    /// A fresh store with its outbox on, in a directory named after `what`.
    fn store_with_outbox(what: &str, options: StoreOptions) -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("sonde-queue-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let options = StoreOptions {
            outbox: true,
            ..options
        };
        (Store::open_with(&dir, options).unwrap(), dir)
    }

    #[test]
    fn batches_come_in_order_per_destination_and_rows_go_once_all_passed() {
        let (mut store, dir) = store_with_outbox("order", StoreOptions::default());
        let db = dir.join("sonde.db");
        configure(&db, &["a", "b"]).unwrap();
        store.append(&[sample("x", 1), sample("y", 1)]).unwrap();
        store.append(&[sample("x", 2)]).unwrap();
        store.append(&[sample("x", 3), sample("y", 3)]).unwrap();
        let conn = Connection::open(&db).unwrap();
        conn.execute(
            "UPDATE remote_write_queue SET enqueued_ms = CASE WHEN seq < 3 THEN 0 ELSE 10 END",
            [],
        )
        .unwrap();

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
        drop(a);
        configure(&db, &["a", "b"]).unwrap();
        let mut b = Cursor::open(&db, "b").unwrap();
        assert_eq!(b.pending().unwrap(), 5);
        assert_eq!(b.expire(5).unwrap(), 3, "rows queued before 5 ms");
        assert_eq!(b.pending().unwrap(), 2);
        let a = Cursor::open(&db, "a").unwrap();
        assert_eq!(a.pending().unwrap(), 0);

        // A new destination starts after the last row; one dropped from the
        // config stops holding rows back.
        store.append(&[sample("z", 4)]).unwrap();
        configure(&db, &["a", "c"]).unwrap();
        let c = Cursor::open(&db, "c").unwrap();
        assert_eq!(c.pending().unwrap(), 0);
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM remote_write_queue", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1, "only the row a has not sent is left");
        assert!(Cursor::open(&db, "b").is_err());
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rows_hold_exactly_what_the_store_stored() {
        let options = StoreOptions {
            max_series: 1,
            ..StoreOptions::default()
        };
        let (mut store, dir) = store_with_outbox("refused", options);
        let db = dir.join("sonde.db");
        configure(&db, &["a"]).unwrap();
        let other_value = Sample {
            value: -1.0,
            ..sample("x", 1)
        };
        store
            .append(&[
                sample("x", 1),
                sample("x", 1), // duplicate
                other_value,    // out of order
                sample("x", 0), // out of order
                sample("y", 1), // a second series, over max_series
                sample("x", 2),
            ])
            .unwrap();
        store.append(&[sample("x", 2)]).unwrap(); // nothing stored, no row
        let mut a = Cursor::open(&db, "a").unwrap();
        let batch = a.next_batch(100).unwrap().unwrap();
        assert_eq!(decode(&batch), [("x".into(), 1), ("x".into(), 2)]);
        assert_eq!(batch.samples, 2);
        assert_eq!(a.pending().unwrap(), 2, "one row");
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn after_a_restart_the_batch_in_flight_goes_alone() {
        let (mut store, dir) = store_with_outbox("in-flight", StoreOptions::default());
        let db = dir.join("sonde.db");
        configure(&db, &["a"]).unwrap();
        store.append(&[sample("x", 1)]).unwrap();
        store.append(&[sample("x", 2)]).unwrap();
        let mut a = Cursor::open(&db, "a").unwrap();
        let sent = a.next_batch(100).unwrap().unwrap();
        assert_eq!(sent.samples, 2);
        // sonde dies before the position moves; more rows come meanwhile.
        drop(a);
        store.append(&[sample("x", 3)]).unwrap();
        let mut a = Cursor::open(&db, "a").unwrap();
        let again = a.next_batch(100).unwrap().unwrap();
        assert_eq!(decode(&again), decode(&sent), "the same batch, alone");
        a.advance(again.last_seq).unwrap();
        let next = a.next_batch(100).unwrap().unwrap();
        assert_eq!(decode(&next), [("x".into(), 3)]);
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
