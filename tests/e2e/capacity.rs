//! `fleetscope capacity` and `GET /api/v1/fleet/capacity` on imported kube-state-metrics: the same
//! answer both ways, and the exit codes an admission hook relies on.

use std::io::Write;

use crate::support::{http, start_querier};

/// When the question is asked (ms).
const T: i64 = 1_764_000_000_000;

/// kube-state-metrics text for a cluster: nodes `(name, allocatable GPUs)` and running pods
/// `(name, node, GPUs)`, a sample every 30 s for the 10 minutes before `T`.
fn cluster_text(nodes: &[(&str, u32)], pods: &[(&str, &str, u32)]) -> String {
    let mut out = String::new();
    for k in 0..=20 {
        let t = T - 600_000 + k * 30_000;
        for (node, gpus) in nodes {
            for (resource, v) in [
                ("nvidia_com_gpu", *gpus as f64),
                ("cpu", 64.0),
                ("memory", 5e11),
            ] {
                out += &format!(
                    "kube_node_status_allocatable{{node=\"{node}\",resource=\"{resource}\"}} {v} {t}\n"
                );
            }
            out += &format!("kube_node_spec_unschedulable{{node=\"{node}\"}} 0 {t}\n");
            out += &format!(
                "kube_node_status_condition{{node=\"{node}\",condition=\"Ready\",status=\"true\"}} 1 {t}\n"
            );
        }
        for (pod, node, gpus) in pods {
            out += &format!(
                "kube_pod_status_phase{{namespace=\"ml\",pod=\"{pod}\",phase=\"Running\"}} 1 {t}\n"
            );
            out += &format!(
                "kube_pod_container_resource_requests{{namespace=\"ml\",pod=\"{pod}\",container=\"c\",node=\"{node}\",resource=\"nvidia_com_gpu\"}} {gpus} {t}\n"
            );
        }
    }
    out
}

fn capacity(url: &str, pods: &str, gpus: &str) -> std::process::Output {
    crate::fleetscope(&[
        "capacity",
        "--objstore",
        url,
        "--pods",
        pods,
        "--gpus-per-pod",
        gpus,
        "--time",
        &(T / 1000).to_string(),
        "--output",
        "json",
    ])
}

#[test]
fn cli_and_http_give_the_same_answer_and_exit_codes_tell_it() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let url = crate::file_url(&bucket);
    // "spread": 4 free GPUs, 2 per node; "packed": 4 free on one node.
    let spread = cluster_text(&[("s1", 4), ("s2", 4)], &[("p1", "s1", 2), ("p2", "s2", 2)]);
    let packed = cluster_text(&[("k1", 4)], &[]);
    for (name, text) in [("spread", spread), ("packed", packed)] {
        let path = dir.path().join(format!("{name}.prom"));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = crate::fleetscope(&[
            "import",
            "--objstore",
            &url,
            "--format",
            "prometheus",
            "--cluster",
            name,
            path.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A pod of 4 GPUs: only "packed" can take it.
    let out = capacity(&url, "1", "4");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fits: Vec<(String, bool)> = cli["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["cluster"].as_str().unwrap().to_string(),
                c["fits"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        fits,
        [("packed".to_string(), true), ("spread".to_string(), false)]
    );
    assert_eq!(cli["clusters"][1]["free_gpus"], 4.0);
    assert_eq!(cli["clusters"][1]["placeable_pods"], 0);

    // The querier answers the same, inside Prometheus's envelope.
    let (querier, port) = start_querier(&url, &[], &dir.path().join("querier.log"));
    let path = format!(
        "/api/v1/fleet/capacity?pods=1&gpus_per_pod=4&time={}",
        T / 1000
    );
    let (status, body) = http("GET", port, &path, &[], b"").unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let api: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(api["status"], "success");
    assert_eq!(api["data"], cli);
    let (status, body) = http(
        "GET",
        port,
        "/api/v1/fleet/capacity?gpus_per_pod=4",
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("pods"));
    drop(querier);

    // A gang of 4 x 4 GPUs fits nowhere: exit 1, the answer still printed.
    let out = capacity(&url, "4", "4");
    assert_eq!(out.status.code(), Some(1));
    let none: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        none["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["fits"] == false)
    );
    // Errors: exit 2.
    let out = capacity(&url, "1", "lots");
    assert_eq!(out.status.code(), Some(2));
    let out = capacity("ftp://nowhere", "1", "4");
    assert_eq!(out.status.code(), Some(2));
    let out = capacity(&url, "0", "4");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
