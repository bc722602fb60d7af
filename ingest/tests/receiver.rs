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
use fleetscope_proto::read::{
    LabelMatcher, MatchType, Query, ReadHints, ReadRequest, ReadResponse, ResponseType,
};
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
    fixture_with(options, Duration::from_secs(600)).await
}

async fn fixture_with(options: ReceiverOptions, local_retention: Duration) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let remote = objstore::open("memory://").unwrap();
    let config = ShipperConfig {
        external_labels: Labels::from_pairs([("cluster", "c1")]),
        max_backoff: Duration::from_millis(100),
        local_retention,
        ..ShipperConfig::new(dir.path())
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
        ..Default::default()
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
    let up = || query(0, 10, &[(MatchType::Eq, "__name__", "up")]);
    let (status, _, _) = send(&f.app, read_request(vec![up()], vec![])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mut req = read_request(vec![up()], vec![]);
    req.headers_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    assert_eq!(read(&f.app, req).await[0].len(), 1);
}

fn read_request(queries: Vec<Query>, accepted: Vec<ResponseType>) -> Request<Body> {
    let req = ReadRequest {
        queries,
        accepted_response_types: accepted.into_iter().map(|t| t as i32).collect(),
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap();
    Request::post("/api/v1/read")
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .body(Body::from(body))
        .unwrap()
}

fn query(min_t: i64, max_t: i64, matchers: &[(MatchType, &str, &str)]) -> Query {
    Query {
        start_timestamp_ms: min_t,
        end_timestamp_ms: max_t,
        matchers: matchers
            .iter()
            .map(|&(t, name, value)| LabelMatcher {
                r#type: t as i32,
                name: name.into(),
                value: value.into(),
            })
            .collect(),
        hints: None,
    }
}

/// Each result as `(labels, samples)`.
async fn read(app: &Router, req: Request<Body>) -> Vec<Vec<(String, Vec<(i64, f64)>)>> {
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-encoding"], "snappy");
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
    ReadResponse::decode(raw.as_slice())
        .unwrap()
        .results
        .into_iter()
        .map(|r| {
            r.timeseries
                .into_iter()
                .map(|ts| {
                    let labels: Vec<String> = ts
                        .labels
                        .iter()
                        .map(|l| format!("{}={}", l.name, l.value))
                        .collect();
                    let samples = ts.samples.iter().map(|s| (s.timestamp, s.value)).collect();
                    (labels.join(","), samples)
                })
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn remote_read_answers_from_head_staged_and_shipped_blocks() {
    let f = fixture_with(ReceiverOptions::default(), Duration::ZERO).await;
    let pb = "application/x-protobuf";
    let h = 3_600_000;
    let body = v1_body(&[
        (UP, &[(1000, 1.0), (2000, 2.0)]),
        (&[("__name__", "up"), ("job", "db")], &[(1000, 0.0)]),
        (&[("__name__", "other")], &[(1000, 5.0)]),
    ]);
    assert_eq!(
        send(&f.app, write(body, pb)).await.0,
        StatusCode::NO_CONTENT
    );
    let up_api = "__name__=up,cluster=c1,job=api";
    let want_head = vec![
        vec![(up_api.to_string(), vec![(1000, 1.0), (2000, 2.0)])],
        vec![(up_api.to_string(), vec![(2000, 2.0)])],
        vec![("__name__=up,cluster=c1,job=db".to_string(), vec![])],
    ];
    let queries = || {
        let mut series_only = query(0, 10_000, &[(MatchType::Eq, "job", "db")]);
        series_only.hints = Some(ReadHints {
            func: "series".into(),
            ..Default::default()
        });
        vec![
            // External labels can be matched, and are returned.
            query(
                0,
                10_000,
                &[
                    (MatchType::Eq, "__name__", "up"),
                    (MatchType::Re, "cluster", "c.*"),
                    (MatchType::Neq, "job", "db"),
                ],
            ),
            query(1500, 10_000, &[(MatchType::Re, "job", "a.+")]),
            series_only,
        ]
    };
    // Prometheus lists its preferred type first; SAMPLES is served.
    let accepted = vec![ResponseType::StreamedXorChunks, ResponseType::Samples];
    assert_eq!(
        read(&f.app, read_request(queries(), accepted.clone())).await,
        want_head
    );

    // Cut into a block (the head window is gone): the same answers from the local block.
    let (status, _, _) = send(&f.app, write(v1_body(&[(UP, &[(4 * h, 3.0)])]), pb)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(f.shipper.cut_due().await.unwrap(), 1);
    assert_eq!(BlockMeta::list(&f.remote).await.unwrap().len(), 1);
    assert_eq!(
        read(&f.app, read_request(queries(), accepted.clone())).await,
        want_head
    );
    // Past the local retention the shipper forgets the block (queriers read it from the bucket).
    f.shipper.prune_shipped();
    assert_eq!(
        read(&f.app, read_request(queries(), accepted)).await,
        vec![vec![], vec![], vec![]]
    );
    let all = read(
        &f.app,
        read_request(
            vec![query(0, i64::MAX, &[(MatchType::Re, "__name__", ".+")])],
            vec![],
        ),
    )
    .await;
    assert_eq!(all, vec![vec![(up_api.to_string(), vec![(4 * h, 3.0)])]]);
}

#[tokio::test]
async fn remote_read_refuses_bad_requests_with_400() {
    let f = fixture(ReceiverOptions {
        max_read_samples: 1,
        ..Default::default()
    })
    .await;
    let body = v1_body(&[(UP, &[(1000, 1.0), (2000, 2.0)])]);
    let (status, _, _) = send(&f.app, write(body, "application/x-protobuf")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let any = || query(0, 10_000, &[(MatchType::Eq, "__name__", "up")]);
    let garbage = Request::post("/api/v1/read")
        .body(Body::from(
            snap::raw::Encoder::new().compress_vec(b"\xff\xff").unwrap(),
        ))
        .unwrap();
    let cases = vec![
        (
            read_request(vec![query(0, 1, &[(MatchType::Re, "job", "(")])], vec![]),
            "query 0",
        ),
        (
            read_request(vec![any()], vec![ResponseType::StreamedXorChunks]),
            "does not support any of the requested response types",
        ),
        (
            read_request(vec![any()], vec![]),
            "exceeded sample limit (1)",
        ),
        (garbage, "decode ReadRequest"),
        (
            Request::post("/api/v1/read")
                .body(Body::from("not snappy"))
                .unwrap(),
            "snappy",
        ),
    ];
    for (req, want) in cases {
        let (status, body, _) = send(&f.app, req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{want}: {body}");
        assert!(body.contains(want), "{want}: {body}");
    }
}

#[tokio::test]
async fn samples_far_in_the_future_are_refused_and_later_samples_still_accepted() {
    let f = fixture(ReceiverOptions::default()).await;
    let pb = "application/x-protobuf";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // 2^63-1 ms and one hour ahead are refused by name; the sample at `now` is written.
    let (status, body, headers) = send(
        &f.app,
        write(
            v1_body(&[(UP, &[(now, 1.0), (i64::MAX, 2.0), (now + 3_600_000, 3.0)])]),
            pb,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains("2 sample(s) too far in the future")
            && body.contains(&format!("at t={} ms", i64::MAX))
            && body.contains("the other 1 sample(s) were written"),
        "{body}"
    );
    assert_eq!(headers["x-prometheus-remote-write-samples-written"], "1");
    // Nothing was cut by the refused samples: the next sample at the current time is accepted.
    assert_eq!(f.shipper.cut_due().await.unwrap(), 0);
    let (status, body, _) = send(&f.app, write(v1_body(&[(UP, &[(now + 1000, 4.0)])]), pb)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _, _) = send(
        &f.app,
        Request::post("/api/v1/flush").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut ts = Vec::new();
    for m in BlockMeta::list(&f.remote).await.unwrap() {
        let sel = BlockReader::new(Arc::clone(&f.remote), m)
            .select(&[], i64::MIN, i64::MAX)
            .await
            .unwrap();
        ts.extend(
            sel.series
                .iter()
                .flat_map(|s| s.samples.iter().map(|x| x.t)),
        );
    }
    ts.sort_unstable();
    assert_eq!(ts, [now, now + 1000]);
}

#[tokio::test]
async fn a_series_past_a_label_limit_is_refused_and_the_rest_written() {
    let f = fixture(ReceiverOptions::default()).await;
    let long = "v".repeat(5000);
    let big: &[(&str, &str)] = &[("__name__", "up"), ("job", &long)];
    let (status, body, headers) = send(
        &f.app,
        write(
            v1_body(&[(big, &[(1, 1.0), (2, 2.0)]), (UP, &[(1, 3.0)])]),
            "application/x-protobuf",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains("1 series (2 sample(s)) refused")
            && body.contains("value of label job is 5000 bytes")
            && body.contains("--ingest.max-label-value-length")
            && body.contains("the other 1 sample(s) were written"),
        "{body}"
    );
    assert_eq!(headers["x-prometheus-remote-write-samples-written"], "1");
}

#[tokio::test]
async fn a_write_beyond_the_in_flight_limit_gets_503_and_nothing_accepted_is_lost() {
    let f = fixture(ReceiverOptions {
        max_inflight_writes: 1,
        ..Default::default()
    })
    .await;
    let pb = "application/x-protobuf";
    // A write whose body is still arriving holds the only slot.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let mut slow = write(Vec::new(), pb);
    *slow.body_mut() = Body::from_stream(body);
    let app = f.app.clone();
    let held = tokio::spawn(async move { send(&app, slow).await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let other = &[("__name__", "up"), ("job", "other")];
    let (status, message, headers) =
        send(&f.app, write(v1_body(&[(other, &[(1000, 5.0)])]), pb)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{message}");
    assert!(message.contains("1 writes in flight"), "{message}");
    assert_eq!(headers["retry-after"], "1");

    // The held write completes and lands; the slot is free again and the retry is taken.
    let first = v1_body(&[(UP, &[(1000, 1.0)])]);
    tx.send(Ok(first.into())).await.unwrap();
    drop(tx);
    let (status, message, _) = held.await.unwrap();
    assert_eq!(status, StatusCode::NO_CONTENT, "{message}");
    let (status, message, _) = send(&f.app, write(v1_body(&[(other, &[(1000, 5.0)])]), pb)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{message}");

    let (status, _, _) = send(
        &f.app,
        Request::post("/api/v1/flush").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut series = 0;
    for m in BlockMeta::list(&f.remote).await.unwrap() {
        let sel = BlockReader::new(Arc::clone(&f.remote), m)
            .select(&[], i64::MIN, i64::MAX)
            .await
            .unwrap();
        series += sel.series.len();
    }
    assert_eq!(series, 2);
    let metrics = f.shipper.metrics().encode();
    assert!(
        metrics.contains("fleetscope_ingest_remote_write_requests_total{code=\"503\"} 1"),
        "{metrics}"
    );
}
