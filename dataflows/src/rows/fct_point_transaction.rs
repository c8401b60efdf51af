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

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::scalar::Micros;

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
