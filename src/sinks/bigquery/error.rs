//! Errors of the BigQuery sink, each naming what failed (table, epochs, job
//! id, request) and whether trying again may help.

use gcp_bigquery_client::error::BQError;

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

    /// The HTTP status of a refused request.
    pub fn status(&self) -> Option<u16> {
        match self {
            BigQueryError::Request { status, .. } => *status,
            _ => None,
        }
    }

    /// The error of the `gcp-bigquery-client` call `op`, classified: an
    /// answer by its status and reason (429, 5xx and rate limits retryable,
    /// other 4xx not); a transport failure, or an answer the crate could not
    /// read (a proxy's HTML 502, say: the crate drops its status), retryable;
    /// a token error of govflow's chain as it was raised (see
    /// [`BigQueryError::into_bq`]).
    pub(crate) fn from_bq(op: &str, error: BQError) -> BigQueryError {
        let request = |status, reason, message, retryable| BigQueryError::Request {
            op: op.to_string(),
            status,
            reason,
            message,
            retryable,
        };
        match error {
            BQError::ResponseError { error } => {
                let answer = error.error;
                let status = u16::try_from(answer.code).ok();
                let reason = answer.errors.iter().find_map(|e| e.get("reason").cloned());
                let retryable =
                    retryable_answer(status.unwrap_or(500), reason.as_deref(), &answer.message);
                request(status, reason, answer.message, retryable)
            }
            BQError::RequestError(e) => {
                let status = e.status().map(|s| s.as_u16());
                // A request that could not even be built is not sent again.
                let retryable =
                    !e.is_builder() && status.is_none_or(|s| retryable_answer(s, None, ""));
                let what = if e.is_decode() {
                    "unreadable answer: "
                } else {
                    ""
                };
                request(
                    status,
                    None,
                    format!("{what}{}", chain(&e.without_url())),
                    retryable,
                )
            }
            BQError::InvalidServiceAccountAuthenticator(e) => {
                match e.get_ref().and_then(|e| e.downcast_ref::<BigQueryError>()) {
                    Some(ours) => ours.clone(),
                    None => request(None, None, chain(&e), false),
                }
            }
            other => request(None, None, chain(&other), false),
        }
    }

    /// This error (of govflow's token source) as the crate's, for its
    /// `Authenticator`; [`BigQueryError::from_bq`] takes it back out whole.
    pub(crate) fn into_bq(self) -> BQError {
        BQError::InvalidServiceAccountAuthenticator(std::io::Error::other(self))
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

/// An error and its sources, `: `-separated.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = e.source();
    }
    text
}

/// A commit that lost to a concurrent one: BigQuery aborts concurrent DML on
/// a table ("... due to concurrent update") rather than queueing it, and the
/// emulator's DuckLake catalog reports "Failed to commit DuckLake transaction"
/// when two commits race, or DuckDB's own write-write conflict ("Conflict on
/// update!") when two tables' MERGEs update its catalog at once. All succeed
/// when tried again.
fn is_commit_conflict(message: &str) -> bool {
    message.contains("concurrent update")
        || message.contains("Failed to commit DuckLake transaction")
        || message.contains("Conflict on update")
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
        assert!(retryable_answer(
            400,
            Some("invalidQuery"),
            "Conflict on update!"
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

    fn answer(code: i64, reason: &str, message: &str) -> BQError {
        let body = serde_json::json!({"error": {"code": code, "message": message, "errors": [{"reason": reason, "message": message, "domain": "global"}]}});
        BQError::ResponseError {
            error: serde_json::from_value(body).unwrap(),
        }
    }

    #[test]
    fn the_crate_errors_are_classified_like_answers() {
        let e = BigQueryError::from_bq(
            "jobs.insert j",
            answer(403, "jobRateLimitExceeded", "Exceeded rate limits"),
        );
        assert!(e.is_retryable());
        assert_eq!(
            (e.status(), e.reason()),
            (Some(403), Some("jobRateLimitExceeded"))
        );
        assert_eq!(
            e.to_string(),
            "bigquery: jobs.insert j: HTTP 403 jobRateLimitExceeded: Exceeded rate limits"
        );
        let e = BigQueryError::from_bq(
            "jobs.insert j",
            answer(500, "backendError", "Backend error"),
        );
        assert!(e.is_retryable());
        let e = BigQueryError::from_bq(
            "tables.get d.t",
            answer(404, "notFound", "Not found: Table"),
        );
        assert!(!e.is_retryable());
        assert_eq!(e.status(), Some(404));
        let e = BigQueryError::from_bq(
            "jobs.insert j",
            answer(403, "accessDenied", "Access Denied"),
        );
        assert!(!e.is_retryable());
        // A token error of govflow's chain comes back whole, retryable or not.
        let auth = BigQueryError::Auth {
            detail: "token request: HTTP 400: invalid_grant".into(),
            retryable: false,
        };
        let back = BigQueryError::from_bq("jobs.get j", auth.clone().into_bq());
        assert_eq!(back.to_string(), auth.to_string());
        assert!(!back.is_retryable());
        let e = BigQueryError::from_bq("datasets.get d", BQError::NoToken);
        assert!(!e.is_retryable());
    }
}
