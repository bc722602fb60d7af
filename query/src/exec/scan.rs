//! [`PromScanExec`]: the leaf of every PromQL plan, reading one selector's series.

use std::fmt;
use std::sync::Arc;

use datafusion::common::Result as DfResult;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, ReplaceChildrenOptions,
    SendableRecordBatchStream,
};
use fleetscope_store::{Matcher, SelectHints};
use futures::StreamExt;

use super::batch::{SERIES_SCHEMA, from_series};
use super::{QueryCtx, properties, to_df};
use crate::eval::select_groups;
use crate::warnings;
use fleetscope_store::source::Source;

/// Reads the series of one selector with samples in `[min_t, max_t]`: matchers and time range go
/// down into each source (block reader: row groups, pages and rows skipped; remote-read: the
/// request). One output partition per group of sources; emits one [`SERIES_SCHEMA`] batch per
/// source, series unsorted and possibly repeated across sources (a later node merges them).
pub(crate) struct PromScanExec {
    /// How the selection reads (the selector's text), for plans and shared selections.
    selector: String,
    /// Matcher sets (one, or one per `or` alternative).
    matchers: Arc<Vec<Vec<Matcher>>>,
    /// What the selection is for; its time range is what the scan reads.
    hints: Arc<SelectHints>,
    partitions: Vec<Vec<Arc<dyn Source>>>,
    /// The query reads this selector elsewhere too: share the selections.
    shared: bool,
    ctx: Arc<QueryCtx>,
    metrics: ExecutionPlanMetricsSet,
    properties: Arc<PlanProperties>,
}

impl PromScanExec {
    /// A scan of `partitions` (each a list of sources read in turn).
    pub(crate) fn new(
        selector: String,
        matchers: Vec<Vec<Matcher>>,
        hints: SelectHints,
        partitions: Vec<Vec<Arc<dyn Source>>>,
        shared: bool,
        ctx: Arc<QueryCtx>,
    ) -> Self {
        let properties = properties(Arc::clone(&SERIES_SCHEMA), partitions.len().max(1));
        Self {
            selector,
            matchers: Arc::new(matchers),
            hints: Arc::new(hints),
            partitions,
            shared,
            ctx,
            metrics: ExecutionPlanMetricsSet::new(),
            properties,
        }
    }
}

impl fmt::Debug for PromScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        DisplayAs::fmt_as(self, DisplayFormatType::Default, f)
    }
}

impl DisplayAs for PromScanExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sources: usize = self.partitions.iter().map(Vec::len).sum();
        write!(
            f,
            "PromScanExec: selector={}, range=[{}, {}], sources={sources}",
            self.selector, self.hints.start, self.hints.end
        )?;
        if let Some(func) = &self.hints.func {
            write!(f, ", func={func}")?;
        }
        if self.hints.resolution > 0 {
            write!(
                f,
                ", resolution<={}, aggregate={}",
                fleetscope_store::downsample::resolution_name(self.hints.resolution),
                self.hints.aggregate.name()
            )?;
        }
        Ok(())
    }
}

impl ExecutionPlan for PromScanExec {
    plan_node_common!("PromScanExec");

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn replace_children(
        self: Arc<Self>,
        _: Vec<Arc<dyn ExecutionPlan>>,
        _: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let sources = self.partitions.get(partition).cloned().unwrap_or_default();
        let rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let samples = MetricBuilder::new(&self.metrics).counter("samples", partition);
        let bytes = MetricBuilder::new(&self.metrics).counter("bytes", partition);
        let (selector, hints) = (self.selector.clone(), Arc::clone(&self.hints));
        let (ctx, shared, matchers) = (
            Arc::clone(&self.ctx),
            self.shared,
            Arc::clone(&self.matchers),
        );
        let stream = futures::stream::iter(sources).then(move |source| {
            let (selector, ctx, matchers) =
                (selector.clone(), Arc::clone(&ctx), Arc::clone(&matchers));
            let (rows, samples, bytes) = (rows.clone(), samples.clone(), bytes.clone());
            let hints = Arc::clone(&hints);
            async move {
                let select = async {
                    let (series, reported) =
                        warnings::collect(select_groups(source.as_ref(), &matchers, &hints)).await;
                    ctx.warn(reported);
                    series.map(Arc::new)
                };
                let series = if shared {
                    let id = Arc::as_ptr(&source) as *const () as usize;
                    let cell = ctx.shared((selector, hints.start, hints.end, hints.aggregate, id));
                    Arc::clone(cell.get_or_try_init(|| select).await.map_err(to_df)?)
                } else {
                    select.await.map_err(to_df)?
                };
                let batch = from_series(&series)?;
                rows.add(series.len());
                samples.add(series.iter().map(|s| s.samples.len()).sum());
                bytes.add(batch.get_array_memory_size());
                Ok(batch)
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&SERIES_SCHEMA),
            stream,
        )))
    }
}
