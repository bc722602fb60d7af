//! [`PromEvalExec`]: the root of every PromQL plan, in one partition.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use datafusion::common::Result as DfResult;
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, ReplaceChildrenOptions,
    SendableRecordBatchStream,
};
use fleetscope_store::Labels;
use futures::TryStreamExt;
use promql_parser::parser::Expr;

use super::batch::{RESULT_SCHEMA, from_rows, to_steps};
use super::{QueryCtx, properties, to_df};
use crate::error::{Error, bad};
use crate::eval::Evaluator;
use crate::value::{Grid, StepSeries, Value};
use fleetscope_store::source::Source;

/// What the root evaluates: an instant-vector or scalar expression over the grid, or (instant
/// queries only) a range-vector expression at one time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResultKind {
    /// One value per step (scalar or instant vector).
    Steps,
    /// The samples in the window at the single step (matrix selectors and subqueries).
    Range,
}

/// Evaluates the whole query over its grid. Sub-expressions planned below (its children, in the
/// order of `leaves`) are taken as computed; the rest — vector matching, subqueries, `topk`,
/// label functions, anything that needs every series at once — runs here with the evaluator,
/// reading any selector not planned below (inside subqueries) from `source`. Emits
/// [`RESULT_SCHEMA`] rows: `(t, v)` samples per series; a scalar is one row without labels.
pub(crate) struct PromEvalExec {
    children: Vec<Arc<dyn ExecutionPlan>>,
    /// For each child, the AST nodes (by [`crate::eval::node_id`]) whose value it computes.
    leaves: Vec<Vec<usize>>,
    expr: Arc<Expr>,
    grid: Grid,
    kind: ResultKind,
    source: Arc<dyn Source>,
    ctx: Arc<QueryCtx>,
    metrics: ExecutionPlanMetricsSet,
    properties: Arc<PlanProperties>,
}

impl PromEvalExec {
    /// The root of a plan for `expr` over `grid`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        children: Vec<Arc<dyn ExecutionPlan>>,
        leaves: Vec<Vec<usize>>,
        expr: Arc<Expr>,
        grid: Grid,
        kind: ResultKind,
        source: Arc<dyn Source>,
        ctx: Arc<QueryCtx>,
    ) -> Self {
        Self {
            children,
            leaves,
            expr,
            grid,
            kind,
            source,
            ctx,
            metrics: ExecutionPlanMetricsSet::new(),
            properties: properties(Arc::clone(&RESULT_SCHEMA), 1),
        }
    }
}

impl fmt::Debug for PromEvalExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        DisplayAs::fmt_as(self, DisplayFormatType::Default, f)
    }
}

impl DisplayAs for PromEvalExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PromEvalExec: expr={}, steps={}, leaves={}",
            self.expr,
            self.grid.len(),
            self.children.len()
        )
    }
}

impl ExecutionPlan for PromEvalExec {
    plan_node_common!("PromEvalExec");

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.children.iter().collect()
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self::new(
            children,
            self.leaves.clone(),
            Arc::clone(&self.expr),
            self.grid,
            self.kind,
            Arc::clone(&self.source),
            Arc::clone(&self.ctx),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let inputs = self
            .children
            .iter()
            .map(|c| c.execute(0, Arc::clone(&context)))
            .collect::<DfResult<Vec<_>>>()?;
        let reservation = MemoryConsumer::new("PromEvalExec").register(context.memory_pool());
        let pool = Arc::clone(context.memory_pool());
        let rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let leaves = self.leaves.clone();
        let (expr, grid, kind) = (Arc::clone(&self.expr), self.grid, self.kind);
        let (source, ctx) = (Arc::clone(&self.source), Arc::clone(&self.ctx));
        let future = async move {
            let mut done: HashMap<usize, Arc<Vec<StepSeries>>> = HashMap::new();
            for (input, ids) in inputs.into_iter().zip(leaves) {
                let mut series = Vec::new();
                let batches: Vec<_> = input.try_collect().await?;
                for b in &batches {
                    reservation.try_grow(b.get_array_memory_size())?;
                    series.extend(to_steps(b, grid.len())?);
                }
                let series = Arc::new(series);
                for id in ids {
                    done.insert(id, Arc::clone(&series));
                }
            }
            let ev = Evaluator::new(source.as_ref(), ctx.settings, &expr)
                .with_counter(Arc::clone(&ctx.loaded))
                .with_memory(&pool)
                .with_precomputed(done);
            // Annotations of the evaluation (e.g. a capped `limit_ratio`) go to the query's warnings.
            let (out, reported) = crate::warnings::collect(evaluate(&ev, &expr, grid, kind)).await;
            ctx.warn(reported);
            let out = out.map_err(to_df)?;
            rows.add(out.len());
            from_rows(&out)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&RESULT_SCHEMA),
            futures::stream::once(future),
        )))
    }
}

type Rows = Vec<super::batch::Row>;

async fn evaluate(
    ev: &Evaluator<'_>,
    expr: &Expr,
    grid: Grid,
    kind: ResultKind,
) -> Result<Rows, Error> {
    if kind == ResultKind::Range {
        let input = ev.eval_range(expr, grid).await?;
        return Ok((0..input.series.len())
            .filter_map(|i| {
                let (labels, samples) = &input.series[i];
                let window = input.window(samples, 0);
                (!window.is_empty()).then(|| (labels.clone(), window.to_vec()))
            })
            .collect());
    }
    Ok(match ev.eval(expr, grid).await? {
        Value::Scalar(v) => vec![(
            Labels::empty(),
            v.iter().enumerate().map(|(i, v)| (grid.t(i), *v)).collect(),
        )],
        Value::Vector(series) => series
            .into_iter()
            .map(|s| {
                let samples = s.samples(grid);
                (s.labels, samples)
            })
            .filter(|(_, s)| !s.is_empty())
            .collect(),
        Value::String => return Err(bad("a string is not a result of this plan")),
    })
}
