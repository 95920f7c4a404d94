//! The evaluator on small hand-made data sets whose answers follow from
//! Prometheus's documented rules.

use std::time::Duration;

use super::*;
use crate::model::{Labels, METRIC_NAME};

fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> SeriesSamples {
    SeriesSamples {
        labels: Labels::new(labels.iter().copied()),
        samples: samples.to_vec(),
    }
}

/// A counter every 15 s: `x` per 15 s from 0 s to 600 s.
fn counter(name: &str, extra: &[(&str, &str)], per_step: f64) -> SeriesSamples {
    let mut labels = vec![(METRIC_NAME, name)];
    labels.extend_from_slice(extra);
    let samples: Vec<(i64, f64)> = (0..=40)
        .map(|i| (i * 15_000, i as f64 * per_step))
        .collect();
    series(&labels, &samples)
}

fn instant(source: &InMemory, query: &str, t_ms: i64) -> Result<QueryValue, QueryError> {
    instant_query(source, &Limits::default(), query, t_ms)
}

/// An instant vector as (labels as text, value), sorted by labels.
fn vector(source: &InMemory, query: &str, t_ms: i64) -> Vec<(String, f64)> {
    match instant(source, query, t_ms) {
        Ok(QueryValue::Vector(samples)) => {
            let mut out: Vec<_> = samples
                .into_iter()
                .map(|s| (s.labels.to_string(), s.value))
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        other => panic!("{query}: expected a vector, got {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn instant_selector_looks_back_five_minutes_and_stops_at_stale_markers() {
    let stale = f64::from_bits(STALE_NAN_BITS);
    let src = InMemory(vec![
        series(
            &[(METRIC_NAME, "g"), ("k", "a")],
            &[(0, 1.0), (60_000, 2.0)],
        ),
        series(
            &[(METRIC_NAME, "g"), ("k", "b")],
            &[(0, 5.0), (30_000, stale)],
        ),
    ]);
    assert_eq!(vector(&src, "g", 60_000), [(r#"g{k="a"}"#.into(), 2.0)]);
    assert_eq!(vector(&src, "g", 20_000).len(), 2);
    // 5 minutes after the last sample it still counts; a moment later not.
    assert_eq!(vector(&src, "g", 360_000).len(), 1);
    assert!(vector(&src, "g", 360_001).is_empty());
    assert_eq!(
        vector(&src, "g offset 1m", 120_000),
        [(r#"g{k="a"}"#.into(), 2.0)]
    );
    assert_eq!(
        vector(&src, "g @ 10", 900_000),
        [(r#"g{k="a"}"#.into(), 1.0), (r#"g{k="b"}"#.into(), 5.0)]
    );
}

#[test]
fn rate_increase_and_resets_follow_prometheus() {
    let src = InMemory(vec![counter("c_total", &[("k", "a")], 15.0)]);
    // 1 per second, exactly, whatever the extrapolation.
    let rate = vector(&src, "rate(c_total[5m])", 600_000);
    assert_eq!(rate.len(), 1);
    assert_eq!(rate[0].0, r#"{k="a"}"#, "rate drops the metric name");
    assert!(close(rate[0].1, 1.0), "{rate:?}");
    let increase = vector(&src, "increase(c_total[1m])", 600_000)[0].1;
    assert!(close(increase, 60.0), "{increase}");
    let irate = vector(&src, "irate(c_total[1m])", 600_000)[0].1;
    assert!(close(irate, 1.0));

    let reset = InMemory(vec![series(
        &[(METRIC_NAME, "r_total")],
        &[(0, 10.0), (15_000, 20.0), (30_000, 5.0), (45_000, 15.0)],
    )]);
    // Increase 10, then a reset to 5 (counted as +5), then +10: 25 over 45 s
    // sampled, extrapolated to both window edges (10 s and 5 s away, both
    // under 1.1 sample intervals): over 60 s.
    let inc = vector(&reset, "increase(r_total[1m])", 50_000)[0].1;
    assert!(close(inc, 25.0 * 60.0 / 45.0), "{inc}");
    assert_eq!(vector(&reset, "resets(r_total[1m])", 50_000)[0].1, 1.0);
    assert_eq!(vector(&reset, "changes(r_total[1m])", 50_000)[0].1, 3.0);
    // One sample is not enough for a rate.
    assert!(vector(&reset, "rate(r_total[10s])", 50_000).is_empty());
}

#[test]
fn over_time_functions() {
    let src = InMemory(vec![series(
        &[(METRIC_NAME, "g")],
        &[(0, 1.0), (10_000, 4.0), (20_000, 2.0), (30_000, 3.0)],
    )]);
    let at = |q: &str| vector(&src, q, 30_000)[0].1;
    assert_eq!(at("sum_over_time(g[1m])"), 10.0);
    assert_eq!(at("avg_over_time(g[1m])"), 2.5);
    assert_eq!(at("min_over_time(g[1m])"), 1.0);
    assert_eq!(at("max_over_time(g[1m])"), 4.0);
    assert_eq!(at("count_over_time(g[1m])"), 4.0);
    assert_eq!(at("last_over_time(g[1m])"), 3.0);
    assert_eq!(at("quantile_over_time(0.5, g[1m])"), 2.5);
    assert_eq!(at("stdvar_over_time(g[1m])"), 1.25);
    // The window is closed: [10 s, 30 s] holds three samples.
    assert_eq!(at("count_over_time(g[20s])"), 3.0);
    assert_eq!(
        vector(&src, "last_over_time(g[1m])", 30_000)[0].0,
        "g{}",
        "last_over_time keeps the metric name"
    );
    assert!(vector(&src, "absent_over_time(g[1m])", 30_000).is_empty());
    assert_eq!(
        vector(&src, r#"absent_over_time(nope{job="x"}[1m])"#, 30_000),
        [(r#"{job="x"}"#.into(), 1.0)]
    );
    let deriv = at("deriv(g[1m])");
    assert!(close(deriv, 0.04), "{deriv}");
}

#[test]
fn aggregations_group_by_and_without() {
    let src = InMemory(vec![
        series(&[(METRIC_NAME, "m"), ("a", "1"), ("b", "x")], &[(0, 1.0)]),
        series(&[(METRIC_NAME, "m"), ("a", "1"), ("b", "y")], &[(0, 3.0)]),
        series(&[(METRIC_NAME, "m"), ("a", "2"), ("b", "x")], &[(0, 3.0)]),
    ]);
    assert_eq!(
        vector(&src, "sum by (a) (m)", 0),
        [(r#"{a="1"}"#.into(), 4.0), (r#"{a="2"}"#.into(), 3.0)]
    );
    assert_eq!(
        vector(&src, "max without (a) (m)", 0),
        [(r#"{b="x"}"#.into(), 3.0), (r#"{b="y"}"#.into(), 3.0)]
    );
    assert_eq!(vector(&src, "count(m)", 0), [("{}".into(), 3.0)]);
    assert_eq!(vector(&src, "avg(m)", 0)[0].1, 7.0 / 3.0);
    assert_eq!(vector(&src, "group(m)", 0)[0].1, 1.0);
    assert_eq!(vector(&src, "quantile(0.5, m)", 0)[0].1, 3.0);
    assert_eq!(
        vector(&src, "count_values(\"v\", m)", 0),
        [(r#"{v="1"}"#.into(), 1.0), (r#"{v="3"}"#.into(), 2.0)]
    );
    // topk keeps whole series; with a tie the earlier series stays.
    assert_eq!(
        vector(&src, "topk(1, m)", 0),
        [(r#"m{a="1", b="y"}"#.into(), 3.0)]
    );
    assert_eq!(
        vector(&src, "bottomk by (b) (1, m)", 0),
        [
            (r#"m{a="1", b="x"}"#.into(), 1.0),
            (r#"m{a="1", b="y"}"#.into(), 3.0)
        ]
    );
    let stddev = vector(&src, "stddev(m)", 0)[0].1;
    assert!(close(stddev, (8.0f64 / 9.0).sqrt()));
}

#[test]
fn binary_operators_match_vectors() {
    let src = InMemory(vec![
        series(&[(METRIC_NAME, "l"), ("i", "a"), ("x", "1")], &[(0, 10.0)]),
        series(&[(METRIC_NAME, "l"), ("i", "b"), ("x", "1")], &[(0, 20.0)]),
        series(&[(METRIC_NAME, "r"), ("i", "a")], &[(0, 2.0)]),
        series(
            &[(METRIC_NAME, "info"), ("i", "a"), ("v", "6")],
            &[(0, 1.0)],
        ),
    ]);
    assert_eq!(vector(&src, "l / on(i) r", 0), [(r#"{i="a"}"#.into(), 5.0)]);
    assert_eq!(
        vector(&src, "l / ignoring(x) r", 0),
        [(r#"{i="a"}"#.into(), 5.0)]
    );
    assert_eq!(
        vector(&src, "l * on(i) group_left(v) info", 0),
        [(r#"{i="a", v="6", x="1"}"#.into(), 10.0)]
    );
    assert_eq!(
        vector(&src, "l > 15", 0),
        [(r#"l{i="b", x="1"}"#.into(), 20.0)]
    );
    assert_eq!(
        vector(&src, "15 < l", 0),
        [(r#"l{i="b", x="1"}"#.into(), 20.0)]
    );
    assert_eq!(
        vector(&src, "l > bool 15", 0),
        [
            (r#"{i="a", x="1"}"#.into(), 0.0),
            (r#"{i="b", x="1"}"#.into(), 1.0)
        ]
    );
    assert_eq!(vector(&src, "l and on(i) r", 0).len(), 1);
    assert_eq!(vector(&src, "l unless on(i) r", 0).len(), 1);
    assert_eq!(vector(&src, "l or r", 0).len(), 3);
    match instant(&src, "r * on(x) group_left l", 0) {
        Err(QueryError::Execution(msg)) => {
            assert!(msg.contains("many-to-many matching not allowed"), "{msg}")
        }
        other => panic!("expected a matching error, got {other:?}"),
    }
    match instant(&src, "l + on(x) max by (x) (l)", 0) {
        Err(QueryError::Execution(msg)) => {
            assert!(
                msg.contains("many-to-one matching must be explicit"),
                "{msg}"
            )
        }
        other => panic!("expected a matching error, got {other:?}"),
    }
    match instant(&src, "2 ^ 3 % 5", 0) {
        Ok(QueryValue::Scalar { value, .. }) => assert_eq!(value, 3.0),
        other => panic!("{other:?}"),
    }
}

#[test]
fn histogram_quantile_interpolates_and_drops_le() {
    let bucket = |le: &str, v: f64| {
        series(
            &[(METRIC_NAME, "h_bucket"), ("le", le), ("op", "read")],
            &[(0, 0.0), (60_000, v)],
        )
    };
    let src = InMemory(vec![
        bucket("0.1", 50.0),
        bucket("0.2", 80.0),
        bucket("0.4", 100.0),
        bucket("+Inf", 100.0),
    ]);
    let q = vector(
        &src,
        "histogram_quantile(0.9, sum by (le, op) (rate(h_bucket[1m])))",
        60_000,
    );
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].0, r#"{op="read"}"#);
    assert!(close(q[0].1, 0.3), "{q:?}");
}

#[test]
fn functions_on_labels_and_values() {
    let src = InMemory(vec![
        series(&[(METRIC_NAME, "m"), ("src", "a-1")], &[(0, -2.5)]),
        series(&[(METRIC_NAME, "m"), ("src", "b-2")], &[(0, 7.0)]),
    ]);
    assert_eq!(
        vector(
            &src,
            r#"label_replace(m, "dst", "$1", "src", "(.*)-.*")"#,
            0
        ),
        [
            (r#"m{dst="a", src="a-1"}"#.into(), -2.5),
            (r#"m{dst="b", src="b-2"}"#.into(), 7.0)
        ]
    );
    assert_eq!(
        vector(&src, r#"label_join(m, "j", ":", "src", "src")"#, 0)[0].0,
        r#"m{j="a-1:a-1", src="a-1"}"#
    );
    assert_eq!(vector(&src, "abs(m)", 0)[0], (r#"{src="a-1"}"#.into(), 2.5));
    assert_eq!(vector(&src, "clamp(m, 0, 5)", 0)[1].1, 5.0);
    assert_eq!(vector(&src, "clamp_min(m, 0)", 0)[0].1, 0.0);
    assert_eq!(vector(&src, "round(m)", 0)[0].1, -2.0);
    assert_eq!(vector(&src, "timestamp(m)", 10_000)[0].1, 0.0);
    assert_eq!(vector(&src, "vector(time())", 10_000)[0].1, 10.0);
    assert_eq!(
        vector(&src, r#"absent(nope{a="b", c=~"d"})"#, 0),
        [(r#"{a="b"}"#.into(), 1.0)]
    );
    match instant(&src, "scalar(m)", 0) {
        Ok(QueryValue::Scalar { value, .. }) => assert!(value.is_nan()),
        other => panic!("{other:?}"),
    }
    match instant(&src, "sort_desc(m)", 0) {
        Ok(QueryValue::Vector(v)) => assert_eq!(v[0].value, 7.0),
        other => panic!("{other:?}"),
    }
    match instant(&src, r#"abs({__name__="m"}) or abs({src="a-1"})"#, 0) {
        Ok(QueryValue::Vector(v)) => assert_eq!(v.len(), 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn subqueries_step_on_aligned_instants() {
    let src = InMemory(vec![counter("c_total", &[], 15.0)]);
    // rate over 1 m is 1/s; its max over the last 5 minutes too.
    let v = vector(&src, "max_over_time(rate(c_total[1m])[5m:30s])", 600_000);
    assert!(close(v[0].1, 1.0), "{v:?}");
    match instant(&src, "c_total[1m:20s]", 600_000) {
        Ok(QueryValue::Matrix(m)) => {
            let times: Vec<i64> = m[0].points.iter().map(|p| p.0).collect();
            assert_eq!(times, [540_000, 560_000, 580_000, 600_000]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn range_queries_return_sorted_matrices() {
    let src = InMemory(vec![
        counter("c_total", &[("k", "b")], 15.0),
        counter("c_total", &[("k", "a")], 30.0),
    ]);
    match range_query(&src, &Limits::default(), "c_total", 0, 60_000, 30_000) {
        Ok(QueryValue::Matrix(m)) => {
            assert_eq!(m.len(), 2);
            assert_eq!(m[0].labels.get("k"), Some("a"));
            assert_eq!(m[0].points, [(0, 0.0), (30_000, 60.0), (60_000, 120.0)]);
        }
        other => panic!("{other:?}"),
    }
    match range_query(&src, &Limits::default(), "1 + 1", 0, 60_000, 30_000) {
        Ok(QueryValue::Matrix(m)) => {
            assert!(m[0].labels.is_empty());
            assert_eq!(m[0].points.len(), 3);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        range_query(&src, &Limits::default(), "c_total[1m]", 0, 60_000, 30_000),
        Err(QueryError::BadData(_))
    ));
}

#[test]
fn bad_queries_and_limits_are_errors_not_panics() {
    let src = InMemory(vec![counter("c_total", &[], 1.0)]);
    for bad in [
        "sum(",
        "rate(c_total)",
        "c_total{",
        "1 +",
        "foo[5m] + 1",
        "",
    ] {
        assert!(
            matches!(instant(&src, bad, 0), Err(QueryError::BadData(_))),
            "{bad}"
        );
    }
    let tight = Limits {
        max_samples: 10,
        ..Limits::default()
    };
    assert_eq!(
        instant_query(&src, &tight, "c_total[10m]", 600_000),
        Err(QueryError::Execution(TOO_MANY_SAMPLES.into()))
    );
    let no_time = Limits {
        timeout: Duration::ZERO,
        ..Limits::default()
    };
    std::thread::sleep(Duration::from_millis(2));
    assert_eq!(
        instant_query(&src, &no_time, "c_total", 0),
        Err(QueryError::Timeout)
    );
}

/// Mutated queries (characters dropped, repeated, swapped for PromQL's
/// punctuation) never panic the parser or the evaluator: each gives an
/// answer or an error. `SONDE_PROMQL_MUTATIONS` sets how many (default
/// 3000); BENCHMARKS.md records a long run.
#[test]
fn mutated_queries_never_panic() {
    let iterations: usize = std::env::var("SONDE_PROMQL_MUTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3000);
    let src = InMemory(vec![
        counter("c_total", &[("k", "a")], 15.0),
        counter("c_total", &[("k", "b")], 1.0),
        series(&[(METRIC_NAME, "h_bucket"), ("le", "+Inf")], &[(0, 1.0)]),
    ]);
    let seeds = [
        "sum by (k) (rate(c_total{k=~\"a|b\"}[5m] offset 1m))",
        "histogram_quantile(0.9, sum by (le) (rate(h_bucket[1m])))",
        "topk(2, c_total) / on(k) group_left bottomk(1, c_total @ 300)",
        "max_over_time(deriv(c_total[2m])[10m:30s]) > bool 0 or vector(1)",
        "label_replace(c_total, \"x\", \"$1\", \"k\", \"(.)\") unless c_total",
        "count_values(\"v\", clamp(c_total, -1, 1e3)) + scalar(time())",
    ];
    let alphabet: Vec<char> = "()[]{}\"'=~!,:@+-*/%^<>0123456789.e sumbyrate_$`\\#\n"
        .chars()
        .collect();
    let mut state = 7u64;
    let mut next = |bound: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize % bound.max(1)
    };
    let limits = Limits {
        max_samples: 100_000,
        ..Limits::default()
    };
    for i in 0..iterations {
        let mut query: Vec<char> = seeds[i % seeds.len()].chars().collect();
        for _ in 0..1 + next(4) {
            let at = next(query.len());
            match next(3) {
                0 if !query.is_empty() => {
                    query.remove(at);
                }
                1 => query.insert(at, alphabet[next(alphabet.len())]),
                _ if !query.is_empty() => query[at] = alphabet[next(alphabet.len())],
                _ => {}
            }
        }
        let query: String = query.into_iter().collect();
        let outcome = std::panic::catch_unwind(|| {
            let _ = instant_query(&src, &limits, &query, 600_000);
            let _ = range_query(&src, &limits, &query, 0, 600_000, 60_000);
        });
        assert!(outcome.is_ok(), "panicked on {query:?}");
    }
}
