//! `raw_bc_customer`: the current state of BigCommerce customers, as read.
//!
//! - **Grain**: one row per customer currently known upstream.
//! - **Key**: `id` (the upsert key).
//! - **Columns**: `id`, `email`, `first_name`, `last_name`, `company`, `phone`,
//!   `customer_group_id`, `created_at`, `modified_at` (the source's
//!   `date_created` / `date_modified`, µs UTC).
//!
//! Built with upsert semantics: re-reading an unchanged customer changes
//! nothing; `Upsert::Customer(id, None)` removes it.

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::payload::Payload;
use crate::scalar::{Micros, Text};

/// A row of `raw_bc_customer`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Record)]
#[record(
    table = "raw_bc_customer",
    key = "id",
    grain = "one row per customer currently known upstream",
    origin = "bigcommerce"
)]
pub struct RawBcCustomer {
    /// Customer id.
    pub id: i64,
    /// Email address.
    pub email: Text,
    /// Given name.
    pub first_name: Text,
    /// Family name.
    pub last_name: Text,
    /// Company, possibly empty.
    pub company: Text,
    /// Phone, possibly empty.
    pub phone: Text,
    /// Customer group (0: none).
    pub customer_group_id: i64,
    /// When the customer was created.
    pub created_at: Micros,
    /// When the customer was last modified upstream.
    pub modified_at: Micros,
    /// The record's JSON as BigCommerce returned it; embedded records and
    /// fields that change without `date_modified` are left out
    /// (docs/bigcommerce-source.md). Null when unknown.
    #[record(column = "_payload")]
    #[serde(rename = "_payload")]
    pub payload: Payload,
}

/// What the models read of a customer: the dataflow holds this projection of a
/// [`RawBcCustomer`], not the row. It leaves out `company`, `phone`, `modified_at`, `_payload`; the
/// [`fingerprint`](Self::fingerprint) of the whole row stands for them, so a
/// change of any column is still a change (the runtime then writes the whole
/// row, docs/runtime.md) and an unchanged re-read is none.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CustomerIn {
    /// Customer id.
    pub id: i64,
    /// Email address.
    pub email: Text,
    /// Given name.
    pub first_name: Text,
    /// Family name.
    pub last_name: Text,
    /// Customer group (0: none).
    pub customer_group_id: i64,
    /// When the customer was created.
    pub created_at: Micros,
    /// [`crate::projection::fingerprint`] of the whole row.
    pub fingerprint: u64,
}

impl RawBcCustomer {
    /// The row as the models read it.
    pub fn project(&self) -> CustomerIn {
        CustomerIn {
            id: self.id,
            email: self.email.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            customer_group_id: self.customer_group_id,
            created_at: self.created_at,
            fingerprint: crate::projection::fingerprint(self),
        }
    }
}
