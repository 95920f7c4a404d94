//! The Services view drawn from known samples: a service whose histograms
//! (HTTP requests and gRPC calls) imply a request rate, an error ratio and
//! percentiles a reader can work out, and a request log holding its
//! slowest request; the view shows those figures, its routes and gRPC
//! methods and that request, without script.

mod common;

use std::sync::Arc;

use sonde::collect::http::log::{Entry, RequestLog};
use sonde::model::{Labels, Sample, METRIC_NAME};
use sonde::serve::{router, Shared};
use sonde::store::Store;

use common::{get, TempDir};

const SECOND: i64 = 1000;

const HTTP: &str = "http_server_request_duration_seconds";
const GRPC: &str = "rpc_server_duration_seconds";
const HTTP_OUT: &str = "http_client_request_duration_seconds";
const GRPC_OUT: &str = "rpc_client_duration_seconds";

/// One series of histogram `metric` with `labels`, every 10 s over the
/// last 30 minutes, `per_second` calls a second, each between 50 and 100
/// ms.
fn histogram(metric: &str, labels: &[(&str, &str)], per_second: f64, end_ms: i64) -> Vec<Sample> {
    let span = 30 * 60;
    let mut samples = Vec::new();
    for i in 0..=span / 10 {
        let t = (i * 10) as f64;
        let count = per_second * t;
        let mut push = |name: &str, le: Option<&str>, value: f64| {
            let mut labels: Vec<(&str, &str)> = labels.to_vec();
            labels.push((METRIC_NAME, name));
            labels.extend(le.map(|le| ("le", le)));
            samples.push(Sample {
                labels: Labels::new(labels),
                timestamp_ms: end_ms - span * SECOND + i * 10 * SECOND,
                value,
            });
        };
        push(&format!("{metric}_count"), None, count);
        for (le, value) in [("0.05", 0.0), ("0.1", count), ("+Inf", count)] {
            push(&format!("{metric}_bucket"), Some(le), value);
        }
    }
    samples
}

#[test]
fn shows_rate_errors_percentiles_routes_and_the_slowest_request() {
    let dir = TempDir::new("services-view");
    let end = sonde::collect::now_ms();
    let mut store = Store::open(&dir.0).unwrap();
    let mut samples = Vec::new();
    for (status, per_second) in [("200", 2.0), ("500", 0.5)] {
        let labels = [
            ("service_name", "shop"),
            ("http_request_method", "GET"),
            ("http_route", "/a"),
            ("http_response_status_code", status),
        ];
        samples.extend(histogram(HTTP, &labels, per_second, end));
    }
    // OK, UNAVAILABLE (the server's error), NOT_FOUND (the caller's).
    for (code, per_second) in [("0", 1.5), ("14", 0.5), ("5", 0.5)] {
        let labels = [
            ("service_name", "shop"),
            ("rpc_method", "/shop.Cart/Add"),
            ("rpc_grpc_status_code", code),
            ("rpc_system", "grpc"),
        ];
        samples.extend(histogram(GRPC, &labels, per_second, end));
    }
    // Calls made: shop's to a peer (a 404 is the call's error), and a
    // service that only calls.
    for (status, per_second) in [("200", 1.5), ("404", 0.5)] {
        let labels = [
            ("service_name", "shop"),
            ("http_request_method", "GET"),
            ("http_response_status_code", status),
            ("server_address", "192.0.2.9"),
            ("server_port", "5000"),
        ];
        samples.extend(histogram(HTTP_OUT, &labels, per_second, end));
    }
    let labels = [
        ("service_name", "cron"),
        ("rpc_method", "/shop.Cart/Add"),
        ("rpc_grpc_status_code", "5"),
        ("server_address", "192.0.2.10"),
        ("server_port", "6000"),
    ];
    samples.extend(histogram(GRPC_OUT, &labels, 1.0, end));
    store.append(&samples).unwrap();
    RequestLog::shared().record(Entry {
        time_ms: end,
        service: "shop".into(),
        pid: 4242,
        method: "GET",
        path: "/a".into(),
        route: "/a".into(),
        status: 500,
        grpc_status: None,
        duration_seconds: 0.0987,
        request_body_bytes: 0,
        response_body_bytes: 2048,
    });
    let (base, stop, _thread) = common::recorder::serve(router(Arc::new(Shared::new(store))));

    let (status, html) = get(&format!("{base}/services?range=15m")).unwrap();
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains(r#"href="/services?range=15m" class="current""#),
        "the Services tab is current"
    );
    // 2.5 requests a second, a fifth of them 5xx, and 2.5 gRPC calls, a
    // fifth of them UNAVAILABLE, all between 50 and 100 ms (linear inside
    // the bucket: p50 75 ms, p95 97.5 ms, p99 99.5 ms).
    let row = |name: &str| -> Vec<String> {
        let start = html
            .find(name)
            .unwrap_or_else(|| panic!("{name} missing:\n{html}"));
        let row = &html[start..];
        let row = &row[..row.find("</tr>").unwrap()];
        row.split("<td class=\"number\">")
            .skip(1)
            .map(|cell| cell.split('<').next().unwrap().to_string())
            .collect()
    };
    let want = ["2.5/s", "20%", "75 ms", "97.5 ms", "99.5 ms"];
    let both = ["5/s", "20%", "75 ms", "97.5 ms", "99.5 ms"];
    assert_eq!(row("#service-1\">shop</a>"), both);
    assert_eq!(row(">GET /a</th>"), want, "its route");
    assert_eq!(row(">gRPC /shop.Cart/Add</th>"), want, "its gRPC method");
    let calls = ["2/s", "25%", "75 ms", "97.5 ms", "99.5 ms"];
    assert_eq!(row(">192.0.2.9:5000</th>"), calls, "the peer shop called");
    // A service that served nothing, listed after those that did, for the
    // calls it made (every gRPC code but OK is a client's error).
    assert_eq!(row("#service-2\">cron</a>"), ["0/s", "0%", "–", "–", "–"]);
    let failed = ["1/s", "100%", "75 ms", "97.5 ms", "99.5 ms"];
    assert_eq!(row(">192.0.2.10:6000</th>"), failed);
    // Each figure over time, in the Graph view, which draws it.
    let link = |label: &str| {
        html.split("href=\"")
            .find(|link| link.contains(&format!(">{label}</a>")))
            .and_then(|link| link.split('"').next())
            .unwrap_or_else(|| panic!("no {label} link"))
            .replace("&amp;", "&")
    };
    let p95 = link("p95");
    let (status, graph) = get(&format!("{base}{p95}")).unwrap();
    assert_eq!(status, 200, "{p95}: {graph}");
    assert!(graph.contains("<svg"), "{p95}: no chart");
    // What the links draw, at the last sample: HTTP's requests and gRPC's
    // calls both.
    let at_end = |label: &str| -> Vec<(String, f64)> {
        let link = link(label);
        let expr = link
            .split("g0.expr=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        let url = format!("{base}/api/v1/query?query={expr}&time={}", end / SECOND);
        let (status, body) = get(&url).unwrap();
        assert_eq!(status, 200, "{label}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        let mut series: Vec<(String, f64)> = body["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|series| {
                let metric = &series["metric"];
                let status = ["http_response_status_code", "rpc_grpc_status_code"]
                    .map(|name| metric[name].as_str().unwrap_or(""))
                    .concat();
                let value = series["value"][1].as_str().unwrap().parse().unwrap();
                (status, value)
            })
            .collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        series
    };
    let by_status = |pairs: &[(&str, f64)]| -> Vec<(String, f64)> {
        pairs.iter().map(|(s, v)| (s.to_string(), *v)).collect()
    };
    assert_eq!(
        at_end("requests by status"),
        by_status(&[
            ("0", 1.5),
            ("14", 0.5),
            ("200", 2.0),
            ("5", 0.5),
            ("500", 0.5)
        ])
    );
    assert_eq!(at_end("error ratio"), by_status(&[("", 0.2)]));
    let p95 = at_end("p95");
    assert!((p95[0].1 - 0.0975).abs() < 1e-9, "p95 {p95:?}");
    let slowest = html.split("Slowest requests").nth(1).unwrap();
    for cell in ["GET /a", "500", "98.7 ms", "0 B / 2 KiB", "4242"] {
        assert!(slowest.contains(cell), "{cell}:\n{slowest}");
    }

    let (status, html) = get(&format!("{base}/services?range=15m&sort=cpu")).unwrap();
    assert_eq!(status, 400);
    assert!(html.contains("sort"), "{html}");
    drop(stop);
}

#[test]
fn says_so_when_no_service_served() {
    let dir = TempDir::new("services-view-empty");
    let store = Store::open(&dir.0).unwrap();
    let (base, stop, _thread) = common::recorder::serve(router(Arc::new(Shared::new(store))));
    let (status, html) = get(&format!("{base}/services")).unwrap();
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("No HTTP request or gRPC call was served"),
        "{html}"
    );
    drop(stop);
}
