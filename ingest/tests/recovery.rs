//! A crash after a block is cut and staged, before its upload and the WAL's checkpoint: the next
//! start uploads the staged block and must not cut the same samples again from the replayed WAL.

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
    shipper.append(vec![series(W)]).await.unwrap();
    shipper.append(vec![series(W + 4 * HOUR)]).await.unwrap();
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

    let mut samples = Vec::new();
    for meta in BlockMeta::list(&remote).await.unwrap() {
        let reader = BlockReader::new(Arc::clone(&remote) as Arc<dyn ObjectStore>, meta);
        for s in reader.select(&[], i64::MIN, i64::MAX).await.unwrap().series {
            samples.extend(s.samples.iter().map(|x| x.t));
        }
    }
    samples.sort_unstable();
    let distinct = {
        let mut d = samples.clone();
        d.dedup();
        d
    };
    assert_eq!(distinct.len(), 120, "every sample is in the bucket");
    assert_eq!(samples.len(), 120, "and only once");
}
