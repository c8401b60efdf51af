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
    origin = "bigcommerce"
)]
pub struct RawBcOrder {
    /// Order id.
    pub id: i64,
    /// Customer id, 0 for a guest order.
    pub customer_id: i64,
    /// BigCommerce status id (0 Incomplete, 2 Shipped, 5 Cancelled, 6 Declined, 10 Completed, ...).
    pub status_id: i64,
    /// Status name.
    pub status: Text,
    /// Subtotal excluding tax.
    pub subtotal_ex_tax: Money,
    /// Subtotal including tax.
    pub subtotal_inc_tax: Money,
    /// Total excluding tax.
    pub total_ex_tax: Money,
    /// Total including tax.
    pub total_inc_tax: Money,
    /// Amount refunded so far (see `docs/metrics.md`).
    pub refunded_amount: Money,
    /// Number of items as reported by the order itself.
    pub items_total: i64,
    /// ISO currency code.
    pub currency_code: Text,
    /// Whether the order is archived.
    pub is_deleted: bool,
    /// When the order was placed.
    pub created_at: Micros,
    /// When the order was last modified upstream.
    pub modified_at: Micros,
    /// The record's JSON as BigCommerce returned it; embedded records and
    /// fields that change without `date_modified` are left out
    /// (docs/bigcommerce-source.md). Null when unknown.
    #[record(column = "_payload")]
    #[serde(rename = "_payload")]
    pub payload: Payload,
}

/// What the models read of an order: the dataflow holds this projection of a
/// [`RawBcOrder`], not the row. It leaves out `subtotal_inc_tax`, `items_total`, `currency_code`, `_payload`; the
/// [`fingerprint`](Self::fingerprint) of the whole row stands for them, so a
/// change of any column is still a change (the runtime then writes the whole
/// row, docs/runtime.md) and an unchanged re-read is none.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderIn {
    /// Order id.
    pub id: i64,
    /// Customer id, 0 for a guest order.
    pub customer_id: i64,
    /// BigCommerce status id (0 Incomplete, 2 Shipped, 5 Cancelled, 6 Declined, 10 Completed, ...).
    pub status_id: i64,
    /// Status name.
    pub status: Text,
    /// Subtotal excluding tax.
    pub subtotal_ex_tax: Money,
    /// Total excluding tax.
    pub total_ex_tax: Money,
    /// Total including tax.
    pub total_inc_tax: Money,
    /// Amount refunded so far (see `docs/metrics.md`).
    pub refunded_amount: Money,
    /// Whether the order is archived.
    pub is_deleted: bool,
    /// When the order was placed.
    pub created_at: Micros,
    /// When the order was last modified upstream.
    pub modified_at: Micros,
    /// [`crate::projection::fingerprint`] of the whole row.
    pub fingerprint: u64,
}

impl RawBcOrder {
    /// The row as the models read it.
    pub fn project(&self) -> OrderIn {
        OrderIn {
            id: self.id,
            customer_id: self.customer_id,
            status_id: self.status_id,
            status: self.status.clone(),
            subtotal_ex_tax: self.subtotal_ex_tax,
            total_ex_tax: self.total_ex_tax,
            total_inc_tax: self.total_inc_tax,
            refunded_amount: self.refunded_amount,
            is_deleted: self.is_deleted,
            created_at: self.created_at,
            modified_at: self.modified_at,
            fingerprint: crate::projection::fingerprint(self),
        }
    }
}
