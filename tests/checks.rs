//! Data-quality checks end to end: `govflow run --once` over the simulator
//! keeps `checks.json` equal to a from-scratch evaluation of the published
//! tables, across mutation rounds and restarts, and `govflow check` prints the
//! results and fails on an error-severity check.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use dataflows::TableRow;
use dataflows::checks::{CheckResult, evaluate};
use govflow::checks::ChecksFile;
use govflow::settings::Config;
use govflow_sim::{MutateRequest, SimOptions, SimServer};

fn write_config(sim: &SimServer, options: &SimOptions, dir: &Path) -> std::path::PathBuf {
    let path = dir.join("govflow.toml");
    let text = format!(
        r#"
[bigcommerce]
base_url = "{base}"
store_hash = "{hash}"
access_token = "{token}"
page_size = 100

[warehouse]
dir = "{dir}/warehouse"

[state]
dir = "{dir}/state"

[[checks]]
table = "fct_order"
column = "status"
kind = "accepted_values"
values = ["Completed", "Shipped"]
severity = "error"

[[checks]]
table = "fct_order"
column = "customer_id"
kind = "relationships"
to = "dim_customer.customer_id"

[[checks]]
table = "raw_bc_order"
column = "modified_at"
kind = "freshness"
max_age = "1000 years"
"#,
        base = sim.base_url(),
        hash = options.store_hash,
        token = options.access_token,
        dir = dir.display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The results of `config`'s checks over the published tables, from scratch.
fn from_scratch(config: &Config, dir: &Path) -> Vec<(String, u64)> {
    let rows: Vec<TableRow> = tables(dir).into_iter().flat_map(|(_, rows)| rows).collect();
    let mut state = dataflows::checks::CheckState::new(config.checks.clone());
    state.apply(evaluate(&rows, &config.checks).into_iter().map(|r| (r, 1)));
    summary(&state.results(chrono::Utc::now().timestamp_micros()))
}

fn summary(results: &[CheckResult]) -> Vec<(String, u64)> {
    results
        .iter()
        .map(|r| (r.spec.name.clone(), r.failing))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_results_follow_the_data_and_govflow_check_reports_them() {
    let options = store(31, 300, 60, 500);
    let sim = start_sim(options.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&sim, &options, dir.path());
    let config = Config::load(&path).unwrap();
    run_once(&config, false, 2).await;
    for round in 0..3 {
        let file = ChecksFile::load(&dir.path().join("state")).unwrap();
        let got = summary(&file.results_at(chrono::Utc::now()));
        assert_eq!(got, from_scratch(&config, dir.path()), "round {round}");
        sim.mutate(MutateRequest {
            count: 150,
            kinds: None,
            dirty: false,
        })
        .unwrap();
        run_once(&config, false, 2).await;
    }
    let file = ChecksFile::load(&dir.path().join("state")).unwrap();
    let results = file.results_at(chrono::Utc::now());
    let status = results
        .iter()
        .find(|r| r.spec.name == "fct_order.status.accepted_values")
        .unwrap();
    assert!(
        status.failing > 0 && !status.samples.is_empty(),
        "the store has orders in other statuses: {status:?}"
    );
    assert!(
        results
            .iter()
            .find(|r| r.spec.name == "raw_bc_order.modified_at.freshness")
            .unwrap()
            .passed()
    );

    let out = Command::new(env!("CARGO_BIN_EXE_govflow"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL  fct_order.status.accepted_values")
            && text.contains(&format!("{} failing", status.failing)),
        "{text}"
    );
    assert!(
        text.contains("pass  raw_bc_order.modified_at.freshness"),
        "{text}"
    );

    // Without results yet, `govflow check` says so.
    std::fs::remove_file(ChecksFile::path(&dir.path().join("state"))).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_govflow"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no check results yet"));
    // A restart rebuilds them from the committed state.
    run_once(&config, false, 2).await;
    let file = ChecksFile::load(&dir.path().join("state")).unwrap();
    assert_eq!(
        summary(&file.results_at(chrono::Utc::now())),
        from_scratch(&config, dir.path())
    );
}
