//! The simulator's data as a finance team sees it (docs/simulator.md,
//! docs/metrics.md): sale prices below prices, refunds and partial refunds with
//! their `refunded_amount`, and dirty data on demand (`"dirty": true`,
//! `--dirty-rate`), deterministic for a seed.

use std::collections::BTreeMap;
use std::process::Command;

use govflow_sim::{DIRTY_KINDS, MutateRequest, SimError, SimOptions, SimServer};
use serde_json::{Value, json};

fn small(seed: u64) -> SimOptions {
    SimOptions {
        seed,
        customers: 150,
        products: 40,
        orders: 500,
        quota: None,
        ..SimOptions::default()
    }
}

async fn start(opts: SimOptions) -> SimServer {
    SimServer::bind(opts, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind simulator")
}

async fn truth(sim: &SimServer) -> Vec<Value> {
    let text = reqwest::get(format!("{}/_sim/truth", sim.base_url()))
        .await
        .expect("truth")
        .text()
        .await
        .expect("truth body");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("truth line"))
        .collect()
}

fn of<'a>(truth: &'a [Value], entity: &str) -> Vec<&'a Value> {
    truth.iter().filter(|v| v["entity"] == entity).collect()
}

/// An amount in cents (V2 strings, V3 numbers); `None` for null.
fn cents(v: &Value) -> Option<i64> {
    let x = match v {
        Value::String(s) => s.parse::<f64>().expect("a decimal string"),
        Value::Number(n) => n.as_f64().expect("a number"),
        _ => return None,
    };
    Some((x * 100.0).round() as i64)
}

/// The truth without the wall-clock dates mutations stamp.
fn undated(truth: &[Value]) -> Vec<Value> {
    truth
        .iter()
        .map(|v| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("date_modified");
                m.remove("date_created");
            }
            v
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sale_prices_stay_below_prices_and_refunds_are_served() {
    let sim = start(small(11)).await;
    sim.mutate(MutateRequest {
        count: 600,
        kinds: None,
        dirty: false,
    })
    .expect("mutate");
    let t = truth(&sim).await;
    let products: BTreeMap<u64, &Value> = of(&t, "product")
        .into_iter()
        .map(|p| (p["id"].as_u64().expect("id"), p))
        .collect();
    let mut on_sale = 0;
    for p in products.values() {
        let (price, sale) = (cents(&p["price"]), cents(&p["sale_price"]));
        if sale.is_some_and(|s| s > 0) {
            on_sale += 1;
            assert!(sale < price, "{p}");
        }
    }
    for v in of(&t, "variant") {
        let product = products[&v["product_id"].as_u64().expect("product_id")];
        let price = cents(&v["price"]).or(cents(&product["price"]));
        if let Some(sale) = cents(&v["sale_price"]).filter(|s| *s > 0) {
            on_sale += 1;
            assert!(Some(sale) < price, "{v}");
        }
    }
    assert!(on_sale > 5, "{on_sale} sale prices");

    let (mut full, mut partial) = (0, 0);
    for o in of(&t, "order") {
        let total = cents(&o["total_inc_tax"]).expect("total");
        let refunded = cents(&o["refunded_amount"]).expect("refunded_amount");
        assert!((0..=total).contains(&refunded), "{o}");
        match o["status_id"].as_u64() {
            Some(4) => {
                // All of it, or (one order in five) a partial refund marked Refunded.
                full += 1;
                let partial = o["id"].as_u64().is_some_and(|id| id % 5 == 0);
                assert!(
                    refunded == total || (partial && refunded > 0 && refunded < total),
                    "{o}"
                );
            }
            Some(14) => {
                partial += 1;
                assert!(refunded > 0 && refunded < total, "{o}");
            }
            _ => {}
        }
    }
    assert!(
        full > 0 && partial > 0,
        "{full} refunded, {partial} partially"
    );

    // The V2 API serves `refunded_amount` like its other money fields.
    let orders: Value = reqwest::Client::new()
        .get(format!(
            "{}/stores/govflowsim/v2/orders?status_id=14",
            sim.base_url()
        ))
        .header("X-Auth-Token", "sim-token")
        .send()
        .await
        .expect("orders")
        .json()
        .await
        .expect("json");
    let first = &orders[0]["refunded_amount"];
    let text = first.as_str().expect("a string");
    assert!(
        text.len() > 5 && text.as_bytes()[text.len() - 5] == b'.',
        "{text}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dirty_mutations_take_turns_and_are_deterministic() {
    let a = start(small(12)).await;
    let b = start(small(12)).await;
    let mut reports = Vec::new();
    for sim in [&a, &b] {
        let report: Value = reqwest::Client::new()
            .post(format!("{}/_sim/mutate", sim.base_url()))
            .json(&json!({"count": 2 * DIRTY_KINDS.len(), "dirty": true}))
            .send()
            .await
            .expect("mutate")
            .json()
            .await
            .expect("report");
        reports.push(report);
    }
    assert_eq!(reports[0]["applied"], reports[1]["applied"]);
    assert_eq!(reports[0]["changes"], reports[1]["changes"]);
    for kind in DIRTY_KINDS {
        assert_eq!(reports[0]["applied"][kind], 2, "{}", reports[0]);
    }
    let (ta, tb) = (truth(&a).await, truth(&b).await);
    assert_eq!(undated(&ta), undated(&tb));
    // The dirt is there: negative stock, an inventory item missing, one of a
    // variant the catalog no longer lists, a zero quantity, empty names, a
    // sale price above its price.
    assert!(
        of(&ta, "variant")
            .iter()
            .any(|v| v["inventory_level"].as_i64() < Some(0))
    );
    let variant_ids: Vec<&Value> = of(&ta, "variant").iter().map(|v| &v["id"]).collect();
    let item_ids: Vec<&Value> = of(&ta, "inventory_item")
        .iter()
        .map(|i| &i["identity"]["variant_id"])
        .collect();
    assert!(
        variant_ids.iter().any(|v| !item_ids.contains(v)),
        "an item missing"
    );
    assert!(
        item_ids.iter().any(|i| !variant_ids.contains(i)),
        "an item of an unlisted variant"
    );
    assert!(of(&ta, "order_item").iter().any(|i| i["quantity"] == 0));
    assert!(
        of(&ta, "customer")
            .iter()
            .any(|c| c["first_name"] == "" && c["last_name"] == "")
    );
    assert!(
        of(&ta, "product")
            .iter()
            .any(|p| cents(&p["sale_price"]) > cents(&p["price"]))
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dirty_rate_mixes_dirty_mutations_in() {
    let dirty = |report: &govflow_sim::MutateReport| {
        report
            .applied
            .iter()
            .filter(|(k, _)| k.starts_with("dirty_"))
            .map(|(_, n)| *n)
            .sum::<usize>()
    };
    let request = || MutateRequest {
        count: 200,
        kinds: None,
        dirty: false,
    };
    let clean = start(small(13)).await;
    let report = clean.mutate(request()).expect("mutate");
    assert_eq!(dirty(&report), 0);
    let mixed = start(SimOptions {
        dirty_rate: 0.25,
        ..small(13)
    })
    .await;
    let report = mixed.mutate(request()).expect("mutate");
    assert_eq!(report.total, 200);
    let n = dirty(&report);
    assert!(
        (20..=80).contains(&n),
        "{n} dirty of 200: {:?}",
        report.applied
    );
    clean.shutdown().await;
    mixed.shutdown().await;

    let bad = SimServer::bind(
        SimOptions {
            dirty_rate: 1.5,
            ..small(13)
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await;
    assert!(matches!(bad, Err(SimError::Options(m)) if m.contains("dirty rate")));
    // `govflow sim --dirty-rate` refuses the same.
    let out = Command::new(env!("CARGO_BIN_EXE_govflow"))
        .args(["sim", "--port", "0", "--dirty-rate", "1.5"])
        .output()
        .expect("govflow runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("dirty rate"));
}
