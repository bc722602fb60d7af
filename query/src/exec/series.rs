//! [`PromSeriesExec`]: the per-series part of a query, run inside each partition.

use std::fmt;
use std::sync::{Arc, Mutex};

use datafusion::common::Result as DfResult;
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
    ReplaceChildrenOptions, SendableRecordBatchStream,
};
use fleetscope_store::{Matcher, SelectHints, Series};
use futures::TryStreamExt;
use promql_parser::parser::Expr;

use super::batch::{STEPS_SCHEMA, from_steps, to_series};
use super::{QueryCtx, properties, to_df};
use crate::error::Error;
use crate::eval::Evaluator;
use crate::value::{Grid, Value};
use fleetscope_store::source::{SelectFuture, Source};

/// Evaluates a per-series expression (one selector under per-series functions, range functions
/// and arithmetic with numbers) over the series of its input partition, after merging the copies
/// of each series; emits [`STEPS_SCHEMA`] batches, as many partitions as its input.
pub(crate) struct PromSeriesExec {
    input: Arc<dyn ExecutionPlan>,
    expr: Arc<Expr>,
    grid: Grid,
    ctx: Arc<QueryCtx>,
    metrics: ExecutionPlanMetricsSet,
    properties: Arc<PlanProperties>,
}

impl PromSeriesExec {
    /// `expr` over `grid`, on the series `input` reads.
    pub(crate) fn new(
        input: Arc<dyn ExecutionPlan>,
        expr: Arc<Expr>,
        grid: Grid,
        ctx: Arc<QueryCtx>,
    ) -> Self {
        let partitions = input.output_partitioning().partition_count();
        Self {
            input,
            expr,
            grid,
            ctx,
            metrics: ExecutionPlanMetricsSet::new(),
            properties: properties(Arc::clone(&STEPS_SCHEMA), partitions),
        }
    }
}

impl fmt::Debug for PromSeriesExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        DisplayAs::fmt_as(self, DisplayFormatType::Default, f)
    }
}

impl DisplayAs for PromSeriesExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PromSeriesExec: expr={}, steps={}",
            self.expr,
            self.grid.len()
        )
    }
}

impl ExecutionPlan for PromSeriesExec {
    plan_node_common!("PromSeriesExec");

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = children.swap_remove(0);
        Ok(Arc::new(Self::new(
            input,
            Arc::clone(&self.expr),
            self.grid,
            Arc::clone(&self.ctx),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let input = self.input.execute(partition, Arc::clone(&context))?;
        let reservation = MemoryConsumer::new(format!("PromSeriesExec[{partition}]"))
            .register(context.memory_pool());
        let pool = Arc::clone(context.memory_pool());
        let rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let (expr, grid, ctx) = (Arc::clone(&self.expr), self.grid, Arc::clone(&self.ctx));
        let future = async move {
            let batches: Vec<_> = input.try_collect().await?;
            let mut parts = Vec::with_capacity(batches.len());
            for b in &batches {
                reservation.try_grow(b.get_array_memory_size())?;
                parts.push(to_series(b)?);
            }
            drop(batches);
            let source = PartitionSource(Mutex::new(fleetscope_store::series::merge(parts)));
            let ev = Evaluator::new(&source, ctx.settings, &expr)
                .with_counter(Arc::clone(&ctx.loaded))
                .with_memory(&pool);
            let series = match ev.eval(&expr, grid).await.map_err(to_df)? {
                Value::Vector(v) => v,
                _ => {
                    return Err(to_df(Error::Internal(format!(
                        "per-series expression {expr} is not a vector"
                    ))));
                }
            };
            rows.add(series.len());
            from_steps(&series)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&STEPS_SCHEMA),
            futures::stream::once(future),
        )))
    }
}

/// The series of one partition, already selected by the scan. A per-series expression has exactly
/// one selector, read once (once per `or` alternative, whose results are united by labels): the
/// first selection takes every series, within the asked time range, without copying them; later
/// ones find nothing new.
#[derive(Debug)]
struct PartitionSource(Mutex<Vec<Series>>);

impl Source for PartitionSource {
    fn select<'a>(&'a self, _: &'a [Matcher], hints: &'a SelectHints) -> SelectFuture<'a> {
        let (min_t, max_t) = (hints.start, hints.end);
        let mut series = self
            .0
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        Box::pin(async move {
            for s in &mut series {
                s.samples.retain(|x| x.t >= min_t && x.t <= max_t);
            }
            series.retain(|s| !s.samples.is_empty());
            Ok(series)
        })
    }
}
