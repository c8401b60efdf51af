//! The built-in tables ([`Table`]), declared once by their row types in
//! [`builtin_tables!`], and [`TableRow`], a row of any of them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::{Cell, Record, TableDef, Value, ValueError};
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
use crate::records::Upsert;

/// Declares the built-in tables: one line each, `Variant(RowType)`, in the
/// order tables (and [`TableRow`]s) sort. Everything about a table but its
/// variant name comes from its row type's `#[derive(Record)]`.
macro_rules! builtin_tables {
    ($($variant:ident($row:ty)),+ $(,)?) => {
        /// A built-in table of the dataflow. Serialized as its name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Table {
            $(
                #[doc = concat!("The table of [`", stringify!($row), "`] rows.")]
                $variant,
            )+
        }

        /// How many built-in tables there are.
        const TABLE_COUNT: usize = [$(stringify!($variant)),+].len();

        impl Table {
            /// Every table, in the order [`TableRow`]s sort.
            pub const ALL: [Table; TABLE_COUNT] = [$(Table::$variant),+];

            /// The table's name (a contract: docs/tables.md).
            pub fn name(self) -> &'static str {
                match self {
                    $(Table::$variant => <$row as Record>::NAME,)+
                }
            }

            /// The table's key column(s).
            pub fn key_columns(self) -> &'static [&'static str] {
                match self {
                    $(Table::$variant => <$row as Record>::KEY,)+
                }
            }

            /// The warehouse's single key column (see [`TableDef::key_column`]).
            pub fn key_column(self) -> &'static str {
                match self {
                    $(Table::$variant => <$row as Record>::KEY_COLUMN,)+
                }
            }

            /// Whether this is a `raw_*` table (the dataflow's input state),
            /// filled by a source rather than computed by a model.
            pub fn is_raw(self) -> bool {
                match self {
                    $(Table::$variant => <$row as Record>::ORIGIN != "model",)+
                }
            }

            /// The table's declaration.
            pub fn def(self) -> TableDef {
                match self {
                    $(Table::$variant => <$row as Record>::table_def(),)+
                }
            }
        }

        /// A row of any built-in table. Rows sort by table first (in
        /// [`Table::ALL`] order), then by the row's first column, its key.
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[allow(clippy::large_enum_variant)]
        pub enum TableRow {
            $(
                #[doc = concat!("A [`", stringify!($row), "`].")]
                $variant($row),
            )+
        }

        impl TableRow {
            /// The row's table.
            pub fn table_id(&self) -> Table {
                match self {
                    $(TableRow::$variant(_) => Table::$variant,)+
                }
            }

            /// The row's key within its table.
            pub fn key(&self) -> RowKey {
                match self {
                    $(TableRow::$variant(r) => r.row_key(),)+
                }
            }

            /// The value of column `column` (an index into the table's columns).
            pub fn cell(&self, column: usize) -> Cell<'_> {
                match self {
                    $(TableRow::$variant(r) => r.cell(column),)+
                }
            }

            /// The row of `table` made of `values`, one per column in order.
            pub fn from_values(
                table: Table,
                values: &mut dyn Iterator<Item = Value>,
            ) -> Result<TableRow, ValueError> {
                Ok(match table {
                    $(Table::$variant => TableRow::$variant(<$row>::from_values(values)?),)+
                })
            }
        }
    };
}

builtin_tables! {
    RawBcCustomer(RawBcCustomer),
    RawBcCustomerMetafield(RawBcCustomerMetafield),
    RawBcProduct(RawBcProduct),
    RawBcVariant(RawBcVariant),
    RawBcInventory(RawBcInventory),
    RawBcOrder(RawBcOrder),
    RawBcOrderItem(RawBcOrderItem),
    RawPgPointTransaction(RawPgPointTransaction),
    RawPgQuotation(RawPgQuotation),
    DimCustomer(DimCustomer),
    DimProduct(DimProduct),
    DimSku(DimSku),
    FctOrder(FctOrder),
    FctOrderItem(FctOrderItem),
    FctPointTransaction(FctPointTransaction),
    FctQuotation(FctQuotation),
    FctOnsaleProductInventory(FctOnsaleProductInventory),
    ProductNotificationEvent(ProductNotificationEvent),
    Errors(ErrorRow),
}

impl Table {
    /// The table of that name, if any.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl Serialize for Table {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Table {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Table, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Table::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown table {name:?}")))
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
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
    /// The name of the row's table.
    pub fn table(&self) -> &'static str {
        self.table_id().name()
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
    let mut lines: BTreeMap<i64, Vec<RawBcOrderItem>> = BTreeMap::new();
    for row in rows {
        match row {
            TableRow::RawBcCustomer(r) => upserts.push(Upsert::Customer(r.id, Some(r))),
            TableRow::RawBcCustomerMetafield(r) => {
                upserts.push(Upsert::CustomerMetafield(r.id, Some(r)))
            }
            TableRow::RawBcProduct(r) => upserts.push(Upsert::Product(r.id, Some(r))),
            TableRow::RawBcVariant(r) => upserts.push(Upsert::Variant(r.id, Some(r))),
            TableRow::RawBcInventory(r) => upserts.push(Upsert::Inventory(r.variant_id, Some(r))),
            TableRow::RawBcOrder(r) => upserts.push(Upsert::Order(r.id, Some(r))),
            TableRow::RawBcOrderItem(r) => lines.entry(r.order_id).or_default().push(r),
            TableRow::RawPgPointTransaction(r) => {
                upserts.push(Upsert::PointTransaction(r.id, Some(r)))
            }
            TableRow::RawPgQuotation(r) => upserts.push(Upsert::Quotation(r.id, Some(r))),
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
            TableRow::RawBcCustomer(customer(1, "a")),
            TableRow::RawBcOrderItem(line(52, 5, 1)),
            TableRow::RawPgQuotation(quotation(3, "a@x", "sent")),
            TableRow::RawBcOrderItem(line(51, 5, 2)),
            TableRow::RawPgPointTransaction(point_transaction(4, 1, -5)),
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
        let row = TableRow::RawBcCustomer(customer(4, "a"));
        assert_eq!((row.table(), row.key()), ("raw_bc_customer", RowKey::Id(4)));
    }
}
