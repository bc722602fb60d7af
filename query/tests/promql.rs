//! Runs the PromQL test files in `tests/promql/*.test` (a subset of Prometheus's promqltest syntax)
//! against two backends: `mem` (series in memory) and `block` (series written as blocks through
//! `store::write_block`, 1h windows so queries cross blocks, read back through the catalog).
//!
//! Syntax: `load <interval>` + series lines (`1+2x3`, `_`, `_x2`, `stale`, `NaN`, `Inf`), `clear`,
//! `eval instant at <t> <expr>` / `eval range from <t> to <t> step <d> <expr>` + expected lines,
//! `expect fail [msg: <text>]`, `expect ordered`.

#![allow(clippy::unwrap_used)] // a test runner: a failed unwrap is a failed test

use std::sync::Arc;

use fleetscope_query::{Catalog, Engine, EngineOptions, MemSource, QueryValue, Source, warnings};
use fleetscope_store::{Labels, MemSeriesSet, STALE_NAN_BITS, WriteOptions, objstore, write_block};
use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let args = Arguments::from_args();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/promql");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "test"));
    files.sort();
    assert!(!files.is_empty(), "no .test files in {}", dir.display());
    let mut trials = Vec::new();
    for path in files {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        for backend in [Backend::Mem, Backend::Block] {
            let text = text.clone();
            let file = name.clone();
            trials.push(Trial::test(
                format!("{name}::{}", backend.name()),
                move || run_file(&file, &text, backend),
            ));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}

#[derive(Debug, Clone, Copy)]
enum Backend {
    Mem,
    Block,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Mem => "mem",
            Backend::Block => "block",
        }
    }
}

fn run_file(file: &str, text: &str, backend: Backend) -> Result<(), Failed> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Memory in one partition; blocks (one per hour) spread over four, so every file also checks
    // that partitioned plans answer as one partition does.
    let engine = Engine::new(EngineOptions {
        parallelism: match backend {
            Backend::Mem => 1,
            Backend::Block => 4,
        },
        // As Prometheus's test engine: every feature on.
        experimental_functions: true,
        fill_modifiers: true,
        ..EngineOptions::default()
    });
    let mut data = MemSeriesSet::new();
    let mut source: Option<Arc<dyn Source>> = None;
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    let mut evals = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        let at = format!("{file}.test:{}", i + 1);
        i += 1;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let block: Vec<&str> = lines[i..]
            .iter()
            .take_while(|l| l.starts_with([' ', '\t']) && !l.trim().is_empty())
            .map(|l| l.trim())
            .collect();
        i += block.len();
        if let Some(interval) = line.strip_prefix("load ") {
            let step =
                parse_duration(interval.trim()).ok_or_else(|| format!("{at}: bad interval"))?;
            for l in &block {
                let (labels, values) = parse_series(l).map_err(|e| format!("{at}: {e}"))?;
                for (k, v) in values.iter().enumerate() {
                    if let Some(v) = v {
                        data.append(&labels, k as i64 * step, *v);
                    }
                }
            }
            source = None;
        } else if line == "clear" {
            data = MemSeriesSet::new();
            source = None;
        } else if let Some(rest) = line.strip_prefix("eval ") {
            evals += 1;
            let src = match &source {
                Some(s) => s,
                None => source.insert(rt.block_on(build(&data, backend))),
            };
            check_eval(&rt, &engine, src, rest, &block).map_err(|e| format!("{at}: {e}"))?;
        } else {
            return Err(format!("{at}: unknown command {line:?}").into());
        }
    }
    if evals == 0 {
        return Err(format!("{file}.test has no eval").into());
    }
    Ok(())
}

async fn build(data: &MemSeriesSet, backend: Backend) -> Arc<dyn Source> {
    match backend {
        Backend::Mem => Arc::new(MemSource {
            set: data.clone(),
            external: Labels::empty(),
        }),
        Backend::Block => {
            let store = objstore::open("memory://").unwrap();
            for (_, series) in data.clone().into_windows(3_600_000) {
                write_block(&store, series, &Labels::empty(), &WriteOptions::default())
                    .await
                    .unwrap();
            }
            let catalog = Catalog::new(Arc::clone(&store));
            catalog.refresh().await.unwrap();
            Arc::new(catalog)
        }
    }
}

fn check_eval(
    rt: &tokio::runtime::Runtime,
    engine: &Engine,
    source: &Arc<dyn Source>,
    cmd: &str,
    block: &[&str],
) -> Result<(), String> {
    let expect_fail = block.iter().find_map(|l| l.strip_prefix("expect fail"));
    let ordered = block.contains(&"expect ordered");
    let expected: Vec<&str> = block
        .iter()
        .copied()
        .filter(|l| !l.starts_with("expect "))
        .collect();
    let (result, grid) = if let Some(rest) = cmd.strip_prefix("instant at ") {
        let (t, expr) = rest
            .split_once(' ')
            .ok_or("eval instant needs a time and an expression")?;
        let t = parse_duration(t).ok_or("bad time")?;
        (
            rt.block_on(warnings::collect(engine.instant(source, expr, t))),
            None,
        )
    } else if let Some(rest) = cmd.strip_prefix("range from ") {
        let parts: Vec<&str> = rest.splitn(6, ' ').collect();
        let [start, "to", end, "step", step, expr] = parts.as_slice() else {
            return Err("eval range from <t> to <t> step <d> <expr>".into());
        };
        let (s, e, st) = (
            parse_duration(start).ok_or("bad start")?,
            parse_duration(end).ok_or("bad end")?,
            parse_duration(step).ok_or("bad step")?,
        );
        (
            rt.block_on(warnings::collect(engine.range(source, expr, s, e, st))),
            Some((s, e, st)),
        )
    } else {
        return Err(format!("unknown eval {cmd:?}"));
    };
    let (result, warned) = result;
    for l in block {
        if let Some(m) = l.strip_prefix("expect warn msg:").map(str::trim) {
            if !warned.iter().any(|w| w.contains(m)) {
                return Err(format!("no warning {m:?} among {warned:?}"));
            }
        } else if *l == "expect no_warn" && !warned.is_empty() {
            return Err(format!("unexpected warnings {warned:?}"));
        }
    }
    match (result, expect_fail) {
        (Err(e), Some(msg)) => {
            let msg = msg.trim().strip_prefix("msg:").map(str::trim);
            match msg {
                Some(m) if !e.to_string().contains(m) => {
                    Err(format!("error {e:?} does not contain {m:?}"))
                }
                _ => Ok(()),
            }
        }
        (Ok(v), Some(_)) => Err(format!("expected an error, got {v:?}")),
        (Err(e), None) => Err(format!("unexpected error: {e}")),
        (Ok(v), None) => compare(&v, &expected, grid, ordered),
    }
}

fn compare(
    got: &QueryValue,
    expected: &[&str],
    grid: Option<(i64, i64, i64)>,
    ordered: bool,
) -> Result<(), String> {
    match got {
        QueryValue::Scalar { v, .. } => {
            let [line] = expected else {
                return Err(format!("got scalar {v}, expected {expected:?}"));
            };
            let want = parse_value(line)
                .ok_or("bad expected scalar")?
                .ok_or("bad expected scalar")?;
            close(*v, want)
                .then_some(())
                .ok_or(format!("scalar: got {v}, want {want}"))
        }
        QueryValue::String { s, .. } => (expected == [format!("\"{s}\"").as_str()])
            .then_some(())
            .ok_or(format!("string {s:?}")),
        QueryValue::Vector(samples) => {
            let want: Vec<(Labels, Vec<Option<f64>>)> = expected
                .iter()
                .map(|l| parse_series(l))
                .collect::<Result<_, _>>()?;
            if want.len() != samples.len() {
                return Err(format!(
                    "got {} series, want {}: {samples:?}",
                    samples.len(),
                    want.len()
                ));
            }
            for (k, (labels, values)) in want.iter().enumerate() {
                let found = if ordered {
                    samples.get(k).filter(|s| &s.labels == labels)
                } else {
                    samples.iter().find(|s| &s.labels == labels)
                };
                let s = found.ok_or(format!(
                    "series {labels} missing (or out of order) in {samples:?}"
                ))?;
                let w = values
                    .first()
                    .copied()
                    .flatten()
                    .ok_or("expected value missing")?;
                if !close(s.v, w) {
                    return Err(format!("{labels}: got {}, want {w}", s.v));
                }
            }
            Ok(())
        }
        QueryValue::Matrix(series) => {
            let (start, end, step) =
                grid.ok_or("matrix from an instant query: not supported by this runner")?;
            let want: Vec<(Labels, Vec<Option<f64>>)> = expected
                .iter()
                .map(|l| parse_series(l))
                .collect::<Result<_, _>>()?;
            if want.len() != series.len() {
                return Err(format!(
                    "got {} series, want {}: {series:?}",
                    series.len(),
                    want.len()
                ));
            }
            for (labels, values) in &want {
                let s = series
                    .iter()
                    .find(|s| &s.labels == labels)
                    .ok_or(format!("series {labels} missing in {series:?}"))?;
                let want_points: Vec<(i64, f64)> = values
                    .iter()
                    .enumerate()
                    .filter_map(|(k, v)| v.map(|v| (start + k as i64 * step, v)))
                    .filter(|(t, _)| *t <= end)
                    .collect();
                let ok = want_points.len() == s.samples.len()
                    && want_points
                        .iter()
                        .zip(&s.samples)
                        .all(|(a, b)| a.0 == b.0 && close(a.1, b.1));
                if !ok {
                    return Err(format!(
                        "{labels}: got {:?}, want {want_points:?}",
                        s.samples
                    ));
                }
            }
            Ok(())
        }
    }
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs())
}

/// `5m`, `1h30m`, `10s`, `0`, or plain seconds, in ms.
fn parse_duration(s: &str) -> Option<i64> {
    if let Ok(secs) = s.parse::<f64>() {
        return Some((secs * 1000.0) as i64);
    }
    let mut total = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let d = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: i64 = rest[..d].parse().ok()?;
        rest = &rest[d..];
        let u = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        total += n * match &rest[..u] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        rest = &rest[u..];
    }
    Some(total)
}

/// One value token: a number, `_` (missing), `stale`.
fn parse_value(tok: &str) -> Option<Option<f64>> {
    Some(match tok {
        "_" => None,
        "stale" => Some(f64::from_bits(STALE_NAN_BITS)),
        "NaN" => Some(f64::NAN),
        "Inf" | "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => Some(tok.parse().ok()?),
    })
}

/// `name{a="b"} 1+2x3 _ stale`: labels and expanded values.
fn parse_series(line: &str) -> Result<(Labels, Vec<Option<f64>>), String> {
    let split = if let Some(close) = line.find('}') {
        close + 1
    } else {
        line.find(' ').unwrap_or(line.len())
    };
    let (desc, values) = line.split_at(split);
    let labels = parse_labels(desc.trim())?;
    let mut out = Vec::new();
    for tok in values.split_whitespace() {
        if let Some((base, n)) = tok.split_once('x') {
            let n: usize = n.parse().map_err(|_| format!("bad repeat {tok:?}"))?;
            if base == "_" {
                out.extend(std::iter::repeat_n(None, n));
                continue;
            }
            // `a+bxn`, `a-bxn`, `axn`: a, then n more values.
            let pos = base[1..].find(['+', '-']).map(|p| p + 1);
            let (a, b) = match pos {
                Some(p) => (&base[..p], &base[p..]),
                None => (base, "0"),
            };
            let a: f64 = a.parse().map_err(|_| format!("bad value {tok:?}"))?;
            let b: f64 = b
                .trim_start_matches('+')
                .parse()
                .map_err(|_| format!("bad step {tok:?}"))?;
            out.extend((0..=n).map(|k| Some(a + b * k as f64)));
        } else {
            out.push(parse_value(tok).ok_or(format!("bad value {tok:?}"))?);
        }
    }
    Ok((labels, out))
}

fn parse_labels(desc: &str) -> Result<Labels, String> {
    let (name, rest) = match desc.find('{') {
        Some(i) => (&desc[..i], &desc[i + 1..desc.len() - 1]),
        None => (desc, ""),
    };
    let mut pairs = vec![("__name__".to_string(), name.to_string())];
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or(format!("bad labels {desc:?}"))?;
        let key = rest[..eq].trim().to_string();
        let after = rest[eq + 1..].trim_start();
        let after = after
            .strip_prefix('"')
            .ok_or(format!("bad labels {desc:?}"))?;
        let end = after.find('"').ok_or(format!("bad labels {desc:?}"))?;
        pairs.push((key, after[..end].to_string()));
        rest = after[end + 1..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
    }
    Ok(Labels::from_pairs(pairs))
}
