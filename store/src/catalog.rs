//! [`Catalog`]: the blocks of an object store, refreshed by listing `*/meta.json`, as a [`Source`].

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use object_store::ObjectStore;

use crate::error::Result;
use crate::reader::LabelIndex;
use crate::source::{
    IndexFuture, LabelsFuture, NamesFuture, SelectFuture, SelectHints, Source, union_into,
};
use crate::{BlockMeta, BlockReader, Labels, Matcher, Series};

/// Blocks readable through one object store. Holds only what a listing rebuilds in seconds, plus
/// per-block caches of immutable data (Parquet footers, label indexes) filled on first use.
#[derive(Debug)]
pub struct Catalog {
    store: Arc<dyn ObjectStore>,
    readers: RwLock<Arc<Vec<Arc<BlockReader>>>>,
}

/// Blocks read at once by one selection.
const CONCURRENT_BLOCKS: usize = 8;

impl Catalog {
    /// A catalog of `store`, empty until [`Catalog::refresh`].
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            readers: RwLock::new(Arc::new(Vec::new())),
        }
    }

    /// Lists the blocks again, keeping the caches of blocks still there; returns how many there are.
    pub async fn refresh(&self) -> Result<usize> {
        let metas = BlockMeta::list(&self.store).await?;
        let old: HashMap<_, Arc<BlockReader>> = self
            .readers()
            .iter()
            .map(|r| (r.meta().ulid, Arc::clone(r)))
            .collect();
        let readers: Vec<Arc<BlockReader>> = metas
            .into_iter()
            .map(|m| {
                old.get(&m.ulid)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(BlockReader::new(Arc::clone(&self.store), m)))
            })
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

    fn selected(&self, matchers: &[Matcher], min_t: i64, max_t: i64) -> Vec<Arc<BlockReader>> {
        self.readers()
            .iter()
            .filter(|r| r.meta().overlaps(min_t, max_t) && Self::may_match(r.meta(), matchers))
            .cloned()
            .collect()
    }
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

/// One block of a catalog as a [`Source`] (a part of the catalog for parallel plans).
#[derive(Debug)]
struct BlockSource(Arc<BlockReader>);

impl Source for BlockSource {
    fn external_labels(&self) -> Option<Labels> {
        Some(self.0.meta().external_labels())
    }

    fn select<'a>(&'a self, matchers: &'a [Matcher], hints: &'a SelectHints) -> SelectFuture<'a> {
        Box::pin(async move {
            if !Catalog::may_match(self.0.meta(), matchers) {
                return Ok(Vec::new());
            }
            let selected = self.0.select(matchers, hints.start, hints.end).await;
            Ok(partial(&self.0, selected.map(|s| s.series)))
        })
    }

    fn size_hint(&self) -> u64 {
        self.0.meta().stats.samples.max(1)
    }
}

impl Source for Catalog {
    fn parts(&self, min_t: i64, max_t: i64) -> Option<Vec<Arc<dyn Source>>> {
        Some(
            self.selected(&[], min_t, max_t)
                .into_iter()
                .map(|r| Arc::new(BlockSource(r)) as Arc<dyn Source>)
                .collect(),
        )
    }

    fn select<'a>(&'a self, matchers: &'a [Matcher], hints: &'a SelectHints) -> SelectFuture<'a> {
        let (min_t, max_t) = (hints.start, hints.end);
        Box::pin(async move {
            let results: Vec<Vec<Series>> =
                futures::stream::iter(self.selected(matchers, min_t, max_t))
                    .map(|reader| async move {
                        let selected = reader.select(matchers, min_t, max_t).await;
                        partial(&reader, selected.map(|s| s.series))
                    })
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
