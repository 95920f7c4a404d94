//! The remote-write receiver: a WriteRequest posted as Prometheus posts it is
//! stored whole; malformed snappy or protobuf gets 400, wrong headers 415,
//! oversized bodies 413, and sonde keeps serving after each.

mod common;

use common::Sonde;
use prost::Message;
use sonde::model::{Labels, Matcher, METRIC_NAME};
use sonde::serve::remote::prompb::{Label, Sample, TimeSeries, WriteRequest};
use sonde::serve::remote::{compress, MAX_COMPRESSED_BODY};
use sonde::store::Store;

fn series(name: &str, job: &str, samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: vec![
            Label {
                name: "__name__".into(),
                value: name.into(),
            },
            Label {
                name: "job".into(),
                value: job.into(),
            },
        ],
        samples: samples
            .iter()
            .map(|&(timestamp, value)| Sample { value, timestamp })
            .collect(),
    }
}

/// POSTs a body with Prometheus's remote-write headers (unless `headers` says
/// otherwise); returns the status and body text.
fn post(sonde: &Sonde, body: &[u8], headers: &[(&str, &str)]) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into();
    let mut request = agent.post(format!("{}/api/v1/write", sonde.base_url));
    let defaults = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
    ];
    for (name, value) in defaults {
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            request = request.header(name, value);
        }
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    match request.send(body) {
        Ok(mut response) => (
            response.status().as_u16(),
            response.body_mut().read_to_string().unwrap_or_default(),
        ),
        // A server may close the connection on an oversized body before
        // reading it all; the status it sent is what counts, so retry
        // without a body is not possible: report the transport error.
        Err(err) => (0, err.to_string()),
    }
}

#[test]
fn write_request_is_stored_and_bad_bodies_are_refused() {
    let sonde = Sonde::start("");
    let request = WriteRequest {
        timeseries: vec![
            series("remote_demo", "a", &[(1_000, 1.0), (2_000, 2.5)]),
            series("remote_demo", "b", &[(1_000, -3.0)]),
        ],
        metadata: vec![],
    };
    let good = compress(&request.encode_to_vec());
    assert_eq!(post(&sonde, &good, &[]).0, 204);

    let (status, text) = post(&sonde, b"\xff\xff\xff\xff\xff not snappy", &[]);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("snappy"), "{text}");

    let not_protobuf = compress(b"\x0a\xff\xff\xff\xff\x0f garbage");
    let (status, text) = post(&sonde, &not_protobuf, &[]);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("WriteRequest"), "{text}");

    let (status, _) = post(&sonde, &good, &[("Content-Encoding", "gzip")]);
    assert_eq!(status, 415);
    let (status, _) = post(&sonde, &good, &[("Content-Type", "application/json")]);
    assert_eq!(status, 415);

    // A snappy header declaring 1 GiB of output: refused before allocating.
    let mut bomb = Vec::new();
    let mut declared: u64 = 1 << 30;
    while declared >= 0x80 {
        bomb.push((declared as u8) | 0x80);
        declared >>= 7;
    }
    bomb.push(declared as u8);
    bomb.extend([0u8; 16]);
    assert_eq!(post(&sonde, &bomb, &[]).0, 413);

    let oversized = vec![0u8; MAX_COMPRESSED_BODY + 1];
    let (status, text) = post(&sonde, &oversized, &[]);
    assert!(status == 413 || status == 0, "{status} {text}");

    let bad_label = WriteRequest {
        timeseries: vec![series("bad name", "a", &[(1_000, 1.0)])],
        metadata: vec![],
    };
    let (status, text) = post(&sonde, &compress(&bad_label.encode_to_vec()), &[]);
    assert_eq!(status, 400, "{text}");

    // Still serving, then everything the good request held is stored.
    sonde.get_ok("/-/healthy");
    let data = sonde.stop();
    let store = Store::open(&data.0.join("store")).unwrap();
    let stored = store
        .select(&[Matcher::equal(METRIC_NAME, "remote_demo")], 0, 10_000)
        .unwrap();
    let got: Vec<(Labels, Vec<(i64, f64)>)> =
        stored.into_iter().map(|s| (s.labels, s.samples)).collect();
    let labels = |job: &str| Labels::new([(METRIC_NAME, "remote_demo"), ("job", job)]);
    assert_eq!(
        got,
        vec![
            (labels("a"), vec![(1_000, 1.0), (2_000, 2.5)]),
            (labels("b"), vec![(1_000, -3.0)]),
        ]
    );
    let nothing_bad = store
        .select(&[Matcher::equal(METRIC_NAME, "bad name")], 0, 10_000)
        .unwrap();
    assert!(nothing_bad.is_empty());
}
