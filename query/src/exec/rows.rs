//! [`SampleRowsExec`]: series turned into SQL rows, one per sample.

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::SchemaRef;
use datafusion::common::Result as DfResult;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
    ReplaceChildrenOptions, SendableRecordBatchStream,
};
use fleetscope_store::{Series, is_stale_nan};
use futures::TryStreamExt;

use super::batch::to_series;
use super::{QueryCtx, properties, to_df};
use crate::error::Error;

/// Rows per output batch.
const BATCH_ROWS: usize = 8192;

/// What a [`SampleRowsExec`] column holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RowColumn {
    /// The sample's time (ms).
    Ts,
    /// The sample's value.
    Value,
    /// A label's value (null where the series has none).
    Label(String),
}

/// Merges the copies of each series in its input partition (blocks of several windows, fresh
/// data from a shipper) and emits one row per sample in `[min_t, max_t]`, stale markers left out,
/// with the columns of `schema`.
pub(crate) struct SampleRowsExec {
    input: Arc<dyn ExecutionPlan>,
    columns: Vec<RowColumn>,
    schema: SchemaRef,
    min_t: i64,
    max_t: i64,
    ctx: Arc<QueryCtx>,
    metrics: ExecutionPlanMetricsSet,
    properties: Arc<PlanProperties>,
}

impl SampleRowsExec {
    /// Rows of the series `input` reads, with `columns` (described by `schema`).
    pub(crate) fn new(
        input: Arc<dyn ExecutionPlan>,
        columns: Vec<RowColumn>,
        schema: SchemaRef,
        (min_t, max_t): (i64, i64),
        ctx: Arc<QueryCtx>,
    ) -> Self {
        let partitions = input.output_partitioning().partition_count();
        Self {
            input,
            columns,
            properties: properties(Arc::clone(&schema), partitions),
            schema,
            min_t,
            max_t,
            ctx,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl fmt::Debug for SampleRowsExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        DisplayAs::fmt_as(self, DisplayFormatType::Default, f)
    }
}

impl DisplayAs for SampleRowsExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        write!(
            f,
            "SampleRowsExec: columns=[{}], range=[{}, {}]",
            names.join(", "),
            self.min_t,
            self.max_t
        )
    }
}

impl ExecutionPlan for SampleRowsExec {
    plan_node_common!("SampleRowsExec");

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        _: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self::new(
            children.swap_remove(0),
            self.columns.clone(),
            Arc::clone(&self.schema),
            (self.min_t, self.max_t),
            Arc::clone(&self.ctx),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let (columns, schema) = (self.columns.clone(), Arc::clone(&self.schema));
        let (min_t, max_t, ctx) = (self.min_t, self.max_t, Arc::clone(&self.ctx));
        let out_schema = Arc::clone(&schema);
        let series = async move {
            let batches: Vec<RecordBatch> = input.try_collect().await?;
            let mut parts = Vec::with_capacity(batches.len());
            for b in &batches {
                parts.push(to_series(b)?);
            }
            let series = fleetscope_store::series::merge(parts);
            let n: usize = series.iter().map(|s| s.samples.len()).sum();
            let loaded = ctx
                .loaded
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed)
                + n;
            if loaded > ctx.settings.max_samples {
                return Err(to_df(Error::TooManySamples("query execution")));
            }
            Ok(series)
        };
        let stream = futures::stream::once(series)
            .map_ok(move |series| {
                let (columns, schema, rows) = (columns.clone(), Arc::clone(&schema), rows.clone());
                let chunks: Vec<Vec<Series>> = chunk(series);
                futures::stream::iter(chunks.into_iter().map(move |chunk| {
                    let b = to_rows(&chunk, &columns, &schema, min_t, max_t)?;
                    rows.add(b.num_rows());
                    Ok(b)
                }))
            })
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(out_schema, stream)))
    }
}

/// Series in groups of about [`BATCH_ROWS`] samples.
fn chunk(series: Vec<Series>) -> Vec<Vec<Series>> {
    let mut out = vec![Vec::new()];
    let mut rows = 0;
    for s in series {
        rows += s.samples.len();
        if let Some(last) = out.last_mut() {
            last.push(s);
        }
        if rows >= BATCH_ROWS {
            out.push(Vec::new());
            rows = 0;
        }
    }
    out.retain(|c| !c.is_empty());
    out
}

fn to_rows(
    series: &[Series],
    columns: &[RowColumn],
    schema: &SchemaRef,
    min_t: i64,
    max_t: i64,
) -> DfResult<RecordBatch> {
    let mut ts = TimestampMillisecondBuilder::new();
    let mut values = Float64Builder::new();
    let mut labels: Vec<StringBuilder> = columns.iter().map(|_| StringBuilder::new()).collect();
    for s in series {
        for x in &s.samples {
            if x.t < min_t || x.t > max_t || is_stale_nan(x.v) {
                continue;
            }
            for (c, b) in columns.iter().zip(labels.iter_mut()) {
                match c {
                    RowColumn::Ts => ts.append_value(x.t),
                    RowColumn::Value => values.append_value(x.v),
                    RowColumn::Label(name) => b.append_option(s.labels.get(name)),
                }
            }
        }
    }
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .zip(labels.iter_mut())
        .map(|(c, b)| -> ArrayRef {
            match c {
                RowColumn::Ts => Arc::new(ts.finish()),
                RowColumn::Value => Arc::new(values.finish()),
                RowColumn::Label(_) => Arc::new(b.finish()),
            }
        })
        .collect();
    if arrays.is_empty() {
        let n = series
            .iter()
            .flat_map(|s| &s.samples)
            .filter(|x| x.t >= min_t && x.t <= max_t && !is_stale_nan(x.v))
            .count();
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(n));
        return Ok(RecordBatch::try_new_with_options(
            Arc::clone(schema),
            arrays,
            &options,
        )?);
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), arrays)?)
}
