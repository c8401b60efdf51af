//! Last-writer-wins merge of a table's files by key: the compaction step.

use std::collections::HashSet;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use arrow_select::concat::concat_batches;
use arrow_select::filter::filter_record_batch;

use super::WarehouseError;
use crate::format::DELETED;

/// Key values of the supported key types.
#[derive(Hash, PartialEq, Eq)]
pub(super) enum Key<'a> {
    Int(i64),
    Text(&'a str),
}

/// The keys of a key column (Int64 or Utf8), null where a row has none.
pub(super) fn keys<'a>(
    table: &str,
    column: &'a ArrayRef,
) -> Result<Vec<Option<Key<'a>>>, WarehouseError> {
    match column.data_type() {
        DataType::Int64 => Ok(column
            .as_primitive::<Int64Type>()
            .iter()
            .map(|v| v.map(Key::Int))
            .collect()),
        DataType::Utf8 => Ok(column
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(Key::Text))
            .collect()),
        other => Err(WarehouseError::Schema {
            table: table.to_string(),
            detail: format!("key column type {other} is not supported (Int64 or Utf8)"),
        }),
    }
}

/// Merges `newer` over `older`: every row of `newer`, and the rows of `older`
/// whose key `newer` does not hold. With `drop_tombstones` (the result becomes
/// the table's base) tombstones are removed.
pub fn merge(
    table: &str,
    schema: &SchemaRef,
    key: &str,
    older: &[RecordBatch],
    newer: &[RecordBatch],
    drop_tombstones: bool,
) -> Result<RecordBatch, WarehouseError> {
    let arrow = |e: arrow_schema::ArrowError| WarehouseError::Schema {
        table: table.to_string(),
        detail: e.to_string(),
    };
    let older = concat_batches(schema, older).map_err(arrow)?;
    let newer = concat_batches(schema, newer).map_err(arrow)?;
    let column = |batch: &RecordBatch, name: &str| {
        batch
            .column_by_name(name)
            .cloned()
            .ok_or_else(|| WarehouseError::Schema {
                table: table.to_string(),
                detail: format!("column {name} missing"),
            })
    };
    let newer_key_column = column(&newer, key)?;
    let newer_keys: HashSet<Key> = keys(table, &newer_key_column)?
        .into_iter()
        .flatten()
        .collect();
    let older_key_column = column(&older, key)?;
    let keep: BooleanArray = keys(table, &older_key_column)?
        .into_iter()
        .map(|k| Some(k.is_none_or(|k| !newer_keys.contains(&k))))
        .collect();
    let older = filter_record_batch(&older, &keep).map_err(arrow)?;
    let merged = concat_batches(schema, [&older, &newer]).map_err(arrow)?;
    if !drop_tombstones {
        return Ok(merged);
    }
    let deleted = column(&merged, DELETED)?;
    let live: BooleanArray = deleted
        .as_boolean()
        .iter()
        .map(|d| Some(d != Some(true)))
        .collect();
    filter_record_batch(&merged, &live).map_err(arrow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{Field, Schema};
    use std::sync::Arc;

    fn batch(schema: &SchemaRef, rows: &[(i64, &str, i64, bool)]) -> RecordBatch {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
                Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.3)))),
            ],
        )
        .unwrap()
    }

    #[test]
    fn newer_rows_win_and_tombstones_go_at_the_base() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("_epoch", DataType::Int64, false),
            Field::new("_deleted", DataType::Boolean, false),
        ]));
        let old = batch(
            &schema,
            &[(1, "a", 1, false), (2, "b", 1, false), (3, "c", 1, false)],
        );
        let new = batch(
            &schema,
            &[(2, "B", 2, false), (3, "", 2, true), (4, "d", 2, false)],
        );
        let kept = merge(
            "t",
            &schema,
            "id",
            std::slice::from_ref(&old),
            std::slice::from_ref(&new),
            false,
        )
        .unwrap();
        assert_eq!(
            kept.num_rows(),
            4,
            "the tombstone of 3 stays while older files may hold 3"
        );
        let base = merge("t", &schema, "id", &[old], &[new], true).unwrap();
        let ids: Vec<i64> = base.column(0).as_primitive::<Int64Type>().values().to_vec();
        let names: Vec<&str> = base
            .column(1)
            .as_string::<i32>()
            .iter()
            .map(|s| s.unwrap())
            .collect();
        assert_eq!(ids, vec![1, 2, 4]);
        assert_eq!(names, vec!["a", "B", "d"]);
    }
}
