//! The cardinality budget: at most a configured number of series per metric
//! (`[collect] max_series_per_metric`, default 500). Per-process metrics grow
//! a series for every process name and place (`comm`, `unit`, `container`);
//! beyond the budget the smallest of these contributors are folded into one
//! `comm="other"` series per remaining label set, their values summed, so
//! totals stay right and storage stays bounded.
//!
//! Folding is sticky: a contributor once folded stays in `other` and one once
//! kept stays kept while it reports, so `other` and the kept series only grow
//! like the counters they are (a contributor moving between them would read as
//! a counter reset). Both sets are forgotten for contributors that stop
//! reporting, so the state is bounded by what one round reports.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::model::{Family, Labels, Series};

/// Default series per metric.
pub const DEFAULT_MAX_SERIES: usize = 500;

/// The labels that say who contributed a series; folding replaces them.
const CONTRIBUTOR_LABELS: [&str; 3] = ["comm", "unit", "container"];

/// The `comm` folded contributors are summed under.
pub const OTHER: &str = "other";

/// A contributor: its `comm`, `unit` and `container` values.
type Contributor = [Option<String>; 3];

#[derive(Default)]
struct FamilyState {
    kept: HashSet<Contributor>,
    folded: HashSet<Contributor>,
}

/// Applies the budget to each round's families, remembering who was kept and
/// who was folded per metric.
pub struct Budget {
    max_series: usize,
    families: HashMap<String, FamilyState>,
}

impl Budget {
    pub fn new(max_series: usize) -> Budget {
        Budget {
            max_series,
            families: HashMap::new(),
        }
    }

    /// Folds `family`'s smallest contributors into `comm="other"` if it has
    /// more series than the budget. Series without a `comm` label (node
    /// metrics, whole-machine histograms) are never folded.
    pub fn apply(&mut self, family: &mut Family) {
        let contributors = contributions(&family.series);
        if contributors.is_empty() {
            return;
        }
        let state = self.families.entry(family.name.clone()).or_default();
        let present: HashSet<&Contributor> = contributors.keys().collect();
        state.kept.retain(|c| present.contains(c));
        state.folded.retain(|c| present.contains(c));

        let total: usize = family.series.len();
        if state.folded.is_empty() && total <= self.max_series {
            state.kept.extend(contributors.into_keys());
            return;
        }
        // Room for `other`: at most one series per label set left once the
        // contributor labels are replaced.
        let other_series: HashSet<Labels> = family
            .series
            .iter()
            .filter(|s| s.labels.get("comm").is_some())
            .map(|s| folded_labels(&s.labels))
            .collect();
        let unattributed = total - contributors.values().map(|c| c.series).sum::<usize>();
        let mut room = self
            .max_series
            .saturating_sub(other_series.len() + unattributed);
        // Kept ones first (biggest first), then newcomers (biggest first);
        // folded ones stay folded.
        let mut order: Vec<(&Contributor, &Contribution)> = contributors
            .iter()
            .filter(|(c, _)| !state.folded.contains(*c))
            .collect();
        order.sort_by(|(a, x), (b, y)| {
            state
                .kept
                .contains(*b)
                .cmp(&state.kept.contains(*a))
                .then(y.total.total_cmp(&x.total))
                .then(a.cmp(b))
        });
        let mut kept = HashSet::new();
        for (contributor, contribution) in order {
            if contribution.series <= room {
                room -= contribution.series;
                kept.insert(contributor.clone());
            } else {
                state.folded.insert(contributor.clone());
            }
        }
        state.kept = kept;
        fold(family, &state.kept);
    }
}

struct Contribution {
    series: usize,
    total: f64,
}

fn contributor(labels: &Labels) -> Option<Contributor> {
    labels.get("comm")?;
    Some(CONTRIBUTOR_LABELS.map(|name| labels.get(name).map(str::to_string)))
}

fn contributions(series: &[Series]) -> HashMap<Contributor, Contribution> {
    let mut out: HashMap<Contributor, Contribution> = HashMap::new();
    for s in series {
        if let Some(c) = contributor(&s.labels) {
            let entry = out.entry(c).or_insert(Contribution {
                series: 0,
                total: 0.0,
            });
            entry.series += 1;
            entry.total += s.value;
        }
    }
    out
}

/// A series' labels once folded: contributor labels replaced by `comm="other"`.
fn folded_labels(labels: &Labels) -> Labels {
    Labels::new(
        labels
            .iter()
            .filter(|(name, _)| !CONTRIBUTOR_LABELS.contains(name))
            .chain([("comm", OTHER)]),
    )
}

/// Sums every series of a contributor not in `kept` into its `other` series;
/// the family keeps its order, `other` series come last in label order.
fn fold(family: &mut Family, kept: &HashSet<Contributor>) {
    let mut other: BTreeMap<Labels, f64> = BTreeMap::new();
    family.series.retain(|s| match contributor(&s.labels) {
        Some(c) if !kept.contains(&c) => {
            *other.entry(folded_labels(&s.labels)).or_default() += s.value;
            false
        }
        _ => true,
    });
    family.series.extend(
        other
            .into_iter()
            .map(|(labels, value)| Series { labels, value }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(comms: &[(&str, f64)]) -> Family {
        let mut f = Family::counter("sonde_x_total", "x");
        for (comm, value) in comms {
            f.push(&[("comm", comm), ("op", "read")], *value);
            f.push(&[("comm", comm), ("op", "write")], *value);
        }
        f
    }

    fn values(f: &Family) -> Vec<(String, String, f64)> {
        f.series
            .iter()
            .map(|s| {
                (
                    s.labels.get("comm").unwrap_or("").to_string(),
                    s.labels.get("op").unwrap_or("").to_string(),
                    s.value,
                )
            })
            .collect()
    }

    #[test]
    fn within_budget_nothing_changes() {
        let mut budget = Budget::new(4);
        let mut f = family(&[("a", 1.0), ("b", 2.0)]);
        let before = f.clone();
        budget.apply(&mut f);
        assert_eq!(f, before);
    }

    #[test]
    fn smallest_contributors_fold_into_other_and_totals_stay() {
        let mut budget = Budget::new(4);
        let mut f = family(&[("a", 1.0), ("b", 5.0), ("c", 2.0)]);
        budget.apply(&mut f);
        assert_eq!(
            values(&f),
            [
                ("b".into(), "read".into(), 5.0),
                ("b".into(), "write".into(), 5.0),
                ("other".into(), "read".into(), 3.0),
                ("other".into(), "write".into(), 3.0),
            ]
        );
    }

    #[test]
    fn folding_is_sticky_so_counters_never_go_back() {
        let mut budget = Budget::new(4);
        let mut f = family(&[("a", 1.0), ("b", 5.0), ("c", 2.0)]);
        budget.apply(&mut f);
        // `a` grows past `b`: it stays folded, `b` stays kept.
        let mut f = family(&[("a", 50.0), ("b", 6.0), ("c", 2.0)]);
        budget.apply(&mut f);
        let other: f64 = f
            .series
            .iter()
            .filter(|s| s.labels.get("comm") == Some(OTHER))
            .map(|s| s.value)
            .sum();
        assert_eq!(other, 104.0);
        assert!(f.series.iter().any(|s| s.labels.get("comm") == Some("b")));
    }

    #[test]
    fn attribution_labels_fold_with_comm_and_plain_series_stay() {
        let mut budget = Budget::new(2);
        let mut f = Family::counter("sonde_y_total", "y");
        f.push(&[("comm", "a"), ("container", "0123456789ab")], 1.0);
        f.push(&[("comm", "b"), ("unit", "x.service")], 2.0);
        f.push(&[("comm", "c")], 3.0);
        f.push(&[], 7.0);
        budget.apply(&mut f);
        let shown: Vec<String> = f.series.iter().map(|s| s.labels.to_string()).collect();
        assert_eq!(
            shown,
            [
                "sonde_y_total{}".to_string(),
                r#"sonde_y_total{comm="other"}"#.to_string()
            ]
        );
        assert_eq!(f.series[1].value, 6.0);
    }

    #[test]
    fn histograms_fold_bucket_by_bucket() {
        let mut budget = Budget::new(3);
        let mut f = Family::histogram("sonde_z_seconds", "z");
        f.push_histogram(&[("comm", "a")], [(1.0, 1)], 0.5, 2);
        f.push_histogram(&[("comm", "b")], [(1.0, 3)], 1.5, 4);
        budget.apply(&mut f);
        let shown: Vec<(String, f64)> = f
            .series
            .iter()
            .map(|s| (s.labels.to_string(), s.value))
            .collect();
        assert_eq!(shown.len(), 4, "{shown:?}");
        assert!(shown.contains(&(
            r#"sonde_z_seconds_bucket{comm="other", le="1"}"#.to_string(),
            4.0
        )));
        assert!(shown.contains(&(r#"sonde_z_seconds_count{comm="other"}"#.to_string(), 6.0)));
    }
}
