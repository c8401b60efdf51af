//! The BigQuery sink: committed epochs flushed to BigQuery as Parquet through
//! GCS, load jobs into staging tables and `MERGE` by key, exactly once.
//!
//! The local warehouse stays the source of truth for restarts (the `raw_*`
//! tables that rebuild the dataflow, and the checkpoint). This sink is an
//! additional one, flushed on its own cadence:
//! - the epoch loop spools each epoch's net changes per table into the state
//!   directory *before* the local warehouse commits it ([`SpoolWriter`]); at
//!   start, spooled epochs above the committed one are discarded;
//! - a flusher task ([`FlushTask`]) flushes the spooled, committed epochs
//!   every `flush_interval` ([`flush`]), keeps "flushed through epoch N" per
//!   table, and removes what it flushed. A replay after a crash uses the same
//!   job ids and a MERGE that never lets an older `_epoch` win, so it has no
//!   effect on the result.
//!
//! A permanent error (schema, permission) stops the run with the table and
//! epochs named; the epochs stay spooled for the next start. Retryable ones
//! (5xx, rate limits, transport) are retried with backoff, then at the next
//! round. See docs/bigquery.md.

pub mod config;
pub use config::BigQueryConfig;

pub mod auth;
pub mod client;
pub mod error;
pub mod flush;
mod gcs;
pub mod schema;
pub mod spool;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

pub use error::BigQueryError;
pub use flush::{FlushStats, Flusher};
pub use spool::{SharedSpecs, Spool};

use crate::format::{TableChanges, TableSpec};

/// A permanent failure of the flusher, seen by the epoch loop.
type Failure = Arc<Mutex<Option<BigQueryError>>>;

/// The epoch loop's side of the sink: spools epochs and announces commits.
#[derive(Debug)]
pub struct SpoolWriter {
    state_dir: PathBuf,
    specs: SharedSpecs,
    spool: Option<Spool>,
    committed: watch::Sender<Option<u64>>,
    failure: Failure,
}

impl SpoolWriter {
    /// Opens the spool once the local warehouse is open: epochs above
    /// `committed` are discarded; the flusher may start.
    pub fn open(&mut self, committed: Option<u64>) -> Result<(), BigQueryError> {
        self.spool = Some(Spool::open_shared(
            &self.state_dir,
            self.specs.clone(),
            committed,
        )?);
        self.committed.send_replace(Some(committed.unwrap_or(0)));
        Ok(())
    }

    /// Spools `epoch`'s changes; call before the local warehouse commits it.
    /// Fails when the flusher has failed permanently.
    pub fn write(&self, epoch: u64, changes: &[TableChanges]) -> Result<(), BigQueryError> {
        self.check()?;
        let spool = self.spool.as_ref().ok_or_else(|| BigQueryError::Spool {
            path: self.state_dir.display().to_string(),
            detail: "written before it was opened".into(),
        })?;
        spool.write(epoch, changes)
    }

    /// Moves a table to an evolved schema, for the spool and the flusher
    /// (which adds the new columns to the BigQuery table before its next load).
    pub fn evolve(&self, spec: TableSpec) -> Result<(), BigQueryError> {
        if let Ok(mut specs) = self.specs.write() {
            specs.insert(spec.name.clone(), spec);
        }
        Ok(())
    }

    /// Announces that `epoch` is committed locally: the flusher may take it.
    pub fn committed(&self, epoch: u64) {
        self.committed.send_replace(Some(epoch));
    }

    /// The flusher's permanent failure, if it had one.
    pub fn check(&self) -> Result<(), BigQueryError> {
        match self.failure.lock().ok().and_then(|f| f.clone()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The BigQuery sink's name (status page, logs).
pub const NAME: &str = "bigquery";

impl crate::sinks::Sink for SpoolWriter {
    fn name(&self) -> &str {
        NAME
    }

    fn open(&mut self, committed: Option<u64>) -> Result<(), crate::sinks::SinkError> {
        Ok(SpoolWriter::open(self, committed)?)
    }

    fn check(&self) -> Result<(), crate::sinks::SinkError> {
        Ok(SpoolWriter::check(self)?)
    }

    fn write(
        &mut self,
        epoch: u64,
        changes: &[TableChanges],
    ) -> Result<(), crate::sinks::SinkError> {
        Ok(SpoolWriter::write(self, epoch, changes)?)
    }

    fn committed(&mut self, epoch: u64) {
        SpoolWriter::committed(self, epoch)
    }

    fn evolve(&mut self, spec: TableSpec) -> Result<(), crate::sinks::SinkError> {
        Ok(SpoolWriter::evolve(self, spec)?)
    }
}

/// The flusher task; [`FlushTask::finish`] ends it, dropping it aborts it.
#[derive(Debug)]
pub struct FlushTask {
    finish: watch::Sender<Option<bool>>,
    handle: Option<tokio::task::JoinHandle<Result<FlushStats, BigQueryError>>>,
}

impl Drop for FlushTask {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

/// Starts the sink: the flusher task (on the current tokio runtime) and the
/// epoch loop's [`SpoolWriter`]. The flusher waits until the writer is opened.
pub fn start(
    config: &BigQueryConfig,
    state_dir: &Path,
    tables: &[TableSpec],
) -> Result<(SpoolWriter, FlushTask), BigQueryError> {
    // The token source is built now, so a bad key fails the start, not a flush.
    auth::TokenSource::new(&config.credentials)?;
    let (committed_tx, committed_rx) = watch::channel(None);
    let (finish_tx, finish_rx) = watch::channel(None);
    let failure: Failure = Arc::default();
    let specs = spool::shared_specs(tables);
    let writer = SpoolWriter {
        state_dir: state_dir.to_path_buf(),
        specs: specs.clone(),
        spool: None,
        committed: committed_tx,
        failure: failure.clone(),
    };
    let handle = tokio::spawn(flusher_loop(
        config.clone(),
        state_dir.to_path_buf(),
        specs,
        committed_rx,
        finish_rx,
        failure,
    ));
    Ok((
        writer,
        FlushTask {
            finish: finish_tx,
            handle: Some(handle),
        },
    ))
}

impl FlushTask {
    /// Ends the flusher: with `flush_all`, after flushing every committed
    /// epoch (`run --once`); without, at once (the spool keeps the rest for
    /// the next start). Returns the figures, or the error that stopped it.
    pub async fn finish(mut self, flush_all: bool) -> Result<FlushStats, BigQueryError> {
        self.finish.send_replace(Some(flush_all));
        let Some(handle) = self.handle.take() else {
            return Ok(FlushStats::default());
        };
        handle
            .await
            .map_err(|e| BigQueryError::Config(format!("the flusher task ended abnormally: {e}")))?
    }
}

/// Flushes a round every `flush_interval` until told to finish.
async fn flusher_loop(
    config: BigQueryConfig,
    state_dir: PathBuf,
    specs: SharedSpecs,
    mut committed: watch::Receiver<Option<u64>>,
    mut finish: watch::Receiver<Option<bool>>,
    failure: Failure,
) -> Result<FlushStats, BigQueryError> {
    // Wait for the epoch loop to open the spool (it discards uncommitted epochs).
    tokio::select! {
        r = committed.wait_for(|c| c.is_some()) => { if r.is_err() { return Ok(FlushStats::default()); } }
        _ = finish.wait_for(|f| f.is_some()) => {}
    }
    if committed.borrow().is_none() {
        return Ok(FlushStats::default());
    }
    let fail = |e: BigQueryError| {
        if let Ok(mut f) = failure.lock() {
            *f = Some(e.clone());
        }
        e
    };
    // The epoch loop opened the spool (and discarded what was not committed);
    // it keeps writing epochs ahead of `committed`, which the flusher leaves alone.
    let spool = Spool::attach_shared(&state_dir, specs).map_err(fail)?;
    let flusher = Flusher::new(&config, spool).await.map_err(fail)?;
    let mut prepared = false;
    loop {
        let finishing = *finish.borrow();
        let upto = committed.borrow().unwrap_or(0);
        if finishing == Some(false) {
            return Ok(flusher.stats());
        }
        if !prepared {
            match flusher.prepare().await {
                Ok(()) => prepared = true,
                Err(e) if e.is_retryable() && finishing.is_none() => {
                    tracing::warn!(error = %e, "bigquery: dataset not reachable; retried at the next round");
                }
                Err(e) => return Err(fail(e)),
            }
        }
        if prepared {
            if finishing == Some(true) {
                return flusher
                    .flush_all(upto)
                    .await
                    .map_err(fail)
                    .map(|_| flusher.stats());
            }
            // A stop does not wait for a round: an interrupted flush is replayed at the next start.
            let round = tokio::select! {
                r = flusher.round(upto, false) => r,
                _ = finish.wait_for(|f| *f == Some(false)) => return Ok(flusher.stats()),
            };
            match round {
                Ok(report) => {
                    if report.stats.rows > 0 || !report.pending.is_empty() {
                        tracing::debug!(
                            rows = report.stats.rows,
                            jobs = report.stats.jobs(),
                            pending = report.pending.len(),
                            "bigquery: round done"
                        );
                    }
                }
                Err(e) => return Err(fail(e)),
            }
        }
        let wait = if prepared {
            config.flush_interval
        } else {
            config.flush_interval.min(Duration::from_secs(30))
        };
        // A finish that arrived during the round is handled at once.
        if finish.borrow_and_update().is_none() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = finish.changed() => {}
            }
        }
    }
}
