//! What every benchmark reads and reports: settings from the environment and
//! percentiles of measured durations.

// Each bench includes this file and uses what it needs.
#![allow(dead_code)]

use std::time::Duration;

/// The value of environment variable `name`, or `default` if unset or unparsable.
pub fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The `p` percentile of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
