//! `raw_pg_quotation`: the current state of the commerce database's
//! `quotation` table (PostgreSQL), as read.
//!
//! - **Grain**: one row per quotation currently known upstream.
//! - **Key**: `id` (the upsert key).
//! - **Columns**: `id`, `customer_email` (as entered), `status`, `total`
//!   (decimal, 4 places), `currency_code`, `created_at`, `updated_at` (µs UTC),
//!   named and typed as in the source table:
//!
//! ```sql
//! CREATE TABLE quotation (
//!     id             bigint        PRIMARY KEY,
//!     customer_email text          NOT NULL,
//!     status         text          NOT NULL,
//!     total          numeric(18,4) NOT NULL,
//!     currency_code  text          NOT NULL,
//!     created_at     timestamptz   NOT NULL,
//!     updated_at     timestamptz   NOT NULL
//! );
//! ```
//!
//! Built with upsert semantics: re-reading an unchanged row changes nothing;
//! `Upsert::Quotation(id, None)` removes it. A quotation with an empty email
//! is kept (and reported in `_errors` as `empty_email`).

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::scalar::{Micros, Money};

/// A row of `raw_pg_quotation`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Record)]
#[record(
    table = "raw_pg_quotation",
    key = "id",
    grain = "one row per quotation currently known upstream",
    origin = "postgres"
)]
pub struct RawPgQuotation {
    /// Quotation id.
    pub id: i64,
    /// The customer's email, as entered.
    pub customer_email: String,
    /// Status, e.g. `draft`, `sent`, `accepted`, `rejected`, `expired`.
    pub status: String,
    /// Quoted total.
    pub total: Money,
    /// ISO currency code.
    pub currency_code: String,
    /// When the quotation was created.
    pub created_at: Micros,
    /// When the row was last updated upstream.
    pub updated_at: Micros,
}

/// What the models read of a quotation: every column, so the
/// dataflow holds the row itself (a PostgreSQL row has no `_payload`).
pub type QuotationIn = RawPgQuotation;

impl RawPgQuotation {
    /// The row as the models read it: all of it.
    pub fn project(&self) -> QuotationIn {
        self.clone()
    }
}
