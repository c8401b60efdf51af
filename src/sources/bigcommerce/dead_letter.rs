//! Records that could not be parsed: kept aside with enough context to find
//! and fix them, while the rest of their page goes on.

use serde::Serialize;

/// One record that failed to parse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// The entity (`customer`, `order`, …).
    pub entity: &'static str,
    /// The record's id, when it could be read.
    pub id: Option<i64>,
    /// Why it was rejected.
    pub reason: String,
    /// The start of the record's raw JSON.
    pub raw_excerpt: String,
    /// The request that returned it.
    pub request: String,
}
