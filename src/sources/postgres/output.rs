//! Printing a [`QueryResult`]: an aligned text table, CSV (RFC 4180), JSON (an
//! array of objects, exact numbers) or Parquet (typed columns).

use std::io::Write;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array,
    RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde_json::value::RawValue;

use super::query::QueryResult;
use super::value::{Decimal, MAX_DECIMAL_DIGITS, PgValue};

/// Output formats of `govflow query`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned text for a terminal.
    Table,
    /// CSV with a header; NULL is an empty field.
    Csv,
    /// A JSON array of objects.
    Json,
    /// Parquet (needs a file).
    Parquet,
}

/// Writes `result` in `format`.
pub fn write(result: &QueryResult, format: Format, out: &mut dyn Write) -> anyhow::Result<()> {
    match format {
        Format::Table => write_table(result, out)?,
        Format::Csv => write_csv(result, out)?,
        Format::Json => write_json(result, out)?,
        Format::Parquet => write_parquet(result, out)?,
    }
    Ok(())
}

fn write_table(result: &QueryResult, out: &mut dyn Write) -> std::io::Result<()> {
    let cells: Vec<Vec<String>> = result
        .rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|v| v.to_string().replace('\n', "\\n"))
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = result
        .columns
        .iter()
        .map(|c| c.name.chars().count())
        .collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cols: &[String]| -> std::io::Result<()> {
        let padded: Vec<String> = cols
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        writeln!(out, "{}", padded.join(" | ").trim_end())
    };
    let header: Vec<String> = result.columns.iter().map(|c| c.name.clone()).collect();
    line(out, &header)?;
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    writeln!(out, "{}", rule.join("-+-"))?;
    for row in &cells {
        line(out, row)?;
    }
    let n = result.rows.len();
    writeln!(out, "({n} row{})", if n == 1 { "" } else { "s" })
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn write_csv(result: &QueryResult, out: &mut dyn Write) -> std::io::Result<()> {
    let header: Vec<String> = result.columns.iter().map(|c| csv_field(&c.name)).collect();
    write!(out, "{}\r\n", header.join(","))?;
    for row in &result.rows {
        let fields: Vec<String> = row
            .iter()
            .map(|v| match v {
                PgValue::Null => String::new(),
                v => csv_field(&v.to_string()),
            })
            .collect();
        write!(out, "{}\r\n", fields.join(","))?;
    }
    Ok(())
}

fn json_value(v: &PgValue) -> serde_json::Result<Box<RawValue>> {
    match v {
        PgValue::Null => RawValue::from_string("null".into()),
        PgValue::Bool(b) => RawValue::from_string(b.to_string()),
        PgValue::Int(i) => RawValue::from_string(i.to_string()),
        PgValue::Float(f) if f.is_finite() => RawValue::from_string(serde_json::to_string(f)?),
        // Exact: the decimal's own digits.
        PgValue::Numeric(d) => RawValue::from_string(d.to_string()),
        PgValue::Json(text) => RawValue::from_string(text.clone()),
        other => RawValue::from_string(serde_json::to_string(&other.to_string())?),
    }
}

fn write_json(result: &QueryResult, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(out, "[")?;
    for (r, row) in result.rows.iter().enumerate() {
        let mut object = String::from("{");
        for (i, (column, value)) in result.columns.iter().zip(row).enumerate() {
            if i > 0 {
                object.push_str(", ");
            }
            object.push_str(&serde_json::to_string(&column.name)?);
            object.push_str(": ");
            object.push_str(json_value(value)?.get());
        }
        object.push('}');
        let comma = if r + 1 < result.rows.len() { "," } else { "" };
        writeln!(out, "  {object}{comma}")?;
    }
    writeln!(out, "]")?;
    Ok(())
}

/// The Arrow column of one result column: typed by its values.
fn arrow_column(values: Vec<&PgValue>) -> (DataType, ArrayRef) {
    let first = values.iter().find(|v| !v.is_null());
    let text = |values: &[&PgValue]| -> ArrayRef {
        Arc::new(StringArray::from_iter(
            values.iter().map(|v| (!v.is_null()).then(|| v.to_string())),
        ))
    };
    match first {
        Some(PgValue::Bool(_)) => (
            DataType::Boolean,
            Arc::new(BooleanArray::from_iter(values.iter().map(|v| match v {
                PgValue::Bool(b) => Some(*b),
                _ => None,
            }))),
        ),
        Some(PgValue::Int(_)) => (
            DataType::Int64,
            Arc::new(Int64Array::from_iter(values.iter().map(|v| match v {
                PgValue::Int(i) => Some(*i),
                _ => None,
            }))),
        ),
        Some(PgValue::Float(_)) => (
            DataType::Float64,
            Arc::new(Float64Array::from_iter(values.iter().map(|v| match v {
                PgValue::Float(f) => Some(*f),
                _ => None,
            }))),
        ),
        Some(PgValue::Numeric(_)) => {
            let scale = values
                .iter()
                .filter_map(|v| match v {
                    PgValue::Numeric(d) => Some(d.scale),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            let rescaled: Option<Vec<Option<i128>>> = values
                .iter()
                .map(|v| match v {
                    PgValue::Numeric(d) => d.rescale(scale).map(|d: Decimal| Some(d.mantissa)),
                    _ => Some(None),
                })
                .collect();
            let precision = MAX_DECIMAL_DIGITS as u8;
            match rescaled.and_then(|m| {
                Decimal128Array::from_iter(m)
                    .with_precision_and_scale(precision, scale as i8)
                    .ok()
            }) {
                Some(array) => (
                    DataType::Decimal128(precision, scale as i8),
                    Arc::new(array),
                ),
                // Mixed scales that do not fit 38 digits: exact text instead.
                None => (DataType::Utf8, text(&values)),
            }
        }
        Some(PgValue::Timestamp(_)) => (
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Arc::new(
                TimestampMicrosecondArray::from_iter(values.iter().map(|v| match v {
                    PgValue::Timestamp(t) => Some(*t),
                    _ => None,
                }))
                .with_timezone("UTC"),
            ),
        ),
        Some(PgValue::Date(_)) => (
            DataType::Date32,
            Arc::new(Date32Array::from_iter(values.iter().map(|v| match v {
                PgValue::Date(d) => Some(*d),
                _ => None,
            }))),
        ),
        Some(PgValue::Bytes(_)) => (
            DataType::Binary,
            Arc::new(BinaryArray::from_iter(values.iter().map(|v| match v {
                PgValue::Bytes(b) => Some(b.as_slice()),
                _ => None,
            }))),
        ),
        _ => (DataType::Utf8, text(&values)),
    }
}

/// The result as one Arrow batch (Parquet's input).
pub fn to_record_batch(result: &QueryResult) -> anyhow::Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut arrays = Vec::new();
    for (i, column) in result.columns.iter().enumerate() {
        let values: Vec<&PgValue> = result.rows.iter().map(|r| &r[i]).collect();
        let (ty, array) = arrow_column(values);
        fields.push(Field::new(&column.name, ty, true));
        arrays.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    Ok(RecordBatch::try_new_with_options(
        schema,
        arrays,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(result.rows.len())),
    )?)
}

fn write_parquet(result: &QueryResult, out: &mut dyn Write) -> anyhow::Result<()> {
    let batch = to_record_batch(result)?;
    let mut buffer = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut buffer, batch.schema(), None)?;
    writer.write(&batch)?;
    writer.close()?;
    out.write_all(&buffer)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::postgres::PgColumn;

    fn result() -> QueryResult {
        let col = |name: &str, pg_type: &str| PgColumn {
            name: name.into(),
            pg_type: pg_type.into(),
        };
        QueryResult {
            columns: vec![
                col("id", "int8"),
                col("amount", "numeric"),
                col("note", "text"),
            ],
            rows: vec![
                vec![
                    PgValue::Int(1),
                    PgValue::Numeric(Decimal {
                        mantissa: 1050,
                        scale: 2,
                    }),
                    PgValue::Text("a, \"b\"".into()),
                ],
                vec![
                    PgValue::Int(2),
                    PgValue::Numeric(Decimal {
                        mantissa: 3,
                        scale: 0,
                    }),
                    PgValue::Null,
                ],
            ],
        }
    }

    fn render(format: Format) -> String {
        let mut out = Vec::new();
        write(&result(), format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_quotes_and_leaves_null_empty() {
        assert_eq!(
            render(Format::Csv),
            "id,amount,note\r\n1,10.50,\"a, \"\"b\"\"\"\r\n2,3,\r\n"
        );
    }

    #[test]
    fn json_keeps_numbers_exact() {
        let text = render(Format::Json);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v[0]["amount"].to_string(), "10.5");
        assert!(text.contains("\"amount\": 10.50"), "{text}");
        assert_eq!(v[1]["note"], serde_json::Value::Null);
    }

    #[test]
    fn table_is_aligned() {
        let text = render(Format::Table);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "id | amount | note");
        assert_eq!(lines[2], "1  | 10.50  | a, \"b\"");
        assert_eq!(lines.last(), Some(&"(2 rows)"));
    }

    #[test]
    fn parquet_columns_are_typed_with_a_common_decimal_scale() {
        let batch = to_record_batch(&result()).unwrap();
        assert_eq!(batch.schema().field(0).data_type(), &DataType::Int64);
        assert_eq!(
            batch.schema().field(1).data_type(),
            &DataType::Decimal128(38, 2)
        );
        assert_eq!(batch.schema().field(2).data_type(), &DataType::Utf8);
        let mut out = Vec::new();
        write(&result(), Format::Parquet, &mut out).unwrap();
        assert_eq!(&out[..4], b"PAR1");
    }
}
