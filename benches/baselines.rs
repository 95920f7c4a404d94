//! Baseline rules over 500 series with 7 days of history, sonde beside
//! Prometheus 2.42 in one run, on the same samples (a gauge with a daily
//! pattern and noise, one sample every 5 minutes, 7 days and an hour).
//!
//! - sonde: the baseline rule (`seasonal_quantile`, and `stddev` over a 7d
//!   window) evaluated by the rule engine on a store the samples were
//!   appended to, its bands read from the hour rollups: the first
//!   evaluation of an hour (the bands computed) and the next ones (the
//!   bands cached), medians of 10; and, for reference, sonde's PromQL
//!   evaluating Prometheus's expression on the same store.
//! - Prometheus: the same baselines written in plain PromQL as recording
//!   rules (the quantile of the same hour on each of the 7 days through 7
//!   offsets; mean and stddev of the week's samples, which sonde's stddev
//!   band is, from the buckets' second moments), beside the alert comparing
//!   the value with them, on day-long
//!   blocks `promtool tsdb create-blocks-from openmetrics` made of the
//!   samples;
//!   each group's `evaluationTime` from `/api/v1/rules`, median of 6 reads
//!   10 s apart.
//!
//!     cargo bench --bench baselines    # with the Makefile's flags, see BENCHMARKS.md

#[path = "../tests/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::prometheus::Prometheus;
use common::{get, TempDir};
use sonde::alert::rule::{EvalContext, Rule};
use sonde::alert::rulefile;
use sonde::model::{Labels, Sample, METRIC_NAME};
use sonde::query::{instant_query, Limits};
use sonde::store::Store;

const SERIES: usize = 500;
const STEP_MS: i64 = 5 * 60_000;
const HOUR_MS: i64 = 3_600_000;
const HISTORY_MS: i64 = 7 * 24 * HOUR_MS + HOUR_MS;
const RUNS: usize = 10;
const READS: usize = 6;

const SONDE_RULES: &str = r#"
groups:
  - name: baselines
    rules:
      - alert: SeasonalLoad
        expr: bench_load
        baseline: { method: seasonal_quantile, quantile: 0.9, season: 1d, history: 7d, tolerance: 0.2, direction: above }
      - alert: StddevLoad
        expr: bench_load
        baseline: { method: stddev, window: 7d, k: 3, direction: above }
"#;

/// The quantile of the same hour on each of the last 7 days, in PromQL.
fn seasonal_promql() -> String {
    let seasons: Vec<String> = (1..=7)
        .map(|d| {
            format!(
                r#"label_replace(avg_over_time(bench_load[1h] offset {d}d), "season", "{d}", "", "")"#
            )
        })
        .collect();
    format!("quantile by (instance) (0.9, {})", seasons.join(" or "))
}

fn prometheus_rules() -> String {
    format!(
        r#"groups:
  - name: seasonal
    interval: 10s
    rules:
      - record: bench:load:seasonal_q90
        expr: '{seasonal}'
      - alert: SeasonalLoad
        expr: bench_load > on(instance) 1.2 * bench:load:seasonal_q90
  - name: stddev
    interval: 10s
    rules:
      - record: bench:load:mean_7d
        expr: avg_over_time(bench_load[7d])
      - record: bench:load:stddev_7d
        expr: stddev_over_time(bench_load[7d])
      - alert: StddevLoad
        expr: bench_load > on(instance) bench:load:mean_7d + 3 * bench:load:stddev_7d
"#,
        seasonal = seasonal_promql()
    )
}

/// A daily pattern per series (each its own phase and height) with noise.
fn value(series: usize, t_ms: i64) -> f64 {
    let day = (t_ms % (24 * HOUR_MS)) as f64 / (24 * HOUR_MS) as f64;
    let phase = series as f64 / SERIES as f64;
    let noise = ((t_ms / STEP_MS) as u64 ^ series as u64).wrapping_mul(2_654_435_761) % 100;
    10.0 + series as f64 % 7.0
        + 20.0 * (std::f64::consts::TAU * (day + phase)).sin().max(0.0)
        + noise as f64 / 100.0
}

fn instance(series: usize) -> String {
    format!("i{series:03}")
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let end = sonde::collect::now_ms() / STEP_MS * STEP_MS;
    let start = end - HISTORY_MS;
    let dir = TempDir::new("bench-baselines");

    let began = Instant::now();
    let mut store = Store::open(&dir.0.join("sonde")).unwrap();
    let mut openmetrics = String::from("# TYPE bench_load gauge\n");
    for t in (start..=end).step_by(STEP_MS as usize) {
        let batch: Vec<Sample> = (0..SERIES)
            .map(|s| Sample {
                labels: Labels::new([(METRIC_NAME, "bench_load"), ("instance", &instance(s))]),
                timestamp_ms: t,
                value: value(s, t),
            })
            .collect();
        store.append(&batch).unwrap();
        for s in &batch {
            let _ = writeln!(
                openmetrics,
                "bench_load{{instance=\"{}\"}} {} {}",
                s.labels.get("instance").unwrap(),
                s.value,
                t / 1000
            );
        }
    }
    openmetrics.push_str("# EOF\n");
    println!(
        "{SERIES} series, {} samples each, written to sonde's store in {:.1} s",
        HISTORY_MS / STEP_MS + 1,
        began.elapsed().as_secs_f64()
    );

    let rule_file = dir.0.join("prometheus-rules.yml");
    std::fs::write(&rule_file, prometheus_rules()).unwrap();
    let mut prometheus = Prometheus::start(
        &format!(
            "global:\n  evaluation_interval: 10s\nrule_files:\n  - {}\n",
            rule_file.display()
        ),
        &[],
    );
    prometheus.stop();
    let metrics_file = dir.0.join("samples.om");
    std::fs::write(&metrics_file, &openmetrics).unwrap();
    let began = Instant::now();
    let status = Command::new("promtool")
        // Day-long blocks, as a Prometheus that ran for the week has
        // compacted its 2-hour ones into.
        .args([
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=24h",
        ])
        .arg(&metrics_file)
        .arg(prometheus.dir.0.join("data"))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("promtool (Debian package prometheus)");
    assert!(status.success());
    println!(
        "blocks for Prometheus made in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    prometheus.restart();

    let file = rulefile::parse(Path::new("baselines.yml"), SONDE_RULES).unwrap();
    let limits = Limits::default();
    let external_labels = Labels::default();
    let ctx = EvalContext {
        source: &store,
        limits: &limits,
        external_labels: &external_labels,
        external_url: "http://127.0.0.1:9977",
    };
    let mut sonde_rows = Vec::new();
    for spec in &file.groups[0].rules {
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let mut rule = Rule::new(spec.clone());
            let began = Instant::now();
            let samples = rule.eval(&ctx, end, 0).unwrap();
            cold.push(began.elapsed().as_secs_f64());
            assert_eq!(samples.len() % 3, 0);
            assert!(
                samples.len() >= 3 * SERIES,
                "{} has a band per series",
                spec.name()
            );
            let began = Instant::now();
            rule.eval(&ctx, end + 10_000, 0).unwrap();
            warm.push(began.elapsed().as_secs_f64());
        }
        sonde_rows.push((
            spec.name().to_string(),
            median(&mut cold),
            median(&mut warm),
        ));
    }
    let mut promql_times = Vec::new();
    for _ in 0..RUNS {
        let began = Instant::now();
        instant_query(&store, &limits, &seasonal_promql(), end).unwrap();
        promql_times.push(began.elapsed().as_secs_f64());
    }
    let sonde_promql = median(&mut promql_times);

    // Prometheus evaluates on the wall clock: its first groups ran while
    // sonde's were timed.
    let mut prom: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for _ in 0..READS {
        std::thread::sleep(Duration::from_secs(10));
        let (status, body) = get(&format!("{}/api/v1/rules", prometheus.base_url)).unwrap();
        assert_eq!(status, 200, "{body}");
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        for group in value["data"]["groups"].as_array().unwrap() {
            for rule in group["rules"].as_array().unwrap() {
                assert_eq!(rule["health"], "ok", "{rule}");
            }
            prom.entry(group["name"].as_str().unwrap().to_string())
                .or_default()
                .push(group["evaluationTime"].as_f64().unwrap());
        }
    }
    let recorded = prometheus.api("/api/v1/query?query=count(bench:load:seasonal_q90)");
    println!("Prometheus's seasonal recording: {recorded}");

    println!("evaluation time over {SERIES} series, 7 days of history (ms)");
    println!(
        "{:>10} {:>12} {:>12} {:>7} {:>7}  rule",
        "Prometheus", "sonde first", "sonde next", "ratio", "ratio"
    );
    let groups = ["seasonal", "stddev"];
    for ((name, cold, warm), group) in sonde_rows.iter().zip(groups) {
        let p = median(prom.get_mut(group).unwrap()) * 1000.0;
        let (c, w) = (cold * 1000.0, warm * 1000.0);
        println!(
            "{p:>10.2} {c:>12.2} {w:>12.2} {:>7.2} {:>7.3}  {name}",
            c / p,
            w / p
        );
    }
    println!(
        "sonde's PromQL on Prometheus's seasonal expression: {:.2} ms",
        sonde_promql * 1000.0
    );
}
