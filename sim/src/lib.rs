//! The BigCommerce simulator: see `docs/simulator.md`.
//!
//! A real HTTP server speaking the subset of BigCommerce's REST API that govflow
//! reads, seeded and deterministic, plus a control API under `/_sim/`.
//!
//! Modules, one job each: `model` (the store and its indexes), `seed` (the
//! initial data), `mutate` (random changes), `render` (JSON shapes), `dates`
//! (date formats), `query` (query strings), `listcache` (cached listings for
//! paging), `api` (BigCommerce routes; each entity's handlers in `api/entities`),
//! `error` (why a request fails), `control` (`/_sim` routes), `ratelimit`,
//! `faults`, `stats` and `webhooks`.

mod api;
mod control;
mod dates;
mod dirty;
mod error;
mod extras;
mod faults;
mod listcache;
mod model;
mod mutate;
mod query;
mod ratelimit;
mod render;
mod seed;
mod stats;
mod webhooks;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use dirty::DIRTY_KINDS;
pub use mutate::KINDS as MUTATION_KINDS;

/// Options of a simulated store.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Seed of all generated data (and of the mutation sequence).
    pub seed: u64,
    /// Number of seeded customers.
    pub customers: usize,
    /// Number of seeded products (each with 1–4 variants).
    pub products: usize,
    /// Number of seeded orders (needs at least one product).
    pub orders: usize,
    /// Requests allowed per rolling window; `None` (or `Some(0)`) turns rate limiting off.
    pub quota: Option<u32>,
    /// Length of the rolling rate-limit window (30 s at BigCommerce).
    pub window: Duration,
    /// The store hash in API paths (`/stores/{store_hash}/v3/...`).
    pub store_hash: String,
    /// The `X-Auth-Token` the API accepts.
    pub access_token: String,
    /// Share (0..=1) of mutations that are dirty ones (see `docs/simulator.md`).
    pub dirty_rate: f64,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            seed: 42,
            customers: 1000,
            products: 200,
            orders: 3000,
            quota: Some(150),
            window: Duration::from_secs(30),
            store_hash: "govflowsim".to_string(),
            access_token: "sim-token".to_string(),
            dirty_rate: 0.0,
        }
    }
}

/// A request to apply random mutations (`POST /_sim/mutate`).
#[derive(Debug, Clone, serde::Deserialize, Default)]
pub struct MutateRequest {
    /// How many mutations to apply.
    pub count: usize,
    /// The allowed kinds (see [`MUTATION_KINDS`]); all when absent.
    #[serde(default)]
    pub kinds: Option<Vec<String>>,
    /// Every mutation a dirty one (see [`DIRTY_KINDS`]), ignoring `kinds`.
    #[serde(default)]
    pub dirty: bool,
}

/// What a mutation request did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MutateReport {
    /// Mutations applied, per kind.
    pub applied: BTreeMap<String, usize>,
    /// Mutations applied in all.
    pub total: usize,
    /// The entities changed (the first 1000).
    pub changes: Vec<Change>,
}

/// One entity changed by a mutation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    /// The mutation kind, e.g. `order_update`.
    pub kind: String,
    /// The entity changed, as in `/_sim/truth` (`customer`, `order`, ...).
    pub entity: String,
    /// The id of the entity (the variant id for inventory items).
    pub id: u64,
}

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The listening socket could not be bound.
    #[error("cannot bind the simulator to {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The options cannot describe a store.
    #[error("invalid simulator options: {0}")]
    Options(String),
    /// `kinds` named an unknown mutation kind.
    #[error("unknown mutation kind {0:?} (known: {known})", known = MUTATION_KINDS.join(", "))]
    UnknownKind(String),
    /// `kinds` was an empty list.
    #[error("kinds must name at least one mutation kind")]
    NoKinds,
}

/// State shared by every handler. Each piece has its own lock; none is held across an await.
pub(crate) struct Shared {
    pub(crate) opts: SimOptions,
    pub(crate) addr: SocketAddr,
    pub(crate) started: Instant,
    /// The data: read by API requests in parallel, written by mutations.
    pub(crate) store: RwLock<model::Store>,
    /// Cached listings; locked briefly, never while computing a listing.
    pub(crate) list_cache: Mutex<listcache::ListCache>,
    pub(crate) limiter: Mutex<Option<ratelimit::RateLimiter>>,
    pub(crate) faults: Mutex<faults::FaultState>,
    pub(crate) stats: Mutex<stats::Stats>,
    pub(crate) webhooks: webhooks::Webhooks,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Read-locks, recovering the data if a panicking thread poisoned it.
pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

/// Write-locks, recovering the data if a panicking thread poisoned it.
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Applies mutations and hands their webhook events to the dispatcher.
    pub(crate) fn mutate(&self, req: &MutateRequest) -> Result<MutateReport, SimError> {
        let kinds = mutate::parse_kinds(req.kinds.as_deref())?;
        let (report, events) = {
            let mut store = write(&self.store);
            mutate::apply(&mut store, req.count, &kinds, req.dirty)
        };
        self.webhooks.dispatch(events);
        Ok(report)
    }
}

/// A running simulator.
pub struct SimServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SimServer {
    /// Binds addr (e.g. 127.0.0.1:0) and serves in a spawned tokio task.
    pub async fn bind(opts: SimOptions, addr: SocketAddr) -> Result<SimServer, SimError> {
        let store = seed::generate(&opts)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let limiter = opts
            .quota
            .filter(|q| *q > 0)
            .map(|q| ratelimit::RateLimiter::new(q, opts.window));
        let shared = Arc::new(Shared {
            addr: local,
            started: Instant::now(),
            store: RwLock::new(store),
            list_cache: Mutex::new(listcache::ListCache::default()),
            limiter: Mutex::new(limiter),
            faults: Mutex::new(faults::FaultState::new(opts.seed)),
            stats: Mutex::new(stats::Stats::default()),
            webhooks: webhooks::Webhooks::start(&opts),
            opts,
        });
        let router = api::router(shared.clone()).merge(control::router(shared.clone()));
        let (stop, stopped) = oneshot::channel::<()>();
        // Without TCP_NODELAY, Nagle and delayed ACKs add ~40 ms to many responses.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "simulator server stopped with an error");
            }
        });
        tracing::info!(addr = %local, "BigCommerce simulator listening");
        Ok(SimServer {
            addr: local,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// "http://127.0.0.1:PORT" — the base_url a BigCommerce client is configured with;
    /// API paths are {base_url}/stores/{store_hash}/v3/...
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Same as POST /_sim/mutate, in process (the demo uses it).
    pub fn mutate(&self, req: MutateRequest) -> Result<MutateReport, SimError> {
        self.shared.mutate(&req)
    }

    /// Graceful stop: stops accepting, lets open requests finish (at most 5 s).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
