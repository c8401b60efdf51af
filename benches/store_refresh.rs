//! `cargo bench --bench store_refresh`: what one `govflow run --once` costs on a
//! small store, in peak memory and CPU time, the figures the old platform's
//! hourly job is judged by.
//!
//! The simulated store (10,000 customers, 2,000 products, 50,000 orders by
//! default) is served over loopback HTTP by this process; the `govflow` binary
//! runs as a child, so its peak RSS and CPU seconds are the child's alone (read
//! with `wait4`). Three runs:
//!
//! 1. `run --once --full-refresh --max-epoch-rows 1000000000` into an empty
//!    warehouse: the initial load in one epoch, the baseline (how govflow ran
//!    before epochs were bounded);
//! 2. `run --once --full-refresh` into another empty warehouse: the same load
//!    in epochs of the default bound;
//! 3. `run --once` on the second warehouse after 1% of the orders changed
//!    (`order_update`): an incremental catch-up (state rebuilt from the
//!    warehouse, then the pull of the hour lookback).
//!
//! `GOVFLOW_BENCH_CUSTOMERS`, `GOVFLOW_BENCH_PRODUCTS`, `GOVFLOW_BENCH_ORDERS`
//! change the store's size. `GOVFLOW_BENCH_WRAP` runs each child under a
//! profiler, e.g. `GOVFLOW_BENCH_WRAP="heaptrack -o /tmp/run"` (its figures
//! then include the profiler's).

use std::process::Command;
use std::time::{Duration, Instant};

use govflow_sim::{MutateRequest, SimOptions, SimServer};

/// What one child run cost.
struct Cost {
    wall: Duration,
    cpu: Duration,
    peak_rss_mib: f64,
}

/// A size from the environment, or its default.
fn size(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `govflow` with `args` to its end; panics unless it succeeds.
fn run_govflow(args: &[&str]) -> Cost {
    let start = Instant::now();
    let mut command = match std::env::var("GOVFLOW_BENCH_WRAP") {
        Ok(wrap) if !wrap.trim().is_empty() => {
            let mut words = wrap.split_whitespace();
            let mut command = Command::new(words.next().unwrap_or_default());
            command.args(words).arg(env!("CARGO_BIN_EXE_govflow"));
            command
        }
        _ => Command::new(env!("CARGO_BIN_EXE_govflow")),
    };
    #[expect(
        clippy::zombie_processes,
        reason = "reaped by wait4 below, which also gives its resource usage"
    )]
    let child = command
        .args(args)
        .env("GOVFLOW_LOG", "warn")
        .spawn()
        .expect("start govflow");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own unreaped child; both pointers are to live locals.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "govflow {args:?} failed (wait status {status})"
    );
    let seconds = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Cost {
        wall,
        cpu: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        // Linux reports `ru_maxrss` in KiB.
        peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
    }
}

/// Writes a configuration reading `sim` into the directory `dir`; returns its path.
fn write_config(
    dir: &std::path::Path,
    sim: &SimServer,
    options: &SimOptions,
) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).expect("create the run's directory");
    let config = dir.join("govflow.toml");
    std::fs::write(
        &config,
        format!(
            "[bigcommerce]\nbase_url = {:?}\nstore_hash = {:?}\naccess_token = {:?}\n\n\
             [warehouse]\nkind = \"local\"\ndir = {:?}\n\n[state]\ndir = {:?}\n",
            sim.base_url(),
            options.store_hash,
            options.access_token,
            dir.join("warehouse"),
            dir.join("state"),
        ),
    )
    .expect("write config");
    config
}

fn main() {
    let options = SimOptions {
        seed: 17,
        customers: size("GOVFLOW_BENCH_CUSTOMERS", 10_000),
        products: size("GOVFLOW_BENCH_PRODUCTS", 2_000),
        orders: size("GOVFLOW_BENCH_ORDERS", 50_000),
        quota: None,
        ..SimOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let sim = runtime
        .block_on(SimServer::bind(
            options.clone(),
            "127.0.0.1:0".parse().expect("address"),
        ))
        .expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let one_epoch = write_config(&dir.path().join("one-epoch"), &sim, &options);
    let bounded = write_config(&dir.path().join("bounded"), &sim, &options);
    let (one_epoch, config) = (
        one_epoch.to_str().expect("utf-8 path"),
        bounded.to_str().expect("utf-8 path"),
    );

    println!(
        "store: {} customers, {} products, {} orders; govflow run --once, 1 worker (the default)",
        options.customers, options.products, options.orders
    );
    let baseline = run_govflow(&[
        "run",
        "--config",
        one_epoch,
        "--once",
        "--full-refresh",
        "--max-epoch-rows",
        "1000000000",
    ]);
    let full = run_govflow(&["run", "--config", config, "--once", "--full-refresh"]);
    let changed = options.orders / 100;
    sim.mutate(MutateRequest {
        count: changed,
        kinds: Some(vec!["order_update".into()]),
        dirty: false,
    })
    .expect("mutate the store");
    let incremental = run_govflow(&["run", "--config", config, "--once"]);

    println!("| run | wall | CPU seconds | peak RSS |");
    println!("|---|---|---|---|");
    for (name, cost) in [
        (
            "baseline: `--once --full-refresh --max-epoch-rows 1000000000` (one epoch)",
            &baseline,
        ),
        (
            &format!(
                "`--once --full-refresh`, epochs of {} rows (the default)",
                govflow::runtime::DEFAULT_MAX_EPOCH_ROWS
            )[..],
            &full,
        ),
        (
            &format!("`--once` after {changed} order updates (1%)")[..],
            &incremental,
        ),
    ] {
        println!(
            "| {name} | {:.2} s | {:.2} s | {:.0} MiB |",
            cost.wall.as_secs_f64(),
            cost.cpu.as_secs_f64(),
            cost.peak_rss_mib
        );
    }
}
