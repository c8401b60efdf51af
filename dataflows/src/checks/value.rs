//! Reading one column of any [`TableRow`] by name, for checks declared in
//! configuration.
//!
//! Rows are plain structs whose fields are the table's columns (see
//! `sinks::arrow` in the `govflow` crate for the mapping), so a column is found
//! by serializing the row with a [`serde::Serializer`] that keeps only the
//! wanted field: no per-table accessor code to keep in step with the models,
//! and no allocation beyond the value itself.

use serde::ser::{self, Impossible};
use serde::{Deserialize, Serialize, Serializer};

use crate::rows::table::TableRow;

/// A column value, as checks compare them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Value {
    /// SQL null (an `Option` that is `None`).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer, a timestamp in microseconds, or money in 1/10000 units.
    Int(i64),
    /// Text, or the name of an enumerated value (a table name, an error reason).
    Text(String),
}

impl Value {
    /// The value as text, as `accepted_values` lists give them (null is `None`).
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Text(t) => Some(t.clone()),
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.as_text() {
            Some(text) => f.write_str(&text),
            None => f.write_str("null"),
        }
    }
}

/// The value of `column` in `row`; `None` when the row has no such column or
/// its value is not a scalar.
pub fn field(row: &TableRow, column: &str) -> Option<Value> {
    let mut found = None;
    row.serialize(RowFinder {
        column,
        found: &mut found,
    })
    .ok()?;
    found
}

/// Why a row or field could not be read (never leaves this module).
#[derive(Debug)]
struct Unsupported;

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a scalar column")
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Unsupported
    }
}

/// Walks a `TableRow` (a newtype variant around a struct) to its fields.
struct RowFinder<'a> {
    column: &'a str,
    found: &'a mut Option<Value>,
}

/// Keeps the field named `column` of a struct.
struct FieldFinder<'a> {
    column: &'a str,
    found: &'a mut Option<Value>,
}

/// Turns one scalar into a [`Value`].
struct ValueSerializer;

macro_rules! unsupported {
    ($($method:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $method(self, $(_: $arg),*) -> Result<Self::Ok, Self::Error> {
            Err(Unsupported)
        })*
    };
}

macro_rules! unsupported_compound {
    () => {
        type SerializeSeq = Impossible<Self::Ok, Unsupported>;
        type SerializeTuple = Impossible<Self::Ok, Unsupported>;
        type SerializeTupleStruct = Impossible<Self::Ok, Unsupported>;
        type SerializeTupleVariant = Impossible<Self::Ok, Unsupported>;
        type SerializeMap = Impossible<Self::Ok, Unsupported>;
        type SerializeStructVariant = Impossible<Self::Ok, Unsupported>;

        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Unsupported> {
            Err(Unsupported)
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Unsupported> {
            Err(Unsupported)
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, Unsupported> {
            Err(Unsupported)
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, Unsupported> {
            Err(Unsupported)
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Unsupported> {
            Err(Unsupported)
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, Unsupported> {
            Err(Unsupported)
        }
    };
}

impl<'a> Serializer for RowFinder<'a> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeStruct = FieldFinder<'a>;
    unsupported_compound!();
    unsupported!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), Unsupported> {
        Err(Unsupported)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        value.serialize(self)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<FieldFinder<'a>, Unsupported> {
        Ok(FieldFinder {
            column: self.column,
            found: self.found,
        })
    }
}

impl ser::SerializeStruct for FieldFinder<'_> {
    type Ok = ();
    type Error = Unsupported;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        if key == self.column {
            *self.found = value.serialize(ValueSerializer).ok();
        }
        Ok(())
    }

    fn end(self) -> Result<(), Unsupported> {
        Ok(())
    }
}

impl Serializer for ValueSerializer {
    type Ok = Value;
    type Error = Unsupported;
    type SerializeStruct = Impossible<Value, Unsupported>;
    unsupported_compound!();
    unsupported!(
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_bytes(&[u8]),
        serialize_unit(),
        serialize_unit_struct(&'static str),
    );

    fn serialize_bool(self, v: bool) -> Result<Value, Unsupported> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, Unsupported> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, Unsupported> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, Unsupported> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, Unsupported> {
        Ok(Value::Int(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Value, Unsupported> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, Unsupported> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, Unsupported> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, Unsupported> {
        i64::try_from(v).map(Value::Int).map_err(|_| Unsupported)
    }
    fn serialize_char(self, v: char) -> Result<Value, Unsupported> {
        Ok(Value::Text(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, Unsupported> {
        Ok(Value::Text(v.to_string()))
    }
    fn serialize_none(self) -> Result<Value, Unsupported> {
        Ok(Value::Null)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<Value, Unsupported> {
        value.serialize(self)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Value, Unsupported> {
        Ok(Value::Text(variant.to_string()))
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Value, Unsupported> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Value, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, Unsupported> {
        Err(Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::errors::{ErrorReason, ErrorRow};
    use crate::rows::table::Table;

    #[test]
    fn reads_columns_of_any_table() {
        let customer = TableRow::RawBcCustomer(crate::fixtures::customer(7, "a@x"));
        assert_eq!(field(&customer, "id"), Some(Value::Int(7)));
        assert_eq!(
            field(&customer, "email"),
            Some(Value::Text("a@x".to_string()))
        );
        assert_eq!(field(&customer, "nope"), None);
        let error = TableRow::Errors(ErrorRow {
            table: Table::RawBcVariant,
            key: 3,
            reason: ErrorReason::UnknownProduct,
        });
        assert_eq!(
            field(&error, "table"),
            Some(Value::Text("raw_bc_variant".into()))
        );
        assert_eq!(
            field(&error, "reason"),
            Some(Value::Text("unknown_product".into()))
        );
    }

    #[test]
    fn options_money_and_booleans() {
        let sku = TableRow::RawBcVariant(crate::fixtures::variant(4, 1, 5));
        assert_eq!(field(&sku, "price"), Some(Value::Null));
        assert!(matches!(
            field(&sku, "inventory_level"),
            Some(Value::Int(5))
        ));
        assert!(matches!(
            field(&sku, "is_purchasing_disabled"),
            Some(Value::Bool(false))
        ));
        assert_eq!(Value::Null.as_text(), None);
        assert_eq!(Value::Bool(true).to_string(), "true");
    }
}
