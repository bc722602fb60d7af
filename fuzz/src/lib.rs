//! Fuzz targets for every input fleetscope takes from outside: PromQL text through the engine,
//! remote-write 1.0/2.0 bodies and remote-read requests through the shipper's HTTP routes,
//! OpenMetrics import text, and block files through the reader. Each function must return for
//! any input without panicking; a shipper route must not answer 5xx to a bad request.
//!
//! `fuzz/run.sh TARGET SECONDS` runs one under libFuzzer (`cargo fuzz`, nightly); the test of
//! this crate replays [`seeds`], the corpus kept in `fuzz/corpus/` and the crashers kept in
//! `fuzz/regressions/` on stable, so CI checks every input found so far.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use fleetscope_ingest::metrics::Metrics;
use fleetscope_ingest::openmetrics::{Parser, TimestampUnit};
use fleetscope_ingest::receiver::{ReceiverOptions, router};
use fleetscope_ingest::{Shipper, ShipperConfig};
use fleetscope_query::{Engine, EngineOptions, MemSource, Source};
use fleetscope_store::writer::{WriteOptions, write_block};
use fleetscope_store::{BlockMeta, BlockReader, Labels, MatchOp, Matcher, MemSeriesSet, Series};
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};
use prost::Message;
use tower::ServiceExt;

/// A fuzz target: takes any bytes, returns or panics.
pub type Target = fn(&[u8]);

/// The targets by name, as `cargo fuzz` and the corpus folders call them.
pub const TARGETS: [(&str, Target); 5] = [
    ("promql", promql),
    ("remote_write", remote_write),
    ("remote_read", remote_read),
    ("openmetrics", openmetrics),
    ("block", block),
];

/// One runtime for every input, with the querier's large worker stacks.
fn run<F: Future + Send + 'static>(f: F) -> F::Output
where
    F::Output: Send + 'static,
{
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let rt = RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_stack_size(fleetscope_query::STACK_BYTES)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    });
    match rt.block_on(rt.spawn(f)) {
        Ok(out) => out,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Start of the fixed data every target reads (ms): an hour of 30 s samples.
const T0: i64 = 1_700_000_000_000;

fn sample_series() -> Vec<Series> {
    let mut set = MemSeriesSet::new();
    for (name, job, slope) in [
        ("up", "a", 0.0),
        ("c_total", "a", 3.0),
        ("c_total", "b", 5.0),
        ("g", "b", -1.5),
    ] {
        let labels = Labels::from_pairs([("__name__", name), ("job", job), ("instance", "x:1")]);
        for i in 0..120 {
            let v = if slope == 0.0 {
                1.0
            } else {
                (i % 50) as f64 * slope
            };
            set.append(&labels, T0 + i * 30_000, v);
        }
    }
    set.select(&[], &Labels::empty(), i64::MIN, i64::MAX)
}

/// PromQL text as an instant and a range query over a few series (small sample limit and timeout,
/// so an expensive query ends as an error).
pub fn promql(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    static SOURCE: OnceLock<Arc<dyn Source>> = OnceLock::new();
    let source = Arc::clone(SOURCE.get_or_init(|| {
        let mut set = MemSeriesSet::new();
        for s in sample_series() {
            set.append_series(s);
        }
        Arc::new(MemSource {
            set,
            external: Labels::from_pairs([("cluster", "fuzz")]),
        })
    }));
    let text = text.to_string();
    run(async move {
        let engine = Engine::new(EngineOptions {
            max_samples: 200_000,
            timeout: Some(std::time::Duration::from_secs(1)),
            parallelism: 2,
            max_memory: 256 << 20,
            ..EngineOptions::default()
        });
        let _ = engine.instant(&source, &text, T0 + 1_800_000).await;
        let _ = engine
            .range(&source, &text, T0, T0 + 3_600_000, 60_000)
            .await;
    });
}

/// A shipper on a fresh data folder, its routes, and how many requests it has had.
struct TestShipper {
    routes: Router,
    _dir: tempfile::TempDir,
    requests: usize,
}

impl TestShipper {
    async fn start(series: Vec<Series>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("fleetscope-fuzz")
            .tempdir_in(if std::path::Path::new("/dev/shm").is_dir() {
                "/dev/shm"
            } else {
                "/tmp"
            })
            .expect("a temporary folder");
        let remote: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let shipper = Shipper::start(
            ShipperConfig::new(dir.path()),
            remote,
            Arc::new(Metrics::new()),
        )
        .await
        .expect("start a shipper");
        if !series.is_empty() {
            shipper
                .append(series.into())
                .await
                .expect("append the fixed series");
        }
        Self {
            routes: router(shipper, ReceiverOptions::default()),
            _dir: dir,
            requests: 0,
        }
    }

    /// POSTs `body` to `path`; panics on a 5xx (a bad request is the client's error).
    async fn post(&mut self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) {
        self.requests += 1;
        let mut req = Request::post(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Body::from(body)).expect("a request");
        let resp = self.routes.clone().oneshot(req).await.expect("infallible");
        assert!(
            !resp.status().is_server_error(),
            "{path} answered {}",
            resp.status()
        );
    }
}

/// The first byte chooses remote-write 1.0 or 2.0 and whether to compress; the rest is the body.
pub fn remote_write(data: &[u8]) {
    static SHIPPER: OnceLock<tokio::sync::Mutex<Option<TestShipper>>> = OnceLock::new();
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let body = body.to_vec();
    run(async move {
        let mut guard = SHIPPER.get_or_init(Default::default).lock().await;
        // A fresh shipper now and then, so its head does not grow over a long run.
        if guard.as_ref().is_none_or(|s| s.requests >= 2_000) {
            *guard = Some(TestShipper::start(Vec::new()).await);
        }
        let Some(shipper) = guard.as_mut() else {
            return;
        };
        let v2 = mode & 1 == 1;
        let body = if mode & 2 == 0 {
            snap::raw::Encoder::new()
                .compress_vec(&body)
                .unwrap_or(body)
        } else {
            body
        };
        let (content_type, version) = if v2 {
            (
                "application/x-protobuf;proto=io.prometheus.write.v2.Request",
                "2.0.0",
            )
        } else {
            ("application/x-protobuf", "0.1.0")
        };
        let headers = [
            (header::CONTENT_TYPE.as_str(), content_type),
            (header::CONTENT_ENCODING.as_str(), "snappy"),
            ("x-prometheus-remote-write-version", version),
        ];
        shipper.post("/api/v1/write", &headers, body).await;
    });
}

/// A remote-read request (compressed here) to a shipper holding a few series.
pub fn remote_read(data: &[u8]) {
    static SHIPPER: OnceLock<tokio::sync::Mutex<Option<TestShipper>>> = OnceLock::new();
    let body = snap::raw::Encoder::new()
        .compress_vec(data)
        .unwrap_or_default();
    run(async move {
        let mut guard = SHIPPER.get_or_init(Default::default).lock().await;
        if guard.is_none() {
            *guard = Some(TestShipper::start(sample_series()).await);
        }
        let Some(shipper) = guard.as_mut() else {
            return;
        };
        let headers = [
            (header::CONTENT_TYPE.as_str(), "application/x-protobuf"),
            (header::CONTENT_ENCODING.as_str(), "snappy"),
            ("x-prometheus-remote-read-version", "0.1.0"),
        ];
        shipper.post("/api/v1/read", &headers, body).await;
    });
}

/// OpenMetrics (first byte odd) or Prometheus text (even) as `fleetscope import` reads it.
pub fn openmetrics(data: &[u8]) {
    let Some((&mode, text)) = data.split_first() else {
        return;
    };
    let unit = if mode & 1 == 1 {
        TimestampUnit::Seconds
    } else {
        TimestampUnit::Milliseconds
    };
    let mut parser = Parser::new(unit);
    // In two pieces cut after a newline, as the importer feeds a file.
    let cut = text
        .iter()
        .take(usize::from(mode) * 4)
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    for piece in [&text[..cut], &text[cut..]] {
        if parser.feed(piece, &mut |_, _, _| {}).is_err() {
            return;
        }
    }
}

/// A block's data file, behind the `meta.json` of a real block, read by the block reader.
pub fn block(data: &[u8]) {
    let data = data.to_vec();
    run(async move {
        let (meta, _) = real_block().await;
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let mut meta = meta.clone();
        for f in &mut meta.files {
            f.size_bytes = data.len() as u64;
        }
        let path = fleetscope_store::layout::data_path(meta.ulid);
        if store.put(&path, data.into()).await.is_err() {
            return;
        }
        let reader = BlockReader::new(store, meta.clone());
        let any = [Matcher::new(MatchOp::Regex, "__name__", ".+").expect("a valid regex")];
        let _ = reader.select(&any, meta.min_t, meta.max_t).await;
        let _ = reader.label_index().await;
        let _ = reader.metric_counts().await;
    });
}

/// A block written by this build from [`sample_series`]: its meta and its data file.
async fn real_block() -> &'static (BlockMeta, Vec<u8>) {
    static BLOCK: tokio::sync::OnceCell<(BlockMeta, Vec<u8>)> = tokio::sync::OnceCell::const_new();
    BLOCK
        .get_or_init(|| async {
            let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            let meta = write_block(
                &store,
                sample_series(),
                &Labels::empty(),
                &WriteOptions::default(),
            )
            .await
            .expect("write a block");
            let data = store
                .get(&fleetscope_store::layout::data_path(meta.ulid))
                .await
                .expect("the block's data file")
                .bytes()
                .await
                .expect("its bytes")
                .to_vec();
            (meta, data)
        })
        .await
}

/// Valid inputs for `target` to start fuzzing from (and to replay in the test).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    use fleetscope_proto::v1;
    match target {
        "promql" => [
            "up",
            "sum by (job) (rate(c_total[5m]))",
            "histogram_quantile(0.9, sum by (le) (rate(c_total[5m])))",
            "topk(2, g) / on(job) group_left count(up)",
            "max_over_time(g[10m:1m] offset 5m) @ start()",
            "label_replace(up, \"x\", \"$1\", \"job\", \"(.*)\") or vector(1)",
            "-(((g)))^2 % 3 > bool 1",
        ]
        .map(|q| q.as_bytes().to_vec())
        .to_vec(),
        "remote_write" => {
            let req = v1::WriteRequest {
                timeseries: vec![v1::TimeSeries {
                    labels: vec![
                        v1::Label { name: "__name__".into(), value: "up".into() },
                        v1::Label { name: "job".into(), value: "a".into() },
                    ],
                    samples: vec![v1::Sample { value: 1.0, timestamp: T0 }],
                    ..Default::default()
                }],
                ..Default::default()
            };
            vec![[vec![0u8], req.encode_to_vec()].concat()]
        }
        "remote_read" => {
            use fleetscope_proto::read::{LabelMatcher, Query, ReadRequest};
            let req = ReadRequest {
                queries: vec![Query {
                    start_timestamp_ms: T0,
                    end_timestamp_ms: T0 + 3_600_000,
                    matchers: vec![LabelMatcher { r#type: 0, name: "__name__".into(), value: "c_total".into() }],
                    hints: None,
                }],
                accepted_response_types: vec![0],
            };
            vec![req.encode_to_vec()]
        }
        "openmetrics" => vec![
            b"\x01# TYPE c counter\nc_total{job=\"a\"} 1 1700000000.5\nc_total{job=\"a\"} 2 1700000030\n# EOF\n".to_vec(),
            b"\x00up{job=\"a\",instance=\"x:1\"} 1 1700000000000\ng 3.5e2 1700000030000\n".to_vec(),
        ],
        "block" => vec![run(async { real_block().await.1.clone() })],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seed, every corpus input and every kept crasher, through its target.
    #[test]
    fn corpus_and_regressions_replay() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for (name, target) in TARGETS {
            let mut inputs = seeds(name);
            assert!(!inputs.is_empty(), "{name} has no seeds");
            for folder in ["corpus", "regressions"] {
                let Ok(dir) = std::fs::read_dir(root.join(folder).join(name)) else {
                    continue;
                };
                for entry in dir.flatten() {
                    inputs.push(std::fs::read(entry.path()).expect("a corpus file"));
                }
            }
            for input in &inputs {
                target(input);
            }
        }
    }
}
