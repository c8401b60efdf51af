//! `kill -9` at random moments of an always-on `govflow run`, then restart:
//! the warehouse ends equal to a fresh full refresh, and every snapshot in
//! between opens cleanly.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use govflow_sim::{MutateRequest, SimOptions, SimServer};
use rand::{Rng, SeedableRng};

fn write_config(sim: &SimServer, options: &SimOptions, dir: &Path) -> std::path::PathBuf {
    let path = dir.join("govflow.toml");
    let text = format!(
        "[bigcommerce]\nbase_url = {:?}\nstore_hash = {:?}\naccess_token = \"${{TEST_BC_TOKEN}}\"\npoll_interval = \"200ms\"\npage_size = 50\n\n\
         [warehouse]\nkind = \"local\"\ndir = {:?}\n\n[state]\ndir = {:?}\n\n# A free port: never the default 3000, which another process may hold.\n[status]\nlisten = \"127.0.0.1:0\"\n",
        sim.base_url(),
        options.store_hash,
        dir.join("warehouse").display().to_string(),
        dir.join("state").display().to_string(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn govflow(config: &Path, options: &SimOptions, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_govflow"));
    cmd.args(["--log", "warn", "run", "--config"])
        .arg(config)
        .args(args)
        .env("TEST_BC_TOKEN", &options.access_token)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Waits (reading only the checkpoint) until the running pipeline committed once.
async fn wait_for_first_commit(dir: &Path) {
    for _ in 0..600 {
        let checkpoint = govflow::runtime::checkpoint::Checkpoint::load(&dir.join("state"));
        if checkpoint.is_ok_and(|c| c.epoch.is_some()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the pipeline committed nothing in 60 s");
}

fn run_once(config: &Path, options: &SimOptions, args: &[&str]) {
    let status = govflow(config, options, args).status().unwrap();
    assert!(status.success(), "govflow run {args:?} failed: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_at_any_moment_loses_and_duplicates_nothing() {
    let options = store(31, 600, 80, 800);
    let sim = start_sim(options.clone()).await;
    // Mutations that polling can see (hard deletes need a full refresh).
    let kinds: Vec<String> = govflow_sim::MUTATION_KINDS
        .iter()
        .filter(|k| !k.ends_with("_delete"))
        .map(|k| k.to_string())
        .collect();
    let a = tempfile::tempdir().unwrap();
    let config_a = write_config(&sim, &options, a.path());
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut epochs = Vec::new();
    for round in 0..6 {
        let mut child: Child = govflow(
            &config_a,
            &options,
            &["--flush-interval", "50ms", "-w", "2"],
        )
        .spawn()
        .unwrap();
        if round == 0 {
            wait_for_first_commit(a.path()).await;
        }
        // Change the store while it runs; kill it at a random moment (during a
        // pull, a dataflow step, a Parquet write or a checkpoint).
        for _ in 0..3 {
            sim.mutate(MutateRequest {
                count: 40,
                kinds: Some(kinds.clone()),
                dirty: false,
            })
            .unwrap();
            tokio::time::sleep(Duration::from_millis(rng.random_range(100..700))).await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Whatever the moment, the warehouse opens on a consistent snapshot.
        let snapshot = tables(a.path());
        assert_eq!(snapshot.len(), dataflows::Table::ALL.len(), "round {round}");
        epochs.push(committed_epoch(a.path()));
    }
    // The kills fell while the pipeline was committing, not only at start-up.
    epochs.dedup();
    assert!(
        epochs.len() >= 3,
        "too few epochs committed between kills: {epochs:?}"
    );
    // Restart and catch up with the store quiet; compare with a fresh full refresh.
    run_once(&config_a, &options, &["--once"]);
    let b = tempfile::tempdir().unwrap();
    let config_b = write_config(&sim, &options, b.path());
    run_once(&config_b, &options, &["--once", "--full-refresh"]);
    assert_same_warehouses(&tables(a.path()), &tables(b.path()));
    assert_same_through_duckdb(a.path(), b.path());
    sim.shutdown().await;
}
