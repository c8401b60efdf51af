//! The runtime: sources (tokio tasks) feed the dataflow (timely threads) one
//! epoch per flush interval; each epoch's changes are committed to the
//! warehouse, and only then is the checkpoint (epoch, cursors) written.
//!
//! Order is what makes it exactly once: a source sends a pull's batches, then
//! its completion with the new cursors, down one FIFO channel; the epoch loop
//! commits every batch it took before it writes cursors it took after them. A
//! restart rebuilds the dataflow's input from the committed `raw_*` tables
//! (without publishing anything) and resumes each source from its checkpointed
//! cursor minus the lookback.

pub mod checkpoint;
mod collections;
pub mod dataflow;
pub mod memory;
mod reconcile;
pub mod refresh;
pub mod reload;
mod supervisor;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dataflows::Table;
use dataflows::catalog::TableDef;
use dataflows::checks::{CheckResult, CheckSpec, CheckState};
use dataflows::records::Upsert;
use tokio::sync::{mpsc, watch};

use self::checkpoint::{Checkpoint, CheckpointError};
use self::dataflow::{Cluster, Dataflow, DataflowError, TableChangeSet};
use self::refresh::{Finished, RefreshChannels, RefreshRequests, RefreshTracker};
use self::supervisor::{Jobs, SourceEvent};
use crate::alerts::Alerter;
use crate::checks::ChecksFile;
use crate::config::{Config, LiveSecrets, WarehouseConfig};
use crate::format::{self, ArrowConvError};
use crate::notify::{Notifier, NotifyError, Outbox};
use crate::raw::{RawChange, RawError, RawLayer, RowKeyValue};
use crate::schedule::Clock;
use crate::sinks::bigquery::{self, BigQueryError, SpoolWriter};
use crate::sinks::local::{LocalWarehouse, SinkError, WarehouseOptions};
use crate::sources::bigcommerce::webhooks::{Feed, Freshness, WebhookServer};
use crate::sources::bigcommerce::{
    Batch, BigCommerceSource, DeadLetter, Entity, PullMode, PullReport, SourceError,
};
use crate::sources::postgres::tables as pg_tables;
use crate::sources::postgres::upserts::{PgModel, upserts as pg_upserts};
use crate::sources::postgres::{PgBatch, PgCursors, PgError, PgSource, TablePull};
use crate::status::Telemetry;

/// How a run behaves.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Timely worker threads.
    pub workers: usize,
    /// How often inputs advance to a new epoch.
    pub flush_interval: Duration,
    /// Catch up once, commit, and return.
    pub once: bool,
    /// Start with a full read of every source, deleting what is gone upstream.
    pub full_refresh: bool,
    /// Runs the `[schedule]` jobs (full refresh, mart builds) on this clock;
    /// `None` runs none. Ignored with `once`.
    pub scheduler: Option<Arc<dyn Clock>>,
    /// Where the run reports what it does (status page, metrics); a private
    /// one when `None`.
    pub telemetry: Option<Arc<Telemetry>>,
    /// Run as one process of a cluster (timely's communication): process 0
    /// reads the sources and commits; the others only compute.
    pub cluster: Option<Cluster>,
    /// The secrets a configuration reload (`SIGHUP`) may replace: the run
    /// registers those its sources and alerts hold.
    pub secrets: LiveSecrets,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            workers: 1,
            flush_interval: Duration::from_secs(1),
            once: false,
            full_refresh: false,
            scheduler: None,
            telemetry: None,
            cluster: None,
            secrets: LiveSecrets::default(),
        }
    }
}

/// A failure of a run, naming the part that failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration cannot be run.
    #[error("{0}")]
    Config(String),
    /// A source failed (after its retries).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A PostgreSQL source failed (after its retries).
    #[error(transparent)]
    Postgres(#[from] PgError),
    /// The warehouse failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Rows did not convert to or from Arrow.
    #[error(transparent)]
    Arrow(#[from] ArrowConvError),
    /// The configured raw tables failed.
    #[error(transparent)]
    Raw(#[from] RawError),
    /// The dataflow failed.
    #[error(transparent)]
    Dataflow(#[from] DataflowError),
    /// The checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The BigQuery sink failed (the epochs stay spooled for a replay).
    #[error(transparent)]
    BigQuery(#[from] BigQueryError),
    /// Notification delivery failed.
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

impl RunError {
    /// Whether trying again later may succeed (a source's transient failure,
    /// its own retries included).
    pub fn is_retryable(&self) -> bool {
        match self {
            RunError::Source(e) => e.is_transient(),
            RunError::Postgres(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// Live figures of a run, for status lines and tests.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// Last committed epoch.
    pub epoch: Option<u64>,
    /// Output row changes committed since start.
    pub changes: u64,
    /// Upserts read from sources since start.
    pub upserts: u64,
    /// Records dead-lettered since start.
    pub dead_letters: u64,
    /// Pulls completed since start.
    pub pulls: u64,
    /// When the last pull completed.
    pub last_pull_at: Option<Instant>,
    /// When the last epoch was committed.
    pub last_commit_at: Option<Instant>,
    /// Duration of the last commit (dataflow step, conversion, warehouse, checkpoint).
    pub last_commit: Duration,
}

/// Shared handle on a run's [`Progress`].
pub type ProgressHandle = Arc<Mutex<Progress>>;

/// What a completed pull moves forward, once the epoch holding its data is committed.
#[derive(Debug)]
enum CursorUpdate {
    /// BigCommerce entity cursors.
    BigCommerce(PullReport),
    /// The cursors of configured BigCommerce collections.
    Collections {
        /// What each collection's read saw.
        pulls: Vec<crate::sources::bigcommerce::collections::CollectionPull>,
    },
    /// The table cursors of one PostgreSQL database.
    Postgres {
        /// The database's config name.
        database: String,
        /// What each table's read saw.
        pulls: Vec<TablePull>,
    },
}

impl CursorUpdate {
    /// The source that pulled.
    fn source(&self) -> String {
        match self {
            CursorUpdate::BigCommerce(_) => "bigcommerce".to_string(),
            CursorUpdate::Collections { .. } => collections::SOURCE.to_string(),
            CursorUpdate::Postgres { database, .. } => format!("postgres.{database}"),
        }
    }
}

/// A full read that ended, covering these raw tables.
#[derive(Debug)]
struct FullRead {
    generation: u64,
    tables: Vec<Table>,
}

enum Msg {
    /// Upserts a source read for the dataflow, changes of configured raw
    /// tables, and its dead letters as JSON lines.
    Read {
        upserts: Vec<Upsert>,
        raw: Vec<RawChange>,
        dead_letters: Vec<String>,
    },
    /// A source starts a full read for a full refresh (before its first batch).
    FullReadStarted { source: String, generation: u64 },
    /// A pull completed. `full`: it was a full read. `snapshots`: the keys
    /// each configured raw table's whole-table read delivered (keys it did
    /// not deliver are gone upstream).
    PullDone {
        update: CursorUpdate,
        full: Option<FullRead>,
        snapshots: Vec<(String, HashSet<RowKeyValue>)>,
    },
    /// A full read failed; the source goes on with incremental pulls.
    FullReadFailed {
        source: String,
        generation: u64,
        error: String,
    },
    /// A configured raw table's declaration evolved (its source's columns
    /// changed); what follows it was read under the new declaration.
    TableEvolved { def: TableDef, change: String },
    /// A source failed for good.
    SourceFailed(RunError),
}

/// What a source loop talks through.
struct SourceLinks {
    /// To the epoch loop.
    tx: std::sync::mpsc::Sender<Msg>,
    /// To the alerts.
    events: mpsc::UnboundedSender<SourceEvent>,
    /// Turns true when the run stops.
    stop: watch::Receiver<bool>,
    /// Full refreshes asked for.
    refresh: RefreshRequests,
    /// Where reads and pulls are reported.
    telemetry: Arc<Telemetry>,
}

impl SourceLinks {
    /// Announces a full read of `generation` (when `full` holds one).
    fn full_read_starts(&self, source: &str, full: Option<u64>) {
        if let Some(generation) = full {
            let _ = self.tx.send(Msg::FullReadStarted {
                source: source.to_string(),
                generation,
            });
        }
    }

    /// Reports a failed full read, so the refresh it belongs to can end.
    fn full_read_failed(&self, source: &str, full: Option<u64>, error: &RunError) {
        if let Some(generation) = full {
            let _ = self.tx.send(Msg::FullReadFailed {
                source: source.to_string(),
                generation,
                error: error.to_string(),
            });
        }
    }
}

/// Runs the pipeline of `config` until `stop` turns true (or, with `once`,
/// until the sources caught up and everything is committed).
///
/// Each source runs as its own task, polling on its own interval; all of them
/// feed one epoch loop. With `full_refresh` the first pull of every source is a
/// full read, and once all of them are committed, the keys of the tables they
/// cover that none of them delivered are deleted. Beside them run the alerts
/// (checks, sources) and, with `options.scheduler`, the `[schedule]` jobs.
pub async fn run(
    config: Config,
    options: RunOptions,
    stop: watch::Receiver<bool>,
    progress: ProgressHandle,
) -> Result<(), RunError> {
    if let Some(cluster) = options.cluster.clone().filter(|c| c.process != 0) {
        // A computing process: no source, no warehouse, no state of its own.
        tracing::info!(
            process = cluster.process,
            processes = cluster.addresses.len(),
            "joining the cluster"
        );
        let checks = config.checks.clone();
        let workers = options.workers;
        return tokio::task::spawn_blocking(move || Dataflow::follow(workers, &cluster, checks))
            .await
            .map_err(|e| RunError::Config(format!("the dataflow stopped: {e}")))?
            .map_err(RunError::from);
    }
    config
        .check_runnable("the configuration")
        .map_err(|e| RunError::Config(e.to_string()))?;
    let state_dir = config.state.dir.clone();
    let bigcommerce = match config.bigcommerce.clone() {
        Some(bc) => Some(Arc::new(BigCommerceSource::new(bc)?)),
        None => None,
    };
    let collections = match &bigcommerce {
        Some(source) => collections::describe(source).await?,
        None => Vec::new(),
    };
    let postgres = postgres_sources(&config).await?;
    let raw = RawLayer::new(
        collections
            .iter()
            .map(|(_, def)| def.as_ref())
            .chain(
                postgres
                    .iter()
                    .flat_map(|(_, _, targets)| targets.iter().filter_map(|(_, t)| t.raw_def())),
            )
            .cloned()
            .collect(),
    );
    let mut specs = format::table_specs();
    specs.extend(raw.specs());
    // With BigQuery, the local warehouse stays the source of truth for restarts.
    let (warehouse_dir, bigquery) = match &config.warehouse {
        WarehouseConfig::Local { dir } => (dir, None),
        WarehouseConfig::BigQuery(bq) => (
            &bq.local_dir,
            Some(bigquery::start(bq, &state_dir, &specs)?),
        ),
    };
    let (spool_writer, flush_task) = bigquery.unzip();
    let mut sinks = vec![LOCAL_SINK.to_string()];
    if flush_task.is_some() {
        sinks.push("bigquery".to_string());
    }
    std::fs::create_dir_all(&state_dir).map_err(|e| {
        RunError::Config(format!(
            "state.dir {}: cannot create: {e}",
            state_dir.display()
        ))
    })?;
    let checkpoint = Checkpoint::load(&state_dir)?;
    let telemetry = options
        .telemetry
        .clone()
        .unwrap_or_else(|| Arc::new(Telemetry::new(Some(state_dir.clone()), sinks.clone())));
    telemetry.tables_added(&raw.defs().cloned().collect::<Vec<_>>());
    let observed = telemetry.clone();
    let alerter = Arc::new(
        Alerter::new(&config.alerts, config.secrets())
            .map_err(|e| RunError::Config(format!("alerts: {e}")))?
            .with_state_file(state_dir.join(ALERTS_FILE))
            .with_observer(move |text| observed.alert_sent(text)),
    );
    if let Some((key, secret)) = alerter.slack_secret() {
        options.secrets.register(key, secret);
    }
    let redacting = Arc::downgrade(&alerter);
    options.secrets.on_change(move |values| {
        if let Some(alerter) = redacting.upgrade() {
            alerter.redact_also(values);
        }
    });
    let (tx, rx) = std::sync::mpsc::channel::<Msg>();
    let (events_tx, events_rx) = mpsc::unbounded_channel::<SourceEvent>();
    let refresh = RefreshChannels::new(options.full_refresh);
    let links = || SourceLinks {
        tx: tx.clone(),
        events: events_tx.clone(),
        stop: stop.clone(),
        refresh: RefreshRequests::new(refresh.requests.clone()),
        telemetry: telemetry.clone(),
    };

    let mut sources = Vec::new();
    // Orders poll pages and webhook reads of the same rows (see its doc).
    let freshness = Freshness::new();
    if let Some(source) = bigcommerce {
        let bc = source.config().clone();
        options
            .secrets
            .register("bigcommerce.access_token", source.client().token());
        if let Some(webhooks) = config.webhooks.as_ref().filter(|_| !options.once) {
            let feed = webhook_feed(tx.clone());
            WebhookServer::start(
                webhooks,
                source.clone(),
                freshness.clone(),
                feed,
                stop.clone(),
            )
            .await
            .map_err(|e| RunError::Config(e.to_string()))?;
        }
        telemetry.source_added(
            "bigcommerce",
            &table_names(&reconcile::raw_tables_of("bigcommerce")),
        );
        source.client().observe_latency(
            telemetry
                .metrics
                .source_request_seconds
                .get_or_create_owned(&crate::status::label("source", "bigcommerce")),
        );
        if !collections.is_empty() {
            let tables: Vec<String> = collections.iter().map(|(_, d)| d.name.clone()).collect();
            telemetry.source_added(collections::SOURCE, &tables);
            sources.push(tokio::spawn(collections::collections_loop(
                source.clone(),
                collections,
                checkpoint.collections.clone(),
                options.once,
                links(),
            )));
        }
        sources.push(tokio::spawn(bigcommerce_loop(
            source,
            freshness.clone(),
            bc.poll_interval,
            checkpoint.bigcommerce.clone(),
            options.once,
            links(),
        )));
    }
    for (name, source, targets) in postgres {
        options
            .secrets
            .register(&format!("postgres.{name}.url"), source.url());
        let source_name = format!("postgres.{name}");
        let tables: Vec<String> = targets.iter().map(|(_, t)| t.table_name()).collect();
        telemetry.source_added(&source_name, &tables);
        source.observe_latency(
            telemetry
                .metrics
                .source_request_seconds
                .get_or_create_owned(&crate::status::label("source", &source_name)),
        );
        sources.push(tokio::spawn(postgres_loop(
            source,
            targets,
            checkpoint.postgres.get(&name).cloned().unwrap_or_default(),
            options.once,
            links(),
        )));
    }
    drop((tx, events_tx));

    // Restock notifications: delivered from the outbox table by their own task.
    // One lane per destination (the endpoint, and Slack when configured), each
    // with its own delivery log.
    let mut notifiers = Vec::new();
    if let Some(n) = &config.notifications {
        notifiers.push(Notifier::start(n.clone(), &state_dir, stop.clone())?);
        notifiers.extend(Notifier::start_slack(n, &state_dir, stop.clone())?);
    }
    let outbox: Vec<Outbox> = notifiers.iter().map(Notifier::outbox).collect();
    // The status page counts the endpoint's deliveries.
    let delivered = notifiers
        .first()
        .map(|n| tokio::spawn(supervisor::count_deliveries(n.stats(), telemetry.clone())));
    let (checks_tx, checks_rx) = watch::channel(Vec::new());
    let alerts = tokio::spawn(supervisor::report_alerts(
        alerter.clone(),
        telemetry.clone(),
        events_rx,
        checks_rx,
    ));
    let scheduler = match options.scheduler.clone() {
        Some(clock) if !options.once => Some(tokio::spawn(supervisor::run_schedule(
            Jobs {
                config: Arc::new(config.clone()),
                alerter,
                telemetry: telemetry.clone(),
                refresh: refresh.control.clone(),
                stop: stop.clone(),
            },
            clock,
        ))),
        _ => None,
    };
    let tracker = RefreshTracker::new(sources.len(), refresh.status);
    let checks = config.checks.clone();
    let loop_options = options.clone();
    let loop_dir = warehouse_dir.clone();
    let epoch_loop = tokio::task::spawn_blocking(move || {
        EpochLoop::start(
            Stores {
                warehouse_dir: loop_dir,
                state_dir,
                raw,
                bigquery: spool_writer,
            },
            checkpoint,
            &loop_options,
            checks,
            Outlets {
                progress,
                check_results: checks_tx,
                telemetry,
                outbox,
            },
        )?
        .run(rx, tracker)
    });
    for source in sources {
        let _ = source.await;
    }
    let result = epoch_loop
        .await
        .map_err(|e| RunError::Config(format!("the epoch loop stopped: {e}")))?;
    if let Some(scheduler) = scheduler {
        // On stop it ends by itself; after a failure it must not go on alone.
        scheduler.abort();
        let _ = scheduler.await;
    }
    let _ = alerts.await;
    if let Some(counter) = delivered {
        counter.abort();
    }
    for notifier in notifiers {
        match &result {
            Ok(()) => notifier.finish(options.once).await?,
            // A failed run does not wait for an endpoint that may be down.
            Err(_) => notifier.abort(),
        }
    }
    if let Some(task) = flush_task {
        // `--once` flushes every committed epoch to BigQuery before it returns.
        let flushed = task.finish(options.once && result.is_ok()).await;
        result?;
        flushed?;
        return Ok(());
    }
    result
}

/// The name of the local warehouse in the status graph.
const LOCAL_SINK: &str = "local warehouse";

/// File of the alerts' state in the state directory.
pub const ALERTS_FILE: &str = "alerts.json";

/// Dead letters as JSON lines, for `dead_letters.jsonl`.
fn json_lines<T: serde::Serialize>(items: &[T]) -> Vec<String> {
    items
        .iter()
        .filter_map(|d| serde_json::to_string(d).ok())
        .collect()
}

/// Polls the store until `stop` (or once), sending what it reads to the epoch loop.
async fn bigcommerce_loop(
    source: Arc<BigCommerceSource>,
    freshness: Arc<Freshness>,
    poll_interval: Duration,
    mut cursors: crate::sources::bigcommerce::Cursors,
    once: bool,
    mut links: SourceLinks,
) {
    const NAME: &str = "bigcommerce";
    loop {
        let full = links.refresh.take();
        let mode = if full.is_some() {
            PullMode::FullSnapshot
        } else {
            PullMode::Incremental
        };
        links.full_read_starts(NAME, full);
        let backfill = Entity::ALL.into_iter().all(|e| cursors.get(e).is_none());
        let tracked = progress_kind(full, backfill).inspect(|kind| {
            links.telemetry.read_started(NAME, kind);
        });
        let (btx, mut brx) = tokio::sync::mpsc::channel::<Batch>(64);
        let forward_tx = links.tx.clone();
        let forward_freshness = freshness.clone();
        let telemetry = links.telemetry.clone();
        let forwarder = tokio::spawn(async move {
            while let Some(b) = brx.recv().await {
                telemetry.records_read(NAME, b.upserts.len() as u64, b.dead_letters.len() as u64);
                telemetry.page_read(
                    NAME,
                    b.entity.name(),
                    b.upserts.len() as u64,
                    b.expected_pages,
                );
                let dead_letters = json_lines::<DeadLetter>(&b.dead_letters);
                let sent = forward_freshness.deliver_poll(b.fetched_at, b.upserts, |upserts| {
                    forward_tx
                        .send(Msg::Read {
                            raw: Vec::new(),
                            upserts,
                            dead_letters,
                        })
                        .is_ok()
                });
                if !sent {
                    break;
                }
            }
        });
        let pulled = tokio::select! {
            r = source.pull(&cursors, mode, &btx) => Some(r),
            _ = links.stop.changed() => None,
        };
        drop(btx);
        let _ = forwarder.await;
        let Some(pulled) = pulled else { break };
        let outcome = match pulled {
            Ok(report) => {
                cursors.advance(&report.entities);
                ReadOutcome::Done(Msg::PullDone {
                    update: CursorUpdate::BigCommerce(report),
                    full: full.map(|generation| FullRead {
                        generation,
                        tables: reconcile::raw_tables_of("bigcommerce"),
                    }),
                    snapshots: Vec::new(),
                })
            }
            Err(e) => {
                let error: RunError = e.into();
                links.full_read_failed(NAME, full, &error);
                ReadOutcome::Failed {
                    retryable: error.is_retryable(),
                    error,
                }
            }
        };
        let client = source.client();
        let requests = client
            .stats()
            .requests
            .load(std::sync::atomic::Ordering::Relaxed);
        let quota = client
            .governor()
            .quota()
            .map(|q| (q, client.governor().used()));
        let read = ReadEnd {
            source: NAME,
            tracked: tracked.is_some(),
            requests,
            quota,
        };
        if !end_read(&mut links, once, read, outcome, poll_interval).await {
            break;
        }
    }
}

/// What a pull shows progress as: a full refresh, or the first read of a
/// source (a backfill); `None` for an incremental poll.
fn progress_kind(full: Option<u64>, backfill: bool) -> Option<&'static str> {
    match (full, backfill) {
        (Some(_), _) => Some("full refresh"),
        (None, true) => Some("backfill"),
        (None, false) => None,
    }
}

/// What the webhook receiver reads goes to the epoch loop like a poll's page.
fn webhook_feed(tx: std::sync::mpsc::Sender<Msg>) -> Feed {
    Arc::new(move |upserts, dead: Vec<DeadLetter>| {
        let msg = Msg::Read {
            upserts,
            raw: Vec::new(),
            dead_letters: json_lines(&dead),
        };
        tx.send(msg).is_ok()
    })
}

/// The end of one read of a source.
enum ReadOutcome {
    /// The read's completion, to send after its data.
    Done(Msg),
    /// The read failed (after its own retries).
    Failed { error: RunError, retryable: bool },
}

impl ReadOutcome {
    /// The failure's text, if the read failed.
    fn error(&self) -> Option<String> {
        match self {
            ReadOutcome::Done(_) => None,
            ReadOutcome::Failed { error, .. } => Some(error.to_string()),
        }
    }
}

/// Hands a read's outcome to the epoch loop (and to the alerts); false when
/// the source loop must end (the loop is gone, or the failure is final: not
/// retryable, or `once`).
fn report_read(links: &SourceLinks, once: bool, source: &str, outcome: ReadOutcome) -> bool {
    let source = source.to_string();
    match outcome {
        ReadOutcome::Done(msg) => {
            let _ = links.events.send(SourceEvent::Succeeded { source });
            links.tx.send(msg).is_ok()
        }
        ReadOutcome::Failed { error, retryable } if once || !retryable => {
            let _ = links.events.send(SourceEvent::Fatal {
                source,
                error: error.to_string(),
            });
            let _ = links.tx.send(Msg::SourceFailed(error));
            false
        }
        ReadOutcome::Failed { error, .. } => {
            tracing::warn!(%source, %error, "read failed; retrying at the next poll");
            let _ = links.events.send(SourceEvent::Failed {
                source,
                error: error.to_string(),
            });
            true
        }
    }
}

/// How a source's read ended, for its status.
struct ReadEnd<'a> {
    /// The source's name.
    source: &'a str,
    /// Whether the read was shown as progress (a full read or a backfill).
    tracked: bool,
    /// Requests (or pages) the source has sent in all.
    requests: u64,
    /// The store quota and its use, when known.
    quota: Option<(u32, u32)>,
}

/// Ends one read of a source loop: its status, its outcome to the epoch loop
/// and the alerts, then the wait for the next poll. False when the loop must
/// end.
async fn end_read(
    links: &mut SourceLinks,
    once: bool,
    read: ReadEnd<'_>,
    outcome: ReadOutcome,
    interval: Duration,
) -> bool {
    if read.tracked {
        links.telemetry.read_ended(read.source);
    }
    links
        .telemetry
        .pull_ended(read.source, outcome.error(), read.requests, read.quota);
    report_read(links, once, read.source, outcome) && next_poll(once, links, interval).await
}

/// Waits for the next poll, or a full refresh request; false when the loop
/// must end instead (`once`, or stop).
async fn next_poll(once: bool, links: &mut SourceLinks, interval: Duration) -> bool {
    if once || *links.stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(interval) => true,
        _ = links.refresh.changed() => true,
        _ = links.stop.changed() => false,
    }
}

/// The configured raw tables of `config` as `govflow run` would declare
/// them: BigCommerce collections typed from their first page, PostgreSQL
/// tables no model reads with their columns from the database's catalog.
/// Connects to every source; fails as `govflow run` would at start.
pub async fn discover(config: &Config) -> Result<Vec<TableDef>, RunError> {
    config
        .check_runnable("the configuration")
        .map_err(|e| RunError::Config(e.to_string()))?;
    let mut defs = Vec::new();
    if let Some(bc) = config.bigcommerce.clone() {
        let source = BigCommerceSource::new(bc)?;
        defs.extend(
            collections::describe(&source)
                .await?
                .into_iter()
                .map(|(_, def)| def.as_ref().clone()),
        );
    }
    for (_, _, targets) in postgres_sources(config).await? {
        defs.extend(targets.iter().filter_map(|(_, t)| t.raw_def()).cloned());
    }
    Ok(defs)
}

/// What a configured PostgreSQL table feeds.
#[derive(Clone, Debug)]
enum PgTarget {
    /// A model's typed raw table (`raw_pg_point_transaction`, `raw_pg_quotation`).
    Model(PgModel),
    /// A raw table no model reads, with its discovered declaration; without
    /// a cursor, every poll reads it whole.
    Raw {
        def: Arc<TableDef>,
        has_cursor: bool,
    },
}

impl PgTarget {
    /// The warehouse table it fills.
    fn table_name(&self) -> String {
        match self {
            PgTarget::Model(model) => model.raw_table().name().to_string(),
            PgTarget::Raw { def, .. } => def.name.clone(),
        }
    }

    /// The declaration of a configured raw table.
    fn raw_def(&self) -> Option<&TableDef> {
        match self {
            PgTarget::Model(_) => None,
            PgTarget::Raw { def, .. } => Some(def),
        }
    }
}

/// One PostgreSQL database's source and what each of its tables feeds.
type PgSourceSetup = (String, PgSource, Vec<(String, PgTarget)>);

/// The PostgreSQL sources of `config`: a table a model reads feeds it; any
/// other table is a configured raw table, whose columns are discovered from
/// the database now (so the warehouse knows its schema before the first
/// read).
async fn postgres_sources(config: &Config) -> Result<Vec<PgSourceSetup>, RunError> {
    let mut out = Vec::new();
    for (name, db) in &config.postgres {
        let source = PgSource::new(name, db.clone())?;
        let mut targets = Vec::new();
        for table in &db.tables {
            let target = match PgModel::for_table(&table.name) {
                Some(model) => PgTarget::Model(model),
                None => {
                    let (def, has_cursor) = source.describe(&table.name).await?;
                    tracing::info!(database = %name, table = %table.name, raw_table = %def.name, columns = def.columns.len(), has_cursor, "configured table");
                    PgTarget::Raw {
                        def: Arc::new(def),
                        has_cursor,
                    }
                }
            };
            targets.push((table.name.clone(), target));
        }
        out.push((name.clone(), source, targets));
    }
    Ok(out)
}

/// Polls one PostgreSQL database's tables until `stop` (or once), sending
/// their upserts (and configured tables' changes) to the epoch loop.
/// `targets`: each configured table and what it feeds. A full refresh reads
/// every table whole.
async fn postgres_loop(
    source: PgSource,
    mut targets: Vec<(String, PgTarget)>,
    mut cursors: PgCursors,
    once: bool,
    mut links: SourceLinks,
) {
    let database = source.name().to_string();
    let name = format!("postgres.{database}");
    let poll_interval = source.config().poll_interval;
    loop {
        if let Err(error) = follow_schemas(&source, &mut targets, &links).await {
            tracing::warn!(source = %name, %error, "cannot check the tables' columns; reading with the known ones");
        }
        let full = links.refresh.take();
        links.full_read_starts(&name, full);
        let tracked = progress_kind(full, cursors.0.is_empty()).inspect(|kind| {
            links.telemetry.read_started(&name, kind);
        });
        let (btx, mut brx) = tokio::sync::mpsc::channel::<PgBatch>(16);
        let forward_tx = links.tx.clone();
        let forward_targets = targets.clone();
        let telemetry = links.telemetry.clone();
        let forward_name = name.clone();
        let whole_reads = full.is_some();
        // Forwards each page; returns the keys of the configured tables read whole.
        let forwarder = tokio::spawn(async move {
            let mut seen: HashMap<String, HashSet<RowKeyValue>> = HashMap::new();
            while let Some(batch) = brx.recv().await {
                let Some((_, target)) = forward_targets.iter().find(|(t, _)| *t == batch.table)
                else {
                    continue;
                };
                let (upserts, raw, mut dead) = match target {
                    PgTarget::Model(model) => {
                        let (upserts, dead) = pg_upserts(*model, &batch);
                        (upserts, Vec::new(), dead)
                    }
                    PgTarget::Raw { def, has_cursor } => {
                        let (raw, dead) = pg_tables::changes(def, &batch);
                        if whole_reads || !has_cursor {
                            let keys = seen.entry(def.name.clone()).or_default();
                            keys.extend(raw.iter().map(|c| c.key.clone()));
                        }
                        (Vec::new(), raw, dead)
                    }
                };
                dead.extend(batch.dead_letters);
                let n = (upserts.len() + raw.len()) as u64;
                telemetry.records_read(&forward_name, n, dead.len() as u64);
                telemetry.page_read(&forward_name, &batch.table, n, None);
                let msg = Msg::Read {
                    upserts,
                    raw,
                    dead_letters: json_lines(&dead),
                };
                if forward_tx.send(msg).is_err() {
                    break;
                }
            }
            seen
        });
        let read = async {
            if full.is_some() {
                let mut pulls = Vec::new();
                for (table, _) in &targets {
                    pulls.push(source.full_snapshot(table, &btx).await?);
                }
                Ok(pulls)
            } else {
                source.poll(&cursors, &btx).await.map(|r| r.tables)
            }
        };
        let pulled = tokio::select! {
            r = read => Some(r),
            _ = links.stop.changed() => None,
        };
        drop(btx);
        let mut seen = forwarder.await.unwrap_or_default();
        let Some(pulled) = pulled else { break };
        let outcome = match pulled {
            Ok(pulls) => {
                cursors.advance(&pulls);
                // Whole-table reads of configured tables: their keys, even when empty.
                let snapshots = targets
                    .iter()
                    .filter_map(|(table, target)| {
                        let def = target.raw_def()?;
                        let whole = pulls.iter().any(|p| p.table == *table && p.snapshot);
                        whole
                            .then(|| (def.name.clone(), seen.remove(&def.name).unwrap_or_default()))
                    })
                    .collect();
                ReadOutcome::Done(Msg::PullDone {
                    update: CursorUpdate::Postgres {
                        database: database.clone(),
                        pulls,
                    },
                    full: full.map(|generation| FullRead {
                        generation,
                        tables: targets
                            .iter()
                            .filter_map(|(_, t)| match t {
                                PgTarget::Model(m) => Some(m.raw_table()),
                                PgTarget::Raw { .. } => None,
                            })
                            .collect(),
                    }),
                    snapshots,
                })
            }
            Err(e) => {
                let error: RunError = e.into();
                links.full_read_failed(&name, full, &error);
                ReadOutcome::Failed {
                    retryable: error.is_retryable(),
                    error,
                }
            }
        };
        let read = ReadEnd {
            source: &name,
            tracked: tracked.is_some(),
            requests: source.pages(),
            quota: None,
        };
        if !end_read(&mut links, once, read, outcome, poll_interval).await {
            break;
        }
    }
}

/// Evolves the declaration of every configured table whose columns changed
/// upstream since the last poll, and announces it to the epoch loop before
/// anything read under it (docs/tables.md, Schema evolution).
async fn follow_schemas(
    source: &PgSource,
    targets: &mut [(String, PgTarget)],
    links: &SourceLinks,
) -> Result<(), RunError> {
    for (table, target) in targets.iter_mut() {
        let PgTarget::Raw { def, has_cursor } = target else {
            continue;
        };
        if !source.schema_changed(table).await? {
            continue;
        }
        let (upstream, cursor) = source.describe(table).await?;
        let (evolved, change) = crate::raw::evolution::evolve(def, &upstream);
        let change = change.describe();
        tracing::warn!(table = %def.name, %change, "columns changed upstream");
        *has_cursor = cursor;
        if evolved != **def {
            *def = Arc::new(evolved.clone());
            let _ = links.tx.send(Msg::TableEvolved {
                def: evolved,
                change,
            });
        }
    }
    Ok(())
}

/// The names of `tables`.
fn table_names(tables: &[Table]) -> Vec<String> {
    tables.iter().map(|t| t.name().to_string()).collect()
}

/// The thread that turns source messages into committed epochs.
struct EpochLoop {
    dataflow: Dataflow,
    /// Configured raw tables, written beside the dataflow's changes.
    raw: RawLayer,
    warehouse: LocalWarehouse,
    state_dir: PathBuf,
    checkpoint: Checkpoint,
    flush_interval: Duration,
    progress: ProgressHandle,
    dead_letters: PathBuf,
    checks: CheckState,
    /// The latest check results, for the alerts.
    check_results: watch::Sender<Vec<CheckResult>>,
    /// When the check results were last taken.
    checks_at: Instant,
    /// Where commits are reported.
    telemetry: Arc<Telemetry>,
    /// The BigQuery sink's spool, when the warehouse is BigQuery.
    bigquery: Option<SpoolWriter>,
    /// Where committed restock events go for delivery: one per lane.
    outbox: Vec<Outbox>,
    /// False until the store's first complete pull is committed: episodes
    /// already running when govflow first reads a store are not announced.
    announce: bool,
}

/// How often check results are taken again without a commit (freshness
/// turns stale with time alone).
const RECHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Where the epoch loop reports, besides the warehouse and the checkpoint.
struct Outlets {
    /// Live figures of the run.
    progress: ProgressHandle,
    /// The latest check results, for the alerts.
    check_results: watch::Sender<Vec<CheckResult>>,
    /// The status page and metrics.
    telemetry: Arc<Telemetry>,
    /// Where committed restock events go for delivery: one per lane.
    outbox: Vec<Outbox>,
}

/// Where the epoch loop keeps what it commits.
struct Stores {
    /// The local warehouse's directory.
    warehouse_dir: PathBuf,
    /// The state directory (checkpoint, dead letters, check results).
    state_dir: PathBuf,
    /// The configured raw tables.
    raw: RawLayer,
    /// The BigQuery sink's spool, when the warehouse is BigQuery.
    bigquery: Option<SpoolWriter>,
}

impl EpochLoop {
    fn start(
        stores: Stores,
        checkpoint: Checkpoint,
        options: &RunOptions,
        checks: Vec<CheckSpec>,
        outlets: Outlets,
    ) -> Result<EpochLoop, RunError> {
        let Stores {
            warehouse_dir,
            state_dir,
            mut raw,
            mut bigquery,
        } = stores;
        let Outlets {
            progress,
            check_results,
            telemetry,
            outbox,
        } = outlets;
        let mut specs = format::table_specs();
        specs.extend(raw.specs());
        let warehouse = LocalWarehouse::open(&warehouse_dir, &specs, WarehouseOptions::default())?;
        let mut dataflow =
            Dataflow::start_on(options.workers, options.cluster.as_ref(), checks.clone())?;
        // Steps run at the epoch they commit as (see `Dataflow::skip_to`).
        dataflow.skip_to(
            checkpoint
                .epoch
                .max(warehouse.committed_epoch())
                .unwrap_or(0),
        );
        // Rebuild the input state from what is committed; its output is already published.
        let mut restored = Vec::new();
        for table in Table::ALL.into_iter().filter(|t| t.is_raw()) {
            if let Some(batch) = warehouse.read_table(table.name())? {
                restored.extend(format::rows_from_batch(table, &batch)?);
            }
        }
        let upserts = dataflows::upserts_from_raw(restored);
        let n = upserts.len();
        let started = Instant::now();
        let restored = dataflow.step(upserts)?;
        let mut rows: std::collections::BTreeMap<String, i64> = restored
            .iter()
            .map(|(table, changes)| {
                let n = changes.iter().map(|(_, d)| *d as i64).sum();
                (table.name().to_string(), n)
            })
            .collect();
        rows.extend(raw.restore(&warehouse)?);
        telemetry.tables_restored(&rows, warehouse.committed_epoch());
        if n > 0 {
            tracing::info!(
                upserts = n,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "restored the committed state"
            );
        }
        // The replay's check rows are the committed state's: keep them.
        let mut check_state = CheckState::new(checks);
        check_state.apply(dataflow.take_check_changes());
        let mut checkpoint = checkpoint;
        // A crash between a warehouse commit and its checkpoint leaves older
        // cursors: harmless, the next pull reads a little more again.
        checkpoint.epoch = checkpoint.epoch.max(warehouse.committed_epoch());
        if let Some(spool) = bigquery.as_mut() {
            spool.open(warehouse.committed_epoch())?;
        }
        if let Ok(mut p) = progress.lock() {
            p.epoch = checkpoint.epoch;
        }
        if !outbox.is_empty() {
            let events = Table::ProductNotificationEvent;
            let backlog = match warehouse.read_table(events.name())? {
                Some(batch) => crate::notify::events_of(format::rows_from_batch(events, &batch)?),
                None => Vec::new(),
            };
            for lane in &outbox {
                lane.backlog(backlog.clone());
            }
        }
        let announce = !checkpoint.bigcommerce.is_empty();
        let dead_letters = state_dir.join("dead_letters.jsonl");
        let mut epoch_loop = EpochLoop {
            dataflow,
            raw,
            warehouse,
            state_dir,
            checkpoint,
            flush_interval: options.flush_interval,
            progress,
            dead_letters,
            checks: check_state,
            check_results,
            checks_at: Instant::now(),
            telemetry,
            bigquery,
            outbox,
            announce,
        };
        epoch_loop.update_checks();
        Ok(epoch_loop)
    }

    /// Commits an epoch per flush interval until every source is done,
    /// ending full refreshes as `refresh` tells.
    fn run(mut self, rx: Receiver<Msg>, mut refresh: RefreshTracker) -> Result<(), RunError> {
        loop {
            let deadline = Instant::now() + self.flush_interval;
            let mut upserts: Vec<Upsert> = Vec::new();
            let mut done: Vec<CursorUpdate> = Vec::new();
            let mut finished = false;
            let mut refresh_ended = false;
            loop {
                let wait = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(Msg::Read {
                        upserts: read,
                        raw,
                        dead_letters,
                    }) => {
                        self.keep_dead_letters(&dead_letters);
                        refresh.note(&read);
                        upserts.extend(read);
                        self.raw.apply(raw);
                    }
                    Ok(Msg::FullReadStarted { source, generation }) => {
                        refresh.started(&source, generation)
                    }
                    Ok(Msg::PullDone {
                        update,
                        full,
                        snapshots,
                    }) => {
                        let source = update.source();
                        done.push(update);
                        // Everything the whole-table reads delivered is applied: what
                        // they did not deliver is gone upstream.
                        let tables = snapshots.iter().map(|(t, _)| t.clone()).collect();
                        let seen = snapshots.into_iter().collect();
                        let gone = self.raw.unseen(&tables, &seen);
                        self.raw.apply(gone);
                        if let Some(read) = full
                            && refresh.ended(&source, read.generation, Ok(read.tables))
                        {
                            refresh_ended = true;
                        }
                    }
                    Ok(Msg::FullReadFailed {
                        source,
                        generation,
                        error,
                    }) => refresh_ended |= refresh.ended(&source, generation, Err(error)),
                    Ok(Msg::TableEvolved { def, change }) => {
                        // What was read under the old declaration commits first.
                        self.commit(std::mem::take(&mut upserts), &std::mem::take(&mut done))?;
                        self.evolve(def, &change)?;
                    }
                    Ok(Msg::SourceFailed(e)) => {
                        // Commit what arrived before the failure, then report it.
                        self.commit(upserts, &done)?;
                        return Err(e);
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        finished = true;
                        break;
                    }
                }
                if refresh_ended {
                    // Commit now, so the deletes below see everything the reads brought.
                    break;
                }
            }
            self.commit(upserts, &done)?;
            if refresh_ended {
                // Everything the full reads delivered is committed: delete what they did not see.
                let Finished { status, deletes } = refresh.finish(&self.warehouse)?;
                self.commit(deletes, &[])?;
                refresh.publish(status);
            }
            if self.checks_at.elapsed() >= RECHECK_INTERVAL {
                self.update_checks();
            }
            if finished {
                return Ok(());
            }
        }
    }

    /// Steps the dataflow over `upserts`, publishes the changes, then
    /// checkpoints the cursors of the pulls in `done`.
    fn commit(&mut self, upserts: Vec<Upsert>, done: &[CursorUpdate]) -> Result<(), RunError> {
        if let Some(bq) = &self.bigquery {
            bq.check()?;
        }
        if upserts.is_empty() && done.is_empty() && !self.raw.has_pending() {
            return Ok(());
        }
        let started = Instant::now();
        let n_upserts = upserts.len() as u64;
        // The step's own epoch: always past the committed one (see `EpochLoop::start`).
        let epoch = self.dataflow.next_epoch();
        let mut changes: TableChangeSet = self.dataflow.step(upserts)?;
        if !self.announce {
            changes.remove(&Table::ProductNotificationEvent);
        }
        let mut changed = 0u64;
        let mut committed = None;
        let raw_changes = self.raw.take(epoch)?;
        if !changes.is_empty() || !raw_changes.is_empty() {
            let mut batches = Vec::with_capacity(changes.len() + raw_changes.len());
            let mut deltas = std::collections::BTreeMap::new();
            for (table, rows) in &changes {
                changed += rows.len() as u64;
                let delta: i64 = rows.iter().map(|(_, d)| *d as i64).sum();
                deltas.insert(table.name().to_string(), (delta, rows.len() as u64));
                batches.push(format::table_changes(*table, epoch, rows)?);
            }
            for (batch, delta, n) in raw_changes {
                changed += n;
                deltas.insert(batch.table.clone(), (delta, n));
                batches.push(batch);
            }
            if let Some(bq) = &self.bigquery {
                bq.write(epoch, &batches)?;
            }
            let flush = Instant::now();
            self.warehouse.commit(epoch, &batches)?;
            committed = Some((epoch, deltas, flush.elapsed()));
            if let Some(bq) = &self.bigquery {
                bq.committed(epoch);
            }
            self.checkpoint.epoch = Some(epoch);
            if let Some(events) = changes
                .remove(&Table::ProductNotificationEvent)
                .filter(|_| !self.outbox.is_empty())
            {
                let events = crate::notify::events_of(events.into_iter().map(|(r, _)| r));
                for lane in &self.outbox {
                    lane.committed(events.clone());
                }
            }
        }
        if done
            .iter()
            .any(|u| matches!(u, CursorUpdate::BigCommerce(_)))
        {
            self.announce = true;
        }
        for update in done {
            match update {
                CursorUpdate::BigCommerce(report) => {
                    self.checkpoint.bigcommerce.advance(&report.entities)
                }
                CursorUpdate::Collections { pulls } => {
                    for p in pulls {
                        let at = p.cursor.unwrap_or(0);
                        let slot = self
                            .checkpoint
                            .collections
                            .entry(p.name.clone())
                            .or_insert(at);
                        *slot = (*slot).max(at);
                    }
                }
                CursorUpdate::Postgres { database, pulls } => self
                    .checkpoint
                    .postgres
                    .entry(database.clone())
                    .or_default()
                    .advance(pulls),
            }
        }
        self.checkpoint.store(&self.state_dir)?;
        let elapsed = started.elapsed();
        if let Some((epoch, deltas, flush)) = committed {
            self.telemetry
                .epoch_committed(epoch, &deltas, elapsed, flush);
        }
        for update in done {
            let source = update.source();
            let cursors = self.cursor_texts(update);
            self.telemetry.pull_committed(&source, cursors);
        }
        self.update_checks();
        if let Ok(mut p) = self.progress.lock() {
            p.epoch = self.checkpoint.epoch;
            p.changes += changed;
            p.upserts += n_upserts;
            p.pulls += done.len() as u64;
            if !done.is_empty() {
                p.last_pull_at = Some(Instant::now());
            }
            if changed > 0 {
                p.last_commit_at = Some(Instant::now());
            }
            p.last_commit = elapsed;
        }
        tracing::debug!(epoch = ?self.checkpoint.epoch, upserts = n_upserts, changes = changed, elapsed_ms = elapsed.as_millis() as u64, "epoch committed");
        Ok(())
    }

    /// Moves a configured raw table to an evolved declaration: the raw layer,
    /// the local warehouse and the BigQuery spool.
    fn evolve(&mut self, def: TableDef, change: &str) -> Result<(), RunError> {
        let spec = format::spec_of(&def);
        self.warehouse.evolve(spec.clone())?;
        if let Some(bq) = &self.bigquery {
            bq.evolve(spec)?;
        }
        tracing::info!(table = %def.name, %change, "table evolved");
        self.telemetry.tables_added(std::slice::from_ref(&def));
        self.raw.evolve(def);
        Ok(())
    }

    /// Applies the last step's check changes, rewrites `checks.json` and
    /// hands the results to the alerts.
    fn update_checks(&mut self) {
        self.checks.apply(self.dataflow.take_check_changes());
        let now = chrono::Utc::now();
        self.checks_at = Instant::now();
        let results = self.checks.results(now.timestamp_micros());
        self.telemetry.checks(&results);
        self.check_results.send_replace(results.clone());
        let file = ChecksFile {
            epoch: self.checkpoint.epoch,
            updated_at: now,
            results,
        };
        if let Err(e) = file.store(&self.state_dir) {
            tracing::warn!(dir = %self.state_dir.display(), error = %e, "cannot write check results");
        }
    }

    /// The checkpointed cursors of the source of `update`, as text.
    fn cursor_texts(&self, update: &CursorUpdate) -> std::collections::BTreeMap<String, String> {
        match update {
            CursorUpdate::BigCommerce(_) => crate::sources::bigcommerce::Entity::ALL
                .into_iter()
                .filter_map(|e| {
                    let at = self.checkpoint.bigcommerce.get(e)?;
                    let text = chrono::DateTime::from_timestamp_micros(at)
                        .map_or(at.to_string(), |t| t.to_rfc3339());
                    Some((e.name().to_string(), text))
                })
                .collect(),
            CursorUpdate::Collections { pulls } => pulls
                .iter()
                .filter_map(|p| {
                    let at = *self.checkpoint.collections.get(&p.name)?;
                    let text = chrono::DateTime::from_timestamp_micros(at)
                        .map_or(at.to_string(), |t| t.to_rfc3339());
                    Some((p.name.clone(), text))
                })
                .collect(),
            CursorUpdate::Postgres { database, .. } => self
                .checkpoint
                .postgres
                .get(database)
                .map(|c| {
                    c.0.iter()
                        .map(|(t, v)| (t.clone(), v.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    fn keep_dead_letters(&self, dead: &[String]) {
        if dead.is_empty() {
            return;
        }
        if let Ok(mut p) = self.progress.lock() {
            p.dead_letters += dead.len() as u64;
        }
        let mut text = String::new();
        for line in dead {
            text.push_str(line);
            text.push('\n');
        }
        use std::io::Write;
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.dead_letters)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        if let Err(e) = written {
            tracing::warn!(path = %self.dead_letters.display(), error = %e, "cannot keep dead letters");
        }
    }
}
