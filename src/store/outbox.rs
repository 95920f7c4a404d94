//! The outbox: the samples an append stored, queued for the
//! `[[remote_write]]` destinations in the very transaction that stores them
//! (table `remote_write_queue`, migration 0003). [`crate::ship`] reads the
//! queue and sends it; this module only writes it.
//!
//! A row is one append's stored samples as a snappy-compressed
//! `WriteRequest`, grouped into series in their first appearance's order.
//!
//! Invariants:
//! - A row holds exactly the samples its append stored: none the store
//!   refused (out of order, duplicate, a series over `max_series`), each
//!   with the timestamp and value stored.
//! - A row commits in the transaction that logs its samples, so after a
//!   crash the queue holds what the file holds: nothing forwarded that was
//!   not stored, nothing stored that is not forwarded.
//! - A row whose transaction failed waits in memory with the store's other
//!   pending writes and goes out with the next transaction that succeeds.

use std::collections::HashMap;

use prost::Message;
use rusqlite::{params, Connection};

use crate::model::{Labels, SampleRef};
use crate::prompb::{self, compress};

/// One append's stored samples, encoded and waiting for a transaction.
pub struct Row {
    enqueued_ms: i64,
    samples: usize,
    request: Vec<u8>,
}

impl Row {
    /// The row of `stored`, queued now (the time `max_queue_age` counts
    /// from).
    pub fn new<'a>(stored: impl Iterator<Item = SampleRef<'a>>) -> Row {
        let request = to_write_request(stored);
        Row {
            enqueued_ms: crate::collect::now_ms(),
            samples: request.timeseries.iter().map(|s| s.samples.len()).sum(),
            request: compress(&request.encode_to_vec()),
        }
    }

    pub fn insert(&self, tx: &Connection) -> rusqlite::Result<()> {
        tx.prepare_cached(
            "INSERT INTO remote_write_queue (enqueued_ms, samples, request) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![self.enqueued_ms, self.samples as i64, self.request])?;
        Ok(())
    }
}

/// Samples grouped into series, in their first appearance's order.
fn to_write_request<'a>(samples: impl Iterator<Item = SampleRef<'a>>) -> prompb::WriteRequest {
    let mut index: HashMap<&'a Labels, usize> = HashMap::new();
    let mut timeseries: Vec<prompb::TimeSeries> = Vec::new();
    for sample in samples {
        let i = *index.entry(sample.labels).or_insert_with(|| {
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
