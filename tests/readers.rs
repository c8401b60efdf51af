//! DuckDB readers querying the local warehouse in a loop while the pipeline
//! commits: no query errors, and no snapshot is torn (cross-table invariants
//! hold in every one).

mod common;

use std::time::Duration;

use common::*;
use govflow::config::{Config, StateConfig, WarehouseConfig};
use govflow::runtime::{ProgressHandle, RunOptions};
use govflow::sim::MutateRequest;

const READER: &str = r#"
import sys, time, duckdb
current, seconds = sys.argv[1], float(sys.argv[2])
deadline = time.time() + seconds
queries = snapshots = 0
seen = set()
while time.time() < deadline:
    con = duckdb.connect()
    con.execute(open(current).read())
    epoch = con.execute("SELECT max(_epoch) FROM raw_bc_order").fetchone()[0]
    lines, counted = con.execute(
        "SELECT (SELECT count(*) FROM fct_order_item), (SELECT coalesce(sum(item_count), 0) FROM fct_order)"
    ).fetchone()
    if lines != counted:
        print(f"torn snapshot at epoch {epoch}: {lines} lines, orders count {counted}")
        sys.exit(1)
    orders, by_customer = con.execute(
        "SELECT (SELECT count(*) FROM fct_order WHERE customer_id IS NOT NULL AND status_id NOT IN (0, 5, 6)),"
        " (SELECT coalesce(sum(order_count), 0) FROM dim_customer)"
    ).fetchone()
    known = con.execute(
        "SELECT count(*) FROM fct_order o JOIN dim_customer c USING (customer_id) WHERE o.status_id NOT IN (0, 5, 6)"
    ).fetchone()[0]
    if by_customer != known:
        print(f"torn snapshot at epoch {epoch}: customers count {by_customer} orders, facts say {known}")
        sys.exit(1)
    queries += 4
    seen.add(epoch)
    con.close()
print(f"{queries} queries over {len(seen)} snapshots")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_readers_never_error_and_never_see_a_torn_snapshot() {
    let options = store(37, 500, 80, 800);
    let sim = std::sync::Arc::new(start_sim(options.clone()).await);
    let dir = tempfile::tempdir().unwrap();
    let mut bc = config_for(&sim, &options);
    bc.poll_interval = Duration::from_millis(100);
    let config = Config {
        bigcommerce: Some(bc),
        warehouse: WarehouseConfig::Local {
            dir: dir.path().join("warehouse"),
        },
        state: StateConfig {
            dir: dir.path().join("state"),
        },
        ..Config::default()
    };
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let progress = ProgressHandle::default();
    let options_run = RunOptions {
        workers: 2,
        flush_interval: Duration::from_millis(50),
        ..RunOptions::default()
    };
    let pipeline = tokio::spawn(govflow::runtime::run(
        config,
        options_run,
        stop_rx,
        progress.clone(),
    ));
    // Wait for the initial load, then keep the store changing while readers read.
    for _ in 0..600 {
        if progress.lock().unwrap().epoch.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mutator = {
        let sim = sim.clone();
        tokio::spawn(async move {
            loop {
                sim.mutate(MutateRequest {
                    count: 30,
                    kinds: None,
                    dirty: false,
                })
                .unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let current = dir.path().join("warehouse/current.sql");
    let readers: Vec<_> = (0..2)
        .map(|_| {
            tokio::process::Command::new(python())
                .args(["-c", READER])
                .arg(&current)
                .arg("8")
                .output()
        })
        .collect();
    let mut outputs = Vec::new();
    for r in readers {
        outputs.push(r.await.unwrap());
    }
    mutator.abort();
    stop.send(true).unwrap();
    pipeline.await.unwrap().unwrap();
    for out in outputs {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "reader failed: {text}");
        eprintln!("reader: {}", text.trim());
        let snapshots: usize = text
            .split_whitespace()
            .rev()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(snapshots >= 3, "readers saw the warehouse change: {text}");
    }
}
