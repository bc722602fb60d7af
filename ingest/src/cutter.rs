//! Cutting series into blocks of aligned time windows (`--block-duration`, 2h by default, aligned to
//! the epoch as Prometheus aligns its blocks) and writing them.

use std::sync::Arc;
use std::time::Duration;

use fleetscope_store::{BlockMeta, Labels, MemSeriesSet, WriteOptions, write_block};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;

use crate::error::{Error, Result};

/// The default block duration, as Prometheus's and Thanos's.
pub const DEFAULT_BLOCK_DURATION: Duration = Duration::from_secs(2 * 3600);

/// Blocks written at a time: encoding runs on blocking threads, one per core here.
const CONCURRENT_BLOCKS: usize = 2;

/// Splits `set` into aligned windows of `duration` and writes one block per window, calling
/// `on_block` after each; returns the metas in window order.
pub async fn write_windows(
    store: &Arc<dyn ObjectStore>,
    set: MemSeriesSet,
    external_labels: &Labels,
    duration: Duration,
    options: &WriteOptions,
    on_block: &mut (dyn FnMut(&BlockMeta) + Send),
) -> Result<Vec<BlockMeta>> {
    let duration_ms = i64::try_from(duration.as_millis())
        .unwrap_or(i64::MAX)
        .max(1);
    let windows = set.into_windows(duration_ms);
    let mut metas: Vec<(i64, BlockMeta)> = futures::stream::iter(windows)
        .map(|(window_start, series)| async move {
            write_block(store, series, external_labels, options)
                .await
                .map(|meta| (window_start, meta))
                .map_err(|source| Error::WriteBlock {
                    window_start,
                    source,
                })
        })
        .buffer_unordered(CONCURRENT_BLOCKS)
        .inspect_ok(|(_, meta)| on_block(meta))
        .try_collect()
        .await?;
    metas.sort_by_key(|(w, _)| *w);
    Ok(metas.into_iter().map(|(_, m)| m).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetscope_store::objstore;

    #[tokio::test]
    async fn one_block_per_window() {
        let store = objstore::open("memory://").unwrap();
        let mut set = MemSeriesSet::new();
        let up = Labels::from_pairs([("__name__", "up")]);
        let h = 3_600_000;
        for t in [0, h, 2 * h, 5 * h - 1] {
            set.append(&up, t, 1.0);
        }
        let ext = Labels::from_pairs([("cluster", "a")]);
        let mut seen = 0;
        let metas = write_windows(
            &store,
            set,
            &ext,
            DEFAULT_BLOCK_DURATION,
            &WriteOptions::default(),
            &mut |_| seen += 1,
        )
        .await
        .unwrap();
        assert_eq!(seen, 3);
        let ranges: Vec<_> = metas
            .iter()
            .map(|m| (m.min_t, m.max_t, m.stats.samples))
            .collect();
        assert_eq!(
            ranges,
            [(0, h + 1, 2), (2 * h, 2 * h + 1, 1), (5 * h - 1, 5 * h, 1)]
        );
        assert!(metas.iter().all(|m| m.external_labels["cluster"] == "a"));
    }
}
