//! Sinks: where each committed epoch's changes are published.

pub mod config;
pub use config::{DEFAULT_STATE_DIR, DEFAULT_WAREHOUSE_DIR, StateConfig, WarehouseConfig};

pub mod bigquery;
pub mod local;
