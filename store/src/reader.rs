//! [`BlockReader`]: (matchers, time range) in, series out, reading only what it needs.
//!
//! Rows of `data.parquet` are sorted by metric name, so with an `__name__="..."` matcher the reader
//! skips row groups by their statistics, then data pages by the page index, before decoding
//! anything. The remaining rows go through a row filter (matchers and time overlap, on the small
//! label columns); only rows that pass it have their chunk columns fetched and decoded.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{Int64Type, UInt32Type};
use arrow::error::ArrowError;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, RowFilter, RowSelection, RowSelector,
};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use std::ops::Range;

use crate::chunk;
use crate::downsample::{self, Aggregate, Window};
use crate::error::{Error, Result};
use crate::labels::{Labels, MatchOp, Matcher, matches_all_encoded};
use crate::layout;
use crate::meta::{BlockId, BlockMeta};
use crate::schema::{self, DATA_FILE, LABELS_FILE};
use crate::series::{Sample, Series, is_stale_nan};

/// Label names and their values in a block (external labels included).
pub type LabelIndex = BTreeMap<String, BTreeSet<String>>;

/// Most values of one label a scan tries a regex matcher on to skip a block by its label index.
const INDEX_REGEX_VALUES: usize = 1024;

/// The label index of the label sets `sets`.
pub fn index_of(sets: &[Labels]) -> LabelIndex {
    let mut index = LabelIndex::new();
    for labels in sets {
        for l in labels.iter() {
            index
                .entry(l.name.clone())
                .or_default()
                .insert(l.value.clone());
        }
    }
    index
}

/// The most bytes a block's label index may take decompressed.
const MAX_LABEL_INDEX_BYTES: u64 = 1 << 30;

/// Reads series out of one block. Keep one per block: it caches the Parquet footer and page index,
/// and the block's label index, after first use (blocks are immutable).
#[derive(Debug, Clone)]
pub struct BlockReader {
    store: Arc<dyn ObjectStore>,
    meta: BlockMeta,
    external: Labels,
    parquet_meta: Arc<tokio::sync::OnceCell<ArrowReaderMetadata>>,
    label_index: Arc<tokio::sync::OnceCell<Arc<LabelIndex>>>,
}

/// The series a selection found, with what it cost.
#[derive(Debug, Default)]
pub struct Selection {
    /// Matching series, external labels added, samples inside the time range; sorted by labels.
    pub series: Vec<Series>,
    /// What was read to find them.
    pub stats: ScanStats,
}

/// How much of a block a selection touched.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanStats {
    /// Row groups in the file.
    pub row_groups: usize,
    /// Row groups read.
    pub row_groups_read: usize,
    /// Data pages of the `metric_name` column in the read row groups.
    pub pages: usize,
    /// Those pages read (the rest skipped by the page index).
    pub pages_read: usize,
    /// Series (rows) that matched.
    pub series_matched: usize,
}

impl BlockReader {
    /// A reader of the block described by `meta`.
    pub fn new(store: Arc<dyn ObjectStore>, meta: BlockMeta) -> Self {
        let external = meta.external_labels();
        Self {
            store,
            meta,
            external,
            parquet_meta: Arc::default(),
            label_index: Arc::default(),
        }
    }

    /// The block's meta.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// Series whose labels (external labels included) satisfy all `matchers`, with their samples in
    /// `[min_t, max_t]` (both inclusive); series without samples in the range are left out.
    pub async fn select(&self, matchers: &[Matcher], min_t: i64, max_t: i64) -> Result<Selection> {
        self.scan(matchers, min_t, max_t, Some(Aggregate::default()))
            .await
    }

    /// [`BlockReader::select`] reading one view of the samples: a downsampled block's summaries
    /// (see [`Aggregate`]); a raw block's samples as they are, or counting one each for
    /// [`Aggregate::Count`] (stale markers left out).
    pub async fn select_view(
        &self,
        matchers: &[Matcher],
        min_t: i64,
        max_t: i64,
        view: Aggregate,
    ) -> Result<Selection> {
        self.scan(matchers, min_t, max_t, Some(view)).await
    }

    /// [`BlockReader::select`] as an Arrow record batch ([`crate::batch::SERIES_SCHEMA`]: one row
    /// per series, labels and samples).
    pub async fn select_batch(
        &self,
        matchers: &[Matcher],
        min_t: i64,
        max_t: i64,
    ) -> Result<arrow::array::RecordBatch> {
        let selection = self.select(matchers, min_t, max_t).await?;
        Ok(crate::batch::from_series(&selection.series)?)
    }

    /// Series matching `matchers` in `[min_t, max_t]` summarised at resolution `res` (coarser
    /// than the block's): per series, its windows and its counter aggregate (see
    /// [`crate::downsample`]), computed from the raw samples or from the block's own summaries.
    pub async fn select_summaries(
        &self,
        matchers: &[Matcher],
        min_t: i64,
        max_t: i64,
        res: i64,
    ) -> Result<Vec<(Labels, Vec<Window>, Vec<Sample>)>> {
        if self.meta.resolution == 0 {
            let raw = self.select(matchers, min_t, max_t).await?.series;
            return Ok(raw
                .into_iter()
                .map(|s| {
                    let windows = downsample::aggregate(downsample::raw_windows(&s.samples), res);
                    let counter = downsample::counter(&s.samples, res);
                    (s.labels, windows, counter)
                })
                .collect());
        }
        let view = |a| self.select_view(matchers, min_t, max_t, a);
        let counts = view(Aggregate::Count).await?.series;
        let sums = view(Aggregate::Sum).await?.series;
        let mins = view(Aggregate::Min).await?.series;
        let maxes = view(Aggregate::Max).await?.series;
        let counters = view(Aggregate::Counter).await?.series;
        let mut out = Vec::with_capacity(counts.len());
        // Every view has the same series in the same order, their windows at the same times.
        for ((((c, s), mn), mx), k) in counts
            .into_iter()
            .zip(sums)
            .zip(mins)
            .zip(maxes)
            .zip(counters)
        {
            if [&s.labels, &mn.labels, &mx.labels, &k.labels]
                .iter()
                .any(|l| **l != c.labels)
            {
                return Err(Error::Corrupt(format!(
                    "block {}: the summaries of {} do not line up",
                    self.meta.ulid, c.labels
                )));
            }
            let windows = c
                .samples
                .iter()
                .zip(&s.samples)
                .zip(mn.samples.iter().zip(&mx.samples))
                .map(|((c, s), (mn, mx))| Window {
                    t: c.t,
                    count: c.v,
                    sum: s.v,
                    min: mn.v,
                    max: mx.v,
                });
            let windows = downsample::aggregate(windows, res);
            let counter = downsample::counter(&k.samples, res);
            out.push((c.labels, windows, counter));
        }
        Ok(out)
    }

    /// The label sets (external labels included) of the series [`BlockReader::select`] would
    /// return, without fetching or decoding samples.
    pub async fn series_labels(
        &self,
        matchers: &[Matcher],
        min_t: i64,
        max_t: i64,
    ) -> Result<Vec<Labels>> {
        let selection = self.scan(matchers, min_t, max_t, None).await?;
        Ok(selection.series.into_iter().map(|s| s.labels).collect())
    }

    async fn scan(
        &self,
        matchers: &[Matcher],
        min_t: i64,
        max_t: i64,
        view: Option<Aggregate>,
    ) -> Result<Selection> {
        guard(
            self.meta.ulid,
            self.scan_unguarded(matchers, min_t, max_t, view),
        )
        .await
    }

    /// Series matching `matchers` in `[min_t, max_t]`: with `view`'s samples, or labels only.
    async fn scan_unguarded(
        &self,
        matchers: &[Matcher],
        min_t: i64,
        max_t: i64,
        view: Option<Aggregate>,
    ) -> Result<Selection> {
        let with_samples = view.is_some();
        let block = self.meta.ulid;
        let pq = |source| Error::Parquet { block, source };
        let mut stats = ScanStats::default();
        if !self.meta.overlaps(min_t, max_t) || self.excluded_by_index(matchers) {
            return Ok(Selection::default());
        }
        let file = self.file().await?;
        let builder =
            ParquetRecordBatchStreamBuilder::new_with_metadata(file, self.reader_metadata().await?);
        let metadata = Arc::clone(builder.metadata());
        let arrow_schema = Arc::clone(builder.schema());
        let parquet_schema = builder.parquet_schema();
        let row_groups = metadata.row_groups();
        stats.row_groups = row_groups.len();

        // Equality on the metric name prunes by statistics; any other matcher is left to the row filter.
        let name = matchers
            .iter()
            .find(|m| m.name == crate::labels::METRIC_NAME && m.op == MatchOp::Equal)
            .map(|m| m.value.clone());
        let name_stats =
            StatisticsConverter::try_new(schema::METRIC_NAME, &arrow_schema, parquet_schema)
                .map_err(pq)?;
        let contains = |mins: &dyn Array, maxes: &dyn Array, i: usize| -> bool {
            let Some(name) = &name else { return true };
            let (mins, maxes) = (mins.as_string::<i32>(), maxes.as_string::<i32>());
            (mins.is_null(i) || mins.value(i) <= name.as_str())
                && (maxes.is_null(i) || name.as_str() <= maxes.value(i))
        };
        let name_mins = name_stats.row_group_mins(row_groups.iter()).map_err(pq)?;
        let name_maxes = name_stats.row_group_maxes(row_groups.iter()).map_err(pq)?;
        let t_mins = StatisticsConverter::try_new(schema::MIN_T, &arrow_schema, parquet_schema)
            .map_err(pq)?
            .row_group_mins(row_groups.iter())
            .map_err(pq)?;
        let t_maxes = StatisticsConverter::try_new(schema::MAX_T, &arrow_schema, parquet_schema)
            .map_err(pq)?
            .row_group_maxes(row_groups.iter())
            .map_err(pq)?;
        let (t_mins, t_maxes) = (
            t_mins.as_primitive::<Int64Type>(),
            t_maxes.as_primitive::<Int64Type>(),
        );
        let selected: Vec<usize> = (0..row_groups.len())
            .filter(|&i| contains(&name_mins, &name_maxes, i))
            .filter(|&i| {
                (t_mins.is_null(i) || t_mins.value(i) <= max_t)
                    && (t_maxes.is_null(i) || t_maxes.value(i) >= min_t)
            })
            .collect();
        stats.row_groups_read = selected.len();
        if selected.is_empty() {
            return Ok(Selection {
                series: vec![],
                stats,
            });
        }

        // Page pruning on the metric name: rows are sorted by it, so matching pages are a few ranges.
        let mut selection = None;
        if let (Some(_), Some(col_index), Some(off_index)) =
            (&name, metadata.column_index(), metadata.offset_index())
        {
            let mins = name_stats
                .data_page_mins(col_index, off_index, selected.iter())
                .map_err(pq)?;
            let maxes = name_stats
                .data_page_maxes(col_index, off_index, selected.iter())
                .map_err(pq)?;
            let counts = name_stats
                .data_page_row_counts(off_index, row_groups, selected.iter())
                .map_err(pq)?;
            if let Some(counts) = counts {
                let mut selectors = Vec::with_capacity(counts.len());
                for i in 0..counts.len() {
                    let rows = counts.value(i) as usize;
                    stats.pages += 1;
                    if contains(&mins, &maxes, i) {
                        stats.pages_read += 1;
                        selectors.push(RowSelector::select(rows));
                    } else {
                        selectors.push(RowSelector::skip(rows));
                    }
                }
                selection = Some(RowSelection::from(selectors));
            }
        }

        let predicate = {
            let matchers = matchers.to_vec();
            let external = self.external.clone();
            // Without label matchers the filter needs no labels: the name and time columns are
            // small, and the labels are then decoded once, for the rows kept.
            let on_labels = matchers
                .iter()
                .any(|m| m.name != crate::labels::METRIC_NAME || m.op != MatchOp::Equal);
            let columns: &[usize] = if on_labels { &[0, 1, 2, 3] } else { &[0, 2, 3] };
            let mask = ProjectionMask::roots(parquet_schema, columns.iter().copied());
            ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
                row_filter(&batch, on_labels, &matchers, &external, min_t, max_t)
            })
        };
        let downsampled = self.meta.resolution > 0;
        let columns = match view {
            None => vec![schema::METRIC_NAME.to_string(), schema::LABELS.to_string()],
            Some(view) => read_columns(view, &self.meta, min_t, max_t),
        };
        let columns = columns
            .iter()
            .map(|c| arrow_schema.index_of(c))
            .collect::<std::result::Result<Vec<usize>, _>>()?;
        let projection = ProjectionMask::roots(parquet_schema, columns);
        let mut builder = builder
            .with_projection(projection)
            .with_row_groups(selected)
            .with_row_filter(RowFilter::new(vec![Box::new(predicate)]))
            .with_batch_size(4096);
        if let Some(selection) = selection {
            builder = builder.with_row_selection(selection);
        }
        let batches: Vec<RecordBatch> = builder
            .build()
            .map_err(pq)?
            .try_collect()
            .await
            .map_err(pq)?;

        let mut series = Vec::new();
        for batch in &batches {
            match view {
                Some(view) => {
                    let rows = Rows {
                        batch,
                        grid: self.meta.sub_chunks,
                        external: &self.external,
                        min_t,
                        max_t,
                    };
                    if downsampled && view != Aggregate::Counter {
                        rows.decode_summaries(view, &mut series)?;
                    } else {
                        rows.decode_samples(view, &mut series)?;
                    }
                }
                None => decode_labels(batch, &self.external, &mut series)?,
            }
        }
        stats.series_matched = series.len();
        if with_samples {
            series.retain(|s| !s.samples.is_empty());
        }
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(Selection { series, stats })
    }
}

/// Series and samples of one metric in a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricCount {
    /// The metric name (`""` for series without one).
    pub name: String,
    /// Number of series.
    pub series: u64,
    /// Number of samples.
    pub samples: u64,
}

impl BlockReader {
    /// Reads and caches what every query of the block needs first: the Parquet footer with its
    /// page index, and the label index (as Thanos's store gateway loads index headers at start).
    pub async fn load_headers(&self) -> Result<()> {
        guard(self.meta.ulid, self.reader_metadata()).await?;
        self.label_index().await.map(|_| ())
    }

    /// Every label name of the block with its values (read once, then cached).
    pub async fn label_index(&self) -> Result<Arc<LabelIndex>> {
        guard(self.meta.ulid, self.label_index_unguarded()).await
    }

    async fn label_index_unguarded(&self) -> Result<Arc<LabelIndex>> {
        let index = self
            .label_index
            .get_or_try_init(|| async {
                let index = match self.meta.file_size(LABELS_FILE) {
                    Some(size) => self.read_label_index(size).await?,
                    None => self.scan_label_index().await?,
                };
                Ok::<_, Error>(Arc::new(index))
            })
            .await?;
        Ok(Arc::clone(index))
    }

    /// Whether the label index, when loaded, shows that no series of the block can match, as
    /// Prometheus skips a block whose postings lack a value: an equality matcher on a value no
    /// series shows, or a regex matching neither `""` nor any value shown (tried on up to
    /// [`INDEX_REGEX_VALUES`] values). The index holds the values series show, external labels
    /// included, so this is exact for external labels too (a series may override one).
    fn excluded_by_index(&self, matchers: &[Matcher]) -> bool {
        let Some(index) = self.label_index.get() else {
            return false;
        };
        matchers.iter().any(|m| {
            let values = index.get(&m.name);
            match m.op {
                MatchOp::Equal => {
                    !m.value.is_empty() && !values.is_some_and(|v| v.contains(&m.value))
                }
                MatchOp::Regex => {
                    !m.matches("")
                        && values.is_none_or(|v| {
                            v.len() <= INDEX_REGEX_VALUES && !v.iter().any(|x| m.matches(x))
                        })
                }
                _ => false,
            }
        })
    }

    /// The label index the writer stored ([`LABELS_FILE`], `size` bytes).
    async fn read_label_index(&self, size: u64) -> Result<LabelIndex> {
        let path = layout::file_path(self.meta.ulid, LABELS_FILE);
        let corrupt = |e: &dyn std::fmt::Display| Error::Corrupt(format!("{path}: {e}"));
        let packed = crate::upload::get(self.store.as_ref(), &path).await?;
        if packed.len() as u64 != size {
            return Err(corrupt(&format!(
                "{} bytes, meta.json says {size}",
                packed.len()
            )));
        }
        // Bounded: a damaged or hostile frame cannot make us hold more than this.
        let mut json = Vec::new();
        zstd::stream::read::Decoder::new(&packed[..])
            .and_then(|d| {
                use std::io::Read;
                d.take(MAX_LABEL_INDEX_BYTES).read_to_end(&mut json)
            })
            .map_err(|e| corrupt(&e))?;
        if json.len() as u64 == MAX_LABEL_INDEX_BYTES {
            return Err(corrupt(&"larger than 1 GiB decompressed"));
        }
        serde_json::from_slice(&json).map_err(|e| corrupt(&e))
    }

    /// The label index of a block written without one: every series' labels, read from the file.
    async fn scan_label_index(&self) -> Result<LabelIndex> {
        Ok(index_of(
            &self.series_labels(&[], i64::MIN, i64::MAX).await?,
        ))
    }

    /// The Parquet footer and page index (read once, then cached).
    async fn reader_metadata(&self) -> Result<ArrowReaderMetadata> {
        let block = self.meta.ulid;
        let md = self
            .parquet_meta
            .get_or_try_init(|| async {
                let mut file = self.file().await?;
                // The Arrow schema is ours (`schema.rs`) and the Parquet types give it exactly:
                // the copy embedded in the file is not decoded, so a damaged one cannot reach
                // arrow-ipc, which panics on some (found by fuzzing: fuzz/regressions/block).
                let options = ArrowReaderOptions::new()
                    .with_skip_arrow_metadata(true)
                    .with_page_index_policy(PageIndexPolicy::Optional);
                ArrowReaderMetadata::load_async(&mut file, options)
                    .await
                    .map_err(|source| Error::Parquet { block, source })
            })
            .await?;
        Ok(md.clone())
    }

    /// Per-metric series and sample counts, reading only the name and count columns.
    pub async fn metric_counts(&self) -> Result<Vec<MetricCount>> {
        guard(self.meta.ulid, self.metric_counts_unguarded()).await
    }

    async fn metric_counts_unguarded(&self) -> Result<Vec<MetricCount>> {
        let block = self.meta.ulid;
        let pq = |source| Error::Parquet { block, source };
        let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(
            self.file().await?,
            self.reader_metadata().await?,
        );
        let names = builder.schema().index_of(schema::METRIC_NAME)?;
        let counts = builder.schema().index_of(schema::SAMPLES)?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), [names, counts]);
        let batches: Vec<RecordBatch> = builder
            .with_projection(mask)
            .build()
            .map_err(pq)?
            .try_collect()
            .await
            .map_err(pq)?;
        let mut out: Vec<MetricCount> = Vec::new();
        for batch in &batches {
            let names = batch.column(0).as_string::<i32>();
            let counts = batch.column(1).as_primitive::<UInt32Type>();
            for i in 0..batch.num_rows() {
                let name = names.value(i);
                match out.last_mut() {
                    Some(last) if last.name == name => {
                        last.series += 1;
                        last.samples += u64::from(counts.value(i));
                    }
                    _ => out.push(MetricCount {
                        name: name.into(),
                        series: 1,
                        samples: u64::from(counts.value(i)),
                    }),
                }
            }
        }
        Ok(out)
    }

    async fn file(&self) -> Result<ObjectFile> {
        let path = layout::data_path(self.meta.ulid);
        let size = match self.meta.file_size(DATA_FILE) {
            Some(size) => size,
            None => {
                let head = self.store.head(&path).await;
                head.map_err(|source| Error::ObjectStore {
                    op: "head",
                    path: path.to_string(),
                    source,
                })?
                .size
            }
        };
        Ok(ObjectFile {
            store: Arc::clone(&self.store),
            path,
            size,
        })
    }
}

/// Matchers (on labels with external labels added) and time overlap, for one batch of rows (its
/// `labels` column read only `with_labels`, when a matcher needs it).
fn row_filter(
    batch: &RecordBatch,
    with_labels: bool,
    matchers: &[Matcher],
    external: &Labels,
    min_t: i64,
    max_t: i64,
) -> Result<BooleanArray, ArrowError> {
    // `metric_name`, `labels` (`with_labels`), `min_t`, `max_t`.
    let names = batch.column(0).as_string::<i32>();
    let labels = with_labels.then(|| batch.column(1).as_binary::<i32>());
    let times = usize::from(with_labels) + 1;
    let firsts = batch.column(times).as_primitive::<Int64Type>();
    let lasts = batch.column(times + 1).as_primitive::<Int64Type>();
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let encoded = labels.map_or(&[][..], |l| l.value(i));
        let keep = firsts.value(i) <= max_t
            && lasts.value(i) >= min_t
            && matches_all_encoded(matchers, names.value(i), encoded, external)
                .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
        out.push(keep);
    }
    Ok(BooleanArray::from(out))
}

fn decode_labels(batch: &RecordBatch, external: &Labels, out: &mut Vec<Series>) -> Result<()> {
    let names = batch.column(0).as_string::<i32>();
    let labels = batch.column(1).as_binary::<i32>();
    for i in 0..batch.num_rows() {
        let labels =
            Labels::decode_with_name(names.value(i), labels.value(i))?.with_external(external);
        out.push(Series {
            labels,
            samples: Vec::new(),
        });
    }
    Ok(())
}

/// The columns a view of `[min_t, max_t]` reads: a downsampled block's summaries, a raw block's
/// sub-chunks in the range (or its one chunk).
fn read_columns(view: Aggregate, meta: &BlockMeta, min_t: i64, max_t: i64) -> Vec<String> {
    let mut columns = vec![schema::METRIC_NAME, schema::LABELS];
    if let (Some(grid), 0) = (&meta.sub_chunks, meta.resolution) {
        // `min_t`: slots code their timestamps from the series' first sample.
        columns.push(schema::MIN_T);
        let mut columns: Vec<String> = columns.into_iter().map(String::from).collect();
        for k in grid.slots(min_t, max_t) {
            columns.extend([schema::slot_timestamps(k), schema::slot_values(k)]);
        }
        return columns;
    }
    if meta.resolution == 0 || view == Aggregate::Counter {
        columns.extend([schema::SAMPLES, schema::TIMESTAMPS, schema::VALUES]);
    } else {
        columns.push(schema::AGGR_TIMESTAMPS);
        columns.extend(match view {
            Aggregate::Avg => &[schema::AGGR_SUM, schema::AGGR_COUNT][..],
            Aggregate::Count => &[schema::AGGR_COUNT],
            Aggregate::Sum => &[schema::AGGR_SUM],
            Aggregate::Min => &[schema::AGGR_MIN],
            Aggregate::Max => &[schema::AGGR_MAX],
            Aggregate::Counter => &[],
        });
    }
    columns.into_iter().map(String::from).collect()
}

/// The rows of one batch of a selection, decoded into series.
struct Rows<'a> {
    batch: &'a RecordBatch,
    /// The block's sub-chunk grid, if it has one.
    grid: Option<crate::sub_chunks::SubChunks>,
    external: &'a Labels,
    min_t: i64,
    max_t: i64,
}

impl<'a> Rows<'a> {
    fn col(&self, name: &str) -> Result<&'a arrow::array::ArrayRef> {
        self.batch
            .column_by_name(name)
            .ok_or_else(|| Error::Corrupt(format!("data.parquet has no column {name}")))
    }

    fn labels(&self, i: usize) -> Result<Labels> {
        let names = self.col(schema::METRIC_NAME)?.as_string::<i32>();
        let labels = self.col(schema::LABELS)?.as_binary::<i32>();
        Ok(Labels::decode_with_name(names.value(i), labels.value(i))?.with_external(self.external))
    }

    /// Samples of the `timestamps` and `values` columns (a downsampled block's counter aggregate),
    /// as `view` sees them.
    fn decode_samples(&self, view: Aggregate, out: &mut Vec<Series>) -> Result<()> {
        // The chunk columns read: one pair (a version 1 block, a counter aggregate), or the
        // sub-chunks in range, in time order.
        let fields = self.batch.schema();
        let mut chunks = Vec::new();
        for (i, field) in fields.fields().iter().enumerate() {
            if let Some(slot) = field.name().strip_prefix(schema::TIMESTAMPS) {
                let values = self.col(&format!("{}{slot}", schema::VALUES))?;
                // A sub-chunk's timestamps are coded from its slot's start.
                let slot_start = match (slot.strip_prefix('_'), &self.grid) {
                    (None, _) => None,
                    (Some(k), Some(grid)) => Some(grid.slot_start(k.parse().map_err(|_| {
                        Error::Corrupt(format!("data.parquet column {}", field.name()))
                    })?)),
                    (Some(_), None) => {
                        return Err(Error::Corrupt(format!(
                            "data.parquet has sub-chunk column {} but meta.json no sub_chunks",
                            field.name()
                        )));
                    }
                };
                let (ts, vs) = (self.batch.column(i), values);
                chunks.push((ts.as_binary::<i32>(), vs.as_binary::<i32>(), slot_start));
            }
        }
        // Sub-chunks code their timestamps from the series' first sample.
        let firsts = match chunks.iter().any(|c| c.2.is_some()) {
            true => Some(self.col(schema::MIN_T)?.as_primitive::<Int64Type>()),
            false => None,
        };
        // A whole chunk's sample count is checked against the `samples` column.
        let counts = self
            .batch
            .column_by_name(schema::SAMPLES)
            .map(|c| c.as_primitive::<UInt32Type>());
        let (mut ts, mut vs) = (Vec::new(), Vec::new());
        for i in 0..self.batch.num_rows() {
            let mut samples = Vec::new();
            for (tss, vss, slot_start) in &chunks {
                let (t_bytes, v_bytes) = (tss.value(i), vss.value(i));
                if t_bytes.is_empty() && v_bytes.is_empty() {
                    continue;
                }
                ts.clear();
                vs.clear();
                match slot_start {
                    Some(start) => {
                        let first = firsts.map_or(*start, |f| f.value(i));
                        chunk::decode_slot_timestamps(t_bytes, first, *start, &mut ts)?
                    }
                    None => chunk::decode_timestamps(t_bytes, &mut ts)?,
                }
                if let Some(counts) = counts
                    && ts.len() != counts.value(i) as usize
                {
                    return Err(Error::Corrupt(format!(
                        "row {i}: {} timestamps, {} samples announced",
                        ts.len(),
                        counts.value(i)
                    )));
                }
                // Only the values in the range are made (timestamps are sorted).
                let lo = ts.partition_point(|&t| t < self.min_t);
                let hi = ts.partition_point(|&t| t <= self.max_t);
                let n = chunk::decode_values_range(v_bytes, lo..hi, &mut vs)?;
                if n != ts.len() || vs.len() != hi.saturating_sub(lo) {
                    return Err(Error::Corrupt(format!(
                        "row {i}: {n} values, {} timestamps",
                        ts.len()
                    )));
                }
                let in_range = ts[lo..hi.max(lo)].iter().zip(&vs);
                if view == Aggregate::Count {
                    samples.extend(
                        in_range
                            .filter(|(_, v)| !is_stale_nan(**v))
                            .map(|(&t, _)| Sample { t, v: 1.0 }),
                    );
                } else {
                    samples.extend(in_range.map(|(&t, &v)| Sample { t, v }));
                }
            }
            out.push(Series {
                labels: self.labels(i)?,
                samples,
            });
        }
        Ok(())
    }

    /// A downsampled block's window summaries as `view` sees them.
    fn decode_summaries(&self, view: Aggregate, out: &mut Vec<Series>) -> Result<()> {
        let tss = self.col(schema::AGGR_TIMESTAMPS)?.as_binary::<i32>();
        let column = |name| -> Result<_> { Ok(self.col(name)?.as_binary::<i32>()) };
        let (first, second) = match view {
            Aggregate::Avg => (column(schema::AGGR_SUM)?, Some(column(schema::AGGR_COUNT)?)),
            Aggregate::Count => (column(schema::AGGR_COUNT)?, None),
            Aggregate::Sum => (column(schema::AGGR_SUM)?, None),
            Aggregate::Min => (column(schema::AGGR_MIN)?, None),
            Aggregate::Max | Aggregate::Counter => (column(schema::AGGR_MAX)?, None),
        };
        let (mut ts, mut vs, mut divisors) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..self.batch.num_rows() {
            ts.clear();
            vs.clear();
            divisors.clear();
            chunk::decode_timestamps(tss.value(i), &mut ts)?;
            chunk::decode_values(first.value(i), &mut vs)?;
            if let Some(second) = second {
                chunk::decode_values(second.value(i), &mut divisors)?;
            } else {
                divisors.resize(vs.len(), 1.0);
            }
            if ts.len() != vs.len() || ts.len() != divisors.len() {
                return Err(Error::Corrupt(format!(
                    "row {i}: {} window times, {} and {} summaries",
                    ts.len(),
                    vs.len(),
                    divisors.len()
                )));
            }
            let samples = ts
                .iter()
                .zip(vs.iter().zip(&divisors))
                .filter(|(t, _)| (self.min_t..=self.max_t).contains(*t))
                .map(|(&t, (&v, &d))| Sample {
                    t,
                    v: if second.is_some() { v / d } else { v },
                })
                .collect();
            out.push(Series {
                labels: self.labels(i)?,
                samples,
            });
        }
        Ok(())
    }
}

/// A Parquet file in the object store, read by byte ranges.
#[derive(Debug)]
struct ObjectFile {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
}

fn store_err(e: object_store::Error) -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::External(Box::new(e))
}

/// `read`, with a panic while it runs made this block's error. Parquet's decoder panics on some
/// damaged pages (a dictionary-coded page without its dictionary, found by fuzzing) instead of
/// returning an error: a damaged block must cost a warning, never the process.
async fn guard<T>(block: BlockId, read: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(read).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(Error::Corrupt(format!(
                "block {block}: the Parquet decoder failed: {what}"
            )))
        }
    }
}

/// `bytes` if they are all of `range`; a range past the end of the file (a damaged footer pointing
/// outside it) is an error here, where Parquet's decoder would panic (found by fuzzing).
fn whole(range: &Range<u64>, bytes: Bytes) -> parquet::errors::Result<Bytes> {
    if bytes.len() as u64 == range.end.saturating_sub(range.start) {
        Ok(bytes)
    } else {
        Err(parquet::errors::ParquetError::EOF(format!(
            "bytes {}..{} asked, {} there: the file is shorter than its footer says",
            range.start,
            range.end,
            bytes.len()
        )))
    }
}

impl AsyncFileReader for ObjectFile {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            let bytes = self
                .store
                .get_range(&self.path, range.clone())
                .await
                .map_err(store_err)?;
            whole(&range, bytes)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            let parts = self
                .store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(store_err)?;
            ranges.iter().zip(parts).map(|(r, b)| whole(r, b)).collect()
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .with_prefetch_hint(Some(64 * 1024))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}
