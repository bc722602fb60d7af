//! [`Engine`]: PromQL text in, [`QueryValue`] out, over any [`Source`].

use std::sync::Arc;
use std::time::Duration;

use datafusion::execution::TaskContext;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use datafusion::prelude::{SessionConfig, SessionContext};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self, Expr};

use crate::downsampling::SourceResolution;
use crate::error::{Result, bad};
use crate::eval::{Settings, unparen};
use crate::exec::batch::to_rows;
use crate::exec::{QueryCtx, ResultKind, from_df};
use crate::memory::QueryPool;
use crate::plan::{AggOp, Func, Planner};
use crate::value::{Grid, InstantSample, QueryValue, RangeSeries};
use crate::warnings;
use fleetscope_store::source::Source;

/// Engine settings (the querier's `--query.*` flags).
#[derive(Debug, Clone, Copy)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (`--query.lookback-delta`, 5m).
    pub lookback_delta: Duration,
    /// Step of subqueries written without one (Prometheus's default evaluation interval, 1m).
    pub subquery_step: Duration,
    /// Most samples a query may load (`--query.max-samples`, 50M).
    pub max_samples: usize,
    /// Which Prometheus's semantics to follow.
    pub compat: Compat,
    /// Partitions a query's per-series work is spread over (`--query.parallelism`, the cores).
    pub parallelism: usize,
    /// Memory all running queries may hold together, in bytes (`--query.max-total-memory`).
    pub max_memory: usize,
    /// Memory one query may hold, in bytes (`--query.max-memory`).
    pub max_query_memory: usize,
    /// Longest a query's evaluation may run: checked between series, so a query spending its time
    /// computing (not waiting) still ends at it (`None`: no limit; the API adds its own timeout).
    pub timeout: Option<Duration>,
    /// Functions and operators Prometheus keeps behind
    /// `--enable-feature=promql-experimental-functions` (`limitk`, `limit_ratio`, `info`).
    pub experimental_functions: bool,
    /// `fill`, `fill_left` and `fill_right` on binary operators, which Prometheus keeps behind
    /// `--enable-feature=promql-binop-fill-modifiers`.
    pub fill_modifiers: bool,
    /// The coarsest downsampled data queries read (raw unless `--query.auto-downsampling`;
    /// requests choose with `max_source_resolution`).
    pub max_source_resolution: SourceResolution,
}

/// The names `--enable-feature` takes that fleetscope knows, as Prometheus spells them.
pub const FEATURES: &[&str] = &[
    "promql-experimental-functions",
    "promql-binop-fill-modifiers",
];

/// Semantics to follow where Prometheus changed them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Compat {
    /// Current Prometheus (3.x): range and lookback windows open on the left; `rate()`
    /// extrapolation caps the start by the threshold before clamping to the counter's zero point.
    #[default]
    Current,
    /// Prometheus 2.x (for comparisons with an older server): windows closed on the left, the
    /// zero-point clamp applied first.
    Prometheus2,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_delta: Duration::from_secs(300),
            subquery_step: Duration::from_secs(60),
            max_samples: 50_000_000,
            compat: Compat::Current,
            parallelism: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_memory: 4 << 30,
            max_query_memory: 1 << 30,
            experimental_functions: false,
            fill_modifiers: false,
            timeout: None,
            max_source_resolution: SourceResolution::default(),
        }
    }
}

/// The PromQL engine: plans each query as a DataFusion physical plan ([`crate::plan`]) and runs it
/// in one DataFusion session shared by every query (its memory pool bounds them together).
#[derive(Clone)]
pub struct Engine {
    options: EngineOptions,
    session: SessionContext,
    /// The session's task context, made once: making one clones every function registry.
    task: Arc<TaskContext>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Default for Engine {
    fn default() -> Self {
        Self::new(EngineOptions::default())
    }
}

/// A query planned and ready to run.
#[derive(Debug)]
pub struct Planned {
    plan: Arc<dyn ExecutionPlan>,
    ctx: Arc<QueryCtx>,
    expr: Arc<Expr>,
    kind: ResultKind,
    grid: Grid,
}

impl Planned {
    /// The physical plan as indented text: one line per node, with its partitions.
    pub fn display(&self) -> String {
        displayable(self.plan.as_ref()).indent(true).to_string()
    }

    /// The plan as text with the figures of its last run (rows, samples, bytes, time per node).
    pub fn display_metrics(&self) -> String {
        DisplayableExecutionPlan::with_metrics(self.plan.as_ref())
            .indent(true)
            .to_string()
    }
}

impl Engine {
    /// An engine with `options`.
    pub fn new(options: EngineOptions) -> Self {
        let mut config = SessionConfig::new()
            .with_target_partitions(options.parallelism.max(1))
            .with_information_schema(true);
        config.options_mut().sql_parser.enable_ident_normalization = false;
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(options.max_memory.max(1 << 20), 1.0)
            .build_arc()
            .unwrap_or_default();
        let session = SessionContext::new_with_config_rt(config, runtime);
        Self {
            options,
            task: session.task_ctx(),
            session,
        }
    }

    /// The engine's settings.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// A task context of the session whose memory pool is a budget of its own
    /// ([`crate::memory::QueryPool`]) inside the session's.
    fn query_task_ctx(&self) -> Arc<TaskContext> {
        let session = &self.task;
        let shared = session.runtime_env();
        let pool = QueryPool::new(
            Arc::clone(&shared.memory_pool),
            self.options.max_query_memory.max(1 << 20),
        );
        let runtime = RuntimeEnv {
            memory_pool: Arc::new(pool),
            disk_manager: Arc::clone(&shared.disk_manager),
            cache_manager: Arc::clone(&shared.cache_manager),
            object_store_registry: Arc::clone(&shared.object_store_registry),
        };
        Arc::new(TaskContext::new(
            session.task_id(),
            session.session_id(),
            session.session_config().clone(),
            session.scalar_functions().clone(),
            session.higher_order_functions().clone(),
            session.aggregate_functions().clone(),
            session.window_functions().clone(),
            Arc::new(runtime),
        ))
    }

    /// The DataFusion session every query runs in.
    pub fn session(&self) -> &SessionContext {
        &self.session
    }

    /// Parses a query; the error says what is wrong and, where the parser tells, where.
    pub fn parse(query: &str) -> Result<Expr> {
        if query.trim().is_empty() {
            return Err(bad("empty query"));
        }
        check_string_escapes(query)?;
        // Refuse what is surely too deep before the parser spends time on it.
        if let Some(pos) = too_deep_text(query) {
            return Err(bad(format!(
                "expression nests more than {MAX_DEPTH} levels deep at char {pos} (parentheses, operators, function calls); at most {MAX_DEPTH}"
            )));
        }
        let expr = parser::parse(query).map_err(|e| bad(explain_parse_error(query, &e)))?;
        let depth = expr_depth(&expr);
        if depth > MAX_DEPTH {
            return Err(bad(format!(
                "expression nests {depth} levels deep (parentheses, operators, function calls); at most {MAX_DEPTH}"
            )));
        }
        Ok(expr)
    }

    /// [`Engine::parse`], refusing what this engine's options leave off, as Prometheus's parser
    /// does (an experimental operator without `--enable-feature=promql-experimental-functions`).
    fn parse_enabled(&self, query: &str) -> Result<Expr> {
        /// The first thing in an expression that needs a feature the options leave off.
        struct Off<'a>(&'a EngineOptions, Option<String>);
        impl promql_parser::util::ExprVisitor for Off<'_> {
            type Error = std::convert::Infallible;
            fn pre_visit(&mut self, e: &Expr) -> std::result::Result<bool, Self::Error> {
                self.1 = match e {
                    Expr::Aggregate(a) => AggOp::parse(&a.op.to_string())
                        .filter(|op| op.experimental() && !self.0.experimental_functions)
                        .map(|op| format!("{}() is experimental and must be enabled with --enable-feature=promql-experimental-functions", op.name())),
                    Expr::Call(c)
                        if !self.0.experimental_functions
                            && crate::plan::function(c.func.name)
                                .is_some_and(|f| f.experimental()) =>
                    {
                        Some(format!("function {:?} is not enabled", c.func.name))
                    }
                    Expr::Binary(b)
                        if !self.0.fill_modifiers
                            && b.modifier.as_ref().is_some_and(|m| {
                                m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some()
                            }) =>
                    {
                        Some("binop fill modifiers are experimental and not enabled".into())
                    }
                    _ => None,
                };
                Ok(self.1.is_none())
            }
        }
        let expr = Self::parse(query)?;
        let mut off = Off(&self.options, None);
        let _ = promql_parser::util::walk_expr(&mut off, &expr);
        match off.1 {
            Some(why) => Err(bad(format!("parse error: {why}"))),
            None => Ok(expr),
        }
    }

    /// Plans `query` at `t` (ms): an instant query.
    pub fn plan_instant(&self, source: &Arc<dyn Source>, query: &str, t: i64) -> Result<Planned> {
        let expr = Arc::new(self.parse_enabled(query)?);
        let kind = if matches!(unparen(&expr), Expr::MatrixSelector(_) | Expr::Subquery(_)) {
            ResultKind::Range
        } else {
            ResultKind::Steps
        };
        let grid = Grid {
            start: t,
            end: t,
            step: 1,
        };
        self.plan(source, expr, kind, grid, self.settings(t, t, 0))
    }

    /// Plans `query` at every step from `start` to `end` (ms): a range query.
    pub fn plan_range(
        &self,
        source: &Arc<dyn Source>,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Planned> {
        if step <= 0 {
            return Err(bad(
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        if end < start {
            return Err(bad("end timestamp must not be before start time"));
        }
        let expr = Arc::new(self.parse_enabled(query)?);
        match unparen(&expr) {
            Expr::MatrixSelector(_) | Expr::Subquery(_) => {
                return Err(bad(
                    "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector",
                ));
            }
            Expr::StringLiteral(_) => {
                return Err(bad(
                    "invalid expression type \"string\" for range query, must be Scalar or instant Vector",
                ));
            }
            _ => {}
        }
        let grid = Grid { start, end, step };
        self.plan(
            source,
            expr,
            ResultKind::Steps,
            grid,
            self.settings(start, end, step),
        )
    }

    fn plan(
        &self,
        source: &Arc<dyn Source>,
        expr: Arc<Expr>,
        kind: ResultKind,
        grid: Grid,
        settings: Settings,
    ) -> Result<Planned> {
        let ctx = QueryCtx::new(settings);
        let plan = Planner::new(source, &ctx, grid, self.options.parallelism)
            .plan(Arc::clone(&expr), kind)?;
        Ok(Planned {
            plan,
            ctx,
            expr,
            kind,
            grid,
        })
    }

    /// Runs a planned query; warnings of partial answers go to the enclosing
    /// [`crate::warnings::collect`].
    pub async fn execute(&self, planned: &Planned) -> Result<QueryValue> {
        let expr = planned.expr.as_ref();
        if let Expr::StringLiteral(s) = unparen(expr) {
            return Ok(QueryValue::String {
                t: planned.grid.start,
                s: s.val.clone(),
            });
        }
        let batches = collect(Arc::clone(&planned.plan), self.query_task_ctx()).await;
        if let Ok(mut reported) = planned.ctx.warnings.lock() {
            for w in reported.drain(..) {
                warnings::warn(w);
            }
        }
        let mut rows = Vec::new();
        for b in &batches.map_err(from_df)? {
            rows.extend(to_rows(b).map_err(from_df)?);
        }
        let t = planned.grid.start;
        let instant = planned.ctx.settings.query_step == 0;
        Ok(if planned.kind == ResultKind::Range || !instant {
            let mut out: Vec<RangeSeries> = rows
                .into_iter()
                .map(|(labels, samples)| RangeSeries { labels, samples })
                .collect();
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
            QueryValue::Matrix(out)
        } else if expr.value_type() == ValueType::Scalar {
            QueryValue::Scalar {
                t,
                v: rows
                    .first()
                    .and_then(|r| r.1.first())
                    .map_or(f64::NAN, |s| s.1),
            }
        } else {
            let mut out: Vec<InstantSample> = rows
                .into_iter()
                .filter_map(|(labels, samples)| {
                    samples
                        .first()
                        .map(|&(t, v)| InstantSample { labels, t, v })
                })
                .collect();
            sort_instant(&mut out, expr);
            QueryValue::Vector(out)
        })
    }

    /// Evaluates `query` at `t` (ms).
    pub async fn instant(
        &self,
        source: &Arc<dyn Source>,
        query: &str,
        t: i64,
    ) -> Result<QueryValue> {
        let planned = self.plan_instant(source, query, t)?;
        self.execute(&planned).await
    }

    /// Evaluates `query` at every step from `start` to `end` (ms).
    pub async fn range(
        &self,
        source: &Arc<dyn Source>,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<QueryValue> {
        let planned = self.plan_range(source, query, start, end, step)?;
        self.execute(&planned).await
    }

    /// This engine reading downsampled data at most `resolution` coarse (a request's
    /// `max_source_resolution`).
    pub fn with_max_source_resolution(&self, resolution: SourceResolution) -> Self {
        let mut engine = self.clone();
        engine.options.max_source_resolution = resolution;
        engine
    }

    pub(crate) fn settings(&self, start: i64, end: i64, step: i64) -> Settings {
        let lookback_ms = self.options.lookback_delta.as_millis() as i64;
        let resolution = self.options.max_source_resolution;
        let max_resolution = resolution.max_for_step(step);
        Settings {
            // Summaries are a window apart: an instant selector must look back two of them.
            lookback_ms: lookback_ms.max(2 * max_resolution),
            max_resolution,
            explicit_resolution: matches!(resolution, SourceResolution::Fixed(_)),
            subquery_step_ms: self.options.subquery_step.as_millis() as i64,
            max_samples: self.options.max_samples,
            query_start: start,
            query_end: end,
            query_step: step,
            prometheus2: self.options.compat == Compat::Prometheus2,
            deadline: self.options.timeout.map(|t| std::time::Instant::now() + t),
        }
    }
}

/// Orders an instant vector as its outermost operation does (by labels when it does not).
fn sort_instant(out: &mut [InstantSample], expr: &Expr) {
    match result_order(expr) {
        Order::Value { descending } => out.sort_by(|a, b| crate::eval::rank(a.v, b.v, descending)),
        Order::Labels { names, descending } => out.sort_by(|a, b| {
            let by_names = names
                .iter()
                .map(|n| natural_cmp(a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or("")));
            let ord = by_names
                .fold(std::cmp::Ordering::Equal, |acc, o| acc.then(o))
                .then_with(|| a.labels.cmp(&b.labels));
            if descending { ord.reverse() } else { ord }
        }),
        Order::Unordered => out.sort_by(|a, b| a.labels.cmp(&b.labels)),
    }
}

/// How the outermost operation orders an instant vector.
enum Order {
    /// By value (`sort`, `sort_desc`, `topk`, `bottomk`).
    Value { descending: bool },
    /// By label values, naturally (`sort_by_label`, `sort_by_label_desc`).
    Labels {
        names: Vec<String>,
        descending: bool,
    },
    /// Not ordered: we sort by labels for stable output.
    Unordered,
}

/// Deepest nesting of an expression a query may have (Prometheus users write tens of levels).
pub const MAX_DEPTH: usize = 2000;

/// Stack of the threads that parse, plan and evaluate queries: the evaluator recurses once per
/// level of the expression, and [`MAX_DEPTH`] levels must fit (reserved, not resident, until used).
pub const STACK_BYTES: usize = 256 << 20;

/// Where the text of a query nests brackets, or chains unary signs, more than [`MAX_DEPTH`]
/// deep (a 0-based char position), string literals skipped.
fn too_deep_text(query: &str) -> Option<usize> {
    let (mut depth, mut signs) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (pos, c) in query.chars().enumerate() {
        if let Some(q) = quote {
            match c {
                _ if escaped => escaped = false,
                '\\' if q != '`' => escaped = true,
                _ if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => (quote, signs) = (Some(c), 0),
            '(' | '[' | '{' => (depth, signs) = (depth + 1, 0),
            ')' | ']' | '}' => (depth, signs) = (depth.saturating_sub(1), 0),
            '+' | '-' => signs += 1,
            _ if c.is_whitespace() => {}
            _ => signs = 0,
        }
        if depth > MAX_DEPTH || signs > MAX_DEPTH {
            return Some(pos);
        }
    }
    None
}

/// The depth of `expr`'s tree, walked without recursion (the tree may be deeper than a stack).
fn expr_depth(expr: &Expr) -> usize {
    let mut deepest = 0;
    let mut todo: Vec<(&Expr, usize)> = vec![(expr, 1)];
    while let Some((e, d)) = todo.pop() {
        deepest = deepest.max(d);
        match e {
            Expr::Aggregate(a) => {
                todo.push((&a.expr, d + 1));
                if let Some(p) = &a.param {
                    todo.push((p, d + 1));
                }
            }
            Expr::Unary(u) => todo.push((&u.expr, d + 1)),
            Expr::Binary(b) => {
                todo.push((&b.lhs, d + 1));
                todo.push((&b.rhs, d + 1));
            }
            Expr::Paren(p) => todo.push((&p.expr, d + 1)),
            Expr::Subquery(q) => todo.push((&q.expr, d + 1)),
            Expr::Call(c) => todo.extend(c.args.args.iter().map(|a| (a.as_ref(), d + 1))),
            _ => {}
        }
    }
    deepest
}

fn result_order(expr: &Expr) -> Order {
    match unparen(expr) {
        Expr::Call(c) => match crate::plan::function(c.func.name).map(|f| f.func) {
            Some(Func::Sort) => Order::Value { descending: false },
            Some(Func::SortDesc) => Order::Value { descending: true },
            Some(f @ (Func::SortByLabel | Func::SortByLabelDesc)) => Order::Labels {
                names: c
                    .args
                    .args
                    .iter()
                    .skip(1)
                    .filter_map(|a| match a.as_ref() {
                        Expr::StringLiteral(s) => Some(s.val.clone()),
                        _ => None,
                    })
                    .collect(),
                descending: f == Func::SortByLabelDesc,
            },
            _ => Order::Unordered,
        },
        Expr::Aggregate(a) => match AggOp::parse(&a.op.to_string()) {
            Some(AggOp::Topk) => Order::Value { descending: true },
            Some(AggOp::Bottomk) => Order::Value { descending: false },
            _ => Order::Unordered,
        },
        _ => Order::Unordered,
    }
}

/// Natural order: digit runs compare as numbers (`cpu2` < `cpu10`).
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let dx = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let dy = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (nx, ny) = (&x[..dx], &y[..dy]);
                let trim = |n: &[u8]| -> usize { n.iter().take_while(|c| **c == b'0').count() };
                let (tx, ty) = (&nx[trim(nx)..], &ny[trim(ny)..]);
                let ord = tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty));
                if ord != Ordering::Equal {
                    return ord;
                }
                (x, y) = (&x[dx..], &y[dy..]);
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                (x, y) = (&x[1..], &y[1..]);
            }
        }
    }
}

/// Rejects string literals whose `\x` escapes spell invalid UTF-8: Go's parser keeps such bytes
/// (and Prometheus then refuses them as label names or values); ours would read them as Latin-1.
fn check_string_escapes(query: &str) -> Result<()> {
    let b = query.as_bytes();
    let (mut i, mut quote) = (0, None::<u8>);
    let mut bytes: Vec<u8> = Vec::new();
    let mut start = 0;
    while i < b.len() {
        let c = b[i];
        match quote {
            None if c == b'"' || c == b'\'' => {
                quote = Some(c);
                bytes.clear();
                start = i;
            }
            None if c == b'#' => {
                // A comment runs to the end of the line.
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            None => {}
            Some(q) if c == q => {
                if std::str::from_utf8(&bytes).is_err() {
                    return Err(bad(format!(
                        "invalid UTF-8 in the string literal at position {}",
                        start + 1
                    )));
                }
                quote = None;
            }
            Some(_) if c == b'\\' && b.get(i + 1) == Some(&b'x') => {
                let hex = query
                    .get(i + 2..i + 4)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(v) = hex {
                    bytes.push(v);
                    i += 3;
                }
            }
            Some(_) if c == b'\\' => {
                bytes.push(b'\\');
                if let Some(&n) = b.get(i + 1) {
                    bytes.push(n);
                }
                i += 1;
            }
            Some(_) => bytes.push(c),
        }
        i += 1;
    }
    Ok(())
}

/// The parser's message, plus a hint for common mistakes.
fn explain_parse_error(query: &str, err: &str) -> String {
    let compact: String = query.chars().filter(|c| !c.is_whitespace()).collect();
    let rate_like = ["rate(", "irate(", "increase(", "delta(", "deriv("];
    if let Some(f) = rate_like.iter().find(|f| compact.contains(**f))
        && compact.contains(")[")
        && !compact.contains(":]")
    {
        let fname = f.trim_end_matches('(');
        let at = query
            .find(")[")
            .map_or(1, |i| query[..=i].chars().count() + 1);
        return format!(
            "1:{at}: {err}: the range goes inside {fname}(), right after the selector: write {fname}(metric[5m]), not {fname}(metric)[5m]"
        );
    }
    let (line, col) = error_position(query);
    format!("{line}:{col}: parse error: {err}")
}

/// Where a query stops making sense: the end of the shortest prefix that fails for a reason other
/// than being incomplete (the parser reports no positions itself). `line:column`, 1-based.
fn error_position(query: &str) -> (usize, usize) {
    const INCOMPLETE: [&str; 4] = [
        "end of input",
        "unclosed",
        "unterminated",
        "unexpected <eof>",
    ];
    // By default the problem is the end of the input (the column just past the last character).
    let mut end = query.len();
    let mut past_end = 1;
    if query.len() <= 4096 {
        for (i, c) in query.char_indices() {
            let prefix = &query[..i + c.len_utf8()];
            if let Err(e) = parser::parse(prefix)
                && !INCOMPLETE.iter().any(|w| e.contains(w))
            {
                end = i + c.len_utf8();
                past_end = 0;
                break;
            }
        }
    }
    let before = &query[..end];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + past_end;
    (line, col.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetscope_store::source::MemSource;
    use fleetscope_store::{Labels, MemSeriesSet};

    /// A source counting its selections.
    #[derive(Debug)]
    struct Counting(MemSource, std::sync::atomic::AtomicUsize);

    impl Source for Counting {
        fn select<'a>(
            &'a self,
            matchers: &'a [fleetscope_store::Matcher],
            hints: &'a fleetscope_store::SelectHints,
        ) -> fleetscope_store::source::SelectFuture<'a> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.0.select(matchers, hints)
        }
    }

    #[tokio::test]
    async fn a_selector_written_twice_is_read_once() {
        let mut set = MemSeriesSet::new();
        for (name, v) in [("used", 3.0), ("free", 1.0)] {
            let l = Labels::from_pairs([("__name__", name), ("gpu", "0")]);
            set.append(&l, 0, v);
        }
        let counting = Arc::new(Counting(
            MemSource {
                set,
                external: Labels::empty(),
            },
            Default::default(),
        ));
        let src: Arc<dyn Source> = Arc::clone(&counting) as _;
        let engine = Engine::new(EngineOptions::default());
        let q = "sum(used) / sum(used + free) + sum(count_over_time(used[1m])) - sum(count_over_time(used[1m]))";
        let QueryValue::Vector(v) = engine.instant(&src, q, 30_000).await.unwrap() else {
            panic!("a vector")
        };
        assert_eq!(v[0].v, 0.75);
        // `used` twice at one range, `used[1m]` twice at another, `free` once.
        assert_eq!(counting.1.load(std::sync::atomic::Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn a_query_busy_computing_ends_at_its_timeout() {
        let mut set = MemSeriesSet::new();
        for i in 0..200 {
            let l = Labels::from_pairs([("__name__", "x"), ("i", &i.to_string())]);
            for t in 0..120 {
                set.append(&l, t * 30_000, t as f64);
            }
        }
        let src: Arc<dyn Source> = Arc::new(MemSource {
            set,
            external: Labels::empty(),
        });
        // 200 series x 3,600 inner steps x 3,600 outer windows: minutes of work.
        let q = "count(max_over_time(x[1h:1s]))";
        let (t, end) = (3_600_000, 7_200_000);
        let engine = Engine::new(EngineOptions {
            timeout: Some(std::time::Duration::from_millis(200)),
            ..EngineOptions::default()
        });
        let started = std::time::Instant::now();
        let err = engine.range(&src, q, t, end, 1000).await.unwrap_err();
        assert!(matches!(err, crate::Error::Timeout(_)), "{err}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "ended {:?} after a 200 ms timeout",
            started.elapsed()
        );
    }

    /// The cases where Prometheus 3 and 2 differ, with the values Prometheus 2.42 gives
    /// (checked through the conformance harness against Debian's Prometheus).
    #[tokio::test]
    async fn prometheus2_compat_matches_the_old_semantics() {
        let mut set = MemSeriesSet::new();
        let l = Labels::from_pairs([("__name__", "x")]);
        for i in 0..=10 {
            set.append(&l, i * 60_000, (i * 10) as f64);
        }
        let pod = Labels::from_pairs([("__name__", "c")]);
        for (t, v) in [
            (284_405, 0.416874671),
            (299_405, 0.931420682),
            (314_405, 1.429672605),
            (329_405, 1.9),
        ] {
            set.append(&pod, t, v);
        }
        let src: Arc<dyn Source> = Arc::new(MemSource {
            set,
            external: Labels::empty(),
        });
        let run = |compat, q: &'static str, t| {
            let engine = Engine::new(EngineOptions {
                compat,
                ..Default::default()
            });
            let src = &src;
            async move {
                match engine.instant(src, q, t).await.unwrap() {
                    QueryValue::Vector(v) => v[0].v,
                    QueryValue::Scalar { v, .. } => v,
                    other => panic!("{other:?}"),
                }
            }
        };
        // The sample at t - range counts in Prometheus 2 only.
        assert_eq!(
            run(Compat::Current, "count_over_time(x[2m])", 600_000).await,
            2.0
        );
        assert_eq!(
            run(Compat::Prometheus2, "count_over_time(x[2m])", 600_000).await,
            3.0
        );
        assert_eq!(
            run(Compat::Current, "count_over_time(x[3m:1m])", 600_000).await,
            3.0
        );
        assert_eq!(
            run(Compat::Prometheus2, "count_over_time(x[3m:1m])", 600_000).await,
            4.0
        );
        // A counter that starts inside the window: the zero-point clamp order differs.
        let now = run(Compat::Current, "rate(c[5m])", 340_000).await;
        let old = run(Compat::Prometheus2, "rate(c[5m])", 340_000).await;
        assert!(now < old, "{now} vs {old}");
    }

    #[tokio::test]
    async fn experimental_operators_need_their_feature() {
        let source: Arc<dyn Source> = Arc::new(crate::MemSource {
            set: fleetscope_store::MemSeriesSet::new(),
            external: Labels::empty(),
        });
        let off = Engine::new(EngineOptions::default());
        for q in ["limitk(1, up)", "sum(limit_ratio(0.5, up)) + 1"] {
            let err = off.instant(&source, q, 0).await.unwrap_err().to_string();
            assert!(
                err.contains("is experimental and must be enabled with --enable-feature=promql-experimental-functions"),
                "{q}: {err}"
            );
        }
        let err = off.instant(&source, "info(up)", 0).await.unwrap_err();
        assert!(
            err.to_string().contains("function \"info\" is not enabled"),
            "{err}"
        );
        let err = off.instant(&source, "a + fill(0) b", 0).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("binop fill modifiers are experimental and not enabled"),
            "{err}"
        );
        let on = Engine::new(EngineOptions {
            experimental_functions: true,
            fill_modifiers: true,
            ..EngineOptions::default()
        });
        assert!(on.instant(&source, "limitk(1, up)", 0).await.is_ok());
        assert!(
            on.instant(&source, "a + fill_left(1) fill_right(2) b", 0)
                .await
                .is_ok()
        );
    }

    #[test]
    fn parse_errors_say_where() {
        let err = |q| Engine::parse(q).unwrap_err().to_string();
        assert!(
            err("sum(up{job=\"a\"").starts_with("1:15: parse error"),
            "{}",
            err("sum(up{job=\"a\"")
        );
        assert!(
            err("sum(up) by").starts_with("1:9:"),
            "{}",
            err("sum(up) by")
        );
        assert!(err("up +* 2").starts_with("1:4:"), "{}", err("up +* 2"));
        let hint = err("sum(rate(container_cpu_usage_seconds_total)[5m])");
        assert!(
            hint.starts_with("1:44:") && hint.contains("write rate(metric[5m])"),
            "{hint}"
        );
    }

    /// 200 series of 120 samples (an hour at 30 s).
    fn two_hundred() -> Arc<dyn Source> {
        let mut set = MemSeriesSet::new();
        for i in 0..200 {
            let l = Labels::from_pairs([("__name__", "x"), ("i", &i.to_string())]);
            for t in 0..120 {
                set.append(&l, t * 30_000, t as f64);
            }
        }
        Arc::new(MemSource {
            set,
            external: Labels::empty(),
        })
    }

    #[tokio::test]
    async fn steps_times_series_are_counted_before_they_are_made() {
        // 24,000 samples load, but 200 series x 3,601 steps of values would be 720,200 points.
        let engine = Engine::new(EngineOptions {
            max_samples: 100_000,
            ..EngineOptions::default()
        });
        let err = engine
            .range(&two_hundred(), "x", 0, 3_600_000, 1000)
            .await
            .unwrap_err();
        assert!(
            matches!(err, crate::Error::TooManySamples("query evaluation")),
            "{err}"
        );
        // A grid that fits answers.
        let ok = engine
            .range(&two_hundred(), "x", 0, 3_600_000, 60_000)
            .await;
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[tokio::test]
    async fn a_query_past_its_memory_fails_clearly_and_frees_it() {
        let engine = Engine::new(EngineOptions {
            max_query_memory: 4 << 20,
            max_memory: 64 << 20,
            ..EngineOptions::default()
        });
        // 200 series x 3,601 steps x 16 bytes per value, twice (selector, rate): about 23 MB.
        let q = "sum(rate(x[5m])) + sum(x)";
        let err = engine
            .range(&two_hundred(), q, 0, 3_600_000, 1000)
            .await
            .unwrap_err();
        match &err {
            crate::Error::ResourcesExhausted(m) => assert!(m.contains("--query.max-memory"), "{m}"),
            other => panic!("{other}"),
        }
        // Nothing stays reserved once the query ended.
        assert_eq!(engine.session().runtime_env().memory_pool.reserved(), 0);
        let ok = engine.range(&two_hundred(), q, 0, 3_600_000, 60_000).await;
        assert!(ok.is_ok(), "{ok:?}");
    }
}
