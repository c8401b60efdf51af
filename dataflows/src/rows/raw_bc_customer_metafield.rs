//! `raw_bc_customer_metafield`: the current state of customer metafields, as read.
//!
//! - **Grain**: one row per metafield.
//! - **Key**: `id` (the upsert key).
//! - **Columns**: `id`, `customer_id`, `namespace`, `key`, `value`,
//!   `created_at`, `modified_at`.
//!
//! A metafield whose customer is unknown is kept (customers may arrive later).

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::payload::Payload;
use crate::scalar::Micros;

/// A row of `raw_bc_customer_metafield`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Record)]
#[record(
    table = "raw_bc_customer_metafield",
    key = "id",
    grain = "one row per customer metafield",
    origin = "bigcommerce",
    projection = "MetafieldIn"
)]
pub struct RawBcCustomerMetafield {
    /// Metafield id.
    #[record(read)]
    pub id: i64,
    /// The customer it belongs to.
    #[record(read)]
    pub customer_id: i64,
    /// Metafield namespace.
    #[record(read)]
    pub namespace: String,
    /// Metafield key.
    #[record(read)]
    pub key: String,
    /// Metafield value, as stored upstream.
    #[record(read)]
    pub value: String,
    /// When the metafield was created.
    pub created_at: Micros,
    /// When the metafield was last modified upstream.
    pub modified_at: Micros,
    /// The record's JSON as BigCommerce returned it; embedded records and
    /// fields that change without `date_modified` are left out
    /// (docs/bigcommerce-source.md). Null when unknown.
    #[record(column = "_payload")]
    #[serde(rename = "_payload")]
    pub payload: Payload,
}
