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
    origin = "bigcommerce",
    projection = "CustomerIn"
)]
pub struct RawBcCustomer {
    /// Customer id.
    #[record(read)]
    pub id: i64,
    /// Email address.
    #[record(read)]
    pub email: Text,
    /// Given name.
    #[record(read)]
    pub first_name: Text,
    /// Family name.
    #[record(read)]
    pub last_name: Text,
    /// Company, possibly empty.
    pub company: Text,
    /// Phone, possibly empty.
    pub phone: Text,
    /// Customer group (0: none).
    #[record(read)]
    pub customer_group_id: i64,
    /// When the customer was created.
    #[record(read)]
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
