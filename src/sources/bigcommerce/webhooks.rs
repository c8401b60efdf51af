//! The BigCommerce webhook receiver of `govflow run`: changes reach the
//! dataflow within a request or two of happening, without waiting for the
//! next poll. Polling stays the safety net for missed deliveries.
//!
//! - `POST /bigcommerce/webhooks` (any path is accepted) with the shared
//!   secret in the configured header (a custom header set when the webhook is
//!   registered with BigCommerce); anything else is `401`. A body that is not
//!   a webhook payload is `400`; everything else is answered `200` at once.
//! - Deliveries repeat: payloads are deduplicated on `hash` (the last
//!   [`SEEN_HASHES`] hashes are remembered).
//! - Payloads carry ids only: each names a [`Target`] that a background task
//!   reads by id ([`BigCommerceSource::fetch`]), at most [`FETCH_CONCURRENCY`]
//!   at a time, through the source's own client (same rate-limit governor as
//!   the polls). A target already waiting is not queued twice. What it reads
//!   goes to the epoch loop like a poll's page. A read that fails is retried
//!   twice, then left to the next poll.
//! - Deletes (`*/deleted`) read nothing: the full refresh reconciles them.
//!
//! # Ordering with polls
//!
//! A poll's page and a webhook's read of the same row race: a page requested
//! before a change but handed over after the webhook's newer read would undo
//! it until the next poll (and a restock would flap: two episodes, two
//! notifications). [`Freshness`] orders them by when each read *started*: a
//! row is handed over only if no read of it that started later was handed
//! over already.

pub mod config;
pub use config::{DEFAULT_WEBHOOK_SECRET_HEADER, WebhooksConfig};

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use dataflows::records::{Payloads, Upsert};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::by_id::Target;
use super::dead_letter::DeadLetter;
use super::{BigCommerceError, BigCommerceSource};

/// Hashes remembered for deduplication.
pub const SEEN_HASHES: usize = 100_000;
/// Reads by id in flight at once.
pub const FETCH_CONCURRENCY: usize = 4;
/// Attempts of one read by id before it is left to the next poll.
const FETCH_ATTEMPTS: u32 = 3;
/// How long [`Freshness`] remembers a row's last read.
const FRESHNESS_TTL: Duration = Duration::from_secs(600);

/// Hands a read's upserts (with their payload texts) and dead letters to the
/// epoch loop; false once the loop is gone.
pub type Feed = Arc<dyn Fn(Vec<Upsert>, Payloads, Vec<DeadLetter>) -> bool + Send + Sync>;

/// Errors starting the receiver.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The listen address cannot be bound.
    #[error("webhooks.listen {addr}: cannot listen: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl crate::sources::Transient for WebhookError {
    fn is_transient(&self) -> bool {
        false
    }
}

/// Counters of the receiver, for status and tests.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Payloads accepted (authenticated, parsed, not seen before).
    pub accepted: AtomicU64,
    /// Payloads whose `hash` was seen already.
    pub duplicates: AtomicU64,
    /// Requests without the right secret.
    pub unauthorized: AtomicU64,
    /// Requests whose body is not a webhook payload.
    pub malformed: AtomicU64,
    /// Reads by id that succeeded.
    pub fetched: AtomicU64,
    /// Reads by id given up after their retries.
    pub fetch_failures: AtomicU64,
    /// Rows dropped because a read that started later was handed over first.
    pub stale_rows: AtomicU64,
}

/// The payload BigCommerce POSTs (the fields govflow reads).
#[derive(Debug, Deserialize)]
pub struct WebhookPayload {
    /// E.g. `store/sku/inventory/updated`.
    pub scope: String,
    /// What changed.
    pub data: WebhookData,
    /// Unique per event; repeated deliveries carry the same hash.
    pub hash: String,
}

/// `data` of a payload.
#[derive(Debug, Deserialize)]
pub struct WebhookData {
    /// `sku`, `product`, `customer`, `metafield`, `order`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The entity's id.
    pub id: i64,
    /// Inventory scopes: which variant changed.
    #[serde(default)]
    pub inventory: Option<WebhookInventory>,
}

/// `data.inventory` of inventory scopes.
#[derive(Debug, Deserialize)]
pub struct WebhookInventory {
    /// The variant whose stock changed (absent for product-level tracking).
    #[serde(default)]
    pub variant_id: Option<i64>,
}

/// What to read for a payload; `None` for scopes govflow does not read.
pub fn target_of(p: &WebhookPayload) -> Option<Target> {
    let id = p.data.id;
    let scope = p.scope.as_str();
    if id <= 0 {
        return None;
    }
    if scope.starts_with("store/sku/") {
        return Some(Target::Variant(id));
    }
    if scope.starts_with("store/product/inventory/") {
        let variant = p.data.inventory.as_ref().and_then(|i| i.variant_id);
        return Some(match variant {
            Some(v) if v > 0 => Target::Variant(v),
            _ => Target::Product(id),
        });
    }
    if scope.starts_with("store/product/") {
        return Some(Target::Product(id));
    }
    match (scope.split('/').nth(1), p.data.kind.as_str()) {
        (Some("customer"), "customer") => Some(Target::Customer(id)),
        (Some("metafield"), _) => Some(Target::Metafield(id)),
        (Some("order"), "order") => Some(Target::Order(id)),
        _ => None,
    }
}

/// The rows a read of `target` is known to bring before it is made (a
/// product's variants are only known after).
fn known_keys(target: Target) -> Vec<(&'static str, i64)> {
    match target {
        Target::Variant(v) => vec![("raw_bc_variant", v), ("raw_bc_inventory", v)],
        Target::Product(p) => vec![("raw_bc_product", p)],
        Target::Customer(c) => vec![("raw_bc_customer", c)],
        Target::Metafield(m) => vec![("raw_bc_customer_metafield", m)],
        Target::Order(o) => vec![("raw_bc_order", o), ("raw_bc_order_item", o)],
    }
}

#[derive(Debug, Default)]
struct Entry {
    /// Start of the newest read of the row handed over.
    newest: Option<Instant>,
    /// Webhook reads of the row in flight.
    pending: u32,
}

/// Orders poll pages and webhook reads of the same rows by when each read
/// started (see the module doc). Only rows a webhook read (or is reading)
/// are tracked, for [`FRESHNESS_TTL`]; without webhooks it holds nothing.
#[derive(Debug, Default)]
pub struct Freshness {
    rows: Mutex<HashMap<(&'static str, i64), Entry>>,
    stale: AtomicU64,
}

impl Freshness {
    /// An empty registry.
    pub fn new() -> Arc<Freshness> {
        Arc::new(Freshness::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(&'static str, i64), Entry>> {
        // A poisoned lock only means a panic elsewhere while it was held; the
        // map stays usable (at worst an entry is missing: a row is not held back).
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A webhook read of `keys` starts.
    fn begin(&self, keys: &[(&'static str, i64)]) {
        let mut rows = self.lock();
        for key in keys {
            rows.entry(*key).or_default().pending += 1;
        }
    }

    /// Hands over a webhook read that started at `started`, under the lock
    /// (so that the channel's order is the registry's), and ends it.
    fn deliver_webhook(
        &self,
        started: Instant,
        keys: &[(&'static str, i64)],
        upserts: Vec<Upsert>,
        send: impl FnOnce(Vec<Upsert>) -> bool,
    ) -> bool {
        let mut rows = self.lock();
        let before = upserts.len();
        let kept: Vec<Upsert> = upserts
            .into_iter()
            .filter(|u| {
                let entry = rows.entry((u.table(), u.key())).or_default();
                if entry.newest.is_some_and(|n| n > started) {
                    return false;
                }
                entry.newest = Some(started);
                true
            })
            .collect();
        for key in keys {
            if let Some(entry) = rows.get_mut(key) {
                entry.pending = entry.pending.saturating_sub(1);
            }
        }
        self.stale
            .fetch_add((before - kept.len()) as u64, Ordering::Relaxed);
        if rows.len() > 10_000 {
            let now = Instant::now();
            rows.retain(|_, e| {
                e.pending > 0
                    || e.newest
                        .is_some_and(|n| now.duration_since(n) < FRESHNESS_TTL)
            });
        }
        kept.is_empty() || send(kept)
    }

    /// A webhook read that failed: ends it.
    fn abandon(&self, keys: &[(&'static str, i64)]) {
        let mut rows = self.lock();
        for key in keys {
            if let Some(entry) = rows.get_mut(key) {
                entry.pending = entry.pending.saturating_sub(1);
            }
        }
    }

    /// Hands over a poll's page requested at `fetched_at`, under the lock:
    /// rows a later-started webhook read already handed over are dropped.
    /// Returns what `send` returned (true when nothing was left to send).
    pub fn deliver_poll(
        &self,
        fetched_at: Option<Instant>,
        upserts: Vec<Upsert>,
        send: impl FnOnce(Vec<Upsert>) -> bool,
    ) -> bool {
        let mut rows = self.lock();
        let Some(fetched_at) = fetched_at.filter(|_| !rows.is_empty()) else {
            return send(upserts);
        };
        let before = upserts.len();
        let kept: Vec<Upsert> = upserts
            .into_iter()
            .filter(|u| match rows.get_mut(&(u.table(), u.key())) {
                None => true,
                Some(entry) if entry.newest.is_some_and(|n| n > fetched_at) => false,
                Some(entry) => {
                    entry.newest = Some(fetched_at);
                    true
                }
            })
            .collect();
        let dropped = before - kept.len();
        if dropped > 0 {
            self.stale.fetch_add(dropped as u64, Ordering::Relaxed);
            tracing::debug!(dropped, "poll rows older than a webhook read were dropped");
        }
        send(kept)
    }

    /// Rows dropped as older than a read already handed over.
    pub fn stale_rows(&self) -> u64 {
        self.stale.load(Ordering::Relaxed)
    }
}

/// Recently seen hashes, bounded.
#[derive(Default)]
struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    /// True the first time `hash` is seen.
    fn insert(&mut self, hash: &str) -> bool {
        if self.set.contains(hash) {
            return false;
        }
        if self.order.len() >= SEEN_HASHES
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.set.insert(hash.to_string());
        self.order.push_back(hash.to_string());
        true
    }
}

struct Shared {
    header: String,
    secret: Vec<u8>,
    seen: Mutex<Seen>,
    jobs: mpsc::UnboundedSender<Target>,
    stats: Arc<WebhookStats>,
}

/// Compares in time independent of where the inputs differ.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let authorized = headers
        .get(shared.header.as_str())
        .is_some_and(|v| same_secret(v.as_bytes(), &shared.secret));
    if !authorized {
        shared.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("webhook without the shared secret refused");
        return StatusCode::UNAUTHORIZED;
    }
    let payload: WebhookPayload = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            shared.stats.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "webhook body is not a BigCommerce payload");
            return StatusCode::BAD_REQUEST;
        }
    };
    let first = shared
        .seen
        .lock()
        .map(|mut s| s.insert(&payload.hash))
        .unwrap_or(true);
    if !first {
        shared.stats.duplicates.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(scope = %payload.scope, "repeated webhook delivery ignored");
        return StatusCode::OK;
    }
    shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
    match target_of(&payload) {
        Some(target) => {
            if shared.jobs.send(target).is_err() {
                tracing::warn!(scope = %payload.scope, "webhook reader stopped; the next poll reads the change");
            }
        }
        None => tracing::debug!(scope = %payload.scope, "webhook scope not read"),
    }
    StatusCode::OK
}

/// The running receiver.
pub struct WebhookServer {
    /// The bound address (the configured one, with the real port if it was 0).
    pub local_addr: SocketAddr,
    /// Its counters.
    pub stats: Arc<WebhookStats>,
    server: tokio::task::JoinHandle<()>,
    reader: tokio::task::JoinHandle<()>,
}

impl WebhookServer {
    /// Listens on `config.listen`; reads what payloads name through `source`
    /// and hands it to `feed`, ordered with polls by `freshness`. Runs until
    /// `stop` turns true.
    pub async fn start(
        config: &WebhooksConfig,
        source: Arc<BigCommerceSource>,
        freshness: Arc<Freshness>,
        feed: Feed,
        stop: watch::Receiver<bool>,
    ) -> Result<WebhookServer, WebhookError> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| WebhookError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| WebhookError::Bind {
            addr: config.listen,
            source,
        })?;
        let (jobs, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(WebhookStats::default());
        let shared = Arc::new(Shared {
            header: config.secret_header.clone(),
            secret: config.secret.expose().as_bytes().to_vec(),
            seen: Mutex::new(Seen::default()),
            jobs,
            stats: stats.clone(),
        });
        let app = axum::Router::new()
            .route("/", axum::routing::post(receive))
            .route("/{*path}", axum::routing::post(receive))
            .with_state(shared);
        let mut server_stop = stop.clone();
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = server_stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "webhook receiver stopped");
            }
        });
        let reader = tokio::spawn(read_loop(rx, source, freshness, feed, stats.clone(), stop));
        tracing::info!(%local_addr, "listening for BigCommerce webhooks");
        Ok(WebhookServer {
            local_addr,
            stats,
            server,
            reader,
        })
    }

    /// Waits until the receiver and its reader end (after `stop`).
    pub async fn join(self) {
        let _ = self.server.await;
        let _ = self.reader.await;
    }
}

type Fetched = (Target, Result<super::by_id::ReadById, BigCommerceError>);

async fn fetch_with_retries(source: Arc<BigCommerceSource>, target: Target) -> Fetched {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match source.fetch(target).await {
            Err(e) if e.is_retryable() && attempt < FETCH_ATTEMPTS => {
                tracing::debug!(?target, error = %e, attempt, "webhook read failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            result => return (target, result),
        }
    }
}

/// Reads the targets payloads name and feeds what they bring.
async fn read_loop(
    mut rx: mpsc::UnboundedReceiver<Target>,
    source: Arc<BigCommerceSource>,
    freshness: Arc<Freshness>,
    feed: Feed,
    stats: Arc<WebhookStats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut waiting: VecDeque<Target> = VecDeque::new();
    let mut queued: HashSet<Target> = HashSet::new();
    let mut running: JoinSet<Fetched> = JoinSet::new();
    loop {
        while running.len() < FETCH_CONCURRENCY {
            let Some(target) = waiting.pop_front() else {
                break;
            };
            queued.remove(&target);
            freshness.begin(&known_keys(target));
            running.spawn(fetch_with_retries(source.clone(), target));
        }
        tokio::select! {
            job = rx.recv() => match job {
                Some(target) => {
                    if queued.insert(target) {
                        waiting.push_back(target);
                    }
                }
                None => return,
            },
            Some(joined) = running.join_next(), if !running.is_empty() => {
                let Ok((target, result)) = joined else { continue };
                let keys = known_keys(target);
                match result {
                    Ok((upserts, texts, dead, started)) => {
                        stats.fetched.fetch_add(1, Ordering::Relaxed);
                        let fed = freshness.deliver_webhook(started, &keys, upserts, |kept| {
                            feed(kept, texts, Vec::new())
                        });
                        let fed = fed
                            && (dead.is_empty() || feed(Vec::new(), Payloads::default(), dead));
                        stats.stale_rows.store(freshness.stale_rows(), Ordering::Relaxed);
                        if !fed {
                            return;
                        }
                    }
                    Err(e) => {
                        freshness.abandon(&keys);
                        stats.fetch_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(?target, error = %e, "webhook read failed; the next poll reads the change");
                    }
                }
            }
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests;
