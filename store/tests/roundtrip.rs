//! Block write -> read identity on `memory://` and on a real S3-compatible server (moto, started
//! here on 127.0.0.1), checked against [`MemSeriesSet`], the in-memory reference.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetscope_store::{
    BlockMeta, BlockReader, Labels, MatchOp, Matcher, MemSeriesSet, STALE_NAN_BITS, Series,
    WriteOptions, objstore, write_block,
};
use object_store::ObjectStore;
use proptest::prelude::*;

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1_000_000i64..1_000_000, 0i32..4).prop_map(|(i, e)| i as f64 / 10f64.powi(e)),
        any::<u64>().prop_map(f64::from_bits),
        Just(f64::from_bits(STALE_NAN_BITS)),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
    ]
}

fn series() -> impl Strategy<Value = Series> {
    let labels = (
        prop_oneof![
            Just(""),
            Just("up"),
            Just("node_cpu_seconds_total"),
            Just("a:b")
        ],
        proptest::collection::vec(("[a-z_]{1,6}", "\\PC{0,8}"), 0..4),
    )
        .prop_map(|(name, pairs)| {
            Labels::from_pairs(
                std::iter::once(("__name__".to_string(), name.to_string())).chain(pairs),
            )
        });
    // Out-of-order and duplicate timestamps on purpose.
    let samples = proptest::collection::vec((-50_000i64..50_000, value()), 1..60).prop_map(|v| {
        v.into_iter()
            .map(|(t, v)| fleetscope_store::Sample { t, v })
            .collect()
    });
    (labels, samples).prop_map(|(labels, samples)| Series { labels, samples })
}

fn reference(series: &[Series]) -> MemSeriesSet {
    let mut mem = MemSeriesSet::new();
    for s in series {
        mem.append_series(s.clone());
    }
    mem
}

/// Writes `input`, then checks full and filtered reads against the in-memory reference.
async fn check_roundtrip(
    store: &Arc<dyn ObjectStore>,
    input: Vec<Series>,
    query_name: &str,
    min_t: i64,
    max_t: i64,
) {
    // `a` is also a label some generated series carry: theirs wins, the others show "ext".
    let external = Labels::from_pairs([("cluster", "c1"), ("a", "ext")]);
    let mem = reference(&input);
    // Small pages and row groups so pruning paths are exercised.
    let opts = WriteOptions {
        row_group_rows: 4,
        page_rows: 2,
        ..Default::default()
    };
    let meta = match write_block(store, input, &external, &opts).await {
        Ok(meta) => meta,
        Err(fleetscope_store::Error::EmptyBlock) => return,
        Err(e) => panic!("write: {e}"),
    };
    let listed = BlockMeta::list(store).await.unwrap();
    assert!(listed.iter().any(|m| m == &meta), "written block is listed");
    let reader = BlockReader::new(Arc::clone(store), meta.clone());

    let all = reader.select(&[], i64::MIN, i64::MAX).await.unwrap();
    assert_eq!(all.series, mem.select(&[], &external, i64::MIN, i64::MAX));

    // The label index written with the block, and the one a block without it is scanned for.
    let mut want = fleetscope_store::reader::LabelIndex::new();
    for s in &all.series {
        for l in s.labels.iter() {
            want.entry(l.name.clone())
                .or_default()
                .insert(l.value.clone());
        }
    }
    assert!(meta.file_size("labels.json.zst").is_some());
    assert_eq!(*reader.label_index().await.unwrap(), want);
    let mut older = meta.clone();
    older.files.retain(|f| f.path != "labels.json.zst");
    let older = BlockReader::new(Arc::clone(store), older);
    assert_eq!(*older.label_index().await.unwrap(), want);

    let matchers = [
        Matcher::equal("__name__", query_name),
        Matcher::new(MatchOp::Regex, "cluster", "c.").unwrap(),
    ];
    let some = reader.select(&matchers, min_t, max_t).await.unwrap();
    assert_eq!(some.series, mem.select(&matchers, &external, min_t, max_t));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn memory_roundtrip(input in proptest::collection::vec(series(), 0..12),
                        name in prop_oneof![Just("up"), Just("node_cpu_seconds_total"), Just("")],
                        a in -60_000i64..60_000, len in 0i64..60_000) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let store = objstore::open("memory://").unwrap();
        rt.block_on(check_roundtrip(&store, input, name, a, a + len));
    }
}

/// A moto S3 server on a free loopback port, killed on drop.
struct S3Server {
    child: Child,
    port: u16,
}

impl S3Server {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "moto_server must be installed (pip install 'moto[server]'); .ci/run installs it",
            );
        let server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn create_bucket(&self, bucket: &str) {
        let mut conn = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(conn, "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        let mut reply = String::new();
        conn.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "create bucket: {reply}");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn s3_roundtrip() {
    let server = S3Server::start();
    server.create_bucket("fleet");
    let env = [
        ("AWS_ENDPOINT", format!("http://127.0.0.1:{}", server.port)),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false".into()),
    ];
    let store = objstore::open_with_env(
        "s3://fleet/blocks/prod",
        env.map(|(k, v)| (k.to_string(), v)),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 16,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &(
                proptest::collection::vec(series(), 1..12),
                -60_000i64..60_000,
            ),
            |(input, a)| {
                rt.block_on(check_roundtrip(&store, input, "up", a, a + 30_000));
                Ok(())
            },
        )
        .unwrap();
    let blocks = rt.block_on(BlockMeta::list(&store)).unwrap();
    assert!(!blocks.is_empty(), "blocks landed in the S3 bucket");
}

/// Series handed to the streaming writer out of block order, or coded on another layout than the
/// block's, are refused, and nothing is published.
#[tokio::test]
async fn the_streaming_writer_refuses_series_out_of_block_order() {
    use fleetscope_store::sub_chunks::SubChunks;
    use fleetscope_store::{CodedSeries, Sample, write_sorted_block};
    let store = objstore::open("memory://").unwrap();
    let grid = SubChunks::covering(0, 7_199_999);
    let coded = |name: &str, grid: Option<SubChunks>| {
        let samples = [Sample { t: 1, v: 1.0 }];
        CodedSeries::new(Labels::from_pairs([("__name__", name)]), &samples, grid)
            .unwrap()
            .unwrap()
    };
    let write = |series: Vec<CodedSeries>| {
        let store = Arc::clone(&store);
        async move {
            let series = series.into_iter().map(Ok);
            write_sorted_block(&store, series, &Labels::empty(), &WriteOptions::default()).await
        }
    };
    let err = write(vec![coded("b", Some(grid)), coded("a", Some(grid))])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("out of block order"), "{err}");
    for other in [None, Some(SubChunks::covering(0, 86_399_999))] {
        let err = write(vec![coded("a", Some(grid)), coded("b", other)])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("series b{} coded as"), "{err}");
    }
    assert!(BlockMeta::list(&store).await.unwrap().is_empty());
    // In order, the same series make a block.
    let meta = write(vec![coded("a", Some(grid)), coded("b", Some(grid))])
        .await
        .unwrap();
    assert_eq!(meta.stats.series, 2);
    assert_eq!((meta.version, meta.sub_chunks), (2, Some(grid)));
}

/// Blocks of version 1 (each series in one chunk) and of version 2 (in sub-chunks, some empty)
/// answer every range the same.
#[tokio::test]
async fn sub_chunks_and_single_chunks_read_the_same() {
    use fleetscope_store::sub_chunks::{SLOT_MS, SubChunks};
    use fleetscope_store::{CodedSeries, Sample, write_sorted_block};
    let store = objstore::open("memory://").unwrap();
    let start = 1_767_225_600_000; // a 2h window
    let series: Vec<(Labels, Vec<Sample>)> = (0..5)
        .map(|i| {
            let labels = Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]);
            // Series 3 has no sample in the second slot; series 4 only in the last one.
            let samples = (0..480)
                .map(|j| start + j * 15_000 + i * 7)
                .filter(|t| i != 3 || !(start + SLOT_MS..start + 2 * SLOT_MS).contains(t))
                .filter(|t| i != 4 || *t >= start + 3 * SLOT_MS)
                .map(|t| Sample {
                    t,
                    v: if t % 7 == 0 {
                        f64::NAN
                    } else {
                        (t % 1000) as f64 / 10.0
                    },
                })
                .collect();
            (labels, samples)
        })
        .collect();
    let grid = SubChunks::covering(start, start + 7_199_999);
    let mut readers = vec![];
    for g in [None, Some(grid)] {
        let coded: Vec<_> = series
            .iter()
            .map(|(l, s)| Ok(CodedSeries::new(l.clone(), s, g).unwrap().unwrap()))
            .collect();
        let meta = write_sorted_block(
            &store,
            coded.into_iter(),
            &Labels::empty(),
            &Default::default(),
        )
        .await
        .unwrap();
        assert_eq!(meta.version, if g.is_some() { 2 } else { 1 });
        readers.push(BlockReader::new(Arc::clone(&store), meta));
    }
    let ranges = [
        (i64::MIN, i64::MAX),
        (start + SLOT_MS - 300_000, start + SLOT_MS - 1),
        (start + SLOT_MS - 300_000, start + SLOT_MS + 300_000),
        (start + 2 * SLOT_MS - 1, start + 2 * SLOT_MS),
        (start + 3 * SLOT_MS + 5, start + 3 * SLOT_MS + 60_000),
        (start - 100, start + 14),
        (start + 7_200_000, i64::MAX),
    ];
    for (lo, hi) in ranges {
        let a = readers[0].select(&[], lo, hi).await.unwrap().series;
        let b = readers[1].select(&[], lo, hi).await.unwrap().series;
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "range {lo}..={hi}");
        let want: usize = series
            .iter()
            .map(|(_, s)| s.iter().filter(|x| (lo..=hi).contains(&x.t)).count())
            .sum();
        assert_eq!(b.iter().map(|s| s.samples.len()).sum::<usize>(), want);
    }
}

/// A damaged label index is an error naming the object, never a panic or a wrong answer.
#[tokio::test]
async fn a_damaged_label_index_is_an_error_naming_it() {
    use object_store::{ObjectStoreExt, PutPayload};
    let store = objstore::open("memory://").unwrap();
    let series = vec![Series {
        labels: Labels::from_pairs([("__name__", "up"), ("job", "a")]),
        samples: vec![fleetscope_store::Sample { t: 1, v: 1.0 }],
    }];
    let meta = write_block(&store, series, &Labels::empty(), &WriteOptions::default())
        .await
        .unwrap();
    let path = fleetscope_store::layout::file_path(meta.ulid, "labels.json.zst");
    let size = meta.file_size("labels.json.zst").unwrap() as usize;
    for damaged in [vec![0x5a; size], vec![0x28; size + 1]] {
        store.put(&path, PutPayload::from(damaged)).await.unwrap();
        let reader = BlockReader::new(Arc::clone(&store), meta.clone());
        let err = reader.label_index().await.unwrap_err().to_string();
        assert!(err.contains("labels.json.zst"), "{err}");
    }
}

/// With its label index loaded, a reader skips a block no series of which shows a matcher's value
/// (no row group opened), external labels included, and answers every other selection as before.
#[tokio::test]
async fn the_label_index_skips_blocks_without_the_value() {
    let store = objstore::open("memory://").unwrap();
    let series: Vec<Series> = ["a", "b"]
        .into_iter()
        .map(|job| Series {
            labels: Labels::from_pairs([("__name__", "up"), ("job", job)]),
            samples: vec![fleetscope_store::Sample { t: 1, v: 1.0 }],
        })
        .collect();
    let external = Labels::from_pairs([("cluster", "c1")]);
    let meta = write_block(&store, series, &external, &WriteOptions::default())
        .await
        .unwrap();
    let reader = BlockReader::new(Arc::clone(&store), meta);
    reader.load_headers().await.unwrap();
    let eq = |name: &str, value: &str| Matcher::new(MatchOp::Equal, name, value).unwrap();
    let re = |name: &str, value: &str| Matcher::new(MatchOp::Regex, name, value).unwrap();
    let cases = [
        (vec![eq("__name__", "up"), eq("job", "a")], 1, true),
        (vec![eq("__name__", "up"), eq("job", "z")], 0, false),
        (vec![eq("__name__", "down")], 0, false),
        (vec![eq("__name__", "up"), eq("cluster", "c1")], 2, true),
        (vec![eq("__name__", "up"), eq("cluster", "c2")], 0, false),
        (vec![eq("__name__", "up"), re("job", "a|c")], 1, true),
        (vec![eq("__name__", "up"), re("job", "c|d")], 0, false),
        (vec![eq("__name__", "up"), re("cluster", "c.*")], 2, true),
        (vec![eq("__name__", "up"), re("zone", "|x")], 2, true),
        (vec![eq("__name__", "up"), eq("zone", "")], 2, true),
    ];
    for (matchers, want, opened) in cases {
        let sel = reader.select(&matchers, 0, 10).await.unwrap();
        assert_eq!(sel.series.len(), want, "{matchers:?}");
        assert_eq!(sel.stats.row_groups > 0, opened, "{matchers:?}");
    }
}
