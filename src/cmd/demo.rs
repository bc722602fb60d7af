//! `fleetscope demo`: a simulated fleet of three clusters on a local folder, nothing external.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use fleetscope_bench::fleet::{FleetSpec, generate_cluster};
use fleetscope_ingest::cutter::{DEFAULT_BLOCK_DURATION, write_windows};
use fleetscope_store::{BlockMeta, Labels, MemSeriesSet, WriteOptions, objstore};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::parse_duration;

/// Flags of `fleetscope demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder used as the object store (created if missing).
    #[arg(long, env = "FLEETSCOPE_DEMO_DIR", default_value = "fleetscope-demo")]
    dir: PathBuf,
    /// Simulated history, ending now.
    #[arg(long, default_value = "6h", value_parser = parse_duration)]
    duration: Duration,
    /// Discard existing data in `--dir` and generate it again.
    #[arg(long)]
    fresh: bool,
}

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    let dir = std::path::absolute(&args.dir)
        .with_context(|| format!("resolve {}", args.dir.display()))?;
    if args.fresh && dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
    }
    let url = format!("file://{}", dir.display());
    let store = objstore::open(&url)?;
    let mut metas = BlockMeta::list(&store).await?;
    if metas.is_empty() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("system clock before 1970")?
            .as_millis() as i64;
        let duration_ms = args.duration.as_millis() as i64;
        let spec = FleetSpec::standard(1, now - duration_ms, duration_ms);
        let bar = ProgressBar::new(spec.clusters.len() as u64).with_style(
            ProgressStyle::with_template("simulating {bar:30} {pos}/{len} clusters {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        for cluster in &spec.clusters {
            bar.set_message(cluster.name.clone());
            let mut set = MemSeriesSet::new();
            generate_cluster(&spec, cluster, &mut |s| set.append_series(s.to_series()));
            let external = Labels::from_pairs([("cluster", cluster.name.as_str())]);
            let options = WriteOptions {
                producer: "fleetscope-demo".into(),
                ..Default::default()
            };
            write_windows(
                &store,
                set,
                &external,
                DEFAULT_BLOCK_DURATION,
                &options,
                &mut |_| {},
            )
            .await?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        metas = BlockMeta::list(&store).await?;
    } else {
        println!(
            "reusing the fleet in {} (--fresh regenerates it)",
            dir.display()
        );
    }
    super::blocks::print_table(&metas);
    println!("\nobject store: {url}\ninspect it:   fleetscope blocks ls --objstore {url}");
    Ok(())
}
