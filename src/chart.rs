//! A range query drawn as a line chart in the terminal (`fleetscope query --output chart`): one
//! line per series up to [`MAX_LINES`] (the rest summed as "other"), a legend with the labels that
//! differ between series, a time axis in the given time zone, and a value axis with units guessed
//! from the metric name. Drawn with ratatui's chart widget into a buffer, then printed as text.

use std::collections::BTreeMap;

use chrono::{FixedOffset, TimeZone};
use fleetscope_query::RangeSeries;
use fleetscope_store::Labels;
use promql_parser::parser::Expr;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Widget};

/// Lines drawn at most; beyond, the smallest series are summed into one "other" line.
pub const MAX_LINES: usize = 8;

/// Line colours, in order of the series' size; "other" is grey.
const PALETTE: [Color; MAX_LINES] = [
    Color::Cyan,
    Color::Yellow,
    Color::Magenta,
    Color::Green,
    Color::Red,
    Color::Blue,
    Color::LightCyan,
    Color::LightMagenta,
];
/// Without colour, lines differ by their marker.
const MARKERS: [(Marker, &str); 4] = [
    (Marker::Braille, "⣿"),
    (Marker::Dot, "•"),
    (Marker::Bar, "▄"),
    (Marker::Block, "█"),
];

/// What the values measure, guessed from the metric name's suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// `_seconds`: shown as ns, µs, ms, s, min, h.
    Seconds,
    /// `_bytes`: shown in B, KiB, MiB, GiB, TiB.
    Bytes,
    /// `_ratio`: shown as a percentage.
    Ratio,
    /// Anything else: SI prefixes.
    Plain,
}

/// The unit of a query's result and whether it is per second (a `rate`), from its first metric.
pub fn guess_unit(expr: &Expr) -> (Unit, bool) {
    let (name, per_second) = first_metric(expr, false).unwrap_or_default();
    let base = ["_total", "_bucket", "_sum"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(&name);
    if base.ends_with("_seconds") {
        // Seconds per second (CPU time used per second) is a plain number: cores.
        return if per_second {
            (Unit::Plain, false)
        } else {
            (Unit::Seconds, false)
        };
    }
    let unit = if base.ends_with("_bytes") {
        Unit::Bytes
    } else if base.ends_with("_ratio") {
        Unit::Ratio
    } else {
        Unit::Plain
    };
    (unit, per_second)
}

/// The first selector's metric name, and whether a per-second function encloses it.
fn first_metric(expr: &Expr, per_second: bool) -> Option<(String, bool)> {
    match expr {
        Expr::VectorSelector(vs) => vs.name.clone().map(|n| (n, per_second)),
        Expr::MatrixSelector(ms) => ms.vs.name.clone().map(|n| (n, per_second)),
        Expr::Call(call) => {
            let args = || call.args.args.iter();
            match call.func.name {
                "rate" | "irate" | "deriv" => args().find_map(|a| first_metric(a, true)),
                // A quantile of the buckets' rates is in the buckets' unit.
                "histogram_quantile" | "histogram_avg" => args()
                    .find_map(|a| first_metric(a, false))
                    .map(|(name, _)| (name, per_second)),
                _ => args().find_map(|a| first_metric(a, per_second)),
            }
        }
        Expr::Aggregate(a) => first_metric(&a.expr, per_second),
        Expr::Binary(b) => {
            first_metric(&b.lhs, per_second).or_else(|| first_metric(&b.rhs, per_second))
        }
        Expr::Paren(p) => first_metric(&p.expr, per_second),
        Expr::Subquery(s) => first_metric(&s.expr, per_second),
        Expr::Unary(u) => first_metric(&u.expr, per_second),
        _ => None,
    }
}

/// `v` in `unit`, short enough for an axis label.
pub fn format_value(v: f64, unit: Unit, per_second: bool) -> String {
    let suffix = if per_second { "/s" } else { "" };
    let text = match unit {
        Unit::Seconds => {
            let a = v.abs();
            let (scale, name) = match a {
                _ if a == 0.0 => (1.0, "s"),
                _ if a < 1e-6 => (1e-9, "ns"),
                _ if a < 1e-3 => (1e-6, "µs"),
                _ if a < 1.0 => (1e-3, "ms"),
                _ if a < 60.0 => (1.0, "s"),
                _ if a < 3600.0 => (60.0, "min"),
                _ => (3600.0, "h"),
            };
            format!("{}{name}", short(v / scale))
        }
        Unit::Bytes => {
            let mut scaled = v;
            let mut i = 0;
            const NAMES: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
            while scaled.abs() >= 1024.0 && i + 1 < NAMES.len() {
                scaled /= 1024.0;
                i += 1;
            }
            format!("{}{}", short(scaled), NAMES[i])
        }
        Unit::Ratio => format!("{}%", short(v * 100.0)),
        Unit::Plain => {
            let a = v.abs();
            let (scale, name) = match a {
                _ if a >= 1e12 => (1e12, "T"),
                _ if a >= 1e9 => (1e9, "G"),
                _ if a >= 1e6 => (1e6, "M"),
                _ if a >= 1e3 => (1e3, "k"),
                _ => (1.0, ""),
            };
            format!("{}{name}", short(v / scale))
        }
    };
    text + suffix
}

/// A number with three significant digits at most, without trailing zeros.
fn short(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let decimals = match v.abs() {
        a if a == 0.0 || a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        a if a >= 1.0 => 2,
        _ => 3,
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// How the chart is drawn.
#[derive(Debug, Clone)]
pub struct ChartOptions {
    /// The query, shown as the title and used for the legend of a series without labels.
    pub title: String,
    /// Unit of the values.
    pub unit: Unit,
    /// Whether the values are per second.
    pub per_second: bool,
    /// Time zone of the time axis.
    pub tz: FixedOffset,
    /// Colour lines (a terminal); without, lines differ by marker.
    pub colour: bool,
}

/// A line to draw: its legend and its points `(t s, v)`, split where samples are missing.
struct Drawn {
    legend: String,
    segments: Vec<Vec<(f64, f64)>>,
}

/// The series to draw: the largest (by mean) first, beyond [`MAX_LINES`] the rest summed.
fn lines(series: &[RangeSeries], title: &str) -> Vec<Drawn> {
    let mean = |s: &RangeSeries| {
        let finite: Vec<f64> = s
            .samples
            .iter()
            .map(|x| x.1)
            .filter(|v| v.is_finite())
            .collect();
        finite.iter().sum::<f64>() / finite.len().max(1) as f64
    };
    let mut ranked: Vec<&RangeSeries> = series.iter().filter(|s| !s.samples.is_empty()).collect();
    ranked.sort_by(|a, b| mean(b).total_cmp(&mean(a)));
    let differing = differing_labels(&ranked);
    let keep = if ranked.len() > MAX_LINES {
        MAX_LINES - 1
    } else {
        ranked.len()
    };
    // The step: the smallest gap between samples; a larger gap breaks the line.
    let step = ranked
        .iter()
        .flat_map(|s| s.samples.windows(2).map(|w| w[1].0 - w[0].0))
        .filter(|d| *d > 0)
        .min()
        .unwrap_or(i64::MAX);
    let mut out: Vec<Drawn> = ranked[..keep]
        .iter()
        .map(|s| Drawn {
            legend: legend(&s.labels, &differing, title),
            segments: segments(&s.samples, step),
        })
        .collect();
    if ranked.len() > keep {
        let mut sum: BTreeMap<i64, f64> = BTreeMap::new();
        for s in &ranked[keep..] {
            for &(t, v) in s.samples.iter().filter(|x| x.1.is_finite()) {
                *sum.entry(t).or_default() += v;
            }
        }
        let samples: Vec<(i64, f64)> = sum.into_iter().collect();
        out.push(Drawn {
            legend: format!("other ({} series, summed)", ranked.len() - keep),
            segments: segments(&samples, step),
        });
    }
    out
}

/// Runs of samples without a missing step, as `(t s, v)` points.
fn segments(samples: &[(i64, f64)], step: i64) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut last: Option<i64> = None;
    for &(t, v) in samples {
        if !v.is_finite() {
            last = None;
            continue;
        }
        if last.is_none_or(|l| t - l > step.saturating_add(step / 2)) {
            out.push(Vec::new());
        }
        if let Some(seg) = out.last_mut() {
            seg.push((t as f64 / 1000.0, v));
        }
        last = Some(t);
    }
    out
}

/// Label names whose values are not the same in every series.
fn differing_labels(series: &[&RangeSeries]) -> Vec<String> {
    let mut names: Vec<&str> = series
        .iter()
        .flat_map(|s| s.labels.iter().map(|l| l.name.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .filter(|n| {
            let first = series.first().and_then(|s| s.labels.get(n));
            series.iter().any(|s| s.labels.get(n) != first)
        })
        .map(String::from)
        .collect()
}

/// `{a="x", b="y"}` with the differing labels; all labels when none differ; the query when the
/// series has no labels.
fn legend(labels: &Labels, differing: &[String], title: &str) -> String {
    let shown: Vec<String> = labels
        .iter()
        .filter(|l| differing.is_empty() || differing.contains(&l.name))
        .map(|l| format!("{}=\"{}\"", l.name, l.value))
        .collect();
    if shown.is_empty() {
        title.to_string()
    } else {
        format!("{{{}}}", shown.join(", "))
    }
}

/// Draws `series` into `area` of `buf`: the chart above, the legend (one row per line) below.
pub fn render(series: &[RangeSeries], opts: &ChartOptions, area: Rect, buf: &mut Buffer) {
    let lines = lines(series, &opts.title);
    let points = || lines.iter().flat_map(|l| l.segments.iter().flatten());
    let (mut x0, mut x1) = (f64::MAX, f64::MIN);
    let (mut y0, mut y1) = (f64::MAX, f64::MIN);
    for &(x, y) in points() {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        buf.set_string(area.x, area.y, "no data in this range", Style::default());
        return;
    }
    // Values from zero when all are positive, as most dashboards do; a flat line gets room.
    if y0 > 0.0 {
        y0 = 0.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let legend_rows = (lines.len() as u16).min(area.height / 2);
    let chart_area = Rect {
        height: area.height - legend_rows,
        ..area
    };
    let style = |i: usize| {
        let colour = if i < PALETTE.len() && !lines[i].legend.starts_with("other (") {
            PALETTE[i]
        } else {
            Color::Gray
        };
        if opts.colour {
            Style::default().fg(colour)
        } else {
            Style::default()
        }
    };
    let marker = |i: usize| {
        if opts.colour {
            MARKERS[0]
        } else {
            MARKERS[i % MARKERS.len()]
        }
    };
    let datasets: Vec<Dataset<'_>> = lines
        .iter()
        .enumerate()
        .flat_map(|(i, l)| {
            l.segments.iter().map(move |seg| {
                Dataset::default()
                    .data(seg)
                    .graph_type(GraphType::Line)
                    .marker(marker(i).0)
                    .style(style(i))
            })
        })
        .collect();
    let time = |secs: f64| {
        let fmt = if x1 - x0 > 86_400.0 {
            "%m-%d %H:%M"
        } else {
            "%H:%M"
        };
        opts.tz
            .timestamp_opt(secs as i64, 0)
            .single()
            .map_or_else(String::new, |d| d.format(fmt).to_string())
    };
    let value = |v: f64| format_value(v, opts.unit, opts.per_second);
    let tz = opts.tz.to_string();
    Chart::new(datasets)
        .legend_position(None)
        .x_axis(
            Axis::default()
                .title(Line::from(format!("time ({tz})")))
                .bounds([x0, x1])
                .labels([time(x0), time((x0 + x1) / 2.0), time(x1)]),
        )
        .y_axis(Axis::default().bounds([y0, y1]).labels([
            value(y0),
            value((y0 + y1) / 2.0),
            value(y1),
        ]))
        .render(chart_area, buf);
    for (i, l) in lines.iter().take(legend_rows as usize).enumerate() {
        let y = chart_area.bottom() + i as u16;
        let (_, symbol) = marker(i);
        buf.set_string(area.x, y, format!("{symbol}{symbol} "), style(i));
        buf.set_string(area.x + 3, y, &l.legend, Style::default());
    }
}

/// The buffer as text, one line per row without trailing blanks; with ANSI colours when asked.
pub fn to_text(buf: &Buffer, colour: bool) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        let mut current = Color::Reset;
        for x in area.left()..area.right() {
            let cell = &buf[(x, y)];
            if colour && cell.fg != current {
                line += &ansi(cell.fg);
                current = cell.fg;
            }
            line += cell.symbol();
        }
        if colour && current != Color::Reset {
            line += &ansi(Color::Reset);
        }
        out += line.trim_end();
        out.push('\n');
    }
    out
}

fn ansi(c: Color) -> String {
    let code = match c {
        Color::Red => 31,
        Color::Green => 32,
        Color::Yellow => 33,
        Color::Blue => 34,
        Color::Magenta => 35,
        Color::Cyan => 36,
        Color::Gray => 37,
        Color::LightMagenta => 95,
        Color::LightCyan => 96,
        _ => 0,
    };
    format!("\x1b[{code}m")
}

#[cfg(test)]
mod tests;
