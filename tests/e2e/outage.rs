//! The S3 server stops during ingestion and comes back: writes keep getting 2xx meanwhile, and
//! afterwards every block is uploaded with nothing missing.

use std::time::Duration;

use fleetscope_store::objstore;

use crate::support::{S3, all_samples, http, remote_write, remote_write_body};

#[test]
fn object_store_outage_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s3 = S3::start(&dir.path().join("moto.log"));
    let env = s3.env();
    let (shipper, port) = crate::support::start_shipper(
        &dir.path().join("data"),
        "s3://fleet/blocks",
        &["--cluster", "outage", "--block-duration", "1h"],
        &env,
        &dir.path().join("shipper.log"),
    );
    let base = 1_764_000_000_000i64; // in the past: --ingest.max-future refuses the future
    let write = |from: i64| {
        let series = vec![(
            vec![("__name__".to_string(), "outage_test".to_string())],
            (from..from + 100)
                .map(|k| (base + k * 1000, k as f64))
                .collect::<Vec<_>>(),
        )];
        assert_eq!(
            remote_write(port, &remote_write_body(&series)),
            Some(204),
            "writes are acknowledged"
        );
    };
    write(0);
    s3.stop();
    // The store is down: writes still succeed (they only need the WAL).
    write(100);
    write(200);
    // A flush now waits for the store; run it in the background and bring the store back.
    let flusher = std::thread::spawn(move || http("POST", port, "/api/v1/flush", &[], b""));
    std::thread::sleep(Duration::from_secs(2));
    let (_, metrics) = http("GET", port, "/metrics", &[], b"").unwrap();
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("fleetscope_ingest_blocks_pending 1"),
        "the cut block waits on disk: {metrics}"
    );
    write(300);
    s3.restart();
    let (status, body) = flusher.join().unwrap().expect("flush answers");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // The sample written during the flush is shipped by the shutdown flush.
    assert_eq!(shipper.terminate(), Some(0));

    let store = objstore::open_with_env(
        "s3://fleet/blocks",
        env.iter().map(|(k, v)| (k.to_string(), v.clone())),
    )
    .unwrap();
    let samples = all_samples(&store);
    let mut ts: Vec<i64> = samples.iter().map(|s| s.1).collect();
    ts.sort_unstable();
    ts.dedup();
    assert_eq!(
        ts.len(),
        400,
        "every sample uploaded once the store is back"
    );
    assert_eq!(samples.len(), 400, "and only once");
    assert!(samples.iter().all(|s| s.0.contains("cluster=\"outage\"")));
}
