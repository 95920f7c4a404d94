//! Dynamic thresholds on a real store: 8 days of generated series with a
//! daily pattern and noise are written in, and baseline rules are evaluated
//! at chosen instants of the last day, as the rule engine evaluates them.
//! The seasonal baseline stays quiet at the normal daily peak and fires on
//! a spike of the same height at a quiet hour; with `resolve_band` a value
//! oscillating around the threshold fires once and resolves once, where the
//! same rule without it flaps, and a static threshold with
//! `keep_firing_while` does as the band does; anti-flap ignores a
//! one-evaluation blip. The
//! recorded band answers PromQL. `sonde check rules` names every bad key,
//! promtool refuses a file with sonde's keys, and `sonde test rules` runs a
//! unit test of a baseline rule (tests/baselines/).

mod common;

use std::path::Path;
use std::process::Command;

use common::{TempDir, SONDE};
use sonde::alert::rule::{AlertState, EvalContext, Rule};
use sonde::alert::rulefile;
use sonde::model::{Labels, Sample, METRIC_NAME};
use sonde::query::{instant_query, Limits, QueryValue};
use sonde::store::Store;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// The last of the 8 days, the one the rules are evaluated on.
const TODAY: i64 = 7 * DAY;
/// Monday 2026-11-23 00:00 UTC, so the data has real dates.
const EPOCH: i64 = 1_763_856_000_000;

const RULES: &str = r#"
groups:
  - name: baselines
    rules:
      - alert: UnusualLoad
        expr: app_load
        baseline:
          method: seasonal_quantile
          quantile: 0.9
          season: 1d
          history: 7d
          tolerance: 0.25
          direction: above
        annotations:
          summary: "{{ $value }} is unusual for this hour"
      - alert: QueueHysteresis
        expr: app_queue
        baseline: { method: seasonal_quantile, direction: above, resolve_band: 0.5 }
      - alert: QueuePlain
        expr: app_queue
        baseline: { method: seasonal_quantile, direction: above }
      - alert: QueueAntiFlap
        expr: app_queue
        baseline: { method: seasonal_quantile, direction: above, resolve_band: 0.5 }
        anti_flap: { of_last: 5, at_least: 0.8 }
      - alert: QueueStatic
        expr: app_queue > 120
        keep_firing_while: app_queue > 110
      - alert: QueueMad
        expr: app_queue
        baseline: { method: mad, window: 6h, k: 5, direction: above }
"#;

/// Noise uniform in [-0.5, 0.5], the same on every run.
fn noise(seed: i64) -> f64 {
    let x = (seed as u64)
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    ((x >> 33) % 1000) as f64 / 1000.0 - 0.5
}

/// A daily pattern: 10 at night, a bump to 50 at 14:00; today, a spike to
/// the peak's height at 03:00 for 10 minutes.
fn load(t: i64) -> f64 {
    if (TODAY + 3 * HOUR..TODAY + 3 * HOUR + 10 * MINUTE).contains(&t) {
        return 50.0;
    }
    let hour = (t % DAY) as f64 / HOUR as f64;
    10.0 + 40.0 * (-((hour - 14.0) / 4.0).powi(2)).exp() + noise(t)
}

/// Flat at 100; today a one-minute blip at 08:00, an hour oscillating
/// around the band's top (125, 115) from 10:00, 30 minutes at 125 from
/// 12:00.
fn queue(t: i64) -> f64 {
    let at = |h: i64, m: i64| TODAY + h * HOUR + m * MINUTE;
    if t == at(8, 0) || (at(12, 0)..at(12, 30)).contains(&t) {
        125.0
    } else if (at(10, 0)..at(11, 0)).contains(&t) {
        if (t / MINUTE) % 2 == 0 {
            125.0
        } else {
            115.0
        }
    } else {
        100.0 + noise(t + 7)
    }
}

fn series(name: &str) -> Labels {
    Labels::new([(METRIC_NAME, name), ("job", "app")])
}

/// 8 days, a sample a minute of each series.
fn fill(store: &mut Store) {
    for t in (0..8 * DAY).step_by(MINUTE as usize) {
        let batch = [("app_load", load(t)), ("app_queue", queue(t))].map(|(name, value)| Sample {
            labels: series(name),
            timestamp_ms: EPOCH + t,
            value,
        });
        store.append(&batch).unwrap();
    }
}

/// State changes of one rule's alerts, as `(instant, state)`.
struct Evaluated {
    rule: Rule,
    changes: Vec<(i64, AlertState)>,
    last: AlertState,
}

impl Evaluated {
    fn new(file: &rulefile::RuleFile, name: &str) -> Evaluated {
        let spec = file.groups[0]
            .rules
            .iter()
            .find(|r| r.name() == name)
            .unwrap()
            .clone();
        Evaluated {
            rule: Rule::new(spec),
            changes: Vec::new(),
            last: AlertState::Inactive,
        }
    }

    /// Evaluates at `t` (from the first day's start); the samples written.
    fn eval(&mut self, store: &Store, t: i64) -> Vec<Sample> {
        let limits = Limits::default();
        let external_labels = Labels::default();
        let ctx = EvalContext {
            source: store,
            limits: &limits,
            external_labels: &external_labels,
            external_url: "http://127.0.0.1:9977",
        };
        let samples = self.rule.eval(&ctx, EPOCH + t, 0).unwrap();
        let state = self.rule.state();
        if state != self.last {
            self.changes.push((t, state));
            self.last = state;
        }
        samples
    }

    /// (firings, resolves) with instants in `[from, to)`.
    fn count(&self, from: i64, to: i64) -> (usize, usize) {
        let inside = self.changes.iter().filter(|(t, _)| (from..to).contains(t));
        let (mut fired, mut resolved) = (0, 0);
        for (_, state) in inside {
            match state {
                AlertState::Firing => fired += 1,
                AlertState::Inactive => resolved += 1,
                AlertState::Pending => {}
            }
        }
        (fired, resolved)
    }
}

#[test]
fn baseline_rules_over_eight_days_in_the_store() {
    let dir = TempDir::new("baselines");
    let mut store = Store::open(&dir.0).unwrap();
    fill(&mut store);
    let file = rulefile::parse(Path::new("baselines.yml"), RULES).unwrap();

    // The seasonal baseline over today, every 5 minutes.
    let mut unusual = Evaluated::new(&file, "UnusualLoad");
    let mut at_spike = None;
    for t in (TODAY..TODAY + DAY).step_by(5 * MINUTE as usize) {
        let samples = unusual.eval(&store, t);
        if t == TODAY + 3 * HOUR + 5 * MINUTE {
            at_spike = unusual.rule.alerts.values().next().cloned();
        }
        let band: Vec<Sample> = samples
            .into_iter()
            .filter(|s| s.labels.metric_name().starts_with("sonde_baseline_"))
            .collect();
        assert_eq!(band.len(), 3, "the band is recorded at {t}");
        store.append(&band).unwrap();
    }
    let peak = load(TODAY + 14 * HOUR);
    assert!(peak > 49.0, "the daily peak is the spike's height: {peak}");
    assert_eq!(
        unusual.changes,
        vec![
            (TODAY + 3 * HOUR, AlertState::Firing),
            (TODAY + 3 * HOUR + 10 * MINUTE, AlertState::Inactive)
        ],
        "fires on the spike at 03:00 only, quiet through the peak at 14:00"
    );
    let alert = at_spike.expect("an alert during the spike");
    let annotation = |name: &str| -> f64 {
        alert
            .annotations
            .get(name)
            .unwrap_or_else(|| panic!("annotation {name} in {:?}", alert.annotations))
            .parse()
            .unwrap()
    };
    let upper = annotation("baseline_upper");
    assert!(
        (11.0..14.0).contains(&upper),
        "a quiet hour's band: {upper}"
    );
    assert!(annotation("baseline_deviation") > 10.0);
    assert_eq!(
        alert.annotations.get("summary"),
        Some("50 is unusual for this hour")
    );

    // The band is a series PromQL reads, beside the value.
    let at_peak = EPOCH + TODAY + 14 * HOUR;
    let query = |q: &str| match instant_query(&store, &Limits::default(), q, at_peak).unwrap() {
        QueryValue::Vector(v) => v,
        other => panic!("{q}: {other:?}"),
    };
    let band = query(r#"sonde_baseline_upper{alertname="UnusualLoad", job="app"}"#);
    assert_eq!(band.len(), 1);
    assert!(
        (55.0..65.0).contains(&band[0].value),
        "the peak hour's band: {}",
        band[0].value
    );
    let graphed = sonde::alert::baseline::graph_expr(&unusual.rule.spec);
    assert_eq!(
        graphed,
        r#"app_load or {__name__=~"sonde_baseline_center|sonde_baseline_lower|sonde_baseline_upper", alertname="UnusualLoad"}"#
    );
    assert_eq!(
        query(&graphed).len(),
        4,
        "the alert's link draws the value and its band"
    );
    let below = query(r#"app_load < on(job) sonde_baseline_upper{alertname="UnusualLoad"}"#);
    assert_eq!(below.len(), 1, "the peak is inside its band");

    // Hysteresis, anti-flap and neither, each minute from 07:00 to 13:30.
    let mut rules = [
        "QueueHysteresis",
        "QueuePlain",
        "QueueAntiFlap",
        "QueueStatic",
        "QueueMad",
    ]
    .map(|name| Evaluated::new(&file, name));
    for t in (TODAY + 7 * HOUR..TODAY + 13 * HOUR + 30 * MINUTE).step_by(MINUTE as usize) {
        for rule in &mut rules {
            rule.eval(&store, t);
        }
    }
    let [hysteresis, plain, anti_flap, static_threshold, mad] = &rules;
    let oscillation = (TODAY + 10 * HOUR, TODAY + 11 * HOUR + MINUTE);
    assert_eq!(
        hysteresis.count(oscillation.0, oscillation.1),
        (1, 1),
        "{:?}",
        hysteresis.changes
    );
    assert_eq!(
        hysteresis
            .changes
            .iter()
            .rev()
            .find(|(t, _)| (oscillation.0..oscillation.1).contains(t)),
        Some(&(TODAY + 11 * HOUR, AlertState::Inactive)),
        "resolved when the value is back to normal, not while it oscillates"
    );
    assert_eq!(
        plain.count(oscillation.0, oscillation.1),
        (30, 30),
        "without hysteresis it flaps"
    );
    assert_eq!(
        static_threshold.changes, hysteresis.changes,
        "a static threshold with keep_firing_while fires and resolves as the band does"
    );
    let blip = (TODAY + 8 * HOUR, TODAY + 9 * HOUR);
    assert_eq!(
        mad.changes[..2],
        [
            (TODAY + 8 * HOUR, AlertState::Firing),
            (TODAY + 8 * HOUR + MINUTE, AlertState::Inactive)
        ],
        "median ± 5·MAD of the last 6 hours' minute buckets: the noise stays inside, the blip does not"
    );
    assert_eq!(
        hysteresis.count(blip.0, blip.1),
        (1, 1),
        "the blip is out of band"
    );
    assert_eq!(
        anti_flap.count(blip.0, blip.1),
        (0, 0),
        "one evaluation in five is not enough"
    );
    assert_eq!(
        anti_flap.count(oscillation.0, oscillation.1),
        (0, 0),
        "three in five is not four in five"
    );
    assert_eq!(
        anti_flap.changes,
        vec![
            (TODAY + 12 * HOUR + 3 * MINUTE, AlertState::Firing),
            (TODAY + 12 * HOUR + 30 * MINUTE, AlertState::Inactive)
        ],
        "the sustained rise fires at its fourth anomalous evaluation of five"
    );
}

fn run(program: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn check_rules_names_every_bad_key_and_promtool_refuses_sonde_keys() {
    let dir = TempDir::new("baselines-check");
    let good = dir.0.join("good.yml");
    std::fs::write(&good, RULES).unwrap();
    let (ok, text) = run(SONDE, &["check", "rules", good.to_str().unwrap()]);
    assert!(ok, "{text}");
    let (ok, text) = run("promtool", &["check", "rules", good.to_str().unwrap()]);
    assert!(!ok, "promtool refuses sonde's keys: {text}");
    assert!(text.contains("field baseline not found"), "{text}");

    let bad = dir.0.join("bad.yml");
    std::fs::write(
        &bad,
        r#"
groups:
  - name: g
    rules:
      - alert: Seasonal
        expr: app_load
        baseline: { method: seasonal_quantile, quantile: 1.5, season: 90m, k: 3 }
      - alert: NotASelector
        expr: rate(app_requests_total[5m])
        baseline: { method: mad, window: 1x, direction: up }
      - alert: Flappy
        expr: app_load > 3
        anti_flap: { of_last: 0 }
        keep_firing_while: "sum("
      - record: app:load
        expr: app_load
        baseline: { method: stddev }
      - alert: Unknown
        expr: app_load
        baseline: { method: ewma }
        keep_firing_while: app_load > 1
"#,
    )
    .unwrap();
    let (ok, text) = run(SONDE, &["check", "rules", bad.to_str().unwrap()]);
    assert!(!ok, "{text}");
    let prefix = format!("{}: group \"g\"", bad.display());
    for expected in [
        "rule 1, \"Seasonal\": baseline.k: not a key of method seasonal_quantile",
        "rule 1, \"Seasonal\": baseline.season: must be a whole number of hours (the rollup bucket), got \"90m\"",
        "rule 1, \"Seasonal\": baseline.quantile: expected a fraction above 0 and at most 1, got 1.5",
        "rule 2, \"NotASelector\": baseline: expr must be a series selector",
        "rule 2, \"NotASelector\": baseline.window: not a valid duration string: \"1x\"",
        "rule 2, \"NotASelector\": baseline.direction: expected one of above, below, both, got \"up\"",
        "rule 3, \"Flappy\": anti_flap.of_last: expected a number of evaluations from 1 to 1000, got 0",
        "rule 3, \"Flappy\": anti_flap.at_least: must be set",
        "rule 3, \"Flappy\": keep_firing_while: could not parse expression",
        "rule 4, \"app:load\": invalid field 'baseline' in recording rule",
        "rule 5, \"Unknown\": baseline.method: expected one of seasonal_quantile, mad, stddev, got \"ewma\"",
        "rule 5, \"Unknown\": keep_firing_while: not with baseline",
    ] {
        assert!(text.contains(&format!("{prefix}, {expected}")), "{expected}\nin:\n{text}");
    }

    let typo = dir.0.join("typo.yml");
    std::fs::write(
        &typo,
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: x\n        baseline: { method: mad, windw: 1h }\n",
    )
    .unwrap();
    let (ok, text) = run(SONDE, &["check", "rules", typo.to_str().unwrap()]);
    assert!(
        !ok && text.contains("unknown field `windw`") && text.contains("line 6"),
        "{text}"
    );
}

#[test]
fn test_rules_runs_a_unit_test_of_a_baseline_rule() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/baselines/unusual_load_test.yml");
    let (ok, text) = run(SONDE, &["test", "rules", tests.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}
