//! SQL over the fleet's blocks answers what PromQL answers, in-process and through `fleetscope sql`.

use std::sync::Arc;

use fleetscope_query::{Catalog, Engine, EngineOptions, QueryValue, Source, Sql};
use fleetscope_sim::fleet::{FleetSpec, generate_cluster};
use fleetscope_store::{Labels, Series, WriteOptions, objstore, write_block};

const START: i64 = 1_767_225_600_000;
const WINDOW: i64 = 600_000;

/// The tiny fleet (three clusters, 30 minutes at 15 s) in blocks of 10 minutes per cluster.
async fn fleet_bucket(url: &str) -> Arc<dyn Source> {
    let store = objstore::open(url).unwrap();
    let spec = FleetSpec::preset("tiny", START).unwrap();
    for cluster in &spec.clusters {
        let mut all: Vec<Series> = Vec::new();
        generate_cluster(&spec, cluster, &mut |s| all.push(s.to_series()));
        let external = Labels::from_pairs([("cluster", cluster.name.as_str())]);
        for w in 0..3 {
            let (lo, hi) = (START + w * WINDOW, START + (w + 1) * WINDOW);
            let part: Vec<Series> = all
                .iter()
                .map(|s| Series {
                    labels: s.labels.clone(),
                    samples: s
                        .samples
                        .iter()
                        .filter(|x| x.t >= lo && x.t < hi)
                        .copied()
                        .collect(),
                })
                .filter(|s| !s.samples.is_empty())
                .collect();
            write_block(&store, part, &external, &WriteOptions::default())
                .await
                .unwrap();
        }
    }
    let catalog = Catalog::new(store);
    catalog.refresh().await.unwrap();
    Arc::new(catalog)
}

/// `sum by (cluster)` of an instant query, by cluster.
async fn promql_by_cluster(
    engine: &Engine,
    source: &Arc<dyn Source>,
    q: &str,
    t: i64,
) -> Vec<(String, f64)> {
    let QueryValue::Vector(v) = engine.instant(source, q, t).await.unwrap() else {
        panic!("{q}: not a vector")
    };
    let mut out: Vec<(String, f64)> = v
        .into_iter()
        .map(|s| (s.labels.get("cluster").unwrap_or("").to_string(), s.v))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_counts_and_sums_equal_promql_per_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let source = fleet_bucket(&crate::file_url(dir.path())).await;
    let engine = Engine::new(EngineOptions {
        parallelism: 3,
        ..EngineOptions::default()
    });
    let sql = Sql::new(&engine, Arc::clone(&source));
    let end = START + 25 * 60_000;
    for metric in [
        "container_cpu_usage_seconds_total",
        "DCGM_FI_DEV_GPU_UTIL",
        "node_memory_MemAvailable_bytes",
        "node_network_receive_bytes_total",
    ] {
        let statement = format!(
            "SELECT cluster, count(*) AS n, sum(value) AS s FROM \"{metric}\" \
             WHERE ts > to_timestamp_millis({}) AND ts <= to_timestamp_millis({end}) \
             GROUP BY cluster ORDER BY cluster",
            end - WINDOW
        );
        let result = sql.query(&statement).await.unwrap();
        let mut rows: Vec<(String, f64, f64)> = Vec::new();
        for b in &result.batches {
            let cluster = b
                .column(0)
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .unwrap();
            let n = b
                .column(1)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .unwrap();
            let s = b
                .column(2)
                .as_any()
                .downcast_ref::<arrow::array::Float64Array>()
                .unwrap();
            for i in 0..b.num_rows() {
                rows.push((cluster.value(i).to_string(), n.value(i) as f64, s.value(i)));
            }
        }
        let counts = promql_by_cluster(
            &engine,
            &source,
            &format!("sum by (cluster) (count_over_time({metric}[10m]))"),
            end,
        )
        .await;
        let sums = promql_by_cluster(
            &engine,
            &source,
            &format!("sum by (cluster) (sum_over_time({metric}[10m]))"),
            end,
        )
        .await;
        assert!(!rows.is_empty(), "{metric}: no rows");
        assert_eq!(rows.len(), counts.len(), "{metric}: {rows:?} vs {counts:?}");
        for ((row, count), sum) in rows.iter().zip(&counts).zip(&sums) {
            assert_eq!((&row.0, row.1), (&count.0, count.1), "{metric} count");
            let tolerance = 1e-9 * sum.1.abs().max(1.0);
            assert!(
                (row.2 - sum.1).abs() <= tolerance,
                "{metric} sum: {row:?} vs {sum:?}"
            );
        }
    }

    // A regex on a label is anchored in PromQL and not in SQL: `~ 'train'` finds training-bj.
    let result = sql
        .query("SELECT DISTINCT cluster FROM \"DCGM_FI_DEV_GPU_UTIL\" WHERE cluster ~ 'train'")
        .await
        .unwrap();
    let n: usize = result.batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(n, 1);

    // The metrics and their labels are listed.
    let result = sql
        .query(
            "SELECT column_name FROM information_schema.columns \
             WHERE table_name = 'DCGM_FI_DEV_GPU_UTIL' ORDER BY column_name",
        )
        .await
        .unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&result.batches)
        .unwrap()
        .to_string();
    for column in ["cluster", "gpu", "ts", "value"] {
        assert!(text.contains(column), "{column} missing from {text}");
    }

    // A bad statement is the user's error, with the parser's message.
    let err = sql.query("SELEC 1").await.unwrap_err();
    assert!(
        matches!(err, fleetscope_query::Error::BadData(_)),
        "{err:?}"
    );
}

#[test]
fn sql_command_prints_rows() {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::file_url(dir.path());
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(fleet_bucket(&url));
    let out = crate::fleetscope(&[
        "sql",
        "--objstore",
        &url,
        "--output",
        "csv",
        "SELECT cluster, count(*) AS n FROM \"DCGM_FI_DEV_GPU_UTIL\" GROUP BY cluster ORDER BY cluster",
    ]);
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(csv.lines().next(), Some("cluster,n"), "{csv}");
    assert!(csv.contains("training-bj,"), "{csv}");
    let out = crate::fleetscope(&["sql", "--objstore", &url, "SELEC 1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SELEC"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Partitioned plans (blocks spread over three partitions, series hashed over three) answer
/// exactly what one partition answers, for the fleet dashboard's kinds of queries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_plans_answer_as_one_partition() {
    let dir = tempfile::tempdir().unwrap();
    let source = fleet_bucket(&crate::file_url(dir.path())).await;
    let engine = |parallelism| {
        Engine::new(EngineOptions {
            parallelism,
            ..EngineOptions::default()
        })
    };
    let (one, three) = (engine(1), engine(3));
    let (start, end) = (START + 300_000, START + 29 * 60_000);
    for q in [
        "sum by (cluster) (rate(container_cpu_usage_seconds_total[5m]))",
        "avg by (cluster, modelName) (DCGM_FI_DEV_GPU_UTIL)",
        "sum by (cluster) (DCGM_FI_DEV_FB_USED) / sum by (cluster) (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)",
        "histogram_quantile(0.99, sum by (le, cluster) (rate(http_request_duration_seconds_bucket[5m])))",
        "topk(5, sum by (cluster, namespace) (rate(container_cpu_usage_seconds_total[5m])))",
        "max by (cluster) (node_load1) - min by (cluster) (node_load1)",
        "count(DCGM_FI_DEV_GPU_TEMP > 60)",
        "group by (cluster) (up) or vector(1)",
        "max_over_time(sum by (cluster) (node_load1)[10m:1m])",
    ] {
        let a = one.range(&source, q, start, end, 60_000).await.unwrap();
        let b = three.range(&source, q, start, end, 60_000).await.unwrap();
        let (QueryValue::Matrix(a), QueryValue::Matrix(b)) = (a, b) else {
            panic!("{q}: not matrices")
        };
        assert!(!a.is_empty(), "{q}: empty");
        assert_eq!(a.len(), b.len(), "{q}");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.labels, y.labels, "{q}");
            assert_eq!(x.samples.len(), y.samples.len(), "{q} {}", x.labels);
            for (p, r) in x.samples.iter().zip(&y.samples) {
                let close = p.1 == r.1 || (p.1 - r.1).abs() <= 1e-9 * p.1.abs().max(r.1.abs());
                assert!(p.0 == r.0 && close, "{q} {}: {p:?} vs {r:?}", x.labels);
            }
        }
    }
}
