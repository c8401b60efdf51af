//! `raw_bc_inventory`: inventory per variant at the default location, as read.
//!
//! - **Grain**: one row per variant with an inventory record.
//! - **Key**: `variant_id` (the upsert key).
//! - **Columns**: `variant_id`, `product_id`, `sku`, `available_to_sell`,
//!   `total_inventory_onhand`, `is_in_stock`.

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::payload::Payload;

/// A row of `raw_bc_inventory`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Record)]
#[record(
    table = "raw_bc_inventory",
    key = "variant_id",
    grain = "one row per variant with an inventory record",
    origin = "bigcommerce"
)]
pub struct RawBcInventory {
    /// The variant this inventory is for.
    pub variant_id: i64,
    /// The variant's product, as reported by the inventory API.
    pub product_id: i64,
    /// SKU code, as reported by the inventory API.
    pub sku: String,
    /// Units available to sell (on hand minus reserved).
    pub available_to_sell: i64,
    /// Units on hand.
    pub total_inventory_onhand: i64,
    /// Upstream's own in-stock flag.
    pub is_in_stock: bool,
    /// The record's JSON as BigCommerce returned it; embedded records and
    /// fields that change without `date_modified` are left out
    /// (docs/bigcommerce-source.md). Null when unknown.
    #[record(column = "_payload")]
    #[serde(rename = "_payload")]
    pub payload: Payload,
}

/// What the models read of an inventory row: the dataflow holds this projection of a
/// [`RawBcInventory`], not the row. It leaves out `sku`, `_payload`; the
/// [`fingerprint`](Self::fingerprint) of the whole row stands for them, so a
/// change of any column is still a change (the runtime then writes the whole
/// row, docs/runtime.md) and an unchanged re-read is none.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InventoryIn {
    /// The variant this inventory is for.
    pub variant_id: i64,
    /// The variant's product, as reported by the inventory API.
    pub product_id: i64,
    /// Units available to sell (on hand minus reserved).
    pub available_to_sell: i64,
    /// Units on hand.
    pub total_inventory_onhand: i64,
    /// Upstream's own in-stock flag.
    pub is_in_stock: bool,
    /// [`crate::projection::fingerprint`] of the whole row.
    pub fingerprint: u64,
}

impl RawBcInventory {
    /// The row as the models read it.
    pub fn project(&self) -> InventoryIn {
        InventoryIn {
            variant_id: self.variant_id,
            product_id: self.product_id,
            available_to_sell: self.available_to_sell,
            total_inventory_onhand: self.total_inventory_onhand,
            is_in_stock: self.is_in_stock,
            fingerprint: crate::projection::fingerprint(self),
        }
    }
}
