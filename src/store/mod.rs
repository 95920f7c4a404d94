//! Storage: a time-series engine inside one SQLite file.
//!
//! The interface is small: [`Store::append`] takes a batch of samples;
//! [`Store::select`] returns the series a set of matchers picks with their
//! samples in a time range, [`Store::select_chunks`] the same as stored XOR
//! chunks (for remote-read, and for readers that decode lazily), and
//! [`Store::select_step`] / [`Store::select_rollups`] read the 1-minute and
//! 1-hour rollup tiers when a query steps coarsely.
//!
//! Layout (schema in `migrations/0002_chunks.sql`, `0004_...`, `0005_...`
//! and `0009_...`):
//! - `series` (id, metric name, label set) and `postings` (label name, value,
//!   series id): a selector's positive matchers find their series through
//!   postings, the rest filter those series' label sets.
//! - `chunks`: full raw chunks of about 120 samples each, leaving the head as
//!   Prometheus XOR chunks (see [`xor`]) and stored packed (see [`packed`]):
//!   values as scaled integers where exact, compressed with zstd, and
//!   timestamps in `timestamps`, one column shared by every chunk with the
//!   same instants (see [`timestamps`]). Readers get XOR chunks back, byte
//!   for byte the ones the head cut. `rollups`: the rollup tiers (see
//!   [`rollup`]), packed the same way; the minute tier is stored only once
//!   retention deletes the raw chunks it is made from.
//!   A chunk is written in a row of its own as it leaves the head; once a
//!   series' trailing one-chunk rows pass 2 KiB (or 16 chunks, or 6 hours),
//!   the oldest of them become one packed row holding a run of chunks,
//!   compressed together. A row and its index entry cost about 60 bytes
//!   whatever the row holds, as much as a packed chunk on sonde's data;
//!   rows of at most half a 4 KiB page keep pages well filled. Rows written
//!   before packed rows (`packed = 0`: one XOR chunk, or a run of them as
//!   [`codec::decode_run`] reads it) are read as they are.
//! - the head (see [`head`]): each active series' open chunk and buckets, in
//!   memory; `head` holds its state as of the series' last checkpoint and
//!   `ingest_log` every sample stored since, so a restart rebuilds it.
//! - `remote_write_queue` (with [`StoreOptions::outbox`]): every append's
//!   stored samples, for the `[[remote_write]]` destinations (see
//!   [`outbox`]; [`crate::ship`] sends them).
//!
//! Invariants:
//! - Every committed transaction that persists a chunk of a series also
//!   writes that series' head state, so a state never lags its own chunks:
//!   the chunks plus the state hold exactly the series' samples up to the
//!   state's `last_ts`, and the log holds every later committed sample.
//! - An append's samples reach the log (or a checkpoint) and the outbox in
//!   one transaction: the queue never holds a sample the file lacks, nor
//!   the file one the queue lacks (while the outbox is on).
//! - Log rows are deleted only by a checkpoint, which writes every head state
//!   in the same transaction. Replay skips samples at or before a series'
//!   `last_ts` (the out-of-order rule), so replaying is idempotent: a crash
//!   at any instant neither loses a committed sample nor stores one twice.
//! - A run holds consecutive chunks of one series, oldest first, and no
//!   other row of that series lies between its first and last chunk: runs
//!   are made of a series' trailing one-chunk rows, which leave in the same
//!   transaction that writes the run.
//! - Series ids are allocated in memory and inserted with the first
//!   transaction that commits, so a failed transaction never leaves the
//!   memory naming an id the file reuses for another series.
//! - After a failed write (disk full, read-only file) nothing already taken
//!   is forgotten: full chunks, new series, head states and outbox rows wait
//!   in memory and go out with the next transaction that succeeds, which is
//!   a full checkpoint; reads see them meanwhile. Only the log rows of the
//!   failed appends are dropped, so a crash during the outage loses what
//!   arrived during it, and nothing else.
//! - A write that failed because the file could not be written (read-only,
//!   I/O error) makes the next one open the database again by its path and
//!   rewrite every series and head state through it (see
//!   [`Store::reconnect`]): a file system that was read-only comes back
//!   without a restart, even when it had to be mounted again. Only the
//!   store's first open creates the file; later opens (reconnects, other
//!   stages' connections) wait for a missing one to come back.
//!
//! Durability: SQLite in WAL mode with `synchronous = NORMAL`: a commit is in
//! the operating system's hands when `append` returns, so killing sonde (even
//! with SIGKILL) loses nothing appended; a power loss may lose the last
//! transactions but never corrupts the file.

pub mod bench;
mod codec;
mod head;
mod maintain;
mod migrate;
mod outbox;
mod packed;
mod rng;
pub mod rollup;
mod series_index;
mod timestamps;
pub mod xor;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use rusqlite::{params, Connection, OptionalExtension};

use crate::model::{Family, Labels, MatchOp, Matcher, Sample, SampleRef};
use codec::{ByteReader, ByteWriter};
use head::{Appended, Finished, HeadSeries, Staged};
pub use rollup::{Bucket, Resolution};

/// Rows whose mean length estimates a tier's bytes ([`Store::tier_usage`]).
const USAGE_SAMPLE_ROWS: usize = 1000;

/// One tier of stored data, as [`Store::tier_usage`] reports it.
pub struct TierUsage {
    pub name: &'static str,
    /// Bytes of chunk data (without SQLite's own overhead), estimated.
    pub bytes: u64,
    pub rows: u64,
    /// The oldest sample or bucket start; `None` when the tier is empty.
    pub oldest_ms: Option<i64>,
    pub retention: Duration,
}

/// How the store keeps and limits data; `[storage]` in the config file.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Raw chunks older than this (behind the newest sample) are deleted.
    pub retention: Duration,
    /// Rollup tiers are kept longer than raw samples.
    pub minute_retention: Duration,
    pub hour_retention: Duration,
    /// Upper bound of the database files in bytes (0: none); the oldest data
    /// goes first when the files grow past it.
    pub retention_size: u64,
    /// Series allowed in the head at once; new series beyond are refused.
    pub max_series: usize,
    /// A head series without a sample for this long (behind the newest
    /// sample) is closed: its open chunks are persisted, its memory freed,
    /// and it stops counting as active (`[collect] forget_after`).
    pub idle_after: Duration,
    /// Queue every stored sample for remote write (`[[remote_write]]` is
    /// configured): see [`outbox`].
    pub outbox: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        StoreOptions {
            retention: Duration::from_secs(15 * DAY),
            minute_retention: Duration::from_secs(90 * DAY),
            hour_retention: Duration::from_secs(730 * DAY),
            retention_size: 0,
            max_series: 100_000,
            idle_after: Duration::from_secs(300),
            outbox: false,
        }
    }
}

/// The samples of one series in a time range, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesSamples {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

/// One XOR chunk as stored (see [`xor`]), with its time span.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredChunk {
    pub min_time: i64,
    pub max_time: i64,
    pub data: Vec<u8>,
}

/// A series with the chunks that overlap a time range, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesChunks {
    pub labels: Labels,
    pub chunks: Vec<StoredChunk>,
}

impl SeriesChunks {
    /// The samples in [start_ms, end_ms], decoded as the iterator advances.
    /// A chunk that fails to decode ends its own samples (and is logged);
    /// the others still come.
    pub fn samples(&self, start_ms: i64, end_ms: i64) -> impl Iterator<Item = (i64, f64)> + '_ {
        self.chunks
            .iter()
            .filter(move |c| c.max_time >= start_ms && c.min_time <= end_ms)
            .flat_map(|c| xor_samples(&self.labels, &c.data))
            .skip_while(move |s| s.0 < start_ms)
            .take_while(move |s| s.0 <= end_ms)
    }
}

/// The samples of an XOR chunk of the series `labels`, decoded as the
/// iterator advances. A chunk that fails to decode ends its own samples
/// (and is logged).
fn xor_samples<'a>(labels: &'a Labels, data: &'a [u8]) -> impl Iterator<Item = (i64, f64)> + 'a {
    let iter = match xor::XorIter::new(data) {
        Ok(iter) => Some(iter),
        Err(err) => {
            tracing::warn!("{labels}: {err}");
            None
        }
    };
    iter.into_iter()
        .flatten()
        .map_while(move |sample| match sample {
            Ok(s) => Some(s),
            Err(err) => {
                tracing::warn!("{labels}: {err}");
                None
            }
        })
}

/// A raw chunk as a read finds it: XOR bytes (the head's open chunk,
/// chunks waiting after a failed write, rows written before packed rows),
/// or the samples of a packed row's chunk, which only remote read needs as
/// XOR again.
enum ReadChunk {
    Xor(StoredChunk),
    Unpacked {
        min_time: i64,
        max_time: i64,
        samples: Vec<(i64, f64)>,
    },
}

impl ReadChunk {
    fn min_time(&self) -> i64 {
        match self {
            ReadChunk::Xor(c) => c.min_time,
            ReadChunk::Unpacked { min_time, .. } => *min_time,
        }
    }

    /// The chunk as XOR bytes: the same samples encode to the same bytes
    /// the head cut.
    fn into_xor(self) -> StoredChunk {
        match self {
            ReadChunk::Xor(c) => c,
            ReadChunk::Unpacked {
                min_time,
                max_time,
                samples,
            } => StoredChunk {
                min_time,
                max_time,
                data: xor::encode(&samples),
            },
        }
    }
}

/// A series with its rollup buckets in a time range, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesBuckets {
    pub labels: Labels,
    pub buckets: Vec<Bucket>,
}

/// Counters of what the store did since open, exported as self-metrics.
#[derive(Clone, Debug, Default)]
pub struct StoreStats {
    pub samples_appended: u64,
    pub samples_duplicate: u64,
    pub samples_out_of_order: u64,
    pub series_refused: u64,
    pub write_errors: u64,
    pub chunks_deleted: u64,
    pub series_deleted: u64,
}

/// Hashes the head's series ids, which sonde allocates itself (so nobody
/// can pick colliding ones): one multiply instead of SipHash on the ingest
/// path, which looks a series up for every sample.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_i64(&mut self, id: i64) {
        self.0 = (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The head: each active series' [`HeadSeries`] by its id. Boxed: the
/// table keeps an eighth to a half of its slots empty (it grows by doubling
/// at 7/8 full), and an empty slot costs a pointer, not a series (about 220
/// bytes); the box is a second lookup per sample, no slower in `sonde bench
/// store` (BENCHMARKS.md, "the head's memory per series").
type Head = HashMap<i64, Box<HeadSeries>, BuildHasherDefault<IdHasher>>;

/// What was taken but not yet committed (see the module invariants).
#[derive(Default)]
struct Pending {
    series: Vec<(i64, Labels)>,
    finished: Vec<(i64, Finished)>,
    dirty: HashSet<i64>,
    closed: HashSet<i64>,
    /// Series whose trailing one-chunk rows passed a run's limits.
    runs: HashSet<i64>,
    outbox: Vec<outbox::Row>,
}

/// Checkpoint after this many log rows or bytes, whichever first: bounds the
/// replay at start and the log's share of the file.
const CHECKPOINT_ROWS: u32 = 64;
/// The most bytes of chunks in one run: half of SQLite's default 4 KiB
/// page, so runs pack well. Larger pages held larger runs in fewer bytes
/// (8 KiB: 0.05 bytes/sample less) but multiplied the bytes each commit
/// writes (3.6 times as many with 8 KiB pages).
const RUN_BYTES: usize = 2 << 10;
/// The most chunks in one run: quiet series' chunks are a few dozen bytes,
/// and a run of them should not wait days for 2 KiB.
const RUN_CHUNKS: usize = 16;
/// The longest time one run covers. Retention deletes whole rows, so this
/// (plus a chunk) is how much longer than asked raw samples may be kept.
const RUN_SPAN_MS: i64 = 6 * 3_600_000;
const CHECKPOINT_BYTES: usize = 8 << 20;
/// How often [`Store::append`] runs retention and closes idle series (more
/// often when series close sooner than this: [`StoreOptions::idle_after`]).
const MAINTENANCE_EVERY: Duration = Duration::from_secs(60);
/// At most one log line per this interval for each kind of repeated trouble.
const LOG_EVERY: Duration = Duration::from_secs(60);

pub struct Store {
    conn: Connection,
    file: PathBuf,
    options: StoreOptions,
    /// Invariant: every series in the file, and the pending ones.
    series_ids: series_index::SeriesIndex,
    /// Where [`Store::admit`] looks first.
    last_batch: series_index::LastBatch,
    next_series_id: i64,
    head: Head,
    /// The instants of packed chunks (see [`timestamps`]).
    columns: timestamps::TimestampColumns,
    pending: Pending,
    needs_checkpoint: bool,
    log_rows: u32,
    log_bytes: usize,
    newest_ts: i64,
    stats: StoreStats,
    last_maintenance: Instant,
    refusal_logged: Option<Instant>,
    error_logged: Option<Instant>,
    /// Where the next sweep for series without data starts (see [`maintain`]).
    sweep_after: i64,
    /// What retention need not look at (see [`maintain::ChunkStarts`]).
    chunk_starts: maintain::ChunkStarts,
    /// A write failed for want of a writable file: the next write first
    /// opens the database again (see [`Store::reconnect`]). Still, a file
    /// system can refuse writes while opening for writing succeeds (ext4
    /// after an error), so the write that follows tells.
    reconnect_due: bool,
    /// The connection was replaced: the next write rewrites every series
    /// and head state, whatever the file kept of the old connection's work.
    resync: bool,
    /// `write_errors` as of the last successful write.
    write_errors_seen: u64,
}

impl Store {
    /// Opens (creating if needed) the database in `dir` with default
    /// options.
    pub fn open(dir: &Path) -> anyhow::Result<Store> {
        Store::open_with(dir, StoreOptions::default())
    }

    /// Opens (creating if needed) the database in `dir`, applies the
    /// migrations it has not seen yet and rebuilds the head.
    pub fn open_with(dir: &Path, options: StoreOptions) -> anyhow::Result<Store> {
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "cannot create the data directory {}: set [storage] path to a writable directory",
                dir.display()
            )
        })?;
        let file = dir.join("sonde.db");
        let conn = connect(&file, Create::Yes)?;
        let columns = timestamps::TimestampColumns::open(&conn)
            .with_context(|| format!("cannot read the database {}", file.display()))?;
        let mut store = Store {
            conn,
            file,
            options,
            series_ids: series_index::SeriesIndex::default(),
            last_batch: series_index::LastBatch::default(),
            next_series_id: 1,
            head: HashMap::default(),
            columns,
            pending: Pending::default(),
            needs_checkpoint: false,
            log_rows: 0,
            log_bytes: 0,
            newest_ts: i64::MIN,
            stats: StoreStats::default(),
            last_maintenance: Instant::now(),
            refusal_logged: None,
            error_logged: None,
            sweep_after: 0,
            chunk_starts: maintain::ChunkStarts::default(),
            reconnect_due: false,
            resync: false,
            write_errors_seen: 0,
        };
        store
            .recover()
            .with_context(|| format!("cannot read the database {}", store.file.display()))?;
        Ok(store)
    }

    /// Loads the series and the head, replays the log and v0 samples, then
    /// checkpoints so the next start has nothing to replay.
    fn recover(&mut self) -> anyhow::Result<()> {
        {
            let mut stmt = self.conn.prepare("SELECT id, labels FROM series")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(0)?;
                let labels = decode_labels(&row.get::<_, String>(1)?)?;
                self.series_ids.insert(labels, id);
                self.next_series_id = self.next_series_id.max(id + 1);
            }
        }
        let states: Vec<(i64, Vec<u8>)> = {
            let mut stmt = self.conn.prepare("SELECT series_id, state FROM head")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (id, state) in states {
            match HeadSeries::decode(&state) {
                Ok(series) => {
                    self.newest_ts = self.newest_ts.max(series.last_ts);
                    self.head.insert(id, Box::new(series));
                }
                // Its persisted chunks stay; the log replay still brings
                // back its newer samples.
                Err(err) => tracing::warn!("store: head state of series {id} dropped: {err}"),
            }
        }
        let mut replayed = 0u64;
        let log: Vec<Vec<u8>> = {
            let mut stmt = self
                .conn
                .prepare("SELECT samples FROM ingest_log ORDER BY seq")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let known: HashSet<i64> = self.series_ids.values().copied().collect();
        for record in &log {
            if let Err(err) = self.replay(record, &known, &mut replayed) {
                tracing::warn!("store: rest of an ingest log record dropped: {err}");
            }
        }
        let v0: bool = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'samples_v0'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)?;
        if v0 {
            self.import_v0(&mut replayed)?;
        }
        if replayed > 0 {
            tracing::info!("store: {replayed} samples replayed into the head");
        }
        if !log.is_empty() || v0 {
            if let Err(err) = self.commit(None, true, v0) {
                self.write_failed(&err);
            }
        }
        Ok(())
    }

    /// Replays one log record; `known` are the series in the file.
    fn replay(
        &mut self,
        record: &[u8],
        known: &HashSet<i64>,
        replayed: &mut u64,
    ) -> anyhow::Result<()> {
        let mut r = ByteReader::new(record);
        let mut t = 0i64;
        while !r.is_empty() {
            let id = r.uvarint()? as i64;
            t = t.wrapping_add(r.i64()?);
            let v = r.f64()?;
            // A series deleted after this was logged (see [`maintain`]): its
            // samples are past retention, and its id names no later series.
            self.next_series_id = self.next_series_id.max(id.saturating_add(1));
            if !known.contains(&id) {
                continue;
            }
            self.append_to_head(id, t, v)?;
            *replayed += 1;
        }
        Ok(())
    }

    /// Moves store v0's one-row-per-sample table into chunks.
    fn import_v0(&mut self, imported: &mut u64) -> anyhow::Result<()> {
        let rows: Vec<(i64, i64, f64)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT series_id, ts, value FROM samples_v0 ORDER BY series_id, ts")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (id, t, v) in rows {
            self.append_to_head(id, t, v)?;
            *imported += 1;
        }
        Ok(())
    }

    /// Offers one sample of a known series to the head; returns whether it
    /// was stored.
    fn append_to_head(&mut self, id: i64, t: i64, v: f64) -> anyhow::Result<bool> {
        let series = match self.head.get_mut(&id) {
            Some(series) => series,
            None => {
                let last = self.persisted_last_ts(id)?;
                self.head
                    .entry(id)
                    .or_insert_with(|| Box::new(HeadSeries::new(last)))
            }
        };
        let mut finished = Vec::new();
        let outcome = series.append(t, v, &mut finished);
        if !finished.is_empty() {
            for chunk in &finished {
                if let Finished::Raw {
                    min_time,
                    max_time,
                    data,
                    ..
                } = chunk
                {
                    let staged = &mut series.staged;
                    if staged.chunks == 0 {
                        staged.since = *min_time;
                    }
                    staged.chunks += 1;
                    staged.bytes = staged.bytes.saturating_add(data.len() as u32);
                    if staged.chunks as usize >= RUN_CHUNKS
                        || staged.bytes as usize > RUN_BYTES
                        || max_time.saturating_sub(staged.since) > RUN_SPAN_MS
                    {
                        self.pending.runs.insert(id);
                    }
                }
            }
            self.pending.dirty.insert(id);
            self.pending
                .finished
                .extend(finished.into_iter().map(|f| (id, f)));
        }
        Ok(match outcome {
            Appended::Stored => {
                self.newest_ts = self.newest_ts.max(t);
                true
            }
            Appended::Duplicate => {
                self.stats.samples_duplicate += 1;
                false
            }
            Appended::OutOfOrder => {
                self.stats.samples_out_of_order += 1;
                false
            }
        })
    }

    /// The newest timestamp persisted for a series not in the head.
    fn persisted_last_ts(&self, id: i64) -> anyhow::Result<i64> {
        let stored: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT max_time FROM chunks WHERE series_id = ?1 ORDER BY min_time DESC LIMIT 1",
            )?
            .query_row([id], |r| r.get(0))
            .optional()?;
        let pending = self.pending.finished.iter().filter_map(|(sid, f)| match f {
            Finished::Raw { max_time, .. } if *sid == id => Some(*max_time),
            _ => None,
        });
        Ok(stored.into_iter().chain(pending).max().unwrap_or(i64::MIN))
    }

    /// Stores a batch, and queues what it stored for remote write when the
    /// outbox is on. Samples that break the out-of-order rule or belong to
    /// refused series are counted and skipped; the error is only for a
    /// failed write, and even then the samples stay readable in memory and
    /// are persisted (and queued) by the next append that succeeds.
    pub fn append(&mut self, samples: &[Sample]) -> anyhow::Result<()> {
        self.append_borrowed(samples.iter().map(Sample::borrowed))
    }

    /// [`Store::append`] of samples whose label sets are kept elsewhere (a
    /// round's series): none is copied unless the outbox queues it.
    pub fn append_borrowed<'a>(
        &mut self,
        samples: impl Iterator<Item = SampleRef<'a>>,
    ) -> anyhow::Result<()> {
        // A log entry is an id, a timestamp delta and 8 bytes of value.
        let mut log = ByteWriter::with_capacity(samples.size_hint().0 * 12);
        let mut log_t = 0i64;
        let mut stored = Vec::new();
        // A failed read stops the batch; what was stored before it is still
        // logged and queued.
        let mut read_error = None;
        for sample in samples {
            let Some(id) = self.admit(sample.labels) else {
                continue;
            };
            let t = sample.timestamp_ms;
            let taken = match self.append_to_head(id, t, sample.value) {
                Ok(taken) => taken,
                Err(err) => {
                    read_error = Some(err);
                    break;
                }
            };
            if taken {
                log.uvarint(id as u64);
                log.i64(t.wrapping_sub(log_t));
                log.f64(sample.value);
                log_t = t;
                self.stats.samples_appended += 1;
                if self.options.outbox {
                    stored.push(sample);
                }
            }
        }
        self.last_batch.end();
        if !stored.is_empty() {
            self.pending
                .outbox
                .push(outbox::Row::new(stored.into_iter()));
        }
        let checkpoint = self.needs_checkpoint
            || self.log_rows >= CHECKPOINT_ROWS
            || self.log_bytes >= CHECKPOINT_BYTES;
        let log = (log.len() > 0).then(|| log.into_inner());
        let result = self.commit(log, checkpoint, false);
        if let Err(err) = &result {
            self.write_failed(err);
        }
        if self.last_maintenance.elapsed() >= MAINTENANCE_EVERY.min(self.options.idle_after) {
            self.last_maintenance = Instant::now();
            if let Err(err) = self.maintain() {
                self.write_failed(&err);
            }
        }
        result.and(read_error.map_or(Ok(()), Err))
    }

    /// The id of a sample's series, if the series is (or may become) active.
    fn admit(&mut self, labels: &Labels) -> Option<i64> {
        if let Some(id) = self.last_batch.expected(&self.series_ids, labels) {
            if self.head.contains_key(&id) {
                self.last_batch.admitted(id, self.options.max_series);
                return Some(id);
            }
        }
        let known = self.series_ids.get(labels);
        if let Some(id) = known {
            if self.head.contains_key(&id) {
                self.last_batch.admitted(id, self.options.max_series);
                return Some(id);
            }
        }
        if self.head.len() >= self.options.max_series {
            self.stats.series_refused += 1;
            let due = self
                .refusal_logged
                .is_none_or(|at| at.elapsed() >= LOG_EVERY);
            if due {
                self.refusal_logged = Some(Instant::now());
                tracing::warn!(
                    "store: series {labels} refused: {} series are active, the most [storage] max_series allows ({} refused so far)",
                    self.head.len(),
                    self.stats.series_refused
                );
            }
            return None;
        }
        let id = known.unwrap_or_else(|| {
            let id = self.next_series_id;
            self.next_series_id += 1;
            self.series_ids.insert(labels.clone(), id);
            self.pending.series.push((id, labels.clone()));
            id
        });
        self.last_batch.admitted(id, self.options.max_series);
        Some(id)
    }

    /// Writes everything pending (and `log`) in one transaction. A
    /// checkpoint also writes every head state and empties the log.
    fn commit(
        &mut self,
        log: Option<Vec<u8>>,
        checkpoint: bool,
        drop_v0: bool,
    ) -> anyhow::Result<()> {
        if self.reconnect_due {
            self.reconnect()?;
        }
        let checkpoint = checkpoint || self.resync;
        let tx = self.conn.transaction()?;
        let mut staged = Vec::new();
        {
            let mut series = tx.prepare_cached(
                "INSERT OR REPLACE INTO series (id, name, labels) VALUES (?1, ?2, ?3)",
            )?;
            let mut postings = tx.prepare_cached(
                "INSERT OR REPLACE INTO postings (name, value, series_id) VALUES (?1, ?2, ?3)",
            )?;
            let new_series: Box<dyn Iterator<Item = (&i64, &Labels)>> = if self.resync {
                Box::new(self.series_ids.iter())
            } else {
                Box::new(self.pending.series.iter().map(|(id, labels)| (id, labels)))
            };
            for (id, labels) in new_series {
                series.execute(params![id, labels.metric_name(), encode_labels(labels)])?;
                for (name, value) in labels.iter() {
                    postings.execute(params![name, value, id])?;
                }
            }
            let mut raw = tx.prepare_cached(
                "INSERT OR REPLACE INTO chunks (series_id, min_time, max_time, samples, packed, data)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5)",
            )?;
            let mut rollup = tx.prepare_cached(
                "INSERT OR REPLACE INTO rollups (tier, series_id, min_time, max_time, packed, data)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5)",
            )?;
            for (id, finished) in &self.pending.finished {
                match finished {
                    Finished::Raw {
                        min_time,
                        max_time,
                        samples,
                        data,
                    } => {
                        self.chunk_starts.written(Resolution::Raw, *min_time);
                        let chunk = pack_xor(&mut self.columns, data)?;
                        let row = packed::encode_waiting_row(&chunk);
                        raw.execute(params![id, min_time, max_time, samples, row])?
                    }
                    Finished::Rollup {
                        resolution,
                        min_time,
                        max_time,
                        data,
                    } => {
                        self.chunk_starts.written(*resolution, *min_time);
                        let row = rollup::pack(&mut self.columns, *resolution, data)?;
                        rollup.execute(params![
                            resolution.tier_id(),
                            id,
                            min_time,
                            max_time,
                            row
                        ])?
                    }
                };
            }
            for &id in &self.pending.runs {
                staged.push((id, make_runs(&tx, &mut self.columns, id)?));
            }
            self.columns.write_pending(&tx)?;
            let mut state = tx
                .prepare_cached("INSERT OR REPLACE INTO head (series_id, state) VALUES (?1, ?2)")?;
            if checkpoint {
                if self.resync {
                    // States of series closed in writes the file lost.
                    tx.execute("DELETE FROM head", [])?;
                }
                for (id, series) in &self.head {
                    state.execute(params![id, series.encode()])?;
                }
                tx.execute("DELETE FROM ingest_log", [])?;
            } else {
                for id in &self.pending.dirty {
                    if let Some(series) = self.head.get(id) {
                        state.execute(params![id, series.encode()])?;
                    }
                }
            }
            let mut closed = tx.prepare_cached("DELETE FROM head WHERE series_id = ?1")?;
            for id in self
                .pending
                .closed
                .iter()
                .filter(|id| !self.head.contains_key(id))
            {
                closed.execute([id])?;
            }
            if let (Some(log), false) = (&log, checkpoint) {
                tx.execute("INSERT INTO ingest_log (samples) VALUES (?1)", [log])?;
            }
            for row in &self.pending.outbox {
                row.insert(&tx)?;
            }
            if drop_v0 {
                tx.execute("DROP TABLE samples_v0", [])?;
            }
        }
        tx.commit()?;
        self.columns.committed();
        for (id, left) in staged {
            if let Some(series) = self.head.get_mut(&id) {
                series.staged = left;
            }
        }
        if self.stats.write_errors > self.write_errors_seen {
            self.write_errors_seen = self.stats.write_errors;
            tracing::info!(
                "store: writes to {} succeed again; what waited in memory is written",
                self.file.display()
            );
        }
        self.pending = Pending::default();
        self.resync = false;
        if checkpoint {
            self.needs_checkpoint = false;
            self.log_rows = 0;
            self.log_bytes = 0;
        } else if let Some(log) = log {
            self.log_rows += 1;
            self.log_bytes += log.len();
        }
        Ok(())
    }

    /// Opens the database again by its path, after a write failed for want
    /// of a writable file. SQLite opens a file it cannot write read-only and
    /// answers SQLITE_READONLY on that connection for good, even once the
    /// file system is writable again; and a file system the kernel made
    /// read-only after an error is back only once checked and mounted again,
    /// which only the path reaches. Until a writable connection replaces it,
    /// the old one keeps serving reads. The file may lack what the old
    /// connection wrote last (a failing file system drops writes), so the
    /// first write on the new one rewrites every series and head state: what
    /// is in memory is the truth.
    ///
    /// A missing file is not created: while the file system is unmounted
    /// for its check, the path names the bare mount point, and a database
    /// made there would take every later write and be hidden by the mount.
    fn reconnect(&mut self) -> anyhow::Result<()> {
        let conn = connect(&self.file, Create::No)?;
        anyhow::ensure!(
            !conn.is_readonly(rusqlite::MAIN_DB)?,
            "{} is still read-only",
            self.file.display()
        );
        self.conn = conn;
        self.columns.reset();
        self.chunk_starts.forget();
        self.reconnect_due = false;
        self.resync = true;
        Ok(())
    }

    /// Counts and (at most once a minute) logs a failed write; the next
    /// successful one is a checkpoint, so what is in memory gets persisted.
    fn write_failed(&mut self, err: &anyhow::Error) {
        self.stats.write_errors += 1;
        self.needs_checkpoint = true;
        self.reconnect_due |= wants_new_connection(err);
        if self.error_logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            self.error_logged = Some(Instant::now());
            tracing::error!(
                "store: cannot write to {}: {err:#}. Samples stay in memory and are written once the disk accepts writes again (free space, or make the file writable); {} write errors so far",
                self.file.display(),
                self.stats.write_errors
            );
        }
    }

    /// Persists the whole head and empties the log (also done on drop).
    pub fn checkpoint(&mut self) -> anyhow::Result<()> {
        let result = self.commit(None, true, false);
        if let Err(err) = &result {
            self.write_failed(err);
        }
        result
    }

    /// Every series all `matchers` select, with its samples in
    /// [start_ms, end_ms]; series without samples there are left out.
    pub fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> anyhow::Result<Vec<SeriesSamples>> {
        let mut selected = Vec::new();
        for (id, labels) in self.series_matching(matchers)? {
            let samples = self.samples_of(id, &labels, start_ms, end_ms)?;
            if !samples.is_empty() {
                selected.push(SeriesSamples { labels, samples });
            }
        }
        Ok(selected)
    }

    /// The samples of series `id` in [start_ms, end_ms], oldest first.
    fn samples_of(
        &self,
        id: i64,
        labels: &Labels,
        start_ms: i64,
        end_ms: i64,
    ) -> anyhow::Result<Vec<(i64, f64)>> {
        let mut samples = Vec::new();
        for chunk in self.chunks_of(id, labels, start_ms, end_ms)? {
            match chunk {
                ReadChunk::Xor(c) => samples.extend(xor_samples(labels, &c.data)),
                ReadChunk::Unpacked { samples: s, .. } => samples.extend(s),
            }
        }
        samples.retain(|s| s.0 >= start_ms && s.0 <= end_ms);
        Ok(samples)
    }

    /// Every series all `matchers` select with the raw chunks that overlap
    /// [start_ms, end_ms], as stored (the first and last may reach outside
    /// the range). Rows outside the range are not read at all, and the
    /// chunks of a run outside it are left out undecoded. Series are in
    /// label order; series without such a chunk are left out.
    pub fn select_chunks(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> anyhow::Result<Vec<SeriesChunks>> {
        let mut selected = Vec::new();
        for (id, labels) in self.series_matching(matchers)? {
            let chunks: Vec<StoredChunk> = self
                .chunks_of(id, &labels, start_ms, end_ms)?
                .into_iter()
                .map(ReadChunk::into_xor)
                .collect();
            if !chunks.is_empty() {
                selected.push(SeriesChunks { labels, chunks });
            }
        }
        Ok(selected)
    }

    /// The raw chunks of series `id` that overlap [start_ms, end_ms],
    /// oldest first: stored, pending after a failed write, and the head's.
    fn chunks_of(
        &self,
        id: i64,
        labels: &Labels,
        start_ms: i64,
        end_ms: i64,
    ) -> anyhow::Result<Vec<ReadChunk>> {
        // Rows of a series do not overlap, so walking back from the last
        // one starting before `end_ms` can stop at the first that ends
        // before `start_ms`.
        let mut stmt = self.conn.prepare_cached(
            "SELECT min_time, max_time, chunk_count, packed, data FROM chunks
             WHERE series_id = ?1 AND min_time <= ?2 ORDER BY min_time DESC",
        )?;
        {
            let mut chunks = Vec::new();
            let open = self.head.get(&id).and_then(|series| series.open_chunk());
            // Stored chunks all end before the open one starts: when it
            // starts before the range, none of them can overlap it, and the
            // recent windows rules and dashboards read cost no disk read.
            let in_head = open.is_some_and(|(min_time, _, _)| min_time < start_ms);
            if !in_head {
                let mut rows = stmt.query(params![id, end_ms])?;
                while let Some(row) = rows.next()? {
                    let max_time: i64 = row.get(1)?;
                    if max_time < start_ms {
                        break;
                    }
                    let data = row.get_ref(4)?.as_blob()?;
                    if row.get::<_, bool>(3)? {
                        match self.unpack(data, start_ms, end_ms) {
                            Ok(unpacked) => chunks.extend(unpacked.into_iter().rev()),
                            // The row's chunks are lost to reads; the others
                            // still come.
                            Err(err) => tracing::warn!("{labels}: {err:#}"),
                        }
                        continue;
                    }
                    if row.get::<_, i64>(2)? == 1 {
                        chunks.push(ReadChunk::Xor(StoredChunk {
                            min_time: row.get(0)?,
                            max_time,
                            data: data.to_vec(),
                        }));
                        continue;
                    }
                    match codec::decode_run(data) {
                        Ok(run) => chunks.extend(
                            run.into_iter()
                                .rev()
                                .filter(|c| c.1 >= start_ms && c.0 <= end_ms)
                                .map(|(min_time, max_time, data)| {
                                    ReadChunk::Xor(StoredChunk {
                                        min_time,
                                        max_time,
                                        data: data.to_vec(),
                                    })
                                }),
                        ),
                        // The row's chunks are lost to reads; the others still
                        // come.
                        Err(err) => tracing::warn!("{labels}: {err}"),
                    }
                }
            }
            chunks.reverse();
            // Chunks cut but not yet written (only after a failed write).
            for (_, finished) in self.pending.finished.iter().filter(|(sid, _)| *sid == id) {
                if let Finished::Raw {
                    min_time,
                    max_time,
                    data,
                    ..
                } = finished
                {
                    if *max_time >= start_ms && *min_time <= end_ms {
                        chunks.push(ReadChunk::Xor(StoredChunk {
                            min_time: *min_time,
                            max_time: *max_time,
                            data: data.clone(),
                        }));
                    }
                }
            }
            if let Some((min_time, max_time, data)) = open {
                if max_time >= start_ms && min_time <= end_ms {
                    chunks.push(ReadChunk::Xor(StoredChunk {
                        min_time,
                        max_time,
                        data: data.to_vec(),
                    }));
                }
            }
            chunks.sort_by_key(ReadChunk::min_time);
            chunks.dedup_by_key(|c| c.min_time());
            Ok(chunks)
        }
    }

    /// The chunks of a packed row that overlap [start_ms, end_ms], oldest
    /// first.
    fn unpack(&self, row: &[u8], start_ms: i64, end_ms: i64) -> anyhow::Result<Vec<ReadChunk>> {
        let mut chunks = Vec::new();
        for chunk in packed::decode_row(row)? {
            let instants = self.columns.get(&self.conn, chunk.column)?;
            let (Some(&min_time), Some(&max_time)) = (instants.first(), instants.last()) else {
                anyhow::bail!("timestamp column {} is empty", chunk.column);
            };
            anyhow::ensure!(
                instants.len() == chunk.values.len(),
                "a chunk of {} values names timestamp column {} of {} instants",
                chunk.values.len(),
                chunk.column,
                instants.len()
            );
            if max_time < start_ms || min_time > end_ms {
                continue;
            }
            chunks.push(ReadChunk::Unpacked {
                min_time,
                max_time,
                samples: instants.iter().copied().zip(chunk.values).collect(),
            });
        }
        Ok(chunks)
    }

    /// The ids and label sets of the series all `matchers` select, in label
    /// order. Matchers that cannot match an absent label narrow the set
    /// through postings; the others only filter it.
    fn series_matching(&self, matchers: &[Matcher]) -> anyhow::Result<Vec<(i64, Labels)>> {
        let mut candidates: Option<Vec<i64>> = None;
        for matcher in matchers.iter().filter(|m| !m.matches_value("")) {
            let mut ids = self.postings(matcher)?;
            ids.sort_unstable();
            ids.dedup();
            candidates = Some(match candidates {
                None => ids,
                Some(prev) => {
                    let keep: HashSet<i64> = ids.into_iter().collect();
                    prev.into_iter().filter(|id| keep.contains(id)).collect()
                }
            });
        }
        let mut selected = Vec::new();
        match candidates {
            Some(ids) => {
                for id in ids {
                    if let Some(labels) = self.series_ids.labels(id) {
                        selected.push((id, labels.clone()));
                    }
                }
                // Series created since the last successful write have no
                // postings yet.
                let listed: HashSet<i64> = selected.iter().map(|(id, _)| *id).collect();
                for (id, labels) in &self.pending.series {
                    if !listed.contains(id) {
                        selected.push((*id, labels.clone()));
                    }
                }
            }
            None => {
                selected.extend(
                    self.series_ids
                        .iter()
                        .map(|(id, labels)| (*id, labels.clone())),
                );
            }
        }
        selected.retain(|(_, labels)| matchers.iter().all(|m| m.matches(labels)));
        selected.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(selected)
    }

    /// Series carrying a value of `matcher`'s label that the matcher accepts.
    fn postings(&self, matcher: &Matcher) -> anyhow::Result<Vec<i64>> {
        if matcher.op == MatchOp::Equal {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT series_id FROM postings WHERE name = ?1 AND value = ?2")?;
            let rows = stmt.query_map(params![matcher.name, matcher.value], |r| r.get(0))?;
            return Ok(rows.collect::<Result<_, _>>()?);
        }
        let mut stmt = self
            .conn
            .prepare_cached("SELECT value, series_id FROM postings WHERE name = ?1")?;
        let mut rows = stmt.query([&matcher.name])?;
        let mut ids = Vec::new();
        let mut last_value: Option<(String, bool)> = None;
        while let Some(row) = rows.next()? {
            let value = row.get_ref(0)?.as_str()?;
            // Rows come sorted by value: test each distinct value once.
            let accepted = match &last_value {
                Some((v, ok)) if v == value => *ok,
                _ => {
                    let ok = matcher.matches_value(value);
                    last_value = Some((value.to_string(), ok));
                    ok
                }
            };
            if accepted {
                ids.push(row.get(1)?);
            }
        }
        Ok(ids)
    }

    /// Samples stored since open.
    pub fn samples_appended(&self) -> u64 {
        self.stats.samples_appended
    }

    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// Series in the head, the ones [`StoreOptions::max_series`] bounds.
    pub fn active_series(&self) -> usize {
        self.head.len()
    }

    /// What each tier holds: raw chunks, then the rollups by resolution,
    /// with the retention that bounds it. Rows and the oldest time are
    /// exact (from the tables' indexes); bytes are the rows times the mean
    /// length of the newest [`USAGE_SAMPLE_ROWS`], since summing every
    /// row's length reads the whole file (400 ms for 300 MiB) with the
    /// store locked.
    pub fn tier_usage(&self) -> anyhow::Result<Vec<TierUsage>> {
        let options = &self.options;
        let tiers = [
            ("raw", "chunks", "1 = 1", options.retention),
            (
                "1m rollups",
                "rollups",
                "tier = 1",
                options.minute_retention,
            ),
            ("1h rollups", "rollups", "tier = 60", options.hour_retention),
        ];
        let mut usage = Vec::new();
        for (name, table, filter, retention) in tiers {
            let (rows, oldest_ms): (i64, Option<i64>) = self.conn.query_row(
                &format!("SELECT count(*), min(min_time) FROM {table} WHERE {filter}"),
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            let mean: Option<f64> = self.conn.query_row(
                &format!(
                    "SELECT avg(length(data)) FROM (SELECT data FROM {table} WHERE {filter} \
                     ORDER BY id DESC LIMIT {USAGE_SAMPLE_ROWS})"
                ),
                [],
                |row| row.get(0),
            )?;
            usage.push(TierUsage {
                name,
                bytes: (rows as f64 * mean.unwrap_or(0.0)) as u64,
                rows: rows as u64,
                oldest_ms,
                retention,
            });
        }
        Ok(usage)
    }

    /// Bytes the database takes on disk: the file and its WAL.
    pub fn size_on_disk(&self) -> u64 {
        let wal = self.file.with_extension("db-wal");
        [&self.file, &wal]
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum()
    }

    /// The store's self-metrics, for `/metrics`.
    pub fn families(&self) -> Vec<Family> {
        let s = &self.stats;
        let counters = [
            (
                "sonde_store_samples_appended_total",
                "Samples persisted to the store since sonde started.",
                s.samples_appended,
            ),
            (
                "sonde_store_samples_duplicate_total",
                "Samples ignored because the series already had the same value at that timestamp.",
                s.samples_duplicate,
            ),
            (
                "sonde_store_samples_out_of_order_total",
                "Samples dropped because their series already had a sample at or after their timestamp.",
                s.samples_out_of_order,
            ),
            (
                "sonde_store_series_refused_total",
                "Samples of new series refused because [storage] max_series series were active.",
                s.series_refused,
            ),
            (
                "sonde_store_write_errors_total",
                "Failed writes to the database (disk full, read-only file...).",
                s.write_errors,
            ),
            (
                "sonde_store_chunks_deleted_total",
                "Chunks deleted by retention (age or size).",
                s.chunks_deleted,
            ),
            (
                "sonde_store_series_deleted_total",
                "Series forgotten because retention deleted all their data.",
                s.series_deleted,
            ),
        ];
        let mut families: Vec<Family> = counters
            .into_iter()
            .map(|(name, help, value)| {
                let mut family = Family::counter(name, help);
                family.push(&[], value as f64);
                family
            })
            .collect();
        let mut active = Family::gauge(
            "sonde_store_active_series",
            "Series in the in-memory head (bounded by [storage] max_series).",
        );
        active.push(&[], self.head.len() as f64);
        let mut size = Family::gauge(
            "sonde_store_size_bytes",
            "Bytes the database file and its WAL take on disk.",
        );
        size.push(&[], self.size_on_disk() as f64);
        families.extend([active, size]);
        families
    }
}

impl Drop for Store {
    /// A clean stop leaves nothing to replay at the next start.
    fn drop(&mut self) {
        if let Err(err) = self.commit(None, true, false) {
            tracing::warn!("store: final checkpoint failed (the log will be replayed): {err:#}");
        }
    }
}

/// A connection of another stage (the remote-write queue, alert state, the
/// notifier) to the store's database, which the store has migrated: it
/// waits up to 5 s for the store's writes, and keeps a small page cache, as
/// its tables are small.
pub fn side_connection(file: &Path) -> anyhow::Result<Connection> {
    let conn = open_file(file, Create::No)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "cache_size", -256)?;
    Ok(conn)
}

/// The store's database as another stage's tables in it (alert state, the
/// notifier's silences and log): a connection opened for each use and
/// closed after, never held. After a write error the store reopens its
/// database by path, where an administrator may have mounted the file
/// system again; a connection held open would keep the old mount alive,
/// and releasing it later could undo writes made through the new one.
#[derive(Clone, Debug)]
pub struct SideDatabase(PathBuf);

impl SideDatabase {
    pub fn new(file: &Path) -> SideDatabase {
        SideDatabase(file.to_path_buf())
    }

    /// Runs `f` on a fresh connection.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        f(&mut side_connection(&self.0)?)
    }
}

/// Whether opening the database may create its file: only the store's
/// first open does. Once it exists, a missing file means its file system is
/// not mounted (or the file was removed), and every later open waits for it.
#[derive(Clone, Copy, PartialEq)]
enum Create {
    Yes,
    No,
}

fn open_file(file: &Path, create: Create) -> anyhow::Result<Connection> {
    let mut flags = rusqlite::OpenFlags::default();
    if create == Create::No {
        flags.remove(rusqlite::OpenFlags::SQLITE_OPEN_CREATE);
    }
    Connection::open_with_flags(file, flags).with_context(|| {
        if create == Create::No && !file.exists() {
            format!(
                "the database {} is missing: sonde writes again once it is back (mount its file system again), or restart sonde to start a new one",
                file.display()
            )
        } else {
            format!("cannot open the database {}", file.display())
        }
    })
}

/// Opens the database file and brings it to the current schema.
fn connect(file: &Path, create: Create) -> anyhow::Result<Connection> {
    let mut conn = open_file(file, create)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // Incremental auto-vacuum lets retention hand freed pages back to the
    // file system; it must be chosen before tables exist (or by VACUUM).
    let auto_vacuum: i64 = conn.pragma_query_value(None, "auto_vacuum", |r| r.get(0))?;
    if auto_vacuum != 2 {
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        conn.execute_batch("VACUUM")
            .with_context(|| format!("cannot convert {} to auto-vacuum", file.display()))?;
    }
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Statement journals in memory: every statement of a transaction that
    // may fail half-way (each insert into an indexed table, each INSERT OR
    // REPLACE) saves the pages it changes to one, and past 64 KiB SQLite
    // spills it to a temporary file: on a machine creating series, most
    // of the ingest thread was those writes (a 4 KiB pwrite each, 1,800 a
    // round; BENCHMARKS.md, idle). A statement's journal is freed as it
    // ends, so memory holds at most one statement's pages.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Half of SQLite's default page cache (2,000 KiB): the cache fills to
    // its size on an idle sonde (its pages are heap), while the round's
    // pages missing from it come from the kernel's page cache. Measured
    // (BENCHMARKS.md, "Idle: the store's side"): 1,000 KiB saved 0.9 MiB
    // of heap at idle and cost `sonde bench store` 15-20 % of its ingest
    // rate, the reads nothing; 500 KiB saved 1.3 MiB but cost a third of
    // the ingest rate.
    conn.pragma_update(None, "cache_size", -1000)?;
    // Keep the WAL file from staying large after a burst.
    conn.pragma_update(None, "journal_size_limit", 16 << 20)?;
    migrate::apply(&mut conn)
        .with_context(|| format!("cannot migrate the database {}", file.display()))?;
    // Checkpoint the WAL every 4 MiB whatever the page size (SQLite counts
    // pages; a database may have been created with other than 4 KiB ones).
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    conn.pragma_update(None, "wal_autocheckpoint", (4 << 20) / page_size.max(512))?;
    Ok(conn)
}

/// Whether a failed write calls for a new connection: the file could not be
/// written (read-only, or an I/O error such as a file system the kernel made
/// read-only), as opposed to a full disk, which the same connection
/// survives.
fn wants_new_connection(err: &anyhow::Error) -> bool {
    use rusqlite::ErrorCode::{CannotOpen, ReadOnly, SystemIoFailure};
    err.chain()
        .filter_map(|e| e.downcast_ref::<rusqlite::Error>())
        .filter_map(rusqlite::Error::sqlite_error_code)
        .any(|code| matches!(code, ReadOnly | SystemIoFailure | CannotOpen))
}

/// Turns the oldest of a series' trailing one-chunk rows into runs (at most
/// [`RUN_CHUNKS`] chunks, [`RUN_BYTES`] and [`RUN_SPAN_MS`] each) until what
/// is left is less than a run; returns what is left. Only the newest rows,
/// up to twice a run, are looked at: more are there only in a database
/// written before runs existed, whose rows stay as they are (a row of one
/// chunk is a valid row). A run is a packed row (see [`packed`]); a one-chunk
/// XOR row written before packed rows existed joins it re-encoded.
fn make_runs(
    tx: &Connection,
    columns: &mut timestamps::TimestampColumns,
    id: i64,
) -> anyhow::Result<Staged> {
    // (rowid, min time, max time, samples, packed, data), newest first.
    let mut trailing: Vec<(i64, i64, i64, i64, bool, Vec<u8>)> = Vec::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT id, min_time, max_time, samples, chunk_count, packed, data FROM chunks
             WHERE series_id = ?1 ORDER BY min_time DESC",
        )?;
        let mut rows = stmt.query([id])?;
        let mut bytes = 0;
        while let Some(row) = rows.next()? {
            let full = trailing.len() >= 2 * RUN_CHUNKS || bytes >= 2 * RUN_BYTES;
            if full || row.get::<_, i64>(4)? != 1 {
                break;
            }
            let data: Vec<u8> = row.get(6)?;
            bytes += data.len();
            trailing.push((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(5)?,
                data,
            ));
        }
    }
    trailing.reverse();
    let mut delete = tx.prepare_cached("DELETE FROM chunks WHERE id = ?1")?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO chunks (series_id, min_time, max_time, samples, chunk_count, packed, data)
         VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6)",
    )?;
    let mut rest = &trailing[..];
    loop {
        let (Some(first), Some(last)) = (rest.first(), rest.last()) else {
            return Ok(Staged::default());
        };
        let chunks = rest.len();
        let bytes: usize = rest.iter().map(|c| c.5.len()).sum();
        let span = last.2.saturating_sub(first.1);
        if chunks < RUN_CHUNKS && bytes <= RUN_BYTES && span <= RUN_SPAN_MS {
            return Ok(Staged {
                chunks: chunks as u32,
                bytes: bytes as u32,
                since: first.1,
            });
        }
        // The oldest chunks that fit.
        let mut bytes = 0;
        let fit = rest
            .iter()
            .take(RUN_CHUNKS)
            .take_while(|c| {
                bytes += c.5.len();
                bytes <= RUN_BYTES && c.2.saturating_sub(first.1) <= RUN_SPAN_MS
            })
            .count();
        if fit < 2 {
            // A chunk alone at a limit stays a row of its own.
            rest = &rest[1..];
            continue;
        }
        let (run, later) = rest.split_at(fit);
        let mut chunks = Vec::with_capacity(fit);
        for (rowid, _, _, _, is_packed, data) in run {
            delete.execute([rowid])?;
            if *is_packed {
                chunks.extend(packed::decode_row(data)?);
            } else {
                chunks.push(pack_xor(columns, data)?);
            }
        }
        let samples: i64 = run.iter().map(|c| c.3).sum();
        let data = packed::encode_row(&chunks);
        insert.execute(params![id, run[0].1, run[fit - 1].2, samples, fit, data])?;
        rest = later;
    }
}

/// An XOR chunk as a packed one: its instants in a column, its values.
fn pack_xor(
    columns: &mut timestamps::TimestampColumns,
    xor_chunk: &[u8],
) -> anyhow::Result<packed::PackedChunk> {
    let samples = xor::decode(xor_chunk)?;
    anyhow::ensure!(!samples.is_empty(), "an empty chunk cannot be packed");
    let instants: Vec<i64> = samples.iter().map(|s| s.0).collect();
    Ok(packed::PackedChunk {
        column: columns.intern(Resolution::Raw, &instants),
        values: samples.into_iter().map(|s| s.1).collect(),
    })
}

fn encode_labels(labels: &Labels) -> String {
    serde_json::to_string(&labels.iter().collect::<Vec<_>>()).expect("strings always encode")
}

fn decode_labels(encoded: &str) -> anyhow::Result<Labels> {
    let pairs: Vec<(String, String)> = serde_json::from_str(encoded)
        .with_context(|| format!("corrupt label set in the series table: {encoded}"))?;
    Ok(Labels::new(pairs))
}

#[cfg(test)]
mod tests;
