//! JSON shapes of the API (V2 and V3), money formats and deliberately malformed records.
//!
//! Records are serialised straight from borrowed structs into one buffer; only the rare
//! malformed record goes through a `serde_json::Value` to have a field broken.

use serde::Serialize;
use serde_json::Value;

use super::dates::{Date, Style};
use super::model::{Cents, Customer, InventoryRow, Metafield, Product, Store, Variant};

mod orders;

pub(crate) use orders::{order, order_item};

/// Entity names, as in `/_sim/truth`.
pub(crate) mod entity {
    pub const CUSTOMER: &str = "customer";
    pub const METAFIELD: &str = "customer_metafield";
    pub const PRODUCT: &str = "product";
    pub const VARIANT: &str = "variant";
    pub const INVENTORY: &str = "inventory_item";
    pub const ORDER: &str = "order";
    pub const ORDER_ITEM: &str = "order_item";
    pub const BRAND: &str = "brand";
    pub const COUPON: &str = "coupon";
}

/// V3 money: a JSON number.
fn num(c: Cents) -> f64 {
    c as f64 / 100.0
}

/// V2 money: a string with four decimals (`"361.9500"`), rendered without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Money(pub Cents);

impl Money {
    fn render<'b>(&self, buf: &'b mut [u8; 32]) -> &'b str {
        // Written backwards from the end of the buffer.
        let mut i = buf.len();
        let mut put = |b: u8, i: &mut usize| {
            *i -= 1;
            buf[*i] = b;
        };
        let a = self.0.unsigned_abs();
        put(b'0', &mut i);
        put(b'0', &mut i);
        put(b'0' + (a % 10) as u8, &mut i);
        put(b'0' + (a / 10 % 10) as u8, &mut i);
        put(b'.', &mut i);
        let mut int = a / 100;
        loop {
            put(b'0' + (int % 10) as u8, &mut i);
            int /= 10;
            if int == 0 {
                break;
            }
        }
        if self.0 < 0 {
            put(b'-', &mut i);
        }
        std::str::from_utf8(&buf[i..]).unwrap_or("0.0000")
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.render(&mut [0; 32]))
    }
}

impl Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.render(&mut [0; 32]))
    }
}

/// How records are rendered: which are malformed, and where order line items live.
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    /// Seed of the malformed-record hash.
    pub seed: u64,
    /// Share of records served malformed (0 = none).
    pub malformed_rate: f64,
    /// Prefix of `products.url` on orders, e.g. `http://127.0.0.1:8600/stores/h/v2`.
    pub v2_base: String,
    /// Rendering for `/_sim/truth`: never malformed.
    pub truth: bool,
    /// Fields added to every record of an entity (`POST /_sim/fields`).
    pub added: super::model::AddedFields,
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable hash of (seed, entity, id).
pub(crate) fn stable_hash(seed: u64, entity: &str, id: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in entity.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    mix(mix(seed ^ h) ^ id)
}

impl Ctx {
    /// The hash of a record when it is to be served malformed.
    fn broken(&self, entity: &str, id: u64) -> Option<u64> {
        if self.truth || self.malformed_rate <= 0.0 {
            return None;
        }
        let h = stable_hash(self.seed, entity, id);
        let unit = (h >> 11) as f64 / (1u64 << 53) as f64;
        (unit < self.malformed_rate).then_some(h)
    }
}

/// Serialises `rec` into `buf`, with the fields an API release `added`; when
/// `broken` is set, one field is broken by `corrupt`.
fn emit<T: Serialize>(
    buf: &mut Vec<u8>,
    rec: &T,
    broken: Option<u64>,
    added: Option<&serde_json::Map<String, Value>>,
    corrupt: fn(&mut serde_json::Map<String, Value>, u64),
) {
    if broken.is_none() && added.is_none() {
        let _ = serde_json::to_writer(&mut *buf, rec);
        return;
    }
    let mut v = serde_json::to_value(rec).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut v {
        for (name, value) in added.into_iter().flatten() {
            map.insert(name.clone(), value.clone());
        }
        if let Some(h) = broken {
            corrupt(map, h);
        }
    }
    let _ = serde_json::to_writer(&mut *buf, &v);
}

fn set(map: &mut serde_json::Map<String, Value>, key: &str, v: Value) {
    map.insert(key.to_string(), v);
}

#[derive(Serialize)]
struct CustomerJson<'a> {
    id: u64,
    email: &'a str,
    first_name: &'a str,
    last_name: &'a str,
    company: &'a str,
    phone: &'a str,
    customer_group_id: u32,
    date_created: Date,
    date_modified: Date,
    address_count: u32,
    attribute_count: u32,
    channel_ids: [u32; 1],
}

/// A V3 customer.
pub(crate) fn customer(buf: &mut Vec<u8>, ctx: &Ctx, c: &Customer) {
    let rec = CustomerJson {
        id: c.id,
        email: &c.email,
        first_name: &c.first_name,
        last_name: &c.last_name,
        company: &c.company,
        phone: &c.phone,
        customer_group_id: c.customer_group_id,
        date_created: Date(c.date_created, Style::IsoZ),
        date_modified: Date(c.date_modified, Style::IsoZ),
        address_count: c.address_count,
        attribute_count: c.attribute_count,
        channel_ids: [1],
    };
    emit(
        buf,
        &rec,
        ctx.broken(entity::CUSTOMER, c.id),
        ctx.added.get(entity::CUSTOMER),
        |m, h| {
            if h & 1 == 0 {
                set(m, "date_modified", "not a date".into());
            } else {
                set(m, "email", 123.into());
            }
        },
    );
}

#[derive(Serialize)]
struct MetafieldJson<'a> {
    id: u64,
    namespace: &'a str,
    key: &'a str,
    value: &'a str,
    description: &'a str,
    permission_set: &'a str,
    resource_type: &'a str,
    resource_id: u64,
    date_created: Date,
    date_modified: Date,
}

/// A V3 customer metafield.
pub(crate) fn metafield(buf: &mut Vec<u8>, ctx: &Ctx, m: &Metafield) {
    let rec = MetafieldJson {
        id: m.id,
        namespace: &m.namespace,
        key: &m.key,
        value: &m.value,
        description: &m.description,
        permission_set: m.permission_set,
        resource_type: "customer",
        resource_id: m.resource_id,
        date_created: Date(m.date_created, Style::IsoZ),
        date_modified: Date(m.date_modified, Style::IsoZ),
    };
    emit(
        buf,
        &rec,
        ctx.broken(entity::METAFIELD, m.id),
        ctx.added.get(entity::METAFIELD),
        |m, h| {
            if h & 1 == 0 {
                set(m, "date_modified", "not a date".into());
            } else {
                set(m, "value", 42.into());
            }
        },
    );
}

#[derive(Serialize)]
struct OptionValueJson<'a> {
    id: u64,
    label: &'a str,
    option_id: u64,
    option_display_name: &'a str,
}

#[derive(Serialize)]
struct VariantJson<'a> {
    id: u64,
    product_id: u64,
    sku: &'a str,
    sku_id: u64,
    price: Option<f64>,
    sale_price: Option<f64>,
    calculated_price: f64,
    inventory_level: i64,
    purchasing_disabled: bool,
    option_values: Vec<OptionValueJson<'a>>,
}

fn variant_json<'a>(v: &'a Variant, p: Option<&Product>) -> VariantJson<'a> {
    VariantJson {
        id: v.id,
        product_id: v.product_id,
        sku: &v.sku,
        sku_id: v.id,
        price: v.price.map(num),
        sale_price: v.sale_price.map(num),
        calculated_price: num(p.map_or(v.price.unwrap_or(0), |p| v.calculated_price(p))),
        inventory_level: v.inventory_level,
        purchasing_disabled: v.purchasing_disabled,
        option_values: v
            .option_values
            .iter()
            .map(|o| OptionValueJson {
                id: o.id,
                label: &o.label,
                option_id: o.option_id,
                option_display_name: o.option_display_name,
            })
            .collect(),
    }
}

/// A V3 variant.
pub(crate) fn variant(buf: &mut Vec<u8>, ctx: &Ctx, store: &Store, v: &Variant) {
    let rec = variant_json(v, store.products.get(v.product_id));
    emit(
        buf,
        &rec,
        ctx.broken(entity::VARIANT, v.id),
        ctx.added.get(entity::VARIANT),
        |m, h| {
            if h & 1 == 0 {
                set(m, "inventory_level", "x".into());
            } else {
                set(m, "calculated_price", "abc".into());
            }
        },
    );
}

#[derive(Serialize)]
struct ProductJson<'a> {
    id: u64,
    name: &'a str,
    sku: &'a str,
    price: f64,
    sale_price: f64,
    is_visible: bool,
    availability: &'a str,
    inventory_level: i64,
    inventory_tracking: &'a str,
    brand_id: u32,
    base_variant_id: Option<u64>,
    date_created: Date,
    date_modified: Date,
    #[serde(skip_serializing_if = "Option::is_none")]
    variants: Option<Vec<VariantJson<'a>>>,
}

/// A V3 product, with its variants when `with_variants`.
pub(crate) fn product(
    buf: &mut Vec<u8>,
    ctx: &Ctx,
    store: &Store,
    p: &Product,
    with_variants: bool,
) {
    let variants = with_variants.then(|| {
        p.variants
            .iter()
            .filter_map(|id| store.variants.get(id))
            .map(|v| variant_json(v, Some(p)))
            .collect()
    });
    let rec = ProductJson {
        id: p.id,
        name: &p.name,
        sku: &p.sku,
        price: num(p.price),
        sale_price: num(p.sale_price),
        is_visible: p.is_visible,
        availability: p.availability,
        inventory_level: store.product_inventory(p),
        inventory_tracking: p.inventory_tracking,
        brand_id: p.brand_id,
        base_variant_id: p.variants.first().copied(),
        date_created: Date(p.date_created, Style::IsoOffset),
        date_modified: Date(p.date_modified, Style::IsoOffset),
        variants,
    };
    emit(
        buf,
        &rec,
        ctx.broken(entity::PRODUCT, p.id),
        ctx.added.get(entity::PRODUCT),
        |m, h| {
            if h & 1 == 0 {
                set(m, "price", "abc".into());
            } else {
                set(m, "date_modified", "not a date".into());
            }
        },
    );
}

#[derive(Serialize)]
struct IdentityJson<'a> {
    sku: &'a str,
    variant_id: u64,
    product_id: u64,
    sku_id: u64,
}

#[derive(Serialize)]
struct SettingsJson {
    is_in_stock: bool,
    safety_stock: i64,
    warning_level: i64,
}

#[derive(Serialize)]
struct LocationJson {
    location_id: u64,
    available_to_sell: i64,
    total_inventory_onhand: i64,
    settings: SettingsJson,
}

#[derive(Serialize)]
struct InventoryJson<'a> {
    identity: IdentityJson<'a>,
    locations: [LocationJson; 1],
}

/// A V3 inventory item (one location) of a variant.
/// Writes nothing for a variant without an item ([`InventoryRow::Missing`]).
pub(crate) fn inventory_item(buf: &mut Vec<u8>, ctx: &Ctx, v: &Variant) {
    let Some(available) = v.inventory.available(v.inventory_level) else {
        return;
    };
    let onhand = match v.inventory {
        InventoryRow::Mirror => v.inventory_level,
        _ => available,
    };
    let rec = InventoryJson {
        identity: IdentityJson {
            sku: &v.sku,
            variant_id: v.id,
            product_id: v.product_id,
            sku_id: v.id,
        },
        locations: [LocationJson {
            location_id: 1,
            available_to_sell: available,
            total_inventory_onhand: onhand,
            settings: SettingsJson {
                is_in_stock: available > 0,
                safety_stock: 0,
                warning_level: 0,
            },
        }],
    };
    emit(
        buf,
        &rec,
        ctx.broken(entity::INVENTORY, v.id),
        ctx.added.get(entity::INVENTORY),
        |m, h| {
            let field = if h & 1 == 0 {
                "available_to_sell"
            } else {
                "total_inventory_onhand"
            };
            if let Some(Value::Array(locs)) = m.get_mut("locations") {
                if let Some(Value::Object(loc)) = locs.first_mut() {
                    loc.insert(field.to_string(), "x".into());
                }
            }
        },
    );
}

/// Writes one truth line: `{"entity": "<name>", ...record}` and a newline.
/// `write` renders the record (never malformed: `ctx.truth` is set).
pub(crate) fn truth_line(
    buf: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    name: &str,
    write: impl FnOnce(&mut Vec<u8>),
) {
    scratch.clear();
    write(scratch);
    buf.extend_from_slice(b"{\"entity\":\"");
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b"\"");
    if scratch.len() > 2 {
        buf.push(b',');
    }
    buf.extend_from_slice(scratch.get(1..).unwrap_or(b"}"));
    buf.push(b'\n');
}

/// The whole store as JSON lines, one per entity instance (see `/_sim/truth`).
pub(crate) fn truth(store: &Store, ctx: &Ctx) -> Vec<u8> {
    let mut buf = Vec::with_capacity(1 << 20);
    let mut scratch = Vec::with_capacity(1024);
    for c in store.customers.rows().values() {
        truth_line(&mut buf, &mut scratch, entity::CUSTOMER, |b| {
            customer(b, ctx, c)
        });
    }
    for m in store.metafields.rows().values() {
        truth_line(&mut buf, &mut scratch, entity::METAFIELD, |b| {
            metafield(b, ctx, m)
        });
    }
    for p in store.products.rows().values() {
        truth_line(&mut buf, &mut scratch, entity::PRODUCT, |b| {
            product(b, ctx, store, p, false)
        });
    }
    for v in store.variants.values() {
        truth_line(&mut buf, &mut scratch, entity::VARIANT, |b| {
            variant(b, ctx, store, v)
        });
    }
    for v in store
        .variants
        .values()
        .chain(store.orphan_inventory.values())
        .filter(|v| v.inventory != InventoryRow::Missing)
    {
        truth_line(&mut buf, &mut scratch, entity::INVENTORY, |b| {
            inventory_item(b, ctx, v)
        });
    }
    for o in store.orders.rows().values() {
        truth_line(&mut buf, &mut scratch, entity::ORDER, |b| {
            order(b, ctx, o, false)
        });
    }
    for o in store.orders.rows().values() {
        for it in &o.items {
            truth_line(&mut buf, &mut scratch, entity::ORDER_ITEM, |b| {
                order_item(b, ctx, it)
            });
        }
    }
    for b in store.extras.brands.values() {
        truth_line(&mut buf, &mut scratch, entity::BRAND, |out| {
            let _ = serde_json::to_writer(out, &super::extras::brand_json(b));
        });
    }
    for c in store.extras.coupons.values() {
        truth_line(&mut buf, &mut scratch, entity::COUPON, |out| {
            let _ = serde_json::to_writer(out, &super::extras::coupon_json(c));
        });
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money() {
        assert_eq!(Money(36195).to_string(), "361.9500");
        assert_eq!(Money(5).to_string(), "0.0500");
        assert_eq!(Money(0).to_string(), "0.0000");
        assert_eq!(Money(-1234).to_string(), "-12.3400");
        assert_eq!(Money(100_000_000).to_string(), "1000000.0000");
    }

    #[test]
    fn truth_line_prefixes_entity() {
        let mut buf = Vec::new();
        let mut scratch = Vec::new();
        truth_line(&mut buf, &mut scratch, "x", |b| {
            b.extend_from_slice(b"{\"id\":1}")
        });
        assert_eq!(buf, b"{\"entity\":\"x\",\"id\":1}\n");
    }
}
