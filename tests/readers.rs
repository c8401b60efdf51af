//! DuckDB readers querying the local warehouse in a loop while the pipeline
//! commits: no query errors, and no snapshot is torn (cross-table invariants
//! hold in every one).

mod common;

use std::time::Duration;

use common::*;
use govflow::runtime::{ProgressHandle, RunOptions};
use govflow::settings::Config;
use govflow::sinks::{StateConfig, WarehouseConfig};
use govflow_sim::MutateRequest;

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
        "SELECT (SELECT count(*) FROM fct_order WHERE customer_id IS NOT NULL AND is_revenue),"
        " (SELECT coalesce(sum(order_count), 0) FROM dim_customer)"
    ).fetchone()
    known = con.execute(
        "SELECT count(*) FROM fct_order o JOIN dim_customer c USING (customer_id) WHERE o.is_revenue"
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

/// Counts each table's rows through the views of a `current.sql`-like file,
/// with DuckDB running in `cwd`; prints `table rows` lines.
const COUNT: &str = r#"
import sys, duckdb
views, tables = sys.argv[1], sys.argv[2:]
con = duckdb.connect()
con.execute(open(views).read())
for t in tables:
    print(t, con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0])
"#;

fn counts(views: &std::path::Path, cwd: &std::path::Path) -> String {
    let tables = ["dim_customer", "fct_order", "fct_order_item"];
    let out = std::process::Command::new(python())
        .args(["-c", COUNT])
        .arg(views)
        .args(tables)
        .current_dir(cwd)
        .output()
        .expect("python runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_warehouse_reads_the_same_through_its_current_sql() {
    let options = store(41, 120, 30, 200);
    let sim = start_sim(options.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        bigcommerce: Some(config_for(&sim, &options)),
        warehouse: WarehouseConfig::Local {
            dir: dir.path().join("warehouse"),
        },
        state: StateConfig {
            dir: dir.path().join("state"),
        },
        ..Config::default()
    };
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let run = RunOptions {
        once: true,
        ..RunOptions::default()
    };
    govflow::runtime::run(config, run, stop_rx, ProgressHandle::default())
        .await
        .unwrap();
    let original = dir.path().join("warehouse");
    let elsewhere = tempfile::tempdir().unwrap();
    let want = counts(&original.join("current.sql"), elsewhere.path());
    assert!(want.lines().all(|l| !l.ends_with(" 0")), "{want}");

    // A copy (or a mount) read from inside its directory reads itself, even
    // while the original is gone.
    let copies = tempfile::tempdir().unwrap();
    let copy = copies.path().join("warehouse-copy");
    copy_dir(&original, &copy);
    std::fs::remove_dir_all(&original).unwrap();
    assert_eq!(counts(&copy.join("current.sql"), &copy), want);

    // From anywhere else: `govflow sql --root` names where the readers see it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_govflow"))
        .args(["sql", "--warehouse"])
        .arg(&copy)
        .arg("--root")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let views = copies.path().join("views.sql");
    std::fs::write(&views, &out.stdout).unwrap();
    let sql = String::from_utf8_lossy(&out.stdout);
    assert!(
        sql.contains(&format!("SET file_search_path = '{}';", copy.display())),
        "{sql}"
    );
    assert_eq!(counts(&views, elsewhere.path()), want);
    sim.shutdown().await;
}
