//! `dim_product`: products with their variant count and total inventory.
//!
//! - **Grain**: one row per product in `raw_bc_product`.
//! - **Key**: `product_id`.
//! - **Columns**: `product_id`, `name`, `brand_id` (null for BigCommerce's 0,
//!   no brand), `sku`, `price`, `sale_price` (the product's own positive sale
//!   price; null when not on sale, BigCommerce's 0: docs/metrics.md), `is_visible`, `availability`,
//!   `inventory_tracking`, `variant_count`, `total_inventory`.
//!
//! **Rules.** `variant_count` counts the product's rows in `raw_bc_variant`;
//! `total_inventory` sums their effective inventory levels
//! ([`crate::rows::dim_sku::effective_inventory_level`]: `available_to_sell`
//! from `raw_bc_inventory` when the variant has an inventory row, else the
//! variant's `inventory_level`), as read — negative levels included (they are
//! reported in `_errors`). A product without variants has `0` and `0`.

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::scalar::Money;

/// A row of `dim_product`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Record)]
#[record(
    table = "dim_product",
    key = "product_id",
    grain = "one row per product in raw_bc_product",
    origin = "model",
    reads = "raw_bc_product, raw_bc_variant, raw_bc_inventory"
)]
pub struct DimProduct {
    /// Product id.
    pub product_id: i64,
    /// Product name.
    pub name: String,
    /// Brand, null when the product has none.
    pub brand_id: Option<i64>,
    /// Product-level SKU.
    pub sku: String,
    /// List price.
    pub price: Money,
    /// Sale price; `None` when not on sale.
    pub sale_price: Option<Money>,
    /// Whether the product is visible in the storefront.
    pub is_visible: bool,
    /// `available`, `disabled` or `preorder`.
    pub availability: String,
    /// `none`, `product` or `variant`.
    pub inventory_tracking: String,
    /// Number of variants.
    pub variant_count: i64,
    /// Sum of the variants' effective inventory levels.
    pub total_inventory: i64,
}
