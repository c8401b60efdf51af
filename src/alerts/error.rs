//! Failures to deliver an alert, classified as retryable or not.

use std::time::Duration;

/// A failure to deliver an alert. Texts are redacted and never carry the
/// token or the webhook URL.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The HTTP client could not be built.
    #[error("alerts: {0}")]
    Setup(String),
    /// Connect error, timeout, cut body.
    #[error("alerts: {sink}: {detail}")]
    Transport {
        /// The sink (`slack chat.postMessage`, `slack webhook`).
        sink: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// An HTTP status that is not success.
    #[error("alerts: {sink}: HTTP {status}: {body}")]
    Status {
        /// The sink.
        sink: &'static str,
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// Slack answered HTTP 200 with `{"ok": false, "error": ...}`.
    #[error("alerts: slack chat.postMessage: {error}")]
    Slack {
        /// Slack's error code, e.g. `channel_not_found`, `invalid_auth`.
        error: String,
    },
    /// Retries ran out; the last error is kept.
    #[error("alerts: gave up after {attempts} attempts: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: Box<AlertError>,
    },
}

impl AlertError {
    /// Whether sending again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            AlertError::Transport { .. } => true,
            AlertError::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
            AlertError::Slack { error } => matches!(
                error.as_str(),
                "ratelimited"
                    | "internal_error"
                    | "fatal_error"
                    | "service_unavailable"
                    | "request_timeout"
            ),
            AlertError::Setup(_) | AlertError::Exhausted { .. } => false,
        }
    }

    /// How long the server asked to wait before the next attempt.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AlertError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
