//! A parser for OpenMetrics and Prometheus text exposition *with timestamps*, as used for backfill
//! (what `promtool tsdb create-blocks-from openmetrics` reads).
//!
//! Every sample line becomes a sample of the series named by the line: histogram and summary
//! series (`_bucket`, `_sum`, `_count`, quantiles) are plain series, label values are kept exactly as
//! written (escapes `\\`, `\"` and `\n` resolved). `# HELP`, `# TYPE`, `# UNIT` are checked and
//! skipped; `# EOF` ends the input. Errors carry the 1-based line and column.

use std::collections::HashMap;
use std::fmt;

use fleetscope_store::{Labels, Sample, Series};

/// How sample timestamps are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampUnit {
    /// OpenMetrics: seconds, with decimals (`1700000000.123`).
    Seconds,
    /// Prometheus text format: integer milliseconds.
    Milliseconds,
}

/// A malformed line: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column (in characters) where the problem starts.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// The result of parsing one whole input ([`parse`]).
#[derive(Debug, Default)]
pub struct Parsed {
    /// Series in order of first appearance, samples in input order.
    pub series: Vec<Series>,
    /// Number of sample lines.
    pub samples: usize,
}

/// Parses a whole `input` held in memory; `progress` is called now and then with the number of
/// bytes consumed so far. [`Parser`] does the same on input fed piece by piece.
pub fn parse(
    input: &[u8],
    unit: TimestampUnit,
    progress: &mut dyn FnMut(usize),
) -> Result<Parsed, ParseError> {
    let mut parser = Parser::new(unit);
    let mut samples: Vec<Vec<Sample>> = Vec::new();
    let mut offset = 0;
    while offset < input.len() {
        // About 4 MiB at a time, cut after a newline.
        let end = (offset + (4 << 20)).min(input.len());
        let end = memchr::memchr(b'\n', &input[end..]).map_or(input.len(), |i| end + i + 1);
        parser.feed(&input[offset..end], &mut |r, _, s| {
            let r = r as usize;
            if r >= samples.len() {
                samples.resize_with(r + 1, Vec::new);
            }
            samples[r].push(s);
        })?;
        offset = end;
        progress(offset);
    }
    let series = parser
        .labels
        .into_iter()
        .zip(samples.into_iter().chain(std::iter::repeat_with(Vec::new)))
        .map(|(labels, samples)| Series { labels, samples })
        .collect();
    Ok(Parsed {
        series,
        samples: parser.samples,
    })
}

/// A parser fed complete lines in order, piece by piece ([`Parser::feed`]), so an input of any size
/// streams through it. Series are numbered by first appearance (the *reference*); texts spelling
/// the same label set differently share one reference.
#[derive(Debug)]
pub struct Parser {
    unit: TimestampUnit,
    /// Series text as written -> reference.
    by_text: HashMap<Box<[u8]>, u32>,
    /// Label set -> reference, consulted for texts not seen before.
    by_labels: HashMap<Labels, u32>,
    /// Label sets by reference.
    labels: Vec<Labels>,
    line_no: usize,
    saw_eof: bool,
    samples: usize,
}

impl Parser {
    /// A parser for timestamps written in `unit`.
    pub fn new(unit: TimestampUnit) -> Self {
        Self {
            unit,
            by_text: HashMap::new(),
            by_labels: HashMap::new(),
            labels: Vec::new(),
            line_no: 0,
            saw_eof: false,
            samples: 0,
        }
    }

    /// Parses `lines`, the next complete lines of the input (only the input's very last line may
    /// lack its newline), calling `sample(reference, labels, sample)` for every sample line.
    pub fn feed(
        &mut self,
        lines: &[u8],
        sample: &mut dyn FnMut(u32, &Labels, Sample),
    ) -> Result<(), ParseError> {
        let mut offset = 0usize;
        while offset < lines.len() {
            let end = memchr::memchr(b'\n', &lines[offset..]).map_or(lines.len(), |i| offset + i);
            let line = &lines[offset..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            offset = end + 1;
            self.line_no += 1;
            let mut cur = Cursor {
                line,
                pos: 0,
                line_no: self.line_no,
            };
            if self.saw_eof {
                if !line.is_empty() {
                    return Err(cur.error("content after # EOF"));
                }
            } else if line.first() == Some(&b'#') {
                self.saw_eof = comment(&mut cur)?;
            } else if !line.iter().all(u8::is_ascii_whitespace) {
                let text = cur.series_text()?;
                let reference = match self.by_text.get(text) {
                    Some(&r) => r,
                    None => self.new_text(text)?,
                };
                let (t, v) = cur.value_and_timestamp(self.unit)?;
                self.samples += 1;
                sample(reference, &self.labels[reference as usize], Sample { t, v });
            }
        }
        Ok(())
    }

    /// Number of sample lines parsed so far.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Number of series (distinct label sets) seen so far.
    pub fn series(&self) -> usize {
        self.labels.len()
    }

    /// Parses the labels of a series text seen for the first time and gives it its reference.
    fn new_text(&mut self, text: &[u8]) -> Result<u32, ParseError> {
        let labels = Cursor {
            line: text,
            pos: 0,
            line_no: self.line_no,
        }
        .labels()?;
        let reference = match self.by_labels.get(&labels) {
            Some(&r) => r,
            None => {
                let r = u32::try_from(self.labels.len()).map_err(|_| ParseError {
                    line: self.line_no,
                    column: 1,
                    message: "more than 2^32 series in one input".into(),
                })?;
                self.by_labels.insert(labels.clone(), r);
                self.labels.push(labels);
                r
            }
        };
        self.by_text.insert(text.into(), reference);
        Ok(reference)
    }
}

/// Checks a `#` line; returns true for `# EOF`.
fn comment(cur: &mut Cursor<'_>) -> Result<bool, ParseError> {
    let text = cur.line;
    let word = |s: &[u8]| text.starts_with(s);
    if text == b"# EOF" {
        return Ok(true);
    }
    if word(b"# TYPE ") {
        cur.pos = 7;
        cur.metric_name()?;
        cur.skip_spaces();
        let ty = &text[cur.pos..];
        const TYPES: [&[u8]; 9] = [
            b"counter",
            b"gauge",
            b"histogram",
            b"gaugehistogram",
            b"summary",
            b"info",
            b"stateset",
            b"unknown",
            b"untyped",
        ];
        if !TYPES.contains(&ty) {
            return Err(cur.error(format!(
                "unknown metric type {:?}; expected one of counter, gauge, histogram, gaugehistogram, summary, info, stateset, unknown, untyped",
                String::from_utf8_lossy(ty)
            )));
        }
    } else if word(b"# HELP ") || word(b"# UNIT ") {
        cur.pos = 7;
        cur.metric_name()?;
    }
    // Any other `#` line is a comment (Prometheus text format allows them).
    Ok(false)
}

struct Cursor<'a> {
    line: &'a [u8],
    pos: usize,
    line_no: usize,
}

impl<'a> Cursor<'a> {
    fn error(&self, message: impl fmt::Display) -> ParseError {
        let column = String::from_utf8_lossy(&self.line[..self.pos.min(self.line.len())])
            .chars()
            .count()
            + 1;
        ParseError {
            line: self.line_no,
            column,
            message: message.to_string(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.line.get(self.pos).copied()
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn metric_name(&mut self) -> Result<&'a str, ParseError> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphabetic()
                || c == b'_'
                || c == b':'
                || (self.pos > start && c.is_ascii_digit());
            if !ok {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(match self.peek() {
                Some(b'{') => self
                    .error("quoted (UTF-8) metric names are not supported; expected a metric name"),
                _ => self.error("expected a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"),
            });
        }
        Ok(std::str::from_utf8(&self.line[start..self.pos]).unwrap_or_default())
    }

    fn label_name(&mut self) -> Result<&'a str, ParseError> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if !(c.is_ascii_alphabetic() || c == b'_' || (self.pos > start && c.is_ascii_digit())) {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.error("expected a label name ([a-zA-Z_][a-zA-Z0-9_]*)"));
        }
        Ok(std::str::from_utf8(&self.line[start..self.pos]).unwrap_or_default())
    }

    /// The bytes naming the series: metric name plus the label block, if any.
    fn series_text(&mut self) -> Result<&'a [u8], ParseError> {
        self.metric_name()?;
        if self.peek() == Some(b'{') {
            let mut in_string = false;
            let mut escaped = false;
            loop {
                self.pos += 1;
                let Some(c) = self.peek() else {
                    // Parse properly to say precisely what is wrong.
                    let mut full = Cursor {
                        line: self.line,
                        pos: 0,
                        line_no: self.line_no,
                    };
                    return Err(match full.labels() {
                        Err(e) => e,
                        Ok(_) => self.error("unterminated label set: expected '}'"),
                    });
                };
                match (in_string, escaped, c) {
                    (true, true, _) => escaped = false,
                    (true, false, b'\\') => escaped = true,
                    (_, false, b'"') => in_string = !in_string,
                    (false, _, b'}') => break,
                    _ => {}
                }
            }
            self.pos += 1;
        }
        Ok(&self.line[..self.pos])
    }

    /// Parses a whole series text (`name{a="b",...}`) into labels.
    fn labels(&mut self) -> Result<Labels, ParseError> {
        let name = self.metric_name()?;
        let mut pairs: Vec<(String, String)> = vec![("__name__".into(), name.into())];
        if self.peek() == Some(b'{') {
            self.pos += 1;
            loop {
                self.skip_spaces();
                if self.peek() == Some(b'}') {
                    break;
                }
                let at = self.pos;
                let label = self.label_name()?;
                if pairs.iter().any(|(n, _)| n == label) {
                    self.pos = at;
                    return Err(self.error(format!("duplicate label name {label:?}")));
                }
                self.skip_spaces();
                if self.peek() != Some(b'=') {
                    return Err(self.error(format!("expected '=' after label name {label:?}")));
                }
                self.pos += 1;
                self.skip_spaces();
                let value = self.label_value()?;
                pairs.push((label.into(), value));
                self.skip_spaces();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {}
                    _ => return Err(self.error("expected ',' or '}' after label value")),
                }
            }
        }
        Ok(Labels::from_pairs(pairs))
    }

    fn label_value(&mut self) -> Result<String, ParseError> {
        if self.peek() != Some(b'"') {
            return Err(self.error("expected '\"' to start a label value"));
        }
        self.pos += 1;
        let mut value = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated label value")),
                Some(b'"') => break,
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b'\\') => value.push(b'\\'),
                        Some(b'"') => value.push(b'"'),
                        Some(b'n') => value.push(b'\n'),
                        _ => {
                            return Err(self.error(
                                "invalid escape in label value; expected \\\\, \\\" or \\n",
                            ));
                        }
                    }
                }
                Some(c) => value.push(c),
            }
            self.pos += 1;
        }
        self.pos += 1;
        String::from_utf8(value).map_err(|_| self.error("label value is not valid UTF-8"))
    }

    fn token(&mut self) -> &'a [u8] {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c != b' ' && c != b'\t') {
            self.pos += 1;
        }
        &self.line[start..self.pos]
    }

    fn value_and_timestamp(&mut self, unit: TimestampUnit) -> Result<(i64, f64), ParseError> {
        if !matches!(self.peek(), Some(b' ' | b'\t')) {
            return Err(self.error("expected a space before the value"));
        }
        self.skip_spaces();
        let at = self.pos;
        let text = self.token();
        let v = parse_float(text).ok_or_else(|| {
            self.pos = at;
            self.error(format!("invalid value {:?}", String::from_utf8_lossy(text)))
        })?;
        self.skip_spaces();
        let at = self.pos;
        let text = self.token();
        if text.is_empty() || text == b"#" {
            self.pos = at;
            return Err(self.error("sample without timestamp; backfill needs one on every sample"));
        }
        let bad = |c: &mut Self| {
            c.pos = at;
            c.error(format!(
                "invalid timestamp {:?}",
                String::from_utf8_lossy(text)
            ))
        };
        let t = match unit {
            TimestampUnit::Seconds => match parse_float(text) {
                // As Prometheus's parser does: int64(seconds * 1000), truncating.
                Some(s) if s.is_finite() && (s * 1000.0).abs() < 9.2e18 => (s * 1000.0) as i64,
                _ => return Err(bad(self)),
            },
            TimestampUnit::Milliseconds => {
                match std::str::from_utf8(text).ok().and_then(|s| s.parse().ok()) {
                    Some(t) => t,
                    None => return Err(bad(self)),
                }
            }
        };
        self.skip_spaces();
        // An exemplar (`# {...} value [ts]`) may follow; backfill ignores it.
        if self.pos < self.line.len() && self.peek() != Some(b'#') {
            return Err(self.error("unexpected text after the timestamp"));
        }
        Ok((t, v))
    }
}

/// Go-compatible float syntax for sample values: decimals, exponents, `NaN`, `+Inf`, `-Inf`.
fn parse_float(text: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(text).ok()?;
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        // Rust also accepts spellings Prometheus does not ("inf", "infinity", "nan"): refuse them.
        _ if s
            .bytes()
            .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E') =>
        {
            None
        }
        _ => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Parsed {
        parse(text.as_bytes(), TimestampUnit::Seconds, &mut |_| {}).unwrap()
    }

    fn err(text: &str) -> String {
        parse(text.as_bytes(), TimestampUnit::Seconds, &mut |_| {})
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parses_families_escapes_and_special_values() {
        let p = ok(concat!(
            "# HELP http_requests_total Requests.\n",
            "# TYPE http_requests_total counter\n",
            "# UNIT http_requests_total requests\n",
            "http_requests_total{code=\"200\",path=\"/a\\\"b\\\\c\\nd\"} 1027 1700000000.123\n",
            "http_requests_total{code=\"200\",path=\"/a\\\"b\\\\c\\nd\"} NaN 1700000015\n",
            "# TYPE lat histogram\n",
            "lat_bucket{le=\"+Inf\"} +Inf 1700000000.5 # {trace_id=\"x\"} 1 1700000000\n",
            "lat_sum -Inf 1700000000\n",
            "up 1.5e3 -1.25\n",
            "# EOF\n",
        ));
        assert_eq!(p.samples, 5);
        assert_eq!(p.series.len(), 4);
        let http = &p.series[0];
        assert_eq!(http.labels.get("path"), Some("/a\"b\\c\nd"));
        assert_eq!(http.samples[0].t, 1_700_000_000_123);
        assert!(http.samples[1].v.is_nan());
        assert_eq!(p.series[1].labels.get("le"), Some("+Inf"));
        assert_eq!(p.series[1].samples[0].v, f64::INFINITY);
        assert_eq!(p.series[2].samples[0].v, f64::NEG_INFINITY);
        assert_eq!(
            p.series[3].samples[0],
            Sample {
                t: -1250,
                v: 1500.0
            }
        );
    }

    #[test]
    fn milliseconds_for_prometheus_text() {
        let p = parse(
            b"up 1 1700000000123\n",
            TimestampUnit::Milliseconds,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(p.series[0].samples[0].t, 1_700_000_000_123);
    }

    #[test]
    fn errors_say_where_and_what() {
        let cases = [
            ("up 1\n", "1:5: sample without timestamp"),
            ("up abc 1\n", "1:4: invalid value \"abc\""),
            ("up 1 x\n", "1:6: invalid timestamp"),
            (
                "ok 1 1\nup{a=\"1\",a=\"2\"} 1 1\n",
                "2:10: duplicate label name \"a\"",
            ),
            ("up{a=\"x} 1 1\n", "1:13: unterminated label value"),
            (
                "up{a=\"x\" 1 1\n",
                "1:10: expected ',' or '}' after label value",
            ),
            ("up{a=\"\\t\"} 1 1\n", "1:8: invalid escape"),
            ("up{a=1} 1 1\n", "1:6: expected '\"'"),
            ("# TYPE up countr\n", "1:11: unknown metric type \"countr\""),
            ("1up 1 1\n", "1:1: expected a metric name"),
            ("up 1 1 extra\n", "1:8: unexpected text after the timestamp"),
            ("up 1 1\n# EOF\nup 1 2\n", "3:1: content after # EOF"),
            ("up inf 1\n", "invalid value \"inf\""),
        ];
        for (input, want) in cases {
            let got = err(input);
            assert!(
                got.starts_with(want) || got.contains(want),
                "{input:?}: got {got:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn same_series_different_spelling_is_one_series() {
        let p = ok("up{b=\"1\",a=\"2\"} 1 1\nup{a=\"2\", b=\"1\"} 2 2\n");
        assert_eq!(p.series.len(), 1);
        assert_eq!(p.series[0].samples.len(), 2);
    }

    #[test]
    fn fed_piece_by_piece_equals_parsed_whole() {
        let text = "# TYPE a counter\na{x=\"1\"} 1 1\nb 2 1\n\na{x=\"1\"} 3 2\nb 4 2\n# EOF\n";
        let whole = ok(text);
        let mut parser = Parser::new(TimestampUnit::Seconds);
        let mut got: Vec<(u32, Sample)> = Vec::new();
        for line in text.split_inclusive('\n') {
            parser
                .feed(line.as_bytes(), &mut |r, _, s| got.push((r, s)))
                .unwrap();
        }
        assert_eq!(parser.series(), whole.series.len());
        let mut per: Vec<Vec<Sample>> = vec![Vec::new(); parser.series()];
        for (r, s) in got {
            per[r as usize].push(s);
        }
        let want: Vec<Vec<Sample>> = whole.series.iter().map(|s| s.samples.clone()).collect();
        assert_eq!(per, want);
        // Line numbers continue across pieces.
        let err = parser.feed(b"c 1 1\n", &mut |_, _, _| {}).unwrap_err();
        assert_eq!(err.line, 8);
    }
}
