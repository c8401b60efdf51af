//! The dataflow of `raw_bc_product`; its contract:
//! [`crate::rows::raw_bc_product`].

use crate::ops::{Arr, Coll};
use crate::rows::raw_bc_product::ProductIn;

/// The table's changes: the upsert arrangement's contents.
pub(crate) fn render<'s>(products: &Arr<'s, ProductIn>) -> Coll<'s, ProductIn> {
    products.clone().as_collection(|_, row| row.clone())
}
