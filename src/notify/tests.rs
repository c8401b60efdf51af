//! The notifier against a local endpoint that fails on demand.

use std::sync::Mutex;
use std::sync::atomic::AtomicU16;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use dataflows::rows::product_notification_event::event_id;
use dataflows::scalar::Money;

use super::*;

/// What the endpoint saw: (Idempotency-Key, body) per request, and the
/// status it answers with (200 unless told otherwise).
#[derive(Default)]
struct Endpoint {
    requests: Mutex<Vec<(String, serde_json::Value)>>,
    status: AtomicU16,
    /// Answer this many requests with 503 first.
    fail_first: AtomicU64,
    /// Refuse this event id with 422.
    refuse: Mutex<Option<String>>,
}

async fn receive(
    State(endpoint): State<Arc<Endpoint>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    endpoint.requests.lock().unwrap().push((key.clone(), body));
    if endpoint
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if endpoint.refuse.lock().unwrap().as_deref() == Some(key.as_str()) {
        return StatusCode::UNPROCESSABLE_ENTITY;
    }
    StatusCode::from_u16(endpoint.status.load(Ordering::SeqCst)).unwrap_or(StatusCode::OK)
}

async fn endpoint() -> (Arc<Endpoint>, String) {
    let state = Arc::new(Endpoint {
        status: AtomicU16::new(200),
        ..Endpoint::default()
    });
    let app = axum::Router::new()
        .route("/restock", axum::routing::post(receive))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/restock", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (state, url)
}

fn config(url: &str) -> NotificationsConfig {
    NotificationsConfig {
        endpoint: url.parse().unwrap(),
        headers: vec![("X-Token".into(), crate::config::Secret::new("t0k"))],
        timeout: Duration::from_secs(5),
        max_in_flight: 4,
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
        drain_timeout: Duration::from_secs(20),
        slack_webhook: None,
    }
}

fn event(customer_id: i64, sku_id: i64, episode: i64) -> ProductNotificationEvent {
    ProductNotificationEvent {
        event_id: event_id(customer_id, sku_id, episode),
        customer_id,
        customer_email: format!("c{customer_id}@example.com"),
        sku_id,
        product_id: 1,
        sku: format!("V{sku_id}"),
        episode,
        inventory_level: 3,
        price: Money(125_000),
        sale_price: Money(0),
    }
}

fn keys(endpoint: &Endpoint) -> Vec<String> {
    endpoint
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|(k, _)| k.clone())
        .collect()
}

/// Runs a notifier over `backlog` then `committed`, until drained.
async fn run(
    url: &str,
    dir: &Path,
    backlog: Vec<ProductNotificationEvent>,
    committed: Vec<Vec<ProductNotificationEvent>>,
) -> Arc<NotifyStats> {
    let (_stop_tx, stop) = watch::channel(false);
    let notifier = Notifier::start(config(url), dir, stop).unwrap();
    let outbox = notifier.outbox();
    outbox.backlog(backlog);
    for events in committed {
        outbox.committed(events);
    }
    drop(outbox);
    let stats = notifier.stats();
    notifier.finish(true).await.unwrap();
    stats
}

#[tokio::test]
async fn delivers_each_event_once_in_order_per_customer() {
    let (endpoint, url) = endpoint().await;
    let dir = tempfile::tempdir().unwrap();
    let backlog = vec![event(2, 10, 5), event(1, 10, 3), event(1, 11, 3)];
    let committed = vec![
        vec![event(1, 10, 7), event(3, 12, 7)],
        vec![event(1, 12, 9), event(2, 10, 9)],
    ];
    let stats = run(&url, dir.path(), backlog, committed).await;
    assert_eq!(stats.delivered.load(Ordering::SeqCst), 7);
    let got = keys(&endpoint);
    assert_eq!(got.len(), 7, "{got:?}");
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), 7);
    // Per customer, in (episode, sku) order.
    let of = |c: &str| -> Vec<&String> {
        got.iter()
            .filter(|k| k.starts_with(&format!("restock-{c}-")))
            .collect()
    };
    assert_eq!(
        of("1"),
        [
            "restock-1-10-3",
            "restock-1-11-3",
            "restock-1-10-7",
            "restock-1-12-9"
        ]
    );
    assert_eq!(of("2"), ["restock-2-10-5", "restock-2-10-9"]);
    // The body is the event, money as decimal text; extra headers are sent.
    let requests = endpoint.requests.lock().unwrap().clone();
    let (_, body) = requests
        .iter()
        .find(|(k, _)| k == "restock-3-12-7")
        .unwrap();
    assert_eq!(body["type"], "product.restocked");
    assert_eq!(body["event_id"], "restock-3-12-7");
    assert_eq!(body["customer_email"], "c3@example.com");
    assert_eq!(body["price"], "12.5000");
    assert_eq!(body["episode"], 7);

    // A restart over the same outbox sends nothing again.
    let all: Vec<ProductNotificationEvent> = requests
        .iter()
        .map(|(k, _)| {
            let parts: Vec<i64> = k
                .trim_start_matches("restock-")
                .split('-')
                .map(|p| p.parse().unwrap())
                .collect();
            event(parts[0], parts[1], parts[2])
        })
        .collect();
    let stats = run(&url, dir.path(), all.clone(), vec![]).await;
    assert_eq!(stats.delivered.load(Ordering::SeqCst), 0);
    assert_eq!(keys(&endpoint).len(), 7);
    // The log compacted to its watermark.
    let text = std::fs::read_to_string(dir.path().join(STATE_SUBDIR).join(log::LOG_FILE)).unwrap();
    assert_eq!(text, "through 9\n");
}

#[tokio::test]
async fn an_endpoint_down_for_a_while_gets_everything_once_it_is_back() {
    let (endpoint, url) = endpoint().await;
    endpoint.fail_first.store(25, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<ProductNotificationEvent> = (1..=6)
        .flat_map(|c| (1..=3).map(move |e| event(c, 10, e)))
        .collect();
    let stats = run(&url, dir.path(), vec![], vec![events.clone()]).await;
    assert_eq!(stats.delivered.load(Ordering::SeqCst), 18);
    assert!(stats.retries.load(Ordering::SeqCst) >= 25);
    // The log was folded while running (beyond a handful of ids in tests).
    let text = std::fs::read_to_string(dir.path().join(STATE_SUBDIR).join(log::LOG_FILE)).unwrap();
    assert!(text.starts_with("through "), "{text}");
    assert!(text.lines().count() < 18, "{text}");
    assert_eq!(endpoint.fail_first.load(Ordering::SeqCst), 0);
    let got = keys(&endpoint);
    // 25 refused attempts, then each event accepted exactly once.
    let requests = endpoint.requests.lock().unwrap().clone();
    assert_eq!(got.len(), 25 + 18);
    let accepted: Vec<&String> = requests.iter().skip(25).map(|(k, _)| k).collect();
    let unique: HashSet<&&String> = accepted.iter().collect();
    assert_eq!(unique.len(), 18, "{accepted:?}");
    // Still in order per customer, retries included: a customer's next event
    // is never sent before the previous one is accepted.
    for c in 1..=6 {
        let prefix = format!("restock-{c}-");
        let mut seen: Vec<&String> = got.iter().filter(|k| k.starts_with(&prefix)).collect();
        seen.dedup();
        let expected: Vec<String> = (1..=3).map(|e| event_id(c, 10, e)).collect();
        assert_eq!(seen, expected.iter().collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn a_refused_event_is_recorded_and_the_next_one_goes() {
    let (endpoint, url) = endpoint().await;
    *endpoint.refuse.lock().unwrap() = Some(event_id(1, 10, 1));
    let dir = tempfile::tempdir().unwrap();
    let events = vec![event(1, 10, 1), event(1, 10, 2)];
    let stats = run(&url, dir.path(), events.clone(), vec![]).await;
    assert_eq!(stats.refused.load(Ordering::SeqCst), 1);
    assert_eq!(stats.delivered.load(Ordering::SeqCst), 1);
    assert_eq!(keys(&endpoint), ["restock-1-10-1", "restock-1-10-2"]);
    // Refused events are done too: a restart does not send them again.
    let stats = run(&url, dir.path(), events, vec![]).await;
    assert_eq!(stats.delivered.load(Ordering::SeqCst), 0);
    assert_eq!(keys(&endpoint).len(), 2);
}

#[tokio::test]
async fn stop_leaves_pending_events_for_the_next_run() {
    let (endpoint, url) = endpoint().await;
    endpoint.status.store(503, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let (stop_tx, stop) = watch::channel(false);
    let notifier = Notifier::start(config(&url), dir.path(), stop).unwrap();
    notifier.outbox().backlog(vec![event(1, 10, 1)]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!keys(&endpoint).is_empty());
    stop_tx.send(true).unwrap();
    notifier.finish(false).await.unwrap();
    endpoint.status.store(200, Ordering::SeqCst);
    let stats = run(&url, dir.path(), vec![event(1, 10, 1)], vec![]).await;
    assert_eq!(stats.delivered.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_slack_lane_posts_one_message_per_event_and_keeps_its_own_log() {
    let (receiver, url) = endpoint().await;
    let (slack, slack_url) = endpoint().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&url);
    config.slack_webhook = Some(crate::config::Secret::new(slack_url));
    let run_lanes = |events: Vec<ProductNotificationEvent>| {
        let config = config.clone();
        let dir = dir.path().to_path_buf();
        async move {
            let (_stop_tx, stop) = watch::channel(false);
            let http = Notifier::start(config.clone(), &dir, stop.clone()).unwrap();
            let slack = Notifier::start_slack(&config, &dir, stop).unwrap().unwrap();
            for lane in [&http, &slack] {
                lane.outbox().backlog(events.clone());
            }
            http.finish(true).await.unwrap();
            slack.finish(true).await.unwrap();
        }
    };
    let events = vec![event(1, 10, 3), event(2, 11, 3), event(1, 12, 5)];
    run_lanes(events.clone()).await;
    // A restart with the same outbox sends nothing again on either lane.
    run_lanes(events).await;
    assert_eq!(keys(&receiver).len(), 3);
    let messages = slack.requests.lock().unwrap().clone();
    assert_eq!(messages.len(), 3, "{messages:?}");
    let (_, first) = &messages[0];
    assert_eq!(
        first["text"],
        ":package: Back in stock for customer 1: SKU `V10` (product 1, variant 10), 3 in stock at 12.5000. Event `restock-1-10-3`."
    );
    // A Slack message is not the event's JSON, and the endpoint's headers stay with the endpoint.
    assert!(first.get("event_id").is_none());
    assert!(
        dir.path()
            .join(SLACK_STATE_SUBDIR)
            .join(log::LOG_FILE)
            .exists()
    );
}
