use std::time::{Duration, Instant};

use super::*;

fn action(name: &str, command: &[&str], min_interval: Duration, dry_run: bool) -> Action {
    config::build(&[ActionConfig {
        name: name.into(),
        matchers: vec!["alertname=\"Flood\"".into()],
        command: command.iter().map(|s| s.to_string()).collect(),
        min_interval,
        dry_run,
        ..ActionConfig::default()
    }])
    .unwrap()
    .remove(0)
}

fn firing(comm: &str, value: f64) -> Alert {
    let now = now_ms();
    Alert {
        labels: Labels::new([("alertname", "Flood"), ("comm", comm)]),
        annotations: Labels::default(),
        value,
        starts_at_ms: now,
        ends_at_ms: now + 60_000,
        generator_url: String::new(),
    }
}

fn plan() -> Plan {
    Plan {
        actions: Vec::new(),
        external_labels: Labels::new([("host", "db1")]),
        external_url: "http://sonde:9200".into(),
    }
}

/// Polls until `action` has `want` runs with `outcome`.
fn wait_for(actions: &Actions, name: &str, outcome: Outcome, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while actions.counted(name, outcome) < want {
        assert!(Instant::now() < deadline, "no {outcome:?} for {name}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn arguments_are_templates_over_the_alert() {
    let kill = action(
        "kill",
        &[
            "/usr/bin/pkill",
            "-x",
            "{{ $labels.comm }}",
            "{{ printf \"%.0f\" $value }}/s on {{ $externalLabels.host }}",
            "{{ $labels.missing }}",
        ],
        Duration::ZERO,
        false,
    );
    let argv = expand(&kill, &firing("flood er;rm", 12345.6), &plan(), now_ms()).unwrap();
    // Each argument stays one argument: no shell splits or interprets it.
    assert_eq!(
        argv,
        ["/usr/bin/pkill", "-x", "flood er;rm", "12346/s on db1", ""]
    );

    let query = action(
        "q",
        &["/bin/echo", "{{ query \"up\" }}"],
        Duration::ZERO,
        false,
    );
    let err = expand(&query, &firing("x", 1.0), &plan(), now_ms()).unwrap_err();
    assert!(err.contains("query is not available"), "{err}");
}

#[test]
fn one_alert_runs_once_per_interval() {
    let dir = std::env::temp_dir().join(format!("sonde-action-interval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("runs");
    let script = format!("echo {{{{ $labels.comm }}}} >> {}", log.display());
    let actions = Actions::start(
        vec![action(
            "note",
            &["/bin/sh", "-c", &script],
            Duration::from_secs(60),
            false,
        )],
        2,
        Labels::default(),
        String::new(),
    );
    let t0 = Instant::now();
    actions.send_at(&[firing("a", 1.0), firing("b", 1.0)], t0);
    wait_for(&actions, "note", Outcome::Ok, 2);
    // Sent again inside the interval: skipped, per alert.
    actions.send_at(&[firing("a", 1.0)], t0 + Duration::from_secs(59));
    assert_eq!(actions.counted("note", Outcome::Skipped), 1);
    // A resolved alert runs nothing.
    let mut resolved = firing("c", 1.0);
    resolved.ends_at_ms = now_ms() - 1;
    actions.send_at(&[resolved], t0 + Duration::from_secs(59));
    // Past the interval: runs again.
    actions.send_at(&[firing("a", 1.0)], t0 + Duration::from_secs(61));
    wait_for(&actions, "note", Outcome::Ok, 3);
    let mut runs: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    runs.sort();
    assert_eq!(runs, ["a", "a", "b"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_dry_run_runs_nothing_and_is_counted() {
    let marker = std::env::temp_dir().join(format!("sonde-action-dry-{}", std::process::id()));
    let touch = marker.display().to_string();
    let actions = Actions::start(
        vec![action(
            "touch",
            &["/usr/bin/touch", &touch],
            Duration::from_secs(60),
            true,
        )],
        1,
        Labels::default(),
        String::new(),
    );
    let t0 = Instant::now();
    actions.send_at(&[firing("a", 1.0)], t0);
    actions.send_at(&[firing("a", 1.0)], t0 + Duration::from_secs(1));
    assert_eq!(actions.counted("touch", Outcome::DryRun), 1);
    assert_eq!(actions.counted("touch", Outcome::Skipped), 1);
    std::thread::sleep(Duration::from_millis(100));
    assert!(!marker.exists(), "a dry run ran the command");
    let exposed = &actions.families()[0];
    assert_eq!(exposed.name, "sonde_actions_total");
    assert_eq!(exposed.series.len(), Outcome::ALL.len());
}
