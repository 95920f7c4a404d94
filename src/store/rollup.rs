//! Rollup tiers: per series and per fixed time bucket (1 minute, 1 hour),
//! the min, max, sum, count and last of the raw samples, kept far longer than
//! the raw samples and read instead of them when a query asks for a coarse
//! step.
//!
//! A rollup chunk holds up to [`BUCKETS_PER_CHUNK`] buckets as five XOR
//! streams (see [`super::xor`]), one per aggregate (max stored XOR last, see
//! [`max_xor_last`]). min, max, sum and count are stamped with the bucket's
//! start; `last` carries the real timestamp of
//! the bucket's last raw sample, which is what keeps rate() honest:
//!
//! Why rate()-style results survive downsampling: the `last` stream is a
//! subsequence of the raw samples (one per bucket, exact values at their
//! exact timestamps). A counter's increase over a window is a telescoping sum
//! of the differences of consecutive samples, so dropping samples between two
//! kept ones changes nothing between them: the increase between two `last`
//! points equals the raw increase between the same two raw samples. The only
//! differences are at the window's edges, where the first and last kept
//! samples may lie up to one bucket inside the raw ones: the result differs
//! from the raw one by at most the increase inside one bucket at each edge,
//! which is exactly what the coarser resolution cannot know. A counter reset
//! inside a bucket is still seen when the counter restarts below its previous
//! bucket's last value (the usual case: a restart counts from zero), and
//! because `max` keeps the pre-reset peak, the increase lost to it is bounded
//! by that bucket's `max - last`. Gauge functions map exactly: min_over_time → min,
//! max_over_time → max, avg_over_time → sum / count, count_over_time → count,
//! over windows aligned to buckets. `tests::rate_over_rollups_differs_only_at_the_edges`
//! checks the bound.
//!
//! Invariants:
//! - Buckets of a series are disjoint and in time order; a bucket is written
//!   to a chunk only when a sample of a later bucket (or the series' closing)
//!   shows it is complete, so a stored bucket never changes.
//! - All five streams of a chunk hold the same number of buckets.

use rusqlite::params;

use super::codec::{ByteReader, ByteWriter};
use super::head::Finished;
use super::packed::{self, PackedBuckets};
use super::timestamps::TimestampColumns;
use super::xor::{self, CorruptChunk, XorAppender, XorIter};
use super::{SeriesBuckets, SeriesSamples, Store};
use crate::model::{Labels, Matcher};

/// Buckets per rollup chunk: 2 hours of the 1-minute tier, 5 days of the
/// 1-hour tier.
pub const BUCKETS_PER_CHUNK: u16 = 120;

/// A resolution data can be read at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resolution {
    Raw,
    Minute,
    Hour,
}

impl Resolution {
    /// The rollup tiers, finest first.
    pub const TIERS: [Resolution; 2] = [Resolution::Minute, Resolution::Hour];

    /// Whether the head rolls this tier up as samples arrive. The minute
    /// tier is not: while the raw chunks are kept its buckets are made from
    /// them when read (six raw samples a bucket at 10 s, so storing them
    /// twice cost as much as the raw tier), and they are stored only when
    /// retention deletes the raw chunks (see [`Store::roll_up_minutes`]).
    pub fn rolled_at_ingest(self) -> bool {
        self == Resolution::Hour
    }

    /// Bucket width in milliseconds (0 for raw samples).
    pub fn bucket_ms(self) -> i64 {
        match self {
            Resolution::Raw => 0,
            Resolution::Minute => 60_000,
            Resolution::Hour => 3_600_000,
        }
    }

    /// The coarsest resolution whose buckets are no wider than `step_ms`:
    /// a query stepping by an hour gains nothing from minute buckets.
    pub fn for_step(step_ms: i64) -> Resolution {
        if step_ms >= Resolution::Hour.bucket_ms() {
            Resolution::Hour
        } else if step_ms >= Resolution::Minute.bucket_ms() {
            Resolution::Minute
        } else {
            Resolution::Raw
        }
    }

    /// The number stored in the `tier` column of the rollups table.
    pub(crate) fn tier_id(self) -> i64 {
        self.bucket_ms() / 60_000
    }
}

/// The aggregates of one bucket of one series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    /// Start of the bucket (a multiple of the bucket width).
    pub start_ms: i64,
    /// Timestamp of the last raw sample in the bucket.
    pub last_ms: i64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: f64,
    pub last: f64,
}

impl Bucket {
    fn first(start_ms: i64, t: i64, v: f64) -> Bucket {
        Bucket {
            start_ms,
            last_ms: t,
            min: v,
            max: v,
            sum: v,
            count: 1.0,
            last: v,
        }
    }

    fn add(&mut self, t: i64, v: f64) {
        self.last_ms = t;
        // NaN never wins a comparison, so a NaN sample leaves min/max alone
        // (as PromQL's min_over_time does) but still counts and sums.
        self.min = if v < self.min || self.min.is_nan() {
            v
        } else {
            self.min
        };
        self.max = if v > self.max || self.max.is_nan() {
            v
        } else {
            self.max
        };
        self.sum += v;
        self.count += 1.0;
        self.last = v;
    }
}

/// The five streams of a rollup chunk being built.
#[derive(Clone, Debug, Default)]
pub struct RollupAppender {
    min: XorAppender,
    max: XorAppender,
    sum: XorAppender,
    count: XorAppender,
    last: XorAppender,
    first_start: i64,
}

impl RollupAppender {
    pub fn len(&self) -> u16 {
        self.min.len()
    }

    pub fn is_empty(&self) -> bool {
        self.min.is_empty()
    }

    /// Start of the first bucket in the chunk.
    pub fn min_time(&self) -> i64 {
        self.first_start
    }

    /// Start of the last bucket in the chunk.
    pub fn max_time(&self) -> i64 {
        self.min.last_timestamp()
    }

    fn append(&mut self, b: &Bucket) {
        if self.is_empty() {
            self.first_start = b.start_ms;
        }
        self.min.append(b.start_ms, b.min);
        self.max.append(b.start_ms, max_xor_last(b.max, b.last));
        self.sum.append(b.start_ms, b.sum);
        self.count.append(b.start_ms, b.count);
        self.last.append(b.last_ms, b.last);
    }

    /// The chunk as stored: the five streams, each length-prefixed.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = ByteWriter::default();
        for stream in [&self.min, &self.max, &self.sum, &self.count, &self.last] {
            w.bytes(stream.bytes());
        }
        w.into_inner()
    }

    fn resume(r: &mut ByteReader) -> Result<RollupAppender, CorruptChunk> {
        let min = XorAppender::resume(r.bytes()?)?;
        let chunk = RollupAppender {
            first_start: xor::decode(min.bytes())?.first().map_or(0, |s| s.0),
            min,
            max: XorAppender::resume(r.bytes()?)?,
            sum: XorAppender::resume(r.bytes()?)?,
            count: XorAppender::resume(r.bytes()?)?,
            last: XorAppender::resume(r.bytes()?)?,
        };
        let n = chunk.len();
        if [&chunk.max, &chunk.sum, &chunk.count, &chunk.last]
            .iter()
            .any(|s| s.len() != n)
        {
            return Err(CorruptChunk("rollup streams of unequal length"));
        }
        Ok(chunk)
    }
}

/// The max stream holds the bits of `max` XOR those of `last`: for a
/// counter (and any series that ends its bucket at its peak) that is 0 in
/// every bucket, one bit each instead of a changing value. Applying it twice
/// gives the value back.
fn max_xor_last(value: f64, last: f64) -> f64 {
    f64::from_bits(value.to_bits() ^ last.to_bits())
}

/// Decodes a stored rollup chunk into its buckets.
pub fn decode(data: &[u8]) -> Result<Vec<Bucket>, CorruptChunk> {
    let mut streams = streams(data)?;
    let n = streams[0].len();
    let mut buckets = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let mut next = |i: usize| -> Result<(i64, f64), CorruptChunk> {
            streams[i]
                .next_sample()?
                .ok_or(CorruptChunk("rollup stream ends early"))
        };
        let (start_ms, min) = next(0)?;
        let max_stored = next(1)?.1;
        let sum = next(2)?.1;
        let count = next(3)?.1;
        let (last_ms, last) = next(4)?;
        let max = max_xor_last(max_stored, last);
        buckets.push(Bucket {
            start_ms,
            last_ms,
            min,
            max,
            sum,
            count,
            last,
        });
    }
    Ok(buckets)
}

/// Only the `last` stream of a stored rollup chunk: each bucket's last raw
/// sample, one stream decoded of five.
pub fn decode_last(data: &[u8]) -> Result<Vec<(i64, f64)>, CorruptChunk> {
    let [.., last] = streams(data)?;
    last.collect()
}

/// The five streams of a stored chunk (min, max, sum, count, last), checked
/// to announce the same number of buckets; nothing is decoded yet.
fn streams(data: &[u8]) -> Result<[XorIter<'_>; 5], CorruptChunk> {
    let mut r = ByteReader::new(data);
    let streams = [
        XorIter::new(r.bytes()?)?,
        XorIter::new(r.bytes()?)?,
        XorIter::new(r.bytes()?)?,
        XorIter::new(r.bytes()?)?,
        XorIter::new(r.bytes()?)?,
    ];
    let n = streams[0].len();
    if streams.iter().any(|s| s.len() != n) {
        return Err(CorruptChunk("rollup streams of unequal length"));
    }
    Ok(streams)
}

/// What a read takes from each bucket, and so which streams of a chunk it
/// decodes: whole [`Bucket`]s (all five), or each bucket's last sample
/// `(last_ms, last)` (one), all a step-wise read of raw-like samples needs.
pub trait BucketView: Sized {
    /// The buckets of a stored XOR chunk.
    fn decode(data: &[u8]) -> Result<Vec<Self>, CorruptChunk>;
    /// What a read takes of whole buckets (a packed row's).
    fn from_buckets(buckets: Vec<Bucket>) -> Vec<Self>;
    /// The buckets of a head tier: its open chunk, then its open bucket.
    fn of_head(tier: &TierHead) -> Result<Vec<Self>, CorruptChunk>;
    /// A time inside the bucket (its start, or its last sample's): the
    /// bucket's start is this rounded down to the bucket width.
    fn time(&self) -> i64;
}

impl BucketView for Bucket {
    fn decode(data: &[u8]) -> Result<Vec<Bucket>, CorruptChunk> {
        decode(data)
    }

    fn from_buckets(buckets: Vec<Bucket>) -> Vec<Bucket> {
        buckets
    }

    fn of_head(tier: &TierHead) -> Result<Vec<Bucket>, CorruptChunk> {
        tier.buckets()
    }

    fn time(&self) -> i64 {
        self.start_ms
    }
}

impl BucketView for (i64, f64) {
    fn decode(data: &[u8]) -> Result<Vec<(i64, f64)>, CorruptChunk> {
        decode_last(data)
    }

    fn from_buckets(buckets: Vec<Bucket>) -> Vec<(i64, f64)> {
        buckets.into_iter().map(|b| (b.last_ms, b.last)).collect()
    }

    fn of_head(tier: &TierHead) -> Result<Vec<(i64, f64)>, CorruptChunk> {
        let mut lasts = if tier.chunk.is_empty() {
            Vec::new()
        } else {
            xor::decode(tier.chunk.last.bytes())?
        };
        lasts.extend(tier.open.map(|b| (b.last_ms, b.last)));
        Ok(lasts)
    }

    fn time(&self) -> i64 {
        self.0
    }
}

/// A rollup chunk (as [`RollupAppender::encode`] wrote it) as the packed
/// row stored on disk (see [`super::packed`]); its buckets' last instants go
/// to a shared timestamp column.
pub(super) fn pack(
    columns: &mut TimestampColumns,
    resolution: Resolution,
    chunk: &[u8],
) -> anyhow::Result<Vec<u8>> {
    pack_buckets(columns, resolution, &decode(chunk)?)
}

/// Buckets (in time order, not empty) as one packed rollup row.
fn pack_buckets(
    columns: &mut TimestampColumns,
    resolution: Resolution,
    buckets: &[Bucket],
) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(
        !buckets.is_empty(),
        "an empty rollup chunk cannot be packed"
    );
    let lasts: Vec<i64> = buckets.iter().map(|b| b.last_ms).collect();
    let aggregate = |f: fn(&Bucket) -> f64| buckets.iter().map(f).collect();
    Ok(packed::encode_rollup_row(&PackedBuckets {
        column: columns.intern(resolution, &lasts),
        min: aggregate(|b| b.min),
        max: aggregate(|b| b.max),
        sum: aggregate(|b| b.sum),
        count: aggregate(|b| b.count),
        last: aggregate(|b| b.last),
    }))
}

/// The buckets of `samples` (in time order) at `width`, oldest first.
pub(crate) fn fold_buckets(
    samples: impl IntoIterator<Item = (i64, f64)>,
    width: i64,
) -> Vec<Bucket> {
    let mut buckets: Vec<Bucket> = Vec::new();
    for (t, v) in samples {
        let start = t.div_euclid(width) * width;
        match buckets.last_mut() {
            Some(b) if b.start_ms == start => b.add(t, v),
            _ => buckets.push(Bucket::first(start, t, v)),
        }
    }
    buckets
}

/// One tier of one head series: the bucket being filled and the open chunk.
#[derive(Clone, Debug)]
pub struct TierHead {
    pub resolution: Resolution,
    pub open: Option<Bucket>,
    pub chunk: RollupAppender,
}

impl TierHead {
    pub fn new(resolution: Resolution) -> TierHead {
        TierHead {
            resolution,
            open: None,
            chunk: RollupAppender::default(),
        }
    }

    /// Adds a raw sample (after the previous one). Returns a full chunk when
    /// this sample completed the chunk's last bucket.
    pub fn add(&mut self, t: i64, v: f64) -> Option<RollupAppender> {
        let start = t.div_euclid(self.resolution.bucket_ms()) * self.resolution.bucket_ms();
        match &mut self.open {
            Some(bucket) if bucket.start_ms == start => {
                bucket.add(t, v);
                None
            }
            _ => {
                let full = self.close_bucket();
                self.open = Some(Bucket::first(start, t, v));
                full
            }
        }
    }

    /// Moves the open bucket into the chunk; returns the chunk if now full.
    pub fn close_bucket(&mut self) -> Option<RollupAppender> {
        let bucket = self.open.take()?;
        self.chunk.append(&bucket);
        if self.chunk.len() >= BUCKETS_PER_CHUNK {
            Some(std::mem::take(&mut self.chunk))
        } else {
            None
        }
    }

    pub fn write(&self, w: &mut ByteWriter) {
        match &self.open {
            Some(b) => {
                w.u8(1);
                w.i64(b.start_ms);
                w.i64(b.last_ms);
                for v in [b.min, b.max, b.sum, b.count, b.last] {
                    w.f64(v);
                }
            }
            None => w.u8(0),
        }
        for stream in [
            &self.chunk.min,
            &self.chunk.max,
            &self.chunk.sum,
            &self.chunk.count,
            &self.chunk.last,
        ] {
            w.bytes(stream.bytes());
        }
    }

    pub fn read(resolution: Resolution, r: &mut ByteReader) -> Result<TierHead, CorruptChunk> {
        let open = match r.u8()? {
            0 => None,
            _ => Some(Bucket {
                start_ms: r.i64()?,
                last_ms: r.i64()?,
                min: r.f64()?,
                max: r.f64()?,
                sum: r.f64()?,
                count: r.f64()?,
                last: r.f64()?,
            }),
        };
        Ok(TierHead {
            resolution,
            open,
            chunk: RollupAppender::resume(r)?,
        })
    }

    /// Buckets of the open chunk and the open bucket, for reads.
    pub fn buckets(&self) -> Result<Vec<Bucket>, CorruptChunk> {
        let mut buckets = if self.chunk.is_empty() {
            Vec::new()
        } else {
            decode(&self.chunk.encode())?
        };
        buckets.extend(self.open);
        Ok(buckets)
    }
}

impl Store {
    /// The buckets of a packed rollup row, oldest first.
    fn unpack_rollup(&self, row: &[u8], resolution: Resolution) -> anyhow::Result<Vec<Bucket>> {
        let p = packed::decode_rollup_row(row)?;
        let lasts = self.columns.get(&self.conn, p.column)?;
        anyhow::ensure!(
            lasts.len() == p.last.len(),
            "a rollup chunk of {} buckets names timestamp column {} of {} instants",
            p.last.len(),
            p.column,
            lasts.len()
        );
        let width = resolution.bucket_ms();
        Ok((0..lasts.len())
            .map(|i| Bucket {
                // The bucket's start is its last sample's, rounded down.
                start_ms: lasts[i].div_euclid(width) * width,
                last_ms: lasts[i],
                min: p.min[i],
                max: p.max[i],
                sum: p.sum[i],
                count: p.count[i],
                last: p.last[i],
            })
            .collect())
    }

    /// Stores the minute buckets of series `id` up to the one holding
    /// `through` (the last raw sample retention is about to delete), from
    /// the first bucket not stored yet and not older than `oldest_kept`.
    /// Run before the raw rows go: the bucket holding `through` may go on
    /// in a row that stays, and is read whole.
    pub(super) fn roll_up_minutes(
        &mut self,
        id: i64,
        through: i64,
        oldest_kept: i64,
    ) -> anyhow::Result<()> {
        let tier = Resolution::Minute;
        let width = tier.bucket_ms();
        let stored: Option<i64> = self.conn.query_row(
            "SELECT max(max_time) FROM rollups WHERE tier = ?1 AND series_id = ?2",
            params![tier.tier_id(), id],
            |r| r.get(0),
        )?;
        let from = stored
            .map_or(i64::MIN, |t| t.saturating_add(width))
            .max(oldest_kept.div_euclid(width).saturating_mul(width));
        let end = through
            .div_euclid(width)
            .saturating_add(1)
            .saturating_mul(width)
            - 1;
        if from > end {
            return Ok(());
        }
        let Some(labels) = self.series_ids.labels(id).cloned() else {
            return Ok(());
        };
        let buckets = fold_buckets(self.samples_of(id, &labels, from, end)?, width);
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO rollups (tier, series_id, min_time, max_time, packed, data)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5)",
            )?;
            for chunk in buckets.chunks(BUCKETS_PER_CHUNK as usize) {
                let row = pack_buckets(&mut self.columns, tier, chunk)?;
                let (first, last) = (chunk[0].start_ms, chunk[chunk.len() - 1].start_ms);
                self.chunk_starts.written(tier, first);
                insert.execute(params![tier.tier_id(), id, first, last, row])?;
            }
            self.columns.write_pending(&tx)?;
        }
        tx.commit()?;
        self.columns.committed();
        Ok(())
    }

    /// Every series all `matchers` select with its buckets of a rollup tier
    /// (`Minute` or `Hour`) whose start lies in [start_ms, end_ms], the
    /// still-open bucket included.
    pub fn select_rollups(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        resolution: Resolution,
    ) -> anyhow::Result<Vec<SeriesBuckets>> {
        Ok(self
            .select_buckets::<Bucket>(matchers, start_ms, end_ms, resolution)?
            .into_iter()
            .map(|(labels, buckets)| SeriesBuckets { labels, buckets })
            .collect())
    }

    /// As [`Store::select`], for a query evaluated every `step_ms`: when the
    /// step is at least a minute (an hour), the 1-minute (1-hour) tier
    /// answers instead of the raw samples, with each bucket's last sample at
    /// its real timestamp (see the module doc for why rate() stays right).
    /// Only the `last` stream of each chunk is decoded.
    pub fn select_step(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> anyhow::Result<Vec<SeriesSamples>> {
        let resolution = Resolution::for_step(step_ms);
        if resolution == Resolution::Raw {
            return self.select(matchers, start_ms, end_ms);
        }
        let width = resolution.bucket_ms();
        let first_bucket = start_ms.div_euclid(width) * width;
        Ok(self
            .select_buckets::<(i64, f64)>(matchers, first_bucket, end_ms, resolution)?
            .into_iter()
            .filter_map(|(labels, mut samples)| {
                samples.retain(|s| s.0 >= start_ms && s.0 <= end_ms);
                (!samples.is_empty()).then_some(SeriesSamples { labels, samples })
            })
            .collect())
    }

    /// The buckets of `resolution` starting in [start_ms, end_ms] of every
    /// series the matchers select, oldest first, from the stored chunks, the
    /// chunks a failed write left pending and the head. A chunk is decoded
    /// once, only if some bucket of it starts in the range, and only in the
    /// streams `V` needs.
    fn select_buckets<V: BucketView>(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        resolution: Resolution,
    ) -> anyhow::Result<Vec<(Labels, Vec<V>)>> {
        anyhow::ensure!(
            resolution != Resolution::Raw,
            "raw samples have no buckets: use select"
        );
        let width = resolution.bucket_ms();
        // Chunks of a series do not overlap and `max_time` is the start of a
        // chunk's last bucket: walking back from the last chunk starting by
        // `end_ms`, the first one whose last bucket starts before `start_ms`
        // ends the walk, undecoded.
        let mut stmt = self.conn.prepare_cached(
            "SELECT max_time, packed, data FROM rollups WHERE tier = ?1 AND series_id = ?2
             AND min_time <= ?3 ORDER BY min_time DESC",
        )?;
        let mut selected = Vec::new();
        for (id, labels) in self.series_matching(matchers)? {
            let mut stored: Vec<Vec<V>> = Vec::new();
            let mut rows = stmt.query(params![resolution.tier_id(), id, end_ms])?;
            while let Some(row) = rows.next()? {
                if row.get::<_, i64>(0)? < start_ms {
                    break;
                }
                let data = row.get_ref(2)?.as_blob()?;
                stored.push(if row.get::<_, bool>(1)? {
                    V::from_buckets(self.unpack_rollup(data, resolution)?)
                } else {
                    V::decode(data)?
                });
            }
            let mut buckets: Vec<V> = stored.into_iter().rev().flatten().collect();
            for (_, finished) in self.pending.finished.iter().filter(|(sid, _)| *sid == id) {
                if let Finished::Rollup {
                    resolution: r,
                    min_time,
                    max_time,
                    data,
                } = finished
                {
                    if *r == resolution && *max_time >= start_ms && *min_time <= end_ms {
                        buckets.extend(V::decode(data)?);
                    }
                }
            }
            if let Some(tier) = self.head.get(&id).and_then(|s| s.tier(resolution)) {
                buckets.extend(V::of_head(tier)?);
            }
            if !resolution.rolled_at_ingest() {
                // After what is stored, so a stored bucket wins over one
                // made of what retention left of its raw samples.
                let end = end_ms
                    .div_euclid(width)
                    .saturating_add(1)
                    .saturating_mul(width)
                    - 1;
                buckets.extend(V::from_buckets(fold_buckets(
                    self.samples_of(id, &labels, start_ms, end)?,
                    width,
                )));
            }
            let start_of = |b: &V| b.time().div_euclid(width) * width;
            // Stable: of buckets with the same start, the first listed stays.
            buckets.sort_by_key(start_of);
            buckets.dedup_by_key(|b| start_of(b));
            buckets.retain(|b| (start_ms..=end_ms).contains(&start_of(b)));
            if !buckets.is_empty() {
                selected.push((labels, buckets));
            }
        }
        Ok(selected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::rng::Rng;

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
        let bytes = w.into_inner();
        let back = TierHead::read(Resolution::Minute, &mut ByteReader::new(&bytes)).unwrap();
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
}
