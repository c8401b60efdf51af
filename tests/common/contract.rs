//! The metrics contract (docs/metrics.md) computed from the simulator's truth
//! (`GET /_sim/truth`, read as plain JSON, none of govflow's code), and
//! compared with the warehouse's tables: shared by `tests/metrics.rs`.

use std::collections::{BTreeMap, BTreeSet};

use dataflows::{Table, TableRow};
use govflow_sim::SimServer;
use serde_json::Value;

use super::assert_same;

/// BigCommerce's paid statuses (docs/metrics.md).
pub const PAID: [i64; 7] = [2, 3, 8, 9, 10, 11, 14];

/// `/_sim/truth` as JSON values, by entity.
pub struct Truth(BTreeMap<String, Vec<Value>>);

impl Truth {
    pub async fn fetch(sim: &SimServer) -> Truth {
        let text = reqwest::get(format!("{}/_sim/truth", sim.base_url()))
            .await
            .expect("truth")
            .text()
            .await
            .expect("truth body");
        let mut by_entity: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).expect("a JSON line");
            let entity = v["entity"].as_str().expect("entity").to_string();
            by_entity.entry(entity).or_default().push(v);
        }
        Truth(by_entity)
    }

    pub fn of(&self, entity: &str) -> &[Value] {
        self.0.get(entity).map_or(&[], Vec::as_slice)
    }
}

/// An amount in ten-thousandths (V2 strings, V3 numbers); `None` for null.
pub fn amount(v: &Value) -> Option<i64> {
    let x = match v {
        Value::String(s) => s.parse::<f64>().expect("a decimal string"),
        Value::Number(n) => n.as_f64().expect("a number"),
        _ => return None,
    };
    Some((x * 10_000.0).round() as i64)
}

pub fn int(v: &Value, field: &str) -> i64 {
    v[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

fn micros(v: &Value, field: &str) -> i64 {
    let text = v[field].as_str().expect("a date");
    chrono::DateTime::parse_from_rfc2822(text)
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(text))
        .expect("a date")
        .timestamp_micros()
}

/// One order as the contract sees it.
struct OrderTruth {
    customer_id: i64,
    created: i64,
    total: i64,
    refunded: i64,
    is_revenue: bool,
    net: i64,
}

fn orders(truth: &Truth) -> BTreeMap<i64, OrderTruth> {
    truth
        .of("order")
        .iter()
        .filter(|o| o["is_deleted"] == Value::Bool(false))
        .map(|o| {
            let total = amount(&o["total_inc_tax"]).expect("total");
            let refunded = amount(&o["refunded_amount"]).expect("refunded_amount");
            let status = int(o, "status_id");
            // Refunded (4) counts for what is left of a partial refund.
            let fully_refunded =
                (refunded > 0 && refunded >= total) || (status == 4 && refunded == 0);
            let is_revenue = (PAID.contains(&status) || status == 4) && !fully_refunded;
            let order = OrderTruth {
                customer_id: int(o, "customer_id"),
                created: micros(o, "date_created"),
                total,
                refunded,
                is_revenue,
                net: if is_revenue {
                    (total - refunded).max(0)
                } else {
                    0
                },
            };
            (int(o, "id"), order)
        })
        .collect()
}

/// A variant's stock: its inventory item's `available_to_sell`, else its own level.
pub fn stock(truth: &Truth) -> BTreeMap<i64, i64> {
    let items: BTreeMap<i64, i64> = truth
        .of("inventory_item")
        .iter()
        .map(|i| {
            let sum = i["locations"]
                .as_array()
                .expect("locations")
                .iter()
                .map(|l| int(l, "available_to_sell"))
                .sum();
            (int(&i["identity"], "variant_id"), sum)
        })
        .collect();
    truth
        .of("variant")
        .iter()
        .map(|v| {
            let id = int(v, "id");
            (
                id,
                items.get(&id).copied().unwrap_or(int(v, "inventory_level")),
            )
        })
        .collect()
}

pub fn rows(tables: &[(Table, Vec<TableRow>)], table: Table) -> &[TableRow] {
    tables
        .iter()
        .find(|(t, _)| *t == table)
        .map_or(&[], |(_, r)| r.as_slice())
}

/// Every measure of docs/metrics.md, from the truth, against the warehouse.
pub fn assert_measures(truth: &Truth, tables: &[(Table, Vec<TableRow>)]) {
    let orders = orders(truth);
    // Revenue order, refunds, net revenue: per order.
    let want: BTreeMap<i64, (bool, i64, i64, i64)> = orders
        .iter()
        .map(|(id, o)| (*id, (o.is_revenue, o.total, o.refunded, o.net)))
        .collect();
    let got: BTreeMap<i64, (bool, i64, i64, i64)> = rows(tables, Table::FctOrder)
        .iter()
        .filter_map(|r| match r {
            TableRow::FctOrder(o) => Some((
                o.order_id,
                (
                    o.is_revenue,
                    o.total_inc_tax.0,
                    o.refunded_amount.0,
                    o.net_revenue.0,
                ),
            )),
            _ => None,
        })
        .collect();
    assert_same("fct_order revenue", &got, &want);
    assert!(
        orders.values().any(|o| o.is_revenue && o.refunded > 0),
        "the store has partially refunded revenue orders"
    );
    assert!(
        orders.values().any(|o| !o.is_revenue && o.refunded > 0),
        "the store has fully refunded orders"
    );
    let partly_refunded_marked_refunded = truth.of("order").iter().any(|o| {
        let (total, refunded) = (amount(&o["total_inc_tax"]), amount(&o["refunded_amount"]));
        int(o, "status_id") == 4 && refunded > Some(0) && refunded < total
    });
    assert!(
        partly_refunded_marked_refunded,
        "the store has Refunded orders refunded in part"
    );

    // Order count, net and gross revenue, refunds, first/last order, AOV: per customer.
    type Stats = (i64, i64, i64, i64, Option<i64>, Option<i64>);
    let mut want: BTreeMap<i64, Stats> = truth
        .of("customer")
        .iter()
        .map(|c| (int(c, "id"), (0, 0, 0, 0, None, None)))
        .collect();
    for o in orders.values().filter(|o| o.is_revenue) {
        if let Some(s) = want.get_mut(&o.customer_id) {
            s.0 += 1;
            s.1 += o.net;
            s.2 += o.total;
            s.3 += o.refunded;
            s.4 = Some(s.4.map_or(o.created, |x: i64| x.min(o.created)));
            s.5 = Some(s.5.map_or(o.created, |x: i64| x.max(o.created)));
        }
    }
    let mut gross: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for r in rows(tables, Table::FctOrder) {
        if let TableRow::FctOrder(o) = r {
            if let (true, Some(c)) = (o.is_revenue, o.customer_id) {
                let g = gross.entry(c).or_default();
                g.0 += o.total_inc_tax.0;
                g.1 += o.refunded_amount.0;
            }
        }
    }
    let got: BTreeMap<i64, Stats> = rows(tables, Table::DimCustomer)
        .iter()
        .filter_map(|r| match r {
            TableRow::DimCustomer(c) => {
                let (g, refunded) = gross.get(&c.customer_id).copied().unwrap_or_default();
                Some((
                    c.customer_id,
                    (
                        c.order_count,
                        c.lifetime_revenue.0,
                        g,
                        refunded,
                        c.first_order_at,
                        c.last_order_at,
                    ),
                ))
            }
            _ => None,
        })
        .collect();
    assert_same("dim_customer aggregates", &got, &want);
    // Average order value (the mart's rounding to 4 decimals, here in units).
    let aov = |count: i64, revenue: i64| (count > 0).then(|| revenue / count);
    let want: BTreeMap<i64, Option<i64>> = want.iter().map(|(k, s)| (*k, aov(s.0, s.1))).collect();
    let got: BTreeMap<i64, Option<i64>> = got.iter().map(|(k, s)| (*k, aov(s.0, s.1))).collect();
    assert_same("average order value", &got, &want);

    // Product sales: quantity and line totals of revenue orders' lines.
    let mut want: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for line in truth.of("order_item") {
        let quantity = int(line, "quantity");
        let order = orders.get(&int(line, "order_id"));
        if quantity > 0 && order.is_some_and(|o| o.is_revenue) {
            let s = want.entry(int(line, "product_id")).or_default();
            s.0 += quantity;
            s.1 += amount(&line["total_inc_tax"]).expect("line total");
        }
    }
    let revenue_orders: BTreeSet<i64> = rows(tables, Table::FctOrder)
        .iter()
        .filter_map(|r| match r {
            TableRow::FctOrder(o) if o.is_revenue => Some(o.order_id),
            _ => None,
        })
        .collect();
    let mut got: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for r in rows(tables, Table::FctOrderItem) {
        if let TableRow::FctOrderItem(i) = r {
            if revenue_orders.contains(&i.order_id) {
                let s = got.entry(i.product_id).or_default();
                s.0 += i.quantity;
                s.1 += i.line_total.0;
            }
        }
    }
    assert_same("product sales", &got, &want);

    // Prices, stock, purchasable, in stock: per SKU; on sale: the SKUs to buy now.
    let products: BTreeMap<i64, &Value> = truth
        .of("product")
        .iter()
        .map(|p| (int(p, "id"), p))
        .collect();
    let stock = stock(truth);
    type Sku = (i64, Option<i64>, i64, i64, bool, bool);
    let mut want: BTreeMap<i64, Sku> = BTreeMap::new();
    let mut own_price_under_product_sale = 0;
    for v in truth.of("variant") {
        let Some(p) = products.get(&int(v, "product_id")) else {
            continue;
        };
        let own_price = amount(&v["price"]);
        let price = own_price.unwrap_or_else(|| amount(&p["price"]).expect("price"));
        let positive = |x: Option<i64>| x.filter(|x| *x > 0);
        let product_sale = positive(amount(&p["sale_price"]));
        let sale = match own_price {
            Some(_) => positive(amount(&v["sale_price"])),
            None => positive(amount(&v["sale_price"])).or(product_sale),
        };
        if own_price.is_some() && product_sale.is_some() && sale.is_none() {
            own_price_under_product_sale += 1;
        }
        let effective = sale.unwrap_or(price);
        // What the store charges is BigCommerce's calculated_price.
        assert_eq!(
            Some(effective),
            amount(&v["calculated_price"]),
            "variant {v}"
        );
        let level = stock[&int(v, "id")];
        let purchasable = p["is_visible"] == Value::Bool(true)
            && p["availability"] == "available"
            && v["purchasing_disabled"] == Value::Bool(false);
        let in_stock = p["inventory_tracking"] == "none" || level > 0;
        want.insert(
            int(v, "id"),
            (price, sale, effective, level, purchasable, in_stock),
        );
    }
    assert!(
        own_price_under_product_sale > 0,
        "variants with their own price under a product on sale"
    );
    assert!(want.values().any(|s| s.1.is_some()) && want.values().any(|s| s.1.is_none()));
    let got: BTreeMap<i64, Sku> = rows(tables, Table::DimSku)
        .iter()
        .filter_map(|r| match r {
            TableRow::DimSku(s) => Some((
                s.sku_id,
                (
                    s.price.0,
                    s.sale_price.map(|m| m.0),
                    s.effective_price.0,
                    s.inventory_level,
                    s.is_purchasable,
                    s.is_in_stock,
                ),
            )),
            _ => None,
        })
        .collect();
    assert_same("dim_sku", &got, &want);
    let want: BTreeMap<i64, Sku> = want.into_iter().filter(|(_, s)| s.4 && s.5).collect();
    let got: BTreeMap<i64, Sku> = rows(tables, Table::FctOnsaleProductInventory)
        .iter()
        .filter_map(|r| match r {
            TableRow::FctOnsaleProductInventory(s) => Some((
                s.sku_id,
                (
                    s.price.0,
                    s.sale_price.map(|m| m.0),
                    s.effective_price.0,
                    s.inventory_level,
                    true,
                    true,
                ),
            )),
            _ => None,
        })
        .collect();
    assert_same("fct_onsale_product_inventory", &got, &want);

    // Stock per product: the sum over its variants; its own sale price, null for none.
    let mut want: BTreeMap<i64, (i64, i64, Option<i64>)> = products
        .iter()
        .map(|(id, p)| (*id, (0, 0, amount(&p["sale_price"]).filter(|s| *s > 0))))
        .collect();
    for v in truth.of("variant") {
        if let Some(s) = want.get_mut(&int(v, "product_id")) {
            s.0 += 1;
            s.1 += stock[&int(v, "id")];
        }
    }
    let got: BTreeMap<i64, (i64, i64, Option<i64>)> = rows(tables, Table::DimProduct)
        .iter()
        .filter_map(|r| match r {
            TableRow::DimProduct(p) => Some((
                p.product_id,
                (
                    p.variant_count,
                    p.total_inventory,
                    p.sale_price.map(|m| m.0),
                ),
            )),
            _ => None,
        })
        .collect();
    assert_same("dim_product stock and sale price", &got, &want);
}

/// The `_errors` rows the truth calls for, as (table, key, reason).
pub fn expected_errors(truth: &Truth) -> BTreeSet<(String, i64, String)> {
    let mut out = BTreeSet::new();
    let mut add = |table: &str, key: i64, reason: &str| {
        out.insert((table.to_string(), key, reason.to_string()));
    };
    let products: BTreeSet<i64> = truth.of("product").iter().map(|p| int(p, "id")).collect();
    let variants: BTreeSet<i64> = truth.of("variant").iter().map(|v| int(v, "id")).collect();
    for p in truth.of("product") {
        let (price, sale) = (amount(&p["price"]), amount(&p["sale_price"]));
        if sale.is_some_and(|s| s > 0 && Some(s) > price) {
            add("raw_bc_product", int(p, "id"), "sale_above_price");
        }
    }
    for v in truth.of("variant") {
        let id = int(v, "id");
        if int(v, "inventory_level") < 0 {
            add("raw_bc_variant", id, "negative_inventory");
        }
        if let (Some(price), Some(sale)) = (amount(&v["price"]), amount(&v["sale_price"])) {
            if sale > 0 && sale > price {
                add("raw_bc_variant", id, "sale_above_price");
            }
        }
        if !products.contains(&int(v, "product_id")) {
            add("raw_bc_variant", id, "unknown_product");
        }
    }
    for i in truth.of("inventory_item") {
        let id = int(&i["identity"], "variant_id");
        let available: i64 = i["locations"]
            .as_array()
            .expect("locations")
            .iter()
            .map(|l| int(l, "available_to_sell"))
            .sum();
        if available < 0 {
            add("raw_bc_inventory", id, "negative_inventory");
        }
        if !variants.contains(&id) {
            add("raw_bc_inventory", id, "unknown_variant");
        }
    }
    for line in truth.of("order_item") {
        if int(line, "quantity") <= 0 {
            add(
                "raw_bc_order_item",
                int(line, "id"),
                "non_positive_quantity",
            );
        }
    }
    for m in truth.of("customer_metafield") {
        if m["namespace"] != "govflow" || m["key"] != "restock_subscriptions" {
            continue;
        }
        let value = m["value"].as_str().unwrap_or_default();
        let ok = serde_json::from_str::<Vec<Value>>(value)
            .is_ok_and(|ids| ids.iter().all(|id| id.as_i64().is_some_and(|id| id > 0)));
        if !ok {
            add(
                "raw_bc_customer_metafield",
                int(m, "id"),
                "malformed_subscription",
            );
        }
    }
    out
}
