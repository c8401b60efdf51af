//! Collections configured by path, not built in: any BigCommerce list
//! endpoint (`/v3/catalog/brands`, `/v2/coupons`, …) read into
//! `raw_bc_<name>`, with the existing pacing, retries and dead letters.
//!
//! - **Columns.** The record's top-level scalar fields, typed from the first
//!   page read at start (integers `int64`, other numbers `float64`, booleans
//!   `bool`, V2 money strings such as `"5.0000"` `money`, dates in ISO 8601
//!   or RFC 2822 `timestamp`, other strings `text`; every column but the key
//!   nullable), plus `_payload`: the record's JSON as BigCommerce sent it. A
//!   field that is not a column is in `_payload` from the first read.
//! - **Paging.** V3: `page`/`limit` until `meta.pagination.total_pages`. V2: a
//!   bare array, until a short page or a 204.
//! - **Cursor.** With `cursor_filter` (`date_modified:min` on V3,
//!   `min_date_modified` on V2), a poll reads from the newest `cursor_field`
//!   value seen minus the lookback. Without one, every `scan_every`-th poll
//!   reads the whole collection; such a read also finds what was deleted.

use std::sync::Arc;

use serde_json::value::RawValue;

use dataflows::catalog::{ColumnDef, ColumnType, TableDef, Value};
use dataflows::scalar::{Micros, Money};

use crate::raw::{RawChange, key_of};
use crate::sources::bigcommerce::CollectionConfig;
use crate::sources::bigcommerce::client::{Client, Payload, excerpt};
use crate::sources::bigcommerce::dead_letter::DeadLetter;
use crate::sources::bigcommerce::error::BigCommerceError;
use crate::sources::bigcommerce::pull::format_date;
use crate::sources::bigcommerce::wire::parse_timestamp;

mod source;
pub use source::{Collection, Collections, SOURCE, declare};

/// The column that holds each record's JSON.
pub const PAYLOAD: &str = "_payload";

/// Records asked for per page.
const PAGE_SIZE: u32 = 250;

/// One page of a collection, as the raw layer's changes.
#[derive(Debug)]
pub struct CollectionBatch {
    /// The changes.
    pub changes: Vec<RawChange>,
    /// Records that could not be read.
    pub dead_letters: Vec<DeadLetter>,
    /// Records with fields the table has no column for.
    pub new_fields: Vec<serde_json::Value>,
}

/// What one read of a collection saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectionPull {
    /// The collection's name.
    pub name: String,
    /// The newest cursor value seen (never older than the previous one).
    pub cursor: Option<Micros>,
    /// Records delivered.
    pub records: u64,
    /// Pages read.
    pub pages: u64,
    /// Whether the read covered the whole collection.
    pub whole: bool,
    /// Records (up to [`NEW_FIELD_SAMPLES`]) with top-level fields the table
    /// has no column for: the columns they need are added before the next read.
    pub new_fields: Vec<serde_json::Value>,
}

/// Records kept per read to type the fields a collection gained.
pub const NEW_FIELD_SAMPLES: usize = 50;

/// The warehouse name of collection `name`.
pub fn table_name(name: &str) -> String {
    format!("raw_bc_{name}")
}

fn is_v2(path: &str) -> bool {
    path.trim_start_matches('/').starts_with("v2/")
}

/// Reads one page: the records' raw JSON, and the page count when the API
/// tells (V3).
async fn page(
    client: &Client,
    collection: &CollectionConfig,
    number: u64,
    since: Option<Micros>,
) -> Result<(Vec<Box<RawValue>>, Option<u64>), BigCommerceError> {
    let v2 = is_v2(&collection.path);
    let mut query = vec![
        ("page", number.to_string()),
        ("limit", PAGE_SIZE.to_string()),
    ];
    if let (Some(filter), Some(since)) = (&collection.cursor_filter, since) {
        query.push((filter.as_str(), format_date(since, v2)));
    }
    let path = collection.path.trim_start_matches('/');
    client
        .get(path, &query, |payload| match payload {
            Payload::Empty => Ok((Vec::new(), None)),
            Payload::Body(body) if v2 => serde_json::from_slice::<Vec<Box<RawValue>>>(&body)
                .map(|records| (records, None))
                .map_err(|e| format!("expected a JSON array: {e}")),
            Payload::Body(body) => {
                #[derive(serde::Deserialize)]
                struct Pagination {
                    total_pages: Option<u64>,
                }
                #[derive(serde::Deserialize)]
                struct Meta {
                    pagination: Option<Pagination>,
                }
                #[derive(serde::Deserialize)]
                struct Page {
                    data: Vec<Box<RawValue>>,
                    meta: Option<Meta>,
                }
                serde_json::from_slice::<Page>(&body)
                    .map(|p| {
                        let pages = p.meta.and_then(|m| m.pagination?.total_pages);
                        (p.data, pages)
                    })
                    .map_err(|e| format!("expected {{\"data\": [...]}}: {e}"))
            }
        })
        .await
}

/// The declaration of `collection`, its columns typed from its first page.
pub async fn describe(
    client: &Client,
    collection: &CollectionConfig,
) -> Result<TableDef, BigCommerceError> {
    let (records, _) = page(client, collection, 1, None).await?;
    let parsed: Vec<serde_json::Value> = records
        .iter()
        .filter_map(|r| serde_json::from_str(r.get()).ok())
        .collect();
    Ok(table_def(collection, &parsed))
}

/// The declaration of `collection` from sample records.
pub fn table_def(collection: &CollectionConfig, sample: &[serde_json::Value]) -> TableDef {
    let mut columns: Vec<ColumnDef> = Vec::new();
    let mut order: Vec<String> = collection.key.clone();
    for record in sample {
        if let Some(object) = record.as_object() {
            for name in object.keys() {
                if !order.contains(name) {
                    order.push(name.clone());
                }
            }
        }
    }
    for name in order {
        let values: Vec<&serde_json::Value> = sample.iter().filter_map(|r| r.get(&name)).collect();
        let is_key = collection.key.contains(&name);
        let Some(ty) = infer(&values, is_key) else {
            continue;
        };
        columns.push(ColumnDef {
            name: name.clone(),
            ty,
            nullable: !is_key,
            doc: format!("BigCommerce field {name}"),
        });
    }
    columns.push(ColumnDef {
        name: PAYLOAD.into(),
        ty: ColumnType::Json,
        nullable: false,
        doc: "The record's JSON as BigCommerce sent it.".into(),
    });
    let name = table_name(&collection.name);
    TableDef {
        doc: format!(
            "BigCommerce collection {} ({}), as read.",
            collection.name, collection.path
        ),
        grain: format!("one record of {} currently known upstream", collection.path),
        ..TableDef::raw(&name, "bigcommerce", collection.key.clone(), columns)
    }
}

/// The column type of a field from its sample values; `None` for a field
/// that is not a scalar (objects and arrays stay in `_payload`). A key is
/// always a column (text unless every sample is an integer).
fn infer(values: &[&serde_json::Value], is_key: bool) -> Option<ColumnType> {
    use serde_json::Value as J;
    let present: Vec<&J> = values.iter().copied().filter(|v| !v.is_null()).collect();
    if present.iter().any(|v| v.is_object() || v.is_array()) {
        return is_key.then_some(ColumnType::Text);
    }
    let all = |f: fn(&J) -> bool| !present.is_empty() && present.iter().all(|v| f(v));
    let ty = if all(|v| v.is_i64()) {
        ColumnType::Int64
    } else if all(J::is_number) {
        ColumnType::Float64
    } else if all(J::is_boolean) {
        ColumnType::Bool
    } else if all(|v| v.as_str().is_some_and(is_money)) {
        ColumnType::Money
    } else if all(|v| {
        v.as_str()
            .is_some_and(|s| s.is_empty() || parse_timestamp(s).is_some())
    }) && present
        .iter()
        .any(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    {
        ColumnType::Timestamp
    } else {
        ColumnType::Text
    };
    Some(ty)
}

/// Whether a JSON value is a scalar (a column candidate).
fn is_scalar(v: &serde_json::Value) -> bool {
    !(v.is_object() || v.is_array() || v.is_null())
}

/// `def` with a column for every top-level scalar field of `samples` it has
/// none for (typed from the samples), or `None` when it has them all. A
/// collection only gains columns: a field missing from a record is not gone.
pub fn with_new_fields(
    def: &TableDef,
    collection: &CollectionConfig,
    samples: &[serde_json::Value],
) -> Option<TableDef> {
    let discovered = table_def(collection, samples);
    let mut next = def.clone();
    for column in discovered.columns {
        if next.column(&column.name).is_none() {
            next.columns.push(column);
        }
    }
    (next != *def).then_some(next)
}

/// A V2 money string: digits, a point, four decimals.
fn is_money(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    match digits.split_once('.') {
        Some((whole, frac)) => {
            !whole.is_empty()
                && whole.bytes().all(|b| b.is_ascii_digit())
                && frac.len() == 4
                && frac.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// A field's value as its column keeps it.
fn conform(column: &ColumnDef, value: Option<&serde_json::Value>) -> Result<Value, String> {
    use serde_json::Value as J;
    let value = match value {
        None | Some(J::Null) => return Ok(Value::Null),
        Some(v) => v,
    };
    Ok(match (column.ty, value) {
        (ColumnType::Int64, J::Number(n)) => Value::Int(n.as_i64().ok_or("not an integer")?),
        (ColumnType::Float64, J::Number(n)) => Value::Float(n.as_f64().ok_or("not a number")?),
        (ColumnType::Bool, J::Bool(b)) => Value::Bool(*b),
        (ColumnType::Money, J::String(s)) => Value::Money(
            Money::parse(s)
                .ok_or_else(|| format!("{s:?} is not an amount"))?
                .0,
        ),
        (ColumnType::Timestamp, J::String(s)) if s.is_empty() => Value::Null,
        (ColumnType::Timestamp, J::String(s)) => {
            Value::Micros(parse_timestamp(s).ok_or_else(|| format!("{s:?} is not a date"))?)
        }
        (ColumnType::Text, J::String(s)) => Value::Text(s.clone()),
        (ColumnType::Text, other) => Value::Text(other.to_string()),
        (ty, other) => return Err(format!("{other} is not a {}", ty.describe())),
    })
}

/// The changes of one page's records, the newest cursor value among them,
/// and the records that do not fit.
fn convert(
    def: &TableDef,
    collection: &CollectionConfig,
    records: &[Box<RawValue>],
    request: &str,
) -> (CollectionBatch, Option<Micros>) {
    let mut batch = CollectionBatch {
        changes: Vec::with_capacity(records.len()),
        dead_letters: Vec::new(),
        new_fields: Vec::new(),
    };
    let mut newest = None;
    for raw in records {
        let dead = |reason: String, id: Option<i64>| DeadLetter {
            entity: "collection",
            id,
            reason: format!("{}: {reason}", collection.name),
            raw_excerpt: excerpt(raw.get(), 300),
            request: request.to_string(),
        };
        let record: serde_json::Value = match serde_json::from_str(raw.get()) {
            Ok(v) => v,
            Err(e) => {
                batch.dead_letters.push(dead(e.to_string(), None));
                continue;
            }
        };
        let id = record.get("id").and_then(serde_json::Value::as_i64);
        if let Some(missing) = collection
            .key
            .iter()
            .find(|k| record.get(k.as_str()).is_none_or(|v| v.is_null()))
        {
            batch
                .dead_letters
                .push(dead(format!("no key field {missing}"), id));
            continue;
        }
        let values: Result<Vec<Value>, String> = def
            .columns
            .iter()
            .map(|c| {
                if c.name == PAYLOAD {
                    Ok(Value::Json(raw.get().to_string()))
                } else {
                    conform(c, record.get(&c.name)).map_err(|e| format!("field {}: {e}", c.name))
                }
            })
            .collect();
        let unknown = record.as_object().is_some_and(|fields| {
            fields
                .iter()
                .any(|(name, v)| is_scalar(v) && def.column(name).is_none())
        });
        if unknown && batch.new_fields.len() < NEW_FIELD_SAMPLES {
            batch.new_fields.push(record.clone());
        }
        match values {
            Ok(values) => {
                if collection.cursor_filter.is_some()
                    && let Some(at) = record
                        .get(&collection.cursor_field)
                        .and_then(|v| v.as_str())
                        .and_then(parse_timestamp)
                {
                    newest = Some(newest.map_or(at, |n: Micros| n.max(at)));
                }
                batch.changes.push(RawChange {
                    table: def.name.clone(),
                    key: key_of(def, &values),
                    row: Some(values),
                });
            }
            Err(reason) => batch.dead_letters.push(dead(reason, id)),
        }
    }
    (batch, newest)
}

/// Reads `collection` (from `since`, or whole when `since` is `None` or the
/// collection has no cursor filter), sending a batch per page to `out`.
pub async fn read(
    client: &Client,
    collection: &CollectionConfig,
    def: &Arc<TableDef>,
    since: Option<Micros>,
    previous: Option<Micros>,
    out: &tokio::sync::mpsc::Sender<CollectionBatch>,
) -> Result<CollectionPull, BigCommerceError> {
    let since = since.filter(|_| collection.cursor_filter.is_some());
    let mut pull = CollectionPull {
        name: collection.name.clone(),
        cursor: previous,
        records: 0,
        pages: 0,
        whole: since.is_none(),
        new_fields: Vec::new(),
    };
    let v2 = is_v2(&collection.path);
    for number in 1.. {
        let (records, total_pages) = page(client, collection, number, since).await?;
        pull.pages += 1;
        let request = format!("GET {} page {number}", collection.path);
        let (batch, newest) = convert(def, collection, &records, &request);
        if let Some(at) = newest {
            pull.cursor = Some(pull.cursor.map_or(at, |c| c.max(at)));
        }
        pull.records += batch.changes.len() as u64;
        let room = NEW_FIELD_SAMPLES.saturating_sub(pull.new_fields.len());
        pull.new_fields
            .extend(batch.new_fields.iter().take(room).cloned());
        let n = records.len();
        if !batch.changes.is_empty() || !batch.dead_letters.is_empty() {
            out.send(batch)
                .await
                .map_err(|_| BigCommerceError::Transport {
                    request: request.clone(),
                    detail: "the pipeline stopped".into(),
                })?;
        }
        let last = if v2 {
            n < PAGE_SIZE as usize
        } else {
            n == 0 || total_pages.is_none_or(|t| number >= t)
        };
        if last {
            break;
        }
    }
    Ok(pull)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collection(path: &str) -> CollectionConfig {
        CollectionConfig {
            name: "coupons".into(),
            path: path.into(),
            key: vec!["id".into()],
            cursor_filter: None,
            cursor_field: "date_modified".into(),
            scan_every: 10,
        }
    }

    #[test]
    fn columns_are_typed_from_the_sample() {
        let sample: Vec<serde_json::Value> = vec![
            serde_json::json!({"id": 1, "name": "A", "amount": "5.0000", "enabled": true, "ratio": 0.5,
                "date_created": "Tue, 13 Mar 2018 16:18:59 +0000", "expires": "", "applies_to": {"ids": [0]}, "note": null}),
            serde_json::json!({"id": 2, "name": "B", "amount": "7.2500", "enabled": false, "ratio": 1,
                "date_created": "2018-09-05T20:42:07+00:00", "expires": "", "applies_to": {"ids": [1]}, "note": null}),
        ];
        let def = table_def(&collection("/v2/coupons"), &sample);
        let columns: Vec<(&str, ColumnType, bool)> = def
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.ty, c.nullable))
            .collect();
        assert_eq!(
            columns,
            [
                ("id", ColumnType::Int64, false),
                ("amount", ColumnType::Money, true),
                ("date_created", ColumnType::Timestamp, true),
                ("enabled", ColumnType::Bool, true),
                ("expires", ColumnType::Text, true),
                ("name", ColumnType::Text, true),
                ("note", ColumnType::Text, true),
                ("ratio", ColumnType::Float64, true),
                ("_payload", ColumnType::Json, false),
            ]
        );
        assert_eq!(
            (def.name.as_str(), def.key_column.as_str()),
            ("raw_bc_coupons", "id")
        );
    }

    #[test]
    fn records_become_rows_with_their_payload() {
        let sample = vec![
            serde_json::json!({"id": 1, "amount": "5.0000", "date_created": "2018-09-05T20:42:07+00:00"}),
        ];
        let c = collection("/v3/x");
        let def = table_def(&c, &sample);
        let raw: Vec<Box<RawValue>> = vec![
            RawValue::from_string(r#"{"id": 7, "amount": "1.5000", "date_created": "2018-09-05T20:42:07+00:00", "new_field": [1]}"#.into()).unwrap(),
            RawValue::from_string(r#"{"amount": "1.0000"}"#.into()).unwrap(),
            RawValue::from_string(r#"{"id": 8, "amount": "lots"}"#.into()).unwrap(),
        ];
        let (batch, _) = convert(&def, &c, &raw, "GET /v3/x page 1");
        assert_eq!(batch.changes.len(), 1);
        let row = batch.changes[0].row.clone().unwrap();
        assert_eq!(row[0], Value::Int(7));
        assert_eq!(row[1], Value::Money(15_000));
        assert_eq!(row[2], Value::Micros(1_536_180_127_000_000));
        assert!(matches!(&row[3], Value::Json(t) if t.contains("new_field")));
        let reasons: Vec<&str> = batch
            .dead_letters
            .iter()
            .map(|d| d.reason.as_str())
            .collect();
        assert_eq!(
            reasons,
            [
                "coupons: no key field id",
                "coupons: field amount: \"lots\" is not an amount"
            ]
        );
    }
}
