//! The local warehouse: a directory of immutable Parquet files, published as
//! consistent snapshots.
//!
//! Layout: `tables/<table>/<epoch>-<n>.parquet` (immutable, never rewritten),
//! `manifests/<epoch>.json` (the commit point of each epoch: the files of every
//! table), `current.sql` (views over the latest snapshot, rewritten atomically).
//!
//! A commit of k changed rows writes one small file per changed table: O(k).
//! Files of a table are merged like a binary counter (a file is merged into the
//! one before it when it is at least half its size), which keeps O(log n) files
//! per table and costs O(log n) rewrites per row, amortised. Files are deleted
//! only once no retained snapshot names them: the newest snapshots and any
//! published within the retention period stay readable, because DuckDB opens a
//! file several times per query and a file that vanished mid-query gives wrong
//! results or errors.

mod files;
mod manifest;
mod merge;
mod views;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, new_null_array};
use arrow_schema::SchemaRef;
use arrow_select::concat::concat_batches;

pub use files::{DELETED, EPOCH};
pub use manifest::{FileEntry, Manifest, TableFiles};

use crate::fsutil::write_atomic;

/// An error of the local warehouse, naming the file or table.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
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

impl SinkError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        SinkError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Whether the same commit may succeed if tried again (I/O may; schema never).
    pub fn is_retryable(&self) -> bool {
        matches!(self, SinkError::Io { .. })
    }
}

/// A table the warehouse publishes.
#[derive(Clone, Debug)]
pub struct TableSpec {
    /// Table name (the view's name).
    pub name: String,
    /// The key column (Int64 or Utf8).
    pub key: String,
    /// Columns, ending with `_epoch` (Int64).
    pub schema: SchemaRef,
}

/// One epoch's net changes to one table.
#[derive(Clone, Debug)]
pub struct TableChanges {
    /// The table.
    pub table: String,
    /// Rows inserted or updated, in the table's schema (with `_epoch`).
    pub upserts: RecordBatch,
    /// Keys deleted.
    pub deleted_keys: ArrayRef,
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
}

impl Default for WarehouseOptions {
    fn default() -> Self {
        WarehouseOptions {
            keep_snapshots: 3,
            retention: Duration::from_secs(600),
            max_files_per_table: 16,
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
    /// Files merged.
    pub merges: u64,
}

/// The local Parquet warehouse.
#[derive(Debug)]
pub struct LocalWarehouse {
    dir: PathBuf,
    specs: BTreeMap<String, TableSpec>,
    manifest: Manifest,
    options: WarehouseOptions,
    seq: u64,
}

impl LocalWarehouse {
    /// Opens (or creates) the warehouse at `dir` for `tables`; removes files a
    /// crash left behind that no snapshot names, and rewrites `current.sql`.
    pub fn open(
        dir: &Path,
        tables: &[TableSpec],
        options: WarehouseOptions,
    ) -> Result<Self, SinkError> {
        std::fs::create_dir_all(dir).map_err(|e| SinkError::io(dir, e))?;
        let dir = dir.canonicalize().map_err(|e| SinkError::io(dir, e))?;
        let manifests = manifest::list(&dir).map_err(|e| SinkError::io(&dir, e))?;
        let latest = manifests.last().map(|(_, m)| m.clone()).unwrap_or_default();
        let mut wh = LocalWarehouse {
            dir,
            specs: tables.iter().map(|t| (t.name.clone(), t.clone())).collect(),
            manifest: latest,
            options,
            seq: 0,
        };
        let referenced: BTreeSet<String> = manifests
            .iter()
            .flat_map(|(_, m)| m.files().map(|f| f.path.clone()))
            .collect();
        wh.remove_unreferenced(&referenced)?;
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

    /// The latest snapshot.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
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
    ) -> Result<CommitReport, SinkError> {
        if self.manifest.epoch.is_some_and(|e| epoch <= e) {
            return Ok(CommitReport::default());
        }
        let started = Instant::now();
        let mut report = CommitReport {
            published: true,
            ..CommitReport::default()
        };
        let mut manifest = self.manifest.clone();
        for change in changes {
            let spec = self
                .specs
                .get(&change.table)
                .cloned()
                .ok_or_else(|| SinkError::Schema {
                    table: change.table.clone(),
                    detail: "not a table of this warehouse".into(),
                })?;
            let schema = files::file_schema(&spec.schema, &spec.key);
            let batch = file_batch(&spec, &schema, epoch, change)?;
            if batch.num_rows() == 0 {
                continue;
            }
            report.rows += batch.num_rows() as u64;
            let entry = self.write_file(&spec.name, epoch, &schema, &[batch])?;
            let table = manifest
                .tables
                .entry(spec.name.clone())
                .or_insert_with(|| TableFiles {
                    key: spec.key.clone(),
                    files: Vec::new(),
                });
            table.files.push(entry);
            report.merges += self.compact(&spec, &schema, epoch, table)?;
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
    pub fn read_table(&self, table: &str) -> Result<Option<RecordBatch>, SinkError> {
        let (Some(spec), Some(files)) = (self.specs.get(table), self.manifest.tables.get(table))
        else {
            return Ok(None);
        };
        let schema = files::file_schema(&spec.schema, &spec.key);
        let mut acc: Vec<RecordBatch> = Vec::new();
        for (i, f) in files.files.iter().enumerate() {
            let (_, batches) = files::read(&self.dir.join(&f.path))?;
            let batches = conform(&spec.name, &schema, batches)?;
            let last = i + 1 == files.files.len();
            acc = vec![merge::merge(
                &spec.name, &schema, &spec.key, &acc, &batches, last,
            )?];
        }
        let Some(merged) = acc.pop() else {
            return Ok(None);
        };
        let keep: Vec<usize> = (0..schema.fields().len())
            .filter(|i| schema.field(*i).name() != DELETED)
            .collect();
        merged
            .project(&keep)
            .map(Some)
            .map_err(|e| SinkError::Schema {
                table: table.into(),
                detail: e.to_string(),
            })
    }

    /// Merges the newest files of `table` while the newest is at least half the
    /// size of the one before it (or there are too many).
    fn compact(
        &mut self,
        spec: &TableSpec,
        schema: &SchemaRef,
        epoch: u64,
        table: &mut TableFiles,
    ) -> Result<u64, SinkError> {
        let mut merges = 0;
        loop {
            let n = table.files.len();
            if n < 2 {
                return Ok(merges);
            }
            let (older, newer) = (&table.files[n - 2], &table.files[n - 1]);
            if newer.rows * 2 < older.rows && n <= self.options.max_files_per_table {
                return Ok(merges);
            }
            let into_base = n == 2 && older.base;
            let (_, old_batches) = files::read(&self.dir.join(&older.path))?;
            let (_, new_batches) = files::read(&self.dir.join(&newer.path))?;
            let old_batches = conform(&spec.name, schema, old_batches)?;
            let new_batches = conform(&spec.name, schema, new_batches)?;
            let merged = merge::merge(
                &spec.name,
                schema,
                &spec.key,
                &old_batches,
                &new_batches,
                into_base,
            )?;
            let mut entry = self.write_file(&spec.name, epoch, schema, &[merged])?;
            entry.base = into_base;
            table.files.truncate(n - 2);
            table.files.push(entry);
            merges += 1;
        }
    }

    fn write_file(
        &mut self,
        table: &str,
        epoch: u64,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<FileEntry, SinkError> {
        self.seq += 1;
        let rel = format!(
            "tables/{table}/{epoch:020}-{:06}-{}.parquet",
            self.seq,
            std::process::id()
        );
        files::write(&self.dir.join(&rel), schema, batches)?;
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        Ok(FileEntry {
            path: rel,
            rows,
            base: batches.is_empty(),
        })
    }

    /// Makes `manifest` the latest snapshot: files are synced, then the
    /// manifest is published (the commit point), then `current.sql`.
    fn publish(&mut self, mut manifest: Manifest) -> Result<(), SinkError> {
        manifest.published_at = chrono::Utc::now().to_rfc3339();
        // Make the new files' directory entries durable before the manifest names them.
        let old: BTreeSet<&str> = self.manifest.files().map(|f| f.path.as_str()).collect();
        let dirs: BTreeSet<PathBuf> = manifest
            .files()
            .filter(|f| !old.contains(f.path.as_str()))
            .filter_map(|f| self.dir.join(&f.path).parent().map(Path::to_path_buf))
            .collect();
        for dir in dirs
            .iter()
            .chain(dirs.first().map(|_| self.dir.join("tables")).iter())
        {
            crate::fsutil::sync_dir(dir).map_err(|e| SinkError::io(dir, e))?;
        }
        let path = manifest.path(&self.dir);
        let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| SinkError::Schema {
            table: String::new(),
            detail: e.to_string(),
        })?;
        write_atomic(&path, &bytes).map_err(|e| SinkError::io(&path, e))?;
        self.manifest = manifest;
        self.write_views()?;
        self.collect_garbage()
    }

    fn write_views(&self) -> Result<(), SinkError> {
        let path = self.current_sql();
        write_atomic(&path, views::render(&self.dir, &self.manifest).as_bytes())
            .map_err(|e| SinkError::io(&path, e))
    }

    /// Drops snapshots no reader can still use, then files no snapshot names.
    fn collect_garbage(&mut self) -> Result<(), SinkError> {
        let manifests = manifest::list(&self.dir).map_err(|e| SinkError::io(&self.dir, e))?;
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(self.options.retention).unwrap_or_default();
        let n = manifests.len();
        let mut referenced = BTreeSet::new();
        for (i, (path, m)) in manifests.iter().enumerate() {
            let recent =
                chrono::DateTime::parse_from_rfc3339(&m.published_at).is_ok_and(|t| t >= cutoff);
            if i + self.options.keep_snapshots >= n || recent || m.epoch == self.manifest.epoch {
                referenced.extend(m.files().map(|f| f.path.clone()));
            } else {
                std::fs::remove_file(path).map_err(|e| SinkError::io(path, e))?;
            }
        }
        self.remove_unreferenced(&referenced)
    }

    fn remove_unreferenced(&self, referenced: &BTreeSet<String>) -> Result<(), SinkError> {
        let tables = self.dir.join("tables");
        let Ok(dirs) = std::fs::read_dir(&tables) else {
            return Ok(());
        };
        for table_dir in dirs.flatten() {
            let Ok(files) = std::fs::read_dir(table_dir.path()) else {
                continue;
            };
            for file in files.flatten() {
                let path = file.path();
                let rel = path
                    .strip_prefix(&self.dir)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if !referenced.contains(&rel) {
                    std::fs::remove_file(&path).map_err(|e| SinkError::io(&path, e))?;
                }
            }
        }
        Ok(())
    }
}

/// The file rows of one change: upserts, then tombstones of deleted keys.
fn file_batch(
    spec: &TableSpec,
    schema: &SchemaRef,
    epoch: u64,
    change: &TableChanges,
) -> Result<RecordBatch, SinkError> {
    let err = |detail: String| SinkError::Schema {
        table: spec.name.clone(),
        detail,
    };
    let n = change.upserts.num_rows();
    let mut columns: Vec<ArrayRef> = change.upserts.columns().to_vec();
    if columns.len() + 1 != schema.fields().len() {
        return Err(err(format!(
            "{} columns given, {} expected",
            columns.len(),
            schema.fields().len() - 1
        )));
    }
    columns.push(Arc::new(BooleanArray::from(vec![false; n])));
    let upserts = RecordBatch::try_new(schema.clone(), columns).map_err(|e| err(e.to_string()))?;
    let d = change.deleted_keys.len();
    let tombstones: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| -> ArrayRef {
            if f.name() == &spec.key {
                change.deleted_keys.clone()
            } else if f.name() == EPOCH {
                Arc::new(Int64Array::from(vec![epoch as i64; d]))
            } else if f.name() == DELETED {
                Arc::new(BooleanArray::from(vec![true; d]))
            } else {
                new_null_array(f.data_type(), d)
            }
        })
        .collect();
    let tombstones = RecordBatch::try_new(schema.clone(), tombstones)
        .map_err(|e| err(format!("deleted keys: {e}")))?;
    concat_batches(schema, [&upserts, &tombstones]).map_err(|e| err(e.to_string()))
}

/// Re-labels batches read back from Parquet with the table's file schema.
fn conform(
    table: &str,
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>, SinkError> {
    batches
        .into_iter()
        .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| SinkError::Schema {
            table: table.to_string(),
            detail: format!("file does not match the table: {e}"),
        })
}

#[cfg(test)]
mod tests;
