//! Binary operators: arithmetic, comparisons (filtering, or 0/1 with
//! `bool`) and the set operators, between scalars and vectors, with vector
//! matching by `on`/`ignoring` and `group_left`/`group_right`.
//!
//! Matching signatures depend only on labels, so they are computed once per
//! series; the cardinality rules (one side unique per match group, one
//! result per group in many-to-one) are checked at every step, because
//! Prometheus checks them per evaluation instant.

use std::collections::HashMap;

use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB,
};
use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::eval::{drop_metric_name, merge_same_labels, Evaluator, Grid, Series, Val};
use super::QueryError;
use crate::model::{Labels, METRIC_NAME};

pub(super) fn eval(ev: &mut Evaluator, expr: &BinaryExpr, grid: &Grid) -> Result<Val, QueryError> {
    let op = expr.op.id();
    let default_modifier = BinModifier::default();
    let modifier = expr.modifier.as_ref().unwrap_or(&default_modifier);
    let return_bool = modifier.return_bool;
    let lhs = ev.eval(&expr.lhs, grid)?;
    let rhs = ev.eval(&expr.rhs, grid)?;
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => Ok(Val::Scalar(
            l.into_iter()
                .zip(r)
                .map(|(l, r)| {
                    let (value, keep) = apply(op, l, r);
                    if is_comparison(op) {
                        f64::from(u8::from(keep))
                    } else {
                        value
                    }
                })
                .collect(),
        )),
        (Val::Vector(v), Val::Scalar(s)) => vector_scalar(op, v, &s, false, return_bool),
        (Val::Scalar(s), Val::Vector(v)) => vector_scalar(op, v, &s, true, return_bool),
        (Val::Vector(l), Val::Vector(r)) => {
            if matches!(op, T_LAND | T_LOR | T_LUNLESS) {
                set_operation(op, l, r, modifier.matching.as_ref())
            } else {
                vector_vector(op, l, r, modifier, grid)
            }
        }
        _ => Err(QueryError::Execution(format!(
            "binary expression must contain only scalar and instant vector types: {expr}"
        ))),
    }
}

fn is_comparison(op: u16) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

/// Arithmetic drops the metric name; a filtering comparison keeps it.
fn drops_metric_name(op: u16) -> bool {
    matches!(op, T_ADD | T_SUB | T_MUL | T_DIV | T_POW | T_MOD)
}

/// (value, keep): arithmetic always keeps; a comparison keeps the left
/// value when it holds.
fn apply(op: u16, l: f64, r: f64) -> (f64, bool) {
    match op {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_POW => (l.powf(r), true),
        T_MOD => (l % r, true),
        T_ATAN2 => (l.atan2(r), true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        _ => (f64::NAN, false),
    }
}

fn vector_scalar(
    op: u16,
    series: Vec<Series>,
    scalar: &[f64],
    scalar_on_left: bool,
    return_bool: bool,
) -> Result<Val, QueryError> {
    let drop_name = drops_metric_name(op) || return_bool;
    let out = series
        .into_iter()
        .map(|s| {
            let values = s
                .values
                .into_iter()
                .zip(scalar)
                .map(|(v, &k)| {
                    let v = v?;
                    let (l, r) = if scalar_on_left { (k, v) } else { (v, k) };
                    let (mut value, keep) = apply(op, l, r);
                    // A comparison's result is the vector's value, whichever side.
                    if is_comparison(op) {
                        value = v;
                    }
                    if return_bool {
                        Some(f64::from(u8::from(keep)))
                    } else {
                        keep.then_some(value)
                    }
                })
                .collect();
            let labels = if drop_name {
                drop_metric_name(&s.labels)
            } else {
                s.labels
            };
            Series { labels, values }
        })
        .collect();
    Ok(Val::Vector(merge_same_labels(out)?))
}

/// The labels two series must share to match, as a comparable key.
fn signature(labels: &Labels, matching: Option<&LabelModifier>) -> String {
    let mut key = String::new();
    for (name, value) in labels.iter() {
        let included = match matching {
            Some(LabelModifier::Include(on)) => on.labels.iter().any(|l| l == name),
            Some(LabelModifier::Exclude(ignoring)) => {
                name != METRIC_NAME && !ignoring.labels.iter().any(|l| l == name)
            }
            None => name != METRIC_NAME,
        };
        if included {
            key.push_str(name);
            key.push('\u{ff}');
            key.push_str(value);
            key.push('\u{ff}');
        }
    }
    key
}

/// The labels a signature is made of, as Go prints a label set.
fn match_group(labels: &Labels, matching: Option<&LabelModifier>) -> String {
    let kept: Vec<String> = labels
        .iter()
        .filter(|(name, _)| match matching {
            Some(LabelModifier::Include(on)) => on.labels.iter().any(|l| l == name),
            Some(LabelModifier::Exclude(ignoring)) => {
                *name != METRIC_NAME && !ignoring.labels.iter().any(|l| l == name)
            }
            None => *name != METRIC_NAME,
        })
        .map(|(n, v)| format!("{n}={v:?}"))
        .collect();
    format!("{{{}}}", kept.join(", "))
}

fn go_labels(labels: &Labels) -> String {
    let pairs: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

fn by_signature(
    series: &[Series],
    matching: Option<&LabelModifier>,
) -> HashMap<String, Vec<usize>> {
    let mut map: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, s) in series.iter().enumerate() {
        map.entry(signature(&s.labels, matching))
            .or_default()
            .push(i);
    }
    map
}

fn set_operation(
    op: u16,
    lhs: Vec<Series>,
    rhs: Vec<Series>,
    matching: Option<&LabelModifier>,
) -> Result<Val, QueryError> {
    let present_at = |members: Option<&Vec<usize>>, side: &[Series], step: usize| {
        members.is_some_and(|m| m.iter().any(|&i| side[i].values[step].is_some()))
    };
    match op {
        T_LAND | T_LUNLESS => {
            let rhs_sigs = by_signature(&rhs, matching);
            let want = op == T_LAND;
            let out = lhs
                .into_iter()
                .filter_map(|mut s| {
                    let members = rhs_sigs.get(&signature(&s.labels, matching));
                    for (step, v) in s.values.iter_mut().enumerate() {
                        if v.is_some() && present_at(members, &rhs, step) != want {
                            *v = None;
                        }
                    }
                    s.values.iter().any(Option::is_some).then_some(s)
                })
                .collect();
            Ok(Val::Vector(out))
        }
        _ => {
            let lhs_sigs = by_signature(&lhs, matching);
            let mut extra = Vec::new();
            for mut s in rhs {
                let members = lhs_sigs.get(&signature(&s.labels, matching));
                for (step, v) in s.values.iter_mut().enumerate() {
                    if v.is_some() && present_at(members, &lhs, step) {
                        *v = None;
                    }
                }
                if s.values.iter().any(Option::is_some) {
                    extra.push(s);
                }
            }
            let mut out = lhs;
            out.extend(extra);
            Ok(Val::Vector(merge_same_labels(out)?))
        }
    }
}

fn vector_vector(
    op: u16,
    lhs: Vec<Series>,
    rhs: Vec<Series>,
    modifier: &BinModifier,
    grid: &Grid,
) -> Result<Val, QueryError> {
    let matching = modifier.matching.as_ref();
    let one_to_many = matches!(modifier.card, VectorMatchCardinality::OneToMany(_));
    let one_to_one = matches!(modifier.card, VectorMatchCardinality::OneToOne);
    let include = modifier.card.labels();
    // The "many" side is walked, the "one" side looked up.
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let one_sigs = by_signature(&one, matching);
    for members in one_sigs.values().filter(|m| m.len() > 1) {
        for step in 0..grid.len {
            let mut present = members.iter().filter(|&&i| one[i].values[step].is_some());
            if let (Some(&a), Some(&b)) = (present.next(), present.next()) {
                let side = if one_to_many { "left" } else { "right" };
                return Err(QueryError::Execution(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    match_group(&one[b].labels, matching),
                    go_labels(&one[b].labels),
                    go_labels(&one[a].labels),
                )));
            }
        }
    }
    let mut out: Vec<Series> = Vec::new();
    let mut out_index: HashMap<Labels, usize> = HashMap::new();
    let mut pair_index: HashMap<(usize, usize), usize> = HashMap::new();
    // One-to-one: which match groups already produced a value at each step.
    let mut matched: HashMap<String, Vec<bool>> = HashMap::new();
    for (mi, m) in many.iter().enumerate() {
        let sig = signature(&m.labels, matching);
        let Some(members) = one_sigs.get(&sig) else {
            continue;
        };
        for step in 0..grid.len {
            let Some(mv) = m.values[step] else {
                continue;
            };
            let Some((oi, ov)) = members
                .iter()
                .find_map(|&i| one[i].values[step].map(|v| (i, v)))
            else {
                continue;
            };
            let (l, r) = if one_to_many { (ov, mv) } else { (mv, ov) };
            let (value, keep) = apply(op, l, r);
            let value = if modifier.return_bool {
                f64::from(u8::from(keep))
            } else if keep {
                value
            } else {
                continue;
            };
            if one_to_one {
                let seen = matched
                    .entry(sig.clone())
                    .or_insert_with(|| vec![false; grid.len]);
                if seen[step] {
                    return Err(QueryError::Execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                    ));
                }
                seen[step] = true;
            }
            let slot = match pair_index.get(&(mi, oi)) {
                Some(&slot) => slot,
                None => {
                    let labels = result_labels(&m.labels, &one[oi].labels, op, modifier, include);
                    let slot = *out_index.entry(labels.clone()).or_insert_with(|| {
                        out.push(Series {
                            labels,
                            values: vec![None; grid.len],
                        });
                        out.len() - 1
                    });
                    pair_index.insert((mi, oi), slot);
                    slot
                }
            };
            if out[slot].values[step].is_some() {
                return Err(QueryError::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                        .into(),
                ));
            }
            out[slot].values[step] = Some(value);
        }
    }
    Ok(Val::Vector(out))
}

/// The result's labels: the "many" side's, without the metric name for
/// arithmetic and `bool`, cut to the matching labels in one-to-one
/// matching, plus the `group_x` labels taken from the "one" side.
fn result_labels(
    many: &Labels,
    one: &Labels,
    op: u16,
    modifier: &BinModifier,
    include: Option<&promql_parser::label::Labels>,
) -> Labels {
    let drop_name = drops_metric_name(op) || modifier.return_bool;
    let one_to_one = matches!(modifier.card, VectorMatchCardinality::OneToOne);
    let mut labels = Labels::new(many.iter().filter(|(name, _)| {
        if drop_name && *name == METRIC_NAME {
            return false;
        }
        if !one_to_one {
            return true;
        }
        match &modifier.matching {
            Some(LabelModifier::Include(on)) => on.labels.iter().any(|l| l == name),
            Some(LabelModifier::Exclude(ignoring)) => !ignoring.labels.iter().any(|l| l == name),
            None => true,
        }
    }));
    if let Some(include) = include {
        for name in &include.labels {
            labels.set(name.clone(), one.get(name).unwrap_or("").to_string());
        }
    }
    labels
}
