//! Prometheus's remote protocols from the client side: POST a WriteRequest
//! or a ReadRequest as Prometheus does, to sonde or to a real Prometheus.

use std::time::Duration;

use prost::Message;
use sonde::prompb::compress;
use sonde::prompb::{Label, ReadRequest, Sample, TimeSeries, WriteRequest};

/// An HTTP answer: status, Content-Type, body bytes.
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// POSTs `body` with `headers`; Err only when no answer came.
pub fn post(url: &str, body: &[u8], headers: &[(&str, &str)]) -> Result<Answer, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut request = agent.post(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.send(body).map_err(|e| e.to_string())?;
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = response
        .body_mut()
        .with_config()
        .limit(512 << 20)
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    Ok(Answer {
        status: response.status().as_u16(),
        content_type,
        body,
    })
}

pub const WRITE_HEADERS: [(&str, &str); 3] = [
    ("Content-Type", "application/x-protobuf"),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

pub const READ_HEADERS: [(&str, &str); 3] = [
    ("Content-Type", "application/x-protobuf"),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Read-Version", "0.1.0"),
];

/// Remote-writes `request` to `base_url` + `/api/v1/write`; panics unless
/// the receiver answers 2xx.
pub fn write(base_url: &str, request: &WriteRequest) {
    let url = format!("{base_url}/api/v1/write");
    let answer = post(&url, &compress(&request.encode_to_vec()), &WRITE_HEADERS).unwrap();
    assert!(
        (200..300).contains(&answer.status),
        "POST {url}: {} {}",
        answer.status,
        answer.text()
    );
}

/// Remote-reads `request` from `base_url` + `/api/v1/read`.
pub fn read(base_url: &str, request: &ReadRequest) -> Answer {
    let url = format!("{base_url}/api/v1/read");
    post(&url, &compress(&request.encode_to_vec()), &READ_HEADERS).unwrap()
}

/// A series `name{extra labels}` with the given (timestamp ms, value) samples.
pub fn series(name: &str, labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    let mut all = vec![Label {
        name: "__name__".into(),
        value: name.into(),
    }];
    all.extend(labels.iter().map(|(n, v)| Label {
        name: n.to_string(),
        value: v.to_string(),
    }));
    all.sort_by(|a, b| a.name.cmp(&b.name));
    TimeSeries {
        labels: all,
        samples: samples
            .iter()
            .map(|&(timestamp, value)| Sample { value, timestamp })
            .collect(),
    }
}
