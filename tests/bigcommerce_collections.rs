//! BigCommerce collections that are not built in, by configuration alone:
//! `[[bigcommerce.collections]]` entries land as `raw_bc_<name>` with typed
//! top-level fields and `_payload`, through `govflow run` as a user runs it
//! (a config file and the binary) against the simulator over HTTP. A V3
//! collection (brands) and a V2 one (coupons, money as strings, RFC 2822
//! dates) are scanned whole, so deletes show; a collection with a cursor
//! filter (customers by `date_modified:min`) is read incrementally. The
//! result equals a fresh full refresh into an empty warehouse.

mod common;

use std::path::Path;

use common::{control, duckdb, start_sim, store};
use govflow_sim::{SimOptions, SimServer};
use serde_json::json;

fn write_config(dir: &Path, sim: &SimServer, options: &SimOptions) -> std::path::PathBuf {
    let path = dir.join("govflow.toml");
    let text = format!(
        r#"[bigcommerce]
base_url = "{base}"
store_hash = "{hash}"
access_token = "${{TEST_BC_TOKEN}}"
poll_interval = "200ms"
page_size = 50

[[bigcommerce.collections]]
name = "brands"
path = "/v3/catalog/brands"

[[bigcommerce.collections]]
name = "coupons"
path = "/v2/coupons"
scan_every = 1

[[bigcommerce.collections]]
name = "customer_records"
path = "/v3/customers"
cursor_filter = "date_modified:min"

[warehouse]
dir = "{warehouse}"

[state]
dir = "{state}"
"#,
        base = sim.base_url(),
        hash = options.store_hash,
        warehouse = dir.join("warehouse").display(),
        state = dir.join("state").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The simulator's truth of `entity`: `id|field` lines, by id.
async fn truth(sim: &SimServer, entity: &str, field: &str) -> Vec<String> {
    let text = reqwest::get(format!("{}/_sim/truth", sim.base_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut rows: Vec<(i64, String)> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["entity"] == entity)
        .map(|v| {
            let value = match &v[field] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (v["id"].as_i64().unwrap(), value)
        })
        .collect();
    rows.sort();
    rows.into_iter()
        .map(|(id, v)| format!("{id}|{v}"))
        .collect()
}

const BRANDS: &str = "SELECT id, name FROM raw_bc_brands ORDER BY id";
const COUPONS: &str = "SELECT id, code FROM raw_bc_coupons ORDER BY id";
const CUSTOMERS: &str = "SELECT id, email FROM raw_bc_customer_records ORDER BY id";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_collections_land_typed_with_their_payload() {
    let options = store(91, 30, 60, 20);
    let sim = start_sim(options.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim, &options);
    common::govflow_once(&config, &[("TEST_BC_TOKEN", &options.access_token)], false);

    let got = duckdb(
        dir.path(),
        &[
            BRANDS,
            COUPONS,
            CUSTOMERS,
            "SELECT column_name, column_type FROM (DESCRIBE raw_bc_coupons) ORDER BY column_name",
            "SELECT count(*) FROM raw_bc_coupons WHERE json_extract_string(_payload, '$.applies_to.entity') = 'categories'",
            "SELECT count(*) FROM raw_bc_brands WHERE json_array_length(json_extract(_payload, '$.meta_keywords')) = 2",
        ],
    );
    assert_eq!(got[0], truth(&sim, "brand", "name").await);
    assert_eq!(got[1], truth(&sim, "coupon", "code").await);
    assert_eq!(got[2], truth(&sim, "customer", "email").await);
    assert!(!got[0].is_empty() && !got[1].is_empty() && !got[2].is_empty());
    // Scalars are typed columns (V2 money strings as decimals, RFC 2822 dates
    // as timestamps); objects and arrays are in `_payload`.
    assert_eq!(
        got[3],
        [
            "_epoch|BIGINT",
            "_payload|VARCHAR",
            "amount|DECIMAL(18,4)",
            "code|VARCHAR",
            "date_created|TIMESTAMP WITH TIME ZONE",
            "enabled|BOOLEAN",
            "expires|VARCHAR",
            "id|BIGINT",
            "max_uses|BIGINT",
            "max_uses_per_customer|BIGINT",
            "min_purchase|DECIMAL(18,4)",
            "name|VARCHAR",
            "num_uses|BIGINT",
            "shipping_methods|VARCHAR",
            "type|VARCHAR",
        ]
    );
    assert_eq!(got[4], [got[1].len().to_string()]);
    assert_eq!(got[5], [got[0].len().to_string()]);

    // Upstream changes: new and updated brands and coupons, deleted coupons,
    // updated customers.
    control(
        &sim,
        "/_sim/mutate",
        json!({"count": 12, "kinds": ["brand_upsert", "coupon_upsert", "coupon_delete", "customer_update"]}),
    )
    .await;
    common::govflow_once(&config, &[("TEST_BC_TOKEN", &options.access_token)], false);
    let got = duckdb(dir.path(), &[BRANDS, COUPONS, CUSTOMERS]);
    assert_eq!(got[0], truth(&sim, "brand", "name").await);
    assert_eq!(
        got[1],
        truth(&sim, "coupon", "code").await,
        "a scan finds deletes"
    );
    assert_eq!(got[2], truth(&sim, "customer", "email").await);

    // Equal to a fresh full refresh into an empty warehouse.
    common::govflow_once(&config, &[("TEST_BC_TOKEN", &options.access_token)], true);
    let fresh = tempfile::tempdir().unwrap();
    let fresh_config = write_config(fresh.path(), &sim, &options);
    common::govflow_once(
        &fresh_config,
        &[("TEST_BC_TOKEN", &options.access_token)],
        true,
    );
    let all = [
        "SELECT * EXCLUDE (_epoch) FROM raw_bc_brands ORDER BY ALL",
        "SELECT * EXCLUDE (_epoch) FROM raw_bc_coupons ORDER BY ALL",
        "SELECT * EXCLUDE (_epoch) FROM raw_bc_customer_records ORDER BY ALL",
    ];
    assert_eq!(duckdb(dir.path(), &all), duckdb(fresh.path(), &all));
    sim.shutdown().await;
}
