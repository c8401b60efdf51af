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
    origin = "bigcommerce"
)]
pub struct RawBcProduct {
    /// Product id.
    pub id: i64,
    /// Product name.
    pub name: String,
    /// Product-level SKU, possibly empty.
    pub sku: String,
    /// List price.
    pub price: Money,
    /// Sale price (0 when not on sale).
    pub sale_price: Money,
    /// Whether the product is visible in the storefront.
    pub is_visible: bool,
    /// `available`, `disabled` or `preorder`.
    pub availability: String,
    /// `none`, `product` or `variant`.
    pub inventory_tracking: String,
    /// Brand (0: none).
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

/// What the models read of a product: the dataflow holds this projection of a
/// [`RawBcProduct`], not the row. It leaves out `created_at`, `modified_at`, `_payload`; the
/// [`fingerprint`](Self::fingerprint) of the whole row stands for them, so a
/// change of any column is still a change (the runtime then writes the whole
/// row, docs/runtime.md) and an unchanged re-read is none.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProductIn {
    /// Product id.
    pub id: i64,
    /// Product name.
    pub name: String,
    /// Product-level SKU, possibly empty.
    pub sku: String,
    /// List price.
    pub price: Money,
    /// Sale price (0 when not on sale).
    pub sale_price: Money,
    /// Whether the product is visible in the storefront.
    pub is_visible: bool,
    /// `available`, `disabled` or `preorder`.
    pub availability: String,
    /// `none`, `product` or `variant`.
    pub inventory_tracking: String,
    /// Brand (0: none).
    pub brand_id: i64,
    /// [`crate::projection::fingerprint`] of the whole row.
    pub fingerprint: u64,
}

impl RawBcProduct {
    /// The row as the models read it.
    pub fn project(&self) -> ProductIn {
        ProductIn {
            id: self.id,
            name: self.name.clone(),
            sku: self.sku.clone(),
            price: self.price,
            sale_price: self.sale_price,
            is_visible: self.is_visible,
            availability: self.availability.clone(),
            inventory_tracking: self.inventory_tracking.clone(),
            brand_id: self.brand_id,
            fingerprint: crate::projection::fingerprint(self),
        }
    }
}
