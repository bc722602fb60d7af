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
            AggOp::Limitk => {
                let k = self.scalar_arg(param()?, grid, &name).await?;
                Ok(Value::Vector(limit_k(&input, &k, &agg.modifier, n)?))
            }
            AggOp::LimitRatio => {
                let r = self.scalar_arg(param()?, grid, &name).await?;
                Ok(Value::Vector(limit_ratio(&input, &r, n)?))
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
    if k.iter().take(n).any(|k| k.is_nan()) {
        return Err(exec("Parameter value is NaN"));
    }
    let want = |i: usize| match k.get(i) {
        Some(&k) if k >= 1.0 => k.min(input.len() as f64) as usize,
        _ => 0,
    };
    Ok(keep_per_group(input, modifier, n, want, Some(top)))
}

/// `limitk`: per step and group, the first `k` series with a value there, in input order (the
/// order of the series, as Prometheus's engine visits them), values and labels as they are.
fn limit_k(
    input: &[StepSeries],
    k: &[f64],
    modifier: &Option<LabelModifier>,
    n: usize,
) -> Result<Vec<StepSeries>> {
    let k = &k[..n.min(k.len())];
    // As Prometheus: nothing at all if no step asks for one, then NaN and int64 range checks.
    if k.iter().all(|&k| k < 1.0) {
        return Ok(Vec::new());
    }
    if k.iter().any(|k| k.is_nan()) {
        return Err(exec("Parameter value is NaN"));
    }
    if let Some(k) = k.iter().find(|&&k| k <= i64::MIN as f64) {
        return Err(exec(format!("Scalar value {k} underflows int64")));
    }
    if let Some(k) = k.iter().find(|&&k| k >= i64::MAX as f64) {
        return Err(exec(format!("Scalar value {k} overflows int64")));
    }
    let want = |i: usize| {
        k.get(i)
            .map_or(0, |&k| (k as i64).clamp(0, input.len() as i64) as usize)
    };
    Ok(keep_per_group(input, modifier, n, want, None))
}

/// The series of `input` with, per step and group, only `want(step)` of the values present there:
/// the first by value (`Some(top)`: largest first for `topk`, smallest for `bottomk`, NaN last) or
/// in input order (`None`, `limitk`); labels untouched, series left without a value dropped.
fn keep_per_group(
    input: &[StepSeries],
    modifier: &Option<LabelModifier>,
    n: usize,
    want: impl Fn(usize) -> usize,
    by_value: Option<bool>,
) -> Vec<StepSeries> {
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
    for i in 0..n {
        let want = want(i);
        if want == 0 {
            continue;
        }
        for (_, members) in &groups {
            let mut present: Vec<(&StepSeries, f64)> = members
                .iter()
                .filter_map(|s| s.vals[i].map(|v| (*s, v)))
                .collect();
            if let Some(top) = by_value {
                present.sort_by(|a, b| rank(a.1, b.1, top));
            }
            for (s, v) in present.into_iter().take(want) {
                out[pos[&(s as *const _)]].vals[i] = Some(v);
            }
        }
    }
    out.into_iter()
        .filter(|s| s.vals.iter().any(Option::is_some))
        .collect()
}

/// `limit_ratio`: per step, the series whose label set's hash offset falls within the ratio
/// `r` (clamped to `[-1, 1]` with a warning, as Prometheus): offset below `r` for `r >= 0`, at
/// or above `1 + r` for `r < 0`, so `limit_ratio(r, v)` and `limit_ratio(-(1 - r), v)` are
/// complements. The offset is Prometheus's ([`sample_offset`]), so both pick the same series.
fn limit_ratio(input: &[StepSeries], r: &[f64], n: usize) -> Result<Vec<StepSeries>> {
    let r = &r[..n.min(r.len())];
    if r.iter().all(|&r| r == 0.0) {
        return Ok(Vec::new());
    }
    if r.iter().any(|r| r.is_nan()) {
        return Err(exec("Ratio value is NaN"));
    }
    let max = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = r.iter().copied().fold(f64::INFINITY, f64::min);
    for (got, cap) in [(max, 1.0), (min, -1.0)] {
        if got.abs() > 1.0 && got.signum() == cap {
            crate::warnings::warn(format!(
                "PromQL warning: ratio value should be between -1 and 1, got {}, capping to {}",
                crate::value::format_value(got),
                crate::value::format_value(cap)
            ));
        }
    }
    Ok(input
        .iter()
        .filter_map(|s| {
            let offset = sample_offset(&s.labels);
            let vals: Vec<Option<f64>> = s
                .vals
                .iter()
                .zip(r)
                .map(|(v, &r)| {
                    let r = r.clamp(-1.0, 1.0);
                    let keep = (r >= 0.0 && offset < r) || (r < 0.0 && offset >= 1.0 + r);
                    v.filter(|_| keep)
                })
                .collect();
            vals.iter().any(Option::is_some).then(|| StepSeries {
                labels: s.labels.clone(),
                vals,
            })
        })
        .collect())
}

/// Where a label set falls in `[0, 1]` for `limit_ratio`: Prometheus's `Labels.Hash()` (xxHash64
/// of the label set in its default `stringlabels` layout: each name and value preceded by its
/// length, one byte below 255, else 255 and three bytes little-endian) over `u64::MAX`.
pub(crate) fn sample_offset(labels: &Labels) -> f64 {
    let mut data = Vec::with_capacity(128);
    let mut put = |s: &str| {
        let n = s.len();
        if n < 255 {
            data.push(n as u8);
        } else {
            data.push(255);
            data.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        }
        data.extend_from_slice(s.as_bytes());
    };
    for l in labels.iter() {
        put(&l.name);
        put(&l.value);
    }
    twox_hash::XxHash64::oneshot(0, &data) as f64 / u64::MAX as f64
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_offsets_hash_prometheus_label_layout() {
        // xxHash64 (seed 0) of the empty input is a published constant.
        assert_eq!(
            sample_offset(&Labels::empty()),
            0xEF46_DB37_51D8_E999_u64 as f64 / u64::MAX as f64
        );
        // Lengths as one byte below 255, else 255 and three bytes little-endian.
        let long = "v".repeat(300);
        let labels = Labels::from_pairs([("a", "b"), ("c", long.as_str())]);
        let mut data = vec![1, b'a', 1, b'b', 1, b'c', 255, 44, 1, 0];
        data.extend_from_slice(long.as_bytes());
        let want = twox_hash::XxHash64::oneshot(0, &data) as f64 / u64::MAX as f64;
        assert_eq!(sample_offset(&labels), want);
        assert!((0.0..=1.0).contains(&want));
    }
}
