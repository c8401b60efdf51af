//! Sinks: where each committed epoch's changes are published.
//!
//! Every sink implements [`Sink`]; the runtime's commit protocol composes
//! them (`runtime/commit.rs`): the local warehouse, which restarts rebuild
//! from, commits an epoch last, after every other sink holds it durably.

pub mod config;
pub use config::{DEFAULT_STATE_DIR, DEFAULT_WAREHOUSE_DIR, StateConfig, WarehouseConfig};

pub mod bigquery;
pub mod local;

use crate::format::{TableChanges, TableSpec};

/// A place each committed epoch's changes are published.
pub trait Sink: Send {
    /// Its name, for the status page and logs.
    fn name(&self) -> &str;
    /// Opens at `committed`, the epoch the local warehouse committed last:
    /// what the sink holds above it was never committed and is discarded.
    fn open(&mut self, committed: Option<u64>) -> Result<(), SinkError>;
    /// Fails when the sink has failed for good (checked before each epoch).
    fn check(&self) -> Result<(), SinkError> {
        Ok(())
    }
    /// Writes `epoch`'s changes durably.
    fn write(&mut self, epoch: u64, changes: &[TableChanges]) -> Result<(), SinkError>;
    /// Told that `epoch` is committed: every sink wrote it.
    fn committed(&mut self, epoch: u64) {
        let _ = epoch;
    }
    /// Moves a table to an evolved schema (docs/tables.md, Schema evolution).
    fn evolve(&mut self, spec: TableSpec) -> Result<(), SinkError>;
}

/// A sink's failure.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The local warehouse failed.
    #[error(transparent)]
    Local(#[from] local::WarehouseError),
    /// The BigQuery sink failed (the epochs stay spooled for a replay).
    #[error(transparent)]
    BigQuery(#[from] bigquery::BigQueryError),
}
