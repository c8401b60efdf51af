//! One Arrow column per [`ColumnType`]: its Arrow type, how cells become an
//! array, and how an array becomes values again. Written once per type, for
//! every table of the catalogue.
//!
//! | column type | Arrow type | note |
//! |---|---|---|
//! | `int64` | `Int64` | |
//! | `bool` | `Boolean` | |
//! | `text` | `Utf8` | |
//! | `money` | `Decimal128(18, 4)` | the raw value is the `i64` in 1/10000 units; amounts of 10^14 units or more do not fit and are an error |
//! | `timestamp` | `Timestamp(Microsecond, "UTC")` | the raw value is the micros |
//! | `float64` | `Float64` | |
//! | `decimal(p,s)` | `Decimal128(p, s)` | exact; at most 38 digits |
//! | `date` | `Date32` | days since 1970-01-01 |
//! | `json` | `Utf8` | the document's text |
//! | `bytes` | `Binary` | |

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float64Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef, Date32Array, Decimal128Array, TimestampMicrosecondArray};
use arrow_schema::{DataType, TimeUnit};
use dataflows::catalog::{Cell, ColumnType, Value};
use dataflows::records::Money;

/// Time zone of every timestamp column.
const UTC: &str = "UTC";
/// Precision and scale of money columns.
const MONEY_PRECISION: u8 = 18;
const MONEY_SCALE: i8 = Money::SCALE as i8;
/// Raw money values must stay below this in absolute value (18 digits).
const MONEY_BOUND: u64 = 1_000_000_000_000_000_000;

/// The Arrow type of a column type.
pub fn data_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Text => DataType::Utf8,
        ColumnType::Money => DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE),
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
        ColumnType::Float64 => DataType::Float64,
        ColumnType::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
        ColumnType::Date => DataType::Date32,
        ColumnType::Json => DataType::Utf8,
        ColumnType::Bytes => DataType::Binary,
    }
}

/// A cell that does not fit its column: the row's index and why.
pub type CellError = (usize, String);

/// The array of `cells`, all of a column of type `ty`.
pub fn build<'a>(
    ty: ColumnType,
    cells: impl ExactSizeIterator<Item = Cell<'a>>,
) -> Result<ArrayRef, CellError> {
    let n = cells.len();
    let mismatch = |row: usize, cell: &Cell| (row, format!("{cell:?} in a {} column", ty.name()));
    Ok(match ty {
        ColumnType::Int64 => {
            let mut b = Int64Builder::with_capacity(n);
            for (row, cell) in cells.enumerate() {
                match cell {
                    Cell::Int(v) => b.append_value(v),
                    Cell::Null => b.append_null(),
                    other => return Err(mismatch(row, &other)),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Bool => {
            let mut b = BooleanBuilder::with_capacity(n);
            for (row, cell) in cells.enumerate() {
                match cell {
                    Cell::Bool(v) => b.append_value(v),
                    Cell::Null => b.append_null(),
                    other => return Err(mismatch(row, &other)),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Text => {
            let mut b = StringBuilder::with_capacity(n, n * 16);
            for (row, cell) in cells.enumerate() {
                match cell {
                    Cell::Text(v) => b.append_value(v),
                    Cell::Null => b.append_null(),
                    other => return Err(mismatch(row, &other)),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Money => {
            let mut raw = Vec::with_capacity(n);
            for (row, cell) in cells.enumerate() {
                match cell {
                    Cell::Money(m) if m.unsigned_abs() >= MONEY_BOUND => {
                        return Err((
                            row,
                            format!(
                                "money {} does not fit Decimal128({MONEY_PRECISION}, {MONEY_SCALE})",
                                Money(m)
                            ),
                        ));
                    }
                    Cell::Money(m) => raw.push(Some(i128::from(m))),
                    Cell::Null => raw.push(None),
                    other => return Err(mismatch(row, &other)),
                }
            }
            // A constant, valid decimal type: `with_data_type` cannot fail here.
            Arc::new(Decimal128Array::from(raw).with_data_type(data_type(ty)))
        }
        ColumnType::Timestamp => {
            let mut raw = Vec::with_capacity(n);
            for (row, cell) in cells.enumerate() {
                match cell {
                    Cell::Micros(v) => raw.push(Some(v)),
                    Cell::Null => raw.push(None),
                    other => return Err(mismatch(row, &other)),
                }
            }
            Arc::new(TimestampMicrosecondArray::from(raw).with_timezone(UTC))
        }
        ColumnType::Float64 => {
            let mut b = Float64Builder::with_capacity(n);
            for (row, cell) in cells.enumerate() {
                match cell {
                    Cell::Float(v) => b.append_value(v),
                    Cell::Null => b.append_null(),
                    other => return Err(mismatch(row, &other)),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Decimal { precision, .. } => {
            let bound = 10i128.pow(u32::from(precision.min(38)));
            let mut raw = Vec::with_capacity(n);
            for (row, cell) in cells.enumerate() {
                match cell {
                    Cell::Decimal(v) if v.unsigned_abs() >= bound.unsigned_abs() => {
                        return Err((row, format!("{v} does not fit {}", ty.describe())));
                    }
                    Cell::Decimal(v) => raw.push(Some(v)),
                    Cell::Null => raw.push(None),
                    other => return Err(mismatch(row, &other)),
                }
            }
            let array = Decimal128Array::from(raw).with_data_type(data_type(ty));
            Arc::new(array)
        }
        ColumnType::Date => {
            let mut raw = Vec::with_capacity(n);
            for (row, cell) in cells.enumerate() {
                match cell {
                    Cell::Date(v) => raw.push(Some(v)),
                    Cell::Null => raw.push(None),
                    other => return Err(mismatch(row, &other)),
                }
            }
            Arc::new(Date32Array::from(raw))
        }
        ColumnType::Json => {
            let mut b = StringBuilder::with_capacity(n, n * 32);
            for (row, cell) in cells.enumerate() {
                match cell {
                    Cell::Json(v) => b.append_value(v),
                    Cell::Null => b.append_null(),
                    other => return Err(mismatch(row, &other)),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Bytes => {
            let mut b = BinaryBuilder::with_capacity(n, n * 16);
            for (row, cell) in cells.enumerate() {
                match cell {
                    Cell::Bytes(v) => b.append_value(v),
                    Cell::Null => b.append_null(),
                    other => return Err(mismatch(row, &other)),
                }
            }
            Arc::new(b.finish())
        }
    })
}

/// The values of `array`, already known to be of `data_type(ty)`; `None`
/// where the array has no such values (an unexpected array type).
pub fn read(ty: ColumnType, array: &dyn Array) -> Option<Result<Vec<Value>, CellError>> {
    let nullable = |v: Option<Value>| v.unwrap_or(Value::Null);
    Some(Ok(match ty {
        ColumnType::Int64 => array
            .as_primitive_opt::<Int64Type>()?
            .iter()
            .map(|v| nullable(v.map(Value::Int)))
            .collect(),
        ColumnType::Bool => array
            .as_boolean_opt()?
            .iter()
            .map(|v| nullable(v.map(Value::Bool)))
            .collect(),
        ColumnType::Text => array
            .as_string_opt::<i32>()?
            .iter()
            .map(|v| nullable(v.map(|s| Value::Text(s.to_string()))))
            .collect(),
        ColumnType::Timestamp => array
            .as_primitive_opt::<TimestampMicrosecondType>()?
            .iter()
            .map(|v| nullable(v.map(Value::Micros)))
            .collect(),
        ColumnType::Money => {
            let array = array.as_primitive_opt::<Decimal128Type>()?;
            let mut values = Vec::with_capacity(array.len());
            for (row, v) in array.iter().enumerate() {
                values.push(match v {
                    None => Value::Null,
                    Some(raw) => match i64::try_from(raw) {
                        Ok(m) => Value::Money(m),
                        Err(_) => {
                            return Some(Err((row, format!("money {raw}e-4 does not fit i64"))));
                        }
                    },
                });
            }
            values
        }
        ColumnType::Float64 => array
            .as_primitive_opt::<Float64Type>()?
            .iter()
            .map(|v| nullable(v.map(Value::Float)))
            .collect(),
        ColumnType::Decimal { .. } => array
            .as_primitive_opt::<Decimal128Type>()?
            .iter()
            .map(|v| nullable(v.map(Value::Decimal)))
            .collect(),
        ColumnType::Date => array
            .as_primitive_opt::<Date32Type>()?
            .iter()
            .map(|v| nullable(v.map(Value::Date)))
            .collect(),
        ColumnType::Json => array
            .as_string_opt::<i32>()?
            .iter()
            .map(|v| nullable(v.map(|s| Value::Json(s.to_string()))))
            .collect(),
        ColumnType::Bytes => array
            .as_binary_opt::<i32>()?
            .iter()
            .map(|v| nullable(v.map(|b| Value::Bytes(b.to_vec()))))
            .collect(),
    }))
}
