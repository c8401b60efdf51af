//! The key of a configured table's row, and the warehouse's key column.
//!
//! A table keyed by one `int64` column keeps that column as the warehouse's
//! key; one keyed by one `text` column likewise. Any other key (composite,
//! or of another type) is written to a synthetic text column `_key` holding
//! the key values as a JSON array (`[7,"EUR"]`), stable and unambiguous.

use dataflows::catalog::{Cell, ColumnType, TableDef, Value};

/// The synthetic key column of configured tables whose key is not one
/// `int64` or `text` column.
pub const SYNTHETIC_KEY: &str = "_key";

/// A row's key as the warehouse holds it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RowKeyValue {
    /// An `int64` key column's value.
    Int(i64),
    /// A text key: a `text` key column's value, or the synthetic key.
    Text(String),
}

impl RowKeyValue {
    /// The key as an Int64 key column's value (`None` for a text key).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            RowKeyValue::Int(v) => Some(*v),
            RowKeyValue::Text(_) => None,
        }
    }
}

impl std::fmt::Display for RowKeyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowKeyValue::Int(v) => write!(f, "{v}"),
            RowKeyValue::Text(v) => f.write_str(v),
        }
    }
}

/// Where the warehouse keeps a table's key: the key column itself when the
/// key is one `int64` or `text` column, else [`SYNTHETIC_KEY`]. Returns the
/// key column and whether it is synthetic.
pub fn key_column_for(key: &[String], columns: &[dataflows::catalog::ColumnDef]) -> (String, bool) {
    if let [single] = key
        && columns
            .iter()
            .any(|c| &c.name == single && matches!(c.ty, ColumnType::Int64 | ColumnType::Text))
    {
        return (single.clone(), false);
    }
    (SYNTHETIC_KEY.to_string(), true)
}

/// The key of a row of `def` (values in the definition's column order).
pub fn key_of(def: &TableDef, values: &[Value]) -> RowKeyValue {
    let position = |name: &str| def.columns.iter().position(|c| c.name == name);
    if !def.synthetic_key {
        return match position(&def.key_column).and_then(|i| values.get(i)) {
            Some(Value::Int(v)) => RowKeyValue::Int(*v),
            Some(Value::Text(v)) => RowKeyValue::Text(v.clone()),
            _ => RowKeyValue::Text(String::new()),
        };
    }
    let parts: Vec<serde_json::Value> = def
        .key
        .iter()
        .map(|k| match position(k).and_then(|i| values.get(i)) {
            Some(v) => json_of(v.cell()),
            None => serde_json::Value::Null,
        })
        .collect();
    RowKeyValue::Text(serde_json::Value::Array(parts).to_string())
}

/// A key value as JSON: integers and booleans as themselves, everything else
/// as its text.
fn json_of(cell: Cell<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    match cell {
        Cell::Null => J::Null,
        Cell::Int(v) => J::from(v),
        Cell::Bool(v) => J::Bool(v),
        Cell::Text(v) | Cell::Json(v) => J::String(v.to_string()),
        Cell::Money(v) => J::String(dataflows::records::Money(v).to_string()),
        Cell::Micros(v) => J::from(v),
        Cell::Float(v) => J::String(v.to_string()),
        Cell::Decimal(v) => J::String(v.to_string()),
        Cell::Date(v) => J::from(v),
        Cell::Bytes(v) => J::String(v.iter().map(|b| format!("{b:02x}")).collect()),
    }
}
