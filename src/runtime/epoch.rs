//! The epoch loop: the thread that turns source messages into committed
//! epochs (dataflow step, raw layer, the sinks through the commit protocol,
//! checkpoint, checks, telemetry, restock outbox).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use dataflows::Table;
use dataflows::catalog::{Origin, TableDef};
use dataflows::checks::{CheckResult, CheckSpec, CheckState};
use dataflows::records::{Payloads, Upsert};
use tokio::sync::watch;

use super::checkpoint::Checkpoint;
use super::commit::Sinks;
use super::dataflow::{Dataflow, TableChangeSet};
use super::refresh::{Finished, RefreshTracker};
use super::replay::replay_committed;
use super::{ProgressHandle, RunError, RunOptions};
use crate::checks::ChecksFile;
use crate::format;
use crate::notify::Outbox;
use crate::raw::RawLayer;
use crate::sinks::Sink;
use crate::sinks::local::{LocalWarehouse, WarehouseOptions};
use crate::sources::bigcommerce::Store;
use crate::sources::{Msg, ReadDone, RowBudget};
use crate::status::Telemetry;

/// The thread that turns source messages into committed epochs.
pub(super) struct EpochLoop {
    dataflow: Dataflow,
    /// Configured raw tables, written beside the dataflow's changes.
    raw: RawLayer,
    /// The `_payload` texts of the upserts of the epoch being gathered.
    payloads: Payloads,
    /// The local warehouse and the other sinks.
    sinks: Sinks,
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
    /// Where committed restock events go for delivery: one per lane.
    outbox: Vec<Outbox>,
    /// False until the store's first complete pull is committed: episodes
    /// already running when govflow first reads a store are not announced.
    announce: bool,
    /// An epoch commits once it gathered this many rows.
    max_epoch_rows: usize,
    /// The sources' rows in flight, given back as they are committed.
    budget: Arc<RowBudget>,
}

/// How often check results are taken again without a commit (freshness
/// turns stale with time alone).
const RECHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Where the epoch loop reports, besides the warehouse and the checkpoint.
pub(super) struct Outlets {
    /// Live figures of the run.
    pub(super) progress: ProgressHandle,
    /// The latest check results, for the alerts.
    pub(super) check_results: watch::Sender<Vec<CheckResult>>,
    /// The status page and metrics.
    pub(super) telemetry: Arc<Telemetry>,
    /// Where committed restock events go for delivery: one per lane.
    pub(super) outbox: Vec<Outbox>,
    /// The sources' rows in flight, to give back once committed.
    pub(super) budget: Arc<RowBudget>,
}

/// Where the epoch loop keeps what it commits.
pub(super) struct Stores {
    /// The local warehouse's directory.
    pub(super) warehouse_dir: PathBuf,
    /// The state directory (checkpoint, dead letters, check results).
    pub(super) state_dir: PathBuf,
    /// The configured raw tables.
    pub(super) raw: RawLayer,
    /// The sinks besides the local warehouse (the BigQuery spool).
    pub(super) others: Vec<Box<dyn Sink>>,
}

impl EpochLoop {
    pub(super) fn start(
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
            others,
        } = stores;
        let Outlets {
            progress,
            check_results,
            telemetry,
            outbox,
            budget,
        } = outlets;
        let mut specs = format::table_specs();
        specs.extend(raw.specs());
        // The `schema` check of every configured PostgreSQL table, after the
        // declared ones (check rows name checks by index).
        let mut checks = checks;
        checks.extend(
            raw.defs()
                .filter(|d| matches!(&d.origin, Origin::Source(kind) if kind == "postgres"))
                .map(|d| CheckSpec::schema(&d.name)),
        );
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
        let started = Instant::now();
        let (n, mut rows) = replay_committed(&mut dataflow, &warehouse)?;
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
        let committed = warehouse.committed_epoch();
        let sinks = Sinks::open(warehouse, others, committed)?;
        let warehouse = sinks.primary();
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
        let announce = checkpoint.sources.contains_key(Store::NAME);
        let dead_letters = state_dir.join("dead_letters.jsonl");
        let mut epoch_loop = EpochLoop {
            dataflow,
            raw,
            payloads: Payloads::default(),
            sinks,
            state_dir,
            checkpoint,
            flush_interval: options.flush_interval,
            progress,
            dead_letters,
            checks: check_state,
            check_results,
            checks_at: Instant::now(),
            telemetry,
            outbox,
            announce,
            max_epoch_rows: options.max_epoch_rows,
            budget,
        };
        epoch_loop.update_checks();
        Ok(epoch_loop)
    }

    /// Commits an epoch per flush interval (or per `max_epoch_rows` rows,
    /// when sooner) until every source is done, ending full refreshes as
    /// `refresh` tells.
    pub(super) fn run(
        mut self,
        rx: Receiver<Msg>,
        mut refresh: RefreshTracker,
    ) -> Result<(), RunError> {
        loop {
            let deadline = Instant::now() + self.flush_interval;
            let mut upserts: Vec<Upsert> = Vec::new();
            let mut done: Vec<ReadDone> = Vec::new();
            let mut finished = false;
            let mut refresh_ended = false;
            // Rows taken from the budget by this epoch's messages.
            let mut held = 0;
            loop {
                let wait = deadline.saturating_duration_since(Instant::now());
                let msg = rx.recv_timeout(wait);
                if let Ok(msg) = &msg {
                    held += msg.rows();
                }
                match msg {
                    Ok(Msg::Read {
                        upserts: read,
                        payloads,
                        raw,
                        dead_letters,
                    }) => {
                        self.keep_dead_letters(&dead_letters);
                        refresh.note(&read);
                        upserts.extend(read);
                        self.payloads.extend(payloads);
                        self.raw.apply(raw);
                    }
                    Ok(Msg::FullReadStarted { source, generation }) => {
                        refresh.started(&source, generation)
                    }
                    Ok(Msg::PullDone {
                        done: mut read,
                        full,
                    }) => {
                        let source = read.source.clone();
                        let snapshots = std::mem::take(&mut read.snapshots);
                        done.push(read);
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
                    Ok(Msg::SchemaChecked {
                        table,
                        incompatible,
                    }) => {
                        self.checks.schema_checked(&table, incompatible);
                        self.update_checks();
                    }
                    Ok(Msg::SourceFailed(e)) => {
                        // Commit what arrived before the failure, then report it.
                        self.commit(upserts, &done)?;
                        return Err(e.into());
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
                if upserts.len() + self.raw.pending_len() >= self.max_epoch_rows {
                    // A large read commits in bounded epochs.
                    break;
                }
            }
            self.commit(upserts, &done)?;
            self.budget.release(held);
            if refresh_ended {
                // Everything the full reads delivered is committed: delete what they did not see.
                let Finished { status, deletes } = refresh.finish(self.sinks.primary())?;
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
    fn commit(&mut self, upserts: Vec<Upsert>, done: &[ReadDone]) -> Result<(), RunError> {
        self.sinks.check()?;
        if upserts.is_empty() && done.is_empty() && !self.raw.has_pending() {
            return Ok(());
        }
        let started = Instant::now();
        let n_upserts = upserts.len() as u64;
        // The step's own epoch: always past the committed one (see `EpochLoop::start`).
        let epoch = self.dataflow.next_epoch();
        let mut changes: TableChangeSet = self.dataflow.step(upserts)?;
        let payloads = std::mem::take(&mut self.payloads);
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
                batches.push(format::table_changes(*table, epoch, rows, &payloads)?);
            }
            for (batch, delta, n) in raw_changes {
                changed += n;
                deltas.insert(batch.table.clone(), (delta, n));
                batches.push(batch);
            }
            let flush = self.sinks.commit(epoch, &batches)?;
            committed = Some((epoch, deltas, flush));
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
        if done.iter().any(|read| read.source == Store::NAME) {
            self.announce = true;
        }
        for read in done {
            self.checkpoint
                .sources
                .insert(read.source.clone(), read.cursors.clone());
        }
        self.checkpoint.store(&self.state_dir)?;
        let elapsed = started.elapsed();
        if let Some((epoch, deltas, flush)) = committed {
            self.telemetry
                .epoch_committed(epoch, &deltas, elapsed, flush);
        }
        for read in done {
            self.telemetry
                .pull_committed(&read.source, read.cursor_texts.clone());
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

    /// Moves a configured raw table to an evolved declaration: the raw layer
    /// and every sink.
    fn evolve(&mut self, def: TableDef, change: &str) -> Result<(), RunError> {
        let spec = format::spec_of(&def);
        self.sinks.evolve(spec)?;
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
