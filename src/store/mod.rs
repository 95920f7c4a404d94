//! Storage: every collected sample, persisted in one SQLite file.
//!
//! The interface is two calls: [`Store::append`] takes a batch of samples,
//! [`Store::select`] returns the series a set of matchers picks with their
//! samples in a time range. Everything behind them may change.

mod migrate;
#[cfg(test)]
mod rng;
pub mod xor;

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use rusqlite::{params, Connection, OptionalExtension};

use crate::model::{Labels, Matcher, Sample, METRIC_NAME};

/// The samples of one series in a time range, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesSamples {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

pub struct Store {
    conn: Connection,
    /// Invariant: mirrors the `series` table for every series written since
    /// open; a miss means "look in the table, then insert".
    series_ids: HashMap<Labels, i64>,
    samples_appended: u64,
}

impl Store {
    /// Opens (creating if needed) the database in `dir` and applies the
    /// migrations it has not seen yet.
    pub fn open(dir: &Path) -> anyhow::Result<Store> {
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "cannot create the data directory {}: set [storage] path to a writable directory",
                dir.display()
            )
        })?;
        let file = dir.join("sonde.db");
        let mut conn = Connection::open(&file)
            .with_context(|| format!("cannot open the database {}", file.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate::apply(&mut conn)
            .with_context(|| format!("cannot migrate the database {}", file.display()))?;
        Ok(Store {
            conn,
            series_ids: HashMap::new(),
            samples_appended: 0,
        })
    }

    /// Persists a batch in one transaction: all of it or, on error, none.
    pub fn append(&mut self, samples: &[Sample]) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut find = tx.prepare_cached("SELECT id FROM series WHERE labels = ?1")?;
            let mut create =
                tx.prepare_cached("INSERT INTO series (name, labels) VALUES (?1, ?2)")?;
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO samples (series_id, ts, value) VALUES (?1, ?2, ?3)",
            )?;
            for sample in samples {
                let id = match self.series_ids.get(&sample.labels) {
                    Some(&id) => id,
                    None => {
                        let encoded = encode_labels(&sample.labels);
                        let id = match find.query_row([&encoded], |row| row.get(0)).optional()? {
                            Some(id) => id,
                            None => {
                                create.execute(params![sample.labels.metric_name(), encoded])?;
                                tx.last_insert_rowid()
                            }
                        };
                        self.series_ids.insert(sample.labels.clone(), id);
                        id
                    }
                };
                insert.execute(params![id, sample.timestamp_ms, sample.value])?;
            }
        }
        if let Err(err) = tx.commit() {
            // The cache may now name series the rollback removed.
            self.series_ids.clear();
            return Err(err.into());
        }
        self.samples_appended += samples.len() as u64;
        Ok(())
    }

    /// Every series all `matchers` select, with its samples in
    /// [start_ms, end_ms]; series without samples there are left out.
    pub fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> anyhow::Result<Vec<SeriesSamples>> {
        let by_name = matchers
            .iter()
            .find(|m| m.name == METRIC_NAME && m.op == crate::model::MatchOp::Equal);
        let mut candidates = match by_name {
            Some(m) => {
                let mut stmt = self
                    .conn
                    .prepare_cached("SELECT id, labels FROM series WHERE name = ?1")?;
                let rows = stmt.query_map([&m.value], |row| Ok((row.get(0)?, row.get(1)?)))?;
                rows.collect::<Result<Vec<(i64, String)>, _>>()?
            }
            None => {
                let mut stmt = self.conn.prepare_cached("SELECT id, labels FROM series")?;
                let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
                rows.collect::<Result<Vec<(i64, String)>, _>>()?
            }
        };
        candidates.sort_by(|a, b| a.1.cmp(&b.1));
        let mut samples_of = self.conn.prepare_cached(
            "SELECT ts, value FROM samples WHERE series_id = ?1 AND ts BETWEEN ?2 AND ?3 ORDER BY ts",
        )?;
        let mut selected = Vec::new();
        for (id, encoded) in candidates {
            let labels = decode_labels(&encoded)?;
            if !matchers.iter().all(|m| m.matches(&labels)) {
                continue;
            }
            let rows = samples_of.query_map(params![id, start_ms, end_ms], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?;
            let samples = rows.collect::<Result<Vec<(i64, f64)>, _>>()?;
            if !samples.is_empty() {
                selected.push(SeriesSamples { labels, samples });
            }
        }
        Ok(selected)
    }

    /// Samples persisted since open.
    pub fn samples_appended(&self) -> u64 {
        self.samples_appended
    }
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
mod tests {
    use super::*;

    fn sample(name: &str, job: &str, ts: i64, value: f64) -> Sample {
        Sample {
            labels: Labels::new([(METRIC_NAME, name), ("job", job)]),
            timestamp_ms: ts,
            value,
        }
    }

    #[test]
    fn samples_survive_reopen_and_select_by_matchers() {
        let dir = tempdir();
        {
            let mut store = Store::open(&dir).unwrap();
            store
                .append(&[sample("up", "a", 1000, 1.0), sample("up", "b", 1000, 0.0)])
                .unwrap();
            store.append(&[sample("up", "a", 2000, 1.0)]).unwrap();
        }
        let store = Store::open(&dir).unwrap();
        let picked = store
            .select(
                &[
                    Matcher::equal(METRIC_NAME, "up"),
                    Matcher::equal("job", "a"),
                ],
                0,
                5000,
            )
            .unwrap();
        assert_eq!(picked.len(), 1);
        assert_eq!(picked[0].samples, vec![(1000, 1.0), (2000, 1.0)]);
        let in_range = store
            .select(&[Matcher::equal(METRIC_NAME, "up")], 1500, 5000)
            .unwrap();
        assert_eq!(in_range.len(), 1, "series b has no sample after 1500");
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempdir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "sonde-store-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
}
