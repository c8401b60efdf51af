//! `raw_bc_order_item`: order lines, flattened, as read.
//!
//! - **Grain**: one row per order line.
//! - **Key**: `id` (the line id; BigCommerce line ids are unique across orders).
//! - **Columns**: `id`, `order_id`, `product_id`, `variant_id`, `sku`, `name`,
//!   `quantity`, `base_price`, `price_ex_tax`, `price_inc_tax`, `total_ex_tax`,
//!   `total_inc_tax`.
//!
//! Lines arrive per order (`Upsert::OrderItems(order_id, Some(lines))`) and the
//! state is kept per order: an upsert of an order's lines replaces all of them,
//! so a line that disappears from an order is retracted, and an unchanged list
//! changes nothing. Lines are emitted as read, including ones that
//! `_errors` flags (non-positive quantity, unknown order).

use std::sync::Arc;

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::payload::Payload;
use crate::scalar::{Money, Text};

/// A row of `raw_bc_order_item`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Record)]
#[record(
    table = "raw_bc_order_item",
    key = "id",
    grain = "one row per order line",
    origin = "bigcommerce",
    projection = "LineIn"
)]
pub struct RawBcOrderItem {
    /// Line id.
    #[record(read)]
    pub id: i64,
    /// The order the line belongs to, as carried by the line.
    #[record(read)]
    pub order_id: i64,
    /// Product id (0 for a custom product).
    #[record(read)]
    pub product_id: i64,
    /// Variant id, i.e. `sku_id`.
    #[record(read)]
    pub variant_id: i64,
    /// SKU code.
    #[record(read)]
    pub sku: Text,
    /// Line name.
    pub name: Text,
    /// Units ordered.
    #[record(read)]
    pub quantity: i64,
    /// Base unit price.
    pub base_price: Money,
    /// Unit price excluding tax.
    pub price_ex_tax: Money,
    /// Unit price including tax.
    #[record(read)]
    pub price_inc_tax: Money,
    /// Line total excluding tax.
    pub total_ex_tax: Money,
    /// Line total including tax.
    #[record(read)]
    pub total_inc_tax: Money,
    /// The record's JSON as BigCommerce returned it; embedded records and
    /// fields that change without `date_modified` are left out
    /// (docs/bigcommerce-source.md). Null when unknown.
    #[record(column = "_payload")]
    #[serde(rename = "_payload")]
    pub payload: Payload,
}

/// The lines of one order, projected and sorted, as the `order_items`
/// arrangement holds them: shared, because the arrangement's merges copy every value they keep
/// and a deep copy of an order's lines (two strings a line) cost a tenth of a
/// 1k-change epoch.
pub type OrderLines = Arc<[LineIn]>;
