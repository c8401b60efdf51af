//! A table's columns as the catalogue declares them, discovered from
//! PostgreSQL's own catalog (`pg_attribute`, `pg_type`).
//!
//! | PostgreSQL | column type |
//! |---|---|
//! | `smallint`, `integer`, `bigint`, `oid` | `int64` |
//! | `boolean` | `bool` |
//! | `real`, `double precision` | `float64` |
//! | `numeric(p,s)`, p ≤ 38 | `decimal(p,s)`, exact |
//! | `numeric` without a precision | `decimal(38,9)`: values with more than 9 decimals are dead letters |
//! | `numeric(p,s)`, p > 38 | `text` (the exact digits) |
//! | `timestamptz`, `timestamp` (taken as UTC) | `timestamp` |
//! | `date` | `date` |
//! | `json`, `jsonb`, arrays, composite types | `json` |
//! | `bytea` | `bytes` |
//! | anything else (`text`, `varchar`, `uuid`, enums, `time`, `interval`, …) | `text` |
//!
//! A column is nullable unless it is `NOT NULL`.

use std::collections::HashMap;

use dataflows::catalog::{ColumnDef, ColumnType};
use tokio_postgres::Client;
use tokio_postgres::types::{Kind, Type};

use super::read::quote_ident;

/// Precision and scale of a `numeric` column declared without them.
pub const UNCONSTRAINED_NUMERIC: (u8, i8) = (38, 9);

/// What the catalog says of a column beyond its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attribute {
    /// The type's oid.
    pub type_oid: u32,
    /// `atttypmod`: -1, or the type's modifier (a numeric's precision and scale).
    pub typmod: i32,
    /// Whether the column is `NOT NULL`.
    pub not_null: bool,
}

/// The attributes of every column of `table`, by name.
pub async fn attributes(
    client: &Client,
    table: &str,
) -> Result<HashMap<String, Attribute>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT attname::text, atttypid, atttypmod, attnotnull FROM pg_attribute \
             WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped",
            &[&quote_ident(table)],
        )
        .await?;
    let mut out = HashMap::new();
    for row in rows {
        let name: String = row.try_get(0)?;
        let type_oid: u32 = row.try_get(1)?;
        let typmod: i32 = row.try_get(2)?;
        let not_null: bool = row.try_get(3)?;
        out.insert(
            name,
            Attribute {
                type_oid,
                typmod,
                not_null,
            },
        );
    }
    Ok(out)
}

/// The column type of a PostgreSQL type (with its modifier).
pub fn column_type(ty: &Type, typmod: i32) -> ColumnType {
    match *ty {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => ColumnType::Int64,
        Type::BOOL => ColumnType::Bool,
        Type::FLOAT4 | Type::FLOAT8 => ColumnType::Float64,
        Type::NUMERIC => match numeric_precision(typmod) {
            None => {
                let (precision, scale) = UNCONSTRAINED_NUMERIC;
                ColumnType::Decimal { precision, scale }
            }
            Some((precision, scale)) if precision <= 38 => ColumnType::Decimal {
                precision: precision as u8,
                scale: scale as i8,
            },
            Some(_) => ColumnType::Text,
        },
        Type::TIMESTAMP | Type::TIMESTAMPTZ => ColumnType::Timestamp,
        Type::DATE => ColumnType::Date,
        Type::JSON | Type::JSONB => ColumnType::Json,
        Type::BYTEA => ColumnType::Bytes,
        _ => match ty.kind() {
            Kind::Array(_) | Kind::Composite(_) => ColumnType::Json,
            _ => ColumnType::Text,
        },
    }
}

/// A `numeric`'s declared (precision, scale), from its type modifier.
fn numeric_precision(typmod: i32) -> Option<(u16, u16)> {
    if typmod < 4 {
        return None;
    }
    let m = typmod - 4;
    Some((((m >> 16) & 0xffff) as u16, (m & 0xffff) as u16))
}

/// The catalogue's declaration of a column read from PostgreSQL.
pub fn column_def(column: &tokio_postgres::Column, attribute: Option<&Attribute>) -> ColumnDef {
    let typmod = attribute.map_or(-1, |a| a.typmod);
    ColumnDef {
        name: column.name().to_string(),
        ty: column_type(column.type_(), typmod),
        nullable: !attribute.is_some_and(|a| a.not_null),
        doc: format!("PostgreSQL {}", column.type_().name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_modifiers() {
        // numeric(12,2): ((12 << 16) | 2) + 4
        assert_eq!(numeric_precision((12 << 16 | 2) + 4), Some((12, 2)));
        assert_eq!(numeric_precision(-1), None);
        assert_eq!(
            column_type(&Type::NUMERIC, (12 << 16 | 2) + 4),
            ColumnType::Decimal {
                precision: 12,
                scale: 2
            }
        );
        assert_eq!(
            column_type(&Type::NUMERIC, -1),
            ColumnType::Decimal {
                precision: 38,
                scale: 9
            }
        );
        assert_eq!(
            column_type(&Type::NUMERIC, (50 << 16 | 2) + 4),
            ColumnType::Text
        );
    }

    #[test]
    fn types() {
        assert_eq!(column_type(&Type::INT4, -1), ColumnType::Int64);
        assert_eq!(column_type(&Type::UUID, -1), ColumnType::Text);
        assert_eq!(column_type(&Type::INT4_ARRAY, -1), ColumnType::Json);
        assert_eq!(column_type(&Type::JSONB, -1), ColumnType::Json);
        assert_eq!(column_type(&Type::DATE, -1), ColumnType::Date);
        assert_eq!(column_type(&Type::TIMESTAMP, -1), ColumnType::Timestamp);
        assert_eq!(column_type(&Type::FLOAT4, -1), ColumnType::Float64);
    }
}
