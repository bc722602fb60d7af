//! Aggregation operators (`sum by (...)`, `topk`, ...) and `histogram_quantile`, step by step.

use std::collections::HashMap;

use fleetscope_store::Labels;
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};

use super::functions::quantile;
use super::{Evaluator, kahan_inc, merge_same_labels};
use crate::error::{Result, bad, exec};
use crate::plan::AggOp;
use crate::value::{Grid, StepSeries, Value};

impl Evaluator<'_> {
    pub(super) async fn aggregate(&self, agg: &AggregateExpr, grid: Grid) -> Result<Value> {
        let name = agg.op.to_string().to_lowercase();
        let op = AggOp::parse(&name)
            .ok_or_else(|| bad(format!("aggregation {name}() is not supported")))?;
        let input = self.vector_arg(&agg.expr, grid).await?;
        let n = grid.len();
        let param = || {
            agg.param
                .as_deref()
                .ok_or_else(|| bad(format!("{name} needs a parameter")))
        };
        match op {
            AggOp::Topk | AggOp::Bottomk => {
                let k = self.scalar_arg(param()?, grid, &name).await?;
                Ok(Value::Vector(top_k(
                    &input,
                    &k,
                    &agg.modifier,
                    op == AggOp::Topk,
                    n,
                )?))
            }
            AggOp::CountValues => {
                let label = match param()? {
                    Expr::StringLiteral(s) => s.val.clone(),
                    _ => return Err(bad("count_values needs a string parameter")),
                };
                if label.is_empty() {
                    return Err(exec(format!("invalid label name {label:?}")));
                }
                let mut out: HashMap<Labels, Vec<Option<f64>>> = HashMap::new();
                for s in &input {
                    let key = group_key(&s.labels, &agg.modifier);
                    for (i, v) in s.vals.iter().enumerate() {
                        if let Some(v) = v {
                            let vals = out
                                .entry(key.with(&label, &crate::api::json::format_value(*v)))
                                .or_insert_with(|| vec![None; n]);
                            vals[i] = Some(vals[i].unwrap_or(0.0) + 1.0);
                        }
                    }
                }
                Ok(Value::Vector(
                    out.into_iter()
                        .map(|(labels, vals)| StepSeries { labels, vals })
                        .collect(),
                ))
            }
            AggOp::Quantile => {
                let q = self.scalar_arg(param()?, grid, "quantile").await?;
                let groups = group(&input, &agg.modifier);
                let out = groups
                    .into_iter()
                    .map(|(labels, members)| {
                        let vals = (0..n)
                            .map(|i| {
                                let mut vs: Vec<f64> =
                                    members.iter().filter_map(|s| s.vals[i]).collect();
                                (!vs.is_empty()).then(|| quantile(q[i], &mut vs))
                            })
                            .collect();
                        StepSeries { labels, vals }
                    })
                    .collect();
                Ok(Value::Vector(out))
            }
            AggOp::Sum
            | AggOp::Avg
            | AggOp::Count
            | AggOp::Group
            | AggOp::Min
            | AggOp::Max
            | AggOp::Stddev
            | AggOp::Stdvar => {
                let groups = group(&input, &agg.modifier);
                let out = groups
                    .into_iter()
                    .map(|(labels, members)| {
                        let vals = (0..n)
                            .map(|i| {
                                let mut it = members.iter().filter_map(|s| s.vals[i]).peekable();
                                it.peek()?;
                                Some(fold(op, it))
                            })
                            .collect();
                        StepSeries { labels, vals }
                    })
                    .filter(|s| s.vals.iter().any(Option::is_some))
                    .collect();
                Ok(Value::Vector(out))
            }
        }
    }
}

/// One aggregation over the (non-empty) values of a group at one step.
fn fold(op: AggOp, values: impl Iterator<Item = f64>) -> f64 {
    match op {
        AggOp::Sum => {
            let (s, c) = values.fold((0.0, 0.0), |(s, c), f| kahan_inc(f, s, c));
            s + c
        }
        AggOp::Avg => super::functions::avg(values),
        AggOp::Count => values.count() as f64,
        AggOp::Group => 1.0,
        AggOp::Min => values
            .reduce(|m, f| if m > f || m.is_nan() { f } else { m })
            .unwrap_or(f64::NAN),
        AggOp::Max => values
            .reduce(|m, f| if m < f || m.is_nan() { f } else { m })
            .unwrap_or(f64::NAN),
        AggOp::Stddev | AggOp::Stdvar => {
            let (mut count, mut mean, mut var) = (0.0, 0.0, 0.0);
            for f in values {
                count += 1.0;
                let delta = f - mean;
                mean += delta / count;
                var += delta * (f - mean);
            }
            let v = var / count;
            if op == AggOp::Stddev { v.sqrt() } else { v }
        }
        _ => f64::NAN,
    }
}

/// The labels of the output series of the group a series belongs to.
pub(crate) fn group_key(labels: &Labels, modifier: &Option<LabelModifier>) -> Labels {
    match modifier {
        None => Labels::empty(),
        Some(LabelModifier::Include(by)) => labels.keep(&by.labels),
        Some(LabelModifier::Exclude(without)) => labels.remove(&without.labels).without_name(),
    }
}

/// Series grouped by output labels, groups in order of first appearance.
fn group<'s>(
    input: &'s [StepSeries],
    modifier: &Option<LabelModifier>,
) -> Vec<(Labels, Vec<&'s StepSeries>)> {
    let mut order: Vec<(Labels, Vec<&StepSeries>)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for s in input {
        let key = group_key(&s.labels, modifier);
        match index.get(&key) {
            Some(&i) => order[i].1.push(s),
            None => {
                index.insert(key.clone(), order.len());
                order.push((key, vec![s]));
            }
        }
    }
    order
}

/// `topk`/`bottomk`: per step and group, the k largest (smallest) values; NaN ranks last.
fn top_k(
    input: &[StepSeries],
    k: &[f64],
    modifier: &Option<LabelModifier>,
    top: bool,
    n: usize,
) -> Result<Vec<StepSeries>> {
    let groups = group(input, modifier);
    let mut out: Vec<StepSeries> = input
        .iter()
        .map(|s| StepSeries {
            labels: s.labels.clone(),
            vals: vec![None; n],
        })
        .collect();
    let pos: HashMap<*const StepSeries, usize> = input
        .iter()
        .enumerate()
        .map(|(i, s)| (s as *const _, i))
        .collect();
    for (i, &k) in k.iter().enumerate().take(n) {
        if k.is_nan() {
            return Err(exec("Parameter value is NaN"));
        }
        let want = if k >= 1.0 {
            k.min(input.len() as f64) as usize
        } else {
            0
        };
        if want == 0 {
            continue;
        }
        for (_, members) in &groups {
            let mut present: Vec<(&StepSeries, f64)> = members
                .iter()
                .filter_map(|s| s.vals[i].map(|v| (*s, v)))
                .collect();
            present.sort_by(|a, b| rank(a.1, b.1, top));
            for (s, v) in present.into_iter().take(want) {
                out[pos[&(s as *const _)]].vals[i] = Some(v);
            }
        }
    }
    Ok(out
        .into_iter()
        .filter(|s| s.vals.iter().any(Option::is_some))
        .collect())
}

/// Order for topk (descending) or bottomk (ascending), NaN last either way.
pub(crate) fn rank(a: f64, b: f64, descending: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Equal,
        (true, false) => Greater,
        (false, true) => Less,
        _ if descending => b.partial_cmp(&a).unwrap_or(Equal),
        _ => a.partial_cmp(&b).unwrap_or(Equal),
    }
}

/// `histogram_quantile` over classic buckets: series grouped by labels without `le`.
pub(crate) fn histogram_quantile(
    q: &[f64],
    input: Vec<StepSeries>,
    n: usize,
) -> Result<Vec<StepSeries>> {
    let mut groups: Vec<(Labels, Vec<(f64, StepSeries)>)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for s in input {
        let Some(le) = s.labels.get("le").and_then(parse_le) else {
            continue;
        };
        let key = s.labels.remove(&["le".to_string()]).without_name();
        match index.get(&key) {
            Some(&i) => groups[i].1.push((le, s)),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, vec![(le, s)]));
            }
        }
    }
    let out = groups
        .into_iter()
        .map(|(labels, buckets)| {
            let vals = (0..n)
                .map(|i| {
                    let mut bs: Vec<(f64, f64)> = buckets
                        .iter()
                        .filter_map(|(le, s)| s.vals[i].map(|c| (*le, c)))
                        .collect();
                    (!bs.is_empty()).then(|| bucket_quantile(q[i], &mut bs))
                })
                .collect();
            StepSeries { labels, vals }
        })
        .filter(|s| s.vals.iter().any(Option::is_some))
        .collect();
    merge_same_labels(out)
}

fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// Prometheus's `BucketQuantile` on `(upper bound, cumulative count)` pairs.
fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Coalesce equal upper bounds.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(le, c) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == le => last.1 += c,
            _ => merged.push((le, c)),
        }
    }
    let mut b = merged;
    // Force monotonicity; ignore differences below 1e-12 relative.
    let mut prev = b[0].1;
    for bucket in b.iter_mut().skip(1) {
        let curr = bucket.1;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, 1e-12) || curr < prev {
            bucket.1 = prev;
            continue;
        }
        prev = curr;
    }
    if b.len() < 2 {
        return f64::NAN;
    }
    let observations = b[b.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let idx = b[..b.len() - 1].partition_point(|x| x.1 < rank);
    if idx == b.len() - 1 {
        return b[b.len() - 2].0;
    }
    if idx == 0 && b[0].0 <= 0.0 {
        return b[0].0;
    }
    let (mut start, end, mut count) = (0.0, b[idx].0, b[idx].1);
    if idx > 0 {
        start = b[idx - 1].0;
        count -= b[idx - 1].1;
        rank -= b[idx - 1].1;
    }
    start + (end - start) * (rank / count)
}

fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}
