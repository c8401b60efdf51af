//! Delivery of restock notification events: the `product_notification_event`
//! table is the outbox, this module empties it into an HTTP endpoint.
//!
//! Exactly once comes from three places (docs/notifications.md):
//! - the dataflow mints one deterministic `event_id` per (customer, SKU,
//!   episode), and the epoch loop commits the events to the warehouse with the
//!   rest of their epoch, before anything is sent;
//! - the epoch loop hands the committed events to the [`Notifier`] (and, at
//!   start, the whole committed outbox): an event that was committed but not
//!   handed over before a crash is found again in the outbox at restart;
//! - an event is done only once the endpoint acknowledged it (2xx) and the
//!   [`log::DeliveryLog`] recorded that durably; a crash in between re-sends
//!   it with the same `Idempotency-Key`, which the endpoint deduplicates.
//!
//! Events of one customer go one at a time, in outbox order (episode, then
//! SKU); up to `max_in_flight` customers are served concurrently. Failures are
//! retried with capped exponential backoff until the endpoint accepts them;
//! only a status that says the request itself is wrong (400, 413, 415, 422)
//! ends an event as refused (logged, and recorded as `dead` in the log).

pub mod config;
pub use config::NotificationsConfig;

pub mod http;
pub mod log;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dataflows::rows::product_notification_event::ProductNotificationEvent;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use self::http::HttpDelivery;
use self::log::{DeliveryLog, Outcome};

/// Done events kept by id in memory (and in the log) before they are folded
/// into its `through` mark (a handful in unit tests, so that they fold too).
const COMPACT_AT: usize = if cfg!(test) { 4 } else { 10_000 };

/// Sub-directory of the state directory holding the delivery log.
pub const STATE_SUBDIR: &str = "notifications";
/// Directory of the Slack lane's delivery log in the state directory.
pub const SLACK_STATE_SUBDIR: &str = "notifications-slack";

/// Errors of the notifier itself (delivery failures are retried, not errors).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The delivery state could not be read or written.
    #[error("notification state {path}: {source}")]
    State {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line of the delivery log does not parse.
    #[error("notification state {path}:{line}: not `through N`, `ok ID` or `dead ID STATUS`")]
    Log {
        /// The log file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// The HTTP client could not be built.
    #[error("notifications: cannot build the HTTP client: {0}")]
    Client(String),
}

impl NotifyError {
    fn state(path: &Path, source: std::io::Error) -> Self {
        NotifyError::State {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether a restart may get past the error: I/O errors may be transient
    /// (a full disk); a damaged log or a bad client configuration is not.
    pub fn is_retryable(&self) -> bool {
        matches!(self, NotifyError::State { .. })
    }
}

/// The events among `rows` (other tables' rows are ignored).
pub fn events_of(
    rows: impl IntoIterator<Item = dataflows::TableRow>,
) -> Vec<ProductNotificationEvent> {
    rows.into_iter()
        .filter_map(|row| match row {
            dataflows::TableRow::ProductNotificationEvent(e) => Some(e),
            _ => None,
        })
        .collect()
}

/// Counters of a notifier, for status lines and tests.
#[derive(Debug, Default)]
pub struct NotifyStats {
    /// Events acknowledged by the endpoint since start.
    pub delivered: AtomicU64,
    /// Events refused for good since start.
    pub refused: AtomicU64,
    /// Failed attempts that were retried since start.
    pub retries: AtomicU64,
    /// Events waiting or in flight.
    pub pending: AtomicU64,
}

enum Msg {
    /// Every committed event, once, at start.
    Backlog(Vec<ProductNotificationEvent>),
    /// The events of a commit, right after it.
    Committed(Vec<ProductNotificationEvent>),
}

/// The epoch loop's side: hands committed events to the delivery task.
/// Never blocks; if the task is gone the events stay in the outbox.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Msg>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Backlog(e) => write!(f, "Backlog({})", e.len()),
            Msg::Committed(e) => write!(f, "Committed({})", e.len()),
        }
    }
}

impl Outbox {
    /// The committed outbox at start (every event of the table).
    pub fn backlog(&self, events: Vec<ProductNotificationEvent>) {
        if self.tx.send(Msg::Backlog(events)).is_err() {
            tracing::warn!("notification delivery is not running; events stay in the outbox");
        }
    }

    /// Events just committed to the warehouse.
    pub fn committed(&self, events: Vec<ProductNotificationEvent>) {
        if events.is_empty() {
            return;
        }
        if self.tx.send(Msg::Committed(events)).is_err() {
            tracing::warn!("notification delivery is not running; events stay in the outbox");
        }
    }
}

/// The running delivery task.
pub struct Notifier {
    outbox: Outbox,
    task: tokio::task::JoinHandle<Result<(), NotifyError>>,
    stats: Arc<NotifyStats>,
    drain_timeout: Duration,
}

impl Notifier {
    /// Starts delivering to `config.endpoint`, keeping its state under
    /// `state_dir/notifications`. The task waits for the backlog
    /// ([`Outbox::backlog`]) before it sends anything, and stops when `stop`
    /// turns true or, once every [`Outbox`] is dropped, when nothing is left.
    pub fn start(
        config: NotificationsConfig,
        state_dir: &Path,
        stop: watch::Receiver<bool>,
    ) -> Result<Notifier, NotifyError> {
        let (drain_timeout, max_in_flight) = (config.drain_timeout, config.max_in_flight);
        let http = HttpDelivery::new(config).map_err(|e| NotifyError::Client(e.to_string()))?;
        Ok(Self::start_lane(
            http,
            state_dir.join(STATE_SUBDIR),
            drain_timeout,
            max_in_flight,
            stop,
        ))
    }

    /// Starts posting each event as a Slack message to `config.slack_webhook`
    /// (`None` when there is none), with its own delivery log under
    /// `state_dir/notifications-slack`: the same order, retries and
    /// once-per-event bookkeeping as the endpoint's lane.
    pub fn start_slack(
        config: &NotificationsConfig,
        state_dir: &Path,
        stop: watch::Receiver<bool>,
    ) -> Result<Option<Notifier>, NotifyError> {
        let Some(webhook) = &config.slack_webhook else {
            return Ok(None);
        };
        let url = url::Url::parse(webhook.expose())
            .map_err(|_| NotifyError::Client("notifications.slack_webhook: not a URL".into()))?;
        // Slack accepts about one message a second per webhook: one lane at a time.
        let http = HttpDelivery::slack(config.clone(), url)
            .map_err(|e| NotifyError::Client(e.to_string()))?;
        Ok(Some(Self::start_lane(
            http,
            state_dir.join(SLACK_STATE_SUBDIR),
            config.drain_timeout,
            1,
            stop,
        )))
    }

    fn start_lane(
        http: HttpDelivery,
        dir: std::path::PathBuf,
        drain_timeout: Duration,
        max_in_flight: usize,
        stop: watch::Receiver<bool>,
    ) -> Notifier {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(NotifyStats::default());
        let task_stats = stats.clone();
        let task = tokio::spawn(async move {
            let result = deliver_loop(http, rx, dir, max_in_flight, task_stats, stop).await;
            if let Err(e) = &result {
                tracing::error!(error = %e, "notification delivery stopped; undelivered events stay in the outbox until the next start");
            }
            result
        });
        Notifier {
            outbox: Outbox { tx },
            task,
            stats,
            drain_timeout,
        }
    }

    /// A handle for the epoch loop.
    pub fn outbox(&self) -> Outbox {
        self.outbox.clone()
    }

    /// The task's counters.
    pub fn stats(&self) -> Arc<NotifyStats> {
        self.stats.clone()
    }

    /// Stops the task now (after a failed run): what is pending stays in the
    /// outbox for the next start.
    pub fn abort(self) {
        self.task.abort();
    }

    /// Waits for the task to end: once every [`Outbox`] is dropped it delivers
    /// what is pending and ends, or ends at `stop`. With `drain`, gives up
    /// after the configured `drain_timeout` (what is left stays in the outbox
    /// for the next run).
    pub async fn finish(self, drain: bool) -> Result<(), NotifyError> {
        let Notifier {
            outbox,
            mut task,
            stats,
            drain_timeout,
        } = self;
        drop(outbox);
        let joined = if drain {
            match tokio::time::timeout(drain_timeout, &mut task).await {
                Ok(joined) => joined,
                Err(_) => {
                    task.abort();
                    tracing::warn!(
                        pending = stats.pending.load(Ordering::Relaxed),
                        timeout_s = drain_timeout.as_secs_f64(),
                        "notifications not all delivered in time; the next run delivers the rest"
                    );
                    return Ok(());
                }
            }
        } else {
            task.await
        };
        match joined {
            Ok(result) => result,
            Err(e) if e.is_cancelled() => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, "notification delivery task failed");
                Ok(())
            }
        }
    }
}

/// Pending events by customer, and which customers may be served next.
#[derive(Default)]
struct Queues {
    by_customer: HashMap<i64, VecDeque<ProductNotificationEvent>>,
    /// Customers with events and no attempt in flight, oldest first.
    ready: VecDeque<i64>,
    busy: HashSet<i64>,
    /// Ids queued or in flight.
    known: HashSet<String>,
}

impl Queues {
    fn push(&mut self, event: ProductNotificationEvent) -> bool {
        if !self.known.insert(event.event_id.clone()) {
            return false;
        }
        let customer = event.customer_id;
        let queue = self.by_customer.entry(customer).or_default();
        if queue.is_empty() && !self.busy.contains(&customer) {
            self.ready.push_back(customer);
        }
        queue.push_back(event);
        true
    }

    /// The next customer to serve, with its oldest event.
    fn next(&mut self) -> Option<ProductNotificationEvent> {
        let customer = self.ready.pop_front()?;
        let event = self.by_customer.get(&customer)?.front()?.clone();
        self.busy.insert(customer);
        Some(event)
    }

    /// The customer's oldest event is done.
    fn done(&mut self, customer: i64) {
        self.busy.remove(&customer);
        if let Some(queue) = self.by_customer.get_mut(&customer) {
            if let Some(e) = queue.pop_front() {
                self.known.remove(&e.event_id);
            }
            if queue.is_empty() {
                self.by_customer.remove(&customer);
            } else {
                self.ready.push_back(customer);
            }
        }
    }

    /// The customer's attempt ended without an outcome: serve it again later.
    fn release(&mut self, customer: i64) {
        if self.busy.remove(&customer) {
            self.ready.push_back(customer);
        }
    }

    fn len(&self) -> usize {
        self.known.len()
    }

    /// The oldest episode waiting or in flight.
    fn oldest_episode(&self) -> Option<i64> {
        self.by_customer
            .values()
            .filter_map(|q| q.front().map(|e| e.episode))
            .min()
    }
}

/// A lane's end: (customer, event id, episode, outcome).
type Finished = (i64, String, i64, Outcome);

/// Tries one event until the endpoint accepts or refuses it for good.
async fn deliver_one(
    http: HttpDelivery,
    event: ProductNotificationEvent,
    stats: Arc<NotifyStats>,
) -> Finished {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match http.send(&event).await {
            Ok(()) => {
                tracing::debug!(event_id = %event.event_id, attempt, "notification delivered");
                return (
                    event.customer_id,
                    event.event_id,
                    event.episode,
                    Outcome::Delivered,
                );
            }
            Err(e) if !e.is_retryable() => {
                let status = match e {
                    http::DeliveryError::Status { status, .. } => status,
                    http::DeliveryError::Transport { .. } => 0,
                };
                tracing::error!(event_id = %event.event_id, status, "notification refused by the endpoint; not retried");
                return (
                    event.customer_id,
                    event.event_id,
                    event.episode,
                    Outcome::Refused(status),
                );
            }
            Err(e) => {
                stats.retries.fetch_add(1, Ordering::Relaxed);
                let delay = http.backoff(attempt, &e);
                if attempt == 1 || attempt.is_power_of_two() {
                    tracing::warn!(error = %e, attempt, retry_in_ms = delay.as_millis() as u64, "notification not delivered; retrying");
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// The largest episode among `events`.
fn max_episode(events: &[ProductNotificationEvent]) -> Option<i64> {
    events.iter().map(|e| e.episode).max()
}

async fn deliver_loop(
    http: HttpDelivery,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    dir: PathBuf,
    max_in_flight: usize,
    stats: Arc<NotifyStats>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), NotifyError> {
    // Nothing is sent before the committed outbox is known.
    let backlog = tokio::select! {
        msg = rx.recv() => match msg {
            Some(Msg::Backlog(events)) | Some(Msg::Committed(events)) => events,
            None => return Ok(()),
        },
        _ = stop.wait_for(|s| *s) => return Ok(()),
    };
    let mut log = DeliveryLog::open(&dir, &backlog)?;
    let mut queues = Queues::default();
    let mut backlog: Vec<ProductNotificationEvent> =
        backlog.into_iter().filter(|e| !log.is_done(e)).collect();
    backlog.sort_by_key(|e| (e.episode, e.customer_id, e.sku_id));
    let pending = backlog.len();
    // Every event of an episode up to this one has been received.
    let mut received = max_episode(&backlog);
    for e in backlog {
        queues.push(e);
    }
    tracing::info!(pending, "notification delivery started");
    let mut lanes: JoinSet<Finished> = JoinSet::new();
    // The customer of each lane, to serve it again if its task fails.
    let mut lane_customer: HashMap<tokio::task::Id, i64> = HashMap::new();
    let mut open = true;
    loop {
        while lanes.len() < max_in_flight {
            let Some(event) = queues.next() else { break };
            let customer = event.customer_id;
            let handle = lanes.spawn(deliver_one(http.clone(), event, stats.clone()));
            lane_customer.insert(handle.id(), customer);
        }
        stats.pending.store(queues.len() as u64, Ordering::Relaxed);
        if !open && lanes.is_empty() && queues.len() == 0 {
            return Ok(());
        }
        tokio::select! {
            msg = rx.recv(), if open => match msg {
                Some(Msg::Backlog(events)) | Some(Msg::Committed(events)) => {
                    received = received.max(max_episode(&events));
                    for e in events.into_iter().filter(|e| !log.is_done(e)) {
                        queues.push(e);
                    }
                }
                None => open = false,
            },
            Some(first) = lanes.join_next_with_id(), if !lanes.is_empty() => {
                // Record every finished attempt with one sync.
                let mut finished = vec![first];
                while let Some(more) = lanes.try_join_next_with_id() {
                    finished.push(more);
                }
                let mut outcomes = Vec::with_capacity(finished.len());
                let mut customers = Vec::with_capacity(finished.len());
                for joined in finished {
                    match joined {
                        Ok((id, (customer, event_id, episode, outcome))) => {
                            lane_customer.remove(&id);
                            match outcome {
                                Outcome::Delivered => stats.delivered.fetch_add(1, Ordering::Relaxed),
                                Outcome::Refused(_) => stats.refused.fetch_add(1, Ordering::Relaxed),
                            };
                            customers.push(customer);
                            outcomes.push((event_id, episode, outcome));
                        }
                        Err(e) => {
                            // The event stays pending: serve its customer again.
                            tracing::error!(error = %e, "a notification lane failed; retrying its event");
                            if let Some(customer) = lane_customer.remove(&e.id()) {
                                queues.release(customer);
                            }
                        }
                    }
                }
                log.record(&outcomes)?;
                for customer in customers {
                    queues.done(customer);
                }
                if log.done_ids() > COMPACT_AT {
                    // Episodes below the oldest pending one, and not beyond what
                    // was received (later commits bring larger episodes), are done.
                    let through = match (queues.oldest_episode(), received) {
                        (Some(oldest), Some(r)) => Some((oldest - 1).min(r)),
                        (None, r) => r,
                        (Some(_), None) => None,
                    };
                    if let Some(through) = through {
                        log.compact(through)?;
                    }
                }
            }
            _ = stop.wait_for(|s| *s) => {
                tracing::info!(pending = queues.len(), "notification delivery stopped");
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests;
