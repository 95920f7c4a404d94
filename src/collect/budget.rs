//! The cardinality budget: at most a configured number of series per metric
//! (`[collect] max_series_per_metric`, default 500). Per-process metrics grow
//! a series for every process name and place (`comm`, `unit`, `container`);
//! beyond the budget the least active of these contributors are folded into
//! one `comm="other"` series per remaining label set, so rates summed over a
//! metric stay right and storage stays bounded.
//!
//! # Who is shown
//! Every round re-ranks the contributors by their recent activity: how much
//! their series grew since the last round (a gauge's: its value), smoothed
//! over rounds. Shown ones stay shown while they fit; free room goes to the
//! most active of the rest. A folded contributor takes the place of the least
//! active shown one only when its activity beats that one's by [`MARGIN`]
//! times and both have kept their place for [`MIN_ROUNDS`] rounds, so two
//! contributors of about the same activity do not swap back and forth.
//!
//! # Counters never go back
//! A contributor's own series are its raw values, which only grow, so they
//! never go back, whether it is promoted, demoted or promoted again. `other`
//! would, if it were only the sum of what is folded now: a promoted
//! contributor takes its count out of the sum. So each `other` series is
//!
//! `other[L] = carry[L] + (sum of the raw series folded into L this round)`
//!
//! and `carry[L]` changes, series by series, exactly when a series moves:
//! - folded last round, shown now (promoted): `carry += its value now`, so
//!   its growth during the round stays in `other`, where it was counted;
//! - folded last round, gone now: `carry += its value last round`;
//! - shown last round, folded now (demoted): `carry -= its value last round`,
//!   so only its growth from then on enters `other` (its history stays in its
//!   own series, counted once).
//!
//! Then `other[L]` grows between two rounds by exactly the growth of the
//! series folded into it during that round (every term above is one), which
//! is never negative. A series folded on first sight brings its whole value:
//! that is what it counted since it appeared. Gauges have no carry: `other`
//! is the sum of what is folded now, as a gauge should be.
//!
//! The state kept is one entry per series and contributor of the last round,
//! plus a carry per `other` series while it is not zero.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::model::{Family, Labels, MetricKind, Series};

/// Default series per metric.
pub const DEFAULT_MAX_SERIES: usize = 500;

/// How many times more active than the least active shown contributor a
/// folded one must be to take its place.
pub const MARGIN: f64 = 2.0;

/// Rounds a contributor keeps its place (shown or folded) before a swap may
/// move it.
pub const MIN_ROUNDS: u32 = 5;

/// Weight of the latest round in a contributor's smoothed activity.
const SMOOTHING: f64 = 0.5;

/// The labels that say who contributed a series; folding replaces them.
const CONTRIBUTOR_LABELS: [&str; 3] = ["comm", "unit", "container"];

/// The `comm` folded contributors are summed under.
pub const OTHER: &str = "other";

/// A contributor: its `comm`, `unit` and `container` values.
type Contributor = [Option<String>; 3];

/// A contributor seen last round.
struct Member {
    shown: bool,
    /// Smoothed growth per round.
    activity: f64,
    /// Rounds since it was first seen or last changed place.
    rounds: u32,
}

#[derive(Default)]
struct FamilyState {
    members: HashMap<Contributor, Member>,
    /// Last round's raw value of every contributor series, and whether it
    /// was folded.
    last: HashMap<Labels, (f64, bool)>,
    /// Per `other` series: see the module docs.
    carry: BTreeMap<Labels, f64>,
}

/// Applies the budget to each round's families, remembering per metric who
/// was shown and who was folded.
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

    /// Folds `family`'s least active contributors into `comm="other"` if it
    /// has more series than the budget. Series without a `comm` label (node
    /// metrics, whole-machine histograms) are never folded.
    pub fn apply(&mut self, family: &mut Family) {
        let contributions = contributions(&family.series);
        if contributions.is_empty() && !self.families.contains_key(&family.name) {
            return;
        }
        let cumulative = family.kind != MetricKind::Gauge;
        let state = self.families.entry(family.name.clone()).or_default();
        let activity = activity(&family.series, &state.last, cumulative);
        state.update_members(&contributions, &activity);

        let total = family.series.len();
        let folded_before = state.last.values().any(|&(_, folded)| folded);
        if !folded_before && state.carry.is_empty() && total <= self.max_series {
            state.members.values_mut().for_each(|m| m.shown = true);
        } else {
            state.choose(&family.series, &contributions, self.max_series);
        }
        if cumulative {
            state.move_carry(&family.series);
        }
        state.remember(&family.series);
        fold(family, state);
        if contributions.is_empty() && state.carry.is_empty() {
            self.families.remove(&family.name);
        }
    }
}

impl FamilyState {
    /// Smooths each present contributor's activity and ages its place;
    /// forgets contributors that stopped reporting.
    fn update_members(
        &mut self,
        contributions: &HashMap<Contributor, Contribution>,
        activity: &HashMap<Contributor, f64>,
    ) {
        self.members.retain(|c, _| contributions.contains_key(c));
        for contributor in contributions.keys() {
            let now = activity.get(contributor).copied().unwrap_or(0.0);
            match self.members.get_mut(contributor) {
                Some(member) => {
                    member.activity = SMOOTHING * now + (1.0 - SMOOTHING) * member.activity;
                    member.rounds = member.rounds.saturating_add(1);
                }
                None => {
                    // Not shown until chosen; a newcomer has no place to keep.
                    self.members.insert(
                        contributor.clone(),
                        Member {
                            shown: false,
                            activity: now,
                            rounds: 0,
                        },
                    );
                }
            }
        }
    }

    /// Decides who is shown this round (module docs).
    fn choose(
        &mut self,
        series: &[Series],
        contributions: &HashMap<Contributor, Contribution>,
        max_series: usize,
    ) {
        // Room for `other`: at most one series per label set left once the
        // contributor labels are replaced, plus any carried one.
        let mut other_series: HashSet<Labels> = series
            .iter()
            .filter(|s| s.labels.get("comm").is_some())
            .map(|s| folded_labels(&s.labels))
            .collect();
        other_series.extend(self.carry.keys().cloned());
        let unattributed = series.len() - contributions.values().map(|c| c.series).sum::<usize>();
        let mut room = max_series.saturating_sub(other_series.len() + unattributed);

        let mut ranked: Vec<(&Contributor, &mut Member)> = self.members.iter_mut().collect();
        ranked.sort_by(|(a, x), (b, y)| {
            y.shown
                .cmp(&x.shown)
                .then(y.activity.total_cmp(&x.activity))
                .then(a.cmp(b))
        });
        // Shown ones keep their place while they fit, then free room goes to
        // the most active of the rest.
        let series_of = |c: &Contributor| contributions.get(c).map_or(0, |c| c.series);
        for (contributor, member) in &mut ranked {
            let wanted = series_of(contributor);
            let fits = wanted <= room;
            if fits {
                room -= wanted;
            }
            if member.shown != fits {
                member.shown = fits;
                member.rounds = 0;
            }
        }
        // Swaps: the most active folded against the least active shown.
        let settled = |m: &Member| m.rounds >= MIN_ROUNDS;
        let mut folded: Vec<usize> = (0..ranked.len())
            .filter(|&i| !ranked[i].1.shown && settled(ranked[i].1))
            .collect();
        folded.sort_by(|&i, &j| ranked[j].1.activity.total_cmp(&ranked[i].1.activity));
        for f in folded {
            let least = (0..ranked.len())
                .filter(|&i| ranked[i].1.shown && settled(ranked[i].1))
                .min_by(|&i, &j| ranked[i].1.activity.total_cmp(&ranked[j].1.activity));
            let Some(k) = least else { break };
            let (f_series, k_series) = (series_of(ranked[f].0), series_of(ranked[k].0));
            let busier = ranked[f].1.activity > MARGIN * ranked[k].1.activity;
            if !busier || f_series > room + k_series {
                continue;
            }
            room = room + k_series - f_series;
            for (i, shown) in [(f, true), (k, false)] {
                ranked[i].1.shown = shown;
                ranked[i].1.rounds = 0;
            }
        }
    }

    /// Whether `labels` (a contributor series) is folded this round.
    fn folded(&self, labels: &Labels) -> bool {
        contributor(labels)
            .and_then(|c| self.members.get(&c))
            .is_some_and(|m| !m.shown)
    }

    /// Moves counts between `other`'s carry and the series that change
    /// place this round (module docs: the invariant).
    fn move_carry(&mut self, series: &[Series]) {
        let mut present = HashSet::new();
        for s in series {
            if contributor(&s.labels).is_none() {
                continue;
            }
            present.insert(&s.labels);
            let folded_now = self.folded(&s.labels);
            match self.last.get(&s.labels) {
                Some(&(_, true)) if !folded_now => {
                    *self.carry.entry(folded_labels(&s.labels)).or_default() += s.value;
                }
                Some(&(before, false)) if folded_now => {
                    *self.carry.entry(folded_labels(&s.labels)).or_default() -= before;
                }
                _ => {}
            }
        }
        for (labels, &(before, was_folded)) in &self.last {
            if was_folded && !present.contains(labels) {
                *self.carry.entry(folded_labels(labels)).or_default() += before;
            }
        }
        self.carry.retain(|_, carried| *carried != 0.0);
    }

    fn remember(&mut self, series: &[Series]) {
        self.last = series
            .iter()
            .filter(|s| contributor(&s.labels).is_some())
            .map(|s| (s.labels.clone(), (s.value, self.folded(&s.labels))))
            .collect();
    }
}

struct Contribution {
    series: usize,
}

fn contributor(labels: &Labels) -> Option<Contributor> {
    labels.get("comm")?;
    Some(CONTRIBUTOR_LABELS.map(|name| labels.get(name).map(str::to_string)))
}

fn contributions(series: &[Series]) -> HashMap<Contributor, Contribution> {
    let mut out: HashMap<Contributor, Contribution> = HashMap::new();
    for s in series {
        if let Some(c) = contributor(&s.labels) {
            out.entry(c).or_insert(Contribution { series: 0 }).series += 1;
        }
    }
    out
}

/// Each contributor's activity this round: how much its series grew since
/// `last` (a new series: all of it), or for a gauge the values themselves.
fn activity(
    series: &[Series],
    last: &HashMap<Labels, (f64, bool)>,
    cumulative: bool,
) -> HashMap<Contributor, f64> {
    let mut out: HashMap<Contributor, f64> = HashMap::new();
    for s in series {
        if let Some(c) = contributor(&s.labels) {
            let before = match last.get(&s.labels) {
                Some(&(value, _)) if cumulative => value,
                _ => 0.0,
            };
            *out.entry(c).or_default() += (s.value - before).abs();
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

/// Replaces every folded series by its `other` series (carry plus the sum of
/// what is folded into it); the family keeps its order, `other` series come
/// last in label order.
fn fold(family: &mut Family, state: &FamilyState) {
    let mut other: BTreeMap<Labels, f64> = state.carry.clone();
    family.series.retain(|s| {
        if state.folded(&s.labels) {
            *other.entry(folded_labels(&s.labels)).or_default() += s.value;
            false
        } else {
            true
        }
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

    /// Runs `rounds` of a counter family through one budget; `round(n)`
    /// gives each contributor's value (two series each) in round n, None
    /// when it does not report. Checks that no emitted series ever goes
    /// back and returns the comms shown (not `other`) after each round.
    fn run(
        budget: &mut Budget,
        rounds: u32,
        round: impl Fn(u32) -> Vec<(String, Option<f64>)>,
    ) -> Vec<Vec<String>> {
        let mut emitted: HashMap<Labels, f64> = HashMap::new();
        let mut shown = Vec::new();
        for n in 0..rounds {
            let values: Vec<(String, f64)> = round(n)
                .into_iter()
                .filter_map(|(comm, value)| Some((comm, value?)))
                .collect();
            let borrowed: Vec<(&str, f64)> = values.iter().map(|(c, v)| (c.as_str(), *v)).collect();
            let mut f = family(&borrowed);
            budget.apply(&mut f);
            for s in &f.series {
                let before = emitted.insert(s.labels.clone(), s.value).unwrap_or(0.0);
                assert!(
                    s.value >= before,
                    "round {n}: {} went from {before} to {}",
                    s.labels,
                    s.value
                );
            }
            let mut comms: Vec<String> = f
                .series
                .iter()
                .filter_map(|s| s.labels.get("comm"))
                .filter(|comm| *comm != OTHER)
                .map(str::to_string)
                .collect();
            comms.dedup();
            shown.push(comms);
        }
        shown
    }

    #[test]
    fn a_busier_folded_contributor_is_promoted_once_settled() {
        let mut budget = Budget::new(4);
        let shown = run(&mut budget, 12, |n| {
            let n = f64::from(n);
            vec![
                ("a".into(), Some(1.0 + 100.0 * n)),
                ("b".into(), Some(50.0 + n)),
                ("c".into(), Some(2.0)),
            ]
        });
        assert_eq!(shown[0], ["b"]);
        // a waits MIN_ROUNDS rounds in other, then takes b's place.
        let promoted = shown.iter().position(|comms| comms == &["a"]).unwrap();
        assert_eq!(promoted, MIN_ROUNDS as usize);
        assert!(shown[promoted..].iter().all(|comms| comms == &["a"]));
    }

    #[test]
    fn other_grows_by_what_was_folded_during_the_round() {
        let mut budget = Budget::new(4);
        let other = |f: &Family| {
            f.series
                .iter()
                .find(|s| s.labels.get("comm") == Some(OTHER))
                .map(|s| s.value)
        };
        let mut f = family(&[("a", 1.0), ("b", 50.0), ("c", 2.0)]);
        budget.apply(&mut f);
        assert_eq!(other(&f), Some(3.0));
        for n in 1..MIN_ROUNDS {
            let a = 1.0 + 100.0 * f64::from(n);
            let mut f = family(&[("a", a), ("b", 50.0 + f64::from(n)), ("c", 2.0)]);
            budget.apply(&mut f);
            assert_eq!(other(&f), Some(a + 2.0));
        }
        // Promoted: a's growth of this round stays in other (it was folded
        // while it grew), and so does b's (demoted: no series of its own
        // this round); b's history stays in b's series.
        let a = 1.0 + 100.0 * f64::from(MIN_ROUNDS);
        let b = 50.0 + f64::from(MIN_ROUNDS);
        let mut f = family(&[("a", a), ("b", b), ("c", 2.0)]);
        budget.apply(&mut f);
        assert!(f.series.iter().any(|s| s.labels.get("comm") == Some("a")));
        assert_eq!(other(&f), Some(a + 2.0 + 1.0));
        // Next round: other grows only by b's growth since it was folded.
        let mut f = family(&[("a", a + 100.0), ("b", b + 3.0), ("c", 2.0)]);
        budget.apply(&mut f);
        assert_eq!(other(&f), Some(a + 2.0 + 1.0 + 3.0));
    }

    #[test]
    fn contributors_of_about_the_same_activity_do_not_swap() {
        let mut budget = Budget::new(4);
        let shown = run(&mut budget, 30, |n| {
            let n = f64::from(n);
            // Within MARGIN of each other, c with a burst now and then:
            // whoever is shown first stays.
            let c = 10.0 * n
                + if (n as u32).is_multiple_of(7) {
                    5.0
                } else {
                    0.0
                };
            vec![
                ("a".into(), Some(12.0 * n)),
                ("b".into(), Some(15.0 * n)),
                ("c".into(), Some(c)),
            ]
        });
        assert!(shown.iter().all(|comms| comms == &shown[0]), "{shown:?}");
    }

    #[test]
    fn free_room_goes_to_the_busiest_folded_and_other_stays_monotonic() {
        let mut budget = Budget::new(4);
        let shown = run(&mut budget, 4, |n| {
            let n = f64::from(n);
            vec![
                ("a".into(), Some(10.0 + n)),
                // b leaves after round 1: its room is free at once.
                ("b".into(), (n < 2.0).then_some(50.0 + n)),
                ("c".into(), Some(2.0 + 5.0 * n)),
            ]
        });
        assert_eq!(shown[0], ["b"]);
        assert_eq!(shown[2], ["c"]);
    }

    #[test]
    fn counters_never_go_back_under_churn() {
        // A fixed pseudo-random walk: contributors with bursts, pauses, and
        // absences (their counts keep their value when they come back).
        let mut budget = Budget::new(6);
        let shown = run(&mut budget, 200, |n| {
            (0..8u32)
                .map(|i| {
                    let mut x = u64::from(i * 17 + 7);
                    let mut total = 0.0;
                    for step in 0..=n {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let burst = (step / 10 + i) % 4 == 0;
                        total += ((x >> 33) % if burst { 500 } else { 20 }) as f64;
                    }
                    let absent = (n / 13 + i) % 5 == 0;
                    (format!("p{i}"), (!absent).then_some(total))
                })
                .collect()
        });
        let changes = shown.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(changes >= 10, "only {changes} changes of who is shown");
    }

    #[test]
    fn gauges_fold_without_carry() {
        let mut budget = Budget::new(2);
        let gauge = |values: &[(&str, f64)]| {
            let mut f = Family::gauge("sonde_g", "g");
            for (comm, value) in values {
                f.push(&[("comm", comm)], *value);
            }
            f
        };
        let mut f = gauge(&[("a", 5.0), ("b", 1.0), ("c", 2.0)]);
        budget.apply(&mut f);
        let mut f = gauge(&[("a", 5.0), ("b", 0.0), ("c", 0.0)]);
        budget.apply(&mut f);
        let other = f
            .series
            .iter()
            .find(|s| s.labels.get("comm") == Some(OTHER));
        assert_eq!(other.map(|s| s.value), Some(0.0));
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
