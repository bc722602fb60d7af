//! [`Catalog`]: the blocks of an object store, refreshed by listing `*/meta.json`, as a [`Source`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use fleetscope_store::{BlockMeta, BlockReader, Labels, Matcher, Sample, Series};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;

use crate::error::{Error, Result};
use crate::source::{LabelsFuture, SelectFuture, Source};

/// Blocks readable through one object store. Holds only what a listing rebuilds in seconds.
#[derive(Debug)]
pub struct Catalog {
    store: Arc<dyn ObjectStore>,
    blocks: RwLock<Arc<Vec<BlockMeta>>>,
}

impl Catalog {
    /// A catalog of `store`, empty until [`Catalog::refresh`].
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            blocks: RwLock::new(Arc::new(Vec::new())),
        }
    }

    /// Lists the blocks again; returns how many there are.
    pub async fn refresh(&self) -> Result<usize> {
        let metas = BlockMeta::list(&self.store).await?;
        let n = metas.len();
        *self
            .blocks
            .write()
            .map_err(|_| Error::Internal("catalog lock poisoned".into()))? = Arc::new(metas);
        Ok(n)
    }

    /// The blocks known since the last refresh.
    pub fn blocks(&self) -> Arc<Vec<BlockMeta>> {
        self.blocks
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
            || matchers.is_empty()
    }
}

impl Source for Catalog {
    fn select<'a>(&'a self, matchers: &'a [Matcher], min_t: i64, max_t: i64) -> SelectFuture<'a> {
        Box::pin(async move {
            let selected = self.selected(matchers, min_t, max_t);
            let results: Vec<Vec<Series>> =
                futures::stream::iter(selected.into_iter().map(|meta| {
                    let reader = BlockReader::new(Arc::clone(&self.store), meta);
                    async move {
                        reader
                            .select(matchers, min_t, max_t)
                            .await
                            .map(|s| s.series)
                    }
                }))
                .buffer_unordered(8)
                .try_collect()
                .await
                .map_err(Error::Store)?;
            Ok(merge(results))
        })
    }

    fn series<'a>(&'a self, matchers: &'a [Matcher], min_t: i64, max_t: i64) -> LabelsFuture<'a> {
        Box::pin(async move {
            let selected = self.selected(matchers, min_t, max_t);
            let results: Vec<Vec<Labels>> =
                futures::stream::iter(selected.into_iter().map(|meta| {
                    let reader = BlockReader::new(Arc::clone(&self.store), meta);
                    async move { reader.series_labels(matchers, min_t, max_t).await }
                }))
                .buffer_unordered(8)
                .try_collect()
                .await
                .map_err(Error::Store)?;
            let mut all: Vec<Labels> = results.into_iter().flatten().collect();
            all.sort();
            all.dedup();
            Ok(all)
        })
    }
}

impl Catalog {
    fn selected(&self, matchers: &[Matcher], min_t: i64, max_t: i64) -> Vec<BlockMeta> {
        self.blocks()
            .iter()
            .filter(|m| m.overlaps(min_t, max_t) && Self::may_match(m, matchers))
            .cloned()
            .collect()
    }
}

/// Merges series of several blocks: same labels, samples sorted by time, one per timestamp.
pub(crate) fn merge(parts: Vec<Vec<Series>>) -> Vec<Series> {
    if parts.len() == 1 {
        return parts.into_iter().next().unwrap_or_default();
    }
    let mut by_labels: HashMap<Labels, Vec<Sample>> = HashMap::new();
    for s in parts.into_iter().flatten() {
        by_labels.entry(s.labels).or_default().extend(s.samples);
    }
    let mut out: Vec<Series> = by_labels
        .into_iter()
        .map(|(labels, mut samples)| {
            fleetscope_store::series::sort_dedup(&mut samples);
            Series { labels, samples }
        })
        .collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}
