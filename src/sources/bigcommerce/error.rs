//! Errors of the BigCommerce source, each classified as retryable or not.

/// A failure of the BigCommerce source. `request` fields name the method and
/// path with its query (never the access token).
#[derive(Debug, thiserror::Error)]
pub enum BigCommerceError {
    /// Transport failure: connect error, timeout, cut or unreadable body.
    #[error("bigcommerce: {request}: {detail}")]
    Transport {
        /// The request.
        request: String,
        /// What went wrong.
        detail: String,
    },
    /// An HTTP status that is not success.
    #[error("bigcommerce: {request}: HTTP {status}: {body}")]
    Status {
        /// The request.
        request: String,
        /// The HTTP status.
        status: u16,
        /// The start of the response body (BigCommerce's error message).
        body: String,
    },
    /// A body that is not the JSON shape of the endpoint (whole page, not one record).
    #[error("bigcommerce: {request}: unexpected response body: {detail}")]
    Body {
        /// The request.
        request: String,
        /// The parse error.
        detail: String,
    },
    /// Retries ran out; the last error is kept.
    #[error("bigcommerce: gave up after {attempts} attempts: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: Box<BigCommerceError>,
    },
    /// The consumer of the pulled batches went away.
    #[error("bigcommerce: the consumer of {entity} batches stopped")]
    ConsumerGone {
        /// The entity being pulled.
        entity: &'static str,
    },
}

impl BigCommerceError {
    /// Whether trying the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            BigCommerceError::Transport { .. } | BigCommerceError::Body { .. } => true,
            BigCommerceError::Status { status, .. } => {
                matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
            }
            BigCommerceError::Exhausted { .. } | BigCommerceError::ConsumerGone { .. } => false,
        }
    }

    /// Whether the failure is one that time may fix: retryable, or retries
    /// that ran out on a retryable error (the store down for a while). A
    /// polling loop tries such a pull again at its next poll.
    pub fn is_transient(&self) -> bool {
        match self {
            BigCommerceError::Exhausted { last, .. } => last.is_transient(),
            other => other.is_retryable(),
        }
    }

    /// The HTTP status, when the error is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            BigCommerceError::Status { status, .. } => Some(*status),
            BigCommerceError::Exhausted { last, .. } => last.status(),
            _ => None,
        }
    }
}

impl crate::sources::Transient for BigCommerceError {
    fn is_transient(&self) -> bool {
        BigCommerceError::is_transient(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let status = |status| BigCommerceError::Status {
            request: "GET /x".into(),
            status,
            body: String::new(),
        };
        assert!(status(429).is_retryable());
        assert!(status(503).is_retryable());
        assert!(!status(401).is_retryable());
        assert!(!status(413).is_retryable());
        assert!(!status(507).is_retryable());
        assert!(
            BigCommerceError::Transport {
                request: "GET /x".into(),
                detail: "timeout".into()
            }
            .is_retryable()
        );
    }
}
