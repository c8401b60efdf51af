//! The dataflow of `fct_order_item`; its contract:
//! [`crate::rows::fct_order_item`].
//!
//! **Dataflow.** A join of the lines-by-order arrangement with the order
//! arrangement (same key): no state of its own.

use crate::arrangements::Arrangements;
use crate::ops::Coll;
use crate::rows::fct_order::{customer_ref, is_fact_line};
use crate::rows::fct_order_item::FctOrderItem;
use crate::rows::raw_bc_order::OrderIn;
use crate::rows::raw_bc_order_item::LineIn;

impl FctOrderItem {
    /// The rows of the lines of order `order_id` (none if it is archived).
    pub fn rows(order_id: i64, order: &OrderIn, lines: &[LineIn]) -> Vec<Self> {
        if order.is_deleted {
            return Vec::new();
        }
        lines
            .iter()
            .filter(|line| is_fact_line(line))
            .map(|line| FctOrderItem {
                order_item_id: line.id,
                order_id,
                customer_id: customer_ref(order.customer_id),
                product_id: line.product_id,
                sku_id: line.variant_id,
                sku: line.sku.to_string(),
                quantity: line.quantity,
                unit_price: line.price_inc_tax,
                line_total: line.total_inc_tax,
                status_id: order.status_id,
                status: order.status.to_string(),
                ordered_at: order.created_at,
            })
            .collect()
    }
}

/// The table's changes.
pub(crate) fn render<'s>(arr: &Arrangements<'s>) -> Coll<'s, FctOrderItem> {
    arr.order_items
        .clone()
        .join_core(arr.orders.clone(), |order_id, lines, order| {
            FctOrderItem::rows(*order_id, order, lines)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{line, order, updates};
    use crate::records::Upsert;
    use crate::rows::table::{Table, TableRow};
    use crate::scalar::Money;

    fn row(id: i64, quantity: i64, status_id: i64) -> TableRow {
        TableRow::FctOrderItem(FctOrderItem {
            order_item_id: id,
            order_id: 5,
            customer_id: Some(3),
            product_id: 1,
            sku_id: 10,
            sku: "V10".into(),
            quantity,
            unit_price: Money(11_000),
            line_total: Money(11_000 * quantity),
            status_id,
            status: format!("status {status_id}"),
            ordered_at: 30,
        })
    }

    #[test]
    fn lines_of_live_orders() {
        let mut archived = order(5, 3, 10, 700, 30);
        archived.is_deleted = true;
        let got = updates(
            Table::FctOrderItem,
            vec![
                // Lines before their order: nothing yet.
                vec![Upsert::OrderItems(
                    5,
                    Some(vec![line(51, 5, 2), line(52, 5, -1)]),
                )],
                vec![Upsert::Order(5, Some(order(5, 3, 11, 700, 30)))],
                vec![Upsert::Order(5, Some(order(5, 3, 10, 700, 30)))],
                vec![Upsert::Order(5, Some(archived))],
                vec![Upsert::Order(5, Some(order(5, 3, 10, 700, 30)))],
                vec![Upsert::OrderItems(5, None)],
            ],
        );
        assert_eq!(
            got,
            vec![
                (row(51, 2, 11), 1, 1),
                (row(51, 2, 10), 2, 1),
                (row(51, 2, 11), 2, -1),
                (row(51, 2, 10), 3, -1),
                (row(51, 2, 10), 4, 1),
                (row(51, 2, 10), 5, -1),
            ]
        );
    }
}
