//! BigCommerce's JSON shapes (serde) and their conversion to govflow's records.
//!
//! A page whose records all parse is read in one pass ([`one_pass`]). Any
//! other page is parsed in two steps: the envelope (V2 array or V3 `data`)
//! into raw JSON per record, then each record on its own, so one bad record
//! becomes a [`DeadLetter`] and the rest of the page is kept.
//!
//! Each record also keeps its JSON (compact, without the lists of other
//! tables it embeds) for the `_payload` column: a field the typed columns do
//! not name still reaches the warehouse.

use bytes::Bytes;
use chrono::DateTime;
use dataflows::records::{Payloads, Upsert};
use dataflows::rows::raw_bc_customer::RawBcCustomer;
use dataflows::rows::raw_bc_customer_metafield::RawBcCustomerMetafield;
use dataflows::scalar::{Micros, Money};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::client::{Payload, excerpt};
use super::dead_letter::DeadLetter;

/// The [`Record`] impl of a wire struct with `id` and `json` fields:
/// `wire_record!(Type, "entity")`, optionally `left_out: ["key", …]`.
macro_rules! wire_record {
    ($wire:ty, $entity:literal $(, left_out: [$($key:literal),*])?) => {
        impl $crate::sources::bigcommerce::wire::Record for $wire {
            const ENTITY: &'static str = $entity;
            $(const LEFT_OUT: &'static [&'static str] = &[$($key),*];)?
            fn keep_json(&mut self, json: Bytes) {
                self.json = json;
            }
            fn id(&self) -> i64 {
                self.id
            }
        }
    };
}

mod catalog;
mod one_pass;
mod orders;
mod payload_text;

use payload_text::{PageBody, parse_record};

pub use catalog::{WireInventoryItem, WireProduct, WireVariant};
pub use orders::{WireOrder, WireOrderItem};

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
    if let Some(page) = one_pass::v3(&body) {
        return Ok(page);
    }
    let envelope: V3Envelope =
        serde_json::from_slice(&body).map_err(|e| format!("not a V3 page: {e}"))?;
    let total_pages = envelope
        .meta
        .and_then(|m| m.pagination)
        .and_then(|p| p.total_pages);
    let mut page = records(&envelope.data, &body, request);
    page.total_pages = total_pages;
    Ok(page)
}

/// Parses a V2 list page (a bare array; 204 means no records).
pub fn parse_v2<T: Record>(payload: Payload, request: &str) -> Result<Page<T>, String> {
    let body = match payload {
        Payload::Empty => return Ok(empty()),
        Payload::Body(b) => b,
    };
    if let Some(page) = one_pass::v2(&body) {
        return Ok(page);
    }
    let raw: Vec<&RawValue> =
        serde_json::from_slice(&body).map_err(|e| format!("not a V2 array: {e}"))?;
    Ok(records(&raw, &body, request))
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

/// The records of a page whose raw values borrow `body`.
fn records<T: Record>(raw: &[&RawValue], body: &Bytes, request: &str) -> Page<T> {
    let mut page = Page {
        records: Vec::with_capacity(raw.len()),
        dead_letters: Vec::new(),
        returned: raw.len(),
        total_pages: None,
        fetched_at: None,
    };
    let _body = PageBody::enter(body);
    for item in raw {
        match parse_record::<T>(item.get()) {
            Ok((mut record, json)) => {
                record.keep_json(json);
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

/// A record embedded in another (a product's variants, an order's lines),
/// parsed with its own JSON kept.
struct Nested<T>(T);

impl<'de, T: Record> Deserialize<'de> for Nested<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Borrowed: records are parsed from text (`serde_json::from_str`).
        let raw = <&RawValue>::deserialize(d)?;
        let (mut record, json) = parse_record::<T>(raw.get()).map_err(D::Error::custom)?;
        record.keep_json(json);
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
    /// Keeps the record's JSON (see [`parse_record`]).
    fn keep_json(&mut self, json: Bytes);
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
    json: Bytes,
}

wire_record!(WireCustomer, "customer");

impl WireCustomer {
    /// `date_modified`, the cursor field.
    pub fn modified(&self) -> Micros {
        self.date_modified
    }

    /// The upsert of this customer.
    pub fn into_upsert(self, payloads: &mut Payloads) -> Upsert {
        Upsert::Customer(
            self.id,
            Some(RawBcCustomer {
                id: self.id,
                email: self.email.into(),
                first_name: self.first_name.into(),
                last_name: self.last_name.into(),
                company: self.company.into(),
                phone: self.phone.into(),
                customer_group_id: self.customer_group_id,
                created_at: self.date_created,
                modified_at: self.date_modified,
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
    json: Bytes,
}

wire_record!(WireMetafield, "customer_metafield");

impl WireMetafield {
    /// `date_modified`, the cursor field.
    pub fn modified(&self) -> Micros {
        self.date_modified
    }

    /// The upsert of this metafield.
    pub fn into_upsert(self, payloads: &mut Payloads) -> Upsert {
        Upsert::CustomerMetafield(
            self.id,
            Some(RawBcCustomerMetafield {
                id: self.id,
                customer_id: self.resource_id,
                namespace: self.namespace,
                key: self.key,
                value: self.value,
                created_at: self.date_created,
                modified_at: self.date_modified,
                payload: payloads.keep(self.json),
            }),
        )
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
                // The line's own JSON as served, with the fields no column names.
                let line = texts.get(lines[0].payload).unwrap();
                assert!(
                    line.starts_with(r#"{"id":70,"order_id":7,"product_id":1,"#),
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
    fn consignments_as_one_object_or_null() {
        let order = |consignments: &str| {
            let body = format!(
                r#"[{{"id":9,"customer_id":3,"status_id":10,"status":"Completed","subtotal_ex_tax":"1.0000","subtotal_inc_tax":"1.0000","total_ex_tax":"1.0000","total_inc_tax":"1.0000","items_total":1,"currency_code":"USD","is_deleted":false,"date_created":"Wed, 10 Jan 2018 21:05:30 +0000","date_modified":"Wed, 10 Jan 2018 21:05:31 +0000","consignments":{consignments}}}]"#
            );
            let page: Page<WireOrder> =
                parse_v2(Payload::Body(Bytes::from(body)), "GET x").unwrap();
            assert!(page.dead_letters.is_empty(), "{:?}", page.dead_letters);
            let mut out = Vec::new();
            page.records
                .into_iter()
                .for_each(|o| o.into_upserts(&mut out, &mut Payloads::default()));
            out
        };
        let one = order(
            r#"{"shipping":[{"id":1,"line_items":[{"id":90,"order_id":9,"product_id":1,"variant_id":2,"sku":"S","name":"N","quantity":1,"base_price":"1.0000","price_ex_tax":"1.0000","price_inc_tax":"1.0000","total_ex_tax":"1.0000","total_inc_tax":"1.0000"}]}]}"#,
        );
        assert!(
            matches!(&one[0], Upsert::OrderItems(9, Some(lines)) if lines.len() == 1),
            "{one:?}"
        );
        // No consignments: the order alone, its lines left as they are.
        let none = order("null");
        assert!(matches!(&none[..], [Upsert::Order(9, Some(_))]), "{none:?}");
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
