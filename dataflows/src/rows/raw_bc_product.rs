//! `raw_bc_product`: the current state of catalog products, as read.
//!
//! - **Grain**: one row per product.
//! - **Key**: `id` (the upsert key).
//! - **Columns**: `id`, `name`, `sku`, `price`, `sale_price`, `is_visible`,
//!   `availability` (`available` / `disabled` / `preorder`),
//!   `inventory_tracking` (`none` / `product` / `variant`), `brand_id`,
//!   `created_at`, `modified_at`.

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::payload::Payload;
use crate::scalar::{Micros, Money};

/// A row of `raw_bc_product`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Record)]
#[record(
    table = "raw_bc_product",
    key = "id",
    grain = "one row per product",
    origin = "bigcommerce",
    projection = "ProductIn"
)]
pub struct RawBcProduct {
    /// Product id.
    #[record(read)]
    pub id: i64,
    /// Product name.
    #[record(read)]
    pub name: String,
    /// Product-level SKU, possibly empty.
    #[record(read)]
    pub sku: String,
    /// List price.
    #[record(read)]
    pub price: Money,
    /// Sale price (0 when not on sale).
    #[record(read)]
    pub sale_price: Money,
    /// Whether the product is visible in the storefront.
    #[record(read)]
    pub is_visible: bool,
    /// `available`, `disabled` or `preorder`.
    #[record(read)]
    pub availability: String,
    /// `none`, `product` or `variant`.
    #[record(read)]
    pub inventory_tracking: String,
    /// Brand (0: none).
    #[record(read)]
    pub brand_id: i64,
    /// When the product was created.
    pub created_at: Micros,
    /// When the product was last modified upstream.
    pub modified_at: Micros,
    /// The record's JSON as BigCommerce returned it; embedded records and
    /// fields that change without `date_modified` are left out
    /// (docs/bigcommerce-source.md). Null when unknown.
    #[record(column = "_payload")]
    #[serde(rename = "_payload")]
    pub payload: Payload,
}
