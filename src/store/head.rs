//! The head: per active series, the open (not yet full) raw chunk and the
//! open rollup buckets and chunks, in memory. Full chunks leave the head for
//! the `chunks` and `rollups` tables.
//!
//! The out-of-order and duplicate rule (one rule for every sample, whoever
//! sends it): per series, stored timestamps strictly increase.
//! - A sample after the series' last one is stored.
//! - A sample at the last timestamp with the same value (bit for bit) is a
//!   harmless repeat, e.g. a remote-write retry: ignored, and counted as a
//!   duplicate.
//! - Any other sample at or before the last timestamp is dropped and counted
//!   as out of order: the first value stored for an instant wins, and the
//!   chunk format (deltas of increasing timestamps) stays valid.
//!
//! Timestamps are stored as given, whoever sends them: what sonde answers
//! and what it forwards are the same instants. Regular timestamps cost one
//! bit each because collection stamps rounds on their schedule (see
//! [`crate::collect::schedule`]), not because the head moves any.
//!
//! Rollups: only the tiers [`Resolution::rolled_at_ingest`] are fed here
//! (the hour tier); the minute tier's buckets are made from the raw chunks
//! while those are kept, and stored when retention deletes them (see
//! [`super::rollup`]). A state written when the minute tier was fed still
//! reads, its open minute chunk kept until the series closes.
//!
//! A state's layout: the open raw chunk and the series' last sample, the
//! minute tier and the hour tier as states have always held them, then
//! what the buckets' second moment needs (see [`super::rollup`]), minute
//! tier then hour tier. A state written before buckets kept M2 ends before
//! that part: it reads, its buckets with M2 unknown.
//!
//! Memory: every active series holds one [`HeadSeries`] (216 bytes, boxed
//! in the store's table) and two blocks: the open raw chunk's bytes, grown
//! a little at a time (see [`super::xor`]), and the hour tier's open chunk,
//! its exact encoded bytes (see [`super::rollup::OpenChunk`]). What a
//! series costs after 1 and 30 hours is in `sonde bench store`'s
//! `head_bytes_per_series`; `a_series_stays_small` keeps the fixed part
//! from growing unnoticed.
//!
//! Invariants:
//! - `raw` holds fewer than [`SAMPLES_PER_CHUNK`] samples: a chunk leaves the
//!   head the moment it is full.
//! - `last_ts` is the series' newest stored timestamp, whether that sample is
//!   still in `raw` or already in a persisted chunk.

use super::codec::{ByteReader, ByteWriter};
use super::rollup::{Resolution, RollupAppender, TierHead};
use super::xor::{CorruptChunk, XorAppender, SAMPLES_PER_CHUNK};

/// Written where states once kept the series' last interval (used to align
/// timestamps, which the head no longer does), so states written before and
/// after read alike.
const RETIRED_FIELD: i64 = 0;

/// What became of one sample offered to the head.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Appended {
    Stored,
    Duplicate,
    OutOfOrder,
}

/// A chunk that left the head and must be persisted.
#[derive(Debug)]
pub enum Finished {
    Raw {
        min_time: i64,
        max_time: i64,
        samples: u16,
        data: Vec<u8>,
    },
    Rollup {
        resolution: Resolution,
        min_time: i64,
        max_time: i64,
        data: Vec<u8>,
    },
}

/// Chunks of a series in rows of their own, waiting to become a run. The
/// counts are u32 (8 bytes less in every series): a run closes at a few
/// dozen chunks and a few KiB (see the store's `RUN_CHUNKS`, `RUN_BYTES`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Staged {
    pub chunks: u32,
    pub bytes: u32,
    /// The first one's min time.
    pub since: i64,
}

#[derive(Clone, Debug)]
pub struct HeadSeries {
    raw: XorAppender,
    raw_min: i64,
    pub last_ts: i64,
    last_value: f64,
    /// The hour tier's open bucket and chunk: the one tier fed at ingest.
    hour: TierHead,
    /// The minute tier's open chunk, only in a state written when that
    /// tier was fed at ingest: out of line, since nearly every series has
    /// none and it would double the size of each series in the head.
    minute: Option<Box<TierHead>>,
    /// This series' chunks written in rows of their own and not yet in a
    /// run (see the store's module docs). Kept in memory only: after a
    /// restart it starts empty and the first run is merely made later.
    pub staged: Staged,
}

impl HeadSeries {
    /// A series entering the head; `last_ts` is its newest persisted sample
    /// (`i64::MIN` for none), so the out-of-order rule holds across closing
    /// and reopening.
    pub fn new(last_ts: i64) -> HeadSeries {
        HeadSeries {
            raw: XorAppender::new(),
            raw_min: 0,
            last_ts,
            last_value: f64::NAN,
            hour: TierHead::new(Resolution::Hour),
            minute: None,
            staged: Staged::default(),
        }
    }

    pub fn append(&mut self, t: i64, v: f64, finished: &mut Vec<Finished>) -> Appended {
        if t <= self.last_ts {
            return if t == self.last_ts && v.to_bits() == self.last_value.to_bits() {
                Appended::Duplicate
            } else {
                Appended::OutOfOrder
            };
        }
        if self.raw.is_empty() {
            self.raw_min = t;
        }
        self.raw.append(t, v);
        self.last_ts = t;
        self.last_value = v;
        if self.raw.len() >= SAMPLES_PER_CHUNK {
            finished.push(self.take_raw());
        }
        if let Some(full) = self.hour.add(t, v) {
            finished.push(rollup_finished(Resolution::Hour, &full));
        }
        Appended::Stored
    }

    fn take_raw(&mut self) -> Finished {
        let full = std::mem::take(&mut self.raw);
        Finished::Raw {
            min_time: self.raw_min,
            max_time: full.last_timestamp(),
            samples: full.len(),
            data: full.bytes().to_vec(),
        }
    }

    /// Everything still open leaves the head: the series is closing.
    pub fn close(mut self, finished: &mut Vec<Finished>) {
        if !self.raw.is_empty() {
            finished.push(self.take_raw());
        }
        let minute = self.minute.take().map(|minute| *minute);
        for tier in minute.into_iter().chain([self.hour]) {
            let resolution = tier.resolution;
            if let Some(chunk) = tier.close() {
                finished.push(rollup_finished(resolution, &chunk));
            }
        }
    }

    /// The open raw chunk, if it has samples: (min time, max time, bytes).
    pub fn open_chunk(&self) -> Option<(i64, i64, &[u8])> {
        (!self.raw.is_empty()).then(|| (self.raw_min, self.raw.last_timestamp(), self.raw.bytes()))
    }

    pub fn tier(&self, resolution: Resolution) -> Option<&TierHead> {
        match resolution {
            Resolution::Hour => Some(&self.hour),
            Resolution::Minute => self.minute.as_deref(),
            Resolution::Raw => None,
        }
    }

    /// The tiers as states hold them: the minute tier (empty when there is
    /// none), then the hour tier.
    fn write_tiers(&self, w: &mut ByteWriter) {
        match &self.minute {
            Some(minute) => minute.write(w),
            None => TierHead::new(Resolution::Minute).write(w),
        }
        self.hour.write(w);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = ByteWriter::default();
        self.write_before_m2(&mut w);
        self.write_tiers_m2(&mut w);
        w.into_inner()
    }

    /// The state up to its M2 part: all a state written before buckets
    /// kept M2 holds.
    fn write_before_m2(&self, w: &mut ByteWriter) {
        w.bytes(self.raw.bytes());
        w.i64(self.raw_min);
        w.i64(self.last_ts);
        w.f64(self.last_value);
        w.i64(RETIRED_FIELD);
        self.write_tiers(w);
    }

    /// What M2 needs of the tiers, in the order of [`Self::write_tiers`].
    fn write_tiers_m2(&self, w: &mut ByteWriter) {
        match &self.minute {
            Some(minute) => minute.write_m2(w),
            None => TierHead::new(Resolution::Minute).write_m2(w),
        }
        self.hour.write_m2(w);
    }

    pub fn decode(bytes: &[u8]) -> Result<HeadSeries, CorruptChunk> {
        let mut r = ByteReader::new(bytes);
        let raw = XorAppender::resume(r.bytes()?)?;
        let raw_min = r.i64()?;
        let last_ts = r.i64()?;
        let last_value = r.f64()?;
        r.i64()?; // the retired field

        let mut minute = TierHead::read(Resolution::Minute, &mut r)?;
        let mut hour = TierHead::read(Resolution::Hour, &mut r)?;
        // Absent from a state written before buckets kept M2.
        if !r.is_empty() {
            minute.read_m2(&mut r)?;
            hour.read_m2(&mut r)?;
        }
        let minute = (minute.open.is_some() || !minute.chunk.is_empty()).then(|| Box::new(minute));
        Ok(HeadSeries {
            raw,
            raw_min,
            last_ts,
            last_value,
            hour,
            minute,
            staged: Staged::default(),
        })
    }
}

fn rollup_finished(resolution: Resolution, chunk: &RollupAppender) -> Finished {
    Finished::Rollup {
        resolution,
        min_time: chunk.min_time(),
        max_time: chunk.max_time(),
        data: chunk.encode(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Bucket;

    #[test]
    fn out_of_order_and_duplicates_follow_the_rule() {
        let mut s = HeadSeries::new(i64::MIN);
        let mut done = Vec::new();
        assert_eq!(s.append(1000, 1.0, &mut done), Appended::Stored);
        assert_eq!(s.append(1000, 1.0, &mut done), Appended::Duplicate);
        assert_eq!(s.append(1000, 2.0, &mut done), Appended::OutOfOrder);
        assert_eq!(s.append(999, 1.0, &mut done), Appended::OutOfOrder);
        assert_eq!(s.append(2000, 3.0, &mut done), Appended::Stored);
        let reopened = HeadSeries::new(2000);
        let mut reopened = reopened;
        assert_eq!(reopened.append(2000, 9.0, &mut done), Appended::OutOfOrder);
    }

    #[test]
    fn jittered_timestamps_are_stored_as_given() {
        let mut s = HeadSeries::new(i64::MIN);
        let mut done = Vec::new();
        for t in [0, 10_007, 20_014, 29_990, 40_001] {
            assert_eq!(s.append(t, 1.0, &mut done), Appended::Stored);
            assert_eq!(s.last_ts, t);
        }
    }

    #[test]
    fn states_written_with_the_last_interval_still_read() {
        let mut s = HeadSeries::new(i64::MIN);
        let mut done = Vec::new();
        s.append(1_000, 1.0, &mut done);
        s.append(2_000, 2.0, &mut done);
        // The state as the aligning head wrote it: its last interval (1000)
        // where the retired field now is.
        let mut w = ByteWriter::default();
        w.bytes(s.raw.bytes());
        w.i64(s.raw_min);
        w.i64(s.last_ts);
        w.f64(s.last_value);
        w.i64(1_000);
        s.write_tiers(&mut w);
        s.write_tiers_m2(&mut w);
        let old = w.into_inner();
        let back = HeadSeries::decode(&old).unwrap();
        assert_eq!(back.encode(), s.encode());
        assert_eq!(back.last_ts, 2_000);
    }

    #[test]
    fn states_written_before_buckets_kept_m2_read_with_m2_unknown() {
        let mut s = HeadSeries::new(i64::MIN);
        let mut done = Vec::new();
        let hour = Resolution::Hour.bucket_ms();
        // Two closed hour buckets in the open chunk and an open one.
        for i in 0..30 {
            s.append(i * hour / 10, (i % 4) as f64, &mut done);
        }
        // The state as it was written before: no M2 part.
        let mut w = ByteWriter::default();
        s.write_before_m2(&mut w);
        let mut back = HeadSeries::decode(&w.into_inner()).unwrap();
        let known = s.hour.buckets().unwrap();
        let old = back.hour.buckets().unwrap();
        assert_eq!(old.len(), 3);
        for (old, known) in old.iter().zip(&known) {
            assert_eq!(old.scaled_m2, None);
            assert!(known.scaled_m2.is_some());
            assert_eq!(
                Bucket {
                    scaled_m2: None,
                    ..*known
                },
                *old
            );
        }
        // The open bucket goes on without M2; the next one has it, and the
        // state now round-trips.
        back.append(30 * hour / 10, 1.0, &mut done);
        back.append(40 * hour / 10, 2.0, &mut done);
        let buckets = back.hour.buckets().unwrap();
        assert_eq!(buckets[2].scaled_m2, None);
        assert_eq!(buckets[3].scaled_m2, Some(0.0));
        let again = HeadSeries::decode(&back.encode()).unwrap();
        assert_eq!(again.hour.buckets().unwrap(), buckets);
        assert_eq!(again.encode(), back.encode());
    }

    /// Every active series holds one: a field added here costs its size in
    /// each of them (see the module doc's memory paragraph).
    #[test]
    fn a_series_stays_small() {
        assert!(std::mem::size_of::<HeadSeries>() <= 216);
    }

    #[test]
    fn chunks_leave_the_head_when_full_and_state_round_trips() {
        let mut s = HeadSeries::new(i64::MIN);
        let mut done = Vec::new();
        for i in 0..250 {
            s.append(i * 10_000, i as f64, &mut done);
        }
        let raw: Vec<u16> = done
            .iter()
            .filter_map(|f| match f {
                Finished::Raw { samples, .. } => Some(*samples),
                Finished::Rollup { .. } => None,
            })
            .collect();
        assert_eq!(raw, [120, 120]);
        let back = HeadSeries::decode(&s.encode()).unwrap();
        assert_eq!(back.encode(), s.encode());
        assert_eq!(back.open_chunk().unwrap().0, 2_400_000);
    }
}
