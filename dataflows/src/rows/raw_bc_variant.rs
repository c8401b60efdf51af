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
    origin = "bigcommerce"
)]
pub struct RawBcVariant {
    /// Variant id.
    pub id: i64,
    /// The product it belongs to.
    pub product_id: i64,
    /// SKU code.
    pub sku: String,
    /// Own price; `None` inherits the product's.
    pub price: Option<Money>,
    /// Own sale price; `None` inherits the product's.
    pub sale_price: Option<Money>,
    /// Variant-level inventory as carried by the catalog.
    pub inventory_level: i64,
    /// Whether purchasing is disabled for this variant.
    pub is_purchasing_disabled: bool,
    /// The record's JSON as BigCommerce returned it; embedded records and
    /// fields that change without `date_modified` are left out
    /// (docs/bigcommerce-source.md). Null when unknown.
    #[record(column = "_payload")]
    #[serde(rename = "_payload")]
    pub payload: Payload,
}

/// What the models read of a variant: the dataflow holds this projection of a
/// [`RawBcVariant`], not the row. It leaves out `_payload`; the
/// [`fingerprint`](Self::fingerprint) of the whole row stands for them, so a
/// change of any column is still a change (the runtime then writes the whole
/// row, docs/runtime.md) and an unchanged re-read is none.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VariantIn {
    /// Variant id.
    pub id: i64,
    /// The product it belongs to.
    pub product_id: i64,
    /// SKU code.
    pub sku: String,
    /// Own price; `None` inherits the product's.
    pub price: Option<Money>,
    /// Own sale price; `None` inherits the product's.
    pub sale_price: Option<Money>,
    /// Variant-level inventory as carried by the catalog.
    pub inventory_level: i64,
    /// Whether purchasing is disabled for this variant.
    pub is_purchasing_disabled: bool,
    /// [`crate::projection::fingerprint`] of the whole row.
    pub fingerprint: u64,
}

impl RawBcVariant {
    /// The row as the models read it.
    pub fn project(&self) -> VariantIn {
        VariantIn {
            id: self.id,
            product_id: self.product_id,
            sku: self.sku.clone(),
            price: self.price,
            sale_price: self.sale_price,
            inventory_level: self.inventory_level,
            is_purchasing_disabled: self.is_purchasing_disabled,
            fingerprint: crate::projection::fingerprint(self),
        }
    }
}
