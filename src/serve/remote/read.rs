//! Remote read: `POST /api/v1/read` answers a Prometheus `ReadRequest` from
//! the store with `SAMPLES`: one snappy-compressed `ReadResponse`
//! (`Content-Type: application/x-protobuf`, `Content-Encoding: snappy`).
//! A client that accepts only other response types gets 400.
//!
//! Every request is bounded by [`MAX_SAMPLES`] in total, so one request
//! cannot make sonde hold its whole database in memory.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;

use super::prompb::{self, ReadRequest, ResponseType};
use super::{compress, decode_request, RemoteError};
use crate::model::{Labels, MatchOp, Matcher};
use crate::serve::AppState;
use crate::store::SeriesSamples;

/// Most samples one read request may return, over all its queries.
pub const MAX_SAMPLES: usize = 10_000_000;

pub async fn read(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, RemoteError> {
    let request: ReadRequest = decode_request(&headers, &body, "prometheus.ReadRequest")?;
    negotiate(&request.accepted_response_types)?;
    let queries = request
        .queries
        .iter()
        .map(to_selection)
        .collect::<Result<Vec<_>, _>>()?;
    let results = tokio::task::spawn_blocking(move || select_all(&state, &queries))
        .await
        .map_err(|err| RemoteError::internal(&err.into()))??;
    Ok(samples_response(results))
}

/// The first accepted type sonde speaks; none listed means `SAMPLES`.
fn negotiate(accepted: &[i32]) -> Result<ResponseType, RemoteError> {
    if accepted.is_empty() {
        return Ok(ResponseType::Samples);
    }
    accepted
        .iter()
        .find_map(|&t| (t == ResponseType::Samples as i32).then_some(ResponseType::Samples))
        .ok_or_else(|| {
            RemoteError::bad_request(format!(
                "none of the requested response types {accepted:?} is supported: sonde answers SAMPLES (0)"
            ))
        })
}

/// One query as the store takes it.
struct Selection {
    matchers: Vec<Matcher>,
    start_ms: i64,
    end_ms: i64,
}

fn to_selection(query: &prompb::Query) -> Result<Selection, RemoteError> {
    let matchers = query
        .matchers
        .iter()
        .map(to_matcher)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Selection {
        matchers,
        start_ms: query.start_timestamp_ms,
        end_ms: query.end_timestamp_ms,
    })
}

pub fn to_matcher(matcher: &prompb::LabelMatcher) -> Result<Matcher, RemoteError> {
    let op = match prompb::MatcherType::try_from(matcher.r#type) {
        Ok(prompb::MatcherType::Eq) => MatchOp::Equal,
        Ok(prompb::MatcherType::Neq) => MatchOp::NotEqual,
        Ok(prompb::MatcherType::Re) => MatchOp::Regex,
        Ok(prompb::MatcherType::Nre) => MatchOp::NotRegex,
        Err(_) => {
            return Err(RemoteError::bad_request(format!(
                "unknown label matcher type {} for label {:?}",
                matcher.r#type, matcher.name
            )))
        }
    };
    Matcher::new(op, &matcher.name, &matcher.value).map_err(|err| {
        RemoteError::bad_request(format!(
            "invalid regular expression for label {:?}: {err}",
            matcher.name
        ))
    })
}

fn select_all(
    state: &AppState,
    queries: &[Selection],
) -> Result<Vec<Vec<SeriesSamples>>, RemoteError> {
    let store = state.store.lock().expect("lock poisoned");
    let mut total = 0usize;
    let mut results = Vec::with_capacity(queries.len());
    for query in queries {
        let selected = store
            .select(&query.matchers, query.start_ms, query.end_ms)
            .map_err(|err| RemoteError::internal(&err))?;
        total += selected.iter().map(|s| s.samples.len()).sum::<usize>();
        if total > MAX_SAMPLES {
            return Err(RemoteError::bad_request(format!(
                "the read request selects more than {MAX_SAMPLES} samples: narrow its time range or matchers"
            )));
        }
        results.push(selected);
    }
    Ok(results)
}

fn to_prompb_labels(labels: &Labels) -> Vec<prompb::Label> {
    labels
        .iter()
        .map(|(name, value)| prompb::Label {
            name: name.to_string(),
            value: value.to_string(),
        })
        .collect()
}

fn samples_response(results: Vec<Vec<SeriesSamples>>) -> Response {
    let response = prompb::ReadResponse {
        results: results
            .into_iter()
            .map(|series| prompb::QueryResult {
                timeseries: series
                    .into_iter()
                    .map(|s| prompb::TimeSeries {
                        labels: to_prompb_labels(&s.labels),
                        samples: s
                            .samples
                            .into_iter()
                            .map(|(timestamp, value)| prompb::Sample { value, timestamp })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/x-protobuf"),
            (header::CONTENT_ENCODING, "snappy"),
        ],
        compress(&response.encode_to_vec()),
    )
        .into_response()
}
