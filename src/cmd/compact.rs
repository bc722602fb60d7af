//! `fleetscope compact`: merges each source's 2h blocks into larger ones, writes 5m and 1h
//! downsampled blocks, applies retention per resolution, and deletes what was merged away once
//! queriers can no longer be reading it.

use std::time::Duration;

use anyhow::Context;
use fleetscope_store::compact::{CompactOptions, compact};

use crate::args::{ObjstoreArgs, parse_duration};

/// Flags of `fleetscope compact`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    objstore: ObjstoreArgs,
    /// Window of merged blocks (aligned to the epoch); a window is merged once it is over.
    #[arg(long, env = "FLEETSCOPE_COMPACT_RANGE", default_value = "24h", value_parser = parse_duration)]
    range: Duration,
    /// Delete blocks whose newest sample is older than this, at every resolution not given its own
    /// retention below (default: keep everything).
    #[arg(long, env = "FLEETSCOPE_RETENTION", value_parser = parse_duration)]
    retention: Option<Duration>,
    /// Retention of raw blocks (keep it above 48h, the window the 5m level summarises).
    #[arg(long = "retention.resolution-raw", env = "FLEETSCOPE_RETENTION_RESOLUTION_RAW", value_parser = parse_duration)]
    retention_raw: Option<Duration>,
    /// Retention of 5m-resolution blocks (keep it above 14d, the window the 1h level summarises).
    #[arg(long = "retention.resolution-5m", env = "FLEETSCOPE_RETENTION_RESOLUTION_5M", value_parser = parse_duration)]
    retention_5m: Option<Duration>,
    /// Retention of 1h-resolution blocks.
    #[arg(long = "retention.resolution-1h", env = "FLEETSCOPE_RETENTION_RESOLUTION_1H", value_parser = parse_duration)]
    retention_1h: Option<Duration>,
    /// Write no 5m or 1h blocks (by default each finished 48h window of raw blocks spanning 40h
    /// or more gets a 5m block, each 14-day window of 5m blocks spanning 10 days a 1h block).
    #[arg(long = "downsampling.disable", env = "FLEETSCOPE_DOWNSAMPLING_DISABLE")]
    downsampling_disable: bool,
    /// How long a merged-away or expired block is kept, marked, before it is deleted (keep it above
    /// the queriers' `--refresh` plus their longest query).
    #[arg(long = "delete-delay", env = "FLEETSCOPE_DELETE_DELAY", default_value = "30m", value_parser = parse_duration)]
    delete_delay: Duration,
    /// Delete the files of a block that has no `meta.json` (an upload or import killed before it
    /// published) once its newest file is this old; keep it above the longest import.
    #[arg(long = "partial-delay", env = "FLEETSCOPE_PARTIAL_DELAY", default_value = "48h", value_parser = parse_duration)]
    partial_delay: Duration,
    /// An external label telling HA replicas apart (`replica`): their blocks of a window merge into
    /// one without it, series deduplicated as the querier's `--query.replica-label` does
    /// (repeatable or comma-separated).
    #[arg(
        long = "deduplication.replica-label",
        env = "FLEETSCOPE_DEDUPLICATION_REPLICA_LABEL",
        value_delimiter = ','
    )]
    replica_labels: Vec<String>,
    /// Keep running, one pass every interval (default: one pass, then exit).
    #[arg(long = "wait", env = "FLEETSCOPE_COMPACT_WAIT", value_parser = parse_duration)]
    wait: Option<Duration>,
}

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    let store = args.objstore.open()?;
    let ms = |d: Duration| d.as_millis() as i64;
    anyhow::ensure!(!args.range.is_zero(), "--range must be positive");
    // As Thanos: a level's input must outlive the window that summarises it.
    if !args.downsampling_disable {
        let day = Duration::from_secs(24 * 3600);
        for (flag, retention, least) in [
            ("raw", args.retention_raw.or(args.retention), 2 * day),
            ("5m", args.retention_5m.or(args.retention), 14 * day),
        ] {
            anyhow::ensure!(
                retention.is_none_or(|r| r >= least),
                "the retention of {flag} blocks must be at least {}h, the window the next level \
                 summarises (or pass --downsampling.disable)",
                least.as_secs() / 3600
            );
        }
    }
    loop {
        let opts = CompactOptions {
            range_ms: ms(args.range),
            retention_ms: [args.retention_raw, args.retention_5m, args.retention_1h]
                .map(|r| r.or(args.retention).map(ms)),
            downsample: !args.downsampling_disable,
            delete_delay_ms: ms(args.delete_delay),
            partial_delay_ms: ms(args.partial_delay),
            now_ms: chrono::Utc::now().timestamp_millis(),
            producer: format!("fleetscope-compact/{}", env!("CARGO_PKG_VERSION")),
            replica_labels: args.replica_labels.clone(),
        };
        let report = compact(&store, &opts)
            .await
            .with_context(|| format!("compact {}", args.objstore.objstore))?;
        for (merged, from) in &report.merged {
            println!("merged {} blocks into {merged}", from.len());
        }
        for (block, resolution, from) in &report.downsampled {
            println!(
                "downsampled {} blocks into {block} at {}",
                from.len(),
                fleetscope_store::downsample::resolution_name(*resolution)
            );
        }
        for (ids, why) in &report.skipped {
            let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
            println!(
                "left {} alone: a block cannot be read: {why}",
                ids.join(", ")
            );
        }
        for id in &report.leftovers {
            println!("deleted the files of unpublished block {id} (no meta.json)");
        }
        println!(
            "{} merged, {} downsampled, {} marked for deletion, {} deleted, {} unpublished removed",
            report.merged.len(),
            report.downsampled.len(),
            report.marked.len(),
            report.deleted.len(),
            report.leftovers.len()
        );
        match args.wait {
            Some(every) => {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = crate::args::shutdown_signal() => return Ok(()),
                }
            }
            None => return Ok(()),
        }
    }
}
