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
pub mod dataflow;
mod reconcile;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dataflows::Table;
use dataflows::checks::{CheckSpec, CheckState};
use dataflows::records::Upsert;
use tokio::sync::watch;

use self::checkpoint::{Checkpoint, CheckpointError};
use self::dataflow::{Dataflow, DataflowError, TableChangeSet};
use self::reconcile::Seen;
use crate::checks::ChecksFile;
use crate::config::{Config, WarehouseConfig};
use crate::notify::{Notifier, NotifyError, Outbox};
use crate::sinks::arrow::{self, ArrowConvError};
use crate::sinks::local::{LocalWarehouse, SinkError, WarehouseOptions};
use crate::sources::bigcommerce::webhooks::{Feed, Freshness, WebhookServer};
use crate::sources::bigcommerce::{
    Batch, BigCommerceSource, DeadLetter, PullMode, PullReport, SourceError,
};
use crate::sources::postgres::upserts::{PgModel, upserts as pg_upserts};
use crate::sources::postgres::{PgBatch, PgCursors, PgError, PgSource, TablePull};

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
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            workers: 1,
            flush_interval: Duration::from_secs(1),
            once: false,
            full_refresh: false,
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
    /// The dataflow failed.
    #[error(transparent)]
    Dataflow(#[from] DataflowError),
    /// The checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Notification delivery failed.
    #[error(transparent)]
    Notify(#[from] NotifyError),
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
    /// The table cursors of one PostgreSQL database.
    Postgres {
        /// The database's config name.
        database: String,
        /// What each table's read saw.
        pulls: Vec<TablePull>,
    },
}

enum Msg {
    /// Upserts a source read, with its dead letters as JSON lines.
    Read {
        upserts: Vec<Upsert>,
        dead_letters: Vec<String>,
    },
    /// A pull completed. `full`: it was a full read, covering these raw tables.
    PullDone {
        update: CursorUpdate,
        full: Option<Vec<Table>>,
    },
    /// A source failed for good.
    SourceFailed(RunError),
}

/// Runs the pipeline of `config` until `stop` turns true (or, with `once`,
/// until the sources caught up and everything is committed).
///
/// Each source runs as its own task, polling on its own interval; all of them
/// feed one epoch loop. With `full_refresh` the first pull of every source is a
/// full read, and once all of them are committed, the keys of the tables they
/// cover that none of them delivered are deleted.
pub async fn run(
    config: Config,
    options: RunOptions,
    stop: watch::Receiver<bool>,
    progress: ProgressHandle,
) -> Result<(), RunError> {
    let WarehouseConfig::Local { dir: warehouse_dir } = &config.warehouse else {
        return Err(RunError::Config(
            "warehouse.kind = \"bigquery\" is not supported by this build yet; use \"local\""
                .into(),
        ));
    };
    let state_dir = config.state.dir.clone();
    std::fs::create_dir_all(&state_dir).map_err(|e| {
        RunError::Config(format!(
            "state.dir {}: cannot create: {e}",
            state_dir.display()
        ))
    })?;
    let checkpoint = Checkpoint::load(&state_dir)?;
    let (tx, rx) = std::sync::mpsc::channel::<Msg>();

    let mut sources = Vec::new();
    // Orders poll pages and webhook reads of the same rows (see its doc).
    let freshness = Freshness::new();
    if let Some(bc) = config.bigcommerce.clone() {
        let source = Arc::new(BigCommerceSource::new(bc.clone())?);
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
        sources.push(tokio::spawn(bigcommerce_loop(
            source,
            freshness.clone(),
            bc.poll_interval,
            checkpoint.bigcommerce.clone(),
            options.clone(),
            tx.clone(),
            stop.clone(),
        )));
    }
    for (name, db) in &config.postgres {
        let mut models = Vec::new();
        for (i, table) in db.tables.iter().enumerate() {
            let model = PgModel::for_table(&table.name).ok_or_else(|| {
                let known: Vec<&str> = PgModel::ALL.iter().map(|(t, _)| *t).collect();
                RunError::Config(format!(
                    "postgres.{name}.tables[{i}].name: no model reads table {:?} (known: {})",
                    table.name,
                    known.join(", ")
                ))
            })?;
            models.push((table.name.clone(), model));
        }
        let source = PgSource::new(name, db.clone())?;
        sources.push(tokio::spawn(postgres_loop(
            source,
            models,
            checkpoint.postgres.get(name).cloned().unwrap_or_default(),
            options.clone(),
            tx.clone(),
            stop.clone(),
        )));
    }
    if sources.is_empty() {
        return Err(RunError::Config(
            "no source configured: add a [bigcommerce] or [postgres.NAME] section".into(),
        ));
    }
    drop(tx);

    // Restock notifications: delivered from the outbox table by their own task.
    let notifier = match &config.notifications {
        Some(n) => Some(Notifier::start(n.clone(), &state_dir, stop.clone())?),
        None => None,
    };
    let outbox = notifier.as_ref().map(Notifier::outbox);
    let full_reads = if options.full_refresh {
        sources.len()
    } else {
        0
    };
    let checks = config.checks.clone();
    let loop_options = options.clone();
    let loop_dir = warehouse_dir.clone();
    let epoch_loop = tokio::task::spawn_blocking(move || {
        EpochLoop::start(
            loop_dir,
            state_dir,
            checkpoint,
            &loop_options,
            progress,
            checks,
            outbox,
        )?
        .run(rx, full_reads)
    });
    for source in sources {
        let _ = source.await;
    }
    let result = epoch_loop
        .await
        .map_err(|e| RunError::Config(format!("the epoch loop stopped: {e}")))?;
    if let Some(notifier) = notifier {
        match &result {
            Ok(()) => notifier.finish(options.once).await?,
            // A failed run does not wait for an endpoint that may be down.
            Err(_) => notifier.abort(),
        }
    }
    result
}

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
    options: RunOptions,
    tx: std::sync::mpsc::Sender<Msg>,
    mut stop: watch::Receiver<bool>,
) {
    let mut first = true;
    loop {
        let full = first && options.full_refresh;
        let mode = if full {
            PullMode::FullSnapshot
        } else {
            PullMode::Incremental
        };
        first = false;
        let (btx, mut brx) = tokio::sync::mpsc::channel::<Batch>(64);
        let forward_tx = tx.clone();
        let forward_freshness = freshness.clone();
        let forwarder = tokio::spawn(async move {
            while let Some(b) = brx.recv().await {
                let dead_letters = json_lines::<DeadLetter>(&b.dead_letters);
                let sent = forward_freshness.deliver_poll(b.fetched_at, b.upserts, |upserts| {
                    forward_tx
                        .send(Msg::Read {
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
            _ = stop.changed() => None,
        };
        drop(btx);
        let _ = forwarder.await;
        let Some(pulled) = pulled else { break };
        let outcome = match pulled {
            Ok(report) => {
                cursors.advance(&report.entities);
                ReadOutcome::Done(Msg::PullDone {
                    update: CursorUpdate::BigCommerce(report),
                    full: full.then(|| reconcile::BIGCOMMERCE_TABLES.to_vec()),
                })
            }
            Err(e) => ReadOutcome::Failed {
                retryable: e.is_retryable(),
                error: e.into(),
            },
        };
        if !report_read(&tx, options.once, "bigcommerce", outcome)
            || !next_poll(options.once, &mut stop, poll_interval).await
        {
            break;
        }
    }
}

/// What the webhook receiver reads goes to the epoch loop like a poll's page.
fn webhook_feed(tx: std::sync::mpsc::Sender<Msg>) -> Feed {
    Arc::new(move |upserts, dead: Vec<DeadLetter>| {
        let msg = Msg::Read {
            upserts,
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

/// Hands a read's outcome to the epoch loop; false when the source loop must
/// end (the loop is gone, or the failure is final: not retryable, or `once`).
fn report_read(
    tx: &std::sync::mpsc::Sender<Msg>,
    once: bool,
    source: &str,
    outcome: ReadOutcome,
) -> bool {
    match outcome {
        ReadOutcome::Done(msg) => tx.send(msg).is_ok(),
        ReadOutcome::Failed { error, retryable } if once || !retryable => {
            let _ = tx.send(Msg::SourceFailed(error));
            false
        }
        ReadOutcome::Failed { error, .. } => {
            tracing::warn!(source, %error, "read failed; retrying at the next poll");
            true
        }
    }
}

/// Waits for the next poll; false when the loop must end instead (`once`, or stop).
async fn next_poll(once: bool, stop: &mut watch::Receiver<bool>, interval: Duration) -> bool {
    if once || *stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(interval) => true,
        _ = stop.changed() => false,
    }
}

/// Polls one PostgreSQL database's tables until `stop` (or once), sending
/// their upserts to the epoch loop. `models`: each configured table and the
/// model it feeds. A full refresh reads every table whole.
async fn postgres_loop(
    source: PgSource,
    models: Vec<(String, PgModel)>,
    mut cursors: PgCursors,
    options: RunOptions,
    tx: std::sync::mpsc::Sender<Msg>,
    mut stop: watch::Receiver<bool>,
) {
    let database = source.name().to_string();
    let poll_interval = source.config().poll_interval;
    let mut first = true;
    loop {
        let full = first && options.full_refresh;
        first = false;
        let (btx, mut brx) = tokio::sync::mpsc::channel::<PgBatch>(16);
        let forward_tx = tx.clone();
        let forward_models = models.clone();
        let forwarder = tokio::spawn(async move {
            while let Some(batch) = brx.recv().await {
                let Some((_, model)) = forward_models.iter().find(|(t, _)| *t == batch.table)
                else {
                    continue;
                };
                let (upserts, mut dead) = pg_upserts(*model, &batch);
                dead.extend(batch.dead_letters);
                let msg = Msg::Read {
                    upserts,
                    dead_letters: json_lines(&dead),
                };
                if forward_tx.send(msg).is_err() {
                    break;
                }
            }
        });
        let read = async {
            if full {
                let mut pulls = Vec::new();
                for (table, _) in &models {
                    pulls.push(source.full_snapshot(table, &btx).await?);
                }
                Ok(pulls)
            } else {
                source.poll(&cursors, &btx).await.map(|r| r.tables)
            }
        };
        let pulled = tokio::select! {
            r = read => Some(r),
            _ = stop.changed() => None,
        };
        drop(btx);
        let _ = forwarder.await;
        let Some(pulled) = pulled else { break };
        let outcome = match pulled {
            Ok(pulls) => {
                cursors.advance(&pulls);
                ReadOutcome::Done(Msg::PullDone {
                    update: CursorUpdate::Postgres {
                        database: database.clone(),
                        pulls,
                    },
                    full: full.then(|| models.iter().map(|(_, m)| m.raw_table()).collect()),
                })
            }
            Err(e) => ReadOutcome::Failed {
                retryable: e.is_retryable(),
                error: e.into(),
            },
        };
        let source = format!("postgres.{database}");
        if !report_read(&tx, options.once, &source, outcome)
            || !next_poll(options.once, &mut stop, poll_interval).await
        {
            break;
        }
    }
}

/// The thread that turns source messages into committed epochs.
struct EpochLoop {
    dataflow: Dataflow,
    warehouse: LocalWarehouse,
    state_dir: PathBuf,
    checkpoint: Checkpoint,
    flush_interval: Duration,
    progress: ProgressHandle,
    dead_letters: PathBuf,
    checks: CheckState,
    /// Where committed restock events go for delivery.
    outbox: Option<Outbox>,
    /// False until the store's first complete pull is committed: episodes
    /// already running when govflow first reads a store are not announced.
    announce: bool,
}

impl EpochLoop {
    fn start(
        warehouse_dir: PathBuf,
        state_dir: PathBuf,
        checkpoint: Checkpoint,
        options: &RunOptions,
        progress: ProgressHandle,
        checks: Vec<CheckSpec>,
        outbox: Option<Outbox>,
    ) -> Result<EpochLoop, RunError> {
        let warehouse = LocalWarehouse::open(
            &warehouse_dir,
            &arrow::table_specs(),
            WarehouseOptions::default(),
        )?;
        let mut dataflow = Dataflow::start_with_checks(options.workers, checks.clone())?;
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
                restored.extend(arrow::rows_from_batch(table, &batch)?);
            }
        }
        let upserts = dataflows::upserts_from_raw(restored);
        let n = upserts.len();
        let started = Instant::now();
        dataflow.step(upserts)?;
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
        if let Ok(mut p) = progress.lock() {
            p.epoch = checkpoint.epoch;
        }
        if let Some(outbox) = &outbox {
            let events = Table::ProductNotificationEvent;
            outbox.backlog(match warehouse.read_table(events.name())? {
                Some(batch) => crate::notify::events_of(arrow::rows_from_batch(events, &batch)?),
                None => Vec::new(),
            });
        }
        let announce = !checkpoint.bigcommerce.is_empty();
        let dead_letters = state_dir.join("dead_letters.jsonl");
        let mut epoch_loop = EpochLoop {
            dataflow,
            warehouse,
            state_dir,
            checkpoint,
            flush_interval: options.flush_interval,
            progress,
            dead_letters,
            checks: check_state,
            outbox,
            announce,
        };
        epoch_loop.update_checks();
        Ok(epoch_loop)
    }

    /// Commits an epoch per flush interval until every source is done.
    /// `full_reads`: how many sources start with a full read (full refresh).
    fn run(mut self, rx: Receiver<Msg>, full_reads: usize) -> Result<(), RunError> {
        // Keys the full reads bring, until all of them are committed.
        let mut seen: Option<Seen> = (full_reads > 0).then(Seen::default);
        let mut covered: BTreeSet<Table> = BTreeSet::new();
        let mut full_done = 0;
        loop {
            let deadline = Instant::now() + self.flush_interval;
            let mut upserts: Vec<Upsert> = Vec::new();
            let mut done: Vec<CursorUpdate> = Vec::new();
            let mut finished = false;
            loop {
                let wait = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(Msg::Read {
                        upserts: read,
                        dead_letters,
                    }) => {
                        self.keep_dead_letters(&dead_letters);
                        if let Some(s) = seen.as_mut() {
                            s.note(&read);
                        }
                        upserts.extend(read);
                    }
                    Ok(Msg::PullDone { update, full }) => {
                        done.push(update);
                        if let Some(tables) = full {
                            covered.extend(tables);
                            full_done += 1;
                            if full_done == full_reads {
                                // Commit now, so the deletes below see everything the reads brought.
                                break;
                            }
                        }
                    }
                    Ok(Msg::SourceFailed(e)) => {
                        // Commit what arrived before the failure, then report it.
                        self.commit(upserts, &[])?;
                        return Err(e);
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        finished = true;
                        break;
                    }
                }
            }
            self.commit(upserts, &done)?;
            if full_done == full_reads
                && let Some(s) = seen.take()
            {
                // Everything the full reads delivered is committed: delete what they did not see.
                let deletes = s.deletes(&self.warehouse, &covered)?;
                tracing::info!(deletes = deletes.len(), "full refresh: keys gone upstream");
                self.commit(deletes, &[])?;
            }
            if finished {
                return Ok(());
            }
        }
    }

    /// Steps the dataflow over `upserts`, publishes the changes, then
    /// checkpoints the cursors of the pulls in `done`.
    fn commit(&mut self, upserts: Vec<Upsert>, done: &[CursorUpdate]) -> Result<(), RunError> {
        if upserts.is_empty() && done.is_empty() {
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
        if !changes.is_empty() {
            let mut batches = Vec::with_capacity(changes.len());
            for (table, rows) in &changes {
                changed += rows.len() as u64;
                batches.push(arrow::table_changes(*table, epoch, rows)?);
            }
            self.warehouse.commit(epoch, &batches)?;
            self.checkpoint.epoch = Some(epoch);
            if let (Some(outbox), Some(events)) = (
                &self.outbox,
                changes.remove(&Table::ProductNotificationEvent),
            ) {
                outbox.committed(crate::notify::events_of(events.into_iter().map(|(r, _)| r)));
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
                CursorUpdate::Postgres { database, pulls } => self
                    .checkpoint
                    .postgres
                    .entry(database.clone())
                    .or_default()
                    .advance(pulls),
            }
        }
        self.checkpoint.store(&self.state_dir)?;
        self.update_checks();
        let elapsed = started.elapsed();
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

    /// Applies the last step's check changes and rewrites `checks.json`.
    fn update_checks(&mut self) {
        self.checks.apply(self.dataflow.take_check_changes());
        let now = chrono::Utc::now();
        let file = ChecksFile {
            epoch: self.checkpoint.epoch,
            updated_at: now,
            results: self.checks.results(now.timestamp_micros()),
        };
        if let Err(e) = file.store(&self.state_dir) {
            tracing::warn!(dir = %self.state_dir.display(), error = %e, "cannot write check results");
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
