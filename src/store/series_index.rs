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
    pub fn get(&self, labels: &Labels) -> Option<&i64> {
        self.ids.get(labels)
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
