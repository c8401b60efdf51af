//! A from-scratch oracle: every output table recomputed from the current raw
//! state held in `BTreeMap`s, with plain loops. Tests compare the dataflow's
//! accumulated output with it after every epoch.
//!
//! `product_notification_event` depends on the state's history (which SKUs
//! were on sale at the end of the previous epoch), so [`compute`] leaves it
//! out and [`EventOracle`] recomputes it epoch by epoch.
//!
//! It shares the row constructors and row-level rules with the models (unit
//! tests pin those down) but none of the incremental machinery: joins,
//! aggregates and retractions are recomputed here by iteration.

use std::collections::BTreeMap;

use crate::arrangements::SkuBase;
use crate::models::dim_customer::{CustomerOrderStats, CustomerStats};
use crate::models::dim_product::ProductVariantStats;
use crate::models::errors;
use crate::models::product_notification_event::Subscriber;
use crate::projection::Projected;
use crate::records::Upsert;
use crate::rows::dim_customer::{DimCustomer, is_revenue_order, net_revenue};
use crate::rows::dim_product::DimProduct;
use crate::rows::dim_sku::DimSku;
use crate::rows::fct_onsale_product_inventory::FctOnsaleProductInventory;
use crate::rows::fct_order::FctOrder;
use crate::rows::fct_order_item::FctOrderItem;
use crate::rows::fct_point_transaction::FctPointTransaction;
use crate::rows::fct_quotation::{FctQuotation, email_key};
use crate::rows::product_notification_event::{ProductNotificationEvent, subscriptions_of};
use crate::rows::raw_bc_customer::RawBcCustomer;
use crate::rows::raw_bc_customer_metafield::RawBcCustomerMetafield;
use crate::rows::raw_bc_inventory::RawBcInventory;
use crate::rows::raw_bc_order::RawBcOrder;
use crate::rows::raw_bc_order_item::RawBcOrderItem;
use crate::rows::raw_bc_product::RawBcProduct;
use crate::rows::raw_bc_variant::RawBcVariant;
use crate::rows::raw_pg_point_transaction::RawPgPointTransaction;
use crate::rows::raw_pg_quotation::RawPgQuotation;
use crate::rows::table::TableRow;
use crate::scalar::Money;

/// The current state of every source table, keyed by upsert key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawState {
    /// Customers by id.
    pub customers: BTreeMap<i64, RawBcCustomer>,
    /// Metafields by id.
    pub customer_metafields: BTreeMap<i64, RawBcCustomerMetafield>,
    /// Products by id.
    pub products: BTreeMap<i64, RawBcProduct>,
    /// Variants by id.
    pub variants: BTreeMap<i64, RawBcVariant>,
    /// Inventory by variant id.
    pub inventory: BTreeMap<i64, RawBcInventory>,
    /// Orders by id.
    pub orders: BTreeMap<i64, RawBcOrder>,
    /// Lines by order id.
    pub order_items: BTreeMap<i64, Vec<RawBcOrderItem>>,
    /// Point transactions by id.
    pub point_transactions: BTreeMap<i64, RawPgPointTransaction>,
    /// Quotations by id.
    pub quotations: BTreeMap<i64, RawPgQuotation>,
}

fn put<V>(map: &mut BTreeMap<i64, V>, key: i64, value: Option<V>) {
    match value {
        Some(value) => map.insert(key, value),
        None => map.remove(&key),
    };
}

impl RawState {
    /// Applies one upsert: `Some` replaces the key's value, `None` removes it.
    pub fn apply(&mut self, upsert: Upsert) {
        match upsert {
            Upsert::Customer(k, v) => put(&mut self.customers, k, v),
            Upsert::CustomerMetafield(k, v) => put(&mut self.customer_metafields, k, v),
            Upsert::Product(k, v) => put(&mut self.products, k, v),
            Upsert::Variant(k, v) => put(&mut self.variants, k, v),
            Upsert::Inventory(k, v) => put(&mut self.inventory, k, v),
            Upsert::Order(k, v) => put(&mut self.orders, k, v),
            Upsert::OrderItems(k, v) => put(&mut self.order_items, k, v),
            Upsert::PointTransaction(k, v) => put(&mut self.point_transactions, k, v),
            Upsert::Quotation(k, v) => put(&mut self.quotations, k, v),
        }
    }

    /// The state as upserts (one per key), e.g. to re-send it unchanged.
    pub fn upserts(&self) -> Vec<Upsert> {
        let mut out = Vec::new();
        out.extend(
            self.customers
                .iter()
                .map(|(k, v)| Upsert::Customer(*k, Some(v.clone()))),
        );
        out.extend(
            self.customer_metafields
                .iter()
                .map(|(k, v)| Upsert::CustomerMetafield(*k, Some(v.clone()))),
        );
        out.extend(
            self.products
                .iter()
                .map(|(k, v)| Upsert::Product(*k, Some(v.clone()))),
        );
        out.extend(
            self.variants
                .iter()
                .map(|(k, v)| Upsert::Variant(*k, Some(v.clone()))),
        );
        out.extend(
            self.inventory
                .iter()
                .map(|(k, v)| Upsert::Inventory(*k, Some(v.clone()))),
        );
        out.extend(
            self.orders
                .iter()
                .map(|(k, v)| Upsert::Order(*k, Some(v.clone()))),
        );
        out.extend(
            self.order_items
                .iter()
                .map(|(k, v)| Upsert::OrderItems(*k, Some(v.clone()))),
        );
        out.extend(
            self.point_transactions
                .iter()
                .map(|(k, v)| Upsert::PointTransaction(*k, Some(v.clone()))),
        );
        out.extend(
            self.quotations
                .iter()
                .map(|(k, v)| Upsert::Quotation(*k, Some(v.clone()))),
        );
        out
    }
}

/// `product_notification_event` from scratch: the on-sale SKUs at the end of
/// each epoch, compared with those of the epoch before.
#[derive(Clone, Debug, Default)]
pub struct EventOracle {
    on_sale: std::collections::BTreeSet<i64>,
}

impl EventOracle {
    /// The events of `epoch`, whose end state is `state`: one per SKU on sale
    /// now but not at the end of the previous call, and per customer (present
    /// in `raw_bc_customer`) subscribed to it now. Sorted.
    pub fn step(&mut self, epoch: crate::Epoch, state: &RawState) -> Vec<ProductNotificationEvent> {
        let on_sale: BTreeMap<i64, FctOnsaleProductInventory> = compute(state)
            .into_iter()
            .filter_map(|row| match row {
                TableRow::FctOnsaleProductInventory(r) => Some((r.sku_id, r)),
                _ => None,
            })
            .collect();
        let mut subscribers: std::collections::BTreeSet<(i64, Subscriber)> = Default::default();
        for m in state.customer_metafields.values() {
            for (customer_id, sku_id) in subscriptions_of(&m.project()) {
                if let Some(c) = state.customers.get(&customer_id) {
                    subscribers.insert((
                        sku_id,
                        Subscriber {
                            customer_id,
                            email: c.email.to_string(),
                        },
                    ));
                }
            }
        }
        let mut events = Vec::new();
        for (sku_id, row) in &on_sale {
            if self.on_sale.contains(sku_id) {
                continue;
            }
            for (_, subscriber) in subscribers.iter().filter(|(s, _)| s == sku_id) {
                events.push(ProductNotificationEvent::new(subscriber, row, epoch));
            }
        }
        self.on_sale = on_sale.into_keys().collect();
        events.sort();
        events
    }
}

/// Every output table's rows for `state` but `product_notification_event`
/// (see [`EventOracle`]), sorted (a multiset: a row may repeat only if the
/// source repeats line ids across orders).
pub fn compute(state: &RawState) -> Vec<TableRow> {
    // The models read projected rows (crate::projection); so do their rules here.
    fn projected<R, P>(rows: &BTreeMap<i64, R>, project: impl Fn(&R) -> P) -> BTreeMap<i64, P> {
        rows.iter().map(|(k, r)| (*k, project(r))).collect()
    }
    let customers = projected(&state.customers, RawBcCustomer::project);
    let metafields = projected(&state.customer_metafields, RawBcCustomerMetafield::project);
    let products = projected(&state.products, RawBcProduct::project);
    let variants = projected(&state.variants, RawBcVariant::project);
    let inventory = projected(&state.inventory, RawBcInventory::project);
    let orders = projected(&state.orders, RawBcOrder::project);
    let items = projected(&state.order_items, |lines| {
        lines
            .iter()
            .map(RawBcOrderItem::project)
            .collect::<Vec<_>>()
    });
    let points = state.point_transactions.clone();
    let quotations = state.quotations.clone();

    let mut rows = Vec::new();
    let raw = TableRow::Projected;

    // raw_* (as the dataflow emits them) and their row-level checks
    for (k, r) in &customers {
        rows.extend(errors::customer_errors(*k, r).map(TableRow::Errors));
        rows.push(raw(Projected::RawBcCustomer(r.clone())));
    }
    for (k, r) in &metafields {
        rows.extend(errors::metafield_errors(*k, r).map(TableRow::Errors));
        rows.push(raw(Projected::RawBcCustomerMetafield(r.clone())));
    }
    for (k, r) in &products {
        rows.extend(errors::product_errors(*k, r).map(TableRow::Errors));
        rows.push(raw(Projected::RawBcProduct(r.clone())));
    }
    for (k, r) in &variants {
        rows.extend(errors::variant_errors(*k, r).map(TableRow::Errors));
        rows.push(raw(Projected::RawBcVariant(r.clone())));
    }
    for (k, r) in &inventory {
        rows.extend(errors::inventory_errors(*k, r).map(TableRow::Errors));
        if !variants.contains_key(k) {
            rows.push(TableRow::Errors(errors::unknown_variant_error(*k)));
        }
        rows.push(raw(Projected::RawBcInventory(r.clone())));
    }
    for (k, r) in &orders {
        rows.extend(errors::order_errors(*k, r).map(TableRow::Errors));
        rows.push(raw(Projected::RawBcOrder(r.clone())));
    }
    for (k, lines) in &items {
        rows.extend(
            errors::order_item_errors(*k, lines)
                .into_iter()
                .map(TableRow::Errors),
        );
        rows.extend(
            lines
                .iter()
                .map(|line| raw(Projected::RawBcOrderItem(line.clone()))),
        );
    }
    for (k, r) in &points {
        rows.extend(errors::point_transaction_errors(*k, r).map(TableRow::Errors));
        rows.push(raw(Projected::RawPgPointTransaction(r.clone())));
    }
    for (k, r) in &quotations {
        rows.extend(errors::quotation_errors(*k, r).map(TableRow::Errors));
        rows.push(raw(Projected::RawPgQuotation(r.clone())));
    }

    // dim_customer
    let mut stats: BTreeMap<i64, CustomerOrderStats> = BTreeMap::new();
    for order in orders
        .values()
        .filter(|o| is_revenue_order(o) && o.customer_id != 0)
    {
        let s = stats
            .entry(order.customer_id)
            .or_insert(CustomerOrderStats {
                order_count: 0,
                lifetime_revenue: Money(0),
                first_order_at: order.created_at,
                last_order_at: order.created_at,
            });
        s.order_count += 1;
        s.lifetime_revenue.0 = s.lifetime_revenue.0.saturating_add(net_revenue(order).0);
        s.first_order_at = s.first_order_at.min(order.created_at);
        s.last_order_at = s.last_order_at.max(order.created_at);
    }
    // Exact sums, clamped at the end.
    let mut balances: BTreeMap<i64, i128> = BTreeMap::new();
    for t in points.values() {
        *balances.entry(t.customer_id).or_insert(0) += i128::from(t.points);
    }
    for (k, c) in &customers {
        let orders = stats.get(k).copied();
        let balance = balances.get(k).copied();
        let customer_stats = (orders.is_some() || balance.is_some()).then(|| CustomerStats {
            orders,
            point_balance: balance.map_or(0, |sum| {
                sum.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
            }),
        });
        rows.push(TableRow::DimCustomer(DimCustomer::new(
            *k,
            c,
            customer_stats.as_ref(),
        )));
    }

    // fct_point_transaction, unknown customers
    for (k, t) in &points {
        rows.push(TableRow::FctPointTransaction(FctPointTransaction::new(
            *k, t,
        )));
        if !customers.contains_key(&t.customer_id) {
            rows.push(TableRow::Errors(errors::unknown_customer_error(*k)));
        }
    }

    // fct_quotation: the least customer id of each email key
    let mut by_email: BTreeMap<String, i64> = BTreeMap::new();
    for (id, c) in &customers {
        if let Some(email) = email_key(&c.email) {
            let least = by_email.entry(email).or_insert(*id);
            *least = (*least).min(*id);
        }
    }
    for (k, q) in &quotations {
        let customer_id = email_key(&q.customer_email).and_then(|e| by_email.get(&e).copied());
        rows.push(TableRow::FctQuotation(FctQuotation::new(
            *k,
            q,
            customer_id,
        )));
    }

    // dim_sku, fct_onsale_product_inventory, unknown products
    let mut variant_stats: BTreeMap<i64, ProductVariantStats> = BTreeMap::new();
    for (vid, v) in &variants {
        let sku = SkuBase::new(*vid, v, inventory.get(vid));
        let s = variant_stats.entry(v.product_id).or_default();
        s.variant_count += 1;
        s.total_inventory = s.total_inventory.saturating_add(sku.inventory_level);
        match products.get(&v.product_id) {
            Some(p) => {
                let dim = DimSku::new(v.product_id, &sku, p);
                rows.extend(
                    FctOnsaleProductInventory::from_dim_sku(&dim)
                        .map(TableRow::FctOnsaleProductInventory),
                );
                rows.push(TableRow::DimSku(dim));
            }
            None => rows.push(TableRow::Errors(errors::unknown_product_error(*vid))),
        }
    }

    // dim_product
    for (k, p) in &products {
        rows.push(TableRow::DimProduct(DimProduct::new(
            *k,
            p,
            variant_stats.get(k),
        )));
    }

    // fct_order
    for (k, o) in &orders {
        let lines = items.get(k).map_or(&[][..], Vec::as_slice);
        rows.extend(FctOrder::new(*k, o, lines).map(TableRow::FctOrder));
    }

    // fct_order_item, unknown orders
    for (k, lines) in &items {
        match orders.get(k) {
            Some(o) => rows.extend(
                FctOrderItem::rows(*k, o, lines)
                    .into_iter()
                    .map(TableRow::FctOrderItem),
            ),
            None => rows.extend(
                errors::unknown_order_errors(lines)
                    .into_iter()
                    .map(TableRow::Errors),
            ),
        }
    }

    rows.sort();
    rows
}
