//! Hostile requests against a running querier and shipper, one kind after another: deep nesting in
//! every position, huge subquery and range grids, giant regexes and label values, extreme
//! timestamps, many heavy queries at once, malformed and oversized remote-write bodies. Each gets
//! a clear 4xx/5xx or a correct answer within its timeout; both processes stay up, and their peak
//! memory stays within the configured limits.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::support::{
    WriteSeries, enc, http, peak_rss, remote_write, remote_write_body, start_querier, start_shipper,
};

/// Start of the imported data (ms): 500 series `load{i}` every 30 s for 4 hours.
const T0: i64 = 1_764_000_000_000;
const HOURS: i64 = 4;

const MIB: u64 = 1 << 20;
const QUERY_MEMORY: u64 = 64 * MIB;
const TOTAL_MEMORY: u64 = 192 * MIB;
const TIMEOUT: Duration = Duration::from_secs(3);

/// POSTs a form to the querier; status and the JSON answer's `errorType` (or `success`).
fn post(port: u16, path: &str, form: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let (status, body) = http(
        "POST",
        port,
        path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
    .unwrap_or_else(|| {
        panic!(
            "no answer (is the querier still up?) to {path} {}",
            &form[..form.len().min(120)]
        )
    });
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let kind = json["errorType"]
        .as_str()
        .or(json["status"].as_str())
        .unwrap_or("?")
        .to_string();
    (status, kind, started.elapsed())
}

fn instant(port: u16, query: &str) -> (u16, String, Duration) {
    post(
        port,
        "/api/v1/query",
        &format!("query={}&time={}", enc(query), (T0 + 3_600_000) / 1000),
    )
}

fn range(port: u16, query: &str, step: &str) -> (u16, String, Duration) {
    post(
        port,
        "/api/v1/query_range",
        &format!(
            "query={}&start={}&end={}&step={step}",
            enc(query),
            T0 / 1000,
            (T0 + HOURS * 3_600_000) / 1000
        ),
    )
}

fn import(dir: &std::path::Path, url: &str) {
    let path = dir.join("load.prom");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..500 {
        for k in 0..HOURS * 120 {
            writeln!(f, "load{{i=\"{i}\"}} {} {}", (i * k) % 97, T0 + k * 30_000).unwrap();
        }
    }
    f.flush().unwrap();
    drop(f);
    let out = crate::fleetscope(&[
        "import",
        "--objstore",
        url,
        "--format",
        "prometheus",
        "--cluster",
        "hostile",
        path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn hostile_queries_get_clear_answers_within_limits() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let url = crate::file_url(&bucket);
    import(dir.path(), &url);
    let (querier, port) = start_querier(
        &url,
        &[
            "--query.timeout",
            "3s",
            "--query.max-samples",
            "2000000",
            "--query.max-memory",
            "64MiB",
            "--query.max-total-memory",
            "192MiB",
            "--query.max-concurrency",
            "4",
        ],
        &dir.path().join("querier.log"),
    );
    let pid = querier.child.id();
    let baseline = peak_rss(pid);

    let ok = |(status, kind, _): (u16, String, Duration), what: &str| {
        assert_eq!((status, kind.as_str()), (200, "success"), "{what}");
    };
    let refused = |(status, kind, _): (u16, String, Duration), want: (u16, &str), what: &str| {
        assert_eq!((status, kind.as_str()), want, "{what}");
    };
    const BAD: (u16, &str) = (400, "bad_data");
    const LIMIT: (u16, &str) = (422, "execution");

    // Deep nesting, in every position: answered up to the documented depth, refused past it.
    let parens = |n: usize| format!("{}load{}", "(".repeat(n), ")".repeat(n));
    ok(instant(port, &parens(1000)), "1,000 parentheses");
    refused(instant(port, &parens(5000)), BAD, "5,000 parentheses");
    refused(
        instant(port, &format!("{}load", "-".repeat(5000))),
        BAD,
        "5,000 unary minus",
    );
    for f in ["abs(", "sum(", "timestamp(", "vector(scalar("] {
        let n = 3000;
        let closes = ")".repeat(n * f.matches('(').count());
        let q = format!("{}load{closes}", f.repeat(n));
        refused(instant(port, &q), BAD, &format!("3,000 x {f}"));
    }
    let chain = vec!["load"; 5000].join(" + ");
    refused(instant(port, &chain), BAD, "5,000 additions");
    let chain = vec!["load"; 500].join(" * on(i) ");
    ok(instant(port, &chain), "500 joins");
    let mut sub = "load".to_string();
    for _ in 0..40 {
        sub = format!("max_over_time(({sub})[10m:1m])");
    }
    let (status, _, _) = instant(port, &sub);
    assert!(
        matches!(status, 200 | 422 | 503),
        "40 nested subqueries: {status}"
    );

    // Huge grids: refused before anything is allocated for them.
    refused(
        instant(port, "load[1y:1ms]"),
        LIMIT,
        "a subquery of 31.5 billion steps",
    );
    refused(
        instant(port, "count_over_time(load[100d:1s])"),
        LIMIT,
        "a 100-day 1s subquery",
    );
    refused(
        range(port, "load", "0.001"),
        BAD,
        "a range query of 14.4 million steps",
    );
    refused(
        range(port, "load", "1.4"),
        LIMIT,
        "10,000 steps x 500 series",
    );
    refused(
        range(port, "sum(rate(load[5m])) by (i) * 2", "2"),
        LIMIT,
        "7,200 steps x 500 series through three nodes",
    );

    // Giant regexes and label values.
    let (status, kind, _) = instant(port, "load{i=~\"((a{100}){100}){100}\"}");
    assert_eq!(
        (status, kind.as_str()),
        BAD,
        "a regex that compiles to gigabytes"
    );
    let huge = "x".repeat(1 << 20);
    let (status, _, _) = instant(port, &format!("load{{i=\"{huge}\"}}"));
    assert!(
        matches!(status, 200 | 400 | 413),
        "a 1 MiB label value: {status}"
    );
    ok(
        instant(
            port,
            &format!(
                "label_replace(load, \"x\", \"{}\", \"i\", \".*\")",
                "y".repeat(10_000)
            ),
        ),
        "10 kB labels x 500",
    );

    // Extreme timestamps.
    for time in [
        "1e300",
        "-1e300",
        "NaN",
        "Inf",
        "9223372036854775807",
        "-9e15",
    ] {
        let (status, _, _) = post(port, "/api/v1/query", &format!("query=load&time={time}"));
        assert!(matches!(status, 200 | 400), "time={time}: {status}");
    }
    let (status, _, _) = post(
        port,
        "/api/v1/query_range",
        "query=load&start=100&end=10&step=1",
    );
    assert_eq!(status, 400, "end before start");

    // Many heavy queries at once: each answers, is refused for memory, or waits its turn; none
    // outlives the timeout by more than the slack of a loaded machine.
    let threads: Vec<_> = (0..12)
        .map(|k| {
            std::thread::spawn(move || {
                let q = format!("quantile_over_time(0.{k}, load[{}m])", 30 + k);
                range(port, &q, "30")
            })
        })
        .collect();
    for t in threads {
        let (status, kind, took) = t.join().unwrap();
        assert!(
            matches!(
                (status, kind.as_str()),
                (200, "success") | (422, "execution") | (503, "timeout")
            ),
            "a heavy query: {status} {kind}"
        );
        assert!(
            took < TIMEOUT * 4 + Duration::from_secs(10),
            "answered after {took:?}"
        );
    }

    // Still up, still right; memory within what the limits allow.
    let (status, body) = http(
        "GET",
        port,
        &format!(
            "/api/v1/query?query={}&time={}",
            enc("count(load)"),
            (T0 + 3_600_000) / 1000
        ),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&body).contains("\"500\""),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let peak = peak_rss(pid);
    assert!(
        peak < baseline + TOTAL_MEMORY + 128 * MIB,
        "querier peak {} MiB (at start {} MiB) with --query.max-total-memory {} MiB",
        peak / MIB,
        baseline / MIB,
        TOTAL_MEMORY / MIB
    );
    let _ = QUERY_MEMORY;
    let log = std::fs::read_to_string(dir.path().join("querier.log")).unwrap();
    assert!(!log.contains("panicked"), "the querier panicked: {log}");
}

#[test]
fn hostile_writes_are_refused_and_change_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let (shipper, port) = start_shipper(
        &dir.path().join("data"),
        &crate::file_url(&bucket),
        &["--cluster", "hostile", "--max-body-bytes", "1048576"],
        &[],
        &dir.path().join("shipper.log"),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let series = |labels: &[(&str, &str)], t: i64| -> WriteSeries {
        (
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            vec![(t, 1.0)],
        )
    };
    let good = series(&[("__name__", "ok"), ("job", "a")], now);
    let post = |body: &[u8]| remote_write(port, body).expect("the shipper answers (and is up)");

    // The far future, named and refused; the same series now is taken, then and afterwards.
    let body = remote_write_body(&[
        series(&[("__name__", "ok"), ("job", "a")], i64::MAX),
        good.clone(),
    ]);
    assert_eq!(post(&body), 400);
    assert_eq!(post(&remote_write_body(std::slice::from_ref(&good))), 204);
    assert_eq!(
        post(&remote_write_body(&[series(
            &[("__name__", "ok"), ("job", "a")],
            now + 1000
        )])),
        204
    );
    // Too many labels, a giant value, an empty name: refused per series.
    let many: Vec<(String, String)> = (0..100).map(|i| (format!("l{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(post(&remote_write_body(&[series(&many, now)])), 400);
    let giant = "v".repeat(100_000);
    assert_eq!(
        post(&remote_write_body(&[series(
            &[("__name__", "x"), ("a", &giant)],
            now
        )])),
        400
    );
    // Malformed bodies: garbage, a snappy header claiming 4 GiB, an oversized body.
    assert_eq!(post(b"not snappy at all"), 400);
    assert_eq!(
        post(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0]),
        413,
        "a body claiming 4 GiB"
    );
    let status = post(&vec![7u8; 2 << 20]);
    assert_eq!(status, 413, "a body over --max-body-bytes");

    assert_eq!(
        http("GET", port, "/-/ready", &[], b"").map(|r| r.0),
        Some(200)
    );
    let peak = peak_rss(shipper.child.id());
    assert!(peak < 512 * MIB, "shipper peak {} MiB", peak / MIB);
    // Nothing acknowledged was lost, nothing refused was kept: after a clean stop (cut and
    // upload), the bucket holds the two samples of `ok` and nothing else.
    assert_eq!(shipper.terminate(), Some(0));
    let log = std::fs::read_to_string(dir.path().join("shipper.log")).unwrap();
    assert!(!log.contains("panicked"), "the shipper panicked: {log}");
    let out = crate::fleetscope(&[
        "query",
        "--objstore",
        &crate::file_url(&bucket),
        "--time",
        &format!("{}", (now + 2000) as f64 / 1000.0),
        "--output",
        "json",
        "count_over_time({__name__=~\".+\"}[1m])",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let result = json["result"].as_array().cloned().unwrap_or_default();
    assert_eq!(result.len(), 1, "{text}");
    assert_eq!(result[0]["metric"]["job"], "a", "{text}");
    assert_eq!(result[0]["value"][1], "2", "{text}");
}
