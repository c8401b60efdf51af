//! The spool: each committed epoch's net changes per table, kept in the state
//! directory until BigQuery has them, and the flush state (per table: flushed
//! through which epoch, which flush is in flight).
//!
//! Layout under `<state>/bigquery/`: `spool/<table>/<epoch>.parquet` (the
//! local warehouse's change-file format: the table's columns, `_epoch`,
//! `_deleted` for tombstones) and `flush_state.json`.
//!
//! An epoch is spooled before the local warehouse commits it; at start the
//! files of epochs above the committed one (a crash between the two) are
//! discarded, so the spool always holds exactly the committed epochs that are
//! not flushed yet.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use serde::{Deserialize, Serialize};

use super::error::BigQueryError;
use crate::format::{TableChanges, TableSpec};
use crate::fsutil::{sync_dir, write_atomic};
use crate::sinks::local::files::{self, Encoding, file_schema};
use crate::sinks::local::scan::NewestFirst;
use crate::sinks::local::{conform, file_batch};

/// Where one table stands in BigQuery.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableState {
    /// Every epoch up to this one is merged into the target table.
    pub flushed: u64,
    /// A flush of the epochs after `flushed` up to this one has started and
    /// not finished: it is finished first, with the same job ids.
    pub inflight: Option<u64>,
}

/// The flush state, rewritten atomically after every change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlushState {
    /// A random id made once per state directory: part of every job id, so a
    /// fresh state directory never mistakes an old job for its own.
    pub generation: String,
    /// Per table.
    pub tables: BTreeMap<String, TableState>,
}

/// The table specs the spool writes and the flusher reads, shared by both,
/// so a table's schema evolution reaches the flusher.
pub type SharedSpecs = std::sync::Arc<std::sync::RwLock<BTreeMap<String, TableSpec>>>;

/// Shared specs of `tables`.
pub fn shared_specs(tables: &[TableSpec]) -> SharedSpecs {
    std::sync::Arc::new(std::sync::RwLock::new(
        tables.iter().map(|t| (t.name.clone(), t.clone())).collect(),
    ))
}

/// The spooled epochs of every table.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    specs: SharedSpecs,
}

fn spool_err(path: &Path, detail: impl std::fmt::Display) -> BigQueryError {
    BigQueryError::Spool {
        path: path.display().to_string(),
        detail: detail.to_string(),
    }
}

impl Spool {
    /// Opens the spool under `state_dir/bigquery` for `tables` and discards
    /// what is above `committed` (never committed locally) or already flushed.
    pub fn open(
        state_dir: &Path,
        tables: &[TableSpec],
        committed: Option<u64>,
    ) -> Result<Spool, BigQueryError> {
        Spool::open_shared(state_dir, shared_specs(tables), committed)
    }

    /// [`Spool::open`] with specs shared with the flusher.
    pub fn open_shared(
        state_dir: &Path,
        specs: SharedSpecs,
        committed: Option<u64>,
    ) -> Result<Spool, BigQueryError> {
        let spool = Spool::attach_shared(state_dir, specs)?;
        let state = spool.load_state()?;
        let committed = committed.unwrap_or(0);
        let mut discarded = 0;
        for table in spool.specs().keys() {
            // Writes a crash interrupted: their epoch was never committed.
            let dir = spool.table_dir(table);
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.file_name().to_string_lossy().ends_with(".tmp") {
                    let path = entry.path();
                    std::fs::remove_file(&path).map_err(|e| spool_err(&path, e))?;
                }
            }
            let flushed = state.tables.get(table).map_or(0, |t| t.flushed);
            for epoch in spool.epochs(table)? {
                if epoch > committed || epoch <= flushed {
                    let path = spool.path(table, epoch);
                    std::fs::remove_file(&path).map_err(|e| spool_err(&path, e))?;
                    discarded += 1;
                }
            }
        }
        if discarded > 0 {
            tracing::info!(
                files = discarded,
                "bigquery spool: discarded uncommitted or flushed epochs"
            );
        }
        Ok(spool)
    }

    /// The spool under `state_dir/bigquery`, as it is: for the flusher, while
    /// the epoch loop (which opened it with [`Spool::open`]) keeps writing.
    pub fn attach(state_dir: &Path, tables: &[TableSpec]) -> Result<Spool, BigQueryError> {
        Spool::attach_shared(state_dir, shared_specs(tables))
    }

    /// [`Spool::attach`] with specs shared with the writer.
    pub fn attach_shared(state_dir: &Path, specs: SharedSpecs) -> Result<Spool, BigQueryError> {
        let dir = state_dir.join("bigquery");
        std::fs::create_dir_all(dir.join("spool")).map_err(|e| spool_err(&dir, e))?;
        Ok(Spool { dir, specs })
    }

    /// Moves a table to an evolved schema (new columns, widened types);
    /// epochs spooled before are read under it by column name.
    pub fn evolve(&self, spec: TableSpec) {
        if let Ok(mut specs) = self.specs.write() {
            specs.insert(spec.name.clone(), spec);
        }
    }

    /// The directory of the sink's state.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The table specs, as they are now.
    pub fn specs(&self) -> BTreeMap<String, TableSpec> {
        self.specs.read().map(|s| s.clone()).unwrap_or_default()
    }

    fn table_dir(&self, table: &str) -> PathBuf {
        self.dir.join("spool").join(table)
    }

    fn path(&self, table: &str, epoch: u64) -> PathBuf {
        self.table_dir(table).join(format!("{epoch:020}.parquet"))
    }

    /// Keeps `epoch`'s changes of every table, durably. Call before the
    /// local warehouse commits the epoch.
    pub fn write(&self, epoch: u64, changes: &[TableChanges]) -> Result<(), BigQueryError> {
        struct File {
            path: PathBuf,
            schema: arrow_schema::SchemaRef,
            batch: RecordBatch,
        }
        let mut out = Vec::new();
        for change in changes {
            let specs = self.specs();
            let spec = specs
                .get(&change.table)
                .ok_or_else(|| BigQueryError::Schema {
                    table: change.table.clone(),
                    detail: "not a table of this warehouse".into(),
                })?;
            let schema = file_schema(&spec.schema, &spec.key);
            let batch =
                file_batch(spec, &schema, epoch, change).map_err(|e| BigQueryError::Schema {
                    table: change.table.clone(),
                    detail: e.to_string(),
                })?;
            if batch.num_rows() > 0 {
                out.push(File {
                    path: self.path(&spec.name, epoch),
                    schema,
                    batch,
                });
            }
        }
        crate::fsutil::in_parallel(
            &out,
            |f| {
                let tmp = f.path.with_extension("parquet.tmp");
                files::write(
                    &tmp,
                    &f.schema,
                    std::slice::from_ref(&f.batch),
                    Encoding::Changes,
                )
                .map_err(|e| spool_err(&tmp, e))?;
                std::fs::rename(&tmp, &f.path).map_err(|e| spool_err(&f.path, e))?;
                let dir = f.path.parent().unwrap_or(&self.dir);
                sync_dir(dir).map_err(|e| spool_err(dir, e))
            },
            |f| spool_err(&f.path, "the writer panicked"),
        )
    }

    /// The spooled epochs of `table`, ascending.
    pub fn epochs(&self, table: &str) -> Result<Vec<u64>, BigQueryError> {
        let dir = self.table_dir(table);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(spool_err(&dir, e)),
        };
        let mut epochs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| spool_err(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(epoch) = name.strip_suffix(".parquet").and_then(|n| n.parse().ok()) {
                epochs.push(epoch);
            }
        }
        epochs.sort_unstable();
        Ok(epochs)
    }

    /// The net changes of `table` over the spooled epochs in `first..=last`:
    /// per key the newest row (or tombstone), in the spool's file schema.
    /// `None` when no epoch in the range changed the table.
    pub fn read(
        &self,
        table: &str,
        first: u64,
        last: u64,
    ) -> Result<Option<RecordBatch>, BigQueryError> {
        let specs = self.specs();
        let spec = specs.get(table).ok_or_else(|| BigQueryError::Schema {
            table: table.to_string(),
            detail: "not a table of this warehouse".into(),
        })?;
        let schema = file_schema(&spec.schema, &spec.key);
        let schema_err = |e: crate::sinks::local::WarehouseError| BigQueryError::Schema {
            table: table.to_string(),
            detail: e.to_string(),
        };
        // Newest epoch first, each key's first row kept (tombstones included:
        // they delete in the target), each kept row copied once.
        let mut walk = NewestFirst::new(table, &spec.key, true);
        let mut kept = Vec::new();
        let mut epochs = self.epochs(table)?;
        epochs.retain(|e| (first..=last).contains(e));
        for epoch in epochs.into_iter().rev() {
            let path = self.path(table, epoch);
            let (_, batches) = files::read(&path).map_err(|e| spool_err(&path, e))?;
            for batch in conform(table, &schema, batches).map_err(schema_err)? {
                kept.push(walk.keep(&batch).map_err(schema_err)?);
            }
        }
        if kept.iter().all(|b| b.num_rows() == 0) {
            return Ok(None);
        }
        let merged = arrow_select::concat::concat_batches(&schema, &kept).map_err(|e| {
            BigQueryError::Schema {
                table: table.to_string(),
                detail: e.to_string(),
            }
        })?;
        Ok(Some(merged))
    }

    /// Removes the spooled epochs of `table` up to `last` (flushed).
    pub fn remove_through(&self, table: &str, last: u64) -> Result<(), BigQueryError> {
        for epoch in self.epochs(table)?.into_iter().filter(|e| *e <= last) {
            let path = self.path(table, epoch);
            std::fs::remove_file(&path).map_err(|e| spool_err(&path, e))?;
        }
        Ok(())
    }

    /// Reads the flush state (a new one, with a new generation, if there is none).
    pub fn load_state(&self) -> Result<FlushState, BigQueryError> {
        let path = self.dir.join("flush_state.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| spool_err(&path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let state = FlushState {
                    generation: format!("{:08x}", rand::random::<u32>()),
                    tables: BTreeMap::new(),
                };
                self.store_state(&state)?;
                Ok(state)
            }
            Err(e) => Err(spool_err(&path, e)),
        }
    }

    /// Writes the flush state atomically and durably.
    pub fn store_state(&self, state: &FlushState) -> Result<(), BigQueryError> {
        let path = self.dir.join("flush_state.json");
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| spool_err(&path, e))?;
        write_atomic(&path, &bytes).map_err(|e| spool_err(&path, e))
    }
}
