//! Sinks: where each committed epoch's changes are published.

pub mod bigquery;
pub mod local;
