//! Restock notifications end to end: the simulator's stock changes, `govflow
//! run` commits `product_notification_event` and delivers it to a local
//! endpoint that deduplicates on `Idempotency-Key`, as a real receiver must.
//! Expected events come from the episode oracle over the simulator's truth.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::*;
use dataflows::oracle::{EventOracle, RawState};
use dataflows::rows::product_notification_event::{ProductNotificationEvent, subscriptions_of};
use dataflows::{Table, TableRow};
use govflow_sim::{SimOptions, SimServer};
use serde_json::json;

const UP: u8 = 0;
const DOWN: u8 = 1;
/// Process the request, then hold the answer back (an ack lost to a crash).
const SLOW_ACK: u8 = 2;

/// A receiver that deduplicates on `Idempotency-Key`.
#[derive(Default)]
struct Receiver {
    mode: AtomicU8,
    /// Every request's key, in arrival order.
    requests: Mutex<Vec<String>>,
    /// Keys processed (first delivery while up), in order, with their bodies.
    processed: Mutex<Vec<(String, serde_json::Value)>>,
    /// Requests for a key already processed.
    duplicates: Mutex<Vec<String>>,
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return StatusCode::BAD_REQUEST;
    };
    r.requests.lock().unwrap().push(key.clone());
    let mode = r.mode.load(Ordering::SeqCst);
    if mode == DOWN {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    {
        let mut processed = r.processed.lock().unwrap();
        if processed.iter().any(|(k, _)| *k == key) {
            r.duplicates.lock().unwrap().push(key);
            return StatusCode::OK;
        }
        let body = serde_json::from_slice(&body).unwrap_or_default();
        processed.push((key, body));
    }
    if mode == SLOW_ACK {
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
    StatusCode::OK
}

impl Receiver {
    async fn start() -> (Arc<Receiver>, String) {
        let state = Arc::new(Receiver::default());
        let app = axum::Router::new()
            .route("/restock", axum::routing::post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/restock", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (state, url)
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn processed_keys(&self) -> Vec<String> {
        self.processed
            .lock()
            .unwrap()
            .iter()
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn distinct_requested(&self) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .collect::<BTreeSet<_>>()
            .len()
    }
}

fn write_config(
    sim: &SimServer,
    options: &SimOptions,
    dir: &Path,
    endpoint: &str,
) -> std::path::PathBuf {
    let path = dir.join("govflow.toml");
    let text = format!(
        "[bigcommerce]\nbase_url = {:?}\nstore_hash = {:?}\naccess_token = \"${{TEST_BC_TOKEN}}\"\npoll_interval = \"200ms\"\npage_size = 100\n\n\
         [warehouse]\nkind = \"local\"\ndir = {:?}\n\n[state]\ndir = {:?}\n\n[status]\nlisten = \"127.0.0.1:0\"\n\n\
         [notifications]\nendpoint = {endpoint:?}\nretry_initial = \"20ms\"\nretry_max = \"200ms\"\ndrain_timeout = \"1500ms\"\n",
        sim.base_url(),
        options.store_hash,
        dir.join("warehouse").display().to_string(),
        dir.join("state").display().to_string(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A config with the webhook receiver on `port` and polls an hour apart:
/// after the first pull, only webhooks bring changes.
fn write_webhook_config(
    sim: &SimServer,
    options: &SimOptions,
    dir: &Path,
    endpoint: &str,
    port: u16,
) -> std::path::PathBuf {
    let path = write_config(sim, options, dir, endpoint);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("poll_interval = \"200ms\"", "poll_interval = \"1h\"");
    let text =
        format!("{text}\n[webhooks]\nlisten = \"127.0.0.1:{port}\"\nsecret = {WEBHOOK_SECRET:?}\n");
    std::fs::write(&path, text).unwrap();
    path
}

const WEBHOOK_SECRET: &str = "test-webhook-secret-0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn govflow(config: &Path, options: &SimOptions, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_govflow"));
    cmd.args(["--log", "warn", "run", "--config"])
        .arg(config)
        .args(args)
        .env("TEST_BC_TOKEN", &options.access_token)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn run_once(config: &Path, options: &SimOptions) {
    let status = govflow(config, options, &["--once", "--flush-interval", "100ms"])
        .status()
        .unwrap();
    assert!(status.success(), "govflow run --once failed: {status}");
}

/// The committed outbox (opens the warehouse: only while no pipeline runs).
fn outbox(dir: &Path) -> Vec<ProductNotificationEvent> {
    tables(dir)
        .into_iter()
        .filter(|(t, _)| *t == Table::ProductNotificationEvent)
        .flat_map(|(_, rows)| rows)
        .filter_map(|row| match row {
            TableRow::ProductNotificationEvent(e) => Some(e),
            _ => None,
        })
        .collect()
}

/// (customer, sku) subscriptions of a state.
fn subscriptions(state: &RawState) -> BTreeSet<(i64, i64)> {
    state
        .customer_metafields
        .values()
        .flat_map(|m| subscriptions_of(&m.project()))
        .collect()
}

fn on_sale(state: &RawState) -> BTreeSet<i64> {
    dataflows::oracle::compute(state)
        .into_iter()
        .filter_map(|row| match row {
            TableRow::FctOnsaleProductInventory(r) => Some(r.sku_id),
            _ => None,
        })
        .collect()
}

async fn mutate(sim: &SimServer, count: usize, kinds: &[&str]) {
    control(
        sim,
        "/_sim/mutate",
        json!({ "count": count, "kinds": kinds }),
    )
    .await;
}

/// Rounds of stock and subscription changes, each caught up by a `run
/// --once` (so every round is also a restart); the endpoint is down for a few
/// rounds. Every round's new events are exactly the oracle's; each arrives
/// once; nothing is announced for a subscription made while in stock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restock_episodes_are_delivered_once_each() {
    let options = store(41, 200, 12, 20);
    let sim = start_sim(options.clone()).await;
    let (receiver, endpoint) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&sim, &options, dir.path(), &endpoint);

    // The first run is the baseline: episodes already running are not announced.
    run_once(&config, &options);
    let mut oracle = EventOracle::default();
    let mut state = truth(&sim).await;
    assert!(
        !oracle.step(0, &state).is_empty(),
        "the seed has subscribed SKUs in stock"
    );
    assert!(outbox(dir.path()).is_empty());
    assert!(receiver.requests.lock().unwrap().is_empty());

    let mut announced: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    let (mut back_dated, mut committed_while_down) = (0, 0);
    let mut seen = 0;
    for round in 1..=15u64 {
        let subscription_round = round % 3 == 0;
        match round {
            7 => receiver.set(DOWN),
            11 => receiver.set(UP),
            _ => {}
        }
        if subscription_round {
            mutate(&sim, 6, &["metafield_upsert"]).await;
        } else {
            mutate(&sim, 5, &["restock", "sell_out"]).await;
        }
        run_once(&config, &options);
        let before = state;
        state = truth(&sim).await;
        if subscription_round {
            // New subscriptions to SKUs on sale: announced at their next episode only.
            let added: BTreeSet<(i64, i64)> = subscriptions(&state)
                .difference(&subscriptions(&before))
                .copied()
                .collect();
            let selling = on_sale(&state);
            back_dated += added
                .iter()
                .filter(|(_, sku)| selling.contains(sku))
                .count();
        }
        let expected: BTreeSet<(i64, i64)> = oracle
            .step(round, &state)
            .iter()
            .map(|e| (e.customer_id, e.sku_id))
            .collect();
        let mut events = outbox(dir.path());
        // New events have later episodes (commit epochs) than every older one.
        events.sort_by_key(|e| (e.episode, e.customer_id, e.sku_id));
        let new: BTreeSet<(i64, i64)> = events[seen..]
            .iter()
            .map(|e| (e.customer_id, e.sku_id))
            .collect();
        assert_eq!(new, expected, "round {round}");
        assert_eq!(
            events.len(),
            seen + expected.len(),
            "round {round}: one event per pair"
        );
        seen = events.len();
        if subscription_round {
            assert!(expected.is_empty());
        }
        if (7..11).contains(&round) {
            committed_while_down += expected.len();
        }
        for pair in expected {
            *announced.entry(pair).or_default() += 1;
        }
    }
    run_once(&config, &options);

    // The scenarios happened: restocks, a second episode of one SKU for one
    // customer, back-dating refused, events committed while the endpoint was down.
    assert!(announced.len() >= 5, "{announced:?}");
    assert!(
        announced.values().any(|n| *n >= 2),
        "no sell-out then restock: {announced:?}"
    );
    assert!(back_dated >= 1, "no subscription was added while in stock");
    assert!(
        committed_while_down >= 1,
        "nothing happened while the endpoint was down"
    );

    // Delivery: every outbox event processed once, nothing acked sent again.
    let outbox_ids: BTreeSet<String> = outbox(dir.path()).into_iter().map(|e| e.event_id).collect();
    let processed = receiver.processed_keys();
    assert_eq!(processed.len(), outbox_ids.len());
    assert_eq!(
        processed.iter().cloned().collect::<BTreeSet<_>>(),
        outbox_ids
    );
    assert!(receiver.duplicates.lock().unwrap().is_empty());
    // Per customer, in episode order.
    let mut last: BTreeMap<i64, i64> = BTreeMap::new();
    for (key, body) in receiver.processed.lock().unwrap().iter() {
        let customer = body["customer_id"].as_i64().unwrap();
        let episode = body["episode"].as_i64().unwrap();
        assert_eq!(body["event_id"].as_str(), Some(key.as_str()));
        let prev = last.insert(customer, episode).unwrap_or(i64::MIN);
        assert!(
            prev <= episode,
            "customer {customer}: episode {episode} after {prev}"
        );
    }
}

/// Restocks until the oracle expects events; returns how many.
async fn changes_with_events(sim: &SimServer, oracle: &mut EventOracle, round: u64) -> usize {
    for _ in 0..20 {
        mutate(sim, 10, &["restock"]).await;
        let n = oracle.step(round, &truth(sim).await).len();
        if n > 0 {
            return n;
        }
    }
    panic!("no restock of a subscribed SKU in 20 tries");
}

/// Waits until the running pipeline commits an epoch after `epoch`.
async fn wait_for_commit_after(dir: &Path, epoch: Option<u64>) {
    for _ in 0..300 {
        if checkpoint_epoch(dir) > epoch {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no commit after epoch {epoch:?} in 30 s");
}

/// Waits until the receiver has seen `n` distinct keys.
async fn wait_for_requests(receiver: &Receiver, n: usize) {
    for _ in 0..300 {
        if receiver.distinct_requested() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the receiver saw {} keys, not {n}, in 30 s",
        receiver.distinct_requested()
    );
}

/// The checkpointed epoch (safe while a pipeline runs: the file is replaced atomically).
fn checkpoint_epoch(dir: &Path) -> Option<u64> {
    govflow::runtime::checkpoint::Checkpoint::load(&dir.join("state"))
        .ok()
        .and_then(|c| c.epoch)
}

fn kill(mut child: Child) {
    // `Child::kill` is SIGKILL on Unix: no shutdown code runs.
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `kill -9` after events are committed but before they are delivered (the
/// endpoint is down), then again while deliveries are processed but not yet
/// acknowledged: after a restart every event is delivered, and the receiver
/// processes each `Idempotency-Key` once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_between_commit_and_delivery_loses_nothing() {
    let options = store(43, 200, 12, 20);
    let sim = start_sim(options.clone()).await;
    let (receiver, endpoint) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&sim, &options, dir.path(), &endpoint);
    run_once(&config, &options);

    let always_on = || {
        govflow(&config, &options, &["--flush-interval", "100ms"])
            .spawn()
            .unwrap()
    };

    let mut oracle = EventOracle::default();
    oracle.step(0, &truth(&sim).await);

    // 1. Committed, not delivered: the endpoint is down.
    receiver.set(DOWN);
    let expected = changes_with_events(&sim, &mut oracle, 1).await;
    let child = always_on();
    wait_for_requests(&receiver, 1).await;
    kill(child);
    let committed = outbox(dir.path()).len();
    assert!(committed >= 1);
    assert!(receiver.processed_keys().is_empty());

    // 2. Processed but the answer never arrives: the ack is lost.
    receiver.set(SLOW_ACK);
    mutate(&sim, 6, &["sell_out"]).await;
    assert!(oracle.step(2, &truth(&sim).await).is_empty());
    let epoch = checkpoint_epoch(dir.path());
    let child = always_on();
    wait_for_commit_after(dir.path(), epoch).await;
    let epoch = checkpoint_epoch(dir.path());
    let expected = expected + changes_with_events(&sim, &mut oracle, 3).await;
    wait_for_commit_after(dir.path(), epoch).await;
    for _ in 0..300 {
        if !receiver.processed_keys().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    kill(child);
    let in_flight = receiver.processed_keys();
    assert!(!in_flight.is_empty());

    // 3. Back up: a restart delivers everything.
    receiver.set(UP);
    run_once(&config, &options);
    let outbox_ids: BTreeSet<String> = outbox(dir.path()).into_iter().map(|e| e.event_id).collect();
    assert_eq!(
        outbox_ids.len(),
        expected,
        "the oracle's events, all committed"
    );
    let processed = receiver.processed_keys();
    assert_eq!(processed.len(), outbox_ids.len(), "each key processed once");
    assert_eq!(processed.into_iter().collect::<BTreeSet<_>>(), outbox_ids);
    // Exactly the deliveries whose ack the kill lost are sent again, once.
    let mut duplicates = receiver.duplicates.lock().unwrap().clone();
    duplicates.sort();
    let mut lost = in_flight.clone();
    lost.sort();
    assert_eq!(duplicates, lost);

    // A last run changes nothing and sends nothing.
    let requests = receiver.requests.lock().unwrap().len();
    run_once(&config, &options);
    assert_eq!(receiver.requests.lock().unwrap().len(), requests);
}

/// Waits until the receiver processed `n` keys (or panics after `secs`).
async fn wait_for_processed(receiver: &Receiver, n: usize, secs: u64) {
    for _ in 0..secs * 20 {
        if receiver.processed_keys().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the receiver processed {} keys, not {n}, in {secs} s",
        receiver.processed_keys().len()
    );
}

/// Polls are an hour apart: restocks reach the endpoint through webhooks
/// alone, each delivered twice half of the time, and each announced once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_announce_restocks_without_waiting_for_a_poll() {
    let options = store(47, 200, 12, 20);
    let sim = start_sim(options.clone()).await;
    let (receiver, endpoint) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_webhook_config(&sim, &options, dir.path(), &endpoint, port);
    let child = govflow(&config, &options, &["--flush-interval", "50ms"])
        .spawn()
        .unwrap();
    wait_for_commit_after(dir.path(), None).await;
    let mut oracle = EventOracle::default();
    oracle.step(0, &truth(&sim).await);
    control(
        &sim,
        "/_sim/webhooks",
        json!({
            "destination": format!("http://127.0.0.1:{port}/bigcommerce/webhooks"),
            "headers": { "X-Govflow-Webhook-Secret": WEBHOOK_SECRET },
            "duplicate_rate": 0.5,
        }),
    )
    .await;

    let mut expected = 0;
    let mut announced_rounds = 0;
    for round in 1..=8u64 {
        let epoch = checkpoint_epoch(dir.path());
        let started = std::time::Instant::now();
        if round % 2 == 1 {
            mutate(&sim, 6, &["sell_out"]).await;
        } else {
            mutate(&sim, 8, &["restock"]).await;
        }
        let new = oracle.step(round, &truth(&sim).await).len();
        wait_for_commit_after(dir.path(), epoch).await;
        expected += new;
        wait_for_processed(&receiver, expected, 10).await;
        if new > 0 {
            announced_rounds += 1;
            // Far sooner than the next poll (an hour away).
            assert!(started.elapsed() < Duration::from_secs(10));
        }
        // Stragglers (a product-level webhook read after the variant's) change nothing.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.processed_keys().len(), expected, "round {round}");
    }
    assert!(announced_rounds >= 2, "too few restocks of subscribed SKUs");
    kill(child);
    let outbox_ids: BTreeSet<String> = outbox(dir.path()).into_iter().map(|e| e.event_id).collect();
    assert_eq!(outbox_ids.len(), expected);
    assert_eq!(
        receiver
            .processed_keys()
            .into_iter()
            .collect::<BTreeSet<_>>(),
        outbox_ids
    );
    assert!(receiver.duplicates.lock().unwrap().is_empty());
}
