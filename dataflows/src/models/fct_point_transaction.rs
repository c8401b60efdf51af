//! `fct_point_transaction`: loyalty point movements (PostgreSQL, wise
//! database), one per transaction, with their BigCommerce customer.
//!
//! - **Grain**: one row per point transaction in `raw_pg_point_transaction`.
//! - **Key**: `point_transaction_id`.
//! - **Columns**: `point_transaction_id`, `customer_id` (the BigCommerce
//!   customer id, as stored by the wise database), `points` (signed),
//!   `is_earned` (`points > 0`), `reason`, `created_at`, `updated_at`.
//!
//! **Rules.** Like `fct_order`, which keeps orders whose customer is not in
//! `raw_bc_customer`, every transaction is kept, with its `customer_id` as
//! read: the fact does not come and go with the customer row (a customer
//! read later, or deleted in BigCommerce while its points history stays).
//! Unlike an order, a point transaction has no guest case, so one whose
//! customer is not in `raw_bc_customer` is reported in `_errors` as
//! `unknown_customer` (and does not count in any `dim_customer.point_balance`).
//!
//! **Dataflow.** A map over the point transaction arrangement: no state of
//! its own.

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::arrangements::Arrangements;
use crate::models::raw_pg_point_transaction::RawPgPointTransaction;
use crate::ops::Coll;
use crate::records::Micros;

/// A row of `fct_point_transaction`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Record)]
#[record(
    table = "fct_point_transaction",
    key = "point_transaction_id",
    grain = "one row per point transaction",
    origin = "model",
    reads = "raw_pg_point_transaction"
)]
pub struct FctPointTransaction {
    /// Point transaction id.
    pub point_transaction_id: i64,
    /// The BigCommerce customer whose points these are.
    pub customer_id: i64,
    /// Points earned (> 0) or spent (< 0).
    pub points: i64,
    /// Whether points were earned (`points > 0`).
    pub is_earned: bool,
    /// Why the points moved, as stored upstream.
    pub reason: String,
    /// When the transaction was created.
    pub created_at: Micros,
    /// When it was last updated upstream.
    pub updated_at: Micros,
}

impl FctPointTransaction {
    /// The row of transaction `point_transaction_id` (its upsert key).
    pub fn new(point_transaction_id: i64, transaction: &RawPgPointTransaction) -> Self {
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
    use crate::table::{Table, TableRow};

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
