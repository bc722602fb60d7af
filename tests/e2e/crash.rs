//! The shipper killed with SIGKILL at random points while a client writes at full speed: every
//! sample that got a 2xx is in the object store exactly once after the final flush.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleetscope_store::objstore;
use rand::Rng;

use crate::support::{
    all_samples, free_port, http, remote_write, remote_write_body, start_shipper,
};

#[test]
fn sigkill_loses_no_acknowledged_sample() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let url = format!("file://{}", bucket.display());
    let data = dir.path().join("data");
    let log = dir.path().join("shipper.log");
    let _ = free_port();
    let (mut shipper, mut port) = start_shipper(&data, &url, &["--cluster", "crash"], &[], &log);

    let acked: Arc<Mutex<Vec<(String, i64, f64)>>> = Arc::default();
    let port_now = Arc::new(Mutex::new(port));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, port_now, stop) =
            (Arc::clone(&acked), Arc::clone(&port_now), Arc::clone(&stop));
        std::thread::spawn(move || {
            let base = 1_764_000_000_000i64; // one block window (in the past: --ingest.max-future), far from any cut
            let mut t = 0i64;
            while !stop.load(Ordering::Relaxed) {
                // 10 series x 20 samples per request; timestamps never repeat.
                let series: Vec<_> = (0..10)
                    .map(|s| {
                        let labels = vec![
                            ("__name__".to_string(), "crash_test".to_string()),
                            ("s".to_string(), s.to_string()),
                        ];
                        (
                            labels,
                            (0..20)
                                .map(|k| (base + t + k, (t + k) as f64 * 0.5))
                                .collect::<Vec<_>>(),
                        )
                    })
                    .collect();
                t += 20;
                let body = remote_write_body(&series);
                let p = *port_now.lock().unwrap();
                if remote_write(p, &body) == Some(204) {
                    let mut a = acked.lock().unwrap();
                    for (labels, samples) in &series {
                        a.extend(samples.iter().map(|&(ts, v)| (labels[1].1.clone(), ts, v)));
                    }
                }
            }
        })
    };

    let mut rng = rand::rng();
    let kills = 22;
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(rng.random_range(30..300)));
        drop(shipper); // SIGKILL
        let (s, p) = start_shipper(&data, &url, &["--cluster", "crash"], &[], &log);
        shipper = s;
        port = p;
        *port_now.lock().unwrap() = port;
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let (status, body) = http("POST", port, "/api/v1/flush", &[], b"").unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    let acked = acked.lock().unwrap();
    assert!(
        acked.len() > 10_000,
        "the writer got {} samples acknowledged: too few to mean anything",
        acked.len()
    );
    let store = objstore::open(&url).unwrap();
    let mut stored: HashMap<(String, i64), Vec<u64>> = HashMap::new();
    for (labels, t, bits) in all_samples(&store) {
        let s = labels
            .split("s=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap()
            .to_string();
        stored.entry((s, t)).or_default().push(bits);
    }
    for (s, t, v) in acked.iter() {
        let got = stored
            .get(&(s.clone(), *t))
            .unwrap_or_else(|| panic!("acknowledged sample s={s} t={t} lost"));
        assert_eq!(
            got,
            &vec![v.to_bits()],
            "s={s} t={t} present exactly once with its value"
        );
    }
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("wal replayed")
    );
}
