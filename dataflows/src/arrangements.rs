//! The arrangements the models share: each is built once and read by several
//! models (`.clone()` of an arrangement shares its trace, not its data).

use differential_dataflow::trace::implementations::ValBuilder;
use serde::{Deserialize, Serialize};

use crate::input::SourceStreams;
use crate::ops::{Arr, ArrByStr, Diff, Epoch, StrSpine, left_join};
use crate::rows::dim_sku::effective_inventory_level;
use crate::rows::fct_quotation::email_key;
use crate::rows::raw_bc_customer::CustomerIn;
use crate::rows::raw_bc_customer_metafield::MetafieldIn;
use crate::rows::raw_bc_inventory::InventoryIn;
use crate::rows::raw_bc_order::OrderIn;
use crate::rows::raw_bc_order_item::OrderLines;
use crate::rows::raw_bc_product::ProductIn;
use crate::rows::raw_bc_variant::VariantIn;
use crate::rows::raw_pg_point_transaction::PointTransactionIn;
use crate::rows::raw_pg_quotation::QuotationIn;
use crate::scalar::Money;
use crate::upsert::arrange_upserts;

/// A variant with its effective inventory level, as arranged by product id
/// (see [`Arrangements::skus_by_product`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SkuBase {
    /// Variant id.
    pub sku_id: i64,
    /// SKU code.
    pub sku: String,
    /// The variant's own price, if any.
    pub price: Option<Money>,
    /// The variant's own sale price, if any.
    pub sale_price: Option<Money>,
    /// Effective level: see [`effective_inventory_level`].
    pub inventory_level: i64,
    /// Whether purchasing is disabled for the variant.
    pub is_purchasing_disabled: bool,
}

impl SkuBase {
    /// Builds the value of variant `sku_id` (its upsert key) from its row and
    /// its inventory row, if any.
    pub fn new(sku_id: i64, variant: &VariantIn, inventory: Option<&InventoryIn>) -> Self {
        SkuBase {
            sku_id,
            sku: variant.sku.clone(),
            price: variant.price,
            sale_price: variant.sale_price,
            inventory_level: effective_inventory_level(variant, inventory),
            is_purchasing_disabled: variant.is_purchasing_disabled,
        }
    }
}

/// A point transaction as arranged by customer id (see
/// [`Arrangements::point_transactions_by_customer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CustomerPoints {
    /// The transaction's id (its upsert key).
    pub point_transaction_id: i64,
    /// Its signed points.
    pub points: i64,
}

/// Arrangements of the current state of every source table (keyed by the
/// upsert key), plus the derived ones several models join against.
///
/// Further models (e.g. notification events) should build on these rather
/// than arrange the same data again.
#[derive(Clone)]
pub struct Arrangements<'s> {
    /// Customers by id.
    pub customers: Arr<'s, CustomerIn>,
    /// Customer metafields by id.
    pub customer_metafields: Arr<'s, MetafieldIn>,
    /// Products by id.
    pub products: Arr<'s, ProductIn>,
    /// Variants by id.
    pub variants: Arr<'s, VariantIn>,
    /// Inventory rows by variant id.
    pub inventory: Arr<'s, InventoryIn>,
    /// Orders (archived included) by id.
    pub orders: Arr<'s, OrderIn>,
    /// All lines of an order, by order id.
    pub order_items: Arr<'s, OrderLines>,
    /// Point transactions (PostgreSQL) by id.
    pub point_transactions: Arr<'s, PointTransactionIn>,
    /// Quotations (PostgreSQL) by id.
    pub quotations: Arr<'s, QuotationIn>,
    /// Variants (with their effective inventory) by product id, read by
    /// `dim_sku`, `dim_product` and `_errors`.
    pub skus_by_product: Arr<'s, SkuBase>,
    /// Point transactions by the `customer_id` they name, read by
    /// `dim_customer` (`point_balance`) and `_errors` (`unknown_customer`).
    pub point_transactions_by_customer: Arr<'s, CustomerPoints>,
    /// The customer of each email, by [`email_key`] (trimmed, lower-cased;
    /// customers with an empty email are left out). BigCommerce emails are
    /// unique, but if several customers share a key the least customer id
    /// holds it. Read by `fct_quotation`.
    pub customer_by_email: ArrByStr<'s, i64>,
}

impl<'s> Arrangements<'s> {
    pub(crate) fn new(sources: SourceStreams<'s>) -> Self {
        let customers = arrange_upserts(sources.customers, "raw_bc_customer");
        let customer_metafields =
            arrange_upserts(sources.customer_metafields, "raw_bc_customer_metafield");
        let products = arrange_upserts(sources.products, "raw_bc_product");
        let variants = arrange_upserts(sources.variants, "raw_bc_variant");
        let inventory = arrange_upserts(sources.inventory, "raw_bc_inventory");
        let orders = arrange_upserts(sources.orders, "raw_bc_order");
        let order_items = arrange_upserts(sources.order_items, "raw_bc_order_item");
        let point_transactions =
            arrange_upserts(sources.point_transactions, "raw_pg_point_transaction");
        let quotations = arrange_upserts(sources.quotations, "raw_pg_quotation");
        let skus_by_product = left_join(
            variants.clone(),
            inventory.clone(),
            |sku_id, variant, inventory| {
                Some((
                    variant.product_id,
                    SkuBase::new(*sku_id, variant, inventory),
                ))
            },
        )
        .arrange_by_key_named("skus_by_product");
        let point_transactions_by_customer = point_transactions
            .clone()
            .flat_map_ref(|id, t| {
                Some((
                    t.customer_id,
                    CustomerPoints {
                        point_transaction_id: *id,
                        points: t.points,
                    },
                ))
            })
            .arrange_by_key_named("point_transactions_by_customer");
        let customer_by_email = customers
            .clone()
            .flat_map_ref(|id, c| email_key(&c.email).map(|email| (email, *id)))
            .arrange_by_key_named("customers_by_email")
            .reduce_abelian::<_, ValBuilder<String, i64, Epoch, Diff>, StrSpine<i64>, _, _>(
                "customer_by_email",
                |_, ids, output| {
                    // Values come sorted: the first present one is the least id.
                    if let Some((id, _)) = ids.iter().find(|(_, count)| *count > 0) {
                        output.push((**id, 1));
                    }
                },
                |buffer, email, updates| {
                    buffer.clear();
                    buffer.extend(
                        updates
                            .drain(..)
                            .map(|(id, time, diff)| ((email.clone(), id), time, diff)),
                    );
                },
            );
        Arrangements {
            customers,
            customer_metafields,
            products,
            variants,
            inventory,
            orders,
            order_items,
            point_transactions,
            quotations,
            skus_by_product,
            point_transactions_by_customer,
            customer_by_email,
        }
    }
}
