//! The Prometheus HTTP API (`/api/v1/...`), shaped exactly as Prometheus
//! answers so Grafana, promtool and scripts use sonde as they use
//! Prometheus. Handlers are thin: [`Params`] reads the query string and a
//! form-encoded body alike, the query module evaluates, and this module
//! writes Prometheus's JSON (values as strings, `"NaN"` and `"+Inf"`
//! included) or its error object with the matching HTTP status.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;
use crate::model::{Labels, MatchOp, Matcher, METRIC_NAME};
use crate::query::{self, format_go_float, Limits, QueryError, QueryValue, Source};

/// The largest form body a query request may have.
const MAX_FORM_BYTES: usize = 1 << 20;
/// Prometheus refuses range queries with more points per series than this.
const MAX_POINTS_PER_SERIES: i64 = 11_000;
/// The version Grafana is told, the Prometheus release whose semantics
/// sonde's PromQL follows.
const PROMETHEUS_VERSION: &str = "2.42.0";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/query", get(instant_query).post(instant_query))
        .route("/api/v1/query_range", get(range_query).post(range_query))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(label_names).post(label_names))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/query_exemplars", get(exemplars).post(exemplars))
}

/// An API error: Prometheus's `errorType` and its HTTP status.
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn bad_data(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_data",
            message: message.into(),
        }
    }

    fn param(name: &str, err: impl std::fmt::Display) -> ApiError {
        ApiError::bad_data(format!("invalid parameter {name:?}: {err}"))
    }
}

impl From<QueryError> for ApiError {
    fn from(err: QueryError) -> ApiError {
        let (status, kind) = match &err {
            QueryError::BadData(_) => (StatusCode::BAD_REQUEST, "bad_data"),
            QueryError::Execution(_) => (StatusCode::UNPROCESSABLE_ENTITY, "execution"),
            QueryError::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            QueryError::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let message = match &err {
            QueryError::BadData(msg) => format!("invalid parameter \"query\": {msg}"),
            other => other.to_string(),
        };
        ApiError {
            status,
            kind,
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = format!(
            r#"{{"status":"error","errorType":"{}","error":{}}}"#,
            self.kind,
            json_string(&self.message)
        );
        json_response(self.status, body)
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response()
}

pub(crate) fn success(data: &str) -> Response {
    json_response(
        StatusCode::OK,
        format!(r#"{{"status":"success","data":{data}}}"#),
    )
}

/// A request's parameters from its query string and, for a POST, its
/// form-encoded body, in that order (as Go's Request.Form keeps them).
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Params, ApiError> {
        let mut pairs: Vec<(String, String)> = req
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        if req.method() == Method::POST {
            let is_form = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
            let body = axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES)
                .await
                .map_err(|_| ApiError {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    kind: "bad_data",
                    message: format!("request body larger than {MAX_FORM_BYTES} bytes"),
                })?;
            if is_form {
                pairs.extend(form_urlencoded::parse(&body).into_owned());
            }
        }
        Ok(Params(pairs))
    }
}

async fn instant_query(
    State(state): State<AppState>,
    params: Params,
) -> Result<Response, ApiError> {
    let query = params.get("query").unwrap_or("").to_string();
    let time = match params.get("time") {
        Some(t) if !t.is_empty() => parse_time(t).map_err(|e| ApiError::param("time", e))?,
        _ => now_ms(),
    };
    let limits = limits(&params)?;
    let value = blocking(move || {
        query::instant_query(state.store_source(), &limits, &query, time).map_err(ApiError::from)
    })
    .await?;
    Ok(success(&render_value(&value)))
}

async fn range_query(State(state): State<AppState>, params: Params) -> Result<Response, ApiError> {
    let start = required_time(&params, "start")?;
    let end = required_time(&params, "end")?;
    if end < start {
        return Err(ApiError::param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step = match params.get("step") {
        Some(s) => parse_duration(s).map_err(|e| ApiError::param("step", e))?,
        None => {
            return Err(ApiError::param(
                "step",
                "cannot parse \"\" to a valid duration",
            ))
        }
    };
    if step <= 0 {
        return Err(ApiError::param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS_PER_SERIES {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let query = params.get("query").unwrap_or("").to_string();
    let limits = limits(&params)?;
    let value = blocking(move || {
        query::range_query(state.store_source(), &limits, &query, start, end, step)
            .map_err(ApiError::from)
    })
    .await?;
    Ok(success(&render_value(&value)))
}

/// The query limits, with a shorter timeout if the request asks for one.
fn limits(params: &Params) -> Result<Limits, ApiError> {
    let mut limits = Limits::default();
    if let Some(t) = params.get("timeout").filter(|t| !t.is_empty()) {
        let ms = parse_duration(t).map_err(|e| ApiError::param("timeout", e))?;
        let asked = std::time::Duration::from_millis(ms.max(0) as u64);
        limits.timeout = limits.timeout.min(asked);
    }
    Ok(limits)
}

/// Runs store-bound work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "internal",
            message: format!("query task failed: {err}"),
        })?
}

/// The series every `match[]` selects in [start, end], for the metadata
/// endpoints; `required` makes a missing `match[]` an error.
fn matching_series(
    source: &dyn Source,
    params: &Params,
    required: bool,
) -> Result<Vec<Labels>, ApiError> {
    let selectors = params.all("match[]");
    if selectors.is_empty() && required {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let start = optional_time(params, "start", i64::MIN / 2)?;
    let end = optional_time(params, "end", i64::MAX / 2)?;
    let mut sets = Vec::new();
    for selector in &selectors {
        sets.push(parse_selector(selector)?);
    }
    if sets.is_empty() {
        sets.push(vec![
            Matcher::new(MatchOp::Regex, METRIC_NAME, ".+").expect("a constant regex compiles")
        ]);
    }
    let mut found = BTreeSet::new();
    for matchers in sets {
        let series = source
            .series(&matchers, start, end)
            .map_err(|err| ApiError::from(QueryError::Storage(format!("{err:#}"))))?;
        found.extend(series);
    }
    Ok(found.into_iter().collect())
}

fn parse_selector(selector: &str) -> Result<Vec<Matcher>, ApiError> {
    let expr = query::parse(selector).map_err(|e| ApiError::param("match[]", e))?;
    match expr {
        promql_parser::parser::Expr::VectorSelector(vs) => {
            query::selector_matchers(&vs).map_err(|e| ApiError::param("match[]", e))
        }
        _ => Err(ApiError::param(
            "match[]",
            format!("{selector:?} is not a series selector"),
        )),
    }
}

fn limit(params: &Params) -> Result<usize, ApiError> {
    match params.get("limit").filter(|l| !l.is_empty()) {
        None => Ok(usize::MAX),
        Some(l) => match l.parse::<i64>() {
            Ok(0) => Ok(usize::MAX),
            Ok(n) if n > 0 => Ok(n as usize),
            _ => Err(ApiError::param("limit", "limit must be a positive number")),
        },
    }
}

async fn series(State(state): State<AppState>, params: Params) -> Result<Response, ApiError> {
    let limit = limit(&params)?;
    let found = blocking(move || matching_series(state.store_source(), &params, true)).await?;
    let items: Vec<String> = found.iter().take(limit).map(render_labels).collect();
    Ok(success(&format!("[{}]", items.join(","))))
}

async fn label_names(State(state): State<AppState>, params: Params) -> Result<Response, ApiError> {
    let limit = limit(&params)?;
    let found = blocking(move || matching_series(state.store_source(), &params, false)).await?;
    let names: BTreeSet<&str> = found
        .iter()
        .flat_map(|l| l.iter().map(|(n, _)| n))
        .collect();
    Ok(success(&string_array(names.into_iter().take(limit))))
}

async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let limit = limit(&params)?;
    let found = blocking(move || matching_series(state.store_source(), &params, false)).await?;
    let values: BTreeSet<&str> = found.iter().filter_map(|l| l.get(&name)).collect();
    Ok(success(&string_array(values.into_iter().take(limit))))
}

/// Type and help of the metrics sonde collects, from the last round.
async fn metadata(State(state): State<AppState>, params: Params) -> Result<Response, ApiError> {
    let limit = limit(&params)?;
    let wanted = params.get("metric").filter(|m| !m.is_empty());
    let latest = state.latest.read().expect("lock poisoned").clone();
    let mut by_name: BTreeMap<&str, String> = BTreeMap::new();
    for family in &latest.families {
        if wanted.is_some_and(|w| w != family.name) {
            continue;
        }
        by_name.entry(&family.name).or_insert_with(|| {
            format!(
                r#"[{{"type":"{}","help":{},"unit":""}}]"#,
                family.kind.as_str(),
                json_string(&family.help)
            )
        });
    }
    let entries: Vec<String> = by_name
        .iter()
        .take(limit)
        .map(|(name, meta)| format!("{}:{meta}", json_string(name)))
        .collect();
    Ok(success(&format!("{{{}}}", entries.join(","))))
}

async fn buildinfo() -> Response {
    success(&format!(
        r#"{{"version":"{PROMETHEUS_VERSION}","revision":"sonde-{}","branch":"","buildUser":"","buildDate":"","goVersion":"","features":{{}}}}"#,
        env!("CARGO_PKG_VERSION")
    ))
}

/// No rules are loaded yet: a valid, empty answer.
/// sonde keeps no exemplars: a valid, empty answer.
async fn exemplars() -> Response {
    success("[]")
}

fn required_time(params: &Params, name: &str) -> Result<i64, ApiError> {
    let value = params.get(name).unwrap_or("");
    parse_time(value).map_err(|e| ApiError::param(name, e))
}

fn optional_time(params: &Params, name: &str, default: i64) -> Result<i64, ApiError> {
    match params.get(name).filter(|v| !v.is_empty()) {
        Some(value) => parse_time(value).map_err(|e| ApiError::param(name, e)),
        None => Ok(default),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A time as Prometheus accepts it: Unix seconds (fractions allowed) or
/// RFC 3339; milliseconds since the epoch.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let invalid = || format!("cannot parse {s:?} to a valid timestamp");
    if let Ok(seconds) = s.parse::<f64>() {
        if !seconds.is_finite() || seconds.abs() > 9.2e15 {
            return Err(invalid());
        }
        let whole = seconds.trunc();
        let millis = ((seconds - whole) * 1000.0).round();
        return Ok(whole as i64 * 1000 + millis as i64);
    }
    crate::civil::parse_rfc3339(s).ok_or_else(invalid)
}

/// A duration as Prometheus accepts it: float seconds or `1h30m`-style
/// (units ms, s, m, h, d, w, y); milliseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let invalid = || format!("cannot parse {s:?} to a valid duration");
    if let Ok(seconds) = s.parse::<f64>() {
        let ms = seconds * 1000.0;
        if !ms.is_finite() || ms.abs() > 9.2e18 {
            return Err(format!(
                "cannot parse {s:?} to a valid duration. It overflows int64"
            ));
        }
        return Ok(ms.round() as i64);
    }
    let mut rest = s;
    let mut total: i64 = 0;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit_ms: i64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(unit_ms)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(invalid)?;
    }
    Ok(total)
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings always encode")
}

fn string_array<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = items.map(json_string).collect();
    format!("[{}]", quoted.join(","))
}

fn render_labels(labels: &Labels) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(n, v)| format!("{}:{}", json_string(n), json_string(v)))
        .collect();
    format!("{{{}}}", pairs.join(","))
}

/// A timestamp as Prometheus writes it: seconds, with the milliseconds
/// as three decimals when there are any.
fn push_timestamp(out: &mut String, t: i64) {
    use std::fmt::Write;
    if t < 0 {
        out.push('-');
    }
    let t = t.unsigned_abs();
    let _ = write!(out, "{}", t / 1000);
    if !t.is_multiple_of(1000) {
        let _ = write!(out, ".{:03}", t % 1000);
    }
}

fn push_point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    push_timestamp(out, t);
    out.push_str(",\"");
    out.push_str(&format_go_float(v));
    out.push_str("\"]");
}

/// `{"resultType":...,"result":...}` for a query's value.
fn render_value(value: &QueryValue) -> String {
    let mut out = format!(r#"{{"resultType":"{}","result":"#, value.result_type());
    match value {
        QueryValue::Scalar {
            timestamp_ms,
            value,
        } => push_point(&mut out, *timestamp_ms, *value),
        QueryValue::String {
            timestamp_ms,
            value,
        } => {
            out.push('[');
            push_timestamp(&mut out, *timestamp_ms);
            out.push(',');
            out.push_str(&json_string(value));
            out.push(']');
        }
        QueryValue::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                out.push_str(&render_labels(&s.labels));
                out.push_str(r#","value":"#);
                push_point(&mut out, s.timestamp_ms, s.value);
                out.push('}');
            }
            out.push(']');
        }
        QueryValue::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                out.push_str(&render_labels(&s.labels));
                out.push_str(r#","values":["#);
                for (j, &(t, v)) in s.points.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    push_point(&mut out, t, v);
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_prometheus_accepts_them() {
        assert_eq!(parse_time("1435781451.781"), Ok(1_435_781_451_781));
        assert_eq!(
            parse_time("2015-07-01T20:10:51.781Z"),
            Ok(1_435_781_451_781)
        );
        assert_eq!(
            parse_time("2015-07-01T22:10:51+02:00"),
            Ok(1_435_781_451_000)
        );
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("").is_err());
    }

    #[test]
    fn durations_parse_as_prometheus_accepts_them() {
        assert_eq!(parse_duration("15s"), Ok(15_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("0.5"), Ok(500));
        assert_eq!(parse_duration("100ms"), Ok(100));
        assert!(parse_duration("5 minutes").is_err());
    }

    #[test]
    fn values_and_timestamps_render_as_prometheus_writes_them() {
        assert_eq!(format_go_float(f64::NAN), "NaN");
        assert_eq!(format_go_float(f64::INFINITY), "+Inf");
        assert_eq!(format_go_float(1e-9), "0.000000001");
        assert_eq!(format_go_float(2.0), "2");
        let mut out = String::new();
        push_timestamp(&mut out, 1_435_781_451_500);
        assert_eq!(out, "1435781451.500");
        let matrix = QueryValue::Matrix(vec![query::RangeSeries {
            labels: Labels::new([("__name__", "up")]),
            points: vec![(1000, 1.0)],
        }]);
        assert_eq!(
            render_value(&matrix),
            r#"{"resultType":"matrix","result":[{"metric":{"__name__":"up"},"values":[[1,"1"]]}]}"#
        );
    }
}
