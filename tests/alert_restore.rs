//! Alert state across restarts, beside a real Prometheus 2.42 restarted the
//! same way with the same settings: pending alerts count their `for` as
//! Prometheus counts it (the outage does not count, at least the grace
//! period is left), an outage beyond the tolerance restores nothing, and a
//! crash (SIGKILL) loses nothing either.
//!
//! Every rule's expression is `vector(1)`, so each alert is active from the
//! first evaluation on and only the restore rules move its `activeAt`. Each
//! evaluator's restore instant is only known to lie between the moment it
//! was started again and the moment it answered (Prometheus restores after
//! its second evaluation, and truncates instants to the second), so each
//! expected `activeAt` is checked within that window.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::prometheus::Prometheus;
use common::{Sonde, TempDir};
use sonde::civil::parse_rfc3339;

const GRACE_S: i64 = 10;
const TOLERANCE_S: i64 = 20;

const RULES: &str = r#"
groups:
  - name: restored
    interval: 1s
    rules:
      # Fires before the restart; its `for` is the grace period.
      - alert: Fired
        expr: vector(1)
        for: 10s
      # Pending with less than the grace period left at the restart.
      - alert: Near
        expr: vector(1)
        for: 16s
      # Pending with more than the grace period left.
      - alert: Slow
        expr: vector(1)
        for: 1m
      # Fires before the restart; its `for` is under the grace period.
      - alert: Short
        expr: vector(1)
        for: 2s
"#;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Each alert's state and `activeAt` (ms) from `/api/v1/alerts`.
fn alerts(base_url: &str) -> BTreeMap<String, (String, i64)> {
    let url = format!("{base_url}/api/v1/alerts");
    let body = match common::get(&url) {
        Ok((200, body)) => body,
        other => panic!("GET {url}: {other:?}"),
    };
    let data: serde_json::Value = serde_json::from_str(&body).unwrap();
    data["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|alert| {
            let active_at = alert["activeAt"].as_str().unwrap();
            (
                alert["labels"]["alertname"].as_str().unwrap().to_string(),
                (
                    alert["state"].as_str().unwrap().to_string(),
                    parse_rfc3339(active_at).unwrap_or_else(|| panic!("bad activeAt {active_at}")),
                ),
            )
        })
        .collect()
}

/// Waits (at most 30 s) until all four alerts are active with `firing` of
/// them firing.
fn wait_for(base_url: &str, firing: &[&str]) -> BTreeMap<String, (String, i64)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = alerts(base_url);
        let fired: Vec<&str> = now
            .iter()
            .filter(|(_, (state, _))| state == "firing")
            .map(|(name, _)| name.as_str())
            .collect();
        if now.len() == 4 && fired == firing {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{base_url}: wanted {firing:?} firing of 4 alerts, have {now:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The wall-clock window (ms) an event happened in.
#[derive(Clone, Copy, Debug)]
struct Window(i64, i64);

impl Window {
    fn around(run: impl FnOnce()) -> Window {
        let began = now_ms();
        run();
        Window(began, now_ms())
    }

    fn shift(self, by_ms: i64) -> Window {
        Window(self.0 + by_ms, self.1 + by_ms)
    }
}

/// Asserts `alert` is in `state` with `activeAt` inside `window`, widened
/// by `slack_ms` on each side.
fn check(
    who: &str,
    now: &BTreeMap<String, (String, i64)>,
    alert: &str,
    state: &str,
    window: Window,
    slack_ms: i64,
) {
    let (got_state, active_at) = &now[alert];
    println!(
        "{who} {alert}: {got_state}, activeAt {} ms after the expected window opens ({} ms wide)",
        active_at - window.0,
        window.1 - window.0
    );
    assert_eq!(got_state, state, "{who} {alert}: {now:?}");
    assert!(
        (window.0 - slack_ms..=window.1 + slack_ms).contains(active_at),
        "{who} {alert}: activeAt {active_at} outside {window:?} ± {slack_ms} ms: {now:?}"
    );
}

/// Stops sonde (SIGTERM, or SIGKILL for a crash): its data directory and
/// when it went down.
fn stop(sonde: Sonde, crash: bool) -> (TempDir, Window) {
    let began = now_ms();
    if crash {
        common::unsafe_kill(sonde.child.id(), "KILL");
    }
    let data = sonde.stop();
    (data, Window(began, now_ms()))
}

/// Starts sonde again on `data`: it and when it came back.
fn start(data: TempDir, config: &str) -> (Sonde, Window) {
    let began = now_ms();
    let sonde = Sonde::start_in(data, config);
    (sonde, Window(began, now_ms()))
}

fn sonde_config(rules: &str) -> String {
    format!(
        "[alerting]\nrule_files = [\"{rules}\"]\noutage_tolerance = \"{TOLERANCE_S}s\"\nfor_grace_period = \"{GRACE_S}s\"\n"
    )
}

#[test]
fn restarts_restore_alerts_as_prometheus_does() {
    let dir = TempDir::new("alert-restore");
    let rules = dir.0.join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let rules = rules.display().to_string();
    let config = sonde_config(&rules);
    let mut prometheus = Prometheus::start(
        &format!("global:\n  evaluation_interval: 1s\nrule_files:\n  - {rules}\n"),
        &[
            &format!("--rules.alert.for-outage-tolerance={TOLERANCE_S}s"),
            &format!("--rules.alert.for-grace-period={GRACE_S}s"),
        ],
    );
    let sonde = Sonde::start(&config);
    let prom = prometheus.base_url.clone();
    // Prometheus restores after its second evaluation and truncates the
    // instants it reads back to the second; sonde restores as it starts,
    // from the instant of its last evaluation (at most 1 s before the stop).
    let (prom_slack, sonde_slack) = (3_500, 1_500);

    // Fired and Short fire; Near has 16 - 13 = 3 s of `for` left, Slow 47 s.
    let before_sonde = wait_for(&sonde.base_url, &["Fired", "Short"]);
    let before_prom = wait_for(&prom, &["Fired", "Short"]);
    std::thread::sleep(Duration::from_secs(2));
    let (data, stopped_sonde) = stop(sonde, false);
    let stopped_prom = Window::around(|| prometheus.stop());
    std::thread::sleep(Duration::from_secs(3));
    let restarted_prom = Window::around(|| prometheus.restart());
    let (sonde, restarted_sonde) = start(data, &config);
    // Prometheus shows restored state once its third evaluation is done.
    std::thread::sleep(Duration::from_secs(4));

    for (who, before, stopped, restarted, slack, now) in [
        (
            "sonde",
            &before_sonde,
            stopped_sonde,
            restarted_sonde,
            sonde_slack,
            alerts(&sonde.base_url),
        ),
        (
            "prometheus",
            &before_prom,
            stopped_prom,
            restarted_prom,
            prom_slack,
            alerts(&prom),
        ),
    ] {
        let active_before = |alert: &str| before[alert].1;
        // Firing with a `for` of at least the grace period: since the same
        // instant.
        check(
            who,
            &now,
            "Fired",
            "firing",
            Window(active_before("Fired"), active_before("Fired")),
            slack,
        );
        // Less than the grace period left: the grace period from the restore.
        check(
            who,
            &now,
            "Near",
            "pending",
            restarted.shift((GRACE_S - 16) * 1000),
            slack,
        );
        // More left: the outage does not count towards `for`.
        let outage = Window(restarted.0 - stopped.1, restarted.1 - stopped.0);
        check(
            who,
            &now,
            "Slow",
            "pending",
            outage.shift(active_before("Slow")),
            slack,
        );
    }
    // A `for` under the grace period: Prometheus starts it over, sonde keeps
    // it firing since the same instant, so a restart sends no resolve.
    check(
        "prometheus",
        &alerts(&prom),
        "Short",
        "firing",
        restarted_prom,
        prom_slack,
    );
    let short = before_sonde["Short"].1;
    check(
        "sonde",
        &alerts(&sonde.base_url),
        "Short",
        "firing",
        Window(short, short),
        0,
    );

    // A crash: the state saved at sonde's last evaluation comes back the
    // same way. Near, pending 16 - 6 + 4 = 14 s by now, again gets the
    // grace period.
    let before = alerts(&sonde.base_url);
    let (data, killed) = stop(sonde, true);
    std::thread::sleep(Duration::from_secs(2));
    let (sonde, restarted) = start(data, &config);
    let now = alerts(&sonde.base_url);
    check(
        "sonde after SIGKILL",
        &now,
        "Fired",
        "firing",
        Window(before["Fired"].1, before["Fired"].1),
        0,
    );
    check(
        "sonde after SIGKILL",
        &now,
        "Near",
        "pending",
        restarted.shift((GRACE_S - 16) * 1000),
        sonde_slack,
    );
    let outage = Window(restarted.0 - killed.1, restarted.1 - killed.0);
    check(
        "sonde after SIGKILL",
        &now,
        "Slow",
        "pending",
        outage.shift(before["Slow"].1),
        sonde_slack,
    );

    // An outage beyond the tolerance: nothing is restored, every alert
    // starts pending afresh (Short fires again 2 s in).
    prometheus.stop();
    let (data, _) = stop(sonde, false);
    std::thread::sleep(Duration::from_millis(TOLERANCE_S as u64 * 1000 + 2_000));
    let restarted_prom = Window::around(|| prometheus.restart());
    let (sonde, restarted_sonde) = start(data, &config);
    std::thread::sleep(Duration::from_secs(4));
    for (who, restarted, now) in [
        ("sonde", restarted_sonde, alerts(&sonde.base_url)),
        ("prometheus", restarted_prom, alerts(&prom)),
    ] {
        // The first evaluation after the restart, at most an interval in.
        let afresh = Window(restarted.0, restarted.1 + 1_000);
        for alert in ["Fired", "Near", "Slow"] {
            check(who, &now, alert, "pending", afresh, 1_000);
        }
        check(who, &now, "Short", "firing", afresh, 1_000);
    }
}
