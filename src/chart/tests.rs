use chrono::FixedOffset;
use fleetscope_query::{Engine, RangeSeries};
use fleetscope_store::Labels;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

use super::*;

/// An hour of one-minute steps from 2026-01-01T10:00:00Z.
fn series(cluster: &str, pod: &str, f: impl Fn(usize) -> Option<f64>) -> RangeSeries {
    let start = 1_767_261_600_000;
    RangeSeries {
        labels: Labels::from_pairs([
            ("__name__", "gpu_memory_used_bytes"),
            ("cluster", cluster),
            ("pod", pod),
        ]),
        samples: (0..=60)
            .filter_map(|i| f(i).map(|v| (start + i as i64 * 60_000, v)))
            .collect(),
    }
}

fn draw(series: &[RangeSeries], opts: &ChartOptions, width: u16, height: u16) -> String {
    let area = Rect::new(0, 0, width, height);
    let mut buf = Buffer::empty(area);
    render(series, opts, area, &mut buf);
    to_text(&buf, opts.colour)
}

fn options(colour: bool) -> ChartOptions {
    ChartOptions {
        title: "gpu_memory_used_bytes".into(),
        unit: Unit::Bytes,
        per_second: false,
        tz: FixedOffset::east_opt(3600).unwrap(),
        colour,
    }
}

#[test]
fn snapshot_of_a_fixed_range_result() {
    let gib = 1024.0 * 1024.0 * 1024.0;
    let result = vec![
        series("training", "a", |i| Some(40.0 * gib + i as f64 * 0.5 * gib)),
        // Missing from minute 20 to 30: the line breaks there.
        series("training", "b", |i| {
            (!(20..30).contains(&i)).then_some(20.0 * gib + (i as f64 / 6.0).sin() * 8.0 * gib)
        }),
        series("serving", "c", |_| Some(10.0 * gib)),
    ];
    insta::assert_snapshot!(draw(&result, &options(false), 80, 22));
}

#[test]
fn beyond_the_readable_number_of_lines_the_smallest_are_summed_as_other() {
    let result: Vec<RangeSeries> = (0..12)
        .map(|k| series("c", &format!("p{k:02}"), move |_| Some(k as f64)))
        .collect();
    let text = draw(&result, &options(false), 100, 40);
    let legend: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("pod=") || l.contains("other"))
        .collect();
    assert_eq!(legend.len(), MAX_LINES, "{text}");
    // The largest first, only the label that differs.
    assert!(legend[0].ends_with(r#"{pod="p11"}"#), "{text}");
    // p00..p04 summed: 0+1+2+3+4.
    assert!(
        legend[MAX_LINES - 1].contains("other (5 series, summed)"),
        "{text}"
    );
    assert!(!text.contains("cluster="), "{text}");
}

#[test]
fn colour_goes_to_terminals_only() {
    let result = vec![
        series("a", "x", |i| Some(i as f64)),
        series("b", "y", |_| Some(3.0)),
    ];
    let coloured = draw(&result, &options(true), 60, 16);
    assert!(coloured.contains("\x1b[36m"), "{coloured}");
    let plain = draw(&result, &options(false), 60, 16);
    assert!(!plain.contains('\x1b'), "{plain}");
    // Without colour the two lines differ by marker, shown in the legend.
    assert!(plain.contains("⣿⣿ {cluster=\"a\", pod=\"x\"}"), "{plain}");
    assert!(plain.contains("•• {cluster=\"b\", pod=\"y\"}"), "{plain}");
}

#[test]
fn an_empty_result_says_so() {
    assert!(draw(&[], &options(false), 40, 10).contains("no data in this range"));
}

#[test]
fn units_are_guessed_from_the_metric_name() {
    let guess = |q: &str| guess_unit(&Engine::parse(q).unwrap());
    assert_eq!(
        guess("node_memory_MemAvailable_bytes"),
        (Unit::Bytes, false)
    );
    assert_eq!(
        guess("sum by (cluster) (rate(node_network_receive_bytes_total[5m]))"),
        (Unit::Bytes, true)
    );
    assert_eq!(
        guess("sum by (cluster) (rate(container_cpu_usage_seconds_total[5m]))"),
        (Unit::Plain, false)
    );
    assert_eq!(
        guess(
            "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"
        ),
        (Unit::Seconds, false)
    );
    assert_eq!(guess("1 - cache_hit_ratio"), (Unit::Ratio, false));
    assert_eq!(guess("rate(http_requests_total[5m])"), (Unit::Plain, true));
    assert_eq!(guess("vector(1)"), (Unit::Plain, false));
}

#[test]
fn values_are_formatted_in_their_unit() {
    assert_eq!(format_value(0.25, Unit::Seconds, false), "250ms");
    assert_eq!(format_value(0.000_012, Unit::Seconds, false), "12µs");
    assert_eq!(format_value(90.0, Unit::Seconds, false), "1.5min");
    assert_eq!(format_value(1536.0, Unit::Bytes, true), "1.5KiB/s");
    assert_eq!(
        format_value(42.0 * 1024.0 * 1024.0 * 1024.0, Unit::Bytes, false),
        "42GiB"
    );
    assert_eq!(format_value(0.5, Unit::Ratio, false), "50%");
    assert_eq!(format_value(1_250_000.0, Unit::Plain, false), "1.25M");
    assert_eq!(format_value(0.0, Unit::Plain, false), "0");
}
