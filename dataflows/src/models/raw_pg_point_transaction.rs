//! The dataflow of `raw_pg_point_transaction`; its contract:
//! [`crate::rows::raw_pg_point_transaction`].

use crate::ops::{Arr, Coll};
use crate::rows::raw_pg_point_transaction::PointTransactionIn;

/// The table's changes: the upsert arrangement's contents.
pub(crate) fn render<'s>(
    transactions: &Arr<'s, PointTransactionIn>,
) -> Coll<'s, PointTransactionIn> {
    transactions.clone().as_collection(|_, row| row.clone())
}

#[cfg(test)]
mod tests {
    use crate::fixtures::{point_transaction, updates};
    use crate::records::Upsert;
    use crate::rows::table::{Table, TableRow};

    fn row(points: i64) -> TableRow {
        TableRow::RawPgPointTransaction(point_transaction(1, 7, points)).projected()
    }

    #[test]
    fn upsert_semantics() {
        let put = |points| Upsert::PointTransaction(1, Some(point_transaction(1, 7, points)));
        let got = updates(
            Table::RawPgPointTransaction,
            vec![
                vec![put(10)],
                vec![put(10)],                           // unchanged: nothing
                vec![put(-4)],                           // update
                vec![Upsert::PointTransaction(1, None)], // delete
                vec![put(1), put(2)],                    // last one in an epoch wins
            ],
        );
        assert_eq!(
            got,
            vec![
                (row(10), 0, 1),
                (row(-4), 2, 1),
                (row(10), 2, -1),
                (row(-4), 3, -1),
                (row(2), 4, 1),
            ]
        );
    }
}
