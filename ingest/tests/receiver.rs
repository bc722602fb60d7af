//! The receiver over HTTP (no sockets): every bad-input case gets the right status and a message
//! naming the problem, the server keeps serving, and good writes land in uploaded blocks.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use fleetscope_ingest::metrics::Metrics;
use fleetscope_ingest::receiver::{ReceiverOptions, router};
use fleetscope_ingest::{Shipper, ShipperConfig};
use fleetscope_proto::{v1, v2};
use fleetscope_store::{BlockMeta, BlockReader, Labels, objstore};
use object_store::ObjectStore;
use prost::Message;
use tower::ServiceExt;

struct Fixture {
    app: Router,
    shipper: Shipper,
    remote: Arc<dyn ObjectStore>,
    _dir: tempfile::TempDir,
}

async fn fixture(options: ReceiverOptions) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let remote = objstore::open("memory://").unwrap();
    let config = ShipperConfig {
        data_dir: dir.path().into(),
        block_duration: Duration::from_secs(7200),
        external_labels: Labels::from_pairs([("cluster", "c1")]),
        max_backoff: Duration::from_millis(100),
    };
    let shipper = Shipper::start(config, Arc::clone(&remote), Arc::new(Metrics::new()))
        .await
        .unwrap();
    Fixture {
        app: router(shipper.clone(), options),
        shipper,
        remote,
        _dir: dir,
    }
}

/// Label pairs and `(t, v)` samples of one series.
type TestSeries<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);

fn v1_body(series: &[TestSeries<'_>]) -> Vec<u8> {
    let req = v1::WriteRequest {
        timeseries: series
            .iter()
            .map(|(labels, samples)| v1::TimeSeries {
                labels: labels
                    .iter()
                    .map(|(n, v)| v1::Label {
                        name: (*n).into(),
                        value: (*v).into(),
                    })
                    .collect(),
                samples: samples
                    .iter()
                    .map(|&(t, v)| v1::Sample {
                        value: v,
                        timestamp: t,
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        metadata: vec![],
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

fn write(body: Vec<u8>, content_type: &str) -> Request<Body> {
    Request::post("/api/v1/write")
        .header("content-type", content_type)
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .body(Body::from(body))
        .unwrap()
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String, axum::http::HeaderMap) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned(), headers)
}

const UP: &[(&str, &str)] = &[("__name__", "up"), ("job", "api")];

#[tokio::test]
async fn bad_input_gets_the_right_status_and_message() {
    let f = fixture(ReceiverOptions {
        max_body_bytes: 4096,
        max_decoded_bytes: 8192,
        auth_token: None,
    })
    .await;
    let pb = "application/x-protobuf";
    let big_labels = vec![("__name__", "up"); 1];
    let long = "x".repeat(10_000);
    let long_body = v1_body(&[(&[("__name__", "up"), ("blob", long.as_str())], &[(1, 1.0)])]);
    let mut huge = v1_body(&[(&big_labels, &[(1, 1.0)])]);
    huge.resize(5000, 0);
    let bad_utf8 = {
        // WriteRequest{timeseries:[{labels:[{name:"__name__", value:<0xff>}]}]}
        let raw = b"\x0a\x11\x0a\x0f\x0a\x08__name__\x12\x03\xff\xfe\xfd".to_vec();
        snap::raw::Encoder::new().compress_vec(&raw).unwrap()
    };
    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        (
            "unsorted",
            write(
                v1_body(&[(&[("job", "a"), ("__name__", "up")], &[(1, 1.0)])]),
                pb,
            ),
            StatusCode::BAD_REQUEST,
            "not sorted",
        ),
        (
            "duplicate",
            write(
                v1_body(&[(&[("__name__", "up"), ("a", "1"), ("a", "2")], &[(1, 1.0)])]),
                pb,
            ),
            StatusCode::BAD_REQUEST,
            "duplicate label name",
        ),
        (
            "empty name",
            write(
                v1_body(&[(&[("", "x"), ("__name__", "up")], &[(1, 1.0)])]),
                pb,
            ),
            StatusCode::BAD_REQUEST,
            "empty name",
        ),
        (
            "no name",
            write(v1_body(&[(&[("job", "a")], &[(1, 1.0)])]), pb),
            StatusCode::BAD_REQUEST,
            "no __name__ label",
        ),
        (
            "bad utf-8",
            write(bad_utf8, pb),
            StatusCode::BAD_REQUEST,
            "UTF-8",
        ),
        (
            "not snappy",
            write(b"hello world, not snappy".to_vec(), pb),
            StatusCode::BAD_REQUEST,
            "snappy",
        ),
        (
            "not protobuf",
            write(
                snap::raw::Encoder::new()
                    .compress_vec(b"\xff\xff\xff")
                    .unwrap(),
                pb,
            ),
            StatusCode::BAD_REQUEST,
            "decode protobuf",
        ),
        (
            "compressed too large",
            write(huge, pb),
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
        ),
        (
            "decompressed too large",
            write(long_body, pb),
            StatusCode::PAYLOAD_TOO_LARGE,
            "exceeds the limit",
        ),
        (
            "content type",
            write(v1_body(&[(UP, &[(1, 1.0)])]), "application/json"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported content type",
        ),
        (
            "encoding",
            Request::post("/api/v1/write")
                .header("content-type", pb)
                .header("content-encoding", "gzip")
                .body(Body::from(vec![1u8]))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported content encoding",
        ),
    ];
    for (name, req, status, want) in cases {
        let (got, body, _) = send(&f.app, req).await;
        assert_eq!(got, status, "{name}: {body}");
        assert!(body.contains(want), "{name}: {body:?} lacks {want:?}");
    }
    // Still serving.
    let (status, body, headers) =
        send(&f.app, write(v1_body(&[(UP, &[(1, 1.0), (2, 2.0)])]), pb)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(headers["x-prometheus-remote-write-samples-written"], "2");
}

#[tokio::test]
async fn writes_are_uploaded_exactly_once_and_old_samples_refused() {
    let f = fixture(ReceiverOptions::default()).await;
    let pb = "application/x-protobuf";
    let h = 3_600_000;
    // Same request twice (a retry), then samples 4h later: the first window is cut and shipped.
    for _ in 0..2 {
        let (status, body, _) = send(
            &f.app,
            write(v1_body(&[(UP, &[(1000, 1.0), (2000, 2.0)])]), pb),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    let (status, _, _) = send(&f.app, write(v1_body(&[(UP, &[(4 * h, 3.0)])]), pb)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(f.shipper.cut_due().await.unwrap(), 1);
    // Too old now: refused with the series named; the valid sample of the request is kept.
    let (status, body, headers) = send(
        &f.app,
        write(v1_body(&[(UP, &[(3000, 9.0), (4 * h + 1, 4.0)])]), pb),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("too old") && body.contains("up{job=\"api\"}"),
        "{body}"
    );
    assert_eq!(headers["x-prometheus-remote-write-samples-written"], "1");
    let (status, _, _) = send(
        &f.app,
        Request::post("/api/v1/flush").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let metas = BlockMeta::list(&f.remote).await.unwrap();
    assert_eq!(metas.len(), 2);
    let mut samples = Vec::new();
    for m in metas {
        assert_eq!(m.external_labels["cluster"], "c1");
        let sel = BlockReader::new(Arc::clone(&f.remote), m)
            .select(&[], i64::MIN, i64::MAX)
            .await
            .unwrap();
        samples.extend(
            sel.series
                .into_iter()
                .flat_map(|s| s.samples.into_iter().map(|x| (x.t, x.v))),
        );
    }
    samples.sort_by_key(|s| s.0);
    assert_eq!(
        samples,
        vec![(1000, 1.0), (2000, 2.0), (4 * h, 3.0), (4 * h + 1, 4.0)]
    );
    let metrics = f.shipper.metrics().encode();
    assert!(
        metrics.contains("fleetscope_ingest_blocks_uploaded_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fleetscope_ingest_remote_write_requests_total{code=\"400\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn remote_write_2_answers_written_counts() {
    let f = fixture(ReceiverOptions::default()).await;
    let req = v2::Request {
        symbols: vec!["".into(), "__name__".into(), "up".into()],
        timeseries: vec![v2::TimeSeries {
            labels_refs: vec![1, 2],
            samples: vec![v2::Sample {
                value: 1.0,
                timestamp: 5,
            }],
            ..Default::default()
        }],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap();
    let (status, _, headers) = send(
        &f.app,
        write(
            body,
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(headers["x-prometheus-remote-write-samples-written"], "1");
    assert_eq!(headers["x-prometheus-remote-write-histograms-written"], "0");
    // Histograms are refused for now, and counted as not written.
    let with_hist = v2::Request {
        symbols: vec!["".into(), "__name__".into(), "h".into()],
        timeseries: vec![v2::TimeSeries {
            labels_refs: vec![1, 2],
            histograms: vec![v2::Histogram::default()],
            ..Default::default()
        }],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&with_hist.encode_to_vec())
        .unwrap();
    let (status, msg, headers) = send(
        &f.app,
        write(
            body,
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(msg.contains("1 histogram sample(s)"), "{msg}");
    assert_eq!(headers["x-prometheus-remote-write-histograms-written"], "0");
}

#[tokio::test]
async fn bearer_token_is_required_when_configured() {
    let f = fixture(ReceiverOptions {
        auth_token: Some("s3cret".into()),
        ..Default::default()
    })
    .await;
    let body = v1_body(&[(UP, &[(1, 1.0)])]);
    let (status, _, _) = send(&f.app, write(body.clone(), "application/x-protobuf")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mut req = write(body, "application/x-protobuf");
    req.headers_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    let (status, _, _) = send(&f.app, req).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = send(
        &f.app,
        Request::post("/api/v1/flush").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
