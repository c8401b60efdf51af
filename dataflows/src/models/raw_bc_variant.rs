//! The dataflow of `raw_bc_variant`; its contract:
//! [`crate::rows::raw_bc_variant`].

use crate::ops::{Arr, Coll};
use crate::rows::raw_bc_variant::VariantIn;

/// The table's changes: the upsert arrangement's contents.
pub(crate) fn render<'s>(variants: &Arr<'s, VariantIn>) -> Coll<'s, VariantIn> {
    variants.clone().as_collection(|_, row| row.clone())
}
