//! Compaction and retention of a bucket (`fleetscope compact`).
//!
//! * **Compaction**: per source (same external labels), the blocks lying inside one aligned window
//!   of `range` are merged into one block — series joined, duplicate samples (a shipper re-uploading
//!   after a crash) dropped, level one above the highest source, sources listed in `meta.json`. A
//!   window is merged once it is over: the source has a block starting at or after its end.
//! * **Deduplication** (with `replica_labels`): the blocks of HA replicas (sources equal but for the
//!   replica labels) are one source; their window merges into one block without the replica
//!   labels, each series' replicas merged as the querier does ([`crate::dedup::merge`], raw values).
//!   Running it again changes nothing.
//! * **Downsampling** ([`downsampling`]): per source, each finished 48h window whose raw blocks
//!   span at least 40h gets a 5m-resolution block, each 14-day window whose 5m blocks span at
//!   least 10 days a 1h-resolution block ([`crate::downsample`]).
//! * **Retention**, per resolution: blocks whose newest sample is older than their resolution's
//!   retention are marked for deletion.
//! * **Leftovers**: files of a block without `meta.json` (an upload or an import that died before
//!   publishing) are deleted once their newest file is older than `partial_delay`.
//! * **Deletion** is two steps, so no querier loses a block in the middle of a query: a block is
//!   first marked (`deletion-mark.json`; readers stop listing it, and the merged block that replaces
//!   it is already listed), and deleted `delete_delay` later, `meta.json` first.
//!
//! Memory: a merge holds the output block's samples coded (a few bytes each) plus one metric's raw
//! samples at a time, and the Parquet file before its upload.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

mod downsampling;

use crate::dedup::dedup_series;
use crate::downsample::RESOLUTIONS;
use crate::error::{Error, Result};
use crate::labels::{METRIC_NAME, Matcher};
use crate::layout;
use crate::meta::{BlockId, BlockMeta, Compaction, get_json, list_paths};
use crate::reader::BlockReader;
use crate::series::{Series, merge, window_start};
use crate::sub_chunks::SubChunks;
use crate::writer::{CodedSeries, WriteOptions, write_coded_block};

/// What to do.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Window of merged blocks, ms (aligned to the epoch).
    pub range_ms: i64,
    /// Per resolution (raw, 5m, 1h: [`RESOLUTIONS`]), blocks whose newest sample is older than
    /// this (ms before `now_ms`) are deleted; `None`: keep them.
    pub retention_ms: [Option<i64>; 3],
    /// Write 5m and 1h blocks of finished windows.
    pub downsample: bool,
    /// How long a marked block stays before it is deleted, ms.
    pub delete_delay_ms: i64,
    /// Files of a block without `meta.json` are deleted once the newest is older than this, ms
    /// (keep it above the longest upload or import: they publish `meta.json` last).
    pub partial_delay_ms: i64,
    /// The current time, ms.
    pub now_ms: i64,
    /// Producer written into merged blocks' `meta.json`.
    pub producer: String,
    /// External labels telling HA replicas apart: their blocks merge into one without them.
    pub replica_labels: Vec<String>,
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactReport {
    /// Merged blocks, each with the blocks it replaces.
    pub merged: Vec<(BlockId, Vec<BlockId>)>,
    /// Downsampled blocks written: id, resolution (ms), the blocks summarised.
    pub downsampled: Vec<(BlockId, i64, Vec<BlockId>)>,
    /// Blocks marked for deletion (merged away or past retention).
    pub marked: Vec<BlockId>,
    /// Blocks deleted (marked at least `delete_delay` ago).
    pub deleted: Vec<BlockId>,
    /// Unpublished blocks (no `meta.json`) whose files were deleted.
    pub leftovers: Vec<BlockId>,
    /// Windows left as they are because a block of theirs could not be read: blocks, and why.
    pub skipped: Vec<(Vec<BlockId>, String)>,
}

/// The content of `deletion-mark.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DeletionMark {
    /// The block.
    id: BlockId,
    /// When it was marked, ms since the epoch.
    marked_at_ms: i64,
    /// Why.
    reason: String,
}

/// One pass over the bucket: deletes blocks marked long enough ago, applies retention, merges
/// every finished window holding two blocks or more of one source.
pub async fn compact(store: &Arc<dyn ObjectStore>, opts: &CompactOptions) -> Result<CompactReport> {
    let mut report = CompactReport::default();
    for (id, mark) in deletion_marks(store).await? {
        if opts.now_ms - mark.marked_at_ms >= opts.delete_delay_ms {
            delete_block(store, id).await?;
            report.deleted.push(id);
        }
    }
    for id in leftovers(store, opts.now_ms - opts.partial_delay_ms).await? {
        tracing::info!(block = %id, "deleting the files of a block never published (no meta.json)");
        delete_block(store, id).await?;
        report.leftovers.push(id);
    }
    let mut metas = BlockMeta::list(store).await?;
    let expired = |m: &BlockMeta| {
        let i = RESOLUTIONS.iter().position(|&r| r == m.resolution);
        i.and_then(|i| opts.retention_ms[i])
            .is_some_and(|retention| m.max_t <= opts.now_ms - retention)
    };
    for m in metas.iter().filter(|m| expired(m)) {
        mark(store, m.ulid, opts.now_ms, "retention").await?;
        report.marked.push(m.ulid);
    }
    metas.retain(|m| !expired(m));
    // Only raw blocks merge; downsampled ones are written whole for their window.
    metas.retain(|m| m.resolution == 0);
    merge_windows(store, metas, opts, &mut report).await?;
    if opts.downsample {
        for level in downsampling::LEVELS {
            let metas = BlockMeta::list(store).await?;
            for (w, group) in downsampling::ready(&metas, level, opts) {
                let ids: Vec<BlockId> = group.iter().map(|m| m.ulid).collect();
                match downsampling::downsample_window(store, w, &group, level, opts).await {
                    Ok(block) => {
                        tracing::info!(block = %block.ulid, resolution = level.to, sources = ids.len(), "window downsampled");
                        report.downsampled.push((block.ulid, level.to, ids));
                    }
                    Err(e @ (Error::Corrupt(_) | Error::Parquet { .. } | Error::Arrow(_))) => {
                        let why = crate::error::display_chain(&e);
                        tracing::warn!(error = %why, "window not downsampled: a block of it cannot be read");
                        report.skipped.push((ids, why));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(report)
}

/// Merges every finished window holding two blocks or more of one source (or blocks of HA
/// replicas) among the raw blocks `metas`.
async fn merge_windows(
    store: &Arc<dyn ObjectStore>,
    metas: Vec<BlockMeta>,
    opts: &CompactOptions,
    report: &mut CompactReport,
) -> Result<()> {
    let mut sources: BTreeMap<Vec<(String, String)>, Vec<BlockMeta>> = BTreeMap::new();
    for m in metas {
        let key = m
            .external_labels
            .iter()
            .filter(|(name, _)| !opts.replica_labels.contains(name))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        sources.entry(key).or_default().push(m);
    }
    for blocks in sources.into_values() {
        let newest_start = blocks.iter().map(|m| m.min_t).max().unwrap_or(i64::MIN);
        let mut windows: BTreeMap<i64, Vec<BlockMeta>> = BTreeMap::new();
        for m in blocks {
            let w = window_start(m.min_t, opts.range_ms);
            // Blocks already spanning more than a window stay as they are.
            if m.max_t <= w + opts.range_ms {
                windows.entry(w).or_default().push(m);
            }
        }
        for (w, group) in windows {
            let replicas = group.iter().any(|m| {
                opts.replica_labels
                    .iter()
                    .any(|l| m.external_labels.contains_key(l))
            });
            if (group.len() < 2 && !replicas) || newest_start < w + opts.range_ms {
                continue;
            }
            let ids: Vec<BlockId> = group.iter().map(|m| m.ulid).collect();
            let end = w + opts.range_ms - 1;
            let merged = match merge_blocks(store, &group, end, opts).await {
                Ok(merged) => merged,
                // A damaged block is left alone with its window (its data may still be read in
                // part by hand); the other windows go on.
                Err(e @ (Error::Corrupt(_) | Error::Parquet { .. } | Error::Arrow(_))) => {
                    let why = crate::error::display_chain(&e);
                    tracing::warn!(window_start = w, error = %why, "window not merged: a block of it cannot be read");
                    report.skipped.push((ids, why));
                    continue;
                }
                Err(e) => return Err(e),
            };
            for &id in &ids {
                mark(store, id, opts.now_ms, "compacted").await?;
                report.marked.push(id);
            }
            tracing::info!(block = %merged.ulid, sources = ids.len(), window_start = w, "blocks merged");
            report.merged.push((merged.ulid, ids));
        }
    }
    Ok(())
}

/// Merges `group` (blocks of one source, or of its replicas, in a window ending at `end`) into one
/// new block, metric by metric.
async fn merge_blocks(
    store: &Arc<dyn ObjectStore>,
    group: &[BlockMeta],
    end: i64,
    opts: &CompactOptions,
) -> Result<BlockMeta> {
    let (readers, names) = stored_readers(store, group).await?;
    let start = group.iter().map(|m| m.min_t).min().unwrap_or(end);
    let grid = SubChunks::covering(window_start(start, opts.range_ms), end);
    let mut coded = Vec::new();
    for name in names {
        let matcher = [Matcher::equal(METRIC_NAME, name)];
        // Per replica, its blocks joined; then the replicas deduplicated series by series.
        let mut replicas: BTreeMap<Vec<&str>, Vec<Vec<Series>>> = BTreeMap::new();
        for (r, m) in readers.iter().zip(group) {
            let replica = opts
                .replica_labels
                .iter()
                .map(|l| m.external_labels.get(l).map_or("", String::as_str))
                .collect();
            let series = r.select(&matcher, i64::MIN, i64::MAX).await?.series;
            replicas.entry(replica).or_default().push(series);
        }
        let joined: Vec<Series> = replicas.into_values().flat_map(merge).collect();
        for s in dedup_series(joined, &[], false, end) {
            coded.extend(CodedSeries::new(s.labels, &s.samples, Some(grid))?);
        }
    }
    let options = WriteOptions {
        producer: opts.producer.clone(),
        compaction: Some(Compaction {
            level: group.iter().map(|m| m.compaction.level).max().unwrap_or(1) + 1,
            sources: level1_sources(group),
        }),
        ..Default::default()
    };
    let external = group[0].external_labels().remove(&opts.replica_labels);
    write_coded_block(store, coded, &external, &options).await
}

/// Readers of `group` that see labels as stored (the external labels stay in `meta.json`), and
/// the metric names of all of them.
async fn stored_readers(
    store: &Arc<dyn ObjectStore>,
    group: &[BlockMeta],
) -> Result<(Vec<BlockReader>, std::collections::BTreeSet<String>)> {
    let readers: Vec<BlockReader> = group
        .iter()
        .map(|m| {
            let mut raw = m.clone();
            raw.external_labels.clear();
            BlockReader::new(Arc::clone(store), raw)
        })
        .collect();
    let mut names = std::collections::BTreeSet::new();
    for r in &readers {
        names.extend(r.metric_counts().await?.into_iter().map(|c| c.name));
    }
    Ok((readers, names))
}

/// The level-1 blocks whose samples `group` holds, sorted, once each.
fn level1_sources(group: &[BlockMeta]) -> Vec<BlockId> {
    let mut sources: Vec<BlockId> = group
        .iter()
        .flat_map(|m| m.compaction.sources.iter().copied())
        .collect();
    sources.sort();
    sources.dedup();
    sources
}

async fn mark(store: &Arc<dyn ObjectStore>, id: BlockId, now_ms: i64, reason: &str) -> Result<()> {
    let path = layout::deletion_mark_path(id);
    let mark = DeletionMark {
        id,
        marked_at_ms: now_ms,
        reason: reason.into(),
    };
    let json = serde_json::to_vec_pretty(&mark).map_err(|source| Error::Meta {
        path: path.to_string(),
        source,
    })?;
    crate::upload::put(store, &path, json).await
}

/// Every deletion mark of the bucket.
async fn deletion_marks(store: &Arc<dyn ObjectStore>) -> Result<Vec<(BlockId, DeletionMark)>> {
    let mut out = Vec::new();
    for path in list_paths(store.as_ref()).await? {
        if let Some(id) = layout::block_of_deletion_mark_path(&path) {
            out.push((id, get_json(store.as_ref(), &path).await?));
        }
    }
    Ok(out)
}

/// Blocks with files but no `meta.json`, whose newest file was modified before `before_ms`.
async fn leftovers(store: &Arc<dyn ObjectStore>, before_ms: i64) -> Result<Vec<BlockId>> {
    let objects: Vec<object_store::ObjectMeta> =
        store
            .list(None)
            .try_collect()
            .await
            .map_err(|source| Error::ObjectStore {
                op: "list",
                path: String::new(),
                source,
            })?;
    // Per block: (has meta.json, newest modification, ms).
    let mut blocks: BTreeMap<BlockId, (bool, i64)> = BTreeMap::new();
    for o in &objects {
        let Some(id) = o
            .location
            .parts()
            .next()
            .and_then(|dir| dir.as_ref().parse::<BlockId>().ok())
        else {
            continue;
        };
        let entry = blocks.entry(id).or_insert((false, i64::MIN));
        entry.0 |= layout::block_of_meta_path(&o.location).is_some();
        entry.1 = entry.1.max(o.last_modified.timestamp_millis());
    }
    Ok(blocks
        .into_iter()
        .filter(|(_, (published, newest))| !published && *newest < before_ms)
        .map(|(id, _)| id)
        .collect())
}

/// Deletes a block: `meta.json` first (it stops existing), then everything else under it.
pub async fn delete_block(store: &Arc<dyn ObjectStore>, id: BlockId) -> Result<()> {
    let del_err = |path: &object_store::path::Path| {
        let path = path.to_string();
        move |source| Error::ObjectStore {
            op: "delete",
            path,
            source,
        }
    };
    let meta = layout::meta_path(id);
    match store.delete(&meta).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(del_err(&meta)(e)),
    }
    let prefix = object_store::path::Path::from(id.to_string());
    let files: Vec<object_store::path::Path> = store
        .list(Some(&prefix))
        .map_ok(|o| o.location)
        .try_collect()
        .await
        .map_err(|source| Error::ObjectStore {
            op: "list",
            path: prefix.to_string(),
            source,
        })?;
    // The mark goes last: an interrupted deletion is finished by the next pass.
    let mark = layout::deletion_mark_path(id);
    for f in files.iter().filter(|f| **f != mark).chain([&mark]) {
        match store.delete(f).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(del_err(f)(e)),
        }
    }
    Ok(())
}
