//! Writing generated series as OpenMetrics text with timestamps in seconds.

use std::io::{self, Write};

use crate::fleet::GenSeries;

/// Writes one series: a line per sample, `name{labels} value seconds.millis`.
pub fn write_series(out: &mut impl Write, s: &GenSeries) -> io::Result<usize> {
    let mut head = String::with_capacity(128);
    head.push_str(s.name);
    if !s.labels.is_empty() {
        head.push('{');
        for (i, (k, v)) in s.labels.iter().enumerate() {
            if i > 0 {
                head.push(',');
            }
            head.push_str(k);
            head.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => head.push_str("\\\\"),
                    '"' => head.push_str("\\\""),
                    '\n' => head.push_str("\\n"),
                    c => head.push(c),
                }
            }
            head.push('"');
        }
        head.push('}');
    }
    for &(t, v) in &s.samples {
        let sign = if t < 0 { "-" } else { "" };
        let a = t.unsigned_abs();
        // `{v:?}` prints the shortest string that parses back to the same f64.
        let value = if v.is_nan() {
            "NaN".to_string()
        } else if v.is_infinite() {
            if v > 0.0 {
                "+Inf".into()
            } else {
                "-Inf".into()
            }
        } else {
            format!("{v:?}")
        };
        writeln!(out, "{head} {value} {sign}{}.{:03}", a / 1000, a % 1000)?;
    }
    Ok(s.samples.len())
}

/// Writes the closing `# EOF`.
pub fn write_eof(out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "# EOF")
}
