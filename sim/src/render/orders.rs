//! V2 orders and their line items, embedded (`consignments`) or listed apart.

use serde::Serialize;

use super::super::dates::{Date, Style};
use super::super::model::{Order, OrderItem, status_name};
use super::{Ctx, Money, emit, entity, set};

#[derive(Serialize)]
struct ItemJson<'a> {
    id: u64,
    order_id: u64,
    product_id: u64,
    variant_id: u64,
    sku: &'a str,
    name: &'a str,
    quantity: u32,
    base_price: Money,
    price_ex_tax: Money,
    price_inc_tax: Money,
    total_ex_tax: Money,
    total_inc_tax: Money,
}

fn item_json(it: &OrderItem) -> ItemJson<'_> {
    let q = it.quantity as i64;
    ItemJson {
        id: it.id,
        order_id: it.order_id,
        product_id: it.product_id,
        variant_id: it.variant_id,
        sku: &it.sku,
        name: &it.name,
        quantity: it.quantity,
        base_price: Money(it.price_ex_tax),
        price_ex_tax: Money(it.price_ex_tax),
        price_inc_tax: Money(it.price_inc_tax),
        total_ex_tax: Money(it.price_ex_tax * q),
        total_inc_tax: Money(it.price_inc_tax * q),
    }
}

/// A V2 order line item.
pub(crate) fn order_item(buf: &mut Vec<u8>, ctx: &Ctx, it: &OrderItem) {
    emit(
        buf,
        &item_json(it),
        ctx.broken(entity::ORDER_ITEM, it.id),
        // Lines are also served embedded in orders, where nothing is added.
        None,
        |m, h| {
            if h & 1 == 0 {
                set(m, "quantity", "x".into());
            } else {
                set(m, "total_inc_tax", "abc".into());
            }
        },
    );
}

/// `products.url` or `.resource` of an order, rendered without allocating.
struct OrderProducts<'a> {
    base: &'a str,
    id: u64,
}

impl std::fmt::Display for OrderProducts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/orders/{}/products", self.base, self.id)
    }
}

impl Serialize for OrderProducts<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Serialize)]
struct ResourceJson<'a> {
    url: OrderProducts<'a>,
    resource: OrderProducts<'a>,
}

#[derive(Serialize)]
struct ShippingJson<'a> {
    id: u64,
    line_items: Vec<ItemJson<'a>>,
}

#[derive(Serialize)]
struct EmailJson {
    gift_certificates: [u8; 0],
}

#[derive(Serialize)]
struct ConsignmentJson<'a> {
    shipping: [ShippingJson<'a>; 1],
    pickups: [u8; 0],
    downloads: [u8; 0],
    email: EmailJson,
}

#[derive(Serialize)]
struct OrderJson<'a> {
    id: u64,
    customer_id: u64,
    date_created: Date,
    date_modified: Date,
    status_id: u8,
    status: &'a str,
    subtotal_ex_tax: Money,
    subtotal_inc_tax: Money,
    total_ex_tax: Money,
    total_inc_tax: Money,
    refunded_amount: Money,
    items_total: u64,
    items_shipped: u64,
    currency_code: &'a str,
    payment_method: &'a str,
    is_deleted: bool,
    channel_id: u64,
    products: ResourceJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consignments: Option<[ConsignmentJson<'a>; 1]>,
}

/// A V2 order, with `consignments` (line items embedded) when `with_consignments`.
pub(crate) fn order(buf: &mut Vec<u8>, ctx: &Ctx, o: &Order, with_consignments: bool) {
    let t = o.totals();
    let consignments = with_consignments.then(|| {
        [ConsignmentJson {
            shipping: [ShippingJson {
                id: o.id,
                line_items: o.items.iter().map(item_json).collect(),
            }],
            pickups: [],
            downloads: [],
            email: EmailJson {
                gift_certificates: [],
            },
        }]
    });
    let rec = OrderJson {
        id: o.id,
        customer_id: o.customer_id,
        date_created: Date(o.date_created, Style::Rfc2822),
        date_modified: Date(o.date_modified, Style::Rfc2822),
        status_id: o.status_id,
        status: status_name(o.status_id),
        subtotal_ex_tax: Money(t.ex_tax),
        subtotal_inc_tax: Money(t.inc_tax),
        total_ex_tax: Money(t.ex_tax),
        total_inc_tax: Money(t.inc_tax),
        refunded_amount: Money(o.refunded_amount()),
        items_total: t.items_total,
        items_shipped: t.items_shipped,
        currency_code: "USD",
        payment_method: o.payment_method,
        is_deleted: o.is_deleted,
        channel_id: 1,
        products: ResourceJson {
            url: OrderProducts {
                base: &ctx.v2_base,
                id: o.id,
            },
            resource: OrderProducts { base: "", id: o.id },
        },
        consignments,
    };
    emit(
        buf,
        &rec,
        ctx.broken(entity::ORDER, o.id),
        ctx.added.get(entity::ORDER),
        |m, h| {
            if h & 1 == 0 {
                set(m, "date_modified", "not a date".into());
            } else {
                set(m, "total_inc_tax", "abc".into());
            }
        },
    );
}
