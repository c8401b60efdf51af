//! `dim_sku`: sellable units (variants) with their product's attributes.
//!
//! - **Grain**: one row per variant in `raw_bc_variant` whose product is in
//!   `raw_bc_product` (others are reported as `unknown_product` in `_errors`).
//! - **Key**: `sku_id` (the variant id).
//! - **Columns**: `sku_id`, `product_id`, `product_name`, `sku`, `price`,
//!   `sale_price` (null: not on sale), `effective_price`, `inventory_level`,
//!   `is_purchasable`, `is_in_stock`.
//!
//! **Rules** (the metrics contract, `docs/metrics.md`).
//! - `price`: the variant's own price, else the product's.
//! - `sale_price` ([`sale_price`]): the sale price BigCommerce applies to the
//!   variant. A variant with its own price only takes its own sale price (a
//!   product's sale price is set against the product's price, not the
//!   variant's); a variant on the product's price takes its own sale price,
//!   else the product's. A sale price of 0 is BigCommerce's "no sale": null.
//! - `effective_price`: what the storefront charges, BigCommerce's
//!   `calculated_price`: the sale price when there is one, else `price`. A sale
//!   price above the regular price is still what the store charges; the row is
//!   reported as `sale_above_price` in `_errors`.
//! - `inventory_level`: the effective level
//!   ([`crate::arrangements::effective_inventory_level`]: the inventory API's
//!   `available_to_sell` when the variant has an inventory row, else the
//!   catalog's level), per variant whatever the product's tracking. For a
//!   product tracked at product level (`inventory_tracking` = `product`)
//!   BigCommerce's stock is the product's own level, which is not read
//!   separately: `dim_product.total_inventory` (the sum of its variants'
//!   levels) stands for it; see `docs/metrics.md`.
//! - `is_purchasable`: product visible AND product availability `available`
//!   AND the variant's purchasing not disabled ([`is_purchasable`]). A
//!   `preorder` product is not purchasable: it takes orders for stock that
//!   does not exist yet, so it is not on sale *now* (the question
//!   `fct_onsale_product_inventory` answers); `disabled` cannot be bought.
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
    /// Regular price: the variant's own, else the product's.
    pub price: Money,
    /// Sale price that applies; `None` when not on sale.
    pub sale_price: Option<Money>,
    /// What the storefront charges (`calculated_price`).
    pub effective_price: Money,
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

/// A positive amount, else `None` (BigCommerce's 0 is "no sale").
pub fn on_sale(amount: Money) -> Option<Money> {
    (amount.0 > 0).then_some(amount)
}

/// The sale price that applies to a variant with its own `variant_price` and
/// `variant_sale_price` (`None`: not set) of a product whose sale price is
/// `product_sale_price`: the variant's own (positive) sale price; a variant
/// without its own price falls back to the product's.
pub fn sale_price(
    variant_price: Option<Money>,
    variant_sale_price: Option<Money>,
    product_sale_price: Money,
) -> Option<Money> {
    let own = variant_sale_price.and_then(on_sale);
    match variant_price {
        Some(_) => own,
        None => own.or_else(|| on_sale(product_sale_price)),
    }
}

impl DimSku {
    /// The row of a variant of product `product_id`.
    pub fn new(product_id: i64, sku: &SkuBase, product: &RawBcProduct) -> Self {
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
    use crate::models::raw_bc_variant::RawBcVariant;
    use crate::records::Upsert;
    use crate::table::{Table, TableRow};

    fn prices(v: &RawBcVariant, p: &RawBcProduct) -> (Money, Option<Money>, Money) {
        let sku = DimSku::new(1, &SkuBase::new(10, v, None), p);
        (sku.price, sku.sale_price, sku.effective_price)
    }

    #[test]
    fn prices_follow_what_the_storefront_charges() {
        let mut p: RawBcProduct = product(1);
        let mut v = variant(10, 1, 2);
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
    fn purchasable_and_in_stock_rules() {
        let mut p: RawBcProduct = product(1);
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
            let mut p: RawBcProduct = product(1);
            p.name = name.into();
            TableRow::DimSku(DimSku::new(
                1,
                &SkuBase::new(10, &variant(10, 1, 2), None),
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
