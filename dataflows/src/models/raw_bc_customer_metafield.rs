//! The dataflow of `raw_bc_customer_metafield`; its contract:
//! [`crate::rows::raw_bc_customer_metafield`].

use crate::ops::{Arr, Coll};
use crate::rows::raw_bc_customer_metafield::MetafieldIn;

/// The table's changes: the upsert arrangement's contents.
pub(crate) fn render<'s>(metafields: &Arr<'s, MetafieldIn>) -> Coll<'s, MetafieldIn> {
    metafields.clone().as_collection(|_, row| row.clone())
}
