//! Random mutations (`POST /_sim/mutate`): deterministic given the seed and the call
//! sequence, except for their timestamps (the wall clock, never going backwards).

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::extras::EXTRA_KINDS;
use super::model::{STATUSES, Store, Ts};
use super::render::entity;
use super::seed::{
    RESTOCK_KEY, RESTOCK_NS, loyalty_tier, new_customer, new_order, new_order_item,
    new_other_metafield, new_product, new_restock_metafield, pick_customer, pick_key,
    pick_key_where, random_phone, random_price, restock_value,
};
use super::webhooks::{Event, InventoryChange};
use super::{Change, MutateReport, SimError};

/// The mutation kinds, in the order of `docs/simulator.md`.
pub const KINDS: [&str; 15] = [
    "customer_create",
    "customer_update",
    "customer_delete",
    "metafield_upsert",
    "metafield_delete",
    "product_create",
    "product_update",
    "product_delete",
    "variant_update",
    "restock",
    "sell_out",
    "order_create",
    "order_update",
    "order_status",
    "order_archive",
];

/// At most this many changes are reported.
const MAX_CHANGES: usize = 1000;

/// Indexes into [`KINDS`] of the allowed kinds; all when `kinds` is `None`.
pub(crate) fn parse_kinds(kinds: Option<&[String]>) -> Result<Vec<usize>, SimError> {
    let Some(kinds) = kinds else {
        return Ok((0..KINDS.len()).collect());
    };
    let known = KINDS.iter().chain(EXTRA_KINDS.iter());
    if kinds.is_empty() {
        return Err(SimError::NoKinds);
    }
    let mut out = Vec::new();
    for k in kinds {
        let i = known
            .clone()
            .position(|known| known == k)
            .ok_or_else(|| SimError::UnknownKind(k.clone()))?;
        if !out.contains(&i) {
            out.push(i);
        }
    }
    Ok(out)
}

/// What one mutation changed.
#[derive(Default)]
pub(super) struct Effects {
    pub(super) changes: Vec<(&'static str, u64)>,
    pub(super) events: Vec<Event>,
}

impl Effects {
    pub(super) fn change(&mut self, entity: &'static str, id: u64) {
        self.changes.push((entity, id));
    }
    pub(super) fn event(&mut self, scope: &'static str, kind: &'static str, id: u64, t: Ts) {
        self.events.push(Event {
            scope,
            kind,
            id,
            inventory: None,
            created_at: t,
        });
    }
}

/// Applies `count` mutations of the allowed kinds; a kind with nothing to act on is
/// replaced by another allowed kind (and the run stops early if none can act).
///
/// With `dirty`, or for a share `store.dirty_rate` of them, a mutation is a
/// dirty one instead ([`super::dirty`]); one that cannot act falls back to a
/// clean one.
pub(crate) fn apply(
    store: &mut Store,
    count: usize,
    kinds: &[usize],
    dirty: bool,
) -> (MutateReport, Vec<Event>) {
    let mut rng = std::mem::replace(&mut store.rng, ChaCha8Rng::seed_from_u64(0));
    store.generation += 1;
    let mut report = MutateReport {
        applied: BTreeMap::new(),
        total: 0,
        changes: Vec::new(),
    };
    let mut events = Vec::new();
    'outer: for _ in 0..count {
        let t = chrono::Utc::now().timestamp().max(store.clock);
        store.clock = t;
        let rate = store.dirty_rate;
        if dirty || (rate > 0.0 && rng.random_bool(rate.min(1.0))) {
            let mut fx = Effects::default();
            if let Some(name) = super::dirty::one(store, &mut rng, t, &mut fx) {
                record(&mut report, &mut events, name, fx);
                continue 'outer;
            }
        }
        let first = kinds[rng.random_range(0..kinds.len())];
        let mut order: Vec<usize> = kinds.iter().copied().filter(|k| *k != first).collect();
        order.shuffle(&mut rng);
        for kind in std::iter::once(first).chain(order) {
            let mut fx = Effects::default();
            if one(store, &mut rng, kind, t, &mut fx) {
                record(&mut report, &mut events, kind_name(kind), fx);
                continue 'outer;
            }
        }
        break;
    }
    store.rng = rng;
    (report, events)
}

/// Adds one applied mutation to the report.
fn record(report: &mut MutateReport, events: &mut Vec<Event>, name: &str, fx: Effects) {
    *report.applied.entry(name.to_string()).or_insert(0) += 1;
    report.total += 1;
    for (entity, id) in fx.changes {
        if report.changes.len() < MAX_CHANGES {
            report.changes.push(Change {
                kind: name.to_string(),
                entity: entity.to_string(),
                id,
            });
        }
    }
    events.extend(fx.events);
}

/// The name of kind `kind` (an index into [`KINDS`] then [`EXTRA_KINDS`]).
fn kind_name(kind: usize) -> &'static str {
    KINDS
        .get(kind)
        .or_else(|| EXTRA_KINDS.get(kind - KINDS.len()))
        .copied()
        .unwrap_or("")
}

/// Applies one mutation of `kind`; false when there is nothing to act on.
fn one(store: &mut Store, rng: &mut ChaCha8Rng, kind: usize, t: Ts, fx: &mut Effects) -> bool {
    if kind >= KINDS.len() {
        return match store.extras.mutate(rng, kind_name(kind), t) {
            Some((entity, id)) => {
                fx.change(entity, id);
                true
            }
            None => false,
        };
    }
    match KINDS[kind] {
        "customer_create" => customer_create(store, rng, t, fx),
        "customer_update" => customer_update(store, rng, t, fx),
        "customer_delete" => customer_delete(store, rng, t, fx),
        "metafield_upsert" => metafield_upsert(store, rng, t, fx),
        "metafield_delete" => metafield_delete(store, rng, t, fx),
        "product_create" => product_create(store, rng, t, fx),
        "product_update" => product_update(store, rng, t, fx),
        "product_delete" => product_delete(store, rng, t, fx),
        "variant_update" => variant_update(store, rng, t, fx),
        "restock" => restock(store, rng, t, fx),
        "sell_out" => sell_out(store, rng, t, fx),
        "order_create" => order_create(store, rng, t, fx),
        "order_update" => order_update(store, rng, t, fx),
        "order_status" => order_status(store, rng, t, fx),
        "order_archive" => order_archive(store, rng, t, fx),
        _ => false,
    }
}

fn customer_create(store: &mut Store, rng: &mut ChaCha8Rng, t: Ts, fx: &mut Effects) -> bool {
    let id = store.next.customer;
    store.next.customer += 1;
    store.customers.insert(new_customer(rng, id, t, t));
    fx.change(entity::CUSTOMER, id);
    fx.event("store/customer/created", "customer", id, t);
    true
}

fn customer_update(store: &mut Store, rng: &mut ChaCha8Rng, t: Ts, fx: &mut Effects) -> bool {
    let Some(id) = pick_key(rng, store.customers.rows()) else {
        return false;
    };
    let what = rng.random_range(0..4);
    let phone = random_phone(rng);
    let group = rng.random_range(0..4);
    let surname = ["Han", "Yoon", "Lopez", "Novak", "Sato"][rng.random_range(0..5)];
    store.customers.update(id, Some(t), |c| match what {
        0 => c.phone = phone,
        1 => c.customer_group_id = group,
        2 => {
            c.last_name = surname.to_string();
            c.email = format!(
                "{}.{}{}@example.com",
                c.first_name.to_lowercase(),
                surname.to_lowercase(),
                c.id
            );
        }
        _ => c.address_count = (c.address_count + 1) % 4,
    });
    fx.change(entity::CUSTOMER, id);
    fx.event("store/customer/updated", "customer", id, t);
    true
}

fn customer_delete(store: &mut Store, rng: &mut ChaCha8Rng, t: Ts, fx: &mut Effects) -> bool {
    let Some(id) = pick_key(rng, store.customers.rows()) else {
        return false;
    };
    store.customers.remove(id);
    fx.change(entity::CUSTOMER, id);
    fx.event("store/customer/deleted", "customer", id, t);
    for m in store.metafields_of(id) {
        store.remove_metafield(m);
        fx.change(entity::METAFIELD, m);
        fx.event("store/metafield/deleted", "metafield", m, t);
    }
    true
}

fn metafield_upsert(store: &mut Store, rng: &mut ChaCha8Rng, t: Ts, fx: &mut Effects) -> bool {
    let Some(customer) = pick_key(rng, store.customers.rows()) else {
        return false;
    };
    let restock = rng.random_bool(0.7);
    let (ns, key) = if restock {
        (RESTOCK_NS, RESTOCK_KEY)
    } else {
        ("loyalty", "tier")
    };
    let existing = store.metafields_of(customer).into_iter().find(|id| {
        store
            .metafields
            .get(*id)
            .is_some_and(|m| m.namespace == ns && m.key == key)
    });
    match existing {
        Some(id) => {
            let value = if restock {
                restock_value(rng, &store.variants)
            } else {
                loyalty_tier(rng).to_string()
            };
            store.metafields.update(id, Some(t), |m| m.value = value);
            fx.change(entity::METAFIELD, id);
            fx.event("store/metafield/updated", "metafield", id, t);
        }
        None => {
            let mut m = if restock {
                new_restock_metafield(rng, store, customer, t)
            } else {
                new_other_metafield(rng, &mut store.next, customer, t)
            };
            m.date_created = t;
            m.date_modified = t;
            let id = m.id;
            store.insert_metafield(m);
            fx.change(entity::METAFIELD, id);
            fx.event("store/metafield/created", "metafield", id, t);
        }
    }
    true
}

fn metafield_delete(store: &mut Store, rng: &mut ChaCha8Rng, t: Ts, fx: &mut Effects) -> bool {
    let Some(id) = pick_key(rng, store.metafields.rows()) else {
        return false;
    };
    store.remove_metafield(id);
    fx.change(entity::METAFIELD, id);
    fx.event("store/metafield/deleted", "metafield", id, t);
    true
}

fn product_create(store: &mut Store, rng: &mut ChaCha8Rng, t: Ts, fx: &mut Effects) -> bool {
    let (product, variants) = new_product(rng, &mut store.next, t, t);
    let id = product.id;
    fx.change(entity::PRODUCT, id);
    fx.event("store/product/created", "product", id, t);
    for v in variants {
        fx.change(entity::VARIANT, v.id);
        fx.event("store/sku/created", "sku", v.id, t);
        store.variants.insert(v.id, v);
    }
    store.products.insert(product);
    true
}

fn product_update(store: &mut Store, rng: &mut ChaCha8Rng, t: Ts, fx: &mut Effects) -> bool {
    let Some(id) = pick_key(rng, store.products.rows()) else {
        return false;
    };
    let what = rng.random_range(0..5);
    let price = random_price(rng);
    let percent = rng.random_range(70..=90);
    let availability = ["available", "preorder", "disabled"][rng.random_range(0..3)];
    store.products.update(id, Some(t), |p| match what {
        0 => {
            // A sale stays a discount: it follows the new price.
            if p.sale_price > 0 {
                p.sale_price = price * percent / 100;
            }
            p.price = price;
        }
        1 => {
            p.sale_price = if p.sale_price > 0 {
                0
            } else {
                p.price * percent / 100
            }
        }
        2 => p.is_visible = !p.is_visible,
        3 => p.availability = availability,
        _ => p.name = format!("{} (New)", p.name.trim_end_matches(" (New)")),
    });
    fx.change(entity::PRODUCT, id);
    fx.event("store/product/updated", "product", id, t);
    if what == 0 {
        // So do the sale prices of its variants on the product's price.
        let variants = store
            .products
            .get(id)
            .map_or(Vec::new(), |p| p.variants.clone());
        for vid in variants {
            if let Some(v) = store.variants.get_mut(&vid) {
                if v.price.is_none() && v.sale_price.is_some() {
                    v.sale_price = Some(price * percent / 100);
                    fx.change(entity::VARIANT, vid);
                }
            }
        }
    }
    true
}

fn product_delete(store: &mut Store, rng: &mut ChaCha8Rng, t: Ts, fx: &mut Effects) -> bool {
    let Some(id) = pick_key(rng, store.products.rows()) else {
        return false;
    };
    let Some(p) = store.products.remove(id) else {
        return false;
    };
    fx.change(entity::PRODUCT, id);
    fx.event("store/product/deleted", "product", id, t);
    for v in p.variants {
        store.variants.remove(&v);
        fx.change(entity::VARIANT, v);
        fx.event("store/sku/deleted", "sku", v, t);
    }
    true
}

fn variant_update(store: &mut Store, rng: &mut ChaCha8Rng, t: Ts, fx: &mut Effects) -> bool {
    let Some(id) = pick_key(rng, &store.variants) else {
        return false;
    };
    let what = rng.random_range(0..3);
    let price = random_price(rng);
    let percent = rng.random_range(70..=90);
    let product_price = store
        .variants
        .get(&id)
        .and_then(|v| store.products.get(v.product_id))
        .map_or(price, |p| p.price);
    let Some(v) = store.variants.get_mut(&id) else {
        return false;
    };
    match what {
        0 => {
            v.price = if v.price.is_some() { None } else { Some(price) };
            // A sale stays a discount of the price that now applies.
            if v.sale_price.is_some() {
                v.sale_price = Some(v.price.unwrap_or(product_price) * percent / 100);
            }
        }
        1 => {
            v.sale_price = match v.sale_price {
                Some(_) => None,
                None => Some(v.price.unwrap_or(product_price) * percent / 100),
            }
        }
        _ => v.purchasing_disabled = !v.purchasing_disabled,
    }
    fx.change(entity::VARIANT, id);
    fx.event("store/sku/updated", "sku", id, t);
    true
}

/// Sets a variant's inventory level and records the inventory changes and events.
pub(super) fn set_stock(store: &mut Store, id: u64, level: i64, t: Ts, fx: &mut Effects) -> bool {
    let Some(v) = store.variants.get_mut(&id) else {
        return false;
    };
    v.inventory_level = level;
    // A stock change through the inventory API sets both again.
    v.inventory = super::model::InventoryRow::Mirror;
    let product_id = v.product_id;
    let total = store
        .products
        .get(product_id)
        .map_or(level, |p| store.product_inventory(p));
    fx.change(entity::VARIANT, id);
    fx.change(entity::INVENTORY, id);
    let inv = |value| InventoryChange {
        product_id,
        method: "absolute",
        value,
        variant_id: id,
    };
    fx.events.push(Event {
        scope: "store/sku/inventory/updated",
        kind: "sku",
        id,
        inventory: Some(inv(level)),
        created_at: t,
    });
    fx.events.push(Event {
        scope: "store/product/inventory/updated",
        kind: "product",
        id: product_id,
        inventory: Some(inv(total)),
        created_at: t,
    });
    true
}

fn restock(store: &mut Store, rng: &mut ChaCha8Rng, t: Ts, fx: &mut Effects) -> bool {
    let out = if rng.random_bool(0.7) {
        pick_key_where(rng, &store.variants, |v| v.inventory_level <= 0)
    } else {
        None
    };
    let Some(id) = out.or_else(|| pick_key(rng, &store.variants)) else {
        return false;
    };
    let add = rng.random_range(5..=100);
    let level = store
        .variants
        .get(&id)
        .map_or(0, |v| v.inventory_level.max(0))
        + add;
    set_stock(store, id, level, t, fx)
}

fn sell_out(store: &mut Store, rng: &mut ChaCha8Rng, t: Ts, fx: &mut Effects) -> bool {
    let Some(id) = pick_key_where(rng, &store.variants, |v| v.inventory_level > 0) else {
        return false;
    };
    set_stock(store, id, 0, t, fx)
}

fn order_create(store: &mut Store, rng: &mut ChaCha8Rng, t: Ts, fx: &mut Effects) -> bool {
    if store.variants.is_empty() {
        return false;
    }
    let customer = pick_customer(rng, store);
    let status = match rng.random_range(0..20) {
        0..=9 => 11,
        10..=13 => 7,
        14..=16 => 1,
        _ => 9,
    };
    let order = new_order(rng, store, customer, t, status);
    let id = order.id;
    fx.change(entity::ORDER, id);
    for it in &order.items {
        fx.change(entity::ORDER_ITEM, it.id);
    }
    fx.event("store/order/created", "order", id, t);
    store.orders.insert(order);
    true
}

pub(super) fn live_order(store: &Store, rng: &mut ChaCha8Rng) -> Option<u64> {
    pick_key_where(rng, store.orders.rows(), |o| !o.is_deleted)
}

fn order_update(store: &mut Store, rng: &mut ChaCha8Rng, t: Ts, fx: &mut Effects) -> bool {
    let Some(id) = live_order(store, rng) else {
        return false;
    };
    let lines = store.orders.get(id).map_or(0, |o| o.items.len());
    let mut what = rng.random_range(0..3);
    if what == 2 && lines <= 1 {
        what = 0;
    }
    if what == 1 && store.variants.is_empty() {
        what = 0;
    }
    let line = rng.random_range(0..lines.max(1));
    let quantity = rng.random_range(1..=5);
    let new_item = (what == 1).then(|| new_order_item(rng, store, id));
    let touched = store
        .orders
        .update(id, Some(t), |o| match (what, new_item) {
            (1, Some(item)) => {
                let item_id = item.id;
                o.items.push(item);
                Some(item_id)
            }
            (2, _) => Some(o.items.remove(line).id),
            _ => o.items.get_mut(line).map(|it| {
                it.quantity = if it.quantity == quantity {
                    quantity % 5 + 1
                } else {
                    quantity
                };
                it.id
            }),
        });
    fx.change(entity::ORDER, id);
    if let Some(Some(item)) = touched {
        fx.change(entity::ORDER_ITEM, item);
    }
    fx.event("store/order/updated", "order", id, t);
    true
}

fn order_status(store: &mut Store, rng: &mut ChaCha8Rng, t: Ts, fx: &mut Effects) -> bool {
    let Some(id) = live_order(store, rng) else {
        return false;
    };
    let current = store.orders.get(id).map_or(0, |o| o.status_id);
    let mut status = rng.random_range(0..STATUSES.len() as u8 - 1);
    if status >= current {
        status += 1;
    }
    store.orders.update(id, Some(t), |o| {
        o.status_id = status;
        o.refund_for_status();
    });
    fx.change(entity::ORDER, id);
    fx.event("store/order/statusUpdated", "order", id, t);
    true
}

fn order_archive(store: &mut Store, rng: &mut ChaCha8Rng, t: Ts, fx: &mut Effects) -> bool {
    let Some(id) = live_order(store, rng) else {
        return false;
    };
    store.orders.update(id, Some(t), |o| o.is_deleted = true);
    fx.change(entity::ORDER, id);
    fx.event("store/order/archived", "order", id, t);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_checked() {
        assert_eq!(parse_kinds(None).map(|k| k.len()).ok(), Some(15));
        let bad = parse_kinds(Some(&["restock".into(), "nope".into()]));
        assert!(matches!(bad, Err(SimError::UnknownKind(k)) if k == "nope"));
        assert!(matches!(parse_kinds(Some(&[])), Err(SimError::NoKinds)));
    }
}
