//! Series as Arrow record batches: one row per series, its labels as a map and its samples as two
//! lists. The shape the block reader hands out ([`crate::BlockReader::select_batch`]) and the
//! query engine's scans emit.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, AsArray, Float64Builder, Int64Builder, ListBuilder, MapBuilder, MapFieldNames,
    RecordBatch, StringBuilder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use arrow::error::ArrowError;

use crate::{Label, Labels, Sample, Series};

type Result<T> = std::result::Result<T, ArrowError>;

/// Column of a series' shard key: a hash of its labels without `__name__`, so that series equal
/// but for their name (which PromQL may turn into duplicates) land in the same partition.
pub const SERIES_KEY: &str = "series_key";
/// Column of the label set.
pub const LABELS: &str = "labels";
/// Column of raw sample timestamps (ms).
pub const T: &str = "t";
/// Column of raw sample values, or of one optional value per step.
pub const V: &str = "v";

/// A builder of a `labels` column.
pub fn labels_builder() -> MapBuilder<StringBuilder, StringBuilder> {
    let names = MapFieldNames {
        entry: "entries".into(),
        key: "name".into(),
        value: "value".into(),
    };
    MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new())
}

/// The type of a `labels` column.
pub fn labels_type() -> DataType {
    labels_builder().finish().data_type().clone()
}

/// A list of `item`s (nullable items).
pub fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

/// Raw series as a scan emits them: key, labels, samples.
pub static SERIES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(SERIES_KEY, DataType::UInt64, false),
        Field::new(LABELS, labels_type(), false),
        Field::new(T, list_of(DataType::Int64), false),
        Field::new(V, list_of(DataType::Float64), false),
    ]))
});

/// The shard key of a label set (see [`SERIES_KEY`]).
pub fn series_key(labels: &Labels) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    for l in labels
        .iter()
        .filter(|l| l.name != crate::labels::METRIC_NAME)
    {
        l.name.hash(&mut h);
        l.value.hash(&mut h);
    }
    h.finish()
}

/// Appends one label set to a `labels` column.
pub fn append_labels(
    b: &mut MapBuilder<StringBuilder, StringBuilder>,
    labels: &Labels,
) -> Result<()> {
    for l in labels.iter() {
        b.keys().append_value(&l.name);
        b.values().append_value(&l.value);
    }
    b.append(true)?;
    Ok(())
}

/// The label sets of column `col`, read through the map's offsets (no per-row slices).
pub fn read_labels(batch: &RecordBatch, col: usize) -> Result<Vec<Labels>> {
    let map = batch
        .column(col)
        .as_map_opt()
        .ok_or_else(|| shape("labels"))?;
    let names = map
        .keys()
        .as_string_opt::<i32>()
        .ok_or_else(|| shape("name"))?;
    let values = map
        .values()
        .as_string_opt::<i32>()
        .ok_or_else(|| shape("value"))?;
    let offsets = map.value_offsets();
    Ok(offsets
        .windows(2)
        .map(|w| {
            let (from, to) = (w[0] as usize, w[1] as usize);
            let labels: Vec<Label> = (from..to)
                .map(|j| Label::new(names.value(j), values.value(j)))
                .collect();
            // Written sorted and valid by `append_labels`; anything else is put in order.
            match Labels::check_sorted(&labels) {
                Ok(()) => Labels::from_sorted(labels).unwrap_or_default(),
                Err(_) => Labels::from_pairs(labels.into_iter().map(|l| (l.name, l.value))),
            }
        })
        .collect())
}

fn shape(what: &str) -> ArrowError {
    ArrowError::SchemaError(format!("unexpected column shape: {what}"))
}

/// Raw series as a [`SERIES_SCHEMA`] batch.
pub fn from_series(series: &[Series]) -> Result<RecordBatch> {
    let mut keys = UInt64Builder::with_capacity(series.len());
    let mut labels = labels_builder();
    let mut ts = ListBuilder::new(Int64Builder::new());
    let mut vs = ListBuilder::new(Float64Builder::new());
    for s in series {
        keys.append_value(series_key(&s.labels));
        append_labels(&mut labels, &s.labels)?;
        for x in &s.samples {
            ts.values().append_value(x.t);
            vs.values().append_value(x.v);
        }
        ts.append(true);
        vs.append(true);
    }
    RecordBatch::try_new(
        Arc::clone(&SERIES_SCHEMA),
        vec![
            Arc::new(keys.finish()),
            Arc::new(labels.finish()),
            Arc::new(ts.finish()),
            Arc::new(vs.finish()),
        ],
    )
}

/// The raw series of a [`SERIES_SCHEMA`] batch.
pub fn to_series(batch: &RecordBatch) -> Result<Vec<Series>> {
    read_series(batch, 1)
}

/// Series of a batch whose labels are column `first`, followed by `t` and `v` lists.
pub fn read_series(batch: &RecordBatch, first: usize) -> Result<Vec<Series>> {
    let labels = read_labels(batch, first)?;
    let ts = batch
        .column(first + 1)
        .as_list_opt::<i32>()
        .ok_or_else(|| shape("t"))?;
    let vs = batch
        .column(first + 2)
        .as_list_opt::<i32>()
        .ok_or_else(|| shape("v"))?;
    // Through the offsets and the flat value arrays: no per-row slices.
    let t_values = ts
        .values()
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| shape("t item"))?
        .values();
    let v_values = vs
        .values()
        .as_primitive_opt::<Float64Type>()
        .ok_or_else(|| shape("v item"))?
        .values();
    let (t_offsets, v_offsets) = (ts.value_offsets(), vs.value_offsets());
    labels
        .into_iter()
        .enumerate()
        .map(|(i, labels)| {
            let t = t_values
                .get(t_offsets[i] as usize..t_offsets[i + 1] as usize)
                .ok_or_else(|| shape("t offsets"))?;
            let v = v_values
                .get(v_offsets[i] as usize..v_offsets[i + 1] as usize)
                .ok_or_else(|| shape("v offsets"))?;
            if t.len() != v.len() {
                return Err(shape("t and v of different lengths"));
            }
            let samples = t.iter().zip(v).map(|(&t, &v)| Sample { t, v }).collect();
            Ok(Series { labels, samples })
        })
        .collect()
}
