//! `fleetscope-bench`: generate the fleet dataset and measure fleetscope against Prometheus on it.
//!
//! ```text
//! cargo run --profile bench-fast -p fleetscope-bench -- gen --preset small --out /tmp/fleet
//! cargo run --profile bench-fast -p fleetscope-bench -- storage --preset small
//! cargo run --profile bench-fast -p fleetscope-bench -- compare --preset small
//! cargo run -p fleetscope-bench -- crash --kills 100 --outage-secs 600
//! cargo run --profile bench-fast -p fleetscope-bench -- longrange
//! cargo run --profile bench-fast -p fleetscope-bench -- catalog --blocks 10000
//! ```

mod catalog;
mod compare;
mod crash;
mod longrange;
mod procs;
mod storage;

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use fleetscope_sim::fleet::{FleetSpec, generate_cluster};
use fleetscope_sim::openmetrics::{write_eof, write_series};

#[derive(Debug, Parser)]
#[command(
    about = "fleetscope benchmarks: the fleet dataset, and fleetscope vs Prometheus side by side"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Write the fleet dataset as one OpenMetrics file per cluster.
    Gen {
        /// tiny, small or medium.
        #[arg(long, default_value = "small")]
        preset: String,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Bytes per sample, import speed, CPU and peak memory: fleetscope import vs promtool tsdb create-blocks-from openmetrics.
    Storage {
        /// tiny, small or medium.
        #[arg(long, default_value = "small")]
        preset: String,
        /// Working directory (default: a fresh temporary one).
        #[arg(long)]
        work: Option<PathBuf>,
        /// promtool binary.
        #[arg(long, default_value = "promtool")]
        promtool: String,
        /// The fleetscope binary (default: next to this one).
        #[arg(long)]
        fleetscope: Option<PathBuf>,
    },
    /// Everything side by side with a real Prometheus: ingest, storage, queries, memory; one table.
    Compare(compare::Args),
    /// A 14-day dashboard on raw and downsampled blocks, and on Prometheus with the same data.
    Longrange(longrange::Args),
    /// The shipper SIGKILLed under load in every phase, and an object-store outage: every
    /// acknowledged sample must end up in the bucket exactly once.
    Crash(crash::Args),
    /// A bucket of many small blocks: listing, meta reads, header loading, a querier's cold start,
    /// planning and queries over every block.
    Catalog(catalog::Args),
}

/// A fixed, block-aligned start so every run produces the same blocks.
pub(crate) const START_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Gen { preset, out } => {
            for f in generate(&preset, &out)? {
                println!(
                    "{}: {} series, {} samples",
                    f.path.display(),
                    f.series,
                    f.samples
                );
            }
            Ok(())
        }
        Cmd::Storage {
            preset,
            work,
            promtool,
            fleetscope,
        } => storage::storage(&preset, work, &promtool, fleetscope),
        Cmd::Compare(args) => compare::run(args),
        Cmd::Crash(args) => crash::run(args),
        Cmd::Longrange(args) => longrange::run(args),
        Cmd::Catalog(args) => catalog::run(args),
    }
}

pub(crate) struct GenFile {
    pub(crate) cluster: String,
    pub(crate) path: PathBuf,
    pub(crate) series: usize,
    pub(crate) samples: usize,
}

pub(crate) fn generate(preset: &str, out: &Path) -> anyhow::Result<Vec<GenFile>> {
    let spec = FleetSpec::preset(preset, START_MS)
        .with_context(|| format!("unknown preset {preset:?} (tiny, small, medium)"))?;
    write_fleet(&spec, out, &|_| true, false)
}

/// Writes `spec`'s fleet as one OpenMetrics file per cluster in `out`: the families `keep`
/// accepts, each series with its `cluster` label when `cluster_label`.
pub(crate) fn write_fleet(
    spec: &FleetSpec,
    out: &Path,
    keep: &dyn Fn(&str) -> bool,
    cluster_label: bool,
) -> anyhow::Result<Vec<GenFile>> {
    std::fs::create_dir_all(out)?;
    let mut files = Vec::new();
    for cluster in &spec.clusters {
        let path = out.join(format!("{}.om", cluster.name));
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        let (mut series, mut samples, mut err) = (0, 0, None);
        generate_cluster(spec, cluster, &mut |mut s| {
            if s.samples.is_empty() || err.is_some() || !keep(s.name) {
                return;
            }
            if cluster_label {
                s.labels.push(("cluster", cluster.name.clone()));
            }
            series += 1;
            match write_series(&mut w, &s) {
                Ok(n) => samples += n,
                Err(e) => err = Some(e),
            }
        });
        if let Some(e) = err {
            return Err(e).context(format!("write {}", path.display()));
        }
        write_eof(&mut w)?;
        std::io::Write::flush(&mut w)?;
        files.push(GenFile {
            cluster: cluster.name.clone(),
            path,
            series,
            samples,
        });
    }
    Ok(files)
}

pub(crate) fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    Ok(dir_usage(dir)?.1)
}

/// Files under `dir` and their bytes, subdirectories included.
pub(crate) fn dir_usage(dir: &Path) -> anyhow::Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let (f, b) = if meta.is_dir() {
            dir_usage(&entry.path())?
        } else {
            (1, meta.len())
        };
        files += f;
        bytes += b;
    }
    Ok((files, bytes))
}
