//! Where selectors get their series: the narrow seam between the engine and storage.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use fleetscope_store::reader::LabelIndex;
use fleetscope_store::{Labels, Matcher, MemSeriesSet, Series};
use futures::future::try_join_all;

use crate::error::Result;

/// A future of selected series.
pub type SelectFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Series>>> + Send + 'a>>;

/// A future of label sets.
pub type LabelsFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Labels>>> + Send + 'a>>;

/// A future of a label index (name -> values).
pub type IndexFuture<'a> = Pin<Box<dyn Future<Output = Result<LabelIndex>> + Send + 'a>>;

/// A set of series the engine can select from (all blocks of a bucket, or series in memory).
pub trait Source: Send + Sync + std::fmt::Debug {
    /// Series matching all matchers (external labels included), with their samples in
    /// `[min_t, max_t]`, sorted by labels; one entry per label set, samples sorted and unique.
    fn select<'a>(&'a self, matchers: &'a [Matcher], min_t: i64, max_t: i64) -> SelectFuture<'a>;

    /// Label sets of the series [`Source::select`] would return, sorted and unique; sources may
    /// answer without reading samples.
    fn series<'a>(&'a self, matchers: &'a [Matcher], min_t: i64, max_t: i64) -> LabelsFuture<'a> {
        Box::pin(async move {
            Ok(self
                .select(matchers, min_t, max_t)
                .await?
                .into_iter()
                .map(|s| s.labels)
                .collect())
        })
    }

    /// Parts of this source that answer independently and together answer what it answers, for
    /// selections in `[min_t, max_t]` (a catalog: one per block), so that a plan can read them in
    /// parallel partitions; `None` when the source is one part.
    fn parts(&self, _min_t: i64, _max_t: i64) -> Option<Vec<Arc<dyn Source>>> {
        None
    }

    /// Roughly how much reading this source costs (samples), to balance partitions.
    fn size_hint(&self) -> u64 {
        1
    }

    /// Every label name with its values among series with samples in `[min_t, max_t]` (sources
    /// may answer from a coarser index: blocks overlapping the range).
    fn label_index<'a>(&'a self, min_t: i64, max_t: i64) -> IndexFuture<'a> {
        Box::pin(async move {
            let mut index = LabelIndex::new();
            for labels in self.series(&[], min_t, max_t).await? {
                for l in labels.iter() {
                    index
                        .entry(l.name.clone())
                        .or_default()
                        .insert(l.value.clone());
                }
            }
            Ok(index)
        })
    }
}

/// A [`Source`] over a [`MemSeriesSet`] (tests, and the reference for block-backed sources).
#[derive(Debug, Default)]
pub struct MemSource {
    /// The series.
    pub set: MemSeriesSet,
    /// Labels added to every series (like a block's external labels).
    pub external: Labels,
}

impl Source for MemSource {
    fn select<'a>(&'a self, matchers: &'a [Matcher], min_t: i64, max_t: i64) -> SelectFuture<'a> {
        Box::pin(async move { Ok(self.set.select(matchers, &self.external, min_t, max_t)) })
    }
}

/// Several sources read as one: series with the same labels are merged (samples sorted, one per
/// timestamp), e.g. blocks plus the heads of shippers.
#[derive(Clone)]
pub struct Fanout(pub Vec<Arc<dyn Source>>);

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fanout({} sources)", self.0.len())
    }
}

impl Source for Fanout {
    fn parts(&self, min_t: i64, max_t: i64) -> Option<Vec<Arc<dyn Source>>> {
        Some(
            self.0
                .iter()
                .flat_map(|s| s.parts(min_t, max_t).unwrap_or_else(|| vec![Arc::clone(s)]))
                .collect(),
        )
    }

    fn select<'a>(&'a self, matchers: &'a [Matcher], min_t: i64, max_t: i64) -> SelectFuture<'a> {
        Box::pin(async move {
            let parts = try_join_all(self.0.iter().map(|s| s.select(matchers, min_t, max_t)));
            Ok(fleetscope_store::series::merge(parts.await?))
        })
    }

    fn series<'a>(&'a self, matchers: &'a [Matcher], min_t: i64, max_t: i64) -> LabelsFuture<'a> {
        Box::pin(async move {
            let parts = try_join_all(self.0.iter().map(|s| s.series(matchers, min_t, max_t)));
            let mut all: Vec<Labels> = parts.await?.into_iter().flatten().collect();
            all.sort();
            all.dedup();
            Ok(all)
        })
    }

    fn label_index<'a>(&'a self, min_t: i64, max_t: i64) -> IndexFuture<'a> {
        Box::pin(async move {
            let parts = try_join_all(self.0.iter().map(|s| s.label_index(min_t, max_t)));
            let mut index = LabelIndex::new();
            for part in parts.await? {
                for (name, values) in part {
                    index.entry(name).or_default().extend(values);
                }
            }
            Ok(index)
        })
    }
}
