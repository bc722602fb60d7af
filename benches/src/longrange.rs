//! `longrange`: a 14-day fleet dashboard on raw and downsampled blocks, and on Prometheus with the
//! same raw data. The fleet (container CPU counters and GPU utilisation of the three clusters, 15 s
//! scrapes) is generated for `--days` days, imported with `fleetscope import` and compacted with
//! `fleetscope compact --range 24h` (which writes the 5m and 1h blocks), and turned into TSDB
//! blocks for Prometheus with `promtool tsdb create-blocks-from openmetrics`. Each query runs
//! over the first 14 days at a 1h step: on the querier with `max_source_resolution=raw` and
//! `auto`, and on Prometheus; reported: first-run and warm latency, samples read, the largest
//! difference of the downsampled answer from the raw one, and the bytes per resolution.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use fleetscope_sim::fleet::FleetSpec;
use fleetscope_store::BlockMeta;
use fleetscope_store::downsample::resolution_name;

use crate::compare::{same_result, time_requests};
use crate::procs::{Measured, Server, free_port, http, run_measured};
use crate::{START_MS, write_fleet};

/// Flags of `longrange`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Days of data (at least 17: the 1h level needs a 5m block past its 14-day window).
    #[arg(long, default_value_t = 17)]
    days: i64,
    /// Nodes per cluster multiplied by this.
    #[arg(long, default_value_t = 1)]
    scale: usize,
    /// Working directory (default: a fresh temporary one).
    #[arg(long)]
    work: Option<PathBuf>,
    /// The fleetscope binary (default: next to this one).
    #[arg(long)]
    fleetscope: Option<PathBuf>,
    /// The Prometheus server binary.
    #[arg(long, default_value = "prometheus")]
    prometheus: String,
    /// promtool binary.
    #[arg(long, default_value = "promtool")]
    promtool: String,
    /// Warm runs per query; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Reuse the data of an earlier run in `--work` (bucket and Prometheus data directory) instead
    /// of generating, importing and converting it again (that takes about 30 minutes here, most
    /// of it promtool's).
    #[arg(long, requires = "work")]
    reuse: bool,
}

/// What the data of a run holds, kept in the work directory (`dataset.json`) for `--reuse`.
#[derive(Debug)]
struct Dataset {
    series: usize,
    samples: usize,
}

const D: i64 = 24 * 3_600_000;

/// The metric families of the dashboard.
const FAMILIES: [&str; 2] = ["container_cpu_usage_seconds_total", "DCGM_FI_DEV_GPU_UTIL"];

/// The dashboard's queries, 14 days at a 1h step.
const QUERIES: [&str; 3] = [
    "sum by (cluster) (rate(container_cpu_usage_seconds_total[1h]))",
    "avg by (cluster) (DCGM_FI_DEV_GPU_UTIL)",
    "max by (cluster) (max_over_time(DCGM_FI_DEV_GPU_UTIL[1h]))",
];

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.days >= 17, "--days must be at least 17");
    let tmp;
    let work = match &args.work {
        Some(w) => w.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&work)?;
    let fleetscope = match &args.fleetscope {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("fleetscope"),
    };
    anyhow::ensure!(
        fleetscope.exists(),
        "no fleetscope binary at {}",
        fleetscope.display()
    );
    let fleetscope = fleetscope.to_string_lossy().into_owned();

    let bucket = work.join("bucket");
    let url = format!("file://{}", bucket.display());
    let prom_data = work.join("prometheus-data");
    let dataset_file = work.join("dataset.json");
    let dataset: Dataset = if args.reuse {
        let json: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&dataset_file).context("--reuse: no dataset.json in --work")?,
        )?;
        let field = |k: &str| json[k].as_u64().map(|n| n as usize).context("dataset.json");
        Dataset {
            series: field("series")?,
            samples: field("samples")?,
        }
    } else {
        let dataset = prepare(&args, &work, &fleetscope, &url, &prom_data)?;
        let json = serde_json::json!({"series": dataset.series, "samples": dataset.samples});
        std::fs::write(&dataset_file, json.to_string())?;
        dataset
    };
    let (n_series, samples) = (dataset.series, dataset.samples);
    let rt = tokio::runtime::Runtime::new()?;
    let store = fleetscope_store::objstore::open(&url)?;
    let metas = rt.block_on(BlockMeta::list(&store))?;

    let prom_port = free_port()?;
    let prom_config = work.join("prometheus.yml");
    std::fs::write(&prom_config, "global:\n  scrape_interval: 15s\n")?;
    let prometheus = Server::start(
        "prometheus",
        &args.prometheus,
        &[
            format!("--config.file={}", prom_config.display()),
            format!("--storage.tsdb.path={}", prom_data.display()),
            "--storage.tsdb.retention.time=100y".into(),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
            "--query.max-samples=500000000".into(),
        ],
        prom_port,
        "/-/ready",
        &work.join("prometheus.log"),
    )?;
    settle(&work.join("prometheus.log"))?;

    let q_port = free_port()?;
    let querier = Server::start(
        "fleetscope querier",
        &fleetscope,
        &[
            "querier".into(),
            "--query.compat=prometheus2".into(),
            "--query.max-samples=500000000".into(),
            "--objstore".into(),
            url.clone(),
            "--listen".into(),
            format!("127.0.0.1:{q_port}"),
            "--log.level".into(),
            "warn".into(),
        ],
        q_port,
        "/-/ready",
        &work.join("querier.log"),
    )?;

    let (start, end) = (START_MS / 1000, (START_MS + 14 * D) / 1000);
    println!(
        "dataset: {n_series} series ({} of the fleet at scale {}), {samples} samples, {} days at 15 s; queries over the first 14 days, step 1h\n",
        FAMILIES.join(", "),
        args.scale,
        args.days
    );
    println!(
        "| query | raw: first / warm | auto: first / warm | speed-up (warm) | samples raw / auto | Prometheus: first / warm | auto vs Prometheus (warm) | largest difference auto vs raw |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for q in QUERIES {
        let enc: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
        let path = |res: &str| {
            format!(
                "/api/v1/query_range?query={enc}&start={start}&end={end}&step=3600&max_source_resolution={res}"
            )
        };
        let (raw_t, raw) = time_requests(q_port, &path("raw"), args.repeats)?;
        let (auto_t, auto) = time_requests(q_port, &path("auto"), args.repeats)?;
        let (prom_t, prom) = time_requests(prom_port, &path("raw"), args.repeats)?;
        anyhow::ensure!(
            same_result(&raw, &prom),
            "{q}: fleetscope on raw blocks and Prometheus differ"
        );
        let samples_raw = scanned(q_port, &path("raw"))?;
        let samples_auto = scanned(q_port, &path("auto"))?;
        println!(
            "| `{q}` | {:.3} / {:.3} s | {:.3} / {:.3} s | **{:.1}x** | {samples_raw} / {samples_auto} (**{:.1}x** fewer) | {:.3} / {:.3} s | {:.2}x | {:.3}% |",
            raw_t.first,
            raw_t.median,
            auto_t.first,
            auto_t.median,
            raw_t.median / auto_t.median,
            samples_raw as f64 / samples_auto.max(1) as f64,
            prom_t.first,
            prom_t.median,
            auto_t.median / prom_t.median,
            100.0 * largest_difference(&raw, &auto),
        );
    }
    // Bytes per resolution: of every block, and of the blocks within the 14 days that all levels
    // cover (the steady state once a bucket's data is old enough).
    let end_14d = START_MS + 14 * D;
    let within = |m: &&BlockMeta| m.max_t <= end_14d + 1;
    let bytes = |res: i64, only_14d: bool| -> (usize, u64) {
        let blocks: Vec<&BlockMeta> = metas
            .iter()
            .filter(|m| m.resolution == res && (!only_14d || within(m)))
            .collect();
        (blocks.len(), blocks.iter().map(|m| m.stats.bytes).sum())
    };
    println!(
        "\n| resolution | blocks | bytes | vs raw | first 14 days: bytes | vs raw |\n|---|---|---|---|---|---|"
    );
    let (raw_all, raw_14d) = (bytes(0, false).1.max(1), bytes(0, true).1.max(1));
    let (mut total, mut total_14d) = (0, 0);
    for res in fleetscope_store::downsample::RESOLUTIONS {
        let ((n, all), (_, in_14d)) = (bytes(res, false), bytes(res, true));
        total += all;
        total_14d += in_14d;
        println!(
            "| {} | {n} | {all} | {:.3}x | {in_14d} | {:.3}x |",
            resolution_name(res),
            all as f64 / raw_all as f64,
            in_14d as f64 / raw_14d as f64
        );
    }
    println!(
        "| all together | {} | {total} | {:.3}x | {total_14d} | **{:.3}x** |",
        metas.len(),
        total as f64 / raw_all as f64,
        total_14d as f64 / raw_14d as f64
    );
    drop(querier);
    drop(prometheus);
    Ok(())
}

/// Generates the data, imports and compacts it into the bucket, and converts it for Prometheus.
fn prepare(
    args: &Args,
    work: &std::path::Path,
    fleetscope: &str,
    url: &str,
    prom_data: &std::path::Path,
) -> anyhow::Result<Dataset> {
    // The data: one OpenMetrics file per cluster, series carrying their `cluster` label.
    let t = Instant::now();
    let spec = FleetSpec::standard(args.scale, START_MS, args.days * D);
    let files = write_fleet(
        &spec,
        &work.join("input"),
        &|name| FAMILIES.contains(&name),
        true,
    )?;
    let n_series: usize = files.iter().map(|f| f.series).sum();
    let samples: usize = files.iter().map(|f| f.samples).sum();
    eprintln!(
        "generated {n_series} series, {samples} samples over {} days in {:.0}s",
        args.days,
        t.elapsed().as_secs_f64()
    );

    // fleetscope: import, then one compaction pass (daily blocks, then 5m and 1h).
    let mut import = Measured::default();
    for f in &files {
        let mut cmd = Command::new(fleetscope);
        cmd.args(["import", "--objstore", url, "--cluster", &f.cluster])
            .arg(&f.path);
        import.add(run_measured(cmd)?);
    }
    let compact = || {
        let mut cmd = Command::new(fleetscope);
        cmd.args(["compact", "--objstore", url, "--range", "24h"])
            .args(["--delete-delay", "1ms"]);
        run_measured(cmd)
    };
    let compaction = compact()?;
    // A second pass deletes what the first merged away (marked, delay 1ms).
    compact()?;
    eprintln!(
        "imported in {:.0}s, compacted and downsampled in {:.0}s",
        import.wall.as_secs_f64(),
        compaction.wall.as_secs_f64()
    );
    // Prometheus: the same files as TSDB blocks in one data directory.
    std::fs::create_dir_all(prom_data)?;
    for f in &files {
        let mut cmd = Command::new(&args.promtool);
        cmd.args(["tsdb", "create-blocks-from", "openmetrics", "-q"])
            .arg(&f.path)
            .arg(prom_data);
        run_measured(cmd).context("promtool (Debian package prometheus)")?;
    }
    Ok(Dataset {
        series: n_series,
        samples,
    })
}

/// Waits until Prometheus has compacted the imported 2h blocks (it starts a minute after start):
/// until its log has shown a compaction and then nothing new about blocks for a minute, at most
/// 20 minutes.
fn settle(log: &std::path::Path) -> anyhow::Result<()> {
    let t = Instant::now();
    let lines = || -> usize {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("compact") || l.contains("obsolete block"))
            .count()
    };
    let (mut last, mut quiet) = (0, 0);
    while t.elapsed() < Duration::from_secs(1200) {
        std::thread::sleep(Duration::from_secs(10));
        let now = lines();
        quiet = if now == last { quiet + 1 } else { 0 };
        last = now;
        if last > 0 && quiet >= 6 {
            break;
        }
    }
    eprintln!(
        "Prometheus compacted its blocks in {:.0}s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Samples the querier's scans read for a query (`analyze=true`).
fn scanned(port: u16, path: &str) -> anyhow::Result<u64> {
    let (_, body) = http(
        "GET",
        port,
        &format!("{path}&explain=true&analyze=true"),
        &[],
        b"",
    )?;
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    let plan = json["data"]["plan"]
        .as_str()
        .context("no plan in the answer")?;
    // DataFusion shows counts humanized: `samples=620.0 K`.
    let count = |text: &str| -> Option<f64> {
        let mut words = text.split_whitespace();
        let n: f64 = words.next()?.parse().ok()?;
        let unit = match words.next() {
            Some("K") => 1e3,
            Some("M") => 1e6,
            Some("B") => 1e9,
            _ => 1.0,
        };
        Some(n * unit)
    };
    Ok(plan
        .lines()
        .filter(|l| l.contains("PromScanExec"))
        .filter_map(|l| {
            let rest = &l[l.find("samples=")? + "samples=".len()..];
            count(&rest[..rest.find([',', ']']).unwrap_or(rest.len())])
        })
        .sum::<f64>() as u64)
}

/// `(labels, t, v)` of every point of a range answer.
fn points(v: &serde_json::Value) -> std::collections::BTreeMap<(String, String), f64> {
    let mut out = std::collections::BTreeMap::new();
    for r in v["data"]["result"].as_array().into_iter().flatten() {
        for p in r["values"].as_array().into_iter().flatten() {
            let value = p[1]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(f64::NAN);
            out.insert((r["metric"].to_string(), p[0].to_string()), value);
        }
    }
    out
}

/// The largest relative difference of `b`'s points from `a`'s (a point missing counts as 100%).
fn largest_difference(a: &serde_json::Value, b: &serde_json::Value) -> f64 {
    let y = points(b);
    points(a)
        .iter()
        .map(|(k, va)| match y.get(k) {
            Some(vb) if va == vb => 0.0,
            Some(vb) => (va - vb).abs() / va.abs().max(vb.abs()),
            None => 1.0,
        })
        .fold(0.0, f64::max)
}
