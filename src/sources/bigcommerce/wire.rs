//! BigCommerce's JSON shapes (serde) and their conversion to govflow's records.
//!
//! Each page is parsed in two steps: the envelope (V2 array or V3 `data`) into
//! raw JSON per record, then each record on its own, so one bad record becomes a
//! [`DeadLetter`] and the rest of the page is kept.
//!
//! Each record also keeps its JSON (compact, without the lists of other
//! tables it embeds) for the `_payload` column: a field the typed columns do
//! not name still reaches the warehouse.

use chrono::DateTime;
use dataflows::records::{
    Customer, CustomerMetafield, Inventory, Micros, Money, Order, OrderItem, Payloads, Product,
    Upsert, Variant,
};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::client::{Payload, excerpt};
use super::dead_letter::DeadLetter;

/// One parsed page.
#[derive(Debug)]
pub struct Page<T> {
    /// Records that parsed.
    pub records: Vec<T>,
    /// Records that did not.
    pub dead_letters: Vec<DeadLetter>,
    /// Records on the page, good and bad.
    pub returned: usize,
    /// `meta.pagination.total_pages` (V3).
    pub total_pages: Option<u64>,
    /// When the request for the page started (set by the fetch).
    pub fetched_at: Option<std::time::Instant>,
}

#[derive(Deserialize)]
struct V3Envelope<'a> {
    #[serde(borrow)]
    data: Vec<&'a RawValue>,
    #[serde(default)]
    meta: Option<V3Meta>,
}

#[derive(Deserialize)]
struct V3Meta {
    #[serde(default)]
    pagination: Option<V3Pagination>,
}

#[derive(Deserialize)]
struct V3Pagination {
    total_pages: Option<u64>,
}

/// Parses a V3 list page (`{"data": [...], "meta": {...}}`).
pub fn parse_v3<T: Record>(payload: Payload, request: &str) -> Result<Page<T>, String> {
    let body = match payload {
        Payload::Empty => return Ok(empty()),
        Payload::Body(b) => b,
    };
    let envelope: V3Envelope =
        serde_json::from_slice(&body).map_err(|e| format!("not a V3 page: {e}"))?;
    let total_pages = envelope
        .meta
        .and_then(|m| m.pagination)
        .and_then(|p| p.total_pages);
    let mut page = records(&envelope.data, request);
    page.total_pages = total_pages;
    Ok(page)
}

/// Parses a V2 list page (a bare array; 204 means no records).
pub fn parse_v2<T: Record>(payload: Payload, request: &str) -> Result<Page<T>, String> {
    let body = match payload {
        Payload::Empty => return Ok(empty()),
        Payload::Body(b) => b,
    };
    let raw: Vec<&RawValue> =
        serde_json::from_slice(&body).map_err(|e| format!("not a V2 array: {e}"))?;
    Ok(records(&raw, request))
}

fn empty<T>() -> Page<T> {
    Page {
        records: Vec::new(),
        dead_letters: Vec::new(),
        returned: 0,
        total_pages: None,
        fetched_at: None,
    }
}

fn records<T: Record>(raw: &[&RawValue], request: &str) -> Page<T> {
    let mut page = Page {
        records: Vec::with_capacity(raw.len()),
        dead_letters: Vec::new(),
        returned: raw.len(),
        total_pages: None,
        fetched_at: None,
    };
    for item in raw {
        match serde_json::from_str::<T>(item.get()) {
            Ok(mut record) => {
                record.keep_json(payload_text(item.get(), T::LEFT_OUT));
                page.records.push(record)
            }
            Err(e) => page.dead_letters.push(DeadLetter {
                entity: T::ENTITY,
                id: T::id_of(item.get()),
                reason: e.to_string(),
                raw_excerpt: excerpt(item.get(), 500),
                request: request.to_string(),
            }),
        }
    }
    page
}

/// A record's JSON for `_payload`: compact, without the `left_out` keys (see
/// [`Record::LEFT_OUT`]).
fn payload_text(raw: &str, left_out: &[&str]) -> String {
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(mut value) => {
            if let Some(object) = value.as_object_mut() {
                for key in left_out {
                    object.remove(*key);
                }
            }
            value.to_string()
        }
        // Unreachable for a record that parsed: no payload rather than a wrong one.
        Err(_) => String::new(),
    }
}

/// A record embedded in another (a product's variants, an order's lines),
/// parsed with its own JSON kept.
struct Nested<T>(T);

impl<'de, T: Record> Deserialize<'de> for Nested<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A `Value`, not raw text: an order's lines sit under an untagged
        // enum, whose buffered content cannot yield raw JSON.
        let mut value = serde_json::Value::deserialize(d)?;
        let mut record = T::deserialize(&value).map_err(D::Error::custom)?;
        if let Some(object) = value.as_object_mut() {
            for key in T::LEFT_OUT {
                object.remove(*key);
            }
        }
        record.keep_json(value.to_string());
        Ok(Nested(record))
    }
}

/// A BigCommerce record shape.
pub trait Record: DeserializeOwned {
    /// Entity name in dead letters.
    const ENTITY: &'static str;
    /// Keys left out of its payload: lists of other records it embeds
    /// (they have payloads of their own), and fields BigCommerce changes
    /// without touching the record's `date_modified` (a payload must not
    /// depend on when the record was last read).
    const LEFT_OUT: &'static [&'static str] = &[];
    /// Keeps the record's JSON (see [`payload_text`]).
    fn keep_json(&mut self, json: String);
    /// The record's id.
    fn id(&self) -> i64;
    /// Best-effort id of a record that failed to parse.
    fn id_of(raw: &str) -> Option<i64> {
        #[derive(Deserialize)]
        struct Id {
            id: i64,
        }
        serde_json::from_str::<Id>(raw).ok().map(|r| r.id)
    }
}

fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Micros, D::Error> {
    let text = <&str>::deserialize(d).map_err(|_| D::Error::custom("expected a date string"))?;
    parse_timestamp(text)
        .ok_or_else(|| D::Error::custom(format!("not an ISO 8601 or RFC 2822 date: {text:?}")))
}

/// Parses BigCommerce dates: ISO 8601 with an offset (V3) or RFC 2822 (V2).
pub fn parse_timestamp(text: &str) -> Option<Micros> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_rfc2822(text))
        .ok()
        .map(|t| t.timestamp_micros())
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MoneyWire<'a> {
    Text(&'a str),
    Number(f64),
}

fn money<'de, D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
    match MoneyWire::deserialize(d)? {
        MoneyWire::Text(t) => {
            Money::parse(t).ok_or_else(|| D::Error::custom(format!("not a money amount: {t:?}")))
        }
        MoneyWire::Number(n) => {
            Money::from_f64(n).ok_or_else(|| D::Error::custom(format!("not a money amount: {n}")))
        }
    }
}

fn opt_money<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Money>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "money")] Money);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// `GET /v3/customers` item.
#[derive(Deserialize)]
pub struct WireCustomer {
    id: i64,
    email: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    first_name: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    last_name: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    company: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    phone: String,
    #[serde(default)]
    customer_group_id: i64,
    #[serde(deserialize_with = "timestamp")]
    date_created: Micros,
    #[serde(deserialize_with = "timestamp")]
    date_modified: Micros,
    /// The record's JSON, for `_payload`.
    #[serde(skip)]
    json: String,
}

impl Record for WireCustomer {
    const ENTITY: &'static str = "customer";
    fn keep_json(&mut self, json: String) {
        self.json = json;
    }
    fn id(&self) -> i64 {
        self.id
    }
}

impl WireCustomer {
    /// `date_modified`, the cursor field.
    pub fn modified(&self) -> Micros {
        self.date_modified
    }

    /// The upsert of this customer.
    pub fn into_upsert(self, payloads: &mut Payloads) -> Upsert {
        Upsert::Customer(
            self.id,
            Some(Customer {
                id: self.id,
                email: self.email,
                first_name: self.first_name,
                last_name: self.last_name,
                company: self.company,
                phone: self.phone,
                customer_group_id: self.customer_group_id,
                date_created: self.date_created,
                date_modified: self.date_modified,
                payload: payloads.keep(self.json),
            }),
        )
    }
}

/// `GET /v3/customers/metafields` item.
#[derive(Deserialize)]
pub struct WireMetafield {
    id: i64,
    namespace: String,
    key: String,
    value: String,
    resource_id: i64,
    #[serde(deserialize_with = "timestamp")]
    date_created: Micros,
    #[serde(deserialize_with = "timestamp")]
    date_modified: Micros,
    /// The record's JSON, for `_payload`.
    #[serde(skip)]
    json: String,
}

impl Record for WireMetafield {
    const ENTITY: &'static str = "customer_metafield";
    fn keep_json(&mut self, json: String) {
        self.json = json;
    }
    fn id(&self) -> i64 {
        self.id
    }
}

impl WireMetafield {
    /// `date_modified`, the cursor field.
    pub fn modified(&self) -> Micros {
        self.date_modified
    }

    /// The upsert of this metafield.
    pub fn into_upsert(self, payloads: &mut Payloads) -> Upsert {
        Upsert::CustomerMetafield(
            self.id,
            Some(CustomerMetafield {
                id: self.id,
                customer_id: self.resource_id,
                namespace: self.namespace,
                key: self.key,
                value: self.value,
                date_created: self.date_created,
                date_modified: self.date_modified,
                payload: payloads.keep(self.json),
            }),
        )
    }
}

/// `GET /v3/catalog/products` item (`include=variants` adds `variants`).
#[derive(Deserialize)]
pub struct WireProduct {
    id: i64,
    name: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    sku: String,
    #[serde(deserialize_with = "money")]
    price: Money,
    #[serde(default, deserialize_with = "opt_money")]
    sale_price: Option<Money>,
    is_visible: bool,
    availability: String,
    inventory_tracking: String,
    #[serde(default)]
    brand_id: i64,
    #[serde(deserialize_with = "timestamp")]
    date_created: Micros,
    #[serde(deserialize_with = "timestamp")]
    date_modified: Micros,
    #[serde(default)]
    variants: Option<Vec<Nested<WireVariant>>>,
    /// The record's JSON, for `_payload`.
    #[serde(skip)]
    json: String,
}

impl Record for WireProduct {
    const ENTITY: &'static str = "product";
    // A product's `inventory_level` follows its variants' stock, not its `date_modified`.
    const LEFT_OUT: &'static [&'static str] = &["variants", "inventory_level"];
    fn keep_json(&mut self, json: String) {
        self.json = json;
    }
    fn id(&self) -> i64 {
        self.id
    }
}

impl WireProduct {
    /// `date_modified`, the cursor field.
    pub fn modified(&self) -> Micros {
        self.date_modified
    }

    /// The upserts of this product and its embedded variants.
    pub fn into_upserts(self, out: &mut Vec<Upsert>, payloads: &mut Payloads) {
        for Nested(v) in self.variants.into_iter().flatten() {
            out.push(v.into_upsert(payloads));
        }
        out.push(Upsert::Product(
            self.id,
            Some(Product {
                id: self.id,
                name: self.name,
                sku: self.sku,
                price: self.price,
                sale_price: self.sale_price.unwrap_or_default(),
                is_visible: self.is_visible,
                availability: self.availability,
                inventory_tracking: self.inventory_tracking,
                brand_id: self.brand_id,
                date_created: self.date_created,
                date_modified: self.date_modified,
                payload: payloads.keep(self.json),
            }),
        ));
    }
}

/// `GET /v3/catalog/variants` item.
#[derive(Deserialize)]
pub struct WireVariant {
    id: i64,
    product_id: i64,
    #[serde(default, deserialize_with = "null_as_empty")]
    sku: String,
    #[serde(default, deserialize_with = "opt_money")]
    price: Option<Money>,
    #[serde(default, deserialize_with = "opt_money")]
    sale_price: Option<Money>,
    #[serde(default)]
    inventory_level: i64,
    #[serde(default)]
    purchasing_disabled: bool,
    /// The record's JSON, for `_payload`.
    #[serde(skip)]
    json: String,
}

impl Record for WireVariant {
    const ENTITY: &'static str = "variant";
    fn keep_json(&mut self, json: String) {
        self.json = json;
    }
    fn id(&self) -> i64 {
        self.id
    }
}

impl WireVariant {
    /// The upsert of this variant.
    pub fn into_upsert(self, payloads: &mut Payloads) -> Upsert {
        Upsert::Variant(
            self.id,
            Some(Variant {
                id: self.id,
                product_id: self.product_id,
                sku: self.sku,
                price: self.price,
                sale_price: self.sale_price,
                inventory_level: self.inventory_level,
                purchasing_disabled: self.purchasing_disabled,
                payload: payloads.keep(self.json),
            }),
        )
    }
}

/// `GET /v3/inventory/items` item.
#[derive(Deserialize)]
pub struct WireInventoryItem {
    identity: InventoryIdentity,
    #[serde(default)]
    locations: Vec<InventoryLocation>,
    /// The record's JSON, for `_payload`.
    #[serde(skip)]
    json: String,
}

#[derive(Deserialize)]
struct InventoryIdentity {
    #[serde(default, deserialize_with = "null_as_empty")]
    sku: String,
    variant_id: i64,
    product_id: i64,
}

#[derive(Deserialize)]
struct InventoryLocation {
    available_to_sell: i64,
    total_inventory_onhand: i64,
    settings: InventorySettings,
}

#[derive(Deserialize)]
struct InventorySettings {
    is_in_stock: bool,
}

impl Record for WireInventoryItem {
    const ENTITY: &'static str = "inventory_item";
    fn keep_json(&mut self, json: String) {
        self.json = json;
    }
    fn id(&self) -> i64 {
        self.identity.variant_id
    }
    fn id_of(raw: &str) -> Option<i64> {
        #[derive(Deserialize)]
        struct Item {
            identity: Id,
        }
        #[derive(Deserialize)]
        struct Id {
            variant_id: i64,
        }
        serde_json::from_str::<Item>(raw)
            .ok()
            .map(|i| i.identity.variant_id)
    }
}

impl WireInventoryItem {
    /// The upsert of this item, summed over locations.
    pub fn into_upsert(self, payloads: &mut Payloads) -> Upsert {
        let id = self.identity.variant_id;
        Upsert::Inventory(
            id,
            Some(Inventory {
                variant_id: id,
                product_id: self.identity.product_id,
                sku: self.identity.sku,
                available_to_sell: self.locations.iter().map(|l| l.available_to_sell).sum(),
                total_inventory_onhand: self
                    .locations
                    .iter()
                    .map(|l| l.total_inventory_onhand)
                    .sum(),
                is_in_stock: self.locations.iter().any(|l| l.settings.is_in_stock),
                payload: payloads.keep(self.json),
            }),
        )
    }
}

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
    #[serde(default)]
    consignments: Option<Consignments>,
    /// The record's JSON, for `_payload`.
    #[serde(skip)]
    json: String,
}

/// BigCommerce has served consignments both as a list and as one object.
#[derive(Deserialize)]
#[serde(untagged)]
enum Consignments {
    Many(Vec<Consignment>),
    One(Consignment),
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
    json: String,
}

impl Record for WireOrderItem {
    const ENTITY: &'static str = "order_item";
    fn keep_json(&mut self, json: String) {
        self.json = json;
    }
    fn id(&self) -> i64 {
        self.id
    }
}

impl Record for WireOrder {
    const ENTITY: &'static str = "order";
    const LEFT_OUT: &'static [&'static str] = &["consignments"];
    fn keep_json(&mut self, json: String) {
        self.json = json;
    }
    fn id(&self) -> i64 {
        self.id
    }
}

impl WireOrderItem {
    /// The record of this line.
    pub fn into_record(self, payloads: &mut Payloads) -> OrderItem {
        OrderItem {
            id: self.id,
            order_id: self.order_id,
            product_id: self.product_id,
            variant_id: self.variant_id,
            sku: self.sku,
            name: self.name,
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
            let list = match consignments {
                Consignments::Many(list) => list,
                Consignments::One(one) => vec![one],
            };
            let mut lines: Vec<OrderItem> = list
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
            Some(Order {
                id: self.id,
                customer_id: self.customer_id,
                status_id: self.status_id,
                status: self.status,
                subtotal_ex_tax: self.subtotal_ex_tax,
                subtotal_inc_tax: self.subtotal_inc_tax,
                total_ex_tax: self.total_ex_tax,
                total_inc_tax: self.total_inc_tax,
                refunded_amount: self.refunded_amount,
                items_total: self.items_total,
                currency_code: self.currency_code,
                is_deleted: self.is_deleted,
                date_created: self.date_created,
                date_modified: self.date_modified,
                payload: payloads.keep(self.json),
            }),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn dates_in_both_formats() {
        let iso = parse_timestamp("2018-01-10T21:05:30+00:00").unwrap();
        assert_eq!(parse_timestamp("2018-01-10T21:05:30Z"), Some(iso));
        assert_eq!(
            parse_timestamp("Wed, 10 Jan 2018 21:05:30 +0000"),
            Some(iso)
        );
        assert_eq!(parse_timestamp("2018-01-10"), None);
    }

    #[test]
    fn a_bad_record_is_dead_lettered_and_the_rest_kept() {
        let body = r#"{"data":[
            {"id":1,"email":"a@x","first_name":"A","last_name":"B","company":null,"phone":"","customer_group_id":0,"date_created":"2024-01-01T00:00:00Z","date_modified":"2024-01-02T00:00:00Z"},
            {"id":2,"email":"b@x","date_created":"2024-01-01T00:00:00Z","date_modified":"not a date"},
            {"id":3,"email":"c@x","date_created":"2024-01-01T00:00:00Z","date_modified":"2024-01-03T00:00:00Z"}
        ],"meta":{"pagination":{"total":3,"total_pages":1}}}"#;
        let page: Page<WireCustomer> = parse_v3(Payload::Body(Bytes::from(body)), "GET x").unwrap();
        assert_eq!(page.returned, 3);
        assert_eq!(page.records.len(), 2);
        assert_eq!(page.total_pages, Some(1));
        let dead = &page.dead_letters[0];
        assert_eq!((dead.entity, dead.id), ("customer", Some(2)));
        assert!(dead.reason.contains("not a date"), "{}", dead.reason);
        assert!(dead.raw_excerpt.contains("\"id\":2"));
    }

    #[test]
    fn truncated_pages_are_errors_not_dead_letters() {
        let cut = Payload::Body(Bytes::from_static(b"[{\"id\":1,\"cust"));
        assert!(parse_v2::<WireOrder>(cut, "GET x").is_err());
        let page = parse_v2::<WireOrder>(Payload::Empty, "GET x").unwrap();
        assert_eq!(page.returned, 0);
    }

    #[test]
    fn orders_with_embedded_lines() {
        let body = r#"[{"id":7,"customer_id":3,"status_id":10,"status":"Completed","subtotal_ex_tax":"10.0000","subtotal_inc_tax":"11.0000","total_ex_tax":"10.0000","total_inc_tax":"11.0000","items_total":2,"currency_code":"USD","is_deleted":false,
          "date_created":"Wed, 10 Jan 2018 21:05:30 +0000","date_modified":"Wed, 10 Jan 2018 21:05:31 +0000",
          "consignments":[{"shipping":[{"id":1,"line_items":[{"id":70,"order_id":7,"product_id":1,"variant_id":2,"sku":"S","name":"N","quantity":2,"base_price":"5.0000","price_ex_tax":"5.0000","price_inc_tax":"5.5000","total_ex_tax":"10.0000","total_inc_tax":"11.0000"}]}],"pickups":[],"downloads":[],"email":{"gift_certificates":[]}}]}]"#;
        let page: Page<WireOrder> = parse_v2(Payload::Body(Bytes::from(body)), "GET x").unwrap();
        let (mut out, mut texts) = (Vec::new(), Payloads::default());
        page.records
            .into_iter()
            .for_each(|o| o.into_upserts(&mut out, &mut texts));
        match &out[0] {
            Upsert::OrderItems(7, Some(lines)) => {
                assert_eq!(lines.len(), 1);
                assert_eq!(lines[0].total_inc_tax, Money(110_000));
                // The line's own JSON, compact, with the fields no column names.
                let line = texts.get(lines[0].payload).unwrap();
                assert!(
                    line.starts_with(r#"{"base_price":"5.0000","id":70,"#),
                    "{line}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        let Upsert::Order(7, Some(order)) = &out[1] else {
            panic!("unexpected {:?}", out[1]);
        };
        assert_eq!(order.total_inc_tax, Money(110_000));
        // The order's JSON without the lines, which have payloads of their own.
        let text = texts.get(order.payload).unwrap();
        assert!(
            !text.contains("consignments") && text.contains(r#""id":7"#),
            "{text}"
        );
    }

    #[test]
    fn refunded_amount_is_read_and_defaults_to_zero() {
        let order = |refund: &str| {
            format!(
                r#"[{{"id":8,"customer_id":3,"status_id":14,"status":"Partially Refunded","subtotal_ex_tax":"10.0000","subtotal_inc_tax":"11.0000","total_ex_tax":"10.0000","total_inc_tax":"11.0000",{refund}"items_total":2,"currency_code":"USD","is_deleted":false,"date_created":"Wed, 10 Jan 2018 21:05:30 +0000","date_modified":"Wed, 10 Jan 2018 21:05:31 +0000"}}]"#
            )
        };
        let refunded = |body: String| {
            let page: Page<WireOrder> =
                parse_v2(Payload::Body(Bytes::from(body)), "GET x").unwrap();
            assert!(page.dead_letters.is_empty());
            let mut out = Vec::new();
            page.records
                .into_iter()
                .for_each(|o| o.into_upserts(&mut out, &mut Payloads::default()));
            match &out[..] {
                [Upsert::Order(8, Some(o))] => o.refunded_amount,
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(
            refunded(order(r#""refunded_amount":"3.3000","#)),
            Money(33_000)
        );
        // Orders served without the field (older API versions) refunded nothing.
        assert_eq!(refunded(order("")), Money(0));
    }
}
