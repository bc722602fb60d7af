//! The compactor's downsampling pass: per source, each finished aligned window whose raw blocks
//! span at least 40h becomes one 5m-resolution block, and each 14-day window whose 5m blocks span
//! at least 10 days one 1h-resolution block (as Thanos's thresholds). Raw blocks stay (retention
//! per resolution decides how long).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use object_store::ObjectStore;

use super::CompactOptions;
use crate::downsample::{self, RES_1H, RES_5M, RES_RAW, Window};
use crate::error::Result;
use crate::labels::{Labels, METRIC_NAME, Matcher};
use crate::meta::{BlockMeta, Compaction};
use crate::series::{Sample, window_start};
use crate::writer::{CodedSeries, WriteOptions, write_coded_block};

const H: i64 = 3_600_000;

/// One downsampling level: what it reads, what it writes, over which windows.
#[derive(Debug, Clone, Copy)]
pub(super) struct Level {
    /// Resolution of the blocks read.
    pub(super) from: i64,
    /// Resolution of the blocks written.
    pub(super) to: i64,
    /// Window of one written block (aligned to the epoch).
    pub(super) window: i64,
    /// Least span of the read blocks in a window for it to be downsampled.
    pub(super) min_span: i64,
}

/// The levels, in the order they run: raw to 5m, then 5m to 1h.
pub(super) const LEVELS: [Level; 2] = [
    Level {
        from: RES_RAW,
        to: RES_5M,
        window: 48 * H,
        min_span: 40 * H,
    },
    Level {
        from: RES_5M,
        to: RES_1H,
        window: 14 * 24 * H,
        min_span: 10 * 24 * H,
    },
];

/// Windows of `level` ready to downsample: per source, the finished windows (the source has a
/// block of `level.from` starting at or after the window's end) whose blocks span at least
/// `level.min_span` and that have no block of `level.to` yet. Blocks with a replica label wait
/// for the merge of their replicas.
///
/// Each window comes with the blocks to read: the raw blocks of the window when they span as much
/// as the `level.from` ones (so a 1h window's sums are the raw samples' own, not sums of rounded
/// 5m sums), else the `level.from` blocks.
pub(super) fn ready(
    metas: &[BlockMeta],
    level: Level,
    opts: &CompactOptions,
) -> Vec<(i64, Vec<BlockMeta>)> {
    let mut sources: BTreeMap<&BTreeMap<String, String>, Vec<&BlockMeta>> = BTreeMap::new();
    for m in metas {
        if !opts
            .replica_labels
            .iter()
            .any(|l| m.external_labels.contains_key(l))
        {
            sources.entry(&m.external_labels).or_default().push(m);
        }
    }
    let mut out = Vec::new();
    for blocks in sources.into_values() {
        let done: BTreeSet<i64> = blocks
            .iter()
            .filter(|m| m.resolution == level.to)
            .map(|m| window_start(m.min_t, level.window))
            .collect();
        let inputs: Vec<&&BlockMeta> = blocks
            .iter()
            .filter(|m| m.resolution == level.from)
            .collect();
        let newest_start = inputs.iter().map(|m| m.min_t).max().unwrap_or(i64::MIN);
        let mut windows: BTreeMap<i64, Vec<BlockMeta>> = BTreeMap::new();
        for m in inputs {
            let mut w = window_start(m.min_t, level.window);
            while w < m.max_t {
                windows.entry(w).or_default().push((*m).clone());
                w += level.window;
            }
        }
        let span = |group: &[&BlockMeta], w: i64| {
            let end = w + level.window;
            let first = group.iter().map(|m| m.min_t.max(w)).min().unwrap_or(end);
            let last = group.iter().map(|m| m.max_t.min(end)).max().unwrap_or(w);
            (first, last)
        };
        for (w, group) in windows {
            let end = w + level.window;
            let (first, last) = span(&group.iter().collect::<Vec<_>>(), w);
            if done.contains(&w) || newest_start < end || last - first < level.min_span {
                continue;
            }
            let raw: Vec<&BlockMeta> = blocks
                .iter()
                .filter(|m| m.resolution == RES_RAW && m.overlaps(w, end - 1))
                .copied()
                .collect();
            let (raw_first, raw_last) = span(&raw, w);
            if level.from != RES_RAW && raw_first <= first && raw_last >= last {
                out.push((w, raw.into_iter().cloned().collect()));
            } else {
                out.push((w, group));
            }
        }
    }
    out
}

/// Writes the block of `level.to` for the window starting at `w` of one source from its blocks
/// `group` (raw, or of `level.from`).
pub(super) async fn downsample_window(
    store: &Arc<dyn ObjectStore>,
    w: i64,
    group: &[BlockMeta],
    level: Level,
    opts: &CompactOptions,
) -> Result<BlockMeta> {
    let (lo, hi) = (w, w + level.window - 1);
    let mut group = group.to_vec();
    group.sort_by_key(|m| m.min_t);
    let (readers, names) = super::stored_readers(store, &group).await?;
    let mut coded = Vec::new();
    for name in names {
        let matcher = [Matcher::equal(METRIC_NAME, name)];
        // Per series: its windows and counter aggregate, block after block (a window never
        // straddles blocks cut at aligned times; `aggregate` joins one that does).
        let mut series: BTreeMap<Labels, (Vec<Window>, Vec<Sample>)> = BTreeMap::new();
        for r in &readers {
            for (labels, windows, counter) in r.select_summaries(&matcher, lo, hi, level.to).await?
            {
                let (all_w, all_c) = series.entry(labels).or_default();
                // Blocks of a source that overlap (a re-upload) give their samples once.
                let after_w = all_w.last().map_or(i64::MIN, |x| x.t);
                let after_c = all_c.last().map_or(i64::MIN, |x| x.t);
                all_w.extend(windows.into_iter().filter(|x| x.t > after_w));
                all_c.extend(counter.into_iter().filter(|x| x.t > after_c));
            }
        }
        for (labels, (windows, counter)) in series {
            let windows = downsample::aggregate(windows, level.to);
            let counter = downsample::counter(&counter, level.to);
            coded.extend(CodedSeries::downsampled(labels, &windows, &counter)?);
        }
    }
    let options = WriteOptions {
        producer: opts.producer.clone(),
        compaction: Some(Compaction {
            level: group.iter().map(|m| m.compaction.level).max().unwrap_or(1),
            sources: super::level1_sources(&group),
        }),
        resolution: level.to,
        ..Default::default()
    };
    write_coded_block(store, coded, &group[0].external_labels(), &options).await
}
