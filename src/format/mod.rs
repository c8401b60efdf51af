//! The warehouse's format: Arrow batches of the catalogue's tables, generic
//! over their declarations (docs/tables.md).
//!
//! Every table has a stable Arrow schema ([`table_spec`]), derived from its
//! [`TableDef`]: a leading Utf8 key column when the key is composite (the
//! synthetic [`TableDef::key_column`], e.g. `_errors.error_id`,
//! `"<table>:<key>:<reason>"`, see [`error_id`]), one column per declared
//! column in order, typed as [`columns`] says, nullable only when declared so,
//! then `_epoch` (Int64, non-null: the commit that wrote the row).
//!
//! [`table_changes`] turns one epoch's consolidated changes of a table into the
//! warehouse's upserts and deleted keys; [`rows_from_batch`] is the exact
//! inverse of the upserts' conversion (`_epoch` aside), used to rebuild the
//! dataflow's input from the committed `raw_*` tables at restart.

pub mod catalogue_doc;
pub mod changes;
pub mod columns;
pub mod evolution;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use dataflows::catalog::{Cell, ColumnType, TableDef, Value};
use dataflows::payload::{Payload, Payloads};
use dataflows::rows::errors::ErrorRow;
use dataflows::{RowKey, Table, TableRow};

pub use changes::{DELETED, EPOCH, TableChanges, TableSpec};

/// The synthetic key column of `_errors`.
pub const ERROR_ID: &str = "error_id";

/// A conversion failure, naming the table and the key, column or row.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArrowConvError {
    /// Changes that are not one epoch's consolidated net changes of the table.
    #[error("table {table}, epoch {epoch}, key {key}: {detail}")]
    Change {
        /// The table.
        table: String,
        /// The epoch.
        epoch: u64,
        /// The key, as text (an `error_id` for `_errors`).
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// The epoch does not fit the Int64 `_epoch` column.
    #[error("table {table}: epoch {epoch} does not fit the Int64 _epoch column")]
    Epoch {
        /// The table.
        table: String,
        /// The epoch.
        epoch: u64,
    },
    /// A column missing from a batch, or of the wrong type.
    #[error("table {table}, column {column}: {detail}")]
    Column {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// What is wrong.
        detail: String,
    },
    /// A value of a batch that does not convert back.
    #[error("table {table}, column {column}, row {row}: {detail}")]
    Value {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The row's index in the batch.
        row: usize,
        /// What is wrong.
        detail: String,
    },
    /// Arrow refused to assemble a batch (a schema bug of this module).
    #[error("table {table}: {detail}")]
    Arrow {
        /// The table.
        table: String,
        /// Arrow's message.
        detail: String,
    },
}

/// A row whose columns can be read by index: a built-in [`TableRow`], or a
/// configured table's values.
pub trait Cells {
    /// The value of column `column`.
    fn cell(&self, column: usize) -> Cell<'_>;
}

impl Cells for TableRow {
    fn cell(&self, column: usize) -> Cell<'_> {
        TableRow::cell(self, column)
    }
}

impl Cells for [Value] {
    fn cell(&self, column: usize) -> Cell<'_> {
        self.get(column).map_or(Cell::Null, Value::cell)
    }
}

impl Cells for Vec<Value> {
    fn cell(&self, column: usize) -> Cell<'_> {
        self.as_slice().cell(column)
    }
}

/// The warehouse spec of a table: its name, key column and Arrow schema.
pub fn spec_of(def: &TableDef) -> TableSpec {
    TableSpec {
        name: def.name.clone(),
        key: def.key_column.clone(),
        schema: Arc::new(schema_of(def)),
    }
}

/// The warehouse spec of `table`: its name, key column and Arrow schema.
pub fn table_spec(table: Table) -> TableSpec {
    spec_of(&table.def())
}

/// The specs of every built-in table, in [`Table::ALL`] order.
pub fn table_specs() -> Vec<TableSpec> {
    Table::ALL.into_iter().map(table_spec).collect()
}

/// The stable key of an `_errors` row: `"<table>:<key>:<reason>"`, e.g.
/// `raw_bc_order_item:52:non_positive_quantity`.
pub fn error_id(row: &ErrorRow) -> String {
    RowKey::Error(*row).text()
}

/// The full Arrow schema of a table.
pub fn schema_of(def: &TableDef) -> Schema {
    let mut fields = Vec::with_capacity(def.columns.len() + 2);
    if def.synthetic_key {
        fields.push(Field::new(&def.key_column, DataType::Utf8, false));
    }
    fields.extend(
        def.columns
            .iter()
            .map(|c| Field::new(&c.name, columns::data_type(c.ty), c.nullable)),
    );
    fields.push(Field::new(EPOCH, DataType::Int64, false));
    Schema::new(fields)
}

/// Converts one epoch's consolidated changes of `table` into the warehouse's
/// upserts (with `_epoch` = `epoch`, in key order) and deleted keys;
/// `payloads` holds the texts of the epoch's `_payload` cells.
///
/// Per key: `+1` alone inserts, `-1` alone deletes, `-1` (old row) with `+1`
/// (new row) updates to the new row. Any other diff, two insertions or two
/// retractions of a key, a row of another table, or a value that does not fit
/// its column is an error naming the table, key and epoch.
pub fn table_changes(
    table: Table,
    epoch: u64,
    changes: &[(TableRow, isize)],
    payloads: &Payloads,
) -> Result<TableChanges, ArrowConvError> {
    #[derive(Default)]
    struct Net<'a> {
        retracted: Option<&'a TableRow>,
        inserted: Option<&'a TableRow>,
    }
    let mut net: BTreeMap<RowKey, Net> = BTreeMap::new();
    for (row, diff) in changes {
        let key = row.key();
        let err = |detail: String| ArrowConvError::Change {
            table: table.name().to_string(),
            epoch,
            key: key.text(),
            detail,
        };
        if row.table_id() != table {
            return Err(err(format!("a row of table {}", row.table_id())));
        }
        if *diff > 0 && matches!(row, TableRow::Projected(_)) {
            // Only a retraction may be a projection: its key is all it writes.
            return Err(err(
                "a projected row inserted: write the whole row read".into()
            ));
        }
        let entry = net.entry(key).or_default();
        let (slot, what) = match diff {
            1 => (&mut entry.inserted, "inserted"),
            -1 => (&mut entry.retracted, "retracted"),
            d => return Err(err(format!("diff {d}, expected +1 or -1"))),
        };
        if slot.replace(row).is_some() {
            return Err(err(format!("{what} twice in one epoch")));
        }
    }
    let mut upserts = Vec::new();
    let mut upsert_keys = Vec::new();
    let mut deleted = Vec::new();
    for (key, change) in net {
        match change.inserted {
            Some(row) => {
                upserts.push(row);
                upsert_keys.push(key.text());
            }
            None => deleted.push(key),
        }
    }
    let def = table.def();
    let text_key = has_text_key(&def);
    let deleted_keys: ArrayRef = if text_key {
        Arc::new(StringArray::from_iter_values(
            deleted.iter().map(RowKey::text),
        ))
    } else {
        Arc::new(Int64Array::from_iter(deleted.iter().map(|k| match k {
            RowKey::Id(id) => Some(*id),
            RowKey::Error(_) | RowKey::Event { .. } => None,
        })))
    };
    Ok(TableChanges {
        table: def.name.clone(),
        upserts: upsert_batch(&def, epoch, &upserts, &upsert_keys, payloads)?,
        deleted_keys,
    })
}

/// Whether the table's warehouse key column is text (synthetic, or a text
/// column such as `event_id`) rather than Int64.
pub fn has_text_key(def: &TableDef) -> bool {
    def.synthetic_key
        || def
            .column(&def.key_column)
            .is_none_or(|c| c.ty != ColumnType::Int64)
}

/// The rows of a batch of `table` (as written by [`table_changes`] or read
/// back from the warehouse), in batch order; `_epoch` and any other extra
/// column are ignored, and columns are found by name. Exact inverse of the
/// upserts' conversion. Errors name the table, column and row.
pub fn rows_from_batch(table: Table, batch: &RecordBatch) -> Result<Vec<TableRow>, ArrowConvError> {
    let def = table.def();
    let values = values_from_batch(&def, batch)?;
    let mut rows = Vec::with_capacity(values.len());
    for (row, values) in values.into_iter().enumerate() {
        let parsed = TableRow::from_values(table, &mut values.into_iter()).map_err(|e| {
            ArrowConvError::Value {
                table: def.name.clone(),
                column: e.column.to_string(),
                row,
                detail: e.detail,
            }
        })?;
        rows.push(parsed);
    }
    if def.synthetic_key {
        let ids = read_column(&def, batch, &def.key_column, ColumnType::Text, false)?;
        for (i, (row, id)) in rows.iter().zip(ids).enumerate() {
            let expected = row.key().text();
            let id = match id {
                Value::Text(t) => t,
                other => format!("{other:?}"),
            };
            if id != expected {
                return Err(ArrowConvError::Value {
                    table: def.name.clone(),
                    column: def.key_column.clone(),
                    row: i,
                    detail: format!("{id:?} does not match the row, whose id is {expected:?}"),
                });
            }
        }
    }
    Ok(rows)
}

/// The values of every row of a batch of a table, one per declared column in
/// order, checked against the declared types and nullability; columns are
/// found by name and extra ones are ignored.
pub fn values_from_batch(
    def: &TableDef,
    batch: &RecordBatch,
) -> Result<Vec<Vec<Value>>, ArrowConvError> {
    let mut columns = Vec::with_capacity(def.columns.len());
    for column in &def.columns {
        columns
            .push(read_column(def, batch, &column.name, column.ty, column.nullable)?.into_iter());
    }
    Ok((0..batch.num_rows())
        .map(|_| columns.iter_mut().map_while(Iterator::next).collect())
        .collect())
}

/// The upserts batch of `rows` of a table, with `_epoch` = `epoch`; `keys`
/// are the rows' keys as text (the synthetic key column's values, and for
/// errors). A `_payload` cell takes its text from `payloads`; a payload
/// missing there is written as null.
pub fn upsert_batch<R: Cells + ?Sized>(
    def: &TableDef,
    epoch: u64,
    rows: &[&R],
    keys: &[String],
    payloads: &Payloads,
) -> Result<RecordBatch, ArrowConvError> {
    let epoch_value = i64::try_from(epoch).map_err(|_| ArrowConvError::Epoch {
        table: def.name.clone(),
        epoch,
    })?;
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(def.columns.len() + 2);
    if def.synthetic_key {
        arrays.push(Arc::new(StringArray::from_iter_values(keys)));
    }
    for (i, column) in def.columns.iter().enumerate() {
        let array = columns::build(column.ty, rows.iter().map(|r| resolve(r.cell(i), payloads)))
            .map_err(|(row, detail)| {
                let detail = format!("column {}: {detail}", column.name);
                match keys.get(row) {
                    Some(key) => ArrowConvError::Change {
                        table: def.name.clone(),
                        epoch,
                        key: key.clone(),
                        detail,
                    },
                    None => ArrowConvError::Arrow {
                        table: def.name.clone(),
                        detail,
                    },
                }
            })?;
        arrays.push(array);
    }
    arrays.push(Arc::new(Int64Array::from(vec![epoch_value; rows.len()])));
    RecordBatch::try_new(Arc::new(schema_of(def)), arrays).map_err(|e| ArrowConvError::Arrow {
        table: def.name.clone(),
        detail: e.to_string(),
    })
}

/// A cell as it is written: a `_payload` cell becomes its text, or null when
/// the epoch did not bring it.
fn resolve<'a>(cell: Cell<'a>, payloads: &'a Payloads) -> Cell<'a> {
    match cell {
        Cell::Payload(hash) => payloads.get(Payload(hash)).map_or(Cell::Null, Cell::Json),
        other => other,
    }
}

/// The values of column `name` of `batch`, checked against its declared type
/// and nullability.
fn read_column(
    def: &TableDef,
    batch: &RecordBatch,
    name: &str,
    ty: ColumnType,
    nullable: bool,
) -> Result<Vec<Value>, ArrowConvError> {
    let column_err = |detail: String| ArrowConvError::Column {
        table: def.name.clone(),
        column: name.to_string(),
        detail,
    };
    let value_err = |row: usize, detail: String| ArrowConvError::Value {
        table: def.name.clone(),
        column: name.to_string(),
        row,
        detail,
    };
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| column_err("missing from the batch".to_string()))?;
    let expected = columns::data_type(ty);
    if array.data_type() != &expected {
        return Err(column_err(format!(
            "type {}, expected {expected}",
            array.data_type()
        )));
    }
    let values = columns::read(ty, array.as_ref())
        .ok_or_else(|| column_err("unexpected array type".to_string()))?
        .map_err(|(row, detail)| value_err(row, detail))?;
    if !nullable && let Some(row) = values.iter().position(|v| *v == Value::Null) {
        return Err(value_err(row, "null in a non-null column".to_string()));
    }
    if values.len() != batch.num_rows() {
        return Err(column_err(format!(
            "{} values for {} rows",
            values.len(),
            batch.num_rows()
        )));
    }
    Ok(values)
}

#[cfg(test)]
mod tests;
