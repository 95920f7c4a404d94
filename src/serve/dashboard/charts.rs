//! What the dashboard shows, as data: each chart is a title, a unit, a style
//! and a list of lines, and each line is a small expression over stored
//! series ([`Expr`]) with a legend template. [`Expr`] covers exactly what the
//! charts need (a gauge, a rate, sums by labels, arithmetic, the top k) and
//! prints as the equivalent PromQL, so the charts can move to the PromQL
//! engine by swapping [`evaluate`] for it.

use std::collections::BTreeMap;
use std::fmt;

use crate::model::{Labels, MatchOp, Matcher, METRIC_NAME};
use crate::query::Source;

use super::series::{self, Grid, Points};

/// How a chart's values read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Already in percent (0–100).
    Percent,
    Bytes,
    BytesPerSecond,
    /// Events per second; the noun names the events ("syscalls").
    PerSecond(&'static str),
    /// A plain number without a unit (the load average).
    Number,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Lines,
    /// Filled areas on top of each other: the parts of a whole.
    Stacked,
}

pub struct Chart {
    /// The HTML id of the chart's panel.
    pub id: &'static str,
    pub title: &'static str,
    pub unit: Unit,
    pub style: Style,
    pub lines: &'static [Line],
    /// Legends that come first, in this order (the rest follow as evaluated),
    /// so a series keeps its place and colour whatever else is there.
    pub order: &'static [&'static str],
    /// Shown instead of the plot when no line has data in the range.
    pub empty: &'static str,
}

/// One expression and how its series are named in the legend: `{label}` is
/// replaced by the series' value of that label.
pub struct Line {
    pub legend: &'static str,
    pub expr: Expr,
    /// Drawn dashed: a reference (a total, a limit) rather than a measure.
    pub dashed: bool,
}

impl Line {
    const fn new(legend: &'static str, expr: Expr) -> Line {
        Line {
            legend,
            expr,
            dashed: false,
        }
    }

    const fn dashed(legend: &'static str, expr: Expr) -> Line {
        Line {
            legend,
            expr,
            dashed: true,
        }
    }
}

/// A series selection: a metric name and more label matchers.
pub struct Select {
    pub metric: &'static str,
    pub matchers: &'static [(&'static str, MatchOp, &'static str)],
}

impl Select {
    /// The store's matchers for this selection.
    pub fn matchers(&self) -> anyhow::Result<Vec<Matcher>> {
        let mut matchers = vec![Matcher::equal(METRIC_NAME, self.metric)];
        for &(name, op, value) in self.matchers {
            matchers.push(Matcher::new(op, name, value)?);
        }
        Ok(matchers)
    }
}

pub enum Expr {
    /// `sum by (by) (select)`: a gauge's value at each instant.
    Gauge {
        select: Select,
        by: &'static [&'static str],
    },
    /// `sum by (by) (rate(select[window]))`: a counter's rate per second.
    Rate {
        select: Select,
        by: &'static [&'static str],
    },
    /// A constant.
    Number(f64),
    /// Series of both sides paired by equal labels; a side with a single
    /// series without labels (a sum over everything, a number) pairs with
    /// every series of the other side.
    Binary(Op, &'static Expr, &'static Expr),
    /// The k series with the highest average over the whole range. Ranking
    /// once over the range, not at every instant, keeps lines from appearing
    /// and vanishing along the chart.
    TopK(usize, &'static Expr),
}

impl Expr {
    /// Every selection the expression reads, in evaluation order.
    pub fn selects(&self) -> Vec<&Select> {
        match self {
            Expr::Gauge { select, .. } | Expr::Rate { select, .. } => vec![select],
            Expr::Number(_) => Vec::new(),
            Expr::Binary(_, lhs, rhs) => {
                let mut selects = lhs.selects();
                selects.extend(rhs.selects());
                selects
            }
            Expr::TopK(_, inner) => inner.selects(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Sub,
    Mul,
    Div,
}

const CPU_BUSY_BY_MODE: Expr = Expr::Rate {
    select: Select {
        metric: "node_cpu_seconds_total",
        matchers: &[("mode", MatchOp::NotEqual, "idle")],
    },
    by: &["mode"],
};
const CPU_ALL: Expr = Expr::Rate {
    select: Select {
        metric: "node_cpu_seconds_total",
        matchers: &[],
    },
    by: &[],
};

const fn gauge(metric: &'static str) -> Expr {
    Expr::Gauge {
        select: Select {
            metric,
            matchers: &[],
        },
        by: &[],
    }
}

const fn rate_by_device(
    metric: &'static str,
    matchers: &'static [(&'static str, MatchOp, &'static str)],
) -> Expr {
    Expr::Rate {
        select: Select { metric, matchers },
        by: &["device"],
    }
}

/// Loopback traffic never leaves the machine: it is not network throughput.
const NOT_LOOPBACK: &[(&str, MatchOp, &str)] = &[("device", MatchOp::NotEqual, "lo")];

const MEM_TOTAL: Expr = gauge("node_memory_MemTotal_bytes");
const MEM_AVAILABLE: Expr = gauge("node_memory_MemAvailable_bytes");

const SYSCALLS_BY_COMM: Expr = Expr::Rate {
    select: Select {
        metric: "sonde_syscalls_total",
        matchers: &[],
    },
    by: &["comm"],
};

/// The dashboard, top to bottom.
pub const CHARTS: &[Chart] = &[
    Chart {
        id: "cpu",
        title: "CPU by mode",
        unit: Unit::Percent,
        style: Style::Stacked,
        lines: &[Line::new(
            "{mode}",
            Expr::Binary(
                Op::Mul,
                &Expr::Number(100.0),
                &Expr::Binary(Op::Div, &CPU_BUSY_BY_MODE, &CPU_ALL),
            ),
        )],
        order: &[
            "user", "system", "iowait", "softirq", "irq", "nice", "steal",
        ],
        empty: "No CPU time stored yet.",
    },
    Chart {
        id: "memory",
        title: "Memory",
        unit: Unit::Bytes,
        style: Style::Lines,
        lines: &[
            Line::new("used", Expr::Binary(Op::Sub, &MEM_TOTAL, &MEM_AVAILABLE)),
            Line::new("cached", gauge("node_memory_Cached_bytes")),
            Line::new("buffers", gauge("node_memory_Buffers_bytes")),
            Line::new("free", gauge("node_memory_MemFree_bytes")),
            Line::dashed("total", MEM_TOTAL),
        ],
        order: &[],
        empty: "No memory figures stored yet.",
    },
    Chart {
        id: "load",
        title: "Load average",
        unit: Unit::Number,
        style: Style::Lines,
        lines: &[
            Line::new("1m", gauge("node_load1")),
            Line::new("5m", gauge("node_load5")),
            Line::new("15m", gauge("node_load15")),
        ],
        order: &[],
        empty: "No load average stored yet.",
    },
    Chart {
        id: "disk",
        title: "Disk throughput",
        unit: Unit::BytesPerSecond,
        style: Style::Lines,
        lines: &[
            Line::new(
                "{device} read",
                rate_by_device("node_disk_read_bytes_total", &[]),
            ),
            Line::new(
                "{device} written",
                rate_by_device("node_disk_written_bytes_total", &[]),
            ),
        ],
        order: &[],
        empty: "No disk I/O stored yet.",
    },
    Chart {
        id: "network",
        title: "Network throughput",
        unit: Unit::BytesPerSecond,
        style: Style::Lines,
        lines: &[
            Line::new(
                "{device} received",
                rate_by_device("node_network_receive_bytes_total", NOT_LOOPBACK),
            ),
            Line::new(
                "{device} sent",
                rate_by_device("node_network_transmit_bytes_total", NOT_LOOPBACK),
            ),
        ],
        order: &[],
        empty: "No network traffic stored yet.",
    },
    Chart {
        id: "syscalls",
        title: "Top processes by syscalls",
        unit: Unit::PerSecond("syscalls"),
        style: Style::Lines,
        lines: &[Line::new("{comm}", Expr::TopK(10, &SYSCALLS_BY_COMM))],
        order: &[],
        empty: "No syscall counts stored yet: they need eBPF, see `sonde doctor`.",
    },
];

/// One series of an evaluated expression: its labels (what `by` kept) and
/// its value at each grid instant.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    pub labels: Labels,
    pub points: Points,
}

/// Where reading starts for a grid: a step and five minutes before its first
/// instant, so that instant has a full rate window (step + interval) and
/// gauge lookback (4 intervals) behind it, for intervals up to a minute.
pub fn read_start_ms(grid: &Grid) -> i64 {
    grid.start_ms - grid.step_ms - 5 * 60 * 1000
}

/// Evaluates `expr` at every instant of `grid` from the series in `store`.
pub fn evaluate(store: &impl Source, expr: &Expr, grid: &Grid) -> anyhow::Result<Vec<Curve>> {
    Ok(match expr {
        Expr::Gauge { select, by } => sum_by(read(store, select, grid, series::gauge)?, by, grid),
        Expr::Rate { select, by } => sum_by(read(store, select, grid, series::rate)?, by, grid),
        Expr::Number(value) => vec![Curve {
            labels: Labels::default(),
            points: vec![Some(*value); grid.len],
        }],
        Expr::Binary(op, lhs, rhs) => binary(
            *op,
            evaluate(store, lhs, grid)?,
            evaluate(store, rhs, grid)?,
        ),
        Expr::TopK(k, inner) => {
            let mut curves = evaluate(store, inner, grid)?;
            curves.sort_by(|a, b| average(&b.points).total_cmp(&average(&a.points)));
            curves.truncate(*k);
            curves
        }
    })
}

/// The selected series, each turned into values at the grid's instants.
fn read(
    store: &impl Source,
    select: &Select,
    grid: &Grid,
    per_series: fn(&[(i64, f64)], &Grid) -> Points,
) -> anyhow::Result<Vec<Curve>> {
    // A coarse grid reads a rollup tier's last sample per bucket rather than
    // every raw sample: rates between kept samples are exact, and a grid
    // step wider than a bucket cannot show finer detail anyway.
    let selected = store.select_step(
        &select.matchers()?,
        read_start_ms(grid),
        grid.end_ms(),
        grid.step_ms,
    )?;
    Ok(selected
        .into_iter()
        .map(|series| Curve {
            points: per_series(&series.samples, grid),
            labels: series.labels,
        })
        .collect())
}

/// Sums curves that agree on the `by` labels, dropping every other label;
/// at each instant, curves without a value there are left out of the sum.
fn sum_by(curves: Vec<Curve>, by: &[&str], grid: &Grid) -> Vec<Curve> {
    let mut groups: BTreeMap<Labels, Points> = BTreeMap::new();
    for curve in curves {
        let key = Labels::new(
            by.iter()
                .filter_map(|&name| Some((name, curve.labels.get(name)?))),
        );
        let sum = groups.entry(key).or_insert_with(|| vec![None; grid.len]);
        for (total, value) in sum.iter_mut().zip(curve.points) {
            if let Some(value) = value {
                *total = Some(total.unwrap_or(0.0) + value);
            }
        }
    }
    groups
        .into_iter()
        .map(|(labels, points)| Curve { labels, points })
        .collect()
}

fn binary(op: Op, lhs: Vec<Curve>, rhs: Vec<Curve>) -> Vec<Curve> {
    let apply = |a: &Points, b: &Points| -> Points {
        a.iter()
            .zip(b)
            .map(|(a, b)| {
                let (a, b) = ((*a)?, (*b)?);
                let value = match op {
                    Op::Sub => a - b,
                    Op::Mul => a * b,
                    Op::Div => a / b,
                };
                value.is_finite().then_some(value)
            })
            .collect()
    };
    let single = |side: &[Curve]| match side {
        [only] if only.labels.is_empty() => Some(only.points.clone()),
        _ => None,
    };
    if let Some(b) = single(&rhs) {
        return lhs
            .into_iter()
            .map(|c| Curve {
                points: apply(&c.points, &b),
                labels: c.labels,
            })
            .collect();
    }
    if let Some(a) = single(&lhs) {
        return rhs
            .into_iter()
            .map(|c| Curve {
                points: apply(&a, &c.points),
                labels: c.labels,
            })
            .collect();
    }
    let rhs: BTreeMap<Labels, Points> = rhs.into_iter().map(|c| (c.labels, c.points)).collect();
    lhs.into_iter()
        .filter_map(|c| {
            let b = rhs.get(&c.labels)?;
            Some(Curve {
                points: apply(&c.points, b),
                labels: c.labels,
            })
        })
        .collect()
}

/// The mean of the values present; −∞ for none, so empty curves rank last.
fn average(points: &Points) -> f64 {
    let (sum, count) = points
        .iter()
        .flatten()
        .fold((0.0, 0usize), |(sum, count), v| (sum + v, count + 1));
    if count == 0 {
        f64::NEG_INFINITY
    } else {
        sum / count as f64
    }
}

/// The legend of one curve: `{label}` replaced by the curve's label value.
pub fn legend(template: &str, labels: &Labels) -> String {
    let mut text = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        text.push_str(&rest[..open]);
        text.push_str(labels.get(&rest[open + 1..open + close]).unwrap_or("?"));
        rest = &rest[open + close + 1..];
    }
    text.push_str(rest);
    text
}

/// The equivalent PromQL, with Grafana's `$__rate_interval` for the rate
/// window (which depends on the step) and `$__range`/`$__interval` for the
/// ranking of [`Expr::TopK`].
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Gauge { select, by } => write!(f, "{}({select})", Sum(by)),
            Expr::Rate { select, by } => {
                write!(f, "{}(rate({select}[$__rate_interval]))", Sum(by))
            }
            Expr::Number(value) => write!(f, "{value}"),
            Expr::Binary(op, lhs, rhs) => {
                let symbol = match op {
                    Op::Sub => "-",
                    Op::Mul => "*",
                    Op::Div => "/",
                };
                let labelless = |e: &Expr| match e {
                    Expr::Number(_) => true,
                    Expr::Gauge { by, .. } | Expr::Rate { by, .. } => by.is_empty(),
                    _ => false,
                };
                let matching = match (labelless(lhs), labelless(rhs)) {
                    (false, true) if !matches!(rhs, Expr::Number(_)) => " on() group_left",
                    (true, false) if !matches!(lhs, Expr::Number(_)) => " on() group_right",
                    _ => "",
                };
                write!(f, "{lhs} {symbol}{matching} ({rhs})")
            }
            Expr::TopK(k, inner) => write!(
                f,
                "{inner} and topk({k}, avg_over_time(({inner})[$__range:$__interval]))"
            ),
        }
    }
}

impl fmt::Display for Select {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.metric)?;
        if self.matchers.is_empty() {
            return Ok(());
        }
        let matchers: Vec<String> = self
            .matchers
            .iter()
            .map(|(name, op, value)| {
                let op = match op {
                    MatchOp::Equal => "=",
                    MatchOp::NotEqual => "!=",
                    MatchOp::Regex => "=~",
                    MatchOp::NotRegex => "!~",
                };
                format!("{name}{op}{value:?}")
            })
            .collect();
        write!(f, "{{{}}}", matchers.join(", "))
    }
}

/// `sum by (a, b) ` or plain `sum`.
struct Sum<'a>(&'a [&'a str]);

impl fmt::Display for Sum<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("sum")
        } else {
            write!(f, "sum by ({}) ", self.0.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chart_has_lines_and_matchers_that_build() {
        assert_eq!(CHARTS.len(), 6);
        for chart in CHARTS {
            assert!(!chart.lines.is_empty(), "{}", chart.id);
            for line in chart.lines {
                for select in line.expr.selects() {
                    select.matchers().unwrap();
                }
            }
        }
    }

    #[test]
    fn expressions_print_as_promql() {
        assert_eq!(
            CHARTS[0].lines[0].expr.to_string(),
            "100 * (sum by (mode) (rate(node_cpu_seconds_total{mode!=\"idle\"}[$__rate_interval])) \
             / on() group_left (sum(rate(node_cpu_seconds_total[$__rate_interval]))))"
        );
        assert_eq!(
            CHARTS[1].lines[0].expr.to_string(),
            "sum(node_memory_MemTotal_bytes) - (sum(node_memory_MemAvailable_bytes))"
        );
    }

    #[test]
    fn legend_fills_in_labels() {
        let labels = Labels::new([("device", "eth0")]);
        assert_eq!(legend("{device} sent", &labels), "eth0 sent");
        assert_eq!(legend("{mode}", &labels), "?");
        assert_eq!(legend("total", &labels), "total");
    }

    #[test]
    fn binary_pairs_by_labels_and_broadcasts_a_single_unlabelled_side() {
        let curve = |pairs: &[(&str, &str)], v: f64| Curve {
            labels: Labels::new(pairs.iter().copied()),
            points: vec![Some(v), None],
        };
        let by_mode = vec![
            curve(&[("mode", "user")], 2.0),
            curve(&[("mode", "system")], 1.0),
        ];
        let total = vec![curve(&[], 4.0)];
        let shares = binary(Op::Div, by_mode, total);
        assert_eq!(shares[0].points, [Some(0.5), None]);
        assert_eq!(shares[1].points, [Some(0.25), None]);
        let paired = binary(
            Op::Sub,
            vec![curve(&[("d", "a")], 5.0), curve(&[("d", "b")], 5.0)],
            vec![curve(&[("d", "a")], 3.0)],
        );
        assert_eq!(paired.len(), 1, "b has no partner");
        assert_eq!(paired[0].points, [Some(2.0), None]);
    }
}
