//! `raw_pg_point_transaction`: the current state of the wise database's
//! `point_transaction` table (PostgreSQL), as read.
//!
//! - **Grain**: one row per point transaction currently known upstream.
//! - **Key**: `id` (the upsert key).
//! - **Columns**: `id`, `customer_id` (the BigCommerce customer id), `points`
//!   (signed: earned > 0, spent < 0), `reason`, `created_at`, `updated_at`
//!   (µs UTC), named and typed as in the source table:
//!
//! ```sql
//! CREATE TABLE point_transaction (
//!     id          bigint      PRIMARY KEY,
//!     customer_id bigint      NOT NULL,
//!     points      bigint      NOT NULL,
//!     reason      text        NOT NULL,
//!     created_at  timestamptz NOT NULL,
//!     updated_at  timestamptz NOT NULL
//! );
//! ```
//!
//! Built with upsert semantics: re-reading an unchanged row changes nothing;
//! `Upsert::PointTransaction(id, None)` removes it. A transaction whose
//! customer is not in `raw_bc_customer` is kept (and reported in `_errors` as
//! `unknown_customer`).

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::ops::{Arr, Coll};
use crate::records::Micros;

/// A row of `raw_pg_point_transaction`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Record)]
#[record(
    table = "raw_pg_point_transaction",
    key = "id",
    grain = "one row per point transaction currently known upstream",
    origin = "postgres"
)]
pub struct RawPgPointTransaction {
    /// Point transaction id.
    pub id: i64,
    /// The BigCommerce customer whose points these are.
    pub customer_id: i64,
    /// Points earned (> 0) or spent (< 0).
    pub points: i64,
    /// Why the points moved, as stored upstream.
    pub reason: String,
    /// When the transaction was created.
    pub created_at: Micros,
    /// When the row was last updated upstream.
    pub updated_at: Micros,
}

/// The table's changes: the upsert arrangement's contents.
pub(crate) fn render<'s>(
    transactions: &Arr<'s, RawPgPointTransaction>,
) -> Coll<'s, RawPgPointTransaction> {
    transactions.clone().as_collection(|_, row| row.clone())
}

#[cfg(test)]
mod tests {
    use crate::fixtures::{point_transaction, updates};
    use crate::records::Upsert;
    use crate::table::{Table, TableRow};

    fn row(points: i64) -> TableRow {
        TableRow::RawPgPointTransaction(point_transaction(1, 7, points))
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
