//! PromQL to a DataFusion physical plan: which parts of a query run per series inside each
//! partition, which aggregations run in two phases, and what is left for the single-partition root.
//! The nodes are in [`crate::exec`].

pub mod table;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::physical_expr::expressions::col;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, Partitioning};
use fleetscope_store::SelectHints;
use promql_parser::parser::token::TokenType;
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier, VectorSelector};

use crate::error::{Error, Result};
use crate::eval::{Evaluator, count_selectors, node_id, selector_matchers};
use crate::exec::batch::{SERIES_KEY, SERIES_SCHEMA};
use crate::exec::{
    AggregateMode, PromAggregateExec, PromEvalExec, PromScanExec, PromSeriesExec, QueryCtx,
    ResultKind,
};
use crate::value::Grid;
use fleetscope_store::source::Source;
pub use table::{AggOp, ArgKind, FUNCTIONS, Func, Function, Placement, function};

/// Sources grouped into a scan's partitions.
type Partitions = Vec<Vec<Arc<dyn Source>>>;

/// Builds the physical plan of one query.
pub(crate) struct Planner<'a> {
    source: &'a Arc<dyn Source>,
    ctx: &'a Arc<QueryCtx>,
    grid: Grid,
    parallelism: usize,
    children: Vec<Arc<dyn ExecutionPlan>>,
    leaves: Vec<Vec<usize>>,
    /// Child index by the text of the sub-expression it computes (a repeated one is read once).
    by_text: HashMap<String, usize>,
    /// Selectors written more than once (their selections are shared between scans).
    repeated: HashSet<String>,
    /// Sources split into partitions, by time range and resolution (the same split for every
    /// scan of them).
    partitions: RefCell<HashMap<(i64, i64, i64), Partitions>>,
}

impl<'a> Planner<'a> {
    pub(crate) fn new(
        source: &'a Arc<dyn Source>,
        ctx: &'a Arc<QueryCtx>,
        grid: Grid,
        parallelism: usize,
    ) -> Self {
        Self {
            source,
            ctx,
            grid,
            parallelism: parallelism.max(1),
            children: Vec::new(),
            leaves: Vec::new(),
            by_text: HashMap::new(),
            repeated: HashSet::new(),
            partitions: RefCell::default(),
        }
    }

    /// The plan of `expr` (its AST must stay where it is: the plan refers to its nodes).
    pub(crate) fn plan(
        mut self,
        expr: Arc<Expr>,
        kind: ResultKind,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if kind == ResultKind::Steps {
            let mut seen = HashMap::new();
            count_selectors(&expr, &mut seen);
            self.repeated = seen
                .into_iter()
                .filter(|(_, n)| *n > 1)
                .map(|(s, _)| s)
                .collect();
            self.walk(&expr)?;
        }
        Ok(Arc::new(PromEvalExec::new(
            self.children,
            self.leaves,
            expr,
            self.grid,
            kind,
            Arc::clone(self.source),
            Arc::clone(self.ctx),
        )))
    }

    /// Plans the largest sub-trees of `expr` that can run below the root.
    fn walk(&mut self, expr: &Expr) -> Result<()> {
        if let Expr::Aggregate(agg) = expr
            && let Some(op) = AggOp::parse(&agg.op.to_string())
            && op.two_phase()
            && agg.param.is_none()
            && per_series(&agg.expr)
        {
            return self.leaf(expr, |p| p.aggregate(agg, op));
        }
        if per_series(expr) {
            return self.leaf(expr, |p| p.series(expr));
        }
        match expr {
            Expr::Paren(p) => self.walk(&p.expr),
            Expr::Unary(u) => self.walk(&u.expr),
            Expr::Binary(b) => {
                self.walk(&b.lhs)?;
                self.walk(&b.rhs)
            }
            Expr::Aggregate(a) => {
                self.walk(&a.expr)?;
                match &a.param {
                    Some(p) => self.walk(p),
                    None => Ok(()),
                }
            }
            // info()'s second argument is a label selector, not a selection.
            Expr::Call(c) if c.func.name == "info" => match c.args.args.first() {
                Some(a) => self.walk(a),
                None => Ok(()),
            },
            Expr::Call(c) => c.args.args.iter().try_for_each(|a| self.walk(a)),
            // Subqueries evaluate on their own grid, range vectors are read where they are used:
            // both in the root.
            _ => Ok(()),
        }
    }

    fn leaf(
        &mut self,
        expr: &Expr,
        build: impl FnOnce(&Self) -> Result<Arc<dyn ExecutionPlan>>,
    ) -> Result<()> {
        let text = expr.to_string();
        let i = match self.by_text.get(&text) {
            Some(&i) => i,
            None => {
                let plan = build(self)?;
                self.children.push(plan);
                self.leaves.push(Vec::new());
                self.by_text.insert(text, self.children.len() - 1);
                self.children.len() - 1
            }
        };
        self.leaves[i].push(node_id(expr));
        Ok(())
    }

    /// Scan, repartition by series and per-series evaluation: as many partitions as parallelism.
    /// `grouping` is the enclosing aggregation's, for the selection's hints.
    fn per_series_plan(
        &self,
        expr: &Expr,
        grouping: Option<&LabelModifier>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (vs, range) = selector_of(expr)
            .ok_or_else(|| Error::Internal(format!("no selector in per-series {expr}")))?;
        let ev = Evaluator::new(self.source.as_ref(), self.ctx.settings, expr);
        let times = ev.effective_times(self.grid, vs.at.as_ref(), vs.offset.as_ref());
        let lo = times.iter().copied().min().unwrap_or(0);
        let hi = times.iter().copied().max().unwrap_or(0);
        let look_back = range.unwrap_or(self.ctx.settings.lookback_ms);
        let (min_t, max_t) = (lo.saturating_sub(look_back), hi);
        let settings = &self.ctx.settings;
        let func = function_of(expr);
        let (resolution, aggregate, warning) = crate::downsampling::for_selection(
            settings.max_resolution,
            settings.explicit_resolution,
            func,
            range,
        );
        self.ctx.warn(warning.into_iter().collect());
        let (grouping, by) = match grouping {
            Some(LabelModifier::Include(l)) => (l.labels.clone(), true),
            Some(LabelModifier::Exclude(l)) => (l.labels.clone(), false),
            None => (Vec::new(), false),
        };
        let hints = SelectHints {
            start: min_t,
            end: max_t,
            step: settings.query_step,
            range: look_back,
            func: func.map(str::to_string),
            grouping,
            by,
            resolution,
            aggregate,
        };
        let partitions = self
            .partitions
            .borrow_mut()
            .entry((min_t, max_t, resolution))
            .or_insert_with(|| {
                let parts = self
                    .source
                    .parts(&hints)
                    .unwrap_or_else(|| vec![Arc::clone(self.source)]);
                balance(parts, self.parallelism)
            })
            .clone();
        let scan: Arc<dyn ExecutionPlan> = Arc::new(PromScanExec::new(
            vs.to_string(),
            selector_matchers(vs)?,
            hints,
            partitions,
            self.repeated.contains(&vs.to_string()),
            Arc::clone(self.ctx),
        ));
        // One scan partition already holds every copy of each series. Spreading its series over
        // the cores pays for range queries; an instant query's per-series work is a few samples
        // a series, less than the channels and tasks of a repartition cost.
        let input = if scan.output_partitioning().partition_count() == 1
            && (self.parallelism == 1 || self.grid.len() == 1)
        {
            scan
        } else {
            let key =
                col(SERIES_KEY, &SERIES_SCHEMA).map_err(|e| Error::Internal(e.to_string()))?;
            Arc::new(
                RepartitionExec::try_new(scan, Partitioning::Hash(vec![key], self.parallelism))
                    .map_err(|e| Error::Internal(e.to_string()))?,
            )
        };
        // Over downsampled data `count_over_time` adds up counts (raw samples count one each).
        let expr = if settings.max_resolution > 0 {
            crate::downsampling::rewrite(expr)
        } else {
            expr.clone()
        };
        Ok(Arc::new(PromSeriesExec::new(
            input,
            Arc::new(expr),
            self.grid,
            Arc::clone(self.ctx),
        )))
    }

    fn series(&self, expr: &Expr) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(coalesce(self.per_series_plan(expr, None)?))
    }

    fn aggregate(&self, agg: &AggregateExpr, op: AggOp) -> Result<Arc<dyn ExecutionPlan>> {
        let n = self.grid.len();
        let partial = Arc::new(PromAggregateExec::new(
            self.per_series_plan(&agg.expr, agg.modifier.as_ref())?,
            AggregateMode::Partial,
            op,
            agg.modifier.clone(),
            n,
        ));
        Ok(Arc::new(PromAggregateExec::new(
            coalesce(partial),
            AggregateMode::Final,
            op,
            agg.modifier.clone(),
            n,
        )))
    }
}

fn coalesce(plan: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    if plan.output_partitioning().partition_count() == 1 {
        plan
    } else {
        Arc::new(CoalescePartitionsExec::new(plan))
    }
}

/// Sources spread over at most `n` partitions, largest first onto the least loaded.
pub(crate) fn balance(mut parts: Vec<Arc<dyn Source>>, n: usize) -> Partitions {
    let n = n.min(parts.len()).max(1);
    parts.sort_by_key(|p| std::cmp::Reverse(p.size_hint()));
    let mut bins: Vec<(u64, Vec<Arc<dyn Source>>)> = vec![(0, Vec::new()); n];
    for p in parts {
        if let Some(bin) = bins.iter_mut().min_by_key(|b| b.0) {
            bin.0 += p.size_hint();
            bin.1.push(p);
        }
    }
    bins.into_iter().map(|b| b.1).collect()
}

/// Whether `expr` computes each output series from one input series only: a selector under
/// per-series functions, range functions of a matrix selector, unary minus and arithmetic or
/// comparisons with numbers.
pub(crate) fn per_series(expr: &Expr) -> bool {
    match expr {
        Expr::VectorSelector(_) => true,
        Expr::Paren(p) => per_series(&p.expr),
        Expr::Unary(u) => per_series(&u.expr),
        Expr::Binary(b) => {
            !is_set_operator(b.op)
                && ((per_series(&b.lhs) && is_number(&b.rhs))
                    || (is_number(&b.lhs) && per_series(&b.rhs)))
        }
        Expr::Call(c) => {
            let Some(f) = function(c.func.name) else {
                return false;
            };
            let args = &c.args.args;
            if f.placement != Placement::PerSeries || args.is_empty() {
                return false;
            }
            args.iter().zip(f.args).all(|(a, kind)| match kind {
                ArgKind::InstantVector => per_series(a),
                ArgKind::RangeVector => matches!(unparen(a), Expr::MatrixSelector(_)),
                ArgKind::Scalar => is_number(a),
                ArgKind::String => false,
            })
        }
        _ => false,
    }
}

fn is_set_operator(op: TokenType) -> bool {
    matches!(
        op.to_string().to_lowercase().as_str(),
        "and" | "or" | "unless"
    )
}

fn is_number(expr: &Expr) -> bool {
    match expr {
        Expr::NumberLiteral(_) => true,
        Expr::Paren(p) => is_number(&p.expr),
        Expr::Unary(u) => is_number(&u.expr),
        _ => false,
    }
}

fn unparen(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// The innermost function a per-series expression applies to its selector (Prometheus's
/// `SelectHints.Func`).
fn function_of(expr: &Expr) -> Option<&'static str> {
    match expr {
        Expr::Paren(p) => function_of(&p.expr),
        Expr::Unary(u) => function_of(&u.expr),
        Expr::Binary(b) => function_of(&b.lhs).or_else(|| function_of(&b.rhs)),
        Expr::Call(c) => c
            .args
            .args
            .iter()
            .find_map(|a| function_of(a))
            .or(Some(c.func.name)),
        _ => None,
    }
}

/// The one selector of a per-series expression, with its range if it is a matrix selector.
fn selector_of(expr: &Expr) -> Option<(&VectorSelector, Option<i64>)> {
    match expr {
        Expr::VectorSelector(vs) => Some((vs, None)),
        Expr::MatrixSelector(ms) => Some((&ms.vs, Some(ms.range.as_millis() as i64))),
        Expr::Paren(p) => selector_of(&p.expr),
        Expr::Unary(u) => selector_of(&u.expr),
        Expr::Binary(b) => selector_of(&b.lhs).or_else(|| selector_of(&b.rhs)),
        Expr::Call(c) => c.args.args.iter().find_map(|a| selector_of(a)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fleetscope_store::{Labels, MemSeriesSet, MemSource, Source};

    use super::*;
    use crate::{Engine, EngineOptions};

    fn parse(q: &str) -> Expr {
        promql_parser::parser::parse(q).unwrap()
    }

    #[test]
    fn per_series_sub_trees_are_recognised() {
        for q in [
            "x",
            "rate(x[5m])",
            "abs(x) * 2",
            "-clamp_min(x, 0)",
            "quantile_over_time(0.9, x[1h])",
            "2 ^ round(x, 0.5) > bool 1",
            "timestamp(x offset 5m)",
        ] {
            assert!(per_series(&parse(q)), "{q} is per series");
        }
        for q in [
            "x + y",
            "sum(x)",
            "label_replace(x, \"a\", \"$1\", \"b\", \"(.*)\")",
            "rate(x[5m:1m])",
            "round(x, scalar(y))",
            "absent(x)",
            "day_of_month()",
            "1 + 2",
        ] {
            assert!(!per_series(&parse(q)), "{q} is not per series");
        }
    }

    #[test]
    fn plans_push_per_series_work_and_partial_aggregation_below_the_root() {
        let mut set = MemSeriesSet::new();
        set.append(&Labels::from_pairs([("__name__", "x"), ("a", "1")]), 0, 1.0);
        let source: Arc<dyn Source> = Arc::new(MemSource {
            set,
            external: Labels::empty(),
        });
        let engine = Engine::new(EngineOptions {
            parallelism: 2,
            ..EngineOptions::default()
        });
        let plan = |q: &str| engine.plan_instant(&source, q, 60_000).unwrap().display();

        let p = plan("sum by (a) (rate(x[5m])) / on() group_left count(x)");
        assert_eq!(p.matches("PromScanExec").count(), 2, "{p}");
        assert_eq!(p.matches("mode=Partial").count(), 2, "{p}");
        // One source: an instant query's series stay in the scan's partition, a range query's
        // are spread over the cores.
        assert!(p.contains("func=rate") && !p.contains("Hash("), "{p}");
        let q = "sum by (a) (rate(x[5m]))";
        let p = engine
            .plan_range(&source, q, 0, 600_000, 60_000)
            .unwrap()
            .display();
        assert!(p.contains("Hash([series_key@0], 2)"), "{p}");

        // Whole-set operators run in the root over per-series leaves.
        let p = plan("topk(2, x * 2)");
        assert!(!p.contains("PromAggregateExec"), "{p}");
        assert!(p.contains("PromSeriesExec: expr=x * 2"), "{p}");

        // A selector written twice is one leaf.
        let p = plan("x / (x + 1)");
        assert_eq!(p.matches("PromSeriesExec").count(), 2, "{p}");
        assert!(p.contains("leaves=2"), "{p}");
    }
}
