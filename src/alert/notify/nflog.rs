//! The notification log: per aggregation group and integration, which
//! alerts were last notified firing and resolved, and when. The dispatcher
//! asks it whether a flush has anything new to say, and it lives in
//! `notify_log` in sonde.db too, so a restart neither notifies again within
//! `repeat_interval` nor forgets what it told. Entries older than the
//! retention are deleted.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use rusqlite::params;

use crate::store::SideDatabase;

use super::notification::{fingerprint_hex, Fingerprint};

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub firing: BTreeSet<Fingerprint>,
    pub resolved: BTreeSet<Fingerprint>,
    pub sent_at_ms: i64,
}

/// (group key, receiver, integration)
type Key = (String, String, &'static str);

pub struct NotificationLog {
    db: SideDatabase,
    entries: HashMap<Key, Entry>,
}

impl NotificationLog {
    pub fn open(db_file: &Path) -> anyhow::Result<NotificationLog> {
        let db = super::connect(db_file)?;
        let mut entries = HashMap::new();
        db.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT group_key, receiver, integration, firing, resolved, sent_at_ms FROM notify_log",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let integration: String = row.get(2)?;
                let Some(kind) = ["webhook", "slack", "telegram", "email"]
                    .into_iter()
                    .find(|k| *k == integration)
                else {
                    continue;
                };
                let key = (row.get(0)?, row.get(1)?, kind);
                let entry = Entry {
                    firing: parse_set(&row.get::<_, String>(3)?),
                    resolved: parse_set(&row.get::<_, String>(4)?),
                    sent_at_ms: row.get(5)?,
                };
                entries.insert(key, entry);
            }
            Ok(())
        })?;
        Ok(NotificationLog { db, entries })
    }

    pub fn get(
        &self,
        group_key: &str,
        receiver: &str,
        integration: &'static str,
    ) -> Option<&Entry> {
        self.entries
            .get(&(group_key.to_string(), receiver.to_string(), integration))
    }

    /// Records a notification (written through to the database).
    pub fn log(
        &mut self,
        group_key: &str,
        receiver: &str,
        integration: &'static str,
        entry: Entry,
    ) -> anyhow::Result<()> {
        self.db.with(|conn| {
            conn.execute(
                "INSERT OR REPLACE INTO notify_log
                 (group_key, receiver, integration, firing, resolved, sent_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    group_key,
                    receiver,
                    integration,
                    format_set(&entry.firing),
                    format_set(&entry.resolved),
                    entry.sent_at_ms
                ],
            )?;
            Ok(())
        })?;
        self.entries.insert(
            (group_key.to_string(), receiver.to_string(), integration),
            entry,
        );
        Ok(())
    }

    /// Forgets entries older than `retention`.
    pub fn collect_garbage(&mut self, now_ms: i64, retention: Duration) -> anyhow::Result<()> {
        let cutoff = now_ms.saturating_sub(retention.as_millis() as i64);
        // The table holds what `entries` holds (and rows of integrations
        // no longer known, which go with the next expired entry): nothing
        // expired, no connection opened.
        if self.entries.values().all(|e| e.sent_at_ms >= cutoff) {
            return Ok(());
        }
        self.db.with(|conn| {
            conn.execute("DELETE FROM notify_log WHERE sent_at_ms < ?1", [cutoff])?;
            Ok(())
        })?;
        self.entries.retain(|_, e| e.sent_at_ms >= cutoff);
        Ok(())
    }
}

impl Entry {
    /// Alertmanager's dedup rule: whether a flush with these firing and
    /// resolved alerts must notify, given the last notification (if any).
    pub fn needs_update(
        last: Option<&Entry>,
        firing: &BTreeSet<Fingerprint>,
        resolved: &BTreeSet<Fingerprint>,
        send_resolved: bool,
        repeat: Duration,
        now_ms: i64,
    ) -> bool {
        let Some(last) = last else {
            // Never notified: only firing alerts are news.
            return !firing.is_empty();
        };
        if !firing.is_subset(&last.firing) {
            return true;
        }
        if firing.is_empty() {
            // Everything resolved: tell it (whatever send_resolved says,
            // so the log forgets the firing alerts), unless nothing was
            // told as firing either.
            return !last.firing.is_empty();
        }
        if send_resolved && !resolved.is_subset(&last.resolved) {
            return true;
        }
        last.sent_at_ms < now_ms - repeat.as_millis() as i64
    }
}

fn format_set(set: &BTreeSet<Fingerprint>) -> String {
    set.iter()
        .map(|fp| fingerprint_hex(*fp))
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_set(text: &str) -> BTreeSet<Fingerprint> {
    text.split(',')
        .filter_map(|hex| u64::from_str_radix(hex, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(fps: &[u64]) -> BTreeSet<u64> {
        fps.iter().copied().collect()
    }

    #[test]
    fn dedup_follows_alertmanager() {
        let repeat = Duration::from_secs(60);
        let now = 1_000_000;
        let needs = |last: Option<&Entry>, firing: &[u64], resolved: &[u64], send_resolved| {
            Entry::needs_update(
                last,
                &set(firing),
                &set(resolved),
                send_resolved,
                repeat,
                now,
            )
        };
        assert!(needs(None, &[1], &[], true));
        assert!(!needs(None, &[], &[1], true));
        let last = Entry {
            firing: set(&[1, 2]),
            resolved: set(&[]),
            sent_at_ms: now - 1000,
        };
        assert!(!needs(Some(&last), &[1, 2], &[], true), "nothing new");
        assert!(
            !needs(Some(&last), &[1], &[], false),
            "a subset is not news"
        );
        assert!(needs(Some(&last), &[1], &[2], true), "newly resolved, told");
        assert!(
            needs(Some(&last), &[1, 3], &[], false),
            "a new firing alert"
        );
        assert!(needs(Some(&last), &[], &[1, 2], false), "all resolved");
        let repeated = Entry {
            sent_at_ms: now - 60_000,
            ..last.clone()
        };
        assert!(
            !needs(Some(&repeated), &[1, 2], &[], false),
            "not yet before"
        );
        let old = Entry {
            sent_at_ms: now - 60_001,
            ..last
        };
        assert!(
            needs(Some(&old), &[1, 2], &[], false),
            "repeat interval passed"
        );
        let empty = Entry {
            firing: set(&[]),
            resolved: set(&[1]),
            sent_at_ms: now,
        };
        assert!(!needs(Some(&empty), &[], &[1, 2], true));
    }

    #[test]
    fn sets_round_trip() {
        let fps = set(&[1, u64::MAX]);
        assert_eq!(parse_set(&format_set(&fps)), fps);
        assert!(parse_set("").is_empty());
    }
}
