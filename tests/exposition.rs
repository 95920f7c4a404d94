//! `/metrics` speaks the Prometheus text format 0.0.4, and the real promtool
//! (Debian package `prometheus`) accepts it without error or warning.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn promtool_accepts_metrics_without_warnings() {
    let sonde = common::Sonde::start("");
    sonde.wait_rounds(2);
    let body = sonde.get_ok("/metrics");
    assert!(body.contains("# TYPE sonde_build_info gauge"), "{body}");

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
        .write_all(body.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool failed:\n{said}");
    assert!(said.trim().is_empty(), "promtool warned:\n{said}");
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
    for self_metric in ["sonde_build_info", "sonde_store_samples_appended_total"] {
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
