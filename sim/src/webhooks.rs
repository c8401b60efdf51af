//! Webhook delivery (`POST /_sim/webhooks`): BigCommerce-shaped payloads POSTed in
//! background tasks. Events of one entity go to the same worker, so their order is kept;
//! a non-2xx answer is retried after 1, 2, 4, 8 and 16 s.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;

use super::SimOptions;
use super::dates::Ts;
use super::lock;
use super::render::stable_hash;

/// Number of delivery workers (events are sharded by entity).
const WORKERS: usize = 8;
/// Delays before the retries of a failed delivery.
const RETRY_DELAYS_S: [u64; 5] = [1, 2, 4, 8, 16];
/// The `store_id` of every payload.
const STORE_ID: &str = "1001";

/// The inventory part of `store/sku/inventory/updated` and `store/product/inventory/updated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct InventoryChange {
    pub product_id: u64,
    pub method: &'static str,
    pub value: i64,
    pub variant_id: u64,
}

/// One webhook event produced by a mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    /// E.g. `store/order/updated`.
    pub scope: &'static str,
    /// `data.type`: `order`, `customer`, `product`, `sku` or `metafield`.
    pub kind: &'static str,
    /// `data.id`.
    pub id: u64,
    /// `data.inventory` of inventory scopes.
    pub inventory: Option<InventoryChange>,
    /// When the change happened.
    pub created_at: Ts,
}

/// `POST /_sim/webhooks` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookRequest {
    /// Receiver URL; `null` clears the registration.
    pub destination: Option<String>,
    /// Headers sent with every delivery.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Share of payloads delivered twice.
    #[serde(default)]
    pub duplicate_rate: f64,
}

/// A registered receiver.
#[derive(Debug)]
struct Target {
    url: reqwest::Url,
    headers: HeaderMap,
    duplicate_rate: f64,
}

/// One delivery to make.
struct Job {
    target: Arc<Target>,
    body: Bytes,
    scope: &'static str,
}

/// The registration and the delivery workers.
pub(crate) struct Webhooks {
    target: Mutex<Option<Arc<Target>>>,
    workers: Vec<mpsc::UnboundedSender<Job>>,
    rng: Mutex<ChaCha8Rng>,
    seq: AtomicU64,
    producer: String,
}

impl Webhooks {
    /// Starts the delivery workers (needs a tokio runtime).
    pub(crate) fn start(opts: &SimOptions) -> Webhooks {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "webhook client with defaults");
                reqwest::Client::new()
            });
        let workers = (0..WORKERS)
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(worker(client.clone(), rx));
                tx
            })
            .collect();
        Webhooks {
            target: Mutex::new(None),
            workers,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(opts.seed ^ 0x686f_6f6b)),
            seq: AtomicU64::new(0),
            producer: format!("stores/{}", opts.store_hash),
        }
    }

    /// Registers (or clears) the receiver; the error names the bad field.
    pub(crate) fn configure(
        &self,
        req: WebhookRequest,
    ) -> Result<serde_json::Value, (String, String)> {
        let Some(dest) = req.destination else {
            *lock(&self.target) = None;
            return Ok(json!({ "destination": null }));
        };
        let url = reqwest::Url::parse(&dest)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                (
                    "destination".to_string(),
                    format!("destination must be an http(s) URL, got {dest:?}"),
                )
            })?;
        if !(0.0..=1.0).contains(&req.duplicate_rate) {
            return Err((
                "duplicate_rate".into(),
                format!(
                    "duplicate_rate must be between 0 and 1, got {}",
                    req.duplicate_rate
                ),
            ));
        }
        let mut headers = HeaderMap::new();
        for (k, v) in &req.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| ("headers".to_string(), format!("invalid header name {k:?}")))?;
            let value = HeaderValue::from_str(v).map_err(|_| {
                (
                    "headers".to_string(),
                    format!("invalid value of header {k:?}"),
                )
            })?;
            headers.insert(name, value);
        }
        *lock(&self.target) = Some(Arc::new(Target {
            url,
            headers,
            duplicate_rate: req.duplicate_rate,
        }));
        Ok(json!({
            "destination": dest,
            "headers": req.headers.keys().collect::<Vec<_>>(),
            "duplicate_rate": req.duplicate_rate,
        }))
    }

    /// Queues the payloads of `events` (nothing when no receiver is registered).
    pub(crate) fn dispatch(&self, events: Vec<Event>) {
        let Some(target) = lock(&self.target).clone() else {
            return;
        };
        for e in events {
            let seq = self.seq.fetch_add(1, Ordering::Relaxed);
            let body = Bytes::from(self.payload(&e, seq));
            let twice = target.duplicate_rate > 0.0
                && lock(&self.rng).random_bool(target.duplicate_rate.min(1.0));
            let shard = (stable_hash(0, e.kind, e.id) % WORKERS as u64) as usize;
            let copies = if twice { 2 } else { 1 };
            for _ in 0..copies {
                let job = Job {
                    target: target.clone(),
                    body: body.clone(),
                    scope: e.scope,
                };
                if self.workers[shard].send(job).is_err() {
                    tracing::warn!("webhook worker gone; dropping a delivery");
                }
            }
        }
    }

    /// The JSON payload of one event.
    fn payload(&self, e: &Event, seq: u64) -> Vec<u8> {
        let h1 = stable_hash(seq, e.scope, e.id);
        let h2 = stable_hash(e.created_at as u64, e.kind, seq);
        let hash = format!("{h1:016x}{h2:016x}{:08x}", (h1 ^ h2) >> 32);
        let mut data = json!({ "type": e.kind, "id": e.id });
        if let Some(inv) = e.inventory {
            data["inventory"] = json!(inv);
        }
        let body = json!({
            "scope": e.scope,
            "store_id": STORE_ID,
            "data": data,
            "hash": hash,
            "created_at": e.created_at,
            "producer": self.producer,
        });
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

/// Delivers the jobs of one shard in order.
async fn worker(client: reqwest::Client, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = rx.recv().await {
        deliver(&client, &job).await;
    }
}

/// POSTs one payload, retrying a failure after 1, 2, 4, 8 and 16 s.
async fn deliver(client: &reqwest::Client, job: &Job) {
    for attempt in 0..=RETRY_DELAYS_S.len() {
        let result = client
            .post(job.target.url.clone())
            .headers(job.target.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(job.body.clone())
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => {
                tracing::debug!(scope = job.scope, "webhook delivered");
                return;
            }
            Ok(r) => {
                tracing::debug!(
                    scope = job.scope,
                    status = r.status().as_u16(),
                    attempt,
                    "webhook refused"
                )
            }
            Err(e) => tracing::debug!(scope = job.scope, error = %e, attempt, "webhook failed"),
        }
        if let Some(s) = RETRY_DELAYS_S.get(attempt) {
            tokio::time::sleep(Duration::from_secs(*s)).await;
        }
    }
    tracing::warn!(scope = job.scope, "webhook given up after retries");
}
