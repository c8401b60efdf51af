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

use arrow_array::ArrayRef;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_schema::{DataType, Schema, SchemaRef};
use arrow_select::filter::filter_record_batch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::WarehouseError;
use super::manifest::FileEntry;
use crate::format::DELETED;

/// Rows read from a file at a time.
const BATCH_ROWS: usize = 8_192;

/// Key values of the supported key types.
#[derive(Hash, PartialEq, Eq)]
enum Key<'a> {
    Int(i64),
    Text(&'a str),
}

/// The keys of a key column (Int64 or Utf8), null where a row has none.
fn keys<'a>(table: &str, column: &'a ArrayRef) -> Result<Vec<Option<Key<'a>>>, WarehouseError> {
    match column.data_type() {
        DataType::Int64 => Ok(column
            .as_primitive::<Int64Type>()
            .iter()
            .map(|v| v.map(Key::Int))
            .collect()),
        DataType::Utf8 => Ok(column
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(Key::Text))
            .collect()),
        other => Err(WarehouseError::Schema {
            table: table.to_string(),
            detail: format!("key column type {other} is not supported (Int64 or Utf8)"),
        }),
    }
}

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
    let mut walk = NewestFirst::new(table, key, tombstones);
    for (index, file) in files.iter().enumerate().rev() {
        let path = dir.join(&file.path);
        for batch in read_file(&path, read)? {
            let batch = walk.keep(&batch?)?;
            if batch.num_rows() > 0 {
                each(index, batch)?;
            }
        }
    }
    Ok(())
}

/// The last-writer-wins walk over batches handed to it newest first: it
/// keeps a row when no batch before it held its key, so each kept row is
/// copied once. Tombstones are kept when `tombstones` (the result does not
/// reach the table's base and must still hide older rows), dropped otherwise.
pub(crate) struct NewestFirst<'a> {
    table: &'a str,
    key: &'a str,
    tombstones: bool,
    seen: HashSet<SeenKey>,
}

impl<'a> NewestFirst<'a> {
    /// A walk of `table`, keyed by column `key`.
    pub(crate) fn new(table: &'a str, key: &'a str, tombstones: bool) -> Self {
        NewestFirst {
            table,
            key,
            tombstones,
            seen: HashSet::new(),
        }
    }

    /// The rows of `batch` whose key no earlier batch held.
    pub(crate) fn keep(&mut self, batch: &RecordBatch) -> Result<RecordBatch, WarehouseError> {
        let kept = newest(self.table, batch, self.key, self.tombstones, &mut self.seen)?;
        filter_record_batch(batch, &kept).map_err(|e| WarehouseError::Schema {
            table: self.table.to_string(),
            detail: e.to_string(),
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::Field;
    use std::sync::Arc;

    fn batch(schema: &SchemaRef, rows: &[(i64, &str, i64, bool)]) -> RecordBatch {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
                Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.3)))),
            ],
        )
        .unwrap()
    }

    #[test]
    fn newer_rows_win_and_tombstones_go_at_the_base() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("_epoch", DataType::Int64, false),
            Field::new("_deleted", DataType::Boolean, false),
        ]));
        let old = batch(
            &schema,
            &[(1, "a", 1, false), (2, "b", 1, false), (3, "c", 1, false)],
        );
        let new = batch(
            &schema,
            &[(2, "B", 2, false), (3, "", 2, true), (4, "d", 2, false)],
        );
        let walk = |tombstones: bool| {
            let mut walk = NewestFirst::new("t", "id", tombstones);
            let kept = [walk.keep(&new).unwrap(), walk.keep(&old).unwrap()];
            arrow_select::concat::concat_batches(&schema, &kept).unwrap()
        };
        assert_eq!(
            walk(true).num_rows(),
            4,
            "the tombstone of 3 stays while older files may hold 3"
        );
        let base = walk(false);
        let ids: Vec<i64> = base.column(0).as_primitive::<Int64Type>().values().to_vec();
        let names: Vec<&str> = base
            .column(1)
            .as_string::<i32>()
            .iter()
            .map(|s| s.unwrap())
            .collect();
        assert_eq!(ids, vec![2, 4, 1]);
        assert_eq!(names, vec!["B", "d", "a"]);
    }
}
