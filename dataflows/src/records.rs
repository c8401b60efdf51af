//! The upserts sources emit: each carries the row of its `raw_bc_*` or
//! `raw_pg_*` table, declared in [`crate::rows`].

use serde::{Deserialize, Serialize};

use crate::rows::raw_bc_customer::RawBcCustomer;
use crate::rows::raw_bc_customer_metafield::RawBcCustomerMetafield;
use crate::rows::raw_bc_inventory::RawBcInventory;
use crate::rows::raw_bc_order::RawBcOrder;
use crate::rows::raw_bc_order_item::RawBcOrderItem;
use crate::rows::raw_bc_product::RawBcProduct;
use crate::rows::raw_bc_variant::RawBcVariant;
use crate::rows::raw_pg_point_transaction::RawPgPointTransaction;
use crate::rows::raw_pg_quotation::RawPgQuotation;
use crate::rows::table::Table;

pub use crate::payload::{Payload, Payloads};

/// BigCommerce's order status names, by status id (0 to 14).
pub const ORDER_STATUSES: [&str; 15] = [
    "Incomplete",
    "Pending",
    "Shipped",
    "Partially Shipped",
    "Refunded",
    "Cancelled",
    "Declined",
    "Awaiting Payment",
    "Awaiting Pickup",
    "Awaiting Shipment",
    "Completed",
    "Awaiting Fulfillment",
    "Manual Verification Required",
    "Disputed",
    "Partially Refunded",
];

/// The current state of one source key: `Some` upserts it, `None` deletes it.
///
/// Order lines are keyed by their order: an order's read brings its complete
/// list of lines, so a line removed from an order is retracted by the next
/// upsert of that order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Upsert {
    Customer(i64, Option<RawBcCustomer>),
    CustomerMetafield(i64, Option<RawBcCustomerMetafield>),
    Product(i64, Option<RawBcProduct>),
    Variant(i64, Option<RawBcVariant>),
    Inventory(i64, Option<RawBcInventory>),
    Order(i64, Option<RawBcOrder>),
    /// Key: the order id; value: all lines of that order.
    OrderItems(i64, Option<Vec<RawBcOrderItem>>),
    /// Key: the point transaction id (PostgreSQL, wise database).
    PointTransaction(i64, Option<RawPgPointTransaction>),
    /// Key: the quotation id (PostgreSQL, commerce database).
    Quotation(i64, Option<RawPgQuotation>),
}

impl Upsert {
    /// The `raw_*` table this upsert belongs to.
    pub fn raw_table(&self) -> Table {
        match self {
            Upsert::Customer(..) => Table::RawBcCustomer,
            Upsert::CustomerMetafield(..) => Table::RawBcCustomerMetafield,
            Upsert::Product(..) => Table::RawBcProduct,
            Upsert::Variant(..) => Table::RawBcVariant,
            Upsert::Inventory(..) => Table::RawBcInventory,
            Upsert::Order(..) => Table::RawBcOrder,
            Upsert::OrderItems(..) => Table::RawBcOrderItem,
            Upsert::PointTransaction(..) => Table::RawPgPointTransaction,
            Upsert::Quotation(..) => Table::RawPgQuotation,
        }
    }

    /// The name of the `raw_*` table this upsert belongs to.
    pub fn table(&self) -> &'static str {
        self.raw_table().name()
    }

    /// The upserted key (for order lines, the order id).
    pub fn key(&self) -> i64 {
        match self {
            Upsert::Customer(k, _)
            | Upsert::CustomerMetafield(k, _)
            | Upsert::Product(k, _)
            | Upsert::Variant(k, _)
            | Upsert::Inventory(k, _)
            | Upsert::Order(k, _)
            | Upsert::OrderItems(k, _)
            | Upsert::PointTransaction(k, _)
            | Upsert::Quotation(k, _) => *k,
        }
    }
}
