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
    origin = "bigcommerce"
)]
pub struct RawBcCustomerMetafield {
    /// Metafield id.
    pub id: i64,
    /// The customer it belongs to.
    pub customer_id: i64,
    /// Metafield namespace.
    pub namespace: String,
    /// Metafield key.
    pub key: String,
    /// Metafield value, as stored upstream.
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

/// What the models read of a customer metafield: the dataflow holds this projection of a
/// [`RawBcCustomerMetafield`], not the row. It leaves out `created_at`, `modified_at`, `_payload`; the
/// [`fingerprint`](Self::fingerprint) of the whole row stands for them, so a
/// change of any column is still a change (the runtime then writes the whole
/// row, docs/runtime.md) and an unchanged re-read is none.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MetafieldIn {
    /// Metafield id.
    pub id: i64,
    /// The customer it belongs to.
    pub customer_id: i64,
    /// Metafield namespace.
    pub namespace: String,
    /// Metafield key.
    pub key: String,
    /// Metafield value, as stored upstream.
    pub value: String,
    /// [`crate::projection::fingerprint`] of the whole row.
    pub fingerprint: u64,
}

impl RawBcCustomerMetafield {
    /// The row as the models read it.
    pub fn project(&self) -> MetafieldIn {
        MetafieldIn {
            id: self.id,
            customer_id: self.customer_id,
            namespace: self.namespace.clone(),
            key: self.key.clone(),
            value: self.value.clone(),
            fingerprint: crate::projection::fingerprint(self),
        }
    }
}
