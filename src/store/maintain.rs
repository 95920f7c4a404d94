//! Maintenance: closing idle series, retention by age and by size, and
//! handing freed space back to the file system. [`Store::append`] runs it
//! once a minute; tests and the benchmark call [`Store::maintain`] directly.
//!
//! Ages are measured from the newest stored sample, not the wall clock, so a
//! machine whose clock jumps does not wipe its data, and old data replayed by
//! remote-write is judged by the data's own time.
//!
//! Retention by age stores the minute buckets of the raw rows it deletes
//! first (see [`Store::roll_up_minutes`]): the minute tier is made from the
//! raw chunks while they are kept.
//!
//! The size cap deletes whole chunks, oldest first whatever their tier: the
//! rollups' long history goes before recent raw samples, so the cap trims
//! the past and keeps the present at full resolution; raw rows it deletes
//! leave no minute buckets behind. The head's open
//! chunks are never deleted, so a cap smaller than the head cannot be met;
//! the store then keeps what the head needs and says so.
//!
//! Series without data are forgotten, so the label sets of processes long
//! gone do not pile up in `series`, `postings` and the id map. Invariant: a
//! series row (with its postings, and a head row) exists while the series
//! has data: it is in the head, or has a chunk in some tier (raw, minute or
//! hour), or a chunk waiting in memory after a failed write. Retention
//! deletes chunks by age, tier by tier, so a series none of whose tiers
//! holds a chunk any more is one whose last sample is older than the longest
//! retention among them; the sweep then deletes its rows in one transaction
//! and drops its labels from the id map only once that commits. A sample
//! of the same labels arriving later finds no id and gets a fresh one, like
//! any new series (ids are never reused while sonde runs; at start, the
//! ingest log's samples of a deleted id are dropped and the next id is kept
//! past it, so no log row ever names a later series). The sweep looks at
//! [`SWEEP_SERIES`] series per pass, continuing where the last pass
//! stopped, so one pass stays short however many series the file holds.

use rusqlite::params;

use super::head::Finished;
use super::{Resolution, Store};

/// Per tier, a time no chunk of the tier starts before, once known: while
/// retention's cutoff is not past it, nothing of the tier can expire, and
/// the pass that would ask every series for its expired chunks (a statement
/// a series and tier, once a minute: most of an idle sonde's ingest thread
/// at maintenance) is skipped. A pass learns the unknown bounds first (one
/// statement a tier), so a sonde younger than a tier's retention never runs
/// that tier's deletion at all.
///
/// Invariant: a known bound is at or before the start of every chunk of its
/// tier in the file. Deleting chunks keeps it true (it is learnt from the
/// file again where a pass deleted some); every statement that inserts a
/// `chunks` or `rollups` row first lowers it to the row's start
/// ([`ChunkStarts::written`]; rows made into runs start where one of
/// their rows started); a new connection forgets it.
#[derive(Default)]
pub(super) struct ChunkStarts {
    /// Raw, minute, hour; `i64::MAX` for a tier known to be empty.
    bounds: [Option<i64>; 3],
}

impl ChunkStarts {
    fn slot(resolution: Resolution) -> usize {
        match resolution {
            Resolution::Raw => 0,
            Resolution::Minute => 1,
            Resolution::Hour => 2,
        }
    }

    /// A chunk of `resolution` starting at `min_time` is written (or will
    /// be, by the next commit).
    pub(super) fn written(&mut self, resolution: Resolution, min_time: i64) {
        if let Some(bound) = &mut self.bounds[Self::slot(resolution)] {
            *bound = (*bound).min(min_time);
        }
    }

    fn knows(&self, resolution: Resolution) -> bool {
        self.bounds[Self::slot(resolution)].is_some()
    }

    /// No chunk of `resolution` starts before `cutoff`: nothing expires.
    fn none_before(&self, resolution: Resolution, cutoff: i64) -> bool {
        self.bounds[Self::slot(resolution)].is_some_and(|bound| cutoff <= bound)
    }

    /// `oldest` is the start of the tier's oldest chunk (`None`: it has none).
    fn learn(&mut self, resolution: Resolution, oldest: Option<i64>) {
        self.bounds[Self::slot(resolution)] = Some(oldest.unwrap_or(i64::MAX));
    }

    /// The file may not be the one the bounds were learnt from.
    pub(super) fn forget(&mut self) {
        self.bounds = [None; 3];
    }
}

/// Series the sweep for series without data looks at per pass.
const SWEEP_SERIES: usize = 2_000;

const TIERS: [Tier; 3] = [
    Tier::Raw,
    Tier::Rollup(Resolution::Minute),
    Tier::Rollup(Resolution::Hour),
];

/// A table of chunks retention works on.
#[derive(Clone, Copy)]
enum Tier {
    Raw,
    Rollup(Resolution),
}

impl Tier {
    fn resolution(self) -> Resolution {
        match self {
            Tier::Raw => Resolution::Raw,
            Tier::Rollup(resolution) => resolution,
        }
    }
}

impl Store {
    /// Closes idle series ([`super::StoreOptions::idle_after`]), deletes chunks past retention, keeps
    /// the files under the size cap and gives freed pages back.
    pub fn maintain(&mut self) -> anyhow::Result<()> {
        self.close_idle_series();
        self.commit(None, false, false)?;
        if self.newest_ts == i64::MIN {
            return Ok(());
        }
        let ms = |d: std::time::Duration| d.as_millis().min(i64::MAX as u128) as i64;
        let tiers = [
            (Tier::Raw, ms(self.options.retention)),
            (
                Tier::Rollup(Resolution::Minute),
                ms(self.options.minute_retention),
            ),
            (
                Tier::Rollup(Resolution::Hour),
                ms(self.options.hour_retention),
            ),
        ];
        let minute_cutoff = self
            .newest_ts
            .saturating_sub(ms(self.options.minute_retention));
        for tier in TIERS {
            if !self.chunk_starts.knows(tier.resolution()) {
                let oldest = self.oldest_chunk(tier)?;
                self.chunk_starts.learn(tier.resolution(), oldest);
            }
        }
        for (tier, keep) in tiers {
            let cutoff = self.newest_ts.saturating_sub(keep);
            if let Tier::Raw = tier {
                self.roll_up_expiring(cutoff, minute_cutoff)?;
            }
            // A chunk goes when all of it is older than the cutoff.
            self.delete_chunks(tier, cutoff, true)?;
        }
        self.columns.prune_recent(self.newest_ts);
        self.delete_series_without_data()?;
        self.reclaim()?;
        if self.options.retention_size > 0 {
            self.enforce_size_cap()?;
        }
        Ok(())
    }

    /// Deletes, among the next [`SWEEP_SERIES`] series by id, those with no
    /// data left (see the module doc for the invariant).
    fn delete_series_without_data(&mut self) -> anyhow::Result<()> {
        // Chunks still in memory would lose their series row.
        if !self.pending.finished.is_empty() || !self.pending.series.is_empty() {
            return Ok(());
        }
        // The batch comes from the id map, which mirrors `series`: reading
        // the table would decode thousands of label sets a minute to find
        // that nearly every series is still in the head.
        let mut batch: Vec<i64> = self
            .series_ids
            .values()
            .copied()
            .filter(|&id| id > self.sweep_after)
            .collect();
        batch.sort_unstable();
        batch.truncate(SWEEP_SERIES);
        // The next pass goes on after this batch, or starts over.
        self.sweep_after = match batch.last() {
            Some(&id) if batch.len() == SWEEP_SERIES => id,
            _ => 0,
        };
        batch.retain(|id| !self.head.contains_key(id));
        if batch.is_empty() {
            return Ok(());
        }
        let [minute, hour] = Resolution::TIERS.map(Resolution::tier_id);
        let tx = self.conn.transaction()?;
        let mut deleted = Vec::new();
        {
            let mut has_data = tx.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM chunks WHERE series_id = ?1)
                     OR EXISTS (SELECT 1 FROM rollups WHERE tier = ?2 AND series_id = ?1)
                     OR EXISTS (SELECT 1 FROM rollups WHERE tier = ?3 AND series_id = ?1)",
            )?;
            let mut series = tx.prepare_cached("DELETE FROM series WHERE id = ?1")?;
            let mut head = tx.prepare_cached("DELETE FROM head WHERE series_id = ?1")?;
            let mut postings = tx.prepare_cached(
                "DELETE FROM postings WHERE name = ?1 AND value = ?2 AND series_id = ?3",
            )?;
            for id in batch {
                if has_data.query_row(params![id, minute, hour], |r| r.get::<_, bool>(0))? {
                    continue;
                }
                let labels = self.series_ids.labels(id).expect("listed above");
                for (name, value) in labels.iter() {
                    postings.execute(params![name, value, id])?;
                }
                head.execute([id])?;
                series.execute([id])?;
                deleted.push(id);
            }
        }
        tx.commit()?;
        self.stats.series_deleted += deleted.len() as u64;
        for id in deleted {
            self.series_ids.remove(id);
        }
        Ok(())
    }

    fn close_idle_series(&mut self) {
        let idle_ms = i64::try_from(self.options.idle_after.as_millis()).unwrap_or(i64::MAX);
        let cutoff = self.newest_ts.saturating_sub(idle_ms);
        let idle: Vec<i64> = self
            .head
            .iter()
            .filter(|(_, s)| s.last_ts < cutoff)
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            let series = *self.head.remove(&id).expect("listed above");
            let mut finished: Vec<Finished> = Vec::new();
            series.close(&mut finished);
            self.pending
                .finished
                .extend(finished.into_iter().map(|f| (id, f)));
            self.pending.dirty.remove(&id);
            self.pending.closed.insert(id);
        }
        crate::memory::shrink_when_sparse(&mut self.head);
    }

    /// Deletes, for every series, the chunks of `tier` that start before
    /// `cutoff` (and, if `whole`, also end before it).
    /// Stores the minute buckets of the raw rows retention deletes next
    /// (those ending before `cutoff`), the ones not older than
    /// `minute_cutoff`: until now they were made from those rows.
    fn roll_up_expiring(&mut self, cutoff: i64, minute_cutoff: i64) -> anyhow::Result<()> {
        if self.chunk_starts.none_before(Resolution::Raw, cutoff) {
            return Ok(());
        }
        // One read transaction for every series' look: a statement of its
        // own would take and release the WAL's locks (four fcntl calls)
        // for each of thousands of series, once a minute.
        let expiring: Vec<(i64, i64)> = {
            let tx = self.conn.transaction()?;
            let mut expiring = Vec::new();
            {
                let mut through = tx.prepare_cached(
                    "SELECT max(max_time) FROM chunks WHERE series_id = ?1
                     AND min_time < ?2 AND max_time < ?2",
                )?;
                for &id in self.series_ids.values() {
                    let last: Option<i64> = through.query_row(params![id, cutoff], |r| r.get(0))?;
                    if let Some(last) = last.filter(|&t| t >= minute_cutoff) {
                        expiring.push((id, last));
                    }
                }
            }
            tx.commit()?;
            expiring
        };
        for (id, through) in expiring {
            self.roll_up_minutes(id, through, minute_cutoff)?;
        }
        Ok(())
    }

    fn delete_chunks(&mut self, tier: Tier, cutoff: i64, whole: bool) -> anyhow::Result<()> {
        if self.chunk_starts.none_before(tier.resolution(), cutoff) {
            return Ok(());
        }
        let ids: Vec<i64> = self.series_ids.values().copied().collect();
        let tx = self.conn.transaction()?;
        let mut deleted: i64 = 0;
        {
            let mut stmt = match tier {
                Tier::Raw => tx.prepare_cached(
                    // A row may hold a run of chunks: count the chunks.
                    "DELETE FROM chunks WHERE ?1 = ?1 AND series_id = ?2
                     AND min_time < ?3 AND (?4 = 0 OR max_time < ?3) RETURNING chunk_count",
                )?,
                Tier::Rollup(_) => tx.prepare_cached(
                    "DELETE FROM rollups WHERE tier = ?1 AND series_id = ?2
                     AND min_time < ?3 AND (?4 = 0 OR max_time < ?3) RETURNING 1",
                )?,
            };
            let tier_id = match tier {
                Tier::Raw => 0,
                Tier::Rollup(r) => r.tier_id(),
            };
            for id in ids {
                let chunks = stmt.query_map(params![tier_id, id, cutoff, whole], |row| {
                    row.get::<_, i64>(0)
                })?;
                for count in chunks {
                    deleted += count?;
                }
            }
        }
        tx.commit()?;
        self.stats.chunks_deleted += deleted as u64;
        let resolution = tier.resolution();
        // Nothing deleted leaves a known bound true; otherwise (or unknown)
        // the oldest start is looked up again.
        if deleted > 0 || !self.chunk_starts.knows(resolution) {
            let oldest = self.oldest_chunk(tier)?;
            self.chunk_starts.learn(resolution, oldest);
            if deleted > 0 {
                // Columns no row left can name: those ending before the oldest.
                let oldest = oldest.unwrap_or(i64::MAX);
                self.columns.forget_before(&self.conn, resolution, oldest)?;
            }
        }
        Ok(())
    }

    /// The start of the oldest chunk of `tier`, if it has any: one
    /// statement, which takes the WAL's read lock once, and looks up each
    /// series' first entry in the tier's index (`(series_id, min_time)`,
    /// `(tier, series_id, min_time)`) rather than reading every entry, which
    /// on a file of months is most of the file. Every chunk's series has a
    /// row in `series` (see the module doc).
    fn oldest_chunk(&self, tier: Tier) -> anyhow::Result<Option<i64>> {
        let mut stmt = match tier {
            Tier::Raw => self.conn.prepare_cached(
                "SELECT min((SELECT min_time FROM chunks WHERE ?1 = ?1 AND series_id = series.id
                             ORDER BY min_time LIMIT 1)) FROM series",
            )?,
            Tier::Rollup(_) => self.conn.prepare_cached(
                "SELECT min((SELECT min_time FROM rollups WHERE tier = ?1 AND series_id = series.id
                             ORDER BY min_time LIMIT 1)) FROM series",
            )?,
        };
        let tier_id = match tier {
            Tier::Raw => 0,
            Tier::Rollup(r) => r.tier_id(),
        };
        Ok(stmt.query_row([tier_id], |r| r.get(0))?)
    }

    fn enforce_size_cap(&mut self) -> anyhow::Result<()> {
        let cap = self.options.retention_size;
        loop {
            let size = self.size_on_disk();
            if size <= cap {
                return Ok(());
            }
            let mut oldest: Option<i64> = None;
            for tier in TIERS {
                if let Some(t) = self.oldest_chunk(tier)? {
                    oldest = Some(oldest.map_or(t, |o| o.min(t)));
                }
            }
            let Some(oldest) = oldest else {
                tracing::warn!(
                    "store: {size} bytes on disk, more than [storage] retention_size ({cap}), with nothing older left to delete: the active series' open chunks need more"
                );
                return Ok(());
            };
            // Delete the oldest share of the time span in proportion to the
            // excess (at least the oldest chunk), then measure again.
            let span = self.newest_ts.saturating_sub(oldest).max(1);
            let excess = (size - cap) as f64 / size as f64;
            let cutoff = oldest.saturating_add(((span as f64 * excess) as i64).max(1));
            for tier in TIERS {
                self.delete_chunks(tier, cutoff, false)?;
            }
            self.reclaim()?;
        }
    }

    /// Gives free pages back to the file system and shrinks the WAL.
    fn reclaim(&mut self) -> anyhow::Result<()> {
        // Each step of the pragma frees one page: run it to the end.
        let mut vacuum = self.conn.prepare_cached("PRAGMA incremental_vacuum")?;
        let mut steps = vacuum.query([])?;
        while steps.next()?.is_some() {}
        drop(steps);
        drop(vacuum);
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}
