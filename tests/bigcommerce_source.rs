//! The BigCommerce source against the simulator over real HTTP on 127.0.0.1.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use dataflows::oracle::RawState;
use dataflows::records::Upsert;
use govflow::sources::bigcommerce::{
    BigCommerceSource, Cursors, DeadLetter, Entity, PullMode, collect,
};
use govflow_sim::SimOptions;
use serde_json::json;
use tokio::sync::mpsc;

/// Runs one pull to completion and returns its upserts, dead letters and new cursors.
async fn pull_all(
    source: &BigCommerceSource,
    cursors: &Cursors,
    mode: PullMode,
) -> (Vec<dataflows::records::Upsert>, Vec<DeadLetter>, Cursors) {
    let (tx, rx) = mpsc::channel(64);
    let collector = tokio::spawn(collect(rx));
    let report = source
        .pull(cursors, mode, &tx)
        .await
        .expect("pull succeeds");
    drop(tx);
    let (upserts, dead) = collector.await.expect("collector");
    let mut next = cursors.clone();
    next.advance(&report.entities);
    (upserts, dead, next)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_pull_equals_truth() {
    let options = store(7, 3000, 1000, 3000);
    let sim = start_sim(options.clone()).await;
    let source = BigCommerceSource::new(config_for(&sim, &options)).unwrap();
    let (upserts, dead, cursors) =
        pull_all(&source, &Cursors::default(), PullMode::FullSnapshot).await;
    assert!(dead.is_empty(), "{dead:?}");
    let mut got = RawState::default();
    apply(&mut got, upserts);
    let want = truth(&sim).await;
    assert!(
        want.customers.len() >= 3000
            && want.variants.len() >= 1000
            && want.order_items.len() >= 3000
    );
    assert_tables(&got, &want, false);
    for entity in Entity::ALL.into_iter().filter(|e| e.has_cursor()) {
        assert!(cursors.get(entity).is_some(), "{entity:?} has a cursor");
    }
    assert_eq!(source.client().stats().retries.load(Ordering::Relaxed), 0);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_pulls_catch_every_change_even_while_paging() {
    let test_began = (chrono::Utc::now() - chrono::Duration::seconds(2)).timestamp_micros();
    let options = store(11, 1500, 300, 1500);
    let sim = start_sim(options.clone()).await;
    let mut config = config_for(&sim, &options);
    // Small pages make walks long, so mutations land in the middle of them. The
    // store was seeded long before the lookback: an old record a walk skipped
    // (the page-number failure) would stay missed, and the test would see it.
    config.page_size = 20;
    config.lookback = Duration::from_secs(60);
    let source = BigCommerceSource::new(config).unwrap();
    let mut state = RawState::default();
    let mut cursors = Cursors::default();
    for round in 0..4 {
        let mode = if round == 0 {
            PullMode::FullSnapshot
        } else {
            PullMode::Incremental
        };
        // Mutate before and during the pull.
        control(&sim, "/_sim/mutate", json!({"count": 150})).await;
        let mutator = {
            let url = format!("{}/_sim/mutate", sim.base_url());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for _ in 0..20 {
                    http.post(&url)
                        .json(&json!({"count": 10}))
                        .send()
                        .await
                        .unwrap();
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
            })
        };
        let (upserts, dead, next) = pull_all(&source, &cursors, mode).await;
        mutator.await.unwrap();
        assert!(dead.is_empty(), "{dead:?}");
        apply(&mut state, upserts);
        cursors = next;
    }
    // A last pull with the store quiet: everything changed must now be in.
    let (tx, rx) = mpsc::channel(64);
    let collector = tokio::spawn(collect(rx));
    source
        .pull(&cursors, PullMode::Incremental, &tx)
        .await
        .unwrap();
    drop(tx);
    let quiet = collector.await.unwrap().0;
    // That pull re-read only records changed during the rounds, none of the
    // untouched store (seeded before the test began).
    for u in &quiet {
        let modified = match u {
            Upsert::Customer(_, Some(c)) => c.modified_at,
            Upsert::CustomerMetafield(_, Some(m)) => m.modified_at,
            Upsert::Product(_, Some(p)) => p.modified_at,
            Upsert::Order(_, Some(o)) => o.modified_at,
            _ => continue,
        };
        assert!(
            modified >= test_began,
            "a quiet pull re-read an untouched record: {u:?}"
        );
    }
    apply(&mut state, quiet);
    assert_tables(&state, &truth(&sim).await, true);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_lose_nothing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("govflow=debug")
        .with_test_writer()
        .try_init();
    let options = store(13, 1200, 300, 1200);
    let sim = start_sim(options.clone()).await;
    let mut config = config_for(&sim, &options);
    config.page_size = 100;
    config.request_timeout = Duration::from_millis(700);
    config.max_attempts = 30;
    let source = BigCommerceSource::new(config).unwrap();
    control(
        &sim,
        "/_sim/faults",
        json!({
            "storm_429": 40, "storm_reset_ms": 100, "bare_429_rate": 0.02,
            "error_rate": 0.1, "truncate_rate": 0.05,
            "slow_rate": 0.03, "slow_ms": 1500, "latency_ms": 5
        }),
    )
    .await;
    let (upserts, dead, _) = pull_all(&source, &Cursors::default(), PullMode::FullSnapshot).await;
    control(&sim, "/_sim/faults", json!({})).await;
    assert!(dead.is_empty(), "{dead:?}");
    let mut got = RawState::default();
    apply(&mut got, upserts);
    assert_tables(&got, &truth(&sim).await, false);
    let stats = source.client().stats();
    assert!(
        stats.rate_limited.load(Ordering::Relaxed) >= 40,
        "the 429 storm was seen"
    );
    assert!(
        stats.transient_errors.load(Ordering::Relaxed) > 0,
        "5xx, cuts and timeouts were retried"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_records_are_dead_lettered_and_the_rest_delivered() {
    let options = store(17, 1500, 400, 1500);
    let sim = start_sim(options.clone()).await;
    let source = BigCommerceSource::new(config_for(&sim, &options)).unwrap();
    control(&sim, "/_sim/faults", json!({"malformed_rate": 0.03})).await;
    let (upserts, dead, _) = pull_all(&source, &Cursors::default(), PullMode::FullSnapshot).await;
    let mut got = RawState::default();
    apply(&mut got, upserts);
    let want = truth(&sim).await;
    assert!(
        dead.len() > 20,
        "some records were malformed: {}",
        dead.len()
    );
    let mut dead_ids: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    for d in &dead {
        assert!(
            !d.reason.is_empty() && !d.raw_excerpt.is_empty() && d.request.starts_with("GET "),
            "{d:?}"
        );
        dead_ids
            .entry(d.entity)
            .or_default()
            .insert(d.id.expect("malformed records keep their id"));
    }
    // Every record is either delivered exactly as the truth says, or dead-lettered.
    fn check<V: PartialEq + std::fmt::Debug>(
        what: &str,
        got: &BTreeMap<i64, V>,
        want: &BTreeMap<i64, V>,
        dead: Option<&BTreeSet<i64>>,
    ) {
        let empty = BTreeSet::new();
        let dead = dead.unwrap_or(&empty);
        for (id, w) in want {
            match got.get(id) {
                Some(g) => assert_eq!(g, w, "{what} {id}"),
                None => assert!(
                    dead.contains(id),
                    "{what} {id} neither delivered nor dead-lettered"
                ),
            }
        }
        assert!(
            got.keys().all(|k| want.contains_key(k)),
            "{what}: unexpected rows"
        );
    }
    check(
        "customers",
        &got.customers,
        &want.customers,
        dead_ids.get("customer"),
    );
    check(
        "metafields",
        &got.customer_metafields,
        &want.customer_metafields,
        dead_ids.get("customer_metafield"),
    );
    check(
        "products",
        &got.products,
        &want.products,
        dead_ids.get("product"),
    );
    check(
        "variants",
        &got.variants,
        &want.variants,
        dead_ids.get("variant"),
    );
    check(
        "inventory",
        &got.inventory,
        &want.inventory,
        dead_ids.get("inventory_item"),
    );
    check("orders", &got.orders, &want.orders, dead_ids.get("order"));
    check(
        "order items",
        &got.order_items,
        &want.order_items,
        dead_ids.get("order"),
    );
    let delivered: usize = counts(&got).iter().sum();
    assert!(delivered > 5000, "the rest was delivered: {delivered}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_pull_uses_the_quota_without_a_single_429() {
    let options = SimOptions {
        quota: Some(150),
        ..store(19, 2000, 200, 2000)
    };
    let sim = start_sim(options.clone()).await;
    let mut config = config_for(&sim, &options);
    config.page_size = 5;
    config.max_concurrency = 4;
    let source = std::sync::Arc::new(BigCommerceSource::new(config).unwrap());
    let window = Duration::from_secs(30);
    let deadline = Instant::now() + window * 2 + Duration::from_secs(8);
    // Three entities walked concurrently, over and over, until past two windows.
    let mut walkers = Vec::new();
    for entity in [
        Entity::Customers,
        Entity::Orders,
        Entity::CustomerMetafields,
    ] {
        let source = source.clone();
        walkers.push(tokio::spawn(async move {
            let (tx, mut rx) = mpsc::channel(64);
            tokio::spawn(async move { while rx.recv().await.is_some() {} });
            while Instant::now() < deadline {
                let walk = source.pull_entity(entity, None, PullMode::FullSnapshot, &tx);
                if tokio::time::timeout_at(deadline.into(), walk)
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }));
    }
    for w in walkers {
        w.await.unwrap();
    }
    let stats: serde_json::Value = reqwest::get(format!("{}/_sim/stats", sim.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["by_status"].get("429"),
        None,
        "no 429: {}",
        stats["by_status"]
    );
    assert_eq!(
        source.client().stats().rate_limited.load(Ordering::Relaxed),
        0
    );
    let arrivals: Vec<u64> = stats["arrivals_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let first = arrivals[0];
    // Steady state: the window after the initial burst, and the one after that.
    for k in 1..=2u64 {
        let (from, to) = (first + k * 30_000, first + (k + 1) * 30_000);
        let used = arrivals.iter().filter(|t| (from..to).contains(*t)).count();
        let share = used as f64 / 150.0;
        eprintln!(
            "window {k}: {used} requests = {:.1}% of the quota",
            share * 100.0
        );
        if to <= *arrivals.last().unwrap() {
            assert!(share >= 0.95, "window {k} used {used} of 150");
        }
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_pages_announce_how_many_pages_the_walk_takes() {
    let options = store(8, 1000, 50, 20);
    let sim = start_sim(options.clone()).await;
    let mut config = config_for(&sim, &options);
    config.page_size = 100;
    let source = BigCommerceSource::new(config).unwrap();
    let (tx, mut rx) = mpsc::channel(1024);
    let puller = tokio::spawn(async move {
        source
            .pull(&Cursors::default(), PullMode::FullSnapshot, &tx)
            .await
            .map(|_| ())
    });
    let mut customers = Vec::new();
    while let Some(batch) = rx.recv().await {
        if batch.entity == Entity::Customers {
            customers.push(batch.expected_pages);
        }
    }
    puller.await.unwrap().expect("pull succeeds");
    // The first page announces the whole walk; a keyset walk that restarts at
    // a newer second reads its boundary page again, and the estimate follows:
    // the last page's estimate is the number of pages read.
    let pages = truth(&sim).await.customers.len().div_ceil(100) as u64;
    assert_eq!(customers.first(), Some(&Some(pages)), "{customers:?}");
    assert_eq!(
        customers.last(),
        Some(&Some(customers.len() as u64)),
        "{customers:?}"
    );
    assert!(customers.iter().all(Option::is_some), "{customers:?}");
    sim.shutdown().await;
}
