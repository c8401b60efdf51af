//! The whole rows behind the dataflow's `raw_*` changes.
//!
//! The dataflow holds only what its models read of a raw row (the
//! projection, `dataflows::projection`), so the `raw_*` changes it emits are
//! projections: they say which keys an epoch changed, not the rows to write.
//! A key's insertion can only come from a row read in the same epoch, so the
//! epoch's upserts (the last one per key wins, as in the dataflow) hold every
//! whole row to write; a retraction needs only its key.

use std::collections::HashMap;

use dataflows::records::Upsert;
use dataflows::{RowKey, Table, TableRow};

use super::dataflow::{DataflowError, TableChangeSet};

/// An epoch's whole raw rows, by table and key.
#[derive(Default)]
pub(super) struct WholeRows(HashMap<(Table, i64), TableRow>);

impl WholeRows {
    /// The rows `upserts` carry (copies: the upserts go to the dataflow).
    pub(super) fn of(upserts: &[Upsert]) -> WholeRows {
        let mut rows = HashMap::with_capacity(upserts.len());
        let mut keep = |row: TableRow| {
            if let RowKey::Id(key) = row.key() {
                rows.insert((row.table_id(), key), row);
            }
        };
        for upsert in upserts {
            match upsert {
                Upsert::Customer(_, Some(r)) => keep(TableRow::RawBcCustomer(r.clone())),
                Upsert::CustomerMetafield(_, Some(r)) => {
                    keep(TableRow::RawBcCustomerMetafield(r.clone()))
                }
                Upsert::Product(_, Some(r)) => keep(TableRow::RawBcProduct(r.clone())),
                Upsert::Variant(_, Some(r)) => keep(TableRow::RawBcVariant(r.clone())),
                Upsert::Inventory(_, Some(r)) => keep(TableRow::RawBcInventory(r.clone())),
                Upsert::Order(_, Some(r)) => keep(TableRow::RawBcOrder(r.clone())),
                Upsert::OrderItems(_, Some(lines)) => {
                    for line in lines {
                        keep(TableRow::RawBcOrderItem(line.clone()));
                    }
                }
                Upsert::PointTransaction(_, Some(r)) => {
                    keep(TableRow::RawPgPointTransaction(r.clone()))
                }
                Upsert::Quotation(_, Some(r)) => keep(TableRow::RawPgQuotation(r.clone())),
                _ => {}
            }
        }
        WholeRows(rows)
    }

    /// Replaces every inserted projected row of `changes` by the whole row
    /// read for its key; retractions keep their projection (their key is
    /// what a write needs).
    pub(super) fn fill(
        &mut self,
        epoch: u64,
        changes: &mut TableChangeSet,
    ) -> Result<(), DataflowError> {
        for (table, rows) in changes.iter_mut().filter(|(t, _)| t.is_raw()) {
            for (row, diff) in rows.iter_mut() {
                if *diff <= 0 || !matches!(row, TableRow::Projected(_)) {
                    continue;
                }
                let whole = match row.key() {
                    RowKey::Id(key) => self.0.remove(&(*table, key)),
                    _ => None,
                };
                match whole {
                    Some(whole) => *row = whole,
                    None => {
                        return Err(DataflowError::NoWholeRow {
                            epoch,
                            table: *table,
                            key: row.key().text(),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}
