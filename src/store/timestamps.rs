//! Timestamp columns: the instants of packed chunks (see [`super::packed`]),
//! each distinct sequence stored once in the `timestamps` table and named by
//! its id from every chunk that has exactly those instants.
//!
//! Series collected in the same rounds fill their chunks at the same
//! instants, so one column serves all of them: a round's lateness is paid
//! once, not once per series.
//!
//! Invariants:
//! - A column never changes once written; ids are allocated in memory,
//!   increasing, and a column is inserted in the transaction of the first
//!   row that names it (it waits in `pending` until one commits).
//! - `recent` names only columns that are in the file or in `pending`:
//!   retention drops from it what it deletes ([`TimestampColumns::forget_before`]),
//!   and a new connection (which may have lost the last writes) starts it
//!   empty ([`TimestampColumns::reset`]); a chunk whose instants are not in
//!   it gets a new column, at worst a duplicate.
//! - A column serves one tier (raw, minute or hour), and retention deletes
//!   it only when it ends before every row of that tier still stored
//!   begins, so no stored row names a missing column.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use rusqlite::{params, Connection, OptionalExtension};

use super::packed;
use super::rollup::Resolution;

/// Columns read back and kept for later reads: a query over all series
/// reads the same few columns for each of them.
const CACHED_COLUMNS: usize = 4096;
/// How long a column is offered to new chunks after its last instant (a
/// series closing after [`super::StoreOptions::idle_after`] still finds
/// the column of its peers' last chunk).
const SHARED_WITHIN_MS: i64 = 3_600_000;

/// A column not yet in the file.
struct Column {
    id: i64,
    /// [`Resolution::tier_id`] of the chunks naming it (0: raw).
    tier: i64,
    first: i64,
    last: i64,
    data: Vec<u8>,
}

#[derive(Default)]
pub struct TimestampColumns {
    /// (tier, encoded column) → (id, last instant). Tiers do not share
    /// columns: each tier's retention deletes its own.
    recent: HashMap<(i64, Vec<u8>), (i64, i64)>,
    next_id: i64,
    pending: Vec<Column>,
    cache: Mutex<HashMap<i64, Arc<[i64]>>>,
}

impl TimestampColumns {
    /// The columns of the file: ids go on after its largest.
    pub fn open(conn: &Connection) -> anyhow::Result<TimestampColumns> {
        let last: Option<i64> =
            conn.query_row("SELECT max(id) FROM timestamps", [], |r| r.get(0))?;
        Ok(TimestampColumns {
            next_id: last.unwrap_or(0) + 1,
            ..TimestampColumns::default()
        })
    }

    /// The id of the column of `tier` holding `timestamps` (not empty,
    /// increasing), made if no recent one does.
    pub fn intern(&mut self, tier: Resolution, timestamps: &[i64]) -> i64 {
        let encoded = packed::encode_column(timestamps);
        let key = (tier.tier_id(), encoded);
        if let Some(&(id, _)) = self.recent.get(&key) {
            return id;
        }
        let id = self.next_id;
        self.next_id += 1;
        let (first, last) = (timestamps[0], timestamps[timestamps.len() - 1]);
        self.recent.insert(key.clone(), (id, last));
        self.pending.push(Column {
            id,
            tier: key.0,
            first,
            last,
            data: key.1,
        });
        id
    }

    /// Inserts the pending columns in the transaction about to commit.
    pub fn write_pending(&self, tx: &Connection) -> anyhow::Result<()> {
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO timestamps (id, tier, min_time, max_time, data)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for c in &self.pending {
            insert.execute(params![c.id, c.tier, c.first, c.last, c.data])?;
        }
        Ok(())
    }

    /// The transaction that wrote the pending columns committed.
    pub fn committed(&mut self) {
        self.pending.clear();
    }

    /// The connection was replaced: what the old one wrote last may be lost.
    pub fn reset(&mut self) {
        self.recent.clear();
    }

    /// Forgets the columns of `tier` ending before `t`, where its oldest
    /// stored chunk begins.
    pub fn forget_before(
        &mut self,
        conn: &Connection,
        tier: Resolution,
        t: i64,
    ) -> anyhow::Result<()> {
        let tier = tier.tier_id();
        self.recent
            .retain(|(of, _), &mut (_, last)| *of != tier || last >= t);
        self.cache.lock().expect("not poisoned").clear();
        conn.execute(
            "DELETE FROM timestamps WHERE tier = ?1 AND max_time < ?2",
            params![tier, t],
        )?;
        Ok(())
    }

    /// Stops offering columns that end more than [`SHARED_WITHIN_MS`]
    /// before `newest`: chunks leave the head as they fill, so the ones
    /// sharing instants leave together, and a column's last instant is
    /// about when its chunks were cut.
    pub fn prune_recent(&mut self, newest: i64) {
        let t = newest.saturating_sub(SHARED_WITHIN_MS);
        self.recent.retain(|_, &mut (_, last)| last >= t);
    }

    /// The instants of column `id`.
    pub fn get(&self, conn: &Connection, id: i64) -> anyhow::Result<Arc<[i64]>> {
        if let Some(column) = self.cache.lock().expect("not poisoned").get(&id) {
            return Ok(column.clone());
        }
        let data: Option<Vec<u8>> = conn
            .prepare_cached("SELECT data FROM timestamps WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        let data = match data {
            Some(data) => data,
            None => self
                .pending
                .iter()
                .find(|c| c.id == id)
                .map(|c| c.data.clone())
                .with_context(|| format!("timestamp column {id} is missing"))?,
        };
        let column: Arc<[i64]> = packed::decode_column(&data)
            .with_context(|| format!("timestamp column {id}"))?
            .into();
        let mut cache = self.cache.lock().expect("not poisoned");
        if cache.len() >= CACHED_COLUMNS {
            cache.clear();
        }
        cache.insert(id, column.clone());
        Ok(column)
    }
}
