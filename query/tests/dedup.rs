//! HA pairs through the query API: two replicas of a cluster (one down for 10 minutes, one
//! restarted for 5, scraping 7 s later and 10 s behind, both with 3 s of scrape jitter) answer as
//! one series without the replica label; `rate` stays within 1% of a single replica's, `resets` counts the
//! real resets; `dedup=false` returns both replicas.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fleetscope_query::api::{ApiOptions, ApiState, router};
use fleetscope_query::{Catalog, Engine};
use fleetscope_store::{Labels, Sample, Series, WriteOptions, objstore, write_block};
use tower::ServiceExt;

const S: i64 = 1000;
const M: i64 = 60 * S;
/// The target's counter resets (ms).
const RESETS: [i64; 2] = [20 * M + 500, 45 * M];

/// Replica 0 is down for 10 minutes, replica 1 restarts for 5 (ms).
const GAP_0: (i64, i64) = (30 * M, 40 * M);
const GAP_1: (i64, i64) = (50 * M, 55 * M);

/// The target's counter at `t`: 10 per second since its last reset.
fn counter(t: i64) -> f64 {
    let since = RESETS
        .iter()
        .filter(|&&r| r <= t)
        .max()
        .copied()
        .unwrap_or(0);
    (t - since) as f64 / 100.0
}

/// A replica's scrapes: every 15 s from `phase`, ±3 s jitter, none in `gap`; each value is the
/// counter `lag` before the sample's timestamp (a replica whose clock runs ahead, or that stamps
/// slow scrapes late), so at a switch the replica taken over can be behind the last value kept.
fn scrapes(phase: i64, lag: i64, gap: (i64, i64), seed: u64) -> Vec<Sample> {
    let mut x = seed;
    (0..300)
        .filter_map(|i| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let t = phase + i * 15 * S + ((x >> 33) % 6001) as i64 - 3000;
            (!(gap.0..gap.1).contains(&t)).then(|| Sample {
                t,
                v: counter(t - lag),
            })
        })
        .collect()
}

async fn app(replica_labels: Vec<String>) -> axum::Router {
    let store = objstore::open("memory://").unwrap();
    let replicas = [
        ("0", scrapes(M, 0, GAP_0, 1)),
        ("1", scrapes(M + 7 * S, 10 * S, GAP_1, 2)),
    ];
    for (replica, samples) in replicas {
        let series = vec![Series {
            labels: Labels::from_pairs([("__name__", "requests_total"), ("job", "api")]),
            samples,
        }];
        let external = Labels::from_pairs([("cluster", "a"), ("replica", replica)]);
        write_block(&store, series, &external, &WriteOptions::default())
            .await
            .unwrap();
    }
    let catalog = Arc::new(Catalog::new(store));
    catalog.refresh().await.unwrap();
    let state = ApiState::new(Engine::default(), catalog, ApiOptions::default())
        .with_replica_labels(replica_labels);
    router(Arc::new(state))
}

async fn call(app: &axum::Router, path: &str, params: &[(&str, &str)]) -> serde_json::Value {
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let req = Request::get(format!("{path}?{form}"))
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, StatusCode::OK, "{json}");
    json
}

/// `(t, value)` of each series of a range query, with its labels.
async fn range(
    app: &axum::Router,
    query: &str,
    extra: &[(&str, &str)],
) -> Vec<(serde_json::Value, Vec<(i64, f64)>)> {
    let mut params = vec![
        ("query", query),
        ("start", "0"),
        ("end", "4800"),
        ("step", "60"),
    ];
    params.extend_from_slice(extra);
    let body = call(app, "/api/v1/query_range", &params).await;
    body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let values = r["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p[0].as_f64().unwrap() as i64 * 1000,
                        p[1].as_str().unwrap().parse().unwrap(),
                    )
                })
                .collect();
            (r["metric"].clone(), values)
        })
        .collect()
}

#[tokio::test]
async fn replicas_answer_as_one_series() {
    let app = app(vec!["replica".into()]).await;
    let merged = range(&app, "rate(requests_total[5m])", &[]).await;
    assert_eq!(merged.len(), 1, "{merged:?}");
    assert_eq!(
        merged[0].0,
        serde_json::json!({"cluster": "a", "job": "api"})
    );
    // Every step from the second scrape on has a value: each replica's gap is filled from the other.
    let steps: Vec<i64> = merged[0].1.iter().map(|p| p.0).collect();
    assert_eq!(steps, (2..=80).map(|i| i * M).collect::<Vec<_>>());

    // Over 5m windows Prometheus's extrapolation depends on where samples fall, so the replicas
    // themselves differ by a few percent: at every step the merge never spikes above the target's
    // true rate (10/s) and never dips below a replica alone (one whose window is whole: around its
    // own gap a replica alone is wrong).
    let raw = range(&app, "rate(requests_total[5m])", &[("dedup", "false")]).await;
    assert_eq!(raw.len(), 2);
    for &(t, m) in &merged[0].1 {
        let singles: Vec<f64> = raw
            .iter()
            .filter(|(labels, _)| {
                let gap = if labels["replica"] == "0" {
                    GAP_0
                } else {
                    GAP_1
                };
                !(t - 5 * M < gap.1 + 15 * S && t > gap.0 - 15 * S)
            })
            .filter_map(|(_, values)| values.iter().find(|p| p.0 == t).map(|p| p.1))
            .collect();
        assert!(!singles.is_empty(), "no replica whole at {t}");
        let lowest = singles.iter().copied().fold(f64::MAX, f64::min);
        assert!(
            m <= 10.0 * 1.01 && m >= 0.99 * lowest,
            "at {t}: {m} vs {singles:?}"
        );
    }
    // Over 30m windows (gaps and resets inside), within 1% of a single replica's rate.
    let merged = range(&app, "rate(requests_total[30m])", &[]).await;
    let raw = range(&app, "rate(requests_total[30m])", &[("dedup", "false")]).await;
    for &(t, m) in merged[0].1.iter().filter(|p| p.0 > 31 * M) {
        let singles: Vec<f64> = raw
            .iter()
            .filter_map(|(_, values)| values.iter().find(|p| p.0 == t).map(|p| p.1))
            .collect();
        assert!(
            singles.iter().any(|v| (m - v).abs() <= 0.01 * v),
            "at {t}: {m} vs {singles:?}"
        );
    }

    // The real resets, not one more at a switch.
    let resets = call(
        &app,
        "/api/v1/query",
        &[("query", "resets(requests_total[80m])"), ("time", "4800")],
    )
    .await;
    assert_eq!(resets["data"]["result"][0]["value"][1], "2", "{resets}");
    let resets = call(
        &app,
        "/api/v1/query",
        &[
            ("query", "resets(requests_total[80m])"),
            ("time", "4800"),
            ("dedup", "false"),
        ],
    )
    .await;
    let per_replica: Vec<&str> = resets["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"][1].as_str().unwrap())
        .collect();
    assert_eq!(per_replica, ["2", "2"], "{resets}");
}

#[tokio::test]
async fn the_replica_label_disappears_from_series_and_labels() {
    let app = app(vec!["replica".into()]).await;
    let labels = call(&app, "/api/v1/labels", &[]).await;
    assert!(
        !labels["data"]
            .as_array()
            .unwrap()
            .contains(&"replica".into()),
        "{labels}"
    );
    let values = call(&app, "/api/v1/label/replica/values", &[]).await;
    assert_eq!(values["data"], serde_json::json!([]), "{values}");
    let series = call(&app, "/api/v1/series", &[("match[]", "requests_total")]).await;
    assert_eq!(series["data"].as_array().unwrap().len(), 1, "{series}");
    let series = call(
        &app,
        "/api/v1/series",
        &[("match[]", "requests_total"), ("dedup", "false")],
    )
    .await;
    assert_eq!(series["data"].as_array().unwrap().len(), 2, "{series}");
}

#[tokio::test]
async fn requests_name_replica_labels_when_the_querier_has_none() {
    let app = app(vec![]).await;
    assert_eq!(range(&app, "requests_total", &[]).await.len(), 2);
    assert_eq!(
        range(&app, "requests_total", &[("replicaLabels[]", "replica")])
            .await
            .len(),
        1
    );
}
