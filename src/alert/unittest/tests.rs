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
