//! The shape every sink shares: a table as published ([`TableSpec`]) and one
//! epoch's net changes to it ([`TableChanges`]), with the columns govflow
//! adds to every table's files.

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;

/// The commit epoch column.
pub const EPOCH: &str = "_epoch";
/// The tombstone column.
pub const DELETED: &str = "_deleted";

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
