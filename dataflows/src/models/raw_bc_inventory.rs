//! The dataflow of `raw_bc_inventory`; its contract:
//! [`crate::rows::raw_bc_inventory`].

use crate::ops::{Arr, Coll};
use crate::rows::raw_bc_inventory::InventoryIn;

/// The table's changes: the upsert arrangement's contents.
pub(crate) fn render<'s>(inventory: &Arr<'s, InventoryIn>) -> Coll<'s, InventoryIn> {
    inventory.clone().as_collection(|_, row| row.clone())
}
