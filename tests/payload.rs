//! `_payload`: the built-in BigCommerce tables keep each record's whole JSON
//! beside their typed columns, so a field the API adds reaches the warehouse
//! (and dbt, through DuckDB here) with the next read of the record, with no
//! code change; and a full refresh still equals a fresh one, payloads included.

mod common;

use std::path::Path;

use common::*;
use govflow_sim::MutateRequest;
use serde_json::json;

/// The built-in BigCommerce raw tables and the JSON field that holds each
/// one's key column.
const TABLES: [(&str, &str, &str); 7] = [
    ("raw_bc_customer", "id", "$.id"),
    ("raw_bc_customer_metafield", "id", "$.id"),
    ("raw_bc_product", "id", "$.id"),
    ("raw_bc_variant", "id", "$.id"),
    ("raw_bc_inventory", "variant_id", "$.identity.variant_id"),
    ("raw_bc_order", "id", "$.id"),
    ("raw_bc_order_item", "id", "$.id"),
];

/// One number from a DuckDB query over the warehouse in `dir`.
fn number(dir: &Path, query: &str) -> i64 {
    let rows = duckdb(dir, &[query]);
    rows[0][0]
        .parse()
        .unwrap_or_else(|_| panic!("{query}: {rows:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_keeps_its_json_and_a_new_field_lands_without_code() {
    let options = store(61, 60, 20, 150);
    let sim = start_sim(options.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(&sim, &options, dir.path());
    run_once(&config, false, 2).await;

    for (table, key, path) in TABLES {
        let rows = number(dir.path(), &format!("SELECT count(*) FROM {table}"));
        assert!(rows > 0, "{table} is empty");
        let bad = number(
            dir.path(),
            &format!(
                "SELECT count(*) FROM {table} WHERE _payload IS NULL \
                 OR CAST(json_extract({table}._payload, '{path}') AS BIGINT) <> {key}"
            ),
        );
        assert_eq!(bad, 0, "{table}: rows without their own JSON");
    }
    // Fields no typed column names are there, ready for a mart.
    let untyped = number(
        dir.path(),
        "SELECT count(*) FROM raw_bc_order WHERE json_extract_string(_payload, '$.payment_method') IS NULL",
    );
    assert_eq!(
        untyped, 0,
        "orders' payment_method, untyped, is in _payload"
    );
    // An order's payload leaves its lines out: they have payloads of their own.
    let embedded = number(
        dir.path(),
        "SELECT count(*) FROM raw_bc_order WHERE json_extract(_payload, '$.consignments') IS NOT NULL",
    );
    assert_eq!(embedded, 0);

    // A newer API release adds a field to orders; some orders change.
    control(
        &sim,
        "/_sim/fields",
        json!({"entity": "order", "fields": {"loyalty_tier": "gold"}}),
    )
    .await;
    sim.mutate(MutateRequest {
        count: 20,
        kinds: Some(vec!["order_status".into()]),
        dirty: false,
    })
    .unwrap();
    run_once(&config, false, 2).await;
    let gold = number(
        dir.path(),
        "SELECT count(*) FROM raw_bc_order WHERE json_extract_string(_payload, '$.loyalty_tier') = 'gold'",
    );
    assert!(
        gold > 0,
        "the new field reached the warehouse with the next read"
    );

    // A full refresh brings it on every order, and equals a fresh warehouse.
    run_once(&config, true, 2).await;
    let orders = number(dir.path(), "SELECT count(*) FROM raw_bc_order");
    let gold = number(
        dir.path(),
        "SELECT count(*) FROM raw_bc_order WHERE json_extract_string(_payload, '$.loyalty_tier') = 'gold'",
    );
    assert_eq!(gold, orders);
    let fresh = tempfile::tempdir().unwrap();
    run_once(&local_config(&sim, &options, fresh.path()), true, 2).await;
    assert_same_warehouses(&tables(dir.path()), &tables(fresh.path()));
    assert_same_through_duckdb(dir.path(), fresh.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_restores_payloads_and_an_unchanged_reread_writes_nothing() {
    let options = store(62, 30, 10, 60);
    let sim = start_sim(options.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(&sim, &options, dir.path());
    run_once(&config, false, 1).await;
    let epochs = |dir: &Path| -> Vec<i64> {
        TABLES
            .iter()
            .map(|(table, _, _)| number(dir, &format!("SELECT max(_epoch) FROM {table}")))
            .collect()
    };
    let first = epochs(dir.path());
    // A new process reads the whole store again (a full refresh): the payloads
    // it restored from the warehouse hash the same as the ones it reads, so
    // nothing is written.
    run_once(&config, true, 1).await;
    assert_eq!(epochs(dir.path()), first, "an unchanged re-read wrote rows");
}
