//! `cargo bench --bench bigcommerce_freshness`: end-to-end freshness of the
//! BigCommerce path: a change in the simulated store until it is committed to
//! the warehouse by the always-on pipeline (poll, dataflow epoch, Parquet
//! commit, checkpoint), p50/p99.
//!
//! One order is updated at a time, at a random moment of the poll cycle, and
//! the clock stops when the run has committed the epoch holding it (its
//! progress counter of committed changes moves; nothing else changes the store
//! meanwhile). Two settings side by side: the defaults (1 s poll, 1 s epochs)
//! and a tight one (200 ms poll, 100 ms epochs). Freshness is bounded by poll
//! interval + pull + flush interval + commit. `GOVFLOW_BENCH_SAMPLES` (default 30).

use std::time::{Duration, Instant};

use govflow::config::Secret;
use govflow::runtime::{ProgressHandle, RunOptions};
use govflow::settings::Config;
use govflow::sinks::{StateConfig, WarehouseConfig};
use govflow::sources::bigcommerce::BigCommerceConfig;
use govflow_sim::{MutateRequest, SimOptions, SimServer};
use rand::{Rng, SeedableRng};

#[path = "common/lag.rs"]
mod lag;
use lag::{changes, committed_after};
#[path = "common/stats.rs"]
mod stats;
use stats::percentile;

async fn measure(poll: Duration, flush: Duration, samples: usize) -> Vec<Duration> {
    let options = SimOptions {
        seed: 5,
        customers: 2_000,
        products: 300,
        orders: 5_000,
        quota: None,
        ..SimOptions::default()
    };
    let sim = SimServer::bind(options.clone(), "127.0.0.1:0".parse().expect("address"))
        .await
        .expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bc = BigCommerceConfig::new(
        sim.base_url().parse().expect("url"),
        options.store_hash.clone(),
        Secret::new(options.access_token.clone()),
    );
    bc.poll_interval = poll;
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
    let run_options = RunOptions {
        workers: 2,
        flush_interval: flush,
        ..RunOptions::default()
    };
    let progress = ProgressHandle::default();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(govflow::runtime::run(
        config,
        run_options,
        stop_rx,
        progress.clone(),
    ));
    // Let the backfill finish: no commit with changes for two polls.
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(2 * poll + flush).await;
        let now = changes(&progress);
        if now == last && now > 0 {
            break;
        }
        last = now;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut lags = Vec::with_capacity(samples);
    for _ in 0..samples {
        let phase = rng.random_range(0..poll.as_millis().max(1) as u64);
        tokio::time::sleep(Duration::from_millis(phase)).await;
        let before = changes(&progress);
        sim.mutate(MutateRequest {
            count: 1,
            kinds: Some(vec!["order_update".into()]),
            dirty: false,
        })
        .expect("mutation");
        lags.push(committed_after(&progress, before, Instant::now()).await);
    }
    let _ = stop.send(true);
    run.await.expect("run task").expect("run");
    sim.shutdown().await;
    lags.sort();
    lags
}

fn main() {
    let samples = lag::samples();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("store change -> committed in the warehouse, {samples} samples each");
    for (poll, flush) in [
        (Duration::from_secs(1), Duration::from_secs(1)),
        (Duration::from_millis(200), Duration::from_millis(100)),
    ] {
        let lags = runtime.block_on(measure(poll, flush, samples));
        println!(
            "poll {:>5} ms, epochs {:>5} ms: p50 {:>6.0} ms, p99 {:>6.0} ms, max {:>6.0} ms",
            poll.as_millis(),
            flush.as_millis(),
            percentile(&lags, 0.5).as_secs_f64() * 1e3,
            percentile(&lags, 0.99).as_secs_f64() * 1e3,
            lags.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        );
    }
}
