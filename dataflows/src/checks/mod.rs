//! Data-quality checks, maintained incrementally by the dataflow.
//!
//! A check is declared over a table's column ([`CheckSpec`]): `not_null`,
//! `unique`, `accepted_values`, `relationships` (every non-null value exists in
//! another table's column) or `freshness` (the column's newest timestamp is
//! recent enough). [`render`] turns the specs into one collection of
//! [`CheckRow`]s: the rows currently failing each check (with their key and
//! offending value), and for freshness the table's newest timestamp. Like every
//! table here it is state, not a log: a failure appears with the row that
//! causes it and is retracted when the row is fixed or gone, so the cost of a
//! check follows the changes, not the table. Whether a freshness check passes
//! depends on the clock, so [`CheckState`] evaluates it when asked.
//!
//! [`evaluate`] computes the same rows from scratch (the oracle tests compare
//! both); [`CheckState`] accumulates the changes into per-check results.
//!
//! One kind is not about rows: `schema` fails while a configured table's
//! upstream columns do not fit its declaration (a type change that is not a
//! lossless widening). The source reports it and [`CheckState`] keeps it; the
//! dataflow has nothing to compute for it.

mod value;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use value::{Value, field};

use crate::ops::{Coll, Diff};
use crate::rows::table::{RowKey, Table, TableRow};
use crate::scalar::Micros;

/// How bad a failing check is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Reported and alerted on; `govflow check` still succeeds.
    Warn,
    /// `govflow check` exits non-zero.
    Error,
}

/// What a check asserts about its column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CheckKind {
    /// No row has a null in the column.
    NotNull,
    /// No two rows share a non-null value of the column.
    Unique,
    /// Every non-null value is one of `values` (compared as text).
    AcceptedValues {
        /// The allowed values.
        values: Vec<String>,
    },
    /// Every non-null value appears in `to_table.to_column`.
    Relationships {
        /// The referenced table.
        to_table: Table,
        /// The referenced column.
        to_column: String,
    },
    /// The column's newest timestamp is at most `max_age_micros` old. A table
    /// without rows fails.
    Freshness {
        /// The largest accepted age, in microseconds.
        max_age_micros: i64,
    },
    /// The table's upstream columns fit its declaration (see the module doc).
    Schema,
}

/// One declared check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSpec {
    /// Unique name, e.g. `fct_order.status.accepted_values`.
    pub name: String,
    /// The checked table's name: a built-in table, or for `schema` any
    /// configured one.
    pub table: String,
    /// The checked column.
    pub column: String,
    /// What is asserted.
    pub kind: CheckKind,
    /// How bad a failure is.
    pub severity: Severity,
}

impl CheckSpec {
    /// A check named `<table>.<column>.<kind>`.
    pub fn new(table: Table, column: &str, kind: CheckKind, severity: Severity) -> CheckSpec {
        let kind_name = match &kind {
            CheckKind::NotNull => "not_null",
            CheckKind::Unique => "unique",
            CheckKind::AcceptedValues { .. } => "accepted_values",
            CheckKind::Relationships { .. } => "relationships",
            CheckKind::Freshness { .. } => "freshness",
            CheckKind::Schema => "schema",
        };
        CheckSpec {
            name: format!("{table}.{column}.{kind_name}"),
            table: table.name().to_string(),
            column: column.to_string(),
            kind,
            severity,
        }
    }

    /// The `schema` check of a configured table, `<table>.columns.schema`.
    pub fn schema(table: &str) -> CheckSpec {
        CheckSpec {
            name: format!("{table}.columns.schema"),
            table: table.to_string(),
            column: "columns".to_string(),
            kind: CheckKind::Schema,
            severity: Severity::Error,
        }
    }

    /// The checked table, when it is a built-in one (every check but `schema`).
    pub fn builtin_table(&self) -> Option<Table> {
        Table::from_name(&self.table)
    }
}

/// The checks every deployment runs, declared with the models they guard.
///
/// Keys are unique and non-null by construction (every table is an upsert
/// arrangement or a function of one), and so are the references the models
/// build by joins (`dim_sku` → `dim_product`, `fct_order_item` → `fct_order`):
/// they are not checked again. Relationships and freshness that depend on the
/// business (and cost state proportional to a fact table) are declared in
/// configuration.
pub fn default_checks() -> Vec<CheckSpec> {
    use CheckKind::*;
    vec![
        CheckSpec::new(
            Table::FctOrder,
            "status",
            AcceptedValues {
                values: crate::records::ORDER_STATUSES
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            },
            Severity::Warn,
        ),
        CheckSpec::new(Table::DimCustomer, "email", Unique, Severity::Warn),
    ]
}

/// What the dataflow maintains per check.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CheckRow {
    /// Row `key` of the checked table fails check number `check` with `value`.
    Failing {
        /// Index of the check in the specs given to [`render`].
        check: usize,
        /// The failing row's key.
        key: RowKey,
        /// The offending value.
        value: Value,
    },
    /// The newest timestamp of a freshness check's column.
    Newest {
        /// Index of the check.
        check: usize,
        /// The newest value, in microseconds.
        at: Micros,
    },
}

fn failing(check: usize, row: &TableRow, value: Value) -> CheckRow {
    CheckRow::Failing {
        check,
        key: row.key(),
        value,
    }
}

/// The row-local verdict of check `index` on `row` of `table` (not_null,
/// accepted_values).
fn row_failure(index: usize, spec: &CheckSpec, table: Table, row: &TableRow) -> Option<CheckRow> {
    if row.table_id() != table {
        return None;
    }
    let value = field(row, &spec.column)?;
    let fails = match &spec.kind {
        CheckKind::NotNull => value == Value::Null,
        CheckKind::AcceptedValues { values } => {
            value.as_text().is_some_and(|text| !values.contains(&text))
        }
        _ => false,
    };
    fails.then(|| failing(index, row, value))
}

/// The non-null value of `column` in rows of `table`.
fn non_null(row: &TableRow, table: Table, column: &str) -> Option<Value> {
    if row.table_id() != table {
        return None;
    }
    field(row, column).filter(|v| *v != Value::Null)
}

/// The check rows of `specs` over `all`, every table's rows as one collection.
pub fn render<'s>(all: &Coll<'s, TableRow>, specs: &[CheckSpec]) -> Coll<'s, CheckRow> {
    let mut parts: Vec<Coll<'s, CheckRow>> = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        let Some(table) = spec.builtin_table() else {
            continue;
        };
        let column = spec.column.clone();
        let part = match &spec.kind {
            CheckKind::Schema => continue,
            CheckKind::NotNull | CheckKind::AcceptedValues { .. } => {
                let spec = spec.clone();
                all.clone()
                    .flat_map(move |row| row_failure(index, &spec, table, &row))
            }
            CheckKind::Unique => all
                .clone()
                .flat_map(move |row| non_null(&row, table, &column).map(|v| (v, row.key())))
                .reduce(|_value, keys, output| {
                    if keys.len() > 1 {
                        output.extend(keys.iter().map(|(key, _)| (**key, 1)));
                    }
                })
                .map(move |(value, key)| CheckRow::Failing {
                    check: index,
                    key,
                    value,
                }),
            CheckKind::Relationships {
                to_table,
                to_column,
            } => {
                let (to_table, to_column) = (*to_table, to_column.clone());
                let referenced = all
                    .clone()
                    .flat_map(move |row| non_null(&row, to_table, &to_column))
                    .distinct();
                all.clone()
                    .flat_map(move |row| non_null(&row, table, &column).map(|v| (v, row.key())))
                    .antijoin(referenced)
                    .map(move |(value, key)| CheckRow::Failing {
                        check: index,
                        key,
                        value,
                    })
            }
            CheckKind::Freshness { .. } => all
                .clone()
                .flat_map(move |row| match non_null(&row, table, &column) {
                    Some(Value::Int(at)) => Some(((), at)),
                    _ => None,
                })
                .reduce(|_, times, output| {
                    if let Some((newest, _)) = times.last() {
                        output.push((**newest, 1));
                    }
                })
                .map(move |((), at)| CheckRow::Newest { check: index, at }),
        };
        parts.push(part);
    }
    let mut parts = parts.into_iter();
    match parts.next() {
        Some(first) => first.concatenate(parts),
        None => all.clone().flat_map(|_| None),
    }
}

/// The check rows of `specs` over `rows` (a table state), from scratch.
pub fn evaluate(rows: &[TableRow], specs: &[CheckSpec]) -> Vec<CheckRow> {
    let mut out = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        let Some(table) = spec.builtin_table() else {
            continue;
        };
        let values = || {
            rows.iter()
                .filter_map(move |row| non_null(row, table, &spec.column).map(|v| (v, row)))
        };
        match &spec.kind {
            CheckKind::Schema => {}
            CheckKind::NotNull | CheckKind::AcceptedValues { .. } => out.extend(
                rows.iter()
                    .filter_map(|row| row_failure(index, spec, table, row)),
            ),
            CheckKind::Unique => {
                let mut by_value: BTreeMap<Value, Vec<&TableRow>> = BTreeMap::new();
                for (v, row) in values() {
                    by_value.entry(v).or_default().push(row);
                }
                for (v, rows) in by_value.into_iter().filter(|(_, rows)| rows.len() > 1) {
                    out.extend(rows.into_iter().map(|row| failing(index, row, v.clone())));
                }
            }
            CheckKind::Relationships {
                to_table,
                to_column,
            } => {
                let referenced: std::collections::BTreeSet<Value> = rows
                    .iter()
                    .filter_map(|row| non_null(row, *to_table, to_column))
                    .collect();
                out.extend(
                    values()
                        .filter(|(v, _)| !referenced.contains(v))
                        .map(|(v, row)| failing(index, row, v)),
                );
            }
            CheckKind::Freshness { .. } => {
                let newest = values()
                    .filter_map(|(v, _)| match v {
                        Value::Int(at) => Some(at),
                        _ => None,
                    })
                    .max();
                out.extend(newest.map(|at| CheckRow::Newest { check: index, at }));
            }
        }
    }
    out.sort();
    out
}

/// One check's current result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check.
    pub spec: CheckSpec,
    /// Rows failing it (for freshness: 1 when stale, else 0).
    pub failing: u64,
    /// Up to [`SAMPLE_KEYS`] failing keys, smallest first, with their values.
    pub samples: Vec<(String, String)>,
    /// For freshness: the newest timestamp, if any row has one.
    pub newest: Option<Micros>,
}

impl CheckResult {
    /// Whether the check passes.
    pub fn passed(&self) -> bool {
        self.failing == 0
    }

    /// For a freshness check, sets `failing` from `newest` as seen at `now`
    /// (1 when stale or without rows); other checks are left as they are.
    pub fn judge_freshness(&mut self, now: Micros) {
        if let CheckKind::Freshness { max_age_micros } = self.spec.kind {
            let stale = self
                .newest
                .is_none_or(|at| now.saturating_sub(at) > max_age_micros);
            self.failing = u64::from(stale);
        }
    }
}

/// Failing keys kept as samples per check.
pub const SAMPLE_KEYS: usize = 5;

/// Per-check results, accumulated from the dataflow's check changes.
#[derive(Clone, Debug, Default)]
pub struct CheckState {
    specs: Vec<CheckSpec>,
    rows: BTreeMap<CheckRow, Diff>,
    /// Configured tables whose upstream columns do not fit, with the change.
    misfits: BTreeMap<String, String>,
}

impl CheckState {
    /// An empty state for `specs` (the specs given to [`render`]).
    pub fn new(specs: Vec<CheckSpec>) -> CheckState {
        CheckState {
            specs,
            rows: BTreeMap::new(),
            misfits: BTreeMap::new(),
        }
    }

    /// What a source found when it compared `table`'s upstream columns with
    /// its declaration: `Some(change)` when they do not fit, `None` when they do.
    pub fn schema_checked(&mut self, table: &str, incompatible: Option<String>) {
        match incompatible {
            Some(change) => self.misfits.insert(table.to_string(), change),
            None => self.misfits.remove(table),
        };
    }

    /// The checks.
    pub fn specs(&self) -> &[CheckSpec] {
        &self.specs
    }

    /// Applies one epoch's changes (from any number of workers, in any order).
    pub fn apply(&mut self, changes: impl IntoIterator<Item = (CheckRow, Diff)>) {
        use std::collections::btree_map::Entry;
        for (row, diff) in changes {
            match self.rows.entry(row) {
                Entry::Occupied(mut held) => {
                    *held.get_mut() += diff;
                    if *held.get() == 0 {
                        held.remove();
                    }
                }
                Entry::Vacant(slot) => {
                    if diff != 0 {
                        slot.insert(diff);
                    }
                }
            }
        }
    }

    /// The rows currently held (each with a positive count), sorted.
    pub fn rows(&self) -> Vec<CheckRow> {
        self.rows
            .iter()
            .filter(|(_, c)| **c > 0)
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// Every check's result at time `now` (microseconds, for freshness).
    pub fn results(&self, now: Micros) -> Vec<CheckResult> {
        let mut results: Vec<CheckResult> = self
            .specs
            .iter()
            .map(|spec| CheckResult {
                spec: spec.clone(),
                failing: 0,
                samples: Vec::new(),
                newest: None,
            })
            .collect();
        for (row, _) in self.rows.iter().filter(|(_, c)| **c > 0) {
            match row {
                CheckRow::Failing { check, key, value } => {
                    if let Some(result) = results.get_mut(*check) {
                        result.failing += 1;
                        if result.samples.len() < SAMPLE_KEYS {
                            result.samples.push((key_text(key), value.to_string()));
                        }
                    }
                }
                CheckRow::Newest { check, at } => {
                    if let Some(result) = results.get_mut(*check) {
                        result.newest = Some(result.newest.map_or(*at, |n| n.max(*at)));
                    }
                }
            }
        }
        for result in &mut results {
            result.judge_freshness(now);
            if result.spec.kind == CheckKind::Schema
                && let Some(change) = self.misfits.get(&result.spec.table)
            {
                result.failing = 1;
                result.samples = vec![(result.spec.table.clone(), change.clone())];
            }
        }
        results
    }
}

/// A key as text: the id, `table:key:reason` for `_errors`, an `event_id`.
fn key_text(key: &RowKey) -> String {
    key.text()
}

#[cfg(test)]
mod tests;
