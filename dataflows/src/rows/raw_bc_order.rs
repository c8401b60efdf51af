//! `raw_bc_order`: the current state of orders, archived ones included, as read.
//!
//! - **Grain**: one row per order.
//! - **Key**: `id` (the upsert key).
//! - **Columns**: `id`, `customer_id` (0 for a guest), `status_id`, `status`,
//!   `subtotal_ex_tax`, `subtotal_inc_tax`, `total_ex_tax`, `total_inc_tax`,
//!   `refunded_amount` (BigCommerce's running total of refunds on the order, 0
//!   when the API leaves it out), `items_total`, `currency_code`, `is_deleted` (archived), `created_at`,
//!   `modified_at`.

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::payload::Payload;
use crate::scalar::{Micros, Money, Text};

/// A row of `raw_bc_order`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Record)]
#[record(
    table = "raw_bc_order",
    key = "id",
    grain = "one row per order, archived ones included",
    origin = "bigcommerce",
    projection = "OrderIn"
)]
pub struct RawBcOrder {
    /// Order id.
    #[record(read)]
    pub id: i64,
    /// Customer id, 0 for a guest order.
    #[record(read)]
    pub customer_id: i64,
    /// BigCommerce status id (0 Incomplete, 2 Shipped, 5 Cancelled, 6 Declined, 10 Completed, ...).
    #[record(read)]
    pub status_id: i64,
    /// Status name.
    #[record(read)]
    pub status: Text,
    /// Subtotal excluding tax.
    #[record(read)]
    pub subtotal_ex_tax: Money,
    /// Subtotal including tax.
    pub subtotal_inc_tax: Money,
    /// Total excluding tax.
    #[record(read)]
    pub total_ex_tax: Money,
    /// Total including tax.
    #[record(read)]
    pub total_inc_tax: Money,
    /// Amount refunded so far (see `docs/metrics.md`).
    #[record(read)]
    pub refunded_amount: Money,
    /// Number of items as reported by the order itself.
    pub items_total: i64,
    /// ISO currency code.
    pub currency_code: Text,
    /// Whether the order is archived.
    #[record(read)]
    pub is_deleted: bool,
    /// When the order was placed.
    #[record(read)]
    pub created_at: Micros,
    /// When the order was last modified upstream.
    #[record(read)]
    pub modified_at: Micros,
    /// The record's JSON as BigCommerce returned it; embedded records and
    /// fields that change without `date_modified` are left out
    /// (docs/bigcommerce-source.md). Null when unknown.
    #[record(column = "_payload")]
    #[serde(rename = "_payload")]
    pub payload: Payload,
}
