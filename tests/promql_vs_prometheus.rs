//! sonde's PromQL against the real thing: the same samples go by remote
//! write to sonde and to Prometheus 2.42, then every query of the corpus in
//! tests/promql/ runs through both HTTP APIs (range queries on two grids,
//! instant queries at two instants) and must give the same series with the
//! same values (relative 1e-9) at every step, or the same kind of error.
//! Expected values come from Prometheus at test time, never from this file.

mod common;

use common::prometheus::{encode, Prometheus};
use common::promql::{api, compare, corpus, feed, generate, SCRAPE_MS};
use common::Sonde;
use serde_json::Value;

/// One hour of 15 s scrapes.
const SCRAPES: i64 = 240;

#[test]
fn corpus_answers_as_prometheus_does() {
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // An hour of data ending two minutes ago, starting on a whole minute.
    let t0 = (now_s - 3720) / 60 * 60 * 1000;
    let data = generate(t0, SCRAPES);

    let sonde = Sonde::start("");
    let prometheus = Prometheus::start(
        "global:\n  scrape_interval: 15s\n",
        &["--web.enable-remote-write-receiver"],
    );
    feed(&sonde.base_url, &data, t0, SCRAPES);
    feed(&prometheus.base_url, &data, t0, SCRAPES);

    let t0s = t0 / 1000;
    let end = t0s + SCRAPES * SCRAPE_MS / 1000;
    // Grafana's grid (start on a step multiple) and an awkward one reaching
    // past both ends of the data; instants inside and at the end.
    let requests = [
        format!("/api/v1/query_range?start={}&end={end}&step=30", t0s + 300),
        format!(
            "/api/v1/query_range?start={}.250&end={}&step=47",
            t0s - 400,
            end + 400
        ),
        format!("/api/v1/query?time={}.123", t0s + 1800),
        format!("/api/v1/query?time={end}"),
    ];

    let queries = corpus("1m");
    let (mut compared, mut failures) =
        compare(&prometheus.base_url, &sonde.base_url, &queries, &requests);

    // Series and label browsing over the same data.
    let range = format!("start={t0s}&end={end}");
    for path in [
        format!(
            "/api/v1/series?match[]={}&{range}",
            encode("{job=\"edge\"}")
        ),
        format!(
            "/api/v1/series?match[]={}&match[]={}&{range}",
            encode("node_load1"),
            encode("edge_info{owner=~\"a.*\"}")
        ),
        format!(
            "/api/v1/labels?match[]={}&{range}",
            encode("{job=~\"edge|ebpf\"}")
        ),
        format!(
            "/api/v1/label/__name__/values?match[]={}&{range}",
            encode("{job=\"node\"}")
        ),
        format!(
            "/api/v1/label/case/values?match[]={}&{range}",
            encode("edge_gauge")
        ),
    ] {
        let (prom, ours) = (
            api(&prometheus.base_url, &path),
            api(&sonde.base_url, &path),
        );
        let sorted = |v: &Value| {
            let mut items: Vec<String> = v["data"]
                .as_array()
                .map(|a| a.iter().map(Value::to_string).collect())
                .unwrap_or_default();
            items.sort();
            items
        };
        compared += 1;
        if prom.1["status"] != "success" || sorted(&prom.1) != sorted(&ours.1) {
            failures.push(format!(
                "{path}\n  Prometheus {}\n  sonde {}",
                prom.1, ours.1
            ));
        }
    }

    eprintln!(
        "{compared} comparisons over {} queries, {} differ",
        queries.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {compared} answers differ from Prometheus:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
