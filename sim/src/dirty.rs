//! Dirty mutations (`POST /_sim/mutate {"dirty": true}`, `--dirty-rate`): the
//! data govflow's `_errors` reasons and documented fallbacks exist for, as a
//! real store produces it now and then. They take turns ([`DIRTY_KINDS`] in
//! order, one per mutation), so `N` dirty mutations with `N >= 8` produce every
//! kind; which entity each one hits comes from the store's seeded random
//! source, so the store stays deterministic for a seed.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::model::{InventoryRow, Store, Ts};
use super::mutate::{Effects, live_order, set_stock};
use super::render::entity;
use super::seed::{RESTOCK_KEY, RESTOCK_NS, new_restock_metafield, pick_key, pick_key_where};

/// The dirty mutation kinds, in turn order (see `docs/simulator.md`).
pub const DIRTY_KINDS: [&str; 9] = [
    "dirty_negative_stock",
    "dirty_inventory_mismatch",
    "dirty_inventory_missing",
    "dirty_zero_quantity",
    "dirty_empty_name",
    "dirty_malformed_subscription",
    "dirty_sale_above_price",
    "dirty_orphan_variant",
    "dirty_orphan_inventory",
];

/// Applies the next dirty kind that can act (trying each at most once);
/// its name, or `None` when none can.
pub(super) fn one(
    store: &mut Store,
    rng: &mut ChaCha8Rng,
    t: Ts,
    fx: &mut Effects,
) -> Option<&'static str> {
    for _ in 0..DIRTY_KINDS.len() {
        let kind = DIRTY_KINDS[store.dirty_next % DIRTY_KINDS.len()];
        store.dirty_next = store.dirty_next.wrapping_add(1);
        let applied = match kind {
            "dirty_negative_stock" => negative_stock(store, rng, t, fx),
            "dirty_inventory_mismatch" => inventory_mismatch(store, rng, t, fx),
            "dirty_inventory_missing" => inventory_missing(store, rng, fx),
            "dirty_zero_quantity" => zero_quantity(store, rng, t, fx),
            "dirty_empty_name" => empty_name(store, rng, t, fx),
            "dirty_malformed_subscription" => malformed_subscription(store, rng, t, fx),
            "dirty_sale_above_price" => sale_above_price(store, rng, t, fx),
            "dirty_orphan_inventory" => orphan_inventory(store, rng, t, fx),
            _ => orphan_variant(store, rng, t, fx),
        };
        if applied {
            return Some(kind);
        }
    }
    None
}

/// A variant oversold: a negative level in the catalog and the inventory API.
fn negative_stock(store: &mut Store, rng: &mut ChaCha8Rng, t: Ts, fx: &mut Effects) -> bool {
    let Some(id) = pick_key_where(rng, &store.variants, |v| v.inventory_level >= 0) else {
        return false;
    };
    let level = -rng.random_range(1..=5);
    if !set_stock(store, id, level, t, fx) {
        return false;
    }
    if let Some(v) = store.variants.get_mut(&id) {
        v.inventory = InventoryRow::Level(level);
    }
    true
}

/// The inventory API disagrees with the catalog (the API is the authority).
fn inventory_mismatch(store: &mut Store, rng: &mut ChaCha8Rng, t: Ts, fx: &mut Effects) -> bool {
    let Some(id) = pick_key_where(rng, &store.variants, |v| {
        v.inventory == InventoryRow::Mirror && v.inventory_level >= 0
    }) else {
        return false;
    };
    let extra = rng.random_range(1..=20);
    let Some(v) = store.variants.get_mut(&id) else {
        return false;
    };
    v.inventory = InventoryRow::Level(v.inventory_level + extra);
    fx.change(entity::INVENTORY, id);
    fx.event("store/sku/inventory/updated", "sku", id, t);
    true
}

/// The inventory API has no item for a variant (the catalog level applies).
fn inventory_missing(store: &mut Store, rng: &mut ChaCha8Rng, fx: &mut Effects) -> bool {
    let Some(id) = pick_key_where(rng, &store.variants, |v| {
        v.inventory != InventoryRow::Missing
    }) else {
        return false;
    };
    let Some(v) = store.variants.get_mut(&id) else {
        return false;
    };
    v.inventory = InventoryRow::Missing;
    fx.change(entity::INVENTORY, id);
    true
}

/// An order line with quantity 0 (the order's totals follow).
fn zero_quantity(store: &mut Store, rng: &mut ChaCha8Rng, t: Ts, fx: &mut Effects) -> bool {
    let Some(id) = live_order(store, rng) else {
        return false;
    };
    let lines = store.orders.get(id).map_or(0, |o| o.items.len());
    if lines == 0 {
        return false;
    }
    let line = rng.random_range(0..lines);
    let item = store.orders.update(id, Some(t), |o| {
        o.items.get_mut(line).map(|it| {
            it.quantity = 0;
            it.id
        })
    });
    fx.change(entity::ORDER, id);
    if let Some(Some(item)) = item {
        fx.change(entity::ORDER_ITEM, item);
    }
    fx.event("store/order/updated", "order", id, t);
    true
}

/// A customer with empty first and last names.
fn empty_name(store: &mut Store, rng: &mut ChaCha8Rng, t: Ts, fx: &mut Effects) -> bool {
    let Some(id) = pick_key(rng, store.customers.rows()) else {
        return false;
    };
    store.customers.update(id, Some(t), |c| {
        c.first_name.clear();
        c.last_name.clear();
    });
    fx.change(entity::CUSTOMER, id);
    fx.event("store/customer/updated", "customer", id, t);
    true
}

/// Restock subscriptions that are not a JSON array of variant ids.
fn malformed_subscription(
    store: &mut Store,
    rng: &mut ChaCha8Rng,
    t: Ts,
    fx: &mut Effects,
) -> bool {
    let Some(customer) = pick_key(rng, store.customers.rows()) else {
        return false;
    };
    let value = ["[12, 40", "twelve", "{\"ids\": [12]}", "[0]"][rng.random_range(0..4)];
    let existing = store.metafields_of(customer).into_iter().find(|id| {
        store
            .metafields
            .get(*id)
            .is_some_and(|m| m.namespace == RESTOCK_NS && m.key == RESTOCK_KEY)
    });
    let id = match existing {
        Some(id) => {
            store
                .metafields
                .update(id, Some(t), |m| m.value = value.to_string());
            fx.event("store/metafield/updated", "metafield", id, t);
            id
        }
        None => {
            let mut m = new_restock_metafield(rng, store, customer, t);
            m.value = value.to_string();
            m.date_created = t;
            m.date_modified = t;
            let id = m.id;
            store.insert_metafield(m);
            fx.event("store/metafield/created", "metafield", id, t);
            id
        }
    };
    fx.change(entity::METAFIELD, id);
    true
}

/// A product whose sale price is above its price (the odd pricing mistake).
fn sale_above_price(store: &mut Store, rng: &mut ChaCha8Rng, t: Ts, fx: &mut Effects) -> bool {
    let Some(id) = pick_key(rng, store.products.rows()) else {
        return false;
    };
    let percent = rng.random_range(105..=120);
    store
        .products
        .update(id, Some(t), |p| p.sale_price = p.price * percent / 100);
    fx.change(entity::PRODUCT, id);
    fx.event("store/product/updated", "product", id, t);
    true
}

/// A product deleted while one of its variants stays in the catalog.
fn orphan_variant(store: &mut Store, rng: &mut ChaCha8Rng, t: Ts, fx: &mut Effects) -> bool {
    let Some(id) = pick_key(rng, store.products.rows()) else {
        return false;
    };
    let Some(p) = store.products.remove(id) else {
        return false;
    };
    fx.change(entity::PRODUCT, id);
    fx.event("store/product/deleted", "product", id, t);
    for v in p.variants.iter().skip(1) {
        store.variants.remove(v);
        fx.change(entity::VARIANT, *v);
        fx.event("store/sku/deleted", "sku", *v, t);
    }
    true
}

/// A variant removed from the catalog while the inventory API still serves
/// its item: an inventory row whose variant nobody lists (`unknown_variant`).
/// Only a product with another variant loses one, so it keeps a base variant.
fn orphan_inventory(store: &mut Store, rng: &mut ChaCha8Rng, t: Ts, fx: &mut Effects) -> bool {
    let products = &store.products;
    let Some(id) = pick_key_where(rng, &store.variants, |v| {
        v.inventory != InventoryRow::Missing
            && products
                .get(v.product_id)
                .is_some_and(|p| p.variants.len() > 1 && p.variants.first() != Some(&v.id))
    }) else {
        return false;
    };
    let Some(v) = store.variants.remove(&id) else {
        return false;
    };
    store
        .products
        .update(v.product_id, Some(t), |p| p.variants.retain(|x| *x != id));
    fx.change(entity::PRODUCT, v.product_id);
    fx.change(entity::VARIANT, id);
    fx.event("store/sku/deleted", "sku", id, t);
    store.orphan_inventory.insert(id, v);
    true
}
