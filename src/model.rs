//! The sample model every stage speaks: a series is a sorted label set (its
//! metric name is the `__name__` label), a sample is one value of a series at
//! one instant.
//!
//! Collectors produce [`Family`]s (a metric's name, help, type and the current
//! value of each of its series); the collection loop stamps a whole round with
//! one timestamp ([`Scrape`]) and hands the store plain [`Sample`]s. The query
//! layer selects series with [`Matcher`]s. Nothing else defines these shapes.

use std::fmt;

/// The label that carries a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// A series' identity: label pairs sorted by name, names unique.
///
/// Invariant: sorted by name with no duplicate names, so two equal label sets
/// compare, hash and serialize the same way.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// Builds a label set; a later pair wins over an earlier one of the same
    /// name, and empty values are dropped (Prometheus treats an empty label as
    /// an absent one).
    pub fn new<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Labels
    where
        N: Into<String>,
        V: Into<String>,
    {
        let pairs = pairs.into_iter();
        // Sized once: collectors build thousands of label sets a round.
        let mut labels = Labels(Vec::with_capacity(pairs.size_hint().0));
        for (name, value) in pairs {
            labels.set(name.into(), value.into());
        }
        labels
    }

    /// Sets `name` to `value`, replacing any earlier value; an empty value
    /// removes the label.
    pub fn set(&mut self, name: String, value: String) {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].1 = value,
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, (name, value)),
        }
    }

    /// The value of `name`, if the set has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// The metric name, or "" for a set without one.
    pub fn metric_name(&self) -> &str {
        self.get(METRIC_NAME).unwrap_or("")
    }

    /// Label pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Prometheus's hash of a label set (`labels.Labels.Hash`): XXH64 of
    /// each name and value, each followed by a 0xff byte, in name order.
    pub fn prometheus_hash(&self) -> u64 {
        let mut bytes = Vec::with_capacity(self.0.iter().map(|(n, v)| n.len() + v.len() + 2).sum());
        for (name, value) in &self.0 {
            for part in [name, value] {
                bytes.extend_from_slice(part.as_bytes());
                bytes.push(0xff);
            }
        }
        crate::xxh64::xxh64(&bytes)
    }
}

/// Prometheus's own notation: `name{a="1", b="2"}`.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.metric_name())?;
        f.write_str("{")?;
        let mut first = true;
        for (name, value) in self.iter().filter(|(n, _)| *n != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{name}={value:?}")?;
        }
        f.write_str("}")
    }
}

/// One value of one series at one instant (milliseconds since the epoch, as
/// Prometheus counts time).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub timestamp_ms: i64,
    pub value: f64,
}

impl Sample {
    pub fn borrowed(&self) -> SampleRef<'_> {
        SampleRef {
            labels: &self.labels,
            timestamp_ms: self.timestamp_ms,
            value: self.value,
        }
    }
}

/// A [`Sample`] whose label set is kept elsewhere (in a [`Scrape`]'s
/// series): a round is stored without copying every label set.
#[derive(Clone, Copy, Debug)]
pub struct SampleRef<'a> {
    pub labels: &'a Labels,
    pub timestamp_ms: i64,
    pub value: f64,
}

/// A metric's type, as the exposition format's `# TYPE` line names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
    Untyped,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
            MetricKind::Untyped => "untyped",
        }
    }
}

/// The current value of one series; its labels include `__name__`, which for
/// a histogram is the family name plus `_bucket`, `_sum` or `_count`.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub value: f64,
}

/// A metric family: everything a collector knows of one metric right now.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub name: String,
    pub help: String,
    pub kind: MetricKind,
    pub series: Vec<Series>,
}

impl Family {
    pub fn new(name: impl Into<String>, help: impl Into<String>, kind: MetricKind) -> Family {
        Family {
            name: name.into(),
            help: help.into(),
            kind,
            series: Vec::new(),
        }
    }

    pub fn counter(name: impl Into<String>, help: impl Into<String>) -> Family {
        Family::new(name, help, MetricKind::Counter)
    }

    pub fn gauge(name: impl Into<String>, help: impl Into<String>) -> Family {
        Family::new(name, help, MetricKind::Gauge)
    }

    pub fn histogram(name: impl Into<String>, help: impl Into<String>) -> Family {
        Family::new(name, help, MetricKind::Histogram)
    }

    /// Adds a series of this family with the given labels (besides its name).
    pub fn push(&mut self, labels: &[(&str, &str)], value: f64) {
        self.push_suffixed("", labels, value);
    }

    /// Adds one histogram: `buckets` are (upper bound, cumulative count) in
    /// ascending order; the `+Inf` bucket is added from `count`.
    pub fn push_histogram(
        &mut self,
        labels: &[(&str, &str)],
        buckets: impl IntoIterator<Item = (f64, u64)>,
        sum: f64,
        count: u64,
    ) {
        let les = buckets
            .into_iter()
            .map(|(upper, cumulative)| (format_float(upper), cumulative))
            .chain([("+Inf".to_string(), count)]);
        for (le, cumulative) in les {
            let mut with_le = Vec::with_capacity(labels.len() + 1);
            with_le.extend_from_slice(labels);
            with_le.push(("le", &le));
            self.push_suffixed("_bucket", &with_le, cumulative as f64);
        }
        self.push_suffixed("_sum", labels, sum);
        self.push_suffixed("_count", labels, count as f64);
    }

    fn push_suffixed(&mut self, suffix: &str, labels: &[(&str, &str)], value: f64) {
        let labels = Labels::new(
            labels
                .iter()
                .copied()
                .chain([(METRIC_NAME, format!("{}{suffix}", self.name).as_str())]),
        );
        self.series.push(Series { labels, value });
    }
}

/// Formats a float as Prometheus does in text: `+Inf`, `-Inf`, `NaN`, and the
/// shortest decimal that reads back to the same value otherwise.
pub fn format_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value == f64::INFINITY {
        "+Inf".to_string()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        let magnitude = value.abs();
        if magnitude != 0.0 && !(1e-4..1e21).contains(&magnitude) {
            format!("{value:e}")
        } else {
            format!("{value}")
        }
    }
}

/// One collection round: every family, stamped with the instant it was taken.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    pub timestamp_ms: i64,
    pub families: Vec<Family>,
}

impl Scrape {
    /// The round as plain samples, in family order.
    pub fn samples(&self) -> impl Iterator<Item = SampleRef<'_>> + '_ {
        self.families.iter().flat_map(move |family| {
            family.series.iter().map(move |series| SampleRef {
                labels: &series.labels,
                timestamp_ms: self.timestamp_ms,
                value: series.value,
            })
        })
    }
}

/// How a [`Matcher`] compares a label's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

/// A PromQL label matcher: `name op "value"`. A regex matches the whole value
/// (Prometheus anchors it), and a missing label matches as the empty string.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<regex::Regex>,
}

impl Matcher {
    /// Builds a matcher; fails only for a regex that does not compile.
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Matcher, regex::Error> {
        let value = value.into();
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                Some(regex::Regex::new(&format!("^(?s:{value})$"))?)
            }
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            name: name.into(),
            op,
            value,
            regex,
        })
    }

    /// `name="value"`, which cannot fail.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            regex: None,
        }
    }

    pub fn matches_value(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            (MatchOp::Regex | MatchOp::NotRegex, None) => unreachable!("built by Matcher::new"),
        }
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.matches_value(labels.get(&self.name).unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_sorted_and_unique() {
        let labels = Labels::new([("b", "2"), ("a", "1"), ("b", "3"), ("c", "")]);
        assert_eq!(labels.iter().collect::<Vec<_>>(), [("a", "1"), ("b", "3")]);
    }

    #[test]
    fn histogram_has_buckets_sum_and_count() {
        let mut family = Family::histogram("x_seconds", "h");
        family.push_histogram(&[("op", "read")], [(0.5, 1), (1.0, 3)], 2.5, 4);
        let shown: Vec<String> = family.series.iter().map(|s| s.labels.to_string()).collect();
        assert_eq!(
            shown,
            [
                r#"x_seconds_bucket{le="0.5", op="read"}"#,
                r#"x_seconds_bucket{le="1", op="read"}"#,
                r#"x_seconds_bucket{le="+Inf", op="read"}"#,
                r#"x_seconds_sum{op="read"}"#,
                r#"x_seconds_count{op="read"}"#,
            ]
        );
    }

    #[test]
    fn regex_matchers_are_anchored() {
        let m = Matcher::new(MatchOp::Regex, "job", "node|sonde").unwrap();
        assert!(m.matches_value("node"));
        assert!(!m.matches_value("node2"));
        let missing = Matcher::equal("absent", "");
        assert!(missing.matches(&Labels::default()));
    }

    #[test]
    fn floats_format_like_prometheus() {
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(0.25), "0.25");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(1e-9), "1e-9");
    }
}
