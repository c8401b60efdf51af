//! The BigCommerce simulator over real HTTP (127.0.0.1, port 0): shapes, filters,
//! paging, rate limits, mutations, truth, faults, stats and webhooks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use govflow_sim::{MutateRequest, SimOptions, SimServer};
use serde_json::{Value, json};

const TOKEN: &str = "sim-token";
const HASH: &str = "govflowsim";

fn small() -> SimOptions {
    SimOptions {
        seed: 7,
        customers: 200,
        products: 50,
        orders: 400,
        quota: None,
        ..SimOptions::default()
    }
}

async fn start(opts: SimOptions) -> SimServer {
    SimServer::bind(opts, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind simulator")
}

/// A client of one simulator.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(sim: &SimServer) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: sim.base_url(),
        }
    }

    /// GET an API path (after `/stores/{hash}`) with the token.
    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/stores/{HASH}{path}", self.base))
            .header("X-Auth-Token", TOKEN)
            .send()
            .await
            .expect("request")
    }

    /// GET an API path and parse the JSON body, asserting 200.
    async fn json(&self, path: &str) -> Value {
        let resp = self.get(path).await;
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.expect("json body")
    }

    async fn post_sim(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/_sim/{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    async fn truth(&self) -> Vec<Value> {
        let resp = self
            .http
            .get(format!("{}/_sim/truth", self.base))
            .send()
            .await
            .expect("truth");
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"].to_str().ok(),
            Some("application/x-ndjson")
        );
        let text = resp.text().await.expect("truth body");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("truth line"))
            .collect()
    }

    async fn stats(&self) -> Value {
        self.http
            .get(format!("{}/_sim/stats", self.base))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats json")
    }
}

fn of<'a>(truth: &'a [Value], entity: &str) -> Vec<&'a Value> {
    truth.iter().filter(|v| v["entity"] == entity).collect()
}

fn by_id<'a>(truth: &'a [Value], entity: &str) -> BTreeMap<u64, &'a Value> {
    of(truth, entity)
        .into_iter()
        .map(|v| (v["id"].as_u64().expect("id"), v))
        .collect()
}

fn money(v: &Value) -> i64 {
    let s = v.as_str().expect("V2 money is a string");
    let (int, frac) = s.split_once('.').expect("decimal point");
    assert_eq!(frac.len(), 4, "four decimals in {s}");
    int.parse::<i64>().expect("int") * 10_000 + frac.parse::<i64>().expect("frac")
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_and_not_found_use_v2_and_v3_error_shapes() {
    let sim = start(small()).await;
    let api = Api::new(&sim);
    let v2 = api
        .http
        .get(format!("{}/stores/{HASH}/v2/orders", api.base))
        .send()
        .await
        .expect("request");
    assert_eq!(v2.status(), 401);
    let body: Value = v2.json().await.expect("json");
    assert_eq!(body[0]["status"], 401);
    assert!(body[0]["message"].is_string());

    let v3 = api
        .http
        .get(format!("{}/stores/{HASH}/v3/customers", api.base))
        .header("X-Auth-Token", "wrong")
        .send()
        .await
        .expect("request");
    assert_eq!(v3.status(), 401);
    let body: Value = v3.json().await.expect("json");
    assert_eq!(body["status"], 401);
    assert!(body["title"].is_string());
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("https://"))
    );

    let other_store = api
        .http
        .get(format!("{}/stores/nope/v3/customers", api.base))
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(other_store.status(), 404);
    assert_eq!(api.get("/v3/nothing").await.status(), 404);
    assert_eq!(api.get("/v3/catalog/products/999999").await.status(), 404);
    let missing = api.get("/v2/orders/999999").await;
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.expect("json");
    assert_eq!(body[0]["status"], 404);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_bad_filters_and_empty_v2_pages() {
    let sim = start(small()).await;
    let api = Api::new(&sim);
    let v3 = api.get("/v3/customers?limit=251").await;
    assert_eq!(v3.status(), 413);
    let body: Value = v3.json().await.expect("json");
    assert_eq!(body["status"], 413);
    assert_eq!(api.get("/v2/orders?limit=251").await.status(), 413);
    assert_eq!(api.get("/v3/customers?limit=250").await.status(), 200);

    let empty = api.get("/v2/orders?page=1000").await;
    assert_eq!(empty.status(), 204);
    assert!(empty.bytes().await.expect("body").is_empty());
    let none = api.get("/v2/orders?customer_id=999999").await;
    assert_eq!(none.status(), 204);

    let bad_v3 = api.get("/v3/customers?date_modified:min=yesterday").await;
    assert_eq!(bad_v3.status(), 422);
    let body: Value = bad_v3.json().await.expect("json");
    assert!(body["errors"]["date_modified:min"].is_string(), "{body}");
    let bad_v2 = api.get("/v2/orders?min_date_modified=soon").await;
    assert_eq!(bad_v2.status(), 400);
    let body: Value = bad_v2.json().await.expect("json");
    assert!(
        body[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("min_date_modified"))
    );
    assert_eq!(api.get("/v3/customers?id:in=1,x").await.status(), 422);
    assert_eq!(api.get("/v3/customers?page=0").await.status(), 422);
    assert_eq!(
        api.get("/v3/catalog/products?sort=name").await.status(),
        422
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_orders_have_rfc2822_dates_string_money_and_consistent_totals() {
    let sim = start(small()).await;
    let api = Api::new(&sim);
    let orders = api
        .json("/v2/orders?limit=250&include=consignments.line_items")
        .await;
    let orders = orders.as_array().expect("bare array");
    assert_eq!(orders.len(), 250);
    for o in orders {
        let created = o["date_created"].as_str().expect("date");
        assert!(created.ends_with(" +0000"), "{created}");
        chrono::DateTime::parse_from_rfc2822(created).expect("RFC 2822");
        assert_eq!(o["is_deleted"], false);
        let lines = o["consignments"][0]["shipping"][0]["line_items"]
            .as_array()
            .expect("line items");
        assert!(!lines.is_empty() && lines.len() <= 5);
        let inc: i64 = lines.iter().map(|l| money(&l["total_inc_tax"])).sum();
        let ex: i64 = lines.iter().map(|l| money(&l["total_ex_tax"])).sum();
        let qty: u64 = lines
            .iter()
            .map(|l| l["quantity"].as_u64().expect("qty"))
            .sum();
        assert_eq!(money(&o["total_inc_tax"]), inc);
        assert_eq!(money(&o["subtotal_ex_tax"]), ex);
        assert_eq!(o["items_total"].as_u64(), Some(qty));
        assert_eq!(o["consignments"][0]["pickups"], json!([]));
        let id = o["id"].as_u64().expect("id");
        assert!(
            o["products"]["url"]
                .as_str()
                .is_some_and(|u| u.ends_with(&format!("/v2/orders/{id}/products")))
        );
        assert!(o["status"].is_string());
    }
    // Without the include there are no consignments.
    let plain = api.json("/v2/orders?limit=5").await;
    assert!(plain[0].get("consignments").is_none());

    // Line items by order, paged.
    let id = orders[0]["id"].as_u64().expect("id");
    let items = api.json(&format!("/v2/orders/{id}/products")).await;
    assert_eq!(
        items.as_array().map(Vec::len),
        orders[0]["consignments"][0]["shipping"][0]["line_items"]
            .as_array()
            .map(Vec::len)
    );
    assert_eq!(
        api.get(&format!("/v2/orders/{id}/products?page=2"))
            .await
            .status(),
        204
    );
    let one = api.json(&format!("/v2/orders/{id}")).await;
    assert_eq!(one["id"], id);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_dates_pagination_and_includes() {
    let sim = start(small()).await;
    let api = Api::new(&sim);
    let page = api.json("/v3/customers?limit=10&page=2").await;
    let p = &page["meta"]["pagination"];
    assert_eq!(p["total"], 200);
    assert_eq!(p["count"], 10);
    assert_eq!(p["per_page"], 10);
    assert_eq!(p["current_page"], 2);
    assert_eq!(p["total_pages"], 20);
    assert_eq!(p["links"]["previous"], "?page=1&limit=10");
    assert_eq!(p["links"]["current"], "?page=2&limit=10");
    assert_eq!(p["links"]["next"], "?page=3&limit=10");
    let data = page["data"].as_array().expect("data");
    assert_eq!(data[0]["id"], 11);
    let modified = data[0]["date_modified"].as_str().expect("date");
    assert!(modified.ends_with('Z'), "{modified}");
    chrono::DateTime::parse_from_rfc3339(modified).expect("ISO 8601");

    let last = api.json("/v3/customers?limit=10&page=20").await;
    assert!(last["meta"]["pagination"]["links"].get("next").is_none());
    let past = api.json("/v3/customers?limit=10&page=21").await;
    assert_eq!(past["data"], json!([]));
    assert_eq!(past["meta"]["pagination"]["count"], 0);

    let products = api
        .json("/v3/catalog/products?include=variants&limit=250")
        .await;
    let products = products["data"].as_array().expect("data");
    assert_eq!(products.len(), 50);
    for p in products {
        assert!(
            p["date_modified"]
                .as_str()
                .is_some_and(|d| d.ends_with("+00:00"))
        );
        assert!(p["price"].is_number());
        let variants = p["variants"].as_array().expect("variants");
        assert!((1..=4).contains(&variants.len()));
        let sum: i64 = variants
            .iter()
            .map(|v| v["inventory_level"].as_i64().expect("level"))
            .sum();
        assert_eq!(p["inventory_level"].as_i64(), Some(sum));
        assert_eq!(p["base_variant_id"], variants[0]["id"]);
    }
    let single = api.json("/v3/catalog/products/1?include=variants").await;
    assert_eq!(single["data"]["id"], 1);
    assert!(single["data"]["variants"].is_array());
    assert_eq!(single["meta"], json!({}));
    let bare = api.json("/v3/catalog/products?limit=1").await;
    assert!(bare["data"][0].get("variants").is_none());

    let variants = api.json("/v3/catalog/variants?product_id:in=1,2").await;
    for v in variants["data"].as_array().expect("data") {
        assert!(v["product_id"] == 1 || v["product_id"] == 2);
    }
    let items = api.json("/v3/inventory/items?limit=250").await;
    let first = &items["data"][0];
    assert!(first["identity"]["variant_id"].is_u64());
    assert_eq!(first["locations"][0]["location_id"], 1);
    assert!(first["locations"][0]["settings"]["is_in_stock"].is_boolean());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_sorting_and_archived_orders() {
    let sim = start(small()).await;
    let api = Api::new(&sim);
    let truth = api.truth().await;

    // date_modified:min is inclusive; sort ties by id ascending.
    let customers = by_id(&truth, "customer");
    let (&pick, c) = customers.iter().nth(17).expect("customer");
    let min = c["date_modified"].as_str().expect("date").to_string();
    let page = api
        .json(&format!(
            "/v3/customers?date_modified:min={}&sort=date_modified:asc&limit=250",
            enc(&min)
        ))
        .await;
    let data = page["data"].as_array().expect("data");
    assert!(data.iter().any(|x| x["id"] == pick));
    let keys: Vec<(String, u64)> = data
        .iter()
        .map(|x| {
            (
                x["date_modified"].as_str().expect("d").to_string(),
                x["id"].as_u64().expect("id"),
            )
        })
        .collect();
    assert!(keys.windows(2).all(|w| w[0] <= w[1]));
    assert!(keys.iter().all(|(d, _)| *d >= min));
    let expected = customers
        .values()
        .filter(|x| {
            x["date_modified"]
                .as_str()
                .is_some_and(|d| d >= min.as_str())
        })
        .count();
    assert_eq!(page["meta"]["pagination"]["total"], expected);

    // id:in
    let some = api.json("/v3/customers?id:in=3,5,8").await;
    let ids: Vec<u64> = some["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|x| x["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, vec![3, 5, 8]);

    // V2 min_date_modified (RFC 2822, inclusive) with sort=date_modified:asc.
    let orders = by_id(&truth, "order");
    let live: Vec<&&Value> = orders
        .values()
        .filter(|o| o["is_deleted"] == false)
        .collect();
    let mid = live[live.len() / 2]["date_modified"].as_str().expect("d");
    let mid_ts = chrono::DateTime::parse_from_rfc2822(mid)
        .expect("rfc")
        .timestamp();
    let expected: BTreeSet<u64> = live
        .iter()
        .filter(|o| {
            chrono::DateTime::parse_from_rfc2822(o["date_modified"].as_str().expect("d"))
                .expect("rfc")
                .timestamp()
                >= mid_ts
        })
        .map(|o| o["id"].as_u64().expect("id"))
        .collect();
    let got = api
        .json(&format!(
            "/v2/orders?min_date_modified={}&sort=date_modified:asc&limit=250",
            enc(mid)
        ))
        .await;
    let got_ids: BTreeSet<u64> = got
        .as_array()
        .expect("array")
        .iter()
        .map(|o| o["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(got_ids, expected);
    // The same filter as ISO 8601 without an offset.
    let iso = chrono::DateTime::from_timestamp(mid_ts, 0)
        .expect("ts")
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let got_iso = api
        .json(&format!("/v2/orders?min_date_modified={iso}&limit=250"))
        .await;
    assert_eq!(got_iso.as_array().map(Vec::len), Some(expected.len()));

    // Archived orders only with is_deleted=true.
    let archived: BTreeSet<u64> = orders
        .values()
        .filter(|o| o["is_deleted"] == true)
        .map(|o| o["id"].as_u64().expect("id"))
        .collect();
    assert!(!archived.is_empty());
    let resp = api.get("/v2/orders?is_deleted=true&limit=250").await;
    let got: Vec<Value> = resp.json().await.expect("json");
    let got: BTreeSet<u64> = got.iter().map(|o| o["id"].as_u64().expect("id")).collect();
    assert_eq!(got, archived);
    let first_archived = archived.iter().next().expect("archived");
    let one = api.json(&format!("/v2/orders/{first_archived}")).await;
    assert_eq!(one["is_deleted"], true);
    let mut live_count = 0;
    for page in 1.. {
        let resp = api.get(&format!("/v2/orders?limit=100&page={page}")).await;
        if resp.status() == 204 {
            break;
        }
        let arr: Vec<Value> = resp.json().await.expect("json");
        assert!(arr.iter().all(|o| o["is_deleted"] == false));
        live_count += arr.len();
    }
    assert_eq!(live_count, live.len());

    // Metafields: batch and per customer.
    let restock = api
        .json("/v3/customers/metafields?namespace=govflow&key=restock_subscriptions&limit=250")
        .await;
    let restock = restock["data"].as_array().expect("data");
    assert!(!restock.is_empty());
    let value = restock[0]["value"].as_str().expect("string value");
    let parsed: Vec<u64> = serde_json::from_str(value).expect("JSON array of ids");
    assert!((1..=3).contains(&parsed.len()));
    assert_eq!(restock[0]["resource_type"], "customer");
    let owner = restock[0]["resource_id"].as_u64().expect("owner");
    let own = api.json(&format!("/v3/customers/{owner}/metafields")).await;
    assert!(
        own["data"]
            .as_array()
            .expect("data")
            .iter()
            .all(|m| m["resource_id"] == owner)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_date_only_filter_gets_the_time_of_day_appended() {
    let sim = start(small()).await;
    let api = Api::new(&sim);
    let report = sim
        .mutate(MutateRequest {
            count: 1,
            kinds: Some(vec!["product_update".into()]),
            dirty: false,
        })
        .expect("mutate");
    let id = report.changes[0].id;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let ids = |v: &Value| -> Vec<u64> {
        v["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|x| x["id"].as_u64().expect("id"))
            .collect()
    };
    let with_time = api
        .json(&format!(
            "/v3/catalog/products?date_modified:min={today}T00:00:00"
        ))
        .await;
    assert_eq!(ids(&with_time), vec![id]);
    let date_only = api
        .json(&format!("/v3/catalog/products?date_modified:min={today}"))
        .await;
    assert!(
        ids(&date_only).is_empty(),
        "the date-only cursor skips the change"
    );

    // Customers do not have the quirk: a bare date is midnight.
    sim.mutate(MutateRequest {
        count: 1,
        kinds: Some(vec!["customer_update".into()]),
        dirty: false,
    })
    .expect("mutate");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let customers = api
        .json(&format!("/v3/customers?date_modified:min={today}"))
        .await;
    assert_eq!(customers["data"].as_array().map(Vec::len), Some(1));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_headers_and_429_once_the_quota_is_used() {
    let sim = start(SimOptions {
        quota: Some(5),
        ..small()
    })
    .await;
    let api = Api::new(&sim);
    for left in (0..5).rev() {
        let resp = api.get("/v3/customers?limit=1").await;
        assert_eq!(resp.status(), 200);
        let h = resp.headers();
        assert_eq!(h["x-rate-limit-time-window-ms"], "30000");
        assert_eq!(h["x-rate-limit-requests-quota"], "5");
        assert_eq!(h["x-rate-limit-requests-left"], left.to_string().as_str());
        let reset: u64 = h["x-rate-limit-time-reset-ms"]
            .to_str()
            .expect("str")
            .parse()
            .expect("ms");
        assert!(reset > 0 && reset <= 30_000);
    }
    let over = api.get("/v2/orders").await;
    assert_eq!(over.status(), 429);
    assert_eq!(over.headers()["x-rate-limit-requests-left"], "0");
    assert!(over.headers().contains_key("x-rate-limit-time-reset-ms"));
    // The control API is exempt and not counted.
    let stats = api.stats().await;
    assert_eq!(stats["requests"], 6);
    assert_eq!(stats["by_status"]["200"], 5);
    assert_eq!(stats["by_status"]["429"], 1);
    assert_eq!(stats["arrivals_ms"].as_array().map(Vec::len), Some(6));
    sim.shutdown().await;

    // Errors carry the headers too; without a quota there are none.
    let sim = start(SimOptions {
        quota: Some(5),
        ..small()
    })
    .await;
    let api = Api::new(&sim);
    let unauth = api
        .http
        .get(format!("{}/stores/{HASH}/v3/customers", api.base))
        .send()
        .await
        .expect("request");
    assert_eq!(unauth.status(), 401);
    assert_eq!(unauth.headers()["x-rate-limit-requests-left"], "4");
    sim.shutdown().await;
    let sim = start(small()).await;
    let api = Api::new(&sim);
    let resp = api.get("/v3/customers").await;
    assert!(!resp.headers().contains_key("x-rate-limit-requests-left"));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_bump_date_modified_where_the_doc_says() {
    let sim = start(small()).await;
    let api = Api::new(&sim);
    let before = api.truth().await;

    let unknown = api
        .post_sim(
            "mutate",
            json!({"count": 1, "kinds": ["restock", "teleport"]}),
        )
        .await;
    assert_eq!(unknown.status(), 422);
    assert!(unknown.text().await.expect("text").contains("teleport"));

    let resp = api
        .post_sim(
            "mutate",
            json!({"count": 12, "kinds": ["customer_update", "restock", "order_update", "metafield_upsert"]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.expect("report");
    assert_eq!(report["total"], 12);
    let applied: u64 = report["applied"]
        .as_object()
        .expect("applied")
        .values()
        .map(|n| n.as_u64().expect("n"))
        .sum();
    assert_eq!(applied, 12);
    let after = api.truth().await;

    let (old_c, new_c) = (by_id(&before, "customer"), by_id(&after, "customer"));
    let (old_p, new_p) = (by_id(&before, "product"), by_id(&after, "product"));
    let (old_o, new_o) = (by_id(&before, "order"), by_id(&after, "order"));
    let old_v = by_id(&before, "variant");
    let new_v = by_id(&after, "variant");
    for ch in report["changes"].as_array().expect("changes") {
        let id = ch["id"].as_u64().expect("id");
        match (ch["kind"].as_str(), ch["entity"].as_str()) {
            (Some("customer_update"), Some("customer")) => {
                assert!(
                    new_c[&id]["date_modified"].as_str() > old_c[&id]["date_modified"].as_str()
                );
            }
            (Some("order_update"), Some("order")) => {
                let (o, n) = (&old_o[&id], &new_o[&id]);
                let t = |v: &Value| {
                    chrono::DateTime::parse_from_rfc2822(v["date_modified"].as_str().expect("d"))
                        .expect("rfc")
                };
                assert!(t(n) > t(o));
            }
            (Some("restock"), Some("variant")) => {
                assert!(
                    new_v[&id]["inventory_level"].as_i64() > old_v[&id]["inventory_level"].as_i64()
                );
                let product = new_v[&id]["product_id"].as_u64().expect("product");
                assert_eq!(
                    new_p[&product]["date_modified"], old_p[&product]["date_modified"],
                    "restock must not bump the product"
                );
            }
            (Some("metafield_upsert"), Some("customer_metafield")) => {
                let owner = by_id(&after, "customer_metafield")[&id]["resource_id"]
                    .as_u64()
                    .expect("owner");
                let changed_customers: BTreeSet<u64> = report["changes"]
                    .as_array()
                    .expect("changes")
                    .iter()
                    .filter(|c| c["entity"] == "customer")
                    .map(|c| c["id"].as_u64().expect("id"))
                    .collect();
                if !changed_customers.contains(&owner) {
                    assert_eq!(
                        new_c[&owner]["date_modified"], old_c[&owner]["date_modified"],
                        "a metafield change must not bump its customer"
                    );
                }
            }
            _ => {}
        }
    }

    // Totals stay consistent with the lines after order updates.
    let items = of(&after, "order_item");
    for (id, o) in &new_o {
        let sum: i64 = items
            .iter()
            .filter(|i| i["order_id"] == *id)
            .map(|i| money(&i["total_inc_tax"]))
            .sum();
        assert_eq!(money(&o["total_inc_tax"]), sum, "order {id}");
    }

    // Deletes remove dependants.
    let report = sim
        .mutate(MutateRequest {
            count: 3,
            kinds: Some(vec!["product_delete".into(), "customer_delete".into()]),
            dirty: false,
        })
        .expect("mutate");
    let truth = api.truth().await;
    for ch in &report.changes {
        let gone = by_id(&truth, &ch.entity);
        assert!(!gone.contains_key(&ch.id), "{ch:?} still there");
        if ch.entity == "product" {
            assert!(
                of(&truth, "variant")
                    .iter()
                    .all(|v| v["product_id"] != ch.id)
            );
            assert!(
                of(&truth, "inventory_item")
                    .iter()
                    .all(|v| v["identity"]["product_id"] != ch.id)
            );
        }
        if ch.entity == "customer" {
            assert!(
                of(&truth, "customer_metafield")
                    .iter()
                    .all(|m| m["resource_id"] != ch.id)
            );
        }
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_applies_and_time_never_goes_back() {
    let sim = start(small()).await;
    let report = sim
        .mutate(MutateRequest {
            count: 300,
            kinds: None,
            dirty: false,
        })
        .expect("mutate");
    assert_eq!(report.total, 300);
    assert_eq!(report.applied.len(), 15, "{:?}", report.applied);
    let api = Api::new(&sim);
    // date_modified:desc puts the newest first, and every mutated order is at least as new
    // as the newest seed record.
    let newest = api
        .json("/v3/customers?sort=date_modified:desc&limit=1")
        .await;
    let d = newest["data"][0]["date_modified"].as_str().expect("d");
    assert!(d > "2025-12-31T23:59:59Z", "{d}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truth_lists_every_entity_and_is_deterministic() {
    let a = start(small()).await;
    let b = start(small()).await;
    let c = start(SimOptions { seed: 8, ..small() }).await;
    let (ta, tb, tc) = (
        Api::new(&a).truth().await,
        Api::new(&b).truth().await,
        Api::new(&c).truth().await,
    );
    assert_eq!(ta, tb);
    assert_ne!(ta, tc);
    assert_eq!(of(&ta, "customer").len(), 200);
    assert_eq!(of(&ta, "product").len(), 50);
    assert_eq!(of(&ta, "order").len(), 400);
    let variants = of(&ta, "variant").len();
    assert!((50..=200).contains(&variants));
    assert_eq!(of(&ta, "inventory_item").len(), variants);
    assert!(!of(&ta, "customer_metafield").is_empty());
    assert!(of(&ta, "order_item").len() >= 400);
    assert!(
        of(&ta, "product")
            .iter()
            .all(|p| p.get("variants").is_none())
    );
    assert!(
        of(&ta, "order")
            .iter()
            .all(|o| o.get("consignments").is_none())
    );
    let guests = of(&ta, "order")
        .iter()
        .filter(|o| o["customer_id"] == 0)
        .count();
    assert!(guests > 0);

    // The same mutations give the same data, timestamps aside.
    for sim in [&a, &b] {
        sim.mutate(MutateRequest {
            count: 50,
            kinds: None,
            dirty: false,
        })
        .expect("mutate");
    }
    let strip = |t: Vec<Value>| -> Vec<Value> {
        t.into_iter()
            .map(|mut v| {
                if let Some(o) = v.as_object_mut() {
                    o.remove("date_modified");
                    o.remove("date_created");
                }
                v
            })
            .collect()
    };
    assert_eq!(
        strip(Api::new(&a).truth().await),
        strip(Api::new(&b).truth().await)
    );
    a.shutdown().await;
    b.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_errors_storms_truncation_and_malformed_records() {
    let sim = start(small()).await;
    let api = Api::new(&sim);

    let resp = api.post_sim("faults", json!({"error_rate": 1.0})).await;
    assert_eq!(resp.status(), 200);
    for _ in 0..5 {
        let s = api.get("/v3/customers").await.status().as_u16();
        assert!([500, 502, 503].contains(&s), "{s}");
    }
    assert_eq!(api.stats().await["requests"], 5);
    assert_eq!(api.post_sim("faults", json!({})).await.status(), 200);
    assert_eq!(api.get("/v3/customers").await.status(), 200);
    assert_eq!(
        api.post_sim("faults", json!({"error_rate": 2}))
            .await
            .status(),
        422
    );
    assert_eq!(
        api.post_sim("faults", json!({"eror_rate": 0.1}))
            .await
            .status(),
        422
    );

    api.post_sim("faults", json!({"storm_429": 3, "storm_reset_ms": 120}))
        .await;
    for _ in 0..3 {
        let resp = api.get("/v2/orders").await;
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["x-rate-limit-time-reset-ms"], "120");
        assert_eq!(resp.headers()["x-rate-limit-requests-left"], "0");
    }
    assert_eq!(api.get("/v2/orders").await.status(), 200);

    api.post_sim("faults", json!({"bare_429_rate": 1.0})).await;
    let bare = api.get("/v2/orders").await;
    assert_eq!(bare.status(), 429);
    assert!(!bare.headers().contains_key("x-rate-limit-time-reset-ms"));

    api.post_sim("faults", json!({"truncate_rate": 1.0})).await;
    let resp = api.get("/v3/customers?limit=250").await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.bytes().await.is_err(),
        "a truncated body fails to read"
    );
    // Errors are not truncated.
    let err = api.get("/v3/customers?limit=251").await;
    assert_eq!(err.status(), 413);
    assert!(err.bytes().await.is_ok());

    api.post_sim("faults", json!({"latency_ms": 150})).await;
    let t0 = std::time::Instant::now();
    assert_eq!(api.get("/v3/customers?limit=1").await.status(), 200);
    assert!(t0.elapsed() >= Duration::from_millis(150));

    api.post_sim("faults", json!({"malformed_rate": 1.0})).await;
    let customers = api.json("/v3/customers?limit=20").await;
    for c in customers["data"].as_array().expect("data") {
        assert!(c["id"].is_u64());
        let date_ok = c["date_modified"]
            .as_str()
            .is_some_and(|d| chrono::DateTime::parse_from_rfc3339(d).is_ok());
        assert!(!date_ok || !c["email"].is_string(), "{c}");
    }
    let orders = api
        .json("/v2/orders?limit=20&include=consignments.line_items")
        .await;
    for o in orders.as_array().expect("array") {
        assert!(o["id"].is_u64());
        let lines = o["consignments"][0]["shipping"][0]["line_items"]
            .as_array()
            .expect("lines");
        assert!(lines.iter().all(|l| l["quantity"].is_u64()));
    }
    let products = api.json("/v3/catalog/products?limit=20").await;
    for p in products["data"].as_array().expect("data") {
        assert!(!p["price"].is_number() || p["date_modified"] == "not a date");
    }
    // The same records stay malformed, and truth never is.
    let again = api.json("/v3/customers?limit=20").await;
    assert_eq!(again, customers);
    let truth = api.truth().await;
    assert!(
        of(&truth, "customer")
            .iter()
            .all(|c| c["email"].is_string() && c["date_modified"] != "not a date")
    );
    api.post_sim("faults", json!({"malformed_rate": 0.2})).await;
    let some = api.json("/v3/customers?limit=250").await;
    let broken = some["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter(|c| !c["email"].is_string() || c["date_modified"] == "not a date")
        .count();
    assert!((10..=80).contains(&broken), "{broken} of 200 malformed");
    sim.shutdown().await;
}

/// A webhook receiver: records every delivery; answers `fail_first` 500s first.
async fn receiver(fail_first: usize) -> (String, Arc<Mutex<Vec<(axum::http::HeaderMap, Value)>>>) {
    use axum::routing::post;
    let got: Arc<Mutex<Vec<(axum::http::HeaderMap, Value)>>> = Arc::default();
    let calls = Arc::new(Mutex::new(0usize));
    let store = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let store = store.clone();
                let calls = calls.clone();
                async move {
                    let n = {
                        let mut c = calls.lock().expect("lock");
                        *c += 1;
                        *c
                    };
                    if n <= fail_first {
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    let v: Value = serde_json::from_slice(&body).expect("json payload");
                    store.lock().expect("lock").push((headers, v));
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), got)
}

async fn wait_for(got: &Arc<Mutex<Vec<(axum::http::HeaderMap, Value)>>>, n: usize, secs: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while got.lock().expect("lock").len() < n && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_delivered_with_custom_headers() {
    let sim = start(small()).await;
    let api = Api::new(&sim);
    let (url, got) = receiver(0).await;
    let resp = api
        .post_sim(
            "webhooks",
            json!({"destination": url, "headers": {"X-Webhook-Secret": "s3cret"}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    sim.mutate(MutateRequest {
        count: 3,
        kinds: Some(vec!["order_update".into()]),
        dirty: false,
    })
    .expect("mutate");
    sim.mutate(MutateRequest {
        count: 1,
        kinds: Some(vec!["sell_out".into()]),
        dirty: false,
    })
    .expect("mutate");
    wait_for(&got, 5, 10).await;
    let got = got.lock().expect("lock").clone();
    assert_eq!(got.len(), 5);
    for (headers, body) in &got {
        assert_eq!(headers["x-webhook-secret"], "s3cret");
        assert_eq!(body["producer"], format!("stores/{HASH}"));
        assert_eq!(body["store_id"], "1001");
        let hash = body["hash"].as_str().expect("hash");
        assert_eq!(hash.len(), 40);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(body["created_at"].is_i64());
    }
    let scopes: BTreeMap<String, usize> = got.iter().fold(BTreeMap::new(), |mut m, (_, b)| {
        *m.entry(b["scope"].as_str().expect("scope").to_string())
            .or_default() += 1;
        m
    });
    assert_eq!(scopes.get("store/order/updated"), Some(&3));
    assert_eq!(scopes.get("store/sku/inventory/updated"), Some(&1));
    assert_eq!(scopes.get("store/product/inventory/updated"), Some(&1));
    let sku = got
        .iter()
        .find(|(_, b)| b["scope"] == "store/sku/inventory/updated")
        .expect("sku event");
    let inv = &sku.1["data"]["inventory"];
    assert_eq!(inv["method"], "absolute");
    assert_eq!(inv["value"], 0);
    assert_eq!(sku.1["data"]["type"], "sku");
    assert_eq!(inv["variant_id"], sku.1["data"]["id"]);

    // Bad registrations are refused, null clears.
    assert_eq!(
        api.post_sim("webhooks", json!({"destination": "not a url"}))
            .await
            .status(),
        422
    );
    assert_eq!(
        api.post_sim("webhooks", json!({"destination": null}))
            .await
            .status(),
        200
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_retry_failures_and_duplicate_on_request() {
    let sim = start(small()).await;
    let api = Api::new(&sim);
    let (url, got) = receiver(1).await;
    api.post_sim(
        "webhooks",
        json!({"destination": url, "duplicate_rate": 1.0}),
    )
    .await;
    sim.mutate(MutateRequest {
        count: 1,
        kinds: Some(vec!["order_archive".into()]),
        dirty: false,
    })
    .expect("mutate");
    // The first delivery fails and is retried after 1 s; the duplicate follows.
    wait_for(&got, 2, 10).await;
    let got = got.lock().expect("lock").clone();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1["scope"], "store/order/archived");
    assert_eq!(got[0].1["hash"], got[1].1["hash"]);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sorting_orders_and_ties() {
    let sim = start(small()).await;
    let api = Api::new(&sim);
    // Many records share one date_modified after a burst of mutations in the same second.
    sim.mutate(MutateRequest {
        count: 40,
        kinds: Some(vec!["product_update".into()]),
        dirty: false,
    })
    .expect("mutate");
    let key = |v: &Value, date: &str| {
        (
            v[date].as_str().expect("date").to_string(),
            v["id"].as_u64().expect("id"),
        )
    };
    let desc = api
        .json("/v3/catalog/products?sort=date_modified&direction=desc&limit=250")
        .await;
    let keys: Vec<(String, u64)> = desc["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|v| key(v, "date_modified"))
        .collect();
    assert_eq!(keys.len(), 50);
    for w in keys.windows(2) {
        assert!(
            w[0].0 > w[1].0 || (w[0].0 == w[1].0 && w[0].1 < w[1].1),
            "{w:?}"
        );
    }
    let asc = api
        .json("/v3/catalog/products?sort=date_modified&limit=250")
        .await;
    let keys: Vec<(String, u64)> = asc["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|v| key(v, "date_modified"))
        .collect();
    assert!(keys.windows(2).all(|w| w[0] <= w[1]));

    let created = api
        .json("/v3/customers?sort=date_created:desc&limit=250")
        .await;
    let keys: Vec<(String, u64)> = created["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|v| key(v, "date_created"))
        .collect();
    assert!(
        keys.windows(2)
            .all(|w| w[0].0 > w[1].0 || (w[0].0 == w[1].0 && w[0].1 < w[1].1))
    );

    let by_id_desc = api.json("/v2/orders?sort=id:desc&limit=5").await;
    let ids: Vec<u64> = by_id_desc
        .as_array()
        .expect("array")
        .iter()
        .map(|o| o["id"].as_u64().expect("id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]));

    // Links keep the filters.
    let page = api
        .json("/v3/catalog/products?sort=date_modified&limit=10&include=variants")
        .await;
    assert_eq!(
        page["meta"]["pagination"]["links"]["next"],
        "?page=2&limit=10&sort=date_modified&include=variants"
    );
    let post = api
        .http
        .post(format!("{}/stores/{HASH}/v3/customers", api.base))
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(post.status(), 405);
    sim.shutdown().await;
}
