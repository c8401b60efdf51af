//! The dataflow of `raw_bc_order_item`; its contract:
//! [`crate::rows::raw_bc_order_item`].

use crate::ops::{Arr, Coll};
use crate::rows::raw_bc_order_item::{LineIn, OrderLines};

/// The table's changes: every line of every order in the arrangement.
pub(crate) fn render<'s>(order_items: &Arr<'s, OrderLines>) -> Coll<'s, LineIn> {
    order_items.clone().flat_map_ref(|_, lines| lines.to_vec())
}

#[cfg(test)]
mod tests {
    use crate::fixtures::{line, updates};
    use crate::records::Upsert;
    use crate::rows::raw_bc_order_item::RawBcOrderItem;
    use crate::rows::table::{Table, TableRow};

    fn row(id: i64, order_id: i64, quantity: i64) -> TableRow {
        TableRow::RawBcOrderItem(line(id, order_id, quantity)).projected()
    }

    #[test]
    fn lines_are_replaced_per_order() {
        let items = |lines: Vec<RawBcOrderItem>| Upsert::OrderItems(5, Some(lines));
        let got = updates(
            Table::RawBcOrderItem,
            vec![
                vec![items(vec![line(51, 5, 1), line(52, 5, 2)])],
                vec![items(vec![line(52, 5, 2), line(51, 5, 1)])], // same lines, other order: nothing
                vec![items(vec![line(51, 5, 3)])],                 // one line changes, one goes
                vec![Upsert::OrderItems(5, None)],
            ],
        );
        assert_eq!(
            got,
            vec![
                (row(51, 5, 1), 0, 1),
                (row(52, 5, 2), 0, 1),
                (row(51, 5, 1), 2, -1),
                (row(51, 5, 3), 2, 1),
                (row(52, 5, 2), 2, -1),
                (row(51, 5, 3), 3, -1),
            ]
        );
    }
}
