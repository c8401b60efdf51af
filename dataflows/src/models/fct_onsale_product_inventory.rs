//! The dataflow of `fct_onsale_product_inventory`; its contract:
//! [`crate::rows::fct_onsale_product_inventory`].
//!
//! **Dataflow.** A filter of `dim_sku`'s changes: no state.

use crate::ops::Coll;
use crate::rows::dim_sku::DimSku;
use crate::rows::fct_onsale_product_inventory::FctOnsaleProductInventory;

impl FctOnsaleProductInventory {
    /// The row for a `dim_sku` row, if it is on sale and in stock.
    pub fn from_dim_sku(sku: &DimSku) -> Option<Self> {
        (sku.is_purchasable && sku.is_in_stock).then(|| FctOnsaleProductInventory {
            sku_id: sku.sku_id,
            product_id: sku.product_id,
            sku: sku.sku.clone(),
            inventory_level: sku.inventory_level,
            price: sku.price,
            sale_price: sku.sale_price,
            effective_price: sku.effective_price,
        })
    }
}

/// The table's changes, from `dim_sku`'s.
pub(crate) fn render<'s>(dim_sku: &Coll<'s, DimSku>) -> Coll<'s, FctOnsaleProductInventory> {
    dim_sku
        .clone()
        .flat_map(|sku| FctOnsaleProductInventory::from_dim_sku(&sku))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{inventory, product, updates, variant};
    use crate::records::Upsert;
    use crate::rows::table::{Table, TableRow};
    use crate::scalar::Money;

    fn row(level: i64) -> TableRow {
        TableRow::FctOnsaleProductInventory(FctOnsaleProductInventory {
            sku_id: 10,
            product_id: 1,
            sku: "V10".into(),
            inventory_level: level,
            price: Money(100_000),
            sale_price: None,
            effective_price: Money(100_000),
        })
    }

    #[test]
    fn sell_out_and_restock() {
        let mut hidden = product(1);
        hidden.is_visible = false;
        let mut untracked = product(1);
        untracked.inventory_tracking = "none".into();
        let got = updates(
            Table::FctOnsaleProductInventory,
            vec![
                vec![
                    Upsert::Product(1, Some(product(1))),
                    Upsert::Variant(10, Some(variant(10, 1, 2))),
                ],
                vec![Upsert::Inventory(10, Some(inventory(10, 0)))], // sold out
                vec![Upsert::Inventory(10, Some(inventory(10, 5)))], // restocked
                vec![Upsert::Product(1, Some(hidden))],
                vec![
                    Upsert::Product(1, Some(untracked)),
                    Upsert::Inventory(10, Some(inventory(10, 0))),
                ],
            ],
        );
        assert_eq!(
            got,
            vec![
                (row(2), 0, 1),
                (row(2), 1, -1),
                (row(5), 2, 1),
                (row(5), 3, -1),
                (row(0), 4, 1),
            ]
        );
    }
}
