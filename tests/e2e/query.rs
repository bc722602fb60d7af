//! `fleetscope query`: the engine from the command line.

use crate::{file_url, fleetscope};

#[test]
fn query_prints_tables_json_csv_and_marks_errors() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.om");
    std::fs::write(
        &input,
        "gpu_util{gpu=\"0\"} 80 1767225600\ngpu_util{gpu=\"1\"} 60 1767225600\ngpu_util{gpu=\"0\"} 90 1767225660\n# EOF\n",
    )
    .unwrap();
    let url = file_url(&dir.path().join("bucket"));
    assert!(
        fleetscope(&[
            "import",
            "--objstore",
            &url,
            "--cluster",
            "bj",
            input.to_str().unwrap()
        ])
        .status
        .success()
    );

    let out = fleetscope(&[
        "query",
        "--objstore",
        &url,
        "--time",
        "1767225660",
        "avg by (cluster) (gpu_util)",
    ]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && table.contains("bj")
            && table.contains("75")
            && table.contains("1 row(s)"),
        "{table}"
    );

    let out = fleetscope(&[
        "query",
        "--objstore",
        &url,
        "--time",
        "1767225660",
        "--output",
        "json",
        "gpu_util",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["resultType"], "vector");
    assert_eq!(json["result"].as_array().unwrap().len(), 2);

    let out = fleetscope(&[
        "query",
        "--objstore",
        &url,
        "--start",
        "1767225600",
        "--end",
        "1767225660",
        "--step",
        "60s",
        "--output",
        "csv",
        "gpu_util{gpu=\"0\"}",
    ]);
    let csv = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        csv.lines().next(),
        Some("__name__,cluster,gpu,timestamp,value"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 3, "{csv}");

    let out = fleetscope(&["query", "--objstore", &url, "sum(rate(gpu_util)[5m])"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("write rate(metric[5m]), not rate(metric)[5m]") && err.contains('^'),
        "{err}"
    );
    let out = fleetscope(&["query", "--objstore", &url, "sum(gpu_util{gpu=\"0\""]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1:21: parse error") && err.lines().any(|l| l.trim() == "^"),
        "{err}"
    );
}

#[test]
fn deep_and_huge_expressions_are_answered_or_refused_and_the_querier_stays_up() {
    use crate::support::{enc, http, start_querier};
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(dir.path());
    let (querier, port) = start_querier(&url, &[], &dir.path().join("querier.log"));
    let nested = |open: &str, inner: &str, close: &str, n: usize| {
        format!("{}{inner}{}", open.repeat(n), close.repeat(n))
    };
    let query = |q: &str| {
        let body = format!("query={}&time=1767225600", enc(q));
        let (status, body) = http(
            "POST",
            port,
            "/api/v1/query",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
        .expect("the querier answers");
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    // Up to the documented depth (2,000 levels), in every position: answered.
    for q in [
        nested("(", "up", ")", 1000),
        nested("(", "vector(1)", ")", 1998),
        nested("sum(", "up", ")", 1999),
        nested("abs(", "vector(1)", ")", 1998),
        format!("{}up", "-".repeat(1999)),
        vec!["vector(1)"; 1999].join(" + "),
        nested("(", "up and up", ")", 1998),
    ] {
        let (status, body) = query(&q);
        assert_eq!(status, 200, "{}…: {body}", &q[..40]);
    }
    // Past it: a clear bad_data error, whatever the shape.
    for q in [
        nested("(", "up", ")", 5000),
        vec!["vector(1)"; 5000].join(" + "),
        format!("{}up", "-".repeat(100_000)),
    ] {
        let (status, body) = query(&q);
        assert_eq!(status, 400, "{body}");
        assert!(
            body.contains("bad_data") && body.contains("levels deep"),
            "{body}"
        );
    }
    // A subquery grid of 31.5 billion steps: refused before anything is allocated for it.
    let (status, body) = query("up[1y:1ms]");
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("too many samples"), "{body}");
    let (status, _) = query("vector(1)");
    assert_eq!(status, 200, "still serving");
    assert_eq!(querier.terminate(), Some(0));
}

#[test]
fn a_damaged_block_gives_a_warning_not_an_error_and_compact_leaves_it_alone() {
    use crate::support::{enc, http, start_querier};
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    let url = file_url(&bucket);
    let blocks = || -> std::collections::BTreeSet<String> {
        std::fs::read_dir(&bucket)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let import = |cluster: &str, text: &str| {
        let before = blocks();
        let file = dir.path().join(format!("{cluster}-{}.om", before.len()));
        std::fs::write(&file, text).unwrap();
        let out = fleetscope(&[
            "import",
            "--objstore",
            &url,
            "--cluster",
            cluster,
            file.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let new: Vec<String> = blocks().difference(&before).cloned().collect();
        assert_eq!(new.len(), 1);
        new[0].clone()
    };
    // Cluster a: two blocks in the first window (one will be damaged), one a day later; cluster b.
    import("a", "m{pod=\"1\"} 1 1767225600\n");
    let damaged = import("a", "m{pod=\"2\"} 2 1767225600\n");
    import("a", "m{pod=\"1\"} 3 1767312000\n");
    import("b", "m{pod=\"1\"} 4 1767225600\n");
    std::fs::write(
        bucket.join(&damaged).join("data.parquet"),
        b"this is not a parquet file",
    )
    .unwrap();

    let (querier, port) = start_querier(&url, &[], &dir.path().join("querier.log"));
    let path = format!(
        "/api/v1/query?query={}&time=1767225660",
        enc("sort(sum by (cluster) (m))")
    );
    let (status, body) = http("GET", port, &path, &[], b"").unwrap();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let values: Vec<(String, String)> = json["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"]["cluster"].as_str().unwrap().to_string(),
                r["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        values,
        [("a".to_string(), "1".to_string()), ("b".into(), "4".into())],
        "the other blocks answer: {body}"
    );
    let warnings = json["warnings"].to_string();
    assert!(
        warnings.contains(&damaged) && warnings.contains("skipped"),
        "the damaged block is named: {body}"
    );
    assert_eq!(querier.terminate(), Some(0));
    // The CLI answers from the rest too, and says which block it skipped.
    let out = fleetscope(&[
        "query",
        "--objstore",
        &url,
        "--time",
        "1767225660",
        "sum(m)",
    ]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("warning: block {damaged}")),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = fleetscope(&["compact", "--objstore", &url]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("alone") && stdout.contains(&damaged),
        "{stdout}"
    );
    assert!(bucket.join(&damaged).join("meta.json").exists());
}

#[test]
fn ha_replicas_are_one_series_with_the_replica_label_flag() {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::file_url(dir.path());
    // Two replicas scraped the same target 7 s apart; replica 0 missed two scrapes.
    for (replica, phase, skip) in [("0", 0, 4..6), ("1", 7, 0..0)] {
        let text: String = (0..10)
            .filter(|i| !skip.contains(i))
            .map(|i| {
                let t: i64 = 1_700_000_000 + i * 15 + phase;
                format!("requests_total{{job=\"api\"}} {} {t}\n", t * 10)
            })
            .collect::<String>()
            + "# EOF\n";
        let input = dir.path().join(format!("r{replica}.om"));
        std::fs::write(&input, text).unwrap();
        let replica_label = format!("replica={replica}");
        let out = fleetscope(&[
            "import",
            "--objstore",
            &url,
            "--cluster",
            "bj",
            "--external-label",
            &replica_label,
            input.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let query = |extra: &[&str]| {
        let mut args = vec![
            "query",
            "--objstore",
            &url,
            "--start",
            "1700000000",
            "--end",
            "1700000150",
            "--step",
            "15s",
            "--output",
            "json",
        ];
        args.extend_from_slice(extra);
        args.push("requests_total");
        let out = fleetscope(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json["result"].as_array().unwrap().clone()
    };
    assert_eq!(query(&[]).len(), 2);
    let merged = query(&["--query.replica-label", "replica"]);
    assert_eq!(merged.len(), 1, "{merged:?}");
    assert_eq!(
        merged[0]["metric"],
        serde_json::json!({"__name__": "requests_total", "cluster": "bj", "job": "api"})
    );
    // Every step answered: replica 0's missed scrapes come from replica 1.
    assert_eq!(
        merged[0]["values"].as_array().unwrap().len(),
        11,
        "{merged:?}"
    );
}
