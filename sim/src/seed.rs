//! Deterministic seed data: a plausible store generated from `SimOptions::seed`,
//! and the record generators the mutations reuse.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::model::{
    Cents, Customer, Metafield, NextIds, OptionValue, Order, OrderItem, Product, Store, Table, Ts,
    Variant,
};
use super::{SimError, SimOptions};

/// 2024-01-01T00:00:00Z: the earliest seed date.
pub(crate) const START: Ts = 1_704_067_200;
/// 2025-12-31T23:59:59Z: the latest seed date.
pub(crate) const END: Ts = 1_767_225_599;

/// Seed stream of the mutations (distinct from the data's).
const MUTATION_STREAM: u64 = 0x6d75_7461_7465;

const FIRST_NAMES: [&str; 32] = [
    "Ava", "Ben", "Chloe", "Daniel", "Emma", "Felix", "Grace", "Henry", "Isla", "Jack", "Kate",
    "Liam", "Mia", "Noah", "Olivia", "Paul", "Quinn", "Ruby", "Sam", "Tara", "Uma", "Victor",
    "Wendy", "Xavier", "Yuna", "Zoe", "Minji", "Jisoo", "Hyun", "Seo-yeon", "Ji-ho", "Dae",
];
const LAST_NAMES: [&str; 28] = [
    "Kim", "Lee", "Park", "Choi", "Jung", "Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis",
    "Wilson", "Moore", "Taylor", "Anderson", "Thomas", "Martin", "Clark", "Lewis", "Walker",
    "Hall", "Young", "Allen", "King", "Wright", "Scott", "Green", "Baker",
];
const COMPANIES: [&str; 8] = [
    "Acme Corp",
    "Blue Harbor",
    "Cedar Labs",
    "Dawn Studio",
    "Evergreen Co",
    "Northwind",
    "Seoul Trading",
    "Umbrella Ltd",
];
const ADJECTIVES: [&str; 16] = [
    "Classic",
    "Everyday",
    "Premium",
    "Organic",
    "Vintage",
    "Urban",
    "Cozy",
    "Light",
    "Sport",
    "Essential",
    "Relaxed",
    "Slim",
    "Heritage",
    "Soft",
    "Travel",
    "Studio",
];
const MATERIALS: [&str; 10] = [
    "Cotton", "Linen", "Wool", "Denim", "Leather", "Canvas", "Silk", "Bamboo", "Ceramic", "Oak",
];
const NOUNS: [&str; 16] = [
    "Tee", "Hoodie", "Jacket", "Tote", "Cap", "Scarf", "Sneakers", "Mug", "Notebook", "Blanket",
    "Backpack", "Socks", "Shirt", "Apron", "Planter", "Lamp",
];
const SIZES: [&str; 4] = ["S", "M", "L", "XL"];
const PAYMENT_METHODS: [&str; 5] = [
    "Credit Card",
    "Credit Card",
    "PayPal",
    "Bank Deposit",
    "Cash on Delivery",
];
/// (status id, weight per mille): mostly Completed and Shipped.
const STATUS_WEIGHTS: [(u8, u32); 15] = [
    (10, 520),
    (2, 200),
    (11, 60),
    (9, 30),
    (7, 30),
    (1, 30),
    (5, 30),
    (4, 20),
    (3, 15),
    (14, 15),
    (6, 10),
    (8, 10),
    (0, 10),
    (12, 10),
    (13, 10),
];

/// The restock subscriptions metafield: namespace and key.
pub(crate) const RESTOCK_NS: &str = "govflow";
/// See [`RESTOCK_NS`].
pub(crate) const RESTOCK_KEY: &str = "restock_subscriptions";

/// Builds the seeded store.
pub(crate) fn generate(opts: &SimOptions) -> Result<Store, SimError> {
    if opts.orders > 0 && opts.products == 0 {
        return Err(SimError::Options(
            "orders need at least one product to order".into(),
        ));
    }
    if !(0.0..=1.0).contains(&opts.dirty_rate) {
        return Err(SimError::Options(format!(
            "the dirty rate must be between 0 and 1, got {}",
            opts.dirty_rate
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut store = Store {
        customers: Table::default(),
        metafields: Table::default(),
        metafields_by_customer: Default::default(),
        products: Table::default(),
        variants: BTreeMap::new(),
        orders: Table::default(),
        next: NextIds {
            customer: 1,
            metafield: 1,
            product: 1,
            variant: 1,
            option_value: 1,
            order: 100,
            order_item: 1,
        },
        clock: END,
        generation: 0,
        dirty_rate: opts.dirty_rate,
        dirty_next: 0,
        added_fields: Default::default(),
        rng: ChaCha8Rng::seed_from_u64(opts.seed ^ MUTATION_STREAM),
        extras: super::extras::Extras::seed(opts.seed, opts.products, END),
        orphan_inventory: BTreeMap::new(),
    };
    for _ in 0..opts.products {
        let created = rng.random_range(START..=END);
        let modified = later(&mut rng, created);
        let (product, variants) = new_product(&mut rng, &mut store.next, created, modified);
        for v in variants {
            store.variants.insert(v.id, v);
        }
        store.products.insert(product);
    }
    for _ in 0..opts.customers {
        let id = store.next.customer;
        store.next.customer += 1;
        let created = rng.random_range(START..=END);
        let modified = later(&mut rng, created);
        store
            .customers
            .insert(new_customer(&mut rng, id, created, modified));
        let roll = rng.random_range(0..100);
        if roll < 30 && !store.variants.is_empty() {
            let m = new_restock_metafield(&mut rng, &mut store, id, created);
            store.insert_metafield(m);
        }
        if (30..40).contains(&roll) || (roll < 30 && rng.random_bool(0.1)) {
            let m = new_other_metafield(&mut rng, &mut store.next, id, created);
            store.insert_metafield(m);
        }
    }
    for _ in 0..opts.orders {
        let customer = pick_customer(&mut rng, &store);
        let after = store
            .customers
            .get(customer)
            .map_or(START, |c| c.date_created);
        let created = rng.random_range(after..=END);
        let modified = if rng.random_bool(0.4) {
            created
        } else {
            (created + rng.random_range(60..=60 * 86_400)).min(END)
        };
        let status = pick_status(&mut rng);
        let mut order = new_order(&mut rng, &mut store, customer, created, status);
        order.refund_for_status();
        order.date_modified = modified;
        order.is_deleted = rng.random_bool(0.02);
        store.orders.insert(order);
    }
    Ok(store)
}

/// A modification date at or after `created`, within the seed range.
fn later(rng: &mut ChaCha8Rng, created: Ts) -> Ts {
    if rng.random_bool(0.3) {
        created
    } else {
        rng.random_range(created..=END.max(created))
    }
}

/// A random existing key of a map (close to uniform while ids are dense).
pub(crate) fn pick_key<V>(rng: &mut ChaCha8Rng, map: &BTreeMap<u64, V>) -> Option<u64> {
    let first = *map.keys().next()?;
    let last = *map.keys().next_back()?;
    let x = rng.random_range(first..=last);
    map.range(x..).next().map(|(k, _)| *k)
}

/// The first key at or after a random start (wrapping) whose value satisfies `pred`.
pub(crate) fn pick_key_where<V>(
    rng: &mut ChaCha8Rng,
    map: &BTreeMap<u64, V>,
    pred: impl Fn(&V) -> bool,
) -> Option<u64> {
    let start = pick_key(rng, map)?;
    map.range(start..)
        .chain(map.range(..start))
        .find(|(_, v)| pred(v))
        .map(|(k, _)| *k)
}

/// A customer for a new order: ~3% guests (id 0).
pub(crate) fn pick_customer(rng: &mut ChaCha8Rng, store: &Store) -> u64 {
    if rng.random_bool(0.03) {
        return 0;
    }
    pick_key(rng, store.customers.rows()).unwrap_or(0)
}

/// A status id, mostly Completed and Shipped.
pub(crate) fn pick_status(rng: &mut ChaCha8Rng) -> u8 {
    let mut x = rng.random_range(0..1000u32);
    for (id, w) in STATUS_WEIGHTS {
        if x < w {
            return id;
        }
        x -= w;
    }
    10
}

fn pick<'a>(rng: &mut ChaCha8Rng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

/// A new customer.
pub(crate) fn new_customer(rng: &mut ChaCha8Rng, id: u64, created: Ts, modified: Ts) -> Customer {
    let first = pick(rng, &FIRST_NAMES);
    let last = pick(rng, &LAST_NAMES);
    Customer {
        id,
        email: format!(
            "{}.{}{}@example.com",
            first.to_lowercase(),
            last.to_lowercase(),
            id
        ),
        first_name: first.to_string(),
        last_name: last.to_string(),
        company: if rng.random_bool(0.15) {
            pick(rng, &COMPANIES).to_string()
        } else {
            String::new()
        },
        phone: random_phone(rng),
        customer_group_id: match rng.random_range(0..10) {
            0..=5 => 0,
            6 | 7 => 1,
            8 => 2,
            _ => 3,
        },
        date_created: created,
        date_modified: modified,
        address_count: rng.random_range(0..=3),
        attribute_count: if rng.random_bool(0.1) { 1 } else { 0 },
    }
}

/// A phone number, or none (~30%).
pub(crate) fn random_phone(rng: &mut ChaCha8Rng) -> String {
    if rng.random_bool(0.3) {
        String::new()
    } else {
        format!(
            "+1 555-{:03}-{:04}",
            rng.random_range(100..1000),
            rng.random_range(0..10_000)
        )
    }
}

/// A JSON array of 1–3 distinct existing variant ids, e.g. `"[12, 40]"`.
pub(crate) fn restock_value(rng: &mut ChaCha8Rng, variants: &BTreeMap<u64, Variant>) -> String {
    let n = rng.random_range(1..=3);
    let mut ids: Vec<u64> = (0..n).filter_map(|_| pick_key(rng, variants)).collect();
    ids.sort_unstable();
    ids.dedup();
    let parts: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// A restock subscriptions metafield for a customer.
pub(crate) fn new_restock_metafield(
    rng: &mut ChaCha8Rng,
    store: &mut Store,
    customer: u64,
    after: Ts,
) -> Metafield {
    let id = store.next.metafield;
    store.next.metafield += 1;
    let created = rng.random_range(after..=END.max(after));
    let modified = later(rng, created).max(created);
    Metafield {
        id,
        resource_id: customer,
        namespace: RESTOCK_NS.to_string(),
        key: RESTOCK_KEY.to_string(),
        value: restock_value(rng, &store.variants),
        description: "Variants the customer wants a restock notification for".to_string(),
        permission_set: "app_only",
        date_created: created,
        date_modified: modified,
    }
}

/// Another (non-restock) metafield: a loyalty tier.
pub(crate) fn new_other_metafield(
    rng: &mut ChaCha8Rng,
    next: &mut NextIds,
    customer: u64,
    after: Ts,
) -> Metafield {
    let id = next.metafield;
    next.metafield += 1;
    let created = rng.random_range(after..=END.max(after));
    let modified = later(rng, created).max(created);
    Metafield {
        id,
        resource_id: customer,
        namespace: "loyalty".to_string(),
        key: "tier".to_string(),
        value: loyalty_tier(rng).to_string(),
        description: "Loyalty programme tier".to_string(),
        permission_set: "read",
        date_created: created,
        date_modified: modified,
    }
}

/// A loyalty tier value.
pub(crate) fn loyalty_tier(rng: &mut ChaCha8Rng) -> &'static str {
    pick(rng, &["bronze", "silver", "gold", "platinum"])
}

/// A price in cents between 5 and 300 dollars ending in .00, .50 or .99.
pub(crate) fn random_price(rng: &mut ChaCha8Rng) -> Cents {
    let dollars: i64 = rng.random_range(5..=300);
    let cents = [0, 50, 99][rng.random_range(0..3)];
    dollars * 100 + cents
}

/// A sale price for a price: 70–90% of it.
pub(crate) fn sale_price_for(rng: &mut ChaCha8Rng, price: Cents) -> Cents {
    price * rng.random_range(70..=90) / 100
}

/// An inventory level: ~15% out of stock.
pub(crate) fn random_stock(rng: &mut ChaCha8Rng) -> i64 {
    if rng.random_bool(0.15) {
        0
    } else {
        rng.random_range(1..=200)
    }
}

/// A new product with 1–4 variants (ids taken from `next`).
pub(crate) fn new_product(
    rng: &mut ChaCha8Rng,
    next: &mut NextIds,
    created: Ts,
    modified: Ts,
) -> (Product, Vec<Variant>) {
    let id = next.product;
    next.product += 1;
    let name = format!(
        "{} {} {}",
        pick(rng, &ADJECTIVES),
        pick(rng, &MATERIALS),
        pick(rng, &NOUNS)
    );
    let sku = format!("GF-{id:05}");
    let price = random_price(rng);
    let sale_price = if rng.random_bool(0.2) {
        sale_price_for(rng, price)
    } else {
        0
    };
    let n = match rng.random_range(0..10) {
        0..=3 => 1,
        4 | 5 => 2,
        6 | 7 => 3,
        _ => 4,
    };
    let mut variants = Vec::with_capacity(n);
    for size in SIZES.iter().take(n) {
        let vid = next.variant;
        next.variant += 1;
        let mut option_values = Vec::new();
        let vsku = if n == 1 {
            sku.clone()
        } else {
            option_values.push(OptionValue {
                id: next.option_value,
                label: size.to_string(),
                option_id: id * 10 + 1,
                option_display_name: "Size",
            });
            next.option_value += 1;
            format!("{sku}-{size}")
        };
        let vprice = if rng.random_bool(0.4) {
            Some((price + rng.random_range(-2..=5) * 100).max(100))
        } else {
            None
        };
        let vsale = if rng.random_bool(0.1) {
            Some(sale_price_for(rng, vprice.unwrap_or(price)))
        } else {
            None
        };
        variants.push(Variant {
            id: vid,
            product_id: id,
            sku: vsku,
            price: vprice,
            sale_price: vsale,
            inventory_level: random_stock(rng),
            purchasing_disabled: rng.random_bool(0.05),
            option_values,
            inventory: Default::default(),
        });
    }
    let product = Product {
        id,
        name,
        sku,
        price,
        sale_price,
        is_visible: rng.random_bool(0.9),
        availability: match rng.random_range(0..100) {
            0..=84 => "available",
            85..=94 => "preorder",
            _ => "disabled",
        },
        inventory_tracking: match rng.random_range(0..10) {
            0..=6 => "variant",
            7 | 8 => "product",
            _ => "none",
        },
        brand_id: if rng.random_bool(0.2) {
            0
        } else {
            rng.random_range(1..=25)
        },
        date_created: created,
        date_modified: modified,
        variants: variants.iter().map(|v| v.id).collect(),
    };
    (product, variants)
}

/// A new line item for `order_id` from a random existing variant.
pub(crate) fn new_order_item(rng: &mut ChaCha8Rng, store: &mut Store, order_id: u64) -> OrderItem {
    let id = store.next.order_item;
    store.next.order_item += 1;
    let variant = pick_key(rng, &store.variants).and_then(|k| store.variants.get(&k));
    let (product_id, variant_id, sku, name, unit) = match variant {
        Some(v) => {
            let product = store.products.get(v.product_id);
            let unit = product.map_or(v.price.unwrap_or(1000), |p| v.calculated_price(p));
            let name = product.map_or_else(|| v.sku.clone(), |p| p.name.clone());
            (v.product_id, v.id, v.sku.clone(), name, unit)
        }
        None => (0, 0, "GF-00000".to_string(), "Gift".to_string(), 1000),
    };
    let quantity = match rng.random_range(0..10) {
        0..=6 => 1,
        7 | 8 => 2,
        _ => rng.random_range(3..=5),
    };
    OrderItem {
        id,
        order_id,
        product_id,
        variant_id,
        sku,
        name,
        quantity,
        price_ex_tax: unit,
        price_inc_tax: with_tax(unit),
    }
}

/// A price including 10% tax, rounded to the cent.
pub(crate) fn with_tax(ex: Cents) -> Cents {
    (ex * 110 + 50) / 100
}

/// A new order (id from `store.next`) with 1–5 lines, created and modified at `created`.
pub(crate) fn new_order(
    rng: &mut ChaCha8Rng,
    store: &mut Store,
    customer_id: u64,
    created: Ts,
    status_id: u8,
) -> Order {
    let id = store.next.order;
    store.next.order += 1;
    let n = match rng.random_range(0..20) {
        0..=9 => 1,
        10..=14 => 2,
        15..=17 => 3,
        18 => 4,
        _ => 5,
    };
    let items = (0..n).map(|_| new_order_item(rng, store, id)).collect();
    Order {
        id,
        customer_id,
        date_created: created,
        date_modified: created,
        status_id,
        is_deleted: false,
        payment_method: pick(rng, &PAYMENT_METHODS),
        items,
        refunded: 0,
    }
}
