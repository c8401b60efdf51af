//! The key of a configured table's row. A table keyed by one `int64` or
//! `text` column keeps that column as the warehouse's key; any other key
//! (composite, or of another type) is written to the synthetic text column
//! `_key` ([`dataflows::catalog::TableDef::raw`]) holding the key values as a
//! JSON array (`[7,"EUR"]`), stable and unambiguous.

use dataflows::catalog::{Cell, TableDef, Value};

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
        Cell::Money(v) => J::String(dataflows::scalar::Money(v).to_string()),
        Cell::Micros(v) => J::from(v),
        Cell::Float(v) => J::String(v.to_string()),
        Cell::Decimal(v) => J::String(v.to_string()),
        Cell::Date(v) => J::from(v),
        Cell::Bytes(v) => J::String(v.iter().map(|b| format!("{b:02x}")).collect()),
        Cell::Payload(v) => J::from(v),
    }
}
