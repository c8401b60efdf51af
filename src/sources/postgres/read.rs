//! Reading one table: the statements of a keyset walk, built once per
//! connection from the table's columns, and the decoding of a page.
//!
//! The walk reads `ORDER BY cursor, key… LIMIT page` and continues with
//! `WHERE (cursor, key…) > ($1, $2…)`, binding the last row's own binary
//! values back as parameters, so any key type round-trips exactly and long
//! tables are paged without `OFFSET`. An index on `(cursor, key…)` makes each
//! page an index range scan.

use std::sync::Arc;

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::{IsNull, ToSql, Type};
use tokio_postgres::{Client, Row, Statement};

use dataflows::catalog::ColumnDef;
use tokio_postgres::types::Kind;

use super::error::PgError;
use super::schema;
use super::value::{Decoder, PgValue, RawBytes, timestamp_micros, timestamp_to_pg};
use super::{PgColumn, PgDeadLetter, PgRow};
use crate::sources::postgres::PostgresTable;

/// The cursor column a table without a configured one uses when it has it.
pub const DEFAULT_CURSOR: &str = "updated_at";

/// A cursor value: the newest value of a table's cursor column that was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CursorValue {
    /// A `timestamptz` or `timestamp` cursor, µs since 1970-01-01 UTC.
    Timestamp(i64),
    /// An integer cursor (`smallint`, `integer`, `bigint`), e.g. a version counter.
    Int(i64),
}

impl CursorValue {
    /// Where a poll starts: `lookback` µs earlier for a timestamp; an integer
    /// cursor has no time scale and starts at itself.
    pub fn minus_lookback(self, lookback_micros: i64) -> CursorValue {
        match self {
            CursorValue::Timestamp(t) => CursorValue::Timestamp(t.saturating_sub(lookback_micros)),
            CursorValue::Int(i) => CursorValue::Int(i),
        }
    }
}

impl std::fmt::Display for CursorValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CursorValue::Timestamp(t) => PgValue::Timestamp(*t).fmt(f),
            CursorValue::Int(i) => write!(f, "{i}"),
        }
    }
}

/// A parameter sent as raw binary bytes of the column's own type.
#[derive(Clone, Debug)]
pub(crate) struct RawParam(pub Option<Vec<u8>>);

impl ToSql for RawParam {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0 {
            Some(bytes) => {
                out.extend_from_slice(bytes);
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn to_sql_checked(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.to_sql(ty, out)
    }
}

/// Double-quotes an identifier; `schema.table` is quoted part by part.
pub fn quote_ident(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// What a walk reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WalkKind {
    /// By `(cursor, key…)`, rows whose cursor is not NULL.
    Incremental,
    /// By `(key…)`, every row whose key has no NULL.
    Snapshot,
}

/// The prepared statements and decoders of one table on one connection.
pub(crate) struct TablePlan {
    pub columns: Arc<[PgColumn]>,
    /// The columns read, as the catalogue declares them (types from the
    /// database's catalog).
    pub column_defs: Vec<ColumnDef>,
    /// The cursor column, when the table has one; without one every poll is a
    /// snapshot of the whole table.
    pub cursor: Option<String>,
    /// The table's columns as the catalog described them when the plan was
    /// made: a different answer later means the table changed upstream.
    pub attributes: std::collections::HashMap<String, schema::Attribute>,
    decoders: Vec<Decoder>,
    /// Result positions of the key columns' values.
    key_values: Vec<usize>,
    /// The cursor's raw bound position and type (incremental walks).
    cursor_bound: Option<(usize, Type)>,
    /// Result positions of the raw bound key columns.
    key_raw: Vec<usize>,
    /// `all`, `since` and `next` statements of incremental walks.
    incremental: Option<[Statement; 3]>,
    snapshot_first: Statement,
    snapshot_next: Statement,
    snapshot_null_keys: Statement,
    pub page_size: usize,
}

impl TablePlan {
    /// Looks the table up and prepares its statements.
    pub async fn prepare(
        client: &Client,
        database: &str,
        table: &PostgresTable,
        page_size: u32,
    ) -> Result<TablePlan, PgError> {
        let qtable = quote_ident(&table.name);
        let context = format!("reading table {}", table.name);
        let driver = |e| PgError::from_driver(database, &context, e);
        let table_err = |detail: String| PgError::Table {
            database: database.to_string(),
            table: table.name.clone(),
            detail,
        };
        let probe = client
            .prepare(&format!("SELECT * FROM {qtable} LIMIT 0"))
            .await
            .map_err(driver)?;
        let all = probe.columns();
        let exists = |name: &str| all.iter().any(|c| c.name() == name);
        let cursor = match &table.cursor {
            Some(c) if !exists(c) => return Err(table_err(format!("has no column {c:?}"))),
            Some(c) => Some(c.clone()),
            None => exists(DEFAULT_CURSOR).then(|| DEFAULT_CURSOR.to_string()),
        };
        for name in table.key.iter().chain(table.columns.iter().flatten()) {
            if !exists(name) {
                return Err(table_err(format!("has no column {name:?}")));
            }
        }
        // The columns read: all, or those configured plus the key and cursor.
        let read: Vec<&tokio_postgres::Column> = all
            .iter()
            .filter(|c| match &table.columns {
                None => true,
                Some(list) => {
                    list.iter().any(|n| n == c.name())
                        || table.key.iter().any(|n| n == c.name())
                        || cursor.as_deref() == Some(c.name())
                }
            })
            .collect();
        let find = |name: &str| read.iter().position(|c| c.name() == name);
        let key_pos: Vec<usize> = table.key.iter().filter_map(|k| find(k)).collect();
        let cursor_pos = cursor.as_deref().and_then(find);
        let cursor_type = cursor_pos.map(|p| read[p].type_().clone());
        if let (Some(c), Some(t)) = (&cursor, &cursor_type)
            && !matches!(
                *t,
                Type::TIMESTAMPTZ | Type::TIMESTAMP | Type::INT2 | Type::INT4 | Type::INT8
            )
        {
            return Err(table_err(format!(
                "cursor column {c:?} has type {}; expected timestamptz, timestamp or an integer",
                t.name()
            )));
        }
        let attributes = schema::attributes(client, &table.name)
            .await
            .map_err(driver)?;
        let mut select = Vec::new();
        let mut decoders = Vec::new();
        let mut columns = Vec::new();
        let mut column_defs = Vec::new();
        for c in &read {
            let q = quote_ident(c.name());
            match (Decoder::for_type(c.type_()), c.type_().kind()) {
                (Some(d), _) => {
                    select.push(q);
                    decoders.push(d);
                }
                // Arrays (and composites) as JSON documents.
                (None, Kind::Array(_) | Kind::Composite(_)) => {
                    select.push(format!("to_json({q})::text"));
                    decoders.push(Decoder::Json);
                }
                (None, _) => {
                    select.push(format!("{q}::text"));
                    decoders.push(Decoder::Text);
                }
            }
            columns.push(PgColumn {
                name: c.name().to_string(),
                pg_type: c.type_().name().to_string(),
            });
            column_defs.push(schema::column_def(c, attributes.get(c.name())));
        }
        // Bound columns read through a cast get a raw copy at the end.
        let raw_pos = |pos: usize, select: &mut Vec<String>| -> usize {
            if Decoder::for_type(read[pos].type_()).is_some() {
                pos
            } else {
                select.push(quote_ident(read[pos].name()));
                select.len() - 1
            }
        };
        let cursor_raw = cursor_pos.map(|p| raw_pos(p, &mut select));
        let key_raw: Vec<usize> = key_pos.iter().map(|&p| raw_pos(p, &mut select)).collect();
        let qkeys: Vec<String> = table.key.iter().map(|k| quote_ident(k)).collect();
        let keys = qkeys.join(", ");
        let base = format!("SELECT {} FROM {qtable}", select.join(", "));
        let filter = table
            .filter
            .as_ref()
            .map_or(String::new(), |f| format!(" AND ({f})"));
        let limit = format!("LIMIT {page_size}");
        let key_types: Vec<Type> = key_pos.iter().map(|&p| read[p].type_().clone()).collect();
        let placeholders = |from: usize, n: usize| -> String {
            (from..from + n)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let prepare =
            |sql: String, types: Vec<Type>| async move { client.prepare_typed(&sql, &types).await };
        let null_keys = qkeys
            .iter()
            .map(|k| format!("{k} IS NULL"))
            .collect::<Vec<_>>()
            .join(" OR ");
        let keys_set = qkeys
            .iter()
            .map(|k| format!("{k} IS NOT NULL"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let incremental = match (&cursor, &cursor_type) {
            (Some(c), Some(t)) => {
                let qcursor = quote_ident(c);
                let order = format!("ORDER BY {qcursor}, {keys}");
                let mut all_types = vec![t.clone()];
                all_types.extend(key_types.iter().cloned());
                Some([
                    prepare(
                        format!("{base} WHERE {qcursor} IS NOT NULL{filter} {order} {limit}"),
                        vec![],
                    )
                    .await
                    .map_err(driver)?,
                    prepare(
                        format!("{base} WHERE {qcursor} >= $1{filter} {order} {limit}"),
                        vec![t.clone()],
                    )
                    .await
                    .map_err(driver)?,
                    prepare(
                        format!(
                            "{base} WHERE ({qcursor}, {keys}) > ({}){filter} {order} {limit}",
                            placeholders(1, key_pos.len() + 1)
                        ),
                        all_types,
                    )
                    .await
                    .map_err(driver)?,
                ])
            }
            _ => None,
        };
        let order_snap = format!("ORDER BY {keys}");
        let plan = TablePlan {
            incremental,
            snapshot_first: prepare(
                format!("{base} WHERE {keys_set}{filter} {order_snap} {limit}"),
                vec![],
            )
            .await
            .map_err(driver)?,
            snapshot_next: prepare(
                format!(
                    "{base} WHERE {keys_set} AND ({keys}) > ({}){filter} {order_snap} {limit}",
                    placeholders(1, key_pos.len())
                ),
                key_types,
            )
            .await
            .map_err(driver)?,
            snapshot_null_keys: prepare(format!("{base} WHERE ({null_keys}){filter}"), vec![])
                .await
                .map_err(driver)?,
            columns: columns.into(),
            column_defs,
            cursor,
            attributes,
            decoders,
            key_values: key_pos,
            cursor_bound: cursor_raw.zip(cursor_type),
            key_raw,
            page_size: page_size as usize,
        };
        Ok(plan)
    }

    /// Fetches one page: from the start (or `since`), or after the bound of the previous page.
    pub async fn fetch(
        &self,
        client: &Client,
        kind: WalkKind,
        since: Option<CursorValue>,
        after: Option<&[RawParam]>,
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let params: Vec<&(dyn ToSql + Sync)>;
        let owned;
        let stmt = match (kind, after) {
            (WalkKind::Incremental, None) => match (since, &self.incremental) {
                (_, None) => return Ok(Vec::new()),
                (None, Some([all, _, _])) => {
                    params = vec![];
                    all
                }
                (Some(since), Some([_, from, _])) => {
                    owned = [self.cursor_param(since)];
                    params = vec![&owned[0]];
                    from
                }
            },
            (WalkKind::Incremental, Some(bound)) => match &self.incremental {
                None => return Ok(Vec::new()),
                Some([_, _, next]) => {
                    params = bound.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                    next
                }
            },
            (WalkKind::Snapshot, None) => {
                params = vec![];
                &self.snapshot_first
            }
            (WalkKind::Snapshot, Some(bound)) => {
                params = bound.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                &self.snapshot_next
            }
        };
        client.query(stmt, &params).await
    }

    /// Rows whose key has a NULL (a snapshot's dead letters).
    pub async fn fetch_null_keys(
        &self,
        client: &Client,
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        client.query(&self.snapshot_null_keys, &[]).await
    }

    /// The binary form of a cursor value for the cursor column's type.
    fn cursor_param(&self, value: CursorValue) -> RawParam {
        let cursor_type = self.cursor_bound.as_ref().map_or(&Type::INT8, |(_, t)| t);
        let bytes = match (value, cursor_type) {
            (CursorValue::Timestamp(t), _) => timestamp_to_pg(t).to_be_bytes().to_vec(),
            (CursorValue::Int(i), &Type::INT2) => (i.clamp(i16::MIN.into(), i16::MAX.into())
                as i16)
                .to_be_bytes()
                .to_vec(),
            (CursorValue::Int(i), &Type::INT4) => (i.clamp(i32::MIN.into(), i32::MAX.into())
                as i32)
                .to_be_bytes()
                .to_vec(),
            (CursorValue::Int(i), _) => i.to_be_bytes().to_vec(),
        };
        RawParam(Some(bytes))
    }

    /// The bound to continue after `row`.
    pub fn bound(&self, kind: WalkKind, row: &Row) -> Vec<RawParam> {
        let raw = |i: usize| {
            RawParam(
                row.try_get::<_, Option<RawBytes>>(i)
                    .ok()
                    .flatten()
                    .map(|b| b.0.to_vec()),
            )
        };
        let mut bound = Vec::with_capacity(self.key_raw.len() + 1);
        if kind == WalkKind::Incremental
            && let Some((position, _)) = &self.cursor_bound
        {
            bound.push(raw(*position));
        }
        bound.extend(self.key_raw.iter().map(|&i| raw(i)));
        bound
    }

    /// The cursor value of a row; an error for NULL or infinite values.
    pub fn cursor_of(&self, row: &Row) -> Result<CursorValue, String> {
        let Some((position, cursor_type)) = &self.cursor_bound else {
            return Err("the table has no cursor".into());
        };
        let raw = row
            .try_get::<_, Option<RawBytes>>(*position)
            .map_err(|e| e.to_string())?
            .ok_or("cursor is NULL")?
            .0;
        let value = match *cursor_type {
            Type::TIMESTAMP | Type::TIMESTAMPTZ => {
                let pg = i64::from_be_bytes(raw.try_into().map_err(|_| "bad timestamp")?);
                CursorValue::Timestamp(timestamp_micros(pg).map_err(|e| format!("cursor {e}"))?)
            }
            _ => match Decoder::for_type(cursor_type).map(|d| d.decode(Some(raw))) {
                Some(Ok(PgValue::Int(i))) => CursorValue::Int(i),
                _ => return Err("cursor is not an integer".into()),
            },
        };
        Ok(value)
    }

    /// Decodes a row: its values and key, or a dead letter saying why not.
    pub fn decode(&self, database: &str, table: &str, row: &Row) -> Result<PgRow, PgDeadLetter> {
        let mut values = Vec::with_capacity(self.decoders.len());
        let mut failure: Option<(usize, String)> = None;
        for (i, decoder) in self.decoders.iter().enumerate() {
            let raw = match row.try_get::<_, Option<RawBytes>>(i) {
                Ok(raw) => raw.map(|r| r.0),
                Err(e) => {
                    failure.get_or_insert((i, e.to_string()));
                    values.push(PgValue::Null);
                    continue;
                }
            };
            match decoder.decode(raw) {
                Ok(v) => values.push(v),
                Err(reason) => {
                    failure.get_or_insert((i, reason));
                    values.push(PgValue::Null);
                }
            }
        }
        let key: Vec<PgValue> = self.key_values.iter().map(|&i| values[i].clone()).collect();
        let key_text = || {
            self.key_values
                .iter()
                .map(|&i| {
                    let shown = match failure {
                        Some((f, _)) if f == i => "?".to_string(),
                        _ => values[i].to_string(),
                    };
                    format!("{}={shown}", self.columns[i].name)
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let dead = |column: Option<&str>, reason: String| PgDeadLetter {
            database: database.to_string(),
            table: table.to_string(),
            key: key_text(),
            column: column.map(str::to_string),
            reason,
        };
        if let Some((i, reason)) = &failure {
            let name = &self.columns[*i].name;
            return Err(dead(Some(name), format!("column {name}: {reason}")));
        }
        if let Some(pos) = self.key_values.iter().position(|&i| values[i].is_null()) {
            let name = &self.columns[self.key_values[pos]].name;
            return Err(dead(Some(name), format!("key column {name} is NULL")));
        }
        Ok(PgRow { key, values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("point_transaction"), "\"point_transaction\"");
        assert_eq!(quote_ident("app.Quote"), "\"app\".\"Quote\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn lookback_applies_to_timestamps_only() {
        assert_eq!(
            CursorValue::Timestamp(10_000).minus_lookback(3_000),
            CursorValue::Timestamp(7_000)
        );
        assert_eq!(
            CursorValue::Int(5).minus_lookback(3_000),
            CursorValue::Int(5)
        );
        let json = serde_json::to_string(&CursorValue::Timestamp(1)).unwrap();
        assert_eq!(json, r#"{"timestamp":1}"#);
    }
}
