//! Remote read: sonde's /api/v1/read answers Prometheus's ReadRequest, proven
//! with a real Prometheus 2.42 whose `remote_read` points at sonde and which
//! answers PromQL over sonde's data; request by request for SAMPLES; and for
//! STREAMED_XOR_CHUNKS by reading the same data back from sonde and from a
//! Prometheus that was sent it too.

mod common;

use common::prometheus::{encode, Prometheus};
use common::remote::{self, series};
use common::Sonde;
use prost::Message;
use std::collections::BTreeMap;

use sonde::prompb::{
    ChunkEncoding, LabelMatcher, MatcherType, Query, ReadRequest, ReadResponse, WriteRequest,
};
use sonde::serve::remote::read::{read_frames, STREAMED_CONTENT_TYPE};
use sonde::store::xor;

const STEP_MS: i64 = 15_000;

/// Two series over the last 10 minutes at a 15 s step, on whole seconds:
/// `job="a"` counts up by 1.5, `job="b"` is a counter that resets midway.
fn demo_data(end_ms: i64) -> (i64, WriteRequest) {
    let points = 40;
    let start_ms = end_ms - (points - 1) * STEP_MS;
    let at = |i: i64| start_ms + i * STEP_MS;
    let a: Vec<(i64, f64)> = (0..points).map(|i| (at(i), i as f64 * 1.5)).collect();
    let b: Vec<(i64, f64)> = (0..points)
        .map(|i| (at(i), ((i % 25) * 10) as f64 + 0.25))
        .collect();
    let request = WriteRequest {
        timeseries: vec![
            series("remote_read_demo", &[("job", "a")], &a),
            series("remote_read_demo", &[("job", "b"), ("zone", "z1")], &b),
        ],
        metadata: vec![],
    };
    (start_ms, request)
}

fn whole_second_now() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    now / 1000 * 1000
}

#[test]
fn prometheus_answers_promql_over_sonde_data() {
    let sonde = Sonde::start("");
    let end_ms = whole_second_now();
    let (start_ms, request) = demo_data(end_ms);
    remote::write(&sonde.base_url, &request);

    let prometheus = Prometheus::start(
        &format!(
            "global:\n  scrape_interval: 1h\nremote_read:\n  - url: {}/api/v1/read\n    read_recent: true\n",
            sonde.base_url
        ),
        &[],
    );

    // Every step lands on a sample, so each value is exactly a written one.
    let data = prometheus.api(&format!(
        "/api/v1/query_range?query={}&start={}&end={}&step=15",
        encode("remote_read_demo"),
        start_ms / 1000,
        end_ms / 1000
    ));
    assert_eq!(data["resultType"], "matrix");
    let result = data["result"].as_array().unwrap();
    assert_eq!(result.len(), 2, "{data}");
    for (got, written) in result.iter().zip(&request.timeseries) {
        for label in &written.labels {
            assert_eq!(got["metric"][&label.name], label.value.as_str(), "{got}");
        }
        let values: Vec<(i64, f64)> = got["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| {
                let t = (pair[0].as_f64().unwrap() * 1000.0).round() as i64;
                (t, pair[1].as_str().unwrap().parse().unwrap())
            })
            .collect();
        let expected: Vec<(i64, f64)> = written
            .samples
            .iter()
            .map(|s| (s.timestamp, s.value))
            .collect();
        assert_eq!(values, expected);
    }

    // Functions and matchers run in Prometheus over the read samples.
    let instant = |query: &str| {
        let data = prometheus.api(&format!(
            "/api/v1/query?query={}&time={}",
            encode(query),
            end_ms / 1000
        ));
        data["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["metric"]["job"].as_str().unwrap_or("").to_string(),
                    r["value"][1].as_str().unwrap().parse::<f64>().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        instant("count_over_time(remote_read_demo[15m])"),
        [("a".to_string(), 40.0), ("b".to_string(), 40.0)]
    );
    assert_eq!(
        instant("resets(remote_read_demo{zone=~\"z.\"}[15m])"),
        [("b".to_string(), 1.0)]
    );
    assert_eq!(
        instant("sum(remote_read_demo{job!=\"b\"})"),
        [(String::new(), 39.0 * 1.5)]
    );
}

fn matcher(kind: MatcherType, name: &str, value: &str) -> LabelMatcher {
    LabelMatcher {
        r#type: kind as i32,
        name: name.into(),
        value: value.into(),
    }
}

#[test]
fn samples_answer_each_query_in_order_and_bad_requests_get_400() {
    let sonde = Sonde::start("");
    let end_ms = whole_second_now();
    let (start_ms, request) = demo_data(end_ms);
    remote::write(&sonde.base_url, &request);

    let query = |matchers: Vec<LabelMatcher>, start, end| Query {
        start_timestamp_ms: start,
        end_timestamp_ms: end,
        matchers,
        hints: None,
    };
    let read = ReadRequest {
        queries: vec![
            query(
                vec![matcher(MatcherType::Re, "__name__", "remote_read_.*")],
                start_ms,
                end_ms,
            ),
            query(
                vec![
                    matcher(MatcherType::Eq, "__name__", "remote_read_demo"),
                    matcher(MatcherType::Nre, "zone", "z1"),
                ],
                // Inclusive bounds: the first and last two samples.
                start_ms,
                start_ms + STEP_MS,
            ),
            query(
                vec![matcher(MatcherType::Neq, "__name__", "remote_read_demo")],
                start_ms,
                end_ms,
            ),
        ],
        accepted_response_types: vec![0],
    };
    let answer = remote::read(&sonde.base_url, &read);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.content_type, "application/x-protobuf");
    let decoded = snap::raw::Decoder::new()
        .decompress_vec(&answer.body)
        .unwrap();
    let response = ReadResponse::decode(decoded.as_slice()).unwrap();
    assert_eq!(response.results.len(), 3);
    assert_eq!(response.results[0].timeseries, request.timeseries);
    let narrow = &response.results[1].timeseries;
    assert_eq!(narrow.len(), 1);
    assert_eq!(narrow[0].labels, request.timeseries[0].labels);
    assert_eq!(narrow[0].samples, request.timeseries[0].samples[..2]);
    assert!(
        response.results[2]
            .timeseries
            .iter()
            .all(|s| s.labels.iter().all(|l| l.value != "remote_read_demo")),
        "!= matcher"
    );

    let bad_regex = ReadRequest {
        queries: vec![query(vec![matcher(MatcherType::Re, "job", "(")], 0, end_ms)],
        accepted_response_types: vec![],
    };
    let answer = remote::read(&sonde.base_url, &bad_regex);
    assert_eq!(answer.status, 400);
    assert!(
        answer.text().contains("regular expression"),
        "{}",
        answer.text()
    );

    let unknown_type = ReadRequest {
        queries: vec![],
        accepted_response_types: vec![7],
    };
    assert_eq!(remote::read(&sonde.base_url, &unknown_type).status, 400);

    let garbage = remote::post(
        &format!("{}/api/v1/read", sonde.base_url),
        b"\x05garbage",
        &remote::READ_HEADERS,
    )
    .unwrap();
    assert_eq!(garbage.status, 400);
    sonde.get_ok("/-/healthy");
}

/// Samples by series labels.
type BySeries = BTreeMap<Vec<(String, String)>, Vec<(i64, f64)>>;

/// Every sample of a streamed answer by series labels, checking each frame's
/// checksum and each chunk's encoding and time span; only samples in
/// [start_ms, end_ms] are kept (chunks are whole).
fn streamed_samples(answer: &remote::Answer, start_ms: i64, end_ms: i64) -> (BySeries, usize) {
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.content_type, STREAMED_CONTENT_TYPE);
    let mut by_series = BySeries::new();
    let mut chunks = 0;
    for frame in read_frames(&answer.body).unwrap() {
        assert_eq!(frame.query_index, 0);
        for series in frame.chunked_series {
            let labels = series
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            let samples = by_series.entry(labels).or_default();
            for chunk in series.chunks {
                assert_eq!(chunk.r#type, ChunkEncoding::Xor as i32);
                let decoded = xor::decode(&chunk.data).unwrap();
                assert_eq!(decoded.first().unwrap().0, chunk.min_time_ms);
                assert_eq!(decoded.last().unwrap().0, chunk.max_time_ms);
                samples.extend(
                    decoded
                        .into_iter()
                        .filter(|(t, _)| (start_ms..=end_ms).contains(t)),
                );
                chunks += 1;
            }
        }
    }
    (by_series, chunks)
}

#[test]
fn streamed_xor_chunks_hold_what_prometheus_holds() {
    let sonde = Sonde::start("");
    let prometheus = Prometheus::start(
        "global:\n  scrape_interval: 1h\n",
        &["--web.enable-remote-write-receiver"],
    );
    let end_ms = whole_second_now();
    let (_, mut request) = demo_data(end_ms);
    // Ten minutes at 1 s: several chunks in either store.
    let long: Vec<(i64, f64)> = (0..600)
        .map(|i| (end_ms - (599 - i) * 1000, (i as f64 / 7.0).sin() * 100.0))
        .collect();
    request
        .timeseries
        .push(series("remote_read_long", &[("job", "c")], &long));
    remote::write(&sonde.base_url, &request);
    remote::write(&prometheus.base_url, &request);

    let (start_ms, end_ms) = (end_ms - 300_000, end_ms - 1_000);
    let read = ReadRequest {
        queries: vec![Query {
            start_timestamp_ms: start_ms,
            end_timestamp_ms: end_ms,
            matchers: vec![matcher(MatcherType::Re, "__name__", "remote_read_.*")],
            hints: None,
        }],
        accepted_response_types: vec![1, 0],
    };
    let (from_sonde, sonde_chunks) =
        streamed_samples(&remote::read(&sonde.base_url, &read), start_ms, end_ms);
    let (from_prometheus, _) =
        streamed_samples(&remote::read(&prometheus.base_url, &read), start_ms, end_ms);
    assert_eq!(from_sonde.len(), 3);
    assert!(sonde_chunks > 3, "the long series spans several chunks");
    assert_eq!(from_sonde, from_prometheus);
    assert_eq!(
        from_sonde.values().map(Vec::len).sum::<usize>(),
        20 + 20 + 300
    );
}
