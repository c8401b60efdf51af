//! The built-in tables ([`Table`]), declared once by their row types in
//! `builtin_tables!`, [`TableRow`], a row of any of them, and [`RowKey`],
//! a row's key within its table.

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalogue, Cell, Record, TableDef, TextValue, Value, ValueError};
use crate::projection::Projected;
use crate::rows::dim_customer::DimCustomer;
use crate::rows::dim_product::DimProduct;
use crate::rows::dim_sku::DimSku;
use crate::rows::errors::ErrorRow;
use crate::rows::fct_onsale_product_inventory::FctOnsaleProductInventory;
use crate::rows::fct_order::FctOrder;
use crate::rows::fct_order_item::FctOrderItem;
use crate::rows::fct_point_transaction::FctPointTransaction;
use crate::rows::fct_quotation::FctQuotation;
use crate::rows::product_notification_event::{ProductNotificationEvent, event_id};
use crate::rows::raw_bc_customer::RawBcCustomer;
use crate::rows::raw_bc_customer_metafield::RawBcCustomerMetafield;
use crate::rows::raw_bc_inventory::RawBcInventory;
use crate::rows::raw_bc_order::RawBcOrder;
use crate::rows::raw_bc_order_item::RawBcOrderItem;
use crate::rows::raw_bc_product::RawBcProduct;
use crate::rows::raw_bc_variant::RawBcVariant;
use crate::rows::raw_pg_point_transaction::RawPgPointTransaction;
use crate::rows::raw_pg_quotation::RawPgQuotation;

/// A built-in table's row type: its key within the table (implemented by
/// `#[derive(Record)]`, beside [`Record`]).
pub(crate) trait Keyed {
    /// The row's key within its table.
    fn row_key(&self) -> RowKey;
}

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
            /// A `raw_*` row as the dataflow holds and emits it: the columns
            /// its models read ([`crate::projection`]). It has no warehouse
            /// columns of its own: the runtime writes the whole row it read.
            Projected(Projected),
        }

        impl TableRow {
            /// The row's table.
            pub fn table_id(&self) -> Table {
                match self {
                    $(TableRow::$variant(_) => Table::$variant,)+
                    TableRow::Projected(p) => p.table(),
                }
            }

            /// The row's key within its table.
            pub fn key(&self) -> RowKey {
                match self {
                    $(TableRow::$variant(r) => Keyed::row_key(r),)+
                    TableRow::Projected(p) => p.key(),
                }
            }

            /// The value of column `column` (an index into the table's
            /// columns); null for every column of a [`TableRow::Projected`]
            /// row, which is never written.
            pub fn cell(&self, column: usize) -> Cell<'_> {
                match self {
                    $(TableRow::$variant(r) => r.cell(column),)+
                    TableRow::Projected(_) => Cell::Null,
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

impl TextValue for Table {
    const WHAT: &'static str = "table";
    fn all() -> &'static [Table] {
        &Table::ALL
    }
    fn as_text(self) -> &'static str {
        self.name()
    }
}

impl Catalogue {
    /// The built-in tables, in [`Table::ALL`] order.
    pub fn builtin() -> Catalogue {
        Catalogue::new(Table::ALL.iter().map(|t| t.def()).collect())
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

    /// The row as the dataflow emits it: a whole `raw_*` row becomes its
    /// [`TableRow::Projected`] row; every other row stays as it is.
    pub fn projected(self) -> TableRow {
        let projected = match self {
            TableRow::RawBcCustomer(r) => Projected::RawBcCustomer(r.project()),
            TableRow::RawBcCustomerMetafield(r) => Projected::RawBcCustomerMetafield(r.project()),
            TableRow::RawBcProduct(r) => Projected::RawBcProduct(r.project()),
            TableRow::RawBcVariant(r) => Projected::RawBcVariant(r.project()),
            TableRow::RawBcInventory(r) => Projected::RawBcInventory(r.project()),
            TableRow::RawBcOrder(r) => Projected::RawBcOrder(r.project()),
            TableRow::RawBcOrderItem(r) => Projected::RawBcOrderItem(r.project()),
            TableRow::RawPgPointTransaction(r) => Projected::RawPgPointTransaction(r),
            TableRow::RawPgQuotation(r) => Projected::RawPgQuotation(r),
            other => return other,
        };
        TableRow::Projected(projected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::customer;

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
    fn keys() {
        let row = TableRow::RawBcCustomer(customer(4, "a"));
        assert_eq!((row.table(), row.key()), ("raw_bc_customer", RowKey::Id(4)));
    }
}
