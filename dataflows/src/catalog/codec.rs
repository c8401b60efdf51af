//! How a field's Rust type maps to a column: [`Codec`], implemented by
//! [`Plain`] (a type that is its own column value), [`Timestamp`] (an `i64`
//! of microseconds) and [`Nullable`] (an `Option`).

use std::marker::PhantomData;

use super::{Cell, ColumnType, Value};
use crate::scalar::{Money, Text};

/// Encodes and decodes one Rust type as a column.
pub trait Codec {
    /// The Rust type of the field.
    type Rust;
    /// The column's type.
    const TYPE: ColumnType;
    /// Whether the column may be null.
    const NULLABLE: bool = false;
    /// The field's value as a cell.
    fn cell(value: &Self::Rust) -> Cell<'_>;
    /// The field's value from a decoded value.
    fn from_value(value: Value) -> Result<Self::Rust, String>;
}

/// The codec of a type that is its own column value (see [`PlainValue`]).
pub struct Plain<T>(PhantomData<T>);

/// The codec of an `i64` of microseconds since the Unix epoch
/// ([`crate::scalar::Micros`], an alias the derive recognises by name).
pub struct Timestamp;

/// The codec of an `Option` of another codec's type: `None` is null.
pub struct Nullable<C>(PhantomData<C>);

/// A Rust type with a column type of its own.
pub trait PlainValue: Sized {
    /// The column's type.
    const TYPE: ColumnType;
    /// The value as a cell.
    fn cell(&self) -> Cell<'_>;
    /// The value from a decoded value.
    fn from_value(value: Value) -> Result<Self, String>;
}

/// An enum stored as text (a table name, an error reason).
pub trait TextValue: Sized + Copy + 'static {
    /// What a value is called in errors (`table`, `error reason`).
    const WHAT: &'static str;
    /// Every value.
    fn all() -> &'static [Self];
    /// The value's text.
    fn as_text(self) -> &'static str;
}

fn mismatch(expected: ColumnType, got: &Value) -> String {
    format!("expected {}, got {}", expected.name(), got.kind())
}

impl<T: PlainValue> Codec for Plain<T> {
    type Rust = T;
    const TYPE: ColumnType = T::TYPE;
    fn cell(value: &T) -> Cell<'_> {
        value.cell()
    }
    fn from_value(value: Value) -> Result<T, String> {
        T::from_value(value)
    }
}

impl Codec for Timestamp {
    type Rust = i64;
    const TYPE: ColumnType = ColumnType::Timestamp;
    fn cell(value: &i64) -> Cell<'_> {
        Cell::Micros(*value)
    }
    fn from_value(value: Value) -> Result<i64, String> {
        match value {
            Value::Micros(v) => Ok(v),
            other => Err(mismatch(ColumnType::Timestamp, &other)),
        }
    }
}

impl<C: Codec> Codec for Nullable<C> {
    type Rust = Option<C::Rust>;
    const TYPE: ColumnType = C::TYPE;
    const NULLABLE: bool = true;
    fn cell(value: &Option<C::Rust>) -> Cell<'_> {
        match value {
            Some(v) => C::cell(v),
            None => Cell::Null,
        }
    }
    fn from_value(value: Value) -> Result<Option<C::Rust>, String> {
        match value {
            Value::Null => Ok(None),
            other => C::from_value(other).map(Some),
        }
    }
}

impl PlainValue for i64 {
    const TYPE: ColumnType = ColumnType::Int64;
    fn cell(&self) -> Cell<'_> {
        Cell::Int(*self)
    }
    fn from_value(value: Value) -> Result<i64, String> {
        match value {
            Value::Int(v) => Ok(v),
            other => Err(mismatch(Self::TYPE, &other)),
        }
    }
}

impl PlainValue for bool {
    const TYPE: ColumnType = ColumnType::Bool;
    fn cell(&self) -> Cell<'_> {
        Cell::Bool(*self)
    }
    fn from_value(value: Value) -> Result<bool, String> {
        match value {
            Value::Bool(v) => Ok(v),
            other => Err(mismatch(Self::TYPE, &other)),
        }
    }
}

impl PlainValue for String {
    const TYPE: ColumnType = ColumnType::Text;
    fn cell(&self) -> Cell<'_> {
        Cell::Text(self)
    }
    fn from_value(value: Value) -> Result<String, String> {
        match value {
            Value::Text(v) => Ok(v),
            other => Err(mismatch(Self::TYPE, &other)),
        }
    }
}

impl PlainValue for Text {
    const TYPE: ColumnType = ColumnType::Text;
    fn cell(&self) -> Cell<'_> {
        Cell::Text(self)
    }
    fn from_value(value: Value) -> Result<Text, String> {
        match value {
            Value::Text(v) => Ok(Text::from(v)),
            other => Err(mismatch(Self::TYPE, &other)),
        }
    }
}

impl PlainValue for Money {
    const TYPE: ColumnType = ColumnType::Money;
    fn cell(&self) -> Cell<'_> {
        Cell::Money(self.0)
    }
    fn from_value(value: Value) -> Result<Money, String> {
        match value {
            Value::Money(v) => Ok(Money(v)),
            other => Err(mismatch(Self::TYPE, &other)),
        }
    }
}

impl<T: TextValue> PlainValue for T {
    const TYPE: ColumnType = ColumnType::Text;
    fn cell(&self) -> Cell<'_> {
        Cell::Text(self.as_text())
    }
    fn from_value(value: Value) -> Result<T, String> {
        match value {
            Value::Text(text) => T::all()
                .iter()
                .copied()
                .find(|v| v.as_text() == text)
                .ok_or_else(|| format!("unknown {} {text:?}", T::WHAT)),
            other => Err(mismatch(ColumnType::Text, &other)),
        }
    }
}
