//! The receiver against the simulator: authentication, deduplication, reads
//! by id; and the ordering of poll pages and webhook reads.

use super::*;
use crate::config::Secret;
use crate::sources::bigcommerce::BigCommerceConfig;
use dataflows::rows::raw_bc_inventory::RawBcInventory;
use govflow_sim::{SimOptions, SimServer};

fn payload(scope: &str, kind: &str, id: i64, hash: &str) -> serde_json::Value {
    serde_json::json!({
        "scope": scope,
        "store_id": "1001",
        "data": { "type": kind, "id": id },
        "hash": hash,
        "created_at": 1,
        "producer": "stores/x",
    })
}

fn parse(v: serde_json::Value) -> WebhookPayload {
    serde_json::from_value(v).unwrap()
}

#[test]
fn scopes_name_targets() {
    let cases = [
        (
            "store/sku/inventory/updated",
            "sku",
            7,
            Some(Target::Variant(7)),
        ),
        ("store/sku/updated", "sku", 7, Some(Target::Variant(7))),
        (
            "store/product/updated",
            "product",
            3,
            Some(Target::Product(3)),
        ),
        (
            "store/product/inventory/updated",
            "product",
            3,
            Some(Target::Product(3)),
        ),
        (
            "store/customer/created",
            "customer",
            4,
            Some(Target::Customer(4)),
        ),
        ("store/customer/address/updated", "address", 4, None),
        (
            "store/metafield/updated",
            "metafield",
            9,
            Some(Target::Metafield(9)),
        ),
        (
            "store/order/statusUpdated",
            "order",
            5,
            Some(Target::Order(5)),
        ),
        ("store/cart/created", "cart", 5, None),
        ("store/order/created", "order", 0, None),
    ];
    for (scope, kind, id, want) in cases {
        assert_eq!(
            target_of(&parse(payload(scope, kind, id, "h"))),
            want,
            "{scope}"
        );
    }
    let mut with_variant = payload("store/product/inventory/updated", "product", 3, "h");
    with_variant["data"]["inventory"] = serde_json::json!({"variant_id": 12, "value": 4});
    assert_eq!(target_of(&parse(with_variant)), Some(Target::Variant(12)));
}

fn inv(id: i64, level: i64) -> Upsert {
    Upsert::Inventory(
        id,
        Some(RawBcInventory {
            variant_id: id,
            product_id: 1,
            sku: format!("V{id}"),
            available_to_sell: level,
            total_inventory_onhand: level,
            is_in_stock: level > 0,
            payload: Default::default(),
        }),
    )
}

fn send_into(out: &Mutex<Vec<Upsert>>) -> impl FnOnce(Vec<Upsert>) -> bool + '_ {
    move |rows| {
        out.lock().unwrap().extend(rows);
        true
    }
}

#[test]
fn freshness_orders_reads_by_their_start() {
    let f = Freshness::new();
    let out = Mutex::new(Vec::new());
    let t0 = Instant::now();
    let t1 = t0 + Duration::from_millis(10);
    let t2 = t0 + Duration::from_millis(20);
    let keys = known_keys(Target::Variant(7));

    // Without webhook reads, poll pages pass untouched.
    assert!(f.deliver_poll(Some(t0), vec![inv(7, 0), inv(8, 0)], send_into(&out)));
    assert_eq!(out.lock().unwrap().len(), 2);

    // A webhook read started at t1 is handed over; a page requested at t0
    // (before it) arriving later loses its row 7, keeps row 8.
    f.begin(&keys);
    assert!(f.deliver_webhook(t1, &keys, vec![inv(7, 5)], send_into(&out)));
    assert!(f.deliver_poll(Some(t0), vec![inv(7, 0), inv(8, 1)], send_into(&out)));
    assert_eq!(out.lock().unwrap()[2..], [inv(7, 5), inv(8, 1)]);
    assert_eq!(f.stale_rows(), 1);

    // A page requested at t2 (after the read) wins, and a webhook read that
    // started at t1 but finished after it is dropped.
    f.begin(&keys);
    assert!(f.deliver_poll(Some(t2), vec![inv(7, 3)], send_into(&out)));
    assert!(f.deliver_webhook(t1, &keys, vec![inv(7, 5)], send_into(&out)));
    assert_eq!(out.lock().unwrap()[4..], [inv(7, 3)]);
    assert_eq!(f.stale_rows(), 2);

    // While a webhook read is pending, a page requested later is recorded, so
    // the read (older) is dropped when it lands.
    let keys = known_keys(Target::Variant(9));
    f.begin(&keys);
    assert!(f.deliver_poll(Some(t2), vec![inv(9, 4)], send_into(&out)));
    assert!(f.deliver_webhook(t1, &keys, vec![inv(9, 0)], send_into(&out)));
    assert_eq!(out.lock().unwrap()[5..], [inv(9, 4)]);
}

async fn sim() -> (SimServer, BigCommerceSource) {
    let options = SimOptions {
        seed: 5,
        customers: 20,
        products: 5,
        orders: 10,
        quota: None,
        ..SimOptions::default()
    };
    let sim = SimServer::bind(options.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let config = BigCommerceConfig::new(
        sim.base_url().parse().unwrap(),
        options.store_hash.clone(),
        Secret::new(options.access_token.clone()),
    );
    (sim, BigCommerceSource::new(config).unwrap())
}

#[tokio::test]
async fn reads_by_id_bring_the_entity() {
    let (_sim, source) = sim().await;
    let (upserts, _, dead, _) = source.fetch(Target::Variant(1)).await.unwrap();
    assert!(dead.is_empty());
    let tables: Vec<&str> = upserts.iter().map(Upsert::table).collect();
    assert_eq!(tables, ["raw_bc_variant", "raw_bc_inventory"]);
    assert!(upserts.iter().all(|u| u.key() == 1));
    let (upserts, _, _, _) = source.fetch(Target::Product(1)).await.unwrap();
    assert_eq!(upserts[0], upserts[0].clone());
    assert!(
        upserts
            .iter()
            .any(|u| u.table() == "raw_bc_product" && u.key() == 1)
    );
    assert!(upserts.iter().any(|u| u.table() == "raw_bc_variant"));
    assert!(upserts.iter().any(|u| u.table() == "raw_bc_inventory"));
    let (upserts, _, _, _) = source.fetch(Target::Customer(2)).await.unwrap();
    assert_eq!(
        upserts
            .iter()
            .map(|u| (u.table(), u.key()))
            .collect::<Vec<_>>(),
        [("raw_bc_customer", 2)]
    );
    let (upserts, _, _, _) = source.fetch(Target::Order(103)).await.unwrap();
    let mut got: Vec<(&str, i64)> = upserts.iter().map(|u| (u.table(), u.key())).collect();
    got.sort();
    assert_eq!(got, [("raw_bc_order", 103), ("raw_bc_order_item", 103)]);
    // Gone or never there: nothing.
    let (upserts, _, dead, _) = source.fetch(Target::Customer(999_999)).await.unwrap();
    assert!(upserts.is_empty() && dead.is_empty());
}

#[tokio::test]
async fn the_receiver_authenticates_deduplicates_and_feeds() {
    let (_sim, source) = sim().await;
    let fed: Arc<Mutex<Vec<Upsert>>> = Arc::default();
    let sink = fed.clone();
    let feed: Feed = Arc::new(move |upserts, _, _| {
        sink.lock().unwrap().extend(upserts);
        true
    });
    let config = WebhooksConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        secret_header: "X-Secret".into(),
        secret: Secret::new("0123456789abcdef"),
    };
    let (stop_tx, stop) = watch::channel(false);
    let server = WebhookServer::start(&config, Arc::new(source), Freshness::new(), feed, stop)
        .await
        .unwrap();
    let url = format!("http://{}/bigcommerce/webhooks", server.local_addr);
    let client = reqwest::Client::new();
    let post = |secret: &str, body: serde_json::Value| {
        client
            .post(&url)
            .header("X-Secret", secret)
            .json(&body)
            .send()
    };
    let sku = payload("store/sku/inventory/updated", "sku", 2, "h-1");
    assert_eq!(
        post("wrong-secret-000", sku.clone())
            .await
            .unwrap()
            .status(),
        401
    );
    let unsigned = client.post(&url).json(&sku).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    assert_eq!(
        post("0123456789abcdef", serde_json::json!({"nope": 1}))
            .await
            .unwrap()
            .status(),
        400
    );
    for _ in 0..3 {
        assert_eq!(
            post("0123456789abcdef", sku.clone())
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let customer = payload("store/customer/updated", "customer", 3, "h-2");
    assert_eq!(
        post("0123456789abcdef", customer).await.unwrap().status(),
        200
    );
    for _ in 0..100 {
        if server.stats.fetched.load(Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = &server.stats;
    assert_eq!(stats.unauthorized.load(Ordering::SeqCst), 2);
    assert_eq!(stats.malformed.load(Ordering::SeqCst), 1);
    assert_eq!(stats.duplicates.load(Ordering::SeqCst), 2);
    assert_eq!(stats.accepted.load(Ordering::SeqCst), 2);
    assert_eq!(stats.fetched.load(Ordering::SeqCst), 2);
    let mut got: Vec<(&str, i64)> = fed
        .lock()
        .unwrap()
        .iter()
        .map(|u| (u.table(), u.key()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("raw_bc_customer", 3),
            ("raw_bc_inventory", 2),
            ("raw_bc_variant", 2)
        ]
    );
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server.join())
        .await
        .unwrap();
}
