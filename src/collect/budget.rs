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
//! most active of the rest that have been folded for [`MIN_ROUNDS`] rounds
//! and still grow, so processes that live a round or two stay in `other`
//! instead of each leaving a set of short series in the store. A round in
//! which every series fits (beside the `other` series still carried) shows
//! everyone, and so does the round a metric first overflows. A folded
//! contributor that still grows takes the place of the least active shown
//! one only when its activity beats that one's by [`MARGIN`] times and both
//! have kept their place for [`MIN_ROUNDS`] rounds, so two contributors of
//! about the same activity do not swap back and forth.
//!
//! # Counters never go back, every count is in one series
//! A contributor's own series are its raw values less what was counted in
//! `other` while it was folded: promoted, its series resumes at the value it
//! last showed, so a rate over a window that spans its time in `other` does
//! not count that time twice; one that never showed starts at 0, as all it
//! counted so far is in `other`. So while it is present it only grows,
//! whether it is promoted, demoted or promoted again, and the last values of
//! all series of a metric (ended ones included) add up to the raw totals.
//! A contributor that misses a round is gone: collectors stop exporting a
//! process only once they have forgotten it (`[collect] forget_after`), and
//! its counts then start again from 0, a counter reset to PromQL. `other`
//! would go back if it were only the sum of what is folded now: a promoted
//! contributor takes its count out of the sum. So each `other` series is
//!
//! `other[L] = carry[L] + (sum of the raw series folded into L this round)`
//!
//! and `carry[L]` changes, series by series, exactly when a series moves:
//! - folded last round, shown now (promoted): `carry += its value now`, so
//!   its growth during the round stays in `other`, where it was counted;
//! - folded last round, gone now: `carry += its value last round`;
//! - shown last round, folded now (demoted): `carry -= its value last round`,
//!   so only its growth since last round enters `other` (its history stays
//!   in its own series, counted once).
//!
//! Then `other[L]` grows between two rounds by exactly the growth of the
//! series folded into it during that round (every term above is one), which
//! is never negative. A series folded on first sight brings its whole value:
//! that is what it counted since it appeared. Gauges have no carry: `other`
//! is the sum of what is folded now, as a gauge should be.
//!
//! Series are known across rounds by a 64-bit hash of their labels, so a
//! round clones a label set only for a new `other` series. Should two series ever
//! share a hash, one round's growth could be misplaced; as a last guard an
//! `other` series that would still go back is held at its last value (the
//! difference joins its carry).
//!
//! The state kept is one entry per series and contributor of the last round,
//! plus one per `other` series.

use std::hash::{BuildHasher, Hash, Hasher};

use crate::collect::{FastMap, FastSet};
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

/// Hashes naming series across rounds: fixed, so equal labels hash alike in
/// every round.
const SERIES_HASH: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x50de);

/// A contributor: its `comm`, `unit` and `container` values.
type Contributor = [Option<String>; 3];

/// A contributor seen last round.
struct Member {
    shown: bool,
    /// Smoothed growth per round.
    activity: f64,
    /// Rounds since it was first seen or last changed place.
    rounds: u32,
    /// Whether its series grew this round (a gauge: is not zero).
    grew: bool,
}

/// A series of last round, by the hash of its labels.
#[derive(Clone, Copy)]
struct Last {
    /// The round it was last seen in ([`FamilyState::round`]).
    round: u64,
    /// Its raw value.
    value: f64,
    /// The `other` series it was folded into (by [`other_hash`]), if it was.
    folded_into: Option<u64>,
    /// Counters: what was counted in `other` while it was folded, taken off
    /// its own series (module docs).
    offset: f64,
    /// Counters: the value its own series last showed, if it showed since
    /// it last appeared.
    own: Option<f64>,
}

/// One `other` series.
struct Other {
    labels: Labels,
    /// See the module docs.
    carry: f64,
    /// What was emitted last, to guard against going back.
    emitted: f64,
}

#[derive(Default)]
struct FamilyState {
    /// Rounds applied so far.
    round: u64,
    members: FastMap<Contributor, Member>,
    last: FastMap<u64, Last>,
    others: FastMap<u64, Other>,
    /// Times the last guard held an `other` series back (tests check that
    /// the carry alone keeps counters monotonic).
    #[cfg(test)]
    guarded: u32,
}

/// Applies the budget to each round's families, remembering per metric who
/// was shown and who was folded.
pub struct Budget {
    max_series: usize,
    families: FastMap<String, FamilyState>,
}

/// One round of a family, indexed once.
struct Round {
    /// Per series: the hash of its labels, and its contributor's index.
    series: Vec<(u64, Option<usize>)>,
    contributors: Vec<Contributor>,
    /// Per contributor: its series this round.
    counts: Vec<usize>,
    /// Per contributor: how much its series grew since last round (a new
    /// series: all of it); for a gauge, the values themselves.
    growth: Vec<f64>,
}

impl Round {
    fn index(series: &[Series], last: &FastMap<u64, Last>, cumulative: bool) -> Round {
        let mut index: FastMap<[Option<&str>; 3], usize> = FastMap::default();
        let mut round = Round {
            series: Vec::with_capacity(series.len()),
            contributors: Vec::new(),
            counts: Vec::new(),
            growth: Vec::new(),
        };
        for s in series {
            let hash = SERIES_HASH.hash_one(&s.labels);
            let who = contributor_of(&s.labels).map(|who| {
                let next = index.len();
                let i = *index.entry(who).or_insert(next);
                if i == next {
                    round.contributors.push(who.map(|v| v.map(str::to_string)));
                    round.counts.push(0);
                    round.growth.push(0.0);
                }
                let before = match last.get(&hash) {
                    Some(last) if cumulative => last.value,
                    _ => 0.0,
                };
                round.counts[i] += 1;
                round.growth[i] += (s.value - before).abs();
                i
            });
            round.series.push((hash, who));
        }
        round
    }
}

impl Budget {
    pub fn new(max_series: usize) -> Budget {
        Budget {
            max_series,
            families: FastMap::default(),
        }
    }

    /// Folds `family`'s least active contributors into `comm="other"` if it
    /// has more series than the budget. Series without a `comm` label (node
    /// metrics, whole-machine histograms) are never folded.
    pub fn apply(&mut self, family: &mut Family) {
        let has_contributors = family.series.iter().any(|s| s.labels.get("comm").is_some());
        if !has_contributors && !self.families.contains_key(&family.name) {
            return;
        }
        let cumulative = family.kind != MetricKind::Gauge;
        // Looked up by the borrowed name: the name is copied only once.
        if !self.families.contains_key(&family.name) {
            self.families
                .insert(family.name.clone(), FamilyState::default());
        }
        let state = self.families.get_mut(&family.name).expect("inserted above");
        let round = Round::index(&family.series, &state.last, cumulative);
        let folded = state.place(&family.series, &round, self.max_series);
        state.fold(family, &round, &folded, cumulative);
        if round.contributors.is_empty() && state.others.is_empty() {
            self.families.remove(&family.name);
        }
    }
}

impl FamilyState {
    /// Decides who is shown this round; per contributor of `round`, whether
    /// it is folded.
    fn place(&mut self, series: &[Series], round: &Round, max_series: usize) -> Vec<bool> {
        let present: FastSet<&Contributor> = round.contributors.iter().collect();
        self.members.retain(|c, _| present.contains(c));
        for (contributor, &growth) in round.contributors.iter().zip(&round.growth) {
            match self.members.get_mut(contributor) {
                Some(member) => {
                    member.activity = SMOOTHING * growth + (1.0 - SMOOTHING) * member.activity;
                    member.rounds = member.rounds.saturating_add(1);
                    member.grew = growth > 0.0;
                }
                None => {
                    // Not shown until chosen; a newcomer has no place to keep.
                    let member = Member {
                        shown: false,
                        activity: growth,
                        rounds: 0,
                        grew: growth > 0.0,
                    };
                    self.members.insert(contributor.clone(), member);
                }
            }
        }
        let folded_before =
            !self.others.is_empty() || self.last.values().any(|last| last.folded_into.is_some());
        if series.len() + self.others.len() <= max_series {
            self.members.values_mut().for_each(|m| m.shown = true);
        } else {
            self.choose(series, round, max_series, folded_before);
        }
        round
            .contributors
            .iter()
            .map(|c| self.members.get(c).is_some_and(|m| !m.shown))
            .collect()
    }

    /// Who is shown when not everyone fits (module docs); newcomers take
    /// free room only in the round the metric first overflows.
    fn choose(&mut self, series: &[Series], round: &Round, max_series: usize, folded_before: bool) {
        // Room for `other`: at most one series per label set left once the
        // contributor labels are replaced, plus any kept from before.
        let mut other_series: FastSet<u64> = series
            .iter()
            .zip(&round.series)
            .filter(|(_, (_, who))| who.is_some())
            .map(|(s, _)| other_hash(&s.labels))
            .collect();
        other_series.extend(self.others.keys().copied());
        let attributed: usize = round.counts.iter().sum();
        let unattributed = series.len() - attributed;
        let mut room = max_series.saturating_sub(other_series.len() + unattributed);

        let counts: FastMap<&Contributor, usize> = round
            .contributors
            .iter()
            .zip(round.counts.iter().copied())
            .collect();
        let series_of = |c: &Contributor| counts.get(c).copied().unwrap_or(0);
        let mut ranked: Vec<(&Contributor, &mut Member)> = self.members.iter_mut().collect();
        ranked.sort_by(|(a, x), (b, y)| {
            y.shown
                .cmp(&x.shown)
                .then(y.activity.total_cmp(&x.activity))
                .then(a.cmp(b))
        });
        // Shown ones keep their place while they fit, then free room goes to
        // the most active of the settled rest that still grow.
        for (contributor, member) in &mut ranked {
            let wanted = series_of(contributor);
            let settled = member.rounds >= MIN_ROUNDS && member.grew;
            let eligible = member.shown || settled || !folded_before;
            let fits = wanted <= room && eligible;
            if fits {
                room -= wanted;
            }
            if member.shown != fits {
                member.shown = fits;
                member.rounds = 0;
            }
        }
        // Swaps: the most active folded that still grows against the least
        // active shown.
        let settled = |m: &Member| m.rounds >= MIN_ROUNDS;
        let mut folded: Vec<usize> = (0..ranked.len())
            .filter(|&i| !ranked[i].1.shown && settled(ranked[i].1) && ranked[i].1.grew)
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

    /// Replaces every folded series by its `other` series, moving carry as
    /// series change place (module docs), and remembers this round.
    fn fold(&mut self, family: &mut Family, round: &Round, folded: &[bool], cumulative: bool) {
        self.round += 1;
        let now = self.round;
        let mut sums: FastMap<u64, f64> = FastMap::default();
        let mut index = 0;
        family.series.retain_mut(|s| {
            let (hash, who) = round.series[index];
            index += 1;
            let Some(who) = who else {
                return true;
            };
            let into = folded[who].then(|| other_hash(&s.labels));
            if let Some(into) = into {
                self.others.entry(into).or_insert_with(|| Other {
                    labels: folded_labels(&s.labels),
                    carry: 0.0,
                    emitted: 0.0,
                });
                *sums.entry(into).or_default() += s.value;
            }
            let raw = s.value;
            let before = self.last.get(&hash).copied();
            let mut offset = before.map_or(0.0, |b| b.offset);
            let mut own = before.and_then(|b| b.own);
            if let (true, Some(before)) = (cumulative, before) {
                match (before.folded_into, into) {
                    // Promoted: its growth this round stays in other, and
                    // its own series resumes where it stopped (or, never
                    // shown, starts at 0: all it counted is in other).
                    (Some(was), None) => {
                        self.carry(was, raw);
                        offset = raw - before.own.unwrap_or(0.0);
                    }
                    // Demoted: only its growth from last round on enters.
                    (None, Some(now)) => self.carry(now, -before.value),
                    _ => {}
                }
            }
            if cumulative && into.is_none() {
                s.value = raw - offset;
                own = Some(s.value);
            }
            self.last.insert(
                hash,
                Last {
                    round: now,
                    value: raw,
                    folded_into: into,
                    offset,
                    own,
                },
            );
            into.is_none()
        });
        // Series not seen this round are gone: folded ones leave their
        // value behind in other.
        let mut gone = Vec::new();
        self.last.retain(|_, last| {
            if last.round == now {
                return true;
            }
            if let (true, Some(into)) = (cumulative, last.folded_into) {
                gone.push((into, last.value));
            }
            false
        });
        for (into, value) in gone {
            self.carry(into, value);
        }

        let mut emitted = Vec::new();
        #[cfg(test)]
        let mut guarded = 0;
        self.others.retain(|hash, other| {
            let sum = sums.get(hash).copied();
            if !cumulative {
                // A gauge's other is what is folded now, or nothing.
                if let Some(sum) = sum {
                    emitted.push(Series {
                        labels: other.labels.clone(),
                        value: sum,
                    });
                }
                return sum.is_some();
            }
            if sum.is_none() && other.carry == 0.0 {
                return false;
            }
            let mut value = other.carry + sum.unwrap_or(0.0);
            if value < other.emitted {
                other.carry += other.emitted - value;
                value = other.emitted;
                #[cfg(test)]
                {
                    guarded += 1;
                }
            }
            other.emitted = value;
            emitted.push(Series {
                labels: other.labels.clone(),
                value,
            });
            true
        });
        #[cfg(test)]
        {
            self.guarded += guarded;
        }
        emitted.sort_by(|a, b| a.labels.cmp(&b.labels));
        family.series.extend(emitted);
        crate::memory::shrink_when_sparse(&mut self.last);
        crate::memory::shrink_when_sparse(&mut self.members);
    }

    fn carry(&mut self, into: u64, amount: f64) {
        if let Some(other) = self.others.get_mut(&into) {
            other.carry += amount;
        }
    }
}

/// A series' contributor, if it has a `comm`; its labels read in one pass.
fn contributor_of(labels: &Labels) -> Option<[Option<&str>; 3]> {
    let mut who = [None; 3];
    for (name, value) in labels.iter() {
        if let Some(i) = CONTRIBUTOR_LABELS.iter().position(|c| *c == name) {
            who[i] = Some(value);
        }
    }
    who[0].map(|_| who)
}

/// The hash of a series' `other` series: of its labels but the contributor
/// ones (the same for an `other` series' own labels).
fn other_hash(labels: &Labels) -> u64 {
    let mut hasher = SERIES_HASH.build_hasher();
    for pair in labels
        .iter()
        .filter(|(name, _)| !CONTRIBUTOR_LABELS.contains(name))
    {
        pair.hash(&mut hasher);
    }
    hasher.finish()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

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
    /// when it does not report (it is then forgotten: if it comes back, its
    /// value has started again from 0). Checks that no emitted series goes
    /// back while present and, until a forgotten contributor comes back,
    /// that the last values of every series ever emitted (as a store keeps
    /// them) add up to the raw values; returns the comms shown (not `other`)
    /// after each round.
    fn run(
        budget: &mut Budget,
        rounds: u32,
        round: impl Fn(u32) -> Vec<(String, Option<f64>)>,
    ) -> Vec<Vec<String>> {
        let mut last: HashMap<Labels, f64> = HashMap::new();
        let mut present: HashSet<Labels> = HashSet::new();
        // Raw values reported last round, those of forgotten contributors,
        // and whether one came back (its old run is then overwritten).
        let mut raw: HashMap<String, f64> = HashMap::new();
        let mut forgotten: HashMap<String, f64> = HashMap::new();
        let mut returned = false;
        let mut shown = Vec::new();
        for n in 0..rounds {
            let values: Vec<(String, f64)> = round(n)
                .into_iter()
                .filter_map(|(comm, value)| Some((comm, value?)))
                .collect();
            let reported: HashMap<String, f64> = values.iter().cloned().collect();
            for (comm, value) in raw.drain() {
                if !reported.contains_key(&comm) {
                    *forgotten.entry(comm).or_default() += value;
                }
            }
            returned |= reported.keys().any(|comm| forgotten.contains_key(comm));
            raw = reported;
            let borrowed: Vec<(&str, f64)> = values.iter().map(|(c, v)| (c.as_str(), *v)).collect();
            let mut f = family(&borrowed);
            budget.apply(&mut f);
            let mut now_present = HashSet::new();
            for s in &f.series {
                let before = last.insert(s.labels.clone(), s.value).unwrap_or(0.0);
                assert!(
                    s.value >= before || !present.contains(&s.labels),
                    "round {n}: {} went from {before} to {}",
                    s.labels,
                    s.value
                );
                now_present.insert(s.labels.clone());
            }
            present = now_present;
            if !returned {
                // Two series a contributor, each at its raw value.
                let counts = 2.0 * (forgotten.values().sum::<f64>() + raw.values().sum::<f64>());
                let counted: f64 = last.values().sum();
                assert_eq!(counted, counts, "round {n}: every count in one series");
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
    fn a_re_promoted_contributor_resumes_where_it_stopped() {
        // a is busiest, then b, then a again: a is shown, folded, shown.
        let growth = |n: u32| match n {
            0..10 => (100.0, 1.0),
            10..30 => (1.0, 500.0),
            _ => (1000.0, 1.0),
        };
        let mut budget = Budget::new(4);
        let (mut a, mut b) = (0.0, 0.0);
        let mut shown_a: Vec<(u32, f64)> = Vec::new();
        for n in 0..60 {
            let (da, db) = growth(n);
            a += da;
            b += db;
            let mut f = family(&[("a", a), ("b", b), ("c", 1.0)]);
            budget.apply(&mut f);
            if let Some(s) = f.series.iter().find(|s| s.labels.get("comm") == Some("a")) {
                shown_a.push((n, s.value));
            }
        }
        let gap = shown_a
            .windows(2)
            .find(|w| w[1].0 > w[0].0 + 1)
            .expect("a is folded for a while, then shown again");
        // Its growth while folded was counted in other: its own series
        // takes up where it stopped instead of jumping by that growth.
        assert_eq!(gap[1].1, gap[0].1, "{shown_a:?}");
        let last = shown_a.last().unwrap();
        assert!(last.1 > gap[1].1, "and grows again once shown");
        assert_eq!(budget.families["sonde_x_total"].guarded, 0);
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
    fn free_room_goes_to_the_busiest_settled_folded_and_other_stays_monotonic() {
        let settled = MIN_ROUNDS as usize;
        let mut budget = Budget::new(4);
        let shown = run(&mut budget, settled as u32 + 2, |n| {
            let n = f64::from(n);
            vec![
                ("a".into(), Some(10.0 + n)),
                // b leaves after round 1: its room is free at once.
                ("b".into(), (n < 2.0).then_some(50.0 + n)),
                ("c".into(), Some(2.0 + 5.0 * n)),
                // d lives for one round, busier than anyone: it stays in other.
                ("d".into(), (n == 3.0).then_some(1000.0)),
            ]
        });
        assert_eq!(shown[0], ["b"]);
        // c, folded since round 0, takes the room once settled.
        assert!(
            shown[2..settled].iter().all(|comms| comms.is_empty()),
            "{shown:?}"
        );
        assert_eq!(shown[settled], ["c"]);
    }

    #[test]
    fn counters_never_go_back_under_churn() {
        // A fixed pseudo-random walk: contributors with bursts, pauses, and
        // absences (forgotten, their counts start again from 0).
        let mut budget = Budget::new(6);
        let shown = run(&mut budget, 200, |n| {
            (0..8u32)
                .map(|i| {
                    let mut x = u64::from(i * 17 + 7);
                    let absent = |step: u32| (step / 13 + i).is_multiple_of(5);
                    let mut total = 0.0;
                    for step in 0..=n {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let burst = (step / 10 + i) % 4 == 0;
                        total += ((x >> 33) % if burst { 500 } else { 20 }) as f64;
                        if absent(step) {
                            total = 0.0;
                        }
                    }
                    (format!("p{i}"), (!absent(n)).then_some(total))
                })
                .collect()
        });
        let changes = shown.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(changes >= 10, "only {changes} changes of who is shown");
        assert_eq!(budget.families["sonde_x_total"].guarded, 0);
    }

    #[test]
    fn every_count_stays_in_one_series_as_names_come_and_go() {
        // A name a round arrives, grows for ten rounds at its own pace and
        // is gone for good; six series fit, so most are folded, some
        // promoted, demoted and gone while shown or folded.
        let mut budget = Budget::new(6);
        let shown = run(&mut budget, 120, |n| {
            (0..=n)
                .map(|born| {
                    let age = n - born;
                    let value = f64::from(age + 1) * f64::from(1 + born % 7).powi(3);
                    (format!("p{born}"), (age < 10).then_some(value))
                })
                .collect()
        });
        let promoted = shown.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(promoted >= 10, "only {promoted} changes of who is shown");
        assert_eq!(budget.families["sonde_x_total"].guarded, 0);
    }

    #[test]
    fn names_that_stop_growing_stay_in_other() {
        // Three names a round, each counting only in its first round and
        // remembered for 15 (as a churn of short processes looks), and from
        // round 20 one long-lived busy process.
        let mut budget = Budget::new(6);
        let shown = run(&mut budget, 60, |n| {
            let mut round: Vec<(String, Option<f64>)> = (0..=n)
                .flat_map(|born| (0..3).map(move |k| (born, k)))
                .map(|(born, k)| {
                    let remembered = n - born < 15;
                    (
                        format!("p{born}-{k}"),
                        remembered.then_some(5.0 + f64::from(k)),
                    )
                })
                .collect();
            if n >= 20 {
                round.push(("busy".into(), Some(100.0 * f64::from(n - 19))));
            }
            round
        });
        let mut ever: Vec<&String> = shown[1..].iter().flatten().collect();
        ever.sort();
        ever.dedup();
        // Only the busy process ever takes a place the first overflow did not give.
        let first: Vec<&String> = shown[0].iter().collect();
        assert!(
            ever.iter()
                .all(|comm| *comm == "busy" || first.contains(comm)),
            "{ever:?}"
        );
        let promoted = shown
            .iter()
            .position(|comms| comms.contains(&"busy".to_string()));
        assert_eq!(promoted, Some(20 + MIN_ROUNDS as usize), "{shown:?}");
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
