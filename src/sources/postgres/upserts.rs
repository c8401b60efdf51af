//! From PostgreSQL rows to the dataflow's upserts: which configured table
//! feeds which model, and the typed columns each model reads.
//!
//! A table feeds a model by its unqualified name (`point_transaction`,
//! `quotation`; `wise.point_transaction` works too); the columns a model needs
//! are looked up by name, so a table may have more. The expected definitions
//! are in docs/postgres-tables.md. A row whose columns do not fit (a missing
//! column, a wrong type, a total beyond `numeric(18,4)`) becomes a dead letter
//! naming the database, table, key and column; the rest of the page is kept.

use dataflows::Table;
use dataflows::records::Upsert;
use dataflows::rows::raw_pg_point_transaction::RawPgPointTransaction;
use dataflows::rows::raw_pg_quotation::RawPgQuotation;
use dataflows::scalar::Money;

use super::{PgBatch, PgColumn, PgDeadLetter, PgRow, PgValue};

/// A model fed from PostgreSQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PgModel {
    /// `point_transaction` → `raw_pg_point_transaction`.
    PointTransaction,
    /// `quotation` → `raw_pg_quotation`.
    Quotation,
}

impl PgModel {
    /// Every model, with the table name that feeds it.
    pub const ALL: [(&'static str, PgModel); 2] = [
        ("point_transaction", PgModel::PointTransaction),
        ("quotation", PgModel::Quotation),
    ];

    /// The model a configured table feeds, by its unqualified name.
    pub fn for_table(name: &str) -> Option<PgModel> {
        let bare = name.rsplit('.').next().unwrap_or(name);
        Self::ALL
            .iter()
            .find(|(table, _)| *table == bare)
            .map(|(_, model)| *model)
    }

    /// The raw table the model maintains.
    pub fn raw_table(self) -> Table {
        match self {
            PgModel::PointTransaction => Table::RawPgPointTransaction,
            PgModel::Quotation => Table::RawPgQuotation,
        }
    }
}

/// The upserts of a page of `model`'s table, and the rows that do not fit.
pub fn upserts(model: PgModel, batch: &PgBatch) -> (Vec<Upsert>, Vec<PgDeadLetter>) {
    let mut upserts = Vec::with_capacity(batch.rows.len());
    let mut dead = Vec::new();
    for row in &batch.rows {
        let columns = Columns {
            names: &batch.columns,
            row,
        };
        let converted = match model {
            PgModel::PointTransaction => {
                point_transaction(&columns).map(|r| Upsert::PointTransaction(r.id, Some(r)))
            }
            PgModel::Quotation => quotation(&columns).map(|r| Upsert::Quotation(r.id, Some(r))),
        };
        match converted {
            Ok(upsert) => upserts.push(upsert),
            Err((column, reason)) => dead.push(PgDeadLetter {
                database: batch.database.clone(),
                table: batch.table.clone(),
                key: key_text(row),
                column: Some(column.to_string()),
                reason,
            }),
        }
    }
    (upserts, dead)
}

/// The key as dead letters show it (`id=4`), shortened.
fn key_text(row: &PgRow) -> String {
    let text = match row.key.as_slice() {
        [PgValue::Int(id)] => format!("id={id}"),
        key => key
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    };
    text.replace('\n', " ").chars().take(200).collect()
}

/// A row's values by column name.
struct Columns<'a> {
    names: &'a [PgColumn],
    row: &'a PgRow,
}

type Field<T> = Result<T, (&'static str, String)>;

impl Columns<'_> {
    fn get(&self, name: &'static str) -> Field<&PgValue> {
        self.names
            .iter()
            .position(|c| c.name == name)
            .and_then(|i| self.row.values.get(i))
            .ok_or((name, format!("the table has no column {name}")))
    }

    fn int(&self, name: &'static str) -> Field<i64> {
        match self.get(name)? {
            PgValue::Int(v) => Ok(*v),
            PgValue::Null => Err((name, "is NULL".into())),
            other => Err((name, format!("expected an integer, got {}", kind(other)))),
        }
    }

    fn text(&self, name: &'static str) -> Field<String> {
        match self.get(name)? {
            PgValue::Text(v) => Ok(v.clone()),
            PgValue::Null => Err((name, "is NULL".into())),
            other => Err((name, format!("expected text, got {}", kind(other)))),
        }
    }

    fn timestamp(&self, name: &'static str) -> Field<i64> {
        match self.get(name)? {
            PgValue::Timestamp(v) => Ok(*v),
            PgValue::Null => Err((name, "is NULL".into())),
            other => Err((name, format!("expected a timestamp, got {}", kind(other)))),
        }
    }

    fn money(&self, name: &'static str) -> Field<Money> {
        let value = match self.get(name)? {
            PgValue::Numeric(d) => d
                .rescale(Money::SCALE as u16)
                .and_then(|d| i64::try_from(d.mantissa).ok()),
            PgValue::Int(v) => v.checked_mul(10_000),
            PgValue::Null => return Err((name, "is NULL".into())),
            other => {
                return Err((name, format!("expected a numeric, got {}", kind(other))));
            }
        };
        value.map(Money).ok_or((
            name,
            "does not fit numeric(18,4) (more than 4 decimals or too large)".into(),
        ))
    }
}

fn kind(value: &PgValue) -> &'static str {
    match value {
        PgValue::Null => "NULL",
        PgValue::Bool(_) => "a boolean",
        PgValue::Int(_) => "an integer",
        PgValue::Float(_) => "a float",
        PgValue::Numeric(_) => "a numeric",
        PgValue::Text(_) => "text",
        PgValue::Bytes(_) => "bytes",
        PgValue::Timestamp(_) => "a timestamp",
        PgValue::Date(_) => "a date",
        PgValue::Json(_) => "json",
    }
}

fn point_transaction(c: &Columns) -> Field<RawPgPointTransaction> {
    Ok(RawPgPointTransaction {
        id: c.int("id")?,
        customer_id: c.int("customer_id")?,
        points: c.int("points")?,
        reason: c.text("reason")?,
        created_at: c.timestamp("created_at")?,
        updated_at: c.timestamp("updated_at")?,
    })
}

fn quotation(c: &Columns) -> Field<RawPgQuotation> {
    Ok(RawPgQuotation {
        id: c.int("id")?,
        customer_email: c.text("customer_email")?,
        status: c.text("status")?,
        total: c.money("total")?,
        currency_code: c.text("currency_code")?,
        created_at: c.timestamp("created_at")?,
        updated_at: c.timestamp("updated_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::postgres::Decimal;

    fn batch(columns: &[&str], rows: Vec<Vec<PgValue>>) -> PgBatch {
        PgBatch {
            database: "commerce".into(),
            table: "quotation".into(),
            columns: columns
                .iter()
                .map(|n| PgColumn {
                    name: n.to_string(),
                    pg_type: String::new(),
                })
                .collect::<Vec<_>>()
                .into(),
            rows: rows
                .into_iter()
                .map(|values| PgRow {
                    key: vec![values[0].clone()],
                    values,
                })
                .collect(),
            dead_letters: Vec::new(),
        }
    }

    #[test]
    fn tables_feed_models_by_name() {
        assert_eq!(
            PgModel::for_table("wise.point_transaction"),
            Some(PgModel::PointTransaction)
        );
        assert_eq!(PgModel::for_table("quotation"), Some(PgModel::Quotation));
        assert_eq!(PgModel::for_table("points"), None);
        assert_eq!(PgModel::Quotation.raw_table().name(), "raw_pg_quotation");
    }

    #[test]
    fn rows_become_upserts_and_misfits_dead_letters() {
        let columns = [
            "id",
            "customer_email",
            "status",
            "total",
            "currency_code",
            "created_at",
            "updated_at",
            "extra",
        ];
        let row = |id: i64, total: PgValue, email: PgValue| {
            vec![
                PgValue::Int(id),
                email,
                PgValue::Text("sent".into()),
                total,
                PgValue::Text("KRW".into()),
                PgValue::Timestamp(1),
                PgValue::Timestamp(2),
                PgValue::Bool(true),
            ]
        };
        let money = |mantissa, scale| PgValue::Numeric(Decimal { mantissa, scale });
        let b = batch(
            &columns,
            vec![
                row(1, money(12_345, 2), PgValue::Text("A@x".into())),
                row(2, money(1, 5), PgValue::Text("b@x".into())),
                row(3, money(10i128.pow(20), 0), PgValue::Text("c@x".into())),
                row(4, money(5, 0), PgValue::Null),
            ],
        );
        let (ups, dead) = upserts(PgModel::Quotation, &b);
        assert_eq!(
            ups,
            vec![Upsert::Quotation(
                1,
                Some(RawPgQuotation {
                    id: 1,
                    customer_email: "A@x".into(),
                    status: "sent".into(),
                    total: Money(1_234_500),
                    currency_code: "KRW".into(),
                    created_at: 1,
                    updated_at: 2,
                })
            )]
        );
        let got: Vec<(&str, Option<&str>)> = dead
            .iter()
            .map(|d| (d.key.as_str(), d.column.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("id=2", Some("total")),
                ("id=3", Some("total")),
                ("id=4", Some("customer_email"))
            ]
        );
        assert!(
            dead.iter()
                .all(|d| d.database == "commerce" && d.table == "quotation")
        );

        let missing = batch(
            &["id", "customer_id"],
            vec![vec![PgValue::Int(9), PgValue::Int(1)]],
        );
        let (ups, dead) = upserts(PgModel::PointTransaction, &missing);
        assert!(ups.is_empty());
        assert_eq!(dead[0].column.as_deref(), Some("points"));
        assert!(
            dead[0].reason.contains("no column points"),
            "{}",
            dead[0].reason
        );
    }
}
