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
//! - `inventory_level`: the effective level ([`effective_inventory_level`]:
//!   the inventory API's `available_to_sell` when the variant has an
//!   inventory row, else the catalog's level), per variant whatever the
//!   product's tracking. For a
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

use dataflows_derive::Record;
use serde::{Deserialize, Serialize};

use crate::rows::raw_bc_inventory::InventoryIn;
use crate::rows::raw_bc_product::ProductIn;
use crate::rows::raw_bc_variant::VariantIn;
use crate::scalar::Money;

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
pub fn is_purchasable(product: &ProductIn, is_purchasing_disabled: bool) -> bool {
    product.is_visible && product.availability == "available" && !is_purchasing_disabled
}

/// Untracked inventory (`inventory_tracking` = `none`) or a positive level.
pub fn is_in_stock(product: &ProductIn, inventory_level: i64) -> bool {
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

/// The inventory level of a variant: `raw_bc_inventory.available_to_sell` when
/// the variant has an inventory row (the inventory API is the authority on
/// stock), else the catalog's `raw_bc_variant.inventory_level`.
pub fn effective_inventory_level(variant: &VariantIn, inventory: Option<&InventoryIn>) -> i64 {
    inventory.map_or(variant.inventory_level, |i| i.available_to_sell)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::product;

    #[test]
    fn purchasable_and_in_stock_rules() {
        let mut p: ProductIn = product(1).project();
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
}
