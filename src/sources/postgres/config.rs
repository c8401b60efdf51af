//! `[postgres.NAME]`: one database, its connection and the tables read from
//! it; and their validation (a `where` filter is parsed as one read-only SQL
//! expression).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigError, Secret};

/// `[postgres.NAME]`: one PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// Connection URL (`postgres://…` or `key=value`); a secret, as it usually
    /// carries a password. `sslmode` and `sslrootcert` are honoured as in libpq.
    pub url: Secret,
    /// Tables read from this database.
    pub tables: Vec<PostgresTable>,
    /// How far behind its cursor each poll starts reading (default 1 h).
    pub lookback: Duration,
    /// How often the tables are polled (default 30 s).
    pub poll_interval: Duration,
    /// Rows per keyset page (default 5000, at most 100000).
    pub page_size: u32,
    /// PEM file of the root certificate(s) that verify the server (TLS); the
    /// URL's `sslrootcert` takes precedence.
    pub ca_file: Option<PathBuf>,
    /// Consecutive failed attempts (connect or query) before a read fails (default 10).
    pub max_attempts: u32,
    /// Timeout of establishing one connection (default 10 s).
    pub connect_timeout: Duration,
}

impl PostgresConfig {
    /// A configuration with defaults for `url` and `tables`.
    pub fn new(url: Secret, tables: Vec<PostgresTable>) -> PostgresConfig {
        PostgresConfig {
            url,
            tables,
            lookback: Duration::from_secs(3600),
            poll_interval: Duration::from_secs(30),
            page_size: 5000,
            ca_file: None,
            max_attempts: 10,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// `[[postgres.NAME.tables]]`: one table, its key and its cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresTable {
    /// Table name, optionally schema-qualified.
    pub name: String,
    /// Key columns.
    pub key: Vec<String>,
    /// Monotonic-ish change column. `None`: `updated_at` when the table has
    /// it, else the table has no cursor and every poll reads a snapshot of it
    /// (which also finds its deletes).
    pub cursor: Option<String>,
    /// The columns to read (the key and cursor are always read); `None`: all.
    pub columns: Option<Vec<String>>,
    /// A filter on the rows read (`where` in the config): a SQL expression.
    pub filter: Option<String>,
}

impl PostgresTable {
    /// Table `name` keyed by `key`, every column, the default cursor, no filter.
    pub fn new(name: &str, key: &[&str]) -> PostgresTable {
        PostgresTable {
            name: name.to_string(),
            key: key.iter().map(|k| k.to_string()).collect(),
            cursor: None,
            columns: None,
            filter: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPostgres {
    url: Secret,
    #[serde(default)]
    tables: Vec<RawPostgresTable>,
    #[serde(default, with = "humantime_serde")]
    lookback: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    poll_interval: Option<Duration>,
    page_size: Option<u32>,
    ca_file: Option<PathBuf>,
    max_attempts: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    connect_timeout: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPostgresTable {
    name: String,
    key: Vec<String>,
    cursor: Option<String>,
    columns: Option<Vec<String>>,
    #[serde(rename = "where")]
    filter: Option<String>,
}

impl RawPostgres {
    /// Checks the section `[postgres.NAME]` and fills in the defaults.
    pub(crate) fn validate(
        self,
        name: &str,
        err: &dyn Fn(&str, &str) -> ConfigError,
    ) -> Result<PostgresConfig, ConfigError> {
        let key = format!("postgres.{name}");
        let url = self.url.expose();
        if !(url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.contains("host="))
        {
            return Err(err(
                &format!("{key}.url"),
                "must be a postgres:// or postgresql:// URL or a key=value connection string",
            ));
        }
        let page_size = self.page_size.unwrap_or(5000);
        if !(1..=100_000).contains(&page_size) {
            return Err(err(
                &format!("{key}.page_size"),
                &format!("must be between 1 and 100000, got {page_size}"),
            ));
        }
        let max_attempts = self.max_attempts.unwrap_or(10);
        if max_attempts == 0 {
            return Err(err(&format!("{key}.max_attempts"), "must be at least 1"));
        }
        let positive = |value, default, field: &str| {
            crate::config::positive(
                value,
                Duration::from_secs(default),
                &format!("{key}.{field}"),
                err,
            )
        };
        let poll_interval = positive(self.poll_interval, 30, "poll_interval")?;
        let connect_timeout = positive(self.connect_timeout, 10, "connect_timeout")?;
        if self
            .ca_file
            .as_ref()
            .is_some_and(|f| f.as_os_str().is_empty())
        {
            return Err(err(&format!("{key}.ca_file"), "must not be empty"));
        }
        let mut tables = Vec::new();
        for (i, t) in self.tables.into_iter().enumerate() {
            let tkey = format!("{key}.tables[{i}]");
            if !is_sql_name(&t.name) {
                return Err(err(
                    &format!("{tkey}.name"),
                    "must be a table name like `point_transaction` or `schema.table`",
                ));
            }
            if t.key.is_empty() {
                return Err(err(&format!("{tkey}.key"), "must name at least one column"));
            }
            if tables.iter().any(|p: &PostgresTable| p.name == t.name) {
                return Err(err(
                    &format!("{tkey}.name"),
                    &format!("table {:?} is listed twice", t.name),
                ));
            }
            for column in t
                .key
                .iter()
                .chain(&t.cursor)
                .chain(t.columns.iter().flatten())
            {
                if !is_sql_name(column) || column.contains('.') {
                    return Err(err(&tkey, &format!("{column:?} is not a column name")));
                }
            }
            if t.columns.as_ref().is_some_and(Vec::is_empty) {
                return Err(err(
                    &format!("{tkey}.columns"),
                    "must name at least one column",
                ));
            }
            if let Some(filter) = &t.filter {
                check_filter(filter).map_err(|why| err(&format!("{tkey}.where"), &why))?;
            }
            tables.push(PostgresTable {
                name: t.name,
                key: t.key,
                cursor: t.cursor,
                columns: t.columns,
                filter: t.filter,
            });
        }
        Ok(PostgresConfig {
            url: self.url,
            tables,
            lookback: self.lookback.unwrap_or(Duration::from_secs(3600)),
            poll_interval,
            page_size,
            ca_file: self.ca_file,
            max_attempts,
            connect_timeout,
        })
    }
}

/// Accepts a `where` filter only if it is one SQL expression that keeps a
/// `SELECT` read-only (no statement break, no subquery that writes).
fn check_filter(filter: &str) -> Result<(), String> {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;
    use sqlparser::tokenizer::Token;
    let dialect = PostgreSqlDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(filter)
        .map_err(|e| format!("does not parse as a SQL expression: {e}"))?;
    parser
        .parse_expr()
        .map_err(|e| format!("does not parse as a SQL expression: {e}"))?;
    if parser.peek_token().token != Token::EOF {
        return Err(format!(
            "must be one SQL expression; unexpected {} after it",
            parser.peek_token().token
        ));
    }
    super::query::check_read_only(&format!("SELECT 1 WHERE ({filter})"))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn is_sql_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').count() <= 2
        && name.split('.').all(|part| {
            let mut bytes = part.bytes();
            matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
                && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}
