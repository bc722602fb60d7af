//! `fleetscope capacity`: which clusters can run a gang-scheduled job now (all its pods at once),
//! from the fleet's kube-state-metrics. Exit 0 when some cluster fits, 1 when none does, 2 on an
//! error, so an admission hook can call it.

use std::sync::Arc;

use anyhow::Context;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use fleetscope_query::capacity::{Capacity, Job, capacity, parse_quantity};
use fleetscope_query::{Catalog, Fanout, Source};

use crate::args::{ObjstoreArgs, RemoteArgs, parse_time};

/// Flags of `fleetscope capacity`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    objstore: ObjstoreArgs,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Pods of the job, all of which must run at once.
    #[arg(long)]
    pods: u64,
    /// GPUs each pod asks for.
    #[arg(long = "gpus-per-pod", default_value = "0", value_parser = parse_quantity)]
    gpus_per_pod: f64,
    /// CPU each pod asks for (`4`, `500m`).
    #[arg(long = "cpu-per-pod", default_value = "0", value_parser = parse_quantity)]
    cpu_per_pod: f64,
    /// Memory each pod asks for (`64Gi`, `512Mi`).
    #[arg(long = "memory-per-pod", default_value = "0", value_parser = parse_quantity)]
    memory_per_pod: f64,
    /// Only this cluster (repeatable).
    #[arg(long)]
    cluster: Vec<String>,
    /// When: RFC 3339, Unix seconds, `now` or `-1h` (default: now).
    #[arg(long, allow_hyphen_values = true)]
    time: Option<String>,
    /// `table` or `json` (the same JSON as `GET /api/v1/fleet/capacity` answers in `data`).
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
}

/// Output formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(super) enum Output {
    /// A table for people.
    Table,
    /// JSON for programs.
    Json,
}

/// No cluster can run the job: exit status 1 (the answer itself is printed).
#[derive(Debug, thiserror::Error)]
#[error("no cluster can run the job now")]
pub struct NoneFits;

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    let time = args
        .time
        .as_deref()
        .map(|t| parse_time(t, now))
        .transpose()?
        .unwrap_or(now);
    let catalog = Arc::new(Catalog::new(args.objstore.open()?));
    catalog.refresh().await.context("list blocks")?;
    let mut sources: Vec<Arc<dyn Source>> = vec![catalog];
    sources.extend(args.remote.sources(std::time::Duration::from_secs(60))?);
    let source: Arc<dyn Source> = Arc::new(Fanout(sources));
    let job = Job {
        pods: args.pods,
        gpus_per_pod: args.gpus_per_pod,
        cpu_per_pod: args.cpu_per_pod,
        memory_per_pod: args.memory_per_pod,
    };
    let (answer, warnings) =
        fleetscope_query::warnings::collect(capacity(&source, job, &args.cluster, time)).await;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    let answer = answer?;
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&answer)?),
        Output::Table => print_table(&answer, now),
    }
    if answer.any_fits() {
        Ok(())
    } else {
        Err(NoneFits.into())
    }
}

/// The answer as a table for people: the job, then a row per cluster.
pub(super) fn print_table(answer: &Capacity, now: i64) {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header([
        "cluster",
        "fits",
        "jobs",
        "placeable pods",
        "free GPUs",
        "most on a node",
        "free CPU",
        "free memory",
        "nodes",
        "data",
    ]);
    for c in &answer.clusters {
        let nodes = if c.excluded_nodes.is_empty() {
            c.schedulable_nodes.to_string()
        } else {
            format!(
                "{} ({} out: {})",
                c.schedulable_nodes,
                c.excluded_nodes.len(),
                c.excluded_nodes.join(", ")
            )
        };
        let age = (now.max(answer.time_ms) - c.last_seen_ms) / 1000;
        let data = if c.stale {
            format!("STALE: last seen {} ago", human_secs(age))
        } else {
            "fresh".to_string()
        };
        t.add_row([
            c.cluster.clone(),
            if c.fits { "yes" } else { "no" }.to_string(),
            c.jobs_that_fit.to_string(),
            c.placeable_pods.to_string(),
            format!("{}", c.free_gpus),
            format!("{}", c.largest_free_gpus_on_a_node),
            format!("{:.1}", c.free_cpu),
            format!("{:.1} GiB", c.free_memory_bytes / (1u64 << 30) as f64),
            nodes,
            data,
        ]);
    }
    let j = &answer.job;
    println!(
        "job: {} pods x ({} GPU, {} CPU, {:.1} GiB memory)",
        j.pods,
        j.gpus_per_pod,
        j.cpu_per_pod,
        j.memory_per_pod / (1u64 << 30) as f64
    );
    println!("{t}");
}

fn human_secs(s: i64) -> String {
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}
