//! The fleet queries of the design notes give the same series and values (within 1e-9 relative)
//! as a real Prometheus loaded with the same fleet data: `fleetscope-bench compare` on the tiny
//! preset, which exits non-zero on any difference.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::path::PathBuf;
use std::process::Command;

#[test]
fn fleet_queries_equal_prometheus_on_the_fleet_dataset() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_fleetscope-bench"));
    let fleetscope = bench.with_file_name("fleetscope");
    assert!(
        fleetscope.exists(),
        "{} missing: run the workspace tests (cargo nextest run --workspace builds it)",
        fleetscope.display()
    );
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(&bench)
        .args([
            "compare",
            "--preset",
            "tiny",
            "--repeats",
            "1",
            "--clients",
            "2",
        ])
        .arg("--fleetscope")
        .arg(&fleetscope)
        .arg("--work")
        .arg(work.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Same results for every query: yes"),
        "{stdout}"
    );
    for q in [
        "histogram_quantile(0.99",
        "topk(5",
        "DCGM_FI_DEV_FB_USED",
        "node_cpu_seconds_total` (range)",
    ] {
        assert!(stdout.contains(q), "{q} was compared:\n{stdout}");
    }
}
