//! What the dataflow holds of a `raw_*` row: the columns its models read.
//!
//! A source reads whole rows, and the warehouse stores them whole, but the
//! models read a few columns of each: an order line's name, net prices and
//! `_payload` are written and never read again. Keeping the whole rows in the
//! arrangements cost most of the dataflow's memory (15M order lines at 136
//! bytes each). So the input projects every row as it enters
//! ([`crate::records::Upsert`] → e.g. [`OrderIn`]): the read columns, plus the
//! [`fingerprint`] of the whole row, so a change of an unread column is still a
//! change of the projection and an unchanged re-read is none. A row type
//! declares its projection with `#[derive(Record)]`: `projection = "OrderIn"`
//! and a `#[record(read)]` mark on each column the models read (a model that
//! reads another column does not compile). PostgreSQL rows are read whole by
//! their models and held as they are.
//!
//! The dataflow's `raw_*` outputs are these projections ([`Projected`], in
//! [`TableRow::Projected`](crate::TableRow::Projected)): they say which keys
//! changed. The runtime keeps the epoch's whole rows and writes those
//! (docs/runtime.md).
//!
//! [`OrderIn`]: crate::rows::raw_bc_order::OrderIn

use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

use crate::rows::raw_bc_customer::{CustomerIn, RawBcCustomer};
use crate::rows::raw_bc_customer_metafield::{MetafieldIn, RawBcCustomerMetafield};
use crate::rows::raw_bc_inventory::{InventoryIn, RawBcInventory};
use crate::rows::raw_bc_order::{OrderIn, RawBcOrder};
use crate::rows::raw_bc_order_item::{LineIn, RawBcOrderItem};
use crate::rows::raw_bc_product::{ProductIn, RawBcProduct};
use crate::rows::raw_bc_variant::{RawBcVariant, VariantIn};
use crate::rows::raw_pg_point_transaction::PointTransactionIn;
use crate::rows::raw_pg_quotation::QuotationIn;
use crate::rows::table::{RowKey, Table};

/// The fingerprint of a whole row: xxHash64 of its `Hash` walk. Both sides of
/// a comparison are hashed by the same build (a restart hashes the committed
/// rows again), so it needs no stability across releases.
pub fn fingerprint<T: Hash + ?Sized>(row: &T) -> u64 {
    let mut hasher = twox_hash::XxHash64::with_seed(0);
    row.hash(&mut hasher);
    hasher.finish()
}

/// The columns the dataflow holds of `table` when they are fewer than the
/// table's (those its models read, marked `#[record(read)]`; a check on the
/// table can only name these), or `None` when it holds whole rows: the
/// models' and the PostgreSQL raw tables.
pub fn projected_columns(table: Table) -> Option<&'static [&'static str]> {
    Some(match table {
        Table::RawBcCustomer => RawBcCustomer::READ_COLUMNS,
        Table::RawBcCustomerMetafield => RawBcCustomerMetafield::READ_COLUMNS,
        Table::RawBcProduct => RawBcProduct::READ_COLUMNS,
        Table::RawBcVariant => RawBcVariant::READ_COLUMNS,
        Table::RawBcInventory => RawBcInventory::READ_COLUMNS,
        Table::RawBcOrder => RawBcOrder::READ_COLUMNS,
        Table::RawBcOrderItem => RawBcOrderItem::READ_COLUMNS,
        _ => return None,
    })
}

/// A projected `raw_*` row, as the dataflow emits it for its table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Projected {
    /// Of `raw_bc_customer`.
    RawBcCustomer(CustomerIn),
    /// Of `raw_bc_customer_metafield`.
    RawBcCustomerMetafield(MetafieldIn),
    /// Of `raw_bc_product`.
    RawBcProduct(ProductIn),
    /// Of `raw_bc_variant`.
    RawBcVariant(VariantIn),
    /// Of `raw_bc_inventory`.
    RawBcInventory(InventoryIn),
    /// Of `raw_bc_order`.
    RawBcOrder(OrderIn),
    /// Of `raw_bc_order_item`.
    RawBcOrderItem(LineIn),
    /// Of `raw_pg_point_transaction`.
    RawPgPointTransaction(PointTransactionIn),
    /// Of `raw_pg_quotation`.
    RawPgQuotation(QuotationIn),
}

impl Projected {
    /// The row's table.
    pub fn table(&self) -> Table {
        match self {
            Projected::RawBcCustomer(_) => Table::RawBcCustomer,
            Projected::RawBcCustomerMetafield(_) => Table::RawBcCustomerMetafield,
            Projected::RawBcProduct(_) => Table::RawBcProduct,
            Projected::RawBcVariant(_) => Table::RawBcVariant,
            Projected::RawBcInventory(_) => Table::RawBcInventory,
            Projected::RawBcOrder(_) => Table::RawBcOrder,
            Projected::RawBcOrderItem(_) => Table::RawBcOrderItem,
            Projected::RawPgPointTransaction(_) => Table::RawPgPointTransaction,
            Projected::RawPgQuotation(_) => Table::RawPgQuotation,
        }
    }

    /// The row's key within its table (the row's own id, as the warehouse
    /// keys it).
    pub fn key(&self) -> RowKey {
        RowKey::Id(match self {
            Projected::RawBcCustomer(r) => r.id,
            Projected::RawBcCustomerMetafield(r) => r.id,
            Projected::RawBcProduct(r) => r.id,
            Projected::RawBcVariant(r) => r.id,
            Projected::RawBcInventory(r) => r.variant_id,
            Projected::RawBcOrder(r) => r.id,
            Projected::RawBcOrderItem(r) => r.id,
            Projected::RawPgPointTransaction(r) => r.id,
            Projected::RawPgQuotation(r) => r.id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{
        customer, inventory, line, order, point_transaction, product, quotation, variant,
    };
    use crate::rows::table::TableRow;

    #[test]
    fn projected_columns_are_the_projections_fields() {
        let metafield = RawBcCustomerMetafield {
            id: 1,
            customer_id: 2,
            namespace: "n".into(),
            key: "k".into(),
            value: "v".into(),
            created_at: 0,
            modified_at: 0,
            payload: Default::default(),
        };
        let rows = [
            TableRow::RawBcCustomer(customer(1, "a@x")),
            TableRow::RawBcCustomerMetafield(metafield),
            TableRow::RawBcProduct(product(1)),
            TableRow::RawBcVariant(variant(1, 1, 1)),
            TableRow::RawBcInventory(inventory(1, 1)),
            TableRow::RawBcOrder(order(1, 1, 10, 100, 1)),
            TableRow::RawBcOrderItem(line(1, 1, 1)),
        ];
        for row in rows {
            let table = row.table_id();
            let value = serde_json::to_value(row.projected()).unwrap();
            let fields = value["Projected"].as_object().unwrap().values().next();
            let mut fields: Vec<&str> = fields
                .unwrap()
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .filter(|k| *k != "fingerprint")
                .collect();
            fields.sort_unstable();
            let mut want = projected_columns(table).unwrap().to_vec();
            want.sort_unstable();
            assert_eq!(fields, want, "{table}");
            // Each is a column of the table.
            assert!(
                want.iter()
                    .all(|c| table.def().columns.iter().any(|d| d.name == *c))
            );
        }
        assert_eq!(projected_columns(Table::FctOrder), None);
        // PostgreSQL rows are held whole.
        for row in [
            TableRow::RawPgPointTransaction(point_transaction(1, 1, 1)),
            TableRow::RawPgQuotation(quotation(1, "a@x", "sent")),
        ] {
            assert_eq!(projected_columns(row.table_id()), None);
            assert_eq!(
                row.clone().projected(),
                TableRow::Projected(match row {
                    TableRow::RawPgPointTransaction(r) => Projected::RawPgPointTransaction(r),
                    TableRow::RawPgQuotation(r) => Projected::RawPgQuotation(r),
                    _ => unreachable!(),
                })
            );
        }
    }

    #[test]
    fn a_change_of_an_unread_column_changes_the_projection() {
        let row = customer(1, "a@x");
        let other = RawBcCustomer {
            phone: "555".into(),
            ..row.clone()
        };
        assert_eq!(row.project(), row.clone().project(), "deterministic");
        assert_ne!(row.project(), other.project());
        assert_eq!(
            CustomerIn {
                fingerprint: 0,
                ..row.project()
            },
            CustomerIn {
                fingerprint: 0,
                ..other.project()
            },
            "the read columns are the same"
        );
        let projected = Projected::RawBcOrderItem(line(51, 5, 2).project());
        assert_eq!(
            (projected.table(), projected.key()),
            (Table::RawBcOrderItem, RowKey::Id(51))
        );
    }
}
