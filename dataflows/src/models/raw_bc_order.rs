//! The dataflow of `raw_bc_order`; its contract: [`crate::rows::raw_bc_order`].

use crate::ops::{Arr, Coll};
use crate::rows::raw_bc_order::OrderIn;

/// The table's changes: the upsert arrangement's contents.
pub(crate) fn render<'s>(orders: &Arr<'s, OrderIn>) -> Coll<'s, OrderIn> {
    orders.clone().as_collection(|_, row| row.clone())
}
