//! Counters of API requests served (`GET /_sim/stats`).

use std::collections::BTreeMap;

use serde::Serialize;

/// At most this many arrivals are kept.
const MAX_ARRIVALS: usize = 200_000;

/// API requests served, by status, and their arrival times.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Stats {
    /// API requests answered.
    pub requests: u64,
    /// Answers per HTTP status.
    pub by_status: BTreeMap<String, u64>,
    /// Arrival of each request in ms since the server started (the first 200,000).
    pub arrivals_ms: Vec<u64>,
}

impl Stats {
    /// Records the arrival of a request.
    pub(crate) fn arrive(&mut self, ms: u64) {
        if self.arrivals_ms.len() < MAX_ARRIVALS {
            self.arrivals_ms.push(ms);
        }
    }

    /// Records an answer.
    pub(crate) fn answered(&mut self, status: u16) {
        self.requests += 1;
        *self.by_status.entry(status.to_string()).or_insert(0) += 1;
    }
}
