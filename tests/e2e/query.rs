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
