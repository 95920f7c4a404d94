//! The evaluator's core: the step grid, the values nodes exchange, selectors
//! (instant and range, with `offset` and `@`), subqueries, and the budget
//! every query runs under (deadline and samples loaded).
//!
//! Invariants: a [`Series`] has one slot per step of the grid it was
//! evaluated on; selector output is sorted by labels, as Prometheus's storage
//! returns series; within one node's output no two series share a label set
//! ([`merge_same_labels`] enforces it where labels change).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use promql_parser::label::MatchOp as ParserMatchOp;
use promql_parser::parser::{AtModifier, Expr, Offset, VectorSelector};

use super::{
    aggregate, binary, functions, is_stale_marker, InstantSample, Limits, QueryError, QueryValue,
    RangeSeries, Source, TOO_MANY_SAMPLES,
};
use crate::model::{Labels, MatchOp, Matcher, METRIC_NAME};

/// A subquery without its own step steps at Prometheus's default
/// evaluation interval.
const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// The instants a node is evaluated at: `start + i * step` for `i < len`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Grid {
    pub start: i64,
    pub step: i64,
    pub len: usize,
}

impl Grid {
    pub fn new(start: i64, end: i64, step: i64) -> Grid {
        let len = if end < start {
            0
        } else {
            ((end - start) / step) as usize + 1
        };
        Grid { start, step, len }
    }

    pub fn at(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }
}

/// One series' value at every step of a grid (`None`: no sample there).
#[derive(Clone, Debug)]
pub(super) struct Series {
    pub labels: Labels,
    pub values: Vec<Option<f64>>,
}

/// What a node evaluates to over a grid.
pub(super) enum Val {
    Scalar(Vec<f64>),
    Vector(Vec<Series>),
    String(String),
}

/// A range vector over a grid: each series' points, and for each step the
/// end of its window `[end - range, end]` (both ends included, as in 2.42).
pub(super) struct RangeArg {
    pub series: Vec<(Labels, Vec<(i64, f64)>)>,
    pub range_ms: i64,
    pub ends: Vec<i64>,
}

impl RangeArg {
    /// Applies `f(window, step)` to every series at every step whose window
    /// has points; series left without any value are dropped.
    pub fn map_windows(
        &self,
        mut f: impl FnMut(&[(i64, f64)], usize) -> Option<f64>,
    ) -> Vec<Series> {
        let mut out = Vec::new();
        for (labels, points) in &self.series {
            let mut values = vec![None; self.ends.len()];
            let (mut lo, mut hi) = (0, 0);
            let mut any = false;
            for (step, &end) in self.ends.iter().enumerate() {
                while hi < points.len() && points[hi].0 <= end {
                    hi += 1;
                }
                while lo < hi && points[lo].0 < end - self.range_ms {
                    lo += 1;
                }
                if lo < hi {
                    values[step] = f(&points[lo..hi], step);
                    any |= values[step].is_some();
                }
            }
            if any {
                out.push(Series {
                    labels: labels.clone(),
                    values,
                });
            }
        }
        out
    }
}

pub(super) struct Evaluator<'a> {
    source: &'a dyn Source,
    limits: &'a Limits,
    deadline: Instant,
    /// The query's own start and end, which `@ start()` and `@ end()` name.
    query_start: i64,
    query_end: i64,
    samples_loaded: usize,
}

impl<'a> Evaluator<'a> {
    pub fn new(
        source: &'a dyn Source,
        limits: &'a Limits,
        query_start: i64,
        query_end: i64,
    ) -> Evaluator<'a> {
        Evaluator {
            source,
            limits,
            deadline: Instant::now() + limits.timeout,
            query_start,
            query_end,
            samples_loaded: 0,
        }
    }

    /// Evaluates an instant query: any value type, a range vector included.
    pub fn instant(&mut self, expr: &Expr, time_ms: i64) -> Result<QueryValue, QueryError> {
        let grid = Grid::new(time_ms, time_ms, 1);
        if is_range_vector(expr) {
            let arg = self.range_arg(expr, &grid)?;
            let end = arg.ends[0];
            let matrix = arg
                .series
                .into_iter()
                .filter_map(|(labels, points)| {
                    let points: Vec<_> = points
                        .into_iter()
                        .filter(|&(t, _)| t >= end - arg.range_ms && t <= end)
                        .collect();
                    (!points.is_empty()).then_some(RangeSeries { labels, points })
                })
                .collect();
            return Ok(QueryValue::Matrix(matrix));
        }
        Ok(match self.eval(expr, &grid)? {
            Val::Scalar(values) => QueryValue::Scalar {
                timestamp_ms: time_ms,
                value: values[0],
            },
            Val::String(value) => QueryValue::String {
                timestamp_ms: time_ms,
                value,
            },
            Val::Vector(series) => QueryValue::Vector(
                series
                    .into_iter()
                    .filter_map(|s| {
                        s.values[0].map(|value| InstantSample {
                            labels: s.labels,
                            timestamp_ms: time_ms,
                            value,
                        })
                    })
                    .collect(),
            ),
        })
    }

    /// Evaluates a range query; the result is a matrix sorted by labels.
    pub fn range(
        &mut self,
        expr: &Expr,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<QueryValue, QueryError> {
        if is_range_vector(expr) {
            return Err(not_for_range_query("range vector"));
        }
        let grid = Grid::new(start, end, step);
        let series = match self.eval(expr, &grid)? {
            Val::Scalar(values) => vec![Series {
                labels: Labels::default(),
                values: values.into_iter().map(Some).collect(),
            }],
            Val::Vector(series) => series,
            Val::String(_) => return Err(not_for_range_query("string")),
        };
        let mut matrix: Vec<RangeSeries> = series
            .into_iter()
            .filter_map(|s| {
                let points: Vec<_> = s
                    .values
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| (grid.at(i), v)))
                    .collect();
                (!points.is_empty()).then_some(RangeSeries {
                    labels: s.labels,
                    points,
                })
            })
            .collect();
        matrix.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(QueryValue::Matrix(matrix))
    }

    pub fn eval(&mut self, expr: &Expr, grid: &Grid) -> Result<Val, QueryError> {
        self.check_deadline()?;
        match expr {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; grid.len])),
            Expr::StringLiteral(s) => Ok(Val::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, grid),
            Expr::Unary(u) => match self.eval(&u.expr, grid)? {
                Val::Scalar(values) => Ok(Val::Scalar(values.into_iter().map(|v| -v).collect())),
                Val::Vector(series) => {
                    let negated = series
                        .into_iter()
                        .map(|s| Series {
                            labels: drop_metric_name(&s.labels),
                            values: s.values.into_iter().map(|v| v.map(|v| -v)).collect(),
                        })
                        .collect();
                    Ok(Val::Vector(reject_same_labels(negated)?))
                }
                Val::String(_) => Err(QueryError::Execution(
                    "unary expression only allowed on expressions of type scalar or instant vector"
                        .into(),
                )),
            },
            Expr::Binary(b) => binary::eval(self, b, grid),
            Expr::Aggregate(a) => aggregate::eval(self, a, grid),
            Expr::Call(c) => functions::call(self, c, grid),
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.vector_selector(vs, grid, false)?)),
            Expr::MatrixSelector(_) | Expr::Subquery(_) => Err(QueryError::Execution(format!(
                "a range vector is not allowed here: {expr}"
            ))),
            Expr::Extension(_) => Err(QueryError::Execution(
                "extension expressions cannot be evaluated".into(),
            )),
        }
    }

    /// Evaluates `expr` and requires a scalar.
    pub fn eval_scalar(&mut self, expr: &Expr, grid: &Grid) -> Result<Vec<f64>, QueryError> {
        match self.eval(expr, grid)? {
            Val::Scalar(values) => Ok(values),
            _ => Err(QueryError::Execution(format!(
                "expected a scalar, got: {expr}"
            ))),
        }
    }

    /// Evaluates `expr` and requires an instant vector.
    pub fn eval_vector(&mut self, expr: &Expr, grid: &Grid) -> Result<Vec<Series>, QueryError> {
        match self.eval(expr, grid)? {
            Val::Vector(series) => Ok(series),
            _ => Err(QueryError::Execution(format!(
                "expected an instant vector, got: {expr}"
            ))),
        }
    }

    pub fn check_deadline(&self) -> Result<(), QueryError> {
        if Instant::now() >= self.deadline {
            Err(QueryError::Timeout)
        } else {
            Ok(())
        }
    }

    /// Accounts for `n` more samples held by the query.
    pub fn account(&mut self, n: usize) -> Result<(), QueryError> {
        self.samples_loaded += n;
        if self.samples_loaded > self.limits.max_samples {
            Err(QueryError::Execution(TOO_MANY_SAMPLES.into()))
        } else {
            Ok(())
        }
    }

    /// The instant each step of `grid` reads a selector at: the step itself
    /// or its `@` time, minus the offset.
    fn reference_times(
        &self,
        grid: &Grid,
        at: &Option<AtModifier>,
        offset: &Option<Offset>,
    ) -> Vec<i64> {
        let offset = match offset {
            Some(Offset::Pos(d)) => duration_ms(d),
            Some(Offset::Neg(d)) => -duration_ms(d),
            None => 0,
        };
        let fixed = at.as_ref().map(|at| match at {
            AtModifier::Start => self.query_start,
            AtModifier::End => self.query_end,
            AtModifier::At(time) => system_time_ms(time),
        });
        (0..grid.len)
            .map(|i| fixed.unwrap_or_else(|| grid.at(i)) - offset)
            .collect()
    }

    /// Reads the series a selector names with their samples in
    /// `[start, end]`, sorted by labels.
    fn select(
        &mut self,
        vs: &VectorSelector,
        start: i64,
        end: i64,
    ) -> Result<Vec<crate::store::SeriesSamples>, QueryError> {
        self.check_deadline()?;
        let matchers = selector_matchers(vs)?;
        let mut series = self
            .source
            .select(&matchers, start, end)
            .map_err(|err| QueryError::Storage(format!("{err:#}")))?;
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        self.account(series.iter().map(|s| s.samples.len()).sum())?;
        Ok(series)
    }

    /// An instant selector: at each step the newest sample no older than the
    /// lookback, unless that sample is a stale marker. With `timestamps`
    /// the value is the sample's own time in seconds (for `timestamp()`).
    pub fn vector_selector(
        &mut self,
        vs: &VectorSelector,
        grid: &Grid,
        timestamps: bool,
    ) -> Result<Vec<Series>, QueryError> {
        let refs = self.reference_times(grid, &vs.at, &vs.offset);
        let (Some(&lo), Some(&hi)) = (refs.iter().min(), refs.iter().max()) else {
            return Ok(Vec::new());
        };
        let lookback = self.limits.lookback_ms;
        let data = self.select(vs, lo - lookback, hi)?;
        let mut out = Vec::with_capacity(data.len());
        for s in data {
            let points = &s.samples;
            let mut values = vec![None; refs.len()];
            let mut next = 0;
            let mut any = false;
            for (i, &r) in refs.iter().enumerate() {
                while next < points.len() && points[next].0 <= r {
                    next += 1;
                }
                if next == 0 {
                    continue;
                }
                let (t, v) = points[next - 1];
                if t < r - lookback || is_stale_marker(v) {
                    continue;
                }
                values[i] = Some(if timestamps { t as f64 / 1000.0 } else { v });
                any = true;
            }
            if any {
                out.push(Series {
                    labels: s.labels,
                    values,
                });
            }
        }
        Ok(out)
    }

    /// A range vector argument: a range selector or a subquery.
    pub fn range_arg(&mut self, expr: &Expr, grid: &Grid) -> Result<RangeArg, QueryError> {
        match unwrap_parens(expr) {
            Expr::MatrixSelector(ms) => {
                let range_ms = duration_ms(&ms.range);
                let ends = self.reference_times(grid, &ms.vs.at, &ms.vs.offset);
                let (Some(&lo), Some(&hi)) = (ends.iter().min(), ends.iter().max()) else {
                    return Ok(RangeArg {
                        series: Vec::new(),
                        range_ms,
                        ends,
                    });
                };
                let series = self
                    .select(&ms.vs, lo - range_ms, hi)?
                    .into_iter()
                    .map(|s| {
                        let points = s
                            .samples
                            .into_iter()
                            .filter(|&(_, v)| !is_stale_marker(v))
                            .collect();
                        (s.labels, points)
                    })
                    .collect();
                Ok(RangeArg {
                    series,
                    range_ms,
                    ends,
                })
            }
            Expr::Subquery(sq) => {
                let range_ms = duration_ms(&sq.range);
                let step = sq
                    .step
                    .as_ref()
                    .map(duration_ms)
                    .filter(|&s| s > 0)
                    .unwrap_or(DEFAULT_SUBQUERY_STEP_MS);
                let ends = self.reference_times(grid, &sq.at, &sq.offset);
                let (Some(&lo), Some(&hi)) = (ends.iter().min(), ends.iter().max()) else {
                    return Ok(RangeArg {
                        series: Vec::new(),
                        range_ms,
                        ends,
                    });
                };
                // The inner steps are multiples of the step: the first one at
                // or after the earliest window start.
                let first = lo - range_ms;
                let mut start = first.div_euclid(step) * step;
                if start < first {
                    start += step;
                }
                let inner = Grid::new(start, hi, step);
                let series = self
                    .eval_vector(&sq.expr, &inner)?
                    .into_iter()
                    .map(|s| {
                        let points = s
                            .values
                            .iter()
                            .enumerate()
                            .filter_map(|(i, v)| v.map(|v| (inner.at(i), v)))
                            .collect();
                        (s.labels, points)
                    })
                    .collect();
                Ok(RangeArg {
                    series,
                    range_ms,
                    ends,
                })
            }
            other => Err(QueryError::Execution(format!(
                "expected a range vector, got: {other}"
            ))),
        }
    }
}

fn not_for_range_query(kind: &str) -> QueryError {
    QueryError::BadData(format!(
        "invalid expression type \"{kind}\" for range query, must be Scalar or instant Vector"
    ))
}

pub(super) fn unwrap_parens(mut expr: &Expr) -> &Expr {
    while let Expr::Paren(p) = expr {
        expr = &p.expr;
    }
    expr
}

fn is_range_vector(expr: &Expr) -> bool {
    matches!(
        unwrap_parens(expr),
        Expr::MatrixSelector(_) | Expr::Subquery(_)
    )
}

pub(super) fn duration_ms(d: &Duration) -> i64 {
    d.as_millis() as i64
}

fn system_time_ms(time: &SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(before) => -(before.duration().as_millis() as i64),
    }
}

/// The selector's matchers in the store's terms, its metric name included.
pub fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>, QueryError> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(QueryError::BadData(
            "parse error: \"or\" between label matchers is not supported".into(),
        ));
    }
    let mut matchers = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    for m in &vs.matchers.matchers {
        let op = match m.op {
            ParserMatchOp::Equal => MatchOp::Equal,
            ParserMatchOp::NotEqual => MatchOp::NotEqual,
            ParserMatchOp::Re(_) => MatchOp::Regex,
            ParserMatchOp::NotRe(_) => MatchOp::NotRegex,
        };
        let matcher = Matcher::new(op, m.name.as_str(), m.value.as_str()).map_err(|err| {
            QueryError::BadData(format!(
                "parse error: invalid regular expression {:?}: {err}",
                m.value
            ))
        })?;
        matchers.push(matcher);
    }
    if let Some(name) = &vs.name {
        if !matchers.iter().any(|m| m.name == METRIC_NAME) {
            matchers.push(Matcher::equal(METRIC_NAME, name.as_str()));
        }
    }
    Ok(matchers)
}

pub(super) fn drop_metric_name(labels: &Labels) -> Labels {
    if labels.get(METRIC_NAME).is_none() {
        return labels.clone();
    }
    Labels::new(labels.iter().filter(|(name, _)| *name != METRIC_NAME))
}

/// Joins series whose labels became equal (after a function dropped the
/// metric name, say); two values at one step are Prometheus's error.
pub(super) fn merge_same_labels(series: Vec<Series>) -> Result<Vec<Series>, QueryError> {
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(series.len());
    let mut out: Vec<Series> = Vec::with_capacity(series.len());
    for s in series {
        match index.get(&s.labels) {
            Some(&i) => {
                for (step, value) in s.values.into_iter().enumerate() {
                    if let Some(value) = value {
                        if out[i].values[step].is_some() {
                            return Err(QueryError::Execution(
                                "vector cannot contain metrics with the same labelset".into(),
                            ));
                        }
                        out[i].values[step] = Some(value);
                    }
                }
            }
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// Range functions and negation refuse equal label sets outright, whether
/// or not their values share a step (Prometheus checks the whole matrix).
pub(super) fn reject_same_labels(series: Vec<Series>) -> Result<Vec<Series>, QueryError> {
    let series: Vec<Series> = series
        .into_iter()
        .filter(|s| s.values.iter().any(Option::is_some))
        .collect();
    let mut seen = std::collections::HashSet::with_capacity(series.len());
    if series.iter().all(|s| seen.insert(&s.labels)) {
        Ok(series)
    } else {
        Err(QueryError::Execution(
            "vector cannot contain metrics with the same labelset".into(),
        ))
    }
}
