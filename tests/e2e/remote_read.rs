//! Remote-read both ways with the real Prometheus: a Prometheus reads a shipper's fresh data through
//! its `remote_read:` client; the querier (`--remote-read`) reads a shipper before any block is
//! uploaded, keeps answering after the upload, reads a Prometheus's own remote-read endpoint, and
//! answers partially, with a warning, when an endpoint is down.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{
    Proc, api_series, enc, free_port, http, prom_metric, start_node_exporter, start_shipper,
    wait_ready,
};
use crate::{file_url, files_under};

fn prometheus(dir: &std::path::Path, name: &str, config: &str) -> (Proc, u16) {
    let port = free_port();
    let file = dir.join(format!("{name}.yml"));
    std::fs::write(&file, config).unwrap();
    let proc = Proc::spawn(
        "prometheus",
        &[
            &format!("--config.file={}", file.display()),
            &format!("--storage.tsdb.path={}", dir.join(name).display()),
            &format!("--web.listen-address=127.0.0.1:{port}"),
            "--web.enable-lifecycle",
        ],
        &dir.join(format!("{name}.log")),
    );
    wait_ready(port, "/-/ready", "prometheus");
    (proc, port)
}

fn querier(
    dir: &std::path::Path,
    bucket: &str,
    shippers: &[String],
    remote: &[String],
    token_file: Option<&std::path::Path>,
) -> (Proc, u16) {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleetscope"));
    cmd.args([
        "querier",
        "--objstore",
        bucket,
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--refresh",
        "1s",
    ]);
    for s in shippers {
        cmd.args(["--shipper", s]);
    }
    for r in remote {
        cmd.args(["--remote-read", r]);
    }
    if let Some(f) = token_file {
        cmd.arg("--remote-read.auth-token-file").arg(f);
    }
    cmd.stderr(std::fs::File::create(dir.join(format!("querier-{port}.log"))).unwrap());
    let proc = Proc {
        child: cmd.spawn().unwrap(),
        name: "fleetscope querier".into(),
    };
    wait_ready(port, "/-/ready", "querier");
    (proc, port)
}

#[test]
fn remote_read_with_real_prometheus_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_node, node_port) = start_node_exporter(d);
    let bucket = file_url(&d.join("bucket"));
    // The shipper wants a bearer token on writes and reads.
    let token = d.join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let (shipper, shipper_port) = start_shipper(
        &d.join("shipper"),
        &bucket,
        &[
            "--cluster",
            "a",
            "--auth-token-file",
            token.to_str().unwrap(),
        ],
        &[],
        &d.join("shipper.log"),
    );
    let auth = "    authorization:\n      credentials: s3cret\n";
    let scrape = format!(
        "scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{node_port}']\n"
    );
    let write = format!(
        "remote_write:\n  - url: http://127.0.0.1:{shipper_port}/api/v1/write\n{auth}    queue_config:\n      batch_send_deadline: 1s\n"
    );
    let (_source, src_port) = prometheus(
        d,
        "source",
        &format!("global:\n  scrape_interval: 1s\n{scrape}{write}"),
    );
    // A Prometheus with no data of its own, reading the shipper.
    let (_reader, reader_port) = prometheus(
        d,
        "reader",
        &format!(
            "remote_read:\n  - url: http://127.0.0.1:{shipper_port}/api/v1/read\n{auth}    read_recent: true\n"
        ),
    );

    // Scrape for a few seconds, stop, let the queue drain.
    std::thread::sleep(Duration::from_secs(6));
    std::fs::write(
        d.join("source.yml"),
        format!("global:\n  scrape_interval: 1s\nscrape_configs: []\n{write}"),
    )
    .unwrap();
    assert_eq!(
        http("POST", src_port, "/-/reload", &[], b"").unwrap().0,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = -1.0;
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let sent = prom_metric(src_port, "prometheus_remote_storage_samples_total");
        let pending = prom_metric(src_port, "prometheus_remote_storage_samples_pending");
        if sent == last && pending == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "remote-write queue did not drain"
        );
        last = sent;
    }
    assert!(last > 500.0, "only {last} samples sent");
    assert!(
        files_under(&d.join("bucket")).is_empty(),
        "nothing is uploaded yet: the data lives in the shipper's head"
    );

    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let raw = format!(
        "/api/v1/query?time={now_s}&query={}",
        enc("{job=\"node\"}[1m]")
    );
    let expected = api_series(src_port, &raw);
    assert!(
        expected.len() > 100,
        "node exporter series: {}",
        expected.len()
    );

    // 1. Prometheus's remote-read client against the shipper: the same raw samples, and the
    //    shipper's external label.
    assert!(
        api_series(reader_port, &raw) == expected,
        "Prometheus reading the shipper sees what was written"
    );
    let (status, body) = http(
        "GET",
        reader_port,
        &format!(
            "/api/v1/query?time={now_s}&query={}",
            enc("count by (cluster) (up)")
        ),
        &[],
        b"",
    )
    .unwrap();
    let body = String::from_utf8_lossy(&body);
    assert!(
        status == 200 && body.contains("\"cluster\":\"a\""),
        "{status} {body}"
    );
    let (status, body) = http(
        "GET",
        reader_port,
        &format!("/api/v1/series?match[]={}", enc("up")),
        &[],
        b"",
    )
    .unwrap();
    assert!(
        status == 200 && String::from_utf8_lossy(&body).contains("\"job\":\"node\""),
        "series through remote-read"
    );

    // 2. The querier reads the shipper (fresh data, no block yet) and a dead endpoint.
    let dead = format!("http://127.0.0.1:{}/api/v1/read", free_port());
    let (_q, q_port) = querier(
        d,
        &bucket,
        &[format!("http://127.0.0.1:{shipper_port}")],
        std::slice::from_ref(&dead),
        Some(&token),
    );
    assert!(
        api_series(q_port, &raw) == expected,
        "the querier sees the shipper's head"
    );
    let (status, body) = http("GET", q_port, &raw, &[], b"").unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200);
    let warnings = json["warnings"]
        .as_array()
        .expect("a warning for the dead endpoint");
    assert!(
        warnings.len() == 1 && warnings[0].as_str().unwrap().contains(&dead),
        "{warnings:?}"
    );
    let (status, body) = http("GET", q_port, "/api/v1/label/cluster/values", &[], b"").unwrap();
    assert!(
        status == 200 && String::from_utf8_lossy(&body).contains("[\"a\"]"),
        "label values through remote-read: {}",
        String::from_utf8_lossy(&body)
    );

    // After the flush the data is in the bucket and still in the shipper's `shipped/` folder.
    let bearer = [("Authorization", "Bearer s3cret")];
    let (status, _) = http("POST", shipper_port, "/api/v1/flush", &bearer, b"").unwrap();
    assert_eq!(status, 200);
    assert!(!files_under(&d.join("bucket")).is_empty(), "uploaded");
    assert!(
        !files_under(&d.join("shipper/shipped")).is_empty(),
        "kept locally after upload"
    );
    assert!(
        api_series(q_port, &raw) == expected,
        "no gap while the querier has not listed the new block"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        api_series(q_port, &raw) == expected,
        "bucket and shipper overlap: samples merged, not doubled"
    );

    // 3. The querier reading a real Prometheus's remote-read endpoint, nothing in its bucket.
    let (_q2, q2_port) = querier(
        d,
        &file_url(&d.join("empty-bucket")),
        &[],
        &[format!("http://127.0.0.1:{src_port}/api/v1/read")],
        None,
    );
    assert!(
        api_series(q2_port, &raw) == expected,
        "the querier reads Prometheus's remote-read"
    );

    assert_eq!(shipper.terminate(), Some(0));
}
