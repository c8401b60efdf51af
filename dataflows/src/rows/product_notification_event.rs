//! `product_notification_event`: restock notifications, the outbox that
//! delivery reads.
//!
//! - **Grain**: one row per (customer, SKU, restock episode). An *episode* of
//!   a SKU starts at the epoch its `sku_id` enters
//!   [`fct_onsale_product_inventory`](crate::rows::fct_onsale_product_inventory)
//!   (visible, purchasable and in stock) and lasts until it leaves it again.
//!   Every customer subscribed to the SKU **at the end of that epoch** gets
//!   one event for the episode.
//! - **Key**: `event_id`, `restock-<customer_id>-<sku_id>-<episode>`: a
//!   deterministic function of (customer, SKU, episode), so a replay can never
//!   mint a second id for the same episode.
//! - **Columns**: `event_id`, `customer_id`, `customer_email`, `sku_id`,
//!   `product_id`, `sku`, `episode` (the epoch the episode started: in
//!   `govflow run`, the commit epoch that announced it), `inventory_level`,
//!   `price`, `sale_price` (all as of that epoch).
//!
//! # Rules
//!
//! - **Subscriptions** are customer metafields with namespace
//!   [`SUBSCRIPTION_NAMESPACE`] and key [`SUBSCRIPTION_KEY`] whose value is a
//!   JSON array of variant ids (`[101, 102]`). A value that is not such an
//!   array (or holds an id ≤ 0) subscribes to nothing and is an `_errors` row
//!   (`malformed_subscription`). Duplicate ids, and the same SKU in several
//!   metafields of one customer, count once. A subscription of a customer not
//!   in `raw_bc_customer` announces nothing.
//! - **No back-dated events**: a subscription added while its SKU is already
//!   on sale does not announce the running episode (the customer saw it in
//!   stock); it is announced at the next episode. A subscription that arrives
//!   in the same epoch as the restock is announced.
//! - **Episodes**: a SKU that sells out and is restocked starts a new episode,
//!   hence new events. A change of price or inventory level while on sale is
//!   not a new episode. A SKU that leaves and re-enters within one epoch (or
//!   enters and leaves within one) has no net change, hence no episode.
//! - **Append-only**: events are never retracted; an unsubscribe or a sell-out
//!   after the fact leaves the announced event in place.

use std::collections::BTreeSet;

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::rows::raw_bc_customer_metafield::MetafieldIn;
use crate::rows::table::RowKey;
use crate::scalar::Money;

/// Metafield namespace of restock subscriptions.
pub const SUBSCRIPTION_NAMESPACE: &str = "govflow";
/// Metafield key of restock subscriptions.
pub const SUBSCRIPTION_KEY: &str = "restock_subscriptions";

/// A row of `product_notification_event`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Record)]
#[record(
    table = "product_notification_event",
    key = "event_id",
    grain = "one row per (customer, SKU, restock episode)",
    origin = "model",
    reads = "raw_bc_customer_metafield, fct_onsale_product_inventory",
    key_fn = "event_key"
)]
pub struct ProductNotificationEvent {
    /// `restock-<customer_id>-<sku_id>-<episode>` (see [`event_id`]).
    pub event_id: String,
    /// The subscribed customer.
    pub customer_id: i64,
    /// The customer's email as of the episode's start.
    pub customer_email: String,
    /// Variant id of the restocked SKU.
    pub sku_id: i64,
    /// Its product.
    pub product_id: i64,
    /// SKU code.
    pub sku: String,
    /// The epoch the episode started.
    pub episode: i64,
    /// Effective inventory level at the start.
    pub inventory_level: i64,
    /// Effective price at the start.
    pub price: Money,
    /// Sale price that applied at the start; 0 when not on sale (the
    /// notification payload's convention, see `docs/notifications.md`).
    pub sale_price: Money,
}

/// The key of an event: (customer, SKU, episode), written as its `event_id`.
fn event_key(event: &ProductNotificationEvent) -> RowKey {
    RowKey::Event {
        customer_id: event.customer_id,
        sku_id: event.sku_id,
        episode: event.episode,
    }
}

/// The event id of (customer, SKU, episode): `restock-<customer>-<sku>-<episode>`.
pub fn event_id(customer_id: i64, sku_id: i64, episode: i64) -> String {
    format!("restock-{customer_id}-{sku_id}-{episode}")
}

/// Why a subscriptions value does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubscriptionError {
    /// Not a JSON array of integers.
    NotAnArrayOfIds,
    /// An id that is zero or negative.
    NonPositiveId(i64),
}

/// Whether `m` holds restock subscriptions (by namespace and key).
pub fn is_subscription(m: &MetafieldIn) -> bool {
    m.namespace == SUBSCRIPTION_NAMESPACE && m.key == SUBSCRIPTION_KEY
}

/// The variant ids of a subscriptions value: a JSON array of positive integers.
pub fn parse_subscriptions(value: &str) -> Result<BTreeSet<i64>, SubscriptionError> {
    let ids: Vec<i64> =
        serde_json::from_str(value).map_err(|_| SubscriptionError::NotAnArrayOfIds)?;
    match ids.iter().find(|id| **id <= 0) {
        Some(bad) => Err(SubscriptionError::NonPositiveId(*bad)),
        None => Ok(ids.into_iter().collect()),
    }
}

/// The `(customer_id, sku_id)` pairs a metafield subscribes (none unless it
/// is a well-formed subscriptions metafield).
pub fn subscriptions_of(m: &MetafieldIn) -> BTreeSet<(i64, i64)> {
    if !is_subscription(m) {
        return BTreeSet::new();
    }
    parse_subscriptions(&m.value)
        .map(|ids| ids.into_iter().map(|sku| (m.customer_id, sku)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_subscriptions() {
        assert_eq!(parse_subscriptions("[3, 1, 3]"), Ok(BTreeSet::from([1, 3])));
        assert_eq!(parse_subscriptions(" [] "), Ok(BTreeSet::new()));
        for bad in ["", "3", "[1.5]", "[\"1\"]", "{\"a\":1}", "[1,", "null"] {
            assert_eq!(
                parse_subscriptions(bad),
                Err(SubscriptionError::NotAnArrayOfIds),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_subscriptions("[4, 0]"),
            Err(SubscriptionError::NonPositiveId(0))
        );
    }
}
