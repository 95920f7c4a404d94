//! sonde's PromQL against the real thing: the same samples go by remote
//! write to sonde and to Prometheus 2.42, then every query of the corpus in
//! tests/promql/ runs through both HTTP APIs (range queries on two grids,
//! instant queries at two instants) and must give the same series with the
//! same values (relative 1e-9) at every step, or the same kind of error.
//! Expected values come from Prometheus at test time, never from this file.

mod common;

use std::collections::BTreeMap;

use common::prometheus::{encode, Prometheus};
use common::promql::{corpus, feed, generate, SCRAPE_MS};
use common::{get, Sonde};
use serde_json::Value;

/// One hour of 15 s scrapes.
const SCRAPES: i64 = 240;

fn api(base_url: &str, path_and_query: &str) -> (u16, Value) {
    let url = format!("{base_url}{path_and_query}");
    let (status, body) = get(&url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {body}"));
    (status, value)
}

/// Values equal as Prometheus writes them, or within 1e-9 relative (and
/// 1e-12 absolute, for results that are zero up to rounding).
fn same_value(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_str(), b.as_str()) else {
        return false;
    };
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) if x.is_finite() && y.is_finite() => {
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()) || (x - y).abs() <= 1e-12
        }
        _ => false,
    }
}

fn by_labels(result: &Value) -> BTreeMap<String, &Value> {
    result
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| (item["metric"].to_string(), item))
                .collect()
        })
        .unwrap_or_default()
}

/// None when sonde answered as Prometheus did; otherwise what differs.
fn difference(query: &str, prom: &(u16, Value), sonde: &(u16, Value)) -> Option<String> {
    let (p, s) = (&prom.1, &sonde.1);
    if p["status"] == "error" {
        return (s["status"] != "error" || s["errorType"] != p["errorType"] || sonde.0 != prom.0)
            .then(|| {
                format!(
                    "Prometheus refused it ({} {}), sonde answered {} {s}",
                    prom.0, p["error"], sonde.0
                )
            });
    }
    if s["status"] != "success" {
        return Some(format!("sonde failed: {s}"));
    }
    let (p, s) = (&p["data"], &s["data"]);
    if p["resultType"] != s["resultType"] {
        return Some(format!(
            "resultType {} vs {}",
            p["resultType"], s["resultType"]
        ));
    }
    match p["resultType"].as_str() {
        Some("scalar") | Some("string") => {
            let (pr, sr) = (&p["result"], &s["result"]);
            (pr[0] != sr[0] || !(same_value(&pr[1], &sr[1]) || pr[1] == sr[1]))
                .then(|| format!("{pr} vs {sr}"))
        }
        Some(kind) => {
            let key = if kind == "matrix" { "values" } else { "value" };
            let (pm, sm) = (by_labels(&p["result"]), by_labels(&s["result"]));
            if pm.keys().ne(sm.keys()) {
                let missing: Vec<_> = pm.keys().filter(|k| !sm.contains_key(*k)).collect();
                let extra: Vec<_> = sm.keys().filter(|k| !pm.contains_key(*k)).collect();
                return Some(format!(
                    "series differ: sonde lacks {missing:?}, has extra {extra:?}"
                ));
            }
            for (labels, pv) in &pm {
                let sv = sm[labels];
                let (pp, sp) = if kind == "matrix" {
                    (
                        pv[key].as_array().unwrap().clone(),
                        sv[key].as_array().cloned().unwrap_or_default(),
                    )
                } else {
                    (vec![pv[key].clone()], vec![sv[key].clone()])
                };
                if pp.len() != sp.len() {
                    return Some(format!(
                        "{labels}: {} points vs {}: {pv} vs {sv}",
                        pp.len(),
                        sp.len()
                    ));
                }
                for (a, b) in pp.iter().zip(&sp) {
                    if a[0] != b[0] || !same_value(&a[1], &b[1]) {
                        return Some(format!("{labels}: point {a} vs {b}"));
                    }
                }
            }
            // Sorting functions and topk/bottomk: the order of values must
            // match too.
            let ordered = ["sort", "topk", "bottomk"]
                .iter()
                .any(|f| query.starts_with(f));
            if kind == "vector" && ordered {
                let order = |r: &Value| -> Vec<Value> {
                    r.as_array()
                        .unwrap()
                        .iter()
                        .map(|i| i["value"][1].clone())
                        .collect()
                };
                let (po, so) = (order(&p["result"]), order(&s["result"]));
                if po != so {
                    return Some(format!("order {po:?} vs {so:?}"));
                }
            }
            None
        }
        None => Some(format!("no resultType: {p}")),
    }
}

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
    let mut failures = Vec::new();
    let mut compared = 0;
    for (file, query) in &queries {
        for request in &requests {
            let path = format!("{request}&query={}", encode(query));
            let prom = api(&prometheus.base_url, &path);
            let ours = api(&sonde.base_url, &path);
            compared += 1;
            if let Some(diff) = difference(query, &prom, &ours) {
                failures.push(format!("{file}: {query}\n  {request}\n  {diff}"));
            }
        }
    }

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
