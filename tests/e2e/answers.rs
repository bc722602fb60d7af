//! Fleet answers on the demo's data, as the README shows them: `fleetscope capacity` (a fragmented
//! training cluster, a cordoned node), the dashboard's capacity panel agreeing with it, `fleetscope
//! top` printing one plain table when its output is not a terminal, and `query --output chart`.

use std::sync::Arc;

use fleetscope_query::{Catalog, Engine, QueryValue};
use fleetscope_store::objstore;

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `fleetscope capacity` at `time` (Unix seconds): exit code and JSON answer.
fn capacity(url: &str, pods: &str, gpus: &str, time: i64) -> (i32, serde_json::Value) {
    let out = crate::fleetscope(&[
        "capacity",
        "--objstore",
        url,
        "--pods",
        pods,
        "--gpus-per-pod",
        gpus,
        "--time",
        &time.to_string(),
        "--output",
        "json",
    ]);
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), json)
}

fn cluster<'a>(answer: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    answer["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cluster"] == name)
        .unwrap_or_else(|| panic!("no {name} in {answer}"))
}

#[test]
fn capacity_panel_top_and_chart_on_the_demo_fleet() {
    let dir = tempfile::tempdir().unwrap();
    ok(&crate::fleetscope(&[
        "demo",
        "--dir",
        dir.path().to_str().unwrap(),
        "--duration",
        "1h",
        "--no-serve",
    ]));
    let bucket = dir.path().join("bucket");
    let url = crate::file_url(&bucket);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let catalog = Arc::new(Catalog::new(objstore::open(&url).unwrap()));
    rt.block_on(catalog.refresh()).unwrap();
    let blocks = rt.block_on(async { catalog.blocks() });
    let start = blocks.iter().map(|m| m.min_t).min().unwrap() / 1000;
    let end = blocks.iter().map(|m| m.max_t).max().unwrap() / 1000;

    // Now: the training cluster's 8-GPU node is cordoned, the others have 2, 2 and 3 free.
    let (code, now) = capacity(&url, "1", "4", end);
    assert_eq!(code, 1, "a 4-GPU pod fits nowhere: {now}");
    let training = cluster(&now, "training-bj");
    assert_eq!(training["free_gpus"], 7.0, "{training}");
    assert_eq!(training["largest_free_gpus_on_a_node"], 3.0, "{training}");
    assert_eq!(
        training["excluded_nodes"].as_array().unwrap().len(),
        1,
        "{training}"
    );
    assert_eq!(training["stale"], false, "{training}");
    assert_eq!(cluster(&now, "serving-sh")["free_gpus"], 3.0, "{now}");
    assert_eq!(cluster(&now, "kurator-master")["free_gpus"], 0.0, "{now}");
    // 3 pods of 2 GPUs fit (one per node), 4 do not: it is the spread that counts.
    let (code, three) = capacity(&url, "3", "2", end);
    assert_eq!(code, 0, "{three}");
    assert_eq!(
        cluster(&three, "training-bj")["placeable_pods"],
        3,
        "{three}"
    );
    assert_eq!(capacity(&url, "4", "2", end).0, 1);
    // Before the cordon (the first quarter of the demo's span), the free node took a 4-GPU pod.
    let (code, before) = capacity(&url, "2", "4", start + 600);
    assert_eq!(code, 0, "{before}");
    assert_eq!(
        cluster(&before, "training-bj")["largest_free_gpus_on_a_node"],
        8.0,
        "{before}"
    );

    // The dashboard's capacity panel says the same per cluster.
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("deploy/grafana/fleet-dashboard.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let panel = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["title"]
                .as_str()
                .unwrap()
                .starts_with("GPUs free for new jobs")
        })
        .expect("the capacity panel");
    let source: Arc<dyn fleetscope_query::Source> = catalog;
    for (target, field) in panel["targets"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["free_gpus", "largest_free_gpus_on_a_node"])
    {
        let q = target["expr"].as_str().unwrap().replace("$cluster", ".*");
        let v = rt
            .block_on(Engine::default().instant(&source, &q, end * 1000))
            .unwrap();
        let QueryValue::Vector(v) = v else {
            panic!("{q}: not a vector")
        };
        assert_eq!(v.len(), 3, "{q}: {v:?}");
        for s in v {
            let name = s.labels.get("cluster").unwrap();
            assert_eq!(
                s.v,
                cluster(&now, name)[field].as_f64().unwrap(),
                "{field} of {name}"
            );
        }
    }

    // `top` with its output not a terminal: one plain table, exit 0.
    let text = ok(&crate::fleetscope(&["top", "--objstore", &url]));
    let row = |name: &str| {
        text.lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{text}"))
    };
    for name in ["training-bj", "serving-sh"] {
        assert!(
            !row(name).contains("┆ - "),
            "{name} lacks a figure: {}",
            row(name)
        );
    }
    // The control cluster has no GPUs: dashes, not zeros.
    assert!(
        row("kurator-master").contains("┆ - "),
        "{}",
        row("kurator-master")
    );
    assert!(text.contains("7 (≤3/node)"), "{text}");
    assert!(text.contains("training-jobs"), "{text}");
    // The same from a querier over HTTP.
    let (_querier, port) =
        crate::support::start_querier(&url, &[], &dir.path().join("querier.log"));
    let remote = ok(&crate::fleetscope(&[
        "top",
        "--querier",
        &format!("http://127.0.0.1:{port}"),
    ]));
    let clusters = |t: &str| -> Vec<String> {
        t.lines()
            .filter_map(|l| l.split('┆').next())
            .map(|c| c.trim_matches(['│', ' ']).to_string())
            .filter(|c| c.contains('-'))
            .collect()
    };
    assert_eq!(clusters(&remote), clusters(&text), "{remote}");
    assert!(
        remote.contains("7 (≤3/node)") && remote.contains("training-jobs"),
        "{remote}"
    );

    // A chart of a range query; an instant query cannot be one.
    let q = "sum by (cluster) (rate(container_cpu_usage_seconds_total[5m]))";
    let (s, e) = ((end - 1800).to_string(), end.to_string());
    let chart = ok(&crate::fleetscope(&[
        "query",
        "--objstore",
        &url,
        "--start",
        &s,
        "--end",
        &e,
        "--output",
        "chart",
        q,
    ]));
    for name in ["kurator-master", "training-bj", "serving-sh"] {
        assert!(
            chart.contains(&format!("{{cluster=\"{name}\"}}")),
            "{chart}"
        );
    }
    assert!(chart.contains("time (") && chart.contains('⣿'), "{chart}");
    let out = crate::fleetscope(&["query", "--objstore", &url, "--output", "chart", q]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--output chart draws a range query"));

    // Experimental PromQL only with Prometheus's flag: limitk keeps one series per cluster.
    let q = "count(limitk by (cluster) (1, container_cpu_usage_seconds_total))";
    let out = crate::fleetscope(&["query", "--objstore", &url, "--time", &e, q]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--enable-feature=promql-experimental-functions")
    );
    let text = ok(&crate::fleetscope(&[
        "query",
        "--objstore",
        &url,
        "--enable-feature",
        "promql-experimental-functions,promql-binop-fill-modifiers",
        "--time",
        &e,
        "--output",
        "json",
        q,
    ]));
    assert!(text.contains("\"3\"]"), "{text}");
}
