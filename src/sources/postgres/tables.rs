//! Configured tables that no model reads: their name in the warehouse, their
//! declaration (columns discovered from the database), and their rows as the
//! raw layer's changes.
//!
//! `[[postgres.shop.tables]] name = "coupon"` lands as `raw_pg_shop_coupon`
//! (a schema other than `public` joins the name: `sales.coupon` →
//! `raw_pg_shop_sales_coupon`). The two tables the models read keep their
//! names (`raw_pg_point_transaction`, `raw_pg_quotation`; see
//! [`super::upserts::PgModel`]).
//!
//! Each value is conformed to its column's declared type; a value that does
//! not fit (a `numeric` with more decimals than its column keeps) makes the
//! row a dead letter naming the database, table, key and column, and the rest
//! of the page is kept.

use dataflows::catalog::{ColumnDef, ColumnType, TableDef, Value};

use super::value::Decimal;
use super::{PgBatch, PgDeadLetter, PgRow, PgValue};
use crate::raw::{RawChange, key_of};
use crate::sources::postgres::PostgresTable;

/// The warehouse name of configured table `table` of database `database`.
pub fn raw_table_name(database: &str, table: &str) -> String {
    let bare = table.strip_prefix("public.").unwrap_or(table);
    format!("raw_pg_{database}_{}", bare.replace('.', "_")).to_lowercase()
}

/// The declaration of a configured table read with these columns.
pub fn table_def(database: &str, table: &PostgresTable, columns: Vec<ColumnDef>) -> TableDef {
    let name = raw_table_name(database, &table.name);
    TableDef {
        doc: format!(
            "PostgreSQL table {} of database {database}, as read.",
            table.name
        ),
        grain: format!(
            "one row per row of {} currently known upstream, by ({})",
            table.name,
            table.key.join(", ")
        ),
        ..TableDef::raw(&name, "postgres", table.key.clone(), columns)
    }
}

/// The raw layer's changes of a page of a configured table, and the rows
/// that do not fit their columns. `def`'s columns are the batch's, in order.
pub fn changes(def: &TableDef, batch: &PgBatch) -> (Vec<RawChange>, Vec<PgDeadLetter>) {
    let mut out = Vec::with_capacity(batch.rows.len());
    let mut dead = Vec::new();
    for row in &batch.rows {
        match conform_row(def, batch, row) {
            Ok(values) => out.push(RawChange {
                table: def.name.clone(),
                key: key_of(def, &values),
                row: Some(values),
            }),
            Err((column, reason)) => dead.push(PgDeadLetter {
                database: batch.database.clone(),
                table: batch.table.clone(),
                key: key_text(def, row),
                column: Some(column.clone()),
                reason: format!("column {column}: {reason}"),
            }),
        }
    }
    (out, dead)
}

fn key_text(def: &TableDef, row: &PgRow) -> String {
    def.key
        .iter()
        .zip(&row.key)
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A row's values in `def`'s column order, by column name.
fn conform_row(
    def: &TableDef,
    batch: &PgBatch,
    row: &PgRow,
) -> Result<Vec<Value>, (String, String)> {
    def.columns
        .iter()
        .map(|column| {
            let value = batch
                .columns
                .iter()
                .position(|c| c.name == column.name)
                .and_then(|i| row.values.get(i))
                .unwrap_or(&PgValue::Null);
            conform(column, value).map_err(|why| (column.name.clone(), why))
        })
        .collect()
}

/// A value as its column's type keeps it.
pub fn conform(column: &ColumnDef, value: &PgValue) -> Result<Value, String> {
    Ok(match (column.ty, value) {
        (_, PgValue::Null) if column.nullable => Value::Null,
        (_, PgValue::Null) => return Err("is NULL in a NOT NULL column".into()),
        (ColumnType::Int64, PgValue::Int(v)) => Value::Int(*v),
        (ColumnType::Bool, PgValue::Bool(v)) => Value::Bool(*v),
        (ColumnType::Float64, PgValue::Float(v)) => Value::Float(*v),
        (ColumnType::Decimal { scale, .. }, PgValue::Numeric(d)) => {
            let at_scale = u16::try_from(scale)
                .ok()
                .and_then(|s| trim_zeros(*d, s).rescale(s));
            match at_scale {
                Some(Decimal { mantissa, .. }) => Value::Decimal(mantissa),
                None => {
                    return Err(format!("{d} does not fit {} exactly", column.ty.describe()));
                }
            }
        }
        (ColumnType::Timestamp, PgValue::Timestamp(v)) => Value::Micros(*v),
        (ColumnType::Date, PgValue::Date(v)) => Value::Date(*v),
        (ColumnType::Json, PgValue::Json(v) | PgValue::Text(v)) => Value::Json(v.clone()),
        (ColumnType::Bytes, PgValue::Bytes(v)) => Value::Bytes(v.clone()),
        (ColumnType::Text, PgValue::Text(v) | PgValue::Json(v)) => Value::Text(v.clone()),
        (ColumnType::Text, other) => Value::Text(other.to_string()),
        (ty, other) => return Err(format!("{other:?} is not a {}", ty.describe())),
    })
}

/// `d` with trailing zero decimals dropped down to `scale` (`1.500` → `1.50`).
fn trim_zeros(mut d: Decimal, scale: u16) -> Decimal {
    while d.scale > scale && d.mantissa % 10 == 0 {
        d = Decimal {
            mantissa: d.mantissa / 10,
            scale: d.scale - 1,
        };
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(ty: ColumnType, nullable: bool) -> ColumnDef {
        ColumnDef {
            name: "c".into(),
            ty,
            nullable,
            doc: String::new(),
        }
    }

    #[test]
    fn names() {
        assert_eq!(raw_table_name("shop", "coupon"), "raw_pg_shop_coupon");
        assert_eq!(
            raw_table_name("shop", "public.coupon"),
            "raw_pg_shop_coupon"
        );
        assert_eq!(
            raw_table_name("shop", "sales.Coupon"),
            "raw_pg_shop_sales_coupon"
        );
    }

    #[test]
    fn values_conform_to_their_columns() {
        let dec = ColumnType::Decimal {
            precision: 12,
            scale: 2,
        };
        let d = |mantissa, scale| PgValue::Numeric(Decimal { mantissa, scale });
        assert_eq!(
            conform(&column(dec, false), &d(15, 1)),
            Ok(Value::Decimal(150))
        );
        assert!(conform(&column(dec, false), &d(1_005, 3)).is_err());
        assert_eq!(
            conform(&column(dec, false), &d(1_500, 3)),
            Ok(Value::Decimal(150))
        );
        assert_eq!(conform(&column(dec, true), &PgValue::Null), Ok(Value::Null));
        assert!(conform(&column(dec, false), &PgValue::Null).is_err());
        assert_eq!(
            conform(&column(ColumnType::Text, false), &PgValue::Int(4)),
            Ok(Value::Text("4".into()))
        );
        assert!(
            conform(
                &column(ColumnType::Int64, false),
                &PgValue::Text("4".into())
            )
            .is_err()
        );
        assert_eq!(
            conform(
                &column(ColumnType::Json, false),
                &PgValue::Json("[1,2]".into())
            ),
            Ok(Value::Json("[1,2]".into()))
        );
    }
}
