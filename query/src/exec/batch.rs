//! The Arrow shapes flowing between PromQL plan nodes, and conversions to and from the evaluator's
//! values. Every shape has one row per series: a `labels` map plus the series' data as lists.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Builder, Int64Builder, ListBuilder, MapBuilder, MapFieldNames,
    RecordBatch, StringBuilder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use datafusion::common::{DataFusionError, Result as DfResult};
use fleetscope_store::{Labels, Sample, Series};

use crate::value::StepSeries;

/// Column of a series' shard key: a hash of its labels without `__name__`, so that series equal
/// but for their name (which PromQL may turn into duplicates) land in the same partition.
pub(crate) const SERIES_KEY: &str = "series_key";
/// Column of the label set.
pub(crate) const LABELS: &str = "labels";
/// Column of raw sample timestamps (ms).
pub(crate) const T: &str = "t";
/// Column of raw sample values, or of one optional value per step.
pub(crate) const V: &str = "v";

fn labels_builder() -> MapBuilder<StringBuilder, StringBuilder> {
    let names = MapFieldNames {
        entry: "entries".into(),
        key: "name".into(),
        value: "value".into(),
    };
    MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new())
}

fn labels_type() -> DataType {
    labels_builder().finish().data_type().clone()
}

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

/// Raw series as a scan emits them: key, labels, samples.
pub(crate) static SERIES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(SERIES_KEY, DataType::UInt64, false),
        Field::new(LABELS, labels_type(), false),
        Field::new(T, list_of(DataType::Int64), false),
        Field::new(V, list_of(DataType::Float64), false),
    ]))
});

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

/// The shard key of a label set (see [`SERIES_KEY`]).
pub(crate) fn series_key(labels: &Labels) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    for l in labels
        .iter()
        .filter(|l| l.name != fleetscope_store::labels::METRIC_NAME)
    {
        l.name.hash(&mut h);
        l.value.hash(&mut h);
    }
    h.finish()
}

fn append_labels(
    b: &mut MapBuilder<StringBuilder, StringBuilder>,
    labels: &Labels,
) -> DfResult<()> {
    for l in labels.iter() {
        b.keys().append_value(&l.name);
        b.values().append_value(&l.value);
    }
    b.append(true)?;
    Ok(())
}

fn read_labels(batch: &RecordBatch, col: usize) -> DfResult<Vec<Labels>> {
    let map = batch
        .column(col)
        .as_map_opt()
        .ok_or_else(|| shape("labels"))?;
    (0..map.len())
        .map(|i| {
            let entries = map.value(i);
            let names = entries
                .column(0)
                .as_string_opt::<i32>()
                .ok_or_else(|| shape("name"))?;
            let values = entries
                .column(1)
                .as_string_opt::<i32>()
                .ok_or_else(|| shape("value"))?;
            Ok(Labels::from_pairs(names.iter().zip(values.iter()).map(
                |(n, v)| (n.unwrap_or_default(), v.unwrap_or_default()),
            )))
        })
        .collect()
}

fn shape(what: &str) -> DataFusionError {
    DataFusionError::Internal(format!("unexpected column shape: {what}"))
}

fn batch(schema: &SchemaRef, columns: Vec<ArrayRef>) -> DfResult<RecordBatch> {
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// Raw series as a [`SERIES_SCHEMA`] batch.
pub(crate) fn from_series(series: &[Series]) -> DfResult<RecordBatch> {
    let mut keys = UInt64Builder::with_capacity(series.len());
    let mut labels = labels_builder();
    let mut ts = ListBuilder::new(Int64Builder::new());
    let mut vs = ListBuilder::new(Float64Builder::new());
    for s in series {
        keys.append_value(series_key(&s.labels));
        append_labels(&mut labels, &s.labels)?;
        ts.values()
            .append_slice(&s.samples.iter().map(|x| x.t).collect::<Vec<_>>());
        ts.append(true);
        vs.values()
            .append_slice(&s.samples.iter().map(|x| x.v).collect::<Vec<_>>());
        vs.append(true);
    }
    batch(
        &SERIES_SCHEMA,
        vec![
            Arc::new(keys.finish()),
            Arc::new(labels.finish()),
            Arc::new(ts.finish()),
            Arc::new(vs.finish()),
        ],
    )
}

/// The raw series of a [`SERIES_SCHEMA`] batch.
pub(crate) fn to_series(batch: &RecordBatch) -> DfResult<Vec<Series>> {
    read_series(batch, 1)
}

/// Series of a batch whose labels are column `first`, followed by `t` and `v` lists.
fn read_series(batch: &RecordBatch, first: usize) -> DfResult<Vec<Series>> {
    let labels = read_labels(batch, first)?;
    let ts = batch
        .column(first + 1)
        .as_list_opt::<i32>()
        .ok_or_else(|| shape("t"))?;
    let vs = batch
        .column(first + 2)
        .as_list_opt::<i32>()
        .ok_or_else(|| shape("v"))?;
    labels
        .into_iter()
        .enumerate()
        .map(|(i, labels)| {
            let t = ts.value(i);
            let v = vs.value(i);
            let t = t
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| shape("t item"))?;
            let v = v
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(|| shape("v item"))?;
            let samples = t
                .values()
                .iter()
                .zip(v.values().iter())
                .map(|(&t, &v)| Sample { t, v })
                .collect();
            Ok(Series { labels, samples })
        })
        .collect()
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

/// Result rows (labels and samples) as a [`RESULT_SCHEMA`] batch.
pub(crate) fn from_rows(rows: &[(Labels, Vec<(i64, f64)>)]) -> DfResult<RecordBatch> {
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
pub(crate) fn to_rows(batch: &RecordBatch) -> DfResult<Vec<(Labels, Vec<(i64, f64)>)>> {
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
