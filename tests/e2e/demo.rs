//! `fleetscope demo`, as the README runs it: the summary, a querier answering Grafana-style
//! requests with live data, a clean stop, and a second run reusing the data.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Proc, free_port, http};

fn form(q: &[(&str, &str)]) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(q)
        .finish()
        .into_bytes()
}

#[test]
fn demo_summarises_serves_and_reuses() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let demo_dir = dir.path().join("demo");
    let child = Command::new(env!("CARGO_BIN_EXE_fleetscope"))
        .args([
            "demo",
            "--dir",
            demo_dir.to_str().unwrap(),
            "--duration",
            "1h",
            "--listen",
            &listen,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut demo = Proc {
        child,
        name: "fleetscope demo".into(),
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while http("GET", port, "/api/v1/status/buildinfo", &[], b"").map(|r| r.0) != Some(200) {
        assert!(Instant::now() < deadline, "demo did not start serving");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Grafana's calls: range query by form POST, labels, metric names, buildinfo.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (start, end) = ((now - 1800).to_string(), now.to_string());
    let body = form(&[
        (
            "query",
            "sum by (cluster) (rate(container_cpu_usage_seconds_total[5m]))",
        ),
        ("start", &start),
        ("end", &end),
        ("step", "60"),
    ]);
    let (status, resp) = http(
        "POST",
        port,
        "/api/v1/query_range",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &body,
    )
    .unwrap();
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_slice(&resp).unwrap();
    let result = json["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 3, "one series per cluster: {json}");
    assert!(
        result
            .iter()
            .all(|s| s["values"].as_array().unwrap().len() >= 25),
        "30 minutes of points: {json}"
    );
    let (_, resp) = http("GET", port, "/api/v1/labels", &[], b"").unwrap();
    let labels: serde_json::Value = serde_json::from_slice(&resp).unwrap();
    assert!(
        labels["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "cluster"),
        "{labels}"
    );
    let (_, resp) = http("GET", port, "/api/v1/label/__name__/values", &[], b"").unwrap();
    let names: serde_json::Value = serde_json::from_slice(&resp).unwrap();
    assert!(
        names["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "DCGM_FI_DEV_GPU_UTIL"),
        "{names}"
    );
    let (_, resp) = http("GET", port, "/api/v1/status/buildinfo", &[], b"").unwrap();
    assert!(String::from_utf8_lossy(&resp).contains("\"features\":{}"));

    // New samples keep arriving and are queryable at once (from the shippers' heads).
    std::thread::sleep(Duration::from_secs(20));
    let (_, resp) = http(
        "POST",
        port,
        "/api/v1/query",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &form(&[("query", "max(timestamp(up))")]),
    )
    .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&resp).unwrap();
    let newest: f64 = json["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        newest > started + 5.0,
        "live samples after the start ({newest} vs {started})"
    );

    let mut stdout = demo.child.stdout.take().unwrap();
    let pid = demo.child.id();
    std::mem::forget(demo);
    assert!(
        Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let mut out = String::new();
    stdout.read_to_string(&mut out).unwrap();
    for want in [
        "CPU cores in use",
        "GPU utilisation",
        "kurator-master",
        "training-bj",
        "serving-sh",
        "Request latency p99",
        &listen,
    ] {
        assert!(out.contains(want), "summary lacks {want:?}:\n{out}");
    }

    // A second run reuses the blocks.
    let out = Command::new(env!("CARGO_BIN_EXE_fleetscope"))
        .args(["demo", "--dir", demo_dir.to_str().unwrap(), "--no-serve"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("reusing the fleet"),
        "{text}"
    );
}
