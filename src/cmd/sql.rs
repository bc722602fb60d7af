//! `fleetscope sql`: SQL over the fleet's metrics from the command line (a table per metric).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fleetscope_query::{Catalog, Engine, Fanout, Source, Sql};

use crate::args::{ObjstoreArgs, QueryArgs, RemoteArgs, parse_duration};

/// Flags of `fleetscope sql`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    objstore: ObjstoreArgs,
    #[command(flatten)]
    query: QueryArgs,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Longest a remote-read endpoint may take to answer.
    #[arg(long = "query.timeout", env = "FLEETSCOPE_QUERY_TIMEOUT", default_value = "2m", value_parser = parse_duration)]
    timeout: Duration,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
    /// Print the statement's physical plan instead of running it.
    #[arg(long)]
    explain: bool,
    /// The SQL statement, e.g. `SELECT cluster, avg(value) FROM "DCGM_FI_DEV_GPU_UTIL" GROUP BY cluster`.
    statement: String,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Output {
    Table,
    Json,
    Csv,
}

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    let catalog = Catalog::new(args.objstore.open()?);
    catalog.refresh().await.context("list blocks")?;
    let mut sources: Vec<Arc<dyn Source>> = vec![Arc::new(catalog)];
    sources.extend(args.remote.sources(args.timeout)?);
    let engine = Engine::new(args.query.engine_options());
    let sql = Sql::new(&engine, args.query.deduplicated(Arc::new(Fanout(sources))));
    if args.explain {
        println!("{}", sql.explain(&args.statement).await?);
        return Ok(());
    }
    let result = tokio::time::timeout(args.timeout, sql.query(&args.statement))
        .await
        .context("the statement timed out")??;
    let mut out = Vec::new();
    match args.output {
        Output::Table => {
            let table = arrow::util::pretty::pretty_format_batches(&result.batches)?;
            out.extend(format!("{table}\n").into_bytes());
        }
        Output::Json => {
            let mut w = arrow::json::ArrayWriter::new(&mut out);
            for b in &result.batches {
                w.write(b)?;
            }
            w.finish()?;
            out.push(b'\n');
        }
        Output::Csv => {
            let mut w = arrow::csv::Writer::new(&mut out);
            for b in &result.batches {
                w.write(b)?;
            }
        }
    }
    // A reader that went away (`| head`) is not an error.
    match std::io::stdout().lock().write_all(&out) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("write to stdout"),
    }
}
