//! The output tables by name, and [`TableRow`], a row of any of them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::models::dim_customer::DimCustomer;
use crate::models::dim_product::DimProduct;
use crate::models::dim_sku::DimSku;
use crate::models::errors::ErrorRow;
use crate::models::fct_onsale_product_inventory::FctOnsaleProductInventory;
use crate::models::fct_order::FctOrder;
use crate::models::fct_order_item::FctOrderItem;
use crate::models::fct_point_transaction::FctPointTransaction;
use crate::models::fct_quotation::FctQuotation;
use crate::models::product_notification_event::{ProductNotificationEvent, event_id};
use crate::models::raw_bc_customer::RawBcCustomer;
use crate::models::raw_bc_customer_metafield::RawBcCustomerMetafield;
use crate::models::raw_bc_inventory::RawBcInventory;
use crate::models::raw_bc_order::RawBcOrder;
use crate::models::raw_bc_order_item::RawBcOrderItem;
use crate::models::raw_bc_product::RawBcProduct;
use crate::models::raw_bc_variant::RawBcVariant;
use crate::models::raw_pg_point_transaction::RawPgPointTransaction;
use crate::models::raw_pg_quotation::RawPgQuotation;
use crate::records::{OrderItem, Upsert};

/// An output table of the dataflow. Serialized as its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// `raw_bc_customer`
    RawBcCustomer,
    /// `raw_bc_customer_metafield`
    RawBcCustomerMetafield,
    /// `raw_bc_product`
    RawBcProduct,
    /// `raw_bc_variant`
    RawBcVariant,
    /// `raw_bc_inventory`
    RawBcInventory,
    /// `raw_bc_order`
    RawBcOrder,
    /// `raw_bc_order_item`
    RawBcOrderItem,
    /// `raw_pg_point_transaction`
    RawPgPointTransaction,
    /// `raw_pg_quotation`
    RawPgQuotation,
    /// `dim_customer`
    DimCustomer,
    /// `dim_product`
    DimProduct,
    /// `dim_sku`
    DimSku,
    /// `fct_order`
    FctOrder,
    /// `fct_order_item`
    FctOrderItem,
    /// `fct_point_transaction`
    FctPointTransaction,
    /// `fct_quotation`
    FctQuotation,
    /// `fct_onsale_product_inventory`
    FctOnsaleProductInventory,
    /// `product_notification_event`
    ProductNotificationEvent,
    /// `_errors`
    #[serde(rename = "_errors")]
    Errors,
}

impl Table {
    /// Every table, in the order [`TableRow`]s sort.
    pub const ALL: [Table; 19] = [
        Table::RawBcCustomer,
        Table::RawBcCustomerMetafield,
        Table::RawBcProduct,
        Table::RawBcVariant,
        Table::RawBcInventory,
        Table::RawBcOrder,
        Table::RawBcOrderItem,
        Table::RawPgPointTransaction,
        Table::RawPgQuotation,
        Table::DimCustomer,
        Table::DimProduct,
        Table::DimSku,
        Table::FctOrder,
        Table::FctOrderItem,
        Table::FctPointTransaction,
        Table::FctQuotation,
        Table::FctOnsaleProductInventory,
        Table::ProductNotificationEvent,
        Table::Errors,
    ];

    /// The table's name (a contract: see DESIGN.md, Tables).
    pub fn name(self) -> &'static str {
        match self {
            Table::RawBcCustomer => "raw_bc_customer",
            Table::RawBcCustomerMetafield => "raw_bc_customer_metafield",
            Table::RawBcProduct => "raw_bc_product",
            Table::RawBcVariant => "raw_bc_variant",
            Table::RawBcInventory => "raw_bc_inventory",
            Table::RawBcOrder => "raw_bc_order",
            Table::RawBcOrderItem => "raw_bc_order_item",
            Table::RawPgPointTransaction => "raw_pg_point_transaction",
            Table::RawPgQuotation => "raw_pg_quotation",
            Table::DimCustomer => "dim_customer",
            Table::DimProduct => "dim_product",
            Table::DimSku => "dim_sku",
            Table::FctOrder => "fct_order",
            Table::FctOrderItem => "fct_order_item",
            Table::FctPointTransaction => "fct_point_transaction",
            Table::FctQuotation => "fct_quotation",
            Table::FctOnsaleProductInventory => "fct_onsale_product_inventory",
            Table::ProductNotificationEvent => "product_notification_event",
            Table::Errors => "_errors",
        }
    }

    /// The table of that name, if any.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The table's key column(s).
    pub fn key_columns(self) -> &'static [&'static str] {
        match self {
            Table::RawBcCustomer
            | Table::RawBcCustomerMetafield
            | Table::RawBcProduct
            | Table::RawBcVariant
            | Table::RawBcOrder
            | Table::RawBcOrderItem
            | Table::RawPgPointTransaction
            | Table::RawPgQuotation => &["id"],
            Table::RawBcInventory => &["variant_id"],
            Table::DimCustomer => &["customer_id"],
            Table::DimProduct => &["product_id"],
            Table::DimSku | Table::FctOnsaleProductInventory => &["sku_id"],
            Table::FctOrder => &["order_id"],
            Table::FctOrderItem => &["order_item_id"],
            Table::FctPointTransaction => &["point_transaction_id"],
            Table::FctQuotation => &["quotation_id"],
            Table::ProductNotificationEvent => &["event_id"],
            Table::Errors => &["table", "key", "reason"],
        }
    }

    /// Whether this is a `raw_*` table (the dataflow's input state).
    pub fn is_raw(self) -> bool {
        self <= Table::RawPgQuotation
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A row of any output table. Rows sort by table first (in [`Table::ALL`]
/// order), then by the row's first column, its key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum TableRow {
    /// A `raw_bc_customer` row.
    RawBcCustomer(RawBcCustomer),
    /// A `raw_bc_customer_metafield` row.
    RawBcCustomerMetafield(RawBcCustomerMetafield),
    /// A `raw_bc_product` row.
    RawBcProduct(RawBcProduct),
    /// A `raw_bc_variant` row.
    RawBcVariant(RawBcVariant),
    /// A `raw_bc_inventory` row.
    RawBcInventory(RawBcInventory),
    /// A `raw_bc_order` row.
    RawBcOrder(RawBcOrder),
    /// A `raw_bc_order_item` row.
    RawBcOrderItem(RawBcOrderItem),
    /// A `raw_pg_point_transaction` row.
    RawPgPointTransaction(RawPgPointTransaction),
    /// A `raw_pg_quotation` row.
    RawPgQuotation(RawPgQuotation),
    /// A `dim_customer` row.
    DimCustomer(DimCustomer),
    /// A `dim_product` row.
    DimProduct(DimProduct),
    /// A `dim_sku` row.
    DimSku(DimSku),
    /// A `fct_order` row.
    FctOrder(FctOrder),
    /// A `fct_order_item` row.
    FctOrderItem(FctOrderItem),
    /// A `fct_point_transaction` row.
    FctPointTransaction(FctPointTransaction),
    /// A `fct_quotation` row.
    FctQuotation(FctQuotation),
    /// A `fct_onsale_product_inventory` row.
    FctOnsaleProductInventory(FctOnsaleProductInventory),
    /// A `product_notification_event` row.
    ProductNotificationEvent(ProductNotificationEvent),
    /// An `_errors` row.
    Errors(ErrorRow),
}

/// The key of a [`TableRow`] within its table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RowKey {
    /// The single `i64` key column of every table but `_errors`.
    Id(i64),
    /// `_errors` is keyed by the whole row.
    Error(ErrorRow),
    /// `product_notification_event` is keyed by (customer, SKU, episode),
    /// written as its `event_id` text.
    Event {
        /// Customer id.
        customer_id: i64,
        /// Variant id.
        sku_id: i64,
        /// Episode (start epoch).
        episode: i64,
    },
}

impl RowKey {
    /// The key as text: the id, an `_errors` key `table:key:reason`, or an
    /// `event_id`.
    pub fn text(&self) -> String {
        match self {
            RowKey::Id(id) => id.to_string(),
            RowKey::Error(e) => format!("{}:{}:{}", e.table.name(), e.key, e.reason.as_str()),
            RowKey::Event {
                customer_id,
                sku_id,
                episode,
            } => event_id(*customer_id, *sku_id, *episode),
        }
    }
}

impl TableRow {
    /// The row's table.
    pub fn table_id(&self) -> Table {
        match self {
            TableRow::RawBcCustomer(_) => Table::RawBcCustomer,
            TableRow::RawBcCustomerMetafield(_) => Table::RawBcCustomerMetafield,
            TableRow::RawBcProduct(_) => Table::RawBcProduct,
            TableRow::RawBcVariant(_) => Table::RawBcVariant,
            TableRow::RawBcInventory(_) => Table::RawBcInventory,
            TableRow::RawBcOrder(_) => Table::RawBcOrder,
            TableRow::RawBcOrderItem(_) => Table::RawBcOrderItem,
            TableRow::RawPgPointTransaction(_) => Table::RawPgPointTransaction,
            TableRow::RawPgQuotation(_) => Table::RawPgQuotation,
            TableRow::DimCustomer(_) => Table::DimCustomer,
            TableRow::DimProduct(_) => Table::DimProduct,
            TableRow::DimSku(_) => Table::DimSku,
            TableRow::FctOrder(_) => Table::FctOrder,
            TableRow::FctOrderItem(_) => Table::FctOrderItem,
            TableRow::FctPointTransaction(_) => Table::FctPointTransaction,
            TableRow::FctQuotation(_) => Table::FctQuotation,
            TableRow::FctOnsaleProductInventory(_) => Table::FctOnsaleProductInventory,
            TableRow::ProductNotificationEvent(_) => Table::ProductNotificationEvent,
            TableRow::Errors(_) => Table::Errors,
        }
    }

    /// The name of the row's table.
    pub fn table(&self) -> &'static str {
        self.table_id().name()
    }

    /// The row's key within its table.
    pub fn key(&self) -> RowKey {
        match self {
            TableRow::RawBcCustomer(r) => RowKey::Id(r.id),
            TableRow::RawBcCustomerMetafield(r) => RowKey::Id(r.id),
            TableRow::RawBcProduct(r) => RowKey::Id(r.id),
            TableRow::RawBcVariant(r) => RowKey::Id(r.id),
            TableRow::RawBcInventory(r) => RowKey::Id(r.variant_id),
            TableRow::RawBcOrder(r) => RowKey::Id(r.id),
            TableRow::RawBcOrderItem(r) => RowKey::Id(r.id),
            TableRow::RawPgPointTransaction(r) => RowKey::Id(r.id),
            TableRow::RawPgQuotation(r) => RowKey::Id(r.id),
            TableRow::DimCustomer(r) => RowKey::Id(r.customer_id),
            TableRow::DimProduct(r) => RowKey::Id(r.product_id),
            TableRow::DimSku(r) => RowKey::Id(r.sku_id),
            TableRow::FctOrder(r) => RowKey::Id(r.order_id),
            TableRow::FctOrderItem(r) => RowKey::Id(r.order_item_id),
            TableRow::FctPointTransaction(r) => RowKey::Id(r.point_transaction_id),
            TableRow::FctQuotation(r) => RowKey::Id(r.quotation_id),
            TableRow::FctOnsaleProductInventory(r) => RowKey::Id(r.sku_id),
            TableRow::ProductNotificationEvent(r) => RowKey::Event {
                customer_id: r.customer_id,
                sku_id: r.sku_id,
                episode: r.episode,
            },
            TableRow::Errors(r) => RowKey::Error(*r),
        }
    }
}

/// Rebuilds the upserts that recreate committed `raw_*` state, e.g. at
/// restart from the warehouse's `raw_*` tables. Rows of other tables are
/// ignored. Order lines are grouped into one `Upsert::OrderItems` per
/// `order_id` (lines sorted by id). Keys are the rows' own ids, so a row that
/// was upserted under a different key (an `_errors` `key_mismatch`) comes
/// back under its own id. There is one upsert per key: feed them with
/// [`crate::UpsertInput::send_all`].
pub fn upserts_from_raw(rows: impl IntoIterator<Item = TableRow>) -> Vec<Upsert> {
    let mut upserts = Vec::new();
    let mut lines: BTreeMap<i64, Vec<OrderItem>> = BTreeMap::new();
    for row in rows {
        match row {
            TableRow::RawBcCustomer(r) => upserts.push(Upsert::Customer(r.id, Some(r.into()))),
            TableRow::RawBcCustomerMetafield(r) => {
                upserts.push(Upsert::CustomerMetafield(r.id, Some(r.into())))
            }
            TableRow::RawBcProduct(r) => upserts.push(Upsert::Product(r.id, Some(r.into()))),
            TableRow::RawBcVariant(r) => upserts.push(Upsert::Variant(r.id, Some(r.into()))),
            TableRow::RawBcInventory(r) => {
                upserts.push(Upsert::Inventory(r.variant_id, Some(r.into())))
            }
            TableRow::RawBcOrder(r) => upserts.push(Upsert::Order(r.id, Some(r.into()))),
            TableRow::RawBcOrderItem(r) => lines.entry(r.order_id).or_default().push(r.into()),
            TableRow::RawPgPointTransaction(r) => {
                upserts.push(Upsert::PointTransaction(r.id, Some(r.into())))
            }
            TableRow::RawPgQuotation(r) => upserts.push(Upsert::Quotation(r.id, Some(r.into()))),
            _ => {}
        }
    }
    for (order_id, mut items) in lines {
        items.sort_by_key(|item| item.id);
        upserts.push(Upsert::OrderItems(order_id, Some(items)));
    }
    upserts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{customer, line, point_transaction, quotation};

    #[test]
    fn names_round_trip() {
        for table in Table::ALL {
            assert_eq!(Table::from_name(table.name()), Some(table));
            assert_eq!(
                serde_json::to_string(&table).ok(),
                Some(format!("\"{}\"", table.name()))
            );
            assert!(!table.key_columns().is_empty());
        }
        assert_eq!(Table::ALL.iter().filter(|t| t.is_raw()).count(), 9);
        assert!(!Table::ProductNotificationEvent.is_raw());
        assert!(Table::RawPgQuotation.is_raw() && !Table::FctQuotation.is_raw());
        // `Table::ALL` is in declaration (sort) order.
        assert!(Table::ALL.is_sorted());
        assert_eq!(Table::from_name("nope"), None);
    }

    #[test]
    fn raw_rows_become_upserts_again() {
        let rows = vec![
            TableRow::RawBcCustomer(customer(1, "a").into()),
            TableRow::RawBcOrderItem(line(52, 5, 1).into()),
            TableRow::RawPgQuotation(quotation(3, "a@x", "sent").into()),
            TableRow::RawBcOrderItem(line(51, 5, 2).into()),
            TableRow::RawPgPointTransaction(point_transaction(4, 1, -5).into()),
            TableRow::Errors(ErrorRow {
                table: Table::RawBcCustomer,
                key: 1,
                reason: crate::models::errors::ErrorReason::KeyMismatch,
            }),
        ];
        assert_eq!(
            upserts_from_raw(rows),
            vec![
                Upsert::Customer(1, Some(customer(1, "a"))),
                Upsert::Quotation(3, Some(quotation(3, "a@x", "sent"))),
                Upsert::PointTransaction(4, Some(point_transaction(4, 1, -5))),
                Upsert::OrderItems(5, Some(vec![line(51, 5, 2), line(52, 5, 1)])),
            ]
        );
    }

    #[test]
    fn keys() {
        let row = TableRow::RawBcCustomer(customer(4, "a").into());
        assert_eq!((row.table(), row.key()), ("raw_bc_customer", RowKey::Id(4)));
    }
}
