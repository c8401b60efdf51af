//! Why a request to the simulated API fails; `api` renders it as V2 or V3.

/// Why a request fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApiError {
    /// No or a wrong `X-Auth-Token`.
    Unauthorized,
    /// Unknown store hash, path or id.
    NotFound,
    /// A filter or paging value that cannot be read (400 on V2, 422 on V3).
    BadParam {
        /// The parameter.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// `limit` above 250 (413).
    TooLarge(String),
    /// Not a GET.
    MethodNotAllowed,
    /// Over the quota (429).
    TooManyRequests,
    /// An injected server error (500/502/503).
    Server(u16),
}
