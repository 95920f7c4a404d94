//! Mutation fuzzing of the entry points that take untrusted bytes: the
//! remote-write body, the remote-read body (matchers and their regexes), the
//! streamed-frame reader, and PromQL (parsed, then evaluated over a small
//! fixture with a short timeout). Valid inputs are mutated (bit flips, byte
//! overwrites, inserted, deleted, duplicated and spliced ranges); any panic
//! fails the test with the input that caused it.
//!
//! `make test` runs each target for 2 s. For a long run:
//!     SONDE_FUZZ_SECONDS=300 cargo test --release --features static \
//!       --target x86_64-unknown-linux-gnu --test fuzz_entry_points -- --nocapture
//! `SONDE_FUZZ_SEED` replays a run.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use prost::Message;
use sonde::model::{Labels, METRIC_NAME};
use sonde::prompb::compress;
use sonde::prompb::{Label, LabelMatcher, Query, ReadRequest, Sample, TimeSeries, WriteRequest};
use sonde::query::{self, Limits};
use sonde::serve::remote::{decode_request, read, write};
use sonde::store::SeriesSamples;

/// xorshift64*: small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], interesting: &[u8]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(4) {
        let len = data.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                let byte = if rng.below(2) == 0 {
                    interesting[rng.below(interesting.len())]
                } else {
                    rng.next() as u8
                };
                data.insert(i, byte);
            }
            3 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(16)).min(len);
                data.drain(start..end);
            }
            4 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(32)).min(len);
                let copy = data[start..end].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, copy);
            }
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(data.len() + 1);
                let from = rng.below(other.len() + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            _ => {
                let cut = rng.below(len + 1);
                data.truncate(cut);
            }
        }
    }
    data
}

/// Runs `check` on mutated seeds for the configured time; returns the number
/// of inputs tried. A panic fails with the input in hex.
fn fuzz(name: &str, seeds: Vec<Vec<u8>>, interesting: &[u8], check: impl Fn(&[u8])) -> u64 {
    let seconds: u64 = std::env::var("SONDE_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let seed: u64 = std::env::var("SONDE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tried = 0u64;
    for input in &seeds {
        check(input);
    }
    while Instant::now() < deadline {
        let input = mutate(&mut rng, &seeds, interesting);
        if catch_unwind(AssertUnwindSafe(|| check(&input))).is_err() {
            let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
            panic!("{name}: panic on input {hex} (SONDE_FUZZ_SEED={seed})");
        }
        tried += 1;
    }
    eprintln!("{name}: {tried} inputs in {seconds} s without a panic (SONDE_FUZZ_SEED={seed})");
    tried
}

fn label(name: &str, value: &str) -> Label {
    Label {
        name: name.into(),
        value: value.into(),
    }
}

/// Bytes protobuf and snappy give meaning to: tags, varint edges, lengths.
const PROTO_BYTES: &[u8] = &[
    0x00, 0x01, 0x08, 0x09, 0x0a, 0x10, 0x12, 0x1a, 0x22, 0x7f, 0x80, 0xff,
];

#[test]
fn remote_write_body() {
    let request = WriteRequest {
        timeseries: vec![
            TimeSeries {
                labels: vec![label("__name__", "up"), label("job", "a")],
                samples: vec![
                    Sample {
                        value: 1.0,
                        timestamp: 1_000,
                    },
                    Sample {
                        value: f64::NAN,
                        timestamp: 2_000,
                    },
                ],
            },
            TimeSeries {
                labels: vec![label("__name__", "x_total"), label("le", "+Inf")],
                samples: vec![Sample {
                    value: -3.5,
                    timestamp: -1,
                }],
            },
        ],
        metadata: vec![],
    };
    let encoded = request.encode_to_vec();
    // Mode byte 0: the body as sent (fuzzing snappy); 1: compressed first
    // (reaching protobuf decoding and label checks).
    let seeds = vec![
        [&[0u8][..], &compress(&encoded)].concat(),
        [&[1u8][..], &encoded].concat(),
    ];
    fuzz("remote_write", seeds, PROTO_BYTES, |data| {
        let Some((&mode, rest)) = data.split_first() else {
            return;
        };
        let body = if mode & 1 == 0 {
            rest.to_vec()
        } else {
            compress(rest)
        };
        if let Ok(request) =
            decode_request::<WriteRequest>(&HeaderMap::new(), &body, "prometheus.WriteRequest")
        {
            let _ = write::to_samples(request);
        }
    });
}

#[test]
fn remote_read_body_and_frames() {
    let matcher = |kind: i32, name: &str, value: &str| LabelMatcher {
        r#type: kind,
        name: name.into(),
        value: value.into(),
    };
    let request = ReadRequest {
        queries: vec![Query {
            start_timestamp_ms: 0,
            end_timestamp_ms: 10_000,
            matchers: vec![
                matcher(0, "__name__", "up"),
                matcher(2, "job", "a|b.*"),
                matcher(3, "instance", "(x+)+y"),
            ],
            hints: None,
        }],
        accepted_response_types: vec![1, 0],
    };
    let encoded = request.encode_to_vec();
    let mut frame = Vec::new();
    prost::encoding::encode_varint(encoded.len() as u64, &mut frame);
    frame.extend(0u32.to_be_bytes());
    frame.extend(&encoded);
    // Mode byte % 3: 0 the body as sent, 1 compressed first, 2 frames.
    let seeds = vec![
        [&[0u8][..], &compress(&encoded)].concat(),
        [&[1u8][..], &encoded].concat(),
        [&[2u8][..], &frame].concat(),
    ];
    let regex_bytes: Vec<u8> = PROTO_BYTES
        .iter()
        .copied()
        .chain(*b"()[]{}*+?|\\^$.,0123456789")
        .collect();
    fuzz("remote_read", seeds, &regex_bytes, |data| {
        let Some((&mode, rest)) = data.split_first() else {
            return;
        };
        let body = match mode % 3 {
            0 => rest.to_vec(),
            1 => compress(rest),
            _ => {
                let _ = read::read_frames(rest);
                return;
            }
        };
        if let Ok(request) =
            decode_request::<ReadRequest>(&HeaderMap::new(), &body, "prometheus.ReadRequest")
        {
            for query in &request.queries {
                for matcher in &query.matchers {
                    let _ = read::to_matcher(matcher);
                }
            }
        }
    });
}

#[test]
fn promql_parse_and_evaluate() {
    let series = |name: &str, job: &str, value: fn(i64) -> f64| SeriesSamples {
        labels: Labels::new([(METRIC_NAME, name), ("job", job), ("le", "0.5")]),
        samples: (0..40).map(|i| (i * 15_000, value(i))).collect(),
    };
    // Three small series for PromQL to evaluate over.
    let source = query::InMemory(vec![
        series("c_total", "a", |i| (i * 3 % 50) as f64),
        series("c_total", "b", |i| i as f64 * 0.5),
        series(
            "g",
            "a",
            |i| if i % 7 == 0 { f64::NAN } else { -(i as f64) },
        ),
    ]);
    let limits = Limits {
        timeout: Duration::from_millis(200),
        max_samples: 100_000,
        ..Limits::default()
    };
    let corpus = [
        "sum by (job) (rate(c_total[1m]))",
        "histogram_quantile(0.9, sum by (le) (rate(c_total[5m])))",
        "c_total / ignoring(job) group_left g",
        "topk(1, g) or on(job) vector(1)",
        "max_over_time(g[2m:15s] offset 1m)",
        "label_replace(g, \"x\", \"$1\", \"job\", \"(.*)\")",
        "count_values(\"v\", c_total) > bool 1",
        "quantile(0.5, -g) @ 300",
        "predict_linear(c_total[5m], 60) unless g",
        "absent_over_time(nope[1m]) + scalar(sum(g))",
        "clamp(g, -1, 1) ^ 2 % 3 atan2 c_total",
        "sort_desc(changes(g[10m])) == resets(c_total[10m])",
        "{__name__=~\"c.*\", job!~\"b\"}[1m]",
        "time() - timestamp(g)",
        "stddev_over_time(g[5m]) and deriv(c_total[2m])",
    ];
    let seeds = corpus.iter().map(|q| q.as_bytes().to_vec()).collect();
    fuzz(
        "promql",
        seeds,
        b"()[]{}:@,=~!\"'0123456789smhdwy+-*/^%",
        |data| {
            let text = String::from_utf8_lossy(data);
            if query::parse(&text).is_ok() {
                let _ = query::instant_query(&source, &limits, &text, 300_000);
                let _ = query::range_query(&source, &limits, &text, 0, 600_000, 15_000);
            }
        },
    );
}
