//! `fleetscope demo`: a simulated fleet of three clusters, shipped through real shippers over
//! loopback remote-write into a local folder, then served by the querier and summarised with PromQL.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use fleetscope_ingest::metrics::Metrics;
use fleetscope_ingest::receiver::{ReceiverOptions, router as receiver_router};
use fleetscope_ingest::{Shipper, ShipperConfig};
use fleetscope_query::api::{ApiOptions, ApiState, router as query_router};
use fleetscope_query::capacity::{Job, capacity};
use fleetscope_query::{Catalog, Engine, Fanout, QueryValue, RemoteRead, Source};
use fleetscope_sim::fleet::{FleetSpec, generate_cluster, scheduling};
use fleetscope_store::{BlockMeta, Labels, objstore};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::args::parse_duration;

/// Flags of `fleetscope demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder for the demo's object store and shipper data (created if missing).
    #[arg(long, env = "FLEETSCOPE_DEMO_DIR", default_value = "fleetscope-demo")]
    dir: PathBuf,
    /// Simulated history, ending now.
    #[arg(long, default_value = "6h", value_parser = parse_duration)]
    duration: Duration,
    /// Address of the querier (the Prometheus HTTP API for Grafana).
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// Discard the data of a previous run and simulate the history again.
    #[arg(long)]
    fresh: bool,
    /// Print the summary and exit instead of serving.
    #[arg(long)]
    no_serve: bool,
}

/// How far past now the simulation runs, fed live while the demo serves.
const LIVE: i64 = 3_600_000;
/// Samples per remote-write request.
const BATCH: usize = 10_000;

/// A sample to send: (t, index of its series' labels, value).
type Pending = (i64, usize, f64);

/// Where a cluster's live samples go: its shipper's port, its series' labels, samples in time order.
type LiveFeed = (u16, Vec<Labels>, Vec<Pending>);

struct Member {
    shipper: Shipper,
    port: u16,
    /// Samples after "now", sent as their time comes: (t, series index, value).
    future: Vec<Pending>,
    labels: Vec<Labels>,
}

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    let dir = std::path::absolute(&args.dir)
        .with_context(|| format!("resolve {}", args.dir.display()))?;
    if args.fresh && dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
    }
    let url = format!("file://{}", dir.join("bucket").display());
    let store = objstore::open(&url)?;
    let reuse = !BlockMeta::list(&store).await?.is_empty();
    let now = chrono::Utc::now().timestamp_millis() / 1000 * 1000;
    let history = if reuse {
        0
    } else {
        args.duration.as_millis() as i64
    };
    let spec = FleetSpec::standard(1, now - history, history + LIVE);

    let mut members = Vec::new();
    for cluster in &spec.clusters {
        let config = ShipperConfig {
            external_labels: Labels::from_pairs([("cluster", cluster.name.as_str())]),
            max_backoff: Duration::from_secs(5),
            ..ShipperConfig::new(dir.join(format!("shipper-{}", cluster.name)))
        };
        let shipper = Shipper::start(config, Arc::clone(&store), Arc::new(Metrics::new())).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let app = receiver_router(shipper.clone(), ReceiverOptions::default());
        tokio::spawn(async move { axum::serve(listener, app).await });
        members.push(Member {
            shipper,
            port,
            future: Vec::new(),
            labels: Vec::new(),
        });
    }

    // Simulate, then ship the history through each cluster's shipper, oldest samples first.
    let mut past: Vec<Vec<(i64, usize, f64)>> = Vec::new();
    for (m, cluster) in members.iter_mut().zip(&spec.clusters) {
        let mut samples = Vec::new();
        let mut add = |s: fleetscope_sim::fleet::GenSeries| {
            let idx = m.labels.len();
            m.labels.push(s.to_series().labels);
            samples.extend(s.samples.iter().map(|&(t, v)| (t, idx, v)));
        };
        generate_cluster(&spec, cluster, &mut add);
        scheduling(&spec, cluster, &mut add);
        samples.sort_by_key(|s| s.0);
        let split = samples.partition_point(|s| s.0 <= now);
        m.future = samples.split_off(split);
        past.push(samples);
    }
    let total: usize = past.iter().map(Vec::len).sum();
    if reuse {
        println!(
            "reusing the fleet in {} (--fresh simulates it again)",
            dir.display()
        );
    } else {
        let bar = ProgressBar::new(total as u64).with_style(
            ProgressStyle::with_template(
                "shipping {bar:40} {human_pos}/{human_len} samples {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let sends = members.iter().zip(past).map(|(m, samples)| {
            let (bar, labels, port) = (bar.clone(), m.labels.clone(), m.port);
            async move {
                for chunk in samples.chunks(BATCH) {
                    send(port, &labels, chunk).await?;
                    bar.inc(chunk.len() as u64);
                }
                anyhow::Ok(())
            }
        });
        futures::future::try_join_all(sends).await?;
        bar.finish_and_clear();
        let flush_bar = ProgressBar::new_spinner().with_message("cutting and uploading blocks");
        flush_bar.enable_steady_tick(Duration::from_millis(100));
        for m in &members {
            m.shipper.flush(None).await?;
        }
        flush_bar.finish_and_clear();
    }

    let catalog = Arc::new(Catalog::new(Arc::clone(&store)));
    catalog.refresh().await?;
    let mut sources: Vec<Arc<dyn Source>> = vec![Arc::clone(&catalog) as _];
    // Fresh data still in the shippers, read as a standalone querier reads it: remote-read.
    for m in &members {
        let url = format!("http://127.0.0.1:{}/api/v1/read", m.port);
        sources.push(Arc::new(RemoteRead::new(&url, Duration::from_secs(60))?));
    }
    let source: Arc<dyn Source> = Arc::new(Fanout(sources));
    let metas = catalog.blocks();
    let (samples, bytes) = metas
        .iter()
        .fold((0, 0), |(s, b), m| (s + m.stats.samples, b + m.stats.bytes));
    println!(
        "fleet: {} clusters, {} blocks, {samples} samples, {bytes} bytes ({:.2} bytes/sample) in {url}\n",
        members.len(),
        metas.len(),
        bytes as f64 / samples.max(1) as f64
    );
    summary(&source, now).await?;
    if args.no_serve {
        for m in &members {
            m.shipper.flush(None).await?;
        }
        return Ok(());
    }

    let api = ApiState::with_source(
        Engine::default(),
        Arc::clone(&catalog),
        source,
        ApiOptions::default(),
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!(
        "\nThe querier serves the Prometheus HTTP API on http://{addr} (new samples every 15 s)."
    );
    println!("Grafana: add a data source of type Prometheus, URL http://{addr}, HTTP method POST;");
    println!(
        "         or provision deploy/grafana/datasource.yaml and import deploy/grafana/fleet-dashboard.json."
    );
    println!(
        "Try:     fleetscope query --objstore {url} 'sum by (cluster) (rate(container_cpu_usage_seconds_total[5m]))'"
    );
    println!("Ctrl-C stops (the heads are flushed to blocks for the next run).");

    let feeder = tokio::spawn(feed_live(
        members
            .iter()
            .map(|m| (m.port, m.labels.clone(), m.future.clone()))
            .collect(),
    ));
    let refresher = {
        let catalog = Arc::clone(&catalog);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let _ = catalog.refresh().await;
            }
        })
    };
    axum::serve(listener, query_router(Arc::new(api)))
        .with_graceful_shutdown(crate::args::shutdown_signal())
        .await?;
    feeder.abort();
    refresher.abort();
    for m in &members {
        m.shipper.flush(Some(Duration::from_secs(30))).await?;
    }
    Ok(())
}

/// Sends future samples as wall-clock time reaches them.
async fn feed_live(members: Vec<LiveFeed>) -> anyhow::Result<()> {
    let mut cursors = vec![0usize; members.len()];
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let now = chrono::Utc::now().timestamp_millis();
        for (k, (port, labels, future)) in members.iter().enumerate() {
            let end = future.partition_point(|s| s.0 <= now);
            if end > cursors[k] {
                for chunk in future[cursors[k]..end].chunks(BATCH) {
                    send(*port, labels, chunk).await?;
                }
                cursors[k] = end;
            }
        }
    }
}

/// One remote-write 1.0 request over loopback HTTP, as Prometheus sends it.
async fn send(port: u16, labels: &[Labels], samples: &[Pending]) -> anyhow::Result<()> {
    let body = fleetscope_sim::remote_write::encode(samples, |i| {
        fleetscope_sim::remote_write::encode_labels(
            labels[i]
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str())),
        )
    });
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let head = format!(
        "POST /api/v1/write HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\nUser-Agent: fleetscope-demo\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(&body).await?;
    let mut resp = Vec::new();
    conn.read_to_end(&mut resp).await?;
    let text = String::from_utf8_lossy(&resp);
    anyhow::ensure!(
        text.starts_with("HTTP/1.1 204"),
        "shipper refused a demo write: {}",
        text.lines().next().unwrap_or("")
    );
    Ok(())
}

/// The fleet at a glance, computed with PromQL.
async fn summary(source: &Arc<dyn Source>, now: i64) -> anyhow::Result<()> {
    let engine = Engine::default();
    let panels = [
        (
            "CPU cores in use",
            "sum by (cluster) (rate(container_cpu_usage_seconds_total[5m]))",
        ),
        (
            "GPU utilisation (%)",
            "avg by (cluster, modelName) (DCGM_FI_DEV_GPU_UTIL)",
        ),
        (
            "GPU memory used (share)",
            "sum by (cluster) (DCGM_FI_DEV_FB_USED) / sum by (cluster) (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)",
        ),
        (
            "Top namespaces by CPU",
            "topk(5, sum by (cluster, namespace) (rate(container_cpu_usage_seconds_total[5m])))",
        ),
        (
            "Request latency p99 (s)",
            "histogram_quantile(0.99, sum by (le, cluster) (rate(http_request_duration_seconds_bucket[5m])))",
        ),
    ];
    for (title, q) in panels {
        let value = engine
            .instant(source, q, now)
            .await
            .with_context(|| format!("query {q}"))?;
        let QueryValue::Vector(samples) = value else {
            continue;
        };
        let mut names: Vec<String> = samples
            .iter()
            .flat_map(|s| s.labels.iter().map(|l| l.name.clone()))
            .collect();
        names.sort();
        names.dedup();
        let mut table = Table::new();
        let mut header = names.clone();
        header.push("value".into());
        table.load_preset(UTF8_FULL_CONDENSED).set_header(header);
        for s in &samples {
            let mut row: Vec<String> = names
                .iter()
                .map(|n| s.labels.get(n).unwrap_or("").to_string())
                .collect();
            row.push(format!("{:.3}", s.v));
            table.add_row(row);
        }
        println!("{title}: {q}\n{table}\n");
    }
    // The fleet answer: GPUs free for new pods, and whether a gang of 4 pods x 2 GPUs fits.
    let job = Job {
        pods: 4,
        gpus_per_pod: 2.0,
        cpu_per_pod: 0.0,
        memory_per_pod: 0.0,
    };
    let answer = capacity(source, job, &[], now).await?;
    println!("Capacity for a gang-scheduled job (fleetscope capacity --pods 4 --gpus-per-pod 2):");
    super::capacity::print_table(&answer, now);
    Ok(())
}
