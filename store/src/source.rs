//! The read seam: where queries (PromQL, SQL, remote-read) get their series, whatever holds them —
//! the blocks of a bucket ([`crate::Catalog`]), a shipper's head and staged blocks, a remote-read
//! endpoint, or series in memory. As Prometheus's `storage.Querier`, a selection carries
//! [`SelectHints`] saying what it is for.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::future::try_join_all;

use crate::downsample::Aggregate;
use crate::error::Result;
use crate::reader::LabelIndex;
use crate::{Labels, Matcher, MemSeriesSet, Series};

/// A future of selected series.
pub type SelectFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Series>>> + Send + 'a>>;

/// A future of label sets.
pub type LabelsFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Labels>>> + Send + 'a>>;

/// A future of a label index (name -> values).
pub type IndexFuture<'a> = Pin<Box<dyn Future<Output = Result<LabelIndex>> + Send + 'a>>;

/// A future of label names or values, sorted and unique.
pub type NamesFuture<'a> = Pin<Box<dyn Future<Output = Result<BTreeSet<String>>> + Send + 'a>>;

/// What a selection is for (Prometheus's `SelectHints`): the time range to return, and the query
/// around it, which sources may use to read less (a remote-read endpoint passes them on).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectHints {
    /// First timestamp wanted (ms, inclusive).
    pub start: i64,
    /// Last timestamp wanted (ms, inclusive).
    pub end: i64,
    /// Step of the query's evaluation (ms; 0 for an instant query).
    pub step: i64,
    /// Window of the enclosing range function or lookback (ms).
    pub range: i64,
    /// The function the selected series feed (`rate`, `sum`, `series` for labels only), if any.
    pub func: Option<String>,
    /// Labels of the enclosing aggregation's grouping.
    pub grouping: Vec<String>,
    /// Whether `grouping` is `by` (true) or `without` (false).
    pub by: bool,
    /// Coarsest resolution the selection may read, ms (0: raw samples only): sources holding
    /// downsampled blocks answer from the coarsest ones at most this coarse, finer data filling
    /// their gaps (Thanos's `max_source_resolution`).
    pub resolution: i64,
    /// Which summary of downsampled data the selection reads (raw samples stand for themselves).
    pub aggregate: Aggregate,
}

impl SelectHints {
    /// Hints asking for `[start, end]` and saying nothing more.
    pub fn range(start: i64, end: i64) -> Self {
        Self {
            start,
            end,
            ..Self::default()
        }
    }
}

/// A set of series queries can select from.
pub trait Source: Send + Sync + std::fmt::Debug {
    /// Series matching all matchers (external labels included), with their samples in
    /// `[hints.start, hints.end]`, sorted by labels; one entry per label set, samples sorted and
    /// unique.
    fn select<'a>(&'a self, matchers: &'a [Matcher], hints: &'a SelectHints) -> SelectFuture<'a>;

    /// Label sets of the series [`Source::select`] would return for `[min_t, max_t]`, sorted and
    /// unique; sources may answer without reading samples.
    fn series<'a>(&'a self, matchers: &'a [Matcher], min_t: i64, max_t: i64) -> LabelsFuture<'a> {
        Box::pin(async move {
            let hints = SelectHints {
                func: Some("series".into()),
                ..SelectHints::range(min_t, max_t)
            };
            Ok(self
                .select(matchers, &hints)
                .await?
                .into_iter()
                .map(|s| s.labels)
                .collect())
        })
    }

    /// Parts of this source that answer independently and together answer what it answers, for
    /// selections with `hints` (a catalog: one per block it would read), so that a plan can read
    /// them in parallel partitions; `None` when the source is one part.
    fn parts(&self, _hints: &SelectHints) -> Option<Vec<Arc<dyn Source>>> {
        None
    }

    /// The external labels every series of this source carries (a block's), when known.
    fn external_labels(&self) -> Option<Labels> {
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
            Ok(crate::reader::index_of(
                &self.series(&[], min_t, max_t).await?,
            ))
        })
    }

    /// The label names of [`Source::label_index`], without their values.
    fn label_names<'a>(&'a self, min_t: i64, max_t: i64) -> NamesFuture<'a> {
        Box::pin(async move { Ok(self.label_index(min_t, max_t).await?.into_keys().collect()) })
    }

    /// The values of label `name` in [`Source::label_index`].
    fn label_values<'a>(&'a self, name: &'a str, min_t: i64, max_t: i64) -> NamesFuture<'a> {
        Box::pin(async move {
            Ok(self
                .label_index(min_t, max_t)
                .await?
                .remove(name)
                .unwrap_or_default())
        })
    }
}

/// Adds to `into` the strings of `from` it lacks, copying only those.
pub fn union_into(into: &mut BTreeSet<String>, from: &BTreeSet<String>) {
    for s in from {
        if !into.contains(s) {
            into.insert(s.clone());
        }
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
    fn select<'a>(&'a self, matchers: &'a [Matcher], hints: &'a SelectHints) -> SelectFuture<'a> {
        Box::pin(async move {
            let series = self
                .set
                .select(matchers, &self.external, hints.start, hints.end);
            Ok(crate::downsample::raw_view(series, hints.aggregate))
        })
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
    fn select<'a>(&'a self, matchers: &'a [Matcher], hints: &'a SelectHints) -> SelectFuture<'a> {
        Box::pin(async move {
            let parts = try_join_all(self.0.iter().map(|s| s.select(matchers, hints)));
            Ok(crate::series::merge(parts.await?))
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

    fn parts(&self, hints: &SelectHints) -> Option<Vec<Arc<dyn Source>>> {
        Some(
            self.0
                .iter()
                .flat_map(|s| s.parts(hints).unwrap_or_else(|| vec![Arc::clone(s)]))
                .collect(),
        )
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

    fn label_names<'a>(&'a self, min_t: i64, max_t: i64) -> NamesFuture<'a> {
        Box::pin(async move {
            let parts = try_join_all(self.0.iter().map(|s| s.label_names(min_t, max_t)));
            Ok(parts.await?.into_iter().flatten().collect())
        })
    }

    fn label_values<'a>(&'a self, name: &'a str, min_t: i64, max_t: i64) -> NamesFuture<'a> {
        Box::pin(async move {
            let parts = try_join_all(self.0.iter().map(|s| s.label_values(name, min_t, max_t)));
            Ok(parts.await?.into_iter().flatten().collect())
        })
    }
}
