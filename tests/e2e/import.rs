//! `fleetscope import` and `fleetscope blocks`.

use std::sync::Arc;

use fleetscope_store::{BlockMeta, BlockReader, objstore};

use crate::{file_url, files_under, fleetscope};

const GOOD: &str = r#"# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu="0",mode="idle"} 12345.67 1767225600
node_cpu_seconds_total{cpu="0",mode="idle"} 12359.02 1767225615.000
node_cpu_seconds_total{cpu="0",mode="idle"} NaN 1767225630.5
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.1",path="/a \"q\" \\ b"} 3 1767225600
http_request_duration_seconds_bucket{le="+Inf",path="/a \"q\" \\ b"} +Inf 1767225600
http_request_duration_seconds_sum{path="/a \"q\" \\ b"} -Inf 1767225600
up 1 1767232800
# EOF
"#;

#[test]
fn import_writes_blocks_that_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("good.om");
    std::fs::write(&input, GOOD).unwrap();
    let bucket = dir.path().join("bucket");
    let url = file_url(&bucket);
    let out = fleetscope(&[
        "import",
        "--objstore",
        &url,
        "--cluster",
        "training-bj",
        input.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `up` at 02:00 falls into the next 2h window: two blocks.
    assert!(
        stdout.contains("5 series, 7 samples, 2 block(s)"),
        "{stdout}"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = objstore::open(&url).unwrap();
    let metas = rt.block_on(BlockMeta::list(&store)).unwrap();
    assert_eq!(metas.len(), 2);
    let mut series = Vec::new();
    for m in metas {
        let sel = rt
            .block_on(BlockReader::new(Arc::clone(&store), m).select(&[], i64::MIN, i64::MAX))
            .unwrap();
        series.extend(sel.series);
    }
    let find = |name: &str, key: &str, value: &str| {
        series
            .iter()
            .find(|s| s.labels.metric_name() == name && s.labels.get(key) == Some(value))
            .unwrap_or_else(|| panic!("{name}{{{key}={value:?}}} missing"))
    };
    let cpu = find("node_cpu_seconds_total", "cluster", "training-bj");
    let got: Vec<(i64, u64)> = cpu.samples.iter().map(|s| (s.t, s.v.to_bits())).collect();
    assert_eq!(
        got,
        [
            (1_767_225_600_000, 12345.67f64.to_bits()),
            (1_767_225_615_000, 12359.02f64.to_bits()),
            (1_767_225_630_500, f64::NAN.to_bits())
        ]
    );
    let bucket_inf = find("http_request_duration_seconds_bucket", "le", "+Inf");
    assert_eq!(
        bucket_inf.labels.get("path"),
        Some("/a \"q\" \\ b"),
        "escapes resolved, value kept exactly"
    );
    assert_eq!(bucket_inf.samples[0].v, f64::INFINITY);
    assert_eq!(
        find(
            "http_request_duration_seconds_sum",
            "cluster",
            "training-bj"
        )
        .samples[0]
            .v,
        f64::NEG_INFINITY
    );

    let ls = fleetscope(&["blocks", "ls", "--objstore", &url]);
    let ls_out = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.status.success());
    assert!(
        ls_out.contains("cluster=\"training-bj\"") && ls_out.contains("2026-01-01 00:00:00.000"),
        "{ls_out}"
    );
    assert!(ls_out.contains("2 block(s), 7 samples"), "{ls_out}");

    let ids: Vec<&str> = ls_out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).filter(|w| w.len() == 26))
        .collect();
    assert_eq!(ids.len(), 2, "{ls_out}");
    let inspected: String = ids
        .iter()
        .map(|id| {
            let out = fleetscope(&["blocks", "inspect", "--objstore", &url, id]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect();
    assert!(
        inspected.contains("node_cpu_seconds_total") && inspected.contains("up "),
        "{inspected}"
    );
    // Imported 2h windows are version 2 blocks in four 30-minute sub-chunks.
    assert_eq!(inspected.matches("version    2").count(), 2, "{inspected}");
    assert_eq!(
        inspected
            .matches("4 sub-chunks of 1800 s per series")
            .count(),
        2,
        "{inspected}"
    );
}

#[test]
fn bad_file_fails_with_position_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.om");
    std::fs::write(&good, GOOD).unwrap();
    let bad = dir.path().join("bad.om");
    std::fs::write(&bad, "up 1 1767225600\nup{job=\"a\" 1 1767225615\n").unwrap();
    let bucket = dir.path().join("bucket");
    let out = fleetscope(&[
        "import",
        "--objstore",
        &file_url(&bucket),
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let want = format!(
        "{}:2:12: expected ',' or '}}' after label value",
        bad.display()
    );
    assert!(stderr.contains(&want), "got {stderr:?}, want {want:?}");
    assert!(
        files_under(&bucket).is_empty(),
        "nothing reached the object store: {:?}",
        files_under(&bucket)
    );
}

#[test]
fn unknown_block_and_bad_url_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(dir.path());
    let out = fleetscope(&[
        "blocks",
        "inspect",
        "--objstore",
        &url,
        "01JAAAAAAAAAAAAAAAAAAAAAAA",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("meta.json"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = fleetscope(&["blocks", "ls", "--objstore", "ftp://x"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported scheme"));
}

#[test]
fn an_import_killed_midway_leaves_nothing_visible_and_compact_removes_its_files() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let url = file_url(&bucket);
    // The input is a named pipe: the import is provably still running, blocked on its input, when
    // it is killed.
    let fifo = dir.path().join("input.om");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    let mut import = Command::new(env!("CARGO_BIN_EXE_fleetscope"))
        .args(["import", "--objstore", &url, "--max-memory", "4MiB"])
        .arg(&fifo)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // 300,000 samples sorted by series, values that code poorly: well past a 1 MiB head budget.
    let mut pipe = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let mut text = String::new();
    for s in 0..30 {
        for i in 0..10_000i64 {
            let v = ((s * 10_000 + i) as f64).sqrt();
            text.push_str(&format!(
                "killed_import{{pod=\"p{s}\"}} {v} {}\n",
                1_767_225_600 + i * 15
            ));
        }
    }
    pipe.write_all(text.as_bytes()).unwrap();
    pipe.flush().unwrap();

    // Wait for a block's data in the bucket, then SIGKILL.
    let deadline = Instant::now() + Duration::from_secs(120);
    let has_data = || {
        files_under(&bucket)
            .iter()
            .any(|f| f.ends_with("data.parquet"))
    };
    while !has_data() {
        assert!(Instant::now() < deadline, "no block data written in 120 s");
        assert!(
            import.try_wait().unwrap().is_none(),
            "the import ended before its input did"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(import.try_wait().unwrap().is_none(), "still running");
    import.kill().unwrap();
    import.wait().unwrap();
    drop(pipe);

    let files = files_under(&bucket);
    assert!(
        !files.iter().any(|f| f.ends_with("meta.json")),
        "no block published: {files:?}"
    );
    let ls = fleetscope(&["blocks", "ls", "--objstore", &url]);
    let ls_out = String::from_utf8_lossy(&ls.stdout);
    assert!(ls_out.contains("0 block(s)"), "{ls_out}");
    let query = fleetscope(&[
        "query",
        "--objstore",
        &url,
        "--time",
        "1767226000",
        "--output",
        "json",
        "count(killed_import)",
    ]);
    let q_out = String::from_utf8_lossy(&query.stdout);
    assert!(
        query.status.success(),
        "{}",
        String::from_utf8_lossy(&query.stderr)
    );
    assert!(
        q_out.contains("\"result\":[]"),
        "a querier sees nothing: {q_out}"
    );

    // The compactor leaves fresh leftovers alone (an import may still be running), and removes
    // them once they are older than --partial-delay.
    let keep = fleetscope(&["compact", "--objstore", &url]);
    assert!(
        String::from_utf8_lossy(&keep.stdout).contains("0 unpublished removed"),
        "{}",
        String::from_utf8_lossy(&keep.stdout)
    );
    assert!(has_data());
    let clean = fleetscope(&["compact", "--objstore", &url, "--partial-delay", "1ms"]);
    let clean_out = String::from_utf8_lossy(&clean.stdout);
    assert!(clean.status.success(), "{clean_out}");
    assert!(
        clean_out.contains("deleted the files of unpublished block"),
        "{clean_out}"
    );
    assert!(
        files_under(&bucket).is_empty(),
        "{:?}",
        files_under(&bucket)
    );
}

#[test]
fn commands_end_quietly_when_their_reader_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(dir.path());
    for args in [
        vec!["blocks", "ls", "--objstore", &url],
        vec!["query", "--objstore", &url, "1+1"],
    ] {
        // The pipe's reading end is closed before the command prints: `fleetscope ... | head -0`.
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fleetscope"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
    }
}
