//! The sonde-only keys of an alerting rule as written (`baseline:`,
//! `anti_flap:`), and their checks: every problem names the key, what it
//! holds and what is expected; the rule file adds the file, group and rule.

use promql_parser::parser::{Expr, VectorSelector};
use serde::Deserialize;

use crate::alert::rulefile::rule_duration;
use crate::store::Resolution;

/// What a rule adds to Prometheus's alerting rule: a learned band the value
/// is compared with, and how many recent evaluations must agree.
#[derive(Clone, Debug, PartialEq)]
pub struct DynamicSpec {
    pub baseline: Option<BaselineSpec>,
    pub anti_flap: Option<AntiFlap>,
    /// Hysteresis for a rule without a baseline: PromQL that keeps an
    /// active alert's series active while it returns it.
    pub keep_firing_while: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BaselineSpec {
    pub method: Method,
    pub direction: Direction,
    /// The band an alert resolves inside, as a fraction of the band it
    /// fires outside of (1: the same band, no hysteresis).
    pub resolve_band: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    /// The `quantile` of the bucket means at the same phase of each of the
    /// last `history / season` seasons, ± `tolerance` of it.
    SeasonalQuantile {
        quantile: f64,
        season_ms: i64,
        history_ms: i64,
        tolerance: f64,
    },
    /// Over the buckets of the last `window`: median ± k·MAD of their means
    /// (MAD scaled to a standard deviation), or mean ± k·stddev of their
    /// samples (see [`super::band`]).
    Robust {
        spread: Spread,
        window_ms: i64,
        k: f64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Spread {
    Mad,
    Stddev,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Direction {
    Above,
    Below,
    Both,
}

/// Fire only when at least `at_least` (a fraction) of the last `of_last`
/// evaluations were anomalous.
#[derive(Clone, Debug, PartialEq)]
pub struct AntiFlap {
    pub of_last: usize,
    pub at_least: f64,
}

/// Most seasons a seasonal baseline looks back over, and most evaluations
/// anti-flap remembers per series: both bound memory and work per series.
const MAX_SEASONS: i64 = 60;
const MAX_OF_LAST: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBaseline {
    method: Option<String>,
    quantile: Option<f64>,
    season: Option<String>,
    history: Option<String>,
    tolerance: Option<f64>,
    window: Option<String>,
    k: Option<f64>,
    direction: Option<String>,
    resolve_band: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAntiFlap {
    of_last: Option<usize>,
    at_least: Option<f64>,
}

/// The sonde keys of a rule as written.
pub(crate) struct RawKeys {
    pub baseline: Option<RawBaseline>,
    pub anti_flap: Option<RawAntiFlap>,
    pub keep_firing_while: Option<String>,
}

impl RawKeys {
    /// The keys present, to refuse them on a recording rule.
    pub fn present(&self) -> impl Iterator<Item = &'static str> {
        [
            ("baseline", self.baseline.is_some()),
            ("anti_flap", self.anti_flap.is_some()),
            ("keep_firing_while", self.keep_firing_while.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, present)| present.then_some(key))
    }
}

/// Checks the sonde keys of an alerting rule whose expression is `expr`;
/// `None` when the rule has none (a plain Prometheus rule).
pub(crate) fn check(raw: RawKeys, expr: &str, problems: &mut Vec<String>) -> Option<DynamicSpec> {
    let RawKeys {
        baseline,
        anti_flap,
        keep_firing_while,
    } = raw;
    if baseline.is_none() && anti_flap.is_none() && keep_firing_while.is_none() {
        return None;
    }
    if let Some(hold) = &keep_firing_while {
        if baseline.is_some() {
            problems.push(
                "keep_firing_while: not with baseline, whose resolve_band says when it resolves"
                    .to_string(),
            );
        } else if let Err(err) = crate::query::parse(hold) {
            problems.push(format!(
                "keep_firing_while: could not parse expression: {err}"
            ));
        }
    }
    let baseline = baseline.map(|raw| {
        if crate::query::parse(expr).is_ok() && plain_selector(expr).is_none() {
            problems.push(
                "baseline: expr must be a series selector such as `node_load1{job=\"node\"}`, \
                 whose stored rollups the baseline is learned from; record any other \
                 expression with a recording rule and select the recorded series"
                    .to_string(),
            );
        }
        check_baseline(raw, problems)
    });
    let anti_flap = anti_flap.map(|raw| check_anti_flap(raw, problems));
    Some(DynamicSpec {
        baseline,
        anti_flap,
        keep_firing_while,
    })
}

/// The selector `expr` is, when it is one (in parentheses or not) without
/// `offset` or `@`: what a baseline reads the rollups of.
pub(crate) fn plain_selector(expr: &str) -> Option<VectorSelector> {
    let mut parsed = crate::query::parse(expr).ok()?;
    while let Expr::Paren(inner) = parsed {
        parsed = *inner.expr;
    }
    match parsed {
        Expr::VectorSelector(vs) if vs.offset.is_none() && vs.at.is_none() => Some(vs),
        _ => None,
    }
}

fn check_baseline(raw: RawBaseline, problems: &mut Vec<String>) -> BaselineSpec {
    let mut problem = |text: String| problems.push(format!("baseline.{text}"));
    let refuse_keys = |keys: &[(&str, bool)], method: &str, problem: &mut dyn FnMut(String)| {
        for (key, present) in keys {
            if *present {
                problem(format!("{key}: not a key of method {method}"));
            }
        }
    };
    let method = match raw.method.as_deref() {
        Some("seasonal_quantile") => {
            refuse_keys(
                &[("window", raw.window.is_some()), ("k", raw.k.is_some())],
                "seasonal_quantile",
                &mut problem,
            );
            let season_ms = duration_key("season", raw.season.as_deref(), "1d", &mut problem);
            let history_ms = duration_key("history", raw.history.as_deref(), "7d", &mut problem);
            let hour = Resolution::Hour.bucket_ms();
            if season_ms > 0 && season_ms % hour != 0 {
                problem(format!(
                    "season: must be a whole number of hours (the rollup bucket), got {:?}",
                    raw.season.unwrap_or_default()
                ));
            } else if season_ms > 0
                && (history_ms < season_ms
                    || history_ms % season_ms != 0
                    || history_ms / season_ms > MAX_SEASONS)
            {
                problem(format!(
                    "history: must be 1 to {MAX_SEASONS} whole seasons, got {:?} for a season of {:?}",
                    raw.history.unwrap_or_default(),
                    raw.season.unwrap_or_default()
                ));
            }
            Method::SeasonalQuantile {
                quantile: fraction_key("quantile", raw.quantile, 0.9, 0.0, &mut problem),
                season_ms,
                history_ms,
                tolerance: number_key("tolerance", raw.tolerance, 0.2, &mut problem),
            }
        }
        Some(name @ ("mad" | "stddev")) => {
            refuse_keys(
                &[
                    ("quantile", raw.quantile.is_some()),
                    ("season", raw.season.is_some()),
                    ("history", raw.history.is_some()),
                    ("tolerance", raw.tolerance.is_some()),
                ],
                name,
                &mut problem,
            );
            Method::Robust {
                spread: if name == "mad" {
                    Spread::Mad
                } else {
                    Spread::Stddev
                },
                window_ms: duration_key("window", raw.window.as_deref(), "6h", &mut problem),
                k: number_key("k", raw.k, 3.0, &mut problem),
            }
        }
        other => {
            problem(format!(
                "method: expected one of seasonal_quantile, mad, stddev, got {:?}",
                other.unwrap_or("")
            ));
            Method::Robust {
                spread: Spread::Mad,
                window_ms: 0,
                k: 0.0,
            }
        }
    };
    let direction = match raw.direction.as_deref().unwrap_or("both") {
        "above" => Direction::Above,
        "below" => Direction::Below,
        "both" => Direction::Both,
        other => {
            problem(format!(
                "direction: expected one of above, below, both, got {other:?}"
            ));
            Direction::Both
        }
    };
    BaselineSpec {
        method,
        direction,
        resolve_band: fraction_key("resolve_band", raw.resolve_band, 1.0, 0.0, &mut problem),
    }
}

fn check_anti_flap(raw: RawAntiFlap, problems: &mut Vec<String>) -> AntiFlap {
    let mut problem = |text: String| problems.push(format!("anti_flap.{text}"));
    let of_last = match raw.of_last {
        Some(n) if (1..=MAX_OF_LAST).contains(&n) => n,
        Some(n) => {
            problem(format!(
                "of_last: expected a number of evaluations from 1 to {MAX_OF_LAST}, got {n}"
            ));
            1
        }
        None => {
            problem("of_last: must be set (the number of evaluations to look back over)".into());
            1
        }
    };
    let at_least = match raw.at_least {
        Some(_) => fraction_key("at_least", raw.at_least, 1.0, 0.0, &mut problem),
        None => {
            problem(
                "at_least: must be set (the fraction of them that must be anomalous)".to_string(),
            );
            1.0
        }
    };
    AntiFlap { of_last, at_least }
}

/// A duration key (positive), `default` when absent.
fn duration_key(
    key: &str,
    text: Option<&str>,
    default: &str,
    problem: &mut dyn FnMut(String),
) -> i64 {
    match rule_duration(text.unwrap_or(default)) {
        Ok(ms) if ms > 0 => ms,
        Ok(_) => {
            problem(format!("{key}: must be longer than 0"));
            0
        }
        Err(err) => {
            problem(format!("{key}: {err}"));
            0
        }
    }
}

/// A number in (`above`, 1], `default` when absent.
fn fraction_key(
    key: &str,
    value: Option<f64>,
    default: f64,
    above: f64,
    problem: &mut dyn FnMut(String),
) -> f64 {
    let value = value.unwrap_or(default);
    if value > above && value <= 1.0 {
        value
    } else {
        problem(format!(
            "{key}: expected a fraction above {above} and at most 1, got {value}"
        ));
        default
    }
}

/// A finite number not below 0, `default` when absent.
fn number_key(key: &str, value: Option<f64>, default: f64, problem: &mut dyn FnMut(String)) -> f64 {
    let value = value.unwrap_or(default);
    if value.is_finite() && value >= 0.0 {
        value
    } else {
        problem(format!(
            "{key}: expected a number of at least 0, got {value}"
        ));
        default
    }
}
