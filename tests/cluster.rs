//! Cluster mode: `govflow run -n 2 -p I -h HOSTFILE` as two processes on
//! 127.0.0.1 (timely's communication) gives the warehouse a single process
//! gives on the same store, across an incremental round; only process 0
//! reads the store and writes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;
use govflow_sim::{MutateRequest, SimOptions, SimServer};

fn write_config(sim: &SimServer, options: &SimOptions, dir: &Path) -> PathBuf {
    let path = dir.join("govflow.toml");
    let text = format!(
        "[bigcommerce]\nbase_url = \"{}\"\nstore_hash = \"{}\"\naccess_token = \"{}\"\npage_size = 100\n\n\
         [warehouse]\ndir = \"{}/warehouse\"\n\n[state]\ndir = \"{}/state\"\n",
        sim.base_url(),
        options.store_hash,
        options.access_token,
        dir.display(),
        dir.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn govflow(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_govflow"));
    cmd.args(args)
        .env("GOVFLOW_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn finish(child: Child, what: &str) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `run --once` of a single process and of a two-process cluster.
fn run_both(single: &Path, cluster: &Path, hosts: &Path) {
    let config = single.join("govflow.toml");
    finish(
        govflow(&["run", "--once", "-w", "2", "-c", config.to_str().unwrap()])
            .spawn()
            .unwrap(),
        "single process",
    );
    let config = cluster.join("govflow.toml");
    let hosts = hosts.to_str().unwrap();
    let config = config.to_str().unwrap();
    let follower = govflow(&[
        "run", "--once", "-w", "2", "-n", "2", "-p", "1", "-h", hosts, "-c", config,
    ])
    .spawn()
    .unwrap();
    let leader = govflow(&[
        "run", "--once", "-w", "2", "-n", "2", "-p", "0", "-h", hosts, "-c", config,
    ])
    .spawn()
    .unwrap();
    finish(leader, "process 0");
    finish(follower, "process 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_give_the_warehouse_of_one() {
    let options = store(23, 150, 30, 400);
    let sim = start_sim(options.clone()).await;
    let root = tempfile::tempdir().unwrap();
    let single = root.path().join("single");
    let cluster = root.path().join("cluster");
    for dir in [&single, &cluster] {
        std::fs::create_dir_all(dir).unwrap();
        write_config(&sim, &options, dir);
    }
    let hosts = root.path().join("hosts");
    std::fs::write(
        &hosts,
        format!(
            "# process 0, then 1\n127.0.0.1:{}\n127.0.0.1:{}\n",
            free_port(),
            free_port()
        ),
    )
    .unwrap();

    let (s, c, h) = (single.clone(), cluster.clone(), hosts.clone());
    tokio::task::spawn_blocking(move || run_both(&s, &c, &h))
        .await
        .unwrap();
    let first = tables(&single);
    assert!(first.iter().any(|(_, rows)| !rows.is_empty()));
    assert_same_warehouses(&first, &tables(&cluster));

    // An incremental round: both resume from their checkpoints.
    sim.mutate(MutateRequest {
        count: 300,
        kinds: None,
        dirty: false,
    })
    .unwrap();
    let (s, c, h) = (single.clone(), cluster.clone(), hosts.clone());
    tokio::task::spawn_blocking(move || run_both(&s, &c, &h))
        .await
        .unwrap();
    let second = tables(&single);
    assert_ne!(first, second, "the round changed nothing");
    assert_same_warehouses(&second, &tables(&cluster));
}
