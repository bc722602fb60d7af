//! `fleetscope import`: backfill blocks from OpenMetrics / Prometheus text files with timestamps.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use fleetscope_ingest::cutter::{DEFAULT_BLOCK_DURATION, write_windows};
use fleetscope_ingest::openmetrics::{self, TimestampUnit};
use fleetscope_store::{MemSeriesSet, WriteOptions};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{ExternalLabelArgs, ObjstoreArgs, parse_duration};

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
    /// Files to import. All are parsed before anything is written.
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
    let external = args.labels.labels();
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
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "parsing  {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    // Parse everything first: a malformed file must leave the object store untouched.
    let mut set = MemSeriesSet::new();
    let mut done = 0u64;
    for file in &args.files {
        let name = file.display().to_string();
        let input = std::fs::read(file).with_context(|| format!("read {name}"))?;
        let parsed = openmetrics::parse(&input, unit, &mut |n| bar.set_position(done + n as u64))
            .map_err(|error| fleetscope_ingest::Error::Parse { file: name, error })?;
        done += input.len() as u64;
        for series in parsed.series {
            set.append_series(series);
        }
    }
    bar.finish_and_clear();
    let (series, samples) = (set.len(), set.samples());
    if samples == 0 {
        anyhow::bail!(
            "no samples in {} file(s); nothing to import",
            args.files.len()
        );
    }
    let parsed_in = started.elapsed();

    let store = args.objstore.open()?;
    let blocks_bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("writing  {spinner} {pos} blocks")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    blocks_bar.enable_steady_tick(Duration::from_millis(100));
    let options = WriteOptions {
        producer: format!("fleetscope-import/{}", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    };
    let duration = if args.block_duration.is_zero() {
        DEFAULT_BLOCK_DURATION
    } else {
        args.block_duration
    };
    let metas = write_windows(&store, set, &external, duration, &options, &mut |_| {
        blocks_bar.inc(1)
    })
    .await?;
    blocks_bar.finish_and_clear();

    let bytes: u64 = metas.iter().map(|m| m.stats.bytes).sum();
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "imported {} file(s): {series} series, {samples} samples, {} block(s), {bytes} bytes ({:.3} bytes/sample) in {elapsed:.2}s ({:.0} samples/s; parsing {:.2}s)",
        args.files.len(),
        metas.len(),
        bytes as f64 / samples as f64,
        samples as f64 / elapsed,
        parsed_in.as_secs_f64(),
    );
    Ok(())
}
