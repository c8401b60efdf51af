//! The dataflow of `fct_order`; its contract: [`crate::rows::fct_order`].
//!
//! **Dataflow.** A left join of the order arrangement with the
//! lines-by-order arrangement (same key); its only state is the ids of orders
//! without lines.

use crate::arrangements::Arrangements;
use crate::ops::{Coll, left_join};
use crate::rows::dim_customer::{is_revenue_order, net_revenue};
use crate::rows::fct_order::{FctOrder, customer_ref, is_complete, is_fact_line};
use crate::rows::raw_bc_order::OrderIn;
use crate::rows::raw_bc_order_item::LineIn;
use crate::scalar::Money;

impl FctOrder {
    /// The row of order `order_id` with its lines, or `None` if it is archived.
    pub fn new(order_id: i64, order: &OrderIn, lines: &[LineIn]) -> Option<Self> {
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
    use crate::rows::table::{Table, TableRow};

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
    fn a_new_order_without_lines() {
        let o: OrderIn = order(5, 3, 2, 700, 30).project();
        assert_eq!(
            FctOrder::new(5, &o, &[]).map(|f| (f.customer_id, f.item_count)),
            Some((Some(3), 0))
        );
    }
}
