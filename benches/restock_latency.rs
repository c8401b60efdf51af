//! `cargo bench --bench restock_latency`: the time from a simulator restock to
//! its `product_notification_event` arriving at a local HTTP endpoint, through
//! the always-on pipeline (poll or webhook read, dataflow epoch, Parquet
//! commit, hand-over, POST), with the webhook receiver on and off.
//!
//! Restocks are issued one at a time, about every 20 ms. After each, the
//! simulator's truth tells, through the episode oracle, which (customer, SKU)
//! events it must produce; a restock's latency is the arrival of the last of
//! them. When few subscribed SKUs are left out of stock, a batch of sell-outs
//! is made and the pipeline is given time to see it (two polls; 1.5 s with
//! webhooks). Any event the
//! oracle did not expect, or twice, is counted and reported.
//!
//! Settings: 100 ms epochs; with webhooks, polls every 30 s (the safety net);
//! without, polls every second. `GOVFLOW_BENCH_RESTOCKS` (default 1000)
//! restocks that produce events are measured per setting.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
#[path = "common/stats.rs"]
mod stats;
use stats::percentile;

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use dataflows::oracle::EventOracle;
use govflow::config::Secret;
use govflow::notify::NotificationsConfig;
use govflow::runtime::{ProgressHandle, RunOptions};
use govflow::settings::Config;
use govflow::sinks::{StateConfig, WarehouseConfig};
use govflow::sources::bigcommerce::webhooks::WebhooksConfig;
use govflow_sim::SimOptions;
use serde_json::json;

/// One arrival: (customer, sku), when, and the event id.
type Arrival = ((i64, i64), Instant, String);

/// Arrivals at the endpoint, in order.
#[derive(Default)]
struct Endpoint {
    arrivals: Mutex<Vec<Arrival>>,
}

async fn receive(State(e): State<Arc<Endpoint>>, body: axum::body::Bytes) -> StatusCode {
    let now = Instant::now();
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let (Some(c), Some(s), Some(id)) = (
        v["customer_id"].as_i64(),
        v["sku_id"].as_i64(),
        v["event_id"].as_str(),
    ) else {
        return StatusCode::BAD_REQUEST;
    };
    if let Ok(mut a) = e.arrivals.lock() {
        a.push(((c, s), now, id.to_string()));
    }
    StatusCode::OK
}

/// Matches arrivals to the restocks that expected them.
#[derive(Default)]
struct Matcher {
    /// (customer, sku) -> the restock that expects it.
    pending: HashMap<(i64, i64), usize>,
    /// Per restock, its latest arrival so far.
    last_arrival: BTreeMap<usize, Instant>,
    /// Arrivals already looked at.
    seen: usize,
    /// Arrivals nobody expected (or a second time).
    unexpected: usize,
}

impl Matcher {
    fn drain(&mut self, endpoint: &Endpoint) {
        let arrivals: Vec<Arrival> = endpoint
            .arrivals
            .lock()
            .map(|a| a[self.seen..].to_vec())
            .unwrap_or_default();
        self.seen += arrivals.len();
        for (pair, at, _) in arrivals {
            match self.pending.remove(&pair) {
                Some(i) => {
                    let slot = self.last_arrival.entry(i).or_insert(at);
                    *slot = (*slot).max(at);
                }
                None => self.unexpected += 1,
            }
        }
    }
}

fn pulls(progress: &ProgressHandle) -> u64 {
    progress.lock().map(|p| p.pulls).unwrap_or(0)
}

async fn wait_for_pulls(progress: &ProgressHandle, n: u64) {
    while pulls(progress) < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Outcome {
    latencies: Vec<Duration>,
    unexpected: usize,
    missing: usize,
}

async fn measure(webhooks: bool, restocks: usize) -> Outcome {
    let options = SimOptions {
        seed: 61,
        customers: 2000,
        products: 60,
        orders: 50,
        quota: None,
        ..SimOptions::default()
    };
    let sim = common::start_sim(options.clone()).await;
    let endpoint = Arc::new(Endpoint::default());
    let app = axum::Router::new()
        .route("/restock", axum::routing::post(receive))
        .with_state(endpoint.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/restock", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let hook_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();

    let dir = tempfile::tempdir().expect("tempdir");
    let mut bc = common::config_for(&sim, &options);
    bc.poll_interval = if webhooks {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(1)
    };
    let config = Config {
        bigcommerce: Some(bc),
        warehouse: WarehouseConfig::Local {
            dir: dir.path().join("warehouse"),
        },
        state: StateConfig {
            dir: dir.path().join("state"),
        },
        notifications: Some(NotificationsConfig {
            slack_webhook: None,
            endpoint: url.parse().expect("url"),
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
            max_in_flight: 8,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(30),
        }),
        webhooks: webhooks.then(|| WebhooksConfig {
            listen: format!("127.0.0.1:{hook_port}").parse().expect("addr"),
            secret_header: govflow::sources::bigcommerce::webhooks::DEFAULT_WEBHOOK_SECRET_HEADER
                .into(),
            secret: Secret::new("bench-webhook-secret-0123"),
        }),
        ..Config::default()
    };
    let run_options = RunOptions {
        workers: 1,
        flush_interval: Duration::from_millis(100),
        once: false,
        full_refresh: false,
        ..RunOptions::default()
    };
    let progress = ProgressHandle::default();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(govflow::runtime::run(
        config,
        run_options,
        stop,
        progress.clone(),
    ));
    wait_for_pulls(&progress, 1).await;
    if webhooks {
        common::control(
            &sim,
            "/_sim/webhooks",
            json!({
                "destination": format!("http://127.0.0.1:{hook_port}/bigcommerce/webhooks"),
                "headers": { "X-Govflow-Webhook-Secret": "bench-webhook-secret-0123" },
            }),
        )
        .await;
    }
    let mut oracle = EventOracle::default();
    oracle.step(0, &common::truth(&sim).await);

    let mut matcher = Matcher::default();
    // Per restock with events: when it was issued.
    let mut issued: Vec<Instant> = Vec::new();
    let mut step = 1u64;
    let mut dry = 0;
    // Since when the loop waits for expected events before selling out.
    let mut waiting: Option<Instant> = None;
    while issued.len() < restocks {
        if dry >= 10
            && !matcher.pending.is_empty()
            && waiting.get_or_insert_with(Instant::now).elapsed() < Duration::from_secs(30)
        {
            // Let every restock be seen before selling anything out again
            // (a sell-out the pipeline sees first would hide the restock).
            tokio::time::sleep(Duration::from_millis(50)).await;
            matcher.drain(&endpoint);
            continue;
        }
        waiting = None;
        if dry >= 10 {
            // Few subscribed SKUs left out of stock: sell out a batch, let two polls see it.
            common::control(
                &sim,
                "/_sim/mutate",
                json!({"count": 60, "kinds": ["sell_out"]}),
            )
            .await;
            step += 1;
            let none = oracle.step(step, &common::truth(&sim).await);
            assert!(none.is_empty(), "sell-outs announce nothing");
            if webhooks {
                tokio::time::sleep(Duration::from_millis(1500)).await;
            } else {
                let now = pulls(&progress);
                wait_for_pulls(&progress, now + 2).await;
            }
            dry = 0;
        }
        let t0 = Instant::now();
        common::control(
            &sim,
            "/_sim/mutate",
            json!({"count": 1, "kinds": ["restock"]}),
        )
        .await;
        step += 1;
        let expected = oracle.step(step, &common::truth(&sim).await);
        if expected.is_empty() {
            dry += 1;
        } else {
            dry = 0;
            let index = issued.len();
            issued.push(t0);
            for e in &expected {
                matcher.pending.insert((e.customer_id, e.sku_id), index);
            }
        }
        // Match what arrived so far.
        matcher.drain(&endpoint);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the last ones arrive.
    let deadline = Instant::now() + Duration::from_secs(40);
    while !matcher.pending.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        matcher.drain(&endpoint);
    }
    let missing = matcher.pending.len();
    let _ = stop_tx.send(true);
    let _ = run.await;
    let mut latencies: Vec<Duration> = issued
        .iter()
        .enumerate()
        .filter(|(i, _)| !matcher.pending.values().any(|p| p == i))
        .filter_map(|(i, t0)| {
            matcher
                .last_arrival
                .get(&i)
                .map(|at| at.duration_since(*t0))
        })
        .collect();
    latencies.sort();
    Outcome {
        latencies,
        unexpected: matcher.unexpected,
        missing,
    }
}

fn main() {
    let restocks: usize = std::env::var("GOVFLOW_BENCH_RESTOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("restock → event at the endpoint, {restocks} restocks with events per setting");
    println!("| setting | restocks | p50 | p90 | p99 | max | unexpected | missing |");
    println!("|---|---|---|---|---|---|---|---|");
    for webhooks in [true, false] {
        let o = rt.block_on(measure(webhooks, restocks));
        let name = if webhooks {
            "webhooks on (poll 30 s, epochs 100 ms)"
        } else {
            "webhooks off (poll 1 s, epochs 100 ms)"
        };
        if o.latencies.is_empty() {
            println!(
                "| {name} | 0 | - | - | - | - | {} | {} |",
                o.unexpected, o.missing
            );
            continue;
        }
        let l = &o.latencies;
        let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            l.len(),
            ms(percentile(l, 0.5)),
            ms(percentile(l, 0.9)),
            ms(percentile(l, 0.99)),
            ms(l[l.len() - 1]),
            o.unexpected,
            o.missing
        );
    }
}
