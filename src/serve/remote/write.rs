//! The remote-write receiver: `POST /api/v1/write` takes a Prometheus
//! `WriteRequest` and appends its samples to the store like collected ones:
//! stored as sent, and what was stored queued for sonde's own remote-write
//! destinations in the same transaction.
//!
//! A request is stored whole or not at all: one malformed series refuses the
//! request with 400 (the sender drops it, as it should for bad data) and a
//! store failure answers 500 (the sender retries), so no sample is half
//! written. Success is 204, as Prometheus answers.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::{decode_request, RemoteError};
use crate::model::{Labels, Sample, METRIC_NAME};
use crate::prompb::{self, WriteRequest};
use crate::serve::AppState;

pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, RemoteError> {
    let request: WriteRequest = decode_request(&headers, &body, "prometheus.WriteRequest")?;
    let samples = to_samples(request)?;
    if samples.is_empty() {
        return Ok(StatusCode::NO_CONTENT);
    }
    let stored = tokio::task::spawn_blocking(move || {
        state.store.lock().expect("lock poisoned").append(&samples)
    })
    .await
    .map_err(|err| RemoteError::internal(&err.into()))?;
    stored.map_err(|err| RemoteError::internal(&err))?;
    Ok(StatusCode::NO_CONTENT)
}

/// The request's samples in the sample model, or why the request is bad.
pub fn to_samples(request: WriteRequest) -> Result<Vec<Sample>, RemoteError> {
    let mut samples = Vec::new();
    for series in request.timeseries {
        let labels = to_labels(&series.labels)?;
        samples.extend(series.samples.into_iter().map(|s| Sample {
            labels: labels.clone(),
            timestamp_ms: s.timestamp,
            value: s.value,
        }));
    }
    Ok(samples)
}

/// Checks a series' labels as Prometheus does (valid names, no name twice, a
/// valid metric name) and builds the label set.
pub fn to_labels(labels: &[prompb::Label]) -> Result<Labels, RemoteError> {
    let shown = || {
        labels
            .iter()
            .map(|l| format!("{}={:?}", l.name, l.value))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for label in labels {
        if !is_label_name(&label.name) {
            return Err(RemoteError::bad_request(format!(
                "invalid label name {:?} in series {{{}}}",
                label.name,
                shown()
            )));
        }
    }
    let set = Labels::new(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())));
    let non_empty = labels.iter().filter(|l| !l.value.is_empty()).count();
    if set.len() != non_empty {
        return Err(RemoteError::bad_request(format!(
            "duplicate label name in series {{{}}}",
            shown()
        )));
    }
    if !is_metric_name(set.metric_name()) {
        return Err(RemoteError::bad_request(format!(
            "invalid or missing metric name ({METRIC_NAME}) in series {{{}}}",
            shown()
        )));
    }
    Ok(set)
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(name: &str, value: &str) -> prompb::Label {
        prompb::Label {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn labels_are_checked_like_prometheus() {
        let good = to_labels(&[label("__name__", "up"), label("job", "x")]).unwrap();
        assert_eq!(good.to_string(), r#"up{job="x"}"#);
        assert!(to_labels(&[label("__name__", "up"), label("1x", "a")]).is_err());
        assert!(to_labels(&[label("__name__", "up"), label("a", "1"), label("a", "2")]).is_err());
        assert!(to_labels(&[label("job", "x")]).is_err(), "no metric name");
        assert!(to_labels(&[label("__name__", "a-b")]).is_err());
        let empty_dropped = to_labels(&[label("__name__", "up"), label("e", "")]).unwrap();
        assert_eq!(empty_dropped.len(), 1);
    }
}
