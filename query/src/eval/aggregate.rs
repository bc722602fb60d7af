//! Aggregation operators (`sum by (...)`, `topk`, ...) and `histogram_quantile`, step by step.

use std::collections::HashMap;

use fleetscope_store::Labels;
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};

use super::numeric::{bucket_quantile, kahan_inc, quantile, rank};
use super::{Evaluator, merge_same_labels};
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
                                .entry(key.with(&label, &crate::value::format_value(*v)))
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
        AggOp::Avg => super::numeric::avg(values),
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
