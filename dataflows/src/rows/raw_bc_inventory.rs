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
    origin = "bigcommerce",
    projection = "InventoryIn"
)]
pub struct RawBcInventory {
    /// The variant this inventory is for.
    #[record(read)]
    pub variant_id: i64,
    /// The variant's product, as reported by the inventory API.
    #[record(read)]
    pub product_id: i64,
    /// SKU code, as reported by the inventory API.
    pub sku: String,
    /// Units available to sell (on hand minus reserved).
    #[record(read)]
    pub available_to_sell: i64,
    /// Units on hand.
    #[record(read)]
    pub total_inventory_onhand: i64,
    /// Upstream's own in-stock flag.
    #[record(read)]
    pub is_in_stock: bool,
    /// The record's JSON as BigCommerce returned it; embedded records and
    /// fields that change without `date_modified` are left out
    /// (docs/bigcommerce-source.md). Null when unknown.
    #[record(column = "_payload")]
    #[serde(rename = "_payload")]
    pub payload: Payload,
}
