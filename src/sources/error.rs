//! A source's failure, as the runtime sees it: its text, and whether time
//! may fix it.

use std::error::Error;
use std::fmt;

/// An error a source returns, classified: whether it is one that time may
/// fix (the upstream down for a while), so the next poll tries again.
pub trait Transient: Error + Send + Sync + 'static {
    /// Whether trying again at the next poll may succeed.
    fn is_transient(&self) -> bool;
}

/// A source's failure: the source's own error, and whether it is transient.
#[derive(Debug)]
pub struct SourceError {
    error: Box<dyn Error + Send + Sync>,
    transient: bool,
}

impl SourceError {
    /// Whether trying again at the next poll may succeed.
    pub fn is_transient(&self) -> bool {
        self.transient
    }
}

impl<E: Transient> From<E> for SourceError {
    fn from(error: E) -> SourceError {
        SourceError {
            transient: error.is_transient(),
            error: Box::new(error),
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl Error for SourceError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.error.source()
    }
}
