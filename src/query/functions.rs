//! PromQL's functions, each with Prometheus 2.42's rules: which need two
//! samples, how `rate` extrapolates to the window's edges, which keep the
//! metric name (`last_over_time`, `label_*`, `sort*`) and which drop it.

use std::collections::{HashMap, HashSet};

use promql_parser::parser::{Call, Expr};

use super::eval::{
    drop_metric_name, merge_same_labels, reject_same_labels, selector_matchers, unwrap_parens,
    Evaluator, Grid, RangeArg, Series, Val,
};
use super::QueryError;
use crate::model::{Labels, MatchOp, METRIC_NAME};

pub(super) fn call(ev: &mut Evaluator, call: &Call, grid: &Grid) -> Result<Val, QueryError> {
    let name = call.func.name;
    let args: Vec<&Expr> = call.args.args.iter().map(|a| a.as_ref()).collect();
    if let Some(result) = range_function(ev, name, &args, grid)? {
        return Ok(result);
    }
    if let Some(f) = math_function(name) {
        let series = ev.eval_vector(args[0], grid)?;
        return elementwise(series, |_, v| Some(f(v)));
    }
    if let Some(part) = date_function(name) {
        let series = match args.first() {
            Some(arg) => ev.eval_vector(arg, grid)?,
            None => vec![Series {
                labels: Labels::default(),
                values: (0..grid.len)
                    .map(|i| Some(grid.at(i) as f64 / 1000.0))
                    .collect(),
            }],
        };
        return elementwise(series, |_, v| Some(date_part(part, v)));
    }
    match name {
        "time" => Ok(Val::Scalar(
            (0..grid.len).map(|i| grid.at(i) as f64 / 1000.0).collect(),
        )),
        "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; grid.len])),
        "vector" => {
            let values = ev.eval_scalar(args[0], grid)?;
            Ok(Val::Vector(vec![Series {
                labels: Labels::default(),
                values: values.into_iter().map(Some).collect(),
            }]))
        }
        "scalar" => {
            let series = ev.eval_vector(args[0], grid)?;
            Ok(Val::Scalar(
                (0..grid.len)
                    .map(|i| {
                        let mut present = series.iter().filter_map(|s| s.values[i]);
                        match (present.next(), present.next()) {
                            (Some(v), None) => v,
                            _ => f64::NAN,
                        }
                    })
                    .collect(),
            ))
        }
        "timestamp" => {
            let series = match unwrap_parens(args[0]) {
                // On a selector it is the sample's own time, not the step's.
                Expr::VectorSelector(vs) => ev.vector_selector(vs, grid, true)?,
                other => {
                    let mut series = ev.eval_vector(other, grid)?;
                    for s in &mut series {
                        for (i, v) in s.values.iter_mut().enumerate() {
                            if v.is_some() {
                                *v = Some(grid.at(i) as f64 / 1000.0);
                            }
                        }
                    }
                    series
                }
            };
            elementwise(series, |_, v| Some(v))
        }
        "round" => {
            let series = ev.eval_vector(args[0], grid)?;
            let to_nearest = match args.get(1) {
                Some(arg) => ev.eval_scalar(arg, grid)?,
                None => vec![1.0; grid.len],
            };
            elementwise(series, |step, v| {
                let inverse = 1.0 / to_nearest[step];
                Some((v * inverse + 0.5).floor() / inverse)
            })
        }
        "clamp" | "clamp_min" | "clamp_max" => {
            let series = ev.eval_vector(args[0], grid)?;
            let (min, max) = match name {
                "clamp" => (
                    ev.eval_scalar(args[1], grid)?,
                    ev.eval_scalar(args[2], grid)?,
                ),
                "clamp_min" => (
                    ev.eval_scalar(args[1], grid)?,
                    vec![f64::INFINITY; grid.len],
                ),
                _ => (
                    vec![f64::NEG_INFINITY; grid.len],
                    ev.eval_scalar(args[1], grid)?,
                ),
            };
            elementwise(series, |step, v| {
                let (lo, hi) = (min[step], max[step]);
                // clamp with min > max yields nothing; Go's Max/Min pass NaN on.
                if name == "clamp" && hi < lo {
                    None
                } else {
                    Some(go_min(go_max(v, lo), hi))
                }
            })
        }
        "absent" => {
            let series = ev.eval_vector(args[0], grid)?;
            let values = (0..grid.len)
                .map(|i| {
                    if series.iter().any(|s| s.values[i].is_some()) {
                        None
                    } else {
                        Some(1.0)
                    }
                })
                .collect();
            Ok(absent_result(args[0], values))
        }
        "histogram_quantile" => {
            let q = ev.eval_scalar(args[0], grid)?;
            let series = ev.eval_vector(args[1], grid)?;
            histogram_quantile(&q, series, grid)
        }
        "label_replace" => {
            let series = ev.eval_vector(args[0], grid)?;
            let strings = string_args(ev, &args[1..], grid)?;
            label_replace(series, &strings[0], &strings[1], &strings[2], &strings[3])
        }
        "label_join" => {
            let series = ev.eval_vector(args[0], grid)?;
            let strings = string_args(ev, &args[1..], grid)?;
            label_join(series, &strings[0], &strings[1], &strings[2..])
        }
        "sort" | "sort_desc" => {
            let mut series = ev.eval_vector(args[0], grid)?;
            // Order only shows in an instant query's vector; a range query's
            // matrix is sorted by labels.
            if grid.len == 1 {
                let descending = name == "sort_desc";
                series.sort_by(|a, b| {
                    let (a, b) = (
                        a.values[0].unwrap_or(f64::NAN),
                        b.values[0].unwrap_or(f64::NAN),
                    );
                    match (a.is_nan(), b.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if descending => b.total_cmp(&a),
                        _ => a.total_cmp(&b),
                    }
                });
            }
            Ok(Val::Vector(series))
        }
        _ => Err(QueryError::BadData(format!(
            "function \"{name}\" is not supported by sonde"
        ))),
    }
}

/// Applies `f(step, value)` to every value, dropping the metric name.
fn elementwise(
    series: Vec<Series>,
    f: impl Fn(usize, f64) -> Option<f64>,
) -> Result<Val, QueryError> {
    let out = series
        .into_iter()
        .map(|s| Series {
            labels: drop_metric_name(&s.labels),
            values: s
                .values
                .into_iter()
                .enumerate()
                .map(|(i, v)| v.and_then(|v| f(i, v)))
                .collect(),
        })
        .collect();
    Ok(Val::Vector(merge_same_labels(out)?))
}

fn string_args(ev: &mut Evaluator, args: &[&Expr], grid: &Grid) -> Result<Vec<String>, QueryError> {
    args.iter()
        .map(|arg| match ev.eval(arg, grid)? {
            Val::String(s) => Ok(s),
            _ => Err(QueryError::Execution(format!(
                "expected a string, got: {arg}"
            ))),
        })
        .collect()
}

/// `absent()`'s one series: the labels its selector pins with `=`.
fn absent_result(arg: &Expr, values: Vec<Option<f64>>) -> Val {
    let selector = match unwrap_parens(arg) {
        Expr::VectorSelector(vs) => Some(vs),
        Expr::MatrixSelector(ms) => Some(&ms.vs),
        _ => None,
    };
    let mut labels = Labels::default();
    if let Some(matchers) = selector.and_then(|vs| selector_matchers(vs).ok()) {
        // The first `=` of a name sets it; any later matcher of that name
        // removes it again (Prometheus's historic behaviour).
        let mut has: HashSet<&str> = HashSet::new();
        for m in matchers.iter().filter(|m| m.name != METRIC_NAME) {
            if m.op == MatchOp::Equal && has.insert(m.name.as_str()) {
                labels.set(m.name.clone(), m.value.clone());
            } else {
                labels.set(m.name.clone(), String::new());
            }
        }
    }
    if values.iter().all(Option::is_none) {
        return Val::Vector(Vec::new());
    }
    Val::Vector(vec![Series { labels, values }])
}

/// The functions over a range vector; `None` when `name` is not one.
fn range_function(
    ev: &mut Evaluator,
    name: &str,
    args: &[&Expr],
    grid: &Grid,
) -> Result<Option<Val>, QueryError> {
    let (range_index, scalar_index) = match name {
        "rate" | "irate" | "increase" | "delta" | "idelta" | "deriv" | "changes" | "resets"
        | "avg_over_time" | "min_over_time" | "max_over_time" | "sum_over_time"
        | "count_over_time" | "last_over_time" | "present_over_time" | "stddev_over_time"
        | "stdvar_over_time" | "absent_over_time" => (0, None),
        "predict_linear" => (0, Some(1)),
        "quantile_over_time" => (1, Some(0)),
        _ => return Ok(None),
    };
    let scalar = match scalar_index {
        Some(i) => ev.eval_scalar(args[i], grid)?,
        None => Vec::new(),
    };
    let arg = ev.range_arg(args[range_index], grid)?;
    if name == "absent_over_time" {
        let present = arg.map_windows(|_, _| Some(1.0));
        let values = (0..grid.len)
            .map(|i| {
                if present.iter().any(|s| s.values[i].is_some()) {
                    None
                } else {
                    Some(1.0)
                }
            })
            .collect();
        return Ok(Some(absent_result(args[range_index], values)));
    }
    let range_secs = arg.range_ms as f64 / 1000.0;
    let mut series = window_values(&arg, name, &scalar, range_secs, grid);
    if name != "last_over_time" {
        for s in &mut series {
            s.labels = drop_metric_name(&s.labels);
        }
    }
    Ok(Some(Val::Vector(reject_same_labels(series)?)))
}

fn window_values(
    arg: &RangeArg,
    name: &str,
    scalar: &[f64],
    range_secs: f64,
    grid: &Grid,
) -> Vec<Series> {
    arg.map_windows(|w, step| {
        let end = arg.ends[step];
        match name {
            "rate" => extrapolated_rate(w, end - arg.range_ms, end, true, Some(range_secs)),
            "increase" => extrapolated_rate(w, end - arg.range_ms, end, true, None),
            "delta" => extrapolated_rate(w, end - arg.range_ms, end, false, None),
            "irate" => instant_delta(w, true),
            "idelta" => instant_delta(w, false),
            "deriv" => (w.len() >= 2).then(|| linear_regression(w, w[0].0).0),
            "predict_linear" => (w.len() >= 2).then(|| {
                let (slope, intercept) = linear_regression(w, grid.at(step));
                slope * scalar[step] + intercept
            }),
            "changes" => Some(
                w.windows(2)
                    .filter(|p| !(p[0].1 == p[1].1 || (p[0].1.is_nan() && p[1].1.is_nan())))
                    .count() as f64,
            ),
            "resets" => Some(w.windows(2).filter(|p| p[1].1 < p[0].1).count() as f64),
            "avg_over_time" => Some(compensated_mean(w)),
            "min_over_time" => Some(w.iter().skip(1).fold(w[0].1, |acc, p| {
                if p.1 < acc || acc.is_nan() {
                    p.1
                } else {
                    acc
                }
            })),
            "max_over_time" => Some(w.iter().skip(1).fold(w[0].1, |acc, p| {
                if p.1 > acc || acc.is_nan() {
                    p.1
                } else {
                    acc
                }
            })),
            "sum_over_time" => Some(compensated_sum(w.iter().map(|p| p.1))),
            "count_over_time" => Some(w.len() as f64),
            "last_over_time" => Some(w[w.len() - 1].1),
            "present_over_time" => Some(1.0),
            "stddev_over_time" => Some(compensated_variance(w).sqrt()),
            "stdvar_over_time" => Some(compensated_variance(w)),
            "quantile_over_time" => {
                let mut values: Vec<f64> = w.iter().map(|p| p.1).collect();
                Some(quantile(scalar[step], &mut values))
            }
            _ => unreachable!("range_function lists every name"),
        }
    })
}

/// `rate`, `increase` and `delta`: the change over the window, corrected
/// for counter resets and extrapolated towards the window's edges, but no
/// further than half a sample interval past the outermost samples (and,
/// for counters, not below zero). The dashboard's charts use it too.
pub(crate) fn extrapolated_rate(
    w: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    is_counter: bool,
    per_second_over: Option<f64>,
) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (first, last) = (w[0], w[w.len() - 1]);
    let mut result = last.1 - first.1;
    if is_counter {
        let mut previous = first.1;
        for &(_, v) in &w[1..] {
            if v < previous {
                result += previous;
            }
            previous = v;
        }
    }
    let mut to_start = (first.0 - range_start) as f64 / 1000.0;
    let to_end = (range_end - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let average_gap = sampled / (w.len() - 1) as f64;
    if is_counter && result > 0.0 && first.1 >= 0.0 {
        // A counter started at most this long before the first sample.
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average_gap * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        average_gap / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        average_gap / 2.0
    };
    // One factor, then one multiplication: the same rounding as Prometheus.
    let mut factor = interval / sampled;
    if let Some(range_secs) = per_second_over {
        factor /= range_secs;
    }
    Some(result * factor)
}

/// `irate` and `idelta`: from the last two samples only.
fn instant_delta(w: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (previous, last) = (w[w.len() - 2], w[w.len() - 1]);
    let mut result = if is_rate && last.1 < previous.1 {
        last.1 // a counter reset: the counter restarted from zero
    } else {
        last.1 - previous.1
    };
    let interval = last.0 - previous.0;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least squares over (seconds since `intercept_ms`, value): (slope,
/// intercept at `intercept_ms`), with compensated sums.
fn linear_regression(w: &[(i64, f64)], intercept_ms: i64) -> (f64, f64) {
    let first = w[0].1;
    if w.iter().all(|p| p.1 == first) {
        return if first.is_infinite() {
            (f64::NAN, f64::NAN)
        } else {
            (0.0, first)
        };
    }
    let n = w.len() as f64;
    let (mut sum_x, mut sum_y, mut sum_xy, mut sum_x2) = (
        Kahan::default(),
        Kahan::default(),
        Kahan::default(),
        Kahan::default(),
    );
    for &(t, v) in w {
        let x = (t - intercept_ms) as f64 / 1e3;
        sum_x.add(x);
        sum_y.add(v);
        sum_xy.add(x * v);
        sum_x2.add(x * x);
    }
    let (sum_x, sum_y) = (sum_x.sum + sum_x.c, sum_y.sum + sum_y.c);
    let (sum_xy, sum_x2) = (sum_xy.sum + sum_xy.c, sum_x2.sum + sum_x2.c);
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    (slope, sum_y / n - slope * sum_x / n)
}

/// Kahan-Babuska (Neumaier) summation: the running sum and the
/// compensation for the low-order bits it lost.
#[derive(Default)]
struct Kahan {
    sum: f64,
    c: f64,
}

impl Kahan {
    fn add(&mut self, inc: f64) {
        let t = self.sum + inc;
        if self.sum.abs() >= inc.abs() {
            self.c += (self.sum - t) + inc;
        } else {
            self.c += (inc - t) + self.sum;
        }
        self.sum = t;
    }

    /// The compensated total; an infinite sum stands as it is.
    fn total(&self) -> f64 {
        if self.sum.is_infinite() {
            self.sum
        } else {
            self.sum + self.c
        }
    }
}

fn compensated_sum(values: impl Iterator<Item = f64>) -> f64 {
    let mut sum = Kahan::default();
    values.for_each(|v| sum.add(v));
    sum.total()
}

/// `avg_over_time`: a running mean with compensated steps.
fn compensated_mean(w: &[(i64, f64)]) -> f64 {
    let (mut mean, mut count) = (Kahan::default(), 0.0f64);
    for &(_, v) in w {
        count += 1.0;
        if mean.sum.is_infinite() && infinite_mean_stays(mean.sum, v) {
            continue;
        }
        mean.add(v / count - mean.sum / count);
    }
    mean.total()
}

/// Welford's variance with compensated mean and sum of squares.
fn compensated_variance(w: &[(i64, f64)]) -> f64 {
    let (mut mean, mut aux, mut count) = (Kahan::default(), Kahan::default(), 0.0f64);
    for &(_, v) in w {
        count += 1.0;
        let delta = v - (mean.sum + mean.c);
        mean.add(delta / count);
        aux.add(delta * (v - (mean.sum + mean.c)));
    }
    (aux.sum + aux.c) / count
}

/// An infinite mean cannot move for a same-signed infinity or any finite
/// value (subtracting it would make NaN).
fn infinite_mean_stays(mean: f64, v: f64) -> bool {
    (v.is_infinite() && (mean > 0.0) == (v > 0.0)) || (!v.is_infinite() && !v.is_nan())
}

/// The running mean of the `avg` aggregation, which survives huge values.
pub(super) fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (mut mean, mut count) = (0.0f64, 0.0f64);
    for v in values {
        count += 1.0;
        if mean.is_infinite() && infinite_mean_stays(mean, v) {
            continue;
        }
        mean += v / count - mean / count;
    }
    mean
}

/// Population variance by Welford's method, as `stddev`/`stdvar` fold it.
pub(super) fn variance(values: impl Iterator<Item = f64>) -> f64 {
    let (mut count, mut mean, mut aux) = (0.0, 0.0, 0.0);
    for v in values {
        count += 1.0;
        let delta = v - mean;
        mean += delta / count;
        aux += delta * (v - mean);
    }
    aux / count
}

/// The φ-quantile of `values` by linear interpolation between ranks.
pub(super) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // NaN sorts first, as in Prometheus.
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(b),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

fn histogram_quantile(q: &[f64], series: Vec<Series>, grid: &Grid) -> Result<Val, QueryError> {
    // Buckets group by their labels without `le` and the metric name.
    let mut groups: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for (i, s) in series.iter().enumerate() {
        let Some(upper) = s.labels.get("le").and_then(parse_go_float) else {
            continue;
        };
        let key = Labels::new(
            s.labels
                .iter()
                .filter(|(n, _)| *n != "le" && *n != METRIC_NAME),
        );
        let slot = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[slot].1.push((upper, i));
    }
    let mut out = Vec::with_capacity(groups.len());
    for (labels, members) in groups {
        let values = (0..grid.len)
            .map(|step| {
                let mut buckets: Vec<(f64, f64)> = members
                    .iter()
                    .filter_map(|&(upper, i)| series[i].values[step].map(|c| (upper, c)))
                    .collect();
                (!buckets.is_empty()).then(|| bucket_quantile(q[step], &mut buckets))
            })
            .collect();
        out.push(Series { labels, values });
    }
    Ok(Val::Vector(out))
}

/// Parses a float as Go's strconv does for `le` values (`+Inf` included).
fn parse_go_float(s: &str) -> Option<f64> {
    s.parse::<f64>().ok()
}

/// The quantile of cumulative buckets (upper bound, count): linear
/// interpolation inside the bucket the rank falls in.
pub fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
        return f64::NAN;
    }
    // Buckets with the same bound add up; counts never decrease.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(upper, count) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == upper => last.1 += count,
            _ => merged.push((upper, count)),
        }
    }
    let mut max = f64::NEG_INFINITY;
    for b in &mut merged {
        if b.1 > max {
            max = b.1;
        } else if b.1 < max {
            b.1 = max;
        }
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = merged[..merged.len() - 1]
        .iter()
        .position(|b| b.1 >= rank)
        .unwrap_or(merged.len() - 1);
    if b == merged.len() - 1 {
        return merged[merged.len() - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let (mut start, end, mut count) = (0.0, merged[b].0, merged[b].1);
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn label_replace(
    series: Vec<Series>,
    dst: &str,
    replacement: &str,
    src: &str,
    regex: &str,
) -> Result<Val, QueryError> {
    let re = regex::Regex::new(&format!("^(?s:{regex})$")).map_err(|err| {
        QueryError::Execution(format!(
            "invalid regular expression in label_replace(): {regex}: {err}"
        ))
    })?;
    if !is_valid_label_name(dst) {
        return Err(QueryError::Execution(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let out = series
        .into_iter()
        .map(|mut s| {
            let value = s.labels.get(src).unwrap_or("");
            if let Some(caps) = re.captures(value) {
                let mut expanded = String::new();
                caps.expand(replacement, &mut expanded);
                s.labels.set(dst.to_string(), expanded);
            }
            s
        })
        .collect();
    Ok(Val::Vector(merge_same_labels(out)?))
}

fn label_join(
    series: Vec<Series>,
    dst: &str,
    separator: &str,
    sources: &[String],
) -> Result<Val, QueryError> {
    if !is_valid_label_name(dst) {
        return Err(QueryError::Execution(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let out = series
        .into_iter()
        .map(|mut s| {
            let joined = sources
                .iter()
                .map(|src| s.labels.get(src).unwrap_or(""))
                .collect::<Vec<_>>()
                .join(separator);
            s.labels.set(dst.to_string(), joined);
            s
        })
        .collect();
    Ok(Val::Vector(merge_same_labels(out)?))
}

/// Go's math.Max/Min: NaN wins, unlike f64::max.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn math_function(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |v| v * 180.0 / std::f64::consts::PI,
        "rad" => |v| v * std::f64::consts::PI / 180.0,
        // Go's sign: zero and NaN stay as they are.
        "sgn" => |v| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

#[derive(Clone, Copy)]
enum DatePart {
    DayOfMonth,
    DayOfWeek,
    DayOfYear,
    DaysInMonth,
    Hour,
    Minute,
    Month,
    Year,
}

fn date_function(name: &str) -> Option<DatePart> {
    Some(match name {
        "day_of_month" => DatePart::DayOfMonth,
        "day_of_week" => DatePart::DayOfWeek,
        "day_of_year" => DatePart::DayOfYear,
        "days_in_month" => DatePart::DaysInMonth,
        "hour" => DatePart::Hour,
        "minute" => DatePart::Minute,
        "month" => DatePart::Month,
        "year" => DatePart::Year,
        _ => return None,
    })
}

/// A part of the UTC date of `seconds` (truncated to whole seconds, as Go's
/// time.Unix does).
fn date_part(part: DatePart, seconds: f64) -> f64 {
    let secs = seconds as i64;
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = crate::civil::civil_from_days(days);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    (match part {
        DatePart::DayOfMonth => day,
        DatePart::DayOfWeek => (days + 4).rem_euclid(7), // 1970-01-01 was a Thursday
        DatePart::DayOfYear => month_days[..(month - 1) as usize].iter().sum::<i64>() + day,
        DatePart::DaysInMonth => month_days[(month - 1) as usize],
        DatePart::Hour => of_day / 3600,
        DatePart::Minute => of_day % 3600 / 60,
        DatePart::Month => month,
        DatePart::Year => year,
    }) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_the_calendar() {
        // 2024-02-29T13:45:00Z, a Thursday.
        let t = 1_709_214_300.0;
        assert_eq!(date_part(DatePart::Year, t), 2024.0);
        assert_eq!(date_part(DatePart::Month, t), 2.0);
        assert_eq!(date_part(DatePart::DayOfMonth, t), 29.0);
        assert_eq!(date_part(DatePart::DaysInMonth, t), 29.0);
        assert_eq!(date_part(DatePart::DayOfYear, t), 60.0);
        assert_eq!(date_part(DatePart::DayOfWeek, t), 4.0);
        assert_eq!(date_part(DatePart::Hour, t), 13.0);
        assert_eq!(date_part(DatePart::Minute, t), 45.0);
    }

    #[test]
    fn bucket_quantile_interpolates_inside_a_bucket() {
        let mut buckets = vec![(f64::INFINITY, 10.0), (1.0, 5.0), (0.5, 0.0)];
        assert_eq!(bucket_quantile(0.5, &mut buckets), 1.0);
        let mut buckets = vec![(0.5, 2.0), (1.0, 6.0), (f64::INFINITY, 10.0)];
        assert_eq!(bucket_quantile(0.4, &mut buckets), 0.75);
        // Above the highest finite bound: that bound.
        let mut buckets = vec![(0.5, 2.0), (1.0, 6.0), (f64::INFINITY, 10.0)];
        assert_eq!(bucket_quantile(0.9, &mut buckets), 1.0);
    }

    #[test]
    fn rate_extrapolates_to_the_window_edges() {
        // Samples every 10 s from 10 s to 50 s in a [0, 60] window.
        let w: Vec<(i64, f64)> = (1..=5).map(|i| (i * 10_000, i as f64 * 10.0)).collect();
        // The counter would have been 0 at 0 s: extrapolate to the start
        // (10 s < 1.1 * 10 s) and to the end: 60 over 60 s.
        let increase = extrapolated_rate(&w, 0, 60_000, true, None).unwrap();
        assert!((increase - 60.0).abs() < 1e-9, "{increase}");
        assert_eq!(extrapolated_rate(&w[..1], 0, 60_000, true, None), None);
    }
}
