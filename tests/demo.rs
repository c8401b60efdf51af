//! `govflow demo`, the README's first command, end to end: it starts its own
//! simulated store, runs the main job into a local warehouse under `--dir`,
//! serves the status page on a free port, stops after `--for`, and leaves a
//! warehouse DuckDB can read; run again, it resumes from its checkpoint.

mod common;

use std::process::Command;

use common::duckdb;

/// Runs the demo into `dir` for `seconds`; its stdout.
fn demo(dir: &std::path::Path, seconds: u32) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_govflow"))
        .args([
            "--log",
            "warn",
            "demo",
            "--workers",
            "1",
            "--status",
            "127.0.0.1:0",
        ])
        .args(["--changes-per-second", "5", "--for", &format!("{seconds}s")])
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("govflow runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The last epoch the run's closing line reports.
fn last_epoch(stdout: &str) -> u64 {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("committed through epoch "))
        .unwrap_or_else(|| panic!("no closing line in:\n{stdout}"));
    let epoch = line.split(':').next().unwrap_or_default();
    epoch
        .parse()
        .unwrap_or_else(|_| panic!("epoch {epoch:?} in {line:?}"))
}

#[test]
fn the_demo_fills_a_local_warehouse_and_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stdout = demo(dir.path(), 20);
    assert!(stdout.contains("Tables: "), "{stdout}");
    let first = last_epoch(&stdout);
    let queries = [
        "SELECT count(*) > 0 FROM dim_customer",
        "SELECT count(*) > 0 FROM fct_order",
    ];
    assert_eq!(duckdb(dir.path(), &queries), [["True"], ["True"]]);

    let again = demo(dir.path(), 5);
    assert!(
        last_epoch(&again) > first,
        "epochs go on from the checkpoint:\n{again}"
    );
    assert_eq!(duckdb(dir.path(), &queries), [["True"], ["True"]]);
}
