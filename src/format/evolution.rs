//! Schema evolution of the warehouse's files: a table's schema may gain
//! columns and widen column types over time (see docs/tables.md, Schema
//! evolution), so files written under an older schema are read under the
//! current one by column name: a column the file lacks is null, a column of
//! a narrower type is widened losslessly.
//!
//! Lossless widenings: `int64` → `decimal(p,s)` with at least 19 integer
//! digits, `decimal(p,s)` → `decimal(p',s')` with `s' ≥ s` and `p'−s' ≥ p−s`,
//! `date` → `timestamp`. Nothing else changes a column's type.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Decimal128Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, Decimal128Array, RecordBatch, TimestampMicrosecondArray, new_null_array,
};
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use dataflows::catalog::ColumnType;

/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400_000_000;

/// Whether a column of type `from` may become `to` without losing a value.
pub fn widens(from: ColumnType, to: ColumnType) -> bool {
    match (from, to) {
        _ if from == to => true,
        (ColumnType::Int64, ColumnType::Decimal { precision, scale }) => {
            i16::from(precision) - i16::from(scale) >= 19
        }
        (
            ColumnType::Decimal {
                precision: p,
                scale: s,
            },
            ColumnType::Decimal {
                precision: p2,
                scale: s2,
            },
        ) => s2 >= s && i16::from(p2) - i16::from(s2) >= i16::from(p) - i16::from(s),
        (ColumnType::Date, ColumnType::Timestamp) => true,
        _ => false,
    }
}

/// The Arrow form of [`widens`]: whether an array of `from` widens to `to`.
fn arrow_widens(from: &DataType, to: &DataType) -> bool {
    match (from, to) {
        _ if from == to => true,
        (DataType::Int64, DataType::Decimal128(p, s)) => i16::from(*p) - i16::from(*s) >= 19,
        (DataType::Decimal128(p, s), DataType::Decimal128(p2, s2)) => {
            s2 >= s && i16::from(*p2) - i16::from(*s2) >= i16::from(*p) - i16::from(*s)
        }
        (DataType::Date32, DataType::Timestamp(TimeUnit::Microsecond, _)) => true,
        _ => false,
    }
}

/// `array` widened to `to` (see [`widens`]); an error names the types.
fn widen(array: &ArrayRef, to: &DataType) -> Result<ArrayRef, String> {
    let from = array.data_type();
    if from == to {
        return Ok(array.clone());
    }
    if !arrow_widens(from, to) {
        return Err(format!("type {from} does not widen to {to}"));
    }
    let scale_up = |scale: i8| 10i128.pow(u32::from(scale.unsigned_abs()));
    Ok(match (from, to) {
        (DataType::Int64, DataType::Decimal128(_, s)) => {
            let f = scale_up(*s);
            let values: Decimal128Array = array
                .as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.map(|v| i128::from(v) * f))
                .collect();
            Arc::new(values.with_data_type(to.clone()))
        }
        (DataType::Decimal128(_, s), DataType::Decimal128(_, s2)) => {
            let f = scale_up(s2 - s);
            let values: Decimal128Array = array
                .as_primitive::<Decimal128Type>()
                .iter()
                .map(|v| v.map(|v| v * f))
                .collect();
            Arc::new(values.with_data_type(to.clone()))
        }
        (DataType::Date32, DataType::Timestamp(_, tz)) => {
            let values: TimestampMicrosecondArray = array
                .as_primitive::<Date32Type>()
                .iter()
                .map(|v| v.map(|d| i64::from(d) * DAY_MICROS))
                .collect();
            Arc::new(values.with_timezone_opt(tz.clone()))
        }
        _ => return Err(format!("type {from} does not widen to {to}")),
    })
}

/// `batch` read under `schema`: columns found by name, missing nullable ones
/// null, narrower ones widened. An error says which column does not fit.
pub fn conform_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, String> {
    if batch.schema() == *schema {
        return Ok(batch.clone());
    }
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column = match batch.column_by_name(field.name()) {
            Some(array) => widen(array, field.data_type())
                .map_err(|e| format!("column {}: {e}", field.name()))?,
            None if field.is_nullable() => new_null_array(field.data_type(), batch.num_rows()),
            None => {
                return Err(format!(
                    "column {} is missing and not nullable",
                    field.name()
                ));
            }
        };
        columns.push(column);
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Date32Array, Int64Array};
    use arrow_schema::{Field, Schema};

    #[test]
    fn widening_rules() {
        let dec = |precision, scale| ColumnType::Decimal { precision, scale };
        assert!(widens(ColumnType::Int64, dec(38, 9)));
        assert!(!widens(ColumnType::Int64, dec(12, 2)));
        assert!(widens(dec(12, 2), dec(14, 4)));
        assert!(!widens(dec(12, 2), dec(12, 4)));
        assert!(widens(ColumnType::Date, ColumnType::Timestamp));
        assert!(!widens(ColumnType::Timestamp, ColumnType::Date));
        assert!(!widens(ColumnType::Text, ColumnType::Int64));
        assert!(!widens(ColumnType::Int64, ColumnType::Float64));
    }

    #[test]
    fn old_files_read_under_the_new_schema() {
        let old = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("n", DataType::Int64, true),
            Field::new("day", DataType::Date32, true),
        ]));
        let batch = RecordBatch::try_new(
            old,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(Int64Array::from(vec![Some(5), None])),
                Arc::new(Date32Array::from(vec![Some(1), None])),
            ],
        )
        .unwrap();
        let new = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("n", DataType::Decimal128(38, 9), true),
            Field::new(
                "day",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("added", DataType::Utf8, true),
        ]));
        let read = conform_batch(&batch, &new).unwrap();
        let n = read.column(1).as_primitive::<Decimal128Type>();
        assert_eq!((n.value(0), n.is_null(1)), (5_000_000_000, true));
        let day = read
            .column(2)
            .as_primitive::<arrow_array::types::TimestampMicrosecondType>();
        assert_eq!(day.value(0), DAY_MICROS);
        assert_eq!(read.column(3).null_count(), 2);
        let narrower = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)]));
        assert!(
            conform_batch(&batch, &narrower)
                .unwrap_err()
                .contains("column id")
        );
        let required = Arc::new(Schema::new(vec![Field::new("x", DataType::Utf8, false)]));
        assert!(conform_batch(&batch, &required).is_err());
    }
}
