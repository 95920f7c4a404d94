//! Reading the rollup tiers: which streams a read decodes ([`BucketView`]),
//! the store's bucket selections (stored rows, chunks a failed write left
//! pending, the head, and minute buckets folded from raw chunks), and the
//! minute buckets retention stores before it deletes raw rows.

use rusqlite::params;

use super::{
    decode, decode_last, fold_buckets, known_m2, pack_buckets, Bucket, CorruptChunk, Resolution,
    TierHead, BUCKETS_PER_CHUNK,
};
use crate::model::{Labels, Matcher};
use crate::store::head::Finished;
use crate::store::{packed, SeriesBuckets, SeriesSamples, Store};

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
            decode_last(tier.chunk.bytes())?
        };
        lasts.extend(tier.open.map(|b| (b.last_ms, b.last)));
        Ok(lasts)
    }

    fn time(&self) -> i64 {
        self.0
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
                scaled_m2: p.scaled_m2.as_ref().and_then(|m2| known_m2(m2[i])),
            })
            .collect())
    }

    /// Stores the minute buckets of series `id` up to the one holding
    /// `through` (the last raw sample retention is about to delete), from
    /// the first bucket not stored yet and not older than `oldest_kept`.
    /// Run before the raw rows go: the bucket holding `through` may go on
    /// in a row that stays, and is read whole.
    pub(in crate::store) fn roll_up_minutes(
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
