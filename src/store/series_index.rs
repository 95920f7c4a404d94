//! Every series the store knows, both ways: label set → id for every
//! appended sample, id → label set for every selection, so reading the
//! series a query selects costs no disk read and no decoding.
//!
//! Invariants: the two maps hold the same pairs; a label set is stored once
//! (its one block shared by both maps: a `Labels` clone shares it, so a
//! lookup goes from the map's slot straight to the label bytes); it mirrors
//! the `series` table plus the series created since the last write.

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
    /// The id of `labels`, with the index's own copy of them.
    pub fn get(&self, labels: &Labels) -> Option<(&Labels, i64)> {
        self.ids
            .get_key_value(labels)
            .map(|(labels, &id)| (labels, id))
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

/// The series of the last batch by position in it, so the next batch finds
/// each id by comparing one label set instead of hashing it and probing the
/// index: a collection round lists its series in the same order as the
/// round before, but in new label sets, so the index hashed every label
/// byte and compared them anyway (a fifth of the ingest thread).
///
/// Invariant: an entry pairs a label set with the id it had when the entry
/// was written, and holds the index's own block (no copy of a round's
/// labels is kept alive). Ids are never reused and a series in the head is
/// never dropped from the index, so while an entry's id is in the head it
/// is still its label set's id; the caller checks that before using it.
#[derive(Default)]
pub struct LastBatch {
    entries: Vec<Option<(Labels, i64)>>,
}

impl LastBatch {
    /// The id the series at `position` had, if `labels` were there.
    pub fn get(&self, position: usize, labels: &Labels) -> Option<i64> {
        match self.entries.get(position) {
            Some(Some((last, id))) if last == labels => Some(*id),
            _ => None,
        }
    }

    /// `position` holds series `id` of `labels` (the index's block). At
    /// most `limit` positions are kept, so a huge remote-write batch does
    /// not leave a table of its size behind.
    pub fn set(&mut self, position: usize, labels: &Labels, id: i64, limit: usize) {
        if position >= limit {
            return;
        }
        if position >= self.entries.len() {
            self.entries.resize(position + 1, None);
        }
        self.entries[position] = Some((labels.clone(), id));
    }
}
