//! `fct_order_item`: lines of live orders.
//!
//! - **Grain**: one row per line, with a positive quantity, of an order in
//!   `raw_bc_order` that is not archived. Lines with `quantity <= 0` and lines
//!   whose order is unknown are left out (and reported in `_errors`).
//! - **Key**: `order_item_id` (the line id).
//! - **Columns**: `order_item_id`, `order_id`, `customer_id` (null for guest
//!   orders), `product_id`, `sku_id` (the variant id), `sku`, `quantity`,
//!   `unit_price` (`price_inc_tax`), `line_total` (`total_inc_tax`), the
//!   order's `status_id` / `status`, and its `ordered_at`.

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::scalar::{Micros, Money};

/// A row of `fct_order_item`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Record)]
#[record(
    table = "fct_order_item",
    key = "order_item_id",
    grain = "one row per line, with a positive quantity, of a live order",
    origin = "model",
    reads = "raw_bc_order, raw_bc_order_item"
)]
pub struct FctOrderItem {
    /// Line id.
    pub order_item_id: i64,
    /// Order id.
    pub order_id: i64,
    /// The order's customer; null for guest orders.
    pub customer_id: Option<i64>,
    /// Product id.
    pub product_id: i64,
    /// Variant id.
    pub sku_id: i64,
    /// SKU code.
    pub sku: String,
    /// Units ordered (positive).
    pub quantity: i64,
    /// Unit price including tax.
    pub unit_price: Money,
    /// Line total including tax.
    pub line_total: Money,
    /// The order's status id.
    pub status_id: i64,
    /// The order's status name.
    pub status: String,
    /// When the order was placed.
    pub ordered_at: Micros,
}
