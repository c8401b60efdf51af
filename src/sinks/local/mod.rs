//! The local warehouse: a directory of immutable Parquet files, published as
//! consistent snapshots.
//!
//! Layout: `tables/<table>/<epoch>-<n>.parquet` (immutable, never rewritten),
//! `manifests/<epoch>.json` (the commit point of each epoch: the files of every
//! table), `current.sql` (views over the latest snapshot, rewritten atomically).
//!
//! A commit of k changed rows writes one small file per changed table: O(k).
//! Files of a table are merged like a binary counter on a background thread
//! (see [`compactor`]), which keeps O(log n) files per table at O(log n)
//! rewrites per row, amortised, without a commit ever waiting for a merge.
//! Files are deleted only once no retained snapshot names them: the newest
//! snapshots and any published within the retention period stay readable,
//! because DuckDB opens a file several times per query and a file that vanished
//! mid-query gives wrong results or errors; a reader that needs a snapshot
//! for longer (a dbt run) pins it (`pins/`, see [`pins`]). Which snapshots are retained and
//! which files they name is kept in memory (reference counts), so a commit
//! neither re-reads old manifests nor lists directories.

mod compactor;
pub(crate) mod files;
mod manifest;
mod pins;
mod retention;
pub(crate) mod scan;
mod sink;
mod views;

pub(crate) use files::{conform, file_batch};
pub use sink::NAME;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::format::{DELETED, TableChanges, TableSpec};
use files::Encoding;
pub use manifest::{FileEntry, Manifest, TableFiles};
pub use pins::{PIN_DIR, SnapshotPin, pin_latest};
pub use views::{render_latest, table_query};

use crate::fsutil::write_atomic;
use compactor::{Compactor, MergeDone, MergeJob};
use retention::Retention;

/// An error of the local warehouse, naming the file or table.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    /// A file-system operation failed.
    #[error("warehouse: {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A Parquet file could not be written or read.
    #[error("warehouse: {path}: parquet: {detail}")]
    Parquet {
        /// The file.
        path: String,
        /// The cause.
        detail: String,
    },
    /// Changes that do not fit the table's schema.
    #[error("warehouse: table {table}: {detail}")]
    Schema {
        /// The table.
        table: String,
        /// What does not fit.
        detail: String,
    },
}

impl WarehouseError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        WarehouseError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Whether the same commit may succeed if tried again (I/O may; schema never).
    pub fn is_retryable(&self) -> bool {
        matches!(self, WarehouseError::Io { .. })
    }
}

/// Tuning of the local warehouse.
#[derive(Clone, Debug)]
pub struct WarehouseOptions {
    /// Newest snapshots always kept readable.
    pub keep_snapshots: usize,
    /// Snapshots published within this period stay readable.
    pub retention: Duration,
    /// Most files per table before the newest are merged regardless of size.
    pub max_files_per_table: usize,
    /// Merge files on a background thread (a commit swaps finished merges in);
    /// when false, a commit runs its merges itself before publishing.
    pub background_merges: bool,
}

impl Default for WarehouseOptions {
    fn default() -> Self {
        WarehouseOptions {
            keep_snapshots: 3,
            retention: Duration::from_secs(600),
            max_files_per_table: 16,
            background_merges: true,
        }
    }
}

/// What one commit did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitReport {
    /// False when the epoch was already committed (a replay): nothing was written.
    pub published: bool,
    /// Rows written, tombstones included, before merges.
    pub rows: u64,
    /// Merges swapped into this snapshot.
    pub merges: u64,
}

/// The local Parquet warehouse.
pub struct LocalWarehouse {
    dir: PathBuf,
    specs: BTreeMap<String, TableSpec>,
    manifest: Manifest,
    options: WarehouseOptions,
    seq: u64,
    retention: Retention,
    compactor: Compactor,
}

impl std::fmt::Debug for LocalWarehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalWarehouse")
            .field("dir", &self.dir)
            .field("epoch", &self.manifest.epoch)
            .finish_non_exhaustive()
    }
}

impl LocalWarehouse {
    /// Opens (or creates) the warehouse at `dir` for `tables`; removes files a
    /// crash left behind that no snapshot names, and rewrites `current.sql`.
    pub fn open(
        dir: &Path,
        tables: &[TableSpec],
        options: WarehouseOptions,
    ) -> Result<Self, WarehouseError> {
        std::fs::create_dir_all(dir).map_err(|e| WarehouseError::io(dir, e))?;
        let dir = dir.canonicalize().map_err(|e| WarehouseError::io(dir, e))?;
        let manifests = manifest::list(&dir).map_err(|e| WarehouseError::io(&dir, e))?;
        let latest = manifests.last().map(|(_, m)| m.clone()).unwrap_or_default();
        let retention = Retention::from_snapshots(&manifests);
        retention.remove_unreferenced_files(&dir)?;
        let mut wh = LocalWarehouse {
            compactor: Compactor::start(&dir, options.background_merges),
            dir,
            specs: tables.iter().map(|t| (t.name.clone(), t.clone())).collect(),
            manifest: latest,
            options,
            seq: 0,
            retention,
        };
        // Tables this process publishes that the snapshot does not have yet.
        let missing: Vec<TableSpec> = wh
            .specs
            .values()
            .filter(|s| !wh.manifest.tables.contains_key(&s.name))
            .cloned()
            .collect();
        let fresh = manifests.is_empty() || !missing.is_empty();
        let mut manifest = wh.manifest.clone();
        for spec in missing {
            let schema = files::file_schema(&spec.schema, &spec.key);
            let entry = wh.write_file(&spec.name, manifest.epoch.unwrap_or(0), &schema, &[])?;
            manifest.tables.insert(
                spec.name.clone(),
                TableFiles {
                    key: spec.key.clone(),
                    files: vec![entry],
                },
            );
        }
        if fresh {
            wh.publish(manifest)?;
        } else {
            wh.write_views()?;
        }
        Ok(wh)
    }

    /// The warehouse directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The latest committed epoch.
    pub fn committed_epoch(&self) -> Option<u64> {
        self.manifest.epoch
    }

    /// Moves a table to a newer schema (schema evolution): the same key
    /// column, every existing column kept with its type or a lossless
    /// widening of it, new columns nullable. Files written before stay as
    /// they are and are read under the new schema; snapshots published before
    /// stay readable. A table not known yet is added.
    pub fn evolve(&mut self, spec: TableSpec) -> Result<(), WarehouseError> {
        let err = |detail: String| WarehouseError::Schema {
            table: spec.name.clone(),
            detail,
        };
        if let Some(old) = self.specs.get(&spec.name) {
            if old.key != spec.key {
                return Err(err(format!(
                    "key column {} cannot become {}",
                    old.key, spec.key
                )));
            }
            for field in old.schema.fields() {
                let Ok(new) = spec.schema.field_with_name(field.name()) else {
                    return Err(err(format!("column {} cannot be dropped", field.name())));
                };
                if new.data_type() != field.data_type()
                    && crate::format::evolution::conform_batch(
                        &RecordBatch::new_empty(Arc::new(arrow_schema::Schema::new(vec![
                            field.as_ref().clone(),
                        ]))),
                        &Arc::new(arrow_schema::Schema::new(vec![new.clone()])),
                    )
                    .is_err()
                {
                    return Err(err(format!(
                        "column {} cannot change from {} to {}",
                        field.name(),
                        field.data_type(),
                        new.data_type()
                    )));
                }
            }
            for field in spec.schema.fields() {
                if old.schema.field_with_name(field.name()).is_err() && !field.is_nullable() {
                    return Err(err(format!("new column {} must be nullable", field.name())));
                }
            }
        }
        tracing::info!(table = %spec.name, "warehouse: table schema evolved");
        self.specs.insert(spec.name.clone(), spec);
        Ok(())
    }

    /// The latest snapshot.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Pins the latest snapshot: its files stay on disk until the pin is
    /// dropped, whatever the retention (see [`pin_latest`] for other processes).
    pub fn pin(&self) -> Result<SnapshotPin, WarehouseError> {
        pins::write_pin(&self.dir, self.manifest.clone())
    }

    /// Path of `current.sql`.
    pub fn current_sql(&self) -> PathBuf {
        self.dir.join("current.sql")
    }

    /// Publishes `epoch` with `changes`, atomically: readers see all of it or
    /// none. An epoch at or below the committed one is a replay and changes nothing.
    pub fn commit(
        &mut self,
        epoch: u64,
        changes: &[TableChanges],
    ) -> Result<CommitReport, WarehouseError> {
        if self.manifest.epoch.is_some_and(|e| epoch <= e) {
            return Ok(CommitReport::default());
        }
        let started = Instant::now();
        let mut report = CommitReport {
            published: true,
            ..CommitReport::default()
        };
        let mut manifest = self.manifest.clone();
        let finished = self.compactor.finished();
        report.merges += self.swap_in(&mut manifest, finished);
        let mut new_files: Vec<NewFile> = Vec::new();
        for change in changes {
            let spec =
                self.specs
                    .get(&change.table)
                    .cloned()
                    .ok_or_else(|| WarehouseError::Schema {
                        table: change.table.clone(),
                        detail: "not a table of this warehouse".into(),
                    })?;
            let schema = files::file_schema(&spec.schema, &spec.key);
            let batch = file_batch(&spec, &schema, epoch, change)?;
            if batch.num_rows() == 0 {
                continue;
            }
            report.rows += batch.num_rows() as u64;
            let entry = FileEntry {
                path: self.next_path(&spec.name, epoch),
                rows: batch.num_rows() as u64,
                base: false,
            };
            new_files.push(NewFile {
                path: self.dir.join(&entry.path),
                schema,
                batch,
            });
            manifest
                .tables
                .entry(spec.name.clone())
                .or_insert_with(|| TableFiles {
                    key: spec.key.clone(),
                    files: Vec::new(),
                })
                .files
                .push(entry);
        }
        // Encoding and syncing one table's file does not wait for another's.
        crate::fsutil::in_parallel(
            &new_files,
            |f| {
                files::write(
                    &f.path,
                    &f.schema,
                    std::slice::from_ref(&f.batch),
                    Encoding::Changes,
                )
            },
            |f| WarehouseError::Parquet {
                path: f.path.display().to_string(),
                detail: "the writer panicked".into(),
            },
        )?;
        self.plan_merges(&manifest, epoch);
        if !self.options.background_merges {
            let finished = self.compactor.finished();
            report.merges += self.swap_in(&mut manifest, finished);
        }
        manifest.epoch = Some(epoch);
        self.publish(manifest)?;
        tracing::debug!(
            epoch,
            rows = report.rows,
            merges = report.merges,
            elapsed_us = started.elapsed().as_micros() as u64,
            "warehouse commit"
        );
        Ok(report)
    }

    /// The current rows of `table` (without `_deleted`), e.g. to rebuild state at start.
    pub fn read_table(&self, table: &str) -> Result<Option<RecordBatch>, WarehouseError> {
        let (Some(spec), Some(files)) = (self.specs.get(table), self.manifest.tables.get(table))
        else {
            return Ok(None);
        };
        if files.files.is_empty() {
            return Ok(None);
        }
        let schema = files::file_schema(&spec.schema, &spec.key);
        let err = |e: arrow_schema::ArrowError| WarehouseError::Schema {
            table: table.into(),
            detail: e.to_string(),
        };
        let batches = scan::newest_rows_in_order(&self.stored(table, spec, files), &schema, false)?;
        let merged = arrow_select::concat::concat_batches(&schema, &batches).map_err(err)?;
        let keep: Vec<usize> = (0..schema.fields().len())
            .filter(|i| schema.field(*i).name() != DELETED)
            .collect();
        merged.project(&keep).map(Some).map_err(err)
    }

    /// Calls `each` with the live rows of `table` a batch at a time (each
    /// key's newest row, in no particular order), with the columns named in
    /// `columns` in that order, or every column but `_deleted` when `None`.
    /// Unlike [`LocalWarehouse::read_table`] it holds one batch and the set
    /// of keys, not the table (see [`scan`]). An unknown table has no rows.
    pub fn scan_table<E: From<WarehouseError>>(
        &self,
        table: &str,
        columns: Option<&[&str]>,
        each: impl FnMut(RecordBatch) -> Result<(), E>,
    ) -> Result<(), E> {
        let (Some(spec), Some(files)) = (self.specs.get(table), self.manifest.tables.get(table))
        else {
            return Ok(());
        };
        let schema = files::file_schema(&spec.schema, &spec.key);
        scan::scan(&self.stored(table, spec, files), &schema, columns, each)
    }

    /// The files of `table` as a walk over them reads them.
    fn stored<'a>(
        &'a self,
        table: &'a str,
        spec: &'a TableSpec,
        files: &'a TableFiles,
    ) -> scan::Stored<'a> {
        scan::Stored {
            dir: &self.dir,
            table,
            key: &spec.key,
            files: &files.files,
        }
    }

    /// Waits for the merges in flight; the next commit swaps them in.
    pub fn wait_for_merges(&mut self) {
        self.compactor.wait();
    }

    /// Starts a merge for every table whose newest files call for one and that
    /// has none in flight.
    fn plan_merges(&mut self, manifest: &Manifest, epoch: u64) {
        for (name, table) in &manifest.tables {
            if self.compactor.is_busy(name) {
                continue;
            }
            let (Some(spec), Some(start)) = (
                self.specs.get(name),
                compactor::plan(&table.files, self.options.max_files_per_table),
            ) else {
                continue;
            };
            let job = MergeJob {
                table: name.clone(),
                schema: files::file_schema(&spec.schema, &spec.key),
                key: spec.key.clone(),
                inputs: table.files[start..].to_vec(),
                into_base: start == 0 && table.files[0].base,
                output: self.next_path(name, epoch),
            };
            self.compactor.submit(job);
        }
    }

    /// Replaces each finished merge's run by its merged file in `manifest`;
    /// returns how many were swapped in. A failed merge is logged and dropped
    /// (its run stays, and is planned again).
    fn swap_in(&mut self, manifest: &mut Manifest, finished: Vec<MergeDone>) -> u64 {
        let mut swapped = 0;
        for done in finished {
            let entry = match done.output {
                Ok(entry) => entry,
                Err(error) => {
                    tracing::warn!(table = %done.table, %error, "warehouse merge failed; retried later");
                    continue;
                }
            };
            let files = manifest.tables.get_mut(&done.table).map(|t| &mut t.files);
            let at = files.as_ref().and_then(|files| {
                files
                    .windows(done.inputs.len())
                    .position(|run| run.iter().map(|f| &f.path).eq(done.inputs.iter()))
            });
            match (files, at) {
                (Some(files), Some(at)) => {
                    files.splice(at..at + done.inputs.len(), [entry]);
                    swapped += 1;
                }
                _ => {
                    // Not expected: the run is only replaced here. The file is garbage.
                    let path = self.dir.join(&entry.path);
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        swapped
    }

    fn write_file(
        &mut self,
        table: &str,
        epoch: u64,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<FileEntry, WarehouseError> {
        let rel = self.next_path(table, epoch);
        files::write(&self.dir.join(&rel), schema, batches, Encoding::Merged)?;
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        Ok(FileEntry {
            path: rel,
            rows,
            base: batches.is_empty(),
        })
    }

    /// A new file's path, relative to the warehouse directory.
    fn next_path(&mut self, table: &str, epoch: u64) -> String {
        self.seq += 1;
        format!(
            "tables/{table}/{epoch:020}-{:06}-{}.parquet",
            self.seq,
            std::process::id()
        )
    }

    /// Makes `manifest` the latest snapshot: files are synced, then the
    /// manifest is published (the commit point), then `current.sql`.
    fn publish(&mut self, mut manifest: Manifest) -> Result<(), WarehouseError> {
        manifest.published_at = chrono::Utc::now().to_rfc3339();
        // Make the new files' directory entries durable before the manifest names them.
        let old: std::collections::BTreeSet<&str> =
            self.manifest.files().map(|f| f.path.as_str()).collect();
        let dirs: std::collections::BTreeSet<PathBuf> = manifest
            .files()
            .filter(|f| !old.contains(f.path.as_str()))
            .filter_map(|f| self.dir.join(&f.path).parent().map(Path::to_path_buf))
            .collect();
        let mut dirs: Vec<PathBuf> = dirs.into_iter().collect();
        if !dirs.is_empty() {
            dirs.push(self.dir.join("tables"));
        }
        crate::fsutil::in_parallel(
            &dirs,
            |dir| crate::fsutil::sync_dir(dir).map_err(|e| WarehouseError::io(dir, e)),
            |dir| WarehouseError::io(dir, std::io::Error::other("sync panicked")),
        )?;
        let path = manifest.path(&self.dir);
        let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| WarehouseError::Schema {
            table: String::new(),
            detail: e.to_string(),
        })?;
        write_atomic(&path, &bytes).map_err(|e| WarehouseError::io(&path, e))?;
        self.retention.add(path, &manifest);
        self.manifest = manifest;
        self.write_views()?;
        self.retention.collect(
            &self.dir,
            &self.options,
            self.manifest.epoch,
            self.compactor.pending_outputs(),
        )
    }

    /// Rewrites `current.sql`. Not synced: the manifest is the commit point,
    /// and opening the warehouse rewrites the views from it.
    fn write_views(&self) -> Result<(), WarehouseError> {
        let path = self.current_sql();
        crate::fsutil::write_atomic_unsynced(
            &path,
            views::render(&self.dir, &self.manifest).as_bytes(),
        )
        .map_err(|e| WarehouseError::io(&path, e))
    }
}

/// A commit's file of one table's changes, to be written.
struct NewFile {
    path: PathBuf,
    schema: SchemaRef,
    batch: RecordBatch,
}

#[cfg(test)]
mod tests;
