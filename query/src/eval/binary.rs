//! Binary operators: arithmetic, comparisons (filtering or `bool`), set operators, and vector
//! matching with `on`/`ignoring`/`group_left`/`group_right`, evaluated step by step.

use std::collections::HashMap;

use fleetscope_store::Labels;
use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::{Evaluator, merge_same_labels};
use crate::error::{Result, bad, exec};
use crate::value::{Grid, StepSeries, Value};

impl Evaluator<'_> {
    pub(super) async fn binary(&self, b: &BinaryExpr, grid: Grid) -> Result<Value> {
        let op = b.op.to_string().to_lowercase();
        let lhs = self.eval(&b.lhs, grid).await?;
        let rhs = self.eval(&b.rhs, grid).await?;
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let comparison = is_comparison(&op);
        match (lhs, rhs) {
            (Value::Scalar(l), Value::Scalar(r)) => {
                let out = l
                    .iter()
                    .zip(&r)
                    .map(|(&a, &c)| {
                        let (v, keep) = apply(&op, a, c)?;
                        Ok(if comparison {
                            if keep { 1.0 } else { 0.0 }
                        } else {
                            v
                        })
                    })
                    .collect::<Result<_>>()?;
                Ok(Value::Scalar(out))
            }
            (Value::Vector(v), Value::Scalar(s)) => vector_scalar(&op, v, &s, false, return_bool),
            (Value::Scalar(s), Value::Vector(v)) => vector_scalar(&op, v, &s, true, return_bool),
            (Value::Vector(l), Value::Vector(r)) => match op.as_str() {
                "and" | "or" | "unless" => set_op(&op, l, r, b.modifier.as_ref(), grid.len()),
                _ => vector_vector(&op, l, r, b.modifier.as_ref(), return_bool, grid.len()),
            },
            _ => Err(bad(format!("operator {op} is not defined on strings"))),
        }
    }
}

fn is_comparison(op: &str) -> bool {
    matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=")
}

/// `(value, keep)` of `a op b`, as Prometheus's `vectorElemBinop`.
fn apply(op: &str, a: f64, b: f64) -> Result<(f64, bool)> {
    Ok(match op {
        "+" => (a + b, true),
        "-" => (a - b, true),
        "*" => (a * b, true),
        "/" => (a / b, true),
        "%" => (a % b, true),
        "^" => (a.powf(b), true),
        "atan2" => (a.atan2(b), true),
        "==" => (a, a == b),
        "!=" => (a, a != b),
        ">" => (a, a > b),
        "<" => (a, a < b),
        ">=" => (a, a >= b),
        "<=" => (a, a <= b),
        other => return Err(bad(format!("operator {other} not allowed here"))),
    })
}

fn vector_scalar(
    op: &str,
    v: Vec<StepSeries>,
    s: &[f64],
    swap: bool,
    return_bool: bool,
) -> Result<Value> {
    let comparison = is_comparison(op);
    let mut out = Vec::with_capacity(v.len());
    for series in v {
        let mut vals = Vec::with_capacity(series.vals.len());
        for (i, x) in series.vals.iter().enumerate() {
            let Some(x) = *x else {
                vals.push(None);
                continue;
            };
            let (a, b) = if swap { (s[i], x) } else { (x, s[i]) };
            let (mut value, keep) = apply(op, a, b)?;
            // The vector's value is the output of a filtering comparison, whichever side it is on.
            if comparison && swap {
                value = x;
            }
            vals.push(match (comparison, return_bool) {
                (true, true) => Some(if keep { 1.0 } else { 0.0 }),
                (true, false) => keep.then_some(value),
                (false, _) => Some(value),
            });
        }
        let labels = if !comparison || return_bool {
            series.labels.without_name()
        } else {
            series.labels
        };
        out.push(StepSeries { labels, vals });
    }
    let out: Vec<StepSeries> = out
        .into_iter()
        .filter(|s| s.vals.iter().any(Option::is_some))
        .collect();
    Ok(Value::Vector(merge_same_labels(out)?))
}

/// The matching signature of a series.
fn signature(labels: &Labels, matching: Option<&LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => labels.keep(&on.labels),
        Some(LabelModifier::Exclude(ignoring)) => labels.remove(&ignoring.labels).without_name(),
        None => labels.without_name(),
    }
}

fn vector_vector(
    op: &str,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    modifier: Option<&BinModifier>,
    return_bool: bool,
    n: usize,
) -> Result<Value> {
    let card = modifier.map_or(VectorMatchCardinality::OneToOne, |m| m.card.clone());
    let matching = modifier.and_then(|m| m.matching.as_ref());
    let comparison = is_comparison(op);
    // group_right: the right side is the "many" side; evaluate as group_left with sides swapped.
    let swapped = matches!(card, VectorMatchCardinality::OneToMany(_));
    let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    // Fill modifiers (`promql-binop-fill-modifiers`): as in Prometheus, whose engine swaps the
    // sides of a group_right before filling, the left fill value fills the many side and the
    // right one the one side.
    let fill = modifier.map(|m| &m.fill_values);
    let (fill_many, fill_one) = (fill.and_then(|f| f.lhs), fill.and_then(|f| f.rhs));
    let include: Vec<String> = match &card {
        VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => {
            l.labels.clone()
        }
        _ => vec![],
    };
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    let many_sigs: Vec<Labels> = many
        .iter()
        .map(|s| signature(&s.labels, matching))
        .collect();
    let one_sigs: Vec<Labels> = one.iter().map(|s| signature(&s.labels, matching)).collect();

    let mut out: HashMap<Labels, Vec<Option<f64>>> = HashMap::new();
    let mut order: Vec<Labels> = Vec::new();
    // Output labels per (many, one) pair, computed once (`None`: that side filled in).
    let mut result_labels: HashMap<(Option<usize>, Option<usize>), Labels> = HashMap::new();
    for i in 0..n {
        let mut right: HashMap<&Labels, usize> = HashMap::new();
        for (j, s) in one.iter().enumerate() {
            if s.vals[i].is_none() {
                continue;
            }
            if let Some(prev) = right.insert(&one_sigs[j], j) {
                let side = if swapped { "left" } else { "right" };
                return Err(exec(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    one_sigs[j], one[prev].labels, s.labels
                )));
            }
        }
        // The pairs of this step: many side, one side (`None`: filled in), their values.
        let mut pairs: Vec<(Option<usize>, Option<usize>, f64, f64)> = Vec::new();
        let mut matched_one: HashMap<usize, usize> = HashMap::new();
        for (k, s) in many.iter().enumerate() {
            let Some(mv) = s.vals[i] else { continue };
            match right.get(&many_sigs[k]) {
                Some(&j) => {
                    if one_to_one && matched_one.contains_key(&j) {
                        return Err(exec(
                            "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                        ));
                    }
                    matched_one.insert(j, k);
                    if let Some(ov) = one[j].vals[i] {
                        pairs.push((Some(k), Some(j), mv, ov));
                    }
                }
                None => {
                    if let Some(f) = fill_one {
                        pairs.push((Some(k), None, mv, f));
                    }
                }
            }
        }
        if let Some(f) = fill_many {
            let mut unmatched: Vec<usize> = right
                .values()
                .copied()
                .filter(|j| !matched_one.contains_key(j))
                .collect();
            unmatched.sort_unstable();
            for j in unmatched {
                if let Some(ov) = one[j].vals[i] {
                    pairs.push((None, Some(j), f, ov));
                }
            }
        }
        let mut seen_out: HashMap<Labels, ()> = HashMap::new();
        for (k, j, mv, ov) in pairs {
            let (l, r) = if swapped { (ov, mv) } else { (mv, ov) };
            let (mut value, keep) = apply(op, l, r)?;
            if comparison {
                if return_bool {
                    value = if keep { 1.0 } else { 0.0 };
                } else if !keep {
                    continue;
                } else {
                    value = l;
                }
            }
            let labels = result_labels
                .entry((k, j))
                .or_insert_with(|| match (k, j) {
                    (Some(k), j) => {
                        let mut labels = many[k].labels.clone();
                        if !comparison || return_bool {
                            labels = labels.without_name();
                        }
                        if one_to_one {
                            labels = match matching {
                                Some(LabelModifier::Include(on)) => labels.keep(&on.labels),
                                Some(LabelModifier::Exclude(ignoring)) => {
                                    labels.remove(&ignoring.labels)
                                }
                                None => labels,
                            };
                        }
                        // A filled-in one side has no labels to bring.
                        if let Some(j) = j {
                            for name in &include {
                                labels = labels.with(name, one[j].labels.get(name).unwrap_or(""));
                            }
                        }
                        labels
                    }
                    // A filled-in many side: the match group's labels stand for it.
                    (None, Some(j)) => one_sigs[j].clone(),
                    (None, None) => Labels::empty(),
                })
                .clone();
            if seen_out.insert(labels.clone(), ()).is_some() {
                return Err(exec(
                    "multiple matches for labels: grouping labels must ensure unique matches",
                ));
            }
            let vals = out.entry(labels.clone()).or_insert_with(|| {
                order.push(labels);
                vec![None; n]
            });
            vals[i] = Some(value);
        }
    }
    let series = order
        .into_iter()
        .map(|labels| {
            let vals = out.remove(&labels).unwrap_or_default();
            StepSeries { labels, vals }
        })
        .collect();
    Ok(Value::Vector(series))
}

fn set_op(
    op: &str,
    lhs: Vec<StepSeries>,
    rhs: Vec<StepSeries>,
    modifier: Option<&BinModifier>,
    n: usize,
) -> Result<Value> {
    let matching = modifier.and_then(|m| m.matching.as_ref());
    let lsigs: Vec<Labels> = lhs.iter().map(|s| signature(&s.labels, matching)).collect();
    let rsigs: Vec<Labels> = rhs.iter().map(|s| signature(&s.labels, matching)).collect();
    let mut left = lhs;
    let mut right = rhs;
    for i in 0..n {
        let present =
            |series: &[StepSeries], sigs: &[Labels]| -> std::collections::HashSet<Labels> {
                series
                    .iter()
                    .zip(sigs)
                    .filter(|(s, _)| s.vals[i].is_some())
                    .map(|(_, sig)| sig.clone())
                    .collect()
            };
        match op {
            "and" => {
                let r = present(&right, &rsigs);
                for (s, sig) in left.iter_mut().zip(&lsigs) {
                    if !r.contains(sig) {
                        s.vals[i] = None;
                    }
                }
            }
            "unless" => {
                let r = present(&right, &rsigs);
                for (s, sig) in left.iter_mut().zip(&lsigs) {
                    if r.contains(sig) {
                        s.vals[i] = None;
                    }
                }
            }
            _ => {
                let l = present(&left, &lsigs);
                for (s, sig) in right.iter_mut().zip(&rsigs) {
                    if l.contains(sig) {
                        s.vals[i] = None;
                    }
                }
            }
        }
    }
    let mut out: Vec<StepSeries> = left;
    if op == "or" {
        out.extend(right);
    }
    let out: Vec<StepSeries> = out
        .into_iter()
        .filter(|s| s.vals.iter().any(Option::is_some))
        .collect();
    Ok(Value::Vector(merge_same_labels(out)?))
}
