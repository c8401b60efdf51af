//! Orders and their lines, embedded (`consignments`) or read apart.

use bytes::Bytes;
use dataflows::records::{Payloads, Upsert};
use dataflows::rows::raw_bc_order::RawBcOrder;
use dataflows::rows::raw_bc_order_item::RawBcOrderItem;
use dataflows::scalar::{Micros, Money};
use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{Nested, money, null_as_empty, timestamp};

/// `GET /v2/orders` item (`include=consignments.line_items` adds the lines).
#[derive(Deserialize)]
pub struct WireOrder {
    id: i64,
    customer_id: i64,
    status_id: i64,
    status: String,
    #[serde(deserialize_with = "money")]
    subtotal_ex_tax: Money,
    #[serde(deserialize_with = "money")]
    subtotal_inc_tax: Money,
    #[serde(deserialize_with = "money")]
    total_ex_tax: Money,
    #[serde(deserialize_with = "money")]
    total_inc_tax: Money,
    /// Refunds so far; orders from before the field existed leave it out (0).
    #[serde(default, deserialize_with = "money")]
    refunded_amount: Money,
    #[serde(default)]
    items_total: i64,
    #[serde(default, deserialize_with = "null_as_empty")]
    currency_code: String,
    #[serde(default)]
    is_deleted: bool,
    #[serde(deserialize_with = "timestamp")]
    date_created: Micros,
    #[serde(deserialize_with = "timestamp")]
    date_modified: Micros,
    #[serde(default, deserialize_with = "consignments")]
    consignments: Option<Vec<Consignment>>,
    /// The record's JSON, for `_payload`.
    #[serde(skip)]
    json: Bytes,
}

/// BigCommerce has served consignments both as a list and as one object:
/// told apart by the JSON's own shape as it streams by (no untagged enum,
/// whose buffering would keep the lines from keeping their raw JSON, and no
/// second parse of the text).
fn consignments<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Consignment>>, D::Error> {
    struct ListOrOne;
    impl<'de> Visitor<'de> for ListOrOne {
        type Value = Option<Vec<Consignment>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of consignments, one consignment, or null")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(1));
            while let Some(one) = seq.next_element()? {
                list.push(one);
            }
            Ok(Some(list))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            Consignment::deserialize(MapAccessDeserializer::new(map)).map(|one| Some(vec![one]))
        }
    }
    d.deserialize_any(ListOrOne)
}

#[derive(Deserialize)]
struct Consignment {
    #[serde(default)]
    shipping: Vec<Shipment>,
    #[serde(default)]
    pickups: Vec<Shipment>,
    #[serde(default)]
    downloads: Vec<Shipment>,
}

#[derive(Deserialize)]
struct Shipment {
    #[serde(default)]
    line_items: Vec<Nested<WireOrderItem>>,
}

/// `GET /v2/orders/{id}/products` item.
#[derive(Deserialize)]
pub struct WireOrderItem {
    id: i64,
    order_id: i64,
    product_id: i64,
    #[serde(default)]
    variant_id: i64,
    #[serde(default, deserialize_with = "null_as_empty")]
    sku: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    name: String,
    quantity: i64,
    #[serde(deserialize_with = "money")]
    base_price: Money,
    #[serde(deserialize_with = "money")]
    price_ex_tax: Money,
    #[serde(deserialize_with = "money")]
    price_inc_tax: Money,
    #[serde(deserialize_with = "money")]
    total_ex_tax: Money,
    #[serde(deserialize_with = "money")]
    total_inc_tax: Money,
    /// The record's JSON, for `_payload`.
    #[serde(skip)]
    json: Bytes,
}

wire_record!(WireOrderItem, "order_item");

wire_record!(WireOrder, "order", left_out: ["consignments"]);

impl WireOrderItem {
    /// The record of this line.
    pub fn into_record(self, payloads: &mut Payloads) -> RawBcOrderItem {
        RawBcOrderItem {
            id: self.id,
            order_id: self.order_id,
            product_id: self.product_id,
            variant_id: self.variant_id,
            sku: self.sku.into(),
            name: self.name.into(),
            quantity: self.quantity,
            base_price: self.base_price,
            price_ex_tax: self.price_ex_tax,
            price_inc_tax: self.price_inc_tax,
            total_ex_tax: self.total_ex_tax,
            total_inc_tax: self.total_inc_tax,
            payload: payloads.keep(self.json),
        }
    }
}

impl WireOrder {
    /// `date_modified`, the cursor field.
    pub fn modified(&self) -> Micros {
        self.date_modified
    }

    /// Whether the lines came embedded (`include=consignments.line_items`).
    pub fn has_lines(&self) -> bool {
        self.consignments.is_some()
    }

    /// The order's upsert and, when embedded, the upsert of all its lines.
    pub fn into_upserts(self, out: &mut Vec<Upsert>, payloads: &mut Payloads) {
        if let Some(consignments) = self.consignments {
            let mut lines: Vec<RawBcOrderItem> = consignments
                .into_iter()
                .flat_map(|c| c.shipping.into_iter().chain(c.pickups).chain(c.downloads))
                .flat_map(|s| s.line_items)
                .map(|Nested(line)| line.into_record(payloads))
                .collect();
            lines.sort_by_key(|l| l.id);
            lines.dedup_by_key(|l| l.id);
            out.push(Upsert::OrderItems(self.id, Some(lines)));
        }
        out.push(Upsert::Order(
            self.id,
            Some(RawBcOrder {
                id: self.id,
                customer_id: self.customer_id,
                status_id: self.status_id,
                status: self.status.into(),
                subtotal_ex_tax: self.subtotal_ex_tax,
                subtotal_inc_tax: self.subtotal_inc_tax,
                total_ex_tax: self.total_ex_tax,
                total_inc_tax: self.total_inc_tax,
                refunded_amount: self.refunded_amount,
                items_total: self.items_total,
                currency_code: self.currency_code.into(),
                is_deleted: self.is_deleted,
                created_at: self.date_created,
                modified_at: self.date_modified,
                payload: payloads.keep(self.json),
            }),
        ));
    }
}
