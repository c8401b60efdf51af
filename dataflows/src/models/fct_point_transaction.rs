//! The dataflow of `fct_point_transaction`; its contract:
//! [`crate::rows::fct_point_transaction`].
//!
//! **Dataflow.** A map over the point transaction arrangement: no state of
//! its own.

use crate::arrangements::Arrangements;
use crate::ops::Coll;
use crate::rows::fct_point_transaction::FctPointTransaction;
use crate::rows::raw_pg_point_transaction::PointTransactionIn;

impl FctPointTransaction {
    /// The row of transaction `point_transaction_id` (its upsert key).
    pub fn new(point_transaction_id: i64, transaction: &PointTransactionIn) -> Self {
        FctPointTransaction {
            point_transaction_id,
            customer_id: transaction.customer_id,
            points: transaction.points,
            is_earned: transaction.points > 0,
            reason: transaction.reason.clone(),
            created_at: transaction.created_at,
            updated_at: transaction.updated_at,
        }
    }
}

/// The table's changes.
pub(crate) fn render<'s>(arr: &Arrangements<'s>) -> Coll<'s, FctPointTransaction> {
    arr.point_transactions
        .clone()
        .as_collection(|k, t| FctPointTransaction::new(*k, t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{customer, point_transaction, updates};
    use crate::records::Upsert;
    use crate::rows::table::{Table, TableRow};

    fn row(id: i64, customer_id: i64, points: i64) -> TableRow {
        TableRow::FctPointTransaction(FctPointTransaction {
            point_transaction_id: id,
            customer_id,
            points,
            is_earned: points > 0,
            reason: "order".into(),
            created_at: 40,
            updated_at: 41,
        })
    }

    #[test]
    fn one_row_per_transaction_whatever_its_customer() {
        let t = |id, customer_id, points| {
            Upsert::PointTransaction(id, Some(point_transaction(id, customer_id, points)))
        };
        let got = updates(
            Table::FctPointTransaction,
            vec![
                // An unknown customer's transaction is kept.
                vec![t(1, 7, 100), t(2, 7, -30)],
                vec![Upsert::Customer(7, Some(customer(7, "a@x")))],
                vec![t(2, 8, -30), Upsert::Customer(7, None)],
                vec![Upsert::PointTransaction(1, None)],
            ],
        );
        assert_eq!(
            got,
            vec![
                (row(1, 7, 100), 0, 1),
                (row(2, 7, -30), 0, 1),
                (row(2, 7, -30), 2, -1),
                (row(2, 8, -30), 2, 1),
                (row(1, 7, 100), 3, -1),
            ]
        );
    }
}
