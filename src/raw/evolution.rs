//! Schema evolution of configured tables: what happens to a table's
//! declaration when the source's columns change while govflow runs
//! (docs/tables.md, Schema evolution).
//!
//! | upstream change | in the warehouse |
//! |---|---|
//! | a column is added | a nullable column is added; rows read from then on fill it, older rows are null until read again (a full refresh fills them all) |
//! | a column is dropped | the column stays, nullable, null in rows read from then on |
//! | a type widens losslessly (`int64` → `decimal` with ≥ 19 integer digits, `decimal(p,s)` → wider, `date` → `timestamp`) | the column takes the wider type; older files are read widened |
//! | any other type change | the column keeps its type; rows whose value does not fit it are dead letters naming the column and both types, and the change is reported (log, status page) |
//!
//! Nothing is rewritten: files written before keep their schema and are read
//! under the new one by column name, so older snapshots stay readable.

use dataflows::catalog::{ColumnType, TableDef};

use crate::format::evolution::widens;

/// How a table's declaration changed.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Evolution {
    /// Columns added.
    pub added: Vec<String>,
    /// Columns gone upstream, kept (nullable).
    pub dropped: Vec<String>,
    /// Columns whose type widened: (column, from, to).
    pub widened: Vec<(String, ColumnType, ColumnType)>,
    /// Columns whose type changed in a way that would lose values: kept as
    /// they were; (column, kept, upstream).
    pub incompatible: Vec<(String, ColumnType, ColumnType)>,
}

impl Evolution {
    /// The changes that cannot be followed, when there are any.
    pub fn incompatible_text(&self) -> Option<String> {
        let parts: Vec<String> = self
            .incompatible
            .iter()
            .map(|(c, kept, upstream)| {
                format!(
                    "{c} is {} upstream but stays {}",
                    upstream.describe(),
                    kept.describe()
                )
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// One line for logs and the status page.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.added.is_empty() {
            parts.push(format!("added {}", self.added.join(", ")));
        }
        if !self.dropped.is_empty() {
            parts.push(format!("dropped upstream {}", self.dropped.join(", ")));
        }
        for (c, from, to) in &self.widened {
            parts.push(format!(
                "{c} widened {} → {}",
                from.describe(),
                to.describe()
            ));
        }
        for (c, kept, upstream) in &self.incompatible {
            parts.push(format!(
                "{c} is {} upstream but stays {} (values that do not fit are dead letters)",
                upstream.describe(),
                kept.describe()
            ));
        }
        parts.join("; ")
    }
}

/// The declaration of a table after the source showed `discovered`, and what
/// changed; `current` is what the warehouse holds.
pub fn evolve(current: &TableDef, discovered: &TableDef) -> (TableDef, Evolution) {
    let mut def = current.clone();
    let mut evolution = Evolution::default();
    for column in &mut def.columns {
        match discovered.column(&column.name) {
            None => {
                evolution.dropped.push(column.name.clone());
                column.nullable = true;
            }
            Some(new) if new.ty == column.ty => {}
            Some(new) if widens(column.ty, new.ty) => {
                evolution
                    .widened
                    .push((column.name.clone(), column.ty, new.ty));
                column.ty = new.ty;
                column.doc = new.doc.clone();
            }
            Some(new) => {
                evolution
                    .incompatible
                    .push((column.name.clone(), column.ty, new.ty));
            }
        }
    }
    for column in &discovered.columns {
        if current.column(&column.name).is_none() {
            evolution.added.push(column.name.clone());
            let mut added = column.clone();
            added.nullable = true;
            def.columns.push(added);
        }
    }
    (def, evolution)
}

#[cfg(test)]
mod tests {
    use dataflows::catalog::ColumnDef;

    use super::*;

    fn def(columns: &[(&str, ColumnType, bool)]) -> TableDef {
        let columns = columns
            .iter()
            .map(|(name, ty, nullable)| ColumnDef {
                name: name.to_string(),
                ty: *ty,
                nullable: *nullable,
                doc: String::new(),
            })
            .collect();
        TableDef::raw("raw_pg_shop_t", "postgres", vec!["id".into()], columns)
    }

    #[test]
    fn added_dropped_widened_and_incompatible() {
        let dec = ColumnType::Decimal {
            precision: 38,
            scale: 9,
        };
        let current = def(&[
            ("id", ColumnType::Int64, false),
            ("n", ColumnType::Int64, true),
            ("day", ColumnType::Date, false),
            ("label", ColumnType::Text, true),
            ("gone", ColumnType::Text, false),
        ]);
        let upstream = def(&[
            ("id", ColumnType::Int64, false),
            ("n", dec, true),
            ("day", ColumnType::Timestamp, false),
            ("label", ColumnType::Int64, true),
            ("new", ColumnType::Bool, false),
        ]);
        let (next, evolution) = evolve(&current, &upstream);
        assert_eq!(evolution.added, ["new"]);
        assert_eq!(evolution.dropped, ["gone"]);
        assert_eq!(
            evolution.widened,
            [
                ("n".to_string(), ColumnType::Int64, dec),
                ("day".to_string(), ColumnType::Date, ColumnType::Timestamp)
            ]
        );
        assert_eq!(
            evolution.incompatible,
            [("label".to_string(), ColumnType::Text, ColumnType::Int64)]
        );
        let columns: Vec<(&str, ColumnType, bool)> = next
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.ty, c.nullable))
            .collect();
        assert_eq!(
            columns,
            [
                ("id", ColumnType::Int64, false),
                ("n", dec, true),
                ("day", ColumnType::Timestamp, false),
                ("label", ColumnType::Text, true),
                ("gone", ColumnType::Text, true),
                ("new", ColumnType::Bool, true),
            ]
        );
        let (same, nothing) = evolve(&next, &next);
        assert_eq!((same, nothing), (next, Evolution::default()));
    }
}
