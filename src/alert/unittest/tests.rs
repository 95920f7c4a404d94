use super::*;

const RULES: &str = r#"
groups:
  - name: g
    rules:
      - record: double
        expr: m * 2
      - alert: High
        expr: double > 4
        for: 1m
        labels: { severity: page }
        annotations: { summary: high }
"#;

/// Writes [`RULES`] and the test file into a fresh directory and runs it:
/// (passed, stdout, stderr).
fn run(name: &str, test: &str, only: Option<&str>) -> (bool, String, String) {
    run_with(name, RULES, test, only)
}

fn run_with(name: &str, rules: &str, test: &str, only: Option<&str>) -> (bool, String, String) {
    let dir = std::env::temp_dir().join(format!("sonde-unittest-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("rules.yml"), rules).unwrap();
    let file = dir.join("test.yml");
    std::fs::write(&file, test).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let only = only.map(|r| Regex::new(r).unwrap());
    let passed = test_rules(&[file], only.as_ref(), &mut out, &mut err).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let text = |b: Vec<u8>| {
        String::from_utf8(b)
            .unwrap()
            .replace(&dir.display().to_string(), "D")
    };
    (passed, text(out), text(err))
}

const PASSING: &str = r#"
rule_files: [rules.yml]
tests:
  - interval: 1m
    input_series:
      - series: m{a="1"}
        values: 1+1x5
    alert_rule_test:
      - eval_time: 2m
        alertname: High
      - eval_time: 4m30s
        alertname: High
        exp_alerts:
          - exp_labels: { a: "1", severity: page }
            exp_annotations: { summary: high }
    promql_expr_test:
      - expr: double
        eval_time: 3m
        exp_samples:
          - labels: 'double{a="1"}'
            value: 8
      - expr: ALERTS
        eval_time: 2m
        exp_samples:
          - labels: 'ALERTS{a="1", alertname="High", alertstate="pending", severity="page"}'
            value: 1
"#;

#[test]
fn a_passing_file_says_success() {
    let (passed, out, err) = run("pass", PASSING, None);
    assert!(passed, "{err}");
    assert_eq!(out, "Unit Testing:  D/test.yml\n  SUCCESS\n\n");
    assert_eq!(err, "");
}

#[test]
fn failures_print_expected_and_got() {
    let failing = PASSING
        .replace("value: 8", "value: 9")
        .replace("eval_time: 4m30s", "eval_time: 2m30s");
    let (passed, out, err) = run("fail", &failing, None);
    assert!(!passed);
    assert_eq!(out, "Unit Testing:  D/test.yml\n\n\n\n");
    assert_eq!(
        err,
        "  FAILED:\n    alertname: High, time: 2m30s, \n        exp:[\n            0:\n              \
         Labels:{a=\"1\", alertname=\"High\", severity=\"page\"}\n              \
         Annotations:{summary=\"high\"}\n            ], \n        got:[]\n    \
         expr: \"double\", time: 3m,\n        exp: {__name__=\"double\", a=\"1\"} 9E+00\n        \
         got: {__name__=\"double\", a=\"1\"} 8E+00\n"
    );
}

#[test]
fn run_selects_test_groups_by_name() {
    let named = PASSING.replace("  - interval: 1m", "  - name: broken\n    interval: 1m");
    let failing = named.replace("value: 8", "value: 9");
    assert!(!run("run-all", &failing, None).0);
    assert!(run("run-other", &failing, Some("^other$")).0);
}

#[test]
fn values_read_as_written_and_without_an_interval_at_time_zero() {
    let test = r#"
rule_files: [rules.yml]
tests:
  - input_series:
      - series: m
        values: 7 1 2
    promql_expr_test:
      - expr: m
        eval_time: 2m
        exp_samples:
          - labels: m
            value: 7
  - interval: 1m
    input_series:
      - series: zeros
        values: 0x12
    promql_expr_test:
      - expr: count_over_time(zeros[1h])
        eval_time: 20m
        exp_samples:
          - labels: '{}'
            value: 13
"#;
    let (passed, _, err) = run("no-interval", test, None);
    assert!(passed, "{err}");
}

#[test]
fn bad_input_is_named_not_a_panic() {
    let cases = [
        ("unknown-key", "tests:\n  - interval: 1m\n    input_seris: []\n", "input_seris"),
        ("bad-duration", "tests:\n  - interval: 1m\n    alert_rule_test:\n      - eval_time: 5\n        alertname: A\n", "not a valid duration"),
        ("bad-values", "tests:\n  - interval: 1m\n    input_series:\n      - series: m\n        values: 1+2\n    promql_expr_test:\n      - expr: m\n", "D/test.yml: tests[0].input_series[0]: values"),
        ("bad-series", "tests:\n  - interval: 1m\n    input_series:\n      - series: 'm{'\n        values: 1\n", "D/test.yml: tests[0].input_series[0]: series"),
        ("no-alertname", "tests:\n  - alert_rule_test:\n      - eval_time: 1m\n", "misses required attribute alertname at eval_time 1m"),
        ("order", "group_eval_order: [a, a]\ntests: []\n", "group name repeated in evaluation order: a"),
        ("missing-rules", "rule_files: [nothere.yml, rules.yml]\ntests: []\n", "WARNING: no file match pattern D/nothere.yml"),
        ("not-yaml", "tests: [", "D/test.yml: "),
    ];
    for (name, test, message) in cases {
        let (_, _, err) = run(name, test, None);
        assert!(err.contains(message), "{name}: {err}");
    }
}

#[test]
fn a_failing_rule_ends_the_test_group() {
    let limited = RULES.replace("  - name: g\n", "  - name: g\n    limit: 1\n");
    let test = r#"
rule_files: [rules.yml]
tests:
  - interval: 1m
    input_series:
      - series: m{a="1"}
        values: 1
      - series: m{a="2"}
        values: 1
    promql_expr_test:
      - expr: m
        eval_time: 1m
"#;
    let (passed, _, err) = run_with("limit", &limited, test, None);
    assert!(!passed);
    assert_eq!(
        err,
        "  FAILED:\n    rule: double, time: 0s, err: exceeded limit of 1 with 2 series\n"
    );
}

const EVENT_RULES: &str = r#"
groups:
  - name: intrusion
    event_rules:
      - alert: ShellUnderNginx
        event: exec
        where: 'exe =~ ".*/sh" && parent.comm == "nginx"'
        labels: { severity: warning }
        annotations: { summary: '{{ $labels.comm }} ({{ $labels.pid }}) under nginx' }
        resolve_after: 2m
      - alert: ShellConnectsOut
        sequence:
          by: process
          within: 30s
          steps:
            - event: exec
              where: 'exe =~ ".*/sh"'
            - event: connect
              where: '!is_local(peer)'
"#;

/// A test group of `events` (YAML list items) and `alert_tests`.
fn events_test(events: &str, alert_tests: &str) -> String {
    format!(
        "rule_files: [rules.yml]\ntests:\n  - external_labels: {{ site: lab }}\n    input_events:\n{events}    alert_rule_test:\n{alert_tests}"
    )
}

const SHELL_EXEC: &str = "      - at: 10s\n        kind: exec\n        process: { pid: 4242, start_ns: 7, comm: sh, unit: nginx.service }\n        parent: { pid: 100, start_ns: 1, comm: nginx }\n        exe: /usr/bin/sh\n        args: [sh, -c, id]\n";

const SHELL_EXEC_LINE: &str = r#"1970-01-01T00:00:10Z exec pid=4242 comm=\"sh\" unit=nginx.service parent=100(\"nginx\") exe=\"/usr/bin/sh\" args=\"sh -c id\""#;

#[test]
fn a_single_event_rule_fires_from_its_event_until_resolve_after() {
    let expected = format!(
        "        exp_alerts:\n          - exp_labels: {{ pid: '4242', comm: sh, unit: nginx.service, severity: warning }}\n            exp_annotations:\n              summary: sh (4242) under nginx\n              events: \"{SHELL_EXEC_LINE}\"\n"
    );
    let firing_at = |at: &str| {
        format!("      - eval_time: {at}\n        alertname: ShellUnderNginx\n{expected}")
    };
    let silent_at =
        |at: &str| format!("      - eval_time: {at}\n        alertname: ShellUnderNginx\n");
    // Firing from 10s (the event) to 2m10s (resolve_after later), exclusive.
    let tests = [
        silent_at("9s"),
        firing_at("10s"),
        firing_at("1m"),
        firing_at("2m9s"),
        silent_at("2m10s"),
    ]
    .concat();
    let (passed, _, err) = run_with(
        "single",
        EVENT_RULES,
        &events_test(SHELL_EXEC, &tests),
        None,
    );
    assert!(passed, "{err}");
    // A wrong expectation prints what fired.
    let wrong = silent_at("1m");
    let (passed, _, err) = run_with(
        "single-wrong",
        EVENT_RULES,
        &events_test(SHELL_EXEC, &wrong),
        None,
    );
    assert!(!passed);
    assert!(
        err.contains("alertname: ShellUnderNginx, time: 1m") && err.contains("pid=\"4242\""),
        "{err}"
    );
}

/// An event of process `pid` (start time `start`) at `at`: an exec of a
/// shell, or a connect out.
fn shell_event(at: &str, kind: &str, pid: u32, start: u32) -> String {
    let detail = match kind {
        "exec" => "        exe: /bin/sh\n",
        _ => "        peer: 203.0.113.9:4444\n",
    };
    format!("      - at: {at}\n        kind: {kind}\n        process: {{ pid: {pid}, start_ns: {start}, comm: sh }}\n{detail}")
}

#[test]
fn a_sequence_fires_once_in_time_and_order_and_for_one_process_only() {
    let events = [
        // In time: fires once, at the first connect.
        shell_event("0s", "exec", 1, 1),
        shell_event("10s", "connect", 1, 1),
        shell_event("20s", "connect", 1, 1),
        // Too late: 31s after the exec.
        shell_event("1m", "exec", 2, 1),
        shell_event("1m31s", "connect", 2, 1),
        // Out of order: the connect first (listed last: time orders them).
        shell_event("1m1s", "exec", 3, 1),
        shell_event("1m", "connect", 3, 1),
        // A reused pid: another start time is another process.
        shell_event("1m", "exec", 4, 1),
        shell_event("1m1s", "connect", 4, 2),
    ]
    .concat();
    let lines = [
        "1970-01-01T00:00:00Z exec pid=1 comm=\\\"sh\\\" parent=0(\\\"\\\") exe=\\\"/bin/sh\\\" args=\\\"\\\"",
        "1970-01-01T00:00:10Z connect pid=1 comm=\\\"sh\\\" parent=0(\\\"\\\") peer=203.0.113.9:4444",
    ]
    .join("\\n");
    let tests = format!(
        "      - eval_time: 2m\n        alertname: ShellConnectsOut\n        exp_alerts:\n          - exp_labels: {{ pid: '1', comm: sh }}\n            exp_annotations: {{ events: \"{lines}\" }}\n"
    );
    let (passed, _, err) = run_with("sequence", EVENT_RULES, &events_test(&events, &tests), None);
    assert!(passed, "{err}");
}

#[test]
fn bad_input_events_name_the_file_group_entry_and_field() {
    let exec = SHELL_EXEC.to_string();
    let cases = [
        ("unknown-field", exec.replace("exe:", "exe_path:"), "tests[0].input_events[0]: unknown field `exe_path`"),
        ("unknown-process-field", exec.replace("pid: 4242", "pd: 4242"), "tests[0].input_events[0].process: unknown field `pd`"),
        ("no-at", exec.replace("at: 10s\n        ", ""), "D/test.yml: tests[0].input_events[0]: at: must be set"),
        ("kind", exec.replace("kind: exec", "kind: fork"), "D/test.yml: tests[0].input_events[0]: kind: \"fork\": expected one of exec, exit, signal"),
        ("peer", format!("{exec}        peer: nowhere\n"), "D/test.yml: tests[0].input_events[0]: peer: \"nowhere\": expected an address and port"),
        ("signal", format!("{exec}        signal: SIGNOPE\n"), "D/test.yml: tests[0].input_events[0]: signal: \"SIGNOPE\": expected a number from 1 to 64 or a name"),
    ];
    let check = "      - eval_time: 1m\n        alertname: ShellUnderNginx\n";
    for (name, events, message) in cases {
        let (passed, _, err) = run_with(name, EVENT_RULES, &events_test(&events, check), None);
        assert!(!passed, "{name}");
        assert!(err.contains(message), "{name}: {err}");
    }
}

#[test]
fn signals_read_by_number_or_name() {
    assert_eq!(events::signal_number("9"), Some(9));
    assert_eq!(events::signal_number("SIGKILL"), Some(9));
    assert_eq!(events::signal_number("SIGRTMIN+1"), Some(33));
    assert_eq!(events::signal_number("0"), None);
    assert_eq!(events::signal_number("KILL"), None);
}

#[test]
fn a_later_match_with_the_same_labels_replaces_the_alert() {
    // The same process execs a shell again at 1m: one alert, the later
    // event's, firing until 3m rather than 2m10s.
    let events = format!("{SHELL_EXEC}{}", SHELL_EXEC.replace("at: 10s", "at: 1m"));
    let later_line = SHELL_EXEC_LINE.replace("00:00:10Z", "00:01:00Z");
    let tests = format!(
        "      - eval_time: 2m30s\n        alertname: ShellUnderNginx\n        exp_alerts:\n          - exp_labels: {{ pid: '4242', comm: sh, unit: nginx.service, severity: warning }}\n            exp_annotations:\n              summary: sh (4242) under nginx\n              events: \"{later_line}\"\n      - eval_time: 3m\n        alertname: ShellUnderNginx\n"
    );
    let (passed, _, err) = run_with("replaced", EVENT_RULES, &events_test(&events, &tests), None);
    assert!(passed, "{err}");
}

#[test]
fn event_rule_templates_see_the_external_labels_as_an_alerting_rules_do() {
    // As in Prometheus: `$labels` without the external labels, which are
    // `$externalLabels`.
    let rules = EVENT_RULES.replace(
        "annotations: { summary: '{{ $labels.comm }} ({{ $labels.pid }}) under nginx' }",
        "annotations: { site: '[{{ $labels.site }}][{{ $externalLabels.site }}]' }",
    );
    let tests = format!(
        "      - eval_time: 1m\n        alertname: ShellUnderNginx\n        exp_alerts:\n          - exp_labels: {{ pid: '4242', comm: sh, unit: nginx.service, severity: warning }}\n            exp_annotations:\n              site: '[][lab]'\n              events: \"{SHELL_EXEC_LINE}\"\n"
    );
    let (passed, _, err) = run_with("external", &rules, &events_test(SHELL_EXEC, &tests), None);
    assert!(passed, "{err}");
}
