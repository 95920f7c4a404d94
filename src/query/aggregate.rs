//! Aggregation operators (`sum`, `topk`, `count_values`, ... with `by` or
//! `without`). A series' group is fixed by its labels, so groups are found
//! once per series and each step only folds the values present at it.

use std::collections::HashMap;

use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_MAX, T_MIN, T_QUANTILE, T_STDDEV,
    T_STDVAR, T_SUM, T_TOPK,
};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::eval::{Evaluator, Grid, Series, Val};
use super::functions::{mean, quantile, variance};
use super::QueryError;
use crate::model::{Labels, METRIC_NAME};

pub(super) fn eval(
    ev: &mut Evaluator,
    agg: &AggregateExpr,
    grid: &Grid,
) -> Result<Val, QueryError> {
    let op = agg.op.id();
    let param = match &agg.param {
        Some(p) => Some(ev.eval(p, grid)?),
        None => None,
    };
    let series = ev.eval_vector(&agg.expr, grid)?;
    let (keys, groups) = group(&series, agg.modifier.as_ref());
    let out = match op {
        T_TOPK | T_BOTTOMK => {
            let Some(Val::Scalar(k)) = param else {
                return Err(scalar_parameter_error(agg));
            };
            select_k(series, &groups, grid, &k, op == T_TOPK)
        }
        T_COUNT_VALUES => {
            let Some(Val::String(label)) = param else {
                return Err(QueryError::Execution(format!(
                    "expected a string parameter in {agg}"
                )));
            };
            count_values(&series, &keys, &groups, grid, &label)?
        }
        _ => {
            let q = match (op, param) {
                (T_QUANTILE, Some(Val::Scalar(q))) => q,
                (T_QUANTILE, _) => return Err(scalar_parameter_error(agg)),
                _ => Vec::new(),
            };
            let fold = fold_for(op).ok_or_else(|| {
                QueryError::BadData(format!("aggregation {} is not supported by sonde", agg.op))
            })?;
            let mut values = Vec::new();
            keys.into_iter()
                .zip(&groups)
                .map(|(labels, members)| Series {
                    labels,
                    values: (0..grid.len)
                        .map(|step| {
                            values.clear();
                            values.extend(members.iter().filter_map(|&i| series[i].values[step]));
                            (!values.is_empty())
                                .then(|| fold(&mut values, q.get(step).copied().unwrap_or(0.0)))
                        })
                        .collect(),
                })
                .collect()
        }
    };
    ev.account(out.iter().map(|s| s.values.iter().flatten().count()).sum())?;
    Ok(Val::Vector(out))
}

fn scalar_parameter_error(agg: &AggregateExpr) -> QueryError {
    QueryError::Execution(format!("expected a scalar parameter in {agg}"))
}

/// Each group's output labels and member series, in order of first member.
fn group(series: &[Series], modifier: Option<&LabelModifier>) -> (Vec<Labels>, Vec<Vec<usize>>) {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut keys = Vec::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let key = match modifier {
            Some(LabelModifier::Include(by)) => Labels::new(
                s.labels
                    .iter()
                    .filter(|(n, _)| by.labels.iter().any(|b| b == n)),
            ),
            Some(LabelModifier::Exclude(without)) => Labels::new(
                s.labels
                    .iter()
                    .filter(|(n, _)| *n != METRIC_NAME && !without.labels.iter().any(|w| w == n)),
            ),
            None => Labels::default(),
        };
        let slot = *index.entry(key.clone()).or_insert_with(|| {
            keys.push(key);
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[slot].push(i);
    }
    (keys, groups)
}

type Fold = fn(&mut Vec<f64>, f64) -> f64;

fn fold_for(op: u16) -> Option<Fold> {
    Some(match op {
        T_SUM => |v, _| v.iter().sum(),
        T_AVG => |v, _| mean(v.iter().copied()),
        T_COUNT => |v, _| v.len() as f64,
        T_GROUP => |_, _| 1.0,
        // A NaN is replaced by any later value, as in Prometheus.
        T_MIN => |v, _| {
            v.iter()
                .skip(1)
                .fold(v[0], |m, &x| if x < m || m.is_nan() { x } else { m })
        },
        T_MAX => |v, _| {
            v.iter()
                .skip(1)
                .fold(v[0], |m, &x| if x > m || m.is_nan() { x } else { m })
        },
        T_STDDEV => |v, _| variance(v.iter().copied()).sqrt(),
        T_STDVAR => |v, _| variance(v.iter().copied()),
        T_QUANTILE => |v, q| quantile(q, v),
        _ => return None,
    })
}

/// `topk`/`bottomk`: the input series themselves, each kept at the steps
/// where it is among its group's k largest (smallest). Which of equal
/// values survive depends on the order series arrive in and on the shape of
/// the binary heap Prometheus keeps them in (pop the root, push the new
/// one), so the same heap is kept here.
fn select_k(
    series: Vec<Series>,
    groups: &[Vec<usize>],
    grid: &Grid,
    k: &[f64],
    top: bool,
) -> Vec<Series> {
    let mut keep = vec![vec![false; grid.len]; series.len()];
    let mut heap = KHeap {
        items: Vec::new(),
        top,
    };
    for members in groups {
        for step in 0..grid.len {
            let want = k[step];
            if want.is_nan() || want < 1.0 {
                continue;
            }
            heap.items.clear();
            for &i in members {
                let Some(v) = series[i].values[step] else {
                    continue;
                };
                if (heap.items.len() as f64) < want || heap.beaten_by(v) {
                    if (heap.items.len() as f64) >= want {
                        if heap.items.len() == 1 {
                            heap.items[0] = (i, v);
                            continue;
                        }
                        heap.pop();
                    }
                    heap.push((i, v));
                }
            }
            for &(i, _) in &heap.items {
                keep[i][step] = true;
            }
        }
    }
    // An instant query shows the order: each group's survivors from the
    // strongest down, NaN last, groups in order of appearance.
    let order: Vec<usize> = if grid.len == 1 {
        let mut order = Vec::new();
        for members in groups {
            let mut kept: Vec<usize> = members.iter().copied().filter(|&i| keep[i][0]).collect();
            kept.sort_by(|&a, &b| {
                let (x, y) = (
                    series[a].values[0].unwrap_or(f64::NAN),
                    series[b].values[0].unwrap_or(f64::NAN),
                );
                match (x.is_nan(), y.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ if top => y.total_cmp(&x),
                    _ => x.total_cmp(&y),
                }
            });
            order.extend(kept);
        }
        order
    } else {
        (0..series.len()).collect()
    };
    let mut slots: Vec<Option<Series>> = series
        .into_iter()
        .zip(keep)
        .map(|(mut s, keep)| {
            for (v, kept) in s.values.iter_mut().zip(&keep) {
                if !kept {
                    *v = None;
                }
            }
            s.values.iter().any(Option::is_some).then_some(s)
        })
        .collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// A binary heap whose root is the weakest kept value (the smallest for
/// topk, the largest for bottomk; NaN is weaker than any number).
struct KHeap {
    items: Vec<(usize, f64)>,
    top: bool,
}

impl KHeap {
    fn weaker(&self, a: usize, b: usize) -> bool {
        let (x, y) = (self.items[a].1, self.items[b].1);
        x.is_nan() || if self.top { x < y } else { x > y }
    }

    /// Whether `v` displaces the root; a NaN root is displaced by anything.
    fn beaten_by(&self, v: f64) -> bool {
        let root = self.items[0].1;
        (if self.top { root < v } else { root > v }) || root.is_nan()
    }

    /// Removes the root: the last item takes its place and sinks.
    fn pop(&mut self) {
        let last = self.items.len() - 1;
        self.items.swap(0, last);
        self.items.pop();
        self.down(0);
    }

    fn push(&mut self, item: (usize, f64)) {
        self.items.push(item);
        let mut j = self.items.len() - 1;
        while j > 0 {
            let parent = (j - 1) / 2;
            if !self.weaker(j, parent) {
                break;
            }
            self.items.swap(parent, j);
            j = parent;
        }
    }

    fn down(&mut self, mut i: usize) {
        let n = self.items.len();
        loop {
            let left = 2 * i + 1;
            if left >= n {
                break;
            }
            let mut j = left;
            if left + 1 < n && self.weaker(left + 1, left) {
                j = left + 1;
            }
            if !self.weaker(j, i) {
                break;
            }
            self.items.swap(i, j);
            i = j;
        }
    }
}

/// `count_values`: per group, how many series have each value, the value
/// written into `label` as Go formats it.
fn count_values(
    series: &[Series],
    keys: &[Labels],
    groups: &[Vec<usize>],
    grid: &Grid,
    label: &str,
) -> Result<Vec<Series>, QueryError> {
    if !label
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(QueryError::Execution(format!(
            "invalid label name {label:?}"
        )));
    }
    let mut out: Vec<Series> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for (key, members) in keys.iter().zip(groups) {
        for step in 0..grid.len {
            for &i in members {
                let Some(v) = series[i].values[step] else {
                    continue;
                };
                let mut labels = key.clone();
                labels.set(label.to_string(), format_go_float(v));
                let slot = *index.entry(labels.clone()).or_insert_with(|| {
                    out.push(Series {
                        labels,
                        values: vec![None; grid.len],
                    });
                    out.len() - 1
                });
                let count = &mut out[slot].values[step];
                *count = Some(count.unwrap_or(0.0) + 1.0);
            }
        }
    }
    Ok(out)
}

/// A float as Go's strconv.FormatFloat(v, 'f', -1, 64) writes it.
pub fn format_go_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}
