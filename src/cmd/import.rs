//! `fleetscope import`: backfill blocks from OpenMetrics / Prometheus text files with timestamps.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use fleetscope_ingest::cutter::DEFAULT_BLOCK_DURATION;
use fleetscope_ingest::import::{ImportOptions, Progress, discard, import_file, publish};
use fleetscope_ingest::openmetrics::TimestampUnit;
use fleetscope_store::WriteOptions;
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{ExternalLabelArgs, ObjstoreArgs, parse_duration, parse_size};

/// Flags of `fleetscope import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    objstore: ObjstoreArgs,
    #[command(flatten)]
    labels: ExternalLabelArgs,
    /// Input format: `openmetrics` (timestamps in seconds) or `prometheus` (text format, milliseconds).
    #[arg(
        long,
        env = "FLEETSCOPE_IMPORT_FORMAT",
        value_enum,
        default_value = "openmetrics"
    )]
    format: Format,
    /// Length of the aligned time window of each block.
    #[arg(long = "block-duration", env = "FLEETSCOPE_BLOCK_DURATION", default_value = "2h", value_parser = parse_duration)]
    block_duration: Duration,
    /// Memory the import may use (about: samples are held coded, and windows written out when
    /// the budget is reached). A number with an optional unit: 512MiB, 2GiB.
    #[arg(long = "max-memory", env = "FLEETSCOPE_IMPORT_MAX_MEMORY", default_value = "512MiB", value_parser = parse_size)]
    max_memory: u64,
    /// Files to import, read once each, several at a time. Blocks become visible only once every
    /// file is in.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Input formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    /// OpenMetrics text, timestamps in seconds with decimals.
    Openmetrics,
    /// Prometheus text exposition format, timestamps in integer milliseconds.
    Prometheus,
}

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let unit = match args.format {
        Format::Openmetrics => TimestampUnit::Seconds,
        Format::Prometheus => TimestampUnit::Milliseconds,
    };
    let total: u64 = args
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let max_memory = usize::try_from(args.max_memory).unwrap_or(usize::MAX);
    // Files in parallel up to the cores, each with at least MIN_FILE_MEMORY of the budget.
    let parallel = args
        .files
        .len()
        .min(cores)
        .min(max_memory / MIN_FILE_MEMORY)
        .max(1);
    let duration = if args.block_duration.is_zero() {
        DEFAULT_BLOCK_DURATION
    } else {
        args.block_duration
    };
    let options = ImportOptions {
        unit,
        duration_ms: i64::try_from(duration.as_millis()).unwrap_or(i64::MAX),
        external_labels: args.labels.labels(),
        write: WriteOptions {
            producer: format!("fleetscope-import/{}", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        },
        // A file uses about three times its head's share, plus its labels: a quarter each.
        head_bytes: max_memory / parallel / 4,
    };
    let store = args.objstore.open()?;

    let progress = Arc::new(Progress::default());
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "importing {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let ticker = {
        let (bar, progress) = (bar.clone(), Arc::clone(&progress));
        tokio::spawn(async move {
            loop {
                let seconds = started.elapsed().as_secs_f64().max(1e-3);
                let samples = progress.samples.load(Ordering::Relaxed);
                bar.set_position(progress.bytes.load(Ordering::Relaxed));
                bar.set_message(format!(
                    "{samples} samples ({:.0}/s), {} blocks, memory {}",
                    samples as f64 / seconds,
                    progress.blocks.load(Ordering::Relaxed),
                    indicatif::HumanBytes(anonymous_memory().unwrap_or(0)),
                ));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    let written = Arc::new(Mutex::new(Vec::new()));
    let files = futures::stream::iter(args.files.clone())
        .map(|file| {
            let (store, options) = (Arc::clone(&store), options.clone());
            let (progress, written) = (Arc::clone(&progress), Arc::clone(&written));
            async move {
                import_file(&store, &file, &options, &progress, &written)
                    .await
                    .map_err(anyhow::Error::from)
            }
        })
        .buffer_unordered(parallel)
        .try_collect::<Vec<_>>();
    let outcome = tokio::select! {
        r = files => r,
        _ = crate::args::shutdown_signal() => Err(anyhow::anyhow!("interrupted")),
    };
    ticker.abort();
    bar.finish_and_clear();
    let mut metas = std::mem::take(&mut *written.lock().unwrap_or_else(PoisonError::into_inner));
    let imported = match outcome {
        Ok(files) => files,
        Err(e) => {
            // Nothing of a failed run stays: its blocks were never published.
            if let Err(d) = discard(&store, &metas).await {
                tracing::warn!(error = %d, "could not delete the unpublished blocks of the failed import; `fleetscope compact` will");
            }
            return Err(e);
        }
    };
    let series: usize = imported.iter().map(|f| f.series).sum();
    let samples: usize = imported.iter().map(|f| f.samples).sum();
    if samples == 0 {
        anyhow::bail!(
            "no samples in {} file(s); nothing to import",
            args.files.len()
        );
    }
    metas.sort_by_key(|m| (m.min_t, m.ulid));
    publish(&store, &metas).await?;

    let bytes: u64 = metas.iter().map(|m| m.stats.bytes).sum();
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "imported {} file(s): {series} series, {samples} samples, {} block(s), {bytes} bytes ({:.3} bytes/sample) in {elapsed:.2}s ({:.0} samples/s, {parallel} file(s) at a time)",
        args.files.len(),
        metas.len(),
        bytes as f64 / samples.max(1) as f64,
        samples as f64 / elapsed,
    );
    Ok(())
}

/// The smallest share of `--max-memory` a file is imported with.
const MIN_FILE_MEMORY: usize = 32 << 20;

/// This process's anonymous resident memory (`RssAnon` of `/proc/self/status`), in bytes.
fn anonymous_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status.lines().find_map(|l| l.strip_prefix("RssAnon:"))?;
    kb.trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}
