//! The Arrow shapes flowing between PromQL plan nodes, and conversions to and from the evaluator's
//! values. Every shape has one row per series: a `labels` map plus the series' data as lists; raw
//! series (what scans emit) are `store`'s [`fleetscope_store::batch`] shape.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, AsArray, BooleanBufferBuilder, Float64Array, Float64Builder, Int64Builder, ListArray,
    ListBuilder, RecordBatch, UInt32Array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef, UInt32Type};
use datafusion::common::{DataFusionError, Result as DfResult};
use fleetscope_store::Labels;
use fleetscope_store::batch::{
    LABELS, T, V, append_labels, labels_builder, labels_type, list_of, read_labels, read_series,
};
pub(crate) use fleetscope_store::batch::{SERIES_KEY, SERIES_SCHEMA, from_series, to_series};

use crate::value::StepSeries;

/// Name of the [`STEPS_SCHEMA`] column holding the step of a row's first value.
const FIRST_STEP: &str = "first_step";

/// Instant-vector series over the query's steps: labels, the step of the first value, and one
/// optional value per step from there to the last value (a series living an hour of a 14-day
/// query at a 1h step is one or two values, not 337).
pub(crate) static STEPS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(LABELS, labels_type(), false),
        Field::new(FIRST_STEP, DataType::UInt32, false),
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

/// Step series as a [`STEPS_SCHEMA`] batch, each trimmed to its steps with values.
pub(crate) fn from_steps(series: &[StepSeries]) -> DfResult<RecordBatch> {
    let mut labels = labels_builder();
    let mut firsts = Vec::with_capacity(series.len());
    let mut offsets = Vec::with_capacity(series.len() + 1);
    offsets.push(0i32);
    let (mut values, mut valid) = (Vec::new(), BooleanBufferBuilder::new(0));
    for s in series {
        append_labels(&mut labels, &s.labels)?;
        let first = s.vals.iter().position(Option::is_some).unwrap_or(0);
        let end = s
            .vals
            .iter()
            .rposition(Option::is_some)
            .map_or(first, |i| i + 1);
        firsts.push(u32::try_from(first).map_err(|_| shape("step count"))?);
        for v in &s.vals[first..end] {
            values.push(v.unwrap_or_default());
            valid.append(v.is_some());
        }
        offsets.push(i32::try_from(values.len()).map_err(|_| shape("too many steps"))?);
    }
    let DataType::List(item) = STEPS_SCHEMA.field(2).data_type().clone() else {
        return Err(shape("v"));
    };
    let values = Float64Array::new(values.into(), Some(NullBuffer::new(valid.finish())));
    let list = ListArray::try_new(
        item,
        OffsetBuffer::new(offsets.into()),
        Arc::new(values),
        None,
    )?;
    batch(
        &STEPS_SCHEMA,
        vec![
            Arc::new(labels.finish()),
            Arc::new(UInt32Array::from(firsts)),
            Arc::new(list),
        ],
    )
}

/// The rows of a [`STEPS_SCHEMA`] batch: labels, first step, values from there.
pub(crate) fn read_steps(
    batch: &RecordBatch,
) -> DfResult<impl Iterator<Item = (Labels, usize, Float64Array)>> {
    let labels = read_labels(batch, 0)?;
    let firsts = batch
        .column(1)
        .as_primitive_opt::<UInt32Type>()
        .ok_or_else(|| shape("first step"))?
        .clone();
    let vs = batch
        .column(2)
        .as_list_opt::<i32>()
        .ok_or_else(|| shape("v"))?
        .clone();
    let rows = labels
        .into_iter()
        .enumerate()
        .map(|(i, labels)| {
            let v = vs.value(i);
            let v = v
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(|| shape("v item"))?
                .clone();
            Ok((labels, firsts.value(i) as usize, v))
        })
        .collect::<DfResult<Vec<_>>>()?;
    Ok(rows.into_iter())
}

/// The step series of a [`STEPS_SCHEMA`] batch, over `steps` steps.
pub(crate) fn to_steps(batch: &RecordBatch, steps: usize) -> DfResult<Vec<StepSeries>> {
    read_steps(batch)?
        .map(|(labels, first, v)| {
            let mut vals = vec![None; steps.max(first + v.len())];
            for (slot, x) in vals[first..].iter_mut().zip(v.iter()) {
                *slot = x;
            }
            Ok(StepSeries { labels, vals })
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
