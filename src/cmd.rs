//! The subcommands: one module each.

mod blocks;
mod capacity;
mod compact;
mod demo;
mod import;
mod querier;
mod query;
mod shipper;
mod sql;
mod top;

use clap::{Parser, Subcommand};

use crate::args::LogArgs;

pub use capacity::NoneFits;

/// fleetscope: one global view of many Prometheus clusters, on object storage.
#[derive(Debug, Parser)]
#[command(name = "fleetscope", version, about, long_about = None)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
    /// Logging flags.
    #[command(flatten)]
    pub log: LogArgs,
}

/// What to run.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a simulated three-cluster fleet on a local folder.
    Demo(demo::Args),
    /// Backfill blocks from OpenMetrics / Prometheus text files with timestamps.
    Import(import::Args),
    /// Receive remote-write next to a Prometheus, keep a WAL, cut and upload blocks.
    Shipper(shipper::Args),
    /// Serve the Prometheus HTTP API over every block of the object store.
    Querier(querier::Args),
    /// Run a PromQL query from the command line.
    Query(query::Args),
    /// Run a SQL statement over the fleet's metrics (a table per metric).
    Sql(sql::Args),
    /// Which clusters can run a gang-scheduled job now (exit 0: some fit, 1: none, 2: error).
    Capacity(capacity::Args),
    /// A live view of the fleet in the terminal (one plain table when not a terminal).
    Top(top::Args),
    /// List and inspect blocks in the object store.
    #[command(subcommand)]
    Blocks(blocks::Command),
    /// Merge blocks into larger ones, apply retention, delete what was merged away.
    Compact(compact::Args),
}

/// Runs a subcommand.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo(args) => demo::run(args).await,
        Command::Import(args) => import::run(args).await,
        Command::Shipper(args) => shipper::run(args).await,
        Command::Querier(args) => querier::run(args).await,
        Command::Query(args) => query::run(args).await,
        Command::Sql(args) => sql::run(args).await,
        Command::Capacity(args) => capacity::run(args).await,
        Command::Top(args) => top::run(args).await,
        Command::Blocks(cmd) => blocks::run(cmd).await,
        Command::Compact(args) => compact::run(args).await,
    }
}
