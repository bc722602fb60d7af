//! `catalog`: a bucket of many small blocks (clusters x 2h windows), and what its size costs the
//! querier: listing, reading every `meta.json`, loading every block's headers, a querier's cold
//! start until `/-/ready`, planning, and queries touching one window or every block.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use fleetscope_store::{BlockMeta, Catalog, Labels, Sample, Series, WriteOptions, objstore};

use crate::START_MS;
use crate::compare::time_requests;
use crate::procs::{Server, free_port};

/// Flags of `catalog`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Blocks in the bucket (clusters x 2h windows; 100 clusters).
    #[arg(long, default_value_t = 10_000)]
    blocks: usize,
    /// Working directory (default: a fresh temporary one); a bucket with the same number of
    /// blocks already there is reused.
    #[arg(long)]
    work: Option<PathBuf>,
    /// The fleetscope binary (default: next to this one).
    #[arg(long)]
    fleetscope: Option<PathBuf>,
}

const CLUSTERS: usize = 100;
const WINDOW_MS: i64 = 2 * 3_600_000;
/// Series per block: a node's worth of `up` and `node_load1` for four jobs.
const SERIES: usize = 8;
/// One sample a minute.
const STEP_MS: i64 = 60_000;

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let tmp;
    let work = match args.work {
        Some(w) => w,
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let fleetscope = match args.fleetscope {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("fleetscope"),
    };
    let bucket = work.join("bucket");
    std::fs::create_dir_all(&bucket)?;
    let url = format!("file://{}", bucket.display());
    let rt = tokio::runtime::Runtime::new()?;
    let store = objstore::open(&url)?;

    let existing = rt.block_on(BlockMeta::list_ids(&store))?.len();
    let windows = args.blocks.div_ceil(CLUSTERS) as i64;
    if existing != args.blocks {
        anyhow::ensure!(
            existing == 0,
            "{} holds {existing} blocks",
            bucket.display()
        );
        let t = Instant::now();
        rt.block_on(write_blocks(&store, args.blocks))?;
        eprintln!("wrote {} blocks in {:.1?}", args.blocks, t.elapsed());
    }
    let (objects, bytes) = crate::dir_usage(&bucket)?;

    // In process: what a refresh and the header loading cost.
    let (list, metas, refresh, again, headers) = rt.block_on(async {
        let t = Instant::now();
        let ids = BlockMeta::list_ids(&store).await?;
        let list = t.elapsed();
        let t = Instant::now();
        let metas = BlockMeta::read_all(&store, ids).await?;
        let read = t.elapsed();
        anyhow::ensure!(metas.len() == args.blocks, "{} blocks listed", metas.len());
        let catalog = Catalog::new(Arc::clone(&store));
        let t = Instant::now();
        catalog.refresh().await?;
        let refresh = t.elapsed();
        let t = Instant::now();
        catalog.refresh().await?;
        let again = t.elapsed();
        let t = Instant::now();
        let failed = catalog.load_headers().await;
        anyhow::ensure!(failed == 0, "{failed} blocks' headers failed to load");
        Ok((list, read, refresh, again, t.elapsed()))
    })?;

    // A querier process: cold start until ready (listing, metas, headers), then queries.
    let port = free_port()?;
    let t = Instant::now();
    let querier = Server::start(
        "fleetscope querier",
        &fleetscope.to_string_lossy(),
        &[
            "querier".into(),
            "--objstore".into(),
            url.clone(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--log.level".into(),
            "warn".into(),
        ],
        port,
        "/-/ready",
        &work.join("querier.log"),
    )?;
    let cold = t.elapsed();
    let rss_ready = querier.rss();
    let end = START_MS + windows * WINDOW_MS;
    let last_hour = format!(
        "/api/v1/query_range?query={}&start={}&end={}&step=60",
        enc("sum by (cluster) (node_load1)"),
        (end - 3_600_000) / 1000,
        end / 1000 - 1
    );
    let everything = format!(
        "/api/v1/query_range?query={}&start={}&end={}&step=3600",
        enc("count(up)"),
        START_MS / 1000,
        end / 1000 - 1
    );
    let plan = format!("{everything}&explain=true");
    let series = format!(
        "/api/v1/series?match[]={}&start={}&end={}",
        enc("up{cluster=\"c42\"}"),
        START_MS / 1000,
        end / 1000
    );
    let mut rows = Vec::new();
    for (what, path) in [
        ("plan a query over every block (`explain=true`)", &plan),
        (
            "`sum by (cluster) (node_load1)`, last hour, step 60s (100 blocks)",
            &last_hour,
        ),
        (
            "`count(up)`, whole range, step 1h (every block)",
            &everything,
        ),
        ("`/api/v1/series` of one cluster, whole range", &series),
    ] {
        let (timing, answer) = time_requests(port, path, 5)?;
        anyhow::ensure!(answer["status"] == "success", "{path}: {answer}");
        rows.push((what, timing));
    }
    let rss_after = querier.peak_rss();
    drop(querier);

    println!(
        "{} blocks ({CLUSTERS} clusters x {windows} windows of 2h, {SERIES} series each), {} objects, {:.1} MiB\n",
        args.blocks,
        objects,
        bytes as f64 / (1 << 20) as f64
    );
    println!("| measure | time |");
    println!("|---|---|");
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
    println!("| list the bucket (ids only) | {} |", ms(list));
    println!("| read every `meta.json` | {} |", ms(metas));
    println!("| catalog refresh, cold | {} |", ms(refresh));
    println!("| catalog refresh, nothing new | {} |", ms(again));
    println!(
        "| load every block's headers (footer, page index, label index) | {} |",
        ms(headers)
    );
    println!(
        "| querier cold start until `/-/ready` (all of the above) | {} |",
        ms(cold)
    );
    for (what, t) in rows {
        println!(
            "| {what}: first / warm median | {:.1} / {:.1} ms |",
            t.first * 1e3,
            t.median * 1e3
        );
    }
    println!(
        "\nQuerier resident memory: {:.0} MiB when ready, peak {:.0} MiB.",
        rss_ready as f64 / (1 << 20) as f64,
        rss_after as f64 / (1 << 20) as f64
    );
    Ok(())
}

/// Writes `n` blocks, cluster by cluster and window by window, a few at a time.
async fn write_blocks(store: &Arc<dyn object_store::ObjectStore>, n: usize) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        if tasks.len() >= 8
            && let Some(done) = tasks.join_next().await
        {
            done??;
        }
        let store = Arc::clone(store);
        tasks.spawn(async move {
            let (cluster, window) = (i % CLUSTERS, (i / CLUSTERS) as i64);
            let start = START_MS + window * WINDOW_MS;
            let series = (0..SERIES)
                .map(|s| {
                    let name = if s % 2 == 0 { "up" } else { "node_load1" };
                    let job = format!("job{}", s / 2);
                    Series {
                        labels: Labels::from_pairs([("__name__", name), ("job", &job)]),
                        samples: (0..WINDOW_MS / STEP_MS)
                            .map(|k| Sample {
                                t: start + k * STEP_MS,
                                v: ((k + s as i64) % 7) as f64,
                            })
                            .collect(),
                    }
                })
                .collect();
            let external = Labels::from_pairs([("cluster", format!("c{cluster}").as_str())]);
            fleetscope_store::write_block(&store, series, &external, &WriteOptions::default())
                .await
                .with_context(|| format!("block {i}"))?;
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

fn enc(q: &str) -> String {
    url::form_urlencoded::byte_serialize(q.as_bytes()).collect()
}
