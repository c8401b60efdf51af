use std::collections::{BTreeSet, HashMap, HashSet};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use dataflows::catalog::{ColumnDef, ColumnType};

use super::*;
use crate::sinks::local::WarehouseOptions;

fn column(name: &str, ty: ColumnType, nullable: bool) -> ColumnDef {
    ColumnDef {
        name: name.into(),
        ty,
        nullable,
        doc: String::new(),
    }
}

/// `raw_pg_shop_coupon`, keyed by `(code, region)`.
fn coupons() -> TableDef {
    let columns = vec![
        column("code", ColumnType::Text, false),
        column("region", ColumnType::Int64, false),
        column(
            "amount",
            ColumnType::Decimal {
                precision: 12,
                scale: 2,
            },
            true,
        ),
        column("ratio", ColumnType::Float64, true),
        column("valid_until", ColumnType::Date, true),
        column("rules", ColumnType::Json, true),
        column("updated_at", ColumnType::Timestamp, true),
    ];
    let key = vec!["code".to_string(), "region".to_string()];
    TableDef::raw("raw_pg_shop_coupon", "postgres", key, columns)
}

fn coupon(code: &str, region: i64, amount: i128) -> Vec<Value> {
    vec![
        Value::Text(code.into()),
        Value::Int(region),
        Value::Decimal(amount),
        Value::Float(0.25),
        Value::Date(20_000),
        Value::Json("{\"min\": 3}".into()),
        Value::Micros(1_700_000_000_000_000),
    ]
}

fn change(def: &TableDef, row: Vec<Value>) -> RawChange {
    RawChange {
        table: def.name.clone(),
        key: key_of(def, &row),
        row: Some(row),
    }
}

#[test]
fn composite_keys_use_a_synthetic_json_key() {
    let def = coupons();
    assert_eq!((def.key_column.as_str(), def.synthetic_key), ("_key", true));
    assert_eq!(
        key_of(&def, &coupon("A\"1", 7, 0)),
        RowKeyValue::Text("[\"A\\\"1\",7]".into())
    );
    let single = TableDef::raw("t", "postgres", vec!["region".into()], def.columns.clone());
    assert_eq!(
        (single.key_column.as_str(), single.synthetic_key),
        ("region", false)
    );
    let decimal = TableDef::raw("t", "postgres", vec!["amount".into()], def.columns.clone());
    assert_eq!(
        (decimal.key_column.as_str(), decimal.synthetic_key),
        ("_key", true)
    );
}

#[test]
fn unchanged_rereads_are_dropped_and_changes_are_net() {
    let def = coupons();
    let mut layer = RawLayer::new(vec![def.clone()]);
    layer.apply([
        change(&def, coupon("A", 1, 100)),
        change(&def, coupon("B", 1, 200)),
    ]);
    let first = layer.take(1).unwrap();
    assert_eq!(first.len(), 1);
    let (changes, delta, n) = &first[0];
    assert_eq!((changes.upserts.num_rows(), *delta, *n), (2, 2, 2));
    // The same rows again: nothing to write.
    layer.apply([
        change(&def, coupon("A", 1, 100)),
        change(&def, coupon("B", 1, 200)),
    ]);
    assert!(layer.take(2).unwrap().is_empty());
    // One update, one delete, one delete of an unknown key, the last change of a key wins.
    layer.apply([
        change(&def, coupon("A", 1, 150)),
        change(&def, coupon("A", 1, 175)),
        RawChange {
            table: def.name.clone(),
            key: key_of(&def, &coupon("B", 1, 0)),
            row: None,
        },
        RawChange {
            table: def.name.clone(),
            key: RowKeyValue::Text("[\"nope\",0]".into()),
            row: None,
        },
    ]);
    let third = layer.take(3).unwrap();
    let (changes, delta, n) = &third[0];
    assert_eq!(
        (changes.upserts.num_rows(), changes.deleted_keys.len()),
        (1, 1)
    );
    assert_eq!((*delta, *n), (-1, 2));
    let epochs = changes.upserts.column_by_name("_epoch").unwrap();
    assert_eq!(epochs.as_primitive::<Int64Type>().value(0), 3);
    let deleted = changes.deleted_keys.as_string::<i32>().value(0);
    assert_eq!(deleted, "[\"B\",1]");
}

#[test]
fn committed_rows_restore_their_fingerprints_and_unseen_keys_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let def = coupons();
    let mut layer = RawLayer::new(vec![def.clone()]);
    let mut warehouse =
        LocalWarehouse::open(dir.path(), &layer.specs(), WarehouseOptions::default()).unwrap();
    layer.apply([
        change(&def, coupon("A", 1, 100)),
        change(&def, coupon("B", 2, -5)),
    ]);
    let batches: Vec<TableChanges> = layer.take(1).unwrap().into_iter().map(|c| c.0).collect();
    warehouse.commit(1, &batches).unwrap();

    let mut restarted = RawLayer::new(vec![def.clone()]);
    let rows = restarted.restore(&warehouse).unwrap();
    assert_eq!(rows.get(&def.name), Some(&2));
    // What was committed, read again, is no change; a new value is.
    restarted.apply([
        change(&def, coupon("A", 1, 100)),
        change(&def, coupon("B", 2, -6)),
    ]);
    let again = restarted.take(2).unwrap();
    assert_eq!(again[0].0.upserts.num_rows(), 1);
    // A full read that saw only A deletes B.
    let seen = HashMap::from([(
        def.name.clone(),
        HashSet::from([key_of(&def, &coupon("A", 1, 0))]),
    )]);
    let gone = restarted.unseen(&BTreeSet::from([def.name.clone()]), &seen);
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].key, key_of(&def, &coupon("B", 2, 0)));
}

#[test]
fn fingerprints_tell_values_apart() {
    let a = fingerprint(&[Value::Int(1), Value::Null]);
    assert_eq!(a, fingerprint(&[Value::Int(1), Value::Null]));
    assert_ne!(a, fingerprint(&[Value::Null, Value::Int(1)]));
    assert_ne!(
        fingerprint(&[Value::Int(1)]),
        fingerprint(&[Value::Micros(1)])
    );
    assert_ne!(
        fingerprint(&[Value::Float(0.0)]),
        fingerprint(&[Value::Float(-0.0)])
    );
}
