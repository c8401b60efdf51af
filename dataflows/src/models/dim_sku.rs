//! `dim_sku`: sellable units (variants) with their product's attributes.
//!
//! - **Grain**: one row per variant in `raw_bc_variant` whose product is in
//!   `raw_bc_product` (others are reported as `unknown_product` in `_errors`).
//! - **Key**: `sku_id` (the variant id).
//! - **Columns**: `sku_id`, `product_id`, `product_name`, `sku`, `price`,
//!   `sale_price`, `inventory_level`, `is_purchasable`, `is_in_stock`.
//!
//! **Rules.**
//! - `price` / `sale_price`: the variant's own, else the product's.
//! - `inventory_level`: the effective level
//!   ([`crate::arrangements::effective_inventory_level`]).
//! - `is_purchasable`: product visible AND product availability `available`
//!   AND the variant's purchasing not disabled ([`is_purchasable`]).
//! - `is_in_stock`: the product's `inventory_tracking` is `none`, or the
//!   effective level is positive ([`is_in_stock`]).
//!
//! **Dataflow.** A join of the shared variants-by-product arrangement with the
//! product arrangement: no state of its own.

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::arrangements::{Arrangements, SkuBase};
use crate::models::raw_bc_product::RawBcProduct;
use crate::ops::Coll;
use crate::records::Money;

/// A row of `dim_sku`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Record)]
#[record(
    table = "dim_sku",
    key = "sku_id",
    grain = "one row per variant whose product is known",
    origin = "model",
    reads = "raw_bc_product, raw_bc_variant, raw_bc_inventory"
)]
pub struct DimSku {
    /// Variant id.
    pub sku_id: i64,
    /// Product id.
    pub product_id: i64,
    /// The product's name.
    pub product_name: String,
    /// SKU code.
    pub sku: String,
    /// Effective price.
    pub price: Money,
    /// Effective sale price.
    pub sale_price: Money,
    /// Effective inventory level.
    pub inventory_level: i64,
    /// Whether the SKU can be bought.
    pub is_purchasable: bool,
    /// Whether the SKU is in stock.
    pub is_in_stock: bool,
}

/// Product visible, availability `available`, and purchasing not disabled.
pub fn is_purchasable(product: &RawBcProduct, is_purchasing_disabled: bool) -> bool {
    product.is_visible && product.availability == "available" && !is_purchasing_disabled
}

/// Untracked inventory (`inventory_tracking` = `none`) or a positive level.
pub fn is_in_stock(product: &RawBcProduct, inventory_level: i64) -> bool {
    product.inventory_tracking == "none" || inventory_level > 0
}

impl DimSku {
    /// The row of a variant of product `product_id`.
    pub fn new(product_id: i64, sku: &SkuBase, product: &RawBcProduct) -> Self {
        DimSku {
            sku_id: sku.sku_id,
            product_id,
            product_name: product.name.clone(),
            sku: sku.sku.clone(),
            price: sku.price.unwrap_or(product.price),
            sale_price: sku.sale_price.unwrap_or(product.sale_price),
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
    use crate::table::{Table, TableRow};

    #[test]
    fn prices_fall_back_to_the_product() {
        let p: RawBcProduct = product(1).into();
        let mut v = variant(10, 1, 2);
        let sku = DimSku::new(1, &SkuBase::new(10, &v.clone().into(), None), &p);
        assert_eq!((sku.price, sku.sale_price), (p.price, p.sale_price));
        v.price = Some(Money(5));
        v.sale_price = Some(Money(4));
        let sku = DimSku::new(1, &SkuBase::new(10, &v.into(), None), &p);
        assert_eq!((sku.price, sku.sale_price), (Money(5), Money(4)));
    }

    #[test]
    fn purchasable_and_in_stock_rules() {
        let mut p: RawBcProduct = product(1).into();
        assert!(is_purchasable(&p, false));
        assert!(!is_purchasable(&p, true));
        p.availability = "preorder".into();
        assert!(!is_purchasable(&p, false));
        p.availability = "available".into();
        p.is_visible = false;
        assert!(!is_purchasable(&p, false));

        assert!(is_in_stock(&p, 1));
        assert!(!is_in_stock(&p, 0));
        assert!(!is_in_stock(&p, -3));
        p.inventory_tracking = "none".into();
        assert!(is_in_stock(&p, 0));
    }

    #[test]
    fn follows_product_variant_and_inventory() {
        let sku = |level: i64, name: &str| {
            let mut p: RawBcProduct = product(1).into();
            p.name = name.into();
            TableRow::DimSku(DimSku::new(
                1,
                &SkuBase::new(10, &variant(10, 1, 2).into(), None),
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
