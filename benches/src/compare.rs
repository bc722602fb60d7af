//! `compare`: fleetscope and a real Prometheus on the same fleet data, in the same run, on the same
//! machine: ingest over remote-write, resident memory over the ingest and its peak, restart after
//! SIGKILL with the head full (time to ready; the shipper must still hold every acknowledged
//! sample), storage, query latency (first run and warm median), label APIs; one Markdown table of
//! ratios. Exits non-zero if any answer differs or a sample was lost.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use fleetscope_sim::fleet::{FleetSpec, generate_cluster};
use fleetscope_sim::remote_write::{encode, encode_labels};

use crate::procs::{Server, free_port, http};
use crate::{START_MS, dir_bytes};

/// Flags of `compare`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// tiny, small or medium.
    #[arg(long, default_value = "small")]
    preset: String,
    /// Working directory (default: a fresh temporary one).
    #[arg(long)]
    work: Option<PathBuf>,
    /// The fleetscope binary (default: next to this one).
    #[arg(long)]
    fleetscope: Option<PathBuf>,
    /// The Prometheus server binary.
    #[arg(long, default_value = "prometheus")]
    prometheus: String,
    /// Concurrent remote-write clients (each owns a share of the series, as Prometheus shards).
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Warm runs per query; the median is reported.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
}

/// One series of the load: its encoded labels and `(t, v)` samples.
type LoadSeries = (Vec<u8>, Vec<(i64, f64)>);

/// Samples per remote-write request (Prometheus's default `max_samples_per_send` is 2000).
const PER_REQUEST: usize = 2000;

struct Ingest {
    seconds: f64,
    cpu: f64,
    /// Resident memory sampled every [`RSS_EVERY`] during the ingest: (seconds in, bytes).
    rss: Vec<(f64, u64)>,
}

/// How often resident memory is sampled during an ingest.
const RSS_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let tmp;
    let work = match &args.work {
        Some(w) => w.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    let fleetscope = match &args.fleetscope {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("fleetscope"),
    };
    anyhow::ensure!(
        fleetscope.exists(),
        "no fleetscope binary at {} (build it with the same profile, or pass --fleetscope)",
        fleetscope.display()
    );
    let fleetscope = fleetscope.to_string_lossy().into_owned();
    let spec = FleetSpec::preset(&args.preset, START_MS)
        .with_context(|| format!("unknown preset {:?}", args.preset))?;
    let end_ms = START_MS + spec.duration_ms;

    // The load: every cluster's series (with their `cluster` label), split among the clients by
    // series, each client's requests in time order.
    let t = Instant::now();
    let mut series: Vec<LoadSeries> = Vec::new();
    for cluster in &spec.clusters {
        generate_cluster(&spec, cluster, &mut |s| {
            let mut labels: Vec<(&str, &str)> =
                s.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            labels.push(("__name__", s.name));
            labels.push(("cluster", &cluster.name));
            labels.sort_unstable();
            series.push((encode_labels(labels), s.samples));
        });
    }
    let samples: usize = series.iter().map(|s| s.1.len()).sum();
    let n_series = series.len();
    let requests = build_requests(&series, args.clients.max(1));
    drop(series);
    let n_requests: usize = requests.iter().map(Vec::len).sum();
    let built = t.elapsed().as_secs_f64();
    eprintln!(
        "load: {n_series} series, {samples} samples in {n_requests} requests, built in {built:.1}s"
    );

    // Both receivers.
    let fs_port = free_port()?;
    let bucket = work.join("fleetscope-bucket");
    let mut shipper = Server::start(
        "fleetscope shipper",
        &fleetscope,
        &[
            "shipper".into(),
            "--objstore".into(),
            format!("file://{}", bucket.display()),
            "--listen".into(),
            format!("127.0.0.1:{fs_port}"),
            "--data-dir".into(),
            work.join("fleetscope-data").display().to_string(),
            "--log.level".into(),
            "warn".into(),
        ],
        fs_port,
        "/-/ready",
        &work.join("shipper.log"),
    )?;
    let prom_port = free_port()?;
    let prom_config = work.join("prometheus.yml");
    std::fs::write(&prom_config, "global:\n  scrape_interval: 15s\n")?;
    let mut prometheus = Server::start(
        "prometheus",
        &args.prometheus,
        &[
            format!("--config.file={}", prom_config.display()),
            format!(
                "--storage.tsdb.path={}",
                work.join("prometheus-data").display()
            ),
            "--storage.tsdb.retention.time=100y".into(),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
            "--web.enable-remote-write-receiver".into(),
            "--web.enable-admin-api".into(),
            "--query.max-samples=500000000".into(),
        ],
        prom_port,
        "/-/ready",
        &work.join("prometheus.log"),
    )?;

    let fs_ingest = ingest(&shipper, &requests)?;
    let (_, metrics) = http("GET", fs_port, "/metrics", &[], b"")?;
    let metrics = String::from_utf8_lossy(&metrics).into_owned();
    let metric = |name: &str| -> anyhow::Result<f64> {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("no {name} in the shipper's /metrics"))
    };
    let wal_bytes = metric("fleetscope_ingest_wal_bytes_total")?;
    let head = (
        metric("fleetscope_ingest_head_series")?,
        metric("fleetscope_ingest_head_samples")?,
        metric("fleetscope_ingest_head_sample_bytes")?,
    );
    // Restart after a crash with the head full (the last window not cut yet).
    let shipper_ingest_rss = shipper.peak_rss();
    let fs_restart = shipper.kill_and_restart()?;
    let fs_replay_rss = shipper.peak_rss();
    let t = Instant::now();
    let (status, body) = http("POST", fs_port, "/api/v1/flush", &[], b"")?;
    anyhow::ensure!(status == 200, "flush: {}", String::from_utf8_lossy(&body));
    let flush_s = t.elapsed().as_secs_f64();
    let shipper_flush_rss = shipper.peak_rss();
    let stored = bucket_samples(&bucket)?;
    anyhow::ensure!(
        stored == samples as u64,
        "the shipper acknowledged {samples} samples but its blocks hold {stored} after a SIGKILL and restart"
    );
    let prom_ingest = ingest(&prometheus, &requests)?;
    let prom_ingest_rss = prometheus.peak_rss();
    let prom_restart = prometheus.kill_and_restart()?;
    let prom_replay_rss = prometheus.peak_rss();
    drop(shipper);
    let fs_bytes = dir_bytes(&bucket)?;

    // Storage: the objects the shipper uploaded, against the blocks Prometheus writes from the same
    // data (a snapshot persists its head as a block, as compaction would).
    let (status, body) = http("POST", prom_port, "/api/v1/admin/tsdb/snapshot", &[], b"")?;
    anyhow::ensure!(
        status == 200,
        "snapshot: {}",
        String::from_utf8_lossy(&body)
    );
    let snapshot: serde_json::Value = serde_json::from_slice(&body)?;
    let name = snapshot["data"]["name"]
        .as_str()
        .context("snapshot answer without data.name")?;
    let prom_bytes = dir_bytes(&work.join("prometheus-data/snapshots").join(name))?;

    // Queries: the querier over the shipped blocks; Prometheus over what it ingested.
    let q_port = free_port()?;
    let querier = Server::start(
        "fleetscope querier",
        &fleetscope,
        &[
            "querier".into(),
            // Debian's Prometheus is 2.x: compare with its semantics (windows closed on the left).
            "--query.compat=prometheus2".into(),
            // The same sample limit Prometheus gets below.
            "--query.max-samples=500000000".into(),
            "--objstore".into(),
            format!("file://{}", bucket.display()),
            "--listen".into(),
            format!("127.0.0.1:{q_port}"),
            "--log.level".into(),
            "warn".into(),
        ],
        q_port,
        "/-/ready",
        &work.join("querier.log"),
    )?;
    let at = (end_ms - 60_000) as f64 / 1000.0;
    let (start, end) = ((START_MS + 600_000) as f64 / 1000.0, at);
    let fleet_queries = [
        "sum by (cluster) (rate(container_cpu_usage_seconds_total[5m]))",
        "avg by (cluster, modelName) (DCGM_FI_DEV_GPU_UTIL)",
        "sum by (cluster) (DCGM_FI_DEV_FB_USED) / sum by (cluster) (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)",
        "histogram_quantile(0.99, sum by (le, cluster) (rate(http_request_duration_seconds_bucket[5m])))",
        "topk(5, sum by (cluster, namespace) (rate(container_cpu_usage_seconds_total[5m])))",
        "node_cpu_seconds_total",
    ];
    let mut rows: Vec<(String, Timing, Timing, bool)> = Vec::new();
    for q in fleet_queries {
        let enc: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
        let instant = format!("/api/v1/query?query={enc}&time={at}");
        let range = format!("/api/v1/query_range?query={enc}&start={start}&end={end}&step=60");
        for (kind, path) in [("instant", instant), ("range", range)] {
            let (a, ra) = time_requests(q_port, &path, args.repeats)?;
            let (b, rb) = time_requests(prom_port, &path, args.repeats)?;
            rows.push((format!("`{q}` ({kind})"), a, b, same_result(&ra, &rb)));
        }
    }
    for (name, path) in [
        ("labels", "/api/v1/labels".to_string()),
        (
            "label values of `__name__`",
            "/api/v1/label/__name__/values".to_string(),
        ),
        ("series `up`", "/api/v1/series?match[]=up".to_string()),
    ] {
        let (a, ra) = time_requests(q_port, &path, args.repeats)?;
        let (b, rb) = time_requests(prom_port, &path, args.repeats)?;
        rows.push((name.to_string(), a, b, same_result(&ra, &rb)));
    }
    // SQL over the same blocks (no Prometheus equivalent: timed alone).
    let (lo, hi) = ((end_ms - 360_000), (end_ms - 60_000));
    let sql_queries = [
        format!(
            "SELECT cluster, avg(value) FROM \"DCGM_FI_DEV_GPU_UTIL\" WHERE ts > to_timestamp_millis({lo}) AND ts <= to_timestamp_millis({hi}) GROUP BY cluster"
        ),
        format!(
            "SELECT cluster, count(*), sum(value) FROM \"container_cpu_usage_seconds_total\" WHERE ts > to_timestamp_millis({lo}) AND ts <= to_timestamp_millis({hi}) GROUP BY cluster"
        ),
        "SELECT cluster, max(value) FROM \"node_load1\" GROUP BY cluster".to_string(),
        "SELECT count(*) FROM \"node_cpu_seconds_total\"".to_string(),
    ];
    let mut sql_rows: Vec<(String, Timing)> = Vec::new();
    for q in &sql_queries {
        let enc: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
        let (t, _) = time_requests(q_port, &format!("/api/v1/sql?query={enc}"), args.repeats)?;
        sql_rows.push((q.clone(), t));
    }

    // Parallelism: the fleet CPU range query on a querier limited to one partition.
    let p1_port = free_port()?;
    let p1 = Server::start(
        "fleetscope querier --query.parallelism 1",
        &fleetscope,
        &[
            "querier".into(),
            "--query.compat=prometheus2".into(),
            // The same sample limit Prometheus gets below.
            "--query.max-samples=500000000".into(),
            "--query.parallelism".into(),
            "1".into(),
            "--objstore".into(),
            format!("file://{}", bucket.display()),
            "--listen".into(),
            format!("127.0.0.1:{p1_port}"),
            "--log.level".into(),
            "warn".into(),
        ],
        p1_port,
        "/-/ready",
        &work.join("querier-p1.log"),
    )?;
    let cpu_query: String =
        url::form_urlencoded::byte_serialize(fleet_queries[0].as_bytes()).collect();
    let cpu_range =
        format!("/api/v1/query_range?query={cpu_query}&start={start}&end={end}&step=60");
    let (one, r1) = time_requests(p1_port, &cpu_range, args.repeats)?;
    let (many, rn) = time_requests(q_port, &cpu_range, args.repeats)?;
    drop(p1);
    let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());

    let querier_rss = querier.peak_rss();
    let prom_rss = prometheus.peak_rss();

    // The table.
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let rate = |i: &Ingest| samples as f64 / i.seconds;
    let cpu_per_m = |i: &Ingest| i.cpu / (samples as f64 / 1e6);
    println!(
        "## fleetscope vs Prometheus {}, preset `{}`\n",
        prometheus_version(&args.prometheus),
        args.preset
    );
    println!(
        "{} clusters, {} series, {samples} samples at 15 s over {} h; {} remote-write clients; {}.\n",
        spec.clusters.len(),
        n_series,
        spec.duration_ms / 3_600_000,
        args.clients,
        machine()
    );
    println!("| measure | fleetscope | Prometheus | fleetscope / Prometheus |");
    println!("|---|---|---|---|");
    println!(
        "| ingest, samples/s (remote-write, fsynced WAL) | {:.0} | {:.0} | {:.2} |",
        rate(&fs_ingest),
        rate(&prom_ingest),
        rate(&fs_ingest) / rate(&prom_ingest)
    );
    println!(
        "| ingest, CPU-seconds per million samples | {:.3} | {:.3} | {:.2} |",
        cpu_per_m(&fs_ingest),
        cpu_per_m(&prom_ingest),
        cpu_per_m(&fs_ingest) / cpu_per_m(&prom_ingest)
    );
    println!(
        "| ingest, peak RSS (MiB) | {:.0} | {:.0} | {:.2} |",
        mib(shipper_ingest_rss),
        mib(prom_ingest_rss),
        shipper_ingest_rss as f64 / prom_ingest_rss as f64
    );
    println!(
        "| restart after SIGKILL with a full head: ready in (s) | {:.2} | {:.2} | {:.2} |",
        fs_restart.as_secs_f64(),
        prom_restart.as_secs_f64(),
        fs_restart.as_secs_f64() / prom_restart.as_secs_f64()
    );
    println!(
        "| restart: peak RSS replaying the WAL (MiB) | {:.0} | {:.0} | {:.2} |",
        mib(fs_replay_rss),
        mib(prom_replay_rss),
        fs_replay_rss as f64 / prom_replay_rss as f64
    );
    println!(
        "| shipper: peak RSS of the restarted process through its flush (replay, cut and upload of the whole head) (MiB) | {:.0} | n/a | n/a |",
        mib(shipper_flush_rss)
    );
    println!(
        "| storage, bytes per sample (fleetscope: uploaded objects; Prometheus: blocks of a TSDB snapshot) | {:.3} | {:.3} | {:.2} |",
        fs_bytes as f64 / samples as f64,
        prom_bytes as f64 / samples as f64,
        fs_bytes as f64 / prom_bytes as f64
    );
    let mut all_same = true;
    for (name, a, b, same) in &rows {
        all_same &= same;
        println!(
            "| {name}: first run / warm median (ms) | {:.1} / {:.1} | {:.1} / {:.1} | {:.2} / {:.2}{} |",
            a.first * 1e3,
            a.median * 1e3,
            b.first * 1e3,
            b.median * 1e3,
            a.first / b.first,
            a.median / b.median,
            if *same { "" } else { " **results differ**" }
        );
    }
    println!(
        "| querier peak RSS (MiB; Prometheus: whole process, ingest included) | {:.0} | {:.0} | {:.2} |",
        mib(querier_rss),
        mib(prom_rss),
        querier_rss as f64 / prom_rss as f64
    );
    for (q, t) in &sql_rows {
        println!(
            "| SQL `{q}`: first run / warm median (ms) | {:.1} / {:.1} | n/a | n/a |",
            t.first * 1e3,
            t.median * 1e3
        );
    }
    println!(
        "\nResident memory during ingest (MiB, VmRSS sampled every {} ms; at each tenth of each system's own ingest time):\n",
        RSS_EVERY.as_millis()
    );
    println!("| ingest done | fleetscope | Prometheus | fleetscope / Prometheus |");
    println!("|---|---|---|---|");
    for tenth in 1..=10 {
        let (a, b) = (rss_at(&fs_ingest, tenth), rss_at(&prom_ingest, tenth));
        println!(
            "| {}% | {:.0} | {:.0} | {:.2} |",
            tenth * 10,
            mib(a),
            mib(b),
            a as f64 / b as f64
        );
    }
    let same_parallel = same_result(&r1, &rn);
    all_same &= same_parallel;
    println!(
        "\nFleet CPU range query (`{}`, step 60s): warm median {:.1} ms with `--query.parallelism 1`, {:.1} ms with {parallelism} (the cores): {:.2}x faster; same result: {}.",
        fleet_queries[0],
        one.median * 1e3,
        many.median * 1e3,
        one.median / many.median,
        if same_parallel { "yes" } else { "NO" }
    );
    println!(
        "\nShipper head at the end of the ingest: {:.0} series, {:.0} samples in {:.1} MiB ({:.2} bytes per sample, sealed chunks and open tails).",
        head.0,
        head.1,
        head.2 / (1 << 20) as f64,
        head.2 / head.1.max(1.0)
    );
    println!(
        "\nShipper WAL: {:.1} bytes per sample. Flush (cut + upload of the head) after ingest: {flush_s:.2}s. Same results for every query: {}.",
        wal_bytes / samples as f64,
        if all_same { "yes" } else { "NO" }
    );
    if !all_same {
        bail!("fleetscope's answers differ from Prometheus's");
    }
    Ok(())
}

/// A pre-encoded request body.
struct Request {
    body: Vec<u8>,
}

/// Splits series among clients; each client's requests go in time order, `PER_REQUEST` samples
/// each. Clients are built in parallel.
fn build_requests(series: &[LoadSeries], clients: usize) -> Vec<Vec<Request>> {
    let build = |c: usize| -> Vec<Request> {
        let mine: Vec<&LoadSeries> = series.iter().skip(c).step_by(clients).collect();
        // All samples of this client in time order, then cut into requests.
        let mut flat: Vec<(i64, usize, f64)> = mine
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.1.iter().map(move |&(t, v)| (t, i, v)))
            .collect();
        flat.sort_unstable_by_key(|x| (x.0, x.1));
        flat.chunks(PER_REQUEST)
            .map(|chunk| Request {
                body: encode(chunk, |i| mine[i].0.as_slice()),
            })
            .collect()
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients).map(|c| s.spawn(move || build(c))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// The highest resident memory sampled in the `tenth` tenth of an ingest.
fn rss_at(ingest: &Ingest, tenth: usize) -> u64 {
    let (lo, hi) = (
        ingest.seconds * (tenth - 1) as f64 / 10.0,
        ingest.seconds * tenth as f64 / 10.0,
    );
    ingest
        .rss
        .iter()
        .filter(|(t, _)| *t >= lo && *t <= hi)
        .map(|&(_, b)| b)
        .max()
        .unwrap_or(0)
}

/// Samples in the blocks of a bucket folder (the `stats.samples` of every `meta.json`).
fn bucket_samples(bucket: &std::path::Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(bucket).with_context(|| format!("list {}", bucket.display()))? {
        let meta = entry?.path().join("meta.json");
        if meta.exists() {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta)?)?;
            total += v["stats"]["samples"]
                .as_u64()
                .with_context(|| format!("no stats.samples in {}", meta.display()))?;
        }
    }
    Ok(total)
}

/// Sends every client's requests concurrently; returns wall time, the server's CPU seconds, and
/// its resident memory over time.
fn ingest(server: &Server, clients: &[Vec<Request>]) -> anyhow::Result<Ingest> {
    let cpu0 = server.cpu_seconds();
    let t = Instant::now();
    let port = server.port;
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut rss = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                rss.push((t.elapsed().as_secs_f64(), server.rss()));
                std::thread::sleep(RSS_EVERY);
            }
        });
        let sent = send_all(port, clients);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        sent
    })?;
    Ok(Ingest {
        seconds: t.elapsed().as_secs_f64(),
        cpu: server.cpu_seconds() - cpu0,
        rss,
    })
}

/// Sends every client's requests to `port`, one thread per client.
fn send_all(port: u16, clients: &[Vec<Request>]) -> anyhow::Result<()> {
    std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .iter()
            .map(|reqs| {
                s.spawn(move || -> anyhow::Result<()> {
                    let headers = [
                        ("Content-Type", "application/x-protobuf"),
                        ("Content-Encoding", "snappy"),
                        ("X-Prometheus-Remote-Write-Version", "0.1.0"),
                        ("User-Agent", "fleetscope-bench"),
                    ];
                    for r in reqs {
                        let (status, body) =
                            http("POST", port, "/api/v1/write", &headers, &r.body)?;
                        anyhow::ensure!(
                            (200..300).contains(&status),
                            "write refused ({status}): {}",
                            String::from_utf8_lossy(&body)
                        );
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| anyhow::anyhow!("client panicked"))?)
    })
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) first: f64,
    pub(crate) median: f64,
}

/// First-run latency and the median of `repeats` more runs; returns the last answer.
pub(crate) fn time_requests(
    port: u16,
    path: &str,
    repeats: usize,
) -> anyhow::Result<(Timing, serde_json::Value)> {
    let run = || -> anyhow::Result<(f64, serde_json::Value)> {
        let t = Instant::now();
        let (status, body) = http("GET", port, path, &[], b"")?;
        let secs = t.elapsed().as_secs_f64();
        anyhow::ensure!(
            status == 200,
            "{path} on port {port}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        Ok((secs, serde_json::from_slice(&body)?))
    };
    let (first, _) = run()?;
    let mut times = Vec::new();
    let mut last = serde_json::Value::Null;
    for _ in 0..repeats.max(1) {
        let (t, v) = run()?;
        times.push(t);
        last = v;
    }
    times.sort_by(f64::total_cmp);
    Ok((
        Timing {
            first,
            median: times[times.len() / 2],
        },
        last,
    ))
}

/// Same series (labels) and values (1e-9 relative) with the same timestamps, in any order.
pub(crate) fn same_result(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    /// Result items keyed by their labels (query results, series) or themselves (names, values).
    fn norm(v: &serde_json::Value) -> BTreeMap<String, Vec<(String, f64)>> {
        let data = &v["data"];
        let items = data["result"]
            .as_array()
            .or(data.as_array())
            .cloned()
            .unwrap_or_default();
        items
            .iter()
            .map(|item| {
                let key = item.get("metric").unwrap_or(item).to_string();
                let points = item["values"]
                    .as_array()
                    .cloned()
                    .or_else(|| item.get("value").map(|v| vec![v.clone()]));
                let pts = points
                    .unwrap_or_default()
                    .iter()
                    .map(|p| {
                        (
                            p[0].to_string(),
                            p[1].as_str()
                                .and_then(|s| s.parse().ok())
                                .unwrap_or(f64::NAN),
                        )
                    })
                    .collect();
                (key, pts)
            })
            .collect()
    }
    let (x, y) = (norm(a), norm(b));
    x.len() == y.len()
        && x.iter().all(|(k, pa)| {
            y.get(k).is_some_and(|pb| {
                pa.len() == pb.len()
                    && pa.iter().zip(pb).all(|((ta, va), (tb, vb))| {
                        let ta: f64 = ta.parse().unwrap_or(f64::NAN);
                        let tb: f64 = tb.parse().unwrap_or(f64::NAN);
                        ta == tb
                            && (va == vb
                                || (va - vb).abs() <= 1e-9 * va.abs().max(vb.abs())
                                || (va.is_nan() && vb.is_nan()))
                    })
            })
        })
}

fn prometheus_version(bin: &str) -> String {
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .nth(2)
                .map(String::from)
        })
        .unwrap_or_else(|| "?".into())
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_default();
    format!("{cpus} CPUs ({model})")
}
