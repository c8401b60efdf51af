//! A table's live rows a batch at a time, with only the columns asked for:
//! [`scan`].
//!
//! [`super::LocalWarehouse::read_table`] merges every file of a table into one
//! batch, every column included. A restart needs less: each key's newest row
//! once, in any order, and often only a few columns (a full refresh's
//! reconciliation reads only the keys). So the files are read newest first, a
//! batch at a time, with the columns asked for; a row is kept when no newer
//! file held its key, and a tombstone only marks its key seen. What is held
//! is one batch and the set of keys, not the table. A merge of a run of
//! files ([`newest_rows`]) is the same walk, keeping every column and, short
//! of the table's base, the tombstones: each row is copied once.

use std::collections::HashSet;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_schema::{Schema, SchemaRef};
use arrow_select::filter::filter_record_batch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::WarehouseError;
use super::manifest::FileEntry;
use super::merge::{Key, keys};
use crate::format::DELETED;

/// Rows read from a file at a time.
const BATCH_ROWS: usize = 8_192;

/// A key already seen in a newer file.
#[derive(Hash, PartialEq, Eq)]
enum SeenKey {
    Int(i64),
    Text(String),
}

impl From<Key<'_>> for SeenKey {
    fn from(key: Key<'_>) -> SeenKey {
        match key {
            Key::Int(k) => SeenKey::Int(k),
            Key::Text(k) => SeenKey::Text(k.to_string()),
        }
    }
}

/// A table's files, as a walk reads them.
pub(super) struct Stored<'a> {
    /// The warehouse directory the paths are relative to.
    pub dir: &'a Path,
    /// The table's name, for errors.
    pub table: &'a str,
    /// Its key column.
    pub key: &'a str,
    /// Its files, oldest first (as the manifest lists them).
    pub files: &'a [FileEntry],
}

/// Calls `each` with the live rows of the `stored` table: the newest row of
/// every key, tombstones dropped, a batch at a time, newest files first.
/// Batches have the columns of `schema` (the table's file schema) named in
/// `columns`, in that order, or all of them but `_deleted` when `None`.
pub(super) fn scan<E: From<WarehouseError>>(
    stored: &Stored,
    schema: &SchemaRef,
    columns: Option<&[&str]>,
    mut each: impl FnMut(RecordBatch) -> Result<(), E>,
) -> Result<(), E> {
    let key = stored.key;
    let schema_err = |detail: String| WarehouseError::Schema {
        table: stored.table.to_string(),
        detail,
    };
    let wanted: Vec<&str> = match columns {
        Some(columns) => columns.to_vec(),
        None => schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|n| *n != DELETED)
            .collect(),
    };
    // What is read: the wanted columns, the key and `_deleted`, in file order.
    let read = Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| {
                [key, DELETED].contains(&f.name().as_str()) || wanted.contains(&&f.name()[..])
            })
            .cloned()
            .collect::<Vec<_>>(),
    );
    let read = std::sync::Arc::new(read);
    let output: Vec<usize> = wanted
        .iter()
        .map(|name| {
            read.index_of(name)
                .map_err(|_| schema_err(format!("no column {name}")))
        })
        .collect::<Result<_, _>>()?;
    newest_rows(stored, &read, false, |_, batch| {
        let batch = batch
            .project(&output)
            .map_err(|e| schema_err(e.to_string()))?;
        each(batch)
    })
}

/// Calls `each` with the newest row of every key of the `stored` table, a
/// batch at a time with the index of its file, newest files first, with the
/// columns of `read` (which holds the key and `_deleted`). Tombstones are
/// kept when `tombstones` (a merge that does not reach the table's base must
/// keep hiding older rows), dropped otherwise.
pub(super) fn newest_rows<E: From<WarehouseError>>(
    stored: &Stored,
    read: &SchemaRef,
    tombstones: bool,
    mut each: impl FnMut(usize, RecordBatch) -> Result<(), E>,
) -> Result<(), E> {
    let Stored {
        dir,
        table,
        key,
        files,
    } = *stored;
    let mut seen: HashSet<SeenKey> = HashSet::new();
    for (index, file) in files.iter().enumerate().rev() {
        let path = dir.join(&file.path);
        for batch in read_file(&path, read)? {
            let batch = batch?;
            let kept = newest(table, &batch, key, tombstones, &mut seen)?;
            let batch = filter_record_batch(&batch, &kept).map_err(|e| WarehouseError::Schema {
                table: table.to_string(),
                detail: e.to_string(),
            })?;
            if batch.num_rows() > 0 {
                each(index, batch)?;
            }
        }
    }
    Ok(())
}

/// [`newest_rows`] gathered in the files' order: the rows each file keeps,
/// oldest file first, in the order the file holds them.
pub(super) fn newest_rows_in_order(
    stored: &Stored,
    read: &SchemaRef,
    tombstones: bool,
) -> Result<Vec<RecordBatch>, WarehouseError> {
    let mut by_file: Vec<Vec<RecordBatch>> = vec![Vec::new(); stored.files.len()];
    newest_rows(stored, read, tombstones, |index, batch| {
        by_file[index].push(batch);
        Ok::<_, WarehouseError>(())
    })?;
    Ok(by_file.into_iter().flatten().collect())
}

/// The batches of the file at `path` with the columns of `read` (by name,
/// conformed: a column the file lacks is null, a narrower one widened).
fn read_file(
    path: &Path,
    read: &SchemaRef,
) -> Result<impl Iterator<Item = Result<RecordBatch, WarehouseError>>, WarehouseError> {
    let pq = |detail: String| WarehouseError::Parquet {
        path: path.display().to_string(),
        detail,
    };
    let file = std::fs::File::open(path).map_err(|e| WarehouseError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| pq(e.to_string()))?;
    let roots: Vec<usize> = builder
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| read.field_with_name(f.name()).is_ok())
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| pq(e.to_string()))?;
    let read = read.clone();
    let path = path.display().to_string();
    Ok(reader.map(move |batch| {
        let batch = batch.map_err(|e| WarehouseError::Parquet {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        crate::format::evolution::conform_batch(&batch, &read).map_err(|detail| {
            WarehouseError::Parquet {
                path: path.clone(),
                detail: format!("file does not match the table: {detail}"),
            }
        })
    }))
}

/// Which rows of `batch` to keep: those whose key no newer row held, but
/// tombstones only when `tombstones`. Marks every key of the batch seen.
fn newest(
    table: &str,
    batch: &RecordBatch,
    key: &str,
    tombstones: bool,
    seen: &mut HashSet<SeenKey>,
) -> Result<BooleanArray, WarehouseError> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| WarehouseError::Schema {
                table: table.to_string(),
                detail: format!("column {name} missing"),
            })
    };
    let deleted = column(DELETED)?.as_boolean();
    let dropped = |i: usize| !tombstones && deleted.is_valid(i) && deleted.value(i);
    Ok(keys(table, column(key)?)?
        .into_iter()
        .enumerate()
        // The key is marked seen first, dropped or not.
        .map(|(i, k)| Some(k.is_some_and(|k| seen.insert(SeenKey::from(k))) && !dropped(i)))
        .collect())
}
