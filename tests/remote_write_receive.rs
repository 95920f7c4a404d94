//! The remote-write receiver: a WriteRequest posted as Prometheus posts it is
//! stored whole, every timestamp exactly as sent (jittered ones too, which
//! the store once moved onto their series' step); malformed snappy or protobuf gets 400, wrong headers 415,
//! oversized bodies 413, and sonde keeps serving after each.

mod common;

use common::remote::{self, series, WRITE_HEADERS};
use common::Sonde;
use prost::Message;
use sonde::model::{Labels, Matcher, METRIC_NAME};
use sonde::prompb::compress;
use sonde::prompb::WriteRequest;
use sonde::serve::remote::MAX_COMPRESSED_BODY;
use sonde::store::Store;

/// POSTs a body with Prometheus's remote-write headers, `headers` replacing
/// any of the same name; (0, error) when the connection failed.
fn post(sonde: &Sonde, body: &[u8], headers: &[(&str, &str)]) -> (u16, String) {
    let mut all: Vec<(&str, &str)> = WRITE_HEADERS
        .into_iter()
        .filter(|(name, _)| !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)))
        .collect();
    all.extend(headers);
    // A server may close the connection on an oversized body before reading
    // it all; then there is no status to check, only the failed transfer.
    match remote::post(&format!("{}/api/v1/write", sonde.base_url), body, &all) {
        Ok(answer) => (answer.status, answer.text()),
        Err(err) => (0, err),
    }
}

/// A 1 s schedule as a busy sender stamps it: a few milliseconds either side
/// of each tick, and one tick a whole 40 ms late.
const JITTERED: [(i64, f64); 6] = [
    (1_000, 1.0),
    (2_001, 2.0),
    (3_003, 3.0),
    (3_998, 4.0),
    (5_040, 5.0),
    (6_002, 6.0),
];

#[test]
fn write_request_is_stored_and_bad_bodies_are_refused() {
    let sonde = Sonde::start("");
    let request = WriteRequest {
        timeseries: vec![
            series(
                "remote_demo",
                &[("job", "a")],
                &[(1_000, 1.0), (2_000, 2.5)],
            ),
            series("remote_demo", &[("job", "b")], &[(1_000, -3.0)]),
            series("remote_jitter", &[], &JITTERED),
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
        timeseries: vec![series("bad name", &[("job", "a")], &[(1_000, 1.0)])],
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
    let jittered = store
        .select(&[Matcher::equal(METRIC_NAME, "remote_jitter")], 0, 10_000)
        .unwrap();
    assert_eq!(jittered[0].samples, JITTERED, "stored as sent");
    let nothing_bad = store
        .select(&[Matcher::equal(METRIC_NAME, "bad name")], 0, 10_000)
        .unwrap();
    assert!(nothing_bad.is_empty());
}
