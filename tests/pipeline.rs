//! The pipeline end to end over real HTTP: the simulator, `run --once` rounds,
//! and the local warehouse compared with a fresh full refresh.

mod common;

use common::*;
use dataflows::Table;
use govflow_sim::MutateRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_rounds_then_full_refresh_equal_a_fresh_full_refresh() {
    let options = store(23, 400, 80, 600);
    let sim = start_sim(options.clone()).await;
    let a = tempfile::tempdir().unwrap();
    let config_a = local_config(&sim, &options, a.path());
    run_once(&config_a, false, 2).await;
    for _ in 0..4 {
        sim.mutate(MutateRequest {
            count: 120,
            kinds: None,
            dirty: false,
        })
        .unwrap();
        // Dirty data too: `_errors` and the fallbacks follow incrementally.
        sim.mutate(MutateRequest {
            count: 8,
            kinds: None,
            dirty: true,
        })
        .unwrap();
        run_once(&config_a, false, 2).await;
    }
    // Deletes upstream are invisible to incremental pulls; the full refresh reconciles them.
    run_once(&config_a, true, 2).await;
    let b = tempfile::tempdir().unwrap();
    let config_b = local_config(&sim, &options, b.path());
    run_once(&config_b, true, 1).await;
    let (ta, tb) = (tables(a.path()), tables(b.path()));
    assert_same_warehouses(&ta, &tb);
    assert_same_through_duckdb(a.path(), b.path());
    let customers = &ta.iter().find(|(t, _)| *t == Table::DimCustomer).unwrap().1;
    assert!(
        customers.len() >= 400,
        "the store was loaded: {} customers",
        customers.len()
    );
    let errors = &ta.iter().find(|(t, _)| *t == Table::Errors).unwrap().1;
    assert!(!errors.is_empty(), "the dirty data is in `_errors`");
    // The raw tables equal the simulator's truth.
    let truth = truth(&sim).await;
    let raw_orders = &ta.iter().find(|(t, _)| *t == Table::RawBcOrder).unwrap().1;
    assert_eq!(raw_orders.len(), truth.orders.len());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_the_checkpoint_and_rereads_only_the_lookback() {
    let options = store(29, 500, 60, 500);
    let sim = start_sim(options.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(&sim, &options, dir.path());
    run_once(&config, false, 1).await;
    let first = tables(dir.path());
    // Nothing changed upstream: a second run commits nothing new.
    let epoch_before = committed_epoch(dir.path());
    run_once(&config, false, 1).await;
    assert_eq!(
        committed_epoch(dir.path()),
        epoch_before,
        "re-reading unchanged rows publishes nothing"
    );
    assert_eq!(tables(dir.path()), first);
    let checkpoint =
        govflow::runtime::checkpoint::Checkpoint::load(&dir.path().join("state")).unwrap();
    assert_eq!(checkpoint.epoch, epoch_before);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_read_commits_in_bounded_epochs_with_the_same_result() {
    let options = store(31, 600, 60, 900);
    let sim = start_sim(options.clone()).await;
    let small = tempfile::tempdir().unwrap();
    let config = local_config(&sim, &options, small.path());
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let progress = govflow::runtime::ProgressHandle::default();
    let run = govflow::runtime::RunOptions {
        workers: 2,
        // Long enough that only the row bound ends an epoch early.
        flush_interval: std::time::Duration::from_secs(30),
        once: true,
        full_refresh: true,
        max_epoch_rows: 200,
        ..govflow::runtime::RunOptions::default()
    };
    govflow::runtime::run(config, run, stop_rx, progress.clone())
        .await
        .expect("run --once succeeds");
    let upserts = progress.lock().unwrap().upserts;
    let epochs = committed_epoch(small.path()).expect("something was committed");
    assert!(upserts >= 1500, "the store was read: {upserts} upserts");
    // Unbounded, the 30 s interval would hold the whole read in one epoch
    // (and the refresh's deletes in a second).
    assert!(
        epochs >= 5,
        "{upserts} upserts were committed in {epochs} epochs of about 200 rows"
    );
    let one = tempfile::tempdir().unwrap();
    run_once(&local_config(&sim, &options, one.path()), true, 1).await;
    assert_same_warehouses(&tables(small.path()), &tables(one.path()));
    sim.shutdown().await;
}
