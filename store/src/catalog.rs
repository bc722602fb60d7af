//! [`Catalog`]: the blocks of an object store, refreshed by listing `*/meta.json`, as a [`Source`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use object_store::ObjectStore;

use crate::downsample::Aggregate;
use crate::error::Result;
use crate::reader::LabelIndex;
use crate::source::{
    IndexFuture, LabelsFuture, NamesFuture, SelectFuture, SelectHints, Source, union_into,
};
use crate::{BlockMeta, BlockReader, Labels, Matcher, Sample, Series};

/// Blocks readable through one object store. Holds only what a listing rebuilds in seconds, plus
/// per-block caches of immutable data (Parquet footers, label indexes) filled on first use.
#[derive(Debug)]
pub struct Catalog {
    store: Arc<dyn ObjectStore>,
    readers: RwLock<Arc<Vec<Arc<BlockReader>>>>,
}

/// Blocks read at once by one selection.
const CONCURRENT_BLOCKS: usize = 8;
/// Blocks whose headers [`Catalog::load_headers`] reads at once.
const HEADER_LOADS: usize = 16;

impl Catalog {
    /// A catalog of `store`, empty until [`Catalog::refresh`].
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            readers: RwLock::new(Arc::new(Vec::new())),
        }
    }

    /// Lists the blocks again, keeping the caches of blocks still there and reading only the new
    /// blocks' `meta.json` (blocks are immutable); returns how many there are.
    pub async fn refresh(&self) -> Result<usize> {
        let ids = BlockMeta::list_ids(&self.store).await?;
        let old: HashMap<_, Arc<BlockReader>> = self
            .readers()
            .iter()
            .map(|r| (r.meta().ulid, Arc::clone(r)))
            .collect();
        let new_ids = ids.iter().filter(|id| !old.contains_key(id)).copied();
        let mut new: HashMap<_, Arc<BlockReader>> =
            BlockMeta::read_all(&self.store, new_ids.collect())
                .await?
                .into_iter()
                .map(|m| {
                    (
                        m.ulid,
                        Arc::new(BlockReader::new(Arc::clone(&self.store), m)),
                    )
                })
                .collect();
        let readers: Vec<Arc<BlockReader>> = ids
            .iter()
            .filter_map(|id| old.get(id).cloned().or_else(|| new.remove(id)))
            .collect();
        let n = readers.len();
        // A poisoned lock only means a panic elsewhere while swapping an `Arc`: the value is whole.
        let mut current = match self.readers.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *current = Arc::new(readers);
        Ok(n)
    }

    /// Loads the headers ([`BlockReader::load_headers`]) of every known block not loaded yet,
    /// [`HEADER_LOADS`] at a time, so that no query waits for them; a block that cannot be read
    /// is left to the queries, which report it. Returns how many blocks failed.
    pub async fn load_headers(&self) -> usize {
        let readers = self.readers();
        let loads = readers.iter().cloned().map(|r| async move {
            let loaded = r.load_headers().await;
            if let Err(e) = &loaded {
                tracing::debug!(block = %r.meta().ulid, error = %e, "block headers not loaded");
            }
            loaded.is_ok()
        });
        let loaded: Vec<bool> = futures::stream::iter(loads)
            .buffer_unordered(HEADER_LOADS)
            .collect()
            .await;
        loaded.into_iter().filter(|ok| !ok).count()
    }

    /// The blocks known since the last refresh.
    pub fn blocks(&self) -> Vec<BlockMeta> {
        self.readers().iter().map(|r| r.meta().clone()).collect()
    }

    fn readers(&self) -> Arc<Vec<Arc<BlockReader>>> {
        self.readers
            .read()
            .map(|b| Arc::clone(&b))
            .unwrap_or_default()
    }

    /// Whether a block's external labels can satisfy the matchers (a matcher on an external label
    /// the series do not override decides for the whole block).
    fn may_match(meta: &BlockMeta, matchers: &[Matcher]) -> bool {
        matchers
            .iter()
            .all(|m| match meta.external_labels.get(&m.name) {
                // A series could carry its own value for this name; only a mismatch on both is a skip.
                Some(v) => m.matches(v) || !m.matches(""),
                None => true,
            })
    }

    /// Blocks (of every resolution: for labels) overlapping `[min_t, max_t]` that may hold series
    /// matching `matchers`.
    fn selected(&self, matchers: &[Matcher], min_t: i64, max_t: i64) -> Vec<Arc<BlockReader>> {
        self.readers()
            .iter()
            .filter(|r| r.meta().overlaps(min_t, max_t) && Self::may_match(r.meta(), matchers))
            .cloned()
            .collect()
    }

    /// The blocks a selection reads, each with the part of its time range it answers for: raw
    /// blocks only, or with `hints.resolution` the coarsest blocks at most that coarse per source
    /// and time, finer ones filling the time they leave uncovered.
    fn chosen(&self, matchers: &[Matcher], hints: &SelectHints) -> Vec<BlockPart> {
        let (start, end) = (hints.start, hints.end);
        let whole = |reader| BlockPart {
            reader,
            from: start,
            to: end,
            target: 0,
        };
        if hints.resolution <= 0 {
            return self
                .selected(matchers, start, end)
                .into_iter()
                .filter(|r| r.meta().resolution == 0)
                .map(whole)
                .collect();
        }
        let mut sources: BTreeMap<&BTreeMap<String, String>, Vec<&Arc<BlockReader>>> =
            BTreeMap::new();
        let readers = self.readers();
        for r in readers.iter().filter(|r| {
            let m = r.meta();
            m.resolution <= hints.resolution
                && m.overlaps(start, end)
                && Self::may_match(m, matchers)
        }) {
            sources
                .entry(&r.meta().external_labels)
                .or_default()
                .push(r);
        }
        let mut out = Vec::new();
        for mut blocks in sources.into_values() {
            blocks.sort_by_key(|r| std::cmp::Reverse(r.meta().resolution));
            // Finer data filling gaps is summarised like the coarsest read: one spacing per series,
            // or `rate()` would extrapolate from uneven samples.
            let target = blocks.first().map_or(0, |r| r.meta().resolution);
            // Time already answered by coarser blocks, as inclusive ranges.
            let mut covered: Vec<(i64, i64)> = Vec::new();
            for level in blocks.chunk_by(|a, b| a.meta().resolution == b.meta().resolution) {
                for r in level {
                    let (lo, hi) = (start.max(r.meta().min_t), end.min(r.meta().max_t - 1));
                    for (from, to) in uncovered(&covered, lo, hi) {
                        out.push(BlockPart {
                            reader: Arc::clone(r),
                            from,
                            to,
                            target,
                        });
                    }
                }
                covered.extend(level.iter().map(|r| (r.meta().min_t, r.meta().max_t - 1)));
            }
        }
        out
    }
}

/// A block and the part of a selection's time range it answers for (inclusive).
#[derive(Debug, Clone)]
struct BlockPart {
    reader: Arc<BlockReader>,
    from: i64,
    to: i64,
    /// Resolution to read at: the block's, or a coarser one it is summarised to while read.
    target: i64,
}

impl BlockPart {
    /// Reads the part: `hints`' view, within both its range and the part's.
    async fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> Vec<Series> {
        let (from, to) = (hints.start.max(self.from), hints.end.min(self.to));
        if from > to {
            return Vec::new();
        }
        let view = hints.aggregate;
        if self.target <= self.reader.meta().resolution {
            let selected = self.reader.select_view(matchers, from, to, view).await;
            return partial(&self.reader, selected.map(|s| s.series));
        }
        let summaries = self
            .reader
            .select_summaries(matchers, from, to, self.target)
            .await;
        partial(&self.reader, summaries)
            .into_iter()
            .map(|(labels, windows, counter)| Series {
                labels,
                samples: match view {
                    Aggregate::Counter => counter,
                    _ => windows
                        .iter()
                        .map(|w| Sample {
                            t: w.t,
                            v: w.value(view),
                        })
                        .collect(),
                },
            })
            .collect()
    }
}

/// The pieces of `[lo, hi]` outside every range of `covered` (all inclusive).
fn uncovered(covered: &[(i64, i64)], lo: i64, hi: i64) -> Vec<(i64, i64)> {
    let mut pieces = vec![(lo, hi)];
    for &(c_lo, c_hi) in covered {
        pieces = pieces
            .into_iter()
            .flat_map(|(a, b)| {
                if c_hi < a || b < c_lo {
                    return vec![(a, b)];
                }
                let mut left = Vec::new();
                if a < c_lo {
                    left.push((a, c_lo - 1));
                }
                if c_hi < b {
                    left.push((c_hi + 1, b));
                }
                left
            })
            .collect();
    }
    pieces.retain(|(a, b)| a <= b);
    pieces
}

/// What a block gave, or nothing and a warning naming it if it could not be read (a damaged
/// file, a chunk that does not decode, an object gone): the answer comes from the other blocks,
/// as from the other remote-read endpoints when one is down.
fn partial<T: Default>(reader: &BlockReader, result: Result<T>) -> T {
    result.unwrap_or_else(|e| {
        let m = reader.meta();
        crate::warnings::warn(format!(
            "block {} ({}, {} to {} ms) skipped: {}",
            m.ulid,
            m.external_labels(),
            m.min_t,
            m.max_t,
            crate::error::display_chain(&e)
        ));
        T::default()
    })
}

/// One block of a catalog, for part of a time range, as a [`Source`] (a part of the catalog for
/// parallel plans).
#[derive(Debug)]
struct BlockSource(BlockPart);

impl Source for BlockSource {
    fn external_labels(&self) -> Option<Labels> {
        Some(self.0.reader.meta().external_labels())
    }

    fn select<'a>(&'a self, matchers: &'a [Matcher], hints: &'a SelectHints) -> SelectFuture<'a> {
        Box::pin(async move {
            if !Catalog::may_match(self.0.reader.meta(), matchers) {
                return Ok(Vec::new());
            }
            Ok(self.0.select(matchers, hints).await)
        })
    }

    fn size_hint(&self) -> u64 {
        self.0.reader.meta().stats.samples.max(1)
    }
}

impl Source for Catalog {
    fn parts(&self, hints: &SelectHints) -> Option<Vec<Arc<dyn Source>>> {
        Some(
            self.chosen(&[], hints)
                .into_iter()
                .map(|p| Arc::new(BlockSource(p)) as Arc<dyn Source>)
                .collect(),
        )
    }

    fn select<'a>(&'a self, matchers: &'a [Matcher], hints: &'a SelectHints) -> SelectFuture<'a> {
        Box::pin(async move {
            let results: Vec<Vec<Series>> = futures::stream::iter(self.chosen(matchers, hints))
                .map(|part| async move { part.select(matchers, hints).await })
                .buffer_unordered(CONCURRENT_BLOCKS)
                .collect()
                .await;
            Ok(crate::series::merge(results))
        })
    }

    fn series<'a>(&'a self, matchers: &'a [Matcher], min_t: i64, max_t: i64) -> LabelsFuture<'a> {
        Box::pin(async move {
            let results: Vec<Vec<Labels>> =
                futures::stream::iter(self.selected(matchers, min_t, max_t))
                    .map(|reader| async move {
                        let labels = reader.series_labels(matchers, min_t, max_t).await;
                        partial(&reader, labels)
                    })
                    .buffer_unordered(CONCURRENT_BLOCKS)
                    .collect()
                    .await;
            let mut all: Vec<Labels> = results.into_iter().flatten().collect();
            all.sort();
            all.dedup();
            Ok(all)
        })
    }

    fn label_index<'a>(&'a self, min_t: i64, max_t: i64) -> IndexFuture<'a> {
        Box::pin(async move {
            Ok(merge_indexes(
                self.block_indexes(min_t, max_t).await.into_iter(),
            ))
        })
    }

    fn label_names<'a>(&'a self, min_t: i64, max_t: i64) -> NamesFuture<'a> {
        Box::pin(async move {
            let mut names = BTreeSet::new();
            for index in self.block_indexes(min_t, max_t).await {
                for name in index.keys() {
                    if !names.contains(name) {
                        names.insert(name.clone());
                    }
                }
            }
            Ok(names)
        })
    }

    fn label_values<'a>(&'a self, name: &'a str, min_t: i64, max_t: i64) -> NamesFuture<'a> {
        Box::pin(async move {
            let mut values = BTreeSet::new();
            for index in self.block_indexes(min_t, max_t).await {
                if let Some(v) = index.get(name) {
                    union_into(&mut values, v);
                }
            }
            Ok(values)
        })
    }
}

impl Catalog {
    /// The label indexes of the blocks overlapping `[min_t, max_t]` (a block that fails is a
    /// warning and left out).
    async fn block_indexes(&self, min_t: i64, max_t: i64) -> Vec<Arc<LabelIndex>> {
        futures::stream::iter(self.selected(&[], min_t, max_t))
            .map(|reader| async move {
                let index = reader.label_index().await;
                partial(&reader, index.map(Some))
            })
            .buffer_unordered(CONCURRENT_BLOCKS)
            .filter_map(|index| async move { index })
            .collect()
            .await
    }
}

/// The union of block label indexes. Blocks of a source share most names and values: only those
/// not seen yet are copied.
fn merge_indexes(parts: impl Iterator<Item = Arc<LabelIndex>>) -> LabelIndex {
    let mut index = LabelIndex::new();
    for part in parts {
        for (name, values) in part.iter() {
            match index.get_mut(name) {
                None => {
                    index.insert(name.clone(), values.clone());
                }
                Some(have) => union_into(have, values),
            }
        }
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncovered_time_is_what_coarser_blocks_leave() {
        assert_eq!(uncovered(&[], 0, 9), vec![(0, 9)]);
        assert_eq!(uncovered(&[(3, 5)], 0, 9), vec![(0, 2), (6, 9)]);
        assert_eq!(uncovered(&[(0, 4), (5, 9)], 0, 9), vec![]);
        assert_eq!(uncovered(&[(8, 20), (-5, 1)], 0, 9), vec![(2, 7)]);
        assert_eq!(uncovered(&[(10, 20)], 0, 9), vec![(0, 9)]);
    }

    #[tokio::test]
    async fn a_refresh_reads_only_new_blocks_and_drops_gone_ones() {
        let store = crate::objstore::open("memory://").unwrap();
        let block = |t| {
            let store = Arc::clone(&store);
            async move {
                let series = vec![Series {
                    labels: Labels::from_pairs([("__name__", "up")]),
                    samples: vec![Sample { t, v: 1.0 }],
                }];
                let opts = crate::WriteOptions::default();
                crate::write_block(&store, series, &Labels::empty(), &opts)
                    .await
                    .unwrap()
            }
        };
        let a = block(0).await;
        let catalog = Catalog::new(Arc::clone(&store));
        assert_eq!(catalog.refresh().await.unwrap(), 1);
        let first = Arc::clone(&catalog.readers()[0]);
        let b = block(1).await;
        assert_eq!(catalog.refresh().await.unwrap(), 2);
        // The known block keeps its reader (and caches); the new one is read.
        let readers = catalog.readers();
        let kept = readers.iter().find(|r| r.meta().ulid == a.ulid).unwrap();
        assert!(Arc::ptr_eq(kept, &first));
        assert!(readers.iter().any(|r| r.meta().ulid == b.ulid));
        crate::compact::delete_block(&store, a.ulid).await.unwrap();
        assert_eq!(catalog.refresh().await.unwrap(), 1);
        assert_eq!(catalog.blocks()[0].ulid, b.ulid);
    }

    #[tokio::test]
    async fn loaded_headers_answer_without_the_store() {
        use object_store::ObjectStoreExt;
        let store = crate::objstore::open("memory://").unwrap();
        let series = vec![Series {
            labels: Labels::from_pairs([("__name__", "up"), ("job", "node")]),
            samples: vec![Sample { t: 1, v: 1.0 }],
        }];
        let opts = crate::WriteOptions::default();
        let meta = crate::write_block(&store, series.clone(), &Labels::empty(), &opts)
            .await
            .unwrap();
        let catalog = Catalog::new(Arc::clone(&store));
        catalog.refresh().await.unwrap();
        assert_eq!(catalog.load_headers().await, 0);
        // The label index came with the headers: the file can go and the names still answer.
        let index = crate::layout::file_path(meta.ulid, crate::schema::LABELS_FILE);
        store.delete(&index).await.unwrap();
        let names = catalog.label_names(i64::MIN, i64::MAX).await.unwrap();
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["__name__", "job"]);
        // A block whose data file is damaged is counted, not fatal; the good one stays loaded.
        let bad = crate::write_block(&store, series, &Labels::empty(), &opts)
            .await
            .unwrap();
        let data = crate::layout::data_path(bad.ulid);
        store
            .put(&data, object_store::PutPayload::from(vec![0u8; 64]))
            .await
            .unwrap();
        catalog.refresh().await.unwrap();
        assert_eq!(catalog.load_headers().await, 1);
    }

    #[test]
    fn merged_indexes_hold_every_name_and_value_once() {
        let index = |pairs: &[(&str, &[&str])]| {
            Arc::new(
                pairs
                    .iter()
                    .map(|(n, vs)| (n.to_string(), vs.iter().map(|v| v.to_string()).collect()))
                    .collect::<LabelIndex>(),
            )
        };
        let merged = merge_indexes(
            [
                index(&[("__name__", &["up"]), ("job", &["a", "b"])]),
                index(&[("job", &["b", "c"]), ("pod", &["p"])]),
            ]
            .into_iter(),
        );
        assert_eq!(
            merged,
            *index(&[
                ("__name__", &["up"]),
                ("job", &["a", "b", "c"]),
                ("pod", &["p"])
            ])
        );
    }
}
