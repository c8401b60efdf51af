//! `raw_bc_variant`: the current state of product variants (SKUs), as read.
//!
//! - **Grain**: one row per variant.
//! - **Key**: `id` (the upsert key; the `sku_id` of `dim_sku`).
//! - **Columns**: `id`, `product_id`, `sku`, `price` and `sale_price` (null when
//!   inherited from the product), `inventory_level`, `is_purchasing_disabled`.

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::payload::Payload;
use crate::scalar::Money;

/// A row of `raw_bc_variant`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Record)]
#[record(
    table = "raw_bc_variant",
    key = "id",
    grain = "one row per variant",
    origin = "bigcommerce",
    projection = "VariantIn"
)]
pub struct RawBcVariant {
    /// Variant id.
    #[record(read)]
    pub id: i64,
    /// The product it belongs to.
    #[record(read)]
    pub product_id: i64,
    /// SKU code.
    #[record(read)]
    pub sku: String,
    /// Own price; `None` inherits the product's.
    #[record(read)]
    pub price: Option<Money>,
    /// Own sale price; `None` inherits the product's.
    #[record(read)]
    pub sale_price: Option<Money>,
    /// Variant-level inventory as carried by the catalog.
    #[record(read)]
    pub inventory_level: i64,
    /// Whether purchasing is disabled for this variant.
    #[record(read)]
    pub is_purchasing_disabled: bool,
    /// The record's JSON as BigCommerce returned it; embedded records and
    /// fields that change without `date_modified` are left out
    /// (docs/bigcommerce-source.md). Null when unknown.
    #[record(column = "_payload")]
    #[serde(rename = "_payload")]
    pub payload: Payload,
}
