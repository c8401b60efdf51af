//! `cargo bench --bench bigcommerce_pull`: records/s pulled and parsed from the
//! simulator with the quota off, and quota use with it on.
//!
//! Both the simulator and the source run in this process on the same cores, so
//! the figure includes the simulator's cost of serving the JSON. The baseline
//! in the same run is the same source walking one entity after another with a
//! single request in flight: what a straightforward paginating client does.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dataflows::records::Upsert;
use govflow::config::Secret;
use govflow::sources::bigcommerce::BigCommerceConfig;
use govflow::sources::bigcommerce::{BigCommerceSource, Cursors, Entity, PullMode};
use govflow_sim::{SimOptions, SimServer};
use tokio::sync::mpsc;

/// The product binary's allocator, so the figure is what `govflow run` does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rows(upserts: &[Upsert]) -> u64 {
    upserts
        .iter()
        .map(|u| match u {
            Upsert::OrderItems(_, Some(lines)) => lines.len() as u64,
            _ => 1,
        })
        .sum()
}

fn config(sim: &SimServer, options: &SimOptions, concurrency: usize) -> BigCommerceConfig {
    let mut c = BigCommerceConfig::new(
        sim.base_url().parse().expect("url"),
        options.store_hash.clone(),
        Secret::new(options.access_token.clone()),
    );
    c.max_concurrency = concurrency;
    c
}

/// Pulls everything; returns rows and seconds.
async fn full_pull(source: &BigCommerceSource, one_at_a_time: bool) -> (u64, f64) {
    let (tx, mut rx) = mpsc::channel::<govflow::sources::bigcommerce::Batch>(64);
    let consumer = tokio::spawn(async move {
        let mut n = 0;
        while let Some(b) = rx.recv().await {
            n += rows(&b.upserts);
        }
        n
    });
    let start = Instant::now();
    if one_at_a_time {
        for e in Entity::ALL {
            source
                .pull_entity(e, None, PullMode::FullSnapshot, &tx)
                .await
                .expect("pull");
        }
    } else {
        source
            .pull(&Cursors::default(), PullMode::FullSnapshot, &tx)
            .await
            .expect("pull");
    }
    drop(tx);
    let n = consumer.await.expect("consumer");
    (n, start.elapsed().as_secs_f64())
}

async fn quota_off() {
    let options = SimOptions {
        seed: 1,
        customers: 30_000,
        products: 6_000,
        orders: 30_000,
        quota: None,
        ..SimOptions::default()
    };
    let sim = SimServer::bind(options.clone(), SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("sim");
    println!(
        "quota off: store of {} customers, {} products, {} orders",
        options.customers, options.products, options.orders
    );
    for (label, concurrency, sequential) in [
        ("baseline: one entity at a time, 1 in flight", 1, true),
        ("govflow: all entities, up to 4 in flight", 4, false),
    ] {
        let source = BigCommerceSource::new(config(&sim, &options, concurrency)).expect("source");
        let mut best = f64::MAX;
        let mut total = 0;
        for _ in 0..3 {
            let (n, secs) = full_pull(&source, sequential).await;
            total = n;
            best = best.min(secs);
        }
        println!(
            "  {label:<46} {:>9.0} rows/s  ({total} rows in {best:.2} s, best of 3, {} requests)",
            total as f64 / best,
            source.client().stats().requests.load(Ordering::Relaxed) / 3
        );
    }
    sim.shutdown().await;
}

async fn quota_on() {
    let options = SimOptions {
        seed: 2,
        customers: 5_000,
        products: 500,
        orders: 5_000,
        quota: Some(150),
        ..SimOptions::default()
    };
    let sim = SimServer::bind(options.clone(), SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("sim");
    let mut cfg = config(&sim, &options, 4);
    cfg.page_size = 10;
    let source = std::sync::Arc::new(BigCommerceSource::new(cfg).expect("source"));
    let window = Duration::from_secs(30);
    let deadline = Instant::now() + window * 2 + Duration::from_secs(5);
    println!(
        "quota on: 150 requests per rolling 30 s, pages of 10, 4 in flight, {} s",
        (window * 2 + Duration::from_secs(5)).as_secs()
    );
    let mut tasks = Vec::new();
    for entity in [Entity::Customers, Entity::Orders, Entity::Products] {
        let source = source.clone();
        tasks.push(tokio::spawn(async move {
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
    for t in tasks {
        t.await.expect("walker");
    }
    let stats: serde_json::Value = reqwest::get(format!("{}/_sim/stats", sim.base_url()))
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats json");
    let arrivals: Vec<u64> = stats["arrivals_ms"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
        .unwrap_or_default();
    let first = arrivals.first().copied().unwrap_or(0);
    let used = arrivals
        .iter()
        .filter(|t| (first + 30_000..first + 60_000).contains(*t))
        .count();
    println!(
        "  steady-state window (30-60 s): {used} of 150 requests = {:.1}% of the quota; 429s seen by the server: {}",
        used as f64 / 1.5,
        stats["by_status"]
            .get("429")
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    );
    sim.shutdown().await;
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects one part.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        if filter.as_deref().is_none_or(|f| "quota_off".contains(f)) {
            quota_off().await;
        }
        if filter.as_deref().is_none_or(|f| "quota_on".contains(f)) {
            quota_on().await;
        }
    });
}
