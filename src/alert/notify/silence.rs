//! Silences: matchers that mute the alerts they all match between a start
//! and an end, created, updated and expired over Alertmanager's API v2
//! (`/api/v2/silences`), so amtool and Grafana manage them as they manage
//! Alertmanager's. Every change is written to `notify_silences` in sonde.db
//! before it is answered, and the table is read back at start: silences
//! survive restarts.
//!
//! As Alertmanager:
//! - A silence is pending before its start, active until its end, then
//!   expired; an expired silence is kept `retention` past its end (for the
//!   record), then deleted.
//! - Posting with the id of a silence updates it in place when only its
//!   end moves (or, pending, its start); otherwise the old silence is
//!   expired and a new one, with a new id, replaces it.
//! - A start in the past becomes now: no silence starts before it was made.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use rusqlite::params;

use crate::store::SideDatabase;
use serde::{Deserialize, Serialize};

use super::matcher;
use super::notification::{parse_rfc3339, rfc3339_millis};
use crate::model::{Labels, MatchOp, Matcher};

/// A matcher as API v2 writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl SilenceMatcher {
    fn compile(&self) -> Result<Matcher, String> {
        if !matcher::is_label_name(&self.name) {
            return Err(format!("invalid label name {:?}", self.name));
        }
        let op = match (self.is_regex, self.is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        };
        Matcher::new(op, &self.name, &self.value)
            .map_err(|err| format!("invalid regular expression {:?}: {err}", self.value))
    }
}

/// A silence as `POST /api/v2/silences` takes it (`postableSilence`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableSilence {
    #[serde(default)]
    pub id: Option<String>,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: String,
    pub ends_at: String,
    pub created_by: String,
    pub comment: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<SilenceMatcher>,
    compiled: Vec<Matcher>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub updated_at_ms: i64,
    pub created_by: String,
    pub comment: String,
}

impl Silence {
    pub fn state(&self, now_ms: i64) -> SilenceState {
        if now_ms < self.starts_at_ms {
            SilenceState::Pending
        } else if now_ms < self.ends_at_ms {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        matcher::all_match(&self.compiled, labels)
    }

    /// The silence as `GET /api/v2/silence/{id}` shows it
    /// (`gettableSilence`).
    pub fn to_json(&self, now_ms: i64) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "status": { "state": self.state(now_ms).as_str() },
            "updatedAt": rfc3339_millis(self.updated_at_ms),
            "matchers": self.matchers,
            "startsAt": rfc3339_millis(self.starts_at_ms),
            "endsAt": rfc3339_millis(self.ends_at_ms),
            "createdBy": self.created_by,
            "comment": self.comment,
        })
    }

    /// Whether the API's `filter` finds this silence: each filter matcher
    /// must be one of the silence's own (same name, operator and value),
    /// as Alertmanager 0.25 filters.
    pub fn matches_filter(&self, filter: &[Matcher]) -> bool {
        filter.iter().all(|f| {
            self.compiled
                .iter()
                .any(|m| m.name == f.name && m.op == f.op && m.value == f.value)
        })
    }
}

/// Why a silence could not be set or expired.
#[derive(Debug, PartialEq)]
pub enum SilenceError {
    NotFound,
    /// The request is wrong; the message says how (a 400).
    Invalid(String),
    /// The database refused the change (a 500).
    Storage(String),
}

impl std::fmt::Display for SilenceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SilenceError::NotFound => f.write_str("silence not found"),
            SilenceError::Invalid(message) | SilenceError::Storage(message) => f.write_str(message),
        }
    }
}

/// Every silence, in memory and in `notify_silences`.
pub struct Silences {
    inner: Mutex<Stored>,
    retention: Mutex<Duration>,
}

struct Stored {
    db: SideDatabase,
    by_id: BTreeMap<String, Silence>,
}

impl Silences {
    /// Reads the silences of the (migrated) database `db_file`.
    pub fn open(db_file: &Path, retention: Duration) -> anyhow::Result<Silences> {
        let db = super::connect(db_file)?;
        let mut by_id = BTreeMap::new();
        db.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, matchers, starts_at_ms, ends_at_ms, updated_at_ms, created_by, comment
                 FROM notify_silences",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let id: String = row.get(0)?;
                let text: String = row.get(1)?;
                let matchers: Vec<SilenceMatcher> = serde_json::from_str(&text)
                    .with_context(|| format!("silence {id}: unreadable matchers"))?;
                let compiled =
                    compile_all(&matchers).map_err(|err| anyhow::anyhow!("silence {id}: {err}"))?;
                let silence = Silence {
                    id: id.clone(),
                    matchers,
                    compiled,
                    starts_at_ms: row.get(2)?,
                    ends_at_ms: row.get(3)?,
                    updated_at_ms: row.get(4)?,
                    created_by: row.get(5)?,
                    comment: row.get(6)?,
                };
                by_id.insert(id, silence);
            }
            Ok(())
        })?;
        Ok(Silences {
            inner: Mutex::new(Stored { db, by_id }),
            retention: Mutex::new(retention),
        })
    }

    pub fn set_retention(&self, retention: Duration) {
        *self.retention.lock().expect("lock poisoned") = retention;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Stored> {
        self.inner.lock().expect("lock poisoned")
    }

    pub fn get(&self, id: &str) -> Option<Silence> {
        self.lock().by_id.get(id).cloned()
    }

    /// Every silence: active ones first (soonest end first), then pending
    /// (soonest start first), then expired (latest end first), as
    /// Alertmanager lists them.
    pub fn list(&self, now_ms: i64) -> Vec<Silence> {
        let mut all: Vec<Silence> = self.lock().by_id.values().cloned().collect();
        all.sort_by_key(|s| match s.state(now_ms) {
            SilenceState::Active => (0, s.ends_at_ms),
            SilenceState::Pending => (1, s.starts_at_ms),
            SilenceState::Expired => (2, -s.ends_at_ms),
        });
        all
    }

    /// The ids of the active silences that match `labels`.
    pub fn silenced_by(&self, labels: &Labels, now_ms: i64) -> Vec<String> {
        self.lock()
            .by_id
            .values()
            .filter(|s| s.state(now_ms) == SilenceState::Active && s.matches(labels))
            .map(|s| s.id.clone())
            .collect()
    }

    /// How many silences are in each state.
    pub fn count_by_state(&self, now_ms: i64) -> [(SilenceState, usize); 3] {
        let mut counts = [
            (SilenceState::Active, 0),
            (SilenceState::Pending, 0),
            (SilenceState::Expired, 0),
        ];
        for silence in self.lock().by_id.values() {
            let state = silence.state(now_ms);
            if let Some((_, n)) = counts.iter_mut().find(|(s, _)| *s == state) {
                *n += 1;
            }
        }
        counts
    }

    /// Creates or updates a silence; returns its id (a new one when an
    /// update had to replace it).
    pub fn set(&self, posted: PostableSilence, now_ms: i64) -> Result<String, SilenceError> {
        let invalid = |message: String| SilenceError::Invalid(message);
        if posted.matchers.is_empty() {
            return Err(invalid("at least one matcher required".into()));
        }
        let compiled = compile_all(&posted.matchers).map_err(invalid)?;
        if compiled.iter().all(|m| m.matches_value("")) {
            return Err(invalid(
                "at least one matcher must not match the empty string".into(),
            ));
        }
        let time = |name: &str, text: &str| {
            parse_rfc3339(text).ok_or_else(|| {
                invalid(format!(
                    "{name}: expected an RFC 3339 time such as 2024-01-02T15:04:05Z, got {text:?}"
                ))
            })
        };
        let starts_at_ms = time("startsAt", &posted.starts_at)?;
        let ends_at_ms = time("endsAt", &posted.ends_at)?;
        if ends_at_ms <= starts_at_ms {
            return Err(invalid("start time must be before end time".into()));
        }
        if ends_at_ms <= now_ms {
            return Err(invalid("end time can't be in the past".into()));
        }
        if posted.created_by.trim().is_empty() {
            return Err(invalid(
                "createdBy: expected who creates the silence".into(),
            ));
        }
        if posted.comment.trim().is_empty() {
            return Err(invalid(
                "comment: expected why the silence is needed".into(),
            ));
        }
        let mut silence = Silence {
            id: String::new(),
            matchers: posted.matchers,
            compiled,
            starts_at_ms,
            ends_at_ms,
            updated_at_ms: now_ms,
            created_by: posted.created_by,
            comment: posted.comment,
        };
        let mut stored = self.lock();
        let id = posted.id.filter(|id| !id.is_empty());
        if let Some(id) = id {
            let previous = stored.by_id.get(&id).ok_or(SilenceError::NotFound)?.clone();
            if can_update(&previous, &silence, now_ms) {
                silence.id = id;
                stored.save(silence.clone())?;
                return Ok(silence.id);
            }
            if previous.state(now_ms) != SilenceState::Expired {
                stored.save(expired(previous, now_ms))?;
            }
        }
        silence.id = new_id();
        silence.starts_at_ms = silence.starts_at_ms.max(now_ms);
        stored.save(silence.clone())?;
        Ok(silence.id)
    }

    /// Ends a silence now (`DELETE /api/v2/silence/{id}`).
    pub fn expire(&self, id: &str, now_ms: i64) -> Result<(), SilenceError> {
        let mut stored = self.lock();
        let silence = stored.by_id.get(id).ok_or(SilenceError::NotFound)?.clone();
        if silence.state(now_ms) == SilenceState::Expired {
            return Err(SilenceError::Invalid(format!(
                "silence {id} already expired"
            )));
        }
        stored.save(expired(silence, now_ms))
    }

    /// Deletes the silences expired longer than the retention ago.
    pub fn collect_garbage(&self, now_ms: i64) -> anyhow::Result<()> {
        let retention = *self.retention.lock().expect("lock poisoned");
        let cutoff = now_ms.saturating_sub(retention.as_millis() as i64);
        let mut stored = self.lock();
        // The table holds what `by_id` holds: nothing expired, no
        // connection opened.
        if stored.by_id.values().all(|s| s.ends_at_ms >= cutoff) {
            return Ok(());
        }
        stored.db.with(|conn| {
            conn.execute(
                "DELETE FROM notify_silences WHERE ends_at_ms < ?1",
                [cutoff],
            )?;
            Ok(())
        })?;
        stored.by_id.retain(|_, s| s.ends_at_ms >= cutoff);
        Ok(())
    }
}

impl Stored {
    fn save(&mut self, silence: Silence) -> Result<(), SilenceError> {
        let matchers = serde_json::to_string(&silence.matchers).expect("matchers serialize");
        self.db
            .with(|conn| {
                conn.execute(
                    "INSERT OR REPLACE INTO notify_silences
                     (id, matchers, starts_at_ms, ends_at_ms, updated_at_ms, created_by, comment)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        silence.id,
                        matchers,
                        silence.starts_at_ms,
                        silence.ends_at_ms,
                        silence.updated_at_ms,
                        silence.created_by,
                        silence.comment
                    ],
                )?;
                Ok(())
            })
            .map_err(|err| SilenceError::Storage(format!("cannot store the silence: {err:#}")))?;
        self.by_id.insert(silence.id.clone(), silence);
        Ok(())
    }
}

fn compile_all(matchers: &[SilenceMatcher]) -> Result<Vec<Matcher>, String> {
    matchers.iter().map(SilenceMatcher::compile).collect()
}

/// Whether `next` may replace `previous` under the same id: same matchers,
/// and only the times that have not passed yet move.
fn can_update(previous: &Silence, next: &Silence, now_ms: i64) -> bool {
    if previous.matchers != next.matchers {
        return false;
    }
    match previous.state(now_ms) {
        SilenceState::Active => {
            next.starts_at_ms == previous.starts_at_ms && next.ends_at_ms >= now_ms
        }
        SilenceState::Pending => next.starts_at_ms >= now_ms,
        SilenceState::Expired => false,
    }
}

/// The silence ended now (a pending one also starts now, so it never was).
fn expired(mut silence: Silence, now_ms: i64) -> Silence {
    if silence.state(now_ms) == SilenceState::Pending {
        silence.starts_at_ms = now_ms;
    }
    silence.ends_at_ms = now_ms;
    silence.updated_at_ms = now_ms;
    silence
}

/// A random (version 4) UUID, as Alertmanager names silences.
fn new_id() -> String {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        // SAFETY: the pointer and length describe the unfilled part of
        // `bytes`, which outlives the call.
        let n = unsafe {
            libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0)
        };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            // No kernel randomness: the clock still makes ids unique here.
            let nanos = crate::collect::since_epoch().as_nanos().to_le_bytes();
            bytes.copy_from_slice(&nanos);
            break;
        }
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn silences() -> (crate::store::Store, std::path::PathBuf, Silences) {
        let dir =
            std::env::temp_dir().join(format!("sonde-silence-{}-{}", std::process::id(), new_id()));
        let store = crate::store::Store::open(&dir).unwrap();
        let db = dir.join("sonde.db");
        let silences = Silences::open(&db, Duration::from_secs(3600)).unwrap();
        (store, dir, silences)
    }

    fn posted(id: Option<&str>, starts: i64, ends: i64) -> PostableSilence {
        PostableSilence {
            id: id.map(str::to_string),
            matchers: vec![SilenceMatcher {
                name: "alertname".into(),
                value: "Down".into(),
                is_regex: false,
                is_equal: true,
            }],
            starts_at: rfc3339_millis(starts),
            ends_at: rfc3339_millis(ends),
            created_by: "me".into(),
            comment: "maintenance".into(),
        }
    }

    #[test]
    fn set_update_expire_and_reload() {
        let (_store, dir, silences) = silences();
        let id = silences
            .set(posted(None, NOW - 1000, NOW + 60_000), NOW)
            .unwrap();
        let silence = silences.get(&id).unwrap();
        assert_eq!(silence.starts_at_ms, NOW, "a start in the past becomes now");
        assert_eq!(silence.state(NOW), SilenceState::Active);
        let down = Labels::new([("alertname", "Down")]);
        assert_eq!(silences.silenced_by(&down, NOW), std::slice::from_ref(&id));
        let filter = |text: &str| [matcher::parse(text).unwrap()];
        assert!(silence.matches_filter(&filter(r#"alertname="Down""#)));
        assert!(!silence.matches_filter(&filter(r#"alertname=~"Down""#)));
        assert!(!silence.matches_filter(&filter(r#"job="Down""#)));

        // Only the end moves: updated in place.
        let same = silences
            .set(posted(Some(&id), NOW, NOW + 120_000), NOW)
            .unwrap();
        assert_eq!(same, id);
        // The start of an active silence moves: replaced.
        let replaced = silences
            .set(posted(Some(&id), NOW + 5000, NOW + 120_000), NOW)
            .unwrap();
        assert_ne!(replaced, id);
        assert_eq!(silences.get(&id).unwrap().state(NOW), SilenceState::Expired);
        assert_eq!(
            silences.get(&replaced).unwrap().state(NOW),
            SilenceState::Pending
        );

        assert_eq!(silences.expire("nope", NOW), Err(SilenceError::NotFound));
        silences.expire(&replaced, NOW).unwrap();
        assert!(silences.expire(&replaced, NOW).is_err());

        let reopened = Silences::open(&dir.join("sonde.db"), Duration::from_secs(3600)).unwrap();
        assert_eq!(reopened.list(NOW).len(), 2);
        reopened.collect_garbage(NOW + 2 * 3600 * 1000).unwrap();
        assert!(reopened.list(NOW).is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bad_silences_are_refused_with_a_reason() {
        let (_store, dir, silences) = silences();
        let refuse = |silence: PostableSilence| match silences.set(silence, NOW) {
            Err(SilenceError::Invalid(message)) => message,
            other => panic!("{other:?}"),
        };
        assert!(refuse(posted(None, NOW + 10, NOW)).contains("before end"));
        assert!(refuse(posted(None, NOW - 10, NOW - 5)).contains("in the past"));
        let mut empty = posted(None, NOW, NOW + 10);
        empty.matchers[0].value = String::new();
        assert!(refuse(empty).contains("empty string"));
        let mut regex = posted(None, NOW, NOW + 10);
        regex.matchers[0].is_regex = true;
        regex.matchers[0].value = "(".into();
        assert!(refuse(regex).contains("regular expression"));
        let mut time = posted(None, NOW, NOW + 10);
        time.starts_at = "soon".into();
        assert!(refuse(time).contains("startsAt"));
        assert_eq!(
            silences.set(posted(Some("gone"), NOW, NOW + 10), NOW),
            Err(SilenceError::NotFound)
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn ids_are_version_4_uuids() {
        let id = new_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, new_id());
    }
}
