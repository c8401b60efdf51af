//! `govflow query --db NAME "SQL"`: ad-hoc read-only SQL against a configured
//! database (what the old platform's `execute_query_df` did, without writes).
//!
//! Two independent guards:
//! 1. [`check_read_only`] parses the text with sqlparser's PostgreSQL dialect
//!    and accepts exactly one statement that is a query (`SELECT`, `VALUES`,
//!    `WITH` whose CTEs are all queries, set operations of those)
//!    without a locking clause (`FOR UPDATE`/`FOR SHARE`, at any depth) or
//!    `SELECT … INTO`; or `EXPLAIN` of such a query without `ANALYZE`; or
//!    `SHOW`. Everything else is rejected with an error naming what was found.
//! 2. [`execute`] runs the statement inside `BEGIN READ ONLY` on a connection
//!    whose `default_transaction_read_only` is `on`, through the extended
//!    protocol (one statement per call, by protocol), so PostgreSQL itself
//!    refuses any write (SQLSTATE 25006) should the parser ever be fooled.

use std::ops::ControlFlow;

use sqlparser::ast::{Query, SetExpr, Statement, Visit, Visitor};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use tokio_postgres::Client;

use super::error::PgError;
use super::value::{Decoder, PgValue, RawBytes};
use super::{ConnectSpec, PgColumn};
use crate::sources::postgres::PostgresConfig;

/// Why a statement was refused before reaching the database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "only a single read-only statement is accepted (SELECT, VALUES, WITH … SELECT, EXPLAIN without ANALYZE, SHOW): {found}"
)]
pub struct QueryRejected {
    /// What was found instead.
    pub found: String,
}

/// A failure of the query tool.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The statement is not a single read-only statement.
    #[error(transparent)]
    Rejected(#[from] QueryRejected),
    /// The database refused it or could not be reached.
    #[error(transparent)]
    Pg(#[from] PgError),
}

/// What kind of accepted statement it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// A query returning rows.
    Query,
    /// `EXPLAIN` of a query.
    Explain,
    /// `SHOW`.
    Show,
}

/// Parses `sql` and accepts it only if it is one read-only statement.
pub fn check_read_only(sql: &str) -> Result<Accepted, QueryRejected> {
    let reject = |found: String| QueryRejected { found };
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql)
        .map_err(|e| reject(format!("the text does not parse as PostgreSQL: {e}")))?;
    let statement = match statements.as_slice() {
        [one] => one,
        [] => return Err(reject("no statement".into())),
        many => {
            return Err(reject(format!(
                "{} statements ({})",
                many.len(),
                many.iter().map(describe).collect::<Vec<_>>().join("; ")
            )));
        }
    };
    match statement {
        Statement::Query(q) => check_query(q).map(|()| Accepted::Query),
        Statement::Explain {
            analyze,
            statement,
            options,
            ..
        } => {
            let analyze_option = options.iter().flatten().any(|o| {
                o.name.value.eq_ignore_ascii_case("analyze")
                    && !o.arg.as_ref().is_some_and(|a| {
                        matches!(
                            a.to_string().to_ascii_lowercase().as_str(),
                            "false" | "off" | "0"
                        )
                    })
            });
            if *analyze || analyze_option {
                return Err(reject("EXPLAIN ANALYZE (it executes the statement)".into()));
            }
            match statement.as_ref() {
                Statement::Query(q) => check_query(q).map(|()| Accepted::Explain),
                other => Err(reject(format!("EXPLAIN of {}", describe(other)))),
            }
        }
        Statement::ShowVariable { .. } => Ok(Accepted::Show),
        other => Err(reject(describe(other))),
    }
}

fn check_query(query: &Query) -> Result<(), QueryRejected> {
    struct Check(Option<String>);
    impl Visitor for Check {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            if let Some(lock) = q.locks.first() {
                self.0 = Some(format!("a locking clause ({lock})"));
                return ControlFlow::Break(());
            }
            if q.for_clause.is_some() {
                self.0 = Some("a FOR clause".into());
                return ControlFlow::Break(());
            }
            if let Some(found) = modifying(&q.body) {
                self.0 = Some(found);
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
            if !matches!(s, Statement::Query(_)) {
                self.0 = Some(describe(s));
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut check = Check(None);
    let _ = query.visit(&mut check);
    match check.0 {
        Some(found) => Err(QueryRejected { found }),
        None => Ok(()),
    }
}

/// A data-modifying part of a query body, if any.
fn modifying(body: &SetExpr) -> Option<String> {
    match body {
        SetExpr::Select(s) => s
            .into
            .as_ref()
            .map(|_| "SELECT … INTO (creates a table)".into()),
        SetExpr::Query(q) => modifying(&q.body),
        SetExpr::SetOperation { left, right, .. } => modifying(left).or_else(|| modifying(right)),
        SetExpr::Values(_) | SetExpr::Table(_) => None,
        SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) | SetExpr::Merge(s) => {
            Some(format!("a data-modifying {}", describe(s)))
        }
    }
}

/// A statement's kind in words: its leading keywords (`INSERT`, `DROP TABLE`).
fn describe(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text
        .split_whitespace()
        .take_while(|w| w.chars().all(|c| c.is_ascii_alphabetic() || c == '_'))
        .take(2)
        .collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    match upper.first().map(String::as_str) {
        Some(
            "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "COPY" | "CALL" | "TRUNCATE" | "GRANT"
            | "REVOKE" | "SET" | "BEGIN" | "COMMIT" | "ROLLBACK" | "VACUUM" | "ANALYZE",
        ) => {
            format!("{} statement", upper[0])
        }
        Some(_) => format!("{} statement", upper.join(" ")),
        None => "a statement that is not a query".into(),
    }
}

/// The rows of a query.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult {
    /// Result columns.
    pub columns: Vec<PgColumn>,
    /// Rows, values in column order.
    pub rows: Vec<Vec<PgValue>>,
}

/// Checks `sql`, connects to database `name` and runs it read-only.
pub async fn run(
    name: &str,
    config: &PostgresConfig,
    sql: &str,
) -> Result<QueryResult, QueryError> {
    let accepted = check_read_only(sql)?;
    let spec = ConnectSpec::parse(
        name,
        config.url.expose(),
        config.ca_file.as_deref(),
        config.connect_timeout,
    )?;
    let client = spec.connect().await?;
    Ok(execute(&client, name, sql, accepted == Accepted::Query).await?)
}

/// Runs one statement in a `READ ONLY` transaction, without checking it: the
/// database's refusal is the guard here. `wrap_casts` lets columns of types
/// without a binary decoder be read through `::text` by wrapping the query.
pub async fn execute(
    client: &Client,
    database: &str,
    sql: &str,
    wrap_casts: bool,
) -> Result<QueryResult, PgError> {
    let driver = |context: &str| {
        let context = context.to_string();
        move |e| PgError::from_driver(database, &context, e)
    };
    client
        .batch_execute("BEGIN READ ONLY")
        .await
        .map_err(driver("starting a read-only transaction"))?;
    let result = async {
        let mut statement = client
            .prepare(sql)
            .await
            .map_err(driver("preparing the query"))?;
        let columns: Vec<PgColumn> = statement
            .columns()
            .iter()
            .map(|c| PgColumn {
                name: c.name().to_string(),
                pg_type: c.type_().name().to_string(),
            })
            .collect();
        let mut decoders: Vec<Option<Decoder>> = statement
            .columns()
            .iter()
            .map(|c| Decoder::for_type(c.type_()))
            .collect();
        if wrap_casts && decoders.iter().any(Option::is_none) {
            // Read the other types as text: SELECT c1, c2::text … FROM (sql) q(c1, c2, …).
            let body = sql.trim_end().trim_end_matches(';');
            let select: Vec<String> = decoders
                .iter()
                .enumerate()
                .map(|(i, d)| match d {
                    Some(_) => format!("c{i}"),
                    None => format!("c{i}::text"),
                })
                .collect();
            let names: Vec<String> = (0..decoders.len()).map(|i| format!("c{i}")).collect();
            let wrapped = format!(
                "SELECT {} FROM (\n{body}\n) AS govflow_query({})",
                select.join(", "),
                names.join(", ")
            );
            statement = client
                .prepare(&wrapped)
                .await
                .map_err(driver("preparing the query"))?;
            decoders = statement
                .columns()
                .iter()
                .map(|c| Decoder::for_type(c.type_()))
                .collect();
        }
        let rows = client
            .query(&statement, &[])
            .await
            .map_err(driver("running the query"))?;
        let mut out = Vec::with_capacity(rows.len());
        for (r, row) in rows.iter().enumerate() {
            let mut values = Vec::with_capacity(decoders.len());
            for (i, d) in decoders.iter().enumerate() {
                let raw = row
                    .try_get::<_, Option<RawBytes>>(i)
                    .map_err(driver("reading the result"))?
                    .map(|b| b.0);
                let value = match d {
                    Some(d) => d.decode(raw),
                    None => Err(format!("type {} has no decoder", columns[i].pg_type)),
                };
                values.push(value.map_err(|reason| PgError::Table {
                    database: database.to_string(),
                    table: "query result".into(),
                    detail: format!("row {}, column {}: {reason}", r + 1, columns[i].name),
                })?);
            }
            out.push(values);
        }
        Ok(QueryResult { columns, rows: out })
    }
    .await;
    // Read-only: COMMIT and ROLLBACK are the same; ROLLBACK also ends a failed transaction.
    let end = client.batch_execute("ROLLBACK").await;
    let result = result?;
    end.map_err(driver("ending the transaction"))?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_statements_are_accepted() {
        for sql in [
            "SELECT 1",
            "select * from point_transaction where id = 1;",
            "  -- a comment\nSELECT a FROM t /* block */ ORDER BY a LIMIT 5",
            "VALUES (1, 'a'), (2, 'b')",
            "WITH x AS (SELECT 1 AS a) SELECT a FROM x UNION ALL SELECT 2",
            "SELECT * FROM (SELECT id FROM t) s JOIN u ON u.id = s.id",
            "SELECT 'DELETE FROM t; DROP TABLE t' AS text",
        ] {
            assert_eq!(check_read_only(sql), Ok(Accepted::Query), "{sql}");
        }
        assert_eq!(check_read_only("EXPLAIN SELECT 1"), Ok(Accepted::Explain));
        assert_eq!(check_read_only("SHOW search_path"), Ok(Accepted::Show));
    }

    #[test]
    fn writes_and_locks_are_rejected_with_what_was_found() {
        let cases = [
            ("INSERT INTO t VALUES (1)", "INSERT"),
            ("update t set a = 1", "UPDATE"),
            ("DELETE FROM t", "DELETE"),
            ("DROP TABLE t", "DROP TABLE"),
            ("CREATE TABLE x (a int)", "CREATE TABLE"),
            ("TRUNCATE t", "TRUNCATE"),
            ("SELECT 1; DELETE FROM t", "2 statements"),
            ("SELECT 1; SELECT 2", "2 statements"),
            (
                "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
                "DELETE",
            ),
            (
                "WITH i AS (INSERT INTO t VALUES (1) RETURNING a) SELECT a FROM i",
                "INSERT",
            ),
            ("SELECT * FROM t FOR UPDATE", "locking clause"),
            ("select * from t for share", "locking clause"),
            (
                "SELECT * FROM (SELECT * FROM t FOR UPDATE) s",
                "locking clause",
            ),
            ("SELECT * INTO newtable FROM t", "INTO"),
            ("COPY t TO STDOUT", "COPY"),
            ("COPY t FROM STDIN", "COPY"),
            ("CALL p()", "CALL"),
            ("EXPLAIN ANALYZE DELETE FROM t", "ANALYZE"),
            ("EXPLAIN (ANALYZE) SELECT 1", "ANALYZE"),
            ("EXPLAIN DELETE FROM t", "DELETE"),
            ("SET default_transaction_read_only = off", "SET"),
            ("BEGIN", "BEGIN"),
            ("", "no statement"),
            ("DO $$ BEGIN DELETE FROM t; END $$", ""),
        ];
        for (sql, found) in cases {
            let e = check_read_only(sql).expect_err(sql);
            assert!(e.found.contains(found), "{sql}: {e}");
            assert!(
                e.to_string()
                    .starts_with("only a single read-only statement"),
                "{e}"
            );
        }
    }
}
