//! Every series the store knows, both ways: label set → id for every
//! appended sample, id → label set for every selection, so reading the
//! series a query selects costs no disk read and no decoding.
//!
//! Invariants: the two maps hold the same pairs; a label set is stored once
//! (its one block shared by both maps: a `Labels` clone shares it, so a
//! lookup goes from the map's slot straight to the label bytes); it mirrors
//! the `series` table plus the series created since the last write.
//!
//! [`LastBatch`] keeps the last batch's ids in order, which a collection
//! round repeats, so most samples find their id without the label map.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::ops::Index;

use super::IdHasher;
use crate::model::Labels;

#[derive(Default)]
pub struct SeriesIndex {
    /// Looked up for every sample: foldhash is several times faster than
    /// SipHash on label sets and still seeded per process, so label sets
    /// sent through remote write cannot be chosen to collide.
    ids: HashMap<Labels, i64, foldhash::fast::RandomState>,
    labels: HashMap<i64, Labels, BuildHasherDefault<IdHasher>>,
}

impl SeriesIndex {
    pub fn get(&self, labels: &Labels) -> Option<i64> {
        self.ids.get(labels).copied()
    }

    /// The label set of series `id`.
    pub fn labels(&self, id: i64) -> Option<&Labels> {
        self.labels.get(&id)
    }

    /// Adds a series; a label set known under another id now maps to `id`
    /// (the other id keeps its label set until removed).
    pub fn insert(&mut self, labels: Labels, id: i64) {
        self.ids.insert(labels.clone(), id);
        self.labels.insert(id, labels);
    }

    /// Forgets series `id`.
    pub fn remove(&mut self, id: i64) {
        if let Some(labels) = self.labels.remove(&id) {
            if self.ids.get(&labels) == Some(&id) {
                self.ids.remove(&labels);
            }
        }
    }

    pub fn values(&self) -> impl Iterator<Item = &i64> {
        self.labels.keys()
    }

    /// (id, label set) of every series.
    pub fn iter(&self) -> impl Iterator<Item = (&i64, &Labels)> {
        self.labels.iter()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.labels.len()
    }
}

impl Index<&Labels> for SeriesIndex {
    type Output = i64;

    fn index(&self, labels: &Labels) -> &i64 {
        &self.ids[labels]
    }
}

/// The series of the last batch in order, so the next batch finds each id
/// by comparing one label set instead of hashing it and probing the index:
/// a collection round lists its series in the order of the round before,
/// in new label sets, so the index hashed every label byte and compared
/// them anyway (a fifth of the ingest thread at a 1 s interval).
///
/// Invariant: `last` holds only ids the index gave for their label sets
/// (through [`LastBatch::admitted`]); ids are never reused, and a series in
/// the head is never dropped from the index, so while such an id's label
/// set is the sample's and it is in the head, it is the sample's series.
/// The caller checks the head; [`LastBatch::expected`] checks the labels.
#[derive(Default)]
pub struct LastBatch {
    last: Vec<i64>,
    /// This batch's ids so far.
    next: Vec<i64>,
    /// Where in `last` this batch's next sample is expected.
    cursor: usize,
}

/// How far ahead a series a batch lacks is looked for: a collector's
/// series that went away (a process gone, a histogram bucket not hit)
/// shift the rest of the round, and the next sample found again puts the
/// cursor back in step.
const LOOK_AHEAD: usize = 64;

impl LastBatch {
    /// The id of the series at the cursor, if `labels` are its.
    pub fn expected(&self, index: &SeriesIndex, labels: &Labels) -> Option<i64> {
        let id = *self.last.get(self.cursor)?;
        (index.labels(id)? == labels).then_some(id)
    }

    /// The sample looked at last is of series `id`. At most `limit` ids
    /// are kept, so a huge remote-write batch leaves no table of its size.
    pub fn admitted(&mut self, id: i64, limit: usize) {
        let ahead = self.last.get(self.cursor..).unwrap_or_default();
        // Not found: a series the last batch lacked; the cursor stays.
        if let Some(skip) = ahead.iter().take(LOOK_AHEAD).position(|&x| x == id) {
            self.cursor += skip + 1;
        }
        if self.next.len() < limit {
            self.next.push(id);
        }
    }

    /// The batch is over: it is the last one now.
    pub fn end(&mut self) {
        std::mem::swap(&mut self.last, &mut self.next);
        self.next.clear();
        self.cursor = 0;
    }
}
