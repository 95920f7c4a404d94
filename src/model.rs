//! The sample model every stage speaks: a series is a sorted label set (its
//! metric name is the `__name__` label), a sample is one value of a series at
//! one instant.
//!
//! Collectors produce [`Family`]s (a metric's name, help, type and the current
//! value of each of its series); the collection loop stamps a whole round with
//! one timestamp ([`Scrape`]) and hands the store plain [`Sample`]s. The query
//! layer selects series with [`Matcher`]s. Nothing else defines these shapes.

use std::cmp::Ordering;
use std::fmt;
use std::iter::Peekable;
use std::sync::Arc;

/// The label that carries a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// A series' identity: label pairs sorted by name, names unique.
///
/// Invariant: sorted by name, no two pairs of one name, no empty value; so
/// two equal label sets have the same encoding, and equality and hashing
/// compare bytes. [`Ord`] is the order of the pairs (name, then value, pair
/// by pair; a set before any longer set it begins), as a list of pairs
/// sorts, not the order of the bytes.
///
/// The pairs live in one allocation, shared by clones (a label set never
/// changes once built; [`Labels::set`] builds another): each pair as its
/// name's length (LEB128), the name, the value's length, the value. A list
/// of owned strings was 2k+1 heap blocks for k labels: every round
/// (thousands of series) each collector allocated them all and the store
/// freed them all, and finding a series' id hashed and compared every
/// label through a pointer to a block of its own, each a cache miss at an
/// idle 10 s interval. Now a label set is one block, hashed and compared
/// as one run of bytes, and the store's index holds it without another
/// pointer in between; reading a label decodes the pairs before it (a few,
/// and `__name__` sorts before every lowercase name).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels(Arc<[u8]>);

impl Labels {
    /// Builds a label set; a later pair wins over an earlier one of the same
    /// name, and empty values are dropped (Prometheus treats an empty label as
    /// an absent one).
    pub fn new<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Labels
    where
        N: AsRef<str>,
        V: AsRef<str>,
    {
        let mut pairs: Vec<(N, V)> = pairs.into_iter().collect();
        // Stable, so the last of a name's pairs stays last.
        pairs.sort_by(|(a, _), (b, _)| a.as_ref().cmp(b.as_ref()));
        Labels::encode(Canonical(
            pairs
                .iter()
                .map(|(n, v)| (n.as_ref(), v.as_ref()))
                .peekable(),
        ))
    }

    /// Sets `name` to `value`, replacing any earlier value; an empty value
    /// removes the label.
    pub fn set(&mut self, name: String, value: String) {
        *self = self.with(&name, &value);
    }

    /// This label set with `name` set to `value` (removed if `value` is
    /// empty), built in one allocation.
    pub fn with(&self, name: &str, value: &str) -> Labels {
        let pair = [(name, value)];
        let extra = if value.is_empty() { &[][..] } else { &pair[..] };
        Labels::encode(Merged {
            sorted: self.iter().filter(|(n, _)| *n != name).peekable(),
            extra,
        })
    }

    /// The label set of `own` pairs (canonical, from [`own_labels`]) and
    /// `extra` ones (sorted by name, none of `own`'s names, no empty value).
    fn merged(own: &[(&str, &str)], extra: &[(&str, &str)]) -> Labels {
        Labels::encode(Merged {
            sorted: own.iter().copied().peekable(),
            extra,
        })
    }

    /// Writes `pairs` (sorted by name, names unique, no empty value) in one
    /// allocation of exactly their size.
    fn encode<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Labels {
        let size = pairs
            .clone()
            .map(|(n, v)| varint_len(n.len()) + n.len() + varint_len(v.len()) + v.len())
            .sum();
        let mut block = Arc::<[u8]>::new_uninit_slice(size);
        let slots = Arc::get_mut(&mut block).expect("a new block has no other owner");
        let mut written = 0;
        let mut put = |bytes: &[u8]| {
            let to = &mut slots[written..written + bytes.len()];
            // SAFETY: `to` is `bytes.len()` bytes of a block nothing else
            // refers to yet.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), to.as_mut_ptr().cast(), bytes.len())
            };
            written += bytes.len();
        };
        for (name, value) in pairs {
            for text in [name, value] {
                let (len, len_bytes) = varint(text.len());
                put(&len[..len_bytes]);
                put(text.as_bytes());
            }
        }
        assert_eq!(written, size, "a label set is written to its size");
        // SAFETY: every byte of the block was written just above.
        Labels(unsafe { block.assume_init() })
    }

    /// The value of `name`, if the set has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        for (n, v) in self.iter() {
            match n.cmp(name) {
                Ordering::Less => {}
                Ordering::Equal => return Some(v),
                Ordering::Greater => break,
            }
        }
        None
    }

    /// The metric name, or "" for a set without one.
    pub fn metric_name(&self) -> &str {
        self.get(METRIC_NAME).unwrap_or("")
    }

    /// Label pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        Pairs(&self.0)
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Prometheus's hash of a label set (`labels.Labels.Hash`): XXH64 of
    /// each name and value, each followed by a 0xff byte, in name order.
    pub fn prometheus_hash(&self) -> u64 {
        let mut bytes = Vec::with_capacity(self.0.len());
        for (name, value) in self.iter() {
            for part in [name, value] {
                bytes.extend_from_slice(part.as_bytes());
                bytes.push(0xff);
            }
        }
        crate::xxh64::xxh64(&bytes)
    }
}

/// The order of the pairs, as `Vec<(String, String)>` sorts (something may
/// sort series by it, and PromQL's output order follows it).
impl Ord for Labels {
    fn cmp(&self, other: &Labels) -> Ordering {
        if self.0 == other.0 {
            return Ordering::Equal;
        }
        self.iter().cmp(other.iter())
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Labels) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// As a list of pairs: `Labels([("__name__", "up"), ("job", "node")])`.
impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Labels")
            .field(&self.iter().collect::<Vec<_>>())
            .finish()
    }
}

/// The pairs of an encoded label set, in order.
#[derive(Clone)]
struct Pairs<'a>(&'a [u8]);

impl<'a> Pairs<'a> {
    fn text(&mut self) -> &'a str {
        let mut len = 0usize;
        let mut shift = 0;
        loop {
            let byte = self.0[0];
            self.0 = &self.0[1..];
            len |= usize::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                break;
            }
            shift += 7;
        }
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        // SAFETY: `Labels::encode` wrote these bytes from a `&str`, and
        // nothing else writes a label set's bytes.
        unsafe { std::str::from_utf8_unchecked(text) }
    }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        if self.0.is_empty() {
            return None;
        }
        let name = self.text();
        Some((name, self.text()))
    }
}

fn varint_len(n: usize) -> usize {
    (usize::BITS - (n | 1).leading_zeros()).div_ceil(7) as usize
}

/// `n` in LEB128: the bytes and how many of them.
fn varint(mut n: usize) -> ([u8; 10], usize) {
    let mut bytes = [0; 10];
    let mut len = 0;
    while n >= 0x80 {
        bytes[len] = n as u8 | 0x80;
        n >>= 7;
        len += 1;
    }
    bytes[len] = n as u8;
    (bytes, len + 1)
}

/// Pairs sorted by name (stably) made what [`Labels`] holds: of the pairs
/// of one name only the last, and none with an empty value.
#[derive(Clone)]
struct Canonical<'a, I: Iterator<Item = (&'a str, &'a str)>>(Peekable<I>);

impl<'a, I: Iterator<Item = (&'a str, &'a str)>> Iterator for Canonical<'a, I> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        loop {
            let (name, value) = self.0.next()?;
            let overridden = self.0.peek().is_some_and(|(next, _)| *next == name);
            if !overridden && !value.is_empty() {
                return Some((name, value));
            }
        }
    }
}

/// Canonical pairs with `extra` (sorted by name, names none of them has,
/// no empty value) each in its place.
#[derive(Clone)]
struct Merged<'a, I: Iterator<Item = (&'a str, &'a str)>> {
    sorted: Peekable<I>,
    extra: &'a [(&'a str, &'a str)],
}

impl<'a, I: Iterator<Item = (&'a str, &'a str)>> Iterator for Merged<'a, I> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        match (self.sorted.peek(), self.extra.split_first()) {
            (Some(&(name, _)), Some((&(extra, _), _))) if name < extra => self.sorted.next(),
            (_, Some((&pair, rest))) => {
                self.extra = rest;
                Some(pair)
            }
            (_, None) => self.sorted.next(),
        }
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
        let labels = self.series_labels(labels);
        self.series.push(Series { labels, value });
    }

    /// The label set [`Family::push`] gives a series of these labels: for a
    /// collector that keeps it from round to round and pushes it again
    /// with [`Family::push_labelled`] (a clone shares its one block).
    pub fn series_labels(&self, labels: &[(&str, &str)]) -> Labels {
        let own = own_labels(labels, &[METRIC_NAME]);
        Labels::merged(&own, &[(METRIC_NAME, &self.name)])
    }

    /// Adds a series whose label set came from this family's
    /// [`Family::series_labels`].
    pub fn push_labelled(&mut self, labels: Labels, value: f64) {
        debug_assert_eq!(
            labels.metric_name(),
            self.name,
            "another family's label set"
        );
        self.series.push(Series { labels, value });
    }

    /// Adds one histogram: `buckets` are (upper bound, cumulative count) in
    /// ascending order; the `+Inf` bucket is added from `count`.
    ///
    /// A round holds thousands of buckets (the syscalls collector alone 25
    /// per syscall): the given labels are sorted once per histogram, each
    /// suffixed name written once, and each bound formatted on the stack,
    /// so a series costs the one allocation of its label set.
    pub fn push_histogram(
        &mut self,
        labels: &[(&str, &str)],
        buckets: impl IntoIterator<Item = (f64, u64)>,
        sum: f64,
        count: u64,
    ) {
        let own = own_labels(labels, &[METRIC_NAME, "le"]);
        let mut name = String::with_capacity(self.name.len() + "_bucket".len());
        name.push_str(&self.name);
        name.push_str("_bucket");
        let mut le = FloatText::default();
        for (upper, cumulative) in buckets {
            le.set(upper);
            let extra = [(METRIC_NAME, name.as_str()), ("le", le.as_str())];
            self.push_with(&own, &extra, cumulative as f64);
        }
        self.push_with(&own, &[(METRIC_NAME, &name), ("le", "+Inf")], count as f64);
        for (suffix, value) in [("_sum", sum), ("_count", count as f64)] {
            name.truncate(self.name.len());
            name.push_str(suffix);
            self.push_with(&own, &[(METRIC_NAME, &name)], value);
        }
    }

    fn push_with(&mut self, own: &[(&str, &str)], extra: &[(&str, &str)], value: f64) {
        let labels = Labels::merged(own, extra);
        self.series.push(Series { labels, value });
    }

    /// The label sets of one histogram of this family with buckets of
    /// upper bounds `bounds` (ascending, `+Inf` added), as
    /// [`Family::push_histogram`] makes them: for a collector that keeps
    /// them from round to round ([`Family::push_labelled_histogram`]).
    pub fn histogram_labels(
        &self,
        labels: &[(&str, &str)],
        bounds: impl IntoIterator<Item = f64>,
    ) -> HistogramLabels {
        let mut scratch = Family::histogram(self.name.as_str(), "");
        let buckets = bounds.into_iter().map(|upper| (upper, 0));
        scratch.push_histogram(labels, buckets, 0.0, 0);
        let mut series = scratch.series.into_iter().map(|s| s.labels);
        let count = series.next_back().expect("a histogram has a _count");
        let sum = series.next_back().expect("a histogram has a _sum");
        HistogramLabels {
            buckets: series.collect(),
            sum,
            count,
        }
    }

    /// Adds one histogram as [`Family::push_histogram`] does, with label
    /// sets from [`Family::histogram_labels`]: `cumulative` are the counts
    /// of its buckets in order (without `+Inf`, which is `count`).
    pub fn push_labelled_histogram(
        &mut self,
        labels: &HistogramLabels,
        cumulative: impl IntoIterator<Item = u64>,
        sum: f64,
        count: u64,
    ) {
        let (inf, bounded) = labels.buckets.split_last().expect("+Inf is a bucket");
        for (bucket, value) in bounded.iter().zip(cumulative) {
            self.push_labelled(bucket.clone(), value as f64);
        }
        self.push_labelled(inf.clone(), count as f64);
        self.push_labelled(labels.sum.clone(), sum);
        self.push_labelled(labels.count.clone(), count as f64);
    }
}

/// The label sets of one histogram's series (its buckets, `+Inf` last,
/// then `_sum` and `_count`), built once by [`Family::histogram_labels`].
#[derive(Clone, Debug)]
pub struct HistogramLabels {
    buckets: Vec<Labels>,
    sum: Labels,
    count: Labels,
}

/// A collector's labels for a series, sorted and canonical as [`Labels`]
/// keeps them, without the names the family sets itself (`excluded`).
fn own_labels<'a>(labels: &[(&'a str, &'a str)], excluded: &[&str]) -> Vec<(&'a str, &'a str)> {
    let mut sorted: Vec<(&str, &str)> = labels
        .iter()
        .copied()
        .filter(|(name, _)| !excluded.contains(name))
        .collect();
    // Stable, so the last of a name's pairs stays last.
    sorted.sort_by_key(|&(name, _)| name);
    Canonical(sorted.iter().copied().peekable()).collect()
}

/// Formats a float as Prometheus does in text: `+Inf`, `-Inf`, `NaN`, and the
/// shortest decimal that reads back to the same value otherwise.
pub fn format_float(value: f64) -> String {
    let mut text = String::new();
    write_float(&mut text, value).expect("a String takes any text");
    text
}

fn write_float(out: &mut impl fmt::Write, value: f64) -> fmt::Result {
    if value.is_nan() {
        out.write_str("NaN")
    } else if value == f64::INFINITY {
        out.write_str("+Inf")
    } else if value == f64::NEG_INFINITY {
        out.write_str("-Inf")
    } else {
        let magnitude = value.abs();
        if magnitude != 0.0 && !(1e-4..1e21).contains(&magnitude) {
            write!(out, "{value:e}")
        } else {
            write!(out, "{value}")
        }
    }
}

/// [`format_float`] into a buffer on the stack: the longest text it writes
/// is 24 bytes (`-2.2250738585072014e-308`; between 1e-4 and 1e21, a sign,
/// 21 digits and a point at most).
#[derive(Default)]
struct FloatText {
    bytes: [u8; 32],
    len: usize,
}

impl FloatText {
    fn set(&mut self, value: f64) {
        self.len = 0;
        write_float(self, value).expect("a float's text fits in 32 bytes");
    }

    fn as_str(&self) -> &str {
        // SAFETY: only `write_str` fills `bytes`, from whole `&str`s.
        unsafe { std::str::from_utf8_unchecked(&self.bytes[..self.len]) }
    }
}

impl fmt::Write for FloatText {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let end = self.len + text.len();
        self.bytes
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
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
    fn labels_order_as_lists_of_pairs_do() {
        // Prefixes, names and values that differ in length and in bytes,
        // a value long enough for a two-byte length, and the empty set.
        let long = "v".repeat(300);
        let sets: Vec<Vec<(&str, &str)>> = vec![
            vec![],
            vec![("a", "1")],
            vec![("a", "1"), ("b", "2")],
            vec![("a", "10")],
            vec![("a", "2")],
            vec![("a", &long)],
            vec![("a", "1"), ("bb", "2")],
            vec![("aa", "1")],
            vec![("__name__", "up"), ("job", "x")],
            vec![("__name__", "up_total")],
            vec![("A", "1"), ("__name__", "up")],
        ];
        for a in &sets {
            for b in &sets {
                let owned = |set: &Vec<(&str, &str)>| -> Vec<(String, String)> {
                    set.iter()
                        .map(|(n, v)| (n.to_string(), v.to_string()))
                        .collect()
                };
                let (x, y) = (
                    Labels::new(a.iter().copied()),
                    Labels::new(b.iter().copied()),
                );
                assert_eq!(x.cmp(&y), owned(a).cmp(&owned(b)), "{a:?} vs {b:?}");
                assert_eq!(x == y, a == b);
            }
        }
        assert_eq!(
            Labels::new(sets[5].iter().copied()).get("a"),
            Some(long.as_str())
        );
    }

    #[test]
    fn with_and_set_replace_or_remove_one_label() {
        let labels = Labels::new([("b", "2"), ("d", "4")]);
        assert_eq!(
            labels.with("c", "3"),
            Labels::new([("b", "2"), ("c", "3"), ("d", "4")])
        );
        assert_eq!(labels.with("a", "1").iter().next(), Some(("a", "1")));
        assert_eq!(labels.with("b", "x"), Labels::new([("b", "x"), ("d", "4")]));
        assert_eq!(labels.with("d", ""), Labels::new([("b", "2")]));
        let mut set = labels.clone();
        set.set("b".to_string(), String::new());
        set.set("e".to_string(), "5".to_string());
        assert_eq!(set.iter().collect::<Vec<_>>(), [("d", "4"), ("e", "5")]);
        assert_eq!(set.len(), 2);
        assert_eq!(format!("{set:?}"), r#"Labels([("d", "4"), ("e", "5")])"#);
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

    /// Kept label sets give the series the labels of each round's own.
    #[test]
    fn labelled_pushes_match_plain_ones() {
        let mut plain = Family::histogram("x_seconds", "h");
        plain.push_histogram(&[("op", "read")], [(0.5, 1), (1.0, 3)], 2.5, 4);
        plain.push(&[("op", "read")], 7.0);
        let mut kept = Family::histogram("x_seconds", "h");
        let histogram = kept.histogram_labels(&[("op", "read")], [0.5, 1.0]);
        kept.push_labelled_histogram(&histogram, [1, 3], 2.5, 4);
        let series = kept.series_labels(&[("op", "read")]);
        kept.push_labelled(series, 7.0);
        assert_eq!(kept, plain);
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
        for extreme in [
            f64::MIN,
            -f64::MIN_POSITIVE,
            -5e-324,
            -1.2345678901234567e-5,
            -9.999999999999999e20,
        ] {
            let mut text = FloatText::default();
            text.set(extreme);
            assert_eq!(text.as_str(), format_float(extreme));
        }
    }
}
