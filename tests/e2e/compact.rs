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
        stdout.contains("1 merged, 4 marked for deletion, 0 deleted"),
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
}
