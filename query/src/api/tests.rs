//! Socket-free tests of every endpoint and error path.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fleetscope_store::{Labels, Sample, Series, WriteOptions, objstore, write_block};
use tower::ServiceExt;

use super::*;

async fn app() -> Router {
    let store = objstore::open("memory://").unwrap();
    for (cluster, base) in [("eu-1", 1.0), ("us-1", 10.0)] {
        let series = ["api", "db"]
            .iter()
            .map(|job| Series {
                labels: Labels::from_pairs([("__name__", "up"), ("job", job)]),
                samples: (0..10)
                    .map(|i| Sample {
                        t: i * 60_000,
                        v: base + i as f64,
                    })
                    .collect(),
            })
            .collect();
        write_block(
            &store,
            series,
            &Labels::from_pairs([("cluster", cluster)]),
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    }
    let catalog = Arc::new(Catalog::new(store));
    catalog.refresh().await.unwrap();
    router(Arc::new(ApiState::new(
        Engine::default(),
        catalog,
        ApiOptions::default(),
    )))
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, serde_json::Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into()));
    (status, json)
}

/// A GET request; the query string is percent-encoded here so tests can write it plainly.
fn get(uri: &str) -> Request<Body> {
    let uri = match uri.split_once('?') {
        Some((path, query)) => {
            let pairs: Vec<(&str, &str)> = query
                .split('&')
                .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
                .collect();
            let encoded: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            format!("{path}?{encoded}")
        }
        None => uri.to_string(),
    };
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post(uri: &str, form: &str) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .unwrap()
}

#[tokio::test]
async fn instant_query_get_and_post() {
    let app = app().await;
    for req in [
        get("/api/v1/query?query=sum by (cluster) (up)&time=540"),
        post("/api/v1/query", "query=sum+by+(cluster)+(up)&time=540"),
    ] {
        let (status, body) = call(&app, req).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["resultType"], "vector");
        let result = body["data"]["result"].as_array().unwrap();
        assert_eq!(result.len(), 2);
        assert_eq!(result[0]["metric"]["cluster"], "eu-1");
        assert_eq!(result[0]["value"][1], "20", "2 jobs x (1 + 9)");
        assert_eq!(result[1]["value"][1], "38");
    }
}

#[tokio::test]
async fn range_query_returns_matrix() {
    let app = app().await;
    let (status, body) = call(
        &app,
        post(
            "/api/v1/query_range",
            "query=up{cluster=\"us-1\",job=\"db\"}&start=0&end=120&step=60",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["resultType"], "matrix");
    assert_eq!(
        body["data"]["result"][0]["values"],
        serde_json::json!([[0, "10"], [60, "11"], [120, "12"]])
    );
}

#[tokio::test]
async fn errors_have_prometheus_types_and_statuses() {
    let app = app().await;
    let cases = [
        (
            get("/api/v1/query?query=sum(up"),
            StatusCode::BAD_REQUEST,
            "bad_data",
        ),
        (get("/api/v1/query"), StatusCode::BAD_REQUEST, "bad_data"),
        (
            get("/api/v1/query?query=up&time=yesterday"),
            StatusCode::BAD_REQUEST,
            "bad_data",
        ),
        (
            get("/api/v1/query_range?query=up&start=10&end=0&step=1"),
            StatusCode::BAD_REQUEST,
            "bad_data",
        ),
        (
            get("/api/v1/query_range?query=up&start=0&end=10&step=0"),
            StatusCode::BAD_REQUEST,
            "bad_data",
        ),
        (
            get("/api/v1/query_range?query=up&start=0&end=100000&step=1"),
            StatusCode::BAD_REQUEST,
            "bad_data",
        ),
        (
            get("/api/v1/query?query=up + on(job) up&time=60"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "execution",
        ),
        (get("/api/v1/series"), StatusCode::BAD_REQUEST, "bad_data"),
        (
            get("/api/v1/series?match[]=rate(up[5m])"),
            StatusCode::BAD_REQUEST,
            "bad_data",
        ),
    ];
    for (req, status, error_type) in cases {
        let uri = req.uri().to_string();
        let (got, body) = call(&app, req).await;
        assert_eq!(got, status, "{uri}: {body}");
        assert_eq!(body["status"], "error", "{uri}");
        assert_eq!(body["errorType"], error_type, "{uri}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{uri}"
        );
    }
}

#[tokio::test]
async fn metadata_endpoints() {
    let app = app().await;
    let (_, body) = call(&app, get("/api/v1/labels")).await;
    assert_eq!(
        body["data"],
        serde_json::json!(["__name__", "cluster", "job"])
    );
    let (_, body) = call(
        &app,
        post("/api/v1/labels", "match[]=up{job=\"db\"}&start=0&end=600"),
    )
    .await;
    assert_eq!(
        body["data"],
        serde_json::json!(["__name__", "cluster", "job"])
    );
    let (_, body) = call(&app, get("/api/v1/label/__name__/values")).await;
    assert_eq!(body["data"], serde_json::json!(["up"]));
    let (_, body) = call(
        &app,
        get("/api/v1/label/cluster/values?match[]=up{job=\"api\"}"),
    )
    .await;
    assert_eq!(body["data"], serde_json::json!(["eu-1", "us-1"]));
    let (_, body) = call(&app, get("/api/v1/label/cluster/values?limit=1")).await;
    assert_eq!(body["data"], serde_json::json!(["eu-1"]));
    assert_eq!(body["warnings"][0], "results truncated due to limit");
    let (_, body) = call(
        &app,
        get("/api/v1/series?match[]={cluster=\"eu-1\"}&start=0&end=600"),
    )
    .await;
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let (_, body) = call(
        &app,
        get("/api/v1/series?match[]=up&start=100000&end=200000"),
    )
    .await;
    assert_eq!(
        body["data"],
        serde_json::json!([]),
        "no samples in range, no series"
    );
    let (status, body) = call(&app, get("/api/v1/status/buildinfo")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["features"], serde_json::json!({}));
    let (status, body) = call(&app, get("/api/v1/features")).await;
    assert_eq!(status, StatusCode::OK);
    let f = &body["data"];
    assert_eq!(f["promql_functions"]["rate"], true);
    assert_eq!(f["promql_functions"]["histogram_quantile"], true);
    assert_eq!(f["promql_operators"]["topk"], true);
    assert_eq!(f["promql"]["subqueries"], true);
    // Off unless --enable-feature names them.
    assert_eq!(f["promql_operators"]["limitk"], false);
    assert_eq!(f["promql_functions"]["info"], false);
    assert_eq!(f["promql"]["fill"], false);
    assert_eq!(f["promql"]["duration_expr"], false);
    for uri in [
        "/api/v1/metadata",
        "/api/v1/rules",
        "/api/v1/query_exemplars?query=test",
        "/-/healthy",
        "/-/ready",
    ] {
        let (status, _) = call(&app, get(uri)).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
    let (_, body) = call(&app, get("/api/v1/rules")).await;
    assert_eq!(body["data"]["groups"], serde_json::json!([]));
    call(&app, get("/api/v1/query?query=up&time=60")).await;
    let (status, body) = call(&app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let text = body.as_str().unwrap();
    assert!(
        text.contains("fleetscope_query_requests_total{handler=\"query\",code=\"200\"} 1"),
        "{text}"
    );
    assert!(text.contains("fleetscope_query_blocks 2"), "{text}");
}

#[test]
fn times_and_durations() {
    assert_eq!(parse_time("1435781451.781"), Some(1_435_781_451_781));
    assert_eq!(
        parse_time("2015-07-01T20:10:51.781Z"),
        Some(1_435_781_451_781)
    );
    assert_eq!(parse_time("-1.5"), Some(-1500));
    assert_eq!(parse_time("x"), None);
    assert_eq!(parse_duration("15"), Some(15_000));
    assert_eq!(parse_duration("1h30m"), Some(5_400_000));
    assert_eq!(parse_duration("0.5"), Some(500));
    assert_eq!(parse_duration("5x"), None);
    assert_eq!(unescape_label_name("U__a_2e_b"), "a.b");
    assert_eq!(unescape_label_name("job"), "job");
}

#[tokio::test]
async fn sql_answers_json_rows_arrow_streams_and_400s() {
    let app = app().await;
    let json_body = |q: &str| {
        Request::post("/api/v1/sql")
            .header("content-type", "application/json")
            .body(Body::from(serde_json::json!({ "query": q }).to_string()))
            .unwrap()
    };
    let (status, body) = call(
        &app,
        json_body("SELECT cluster, count(*) AS n, max(value) AS top FROM up GROUP BY cluster ORDER BY cluster"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["columns"][0]["name"], "cluster");
    let rows = body["data"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{body}");
    assert_eq!(rows[0]["cluster"], "eu-1");
    assert_eq!(rows[0]["n"], 20);
    assert_eq!(rows[1]["top"], 19.0);

    // A form body, a label filter and a time bound (pushed down), a regex matching anywhere.
    let (status, body) = call(
        &app,
        post(
            "/api/v1/sql",
            "query=SELECT count(*) AS n FROM up WHERE job = 'api' AND cluster ~ 'us' AND ts >= to_timestamp_millis(60000)",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["rows"][0]["n"], 9, "{body}");

    // Arrow IPC stream on request.
    let req = Request::post("/api/v1/sql")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/vnd.apache.arrow.stream")
        .body(Body::from("query=SELECT value FROM up WHERE job = 'db'"))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(rows, 20);

    // Bad SQL: 400 with the parser's message and position; an unknown table too.
    let (status, body) = call(&app, post("/api/v1/sql", "query=SELEC value FROM up")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errorType"], "bad_data");
    assert!(body["error"].as_str().unwrap().contains("SELEC"), "{body}");
    let (status, body) = call(&app, post("/api/v1/sql", "query=SELECT * FROM nope")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn explain_shows_the_plan_and_analyze_its_figures() {
    let app = app().await;
    let (status, body) = call(
        &app,
        get("/api/v1/query?query=sum by (cluster) (rate(up[5m]))&time=600&explain=true"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let plan = body["data"]["plan"].as_str().unwrap();
    for node in [
        "PromEvalExec",
        "PromAggregateExec: mode=Final",
        "PromSeriesExec",
        "PromScanExec",
    ] {
        assert!(plan.contains(node), "{node} missing:\n{plan}");
    }
    let (status, body) = call(
        &app,
        get("/api/v1/query?query=sum by (cluster) (rate(up[5m]))&time=600&explain=true&analyze=true"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["result"].as_array().unwrap().len(), 2);
    let plan = body["data"]["plan"].as_str().unwrap();
    assert!(
        plan.contains("output_rows=2") && plan.contains("samples="),
        "{plan}"
    );
}

#[tokio::test]
async fn features_follow_enable_feature() {
    let catalog = Arc::new(Catalog::new(objstore::open("memory://").unwrap()));
    let engine = Engine::new(crate::EngineOptions {
        experimental_functions: true,
        fill_modifiers: true,
        ..crate::EngineOptions::default()
    });
    let app = router(Arc::new(ApiState::new(
        engine,
        catalog,
        ApiOptions::default(),
    )));
    let (status, body) = call(&app, get("/api/v1/features")).await;
    assert_eq!(status, StatusCode::OK);
    let f = &body["data"];
    assert_eq!(f["promql_operators"]["limitk"], true);
    assert_eq!(f["promql_operators"]["limit_ratio"], true);
    assert_eq!(f["promql_functions"]["info"], true);
    assert_eq!(f["promql"]["fill_left"], true);
    let (status, body) = call(
        &app,
        get("/api/v1/query?query=limitk(1, up) or up + fill(0) up&time=60"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn ready_waits_for_the_readiness_flag() {
    let catalog = Arc::new(Catalog::new(objstore::open("memory://").unwrap()));
    let flag = Arc::new(AtomicBool::new(false));
    let app = router(Arc::new(
        ApiState::new(Engine::default(), catalog, ApiOptions::default())
            .with_readiness(Arc::clone(&flag)),
    ));
    let (status, body) = call(&app, get("/-/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.as_str().unwrap().contains("loading block headers"),
        "{body}"
    );
    // Queries are served meanwhile.
    let (status, _) = call(&app, get("/api/v1/query?query=1&time=60")).await;
    assert_eq!(status, StatusCode::OK);
    flag.store(true, Ordering::Release);
    let (status, _) = call(&app, get("/-/ready")).await;
    assert_eq!(status, StatusCode::OK);
}
