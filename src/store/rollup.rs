//! Rollup tiers: per series and per fixed time bucket (1 minute, 1 hour),
//! the min, max, sum, count, last and second moment of the raw samples,
//! kept far longer than the raw samples and read instead of them when a
//! query asks for a coarse step or a baseline learns a band.
//!
//! A rollup chunk holds up to [`BUCKETS_PER_CHUNK`] buckets as six XOR
//! streams (see [`super::xor`]), one per aggregate (max stored XOR last, see
//! [`max_xor_last`]). min, max, sum, count and the second moment are stamped
//! with the bucket's start; `last` carries the real timestamp of
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
//! The second moment: each bucket keeps M2 = Σ(x − mean)², the sum of its
//! samples' squared deviations from the bucket's mean, so the variance of
//! any set of buckets is exact from the buckets alone (Chan's parallel
//! formula: M2 = ΣM2ᵢ + Σnᵢ·(meanᵢ − mean)², see
//! [`crate::alert::baseline::band`]). It is computed from the samples less
//! the bucket's first one, d = x − x₀: count·M2 = n·Σd² − (Σd)². Why that
//! form and not the others:
//! - a raw Σx² cancels catastrophically: for a counter near 1e12, Σx² is
//!   near 1e26 and its rounding alone (1e10) exceeds a spread of thousands;
//! - Welford's running mean rounds to the mean's own precision at every
//!   step (1e-4 near 1e12), an error of the first order in each step's term
//!   that does not cancel: about 1e-8 relative at 360 samples a bucket;
//! - the shifted sums are exact for integer samples (a counter's d and d²
//!   are small integers), and otherwise err by about n²·2⁻⁵³ at worst (x₀
//!   is one of the samples, so it lies within √n standard deviations of the
//!   mean). Kept as count·M2, the stored value is an integer or a short
//!   decimal whenever the samples are, which packs small (see
//!   [`super::packed`]).
//!
//! A NaN or infinite sample makes its bucket's M2 NaN, as it makes its sum
//! NaN or infinite. Buckets written before buckets kept M2 (old rows, head
//! states and the rest of a head chunk begun before) read with M2 unknown
//! (`None`), stored as [`UNKNOWN_M2`] beside known ones.
//!
//! Invariants:
//! - Buckets of a series are disjoint and in time order; a bucket is written
//!   to a chunk only when a sample of a later bucket (or the series' closing)
//!   shows it is complete, so a stored bucket never changes.
//! - All streams of a chunk hold the same number of buckets; a chunk
//!   written before buckets kept M2 has five streams, one written since has
//!   six.
//! - A known M2 is never negative (clamped at 0 against rounding), so the
//!   negative [`UNKNOWN_M2`] cannot be mistaken for one; NaN stays NaN.
//! - A head tier's open chunk ([`OpenChunk`]) holds either nothing or bytes
//!   [`RollupAppender::encode`] wrote (six streams, at least one bucket),
//!   checked when they were read from a state: reading them back cannot
//!   fail.

use super::codec::{ByteReader, ByteWriter};
use super::packed::{self, PackedBuckets};
use super::timestamps::TimestampColumns;
use super::xor::{CorruptChunk, XorAppender, XorIter};

mod read;
pub use read::BucketView;

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
    /// retention deletes the raw chunks (see [`super::Store::roll_up_minutes`]).
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
    /// count·M2: the count times the sum of the samples' squared deviations
    /// from their mean (see the module doc); None when not known (a bucket
    /// written before buckets kept it).
    pub scaled_m2: Option<f64>,
}

/// How a bucket whose M2 is not known is stored in an M2 stream or array:
/// a known one is never negative (see the module's invariants).
pub const UNKNOWN_M2: f64 = -1.0;

fn stored_m2(scaled_m2: Option<f64>) -> f64 {
    scaled_m2.unwrap_or(UNKNOWN_M2)
}

fn known_m2(stored: f64) -> Option<f64> {
    // NaN is a known M2 (of a bucket with a NaN sample): not below zero.
    (stored.is_nan() || stored >= 0.0).then_some(stored)
}

impl Bucket {
    /// The sum of the samples' squared deviations from their mean, if known.
    pub fn m2(&self) -> Option<f64> {
        self.scaled_m2.map(|scaled| scaled / self.count)
    }
}

/// The sums an open bucket's M2 is computed from: of its samples less its
/// first one, `first` (see the module doc for why shifted).
#[derive(Clone, Copy, Debug, PartialEq)]
struct ShiftedSums {
    first: f64,
    sum: f64,
    squares: f64,
}

impl ShiftedSums {
    fn new(first: f64) -> ShiftedSums {
        ShiftedSums {
            first,
            sum: 0.0,
            squares: 0.0,
        }
    }

    fn add(&mut self, v: f64) {
        let d = v - self.first;
        self.sum += d;
        self.squares += d * d;
    }

    /// count·M2 = n·Σd² − (Σd)², never below zero (it is not in exact
    /// arithmetic; rounding may take it a hair under). NaN stays NaN.
    fn scaled_m2(&self, count: f64) -> f64 {
        let scaled = count * self.squares - self.sum * self.sum;
        if scaled < 0.0 {
            0.0
        } else {
            scaled
        }
    }
}

/// A bucket still taking samples: a [`Bucket`]'s aggregates so far, and
/// instead of its M2 the sums it is computed from (a [`Bucket`]'s own
/// `Option<f64>` would be 16 bytes more in every head series).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpenBucket {
    start_ms: i64,
    last_ms: i64,
    min: f64,
    max: f64,
    sum: f64,
    count: f64,
    last: f64,
    /// None for a bucket a head state written before buckets kept M2 left
    /// open: its M2 stays unknown.
    shifted: Option<ShiftedSums>,
}

impl OpenBucket {
    fn first(start_ms: i64, t: i64, v: f64) -> OpenBucket {
        OpenBucket {
            start_ms,
            last_ms: t,
            min: v,
            max: v,
            sum: v,
            count: 1.0,
            last: v,
            shifted: Some(ShiftedSums::new(v)),
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
        if let Some(shifted) = &mut self.shifted {
            shifted.add(v);
        }
    }

    /// The bucket as it stands.
    pub fn bucket(&self) -> Bucket {
        Bucket {
            start_ms: self.start_ms,
            last_ms: self.last_ms,
            min: self.min,
            max: self.max,
            sum: self.sum,
            count: self.count,
            last: self.last,
            scaled_m2: self.shifted.map(|s| s.scaled_m2(self.count)),
        }
    }
}

/// The six streams of a rollup chunk being built.
#[derive(Clone, Debug, Default)]
pub struct RollupAppender {
    min: XorAppender,
    max: XorAppender,
    sum: XorAppender,
    count: XorAppender,
    last: XorAppender,
    /// count·M2, [`UNKNOWN_M2`] where not known.
    scaled_m2: XorAppender,
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
        self.scaled_m2.append(b.start_ms, stored_m2(b.scaled_m2));
    }

    /// The chunk as stored: the six streams, each length-prefixed.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = ByteWriter::default();
        for stream in self.streams() {
            w.bytes(stream.bytes());
        }
        w.into_inner()
    }

    fn streams(&self) -> [&XorAppender; 6] {
        [
            &self.min,
            &self.max,
            &self.sum,
            &self.count,
            &self.last,
            &self.scaled_m2,
        ]
    }

    /// The chunk a head state holds: its first five streams, as states
    /// written before buckets kept M2 hold them; the M2 stream is read with
    /// [`TierHead::read_m2`] where the state has it, and is all unknown
    /// until then.
    fn resume(r: &mut ByteReader) -> Result<RollupAppender, CorruptChunk> {
        let min = XorAppender::resume(r.bytes()?)?;
        let mut scaled_m2 = XorAppender::new();
        for sample in XorIter::new(min.bytes())? {
            scaled_m2.append(sample?.0, UNKNOWN_M2);
        }
        let chunk = RollupAppender {
            first_start: first_start(min.bytes())?,
            min,
            max: XorAppender::resume(r.bytes()?)?,
            sum: XorAppender::resume(r.bytes()?)?,
            count: XorAppender::resume(r.bytes()?)?,
            last: XorAppender::resume(r.bytes()?)?,
            scaled_m2,
        };
        chunk.check_lengths()?;
        Ok(chunk)
    }

    /// Continues a chunk [`RollupAppender::encode`] wrote (six streams).
    fn resume_encoded(data: &[u8]) -> Result<RollupAppender, CorruptChunk> {
        let mut r = ByteReader::new(data);
        let mut next = || XorAppender::resume(r.bytes()?);
        let chunk = RollupAppender {
            min: next()?,
            max: next()?,
            sum: next()?,
            count: next()?,
            last: next()?,
            scaled_m2: next()?,
            first_start: 0,
        };
        chunk.check_lengths()?;
        Ok(RollupAppender {
            first_start: first_start(chunk.min.bytes())?,
            ..chunk
        })
    }

    fn check_lengths(&self) -> Result<(), CorruptChunk> {
        let n = self.len();
        if self.streams().iter().any(|s| s.len() != n) {
            return Err(CorruptChunk("rollup streams of unequal length"));
        }
        Ok(())
    }
}

/// The start of a chunk's first bucket, from its min stream (0 when it
/// holds none, as an empty appender says).
fn first_start(min: &[u8]) -> Result<i64, CorruptChunk> {
    Ok(XorIter::new(min)?.next_sample()?.map_or(0, |s| s.0))
}

/// A head tier's open chunk at rest: the bytes [`RollupAppender::encode`]
/// wrote, in one block of their exact size, and no block at all before the
/// tier's first bucket. Buckets join it once an hour (the hour tier), so
/// its six appenders (six blocks, each grown by doubling, and what each
/// needs to append) are rebuilt from the bytes then, for the bucket, and
/// not kept between: a fraction of the memory a series spends in the head,
/// for a decode of at most [`BUCKETS_PER_CHUNK`] buckets an hour.
#[derive(Clone, Debug, Default)]
pub struct OpenChunk(Box<[u8]>);

/// A stream of no sample, as an empty appender holds it.
const EMPTY_STREAM: &[u8] = &[0, 0];

/// See the module's invariants.
const WRITTEN_BY_THE_APPENDER: &str = "an open chunk holds what the appender encoded";

impl OpenChunk {
    fn of(chunk: &RollupAppender) -> OpenChunk {
        if chunk.is_empty() {
            OpenChunk::default()
        } else {
            OpenChunk(chunk.encode().into_boxed_slice())
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The chunk as stored (empty when it holds no bucket).
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Start of the first bucket in the chunk (0 when it holds none).
    pub fn min_time(&self) -> i64 {
        first_start(self.streams()[0]).expect(WRITTEN_BY_THE_APPENDER)
    }

    /// The six streams, in the order [`RollupAppender::encode`] writes them.
    fn streams(&self) -> [&[u8]; 6] {
        if self.is_empty() {
            return [EMPTY_STREAM; 6];
        }
        let mut r = ByteReader::new(&self.0);
        std::array::from_fn(|_| r.bytes().expect(WRITTEN_BY_THE_APPENDER))
    }

    /// An appender that goes on where the chunk stands.
    fn appender(&self) -> RollupAppender {
        if self.is_empty() {
            return RollupAppender::default();
        }
        RollupAppender::resume_encoded(&self.0).expect(WRITTEN_BY_THE_APPENDER)
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
    let (mut streams, mut scaled_m2) = streams(data)?;
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
        let scaled_m2 = match &mut scaled_m2 {
            Some(stream) => stream
                .next_sample()?
                .ok_or(CorruptChunk("rollup stream ends early"))
                .map(|(_, stored)| known_m2(stored))?,
            None => None,
        };
        buckets.push(Bucket {
            start_ms,
            last_ms,
            min,
            max,
            sum,
            count,
            last,
            scaled_m2,
        });
    }
    Ok(buckets)
}

/// Only the `last` stream of a stored rollup chunk: each bucket's last raw
/// sample, one stream decoded of five.
pub fn decode_last(data: &[u8]) -> Result<Vec<(i64, f64)>, CorruptChunk> {
    let ([.., last], _) = streams(data)?;
    last.collect()
}

/// The streams of a stored chunk (min, max, sum, count, last, and count·M2
/// in a chunk written since buckets kept it), checked to announce the same
/// number of buckets; nothing is decoded yet.
type ChunkStreams<'a> = ([XorIter<'a>; 5], Option<XorIter<'a>>);

fn streams(data: &[u8]) -> Result<ChunkStreams<'_>, CorruptChunk> {
    let mut r = ByteReader::new(data);
    let streams = [
        XorIter::new(r.bytes()?)?,
        XorIter::new(r.bytes()?)?,
        XorIter::new(r.bytes()?)?,
        XorIter::new(r.bytes()?)?,
        XorIter::new(r.bytes()?)?,
    ];
    let scaled_m2 = if r.is_empty() {
        None
    } else {
        Some(XorIter::new(r.bytes()?)?)
    };
    let n = streams[0].len();
    if streams.iter().chain(&scaled_m2).any(|s| s.len() != n) {
        return Err(CorruptChunk("rollup streams of unequal length"));
    }
    Ok((streams, scaled_m2))
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
        // A row of buckets none of which knows M2 is written as rows were
        // before: no array of unknowns.
        scaled_m2: buckets
            .iter()
            .any(|b| b.scaled_m2.is_some())
            .then(|| aggregate(|b| stored_m2(b.scaled_m2))),
    }))
}

/// The buckets of `samples` (in time order) at `width`, oldest first.
pub(crate) fn fold_buckets(
    samples: impl IntoIterator<Item = (i64, f64)>,
    width: i64,
) -> Vec<Bucket> {
    let mut buckets = Vec::new();
    let mut open: Option<OpenBucket> = None;
    for (t, v) in samples {
        let start = t.div_euclid(width) * width;
        match &mut open {
            Some(b) if b.start_ms == start => b.add(t, v),
            _ => {
                buckets.extend(open.map(|b| b.bucket()));
                open = Some(OpenBucket::first(start, t, v));
            }
        }
    }
    buckets.extend(open.map(|b| b.bucket()));
    buckets
}

/// One tier of one head series: the bucket being filled and the open chunk.
#[derive(Clone, Debug)]
pub struct TierHead {
    pub resolution: Resolution,
    pub open: Option<OpenBucket>,
    pub chunk: OpenChunk,
}

impl TierHead {
    pub fn new(resolution: Resolution) -> TierHead {
        TierHead {
            resolution,
            open: None,
            chunk: OpenChunk::default(),
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
                self.open = Some(OpenBucket::first(start, t, v));
                full
            }
        }
    }

    /// Moves the open bucket into the chunk; returns the chunk if now full.
    fn close_bucket(&mut self) -> Option<RollupAppender> {
        let bucket = self.open.take()?.bucket();
        let mut chunk = self.chunk.appender();
        chunk.append(&bucket);
        if chunk.len() >= BUCKETS_PER_CHUNK {
            self.chunk = OpenChunk::default();
            Some(chunk)
        } else {
            self.chunk = OpenChunk::of(&chunk);
            None
        }
    }

    /// Everything the tier holds, its open bucket last, as one chunk (None
    /// when it holds no bucket): the series is closing.
    pub fn close(self) -> Option<RollupAppender> {
        let mut chunk = self.chunk.appender();
        if let Some(open) = self.open {
            chunk.append(&open.bucket());
        }
        (!chunk.is_empty()).then_some(chunk)
    }

    /// The tier as head states have always held it: the open bucket's
    /// aggregates, then the chunk's first five streams. What M2 needs
    /// follows all tiers of the state ([`TierHead::write_m2`]), so a state
    /// written before buckets kept M2 still reads.
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
        for stream in &self.chunk.streams()[..5] {
            w.bytes(stream);
        }
    }

    pub fn read(resolution: Resolution, r: &mut ByteReader) -> Result<TierHead, CorruptChunk> {
        let open = match r.u8()? {
            0 => None,
            _ => Some(OpenBucket {
                start_ms: r.i64()?,
                last_ms: r.i64()?,
                min: r.f64()?,
                max: r.f64()?,
                sum: r.f64()?,
                count: r.f64()?,
                last: r.f64()?,
                // Until read_m2 finds them.
                shifted: None,
            }),
        };
        Ok(TierHead {
            resolution,
            open,
            chunk: OpenChunk::of(&RollupAppender::resume(r)?),
        })
    }

    /// What M2 needs of the tier: the open bucket's shifted sums (if it
    /// has them), then the chunk's M2 stream.
    pub fn write_m2(&self, w: &mut ByteWriter) {
        match self.open.and_then(|b| b.shifted) {
            Some(s) => {
                w.u8(1);
                for v in [s.first, s.sum, s.squares] {
                    w.f64(v);
                }
            }
            None => w.u8(0),
        }
        w.bytes(self.chunk.streams()[5]);
    }

    /// Reads what [`TierHead::write_m2`] wrote into a tier [`TierHead::read`]
    /// read from the same state.
    pub fn read_m2(&mut self, r: &mut ByteReader) -> Result<(), CorruptChunk> {
        let shifted = match r.u8()? {
            0 => None,
            _ => Some(ShiftedSums {
                first: r.f64()?,
                sum: r.f64()?,
                squares: r.f64()?,
            }),
        };
        match (&mut self.open, shifted) {
            (Some(open), shifted) => open.shifted = shifted,
            (None, Some(_)) => return Err(CorruptChunk("M2 sums of no open bucket")),
            (None, None) => {}
        }
        let mut chunk = self.chunk.appender();
        chunk.scaled_m2 = XorAppender::resume(r.bytes()?)?;
        chunk.check_lengths()?;
        self.chunk = OpenChunk::of(&chunk);
        Ok(())
    }

    /// Buckets of the open chunk and the open bucket, for reads.
    pub fn buckets(&self) -> Result<Vec<Bucket>, CorruptChunk> {
        let mut buckets = if self.chunk.is_empty() {
            Vec::new()
        } else {
            decode(self.chunk.bytes())?
        };
        buckets.extend(self.open.map(|b| b.bucket()));
        Ok(buckets)
    }
}

#[cfg(test)]
mod tests;
