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
mod commit;
pub mod dataflow;
mod drive;
mod epoch;
pub mod memory;
mod reconcile;
pub mod refresh;
mod registry;
pub mod reload;
pub mod replay;
mod supervisor;
mod whole_rows;
use self::drive::SourceLinks;
use self::registry::Registry;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dataflows::catalog::TableDef;
use tokio::sync::{mpsc, watch};

use self::checkpoint::{Checkpoint, CheckpointError};
use self::dataflow::{Cluster, Dataflow, DataflowError};
use self::epoch::{EpochLoop, Outlets, Stores};
use self::refresh::{RefreshChannels, RefreshRequests, RefreshTracker};
use self::supervisor::Jobs;
use crate::alerts::Alerter;
use crate::config::LiveSecrets;
use crate::format::{self, ArrowConvError};
use crate::notify::{Notifier, NotifyError, Outbox};
use crate::raw::{RawError, RawLayer};
use crate::schedule::Clock;
use crate::settings::Config;
use crate::sinks::WarehouseConfig;
use crate::sinks::bigquery::{self, BigQueryError};
use crate::sinks::local::WarehouseError;
use crate::sinks::{Sink, SinkError};
use crate::sources::{CloseOnDrop, Msg, RowBudget, SourceError, SourceEvent};
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
    /// An epoch is committed once it gathered this many rows, before its
    /// flush interval ends; the sources wait while twice as many are in
    /// flight. Bounds the memory of a large read (a backfill, a full refresh).
    pub max_epoch_rows: usize,
}

/// The default of [`RunOptions::max_epoch_rows`].
pub const DEFAULT_MAX_EPOCH_ROWS: usize = 10_000;

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
            max_epoch_rows: DEFAULT_MAX_EPOCH_ROWS,
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
    /// The local warehouse failed.
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
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

impl From<SinkError> for RunError {
    fn from(e: SinkError) -> RunError {
        match e {
            SinkError::Local(e) => RunError::Warehouse(e),
            SinkError::BigQuery(e) => RunError::BigQuery(e),
        }
    }
}

impl RunError {
    /// Whether trying again later may succeed (a source's transient failure,
    /// its own retries included).
    pub fn is_retryable(&self) -> bool {
        match self {
            RunError::Source(e) => e.is_transient(),
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
    let registry = Registry::of(&config, options.once).await?;
    let raw = RawLayer::new(registry.raw_defs());
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
    let others: Vec<Box<dyn Sink>> = spool_writer
        .into_iter()
        .map(|w| Box::new(w) as Box<dyn Sink>)
        .collect();
    let sinks = config.warehouse.sink_names();
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
    let budget = Arc::new(RowBudget::new(options.max_epoch_rows.saturating_mul(2)));
    let links = || SourceLinks {
        tx: tx.clone(),
        events: events_tx.clone(),
        stop: stop.clone(),
        refresh: RefreshRequests::new(refresh.requests.clone()),
        telemetry: telemetry.clone(),
        budget: budget.clone(),
    };

    let sources = registry
        .start(&checkpoint, &options.secrets, &telemetry, links)
        .await?;
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
        // However the loop ends, no source waits for its room any more.
        let _close = CloseOnDrop(budget.clone());
        EpochLoop::start(
            Stores {
                warehouse_dir: loop_dir,
                state_dir,
                raw,
                others,
            },
            checkpoint,
            &loop_options,
            checks,
            Outlets {
                progress,
                check_results: checks_tx,
                telemetry,
                outbox,
                budget,
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

/// File of the alerts' state in the state directory.
pub const ALERTS_FILE: &str = "alerts.json";

/// The configured raw tables of `config` as `govflow run` would declare
/// them: BigCommerce collections typed from their first page, PostgreSQL
/// tables no model reads with their columns from the database's catalog.
/// Connects to every source; fails as `govflow run` would at start.
pub async fn discover(config: &Config) -> Result<Vec<TableDef>, RunError> {
    config
        .check_runnable("the configuration")
        .map_err(|e| RunError::Config(e.to_string()))?;
    Ok(Registry::of(config, true).await?.raw_defs())
}
