//! Every column name of `data.parquet` and its Arrow schema: the one place they are spelled.
//!
//! One row per series (see `docs/block-format.md`). Rows are sorted by `metric_name`, then `labels`,
//! so row-group and page statistics on `metric_name` let a reader skip every other metric.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// Format version this build writes (raw blocks in sub-chunks, downsampled blocks with the
/// aggregate columns below) and the newest it reads: a reader refuses newer blocks, so one that
/// predates them never mistakes a summary for samples or misses a sub-chunk.
pub const FORMAT_VERSION: u32 = 2;
/// Format version of raw blocks with each series' samples in one chunk ([`TIMESTAMPS`],
/// [`VALUES`]), as written before sub-chunks; still read.
pub const SINGLE_CHUNK_FORMAT_VERSION: u32 = 1;

/// The value of `__name__` (empty string if the series has none).
pub const METRIC_NAME: &str = "metric_name";
/// The other labels, `name 0xff value 0xff ...`, sorted by name.
pub const LABELS: &str = "labels";
/// Timestamp of the series' first sample in the block (ms).
pub const MIN_T: &str = "min_t";
/// Timestamp of the series' last sample in the block (ms).
pub const MAX_T: &str = "max_t";
/// Number of samples of the series in the block.
pub const SAMPLES: &str = "samples";
/// The series' timestamps, coded by [`crate::chunk::encode_timestamps`] (blocks without
/// sub-chunks: version 1, and downsampled blocks' counter aggregate).
pub const TIMESTAMPS: &str = "timestamps";
/// The series' values, coded by [`crate::chunk::encode_values`] (as [`TIMESTAMPS`]).
pub const VALUES: &str = "values";

/// Timestamps of the series' samples in sub-chunk slot `k` (see [`crate::sub_chunks`]), coded as
/// [`TIMESTAMPS`]; empty bytes when the slot has none.
pub fn slot_timestamps(k: usize) -> String {
    format!("{TIMESTAMPS}_{k}")
}

/// Values of the series' samples in sub-chunk slot `k`, coded as [`VALUES`]; empty bytes when the
/// slot has none.
pub fn slot_values(k: usize) -> String {
    format!("{VALUES}_{k}")
}

/// Downsampled blocks: times of the windows' summaries (their last samples), coded as
/// [`TIMESTAMPS`]; the block's `timestamps` and `values` hold the counter aggregate.
pub const AGGR_TIMESTAMPS: &str = "aggr_timestamps";
/// Downsampled blocks: samples per window, coded as [`VALUES`].
pub const AGGR_COUNT: &str = "aggr_count";
/// Downsampled blocks: sum per window, coded as [`VALUES`].
pub const AGGR_SUM: &str = "aggr_sum";
/// Downsampled blocks: minimum per window, coded as [`VALUES`].
pub const AGGR_MIN: &str = "aggr_min";
/// Downsampled blocks: maximum per window, coded as [`VALUES`].
pub const AGGR_MAX: &str = "aggr_max";
/// The aggregate columns, in schema order.
pub const AGGR_COLUMNS: [&str; 5] = [AGGR_TIMESTAMPS, AGGR_COUNT, AGGR_SUM, AGGR_MIN, AGGR_MAX];

/// Name of the Parquet file inside a block.
pub const DATA_FILE: &str = "data.parquet";
/// Name of a block's label index: every label name with its values, external labels included, as
/// zstd-compressed JSON (`{"name": ["value", ...], ...}`). Optional: older blocks lack it.
pub const LABELS_FILE: &str = "labels.json.zst";
/// Name of the meta file inside a block.
pub const META_FILE: &str = "meta.json";
/// Name of the file that marks a block for deletion (written by the compactor).
pub const DELETION_MARK_FILE: &str = "deletion-mark.json";

fn series_fields() -> Vec<Field> {
    vec![
        Field::new(METRIC_NAME, DataType::Utf8, false),
        Field::new(LABELS, DataType::Binary, false),
        Field::new(MIN_T, DataType::Int64, false),
        Field::new(MAX_T, DataType::Int64, false),
        Field::new(SAMPLES, DataType::UInt32, false),
    ]
}

fn raw_fields() -> Vec<Field> {
    let mut fields = series_fields();
    fields.push(Field::new(TIMESTAMPS, DataType::Binary, false));
    fields.push(Field::new(VALUES, DataType::Binary, false));
    fields
}

/// The Arrow schema of `data.parquet` in a raw block of version 1 (one chunk per series).
pub fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| Arc::new(Schema::new(raw_fields())));
    Arc::clone(&SCHEMA)
}

/// The Arrow schema of `data.parquet` in a raw block with `slots` sub-chunks: the series columns,
/// then per slot its timestamps and values, side by side so that a slot is one read.
pub fn sub_chunk_schema(slots: usize) -> SchemaRef {
    let mut fields = series_fields();
    for k in 0..slots {
        fields.push(Field::new(slot_timestamps(k), DataType::Binary, false));
        fields.push(Field::new(slot_values(k), DataType::Binary, false));
    }
    Arc::new(Schema::new(fields))
}

/// The Arrow schema of `data.parquet` in a downsampled block: the raw columns (the counter
/// aggregate in `timestamps` and `values`), then [`AGGR_COLUMNS`].
pub fn aggregate_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let mut fields = raw_fields();
        fields.extend(
            AGGR_COLUMNS
                .iter()
                .map(|name| Field::new(*name, DataType::Binary, false)),
        );
        Arc::new(Schema::new(fields))
    });
    Arc::clone(&SCHEMA)
}
