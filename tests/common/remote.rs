//! Prometheus's remote protocols from the client side: POST a WriteRequest
//! or a ReadRequest as Prometheus does, to sonde or to a real Prometheus, and
//! read everything back to compare two holders sample for sample.

use std::time::Duration;

use prost::Message;
use sonde::prompb::compress;
use sonde::prompb::{
    Label, LabelMatcher, MatcherType, Query, ReadRequest, ReadResponse, Sample, TimeSeries,
    WriteRequest,
};

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

/// Every sample of every series in [start_ms, end_ms], by remote read,
/// sorted by labels.
pub fn read_all(base_url: &str, start_ms: i64, end_ms: i64) -> Vec<TimeSeries> {
    let request = ReadRequest {
        queries: vec![Query {
            start_timestamp_ms: start_ms,
            end_timestamp_ms: end_ms,
            matchers: vec![LabelMatcher {
                r#type: MatcherType::Re as i32,
                name: "__name__".into(),
                value: ".+".into(),
            }],
            hints: None,
        }],
        accepted_response_types: vec![0],
    };
    let answer = read(base_url, &request);
    assert_eq!(answer.status, 200, "{base_url}: {}", answer.text());
    let bytes = snap::raw::Decoder::new()
        .decompress_vec(&answer.body)
        .unwrap();
    let mut response = ReadResponse::decode(bytes.as_slice()).unwrap();
    let mut series = std::mem::take(&mut response.results[0].timeseries);
    series.sort_by(|a, b| {
        let key = |s: &TimeSeries| {
            s.labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect::<Vec<_>>()
        };
        key(a).cmp(&key(b))
    });
    series
}

/// Waits (at most `timeout`) until `a` and `b` hold the same series with
/// the same samples in [start_ms, end_ms], timestamps equal and values equal
/// bit for bit; panics with the first difference otherwise. Returns the
/// samples they hold.
pub fn wait_identical(a: &str, b: &str, start_ms: i64, end_ms: i64, timeout: Duration) -> usize {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let in_a = read_all(a, start_ms, end_ms);
        let Some(difference) = first_difference(&in_a, &read_all(b, start_ms, end_ms)) else {
            return in_a.iter().map(|s| s.samples.len()).sum();
        };
        if std::time::Instant::now() > deadline {
            panic!("{a} and {b} differ in [{start_ms}, {end_ms}] after {timeout:?}: {difference}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// None when both hold the same series and samples (values bit for bit).
pub fn first_difference(a: &[TimeSeries], b: &[TimeSeries]) -> Option<String> {
    let names = |series: &[TimeSeries]| -> Vec<Vec<Label>> {
        series.iter().map(|s| s.labels.clone()).collect()
    };
    if names(a) != names(b) {
        let only = |x: &[TimeSeries], y: &[TimeSeries]| -> Vec<String> {
            x.iter()
                .filter(|s| !y.iter().any(|o| o.labels == s.labels))
                .map(|s| format!("{:?}", s.labels))
                .collect()
        };
        return Some(format!(
            "series only in the first: {:?}; only in the second: {:?}",
            only(a, b),
            only(b, a)
        ));
    }
    for (x, y) in a.iter().zip(b) {
        let samples = |s: &TimeSeries| -> Vec<(i64, u64)> {
            s.samples
                .iter()
                .map(|p| (p.timestamp, p.value.to_bits()))
                .collect()
        };
        let (xs, ys) = (samples(x), samples(y));
        if xs != ys {
            let at = xs.iter().zip(&ys).position(|(p, q)| p != q);
            return Some(format!(
                "{:?}: {} samples vs {}, first differing at index {at:?}: {:?} vs {:?}",
                x.labels,
                xs.len(),
                ys.len(),
                at.map(|i| xs[i]),
                at.map(|i| ys[i])
            ));
        }
    }
    None
}
