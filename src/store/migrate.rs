//! Schema migrations: the SQL files in `migrations/`, applied in order once
//! each. `PRAGMA user_version` records how many have been applied, so a
//! migration never runs twice and a newer database is refused by an older
//! sonde instead of being misread.

use anyhow::bail;
use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_store_v0.sql"),
    include_str!("../../migrations/0002_chunks.sql"),
    include_str!("../../migrations/0003_remote_write_queue.sql"),
    include_str!("../../migrations/0004_chunks_in_rowid_tables.sql"),
    include_str!("../../migrations/0005_chunk_runs.sql"),
    include_str!("../../migrations/0006_remote_write_in_flight.sql"),
    include_str!("../../migrations/0007_alerting.sql"),
    include_str!("../../migrations/0008_alert_state.sql"),
    include_str!("../../migrations/0009_packed_chunks.sql"),
    include_str!("../../migrations/0010_rollup_second_moment.sql"),
];

pub fn apply(conn: &mut Connection) -> anyhow::Result<()> {
    let applied: usize = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if applied > MIGRATIONS.len() {
        bail!(
            "the database was written by a newer sonde (schema {applied}, this one knows {}): upgrade sonde",
            MIGRATIONS.len()
        );
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
    }
    Ok(())
}
