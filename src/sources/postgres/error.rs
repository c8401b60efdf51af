//! Errors of the PostgreSQL source and the query tool, each classified as
//! retryable (the connection was lost or the server is restarting) or not
//! (bad SQL, a missing table or column, bad configuration).
//!
//! Messages name the database (the config's `[postgres.NAME]`) and the table,
//! never the connection URL, which may carry a password.

/// A failure of the PostgreSQL source.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The connection string or TLS settings are unusable.
    #[error("postgres.{database}: {detail}")]
    Config {
        /// The database's config name.
        database: String,
        /// What is wrong (never the URL itself).
        detail: String,
    },
    /// Connecting, or the connection broke: retryable.
    #[error("postgres.{database}: {context}: {detail}")]
    Connection {
        /// The database's config name.
        database: String,
        /// What was being done (`connecting`, `reading point_transaction`).
        context: String,
        /// The driver's message.
        detail: String,
    },
    /// PostgreSQL refused a statement.
    #[error("postgres.{database}: {context}: {message} (SQLSTATE {code})")]
    Sql {
        /// The database's config name.
        database: String,
        /// What was being done, with the table.
        context: String,
        /// The SQLSTATE code, e.g. `42P01` (undefined table), `25006` (read-only transaction).
        code: String,
        /// PostgreSQL's message.
        message: String,
        /// Whether the code is one of the transient classes.
        retryable: bool,
    },
    /// A configured table does not fit the source (missing column, unsupported cursor type).
    #[error("postgres.{database}: table {table}: {detail}")]
    Table {
        /// The database's config name.
        database: String,
        /// The table.
        table: String,
        /// What is wrong.
        detail: String,
    },
    /// The table's columns changed upstream under a read (PostgreSQL refused
    /// the statements prepared for the old ones, or a new connection saw new
    /// ones). Transient: the next poll follows the change first, then reads
    /// with the new columns.
    #[error(
        "postgres.{database}: table {table}: its columns changed upstream during the read; read again with the new columns at the next poll"
    )]
    SchemaChanged {
        /// The database's config name.
        database: String,
        /// The table.
        table: String,
    },
    /// Retries ran out; the last error is kept.
    #[error("postgres.{database}: gave up after {attempts} attempts: {last}")]
    Exhausted {
        /// The database's config name.
        database: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: Box<PgError>,
    },
    /// The consumer of the batches went away.
    #[error("postgres.{database}: the consumer of {table} batches stopped")]
    ConsumerGone {
        /// The database's config name.
        database: String,
        /// The table being read.
        table: String,
    },
}

impl PgError {
    /// Whether trying again (after reconnecting) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            PgError::Connection { .. } | PgError::SchemaChanged { .. } => true,
            PgError::Sql { retryable, .. } => *retryable,
            PgError::Config { .. }
            | PgError::Table { .. }
            | PgError::Exhausted { .. }
            | PgError::ConsumerGone { .. } => false,
        }
    }

    /// Whether the failure is one that time may fix: retryable, or retries
    /// that ran out on a retryable error (the server down for a while). A
    /// polling loop tries such a read again at its next poll.
    pub fn is_transient(&self) -> bool {
        match self {
            PgError::Exhausted { last, .. } => last.is_transient(),
            other => other.is_retryable(),
        }
    }

    /// The SQLSTATE code, when PostgreSQL answered with an error.
    pub fn code(&self) -> Option<&str> {
        match self {
            PgError::Sql { code, .. } => Some(code),
            PgError::Exhausted { last, .. } => last.code(),
            _ => None,
        }
    }

    /// Classifies a driver error: server errors by SQLSTATE class, everything
    /// else (closed connection, I/O, timeouts) as a connection error, except
    /// TLS certificate and authentication failures, which retrying cannot fix.
    pub fn from_driver(database: &str, context: &str, e: tokio_postgres::Error) -> PgError {
        if let Some(db) = e.as_db_error() {
            let code = db.code().code().to_string();
            return PgError::Sql {
                database: database.to_string(),
                context: context.to_string(),
                retryable: is_transient_sqlstate(&code),
                message: db.message().to_string(),
                code,
            };
        }
        let detail = error_chain(&e);
        let permanent = is_tls_verification_failure(&e)
            || detail.starts_with("authentication")
            || detail.starts_with("invalid configuration");
        if permanent {
            PgError::Config {
                database: database.to_string(),
                detail: format!("{context}: {detail}"),
            }
        } else {
            PgError::Connection {
                database: database.to_string(),
                context: context.to_string(),
                detail,
            }
        }
    }
}

/// SQLSTATE classes worth a retry: connection exceptions (08), shutdown and
/// restart (57P01-57P03), insufficient resources (53), serialization failures
/// and deadlocks (40001, 40P01).
pub fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(code, "57P01" | "57P02" | "57P03" | "40001" | "40P01")
}

/// Whether `e` is PostgreSQL refusing a prepared statement because its
/// table's columns changed since it was prepared (`cached plan must not
/// change result type`, SQLSTATE 0A000).
pub fn is_stale_plan(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        db.code().code() == "0A000" && db.message().starts_with("cached plan must not change")
    })
}

/// The error and its sources, joined by `: `.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

fn is_tls_verification_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(rustls::Error::InvalidCertificate(_)) = s.downcast_ref::<rustls::Error>() {
            return true;
        }
        let inner = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        if let Some(rustls::Error::InvalidCertificate(_)) = inner {
            return true;
        }
        source = s.source();
    }
    false
}

impl crate::sources::Transient for PgError {
    fn is_transient(&self) -> bool {
        PgError::is_transient(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert!(is_transient_sqlstate("08006"));
        assert!(is_transient_sqlstate("57P01"));
        assert!(is_transient_sqlstate("40001"));
        assert!(!is_transient_sqlstate("42P01"));
        assert!(!is_transient_sqlstate("25006"));
        let sql = |code: &str| PgError::Sql {
            database: "wise".into(),
            context: "reading t".into(),
            code: code.into(),
            message: "m".into(),
            retryable: is_transient_sqlstate(code),
        };
        assert!(sql("57P01").is_retryable());
        assert!(!sql("42703").is_retryable());
        assert_eq!(sql("42703").code(), Some("42703"));
        let conn = PgError::Connection {
            database: "wise".into(),
            context: "connecting".into(),
            detail: "refused".into(),
        };
        assert!(conn.is_retryable());
        let text = PgError::Exhausted {
            database: "wise".into(),
            attempts: 3,
            last: Box::new(conn),
        }
        .to_string();
        assert_eq!(
            text,
            "postgres.wise: gave up after 3 attempts: postgres.wise: connecting: refused"
        );
    }
}
