//! Query: PromQL over the store, with Prometheus 2.42's semantics.
//!
//! [`instant_query`] and [`range_query`] parse a query with the
//! promql-parser crate and evaluate it over a [`Source`] of samples. The
//! evaluator works on a whole grid of evaluation steps at once (one per step
//! of a range query, a single one for an instant query): every selector reads
//! its samples from the store once for the whole range, and every node turns
//! whole columns of steps into columns of steps. The rules it follows are
//! Prometheus's: a 5-minute lookback for instant selectors, stale markers that
//! end a series, closed `[t - range, t]` windows, extrapolation in
//! `rate`/`increase`/`delta`, label dropping by functions, aggregations and
//! arithmetic, and its error texts.

mod aggregate;
mod binary;
mod eval;
mod functions;

use std::sync::Mutex;
use std::time::Duration;

use crate::model::{Labels, Matcher};
use crate::store::rollup::fold_buckets;
use crate::store::{Resolution, SeriesBuckets, SeriesSamples, Store};

pub use aggregate::format_go_float;
pub use eval::selector_matchers;
pub use functions::bucket_quantile;
pub(crate) use functions::extrapolated_rate;

/// Where the evaluator reads samples: every series the matchers select, with
/// its samples in `[start_ms, end_ms]`.
pub trait Source {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> anyhow::Result<Vec<SeriesSamples>>;

    /// Only the label sets of what [`Source::select`] would return, for the
    /// series and label APIs; a source may answer without reading samples.
    fn series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> anyhow::Result<Vec<Labels>> {
        Ok(self
            .select(matchers, start_ms, end_ms)?
            .into_iter()
            .map(|s| s.labels)
            .collect())
    }

    /// As [`Source::select`], for a reader that evaluates every `step_ms`:
    /// a source with rollup tiers may answer from a coarser one (see
    /// [`Store::select_step`]); by default, the raw samples.
    fn select_step(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        _step_ms: i64,
    ) -> anyhow::Result<Vec<SeriesSamples>> {
        self.select(matchers, start_ms, end_ms)
    }

    /// Every series the matchers select with its buckets of a rollup tier
    /// starting in `[start_ms, end_ms]`: a store reads its rollups; by
    /// default, the raw samples folded into buckets.
    fn select_rollups(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        resolution: Resolution,
    ) -> anyhow::Result<Vec<SeriesBuckets>> {
        let width = resolution.bucket_ms();
        anyhow::ensure!(width > 0, "raw samples have no buckets");
        let last_instant = end_ms
            .div_euclid(width)
            .saturating_add(1)
            .saturating_mul(width)
            - 1;
        Ok(self
            .select(matchers, start_ms, last_instant)?
            .into_iter()
            .map(|s| SeriesBuckets {
                buckets: fold_buckets(s.samples, width),
                labels: s.labels,
            })
            .collect())
    }
}

/// Series held in memory: small fixed data sets (tests, fuzzing) that
/// PromQL evaluates like stored ones.
pub struct InMemory(pub Vec<SeriesSamples>);

impl Source for InMemory {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> anyhow::Result<Vec<SeriesSamples>> {
        Ok(self
            .0
            .iter()
            .filter(|s| matchers.iter().all(|m| m.matches(&s.labels)))
            .map(|s| SeriesSamples {
                labels: s.labels.clone(),
                samples: s
                    .samples
                    .iter()
                    .copied()
                    .filter(|(t, _)| (start_ms..=end_ms).contains(t))
                    .collect(),
            })
            .filter(|s| !s.samples.is_empty())
            .collect())
    }
}

impl Source for Store {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> anyhow::Result<Vec<SeriesSamples>> {
        Store::select(self, matchers, start_ms, end_ms)
    }

    /// From the stored chunks overlapping the range, none decoded.
    fn series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> anyhow::Result<Vec<Labels>> {
        Ok(self
            .select_chunks(matchers, start_ms, end_ms)?
            .into_iter()
            .map(|s| s.labels)
            .collect())
    }

    fn select_step(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> anyhow::Result<Vec<SeriesSamples>> {
        Store::select_step(self, matchers, start_ms, end_ms, step_ms)
    }

    fn select_rollups(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        resolution: Resolution,
    ) -> anyhow::Result<Vec<SeriesBuckets>> {
        Store::select_rollups(self, matchers, start_ms, end_ms, resolution)
    }
}

/// The store as the server shares it: locked for each selection only, so a
/// long query does not stall the collection loop for its whole duration.
impl Source for Mutex<Store> {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> anyhow::Result<Vec<SeriesSamples>> {
        self.lock()
            .map_err(|_| anyhow::anyhow!("the store lock is poisoned"))?
            .select(matchers, start_ms, end_ms)
    }

    fn series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> anyhow::Result<Vec<Labels>> {
        Source::series(
            &*self
                .lock()
                .map_err(|_| anyhow::anyhow!("the store lock is poisoned"))?,
            matchers,
            start_ms,
            end_ms,
        )
    }

    fn select_step(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> anyhow::Result<Vec<SeriesSamples>> {
        self.lock()
            .map_err(|_| anyhow::anyhow!("the store lock is poisoned"))?
            .select_step(matchers, start_ms, end_ms, step_ms)
    }

    fn select_rollups(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        resolution: Resolution,
    ) -> anyhow::Result<Vec<SeriesBuckets>> {
        self.lock()
            .map_err(|_| anyhow::anyhow!("the store lock is poisoned"))?
            .select_rollups(matchers, start_ms, end_ms, resolution)
    }
}

/// The bit pattern Prometheus writes as a staleness marker: a NaN that says
/// "this series ended here", distinct from any NaN a metric may report.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

pub fn is_stale_marker(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// How much a query may cost, and how far back an instant selector looks.
#[derive(Clone, Debug)]
pub struct Limits {
    pub timeout: Duration,
    pub max_samples: usize,
    pub lookback_ms: i64,
}

impl Default for Limits {
    /// Prometheus's defaults: 2 minutes, 50 million samples, 5 minutes.
    fn default() -> Limits {
        Limits {
            timeout: Duration::from_secs(120),
            max_samples: 50_000_000,
            lookback_ms: 5 * 60 * 1000,
        }
    }
}

/// Why a query gave no result; each kind maps to one of Prometheus's API
/// error types.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QueryError {
    /// The query does not parse or does not fit the request (`bad_data`).
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed on this data, e.g. a many-to-many match (`execution`).
    #[error("{0}")]
    Execution(String),
    /// The query ran past its timeout (`timeout`).
    #[error("query timed out in query execution")]
    Timeout,
    /// The store could not be read (`internal`).
    #[error("{0}")]
    Storage(String),
}

/// The query processing limit, in Prometheus's words.
pub const TOO_MANY_SAMPLES: &str =
    "query processing would load too many samples into memory in query execution";

/// One sample of an instant vector result.
#[derive(Clone, Debug, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    pub timestamp_ms: i64,
    pub value: f64,
}

/// One series of a matrix result, points oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
}

/// A query's result, as the HTTP API's `resultType` names it.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryValue {
    Scalar { timestamp_ms: i64, value: f64 },
    String { timestamp_ms: i64, value: String },
    Vector(Vec<InstantSample>),
    Matrix(Vec<RangeSeries>),
}

impl QueryValue {
    pub fn result_type(&self) -> &'static str {
        match self {
            QueryValue::Scalar { .. } => "scalar",
            QueryValue::String { .. } => "string",
            QueryValue::Vector(_) => "vector",
            QueryValue::Matrix(_) => "matrix",
        }
    }
}

/// Parses a query, with the parser's message made Prometheus-like.
pub fn parse(query: &str) -> Result<promql_parser::parser::Expr, QueryError> {
    promql_parser::parser::parse(query).map_err(|msg| QueryError::BadData(parse_error(&msg)))
}

fn parse_error(msg: &str) -> String {
    let msg = msg.trim();
    if msg.starts_with("parse error") {
        msg.to_string()
    } else {
        format!("parse error: {msg}")
    }
}

/// Evaluates `query` at one instant.
pub fn instant_query(
    source: &dyn Source,
    limits: &Limits,
    query: &str,
    time_ms: i64,
) -> Result<QueryValue, QueryError> {
    let expr = parse(query)?;
    eval::Evaluator::new(source, limits, time_ms, time_ms).instant(&expr, time_ms)
}

/// Evaluates `query` at `start_ms`, `start_ms + step_ms`, ... up to `end_ms`.
pub fn range_query(
    source: &dyn Source,
    limits: &Limits,
    query: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
) -> Result<QueryValue, QueryError> {
    if step_ms <= 0 {
        return Err(QueryError::BadData(
            "zero or negative query resolution step widths are not accepted. Try a positive integer"
                .into(),
        ));
    }
    if end_ms < start_ms {
        return Err(QueryError::BadData(
            "end timestamp must not be before start time".into(),
        ));
    }
    let expr = parse(query)?;
    eval::Evaluator::new(source, limits, start_ms, end_ms).range(&expr, start_ms, end_ms, step_ms)
}

#[cfg(test)]
mod tests;
