//! `fleetscope compact`: blocks imported in 1h windows are merged into one per finished 4h window;
//! queries answer the same before and after, and `blocks ls` shows the merged block.

use crate::{file_url, fleetscope};

fn query(url: &str, q: &str) -> String {
    let out = fleetscope(&[
        "query",
        "--objstore",
        url,
        "--time",
        "1767243600",
        "--output",
        "json",
        q,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn compact_merges_finished_windows_and_answers_stay_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.om");
    // Two series over 5h (2026-01-01T00:00Z onwards), one sample every 10 min.
    let mut text = String::new();
    for i in 0..30 {
        let t = 1_767_225_600 + i * 600;
        text.push_str(&format!("gpu_util{{gpu=\"0\"}} {} {t}\n", i % 7));
        text.push_str(&format!("gpu_util{{gpu=\"1\"}} {}.5 {t}\n", i % 5));
    }
    text.push_str("# EOF\n");
    std::fs::write(&input, text).unwrap();
    let url = file_url(&dir.path().join("bucket"));
    let out = fleetscope(&[
        "import",
        "--objstore",
        &url,
        "--cluster",
        "bj",
        "--block-duration",
        "1h",
        input.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let q = "sum_over_time(gpu_util[5h])";
    let before = query(&url, q);

    let out = fleetscope(&["compact", "--objstore", &url, "--range", "4h"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("merged 4 blocks into"), "{stdout}");
    assert!(
        stdout.contains("1 merged, 0 downsampled, 4 marked for deletion, 0 deleted"),
        "{stdout}"
    );
    assert_eq!(query(&url, q), before, "same answer from the merged block");

    let out = fleetscope(&["blocks", "ls", "--objstore", &url, "--json"]);
    let metas: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(metas.len(), 2, "the merged 0-4h block and the 4-5h one");
    assert!(metas.iter().any(|m| m["compaction"]["level"] == 2));

    // With a short delay the marked blocks go on the next pass.
    let out = fleetscope(&["compact", "--objstore", &url, "--delete-delay", "1ms"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("4 deleted"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(query(&url, q), before);

    // A retention shorter than the window the 5m level summarises is refused while downsampling.
    let out = fleetscope(&["compact", "--objstore", &url, "--retention", "24h"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("retention of raw blocks must be at least 48h"),
        "{stderr}"
    );
    let out = fleetscope(&[
        "compact",
        "--objstore",
        &url,
        "--retention",
        "24h",
        "--downsampling.disable",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn compact_downsamples_finished_windows_and_the_querier_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.om");
    // A counter over three days from 2026-01-01T00:00Z (a 48h-aligned day), one sample a minute.
    let mut text = String::from("# TYPE jobs counter\n");
    for i in 0..3 * 1440 {
        let t = 1_767_225_600 + i * 60;
        text.push_str(&format!("jobs_total {} {t}\n", i * 2));
    }
    text.push_str("# EOF\n");
    std::fs::write(&input, text).unwrap();
    let url = file_url(&dir.path().join("bucket"));
    let out = fleetscope(&[
        "import",
        "--objstore",
        &url,
        "--cluster",
        "bj",
        "--block-duration",
        "24h",
        input.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The first 48h window is over (day 3 has a block) and spans 48h: one 5m block.
    let out = fleetscope(&["compact", "--objstore", &url]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("downsampled 2 blocks into"), "{stdout}");
    assert!(stdout.contains("at 5m"), "{stdout}");
    let out = fleetscope(&["blocks", "ls", "--objstore", &url, "--json"]);
    let metas: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let resolutions: Vec<i64> = metas
        .iter()
        .map(|m| m["resolution"].as_i64().unwrap())
        .collect();
    assert_eq!(
        resolutions.iter().filter(|&&r| r == 300_000).count(),
        1,
        "{resolutions:?}"
    );
    // A day's increase read at 5m equals the raw one (two per minute).
    for resolution in ["raw", "5m"] {
        let out = fleetscope(&[
            "query",
            "--objstore",
            &url,
            "--time",
            "1767398400",
            "--query.max-source-resolution",
            resolution,
            "--output",
            "json",
            "increase(jobs_total[1d])",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("\"2880\""), "{resolution}: {stdout}");
    }
}
