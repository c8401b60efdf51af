//! Parquet files of the warehouse: their schema, writing and reading.
//!
//! A file holds a table's columns (all nullable but the key), `_epoch` (the
//! commit that wrote the row) and `_deleted` (a tombstone that hides older rows
//! of its key until compaction drops both).

use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, new_null_array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use arrow_select::concat::concat_batches;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::WarehouseError;
use crate::format::{DELETED, EPOCH, TableChanges, TableSpec};

/// The schema of a table's files, from the table's schema (which ends with `_epoch`).
pub fn file_schema(table: &Schema, key: &str) -> SchemaRef {
    let mut fields: Vec<Field> = table
        .fields()
        .iter()
        .map(|f| {
            let nullable = !(f.name() == key || f.name() == EPOCH);
            f.as_ref().clone().with_nullable(nullable)
        })
        .collect();
    fields.push(Field::new(DELETED, DataType::Boolean, false));
    Arc::new(Schema::new(fields))
}

/// How a file is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// A commit's small file of changes: plain encoding, fast to write.
    Changes,
    /// A merged file: dictionary encoding, smaller and faster to scan.
    Merged,
}

/// Writes `batches` to a new Parquet file at `path` and syncs it.
///
/// The file is written in place: no snapshot names it before it is synced,
/// and files no snapshot names are removed when the warehouse opens.
pub fn write(
    path: &Path,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    encoding: Encoding,
) -> Result<(), WarehouseError> {
    let io = |e: std::io::Error| WarehouseError::io(path, e);
    let file = match std::fs::File::create(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            std::fs::File::create(path)
        }
        other => other,
    }
    .map_err(io)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_dictionary_enabled(encoding == Encoding::Merged)
        .build();
    let pq = |e: parquet::errors::ParquetError| WarehouseError::Parquet {
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(pq)?;
    for batch in batches {
        writer.write(batch).map_err(pq)?;
    }
    let file = writer.into_inner().map_err(pq)?;
    file.sync_all().map_err(io)
}

/// Reads every batch of the file at `path`.
pub fn read(path: &Path) -> Result<(SchemaRef, Vec<RecordBatch>), WarehouseError> {
    let file = std::fs::File::open(path).map_err(|e| WarehouseError::io(path, e))?;
    let pq = |detail: String| WarehouseError::Parquet {
        path: path.display().to_string(),
        detail,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| pq(e.to_string()))?;
    let schema = builder.schema().clone();
    let reader = builder
        .with_batch_size(65_536)
        .build()
        .map_err(|e| pq(e.to_string()))?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pq(e.to_string()))?;
    Ok((schema, batches))
}

/// The file rows of one change: upserts, then tombstones of deleted keys.
pub(crate) fn file_batch(
    spec: &TableSpec,
    schema: &SchemaRef,
    epoch: u64,
    change: &TableChanges,
) -> Result<RecordBatch, WarehouseError> {
    let err = |detail: String| WarehouseError::Schema {
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

/// Reads batches of a table's files under its current file schema: columns by
/// name, those a file lacks null, narrower ones widened (schema evolution,
/// [`crate::format::evolution`]).
pub(crate) fn conform(
    table: &str,
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>, WarehouseError> {
    batches
        .iter()
        .map(|b| crate::format::evolution::conform_batch(b, schema))
        .collect::<Result<_, _>>()
        .map_err(|e| WarehouseError::Schema {
            table: table.to_string(),
            detail: format!("file does not match the table: {e}"),
        })
}
