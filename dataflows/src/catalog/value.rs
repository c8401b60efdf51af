//! Values of columns: [`Cell`] borrowed from a row, [`Value`] owned.

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
}

/// A column value, owned, as decoded from a format.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
