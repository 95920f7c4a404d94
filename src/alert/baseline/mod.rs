//! Dynamic thresholds: an alerting rule that compares its series with a
//! baseline learned from their own history, resolves on a different
//! condition than it fires on, and fires only when enough recent
//! evaluations agree. These are sonde's keys in a rule file; Prometheus
//! refuses a file that holds them (its rule format has no unknown keys), so
//! a file that uses them is sonde's, and a plain Prometheus file reads as
//! before.
//!
//! ```yaml
//! - alert: UnusualLoad
//!   expr: node_load1                      # a series selector
//!   for: 5m
//!   baseline:
//!     method: seasonal_quantile           # or mad, stddev
//!     quantile: 0.9                       # seasonal_quantile: 0.9
//!     season: 1d                          #   1d (a whole number of hours)
//!     history: 7d                         #   7d (whole seasons, at most 60)
//!     tolerance: 0.2                      #   0.2: ±20 % of the quantile
//!     # window: 6h                        # mad, stddev: 6h
//!     # k: 3                              #   3 (standard deviations)
//!     direction: above                    # above, below or both (both)
//!     resolve_band: 0.5                   # resolve inside half the band (1)
//!   anti_flap: { of_last: 10, at_least: 0.6 }
//! - alert: HotDisk                        # hysteresis without a baseline
//!   expr: disk_temp_celsius > 60
//!   keep_firing_while: disk_temp_celsius > 50
//! ```
//!
//! How a baseline rule evaluates, at each group evaluation:
//! 1. The expression (a selector) runs as any rule's does; each series it
//!    returns is one value.
//! 2. Each series' band comes from the store's rollup buckets (see
//!    [`band`]): once per bucket period, for every series of the selector at
//!    once, then from the cache. A series with too little history has no
//!    band and is never anomalous (it is learning).
//! 3. A value beyond the band in `direction` is anomalous. The rule records
//!    the band as `sonde_baseline_center`, `sonde_baseline_lower` and
//!    `sonde_baseline_upper`, labelled with the series' labels and
//!    `alertname`, so PromQL and the dashboard draw it beside the value;
//!    alerts carry it in the annotations `baseline_center`,
//!    `baseline_lower`, `baseline_upper` and `baseline_deviation` (the
//!    distance from the centre in half-widths of the band: beyond 1 is
//!    outside), unless the rule sets an annotation of that name; an
//!    alert's link (and the Alerts view's) graphs the value and its band.
//! 4. Anti-flap: a series turns anomalous for the alert only when at least
//!    `at_least` of its last `of_last` evaluations were anomalous (a series
//!    seen fewer times counts the unseen ones as normal). Without
//!    `baseline`, anomalous is "the expression returned it", so any
//!    alerting rule can use `anti_flap`.
//! 5. Hysteresis: once anomalous, a series stays so (and its alert active)
//!    until its value is back inside `resolve_band` of the band (the band
//!    narrowed about its centre), or the series is gone. A rule without a
//!    baseline gets hysteresis from `keep_firing_while: <PromQL>`
//!    (Prometheus #10536): an anomalous series the expression no longer
//!    returns stays anomalous while this expression returns it, matched on
//!    the labels both return (`expr: temp > 90`, `keep_firing_while: temp >
//!    80`). What stays anomalous goes to the alert state machine as the
//!    expression's result ([`crate::alert::rule`]: `for`,
//!    `keep_firing_for`, `limit` as usual).
//!
//! What a rule remembers here (the cache, each series' recent evaluations
//! and whether it is anomalous) lives in memory: a restart learns the bands
//! again from the store at once, and anti-flap starts over.
//!
//! Cost: the first evaluation in a bucket period reads every series' buckets
//! in one selection (for 500 series and 7 days, 84,000 hour buckets: 50 to
//! 100 ms in `benches/baselines.rs`, with the store locked for that read);
//! every other evaluation only runs the selector and compares (10 to 20 ms
//! there). The band is stored as three samples per series and evaluation,
//! as a recording rule's output would be. See BENCHMARKS.md, "Baseline
//! rules".

pub mod band;
pub mod spec;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};

pub use spec::DynamicSpec;
use spec::{BaselineSpec, Direction};

use crate::alert::rule::EvalContext;
use crate::alert::rulefile::{RuleKind, RuleSpec};
use crate::model::{Labels, Sample, METRIC_NAME};
use crate::query::{format_go_float, selector_matchers, Source};
use band::{Band, BandCache};

/// The series a baseline rule records its band as.
pub const CENTER_METRIC: &str = "sonde_baseline_center";
pub const LOWER_METRIC: &str = "sonde_baseline_lower";
pub const UPPER_METRIC: &str = "sonde_baseline_upper";

/// What a rule with sonde's keys remembers between evaluations.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    cache: BandCache,
    /// By the series' labels as the expression returns them.
    series: HashMap<Labels, SeriesMemory>,
}

#[derive(Clone, Debug, Default)]
struct SeriesMemory {
    /// Whether each of the last evaluations was anomalous, newest last; at
    /// most `of_last` of them.
    recent: VecDeque<bool>,
    /// Anomalous for the alert, until the resolve condition holds.
    latched: bool,
}

impl SeriesMemory {
    fn push(&mut self, anomalous: bool, of_last: usize) {
        if self.recent.len() == of_last {
            self.recent.pop_front();
        }
        self.recent.push_back(anomalous);
    }

    /// The fraction of the last `of_last` evaluations that were anomalous.
    fn anomalous_fraction(&self, of_last: usize) -> f64 {
        self.recent.iter().filter(|a| **a).count() as f64 / of_last as f64
    }
}

/// One evaluation's outcome.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The series the alert state machine takes as the expression's result.
    pub active: Vec<(Labels, f64)>,
    /// The bands to record.
    pub samples: Vec<Sample>,
    /// Annotations to add, by the series' labels.
    pub annotations: HashMap<Labels, Vec<(String, String)>>,
}

/// A value compared with the band: whether it is beyond it, and whether it
/// is back inside the band an alert resolves in.
struct Judged {
    series: Labels,
    value: f64,
    anomalous: bool,
    settled: bool,
}

impl Memory {
    /// Turns the expression's `result` at `ts_ms` into what the alert state
    /// machine sees, reading bands from `source`.
    pub fn apply(
        &mut self,
        spec: &DynamicSpec,
        alertname: &str,
        expr: &str,
        ctx: &EvalContext,
        result: Vec<(Labels, f64)>,
        ts_ms: i64,
    ) -> Result<Outcome, String> {
        let mut outcome = Outcome::default();
        let judged: Vec<Judged> = match &spec.baseline {
            Some(baseline) => {
                self.refresh(baseline, expr, ctx.source, ts_ms)?;
                result
                    .into_iter()
                    .filter_map(|(series, value)| {
                        let band = *self.cache.bands.get(&series)?;
                        outcome
                            .samples
                            .extend(band_samples(alertname, &series, &band, ts_ms));
                        outcome
                            .annotations
                            .insert(series.clone(), band_annotations(&band, value));
                        Some(Judged {
                            anomalous: beyond(baseline.direction, &band, value),
                            settled: !beyond(
                                baseline.direction,
                                &band.narrowed(baseline.resolve_band),
                                value,
                            ),
                            series,
                            value,
                        })
                    })
                    .collect()
            }
            None => {
                let mut judged: Vec<Judged> = result
                    .into_iter()
                    .map(|(series, value)| Judged {
                        series,
                        value,
                        anomalous: true,
                        settled: false,
                    })
                    .collect();
                if let Some(hold) = &spec.keep_firing_while {
                    judged.extend(self.held(ctx.query(hold, ts_ms)?, &judged));
                }
                judged
            }
        };
        let (of_last, at_least) = spec
            .anti_flap
            .as_ref()
            .map_or((1, 1.0), |a| (a.of_last, a.at_least));
        let mut seen = HashSet::with_capacity(judged.len());
        for judged in judged {
            let memory = self.series.entry(judged.series.clone()).or_default();
            memory.push(judged.anomalous, of_last);
            memory.latched = if memory.latched {
                !judged.settled
            } else {
                memory.anomalous_fraction(of_last) >= at_least
            };
            if memory.latched {
                outcome.active.push((judged.series.clone(), judged.value));
            }
            seen.insert(judged.series);
        }
        // A series gone (or without a band) is normal: it releases its
        // alert, and is forgotten once its recent evaluations are all normal.
        self.series.retain(|series, memory| {
            if !seen.contains(series) {
                memory.latched = false;
                memory.push(false, of_last);
            }
            memory.latched || memory.recent.contains(&true)
        });
        Ok(outcome)
    }

    /// The anomalous series the expression no longer returns (not in
    /// `returned`) that `keep_firing_while`'s result `holding` still has:
    /// they stay anomalous, with the value it gives them.
    fn held(&self, holding: Vec<(Labels, f64)>, returned: &[Judged]) -> Vec<Judged> {
        let returned: HashSet<&Labels> = returned.iter().map(|j| &j.series).collect();
        holding
            .into_iter()
            .filter(|(series, _)| {
                !returned.contains(series) && self.series.get(series).is_some_and(|m| m.latched)
            })
            .map(|(series, value)| Judged {
                series,
                value,
                anomalous: false,
                settled: false,
            })
            .collect()
    }

    /// Computes the bands of every series of the selector, unless those of
    /// this bucket period are cached.
    fn refresh(
        &mut self,
        baseline: &BaselineSpec,
        expr: &str,
        source: &dyn Source,
        ts_ms: i64,
    ) -> Result<(), String> {
        let (tier, start, end) = band::history(&baseline.method, ts_ms);
        let period = band::bucket_start(ts_ms, tier);
        if self.cache.period_start == Some(period) {
            return Ok(());
        }
        let selector = spec::plain_selector(expr)
            .ok_or_else(|| "baseline: expr is not a series selector".to_string())?;
        let matchers = selector_matchers(&selector).map_err(|err| err.to_string())?;
        let history = source
            .select_rollups(&matchers, start, end, tier)
            .map_err(|err| format!("baseline: reading rollups: {err}"))?;
        self.cache = BandCache {
            period_start: Some(period),
            bands: history
                .into_iter()
                .filter_map(|s| {
                    band::band(&baseline.method, &s.buckets, ts_ms).map(|band| (s.labels, band))
                })
                .collect(),
        };
        Ok(())
    }
}

/// What an alert's link graphs: a baseline rule's value with its recorded
/// band beside it (the band's series differ from the value's by `alertname`,
/// so `or` keeps both); any other rule's expression.
pub fn graph_expr(spec: &RuleSpec) -> Cow<'_, str> {
    match &spec.kind {
        RuleKind::Alerting {
            alert,
            dynamic: Some(DynamicSpec {
                baseline: Some(_), ..
            }),
            ..
        } => Cow::Owned(format!(
            "{} or {{__name__=~\"{CENTER_METRIC}|{LOWER_METRIC}|{UPPER_METRIC}\", alertname={alert:?}}}",
            spec.expr
        )),
        _ => Cow::Borrowed(&spec.expr),
    }
}

fn beyond(direction: Direction, band: &Band, value: f64) -> bool {
    match direction {
        Direction::Above => value > band.upper,
        Direction::Below => value < band.lower,
        Direction::Both => value > band.upper || value < band.lower,
    }
}

/// The band as three samples: the series' labels with `alertname`.
fn band_samples(alertname: &str, series: &Labels, band: &Band, ts_ms: i64) -> [Sample; 3] {
    let sample = |metric: &str, value: f64| {
        let mut labels = series.clone();
        labels.set(METRIC_NAME.to_string(), metric.to_string());
        labels.set("alertname".to_string(), alertname.to_string());
        Sample {
            labels,
            timestamp_ms: ts_ms,
            value,
        }
    };
    [
        sample(CENTER_METRIC, band.center),
        sample(LOWER_METRIC, band.lower),
        sample(UPPER_METRIC, band.upper),
    ]
}

fn band_annotations(band: &Band, value: f64) -> Vec<(String, String)> {
    [
        ("baseline_center", band.center),
        ("baseline_lower", band.lower),
        ("baseline_upper", band.upper),
        ("baseline_deviation", band.deviation(value)),
    ]
    .into_iter()
    .map(|(name, v)| (name.to_string(), format_go_float(v)))
    .collect()
}
