//! The dataflow of `dim_sku`; its contract: [`crate::rows::dim_sku`].
//!
//! **Dataflow.** A join of the shared variants-by-product arrangement with the
//! product arrangement: no state of its own.

use crate::arrangements::{Arrangements, SkuBase};
use crate::ops::Coll;
use crate::rows::dim_sku::{DimSku, is_in_stock, is_purchasable, sale_price};
use crate::rows::raw_bc_product::ProductIn;

impl DimSku {
    /// The row of a variant of product `product_id`.
    pub fn new(product_id: i64, sku: &SkuBase, product: &ProductIn) -> Self {
        let price = sku.price.unwrap_or(product.price);
        let sale_price = sale_price(sku.price, sku.sale_price, product.sale_price);
        DimSku {
            sku_id: sku.sku_id,
            product_id,
            product_name: product.name.clone(),
            sku: sku.sku.clone(),
            price,
            sale_price,
            effective_price: sale_price.unwrap_or(price),
            inventory_level: sku.inventory_level,
            is_purchasable: is_purchasable(product, sku.is_purchasing_disabled),
            is_in_stock: is_in_stock(product, sku.inventory_level),
        }
    }
}

/// The table's changes.
pub(crate) fn render<'s>(arr: &Arrangements<'s>) -> Coll<'s, DimSku> {
    arr.skus_by_product
        .clone()
        .join_core(arr.products.clone(), |product_id, sku, product| {
            Some(DimSku::new(*product_id, sku, product))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{inventory, product, updates, variant};
    use crate::records::Upsert;
    use crate::rows::raw_bc_variant::VariantIn;
    use crate::rows::table::{Table, TableRow};
    use crate::scalar::Money;

    fn prices(v: &VariantIn, p: &ProductIn) -> (Money, Option<Money>, Money) {
        let sku = DimSku::new(1, &SkuBase::new(10, v, None), p);
        (sku.price, sku.sale_price, sku.effective_price)
    }

    #[test]
    fn prices_follow_what_the_storefront_charges() {
        let mut p: ProductIn = product(1).project();
        let mut v = variant(10, 1, 2).project();
        // No sale anywhere: the product's price, sale price null (not 0).
        assert_eq!(prices(&v, &p), (p.price, None, p.price));
        // The product's sale applies to a variant on the product's price.
        p.sale_price = Money(80_000);
        assert_eq!(
            prices(&v, &p),
            (p.price, Some(Money(80_000)), Money(80_000))
        );
        // The variant's own sale price wins over the product's.
        v.sale_price = Some(Money(70_000));
        assert_eq!(
            prices(&v, &p),
            (p.price, Some(Money(70_000)), Money(70_000))
        );
        // A variant with its own price does not take the product's sale.
        v.price = Some(Money(5));
        v.sale_price = None;
        assert_eq!(prices(&v, &p), (Money(5), None, Money(5)));
        v.sale_price = Some(Money(4));
        assert_eq!(prices(&v, &p), (Money(5), Some(Money(4)), Money(4)));
        // A sale price of 0 is "no sale", on the variant and on the product.
        v.sale_price = Some(Money(0));
        assert_eq!(prices(&v, &p), (Money(5), None, Money(5)));
        v.price = None;
        p.sale_price = Money(0);
        assert_eq!(prices(&v, &p), (p.price, None, p.price));
        // A sale price above the price is still what the store charges.
        p.sale_price = Money(p.price.0 + 1);
        assert_eq!(
            prices(&v, &p),
            (p.price, Some(Money(p.price.0 + 1)), Money(p.price.0 + 1))
        );
    }

    #[test]
    fn follows_product_variant_and_inventory() {
        let sku = |level: i64, name: &str| {
            let mut p: ProductIn = product(1).project();
            p.name = name.into();
            TableRow::DimSku(DimSku::new(
                1,
                &SkuBase::new(10, &variant(10, 1, 2).project(), None),
                &p,
            ))
            .with_level(level)
        };
        let mut renamed = product(1);
        renamed.name = "renamed".into();
        let got = updates(
            Table::DimSku,
            vec![
                vec![Upsert::Variant(10, Some(variant(10, 1, 2)))],
                vec![Upsert::Product(1, Some(product(1)))],
                vec![Upsert::Inventory(10, Some(inventory(10, 0)))],
                vec![Upsert::Product(1, Some(renamed))],
                vec![Upsert::Inventory(10, None)],
                vec![Upsert::Product(1, None)],
            ],
        );
        assert_eq!(
            got,
            vec![
                (sku(2, "product 1"), 1, 1),
                (sku(0, "product 1"), 2, 1),
                (sku(2, "product 1"), 2, -1),
                (sku(0, "product 1"), 3, -1),
                (sku(0, "renamed"), 3, 1),
                (sku(0, "renamed"), 4, -1),
                (sku(2, "renamed"), 4, 1),
                (sku(2, "renamed"), 5, -1),
            ]
        );
    }

    impl TableRow {
        fn with_level(self, level: i64) -> TableRow {
            match self {
                TableRow::DimSku(mut s) => {
                    s.inventory_level = level;
                    s.is_in_stock = level > 0;
                    TableRow::DimSku(s)
                }
                other => other,
            }
        }
    }
}
