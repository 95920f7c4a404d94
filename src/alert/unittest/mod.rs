//! `sonde test rules`: unit tests for rule files in the format of
//! `promtool test rules`, with Prometheus 2.42's verdicts.
//!
//! A test file names rule files (relative to itself, globs allowed) and
//! test groups. Each test group loads its input series, evaluates every
//! rule group at `0, evaluation_interval, 2·evaluation_interval, …` up to
//! the largest `eval_time` with sonde's own rule engine, and then compares:
//! - `alert_rule_test`: the firing alerts of the named alerting rules, as
//!   of the evaluation at or just before `eval_time`, labels and
//!   annotations, in any order;
//! - `promql_expr_test`: an instant query at `eval_time`, exact values.
//!
//! As promtool 2.42 does: input samples appear as the evaluation reaches
//! their timestamps; a test group without `interval` puts every input
//! value at time 0 (the first one stays); groups run in `group_eval_order`
//! (the others with the first); a rule that fails ends its test group.
//!
//! Unlike promtool, a subquery without a step steps at sonde's default of
//! 1m rather than at the file's `evaluation_interval` (the same when that
//! is left at its default).
//!
//! sonde's extension (a file without it reads exactly as before; promtool
//! refuses a file with it): a test group's `input_events` are kernel events
//! for the rule files' `event_rules:`, fed in time order between the
//! evaluations, whose alerts `alert_rule_test` compares with the alerting
//! rules' ([`events`] says when an event rule's alert fires).

mod events;
mod report;
pub mod series;

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::{Deserialize, Deserializer};

use crate::alert::group::{Group, SampleSink, SendOptions};
use crate::alert::rule::{AlertState, EvalContext, Health};
use crate::alert::rulefile::{self, RuleKind, Scalar};
use crate::alert::sequence::{self, External};
use crate::model::{Labels, Matcher, Sample};
use crate::query::{InMemory, Limits, Source};
use crate::store::SeriesSamples;
use events::{EventTimeline, InputEvent};
use report::LabelsAndAnnotations;
use series::MetricLabels;

/// Runs every test file, printing as promtool does: progress and
/// `SUCCESS` on `out`, failures on `err`. True when every file passed.
/// With `run`, only test groups whose name matches it run.
pub fn test_rules(
    files: &[PathBuf],
    run: Option<&Regex>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<bool> {
    let mut passed = true;
    for file in files {
        writeln!(out, "Unit Testing:  {}", file.display())?;
        let failures = test_file(file, run, err)?;
        if failures.is_empty() {
            writeln!(out, "  SUCCESS")?;
        } else {
            passed = false;
            writeln!(err, "  FAILED:")?;
            for failure in failures {
                writeln!(err, "{failure}")?;
                writeln!(out)?;
            }
        }
        writeln!(out)?;
    }
    Ok(passed)
}

/// One test file's failures (none when it passed).
fn test_file(
    path: &Path,
    run: Option<&Regex>,
    warnings: &mut dyn Write,
) -> io::Result<Vec<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return Ok(vec![format!("{}: {e}", path.display())]),
    };
    let file: TestFile = match serde_yaml::from_str(&text) {
        Ok(file) => file,
        Err(e) => return Ok(vec![format!("{}: {e}", path.display())]),
    };
    let base = path.parent().unwrap_or(Path::new(""));
    let mut rule_files = Vec::new();
    for pattern in &file.rule_files {
        // An empty entry names nothing (not the test file's directory).
        let pattern = match pattern.as_str() {
            "" => PathBuf::new(),
            relative_or_absolute => base.join(relative_or_absolute),
        };
        let found = match glob(&pattern) {
            Ok(found) => found,
            Err(e) => return Ok(vec![format!("{}: rule_files: {e}", path.display())]),
        };
        if found.is_empty() {
            writeln!(
                warnings,
                "  WARNING: no file match pattern {}",
                pattern.display()
            )?;
        }
        rule_files.extend(found);
    }
    let eval_interval_ms = match file.evaluation_interval.0 {
        0 => 60_000,
        ms => ms,
    };
    let mut eval_order = BTreeMap::new();
    for (position, name) in file.group_eval_order.iter().enumerate() {
        if eval_order.insert(name.clone(), position).is_some() {
            return Ok(vec![format!(
                "group name repeated in evaluation order: {name}"
            )]);
        }
    }
    let setup = Setup {
        file: path.display().to_string(),
        rule_files,
        eval_interval_ms,
        eval_order,
    };
    Ok(file
        .tests
        .iter()
        .enumerate()
        .filter(|(_, test)| run.is_none_or(|run| run.is_match(&test.name.0)))
        .flat_map(|(index, test)| test.run(&setup, index))
        .collect())
}

/// What every test group of a file shares.
struct Setup {
    /// The test file, as errors name it.
    file: String,
    rule_files: Vec<PathBuf>,
    eval_interval_ms: i64,
    /// Position of each group named in `group_eval_order`.
    eval_order: BTreeMap<String, usize>,
}

impl TestGroup {
    /// The test group's failures; `index` is its place in `tests`.
    fn run(&self, setup: &Setup, index: usize) -> Vec<String> {
        let storage = match TestStorage::new(&self.input_series, self.interval.0) {
            Ok(storage) => storage,
            Err(e) => return vec![format!("{}: tests[{index}].{e}", setup.file)],
        };
        let mut groups = match load_groups(setup, self.interval.0) {
            Ok(groups) => groups,
            Err(errors) => return errors,
        };
        if let Some(error) = self.missing_alertname() {
            return vec![error];
        }
        let external = External {
            labels: Labels::new(
                self.external_labels
                    .iter()
                    .map(|(name, value)| (name.clone(), value.0.clone())),
            ),
            url: self.external_url.0.clone(),
        };
        let specs: Vec<_> = groups.iter().map(|g| &g.spec).collect();
        let mut timeline = match EventTimeline::new(
            &self.input_events,
            sequence::specs(&specs),
            external.clone(),
        ) {
            Ok(timeline) => timeline,
            Err(e) => return vec![format!("{}: tests[{index}].{e}", setup.file)],
        };

        let limits = Limits::default();
        let ctx = EvalContext {
            source: &storage,
            limits: &limits,
            external_labels: &external.labels,
            external_url: &external.url,
        };
        let send = SendOptions {
            resend_delay_ms: 60_000,
            external_url: &self.external_url.0,
        };
        let mut alert_tests: Vec<&AlertTest> = self.alert_rule_test.iter().collect();
        alert_tests.sort_by_key(|t| t.eval_time.0);
        let mut alert_tests = alert_tests.into_iter().peekable();
        let last_ms = self
            .alert_rule_test
            .iter()
            .map(|t| t.eval_time.0)
            .chain(self.promql_expr_test.iter().map(|t| t.eval_time.0))
            .max()
            .unwrap_or(0);

        let mut failures = Vec::new();
        let interval_ms = setup.eval_interval_ms;
        for step in 0..=last_ms / interval_ms {
            let ts_ms = step * interval_ms;
            storage.load_till(ts_ms);
            timeline.feed_till(ts_ms);
            let mut rule_errors = Vec::new();
            for group in &mut groups {
                group.eval(&ctx, &storage, &send, ts_ms);
                for rule in &group.rules {
                    if let Health::Err(e) = &rule.health {
                        rule_errors.push(format!(
                            "    rule: {}, time: {}, err: {e}",
                            rule.spec.name(),
                            report::go_duration(ts_ms)
                        ));
                    }
                }
            }
            if !rule_errors.is_empty() {
                failures.extend(rule_errors);
                return failures;
            }
            let next_ms = ts_ms.saturating_add(interval_ms);
            while let Some(test) = alert_tests.next_if(|t| t.eval_time.0 < next_ms) {
                timeline.feed_till(test.eval_time.0);
                if let Some(failure) = test.check(&groups, &timeline, &self.name.0) {
                    failures.push(failure);
                }
            }
        }
        failures.extend(
            self.promql_expr_test
                .iter()
                .filter_map(|test| test.check(&ctx)),
        );
        failures
    }

    /// promtool's error for an alert test without `alertname`.
    fn missing_alertname(&self) -> Option<String> {
        let test = self
            .alert_rule_test
            .iter()
            .find(|t| t.alertname.0.is_empty())?;
        let in_group = if self.name.0.is_empty() {
            String::new()
        } else {
            format!(" (in TestGroup {})", self.name.0)
        };
        Some(format!(
            "an item under alert_rule_test misses required attribute alertname at eval_time {}{in_group}",
            crate::alert::rulefile::prometheus_duration(test.eval_time.0)
        ))
    }
}

/// Every rule group of the rule files, in evaluation order: those named in
/// `group_eval_order` by their place there, the others with the first (as
/// promtool sorts them; file order is kept among equals).
fn load_groups(setup: &Setup, interval_ms: i64) -> Result<Vec<Group>, Vec<String>> {
    let mut groups = Vec::new();
    let mut errors = Vec::new();
    for path in &setup.rule_files {
        match rulefile::load(path) {
            Ok(file) => groups.extend(
                file.groups
                    .into_iter()
                    .map(|spec| Group::new(spec, interval_ms, 0)),
            ),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    groups.sort_by_key(|g| setup.eval_order.get(&g.spec.name).copied().unwrap_or(0));
    Ok(groups)
}

impl AlertTest {
    /// Compares the firing alerts of every rule of this name, alerting and
    /// event rules, with the expected ones.
    fn check(&self, groups: &[Group], events: &EventTimeline, test_name: &str) -> Option<String> {
        let alertname = &self.alertname.0;
        let rules_alerts = groups
            .iter()
            .flat_map(|g| &g.rules)
            .filter(
                |r| matches!(&r.spec.kind, RuleKind::Alerting { alert, .. } if alert == alertname),
            )
            .flat_map(|r| r.alerts.values())
            .filter(|a| a.state == AlertState::Firing)
            .map(|a| (&a.labels, &a.annotations));
        let events_alerts = events
            .firing(alertname, self.eval_time.0)
            .map(|a| (&a.labels, &a.annotations));
        let mut got: Vec<LabelsAndAnnotations> = rules_alerts
            .chain(events_alerts)
            .map(|(labels, annotations)| LabelsAndAnnotations {
                labels: pairs(labels),
                annotations: pairs(annotations),
            })
            .collect();
        let mut expected: Vec<LabelsAndAnnotations> = self
            .exp_alerts
            .iter()
            .map(|alert| {
                let mut labels = alert.exp_labels.clone();
                labels.insert("alertname".to_string(), Scalar(alertname.clone()));
                LabelsAndAnnotations {
                    labels: labels.into_iter().map(|(n, v)| (n, v.0)).collect(),
                    // An annotation that expands to nothing is absent from
                    // an alert, so an expected empty one is too.
                    annotations: alert
                        .exp_annotations
                        .iter()
                        .filter(|(_, v)| !v.0.is_empty())
                        .map(|(n, v)| (n.clone(), v.0.clone()))
                        .collect(),
                }
            })
            .collect();
        got.sort();
        expected.sort();
        (got != expected).then(|| {
            report::alert_mismatch(test_name, alertname, self.eval_time.0, &expected, &got)
        })
    }
}

impl ExprTest {
    /// Runs the query and compares its samples, values exactly (NaN never
    /// equals NaN, as in promtool 2.42).
    fn check(&self, ctx: &EvalContext) -> Option<String> {
        let at_ms = self.eval_time.0;
        let mut got: Vec<(MetricLabels, f64)> = match ctx.query(&self.expr.0, at_ms) {
            Ok(samples) => samples
                .into_iter()
                .map(|(labels, value)| (pairs(&labels), value))
                .collect(),
            Err(e) => return Some(report::expr_error(&self.expr.0, at_ms, &e)),
        };
        let mut expected = Vec::new();
        for sample in &self.exp_samples {
            match series::parse_metric(&sample.labels.0) {
                Ok(labels) => expected.push((labels, sample.value)),
                Err(e) => {
                    let e = format!("labels {}: {e}", report::go_quote(&sample.labels.0));
                    return Some(report::expr_error(&self.expr.0, at_ms, &e));
                }
            }
        }
        let by_labels = |a: &(MetricLabels, f64), b: &(MetricLabels, f64)| a.0.cmp(&b.0);
        got.sort_by(by_labels);
        expected.sort_by(by_labels);
        let same = got.len() == expected.len()
            && got
                .iter()
                .zip(&expected)
                .all(|(g, e)| g.0 == e.0 && g.1 == e.1);
        (!same).then(|| report::samples_mismatch(&self.expr.0, at_ms, &expected, &got))
    }
}

fn pairs(labels: &Labels) -> MetricLabels {
    labels
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// A test group's storage, as the TSDB promtool tests against behaves:
/// input samples are added as the evaluation reaches them, rules append
/// theirs, and a sample not later than its series' last one is dropped.
struct TestStorage {
    loaded: RefCell<InMemory>,
    /// Input samples not loaded yet, in time order.
    unloaded: RefCell<BTreeMap<Labels, VecDeque<(i64, f64)>>>,
}

impl TestStorage {
    /// The input series, one value per `interval_ms` from time 0; a later
    /// definition of the same series replaces an earlier one.
    fn new(input: &[InputSeries], interval_ms: i64) -> Result<TestStorage, String> {
        let mut unloaded = BTreeMap::new();
        for (index, input) in input.iter().enumerate() {
            let field = |what: &str, e: String| format!("input_series[{index}]: {what}: {e}");
            let labels = series::parse_series(&input.series.0).map_err(|e| field("series", e))?;
            let steps = series::parse_values(&input.values.0).map_err(|e| field("values", e))?;
            let samples = (0i64..)
                .zip(steps)
                .filter_map(|(step, value)| Some((step.checked_mul(interval_ms)?, value?)))
                .collect();
            unloaded.insert(labels, samples);
        }
        Ok(TestStorage {
            loaded: RefCell::new(InMemory(Vec::new())),
            unloaded: RefCell::new(unloaded),
        })
    }

    /// Adds the input samples up to `ts_ms`.
    fn load_till(&self, ts_ms: i64) {
        for (labels, samples) in self.unloaded.borrow_mut().iter_mut() {
            while let Some(&(t, v)) = samples.front().filter(|(t, _)| *t <= ts_ms) {
                samples.pop_front();
                self.append_one(labels, t, v);
            }
        }
    }

    fn append_one(&self, labels: &Labels, t: i64, value: f64) {
        let mut loaded = self.loaded.borrow_mut();
        let at = match loaded.0.iter().position(|s| &s.labels == labels) {
            Some(at) => at,
            None => {
                loaded.0.push(SeriesSamples {
                    labels: labels.clone(),
                    samples: Vec::new(),
                });
                loaded.0.len() - 1
            }
        };
        let samples = &mut loaded.0[at].samples;
        if samples.last().is_none_or(|&(last, _)| last < t) {
            samples.push((t, value));
        }
    }
}

impl Source for TestStorage {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> anyhow::Result<Vec<SeriesSamples>> {
        self.loaded.borrow().select(matchers, start_ms, end_ms)
    }
}

impl SampleSink for TestStorage {
    fn append(&self, samples: &[Sample]) -> anyhow::Result<()> {
        for sample in samples {
            self.append_one(&sample.labels, sample.timestamp_ms, sample.value);
        }
        Ok(())
    }
}

/// The rule files a pattern names: itself when it has no wildcard, else
/// the files whose name matches (`*`, `?` and `[…]` in the last part).
fn glob(pattern: &Path) -> Result<Vec<PathBuf>, String> {
    let name = pattern
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let Some(name) = name.filter(|n| n.contains(['*', '?', '['])) else {
        return Ok(if pattern.exists() {
            vec![pattern.to_path_buf()]
        } else {
            Vec::new()
        });
    };
    let mut regex = String::from("^");
    for c in name.chars() {
        match c {
            '*' => regex.push_str("[^/]*"),
            '?' => regex.push_str("[^/]"),
            '[' | ']' | '-' | '^' => regex.push(c),
            c => regex.push_str(&regex::escape(&c.to_string())),
        }
    }
    regex.push('$');
    let matcher = Regex::new(&regex).map_err(|_| format!("syntax error in pattern {name:?}"))?;
    let dir = pattern.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let mut found: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter(|e| matcher.is_match(&e.file_name().to_string_lossy()))
            .map(|e| pattern.with_file_name(e.file_name()))
            .collect(),
        Err(_) => Vec::new(),
    };
    found.sort();
    Ok(found)
}

/// A unit-test file, as promtool reads it (unknown keys refused).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default, deserialize_with = "nullable")]
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Duration,
    #[serde(default, deserialize_with = "nullable")]
    group_eval_order: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    tests: Vec<TestGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default)]
    interval: Duration,
    #[serde(default, deserialize_with = "nullable")]
    input_series: Vec<InputSeries>,
    #[serde(default, deserialize_with = "nullable")]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default, deserialize_with = "nullable")]
    promql_expr_test: Vec<ExprTest>,
    /// sonde's extension: kernel events for the event rules.
    #[serde(default, deserialize_with = "nullable")]
    input_events: Vec<InputEvent>,
    #[serde(default, deserialize_with = "nullable")]
    external_labels: BTreeMap<String, Scalar>,
    #[serde(default)]
    external_url: Scalar,
    #[serde(default)]
    name: Scalar,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    #[serde(default)]
    series: Scalar,
    #[serde(default)]
    values: Scalar,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    #[serde(default)]
    eval_time: Duration,
    #[serde(default)]
    alertname: Scalar,
    #[serde(default, deserialize_with = "nullable")]
    exp_alerts: Vec<ExpectedAlert>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedAlert {
    #[serde(default, deserialize_with = "nullable")]
    exp_labels: BTreeMap<String, Scalar>,
    #[serde(default, deserialize_with = "nullable")]
    exp_annotations: BTreeMap<String, Scalar>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    #[serde(default)]
    expr: Scalar,
    #[serde(default)]
    eval_time: Duration,
    #[serde(default, deserialize_with = "nullable")]
    exp_samples: Vec<ExpectedSample>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedSample {
    #[serde(default)]
    labels: Scalar,
    #[serde(default)]
    value: f64,
}

/// A field written as `null` (a key with nothing after it) is the empty
/// value, as Go's YAML decoder reads it.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// A duration in Prometheus's notation (`1m`, `1h30m`, `0`), in
/// milliseconds.
#[derive(Default)]
struct Duration(i64);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let Scalar(text) = Scalar::deserialize(deserializer)?;
        if text.is_empty() {
            return Ok(Duration(0));
        }
        rulefile::rule_duration(&text)
            .map(Duration)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
