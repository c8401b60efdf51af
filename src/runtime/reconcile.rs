//! Full refresh: which raw keys a complete read of the store saw, and the
//! deletes for those it did not.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use dataflows::Table;
use dataflows::records::Upsert;

use crate::sinks::local::{LocalWarehouse, WarehouseError};

/// The delete of `key` in a raw table (for order lines, `key` is the order).
fn delete(table: Table, key: i64) -> Option<Upsert> {
    Some(match table {
        Table::RawBcCustomer => Upsert::Customer(key, None),
        Table::RawBcCustomerMetafield => Upsert::CustomerMetafield(key, None),
        Table::RawBcProduct => Upsert::Product(key, None),
        Table::RawBcVariant => Upsert::Variant(key, None),
        Table::RawBcInventory => Upsert::Inventory(key, None),
        Table::RawBcOrder => Upsert::Order(key, None),
        Table::RawBcOrderItem => Upsert::OrderItems(key, None),
        Table::RawPgPointTransaction => Upsert::PointTransaction(key, None),
        Table::RawPgQuotation => Upsert::Quotation(key, None),
        _ => return None,
    })
}

/// The column of a raw table that holds upsert keys.
fn key_column(table: Table) -> &'static str {
    match table {
        Table::RawBcOrderItem => "order_id",
        other => other.key_columns().first().copied().unwrap_or("id"),
    }
}

/// Keys seen during a full read, per raw table.
#[derive(Debug, Default)]
pub struct Seen(BTreeMap<Table, HashSet<i64>>);

impl Seen {
    /// Records the keys of `upserts`.
    pub fn note(&mut self, upserts: &[Upsert]) {
        for u in upserts {
            self.0.entry(u.raw_table()).or_default().insert(u.key());
        }
    }

    /// Deletes of every committed key of the `covered` raw tables that the
    /// full reads did not see. Tables no full read covered are left alone.
    pub fn deletes(
        &self,
        warehouse: &LocalWarehouse,
        covered: &BTreeSet<Table>,
    ) -> Result<Vec<Upsert>, WarehouseError> {
        let empty = HashSet::new();
        let mut out = Vec::new();
        for table in covered.iter().copied().filter(|t| t.is_raw()) {
            let seen = self.0.get(&table).unwrap_or(&empty);
            let mut gone: HashSet<i64> = HashSet::new();
            let key = key_column(table);
            warehouse.scan_table(table.name(), Some(&[key]), |batch| {
                if let Some(keys) = batch.column(0).as_primitive_opt::<Int64Type>() {
                    gone.extend(keys.iter().flatten().filter(|k| !seen.contains(k)));
                }
                Ok::<_, WarehouseError>(())
            })?;
            out.extend(gone.into_iter().filter_map(|k| delete(table, k)));
        }
        Ok(out)
    }
}
