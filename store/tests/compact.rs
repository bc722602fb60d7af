//! Compaction, retention and two-step deletion on an in-memory bucket: merged blocks hold exactly
//! the union of their sources (duplicates dropped, the later block winning), other sources and
//! unfinished windows are left alone, and marked blocks disappear from listings at once but from
//! the bucket only after the delay.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::sync::Arc;

use fleetscope_store::compact::{CompactOptions, compact};
use fleetscope_store::{
    BlockId, BlockMeta, BlockReader, Labels, Sample, Series, WriteOptions, objstore, write_block,
};
use futures::TryStreamExt;
use object_store::ObjectStore;

const H: i64 = 3_600_000;

fn series(name: &str, samples: &[(i64, f64)]) -> Series {
    Series {
        labels: Labels::from_pairs([("__name__", name), ("job", "node")]),
        samples: samples.iter().map(|&(t, v)| Sample { t, v }).collect(),
    }
}

async fn block(store: &Arc<dyn ObjectStore>, cluster: &str, series: Vec<Series>) -> BlockId {
    write_block(
        store,
        series,
        &Labels::from_pairs([("cluster", cluster)]),
        &WriteOptions::default(),
    )
    .await
    .unwrap()
    .ulid
}

/// Every series of a block with labels as readers see them, samples as `(t, value bits)`.
async fn content(store: &Arc<dyn ObjectStore>, meta: BlockMeta) -> Vec<(String, Vec<(i64, u64)>)> {
    BlockReader::new(Arc::clone(store), meta)
        .select(&[], i64::MIN, i64::MAX)
        .await
        .unwrap()
        .series
        .into_iter()
        .map(|s| {
            let samples = s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect();
            (s.labels.to_string(), samples)
        })
        .collect()
}

async fn files(store: &Arc<dyn ObjectStore>, id: BlockId) -> usize {
    let prefix = object_store::path::Path::from(id.to_string());
    let all: Vec<_> = store.list(Some(&prefix)).try_collect().await.unwrap();
    all.len()
}

#[tokio::test]
async fn merges_finished_windows_then_deletes_the_sources_after_the_delay() {
    let store = objstore::open("memory://").unwrap();
    let a1 = block(
        &store,
        "a",
        vec![
            series("up", &[(0, 1.0), (H, 1.0)]),
            series("cpu", &[(10, 0.5)]),
        ],
    )
    .await;
    let a2 = block(
        &store,
        "a",
        vec![series("up", &[(2 * H, 1.0), (3 * H, 0.0)])],
    )
    .await;
    // A re-upload after a crash: a sample of `a2` again, plus one more series.
    let a3 = block(
        &store,
        "a",
        vec![
            series("up", &[(3 * H, 0.0)]),
            series("mem", &[(2 * H, 7.0)]),
        ],
    )
    .await;
    // The next window of `a` has started; `b` has one block only and its window is not over.
    let a_next = block(&store, "a", vec![series("up", &[(25 * H, 1.0)])]).await;
    let b1 = block(&store, "b", vec![series("up", &[(0, 1.0)])]).await;
    let b2 = block(&store, "b", vec![series("up", &[(4 * H, 1.0)])]).await;

    let opts = |now_ms| CompactOptions {
        range_ms: 24 * H,
        retention_ms: [None; 3],
        downsample: false,
        delete_delay_ms: H,
        partial_delay_ms: H,
        now_ms,
        producer: "test".into(),
        replica_labels: vec![],
    };
    let now = 30 * H;
    let report = compact(&store, &opts(now)).await.unwrap();
    assert_eq!(report.merged.len(), 1, "{report:?}");
    let (merged, from) = &report.merged[0];
    // Blocks written within one millisecond have ULIDs in any order: compare as sets.
    let sorted = |v: &[BlockId]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    let sources = sorted(&[a1, a2, a3]);
    assert_eq!(sorted(from), sources);
    assert_eq!(sorted(&report.marked), sources);
    assert!(report.deleted.is_empty());

    // Listings show the merged block instead of its sources at once.
    let listed: Vec<BlockId> = BlockMeta::list(&store)
        .await
        .unwrap()
        .iter()
        .map(|m| m.ulid)
        .collect();
    let mut want = vec![*merged, a_next, b1, b2];
    want.sort();
    assert_eq!(listed, want);
    let meta = BlockMeta::read(store.as_ref(), *merged).await.unwrap();
    assert_eq!(meta.compaction.level, 2);
    assert_eq!(meta.compaction.sources, sources);
    assert_eq!(meta.external_labels["cluster"], "a");
    assert_eq!((meta.min_t, meta.max_t), (0, 3 * H + 1));
    assert_eq!(meta.stats.samples, 6);
    let got = content(&store, meta).await;
    assert_eq!(
        got,
        vec![
            (
                "cpu{cluster=\"a\", job=\"node\"}".to_string(),
                vec![(10, 0.5f64.to_bits())]
            ),
            (
                "mem{cluster=\"a\", job=\"node\"}".to_string(),
                vec![(2 * H, 7f64.to_bits())]
            ),
            (
                "up{cluster=\"a\", job=\"node\"}".to_string(),
                vec![
                    (0, 1f64.to_bits()),
                    (H, 1f64.to_bits()),
                    (2 * H, 1f64.to_bits()),
                    (3 * H, 0f64.to_bits())
                ]
            ),
        ]
    );

    // Nothing more to merge; the sources stay until the delay has passed.
    let again = compact(&store, &opts(now + H / 2)).await.unwrap();
    assert!(
        again.merged.is_empty() && again.deleted.is_empty(),
        "{again:?}"
    );
    assert_eq!(files(&store, a1).await, 4, "data, labels, meta and mark");
    let later = compact(&store, &opts(now + H)).await.unwrap();
    assert_eq!(later.deleted.len(), 3);
    for id in [a1, a2, a3] {
        assert_eq!(files(&store, id).await, 0, "{id} deleted");
    }
    assert_eq!(BlockMeta::list(&store).await.unwrap().len(), 4);

    // Retention: blocks whose newest sample is older than the cut-off go the same way.
    let expire = CompactOptions {
        retention_ms: [Some(24 * H); 3],
        downsample: false,
        ..opts(4 * H + 1 + 24 * H)
    };
    let report = compact(&store, &expire).await.unwrap();
    let mut expired = vec![*merged, b1, b2];
    expired.sort();
    let mut marked = report.marked.clone();
    marked.sort();
    assert_eq!(marked, expired);
    let left: Vec<BlockId> = BlockMeta::list(&store)
        .await
        .unwrap()
        .iter()
        .map(|m| m.ulid)
        .collect();
    assert_eq!(left, vec![a_next]);
}

/// A replica's block: `up`-like counter scraped every 15 s from `phase` over `[from, to)`, none in
/// `gap`.
async fn replica_block(
    store: &Arc<dyn ObjectStore>,
    replica: &str,
    (from, to): (i64, i64),
    phase: i64,
    gap: (i64, i64),
) -> BlockId {
    let samples: Vec<(i64, f64)> = (0..)
        .map(|i| from + phase + i * 15_000)
        .take_while(|&t| t < to)
        .filter(|t| !(gap.0..gap.1).contains(t))
        .map(|t| (t, t as f64 / 100.0))
        .collect();
    write_block(
        store,
        vec![series("requests_total", &samples)],
        &Labels::from_pairs([("cluster", "a"), ("replica", replica)]),
        &WriteOptions::default(),
    )
    .await
    .unwrap()
    .ulid
}

/// Every series the bucket answers through query-time deduplication, as `(labels, samples)`.
async fn deduplicated(store: &Arc<dyn ObjectStore>, end: i64) -> Vec<(String, Vec<(i64, u64)>)> {
    use fleetscope_store::Source;
    use fleetscope_store::dedup::Dedup;
    let catalog = Arc::new(fleetscope_store::Catalog::new(Arc::clone(store)));
    catalog.refresh().await.unwrap();
    let source = Dedup::new(catalog, vec!["replica".into()]);
    let hints = fleetscope_store::SelectHints::range(0, end);
    source
        .select(&[], &hints)
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            let samples = s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect();
            (s.labels.to_string(), samples)
        })
        .collect()
}

#[tokio::test]
async fn replicas_merge_into_one_block_with_the_same_answers() {
    let store = objstore::open("memory://").unwrap();
    let m = 60_000;
    // Two 2h windows of an HA pair; replica 0 is down for 10 minutes in the first.
    let mut pairs = Vec::new();
    for w in [0, 2 * H] {
        pairs.push(replica_block(&store, "0", (w, w + 2 * H), 0, (30 * m, 40 * m)).await);
        pairs.push(replica_block(&store, "1", (w, w + 2 * H), 7_000, (0, 0)).await);
    }
    // The next window has started (for replica 0 only, and is not over).
    replica_block(&store, "0", (4 * H, 5 * H), 0, (0, 0)).await;
    let before = deduplicated(&store, 4 * H - 1).await;
    assert_eq!(before.len(), 1);
    assert!(!before[0].0.contains("replica"), "{}", before[0].0);

    let opts = CompactOptions {
        range_ms: 2 * H,
        retention_ms: [None; 3],
        downsample: false,
        delete_delay_ms: H,
        partial_delay_ms: H,
        now_ms: 6 * H,
        producer: "test".into(),
        replica_labels: vec!["replica".into()],
    };
    let report = compact(&store, &opts).await.unwrap();
    assert_eq!(report.merged.len(), 2, "{report:?}");
    assert!(report.merged.iter().all(|(_, from)| from.len() == 2));
    let mut marked = report.marked.clone();
    marked.sort();
    pairs.sort();
    assert_eq!(marked, pairs);
    let metas = BlockMeta::list(&store).await.unwrap();
    for (merged, _) in &report.merged {
        let meta = metas.iter().find(|m| m.ulid == *merged).unwrap();
        assert_eq!(meta.external_labels.len(), 1, "{:?}", meta.external_labels);
        assert_eq!(meta.external_labels["cluster"], "a");
        // The replica down for 10 minutes is filled in from the other.
        let samples = &content(&store, meta.clone()).await[0].1;
        let spacing = samples.windows(2).map(|w| w[1].0 - w[0].0).max().unwrap();
        assert!(spacing <= 30_000, "{spacing}");
    }
    // The same answers as deduplicating at query time, and a second pass changes nothing.
    assert_eq!(deduplicated(&store, 4 * H - 1).await, before);
    let again = compact(
        &store,
        &CompactOptions {
            now_ms: 6 * H + 1,
            ..opts
        },
    )
    .await
    .unwrap();
    assert!(again.merged.is_empty(), "{again:?}");
}
