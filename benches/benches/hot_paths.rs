//! criterion benchmarks of the hot paths, on the tiny fleet preset: remote-write decode, WAL
//! append, block write, block scan, a range-function kernel and an aggregation.
//! Run with `cargo bench -p fleetscope-bench`.

#![allow(clippy::unwrap_used)] // a benchmark: a failed unwrap is a failed run
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::sync::Arc;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use fleetscope_ingest::convert::{SeriesCache, Version, decode};
use fleetscope_ingest::head::Head;
use fleetscope_ingest::wal::Wal;
use fleetscope_query::{Catalog, Engine, MemSource, Source};
use fleetscope_sim::fleet::{FleetSpec, generate_cluster};
use fleetscope_store::{
    BlockMeta, BlockReader, Labels, Matcher, MemSeriesSet, Series, WriteOptions, objstore,
    write_block,
};

const START: i64 = 1_767_225_600_000;

fn fleet() -> Vec<Series> {
    let spec = FleetSpec::preset("tiny", START).unwrap();
    let mut out = Vec::new();
    for c in &spec.clusters {
        generate_cluster(&spec, c, &mut |s| {
            let mut series = s.to_series();
            series.labels = series.labels.with("cluster", &c.name);
            out.push(series);
        });
    }
    out
}

fn samples(series: &[Series]) -> u64 {
    series.iter().map(|s| s.samples.len() as u64).sum()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let series = fleet();
    let n = samples(&series);

    // Remote-write decode: one request of 2,000 series with one sample each (Prometheus's shape).
    let flat: Vec<(i64, usize, f64)> = series
        .iter()
        .take(2000)
        .enumerate()
        .map(|(i, s)| (s.samples[0].t, i, s.samples[0].v))
        .collect();
    let body = fleetscope_sim::remote_write::encode(&flat, |i| {
        fleetscope_sim::remote_write::encode_labels(
            series[i]
                .labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str())),
        )
    });
    let raw = Bytes::from(snap::raw::Decoder::new().decompress_vec(&body).unwrap());
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(flat.len() as u64));
    g.bench_function("remote_write_decode_2000_series", |b| {
        b.iter(|| {
            decode(
                Version::V1,
                raw.clone(),
                &SeriesCache::new(),
                &Default::default(),
            )
            .unwrap()
        })
    });
    let decoded = decode(
        Version::V1,
        raw.clone(),
        &SeriesCache::new(),
        &Default::default(),
    )
    .unwrap()
    .series;
    g.bench_function("wal_append_fsync_2000_series", |b| {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), |_| Ok(())).unwrap();
        let mut head = Head::new(7_200_000);
        b.iter(|| {
            // As the WAL thread does: entries by reference (label sets logged once), one fsync.
            let mut payload = Vec::new();
            head.log(&decoded, &mut payload);
            wal.append(&[payload]).unwrap()
        })
    });
    g.finish();

    let store = objstore::open("memory://").unwrap();
    let mut g = c.benchmark_group("block");
    g.throughput(Throughput::Elements(n));
    g.sample_size(10);
    g.bench_function("write_tiny_fleet", |b| {
        b.iter_batched(
            || series.clone(),
            |s| {
                rt.block_on(write_block(
                    &store,
                    s,
                    &Labels::empty(),
                    &WriteOptions::default(),
                ))
                .unwrap()
            },
            BatchSize::LargeInput,
        )
    });
    // A store with exactly one copy of the fleet (the write benchmark above wrote many).
    let store = objstore::open("memory://").unwrap();
    rt.block_on(write_block(
        &store,
        series.clone(),
        &Labels::empty(),
        &WriteOptions::default(),
    ))
    .unwrap();
    let meta = rt.block_on(BlockMeta::list(&store)).unwrap().remove(0);
    let reader = BlockReader::new(Arc::clone(&store), meta);
    g.finish();
    let mut g = c.benchmark_group("block");
    g.bench_function("scan_one_metric", |b| {
        let m = [Matcher::equal(
            "__name__",
            "container_cpu_usage_seconds_total",
        )];
        b.iter(|| rt.block_on(reader.select(&m, i64::MIN, i64::MAX)).unwrap())
    });
    g.finish();

    let mut set = MemSeriesSet::new();
    for s in &series {
        set.append_series(s.clone());
    }
    let mem: Arc<dyn Source> = Arc::new(MemSource {
        set,
        external: Labels::empty(),
    });
    let catalog = Catalog::new(Arc::clone(&store));
    rt.block_on(catalog.refresh()).unwrap();
    let catalog: Arc<dyn Source> = Arc::new(catalog);
    let engine = Engine::default();
    let end = START + 1_800_000;
    let mut g = c.benchmark_group("promql");
    g.bench_function("rate_range_query_mem", |b| {
        b.iter(|| {
            rt.block_on(engine.range(
                &mem,
                "rate(container_cpu_usage_seconds_total[5m])",
                START + 300_000,
                end,
                15_000,
            ))
            .unwrap()
        })
    });
    g.bench_function("sum_by_cluster_range_query_mem", |b| {
        b.iter(|| {
            rt.block_on(engine.range(
                &mem,
                "sum by (cluster) (node_memory_MemAvailable_bytes)",
                START,
                end,
                15_000,
            ))
            .unwrap()
        })
    });
    g.bench_function("fleet_cpu_instant_query_blocks", |b| {
        let q = "sum by (cluster) (rate(container_cpu_usage_seconds_total[5m]))";
        b.iter(|| rt.block_on(engine.instant(&catalog, q, end)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
