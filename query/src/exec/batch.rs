//! The Arrow shapes flowing between PromQL plan nodes, and conversions to and from the evaluator's
//! values. Every shape has one row per series: a `labels` map plus the series' data as lists; raw
//! series (what scans emit) are `store`'s [`fleetscope_store::batch`] shape.

use std::sync::{Arc, LazyLock};

use arrow::array::{ArrayRef, AsArray, Float64Builder, Int64Builder, ListBuilder, RecordBatch};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use datafusion::common::{DataFusionError, Result as DfResult};
use fleetscope_store::Labels;
use fleetscope_store::batch::{
    LABELS, T, V, append_labels, labels_builder, labels_type, list_of, read_labels, read_series,
};
pub(crate) use fleetscope_store::batch::{SERIES_KEY, SERIES_SCHEMA, from_series, to_series};

use crate::value::StepSeries;

/// Instant-vector series over the query's steps: labels and one optional value per step.
pub(crate) static STEPS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(LABELS, labels_type(), false),
        Field::new(V, list_of(DataType::Float64), false),
    ]))
});

/// A query's result rows: labels and `(t, v)` samples (a scalar is one row without labels).
pub(crate) static RESULT_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(LABELS, labels_type(), false),
        Field::new(T, list_of(DataType::Int64), false),
        Field::new(V, list_of(DataType::Float64), false),
    ]))
});

fn shape(what: &str) -> DataFusionError {
    DataFusionError::Internal(format!("unexpected column shape: {what}"))
}

fn batch(schema: &SchemaRef, columns: Vec<ArrayRef>) -> DfResult<RecordBatch> {
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// Step series as a [`STEPS_SCHEMA`] batch.
pub(crate) fn from_steps(series: &[StepSeries]) -> DfResult<RecordBatch> {
    let mut labels = labels_builder();
    let mut vs = ListBuilder::new(Float64Builder::new());
    for s in series {
        append_labels(&mut labels, &s.labels)?;
        for v in &s.vals {
            vs.values().append_option(*v);
        }
        vs.append(true);
    }
    batch(
        &STEPS_SCHEMA,
        vec![Arc::new(labels.finish()), Arc::new(vs.finish())],
    )
}

/// The step series of a [`STEPS_SCHEMA`] batch.
pub(crate) fn to_steps(batch: &RecordBatch) -> DfResult<Vec<StepSeries>> {
    let labels = read_labels(batch, 0)?;
    let vs = batch
        .column(1)
        .as_list_opt::<i32>()
        .ok_or_else(|| shape("v"))?;
    labels
        .into_iter()
        .enumerate()
        .map(|(i, labels)| {
            let v = vs.value(i);
            let v = v
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(|| shape("v item"))?;
            Ok(StepSeries {
                labels,
                vals: v.iter().collect(),
            })
        })
        .collect()
}

/// A result row: a series' labels and `(t, v)` samples.
pub(crate) type Row = (Labels, Vec<(i64, f64)>);

/// Result rows (labels and samples) as a [`RESULT_SCHEMA`] batch.
pub(crate) fn from_rows(rows: &[Row]) -> DfResult<RecordBatch> {
    let mut labels = labels_builder();
    let mut ts = ListBuilder::new(Int64Builder::new());
    let mut vs = ListBuilder::new(Float64Builder::new());
    for (l, samples) in rows {
        append_labels(&mut labels, l)?;
        for &(t, v) in samples {
            ts.values().append_value(t);
            vs.values().append_value(v);
        }
        ts.append(true);
        vs.append(true);
    }
    batch(
        &RESULT_SCHEMA,
        vec![
            Arc::new(labels.finish()),
            Arc::new(ts.finish()),
            Arc::new(vs.finish()),
        ],
    )
}

/// The rows of a [`RESULT_SCHEMA`] batch.
pub(crate) fn to_rows(batch: &RecordBatch) -> DfResult<Vec<Row>> {
    Ok(read_series(batch, 0)?
        .into_iter()
        .map(|s| {
            (
                s.labels,
                s.samples.into_iter().map(|x| (x.t, x.v)).collect(),
            )
        })
        .collect())
}
