//! The warehouse against a model: after any sequence of commits, reading a
//! table gives exactly the rows last upserted and not deleted.

use std::collections::{BTreeMap, BTreeSet};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Int64Array, StringArray};
use arrow_schema::{DataType, Field, Schema};
use proptest::prelude::*;

use super::*;
use crate::format::EPOCH;

fn spec() -> TableSpec {
    TableSpec {
        name: "dim_thing".into(),
        key: "thing_id".into(),
        schema: Arc::new(Schema::new(vec![
            Field::new("thing_id", DataType::Int64, false),
            Field::new("label", DataType::Utf8, false),
            Field::new(EPOCH, DataType::Int64, false),
        ])),
    }
}

fn changes(epoch: u64, upserts: &[(i64, String)], deletes: &[i64]) -> TableChanges {
    let spec = spec();
    TableChanges {
        table: spec.name.clone(),
        upserts: RecordBatch::try_new(
            spec.schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(upserts.iter().map(|u| u.0))),
                Arc::new(StringArray::from_iter_values(
                    upserts.iter().map(|u| u.1.as_str()),
                )),
                Arc::new(Int64Array::from(vec![epoch as i64; upserts.len()])),
            ],
        )
        .unwrap(),
        deleted_keys: Arc::new(Int64Array::from(deletes.to_vec())),
    }
}

fn contents(wh: &LocalWarehouse) -> BTreeMap<i64, (String, i64)> {
    let batch = wh.read_table("dim_thing").unwrap().unwrap();
    let ids = batch.column(0).as_primitive::<Int64Type>();
    let labels = batch.column(1).as_string::<i32>();
    let epochs = batch.column(2).as_primitive::<Int64Type>();
    (0..batch.num_rows())
        .map(|i| (ids.value(i), (labels.value(i).to_string(), epochs.value(i))))
        .collect()
}

/// The table's rows as [`LocalWarehouse::scan_table`] reads them, each key
/// once (a key seen twice fails).
fn scanned(wh: &LocalWarehouse) -> BTreeMap<i64, (String, i64)> {
    let mut rows = BTreeMap::new();
    wh.scan_table("dim_thing", None, |batch| {
        assert_eq!(batch.num_columns(), 3, "every column but _deleted");
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let labels = batch.column(1).as_string::<i32>();
        let epochs = batch.column(2).as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            let row = (labels.value(i).to_string(), epochs.value(i));
            assert!(
                rows.insert(ids.value(i), row).is_none(),
                "key {} twice",
                ids.value(i)
            );
        }
        Ok::<_, WarehouseError>(())
    })
    .unwrap();
    rows
}

fn parquet_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("tables/dim_thing")).map_or(0, |d| d.count())
}

/// One epoch: upserts (key, label) and deletes, keys from a small space so they collide.
fn epoch_strategy() -> impl Strategy<Value = (Vec<(i64, u8)>, Vec<i64>)> {
    (
        prop::collection::vec((0i64..40, 0u8..4), 0..30),
        prop::collection::vec(0i64..40, 0..6),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn reads_back_what_was_committed(
        epochs in prop::collection::vec(epoch_strategy(), 1..25),
        background_merges in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let options = WarehouseOptions {
            keep_snapshots: 2,
            retention: Duration::ZERO,
            max_files_per_table: 8,
            background_merges,
        };
        let mut wh = LocalWarehouse::open(dir.path(), &[spec()], options.clone()).unwrap();
        let mut model: BTreeMap<i64, (String, i64)> = BTreeMap::new();
        for (i, (ups, dels)) in epochs.iter().enumerate() {
            let epoch = i as u64 + 1;
            // Net changes of an epoch: one row per key, a key is upserted or deleted.
            let mut net: BTreeMap<i64, Option<String>> = BTreeMap::new();
            for (k, label) in ups { net.insert(*k, Some(format!("v{label}"))); }
            for k in dels { net.insert(*k, None); }
            let upserts: Vec<(i64, String)> = net.iter().filter_map(|(k, v)| v.clone().map(|v| (*k, v))).collect();
            let deletes: Vec<i64> = net.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| *k).collect();
            wh.commit(epoch, &[changes(epoch, &upserts, &deletes)]).unwrap();
            for (k, v) in &net {
                match v {
                    Some(v) => { model.insert(*k, (v.clone(), epoch as i64)); }
                    None => { model.remove(k); }
                }
            }
            prop_assert_eq!(contents(&wh), model.clone());
            prop_assert_eq!(scanned(&wh), model.clone());
            if !background_merges {
                prop_assert!(wh.manifest().tables["dim_thing"].files.len() <= 8);
            }
        }
        // Background merges: once they are waited for and swapped in, the table
        // has as few files as merging inline gives.
        let mut last = epochs.len() as u64;
        if background_merges {
            for _ in 0..3 {
                wh.wait_for_merges();
                last += 1;
                wh.commit(last, &[]).unwrap();
                prop_assert_eq!(contents(&wh), model.clone());
            }
            prop_assert!(wh.manifest().tables["dim_thing"].files.len() <= 8);
        }
        // A replayed epoch changes nothing.
        let replay = wh.commit(last, &[changes(last, &[(1, "replayed".into())], &[])]).unwrap();
        prop_assert!(!replay.published);
        prop_assert_eq!(contents(&wh), model.clone());
        // Reopening sees the same snapshot, and only the files of retained snapshots remain.
        drop(wh);
        let wh = LocalWarehouse::open(dir.path(), &[spec()], options).unwrap();
        prop_assert_eq!(contents(&wh), model);
        let named: BTreeSet<String> = manifest::list(dir.path()).unwrap().iter().flat_map(|(_, m)| m.files().map(|f| f.path.clone())).collect();
        prop_assert_eq!(parquet_files(dir.path()), named.len());
    }
}

#[test]
fn a_scan_reads_only_the_columns_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let mut wh = LocalWarehouse::open(dir.path(), &[spec()], no_retention()).unwrap();
    wh.commit(1, &[changes(1, &[(1, "a".into()), (2, "b".into())], &[])])
        .unwrap();
    wh.commit(2, &[changes(2, &[(2, "B".into())], &[1])])
        .unwrap();
    let mut labels = Vec::new();
    wh.scan_table("dim_thing", Some(&["label"]), |batch| {
        assert_eq!(batch.schema().fields().len(), 1);
        assert_eq!(batch.schema().field(0).name(), "label");
        let column = batch.column(0).as_string::<i32>();
        labels.extend(column.iter().flatten().map(String::from));
        Ok::<_, WarehouseError>(())
    })
    .unwrap();
    assert_eq!(labels, ["B"], "the newest row of 2; 1 is deleted");
    let unknown = wh.scan_table(
        "dim_thing",
        Some(&["nope"]),
        |_| Ok::<_, WarehouseError>(()),
    );
    assert!(
        matches!(&unknown, Err(WarehouseError::Schema { detail, .. }) if detail.contains("nope")),
        "{unknown:?}"
    );
    let mut called = false;
    wh.scan_table("not_a_table", None, |_| {
        called = true;
        Ok::<_, WarehouseError>(())
    })
    .unwrap();
    assert!(!called);
}

#[test]
fn a_fresh_warehouse_has_empty_tables_and_views() {
    let dir = tempfile::tempdir().unwrap();
    let wh = LocalWarehouse::open(dir.path(), &[spec()], WarehouseOptions::default()).unwrap();
    assert_eq!(wh.committed_epoch(), None);
    assert_eq!(contents(&wh), BTreeMap::new());
    let sql = std::fs::read_to_string(wh.current_sql()).unwrap();
    assert!(
        sql.contains("CREATE OR REPLACE VIEW \"dim_thing\""),
        "{sql}"
    );
}

#[test]
fn files_a_crash_left_behind_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut wh = LocalWarehouse::open(dir.path(), &[spec()], WarehouseOptions::default()).unwrap();
    wh.commit(1, &[changes(1, &[(1, "a".into())], &[])])
        .unwrap();
    drop(wh);
    // A file written for epoch 2 whose manifest never got published.
    let orphan = dir
        .path()
        .join("tables/dim_thing/00000000000000000002-000009-1.parquet");
    std::fs::write(&orphan, b"partial").unwrap();
    let wh = LocalWarehouse::open(dir.path(), &[spec()], WarehouseOptions::default()).unwrap();
    assert!(!orphan.exists());
    assert_eq!(wh.committed_epoch(), Some(1));
    assert_eq!(contents(&wh).len(), 1);
}

#[test]
fn a_flush_writes_one_small_file_whatever_the_table_size() {
    let dir = tempfile::tempdir().unwrap();
    let options = WarehouseOptions {
        background_merges: false,
        ..WarehouseOptions::default()
    };
    let mut wh = LocalWarehouse::open(dir.path(), &[spec()], options).unwrap();
    let big: Vec<(i64, String)> = (0..50_000).map(|i| (i, "x".to_string())).collect();
    wh.commit(1, &[changes(1, &big, &[])]).unwrap();
    let report = wh
        .commit(2, &[changes(2, &[(7, "y".into()), (8, "z".into())], &[9])])
        .unwrap();
    assert_eq!(
        report,
        CommitReport {
            published: true,
            rows: 3,
            merges: 0
        }
    );
    let files = &wh.manifest().tables["dim_thing"].files;
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].rows, 50_000);
    assert_eq!(files[1].rows, 3);
    assert_eq!(contents(&wh).len(), 49_999);
}

#[test]
fn bad_changes_are_schema_errors_naming_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut wh = LocalWarehouse::open(dir.path(), &[spec()], WarehouseOptions::default()).unwrap();
    let mut c = changes(1, &[], &[]);
    c.table = "nope".into();
    let e = wh.commit(1, &[c]).unwrap_err();
    assert!(e.to_string().contains("table nope"), "{e}");
    let mut c = changes(1, &[], &[]);
    c.deleted_keys = Arc::new(StringArray::from(vec!["k"]));
    let e = wh.commit(1, &[c]).unwrap_err();
    assert!(
        !e.is_retryable() && e.to_string().contains("dim_thing"),
        "{e}"
    );
    assert_eq!(wh.committed_epoch(), None);
}

#[test]
fn background_merges_are_swapped_in_by_a_later_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut wh = LocalWarehouse::open(dir.path(), &[spec()], WarehouseOptions::default()).unwrap();
    let big: Vec<(i64, String)> = (0..20_000).map(|i| (i, "x".to_string())).collect();
    let first = wh.commit(1, &[changes(1, &big, &[])]).unwrap();
    // The commit does not merge: its file is published next to the empty base.
    assert_eq!(first.merges, 0);
    assert_eq!(wh.manifest().tables["dim_thing"].files.len(), 2);
    wh.wait_for_merges();
    let second = wh
        .commit(2, &[changes(2, &[(1, "y".into())], &[2])])
        .unwrap();
    assert_eq!(second.merges, 1);
    let files = &wh.manifest().tables["dim_thing"].files;
    assert_eq!(
        files.iter().map(|f| (f.rows, f.base)).collect::<Vec<_>>(),
        vec![(20_000, true), (2, false)]
    );
    let rows = contents(&wh);
    assert_eq!(rows.len(), 19_999);
    assert_eq!(rows[&1], ("y".to_string(), 2));
    // The merged-away files are gone once no retained snapshot names them.
    drop(wh);
    let wh = LocalWarehouse::open(dir.path(), &[spec()], WarehouseOptions::default()).unwrap();
    assert_eq!(contents(&wh), rows);
}

/// Options under which every snapshot but the latest is dropped at once.
fn no_retention() -> WarehouseOptions {
    WarehouseOptions {
        keep_snapshots: 1,
        retention: Duration::ZERO,
        max_files_per_table: 2,
        background_merges: false,
    }
}

#[test]
fn a_pinned_snapshot_keeps_its_files_until_the_pin_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut wh = LocalWarehouse::open(dir.path(), &[spec()], no_retention()).unwrap();
    wh.commit(1, &[changes(1, &[(1, "a".into()), (2, "b".into())], &[])])
        .unwrap();
    // Another process pins the latest snapshot.
    let pin = pin_latest(dir.path()).unwrap();
    assert_eq!(pin.epoch(), Some(1));
    let pinned: Vec<PathBuf> = pin
        .manifest()
        .files()
        .map(|f| dir.path().join(&f.path))
        .collect();
    let query = pin.table_query("dim_thing").unwrap();
    assert!(query.contains("read_parquet(["), "{query}");
    // Merges and retention would drop the snapshot of epoch 1 and its files.
    for epoch in 2..6 {
        wh.commit(
            epoch,
            &[changes(epoch, &[(epoch as i64, "c".into())], &[1])],
        )
        .unwrap();
    }
    assert!(pinned.iter().all(|p| p.exists()), "pinned files are kept");
    // A writer restart keeps them too.
    drop(wh);
    let mut wh = LocalWarehouse::open(dir.path(), &[spec()], no_retention()).unwrap();
    assert!(pinned.iter().all(|p| p.exists()), "kept across a restart");
    // Released: the next commits collect them (a reopen, for files only a pin named).
    drop(pin);
    wh.commit(6, &[changes(6, &[(6, "d".into())], &[])])
        .unwrap();
    drop(wh);
    let mut wh = LocalWarehouse::open(dir.path(), &[spec()], no_retention()).unwrap();
    wh.commit(7, &[]).unwrap();
    let live: BTreeSet<PathBuf> = wh
        .manifest()
        .files()
        .map(|f| dir.path().join(&f.path))
        .collect();
    assert!(
        pinned.iter().all(|p| !p.exists() || live.contains(p)),
        "released files are collected"
    );
    assert_eq!(contents(&wh).len(), 5);
}

#[test]
fn an_in_process_pin_holds_its_snapshot_and_a_stale_pin_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut wh = LocalWarehouse::open(dir.path(), &[spec()], no_retention()).unwrap();
    wh.commit(1, &[changes(1, &[(1, "a".into())], &[])])
        .unwrap();
    let pin = wh.pin().unwrap();
    let first: Vec<PathBuf> = pin
        .manifest()
        .files()
        .map(|f| dir.path().join(&f.path))
        .collect();
    for epoch in 2..5 {
        wh.commit(epoch, &[changes(epoch, &[(1, "b".into())], &[])])
            .unwrap();
    }
    assert!(first.iter().all(|p| p.exists()));
    // A pin left by a process that is gone (pid beyond any real one) is stale.
    let stale = dir
        .path()
        .join(PIN_DIR)
        .join("00000000000000000002-999999999-0.pin");
    std::fs::write(&stale, b"{}").unwrap();
    drop(pin);
    wh.commit(5, &[changes(5, &[(1, "c".into())], &[])])
        .unwrap();
    assert!(!stale.exists(), "a stale pin is removed");
    assert!(
        first.iter().any(|p| !p.exists()),
        "released files are collected"
    );
    assert_eq!(contents(&wh)[&1], ("c".to_string(), 5));
}
