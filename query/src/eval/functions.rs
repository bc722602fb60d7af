//! Function calls: range functions over windows, and per-sample functions.

use chrono::{Datelike, TimeZone, Timelike, Utc};
use fleetscope_store::Labels;
use fleetscope_store::labels::METRIC_NAME;
use promql_parser::parser::{Call, Expr};

use super::numeric::{avg, go_max, go_min, kahan_inc, quantile, stdvar};
use super::{Evaluator, merge_same_labels, unparen};
use crate::error::{Result, bad, exec};
use crate::plan::{Func, function};
use crate::value::{Grid, RangeInput, StepSeries, Value};

impl Evaluator<'_> {
    pub(super) async fn call(&self, call: &Call, grid: Grid) -> Result<Value> {
        let name = call.func.name;
        let func = function(name)
            .ok_or_else(|| bad(format!("function {name}() is not supported")))?
            .func;
        let args: Vec<&Expr> = call.args.args.iter().map(|a| a.as_ref()).collect();
        let arg = |i: usize| {
            args.get(i)
                .copied()
                .ok_or_else(|| bad(format!("{name}: missing argument {i}")))
        };
        match func {
            // Range functions.
            Func::Rate
            | Func::Increase
            | Func::Delta
            | Func::Irate
            | Func::Idelta
            | Func::Deriv
            | Func::Resets
            | Func::Changes
            | Func::AvgOverTime
            | Func::MinOverTime
            | Func::MaxOverTime
            | Func::SumOverTime
            | Func::CountOverTime
            | Func::LastOverTime
            | Func::PresentOverTime
            | Func::StddevOverTime
            | Func::StdvarOverTime
            | Func::FirstOverTime
            | Func::MadOverTime
            | Func::TsOfMinOverTime
            | Func::TsOfMaxOverTime
            | Func::TsOfFirstOverTime
            | Func::TsOfLastOverTime => {
                let input = self.eval_range(arg(0)?, grid).await?;
                range_function(func, &input, grid.len(), |_| 0.0, &|| self.check_deadline())
            }
            Func::QuantileOverTime => {
                let q = self.scalar_arg(arg(0)?, grid, "quantile_over_time").await?;
                let input = self.eval_range(arg(1)?, grid).await?;
                range_function(func, &input, grid.len(), |i| q[i], &|| {
                    self.check_deadline()
                })
            }
            Func::PredictLinear => {
                let input = self.eval_range(arg(0)?, grid).await?;
                let secs = self.scalar_arg(arg(1)?, grid, "predict_linear").await?;
                // The regression's intercept is taken at the step time (before `offset` and `@`),
                // as Prometheus does.
                let base: Vec<i64> = grid.times().collect();
                let mut out = Vec::new();
                for (labels, samples) in &input.series {
                    let vals = (0..grid.len())
                        .map(|i| {
                            let w = input.window(samples, i);
                            (w.len() >= 2).then(|| {
                                let (slope, intercept) = linear_regression(w, base[i]);
                                slope * secs[i] + intercept
                            })
                        })
                        .collect();
                    out.push(StepSeries {
                        labels: labels.without_name(),
                        vals,
                    });
                }
                finish_range(out)
            }
            Func::DoubleExponentialSmoothing | Func::HoltWinters => {
                let input = self.eval_range(arg(0)?, grid).await?;
                let sf = self.scalar_arg(arg(1)?, grid, "smoothing factor").await?;
                let tf = self.scalar_arg(arg(2)?, grid, "trend factor").await?;
                for i in 0..grid.len() {
                    if !(sf[i] > 0.0 && sf[i] < 1.0) {
                        return Err(exec(format!(
                            "invalid smoothing factor. Expected: 0 < sf < 1, got: {:.6}",
                            sf[i]
                        )));
                    }
                    if !(tf[i] > 0.0 && tf[i] < 1.0) {
                        return Err(exec(format!(
                            "invalid trend factor. Expected: 0 < tf < 1, got: {:.6}",
                            tf[i]
                        )));
                    }
                }
                let mut out = Vec::new();
                for (labels, samples) in &input.series {
                    let vals = (0..grid.len())
                        .map(|i| {
                            double_exponential_smoothing(input.window(samples, i), sf[i], tf[i])
                        })
                        .collect();
                    out.push(StepSeries {
                        labels: labels.without_name(),
                        vals,
                    });
                }
                finish_range(out)
            }
            Func::AbsentOverTime => {
                let input = self.eval_range(arg(0)?, grid).await?;
                let present: Vec<bool> = (0..grid.len())
                    .map(|i| {
                        input
                            .series
                            .iter()
                            .any(|(_, s)| !input.window(s, i).is_empty())
                    })
                    .collect();
                let labels = match unparen(arg(0)?) {
                    Expr::MatrixSelector(ms) => absent_labels(&ms.vs.matchers.matchers),
                    _ => Labels::empty(),
                };
                Ok(absent_result(labels, &present))
            }
            Func::Absent => {
                let v = self.vector_arg(arg(0)?, grid).await?;
                let present: Vec<bool> = (0..grid.len())
                    .map(|i| v.iter().any(|s| s.vals[i].is_some()))
                    .collect();
                let labels = match arg(0)? {
                    Expr::VectorSelector(vs) => absent_labels(&vs.matchers.matchers),
                    _ => Labels::empty(),
                };
                Ok(absent_result(labels, &present))
            }
            Func::Time => Ok(Value::Scalar(
                grid.times().map(|t| t as f64 / 1000.0).collect(),
            )),
            Func::Start | Func::End | Func::Range | Func::Step => {
                let st = &self.settings;
                let ms = match func {
                    Func::Start => st.query_start,
                    Func::End => st.query_end,
                    Func::Range => st.query_end - st.query_start,
                    _ => st.query_step,
                };
                Ok(Value::Scalar(vec![ms as f64 / 1000.0; grid.len()]))
            }
            Func::MinOf | Func::MaxOf => {
                let a = self.scalar_arg(arg(0)?, grid, name).await?;
                let b = self.scalar_arg(arg(1)?, grid, name).await?;
                let f = if func == Func::MinOf { go_min } else { go_max };
                Ok(Value::Scalar(
                    a.iter().zip(&b).map(|(x, y)| f(*x, *y)).collect(),
                ))
            }
            Func::SortByLabel | Func::SortByLabelDesc => self.eval(arg(0)?, grid).await,
            Func::Pi => Ok(Value::Scalar(vec![std::f64::consts::PI; grid.len()])),
            Func::Vector => {
                let s = self.scalar_arg(arg(0)?, grid, "vector").await?;
                Ok(Value::Vector(vec![StepSeries {
                    labels: Labels::empty(),
                    vals: s.into_iter().map(Some).collect(),
                }]))
            }
            Func::Scalar => {
                let v = self.vector_arg(arg(0)?, grid).await?;
                let out = (0..grid.len())
                    .map(|i| {
                        let mut present = v.iter().filter_map(|s| s.vals[i]);
                        match (present.next(), present.next()) {
                            (Some(x), None) => x,
                            _ => f64::NAN,
                        }
                    })
                    .collect();
                Ok(Value::Scalar(out))
            }
            Func::Timestamp => {
                if let Expr::VectorSelector(vs) = unparen(arg(0)?) {
                    let out = self.vector_selector_timestamps(vs, grid).await?;
                    return Ok(Value::Vector(merge_same_labels(out)?));
                }
                let v = self.vector_arg(arg(0)?, grid).await?;
                map_values(v, |i, _| grid.t(i) as f64 / 1000.0)
            }
            Func::Sort | Func::SortDesc => self.eval(arg(0)?, grid).await,
            Func::Info => self.info(&args, grid).await,
            Func::LabelReplace => {
                let v = self.vector_arg(arg(0)?, grid).await?;
                let strs = string_args(&args[1..], name)?;
                let [dst, replacement, src, regex] = strs.as_slice() else {
                    return Err(bad("label_replace takes 5 arguments"));
                };
                let re = regex::Regex::new(&format!("^(?s:{regex})$")).map_err(|e| {
                    bad(format!(
                        "invalid regular expression in label_replace(): {regex}: {e}"
                    ))
                })?;
                if dst.is_empty() {
                    return Err(bad(format!(
                        "invalid destination label name in label_replace(): {dst}"
                    )));
                }
                let out = v
                    .into_iter()
                    .map(|s| {
                        let value = s.labels.get(src).unwrap_or("");
                        let labels = match re.captures(value) {
                            Some(caps) => {
                                let mut res = String::new();
                                caps.expand(replacement, &mut res);
                                s.labels.with(dst, &res)
                            }
                            None => s.labels.clone(),
                        };
                        StepSeries {
                            labels,
                            vals: s.vals,
                        }
                    })
                    .collect();
                Ok(Value::Vector(merge_same_labels(out)?))
            }
            Func::LabelJoin => {
                let v = self.vector_arg(arg(0)?, grid).await?;
                let strs = string_args(&args[1..], name)?;
                let (dst, sep, srcs) = match strs.as_slice() {
                    [dst, sep, srcs @ ..] => (dst, sep, srcs),
                    _ => return Err(bad("label_join needs a destination label and a separator")),
                };
                if dst.is_empty() {
                    return Err(bad(format!(
                        "invalid destination label name in label_join(): {dst}"
                    )));
                }
                let out = v
                    .into_iter()
                    .map(|s| {
                        let joined: Vec<&str> =
                            srcs.iter().map(|l| s.labels.get(l).unwrap_or("")).collect();
                        StepSeries {
                            labels: s.labels.with(dst, &joined.join(sep)),
                            vals: s.vals,
                        }
                    })
                    .collect();
                Ok(Value::Vector(merge_same_labels(out)?))
            }
            Func::HistogramQuantile => {
                let q = self.scalar_arg(arg(0)?, grid, "histogram_quantile").await?;
                let v = self.vector_arg(arg(1)?, grid).await?;
                super::aggregate::histogram_quantile(&q, v, grid.len()).map(Value::Vector)
            }
            Func::Clamp | Func::ClampMin | Func::ClampMax => {
                let v = self.vector_arg(arg(0)?, grid).await?;
                let (lo, hi) = match func {
                    Func::Clamp => (
                        Some(self.scalar_arg(arg(1)?, grid, "clamp").await?),
                        Some(self.scalar_arg(arg(2)?, grid, "clamp").await?),
                    ),
                    Func::ClampMin => (
                        Some(self.scalar_arg(arg(1)?, grid, "clamp_min").await?),
                        None,
                    ),
                    _ => (
                        None,
                        Some(self.scalar_arg(arg(1)?, grid, "clamp_max").await?),
                    ),
                };
                filter_map_values(v, |i, x| {
                    let (lo, hi) = (lo.as_ref().map(|l| l[i]), hi.as_ref().map(|h| h[i]));
                    if let (Some(lo), Some(hi)) = (lo, hi)
                        && hi < lo
                    {
                        return None;
                    }
                    let x = hi.map_or(x, |h| go_min(h, x));
                    Some(lo.map_or(x, |l| go_max(l, x)))
                })
            }
            Func::Round => {
                let v = self.vector_arg(arg(0)?, grid).await?;
                let to = match args.get(1) {
                    Some(e) => self.scalar_arg(e, grid, "round").await?,
                    None => vec![1.0; grid.len()],
                };
                map_values(v, |i, x| {
                    let inv = 1.0 / to[i];
                    (x * inv + 0.5).floor() / inv
                })
            }
            Func::DayOfMonth
            | Func::DayOfWeek
            | Func::DayOfYear
            | Func::DaysInMonth
            | Func::Hour
            | Func::Minute
            | Func::Month
            | Func::Year => {
                let f = date_fn(func);
                match args.first() {
                    None => Ok(Value::Vector(vec![StepSeries {
                        labels: Labels::empty(),
                        vals: grid.times().map(|t| Some(f(t as f64 / 1000.0))).collect(),
                    }])),
                    Some(e) => {
                        let v = self.vector_arg(e, grid).await?;
                        map_values(v, |_, x| f(x))
                    }
                }
            }
            _ => {
                if let Some(f) = math_fn(func) {
                    let v = self.vector_arg(arg(0)?, grid).await?;
                    return map_values(v, |_, x| f(x));
                }
                Err(bad(format!("function {name}() is not supported")))
            }
        }
    }
}

/// Applies `f(step, value)` to every value; drops the metric name.
fn map_values(v: Vec<StepSeries>, f: impl Fn(usize, f64) -> f64) -> Result<Value> {
    filter_map_values(v, |i, x| Some(f(i, x)))
}

/// Applies `f(step, value)` to every value, `None` dropping it; drops the metric name.
fn filter_map_values(v: Vec<StepSeries>, f: impl Fn(usize, f64) -> Option<f64>) -> Result<Value> {
    let out = v
        .into_iter()
        .map(|s| StepSeries {
            labels: s.labels.without_name(),
            vals: s
                .vals
                .iter()
                .enumerate()
                .map(|(i, v)| v.and_then(|x| f(i, x)))
                .collect(),
        })
        .collect();
    Ok(Value::Vector(merge_same_labels(out)?))
}

fn string_args(args: &[&Expr], name: &str) -> Result<Vec<String>> {
    args.iter()
        .map(|a| match unparen(a) {
            Expr::StringLiteral(s) => Ok(s.val.clone()),
            _ => Err(bad(format!("{name}: expected a string literal"))),
        })
        .collect()
}

/// Labels of `absent()`'s output: the equality matchers of the selector (a name matched twice, or
/// also by another matcher, is left out), as Prometheus's `createLabelsForAbsentFunction`.
fn absent_labels(matchers: &[promql_parser::label::Matcher]) -> Labels {
    let mut labels = Labels::empty();
    let mut has = std::collections::HashSet::new();
    for m in matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, promql_parser::label::MatchOp::Equal) && !has.contains(&m.name) {
            labels = labels.with(&m.name, &m.value);
            has.insert(m.name.clone());
        } else {
            labels = labels.with(&m.name, "");
        }
    }
    labels
}

fn absent_result(labels: Labels, present: &[bool]) -> Value {
    let vals: Vec<Option<f64>> = present.iter().map(|p| (!p).then_some(1.0)).collect();
    if vals.iter().all(Option::is_none) {
        return Value::Vector(vec![]);
    }
    Value::Vector(vec![StepSeries { labels, vals }])
}

/// A range function over every series and step; drops the metric name except for `last_over_time`.
fn range_function(
    func: Func,
    input: &RangeInput,
    steps: usize,
    param: impl Fn(usize) -> f64,
    deadline: &dyn Fn() -> Result<()>,
) -> Result<Value> {
    let mut out = Vec::with_capacity(input.series.len());
    let ordered = input.times.is_sorted();
    for (labels, samples) in &input.series {
        deadline()?;
        let live = if ordered {
            input.live_steps(samples)
        } else {
            0..steps
        };
        let vals = (0..steps)
            .map(|i| {
                if !live.contains(&i) {
                    return None;
                }
                let end = input.times[i];
                let w = input.window_at(samples, end);
                if w.is_empty() {
                    return None;
                }
                over_window(
                    func,
                    w,
                    end - input.range,
                    end,
                    input.range,
                    param(i),
                    input.left_closed,
                )
            })
            .collect();
        let keeps_name = matches!(func, Func::LastOverTime | Func::FirstOverTime);
        let labels = if keeps_name {
            labels.clone()
        } else {
            labels.without_name()
        };
        out.push(StepSeries { labels, vals });
    }
    finish_range(out)
}

/// Drops all-empty series; a label set twice (after dropping names) is an error, as Prometheus checks
/// the whole matrix of a range function.
fn finish_range(out: Vec<StepSeries>) -> Result<Value> {
    let out: Vec<StepSeries> = out
        .into_iter()
        .filter(|s| s.vals.iter().any(Option::is_some))
        .collect();
    let mut seen = std::collections::HashSet::with_capacity(out.len());
    for s in &out {
        if !seen.insert(&s.labels) {
            return Err(exec("vector cannot contain metrics with the same labelset"));
        }
    }
    Ok(Value::Vector(out))
}

/// One range function on one non-empty window `w` of `(range_start, range_end]`.
fn over_window(
    func: Func,
    w: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    range: i64,
    param: f64,
    prometheus2: bool,
) -> Option<f64> {
    let rate = |is_counter, is_rate| {
        extrapolated_rate(
            w,
            (range_start, range_end, range),
            is_counter,
            is_rate,
            prometheus2,
        )
    };
    match func {
        Func::Rate => rate(true, true),
        Func::Increase => rate(true, false),
        Func::Delta => rate(false, false),
        Func::Irate | Func::Idelta => {
            let [.., (t0, v0), (t1, v1)] = w else {
                return None;
            };
            let mut r = v1 - v0;
            if func == Func::Irate {
                if v1 < v0 {
                    r = *v1; // counter reset
                }
                let dt = (t1 - t0) as f64 / 1000.0;
                if dt == 0.0 {
                    return None;
                }
                r /= dt;
            }
            Some(r)
        }
        Func::Deriv => (w.len() >= 2).then(|| linear_regression(w, w[0].0).0),
        Func::Resets => Some(w.windows(2).filter(|p| p[1].1 < p[0].1).count() as f64),
        Func::Changes => Some(
            w.windows(2)
                .filter(|p| !(p[1].1 == p[0].1 || (p[1].1.is_nan() && p[0].1.is_nan())))
                .count() as f64,
        ),
        Func::AvgOverTime => Some(avg(w.iter().map(|s| s.1))),
        Func::SumOverTime => {
            let (sum, c) = w.iter().fold((0.0, 0.0), |(s, c), x| kahan_inc(x.1, s, c));
            Some(if sum.is_infinite() { sum } else { sum + c })
        }
        Func::CountOverTime => Some(w.len() as f64),
        Func::MinOverTime => Some(
            w.iter()
                .skip(1)
                .fold(w[0].1, |m, x| if x.1 < m || m.is_nan() { x.1 } else { m }),
        ),
        Func::MaxOverTime => Some(
            w.iter()
                .skip(1)
                .fold(w[0].1, |m, x| if x.1 > m || m.is_nan() { x.1 } else { m }),
        ),
        Func::LastOverTime => w.last().map(|s| s.1),
        Func::FirstOverTime => w.first().map(|s| s.1),
        Func::TsOfLastOverTime => w.last().map(|s| s.0 as f64 / 1000.0),
        Func::TsOfFirstOverTime => w.first().map(|s| s.0 as f64 / 1000.0),
        Func::TsOfMinOverTime | Func::TsOfMaxOverTime => {
            let min = func == Func::TsOfMinOverTime;
            let mut best = w[0];
            for &s in &w[1..] {
                let better = if min { s.1 <= best.1 } else { s.1 >= best.1 };
                if better || best.1.is_nan() {
                    best = s;
                }
            }
            Some(best.0 as f64 / 1000.0)
        }
        Func::MadOverTime => {
            let mut vals: Vec<f64> = w.iter().map(|s| s.1).collect();
            if vals.iter().any(|v| v.is_nan()) {
                return Some(f64::NAN);
            }
            let median = quantile(0.5, &mut vals);
            let mut dev: Vec<f64> = vals.iter().map(|v| (v - median).abs()).collect();
            Some(quantile(0.5, &mut dev))
        }
        Func::PresentOverTime => Some(1.0),
        Func::StddevOverTime => Some(stdvar(w.iter().map(|s| s.1)).sqrt()),
        Func::StdvarOverTime => Some(stdvar(w.iter().map(|s| s.1))),
        Func::QuantileOverTime => {
            let mut vals: Vec<f64> = w.iter().map(|s| s.1).collect();
            Some(quantile(param, &mut vals))
        }
        _ => None,
    }
}

/// Prometheus's `extrapolatedRate`.
/// Prometheus's `extrapolatedRate`; `prometheus2` applies the zero-point clamp before the
/// threshold, as Prometheus 2.x did (changed in prometheus/prometheus#13725).
fn extrapolated_rate(
    w: &[(i64, f64)],
    (range_start, range_end, range): (i64, i64, i64),
    is_counter: bool,
    is_rate: bool,
    prometheus2: bool,
) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (first, last) = (w[0], w[w.len() - 1]);
    let mut result = last.1 - first.1;
    if is_counter {
        let mut prev = 0.0;
        for s in w {
            if s.1 < prev {
                result += prev;
            }
            prev = s.1;
        }
    }
    let mut to_start = (first.0 - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let avg_step = sampled / (w.len() - 1) as f64;
    let threshold = avg_step * 1.1;
    let clamp_to_zero = |to_start: &mut f64| {
        if is_counter && result > 0.0 && first.1 >= 0.0 {
            let to_zero = sampled * (first.1 / result);
            if to_zero < *to_start {
                *to_start = to_zero;
            }
        }
    };
    if prometheus2 {
        clamp_to_zero(&mut to_start);
    }
    if to_start >= threshold {
        to_start = avg_step / 2.0;
    }
    if !prometheus2 {
        clamp_to_zero(&mut to_start);
    }
    if to_end >= threshold {
        to_end = avg_step / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if is_rate {
        factor /= range as f64 / 1000.0;
    }
    Some(result * factor)
}

/// Least-squares slope and intercept (at `intercept_t`), as Prometheus's `linearRegression`.
fn linear_regression(w: &[(i64, f64)], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut cx, mut sum_y, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut cxy, mut sum_x2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    let mut init_y = 0.0;
    let mut const_y = true;
    for (i, &(t, v)) in w.iter().enumerate() {
        if i == 0 {
            init_y = v;
        } else if const_y && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_t) as f64 / 1000.0;
        (sum_x, cx) = kahan_inc(x, sum_x, cx);
        (sum_y, cy) = kahan_inc(v, sum_y, cy);
        (sum_xy, cxy) = kahan_inc(x * v, sum_xy, cxy);
        (sum_x2, cx2) = kahan_inc(x * x, sum_x2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) = (sum_x + cx, sum_y + cy, sum_xy + cxy, sum_x2 + cx2);
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

fn double_exponential_smoothing(w: &[(i64, f64)], sf: f64, tf: f64) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0, w[0].1);
    let mut b = w[1].1 - w[0].1;
    for (i, s) in w.iter().enumerate().skip(1) {
        let x = sf * s.1;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        (s0, s1) = (s1, x + y);
    }
    Some(s1)
}

fn math_fn(func: Func) -> Option<fn(f64) -> f64> {
    Some(match func {
        Func::Abs => f64::abs,
        Func::Ceil => f64::ceil,
        Func::Floor => f64::floor,
        Func::Exp => f64::exp,
        Func::Sqrt => f64::sqrt,
        Func::Ln => f64::ln,
        Func::Log2 => f64::log2,
        Func::Log10 => f64::log10,
        Func::Sgn => |x: f64| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        },
        Func::Acos => f64::acos,
        Func::Acosh => f64::acosh,
        Func::Asin => f64::asin,
        Func::Asinh => f64::asinh,
        Func::Atan => f64::atan,
        Func::Atanh => f64::atanh,
        Func::Cos => f64::cos,
        Func::Cosh => f64::cosh,
        Func::Sin => f64::sin,
        Func::Sinh => f64::sinh,
        Func::Tan => f64::tan,
        Func::Tanh => f64::tanh,
        Func::Deg => |x: f64| x * 180.0 / std::f64::consts::PI,
        Func::Rad => |x: f64| x * std::f64::consts::PI / 180.0,
        _ => return None,
    })
}

/// Calendar functions of a Unix time in seconds, in UTC.
fn date_fn(func: Func) -> fn(f64) -> f64 {
    fn at(secs: f64) -> Option<chrono::DateTime<Utc>> {
        if !secs.is_finite() {
            return None;
        }
        Utc.timestamp_opt(secs.floor() as i64, 0).single()
    }
    match func {
        Func::DayOfMonth => |s| at(s).map_or(f64::NAN, |d| f64::from(d.day())),
        Func::DayOfWeek => {
            |s| at(s).map_or(f64::NAN, |d| f64::from(d.weekday().num_days_from_sunday()))
        }
        Func::DayOfYear => |s| at(s).map_or(f64::NAN, |d| f64::from(d.ordinal())),
        Func::DaysInMonth => |s| {
            at(s).map_or(f64::NAN, |d| {
                let (y, m) = (d.year(), d.month());
                let next = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                let first = chrono::NaiveDate::from_ymd_opt(y, m, 1);
                let first_next = chrono::NaiveDate::from_ymd_opt(next.0, next.1, 1);
                match (first, first_next) {
                    (Some(a), Some(b)) => (b - a).num_days() as f64,
                    _ => f64::NAN,
                }
            })
        },
        Func::Hour => |s| at(s).map_or(f64::NAN, |d| f64::from(d.hour())),
        Func::Minute => |s| at(s).map_or(f64::NAN, |d| f64::from(d.minute())),
        Func::Month => |s| at(s).map_or(f64::NAN, |d| f64::from(d.month())),
        _ => |s| at(s).map_or(f64::NAN, |d| f64::from(d.year())),
    }
}
