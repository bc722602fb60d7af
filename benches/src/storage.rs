//! `storage`: bytes per sample and import speed, fleetscope against `promtool tsdb create-blocks-from`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use fleetscope_ingest::cutter::{DEFAULT_BLOCK_DURATION, write_windows};
use fleetscope_ingest::openmetrics::{TimestampUnit, parse};

use crate::procs::{Measured, run_measured};
use fleetscope_store::{
    BlockMeta, BlockReader, Labels, Matcher, MemSeriesSet, WriteOptions, objstore,
};

use crate::{START_MS, dir_bytes, generate};

pub(crate) fn storage(
    preset: &str,
    work: Option<PathBuf>,
    promtool: &str,
    fleetscope: Option<PathBuf>,
) -> anyhow::Result<()> {
    let tmp;
    let work = match work {
        Some(w) => w,
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let t = Instant::now();
    let files = generate(preset, &work.join("input"))?;
    let (series, samples): (usize, usize) = files
        .iter()
        .fold((0, 0), |(a, b), f| (a + f.series, b + f.samples));
    eprintln!(
        "generated {series} series, {samples} samples in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    // Prometheus: one TSDB per cluster, as each member cluster's Prometheus would hold.
    let prom_dir = work.join("prometheus");
    let mut prom = Measured::default();
    for f in &files {
        let out = prom_dir.join(&f.cluster);
        std::fs::create_dir_all(&out)?;
        let mut cmd = Command::new(promtool);
        cmd.args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&f.path)
            .arg(&out);
        prom.add(run_measured(cmd).with_context(|| {
            format!(
                "run {promtool} (Debian package prometheus) on {}",
                f.path.display()
            )
        })?);
    }
    let prom_bytes = dir_bytes(&prom_dir)?;

    // fleetscope: `fleetscope import --cluster NAME FILE`, the real binary.
    let fleetscope = fleetscope
        .map(Ok)
        .unwrap_or_else(|| std::env::current_exe().map(|p| p.with_file_name("fleetscope")))?;
    anyhow::ensure!(
        fleetscope.exists(),
        "no fleetscope binary at {} (build it with the same profile, or pass --fleetscope)",
        fleetscope.display()
    );
    let fs_dir = work.join("fleetscope");
    let url = format!("file://{}", fs_dir.display());
    let mut fs = Measured::default();
    for f in &files {
        let mut cmd = Command::new(&fleetscope);
        cmd.args(["import", "--objstore", &url, "--cluster", &f.cluster])
            .arg(&f.path);
        fs.add(run_measured(cmd)?);
    }
    let fs_bytes = dir_bytes(&fs_dir)?;
    let store = objstore::open(&url)?;
    let rt = tokio::runtime::Runtime::new()?;

    // Selective read: one metric, one label, 30 minutes, in every block.
    let metas = rt.block_on(BlockMeta::list(&store))?;
    let (mut pages, mut pages_read, mut found) = (0, 0, 0);
    let matchers = [
        Matcher::equal("__name__", "DCGM_FI_DEV_GPU_UTIL"),
        Matcher::equal("gpu", "0"),
    ];
    for meta in metas {
        let reader = BlockReader::new(Arc::clone(&store), meta);
        let sel = rt.block_on(reader.select(&matchers, START_MS, START_MS + 1_800_000))?;
        pages += sel.stats.pages;
        pages_read += sel.stats.pages_read;
        found += sel.series.len();
    }

    // The alternatives behind the choice in docs/block-format.md, on the same series.
    let mut parsed_all = Vec::new();
    for f in &files {
        let input = std::fs::read(&f.path)?;
        let parsed = parse(&input, TimestampUnit::Seconds, &mut |_| {})
            .map_err(|e| anyhow::anyhow!("{}:{e}", f.path.display()))?;
        parsed_all.extend(parsed.series);
    }
    let mut alternatives = Vec::new();
    for level in [1, 3, 9] {
        let mem = objstore::open("memory://")?;
        let opts = WriteOptions {
            zstd_level: level,
            ..Default::default()
        };
        let mut set = MemSeriesSet::new();
        for s in &parsed_all {
            set.append_series(s.clone());
        }
        let metas = rt.block_on(write_windows(
            &mem,
            set,
            &Labels::empty(),
            DEFAULT_BLOCK_DURATION,
            &opts,
            &mut |_| {},
        ))?;
        alternatives.push((
            format!("chunk rows (this format), zstd {level}"),
            metas.iter().map(|m| m.stats.bytes).sum::<u64>(),
        ));
    }
    alternatives.push((
        "sample rows: (series, t, v), delta t, byte-stream-split v, zstd 3".into(),
        sample_rows_bytes(&parsed_all)?,
    ));

    let per = |b: u64| b as f64 / samples as f64;
    let rate = |d: Duration| samples as f64 / d.as_secs_f64();
    println!(
        "dataset: preset {preset}, {} clusters, {series} series, {samples} samples (15 s interval)\n",
        files.len()
    );
    println!("| | fleetscope | Prometheus TSDB (promtool) | fleetscope / Prometheus |");
    println!("|---|---|---|---|");
    println!(
        "| bytes on disk | {fs_bytes} | {prom_bytes} | {:.3} |",
        fs_bytes as f64 / prom_bytes as f64
    );
    println!(
        "| bytes per sample | {:.3} | {:.3} | {:.3} |",
        per(fs_bytes),
        per(prom_bytes),
        per(fs_bytes) / per(prom_bytes)
    );
    println!(
        "| import, samples/s | {:.0} | {:.0} | {:.2} |",
        rate(fs.wall),
        rate(prom.wall),
        rate(fs.wall) / rate(prom.wall)
    );
    println!(
        "| import, CPU seconds | {:.1} | {:.1} | {:.2} |",
        fs.cpu,
        prom.cpu,
        fs.cpu / prom.cpu
    );
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "| import, peak anonymous memory (MiB, RssAnon sampled from /proc) | {:.0} | {:.0} | {:.2} |",
        mib(fs.peak_anon),
        mib(prom.peak_anon),
        fs.peak_anon as f64 / prom.peak_anon.max(1) as f64
    );
    println!("\nlayout alternatives (data bytes only, same series):\n");
    println!("| layout | bytes per sample |");
    println!("|---|---|");
    for (name, bytes) in alternatives {
        println!("| {name} | {:.3} |", per(bytes));
    }
    println!(
        "\nselective read `DCGM_FI_DEV_GPU_UTIL{{gpu=\"0\"}}` over 30 min: {found} series; {pages_read} of {pages} metric_name pages read in the row groups kept"
    );
    Ok(())
}

/// Bytes of the "sample rows" family (design.md): a series table plus one row per sample, sorted by
/// series then time, timestamps DELTA_BINARY_PACKED, values BYTE_STREAM_SPLIT, zstd 3.
fn sample_rows_bytes(series: &[fleetscope_store::Series]) -> anyhow::Result<u64> {
    use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray, UInt32Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::basic::{Compression, Encoding, ZstdLevel};
    use parquet::file::properties::WriterProperties;
    use parquet::schema::types::ColumnPath;

    let mut sorted: Vec<&fleetscope_store::Series> = series.iter().collect();
    sorted.sort_by(|a, b| a.labels.cmp(&b.labels));
    let zstd = Compression::ZSTD(ZstdLevel::try_new(3)?);
    let props = WriterProperties::builder()
        .set_compression(zstd)
        .set_column_encoding(ColumnPath::from("t"), Encoding::DELTA_BINARY_PACKED)
        .set_column_encoding(ColumnPath::from("v"), Encoding::BYTE_STREAM_SPLIT)
        .set_column_dictionary_enabled(ColumnPath::from("t"), false)
        .set_column_dictionary_enabled(ColumnPath::from("v"), false)
        .build();
    let schema = Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt32, false),
        Field::new("t", DataType::Int64, false),
        Field::new("v", DataType::Float64, false),
    ]));
    let mut w = ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(props.clone()))?;
    let (mut ids, mut ts, mut vs) = (Vec::new(), Vec::new(), Vec::new());
    for (id, s) in sorted.iter().enumerate() {
        for x in &s.samples {
            ids.push(id as u32);
            ts.push(x.t);
            vs.push(x.v);
        }
        if ids.len() > 1 << 20 {
            let cols: Vec<arrow::array::ArrayRef> = vec![
                Arc::new(UInt32Array::from(std::mem::take(&mut ids))),
                Arc::new(Int64Array::from(std::mem::take(&mut ts))),
                Arc::new(Float64Array::from(std::mem::take(&mut vs))),
            ];
            w.write(&RecordBatch::try_new(Arc::clone(&schema), cols)?)?;
        }
    }
    let cols: Vec<arrow::array::ArrayRef> = vec![
        Arc::new(UInt32Array::from(ids)),
        Arc::new(Int64Array::from(ts)),
        Arc::new(Float64Array::from(vs)),
    ];
    w.write(&RecordBatch::try_new(Arc::clone(&schema), cols)?)?;
    let samples_file = w.into_inner()?.len() as u64;

    let series_schema = Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt32, false),
        Field::new("labels", DataType::Utf8, false),
    ]));
    let mut w = ArrowWriter::try_new(Vec::new(), Arc::clone(&series_schema), Some(props))?;
    let labels: Vec<String> = sorted.iter().map(|s| s.labels.to_string()).collect();
    let cols: Vec<arrow::array::ArrayRef> = vec![
        Arc::new(UInt32Array::from_iter_values(0..sorted.len() as u32)),
        Arc::new(StringArray::from(labels)),
    ];
    w.write(&RecordBatch::try_new(series_schema, cols)?)?;
    Ok(samples_file + w.into_inner()?.len() as u64)
}
