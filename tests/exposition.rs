//! `/metrics` speaks the Prometheus text format 0.0.4, and the real promtool
//! (Debian package `prometheus`) accepts it: no error, and no lint warning
//! beyond those it gives node_exporter 1.5's own output (see below).

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

/// promtool 2.42's linter flags node_exporter 1.5's own names, such as
/// `node_memory_MemAvailable_bytes` ("should be written in 'snake_case' not
/// 'camelCase'"). sonde keeps node_exporter's names so existing dashboards
/// and queries work, so the same warnings are expected. The rule: promtool
/// finds no error (exit 0, or 3 for lint warnings only); every warning about
/// sonde's output is one promtool also gives, word for word, about
/// node_exporter's output on this machine; and no warning concerns a sonde_*
/// metric, whose names are sonde's own to get right.
#[test]
fn promtool_accepts_metrics_warning_only_where_node_exporter_is_warned() {
    let node_exporter = common::NodeExporter::start();
    let sonde = common::Sonde::start("");
    sonde.wait_rounds(2);
    let body = sonde.get_ok("/metrics");
    assert!(body.contains("# TYPE sonde_build_info gauge"), "{body}");

    let ours = promtool_lint(&body);
    let theirs: BTreeSet<String> = promtool_lint(&node_exporter.scrape()).into_iter().collect();
    let unexpected: Vec<&String> = ours
        .iter()
        .filter(|warning| warning.starts_with("sonde_") || !theirs.contains(*warning))
        .collect();
    assert!(
        unexpected.is_empty(),
        "promtool warned about sonde's /metrics beyond what it warns about node_exporter's:\n{}",
        unexpected
            .iter()
            .map(|w| w.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Runs `promtool check metrics` on an exposition; returns its lint warnings
/// (one line each: the metric name, then the problem). Panics on any error.
fn promtool_lint(exposition: &str) -> Vec<String> {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is missing: make test-deps installs the Debian package prometheus");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // promtool exits 3 when it found lint problems and nothing worse.
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "promtool failed ({}):\n{said}",
        out.status
    );
    let warnings: Vec<String> = said.lines().map(str::to_string).collect();
    assert!(
        !warnings.iter().any(|w| w.starts_with("error")),
        "promtool reported an error:\n{said}"
    );
    warnings
}

#[test]
fn metrics_has_the_exposition_content_type_and_health_endpoints_answer() {
    let sonde = common::Sonde::start("");
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let response = agent
        .get(&format!("{}/metrics", sonde.base_url))
        .call()
        .unwrap();
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    sonde.get_ok("/-/healthy");
    sonde.get_ok("/-/ready");
    let names: Vec<String> = sonde.metrics().into_iter().map(|s| s.name).collect();
    for self_metric in [
        "sonde_build_info",
        "sonde_store_samples_appended_total",
        "sonde_collector_duration_seconds",
        "sonde_collector_cpu_seconds_total",
    ] {
        assert!(
            names.iter().any(|n| n == self_metric),
            "{self_metric} missing"
        );
    }
}

#[test]
fn bad_config_is_refused_with_file_key_and_expectation() {
    let dir = common::TempDir::new("badconfig");
    let file = dir.0.join("bad.toml");
    std::fs::write(&file, "[collect]\ninterval = \"fast\"\n").unwrap();
    let out = Command::new(common::SONDE)
        .args(["run", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml"), "{err}");
    assert!(err.contains("interval"), "{err}");
    assert!(err.contains("expected a duration"), "{err}");
}
