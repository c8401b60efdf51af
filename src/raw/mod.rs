//! Configured raw tables: tables no model reads (any PostgreSQL table named
//! in the config), written from the source stream straight to the
//! warehouse, never held whole in the dataflow.
//!
//! Sources send [`RawChange`]s: a row's current values, or its deletion. The
//! epoch loop [`apply`](RawLayer::apply)s them as they arrive (the last change
//! of a key in an epoch wins) and [`take`](RawLayer::take)s the epoch's net
//! changes when it commits. Only a compact fingerprint of each committed row
//! is kept per key, so an unchanged re-read (every poll re-reads the hour
//! lookback) is dropped without a write, and a full read knows which keys it
//! did not see. At start the fingerprints are rebuilt from the committed
//! tables ([`restore`](RawLayer::restore)).

pub mod evolution;
mod key;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, StringArray};
use dataflows::catalog::{Cell, TableDef, Value};
use dataflows::payload::Payloads;

use crate::format::{self, ArrowConvError, has_text_key};
use crate::format::{TableChanges, TableSpec};
use crate::sinks::local::{LocalWarehouse, WarehouseError};

pub use key::{RowKeyValue, key_of};

/// A change of one row of a configured table, as a source read it.
#[derive(Clone, Debug, PartialEq)]
pub struct RawChange {
    /// The table's name (`raw_pg_<db>_<table>`).
    pub table: String,
    /// The row's key.
    pub key: RowKeyValue,
    /// The row's values, one per column of the table's definition, in order;
    /// `None` deletes the row.
    pub row: Option<Vec<Value>>,
}

/// A failure of the raw layer, naming the table.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    /// The warehouse could not be read.
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    /// Rows did not convert to or from Arrow.
    #[error(transparent)]
    Arrow(#[from] ArrowConvError),
}

/// One configured table: its definition and the fingerprint of each
/// committed row, by key.
struct RawTable {
    def: TableDef,
    committed: HashMap<RowKeyValue, u64>,
}

/// The configured raw tables of a pipeline.
#[derive(Default)]
pub struct RawLayer {
    tables: BTreeMap<String, RawTable>,
    /// This epoch's changes, the last per key.
    pending: BTreeMap<String, BTreeMap<RowKeyValue, Option<Vec<Value>>>>,
}

impl RawLayer {
    /// The layer of these tables, with nothing committed yet.
    pub fn new(defs: Vec<TableDef>) -> RawLayer {
        RawLayer {
            tables: defs
                .into_iter()
                .map(|def| {
                    let table = RawTable {
                        def,
                        committed: HashMap::new(),
                    };
                    (table.def.name.clone(), table)
                })
                .collect(),
            pending: BTreeMap::new(),
        }
    }

    /// The tables' definitions, by name.
    pub fn defs(&self) -> impl Iterator<Item = &TableDef> {
        self.tables.values().map(|t| &t.def)
    }

    /// The declaration of table `name`.
    pub fn def(&self, name: &str) -> Option<&TableDef> {
        self.tables.get(name).map(|t| &t.def)
    }

    /// Replaces a table's declaration by an evolved one (see [`evolution`]);
    /// commit its pending changes first: they were read under the old one.
    /// Fingerprints stay, so a row read again under the new declaration is
    /// written again (filling its new columns).
    pub fn evolve(&mut self, def: TableDef) {
        match self.tables.get_mut(&def.name) {
            Some(table) => table.def = def,
            None => {
                let name = def.name.clone();
                let table = RawTable {
                    def,
                    committed: HashMap::new(),
                };
                self.tables.insert(name, table);
            }
        }
    }

    /// The tables' warehouse specs.
    pub fn specs(&self) -> Vec<TableSpec> {
        self.defs().map(format::spec_of).collect()
    }

    /// Rebuilds the fingerprints from the committed tables; returns the rows
    /// per table.
    pub fn restore(
        &mut self,
        warehouse: &LocalWarehouse,
    ) -> Result<BTreeMap<String, i64>, RawError> {
        let mut rows = BTreeMap::new();
        for table in self.tables.values_mut() {
            table.committed.clear();
            let (def, committed) = (&table.def, &mut table.committed);
            warehouse.scan_table(&def.name, None, |batch| -> Result<(), RawError> {
                for values in format::values_from_batch(def, &batch)? {
                    committed.insert(key_of(def, &values), fingerprint(&values));
                }
                Ok(())
            })?;
            rows.insert(table.def.name.clone(), table.committed.len() as i64);
        }
        Ok(rows)
    }

    /// Notes changes read from a source; changes of unknown tables are ignored.
    pub fn apply(&mut self, changes: impl IntoIterator<Item = RawChange>) {
        for change in changes {
            if self.tables.contains_key(&change.table) {
                self.pending
                    .entry(change.table)
                    .or_default()
                    .insert(change.key, change.row);
            }
        }
    }

    /// How many changes (the last per key) wait for the next commit.
    pub fn pending_len(&self) -> usize {
        self.pending.values().map(BTreeMap::len).sum()
    }

    /// Whether changes are waiting for the next commit.
    pub fn has_pending(&self) -> bool {
        self.pending.values().any(|t| !t.is_empty())
    }

    /// The net changes of the pending changes against what is committed, as
    /// the warehouse's batches at `epoch`, with the number of rows each
    /// changes net (inserted minus deleted) and in all; then counts them as
    /// committed. Unchanged rows and deletes of absent keys are dropped.
    pub fn take(&mut self, epoch: u64) -> Result<Vec<(TableChanges, i64, u64)>, RawError> {
        let mut out = Vec::new();
        for (name, changes) in std::mem::take(&mut self.pending) {
            let Some(table) = self.tables.get_mut(&name) else {
                continue;
            };
            let mut upserts: Vec<(&RowKeyValue, &Vec<Value>, u64)> = Vec::new();
            let mut deleted: Vec<&RowKeyValue> = Vec::new();
            let mut delta = 0i64;
            for (key, row) in &changes {
                match row {
                    Some(values) => {
                        let print = fingerprint(values);
                        match table.committed.get(key) {
                            Some(old) if *old == print => {}
                            Some(_) => upserts.push((key, values, print)),
                            None => {
                                delta += 1;
                                upserts.push((key, values, print));
                            }
                        }
                    }
                    None if table.committed.contains_key(key) => {
                        delta -= 1;
                        deleted.push(key);
                    }
                    None => {}
                }
            }
            if upserts.is_empty() && deleted.is_empty() {
                continue;
            }
            let rows: Vec<&Vec<Value>> = upserts.iter().map(|(_, v, _)| *v).collect();
            let keys: Vec<String> = upserts.iter().map(|(k, _, _)| k.to_string()).collect();
            let batch =
                format::upsert_batch(&table.def, epoch, &rows, &keys, &Payloads::default())?;
            let deleted_keys: ArrayRef = if has_text_key(&table.def) {
                Arc::new(StringArray::from_iter_values(
                    deleted.iter().map(|k| k.to_string()),
                ))
            } else {
                Arc::new(Int64Array::from_iter(deleted.iter().map(|k| k.as_int())))
            };
            let n = (upserts.len() + deleted.len()) as u64;
            for (key, _, print) in &upserts {
                table.committed.insert((*key).clone(), *print);
            }
            for key in &deleted {
                table.committed.remove(*key);
            }
            out.push((
                TableChanges {
                    table: name,
                    upserts: batch,
                    deleted_keys,
                },
                delta,
                n,
            ));
        }
        Ok(out)
    }

    /// The deletes of every committed key of `tables` that `seen` does not
    /// hold: what a full read of those tables did not find.
    pub fn unseen(
        &self,
        tables: &BTreeSet<String>,
        seen: &HashMap<String, std::collections::HashSet<RowKeyValue>>,
    ) -> Vec<RawChange> {
        let empty = std::collections::HashSet::new();
        let mut out = Vec::new();
        for name in tables {
            let Some(table) = self.tables.get(name) else {
                continue;
            };
            let seen = seen.get(name).unwrap_or(&empty);
            let mut gone: Vec<&RowKeyValue> = table
                .committed
                .keys()
                .filter(|k| !seen.contains(*k))
                .collect();
            gone.sort();
            out.extend(gone.into_iter().map(|key| RawChange {
                table: name.clone(),
                key: key.clone(),
                row: None,
            }));
        }
        out
    }
}

/// A row's fingerprint: a 64-bit hash of its values (floats by their bits),
/// equal for equal rows whether read from a source or from the warehouse.
pub fn fingerprint(values: &[Value]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    for value in values {
        match value.cell() {
            Cell::Null => 0u8.hash(&mut h),
            Cell::Int(v) => (1u8, v).hash(&mut h),
            Cell::Bool(v) => (2u8, v).hash(&mut h),
            Cell::Text(v) => (3u8, v).hash(&mut h),
            Cell::Money(v) => (4u8, v).hash(&mut h),
            Cell::Micros(v) => (5u8, v).hash(&mut h),
            Cell::Float(v) => (6u8, v.to_bits()).hash(&mut h),
            Cell::Decimal(v) => (7u8, v).hash(&mut h),
            Cell::Date(v) => (8u8, v).hash(&mut h),
            Cell::Json(v) => (9u8, v).hash(&mut h),
            Cell::Bytes(v) => (10u8, v).hash(&mut h),
            Cell::Payload(v) => (11u8, v).hash(&mut h),
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests;
