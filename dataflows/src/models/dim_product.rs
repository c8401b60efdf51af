//! The dataflow of `dim_product`; its contract: [`crate::rows::dim_product`].
//!
//! **Dataflow.** A reduce over the shared variants-by-product arrangement (no
//! new input state; its output is one small stats value per product),
//! left-joined with the product arrangement (state: ids of products without
//! variants).

use differential_dataflow::trace::implementations::ValBuilder;
use serde::{Deserialize, Serialize};

use crate::arrangements::{Arrangements, SkuBase};
use crate::ops::{Coll, Diff, Epoch, Spine, left_join};
use crate::rows::dim_product::DimProduct;
use crate::rows::dim_sku::on_sale;
use crate::rows::raw_bc_product::ProductIn;

/// Variant count and total inventory of a product.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ProductVariantStats {
    /// Number of variants.
    pub variant_count: i64,
    /// Sum of their effective inventory levels (saturating).
    pub total_inventory: i64,
}

impl ProductVariantStats {
    /// Aggregates variants with multiplicities.
    pub fn from_skus<'a>(skus: impl IntoIterator<Item = (&'a SkuBase, Diff)>) -> Self {
        let mut stats = ProductVariantStats::default();
        for (sku, count) in skus {
            let count = count as i64;
            stats.variant_count = stats.variant_count.saturating_add(count);
            stats.total_inventory = stats
                .total_inventory
                .saturating_add(sku.inventory_level.saturating_mul(count));
        }
        stats
    }
}

impl DimProduct {
    /// The row of product `product_id` with its variant stats, if any.
    pub fn new(product_id: i64, product: &ProductIn, stats: Option<&ProductVariantStats>) -> Self {
        let stats = stats.copied().unwrap_or_default();
        DimProduct {
            product_id,
            name: product.name.clone(),
            brand_id: (product.brand_id != 0).then_some(product.brand_id),
            sku: product.sku.clone(),
            price: product.price,
            sale_price: on_sale(product.sale_price),
            is_visible: product.is_visible,
            availability: product.availability.clone(),
            inventory_tracking: product.inventory_tracking.clone(),
            variant_count: stats.variant_count,
            total_inventory: stats.total_inventory,
        }
    }
}

/// The table's changes.
pub(crate) fn render<'s>(arr: &Arrangements<'s>) -> Coll<'s, DimProduct> {
    let stats = arr
        .skus_by_product
        .clone()
        .reduce_abelian::<_, ValBuilder<i64, ProductVariantStats, Epoch, Diff>, Spine<ProductVariantStats>, _, _>(
            "dim_product_variant_stats",
            |_, skus, output| {
                output.push((ProductVariantStats::from_skus(skus.iter().map(|(s, r)| (*s, *r))), 1));
            },
            |buffer, key, updates| {
                buffer.clear();
                buffer.extend(updates.drain(..).map(|(v, t, r)| ((*key, v), t, r)));
            },
        );
    left_join(arr.products.clone(), stats, |k, product, stats| {
        Some(DimProduct::new(*k, product, stats))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{inventory, product, updates, variant};
    use crate::records::Upsert;
    use crate::rows::table::{Table, TableRow};

    fn dim(variant_count: i64, total_inventory: i64) -> TableRow {
        TableRow::DimProduct(DimProduct::new(
            1,
            &product(1).project(),
            Some(&ProductVariantStats {
                variant_count,
                total_inventory,
            }),
        ))
    }

    #[test]
    fn counts_variants_and_inventory() {
        let got = updates(
            Table::DimProduct,
            vec![
                // A variant before its product.
                vec![Upsert::Variant(10, Some(variant(10, 1, 4)))],
                vec![Upsert::Product(1, Some(product(1)))],
                vec![Upsert::Variant(11, Some(variant(11, 1, 3)))],
                // The inventory row overrides the catalog level.
                vec![Upsert::Inventory(11, Some(inventory(11, 7)))],
                // A variant moves to another product.
                vec![Upsert::Variant(10, Some(variant(10, 2, 4)))],
                vec![Upsert::Variant(11, None)],
            ],
        );
        assert_eq!(
            got,
            vec![
                (dim(1, 4), 1, 1),
                (dim(1, 4), 2, -1),
                (dim(2, 7), 2, 1),
                (dim(2, 7), 3, -1),
                (dim(2, 11), 3, 1),
                (dim(1, 7), 4, 1),
                (dim(2, 11), 4, -1),
                (dim(0, 0), 5, 1),
                (dim(1, 7), 5, -1),
            ]
        );
    }

    #[test]
    fn brand_zero_is_null() {
        let mut p: ProductIn = product(1).project();
        assert_eq!(DimProduct::new(1, &p, None).brand_id, None);
        p.brand_id = 9;
        assert_eq!(DimProduct::new(1, &p, None).brand_id, Some(9));
    }
}
