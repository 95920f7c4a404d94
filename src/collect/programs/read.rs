//! Reading a config's maps into metric families, as ebpf_exporter reads
//! them: every key's value is a u64 (a per-CPU map's summed over CPUs,
//! unless the metric's last label is `cpu`, which then gets one series per
//! CPU); keys whose labels decode alike are summed; a histogram's last
//! label is the bucket, and its `_sum` is the key after the last bucket.
//!
//! Invariants kept across rounds, per metric:
//! - The decoder cache holds at most [`MAX_CACHED_KEYS`] keys; when full it
//!   is emptied, so memory stays bounded and a long-lived key is decoded
//!   again at most once per fill.
//! - At most `max_series` label sets are shown (a histogram's without its
//!   bucket). A label set seen first keeps its place while its key stays in
//!   the map; one that does not fit is folded into a set whose every label
//!   is `other`, so sums over the metric stay right and the series stay
//!   bounded. A place is given back only when its label set is absent a
//!   whole round.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Context;
use libbpf_rs::{MapCore, MapFlags};

use super::config::{BucketType, Histogram, Label};
use super::decode::{self, Decoder};
use super::load::MetricMap;
use crate::collect::bpf::read_map;
use crate::model::Family;

/// Most keys a metric's decoder cache holds.
pub const MAX_CACHED_KEYS: usize = 65_536;

/// The value label sets beyond the series budget fold into.
pub const OTHER: &str = "other";

/// What one metric remembers between rounds.
#[derive(Default)]
pub struct MetricState {
    /// Key bytes → label values, or None when a decoder dropped the key.
    cache: HashMap<Vec<u8>, Option<Vec<String>>>,
    /// Label sets shown (see the module's invariants).
    shown: HashSet<Vec<String>>,
}

/// Decoder errors of a round, by decoder name.
pub type Errors = BTreeMap<&'static str, u64>;

/// Reads one metric's map into `(label values, value)` pairs, label sets
/// that decode alike summed.
pub fn values(
    map: &MetricMap,
    labels: &[Label],
    decoders: &[Vec<Decoder>],
    state: &mut MetricState,
    errors: &mut Errors,
) -> anyhow::Result<BTreeMap<Vec<String>, u64>> {
    let per_cpu = map.percpu && labels.last().is_some_and(|l| l.name == "cpu");
    let mut raw: Vec<(Vec<u8>, u64)> = Vec::new();
    if per_cpu {
        for key in map.handle.keys() {
            let Some(cpus) = map.handle.lookup_percpu(&key, MapFlags::ANY)? else {
                continue; // deleted while walking
            };
            // The key's bytes, then the CPU as a u16, as the labels say.
            let prefix = if map.single_slot { &[][..] } else { &key[..] };
            for (cpu, value) in cpus.iter().enumerate() {
                let mut field = prefix.to_vec();
                field.extend_from_slice(&u16::try_from(cpu)?.to_ne_bytes());
                raw.push((field, word(value)));
            }
        }
    } else {
        for entry in read_map(&map.handle, 1)? {
            if map.single_slot {
                // A key of no labels is slot 0 of an array; other slots
                // carry nothing the config names.
                if entry.key.iter().all(|&b| b == 0) {
                    raw.push((Vec::new(), entry.value[0]));
                }
            } else {
                raw.push((entry.key, entry.value[0]));
            }
        }
    }
    let mut summed: BTreeMap<Vec<String>, u64> = BTreeMap::new();
    for (key, value) in raw {
        add(&mut summed, key, value, labels, decoders, state, errors);
    }
    Ok(summed)
}

/// Adds `value` to the label set `key` decodes to in `sums` (through the
/// decoder cache); a key a decoder drops or fails on adds nothing, a
/// failure is counted in `errors`.
pub fn add(
    sums: &mut BTreeMap<Vec<String>, u64>,
    key: Vec<u8>,
    value: u64,
    labels: &[Label],
    decoders: &[Vec<Decoder>],
    state: &mut MetricState,
    errors: &mut Errors,
) {
    if !state.cache.contains_key(&key) {
        let decoded = match decode_key(&key, labels, decoders) {
            Ok(values) => Some(values),
            Err(None) => None,
            Err(Some(decoder)) => {
                // Not cached: the machine may name it next round.
                *errors.entry(decoder).or_default() += 1;
                return;
            }
        };
        if state.cache.len() >= MAX_CACHED_KEYS {
            state.cache.clear();
        }
        state.cache.insert(key.clone(), decoded);
    }
    let Some(Some(values)) = state.cache.get(&key) else {
        return;
    };
    // No clone of the labels when the set is already summed.
    match sums.get_mut(values) {
        Some(total) => *total = total.wrapping_add(value),
        None => {
            sums.insert(values.clone(), value);
        }
    }
}

fn word(value: &[u8]) -> u64 {
    value
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_ne_bytes)
}

/// The label values of one key; Err(None) when a decoder dropped it,
/// Err(Some(decoder)) when one failed.
fn decode_key(
    key: &[u8],
    labels: &[Label],
    decoders: &[Vec<Decoder>],
) -> Result<Vec<String>, Option<&'static str>> {
    let mut at = 0;
    let mut values = Vec::with_capacity(labels.len());
    for (label, chain) in labels.iter().zip(decoders) {
        let field = key.get(at..at + label.size).ok_or(Some("size"))?;
        at += label.width();
        match decode::chain(chain, field) {
            Ok(value) => values.push(String::from_utf8_lossy(&value).into_owned()),
            Err((None, _)) => return Err(None),
            Err((Some(decoder), why)) => {
                tracing::debug!("label {}: {decoder}: {why}", label.name);
                return Err(Some(decoder));
            }
        }
    }
    Ok(values)
}

/// Holds `sets` (label values → what they carry) to `max_series` label
/// sets: the ones beyond fold into an all-`other` set through `merge`.
pub fn fold<T>(
    sets: BTreeMap<Vec<String>, T>,
    state: &mut MetricState,
    max_series: usize,
    mut merge: impl FnMut(&mut T, T),
) -> BTreeMap<Vec<String>, T> {
    // Everything fits: no room is kept for `other`.
    let room = if sets.len() <= max_series {
        max_series
    } else {
        max_series.saturating_sub(1)
    };
    state.shown.retain(|shown| sets.contains_key(shown));
    if state.shown.len() > room {
        let mut shown: Vec<_> = state.shown.drain().collect();
        shown.sort();
        shown.truncate(room);
        state.shown.extend(shown);
    }
    let mut out = BTreeMap::new();
    let mut folded: Option<(Vec<String>, T)> = None;
    for (labels, value) in sets {
        let shown = state.shown.contains(&labels);
        if shown || state.shown.len() < room {
            if !shown {
                state.shown.insert(labels.clone());
            }
            out.insert(labels, value);
            continue;
        }
        match &mut folded {
            Some((_, total)) => merge(total, value),
            None => folded = Some((vec![OTHER.to_string(); labels.len()], value)),
        }
    }
    if let Some((labels, value)) = folded {
        match out.get_mut(&labels) {
            Some(total) => merge(total, value),
            None => {
                out.insert(labels, value);
            }
        }
    }
    out
}

/// Adds a counter's label sets to its family.
pub fn push_counter(family: &mut Family, labels: &[Label], sets: BTreeMap<Vec<String>, u64>) {
    for (values, value) in sets {
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|l| l.name.as_str())
            .zip(values.iter().map(String::as_str))
            .collect();
        family.push(&pairs, value as f64);
    }
}

/// Groups a histogram's keys by their labels but the last (the bucket):
/// bucket key → count per label set. A bucket that does not decode to an
/// integer is an error naming the metric.
pub fn buckets(
    histogram: &Histogram,
    sets: BTreeMap<Vec<String>, u64>,
) -> anyhow::Result<BTreeMap<Vec<String>, BTreeMap<u64, u64>>> {
    let mut grouped: BTreeMap<Vec<String>, BTreeMap<u64, u64>> = BTreeMap::new();
    for (mut values, count) in sets {
        let bucket = values.pop().unwrap_or_default();
        let bucket: u64 = bucket.parse().with_context(|| {
            format!(
                "histogram {}: bucket {bucket:?} is not an integer: the last label must decode with uint",
                histogram.name
            )
        })?;
        *grouped
            .entry(values)
            .or_default()
            .entry(bucket)
            .or_default() += count;
    }
    Ok(grouped)
}

/// Adds one label set's buckets to a histogram family: every bucket of the
/// config's range (missing ones count 0), cumulative, `+Inf` their count,
/// `_sum` the key after the last bucket times the multiplier.
pub fn push_histogram(
    family: &mut Family,
    histogram: &Histogram,
    values: &[String],
    counts: &BTreeMap<u64, u64>,
) {
    let multiplier = if histogram.bucket_multiplier == 0.0 {
        1.0
    } else {
        histogram.bucket_multiplier
    };
    let count_at = |key: f64| {
        if key < 0.0 {
            0
        } else {
            counts.get(&(key as u64)).copied().unwrap_or(0)
        }
    };
    let (keys, sum_key): (Vec<(f64, f64)>, f64) = match histogram.bucket_type {
        BucketType::Fixed => {
            let keys = &histogram.bucket_keys;
            let last = keys.last().copied().unwrap_or(0.0);
            (
                keys.iter().map(|&k| (k, k * multiplier)).collect(),
                last + 1.0,
            )
        }
        kind => {
            let range = histogram.bucket_min..=histogram.bucket_max;
            let bound = |k: i64| match kind {
                BucketType::Exp2 => (k as f64).exp2(),
                BucketType::Exp2zero if k == 0 => 0.0,
                BucketType::Exp2zero => ((k - 1) as f64).exp2(),
                _ => k as f64,
            };
            let keys = range.map(|k| (k as f64, bound(k) * multiplier)).collect();
            (keys, (histogram.bucket_max + 1) as f64)
        }
    };
    let mut cumulative = 0;
    let buckets: Vec<(f64, u64)> = keys
        .iter()
        .map(|&(key, le)| {
            cumulative += count_at(key);
            (le, cumulative)
        })
        .collect();
    let pairs: Vec<(&str, &str)> = histogram
        .labels
        .iter()
        .map(|l| l.name.as_str())
        .zip(values.iter().map(String::as_str))
        .collect();
    let sum = count_at(sum_key) as f64 * multiplier;
    family.push_histogram(&pairs, buckets, sum, cumulative);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(yaml: &str) -> Histogram {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn series(family: &Family, name: &str, le: Option<&str>) -> f64 {
        family
            .series
            .iter()
            .find(|s| s.labels.metric_name() == name && s.labels.get("le") == le)
            .map(|s| s.value)
            .unwrap()
    }

    #[test]
    fn exp2_buckets_are_cumulative_with_the_sum_after_the_last() {
        let h = histogram("{name: h, help: x, bucket_type: exp2, bucket_min: 0, bucket_max: 3, bucket_multiplier: 0.5, labels: [{name: b, size: 8, decoders: [{name: uint}]}]}");
        let counts = BTreeMap::from([(0, 1), (2, 3), (3, 1), (4, 40), (9, 7)]);
        let mut family = Family::histogram("h", "x");
        push_histogram(&mut family, &h, &[], &counts);
        assert_eq!(series(&family, "h_bucket", Some("0.5")), 1.0);
        assert_eq!(series(&family, "h_bucket", Some("1")), 1.0);
        assert_eq!(series(&family, "h_bucket", Some("2")), 4.0);
        assert_eq!(series(&family, "h_bucket", Some("4")), 5.0);
        assert_eq!(series(&family, "h_bucket", Some("+Inf")), 5.0);
        assert_eq!(series(&family, "h_count", None), 5.0);
        assert_eq!(series(&family, "h_sum", None), 20.0);
    }

    #[test]
    fn exp2zero_linear_and_fixed_bounds() {
        let bounds = |yaml: &str| {
            let mut family = Family::histogram("h", "x");
            push_histogram(&mut family, &histogram(yaml), &[], &BTreeMap::new());
            family
                .series
                .iter()
                .filter_map(|s| s.labels.get("le").map(String::from))
                .collect::<Vec<_>>()
        };
        let labels = "labels: [{name: b, size: 8, decoders: [{name: uint}]}]";
        assert_eq!(
            bounds(&format!(
                "{{name: h, help: x, bucket_type: exp2zero, bucket_max: 3, {labels}}}"
            )),
            ["0", "1", "2", "4", "+Inf"]
        );
        assert_eq!(
            bounds(&format!("{{name: h, help: x, bucket_type: linear, bucket_min: 1, bucket_max: 3, bucket_multiplier: 10, {labels}}}")),
            ["10", "20", "30", "+Inf"]
        );
        assert_eq!(
            bounds(&format!(
                "{{name: h, help: x, bucket_type: fixed, bucket_keys: [5, 50], {labels}}}"
            )),
            ["5", "50", "+Inf"]
        );
    }

    #[test]
    fn label_sets_beyond_the_budget_fold_into_other() {
        let mut state = MetricState::default();
        let sets = |names: &[&str]| -> BTreeMap<Vec<String>, u64> {
            names.iter().map(|n| (vec![n.to_string()], 1)).collect()
        };
        let out = fold(sets(&["a", "b", "c"]), &mut state, 3, |t, v| *t += v);
        assert_eq!(out.len(), 3, "everything fits: no other");
        let out = fold(sets(&["a", "b", "c", "d"]), &mut state, 3, |t, v| *t += v);
        assert_eq!(out.len(), 3);
        assert_eq!(out[&vec![OTHER.to_string()]], 2);
        // a and b keep their places while present; c and d stay folded.
        let out = fold(sets(&["c", "d", "a", "b"]), &mut state, 3, |t, v| *t += v);
        assert!(out.contains_key(&vec!["a".to_string()]));
        assert_eq!(out[&vec![OTHER.to_string()]], 2);
    }
}
