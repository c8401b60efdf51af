//! Errors of the BigQuery sink, each naming what failed (table, epochs, job
//! id, request) and whether trying again may help.

/// A failure of the BigQuery sink.
#[derive(Clone, Debug, thiserror::Error)]
pub enum BigQueryError {
    /// The configuration cannot work (e.g. the private key does not parse).
    #[error("bigquery: config: {0}")]
    Config(String),
    /// The spool (the epochs kept in the state directory until flushed) failed.
    #[error("bigquery: spool {path}: {detail}")]
    Spool {
        /// The file or directory.
        path: String,
        /// The cause.
        detail: String,
    },
    /// A request was refused or could not be sent.
    #[error("bigquery: {op}: {}{message}", status.map(|s| format!("HTTP {s}{}: ", reason.as_deref().map(|r| format!(" {r}")).unwrap_or_default())).unwrap_or_default())]
    Request {
        /// The operation, e.g. `jobs.insert govflow_..._load_0`.
        op: String,
        /// The HTTP status, when there was an answer.
        status: Option<u16>,
        /// BigQuery's error reason (`rateLimitExceeded`, `notFound`, ...).
        reason: Option<String>,
        /// What the server (or the transport) said.
        message: String,
        /// Whether the same request may succeed later.
        retryable: bool,
    },
    /// A job finished with an error.
    #[error("bigquery: job {job_id}: {}{message}", reason.as_deref().map(|r| format!("{r}: ")).unwrap_or_default())]
    Job {
        /// The job id.
        job_id: String,
        /// BigQuery's error reason.
        reason: Option<String>,
        /// BigQuery's message.
        message: String,
        /// Whether a new attempt of the job may succeed.
        retryable: bool,
    },
    /// A table's schema in BigQuery does not fit govflow's.
    #[error("bigquery: table {table}: schema: {detail}")]
    Schema {
        /// The table.
        table: String,
        /// What does not fit.
        detail: String,
    },
    /// The OAuth token exchange failed.
    #[error("bigquery: auth: {detail}")]
    Auth {
        /// What failed (never the key or a token).
        detail: String,
        /// Whether trying again may help.
        retryable: bool,
    },
    /// Flushing one table's epochs failed; they stay spooled for a replay.
    #[error("bigquery: table {table}, epochs {first}..={last}: {source}")]
    Flush {
        /// The table.
        table: String,
        /// First epoch of the flush.
        first: u64,
        /// Last epoch of the flush.
        last: u64,
        /// The cause.
        source: Box<BigQueryError>,
    },
}

/// BigQuery error reasons worth trying again.
const RETRYABLE_REASONS: &[&str] = &[
    "backendError",
    "internalError",
    "rateLimitExceeded",
    "jobRateLimitExceeded",
    "jobBackendError",
    "jobInternalError",
    "tableUnavailable",
];

impl BigQueryError {
    /// Whether the same work may succeed if tried again later (transport
    /// errors, 5xx, rate limits); schema, permission and invalid-request
    /// errors are permanent.
    pub fn is_retryable(&self) -> bool {
        match self {
            BigQueryError::Request { retryable, .. }
            | BigQueryError::Job { retryable, .. }
            | BigQueryError::Auth { retryable, .. } => *retryable,
            BigQueryError::Flush { source, .. } => source.is_retryable(),
            BigQueryError::Spool { .. } => true,
            BigQueryError::Config(_) | BigQueryError::Schema { .. } => false,
        }
    }

    /// BigQuery's reason, when it gave one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            BigQueryError::Request { reason, .. } | BigQueryError::Job { reason, .. } => {
                reason.as_deref()
            }
            BigQueryError::Flush { source, .. } => source.reason(),
            _ => None,
        }
    }
}

/// Whether an answer with this status and reason is worth trying again.
pub(crate) fn retryable_answer(status: u16, reason: Option<&str>, message: &str) -> bool {
    if let Some(r) = reason
        && RETRYABLE_REASONS.contains(&r)
    {
        return true;
    }
    if is_commit_conflict(message) {
        return true;
    }
    status == 429 || status == 408 || status >= 500
}

/// Whether a job's error result is worth a new attempt.
pub(crate) fn retryable_job(reason: Option<&str>, message: &str) -> bool {
    reason.is_some_and(|r| RETRYABLE_REASONS.contains(&r)) || is_commit_conflict(message)
}

/// A commit that lost to a concurrent one: BigQuery aborts concurrent DML on
/// a table ("... due to concurrent update") rather than queueing it, and the
/// emulator's DuckLake catalog reports "Failed to commit DuckLake transaction"
/// when two commits race. Both succeed when tried again.
fn is_commit_conflict(message: &str) -> bool {
    message.contains("concurrent update")
        || message.contains("Failed to commit DuckLake transaction")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_and_server_errors_are_retried_schema_errors_are_not() {
        assert!(retryable_answer(403, Some("rateLimitExceeded"), ""));
        assert!(retryable_answer(400, Some("jobRateLimitExceeded"), ""));
        assert!(retryable_answer(503, None, ""));
        assert!(retryable_answer(429, None, ""));
        assert!(!retryable_answer(403, Some("accessDenied"), ""));
        assert!(!retryable_answer(
            400,
            Some("invalid"),
            "Provided Schema does not match"
        ));
        assert!(!retryable_answer(404, Some("notFound"), ""));
        assert!(retryable_job(Some("backendError"), ""));
        assert!(!retryable_job(Some("invalidQuery"), "Unrecognized name"));
        assert!(retryable_answer(
            400,
            Some("invalidQuery"),
            "Failed to commit: Failed to commit DuckLake transaction."
        ));
        assert!(retryable_job(
            Some("invalidQuery"),
            "Transaction is aborted due to concurrent update against table"
        ));
        let e = BigQueryError::Flush {
            table: "fct_order".into(),
            first: 3,
            last: 7,
            source: Box::new(BigQueryError::Job {
                job_id: "j".into(),
                reason: Some("invalid".into()),
                message: "bad".into(),
                retryable: false,
            }),
        };
        assert_eq!(
            e.to_string(),
            "bigquery: table fct_order, epochs 3..=7: bigquery: job j: invalid: bad"
        );
        assert!(!e.is_retryable());
    }
}
