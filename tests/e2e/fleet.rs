//! The whole system with real parts: two Debian Prometheus servers (clusters `a` and `b`) scrape a
//! real node exporter and remote-write to two shippers, which upload to a local S3 server; the
//! querier answers Debian's `promtool` (a real API client) across both clusters.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use fleetscope_store::objstore;

use crate::support::{
    Proc, S3, all_samples, api_series, enc, free_port, http, prom_metric, start_node_exporter,
    start_shipper, wait_ready,
};

struct Cluster {
    name: &'static str,
    prometheus: Proc,
    prom_port: u16,
    config: std::path::PathBuf,
    shipper: Proc,
    shipper_port: u16,
}

fn prometheus_config(node_port: u16, shipper_port: u16, scrape: bool) -> String {
    let scrape = if scrape {
        format!(
            "scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{node_port}']\n"
        )
    } else {
        "scrape_configs: []\n".to_string()
    };
    format!(
        "global:\n  scrape_interval: 1s\n{scrape}remote_write:\n  - url: http://127.0.0.1:{shipper_port}/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n"
    )
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool (Debian package prometheus) must be installed");
    assert!(
        out.status.success(),
        "promtool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn two_prometheus_two_shippers_one_querier() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_node, node_port) = start_node_exporter(d);
    let s3 = S3::start(&d.join("moto.log"));
    let env = s3.env();

    let mut clusters = Vec::new();
    for name in ["a", "b"] {
        let (shipper, shipper_port) = start_shipper(
            &d.join(format!("shipper-{name}")),
            "s3://fleet/blocks",
            &["--cluster", name],
            &env,
            &d.join(format!("shipper-{name}.log")),
        );
        let prom_port = free_port();
        let config = d.join(format!("prometheus-{name}.yml"));
        std::fs::write(&config, prometheus_config(node_port, shipper_port, true)).unwrap();
        let prometheus = Proc::spawn(
            "prometheus",
            &[
                &format!("--config.file={}", config.display()),
                &format!(
                    "--storage.tsdb.path={}",
                    d.join(format!("tsdb-{name}")).display()
                ),
                &format!("--web.listen-address=127.0.0.1:{prom_port}"),
                "--web.enable-lifecycle",
            ],
            &d.join(format!("prometheus-{name}.log")),
        );
        wait_ready(prom_port, "/-/ready", "prometheus");
        clusters.push(Cluster {
            name,
            prometheus,
            prom_port,
            config,
            shipper,
            shipper_port,
        });
    }

    // A minute of scraping and remote-writing.
    std::thread::sleep(Duration::from_secs(60));

    // Stop scraping (the target's series get stale markers), let the queues drain, then flush.
    for c in &clusters {
        std::fs::write(
            &c.config,
            prometheus_config(node_port, c.shipper_port, false),
        )
        .unwrap();
        let (status, _) = http("POST", c.prom_port, "/-/reload", &[], b"").unwrap();
        assert_eq!(status, 200);
    }
    let mut sent = BTreeMap::new();
    for c in &clusters {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = -1.0;
        loop {
            std::thread::sleep(Duration::from_secs(2));
            let now = prom_metric(c.prom_port, "prometheus_remote_storage_samples_total");
            let pending = prom_metric(c.prom_port, "prometheus_remote_storage_samples_pending");
            if now == last && pending == 0.0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "cluster {}: remote-write queue did not drain",
                c.name
            );
            last = now;
        }
        assert_eq!(
            prom_metric(
                c.prom_port,
                "prometheus_remote_storage_samples_failed_total"
            ),
            0.0
        );
        assert_eq!(
            prom_metric(
                c.prom_port,
                "prometheus_remote_storage_samples_dropped_total"
            ),
            0.0
        );
        sent.insert(c.name, last as usize);
        let (status, body) = http("POST", c.shipper_port, "/api/v1/flush", &[], b"").unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }

    // Every sample Prometheus reports as sent is in the uploaded blocks.
    let store = objstore::open_with_env(
        "s3://fleet/blocks",
        env.iter().map(|(k, v)| (k.to_string(), v.clone())),
    )
    .unwrap();
    let stored = all_samples(&store);
    for c in &clusters {
        let n = stored
            .iter()
            .filter(|s| s.0.contains(&format!("cluster=\"{}\"", c.name)))
            .count();
        assert!(
            sent[c.name] > 1000,
            "cluster {} sent only {} samples",
            c.name,
            sent[c.name]
        );
        assert_eq!(
            n, sent[c.name],
            "cluster {}: blocks hold every sample Prometheus sent",
            c.name
        );
    }

    // The querier over both clusters.
    let q_port = free_port();
    let q_listen = format!("127.0.0.1:{q_port}");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleetscope"));
    cmd.args([
        "querier",
        "--objstore",
        "s3://fleet/blocks",
        "--listen",
        &q_listen,
    ]);
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    cmd.stderr(std::fs::File::create(d.join("querier.log")).unwrap());
    let _querier = Proc {
        child: cmd.spawn().unwrap(),
        name: "fleetscope querier".into(),
    };
    wait_ready(q_port, "/-/ready", "querier");
    let q_url = format!("http://{q_listen}");

    // Same raw samples as each Prometheus's own TSDB (values compared exactly).
    let now_s = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        / 1000) as i64;
    for c in &clusters {
        let ours = api_series(
            q_port,
            &format!(
                "/api/v1/query?time={now_s}&query={}",
                enc(&format!("{{job=\"node\",cluster=\"{}\"}}[10m]", c.name))
            ),
        );
        let theirs = api_series(
            c.prom_port,
            &format!(
                "/api/v1/query?time={now_s}&query={}",
                enc("{job=\"node\"}[10m]")
            ),
        );
        assert!(theirs.len() > 100, "node exporter series: {}", theirs.len());
        assert_eq!(ours.len(), theirs.len(), "cluster {}: same series", c.name);
        assert!(ours == theirs, "cluster {}: same samples", c.name);
        // And the same PromQL answers (within 1e-9 relative).
        let t = now_s - 30;
        for q in [
            "sum by (mode) (rate(node_cpu_seconds_total[1m]))",
            "avg(node_load1)",
            "count(up)",
        ] {
            let scoped = q
                .replace(
                    "node_cpu_seconds_total[",
                    &format!("node_cpu_seconds_total{{cluster=\"{}\"}}[", c.name),
                )
                .replace(
                    "node_load1)",
                    &format!("node_load1{{cluster=\"{}\"}})", c.name),
                )
                .replace("count(up)", &format!("count(up{{cluster=\"{}\"}})", c.name));
            let ours = api_series(
                q_port,
                &format!("/api/v1/query?time={t}&query={}", enc(&scoped)),
            );
            let theirs = api_series(
                c.prom_port,
                &format!("/api/v1/query?time={t}&query={}", enc(q)),
            );
            assert_eq!(
                ours.keys().collect::<Vec<_>>(),
                theirs.keys().collect::<Vec<_>>(),
                "{q}"
            );
            for (k, a) in &ours {
                let (x, y) = (a[0].1, theirs[k][0].1);
                assert!(
                    (x - y).abs() <= 1e-9 * x.abs().max(y.abs()) || (x.is_nan() && y.is_nan()),
                    "{q} {k}: {x} vs {y}"
                );
            }
        }
    }

    // promtool, a real API client, across both clusters.
    let t = (now_s - 20).to_string();
    let out = promtool(&[
        "query",
        "instant",
        "--time",
        &t,
        &q_url,
        "sum by (cluster) (rate(node_cpu_seconds_total[1m]))",
    ]);
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("=>")).collect();
    assert_eq!(lines.len(), 2, "one series per cluster: {out}");
    assert!(
        lines.iter().any(|l| l.contains("cluster=\"a\""))
            && lines.iter().any(|l| l.contains("cluster=\"b\"")),
        "{out}"
    );
    let out = promtool(&["query", "labels", &q_url, "cluster"]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["a", "b"],
        "{out}"
    );
    let out = promtool(&["query", "series", "--match=up", &q_url]);
    assert!(
        out.contains("cluster=\"a\"") && out.contains("cluster=\"b\""),
        "{out}"
    );
    let start = (now_s - 60).to_string();
    let out = promtool(&[
        "query",
        "range",
        "--start",
        &start,
        "--end",
        &t,
        "--step",
        "10s",
        &q_url,
        "sum by (cluster) (up)",
    ]);
    assert!(
        out.contains("cluster=\"a\"") && out.contains("cluster=\"b\""),
        "{out}"
    );

    for c in clusters {
        assert_eq!(
            c.shipper.terminate(),
            Some(0),
            "shipper {} exits cleanly on SIGTERM",
            c.name
        );
        drop(c.prometheus);
    }
}
