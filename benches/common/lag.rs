//! What the lag benchmarks share: waiting for a change to be committed by a
//! running pipeline, and the sample count.

use std::time::{Duration, Instant};

use govflow::runtime::ProgressHandle;

/// Samples per setting: `GOVFLOW_BENCH_SAMPLES` (default 30).
pub fn samples() -> usize {
    std::env::var("GOVFLOW_BENCH_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

/// Output row changes the run has committed so far.
pub fn changes(progress: &ProgressHandle) -> u64 {
    progress.lock().map(|p| p.changes).unwrap_or(0)
}

/// Waits until the run commits a change after `before` (its count then);
/// returns the time since `since`. Panics after a minute.
pub async fn committed_after(progress: &ProgressHandle, before: u64, since: Instant) -> Duration {
    while changes(progress) == before {
        if since.elapsed() > Duration::from_secs(60) {
            panic!("the change did not arrive within a minute");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    since.elapsed()
}
