//! [`write_block`]: series in, `data.parquet` then `meta.json` out; [`write_coded_block`] for series
//! whose samples are already coded ([`CodedSeries`], the shipper's head hands them over that way).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, Int64Builder, RecordBatch, StringBuilder, UInt32Builder,
};
use bytes::Bytes;
use object_store::ObjectStore;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::chunk;
use crate::downsample::Window;
use crate::error::{Error, Result};
use crate::labels::Labels;
use crate::layout;
use crate::meta::{BlockFile, BlockId, BlockMeta, BlockStats, Compaction};
use crate::reader::LabelIndex;
use crate::schema::{self, DATA_FILE, FORMAT_VERSION, LABELS_FILE, SINGLE_CHUNK_FORMAT_VERSION};
use crate::series::{Sample, Series, sort_dedup};
use crate::sub_chunks::SubChunks;
use crate::upload::Upload;

/// Bytes the block writer gathers before handing them to the upload.
const SINK_BYTES: usize = 1 << 20;

/// How blocks are written.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Written into `meta.json` as `producer`.
    pub producer: String,
    /// zstd level of Parquet pages (see `docs/block-format.md` for the measurement behind the default).
    pub zstd_level: i32,
    /// Series per row group.
    pub row_group_rows: usize,
    /// Series per data page: the granularity at which a reader skips other metrics.
    pub page_rows: usize,
    /// For a block merged from others: its level and sources (`None`: a fresh level-1 block).
    pub compaction: Option<Compaction>,
    /// Window of a downsampled block's summaries, ms (0: raw samples); every series of a
    /// downsampled block must come from [`CodedSeries::downsampled`].
    pub resolution: i64,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            producer: format!("fleetscope/{}", env!("CARGO_PKG_VERSION")),
            zstd_level: 15,
            row_group_rows: 16_384,
            page_rows: 512,
            compaction: None,
            resolution: 0,
        }
    }
}

/// One series of a block with its samples coded (`chunk::encode_timestamps` /
/// `chunk::encode_values`), in sub-chunks or as one chunk: a few bytes per sample instead of 16
/// while a block is being written.
#[derive(Debug, Clone)]
pub struct CodedSeries {
    labels: Labels,
    min_t: i64,
    max_t: i64,
    samples: u32,
    /// The grid `chunks` follow (`None`: one chunk).
    grid: Option<SubChunks>,
    /// Coded timestamps and values, one pair per slot of `grid` (empty bytes for an empty slot).
    chunks: Vec<(Vec<u8>, Vec<u8>)>,
    /// A downsampled series' window summaries, coded in [`schema::AGGR_COLUMNS`] order.
    aggr: Option<[Vec<u8>; 5]>,
}

impl CodedSeries {
    /// A downsampled series: its windows' summaries and its counter aggregate (see
    /// [`crate::downsample`]), one chunk each; `None` if it has no samples.
    pub fn downsampled(
        labels: Labels,
        windows: &[Window],
        counter: &[Sample],
    ) -> Result<Option<Self>> {
        let Some(mut coded) = Self::new(labels, counter, None)? else {
            return Ok(None);
        };
        let ts: Vec<i64> = windows.iter().map(|w| w.t).collect();
        let values = |f: fn(&Window) -> f64| {
            chunk::encode_values(&windows.iter().map(f).collect::<Vec<f64>>())
        };
        coded.aggr = Some([
            chunk::encode_timestamps(&ts),
            values(|w| w.count),
            values(|w| w.sum),
            values(|w| w.min),
            values(|w| w.max),
        ]);
        Ok(Some(coded))
    }

    /// Codes `samples`, which must be sorted by time with unique timestamps, in the sub-chunks of
    /// `grid` (every series of a block on the same grid), or as one chunk without (a version 1
    /// block); `None` if empty.
    pub fn new(
        labels: Labels,
        samples: &[Sample],
        grid: Option<SubChunks>,
    ) -> Result<Option<Self>> {
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
            return Ok(None);
        };
        let n = u32::try_from(samples.len()).map_err(|_| {
            Error::Corrupt(format!(
                "series {labels} has more than 2^32 samples in one block"
            ))
        })?;
        // A slot's timestamps are coded from its start and the series' first sample.
        let code = |part: &[Sample], slot_start: Option<i64>| {
            if part.is_empty() {
                return (Vec::new(), Vec::new());
            }
            let ts: Vec<i64> = part.iter().map(|s| s.t).collect();
            let vs: Vec<f64> = part.iter().map(|s| s.v).collect();
            let ts = match slot_start {
                Some(start) => chunk::encode_slot_timestamps(&ts, first.t, start),
                None => chunk::encode_timestamps(&ts),
            };
            (ts, chunk::encode_values(&vs))
        };
        let chunks = match &grid {
            Some(grid) => grid
                .split(samples)
                .into_iter()
                .enumerate()
                .map(|(k, part)| code(part, Some(grid.slot_start(k))))
                .collect(),
            None => vec![code(samples, None)],
        };
        Ok(Some(Self {
            min_t: first.t,
            max_t: last.t,
            samples: n,
            grid,
            chunks,
            labels,
            aggr: None,
        }))
    }
}

/// Writes `series` as one block with the given external labels, data first and `meta.json` last.
///
/// Samples are sorted by time (the last write of a timestamp wins), series with the same labels are
/// merged, and empty series dropped. Labels are stored as written: external labels live only in
/// `meta.json` and are added by readers.
pub async fn write_block(
    store: &Arc<dyn ObjectStore>,
    series: Vec<Series>,
    external_labels: &Labels,
    options: &WriteOptions,
) -> Result<BlockMeta> {
    let coded = tokio::task::spawn_blocking(move || {
        let mut by_labels: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        for s in series {
            by_labels.entry(s.labels).or_default().extend(s.samples);
        }
        let mut out = Vec::with_capacity(by_labels.len());
        let (lo, hi) = by_labels
            .values()
            .flatten()
            .fold((i64::MAX, i64::MIN), |(lo, hi), s| {
                (lo.min(s.t), hi.max(s.t))
            });
        let grid = SubChunks::covering(lo, hi);
        for (labels, mut samples) in by_labels {
            sort_dedup(&mut samples);
            out.extend(CodedSeries::new(labels, &samples, Some(grid))?);
        }
        Ok::<_, Error>(out)
    })
    .await
    .map_err(|e| Error::Corrupt(format!("coding task: {e}")))??;
    write_coded_block(store, coded, external_labels, options).await
}

/// [`write_block`] for series already coded; their label sets must be unique.
pub async fn write_coded_block(
    store: &Arc<dyn ObjectStore>,
    series: Vec<CodedSeries>,
    external_labels: &Labels,
    options: &WriteOptions,
) -> Result<BlockMeta> {
    let meta = write_block_data(store, series, external_labels, options).await?;
    publish_block(store, &meta).await?;
    Ok(meta)
}

/// The first half of [`write_coded_block`]: writes the block's data file and returns its meta,
/// without `meta.json`, so the block stays invisible to readers until [`publish_block`] (an
/// import publishes all its blocks at the end; `fleetscope compact` removes unpublished leftovers).
pub async fn write_block_data(
    store: &Arc<dyn ObjectStore>,
    mut series: Vec<CodedSeries>,
    external_labels: &Labels,
    options: &WriteOptions,
) -> Result<BlockMeta> {
    series.sort_unstable_by(|a, b| a.labels.cmp_block_order(&b.labels));
    write_sorted_block_data(store, series.into_iter().map(Ok), external_labels, options).await
}

/// Writes one block from series given in block order ([`Labels::cmp_block_order`], label sets
/// unique) and coded as the writer asks for them: the file is written and uploaded a part at a
/// time, so neither the block's series nor its file are ever all in memory. Data first,
/// `meta.json` last.
pub async fn write_sorted_block<I>(
    store: &Arc<dyn ObjectStore>,
    series: I,
    external_labels: &Labels,
    options: &WriteOptions,
) -> Result<BlockMeta>
where
    I: Iterator<Item = Result<CodedSeries>> + Send + 'static,
{
    let meta = write_sorted_block_data(store, series, external_labels, options).await?;
    publish_block(store, &meta).await?;
    Ok(meta)
}

/// The first half of [`write_sorted_block`]: the data file without `meta.json` (see
/// [`write_block_data`]).
pub async fn write_sorted_block_data<I>(
    store: &Arc<dyn ObjectStore>,
    series: I,
    external_labels: &Labels,
    options: &WriteOptions,
) -> Result<BlockMeta>
where
    I: Iterator<Item = Result<CodedSeries>> + Send + 'static,
{
    let id = BlockId::new();
    let opts = options.clone();
    let data_path = layout::data_path(id);
    // Parquet's writer is synchronous and CPU-bound: it runs on a blocking thread and hands its
    // bytes to the upload a part at a time, so the file is never whole in memory.
    let mut sink = PartSink {
        upload: Some(Upload::new(Arc::clone(store), data_path)),
        handle: tokio::runtime::Handle::current(),
        buf: Vec::new(),
        bytes: 0,
    };
    let external = external_labels.clone();
    let (encoded, mut sink) = tokio::task::spawn_blocking(move || {
        let encoded = encode(id, series, &external, &opts, &mut sink);
        (encoded, sink)
    })
    .await
    .map_err(|e| Error::Corrupt(format!("encoding task of block {id}: {e}")))?;
    let upload = sink.upload.take();
    let encoded = match (encoded, upload) {
        (Ok(encoded), Some(upload)) => {
            upload.finish().await?;
            encoded
        }
        (Err(e), upload) => {
            if let Some(upload) = upload {
                upload.abort().await;
            }
            return Err(e);
        }
        (Ok(_), None) => return Err(Error::Corrupt(format!("block {id}: upload lost"))),
    };
    let index_bytes = put_label_index(store, id, &encoded.labels).await?;
    let bytes = sink.bytes + index_bytes;
    let meta = BlockMeta {
        version: if options.resolution > 0 || encoded.grid.is_some() {
            FORMAT_VERSION
        } else {
            SINGLE_CHUNK_FORMAT_VERSION
        },
        resolution: options.resolution,
        sub_chunks: encoded.grid,
        ulid: id,
        min_t: encoded.min_t,
        max_t: encoded.max_t + 1,
        external_labels: external_labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect(),
        stats: BlockStats {
            series: encoded.series,
            samples: encoded.samples,
            bytes,
        },
        producer: options.producer.clone(),
        compaction: options.compaction.clone().unwrap_or(Compaction {
            level: 1,
            sources: vec![id],
        }),
        files: vec![
            BlockFile {
                path: DATA_FILE.into(),
                size_bytes: sink.bytes,
            },
            BlockFile {
                path: LABELS_FILE.into(),
                size_bytes: index_bytes,
            },
        ],
    };
    tracing::debug!(block = %id, series = meta.stats.series, samples = meta.stats.samples, bytes, "block data written");
    Ok(meta)
}

/// Writes the block's label index ([`LABELS_FILE`]); returns its size.
async fn put_label_index(
    store: &Arc<dyn ObjectStore>,
    id: BlockId,
    index: &LabelIndex,
) -> Result<u64> {
    let corrupt = |e: &dyn std::fmt::Display| Error::Corrupt(format!("label index of {id}: {e}"));
    let json = serde_json::to_vec(index).map_err(|e| corrupt(&e))?;
    let packed = zstd::bulk::compress(&json, LABEL_INDEX_ZSTD_LEVEL).map_err(|e| corrupt(&e))?;
    let size = packed.len() as u64;
    crate::upload::put(store.as_ref(), &layout::file_path(id, LABELS_FILE), packed).await?;
    Ok(size)
}

/// zstd level of the label index: written once, small, read on label calls.
const LABEL_INDEX_ZSTD_LEVEL: i32 = 9;

/// Writes `meta.json` of a block whose data [`write_block_data`] wrote: the block now exists.
pub async fn publish_block(store: &Arc<dyn ObjectStore>, meta: &BlockMeta) -> Result<()> {
    let json = serde_json::to_vec_pretty(meta).map_err(|source| Error::Meta {
        path: meta.ulid.to_string(),
        source,
    })?;
    crate::upload::put(store.as_ref(), &layout::meta_path(meta.ulid), json).await
}

struct Encoded {
    /// The series' sub-chunk grid.
    grid: Option<SubChunks>,
    min_t: i64,
    max_t: i64,
    series: u64,
    samples: u64,
    /// Label names and values, external labels included (as readers see the series).
    labels: LabelIndex,
}

/// Where [`encode`] writes the file: pieces of [`SINK_BYTES`] handed to an [`Upload`] (which
/// sends them in parts) from the blocking thread; an upload whose part fails is aborted and
/// dropped here.
struct PartSink {
    upload: Option<Upload>,
    handle: tokio::runtime::Handle,
    buf: Vec<u8>,
    bytes: u64,
}

impl PartSink {
    fn send(&mut self) -> std::io::Result<()> {
        let part = Bytes::from(std::mem::take(&mut self.buf));
        let upload = self
            .upload
            .as_mut()
            .ok_or_else(|| std::io::Error::other("upload already failed"))?;
        if let Err(e) = self.handle.block_on(upload.write(part)) {
            if let Some(upload) = self.upload.take() {
                self.handle.block_on(upload.abort());
            }
            return Err(std::io::Error::other(e));
        }
        Ok(())
    }
}

impl std::io::Write for PartSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.bytes += data.len() as u64;
        if self.buf.len() >= SINK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

/// Writes series given in block order as Parquet into `sink` (CPU work, run off the async
/// runtime); returns the block's figures with the sink flushed.
fn encode(
    id: BlockId,
    series: impl Iterator<Item = Result<CodedSeries>>,
    external: &Labels,
    options: &WriteOptions,
    sink: &mut PartSink,
) -> Result<Encoded> {
    let mut series = series.peekable();
    // The block's layout is its first series' (every series of a block is coded on one grid).
    let grid = match series.peek() {
        Some(Ok(first)) => first.grid,
        Some(Err(_)) => None,
        None => return Err(Error::EmptyBlock),
    };
    let downsampled = options.resolution > 0;
    let arrow_schema = match (downsampled, grid) {
        (true, _) => schema::aggregate_schema(),
        (false, Some(grid)) => schema::sub_chunk_schema(grid.count as usize),
        (false, None) => schema::schema(),
    };
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(options.zstd_level)
                .map_err(|source| Error::Parquet { block: id, source })?,
        ))
        .set_max_row_group_row_count(Some(options.row_group_rows.max(1)))
        .set_data_page_row_count_limit(options.page_rows)
        .set_write_batch_size(options.page_rows.min(1024))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_column_statistics_enabled(ColumnPath::from(schema::LABELS), EnabledStatistics::None)
        .set_column_dictionary_enabled(ColumnPath::from(schema::LABELS), false);
    // Chunk bytes are not worth min/max statistics (and would bloat the footer).
    for field in arrow_schema.fields().iter().skip(SERIES_COLUMNS) {
        let column = ColumnPath::from(field.name().as_str());
        props = props
            .set_column_statistics_enabled(column.clone(), EnabledStatistics::None)
            .set_column_dictionary_enabled(column, keeps_dictionary(field.name()));
    }
    let props = props.build();
    let mut writer = ArrowWriter::try_new(sink, Arc::clone(&arrow_schema), Some(props))
        .map_err(|source| Error::Parquet { block: id, source })?;

    let (mut min_t, mut max_t, mut n_series, mut n_samples) = (i64::MAX, i64::MIN, 0u64, 0u64);
    let mut batch = BatchBuilder::new(Arc::clone(&arrow_schema));
    let mut previous: Option<Labels> = None;
    let mut index = LabelIndex::new();
    // Whether some series lacks each external label (and so shows the external value).
    let mut shows_external = vec![false; external.len()];
    for s in series {
        let s = s?;
        if let Some(p) = &previous
            && p.cmp_block_order(&s.labels) != std::cmp::Ordering::Less
        {
            return Err(Error::Corrupt(format!(
                "block {id}: series {} after {p}, out of block order",
                s.labels
            )));
        }
        let (name, labels) = (s.labels.metric_name(), s.labels.encode_without_name());
        for l in s.labels.iter() {
            match index.get_mut(&l.name) {
                Some(values) if values.contains(&l.value) => {}
                Some(values) => {
                    values.insert(l.value.clone());
                }
                None => {
                    index.insert(l.name.clone(), [l.value.clone()].into());
                }
            }
        }
        for (shown, l) in shows_external.iter_mut().zip(external.iter()) {
            *shown |= s.labels.get(&l.name).is_none();
        }
        min_t = min_t.min(s.min_t);
        max_t = max_t.max(s.max_t);
        n_series += 1;
        n_samples += u64::from(s.samples);
        batch.name.append_value(name);
        batch.labels.append_value(&labels);
        batch.min_t.append_value(s.min_t);
        batch.max_t.append_value(s.max_t);
        batch.samples.append_value(s.samples);
        if s.grid != grid || s.aggr.is_some() != downsampled {
            return Err(Error::Corrupt(format!(
                "block {id}: series {} coded as {}, the block as {}",
                s.labels,
                layout_name(s.grid, s.aggr.is_some()),
                layout_name(grid, downsampled),
            )));
        }
        let chunks = s.chunks.iter().flat_map(|(t, v)| [t, v]);
        batch.append_chunks(chunks.chain(s.aggr.iter().flatten()))?;
        if batch.len() >= options.page_rows.max(1024) {
            writer
                .write(&batch.finish()?)
                .map_err(|source| Error::Parquet { block: id, source })?;
        }
        previous = Some(s.labels);
    }
    if n_series == 0 {
        return Err(Error::EmptyBlock);
    }
    if batch.len() > 0 {
        writer
            .write(&batch.finish()?)
            .map_err(|source| Error::Parquet { block: id, source })?;
    }
    let sink = writer
        .into_inner()
        .map_err(|source| Error::Parquet { block: id, source })?;
    std::io::Write::flush(sink).map_err(|e| Error::Parquet {
        block: id,
        source: parquet::errors::ParquetError::External(Box::new(e)),
    })?;
    for (_, l) in shows_external
        .iter()
        .zip(external.iter())
        .filter(|(shown, _)| **shown)
    {
        index
            .entry(l.name.clone())
            .or_default()
            .insert(l.value.clone());
    }
    Ok(Encoded {
        grid,
        min_t,
        max_t,
        series: n_series,
        samples: n_samples,
        labels: index,
    })
}

/// Columns of every block before its chunk columns ([`schema::sub_chunk_schema`]).
const SERIES_COLUMNS: usize = 5;

/// Whether a chunk column is dictionary-encoded: timestamps (series scraped together share
/// them, stored once) and the summaries' times and counts; not values.
fn keeps_dictionary(column: &str) -> bool {
    column
        .strip_prefix(schema::TIMESTAMPS)
        .is_some_and(|slot| slot.is_empty())
        || column == schema::AGGR_TIMESTAMPS
        || column == schema::AGGR_COUNT
}

/// How a series or block is laid out, for errors.
fn layout_name(grid: Option<SubChunks>, downsampled: bool) -> String {
    match (grid, downsampled) {
        (_, true) => "downsampled".into(),
        (Some(g), false) => format!("{} sub-chunks of {} ms from {}", g.count, g.width, g.start),
        (None, false) => "one chunk".into(),
    }
}

struct BatchBuilder {
    schema: arrow::datatypes::SchemaRef,
    name: StringBuilder,
    labels: BinaryBuilder,
    min_t: Int64Builder,
    max_t: Int64Builder,
    samples: UInt32Builder,
    /// The chunk columns, in schema order.
    chunks: Vec<BinaryBuilder>,
}

impl BatchBuilder {
    fn new(schema: arrow::datatypes::SchemaRef) -> Self {
        let chunks = schema.fields().len().saturating_sub(SERIES_COLUMNS);
        Self {
            schema,
            name: StringBuilder::new(),
            labels: BinaryBuilder::new(),
            min_t: Int64Builder::new(),
            max_t: Int64Builder::new(),
            samples: UInt32Builder::new(),
            chunks: (0..chunks).map(|_| BinaryBuilder::new()).collect(),
        }
    }

    fn len(&self) -> usize {
        arrow::array::ArrayBuilder::len(&self.min_t)
    }

    /// Appends a row's chunk columns, in schema order.
    fn append_chunks<'a>(&mut self, chunks: impl Iterator<Item = &'a Vec<u8>>) -> Result<()> {
        let mut n = 0;
        for (builder, bytes) in self.chunks.iter_mut().zip(chunks) {
            builder.append_value(bytes);
            n += 1;
        }
        if n != self.chunks.len() {
            return Err(Error::Corrupt(format!(
                "a series with {n} chunk columns in a block of {}",
                self.chunks.len()
            )));
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.name.finish()),
            Arc::new(self.labels.finish()),
            Arc::new(self.min_t.finish()),
            Arc::new(self.max_t.finish()),
            Arc::new(self.samples.finish()),
        ];
        for b in &mut self.chunks {
            columns.push(Arc::new(b.finish()));
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}
