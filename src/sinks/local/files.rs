//! Parquet files of the warehouse: their schema, writing and reading.
//!
//! A file holds a table's columns (all nullable but the key), `_epoch` (the
//! commit that wrote the row) and `_deleted` (a tombstone that hides older rows
//! of its key until compaction drops both).

use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::WarehouseError;
use crate::format::{DELETED, EPOCH};

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
