//! The evaluator: walks the PromQL AST over a [`Grid`] of steps, one node kind at a time.
//!
//! Every instant-vector node yields [`StepSeries`] (one optional value per step), so per-series work
//! is a loop over a dense array; per-step work (aggregations, vector matching) runs step by step
//! over those arrays. Selectors fetch their series once for the whole grid, with the time range
//! the grid needs. `@` and `offset` turn into an *effective time* per step.

mod aggregate;
mod binary;
mod functions;
mod info;
pub(crate) mod numeric;

pub(crate) use aggregate::group_key;
pub(crate) use numeric::{avg, kahan_inc, rank};

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::common::DataFusionError;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation};
use fleetscope_store::{Labels, MatchOp, Matcher, SelectHints, Series, is_stale_nan};
use futures::future::BoxFuture;
use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{AtModifier, Expr, Offset, SubqueryExpr, VectorSelector};

use crate::error::{Error, Result, bad, exec};
use crate::value::{Grid, RangeInput, StepSeries, Value};
use fleetscope_store::source::Source;

/// Settings of an evaluation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) lookback_ms: i64,
    pub(crate) subquery_step_ms: i64,
    pub(crate) max_samples: usize,
    /// Start and end of the whole query, for `@ start()` / `@ end()`.
    pub(crate) query_start: i64,
    pub(crate) query_end: i64,
    /// Step of the query (0 for instant queries), for `step()`.
    pub(crate) query_step: i64,
    /// Follow Prometheus 2 semantics (left-closed windows, old `rate()` extrapolation).
    pub(crate) prometheus2: bool,
    /// When the query must have ended ([`crate::EngineOptions::timeout`]).
    pub(crate) deadline: Option<std::time::Instant>,
    /// Coarsest downsampled data the query's scans may read, ms (0: raw).
    pub(crate) max_resolution: i64,
    /// Whether that resolution was asked for (not chosen by `auto`): a range too short for it
    /// is a warning.
    pub(crate) explicit_resolution: bool,
}

/// One query's evaluation state.
pub(crate) struct Evaluator<'a> {
    pub(crate) source: &'a dyn Source,
    pub(crate) settings: Settings,
    /// Samples loaded so far by the whole query (shared by the plan's nodes).
    samples_loaded: Arc<AtomicUsize>,
    /// Results of sub-expressions computed by other plan nodes, by the address of their node.
    precomputed: HashMap<usize, Arc<Vec<StepSeries>>>,
    /// Selectors the query writes more than once (`a / (a + b)`), by their text...
    repeated: HashSet<String>,
    /// ...and what they fetched, by selector and time range: read once per query.
    fetched: Mutex<HashMap<(String, i64, i64), Arc<Fetched>>>,
    /// The query's memory budget, charged before values are allocated ([`Self::reserve`]).
    memory: Option<MemoryReservation>,
}

/// Bytes a series' labels and bookkeeping take besides its values (an estimate).
const SERIES_BYTES: usize = 128;

/// Series of a selector: labels and `(t, v)` samples, sorted by labels.
type Fetched = Vec<(Labels, Vec<(i64, f64)>)>;

impl<'a> Evaluator<'a> {
    pub(crate) fn new(source: &'a dyn Source, settings: Settings, expr: &Expr) -> Self {
        let mut seen = HashMap::new();
        count_selectors(expr, &mut seen);
        Self {
            source,
            settings,
            samples_loaded: Arc::default(),
            precomputed: HashMap::new(),
            repeated: seen
                .into_iter()
                .filter(|(_, n)| *n > 1)
                .map(|(s, _)| s)
                .collect(),
            fetched: Mutex::new(HashMap::new()),
            memory: None,
        }
    }

    /// Charges what the evaluation holds to `pool` (the query's [`crate::memory::QueryPool`]).
    pub(crate) fn with_memory(mut self, pool: &Arc<dyn MemoryPool>) -> Self {
        self.memory = Some(MemoryConsumer::new("PromQL evaluation").register(pool));
        self
    }

    /// Counts `series` x `steps` values about to be allocated: with the samples loaded, the
    /// values a query makes may not pass `--query.max-samples` (Prometheus's limit and error;
    /// counted as they are made, never uncounted, so an upper bound of what is held at once),
    /// and their bytes come out of the query's memory budget. Charged before allocating,
    /// released when the query ends.
    pub(crate) fn reserve(&self, series: usize, steps: usize) -> Result<()> {
        let points = series.saturating_mul(steps);
        let held = self
            .samples_loaded
            .fetch_add(points, Ordering::Relaxed)
            .saturating_add(points);
        if held > self.settings.max_samples {
            return Err(Error::TooManySamples("query evaluation"));
        }
        self.reserve_bytes(
            points
                .saturating_mul(std::mem::size_of::<Option<f64>>())
                .saturating_add(series.saturating_mul(SERIES_BYTES)),
        )
    }

    fn reserve_bytes(&self, bytes: usize) -> Result<()> {
        let Some(memory) = &self.memory else {
            return Ok(());
        };
        memory.try_grow(bytes).map_err(|e| match e {
            DataFusionError::ResourcesExhausted(m) => Error::ResourcesExhausted(m),
            other => Error::Internal(other.to_string()),
        })
    }

    /// Counts loaded samples in `loaded` (shared with the other nodes of a query's plan).
    pub(crate) fn with_counter(mut self, loaded: Arc<AtomicUsize>) -> Self {
        self.samples_loaded = loaded;
        self
    }

    /// Takes the value of the sub-expressions at these node addresses (see [`node_id`]) as given.
    pub(crate) fn with_precomputed(mut self, done: HashMap<usize, Arc<Vec<StepSeries>>>) -> Self {
        self.precomputed = done;
        self
    }

    /// Evaluates `expr` at every step of `grid`.
    pub(crate) fn eval<'b>(&'b self, expr: &'b Expr, grid: Grid) -> BoxFuture<'b, Result<Value>> {
        Box::pin(async move {
            self.check_deadline()?;
            if let Some(done) = self.precomputed.get(&node_id(expr)) {
                return Ok(Value::Vector(done.as_ref().clone()));
            }
            match expr {
                Expr::NumberLiteral(n) => Ok(Value::Scalar(vec![n.val; grid.len()])),
                Expr::StringLiteral(_) => Ok(Value::String),
                Expr::Paren(p) => self.eval(&p.expr, grid).await,
                Expr::Unary(u) => match self.eval(&u.expr, grid).await? {
                    Value::Scalar(v) => Ok(Value::Scalar(v.into_iter().map(|x| -x).collect())),
                    Value::Vector(series) => {
                        let out = series
                            .into_iter()
                            .map(|s| StepSeries {
                                labels: s.labels.without_name(),
                                vals: s.vals.into_iter().map(|v| v.map(|x| -x)).collect(),
                            })
                            .collect();
                        Ok(Value::Vector(merge_same_labels(out)?))
                    }
                    Value::String => Err(bad("unary minus on a string")),
                },
                Expr::VectorSelector(vs) => self.vector_selector(vs, grid).await.map(Value::Vector),
                Expr::MatrixSelector(_) | Expr::Subquery(_) => Err(bad(
                    "range vector is only allowed as an argument of a function taking one",
                )),
                // Values these make from their inputs' are counted once made (the inputs were
                // counted before; range functions count theirs in `eval_range`).
                Expr::Call(call) => {
                    let out = self.call(call, grid).await?;
                    if !call.args.args.iter().any(|a| is_range(a)) {
                        self.count_made(&out, grid)?;
                    }
                    Ok(out)
                }
                Expr::Aggregate(agg) => {
                    let out = self.aggregate(agg, grid).await?;
                    self.count_made(&out, grid)?;
                    Ok(out)
                }
                Expr::Binary(b) => {
                    let out = self.binary(b, grid).await?;
                    self.count_made(&out, grid)?;
                    Ok(out)
                }
                Expr::Extension(_) => Err(Error::Internal(
                    "extension expressions are not supported".into(),
                )),
            }
        })
    }

    fn count_made(&self, value: &Value, grid: Grid) -> Result<()> {
        match value {
            Value::Vector(v) => self.reserve(v.len(), grid.len()),
            _ => Ok(()),
        }
    }

    /// Evaluates a range-vector expression (matrix selector or subquery) for every step of `grid`;
    /// counts the values per step a function will make of it ([`Self::reserve`]).
    pub(crate) fn eval_range<'b>(
        &'b self,
        expr: &'b Expr,
        grid: Grid,
    ) -> BoxFuture<'b, Result<RangeInput>> {
        Box::pin(async move {
            match expr {
                Expr::Paren(p) => self.eval_range(&p.expr, grid).await,
                Expr::MatrixSelector(ms) => {
                    let range = ms.range.as_millis() as i64;
                    let times =
                        self.effective_times(grid, ms.vs.at.as_ref(), ms.vs.offset.as_ref());
                    let (lo, hi) = min_max(&times);
                    let mut series = self.fetch(&ms.vs, lo - range, hi).await?;
                    for (_, samples) in &mut series {
                        samples.retain(|(_, v)| !is_stale_nan(*v));
                    }
                    series.retain(|(_, s)| !s.is_empty());
                    self.reserve(series.len(), grid.len())?;
                    Ok(RangeInput {
                        series,
                        range,
                        times,
                        left_closed: self.settings.prometheus2,
                    })
                }
                Expr::Subquery(sq) => {
                    let input = self.subquery(sq, grid).await?;
                    self.reserve(input.series.len(), grid.len())?;
                    Ok(input)
                }
                _ => Err(bad(
                    "expected a range vector (a matrix selector or a subquery)",
                )),
            }
        })
    }

    async fn subquery(&self, sq: &SubqueryExpr, grid: Grid) -> Result<RangeInput> {
        let range = sq.range.as_millis() as i64;
        let step = sq
            .step
            .map_or(self.settings.subquery_step_ms, |s| s.as_millis() as i64);
        if step <= 0 {
            return Err(bad("zero or negative subquery step"));
        }
        let times = self.effective_times(grid, sq.at.as_ref(), sq.offset.as_ref());
        let (lo, hi) = min_max(&times);
        // The first multiple of the step after the earliest window start (Prometheus aligns
        // subquery steps to absolute time).
        let first = lo - range;
        let mut start = first.div_euclid(step) * step;
        if start < first || (start == first && !self.settings.prometheus2) {
            start += step;
        }
        let inner = Grid {
            start,
            end: hi,
            step,
        };
        // Every series of the inner expression holds a value per step: refuse a grid that alone
        // passes the sample limit before anything is allocated for it (`up[1y:1ms]`).
        if inner.len() > self.settings.max_samples {
            return Err(Error::TooManySamples("subquery evaluation"));
        }
        let series = match self.eval(&sq.expr, inner).await? {
            Value::Vector(v) => v
                .into_iter()
                .map(|s| {
                    let samples = s.samples(inner);
                    (s.labels, samples)
                })
                .filter(|(_, s)| !s.is_empty())
                .collect(),
            Value::Scalar(v) => {
                vec![(
                    Labels::empty(),
                    v.iter()
                        .enumerate()
                        .map(|(i, v)| (inner.t(i), *v))
                        .collect(),
                )]
            }
            Value::String => return Err(bad("subquery of a string")),
        };
        Ok(RangeInput {
            series,
            range,
            times,
            left_closed: self.settings.prometheus2,
        })
    }

    /// Instant-vector selection: at each step, the latest sample within the lookback window,
    /// unless it is a stale marker.
    async fn vector_selector(&self, vs: &VectorSelector, grid: Grid) -> Result<Vec<StepSeries>> {
        self.select_instant(vs, grid, |_, v| v, false).await
    }

    /// Like [`Self::vector_selector`], but the timestamps of the selected samples, name dropped
    /// (for `timestamp()`).
    pub(crate) async fn vector_selector_timestamps(
        &self,
        vs: &VectorSelector,
        grid: Grid,
    ) -> Result<Vec<StepSeries>> {
        self.select_instant(vs, grid, |t, _| t as f64 / 1000.0, true)
            .await
    }

    async fn select_instant(
        &self,
        vs: &VectorSelector,
        grid: Grid,
        value: impl Fn(i64, f64) -> f64,
        drop_name: bool,
    ) -> Result<Vec<StepSeries>> {
        let lookback = self.settings.lookback_ms;
        let times = self.effective_times(grid, vs.at.as_ref(), vs.offset.as_ref());
        let (lo, hi) = min_max(&times);
        let series = self.fetch(vs, lo - lookback, hi).await?;
        self.reserve(series.len(), times.len())?;
        series
            .into_iter()
            .filter_map(|(labels, samples)| {
                if let Err(e) = self.check_deadline() {
                    return Some(Err(e));
                }
                let vals: Vec<Option<f64>> = times
                    .iter()
                    .map(|&t| {
                        latest(&samples, t, lookback, self.settings.prometheus2)
                            .map(|(st, v)| value(st, v))
                    })
                    .collect();
                let labels = if drop_name {
                    labels.without_name()
                } else {
                    labels
                };
                vals.iter()
                    .any(Option::is_some)
                    .then_some(Ok(StepSeries { labels, vals }))
            })
            .collect()
    }

    /// An error once the query is past its deadline: called between series and nodes, so a
    /// query busy computing ends at its timeout too.
    pub(crate) fn check_deadline(&self) -> Result<()> {
        match self.settings.deadline {
            Some(d) if std::time::Instant::now() > d => Err(Error::Timeout("query evaluation")),
            _ => Ok(()),
        }
    }

    /// Effective evaluation time per step: the step time (or the `@` time), minus the offset.
    pub(crate) fn effective_times(
        &self,
        grid: Grid,
        at: Option<&AtModifier>,
        offset: Option<&Offset>,
    ) -> Vec<i64> {
        let off = match offset {
            Some(Offset::Pos(d)) => d.as_millis() as i64,
            Some(Offset::Neg(d)) => -(d.as_millis() as i64),
            None => 0,
        };
        match at.map(|a| self.at_time(a)) {
            Some(t) => vec![t - off; grid.len()],
            None => grid.times().map(|t| t - off).collect(),
        }
    }

    /// The time an `@` modifier pins to.
    pub(crate) fn at_time(&self, at: &AtModifier) -> i64 {
        match at {
            AtModifier::Start => self.settings.query_start,
            AtModifier::End => self.settings.query_end,
            AtModifier::At(t) => match t.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => d.as_millis() as i64,
                Err(e) => -(e.duration().as_millis() as i64),
            },
        }
    }

    /// Series of a selector with samples in `[min_t, max_t]`; a selector written more than once in
    /// the query is read from the source once.
    async fn fetch(&self, vs: &VectorSelector, min_t: i64, max_t: i64) -> Result<Fetched> {
        let text = vs.to_string();
        if !self.repeated.contains(&text) {
            return self.select(vs, min_t, max_t).await;
        }
        let key = (text, min_t, max_t);
        let cached = self.fetched.lock().ok().and_then(|f| f.get(&key).cloned());
        let series = match cached {
            Some(series) => {
                let n: usize = series.iter().map(|s| s.1.len()).sum();
                self.count_loaded(n)?;
                series
            }
            None => {
                let series = Arc::new(self.select(vs, min_t, max_t).await?);
                if let Ok(mut f) = self.fetched.lock() {
                    f.insert(key, Arc::clone(&series));
                }
                series
            }
        };
        Ok(series.as_ref().clone())
    }

    /// Counts samples loaded by the query against its limit.
    fn count_loaded(&self, n: usize) -> Result<()> {
        let loaded = self.samples_loaded.fetch_add(n, Ordering::Relaxed) + n;
        if loaded > self.settings.max_samples {
            return Err(Error::TooManySamples("query execution"));
        }
        self.reserve_bytes(n.saturating_mul(std::mem::size_of::<(i64, f64)>()))
    }

    /// [`Evaluator::fetch`] from the source.
    async fn select(&self, vs: &VectorSelector, min_t: i64, max_t: i64) -> Result<Fetched> {
        let hints = SelectHints {
            step: self.settings.query_step,
            ..SelectHints::range(min_t, max_t)
        };
        let series = select_groups(self.source, &selector_matchers(vs)?, &hints).await?;
        self.count_loaded(series.iter().map(|s| s.samples.len()).sum())?;
        let mut out: Fetched = series
            .into_iter()
            .map(|s| (s.labels, s.samples.iter().map(|x| (x.t, x.v)).collect()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Evaluates an expression that must be a scalar (function parameters).
    pub(crate) async fn scalar_arg(&self, expr: &Expr, grid: Grid, what: &str) -> Result<Vec<f64>> {
        match self.eval(expr, grid).await? {
            Value::Scalar(v) => Ok(v),
            _ => Err(bad(format!("expected a scalar for {what}"))),
        }
    }

    /// Evaluates an expression that must be an instant vector.
    pub(crate) async fn vector_arg(&self, expr: &Expr, grid: Grid) -> Result<Vec<StepSeries>> {
        match self.eval(expr, grid).await? {
            Value::Vector(v) => Ok(v),
            Value::Scalar(_) => Err(bad("expected an instant vector, got a scalar")),
            Value::String => Err(bad("expected an instant vector, got a string")),
        }
    }
}

/// The matcher sets of a selector (one, or one per `or` alternative), its metric name included.
pub(crate) fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>> {
    let mut groups = vec![vs.matchers.matchers.clone()];
    groups.extend(vs.matchers.or_matchers.iter().cloned());
    groups
        .into_iter()
        .map(|group| {
            let mut matchers = group
                .iter()
                .map(to_store_matcher)
                .collect::<Result<Vec<_>>>()?;
            if let Some(name) = &vs.name
                && !group
                    .iter()
                    .any(|m| m.name == fleetscope_store::labels::METRIC_NAME)
            {
                matchers.push(Matcher::equal(
                    fleetscope_store::labels::METRIC_NAME,
                    name.clone(),
                ));
            }
            Ok(matchers)
        })
        .collect()
}

/// The series matching any of the matcher sets, each set selected from `source` with `hints`, the
/// first series of each label set kept.
pub(crate) async fn select_groups(
    source: &dyn Source,
    groups: &[Vec<Matcher>],
    hints: &SelectHints,
) -> Result<Vec<Series>> {
    if let [only] = groups {
        return Ok(source.select(only, hints).await?);
    }
    let mut by_labels: HashMap<Labels, Series> = HashMap::new();
    for matchers in groups {
        for s in source.select(matchers, hints).await? {
            by_labels.entry(s.labels.clone()).or_insert(s);
        }
    }
    Ok(by_labels.into_values().collect())
}

/// Counts each vector selector of `expr` (matrix selectors' included) by its text.
pub(crate) fn count_selectors(expr: &Expr, seen: &mut HashMap<String, usize>) {
    match expr {
        Expr::VectorSelector(vs) => *seen.entry(vs.to_string()).or_default() += 1,
        Expr::MatrixSelector(ms) => *seen.entry(ms.vs.to_string()).or_default() += 1,
        Expr::Paren(p) => count_selectors(&p.expr, seen),
        Expr::Unary(u) => count_selectors(&u.expr, seen),
        Expr::Subquery(sq) => count_selectors(&sq.expr, seen),
        Expr::Binary(b) => {
            count_selectors(&b.lhs, seen);
            count_selectors(&b.rhs, seen);
        }
        Expr::Aggregate(a) => {
            count_selectors(&a.expr, seen);
            if let Some(p) = &a.param {
                count_selectors(p, seen);
            }
        }
        Expr::Call(c) => c.args.args.iter().for_each(|a| count_selectors(a, seen)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// The latest sample at or before `t` and after `t - lookback`, unless it is a stale marker.
fn latest(samples: &[(i64, f64)], t: i64, lookback: i64, left_closed: bool) -> Option<(i64, f64)> {
    let i = samples.partition_point(|s| s.0 <= t);
    let (st, v) = *samples.get(i.checked_sub(1)?)?;
    let inside = st > t - lookback || (left_closed && st == t - lookback);
    (inside && !is_stale_nan(v)).then_some((st, v))
}

fn min_max(times: &[i64]) -> (i64, i64) {
    let lo = times.iter().copied().min().unwrap_or(0);
    let hi = times.iter().copied().max().unwrap_or(0);
    (lo, hi)
}

fn to_store_matcher(m: &promql_parser::label::Matcher) -> Result<Matcher> {
    let op = match m.op {
        PMatchOp::Equal => MatchOp::Equal,
        PMatchOp::NotEqual => MatchOp::NotEqual,
        PMatchOp::Re(_) => MatchOp::Regex,
        PMatchOp::NotRe(_) => MatchOp::NotRegex,
    };
    Matcher::new(op, m.name.clone(), m.value.clone()).map_err(|e| bad(e.to_string()))
}

/// Merges series with equal labels; two values at the same step are an error, as in Prometheus.
pub(crate) fn merge_same_labels(series: Vec<StepSeries>) -> Result<Vec<StepSeries>> {
    let mut out: Vec<StepSeries> = Vec::with_capacity(series.len());
    let mut index: HashMap<Labels, usize> = HashMap::with_capacity(series.len());
    for s in series {
        match index.entry(s.labels) {
            Entry::Vacant(e) => {
                let labels = e.key().clone();
                e.insert(out.len());
                out.push(StepSeries {
                    labels,
                    vals: s.vals,
                });
            }
            Entry::Occupied(e) => {
                let target = &mut out[*e.get()];
                for (a, b) in target.vals.iter_mut().zip(s.vals) {
                    match (a.is_some(), b) {
                        (true, Some(_)) => {
                            return Err(exec(
                                "vector cannot contain metrics with the same labelset",
                            ));
                        }
                        (false, Some(v)) => *a = Some(v),
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The identity of an AST node: its address (stable while the query's AST lives).
pub(crate) fn node_id(expr: &Expr) -> usize {
    expr as *const Expr as usize
}

/// Strips parentheses.
pub(crate) fn unparen(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// Whether `e` is a range vector (an argument a range function reads window by window).
fn is_range(e: &Expr) -> bool {
    matches!(unparen(e), Expr::MatrixSelector(_) | Expr::Subquery(_))
}
