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

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float64Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array,
    Int64Array, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, TimeUnit};
use dataflows::catalog::{Cell, ColumnType, Value};
use dataflows::scalar::Money;

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

/// The values of `cells` as `pick` takes them: `Ok(Some(v))` a value,
/// `Ok(None)` for a null cell; `pick` returns `Err` for a cell of another
/// kind or a value that does not fit.
fn values<'a, T>(
    cells: impl ExactSizeIterator<Item = Cell<'a>>,
    pick: impl Fn(Cell<'a>) -> Result<Option<T>, String>,
) -> Result<Vec<Option<T>>, CellError> {
    let mut out = Vec::with_capacity(cells.len());
    for (row, cell) in cells.enumerate() {
        out.push(pick(cell).map_err(|why| (row, why))?);
    }
    Ok(out)
}

/// The array of `cells`, all of a column of type `ty`.
pub fn build<'a>(
    ty: ColumnType,
    cells: impl ExactSizeIterator<Item = Cell<'a>>,
) -> Result<ArrayRef, CellError> {
    let mismatch = |cell: &Cell| format!("{cell:?} in a {} column", ty.name());
    // A cell of the expected kind, null, or a mismatch.
    macro_rules! pick {
        ($variant:ident) => {
            |cell: Cell<'a>| match cell {
                Cell::$variant(v) => Ok(Some(v)),
                Cell::Null => Ok(None),
                other => Err(mismatch(&other)),
            }
        };
    }
    Ok(match ty {
        ColumnType::Int64 => Arc::new(Int64Array::from(values(cells, pick!(Int))?)),
        ColumnType::Bool => Arc::new(BooleanArray::from(values(cells, pick!(Bool))?)),
        ColumnType::Text => Arc::new(StringArray::from(values(cells, pick!(Text))?)),
        ColumnType::Json => Arc::new(StringArray::from(values(cells, pick!(Json))?)),
        ColumnType::Bytes => Arc::new(BinaryArray::from(values(cells, pick!(Bytes))?)),
        ColumnType::Float64 => Arc::new(Float64Array::from(values(cells, pick!(Float))?)),
        ColumnType::Date => Arc::new(Date32Array::from(values(cells, pick!(Date))?)),
        ColumnType::Timestamp => Arc::new(
            TimestampMicrosecondArray::from(values(cells, pick!(Micros))?).with_timezone(UTC),
        ),
        ColumnType::Money => {
            let raw = values(cells, |cell| match cell {
                Cell::Money(m) if m.unsigned_abs() >= MONEY_BOUND => Err(format!(
                    "money {} does not fit Decimal128({MONEY_PRECISION}, {MONEY_SCALE})",
                    Money(m)
                )),
                Cell::Money(m) => Ok(Some(i128::from(m))),
                Cell::Null => Ok(None),
                other => Err(mismatch(&other)),
            })?;
            // A constant, valid decimal type: `with_data_type` cannot fail here.
            Arc::new(Decimal128Array::from(raw).with_data_type(data_type(ty)))
        }
        ColumnType::Decimal { precision, .. } => {
            let bound = 10u128.pow(u32::from(precision.min(38)));
            let raw = values(cells, |cell| match cell {
                Cell::Decimal(v) if v.unsigned_abs() >= bound => {
                    Err(format!("{v} does not fit {}", ty.describe()))
                }
                Cell::Decimal(v) => Ok(Some(v)),
                Cell::Null => Ok(None),
                other => Err(mismatch(&other)),
            })?;
            Arc::new(Decimal128Array::from(raw).with_data_type(data_type(ty)))
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
