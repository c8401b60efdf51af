//! `fct_order`: one row per live order.
//!
//! - **Grain**: one row per order in `raw_bc_order` that is not archived
//!   (`is_deleted` false).
//! - **Key**: `order_id`.
//! - **Columns**: `order_id`, `customer_id` (null for a guest order, whose
//!   source `customer_id` is 0), `status_id`, `status`, `is_complete`,
//!   `subtotal_ex_tax`, `total_ex_tax`, `total_inc_tax`, `refunded_amount`,
//!   `is_revenue`, `net_revenue`, `item_count`, `quantity`, `ordered_at` (the
//!   order's `created_at`), `modified_at`.
//!
//! **Rules.** `is_complete`: status Shipped (2) or Completed (10).
//! `is_revenue` / `net_revenue`: the metrics contract (`docs/metrics.md`),
//! the same rule as `dim_customer`: a paid status or Refunded, not fully
//! refunded ([`crate::rows::dim_customer::is_revenue_order`]); `net_revenue` is
//! `total_inc_tax - refunded_amount` (never below 0) for a revenue order, else
//! 0. Marts sum these instead of re-deriving the status list.
//! `item_count` / `quantity`: the number of the order's lines and the sum of
//! their quantities, over lines with a positive quantity only (others are in
//! `_errors` as `non_positive_quantity`); `0` / `0` for an order with no lines
//! read. An order whose customer is not in `raw_bc_customer` is kept.

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::rows::raw_bc_order_item::LineIn;
use crate::scalar::{Micros, Money};

/// A row of `fct_order`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Record)]
#[record(
    table = "fct_order",
    key = "order_id",
    grain = "one row per order that is not archived",
    origin = "model",
    reads = "raw_bc_order, raw_bc_order_item"
)]
pub struct FctOrder {
    /// Order id.
    pub order_id: i64,
    /// Customer id; null for guest orders.
    pub customer_id: Option<i64>,
    /// BigCommerce status id.
    pub status_id: i64,
    /// Status name.
    pub status: String,
    /// Shipped (2) or Completed (10).
    pub is_complete: bool,
    /// Subtotal excluding tax.
    pub subtotal_ex_tax: Money,
    /// Total excluding tax.
    pub total_ex_tax: Money,
    /// Total including tax.
    pub total_inc_tax: Money,
    /// Amount refunded so far.
    pub refunded_amount: Money,
    /// Whether the order is revenue (paid, not fully refunded).
    pub is_revenue: bool,
    /// Revenue net of refunds; 0 unless `is_revenue`.
    pub net_revenue: Money,
    /// Number of lines with a positive quantity.
    pub item_count: i64,
    /// Sum of those lines' quantities.
    pub quantity: i64,
    /// When the order was placed.
    pub ordered_at: Micros,
    /// When the order was last modified upstream.
    pub modified_at: Micros,
}

/// Shipped (2) or Completed (10).
pub fn is_complete(status_id: i64) -> bool {
    matches!(status_id, 2 | 10)
}

/// A line counts in facts when its quantity is positive.
pub fn is_fact_line(line: &LineIn) -> bool {
    line.quantity > 0
}

/// The customer reference of an order: `None` for a guest (source id 0).
pub fn customer_ref(customer_id: i64) -> Option<i64> {
    (customer_id != 0).then_some(customer_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(is_complete(2) && is_complete(10));
        assert!(!is_complete(0) && !is_complete(11) && !is_complete(5));
        assert_eq!(customer_ref(0), None);
        assert_eq!(customer_ref(3), Some(3));
    }
}
