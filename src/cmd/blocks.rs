//! `fleetscope blocks ls|inspect`: what is in the object store.

use chrono::{DateTime, Utc};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use fleetscope_store::{BlockId, BlockMeta, BlockReader};

use crate::args::ObjstoreArgs;

/// `blocks` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List blocks: id, external labels, time range (UTC), series, samples, size.
    Ls {
        #[command(flatten)]
        objstore: ObjstoreArgs,
        /// Print JSON (one meta per line) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one block's meta and its series and samples per metric.
    Inspect {
        #[command(flatten)]
        objstore: ObjstoreArgs,
        /// The block's ULID.
        id: BlockId,
    },
}

pub(super) async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Ls { objstore, json } => {
            let store = objstore.open()?;
            let metas = BlockMeta::list(&store).await?;
            if json {
                for m in &metas {
                    println!("{}", serde_json::to_string(m)?);
                }
                return Ok(());
            }
            print_table(&metas);
        }
        Command::Inspect { objstore, id } => {
            let store = objstore.open()?;
            let meta = BlockMeta::read(store.as_ref(), id).await?;
            println!("block      {}", meta.ulid);
            println!("version    {}", meta.version);
            println!("labels     {}", external(&meta));
            println!(
                "time       {} .. {} ({} .. {} ms)",
                utc(meta.min_t),
                utc(meta.max_t),
                meta.min_t,
                meta.max_t
            );
            println!("series     {}", meta.stats.series);
            println!("samples    {}", meta.stats.samples);
            println!(
                "size       {} ({:.3} bytes/sample)",
                human_bytes(meta.stats.bytes),
                meta.stats.bytes as f64 / meta.stats.samples.max(1) as f64
            );
            println!("producer   {}", meta.producer);
            if meta.resolution > 0 {
                println!("resolution {} ms", meta.resolution);
            }
            match meta.sub_chunks {
                Some(g) => println!(
                    "chunks     {} sub-chunks of {} s per series",
                    g.count,
                    g.width / 1000
                ),
                None => println!("chunks     one per series"),
            }
            println!(
                "compaction level {}, sources {:?}",
                meta.compaction.level,
                meta.compaction
                    .sources
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            );
            let counts = BlockReader::new(store, meta).metric_counts().await?;
            let mut table = Table::new();
            table
                .load_preset(UTF8_FULL_CONDENSED)
                .set_header(["METRIC", "SERIES", "SAMPLES"]);
            for c in counts {
                table.add_row([c.name, c.series.to_string(), c.samples.to_string()]);
            }
            println!("{table}");
        }
    }
    Ok(())
}

/// Prints blocks as a table with a total line.
pub(crate) fn print_table(metas: &[BlockMeta]) {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "ULID",
        "EXTERNAL LABELS",
        "MIN TIME (UTC)",
        "MAX TIME (UTC)",
        "RES",
        "SERIES",
        "SAMPLES",
        "SIZE",
        "B/SAMPLE",
    ]);
    for m in metas {
        table.add_row([
            m.ulid.to_string(),
            external(m),
            utc(m.min_t),
            utc(m.max_t),
            fleetscope_store::downsample::resolution_name(m.resolution),
            m.stats.series.to_string(),
            m.stats.samples.to_string(),
            human_bytes(m.stats.bytes),
            format!(
                "{:.3}",
                m.stats.bytes as f64 / m.stats.samples.max(1) as f64
            ),
        ]);
    }
    println!("{table}");
    let (samples, bytes) = metas
        .iter()
        .fold((0, 0), |(s, b), m| (s + m.stats.samples, b + m.stats.bytes));
    println!(
        "{} block(s), {samples} samples, {}",
        metas.len(),
        human_bytes(bytes)
    );
}

fn external(m: &BlockMeta) -> String {
    let labels: Vec<String> = m
        .external_labels
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{{{}}}", labels.join(", "))
}

fn utc(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms"),
        |t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
    )
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
