//! What Grafana's Prometheus data source sends, replayed against sonde: the
//! connection test (`1+1`, then buildinfo), rules and exemplars on load,
//! metric and label browsing with `match[]`, the variable
//! `label_values(node_uname_info, nodename)`, and panel range queries as
//! form POSTs, among them every query of packaging/grafana/sonde-ebpf.json.
//! Each answer must have the shape Prometheus gives it.

mod common;

use common::prometheus::encode;
use common::remote::{self, series};
use common::{get, Sonde};
use serde_json::Value;
use sonde::prompb::WriteRequest;

const FORM: [(&str, &str); 1] = [("Content-Type", "application/x-www-form-urlencoded")];

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// POSTs a form as Grafana does; (status, JSON answer).
fn post_form(sonde: &Sonde, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let body: Vec<String> = form
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let answer = remote::post(
        &format!("{}{path}", sonde.base_url),
        body.join("&").as_bytes(),
        &FORM,
    )
    .unwrap();
    assert_eq!(answer.content_type, "application/json", "{path}");
    (answer.status, serde_json::from_slice(&answer.body).unwrap())
}

fn get_json(sonde: &Sonde, path: &str) -> (u16, Value) {
    let (status, body) = get(&format!("{}{path}", sonde.base_url)).unwrap();
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, value)
}

/// The `data` of a successful answer.
fn data(answer: (u16, Value), what: &str) -> Value {
    let (status, mut value) = answer;
    assert_eq!(status, 200, "{what}: {value}");
    assert_eq!(value["status"], "success", "{what}: {value}");
    value["data"].take()
}

/// A `[<unix seconds>, "<value>"]` pair.
fn assert_point(point: &Value, what: &str) {
    let pair = point
        .as_array()
        .unwrap_or_else(|| panic!("{what}: {point}"));
    assert_eq!(pair.len(), 2, "{what}: {point}");
    assert!(pair[0].is_number(), "{what}: {point}");
    let text = pair[1]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: {point}"));
    assert!(
        text.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&text),
        "{what}: {point}"
    );
}

fn assert_matrix(data: &Value, what: &str) {
    assert_eq!(data["resultType"], "matrix", "{what}: {data}");
    for series in data["result"].as_array().unwrap() {
        assert!(series["metric"].is_object(), "{what}: {series}");
        for point in series["values"].as_array().unwrap() {
            assert_point(point, what);
        }
    }
}

/// Samples of the last ten minutes for the variable and browsing requests.
fn feed(sonde: &Sonde) {
    let end = now_s() * 1000;
    let at = |i: i64| end - (40 - i) * 15_000;
    let ones: Vec<(i64, f64)> = (0..40).map(|i| (at(i), 1.0)).collect();
    let counts: Vec<(i64, f64)> = (0..40).map(|i| (at(i), (i * 17) as f64)).collect();
    remote::write(
        &sonde.base_url,
        &WriteRequest {
            timeseries: vec![
                series(
                    "node_uname_info",
                    &[
                        ("instance", "web-1:9100"),
                        ("job", "node"),
                        ("nodename", "web-1"),
                        ("sysname", "Linux"),
                    ],
                    &ones,
                ),
                series(
                    "sonde_syscalls_total",
                    &[("comm", "grafana-test"), ("syscall", "read")],
                    &counts,
                ),
            ],
            metadata: vec![],
        },
    );
}

#[test]
fn grafana_data_source_requests_get_prometheus_shaped_answers() {
    let sonde = Sonde::start("");
    feed(&sonde);
    let now = now_s();
    let (start, end) = ((now - 3600).to_string(), now.to_string());

    // "Save & test": an instant query of 1+1, then the build information.
    let answer = data(
        post_form(&sonde, "/api/v1/query", &[("query", "1+1"), ("time", &end)]),
        "1+1",
    );
    assert_eq!(answer["resultType"], "scalar");
    assert_point(&answer["result"], "1+1");
    assert_eq!(answer["result"][1], "2");
    let build = data(get_json(&sonde, "/api/v1/status/buildinfo"), "buildinfo");
    let version: Vec<u32> = build["version"]
        .as_str()
        .unwrap()
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(
        version[0] > 2 || (version[0] == 2 && version[1] >= 24),
        "{build}"
    );
    assert_eq!(build["features"], serde_json::json!({}));

    // On load: the rules (the shipped pack) in Prometheus's shape, and
    // exemplars, valid and empty.
    let rules = data(get_json(&sonde, "/api/v1/rules"), "rules");
    let groups = rules["groups"].as_array().unwrap();
    assert!(!groups.is_empty(), "{rules}");
    for group in groups {
        assert!(
            group["name"].is_string() && group["file"].is_string(),
            "{group}"
        );
        for rule in group["rules"].as_array().unwrap() {
            assert!(
                ["alerting", "recording"].contains(&rule["type"].as_str().unwrap()),
                "{rule}"
            );
            assert!(
                rule["health"].is_string() && rule["query"].is_string(),
                "{rule}"
            );
        }
    }
    let exemplars = data(
        post_form(
            &sonde,
            "/api/v1/query_exemplars",
            &[
                ("query", "sonde_syscalls_total"),
                ("start", &start),
                ("end", &end),
            ],
        ),
        "exemplars",
    );
    assert_eq!(exemplars, serde_json::json!([]));

    // Metrics browser: names, then labels and series of a chosen metric.
    let names = data(
        get_json(
            &sonde,
            &format!("/api/v1/label/__name__/values?start={start}&end={end}"),
        ),
        "metric names",
    );
    let names: Vec<&str> = names
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(names.contains(&"node_uname_info"), "{names:?}");
    assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
    let labels = data(
        get_json(
            &sonde,
            &format!("/api/v1/labels?match[]=node_uname_info&start={start}&end={end}"),
        ),
        "labels",
    );
    for name in ["__name__", "instance", "job", "nodename", "sysname"] {
        assert!(
            labels.as_array().unwrap().contains(&Value::from(name)),
            "{labels}"
        );
    }
    let series = data(
        post_form(
            &sonde,
            "/api/v1/series",
            &[
                ("match[]", "sonde_syscalls_total{comm=\"grafana-test\"}"),
                ("start", &start),
                ("end", &end),
            ],
        ),
        "series",
    );
    assert_eq!(
        series,
        serde_json::json!([{"__name__": "sonde_syscalls_total", "comm": "grafana-test", "syscall": "read"}])
    );
    let metadata = data(get_json(&sonde, "/api/v1/metadata"), "metadata");
    assert!(metadata.is_object(), "{metadata}");
    if let Some((name, entries)) = metadata.as_object().unwrap().iter().next() {
        let entry = &entries[0];
        assert!(
            entry["type"].is_string() && entry["help"].is_string(),
            "{name}: {entries}"
        );
    }

    // The variable label_values(node_uname_info, nodename), both ways
    // Grafana versions ask for it.
    let values = data(
        get_json(
            &sonde,
            &format!(
                "/api/v1/label/nodename/values?match[]={}&start={start}&end={end}",
                encode("node_uname_info")
            ),
        ),
        "label values",
    );
    // sonde's own node_uname_info is there too, beside the written one.
    assert!(
        values.as_array().unwrap().contains(&Value::from("web-1")),
        "{values}"
    );
    let series = data(
        get_json(
            &sonde,
            &format!("/api/v1/series?match[]=node_uname_info&start={start}&end={end}"),
        ),
        "series of node_uname_info",
    );
    assert!(
        series
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["nodename"] == "web-1"),
        "{series}"
    );

    // Panels: range queries as form POSTs, Grafana's step-aligned window.
    let step = 15;
    let (aligned_start, aligned_end) = ((now - 3600) / step * step, now / step * step);
    let mut panel_queries = vec![
        "rate(sonde_syscalls_total{comm=\"grafana-test\"}[1m])".to_string(),
        "sum by (nodename) (node_uname_info)".to_string(),
    ];
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("packaging/grafana/sonde-ebpf.json"),
        )
        .unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            panel_queries.push(
                target["expr"]
                    .as_str()
                    .unwrap()
                    .replace("$__rate_interval", "1m")
                    .replace("$comm", ".*"),
            );
        }
    }
    assert!(panel_queries.len() > 10, "the dashboard has its queries");
    for query in &panel_queries {
        let answer = data(
            post_form(
                &sonde,
                "/api/v1/query_range",
                &[
                    ("query", query),
                    ("start", &aligned_start.to_string()),
                    ("end", &aligned_end.to_string()),
                    ("step", &step.to_string()),
                ],
            ),
            query,
        );
        assert_matrix(&answer, query);
    }
    let rate = data(
        post_form(
            &sonde,
            "/api/v1/query_range",
            &[
                ("query", &panel_queries[0]),
                ("start", &aligned_start.to_string()),
                ("end", &aligned_end.to_string()),
                ("step", "15s"),
            ],
        ),
        "rate",
    );
    assert!(
        !rate["result"][0]["values"].as_array().unwrap().is_empty(),
        "{rate}"
    );

    // Mistakes come back as Prometheus's error object.
    let (status, error) = post_form(
        &sonde,
        "/api/v1/query_range",
        &[
            ("query", "sum(rate("),
            ("start", &start),
            ("end", &end),
            ("step", "15"),
        ],
    );
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["status"], "error");
    assert_eq!(error["errorType"], "bad_data");
    assert!(
        error["error"].as_str().unwrap().contains("parse error"),
        "{error}"
    );
    let (status, error) = get_json(
        &sonde,
        &format!("/api/v1/query_range?query=up&start={start}&end={end}"),
    );
    assert_eq!(
        (status, error["errorType"].as_str()),
        (400, Some("bad_data")),
        "{error}"
    );
    let (status, error) = get_json(&sonde, "/api/v1/series");
    assert_eq!(
        (status, error["errorType"].as_str()),
        (400, Some("bad_data")),
        "{error}"
    );
    let (status, error) = post_form(
        &sonde,
        "/api/v1/query",
        &[("query", "a + on(job) group_left b"), ("time", &end)],
    );
    assert_eq!(status, 200, "no data is no error: {error}");
    let (status, error) = post_form(
        &sonde,
        "/api/v1/query",
        &[
            (
                "query",
                "vector(1) * on() group_left() (node_uname_info{nodename=\"web-1\"} or sonde_syscalls_total{comm=\"grafana-test\"})",
            ),
            ("time", &end),
        ],
    );
    assert_eq!(
        (status, error["errorType"].as_str()),
        (422, Some("execution")),
        "{error}"
    );
    // An oversized form body is refused before it is parsed.
    let huge = format!("query={}", "1".repeat(2 << 20));
    let answer = remote::post(
        &format!("{}/api/v1/query", sonde.base_url),
        huge.as_bytes(),
        &FORM,
    );
    assert!(
        matches!(&answer, Ok(a) if a.status == 413) || answer.is_err(),
        "{:?}",
        answer.map(|a| (a.status, a.text()))
    );
    assert_eq!(
        get(&format!("{}/-/healthy", sonde.base_url)).unwrap().0,
        200
    );
}
