//! Rule evaluation time per group, sonde beside Prometheus 2.42 in one run:
//! 100 rules (10 groups of 10: recording and alerting, rates, sums,
//! ratios, topk, quantile, absent, count) over 10,000 counters, the same
//! rule file and the same samples (remote-written to both, 10 minutes of
//! history at a 10 s interval, then one new sample per series every 10 s).
//! Each group's `evaluationTime` is read from both `/api/v1/rules` every
//! 10 s for a minute once both have evaluated for a while; the table shows
//! the medians and sonde's ratio.
//!
//! `pack`: the shipped rule pack (`packaging/rules/`) instead, over sonde's
//! own live metrics, which sonde also remote-writes to the Prometheus
//! beside it, so both evaluate the same rules on the same samples.
//!
//!     cargo bench --bench rules             # with the Makefile's flags, see BENCHMARKS.md
//!     cargo bench --bench rules -- pack

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::prometheus::Prometheus;
use common::remote::{series, write};
use common::{get, Sonde, TempDir};
use sonde::prompb::{TimeSeries, WriteRequest};

const JOBS: usize = 10;
const INSTANCES: usize = 100;
const ROUTES: usize = 10;
const SCRAPE_MS: i64 = 10_000;
const HISTORY_SCRAPES: i64 = 60;
const WARM_UP: Duration = Duration::from_secs(60);
const READS: usize = 6;

fn rules() -> String {
    let mut text = String::from("groups:\n");
    for g in 0..ROUTES {
        let sel = format!("bench_requests_total{{route=\"r{g}\"}}");
        let rate = format!("rate({sel}[5m])");
        text += &format!(
            r#"  - name: bench-{g}
    interval: 10s
    rules:
      - record: bench:route_rate:sum_by_job_{g}
        expr: sum by (job) ({rate})
      - record: bench:route_rate:sum_by_instance_{g}
        expr: sum by (instance) ({rate})
      - alert: BenchJobRateHigh{g}
        expr: bench:route_rate:sum_by_job_{g} > 5
        for: 1m
        labels: {{ severity: ticket }}
      - alert: BenchInstanceRate{g}
        expr: {rate} > 0.9
        annotations: {{ summary: "{{{{ $labels.instance }}}} at {{{{ $value }}}}" }}
      - record: bench:requests:increase1m_{g}
        expr: sum(increase({sel}[1m]))
      - alert: BenchAbsent{g}
        expr: absent(bench_requests_total{{route="r{g}", job="nope"}})
      - record: bench:topk_{g}
        expr: topk(5, {rate})
      - alert: BenchRatio{g}
        expr: sum by (job) (rate(bench_requests_total{{route="r{g}", instance=~"i[0-4].*"}}[5m])) / sum by (job) ({rate}) < 0.5
      - record: bench:quantile_{g}
        expr: quantile by (job) (0.9, {rate})
      - alert: BenchCountHigh{g}
        expr: count by (job) ({sel}) > 50
"#
        );
    }
    text
}

/// One scrape of every counter at `t_ms`: instance i grows by i/100 a
/// second, so a few instances per route pass the rate thresholds.
fn scrape(t_ms: i64) -> WriteRequest {
    let mut timeseries: Vec<TimeSeries> = Vec::with_capacity(JOBS * INSTANCES * ROUTES);
    for job in 0..JOBS {
        for instance in 0..INSTANCES {
            for route in 0..ROUTES {
                let value = (t_ms / 1000) as f64 * instance as f64 / 100.0;
                timeseries.push(series(
                    "bench_requests_total",
                    &[
                        ("job", &format!("j{job}")),
                        ("instance", &format!("i{instance:02}")),
                        ("route", &format!("r{route}")),
                    ],
                    &[(t_ms, value)],
                ));
            }
        }
    }
    WriteRequest {
        timeseries,
        ..Default::default()
    }
}

/// Each group's last evaluation time in seconds, by group name.
fn evaluation_times(base_url: &str) -> BTreeMap<String, f64> {
    let (status, body) = get(&format!("{base_url}/api/v1/rules")).expect("rules API");
    assert_eq!(status, 200, "{body}");
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    value["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap().to_string(),
                g["evaluationTime"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let pack = std::env::args().skip(1).any(|a| a == "pack");
    if pack {
        shipped_pack();
    } else {
        synthetic();
    }
}

/// The shipped pack over sonde's own metrics, remote-written to Prometheus.
fn shipped_pack() {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/rules/*.yml");
    let prometheus = Prometheus::start(
        &format!("global:\n  evaluation_interval: 10s\nrule_files:\n  - {rules}\n"),
        &["--web.enable-remote-write-receiver"],
    );
    let sonde = Sonde::start(&format!(
        "[alerting]\nrule_files = [\"{rules}\"]\nevaluation_interval = \"10s\"\n\
         [[remote_write]]\nurl = \"{}/api/v1/write\"\n",
        prometheus.base_url
    ));
    std::thread::sleep(WARM_UP);
    let times = read_evaluation_times(&[&prometheus.base_url, &sonde.base_url], || {
        std::thread::sleep(Duration::from_secs(10))
    });
    report(
        "evaluationTime per group of the shipped rule pack over sonde's own metrics",
        times,
    );
}

/// 100 rules over 10,000 generated counters.
fn synthetic() {
    let dir = TempDir::new("bench-rules");
    let rule_file = dir.0.join("rules.yml");
    std::fs::write(&rule_file, rules()).unwrap();
    let prometheus = Prometheus::start(
        &format!(
            "global:\n  evaluation_interval: 10s\nrule_files:\n  - {}\n",
            rule_file.display()
        ),
        &["--web.enable-remote-write-receiver"],
    );
    let sonde = Sonde::start(&format!(
        "[alerting]\nrule_files = [\"{}\"]\n",
        rule_file.display()
    ));
    let targets = [prometheus.base_url.clone(), sonde.base_url.clone()];

    let now = sonde::collect::now_ms() / SCRAPE_MS * SCRAPE_MS;
    let started = Instant::now();
    for k in (1..=HISTORY_SCRAPES).rev() {
        let request = scrape(now - k * SCRAPE_MS);
        for target in &targets {
            write(target, &request);
        }
    }
    println!(
        "{} series, {} samples each written to both in {:.1} s",
        JOBS * INSTANCES * ROUTES,
        HISTORY_SCRAPES,
        started.elapsed().as_secs_f64()
    );

    let mut next_scrape = now;
    let mut feed_until = |deadline: Instant| {
        while Instant::now() < deadline {
            let wall = sonde::collect::now_ms();
            if wall >= next_scrape {
                let request = scrape(next_scrape);
                for target in &targets {
                    write(target, &request);
                }
                next_scrape += SCRAPE_MS;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    feed_until(Instant::now() + WARM_UP);
    let times = read_evaluation_times(&[&targets[0], &targets[1]], || {
        feed_until(Instant::now() + Duration::from_secs(10))
    });
    report(
        "evaluationTime per group of 10 rules over 1,000 of the series",
        times,
    );
    let alerts = |base: &str| {
        let (_, body) = get(&format!("{base}/api/v1/alerts")).unwrap();
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        value["data"]["alerts"].as_array().unwrap().len()
    };
    println!(
        "alerts pending or firing: Prometheus {}, sonde {}",
        alerts(&prometheus.base_url),
        alerts(&sonde.base_url)
    );
}

/// Each group's evaluationTime from Prometheus ([0]) and sonde ([1]), read
/// `READS` times with `wait` before each.
fn read_evaluation_times(
    targets: &[&str; 2],
    mut wait: impl FnMut(),
) -> BTreeMap<String, (Vec<f64>, Vec<f64>)> {
    let mut times: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for _ in 0..READS {
        wait();
        for (group, seconds) in evaluation_times(targets[0]) {
            times.entry(group).or_default().0.push(seconds);
        }
        for (group, seconds) in evaluation_times(targets[1]) {
            times.entry(group).or_default().1.push(seconds);
        }
    }
    times
}

fn report(title: &str, mut times: BTreeMap<String, (Vec<f64>, Vec<f64>)>) {
    println!("{title}, median of {READS} (ms)");
    println!("{:>10} {:>10} {:>7}  group", "Prometheus", "sonde", "ratio");
    let (mut total_prom, mut total_sonde) = (0.0, 0.0);
    for (group, (prom, ours)) in &mut times {
        let (p, s) = (median(prom) * 1000.0, median(ours) * 1000.0);
        total_prom += p;
        total_sonde += s;
        println!("{p:>10.2} {s:>10.2} {:>7.2}  {group}", s / p);
    }
    println!(
        "{total_prom:>10.2} {total_sonde:>10.2} {:>7.2}  all groups",
        total_sonde / total_prom
    );
}
