//! `fleetscope query`: PromQL from the command line, on the querier's engine.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use fleetscope_query::{Catalog, Engine, QueryValue};

use crate::args::{ObjstoreArgs, QueryArgs, parse_duration, parse_time};

/// Flags of `fleetscope query`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    objstore: ObjstoreArgs,
    #[command(flatten)]
    query: QueryArgs,
    /// Evaluation time of an instant query: RFC 3339 or Unix seconds (default: now).
    #[arg(long, allow_hyphen_values = true, conflicts_with_all = ["start", "end"])]
    time: Option<String>,
    /// Start of a range query: RFC 3339, Unix seconds, or `-6h` relative to now.
    #[arg(long, allow_hyphen_values = true, requires = "end")]
    start: Option<String>,
    /// End of a range query (same forms; `now` allowed).
    #[arg(long, allow_hyphen_values = true, requires = "start")]
    end: Option<String>,
    /// Step of a range query.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    step: Duration,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
    /// Print the query's physical plan (nodes and partitions) instead of running it.
    #[arg(long)]
    explain: bool,
    /// With `--explain`: run the query and print each node's figures (rows, samples, bytes, time).
    #[arg(long, requires = "explain")]
    analyze: bool,
    /// The PromQL expression.
    expr: String,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Output {
    Table,
    Json,
    Csv,
    /// A line chart of a range query in the terminal.
    Chart,
}

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    let now = chrono::Utc::now().timestamp_millis();
    // Check the expression before touching the object store, so a typo answers at once.
    if let Err(e) = Engine::parse(&args.expr) {
        anyhow::bail!("{}", mark_position(&args.expr, &e.to_string()));
    }
    if matches!(args.output, Output::Chart) && args.start.is_none() {
        anyhow::bail!("--output chart draws a range query: give --start and --end");
    }
    let catalog = Catalog::new(args.objstore.open()?);
    catalog.refresh().await.context("list blocks")?;
    let source = args.query.deduplicated(Arc::new(catalog));
    let engine = Engine::new(args.query.engine_options());
    let planned = match (&args.start, &args.end) {
        (Some(start), Some(end)) => {
            let (start, end) = (parse_time(start, now)?, parse_time(end, now)?);
            let step = args.step.as_millis() as i64;
            engine.plan_range(&source, &args.expr, start, end, step)?
        }
        _ => {
            let t = args
                .time
                .as_deref()
                .map(|t| parse_time(t, now))
                .transpose()?
                .unwrap_or(now);
            engine.plan_instant(&source, &args.expr, t)?
        }
    };
    if args.explain && !args.analyze {
        println!("{}", planned.display());
        return Ok(());
    }
    // Partial answers (a block or an endpoint skipped) say so on stderr, as the API's `warnings`.
    let (value, warnings) = fleetscope_query::warnings::collect(engine.execute(&planned)).await;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    let value = value?;
    if args.explain {
        println!("{}", planned.display_metrics());
        return Ok(());
    }
    print(&value, args.output, &args.expr)
}

/// The range result as a chart sized to the terminal (100x25 when not one), coloured on a
/// terminal unless `NO_COLOR` is set.
fn chart(expr: &str, series: &[fleetscope_query::RangeSeries]) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    let tty = std::io::stdout().is_terminal();
    let (width, height) = tty
        .then(|| ratatui::crossterm::terminal::size().ok())
        .flatten()
        .map_or((100, 25), |(w, h)| (w, h.saturating_sub(2).max(10)));
    let (unit, per_second) = crate::chart::guess_unit(&Engine::parse(expr)?);
    let opts = crate::chart::ChartOptions {
        title: expr.to_string(),
        unit,
        per_second,
        tz: *chrono::Local::now().offset(),
        colour: tty && std::env::var_os("NO_COLOR").is_none(),
    };
    let area = ratatui::layout::Rect::new(0, 0, width, height);
    let mut buf = ratatui::buffer::Buffer::empty(area);
    crate::chart::render(series, &opts, area, &mut buf);
    Ok(crate::chart::to_text(&buf, opts.colour))
}

/// The parser's message with the query and a caret under the reported position, when there is one.
fn mark_position(expr: &str, message: &str) -> String {
    // The engine's parse errors start with `line:column:`.
    let mut parts = message.splitn(3, ':');
    let line = parts.next().and_then(|l| l.trim().parse::<usize>().ok());
    let col = parts.next().and_then(|c| c.trim().parse::<usize>().ok());
    match (line, col) {
        (Some(line), Some(col)) if line >= 1 => {
            let text = expr.lines().nth(line - 1).unwrap_or(expr);
            format!(
                "{message}\n  {text}\n  {}^",
                " ".repeat(col.saturating_sub(1))
            )
        }
        _ => format!("{message}\n  {expr}"),
    }
}

fn print(value: &QueryValue, output: Output, expr: &str) -> anyhow::Result<()> {
    if let Output::Chart = output {
        let QueryValue::Matrix(series) = value else {
            anyhow::bail!(
                "--output chart draws a range query (--start and --end); this query answered a {}",
                value.type_name()
            );
        };
        print!("{}", chart(expr, series)?);
        return Ok(());
    }
    let rows: Vec<(fleetscope_store::Labels, i64, f64)> = match value {
        QueryValue::Scalar { t, v } => vec![(Default::default(), *t, *v)],
        QueryValue::String { t, s } => {
            println!("{s} @ {t}");
            return Ok(());
        }
        QueryValue::Vector(v) => v.iter().map(|s| (s.labels.clone(), s.t, s.v)).collect(),
        QueryValue::Matrix(m) => m
            .iter()
            .flat_map(|s| s.samples.iter().map(|(t, v)| (s.labels.clone(), *t, *v)))
            .collect(),
    };
    let mut names: Vec<String> = rows
        .iter()
        .flat_map(|(l, _, _)| l.iter().map(|l| l.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    match output {
        // Drawn above, before the rows are made.
        Output::Chart => {}
        Output::Json => {
            let data = fleetscope_query::api::render_query_data(value);
            println!("{data}");
        }
        Output::Csv => {
            println!("{},timestamp,value", names.join(","));
            for (labels, t, v) in &rows {
                let cells: Vec<String> = names
                    .iter()
                    .map(|n| csv_cell(labels.get(n).unwrap_or("")))
                    .collect();
                println!("{},{},{}", cells.join(","), *t as f64 / 1000.0, v);
            }
        }
        Output::Table => {
            let mut table = Table::new();
            let mut header: Vec<String> = names.clone();
            header.extend(["TIME (UTC)".to_string(), "VALUE".to_string()]);
            table.load_preset(UTF8_FULL_CONDENSED).set_header(header);
            for (labels, t, v) in &rows {
                let mut row: Vec<String> = names
                    .iter()
                    .map(|n| labels.get(n).unwrap_or("").to_string())
                    .collect();
                let time = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(*t).map_or_else(
                    || t.to_string(),
                    |d| d.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                );
                row.extend([time, format!("{v}")]);
                table.add_row(row);
            }
            println!("{table}");
            println!("{} row(s)", rows.len());
        }
    }
    Ok(())
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
