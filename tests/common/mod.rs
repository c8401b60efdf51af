//! Shared helpers of the integration tests: a simulator on 127.0.0.1, a
//! BigCommerce configuration pointing at it, and the simulator's truth turned
//! into govflow's records by an independent reading of its JSON.

#![allow(dead_code)]

pub mod bigquery;
pub mod contract;
pub mod pg;
pub mod slack;

use dataflows::rows::raw_bc_customer::RawBcCustomer;
use dataflows::rows::raw_bc_customer_metafield::RawBcCustomerMetafield;
use dataflows::rows::raw_bc_inventory::RawBcInventory;
use dataflows::rows::raw_bc_order::RawBcOrder;
use dataflows::rows::raw_bc_order_item::RawBcOrderItem;
use dataflows::rows::raw_bc_product::RawBcProduct;
use dataflows::rows::raw_bc_variant::RawBcVariant;
use std::collections::BTreeMap;
use std::time::Duration;

use dataflows::oracle::RawState;
use dataflows::records::{Payload, Upsert};
use dataflows::scalar::{Micros, Money};
use dataflows::{Table, TableRow};
use govflow::config::Secret;
use govflow::format;
use govflow::settings::Config;
use govflow::sinks::local::{LocalWarehouse, WarehouseOptions};
use govflow::sinks::{StateConfig, WarehouseConfig};
use govflow::sources::bigcommerce::BigCommerceConfig;
use govflow_sim::{SimOptions, SimServer};
use serde_json::Value;

/// Starts a simulator on a free loopback port.
pub async fn start_sim(options: SimOptions) -> SimServer {
    SimServer::bind(options, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("simulator starts")
}

/// Simulator options for a small store without rate limiting.
pub fn store(seed: u64, customers: usize, products: usize, orders: usize) -> SimOptions {
    SimOptions {
        seed,
        customers,
        products,
        orders,
        quota: None,
        ..SimOptions::default()
    }
}

/// A source configuration for the simulator.
pub fn config_for(sim: &SimServer, options: &SimOptions) -> BigCommerceConfig {
    let mut c = BigCommerceConfig::new(
        sim.base_url().parse().unwrap(),
        options.store_hash.clone(),
        Secret::new(options.access_token.clone()),
    );
    c.request_timeout = Duration::from_secs(10);
    c
}

/// `upsert` with [`Payload::NONE`] in its records.
pub fn without_payload(upsert: Upsert) -> Upsert {
    fn clear<T>(value: Option<T>, payload: fn(&mut T) -> &mut Payload) -> Option<T> {
        value.map(|mut v| {
            *payload(&mut v) = Payload::NONE;
            v
        })
    }
    match upsert {
        Upsert::Customer(k, v) => Upsert::Customer(k, clear(v, |r| &mut r.payload)),
        Upsert::CustomerMetafield(k, v) => {
            Upsert::CustomerMetafield(k, clear(v, |r| &mut r.payload))
        }
        Upsert::Product(k, v) => Upsert::Product(k, clear(v, |r| &mut r.payload)),
        Upsert::Variant(k, v) => Upsert::Variant(k, clear(v, |r| &mut r.payload)),
        Upsert::Inventory(k, v) => Upsert::Inventory(k, clear(v, |r| &mut r.payload)),
        Upsert::Order(k, v) => Upsert::Order(k, clear(v, |r| &mut r.payload)),
        Upsert::OrderItems(k, v) => Upsert::OrderItems(
            k,
            v.map(|lines| {
                lines
                    .into_iter()
                    .map(|mut l| {
                        l.payload = Payload::NONE;
                        l
                    })
                    .collect()
            }),
        ),
        other => other,
    }
}

/// Applies upserts in order, without their payloads: the truth has none
/// (its JSON is not the API's), `tests/payload.rs` checks them.
pub fn apply(state: &mut RawState, upserts: impl IntoIterator<Item = Upsert>) {
    for u in upserts {
        state.apply(without_payload(u));
    }
}

/// Row counts per table, for messages.
pub fn counts(state: &RawState) -> [usize; 9] {
    [
        state.customers.len(),
        state.customer_metafields.len(),
        state.products.len(),
        state.variants.len(),
        state.inventory.len(),
        state.orders.len(),
        state.order_items.values().map(Vec::len).sum(),
        state.point_transactions.len(),
        state.quotations.len(),
    ]
}

/// A pipeline over the simulator's store into a local warehouse, with the
/// warehouse and state under `dir` and pages of 100 records.
pub fn local_config(sim: &SimServer, options: &SimOptions, dir: &std::path::Path) -> Config {
    let mut bc = config_for(sim, options);
    bc.page_size = 100;
    Config {
        bigcommerce: Some(bc),
        warehouse: WarehouseConfig::Local {
            dir: dir.join("warehouse"),
        },
        state: StateConfig {
            dir: dir.join("state"),
        },
        ..Config::default()
    }
}

/// Fetches `/_sim/truth` and reads it into a [`RawState`].
pub async fn truth(sim: &SimServer) -> RawState {
    let text = reqwest::get(format!("{}/_sim/truth", sim.base_url()))
        .await
        .expect("truth")
        .text()
        .await
        .expect("truth body");
    let mut t = RawState::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).expect("truth line is JSON");
        match v["entity"].as_str().expect("entity") {
            "customer" => {
                let c = RawBcCustomer {
                    id: int(&v, "id"),
                    email: string(&v, "email").into(),
                    first_name: string(&v, "first_name").into(),
                    last_name: string(&v, "last_name").into(),
                    company: string(&v, "company").into(),
                    phone: string(&v, "phone").into(),
                    customer_group_id: int(&v, "customer_group_id"),
                    created_at: date(&v, "date_created"),
                    modified_at: date(&v, "date_modified"),
                    payload: Default::default(),
                };
                t.customers.insert(c.id, c);
            }
            "customer_metafield" => {
                let m = RawBcCustomerMetafield {
                    id: int(&v, "id"),
                    customer_id: int(&v, "resource_id"),
                    namespace: string(&v, "namespace"),
                    key: string(&v, "key"),
                    value: string(&v, "value"),
                    created_at: date(&v, "date_created"),
                    modified_at: date(&v, "date_modified"),
                    payload: Default::default(),
                };
                t.customer_metafields.insert(m.id, m);
            }
            "product" => {
                let p = RawBcProduct {
                    id: int(&v, "id"),
                    name: string(&v, "name"),
                    sku: string(&v, "sku"),
                    price: money(&v["price"]).expect("price"),
                    sale_price: money(&v["sale_price"]).unwrap_or_default(),
                    is_visible: v["is_visible"].as_bool().expect("is_visible"),
                    availability: string(&v, "availability"),
                    inventory_tracking: string(&v, "inventory_tracking"),
                    brand_id: int(&v, "brand_id"),
                    created_at: date(&v, "date_created"),
                    modified_at: date(&v, "date_modified"),
                    payload: Default::default(),
                };
                t.products.insert(p.id, p);
            }
            "variant" => {
                let x = RawBcVariant {
                    id: int(&v, "id"),
                    product_id: int(&v, "product_id"),
                    sku: string(&v, "sku"),
                    price: money(&v["price"]),
                    sale_price: money(&v["sale_price"]),
                    inventory_level: int(&v, "inventory_level"),
                    is_purchasing_disabled: v["purchasing_disabled"]
                        .as_bool()
                        .expect("purchasing_disabled"),
                    payload: Default::default(),
                };
                t.variants.insert(x.id, x);
            }
            "inventory_item" => {
                let id = &v["identity"];
                let locations = v["locations"].as_array().expect("locations");
                let sum = |f: &str| {
                    locations
                        .iter()
                        .map(|l| l[f].as_i64().expect(f))
                        .sum::<i64>()
                };
                let i = RawBcInventory {
                    variant_id: int(id, "variant_id"),
                    product_id: int(id, "product_id"),
                    sku: string(id, "sku"),
                    available_to_sell: sum("available_to_sell"),
                    total_inventory_onhand: sum("total_inventory_onhand"),
                    is_in_stock: locations
                        .iter()
                        .any(|l| l["settings"]["is_in_stock"].as_bool() == Some(true)),
                    payload: Default::default(),
                };
                t.inventory.insert(i.variant_id, i);
            }
            "order" => {
                let o = RawBcOrder {
                    id: int(&v, "id"),
                    customer_id: int(&v, "customer_id"),
                    status_id: int(&v, "status_id"),
                    status: string(&v, "status").into(),
                    subtotal_ex_tax: money(&v["subtotal_ex_tax"]).expect("money"),
                    subtotal_inc_tax: money(&v["subtotal_inc_tax"]).expect("money"),
                    total_ex_tax: money(&v["total_ex_tax"]).expect("money"),
                    total_inc_tax: money(&v["total_inc_tax"]).expect("money"),
                    refunded_amount: money(&v["refunded_amount"]).expect("money"),
                    items_total: int(&v, "items_total"),
                    currency_code: string(&v, "currency_code").into(),
                    is_deleted: v["is_deleted"].as_bool().expect("is_deleted"),
                    created_at: date(&v, "date_created"),
                    modified_at: date(&v, "date_modified"),
                    payload: Default::default(),
                };
                t.orders.insert(o.id, o);
            }
            "order_item" => {
                let i = RawBcOrderItem {
                    id: int(&v, "id"),
                    order_id: int(&v, "order_id"),
                    product_id: int(&v, "product_id"),
                    variant_id: int(&v, "variant_id"),
                    sku: string(&v, "sku").into(),
                    name: string(&v, "name").into(),
                    quantity: int(&v, "quantity"),
                    base_price: money(&v["base_price"]).expect("money"),
                    price_ex_tax: money(&v["price_ex_tax"]).expect("money"),
                    price_inc_tax: money(&v["price_inc_tax"]).expect("money"),
                    total_ex_tax: money(&v["total_ex_tax"]).expect("money"),
                    total_inc_tax: money(&v["total_inc_tax"]).expect("money"),
                    payload: Default::default(),
                };
                t.order_items.entry(i.order_id).or_default().push(i);
            }
            // Collections no built-in table covers.
            "brand" | "coupon" => {}
            other => panic!("unknown truth entity {other}"),
        }
    }
    for lines in t.order_items.values_mut() {
        lines.sort_by_key(|l| l.id);
    }
    t
}

fn int(v: &Value, field: &str) -> i64 {
    v[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} is not an integer in {v}"))
}

fn string(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_default().to_string()
}

/// V2 money is a string, V3 a number; null is none.
fn money(v: &Value) -> Option<Money> {
    match v {
        Value::String(s) => Some(Money::parse(s).expect("money string")),
        Value::Number(n) => {
            Some(Money::from_f64(n.as_f64().expect("number")).expect("money number"))
        }
        _ => None,
    }
}

fn date(v: &Value, field: &str) -> Micros {
    let text = v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing in {v}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .or_else(|_| chrono::DateTime::parse_from_rfc2822(text))
        .unwrap_or_else(|e| panic!("{field}: {text:?}: {e}"))
        .timestamp_micros()
}

/// Asserts two maps are equal, printing the first few differences.
pub fn assert_same<V: PartialEq + std::fmt::Debug>(
    what: &str,
    got: &BTreeMap<i64, V>,
    want: &BTreeMap<i64, V>,
) {
    compare(what, got, want, false)
}

/// Compares maps; with `allow_extra`, keys absent from `want` (deleted
/// upstream, which only a full refresh reconciles) may remain in `got`.
pub fn compare<V: PartialEq + std::fmt::Debug>(
    what: &str,
    got: &BTreeMap<i64, V>,
    want: &BTreeMap<i64, V>,
    allow_extra: bool,
) {
    let mut problems = Vec::new();
    for (k, w) in want {
        match got.get(k) {
            None => problems.push(format!("missing {k}")),
            Some(g) if g != w => problems.push(format!("{k}: got {g:?}, want {w:?}")),
            _ => {}
        }
    }
    if !allow_extra {
        for k in got.keys().filter(|k| !want.contains_key(k)) {
            problems.push(format!("unexpected {k}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{what}: {} differences (got {}, want {}), first: {:#?}",
        problems.len(),
        got.len(),
        want.len(),
        &problems[..problems.len().min(5)]
    );
}

/// Asserts every table equals the truth (with `allow_extra`: holds every
/// truth row, and possibly rows deleted upstream).
pub fn assert_tables(got: &RawState, want: &RawState, allow_extra: bool) {
    compare("customers", &got.customers, &want.customers, allow_extra);
    compare(
        "metafields",
        &got.customer_metafields,
        &want.customer_metafields,
        allow_extra,
    );
    compare("products", &got.products, &want.products, allow_extra);
    compare("variants", &got.variants, &want.variants, allow_extra);
    compare("inventory", &got.inventory, &want.inventory, allow_extra);
    compare("orders", &got.orders, &want.orders, allow_extra);
    compare(
        "order items",
        &got.order_items,
        &want.order_items,
        allow_extra,
    );
    compare(
        "point transactions",
        &got.point_transactions,
        &want.point_transactions,
        allow_extra,
    );
    compare("quotations", &got.quotations, &want.quotations, allow_extra);
}

/// POSTs a JSON body to a control endpoint and returns the JSON answer.
pub async fn control(sim: &SimServer, path: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", sim.base_url()))
        .json(&body)
        .send()
        .await
        .expect("control request");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.expect("control answer")
}

/// Every table's rows (without `_epoch`), sorted.
pub fn tables(dir: &std::path::Path) -> Vec<(Table, Vec<TableRow>)> {
    let wh = LocalWarehouse::open(
        &dir.join("warehouse"),
        &format::table_specs(),
        WarehouseOptions::default(),
    )
    .unwrap();
    Table::ALL
        .into_iter()
        .map(|t| {
            let mut rows = match wh.read_table(t.name()).unwrap() {
                Some(batch) => format::rows_from_batch(t, &batch).unwrap(),
                None => Vec::new(),
            };
            rows.sort();
            (t, rows)
        })
        .collect()
}

/// Tables that hold the current state of the store, which a fresh full
/// refresh must reproduce: every table but `product_notification_event`, a
/// history of restocks that a fresh warehouse never saw.
pub fn state_tables() -> impl Iterator<Item = Table> {
    Table::ALL
        .into_iter()
        .filter(|t| *t != Table::ProductNotificationEvent)
}

/// Asserts two warehouses (as read by [`tables`]) hold the same rows, table by
/// table ([`state_tables`] only).
pub fn assert_same_warehouses(a: &[(Table, Vec<TableRow>)], b: &[(Table, Vec<TableRow>)]) {
    for ((table, rows_a), (_, rows_b)) in a.iter().zip(b) {
        if *table == Table::ProductNotificationEvent {
            continue;
        }
        assert_eq!(
            rows_a.len(),
            rows_b.len(),
            "{}: row counts differ",
            table.name()
        );
        assert!(rows_a == rows_b, "{}: rows differ", table.name());
    }
}

/// The project's Python (with DuckDB), set up by `./dev.sh test`.
pub fn python() -> String {
    std::env::var("GOVFLOW_PYTHON").unwrap_or_else(|_| {
        let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
        assert!(
            std::path::Path::new(venv).exists(),
            "DuckDB's Python is missing: run the tests with ./dev.sh test, which installs it"
        );
        venv.to_string()
    })
}

const DUCKDB_COMPARE: &str = r#"
import sys, duckdb
a, b, tables = sys.argv[1], sys.argv[2], sys.argv[3:]
con_a, con_b = duckdb.connect(), duckdb.connect()
con_a.execute(open(a).read())
con_b.execute(open(b).read())
bad = 0
for t in tables:
    q = f'SELECT * EXCLUDE (_epoch) FROM "{t}" ORDER BY ALL'
    ra, rb = con_a.execute(q).fetchall(), con_b.execute(q).fetchall()
    if ra != rb:
        bad += 1
        print(f"{t}: {len(ra)} rows vs {len(rb)} rows differ")
sys.exit(1 if bad else 0)
"#;

/// Asserts two warehouses read through their `current.sql` by DuckDB hold the
/// same rows in every table of [`state_tables`] (`_epoch` aside).
pub fn assert_same_through_duckdb(a: &std::path::Path, b: &std::path::Path) {
    let names: Vec<&str> = state_tables().map(|t| t.name()).collect();
    let out = std::process::Command::new(python())
        .args(["-c", DUCKDB_COMPARE])
        .arg(a.join("warehouse/current.sql"))
        .arg(b.join("warehouse/current.sql"))
        .args(&names)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "DuckDB sees different warehouses: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const DUCKDB_QUERY: &str = r#"
import sys, duckdb
con = duckdb.connect()
con.execute(open(sys.argv[1]).read())
for q in sys.argv[2:]:
    for row in con.execute(q).fetchall():
        print("|".join("NULL" if v is None else str(v) for v in row))
    print("--")
"#;

/// The rows of each query over the warehouse under `dir`, through DuckDB and
/// `current.sql`, as `a|b|c` lines (NULL for null), one list per query.
pub fn duckdb(dir: &std::path::Path, queries: &[&str]) -> Vec<Vec<String>> {
    try_duckdb(dir, queries).unwrap_or_else(|e| panic!("DuckDB failed: {e}"))
}

/// [`duckdb`], with DuckDB's error instead of a panic.
pub fn try_duckdb(dir: &std::path::Path, queries: &[&str]) -> Result<Vec<Vec<String>>, String> {
    let out = std::process::Command::new(python())
        .args(["-c", DUCKDB_QUERY])
        .arg(dir.join("warehouse/current.sql"))
        .args(queries)
        .output()
        .expect("python runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).to_string());
    }
    let mut results = vec![Vec::new()];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        match line {
            "--" => results.push(Vec::new()),
            row => results.last_mut().unwrap().push(row.to_string()),
        }
    }
    results.truncate(queries.len());
    Ok(results)
}

/// `govflow::runtime::run` of `config` with `--once` (flushes every 100 ms).
pub async fn try_run_once(
    config: &govflow::settings::Config,
    full_refresh: bool,
    workers: usize,
) -> Result<(), govflow::runtime::RunError> {
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let options = govflow::runtime::RunOptions {
        workers,
        flush_interval: Duration::from_millis(100),
        once: true,
        full_refresh,
        ..govflow::runtime::RunOptions::default()
    };
    govflow::runtime::run(
        config.clone(),
        options,
        stop_rx,
        govflow::runtime::ProgressHandle::default(),
    )
    .await
}

/// [`try_run_once`], which must succeed.
pub async fn run_once(config: &govflow::settings::Config, full_refresh: bool, workers: usize) {
    try_run_once(config, full_refresh, workers)
        .await
        .expect("run --once succeeds");
}

/// `govflow run --once [--full-refresh] --config <config>` as a user runs it
/// (the binary), with `env` set; it must succeed.
pub fn govflow_once(config: &std::path::Path, env: &[(&str, &str)], full_refresh: bool) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_govflow"));
    cmd.args(["--log", "warn", "run", "--once", "--config"])
        .arg(config)
        .envs(env.iter().copied());
    if full_refresh {
        cmd.arg("--full-refresh");
    }
    let out = cmd.output().expect("govflow runs");
    assert!(
        out.status.success(),
        "govflow run --once failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The committed epoch of the warehouse under `dir` (opens it: only while no pipeline runs).
pub fn committed_epoch(dir: &std::path::Path) -> Option<u64> {
    LocalWarehouse::open(
        &dir.join("warehouse"),
        &format::table_specs(),
        WarehouseOptions::default(),
    )
    .unwrap()
    .committed_epoch()
}
