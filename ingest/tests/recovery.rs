//! Crashes and the WAL: after a block is cut and staged, before its upload and the WAL's checkpoint,
//! the next start uploads the staged block and must not cut the same samples again from the
//! replayed WAL; a WAL that checkpointed itself replays the same head.

use std::sync::Arc;
use std::time::Duration;

use fleetscope_ingest::metrics::Metrics;
use fleetscope_ingest::{Shipper, ShipperConfig};
use fleetscope_store::{BlockMeta, BlockReader, Labels, Sample, Series, objstore};
use object_store::ObjectStore;

const HOUR: i64 = 3_600_000;
/// A past, block-aligned time.
const W: i64 = 1_764_000_000_000 / (2 * HOUR) * (2 * HOUR);

fn config(dir: &std::path::Path) -> ShipperConfig {
    ShipperConfig {
        max_backoff: Duration::from_millis(50),
        ..ShipperConfig::new(dir)
    }
}

#[tokio::test]
async fn a_block_staged_before_a_crash_is_shipped_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // An object store whose uploads fail: its folder is replaced by a file once opened.
    let gone = dir.path().join("gone");
    let broken = objstore::open(&format!("file://{}", gone.display())).unwrap();
    std::fs::remove_dir(&gone).unwrap();
    std::fs::write(&gone, b"").unwrap();
    let shipper = Shipper::start(config(&data), broken, Arc::new(Metrics::new()))
        .await
        .unwrap();
    let series = |t: i64| Series {
        labels: Labels::from_pairs([("__name__", "x")]),
        samples: (0..60)
            .map(|i| Sample {
                t: t + i * 60_000,
                v: i as f64,
            })
            .collect(),
    };
    // Window W, and samples far enough past it that W is due for a cut.
    shipper.append(vec![series(W)].into()).await.unwrap();
    shipper
        .append(vec![series(W + 4 * HOUR)].into())
        .await
        .unwrap();
    let cutting = {
        let shipper = shipper.clone();
        tokio::spawn(async move { shipper.cut_due().await })
    };
    // Wait until the block of W is staged (its upload keeps failing), then "crash".
    let staged = data.join("blocks");
    for _ in 0..200 {
        let done = std::fs::read_dir(&staged)
            .map(|d| d.flatten().any(|e| e.path().join("meta.json").exists()))
            .unwrap_or(false);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(!cutting.is_finished(), "the upload cannot have succeeded");
    cutting.abort();
    let _ = cutting.await;
    drop(shipper);
    tokio::time::sleep(Duration::from_millis(100)).await;

    // The next run, with a working object store.
    let remote = objstore::open("memory://").unwrap();
    let shipper = Shipper::start(config(&data), Arc::clone(&remote), Arc::new(Metrics::new()))
        .await
        .unwrap();
    shipper.upload_recovered().await.unwrap();
    shipper.flush(None).await.unwrap();

    let samples = stored(&remote).await;
    let distinct = {
        let mut d = samples.clone();
        d.dedup();
        d
    };
    assert_eq!(distinct.len(), 120, "every sample is in the bucket");
    assert_eq!(samples.len(), 120, "and only once");
}

/// Every sample of every block in `store`, as (series, t, value bits), sorted.
async fn stored(store: &Arc<dyn ObjectStore>) -> Vec<(String, i64, u64)> {
    let mut out = Vec::new();
    for meta in BlockMeta::list(store).await.expect("list blocks") {
        let reader = BlockReader::new(Arc::clone(store), meta);
        for s in reader
            .select(&[], i64::MIN, i64::MAX)
            .await
            .expect("read block")
            .series
        {
            out.extend(
                s.samples
                    .iter()
                    .map(|x| (s.labels.to_string(), x.t, x.v.to_bits())),
            );
        }
    }
    out.sort_unstable();
    out
}

#[tokio::test]
async fn a_wal_that_checkpointed_itself_replays_every_acknowledged_sample() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let remote = objstore::open("memory://").unwrap();
    let config = || ShipperConfig {
        checkpoint_min_bytes: 1,
        ..config(&data)
    };
    let shipper = Shipper::start(config(), Arc::clone(&remote), Arc::new(Metrics::new()))
        .await
        .unwrap();
    // 50 series, 400 samples each (sealed chunks and open tails), in 40 requests; values that
    // code differently (integers, decimals, arbitrary bits, NaN).
    let mut want = Vec::new();
    for request in 0..40i64 {
        let batch: Vec<Series> = (0..50)
            .map(|s| {
                let labels = Labels::from_pairs([("__name__", "m"), ("s", &s.to_string())]);
                let samples: Vec<Sample> = (0..10)
                    .map(|i| {
                        let k = request * 10 + i;
                        let v = match s % 4 {
                            0 => k as f64,
                            1 => k as f64 * 0.1,
                            2 => f64::from_bits(0x4000_0000_0000_0000 ^ (k as u64 * 0x9e37_79b9)),
                            _ => f64::NAN,
                        };
                        Sample {
                            t: W + k * 15_000,
                            v,
                        }
                    })
                    .collect();
                want.extend(
                    samples
                        .iter()
                        .map(|x| (labels.to_string(), x.t, x.v.to_bits())),
                );
                Series { labels, samples }
            })
            .collect();
        shipper.append(batch.into()).await.unwrap();
    }
    let checkpoints = shipper.metrics().wal_checkpoints.get();
    assert!(checkpoints >= 2, "{checkpoints} checkpoints");
    let segments = std::fs::read_dir(data.join("wal")).unwrap().count();
    assert!(segments <= 3, "older segments are removed: {segments} left");
    // "Crash": no flush; the next run replays the checkpoint and what followed it.
    drop(shipper);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let shipper = Shipper::start(config(), Arc::clone(&remote), Arc::new(Metrics::new()))
        .await
        .unwrap();
    shipper.flush(None).await.unwrap();
    want.sort_unstable();
    assert_eq!(stored(&remote).await, want);
}
