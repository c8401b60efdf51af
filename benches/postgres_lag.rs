//! `cargo bench --bench postgres_lag`: the lag between a PostgreSQL commit and
//! its appearance in the warehouse, through the always-on pipeline
//! (`govflow run`: poll, dataflow epoch, Parquet commit, checkpoint).
//!
//! One row is inserted at a time, at a random moment of the poll cycle, and
//! the clock stops when the run has committed the epoch holding it (its
//! progress counter of committed changes moves; nothing else changes the
//! data meanwhile). Two settings side by side: the defaults' one-second flush
//! with a one-second poll, and a tight 200 ms poll with 100 ms epochs. The lag
//! is bounded by poll interval + read + flush interval + commit; the figures
//! show where in that window it lands. `GOVFLOW_BENCH_SAMPLES` (default 30).

#[path = "../tests/common/pg.rs"]
mod pg;

use std::time::{Duration, Instant};

use govflow::config::Secret;
use govflow::runtime::{ProgressHandle, RunOptions};
use govflow::settings::Config;
use govflow::sinks::{StateConfig, WarehouseConfig};
use govflow::sources::postgres::{PostgresConfig, PostgresTable};
use rand::{Rng, SeedableRng};

#[path = "common/lag.rs"]
mod lag;
use lag::{changes, committed_after};
#[path = "common/stats.rs"]
mod stats;
use stats::percentile;

async fn measure(
    url: &str,
    admin: &tokio_postgres::Client,
    poll: Duration,
    flush: Duration,
    samples: usize,
    first_id: i64,
) -> Vec<Duration> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut db = PostgresConfig::new(
        Secret::new(url),
        vec![PostgresTable {
            name: "point_transaction".into(),
            key: vec!["id".into()],
            cursor: Some("updated_at".into()),
            columns: None,
            filter: None,
        }],
    );
    db.poll_interval = poll;
    let config = Config {
        warehouse: WarehouseConfig::Local {
            dir: dir.path().join("warehouse"),
        },
        state: StateConfig {
            dir: dir.path().join("state"),
        },
        postgres: [("wise".to_string(), db)].into_iter().collect(),
        ..Config::default()
    };
    let options = RunOptions {
        workers: 2,
        flush_interval: flush,
        once: false,
        full_refresh: false,
        ..RunOptions::default()
    };
    let progress = ProgressHandle::default();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(govflow::runtime::run(
        config,
        options,
        stop_rx,
        progress.clone(),
    ));
    // Let the first poll and the restore settle.
    tokio::time::sleep(poll + flush + Duration::from_millis(500)).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut lags = Vec::with_capacity(samples);
    for i in 0..samples as i64 {
        let phase = rng.random_range(0..poll.as_millis().max(1) as u64);
        tokio::time::sleep(Duration::from_millis(phase)).await;
        let before = changes(&progress);
        admin
            .execute(
                "INSERT INTO point_transaction (id, customer_id, points, reason) VALUES ($1, 1, 5, 'bench')",
                &[&(first_id + i)],
            )
            .await
            .expect("insert");
        lags.push(committed_after(&progress, before, Instant::now()).await);
    }
    let _ = stop.send(true);
    run.await.expect("run task").expect("run");
    lags.sort();
    lags
}

fn main() {
    let samples = lag::samples();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = pg::shared();
    runtime.block_on(async {
        let url = server.create_database("govflow_bench_lag", "").await;
        let admin = server.admin("govflow_bench_lag").await;
        admin
            .batch_execute(
                "CREATE TABLE point_transaction (
                    id bigint PRIMARY KEY, customer_id bigint NOT NULL, points bigint NOT NULL,
                    reason text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
                    updated_at timestamptz NOT NULL DEFAULT clock_timestamp());
                 CREATE INDEX ON point_transaction (updated_at, id);",
            )
            .await
            .expect("schema");
        println!("PostgreSQL commit → committed in the local warehouse, {samples} rows one at a time");
        for (i, (poll, flush)) in [
            (Duration::from_secs(1), Duration::from_secs(1)),
            (Duration::from_millis(200), Duration::from_millis(100)),
        ]
        .into_iter()
        .enumerate()
        {
            let lags = measure(&url, &admin, poll, flush, samples, 1 + 1_000_000 * i as i64).await;
            println!(
                "  poll every {:>5} ms, epochs of {:>5} ms: lag p50 {:>6.0} ms  p99 {:>6.0} ms  max {:>6.0} ms  (bound: poll + flush + read/commit)",
                poll.as_millis(),
                flush.as_millis(),
                percentile(&lags, 0.5).as_secs_f64() * 1e3,
                percentile(&lags, 0.99).as_secs_f64() * 1e3,
                lags.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            );
        }
    });
}
