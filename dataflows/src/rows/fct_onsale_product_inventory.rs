//! `fct_onsale_product_inventory`: SKUs a customer can buy right now.
//!
//! - **Grain**: one row per `dim_sku` row that is purchasable and in stock
//!   (see [`crate::rows::dim_sku`] for both rules: visible product with
//!   availability `available`, purchasing not disabled; untracked inventory or
//!   a positive effective level).
//! - **Key**: `sku_id`.
//! - **Columns**: `sku_id`, `product_id`, `sku`, `inventory_level`, `price`,
//!   `sale_price` (null: not on sale), `effective_price` (what the storefront
//!   charges); the price rules are `dim_sku`'s.

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::scalar::Money;

/// A row of `fct_onsale_product_inventory`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Record)]
#[record(
    table = "fct_onsale_product_inventory",
    key = "sku_id",
    grain = "one row per SKU that is visible, purchasable and in stock",
    origin = "model",
    reads = "dim_sku"
)]
pub struct FctOnsaleProductInventory {
    /// Variant id.
    pub sku_id: i64,
    /// Product id.
    pub product_id: i64,
    /// SKU code.
    pub sku: String,
    /// Effective inventory level.
    pub inventory_level: i64,
    /// Regular price.
    pub price: Money,
    /// Sale price that applies; `None` when not on sale.
    pub sale_price: Option<Money>,
    /// What the storefront charges.
    pub effective_price: Money,
}
