//! Alerting against the real peers: sonde's rule evaluation beside a real
//! Prometheus 2.42 on the same rules and samples, and its alerts in a real
//! Alertmanager 0.25, across a restart of sonde.
//!
//! Inputs go in by remote write, stamped now, so both evaluators see the
//! same samples at the same instants.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::alertmanager::Alertmanager;
use common::prometheus::Prometheus;
use common::recorder::recorder;
use common::remote::{series, write};
use common::{Sonde, TempDir};
use serde_json::Value;
use sonde::prompb::WriteRequest;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Writes `value` now to `name{labels}` in each receiver.
fn set(receivers: &[&str], name: &str, labels: &[(&str, &str)], value: f64) {
    let request = WriteRequest {
        timeseries: vec![series(name, labels, &[(now_ms(), value)])],
        ..Default::default()
    };
    for base_url in receivers {
        write(base_url, &request);
    }
}

fn api(base_url: &str, path: &str) -> Value {
    let url = format!("{base_url}{path}");
    match common::get(&url) {
        Ok((200, body)) => serde_json::from_str::<Value>(&body).unwrap()["data"].take(),
        other => panic!("GET {url}: {other:?}"),
    }
}

/// Polls `check` every 200 ms until it holds or `timeout` passes.
fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn write_rules(dir: &Path, text: &str) -> String {
    let path = dir.join("rules.yml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// An alert from `/api/v1/alerts`, as the comparison sees it.
fn alert_key(alert: &Value) -> String {
    format!(
        "{} {} {} value={}",
        alert["state"].as_str().unwrap(),
        alert["labels"],
        alert["annotations"],
        alert["value"].as_str().unwrap()
    )
}

fn alert_keys(base_url: &str) -> Vec<String> {
    let mut keys: Vec<String> = api(base_url, "/api/v1/alerts")["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(alert_key)
        .collect();
    keys.sort();
    keys
}

const COMPARED_RULES: &str = r#"
groups:
  - name: compared
    interval: 1s
    rules:
      - record: instance:load:doubled
        expr: test_load * 2
      - alert: LoadHigh
        expr: instance:load:doubled > 10
        for: 2s
        labels:
          severity: "{{ if gt $value 30.0 }}page{{ else }}ticket{{ end }}"
        annotations:
          summary: "{{ $labels.instance }} load {{ $value | humanize }}"
          description: "{{ printf \"%.1f\" $value }} on {{ $externalLabels.site }}"
      - alert: AnyLoad
        expr: test_load > 0
        keep_firing_for: 3s
        annotations:
          what: "{{ humanizePercentage $value }}"
  - name: limited
    interval: 1s
    limit: 1
    rules:
      - alert: Limited
        expr: test_load > 100
"#;

/// Both evaluators fed the same samples step by step; after each step,
/// their `/api/v1/alerts` agree on which alerts are pending and firing,
/// with their labels, annotations and values.
#[test]
fn alerts_agree_with_prometheus_step_by_step() {
    let dir = TempDir::new("alerting-compare");
    let rules = write_rules(&dir.0, COMPARED_RULES);
    let prometheus = Prometheus::start(
        &format!(
            "global:\n  evaluation_interval: 1s\n  external_labels:\n    site: lab\nrule_files:\n  - {rules}\n"
        ),
        &["--web.enable-remote-write-receiver"],
    );
    let sonde = Sonde::start(&format!(
        "[alerting]\nrule_files = [\"{rules}\"]\nexternal_labels = {{ site = \"lab\" }}\n"
    ));
    let receivers = [prometheus.base_url.as_str(), sonde.base_url.as_str()];
    // (instance a, instance b) loads for each step; each step is checked
    // while its alerts are pending (1.5 s in) and once `for` has passed.
    let steps: [(f64, f64); 5] = [
        (3.0, 0.0),
        (6.0, 20.0),
        (6.0, 0.0),
        (0.0, 0.0),
        (150.0, 200.0),
    ];
    for (index, (a, b)) in steps.into_iter().enumerate() {
        set(&receivers, "test_load", &[("instance", "a")], a);
        set(&receivers, "test_load", &[("instance", "b")], b);
        for (at, wait) in [("early", 1500), ("late", 3000)] {
            std::thread::sleep(Duration::from_millis(wait));
            let mut last = (Vec::new(), Vec::new());
            let agreed = eventually(Duration::from_secs(1), || {
                last = (
                    alert_keys(&prometheus.base_url),
                    alert_keys(&sonde.base_url),
                );
                last.0 == last.1
            });
            assert!(
                agreed,
                "step {index} ({a}, {b}) {at}: alerts differ\nprometheus: {:#?}\nsonde: {:#?}",
                last.0, last.1
            );
        }
    }
}

const SLOTTED_RULES: &str = r#"
groups:
  - name: alpha
    interval: 10s
    rules:
      - record: slot_alpha
        expr: vector(1)
  - name: beta
    interval: 10s
    rules:
      - record: slot_beta
        expr: vector(1)
  - name: gamma
    interval: 7s
    rules:
      - record: slot_gamma
        expr: vector(1)
"#;

/// The instants (ms) of the samples `name` holds over the last minute.
fn sample_instants(base_url: &str, name: &str) -> Vec<i64> {
    let result = api(base_url, &format!("/api/v1/query?query={name}%5B1m%5D"));
    result["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|series| series["values"].as_array().unwrap().clone())
        .map(|pair| (pair[0].as_f64().unwrap() * 1000.0).round() as i64)
        .collect()
}

/// The same rule file at the same path in sonde and in Prometheus: each
/// group writes its samples at the same place within its interval in both
/// (Prometheus's slot: a hash of the group's file and name).
#[test]
fn groups_evaluate_on_prometheus_slots() {
    let dir = TempDir::new("alerting-slots");
    let rules = write_rules(&dir.0, SLOTTED_RULES);
    let prometheus = Prometheus::start(&format!("rule_files:\n  - {rules}\n"), &[]);
    let sonde = Sonde::start(&format!("[alerting]\nrule_files = [\"{rules}\"]\n"));
    for (name, interval_ms) in [
        ("slot_alpha", 10_000),
        ("slot_beta", 10_000),
        ("slot_gamma", 7_000),
    ] {
        let mut last = (Vec::new(), Vec::new());
        let written = eventually(Duration::from_secs(30), || {
            last = (
                sample_instants(&prometheus.base_url, name),
                sample_instants(&sonde.base_url, name),
            );
            !last.0.is_empty() && !last.1.is_empty()
        });
        assert!(written, "{name} not recorded by both within 30 s: {last:?}");
        let offsets = |instants: &[i64]| -> Vec<i64> {
            instants.iter().map(|t| t.rem_euclid(interval_ms)).collect()
        };
        let (theirs, ours) = (offsets(&last.0), offsets(&last.1));
        println!("{name}: Prometheus at {theirs:?} ms into its {interval_ms} ms interval, sonde at {ours:?}");
        assert!(
            ours.iter().all(|offset| *offset == theirs[0])
                && theirs.iter().all(|o| *o == theirs[0]),
            "{name}: Prometheus writes at {theirs:?} ms into the interval, sonde at {ours:?}"
        );
    }
}

const AM_RULES: &str = r#"
groups:
  - name: am
    interval: 1s
    rules:
      - alert: ValueHigh
        expr: test_value > 0
        labels: { severity: page }
      - alert: Sticky
        expr: test_sticky > 0
        keep_firing_for: 1h
"#;

fn am_alert<'a>(alerts: &'a [Value], name: &str) -> Option<&'a Value> {
    alerts.iter().find(|a| a["labels"]["alertname"] == name)
}

fn sonde_alert(sonde: &Sonde, name: &str) -> Option<Value> {
    api(&sonde.base_url, "/api/v1/alerts")["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == name)
        .cloned()
}

/// Alerts reach a real Alertmanager with the external labels; a restart of
/// sonde keeps them firing since the same instant (no resolve, no new
/// start), `keep_firing_for` included; a resolve reaches it too. (An alert
/// sent is valid for four resend delays: 20 s here, longer than the
/// restart takes.)
#[test]
fn alerts_reach_alertmanager_survive_a_restart_and_resolve() {
    let alertmanager = Alertmanager::start();
    let dir = TempDir::new("alerting-am");
    let rules = write_rules(&dir.0, AM_RULES);
    let config = format!(
        "[alerting]\nrule_files = [\"{rules}\"]\nalertmanagers = [\"{}\"]\nexternal_labels = {{ site = \"lab\" }}\nresend_delay = \"5s\"\n",
        alertmanager.base_url
    );
    let sonde = Sonde::start(&config);
    set(&[&sonde.base_url], "test_value", &[], 1.0);
    set(&[&sonde.base_url], "test_sticky", &[], 1.0);
    let arrived = eventually(Duration::from_secs(20), || {
        let alerts = alertmanager.alerts();
        am_alert(&alerts, "ValueHigh").is_some() && am_alert(&alerts, "Sticky").is_some()
    });
    assert!(
        arrived,
        "alerts never reached Alertmanager: {:#?}\nsonde:\n{}",
        alertmanager.alerts(),
        sonde.log_text()
    );
    let alerts = alertmanager.alerts();
    let value_high = am_alert(&alerts, "ValueHigh").unwrap().clone();
    // The dashboard shows it, and its link opens the Graph view.
    let html = sonde.get_ok("/alerts");
    assert!(
        html.contains("ValueHigh") && html.contains("class=\"state firing\""),
        "{html}"
    );
    assert!(
        html.contains("class=\"badge\">2<"),
        "two firing alerts on the Alerts tab: {html}"
    );
    let overview = sonde.get_ok("/");
    assert!(
        overview.contains("<span class=\"state firing\">ValueHigh</span>"),
        "the Overview lists what fires: {overview}"
    );
    let link = value_high["generatorURL"].as_str().unwrap();
    sonde.get_ok(&link[link.find("/graph").unwrap()..]);
    assert_eq!(value_high["labels"]["site"], "lab");
    assert_eq!(value_high["labels"]["severity"], "page");
    assert!(value_high["generatorURL"]
        .as_str()
        .unwrap()
        .contains("/graph?g0.expr=test_value"));

    // Sticky's expression turns false: keep_firing_for holds it.
    set(&[&sonde.base_url], "test_sticky", &[], 0.0);
    let kept = eventually(Duration::from_secs(10), || {
        sonde_alert(&sonde, "Sticky").is_some_and(|a| a.get("keepFiringSince").is_some())
    });
    assert!(
        kept,
        "Sticky is not kept firing: {:?}",
        sonde_alert(&sonde, "Sticky")
    );
    let before = (
        sonde_alert(&sonde, "ValueHigh").unwrap(),
        sonde_alert(&sonde, "Sticky").unwrap(),
    );

    let data = sonde.stop();
    std::thread::sleep(Duration::from_secs(2));
    let sonde = Sonde::start_in(data, &config);
    let after = (
        sonde_alert(&sonde, "ValueHigh"),
        sonde_alert(&sonde, "Sticky"),
    );
    assert_eq!(
        after.0.as_ref().map(|a| &a["state"]),
        Some(&Value::from("firing")),
        "ValueHigh after restart: {after:?}"
    );
    assert_eq!(after.0.as_ref().unwrap()["activeAt"], before.0["activeAt"]);
    let sticky = after.1.expect("Sticky lost in the restart");
    assert_eq!(sticky["state"], "firing");
    assert_eq!(sticky["keepFiringSince"], before.1["keepFiringSince"]);
    // Alertmanager never saw ValueHigh end, and it keeps its start.
    for _ in 0..10 {
        let alerts = alertmanager.alerts();
        let alert =
            am_alert(&alerts, "ValueHigh").expect("Alertmanager lost ValueHigh across the restart");
        assert_eq!(alert["startsAt"], value_high["startsAt"]);
        std::thread::sleep(Duration::from_millis(500));
    }

    set(&[&sonde.base_url], "test_value", &[], 0.0);
    let resolved = eventually(Duration::from_secs(20), || {
        am_alert(&alertmanager.alerts(), "ValueHigh").is_none()
    });
    assert!(
        resolved,
        "the resolve never reached Alertmanager: {:#?}",
        alertmanager.alerts()
    );
    assert!(sonde_alert(&sonde, "ValueHigh").is_none());
    let metrics = sonde.metrics();
    let sent = metrics
        .iter()
        .find(|s| s.name == "sonde_alertmanager_alerts_sent_total")
        .expect("no sonde_alertmanager_alerts_sent_total");
    assert!(sent.value > 0.0);
}

/// A bad rule file at reload keeps the old rules running and says why; a
/// good one replaces them (SIGHUP and POST /-/reload alike).
#[test]
fn a_bad_reload_keeps_the_old_rules() {
    let dir = TempDir::new("alerting-reload");
    let rules = write_rules(&dir.0, AM_RULES);
    let sonde = Sonde::start(&format!("[alerting]\nrule_files = [\"{rules}\"]\n"));
    let names = |sonde: &Sonde| -> Vec<String> {
        api(&sonde.base_url, "/api/v1/rules")["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&sonde), ["ValueHigh", "Sticky"]);

    std::fs::write(
        &rules,
        "groups:\n  - name: am\n    rules:\n      - alert: Broken\n        expr: sum(\n",
    )
    .unwrap();
    let answer = common::remote::post(&format!("{}/-/reload", sonde.base_url), b"", &[]).unwrap();
    assert_eq!(answer.status, 500);
    assert!(
        answer.text().contains("could not parse expression"),
        "{}",
        answer.text()
    );
    assert_eq!(names(&sonde), ["ValueHigh", "Sticky"]);
    let refused = eventually(Duration::from_secs(5), || {
        sonde
            .metrics()
            .iter()
            .any(|s| s.name == "sonde_rule_reload_success" && s.value == 0.0)
    });
    assert!(
        refused,
        "sonde_rule_reload_success is not 0 after a refused reload"
    );

    std::fs::write(
        &rules,
        "groups:\n  - name: am\n    rules:\n      - record: fixed\n        expr: vector(1)\n",
    )
    .unwrap();
    common::unsafe_kill(sonde.child.id(), "HUP");
    assert!(
        eventually(Duration::from_secs(10), || names(&sonde) == ["fixed"]),
        "SIGHUP did not reload: {:?}",
        names(&sonde)
    );
}

/// Without an Alertmanager: the rules' alerts go through sonde's own
/// notifier to a webhook, firing then resolved, grouped as configured; the
/// Alerts view silences one and expires the silence.
#[test]
fn alerts_reach_a_webhook_through_the_built_in_notifier() {
    let (url, recorded) = recorder();
    let dir = TempDir::new("alerting-webhook");
    let rules = write_rules(&dir.0, AM_RULES);
    let sonde = Sonde::start(&format!(
        "[alerting]\nrule_files = [\"{rules}\"]\nresend_delay = \"1s\"\n\
         [[notify.receivers]]\nname = \"hook\"\nwebhook = {{ url = \"{url}/hook\" }}\n\
         [notify.route]\nreceiver = \"hook\"\ngroup_by = [\"alertname\"]\n\
         group_wait = \"1s\"\ngroup_interval = \"1s\"\nrepeat_interval = \"1h\"\n"
    ));
    set(&[&sonde.base_url], "test_value", &[], 1.0);
    let firing = recorded.wait_for("/hook", 1, Duration::from_secs(20));
    assert!(!firing.is_empty(), "no notification:\n{}", sonde.log_text());
    assert_eq!(firing[0]["version"], "4");
    assert_eq!(firing[0]["status"], "firing");
    assert_eq!(firing[0]["groupLabels"]["alertname"], "ValueHigh");
    assert_eq!(firing[0]["alerts"][0]["labels"]["severity"], "page");

    // Silenced from the dashboard: marked there, listed, and expired again.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let answer = common::remote::post(
        &format!("{}/alerts/silence", sonde.base_url),
        b"label=alertname%3DValueHigh&label=severity%3Dpage&for=1h",
        &form,
    )
    .unwrap();
    // A redirect back to the view, which the client follows.
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(answer.text().contains("<h2>Silences</h2>"));
    let html = sonde.get_ok("/alerts");
    assert!(html.contains("class=\"state silenced\""), "{html}");
    assert_eq!(
        html.matches(">Expire</button>").count(),
        1,
        "one silence listed: {html}"
    );
    let silences: Value = serde_json::from_str(&sonde.get_ok("/api/v2/silences")).unwrap();
    let id = silences[0]["id"].as_str().unwrap().to_string();
    assert_eq!(silences[0]["createdBy"], "dashboard");
    let answer = common::remote::post(
        &format!("{}/alerts/expire", sonde.base_url),
        format!("id={id}").as_bytes(),
        &form,
    )
    .unwrap();
    // A redirect back to the view, which the client follows.
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(answer.text().contains("<h2>Silences</h2>"));
    assert!(!sonde.get_ok("/alerts").contains("class=\"state silenced\""));
    let bad = common::remote::post(
        &format!("{}/alerts/silence", sonde.base_url),
        b"for=2y",
        &form,
    )
    .unwrap();
    assert_eq!(bad.status, 400, "{}", bad.text());

    set(&[&sonde.base_url], "test_value", &[], 0.0);
    let resolved = eventually(Duration::from_secs(20), || {
        recorded
            .on("/hook")
            .iter()
            .any(|n| n["status"] == "resolved")
    });
    assert!(
        resolved,
        "no resolved notification: {:#?}",
        recorded.on("/hook")
    );
}

/// The shipped rule pack, which every test's sonde evaluates, runs cleanly
/// on live data: every rule evaluated, none failing.
#[test]
fn shipped_rules_evaluate_cleanly_on_live_data() {
    let sonde = Sonde::start("");
    let mut last = Vec::new();
    let healthy = eventually(Duration::from_secs(20), || {
        let groups = api(&sonde.base_url, "/api/v1/rules")["groups"].clone();
        last = groups
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .collect();
        !last.is_empty() && last.iter().all(|r| r["health"] == "ok")
    });
    assert!(
        healthy,
        "rules not all healthy: {last:#?}\n{}",
        sonde.log_text()
    );
    let files: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/rules"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "yml")
        })
        .collect();
    assert!(
        last.len() >= files.len(),
        "{} rules from {} files",
        last.len(),
        files.len()
    );
    // The rules on sonde itself read its own metrics from the store.
    for name in [
        "sonde_store_write_errors_total",
        "sonde_rule_evaluation_failures_total",
        "sonde_alertmanager_alerts_dropped_total",
    ] {
        let stored = eventually(Duration::from_secs(20), || {
            let answer = api(&sonde.base_url, &format!("/api/v1/query?query={name}"));
            !answer["result"].as_array().unwrap().is_empty()
        });
        assert!(stored, "{name} is not in the store");
    }
}
