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

use crate::scalar::Micros;

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

/// What the models read of a point transaction: every column, so the
/// dataflow holds the row itself (a PostgreSQL row has no `_payload`).
pub type PointTransactionIn = RawPgPointTransaction;

impl RawPgPointTransaction {
    /// The row as the models read it: all of it.
    pub fn project(&self) -> PointTransactionIn {
        self.clone()
    }
}
