//! Values of columns: [`Cell`] borrowed from a row, [`Value`] owned.

use serde::{Deserialize, Serialize};

/// A column value borrowed from a row, to encode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell<'a> {
    /// Null.
    Null,
    /// An `int64`.
    Int(i64),
    /// A `bool`.
    Bool(bool),
    /// `text`.
    Text(&'a str),
    /// `money`, in ten-thousandths.
    Money(i64),
    /// A `timestamp`, in microseconds since the Unix epoch.
    Micros(i64),
    /// A `float64`.
    Float(f64),
    /// A `decimal`, as an integer at the column's scale.
    Decimal(i128),
    /// A `date`, in days since 1970-01-01.
    Date(i32),
    /// `json` text.
    Json(&'a str),
    /// `bytes`.
    Bytes(&'a [u8]),
    /// A `json` record payload, by hash: the encoder finds its text in the
    /// epoch's [`crate::payload::Payloads`].
    Payload(u64),
}

/// A column value, owned, as decoded from a format or read from a source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// Null.
    Null,
    /// An `int64`.
    Int(i64),
    /// A `bool`.
    Bool(bool),
    /// `text`.
    Text(String),
    /// `money`, in ten-thousandths.
    Money(i64),
    /// A `timestamp`, in microseconds since the Unix epoch.
    Micros(i64),
    /// A `float64`.
    Float(f64),
    /// A `decimal`, as an integer at the column's scale.
    Decimal(i128),
    /// A `date`, in days since 1970-01-01.
    Date(i32),
    /// `json` text.
    Json(String),
    /// `bytes`.
    Bytes(Vec<u8>),
}

impl Value {
    /// What kind of value this is, for errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int(_) => "int64",
            Value::Bool(_) => "bool",
            Value::Text(_) => "text",
            Value::Money(_) => "money",
            Value::Micros(_) => "timestamp",
            Value::Float(_) => "float64",
            Value::Decimal(_) => "decimal",
            Value::Date(_) => "date",
            Value::Json(_) => "json",
            Value::Bytes(_) => "bytes",
        }
    }

    /// The value as a cell, to encode.
    pub fn cell(&self) -> Cell<'_> {
        match self {
            Value::Null => Cell::Null,
            Value::Int(v) => Cell::Int(*v),
            Value::Bool(v) => Cell::Bool(*v),
            Value::Text(v) => Cell::Text(v),
            Value::Money(v) => Cell::Money(*v),
            Value::Micros(v) => Cell::Micros(*v),
            Value::Float(v) => Cell::Float(*v),
            Value::Decimal(v) => Cell::Decimal(*v),
            Value::Date(v) => Cell::Date(*v),
            Value::Json(v) => Cell::Json(v),
            Value::Bytes(v) => Cell::Bytes(v),
        }
    }
}

impl Cell<'_> {
    /// The cell as an owned value ([`Cell::Payload`], whose text is not in
    /// the row, as null).
    pub fn to_value(self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Int(v) => Value::Int(v),
            Cell::Bool(v) => Value::Bool(v),
            Cell::Text(v) => Value::Text(v.to_string()),
            Cell::Money(v) => Value::Money(v),
            Cell::Micros(v) => Value::Micros(v),
            Cell::Float(v) => Value::Float(v),
            Cell::Decimal(v) => Value::Decimal(v),
            Cell::Date(v) => Value::Date(v),
            Cell::Json(v) => Value::Json(v.to_string()),
            Cell::Bytes(v) => Value::Bytes(v.to_vec()),
            Cell::Payload(_) => Value::Null,
        }
    }
}

/// A value that does not fit its column.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {detail}")]
pub struct ValueError {
    /// The column.
    pub column: &'static str,
    /// What is wrong.
    pub detail: String,
}
