//! `dim_customer`: customers with their lifetime order aggregates and point
//! balance.
//!
//! - **Grain**: one row per customer in `raw_bc_customer`.
//! - **Key**: `customer_id`.
//! - **Columns**: `customer_id`, `email`, `full_name` (first and last name joined
//!   by a space, empty parts skipped; the empty string, never null, when both
//!   are empty), `customer_group_id`, `created_at`, `order_count`,
//!   `lifetime_revenue`, `first_order_at`, `last_order_at`, `point_balance`.
//!
//! **Aggregate rule** (the metrics contract, `docs/metrics.md`). The order
//! aggregates are over the customer's *revenue orders*: orders in
//! `raw_bc_order` with this `customer_id` that are live (not `is_deleted`),
//! whose status is a paid one — Shipped (2), Partially Shipped (3), Awaiting
//! Pickup (8), Awaiting Shipment (9), Completed (10), Awaiting Fulfillment (11)
//! or Partially Refunded (14), see [`is_paid_status`] — or Refunded (4), and
//! that are not fully refunded ([`is_fully_refunded`]: a positive
//! `refunded_amount` reaching `total_inc_tax`, or Refunded without an amount).
//! Refunded counts for what is left because BigCommerce also sets it on a
//! partial refund. Unpaid (Incomplete, Pending, Awaiting Payment, Manual
//! Verification Required), cancelled (Cancelled, Declined) and disputed orders
//! are not revenue. `order_count` counts revenue orders, `lifetime_revenue`
//! sums their net revenue `total_inc_tax - refunded_amount` ([`net_revenue`],
//! saturating), `first_order_at` / `last_order_at` are the least / greatest of
//! their `created_at`. A customer without revenue orders has `0`, `0` and
//! nulls. Orders of customers not in `raw_bc_customer` (guests, customers not
//! read yet) are not an error; they show up as soon as the customer does.
//!
//! **Point balance.** `point_balance` is the sum of `points` of the point
//! transactions in `raw_pg_point_transaction` whose `customer_id` is this
//! customer (spent points are negative, so it may be negative); `0` when there
//! are none, e.g. without a PostgreSQL source. The sum saturates at the `i64`
//! bounds (see [`point_balance`](crate::models::dim_customer::point_balance)).

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::rows::raw_bc_order::OrderIn;
use crate::scalar::{Micros, Money};

/// A row of `dim_customer`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Record)]
#[record(
    table = "dim_customer",
    key = "customer_id",
    grain = "one row per customer in raw_bc_customer",
    origin = "model",
    reads = "raw_bc_customer, raw_bc_order, raw_pg_point_transaction"
)]
pub struct DimCustomer {
    /// Customer id.
    pub customer_id: i64,
    /// Email address.
    pub email: String,
    /// First and last name.
    pub full_name: String,
    /// Customer group (0: none).
    pub customer_group_id: i64,
    /// When the customer was created.
    pub created_at: Micros,
    /// Number of revenue orders.
    pub order_count: i64,
    /// Sum of the revenue orders' net revenue (`total_inc_tax - refunded_amount`).
    pub lifetime_revenue: Money,
    /// `created_at` of the first revenue order.
    pub first_order_at: Option<Micros>,
    /// `created_at` of the last revenue order.
    pub last_order_at: Option<Micros>,
    /// Sum of the customer's point transactions' `points`.
    pub point_balance: i64,
}

/// Whether a status id is a paid one: Shipped (2), Partially Shipped (3),
/// Awaiting Pickup (8), Awaiting Shipment (9), Completed (10), Awaiting
/// Fulfillment (11) or Partially Refunded (14).
pub fn is_paid_status(status_id: i64) -> bool {
    matches!(status_id, 2 | 3 | 8 | 9 | 10 | 11 | 14)
}

/// An order's revenue net of refunds: `total_inc_tax - refunded_amount`,
/// never below 0 (saturating).
pub fn net_revenue(order: &OrderIn) -> Money {
    Money(
        order
            .total_inc_tax
            .0
            .saturating_sub(order.refunded_amount.0)
            .max(0),
    )
}

/// Whether an order is fully refunded: something was refunded and nothing is
/// left (`0 < refunded_amount >= total_inc_tax`), or it is Refunded (4)
/// without an amount (the status says all of it), whatever else it says.
pub fn is_fully_refunded(order: &OrderIn) -> bool {
    let refunded = order.refunded_amount.0;
    (refunded > 0 && refunded >= order.total_inc_tax.0) || (order.status_id == 4 && refunded <= 0)
}

/// Whether an order counts toward its customer's aggregates: live, in a paid
/// status ([`is_paid_status`]) or Refunded (4, which BigCommerce also sets on
/// partial refunds), and not fully refunded ([`is_fully_refunded`]).
pub fn is_revenue_order(order: &OrderIn) -> bool {
    !order.is_deleted
        && (is_paid_status(order.status_id) || order.status_id == 4)
        && !is_fully_refunded(order)
}

/// `first_name` and `last_name` joined by a space, empty parts skipped.
pub fn full_name(first_name: &str, last_name: &str) -> String {
    let (first, last) = (first_name.trim(), last_name.trim());
    match (first.is_empty(), last.is_empty()) {
        (true, _) => last.to_owned(),
        (_, true) => first.to_owned(),
        _ => format!("{first} {last}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::order;

    #[test]
    fn revenue_is_paid_statuses_net_of_refunds() {
        let raw = |status: i64, total: i64, refunded: i64| {
            let mut o = order(1, 1, status, total, 1);
            o.refunded_amount = Money(refunded);
            o.project()
        };
        // Paid statuses count; unpaid, cancelled, disputed and refunded ones do not.
        for status in 0..=14 {
            let paid = [2, 3, 8, 9, 10, 11, 14].contains(&status);
            assert_eq!(is_revenue_order(&raw(status, 100, 0)), paid, "{status}");
        }
        // Refunded: out when fully refunded or without an amount; a partial
        // refund BigCommerce marked Refunded counts for what is left.
        assert!(!is_revenue_order(&raw(4, 100, 100)));
        assert!(is_revenue_order(&raw(4, 100, 40)));
        assert_eq!(net_revenue(&raw(4, 100, 40)), Money(60));
        // A partial refund is netted out; a full one removes the order.
        assert_eq!(net_revenue(&raw(14, 100, 30)), Money(70));
        assert!(is_revenue_order(&raw(14, 100, 30)));
        assert!(!is_revenue_order(&raw(10, 100, 100)));
        assert!(!is_revenue_order(&raw(14, 100, 130)));
        assert_eq!(net_revenue(&raw(14, 100, 130)), Money(0));
        // A zero-total paid order still counts, with no revenue.
        assert!(is_revenue_order(&raw(10, 0, 0)));
    }

    #[test]
    fn full_name_skips_empty_parts() {
        assert_eq!(full_name("Ada", "Lovelace"), "Ada Lovelace");
        assert_eq!(full_name(" Ada ", ""), "Ada");
        assert_eq!(full_name("", "Lovelace"), "Lovelace");
        // Both empty (or blank): the empty string, never null.
        assert_eq!(full_name("", ""), "");
        assert_eq!(full_name("  ", " "), "");
    }
}
