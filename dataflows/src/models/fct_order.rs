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
//! refunded ([`crate::models::dim_customer::is_revenue_order`]); `net_revenue` is
//! `total_inc_tax - refunded_amount` (never below 0) for a revenue order, else
//! 0. Marts sum these instead of re-deriving the status list.
//! `item_count` / `quantity`: the number of the order's lines and the sum of
//! their quantities, over lines with a positive quantity only (others are in
//! `_errors` as `non_positive_quantity`); `0` / `0` for an order with no lines
//! read. An order whose customer is not in `raw_bc_customer` is kept.
//!
//! **Dataflow.** A left join of the order arrangement with the
//! lines-by-order arrangement (same key); its only state is the ids of orders
//! without lines.

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::arrangements::Arrangements;
use crate::models::dim_customer::{is_revenue_order, net_revenue};
use crate::models::raw_bc_order::RawBcOrder;
use crate::models::raw_bc_order_item::RawBcOrderItem;
use crate::ops::{Coll, left_join};
use crate::records::{Micros, Money};

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
pub fn is_fact_line(line: &RawBcOrderItem) -> bool {
    line.quantity > 0
}

/// The customer reference of an order: `None` for a guest (source id 0).
pub fn customer_ref(customer_id: i64) -> Option<i64> {
    (customer_id != 0).then_some(customer_id)
}

impl FctOrder {
    /// The row of order `order_id` with its lines, or `None` if it is archived.
    pub fn new(order_id: i64, order: &RawBcOrder, lines: &[RawBcOrderItem]) -> Option<Self> {
        if order.is_deleted {
            return None;
        }
        let (item_count, quantity) = lines
            .iter()
            .filter(|line| is_fact_line(line))
            .fold((0i64, 0i64), |(n, q), line| {
                (n + 1, q.saturating_add(line.quantity))
            });
        let is_revenue = is_revenue_order(order);
        Some(FctOrder {
            order_id,
            customer_id: customer_ref(order.customer_id),
            status_id: order.status_id,
            status: order.status.to_string(),
            is_complete: is_complete(order.status_id),
            subtotal_ex_tax: order.subtotal_ex_tax,
            total_ex_tax: order.total_ex_tax,
            total_inc_tax: order.total_inc_tax,
            refunded_amount: order.refunded_amount,
            is_revenue,
            net_revenue: if is_revenue {
                net_revenue(order)
            } else {
                Money(0)
            },
            item_count,
            quantity,
            ordered_at: order.created_at,
            modified_at: order.modified_at,
        })
    }
}

/// The table's changes.
pub(crate) fn render<'s>(arr: &Arrangements<'s>) -> Coll<'s, FctOrder> {
    left_join(
        arr.orders.clone(),
        arr.order_items.clone(),
        |k, order, lines| FctOrder::new(*k, order, lines.map_or(&[], |lines| &lines[..])),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{line, order, updates};
    use crate::records::Upsert;
    use crate::table::{Table, TableRow};

    fn row(customer_id: Option<i64>, status_id: i64, item_count: i64, quantity: i64) -> TableRow {
        TableRow::FctOrder(FctOrder {
            order_id: 5,
            customer_id,
            status_id,
            status: format!("status {status_id}"),
            is_complete: is_complete(status_id),
            subtotal_ex_tax: Money(700),
            total_ex_tax: Money(700),
            total_inc_tax: Money(700),
            refunded_amount: Money(0),
            is_revenue: status_id == 10 || status_id == 11,
            net_revenue: Money(if status_id == 10 || status_id == 11 {
                700
            } else {
                0
            }),
            item_count,
            quantity,
            ordered_at: 30,
            modified_at: 30,
        })
    }

    #[test]
    fn follows_order_and_lines() {
        let mut archived = order(5, 0, 10, 700, 30);
        archived.is_deleted = true;
        let got = updates(
            Table::FctOrder,
            vec![
                vec![Upsert::Order(5, Some(order(5, 0, 11, 700, 30)))],
                // A line with quantity 0 is left out of the counts.
                vec![Upsert::OrderItems(
                    5,
                    Some(vec![line(51, 5, 2), line(52, 5, 3), line(53, 5, 0)]),
                )],
                vec![Upsert::Order(5, Some(order(5, 0, 10, 700, 30)))],
                vec![Upsert::OrderItems(5, Some(vec![line(51, 5, 2)]))],
                vec![Upsert::Order(5, Some(archived))],
            ],
        );
        assert_eq!(
            got,
            vec![
                (row(None, 11, 0, 0), 0, 1),
                (row(None, 11, 0, 0), 1, -1),
                (row(None, 11, 2, 5), 1, 1),
                (row(None, 10, 2, 5), 2, 1),
                (row(None, 11, 2, 5), 2, -1),
                (row(None, 10, 1, 2), 3, 1),
                (row(None, 10, 2, 5), 3, -1),
                (row(None, 10, 1, 2), 4, -1),
            ]
        );
    }

    #[test]
    fn rules() {
        assert!(is_complete(2) && is_complete(10));
        assert!(!is_complete(0) && !is_complete(11) && !is_complete(5));
        assert_eq!(customer_ref(0), None);
        assert_eq!(customer_ref(3), Some(3));
        let o: RawBcOrder = order(5, 3, 2, 700, 30);
        assert_eq!(
            FctOrder::new(5, &o, &[]).map(|f| (f.customer_id, f.item_count)),
            Some((Some(3), 0))
        );
    }
}
