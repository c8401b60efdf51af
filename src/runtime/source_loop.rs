//! What every source loop shares: how a read ends (its status, its outcome
//! to the epoch loop and the alerts) and the wait for the next poll.

use std::time::Duration;

use super::supervisor::SourceEvent;
use super::{Msg, RunError, SourceLinks};

/// What a pull shows progress as: a full refresh, or the first read of a
/// source (a backfill); `None` for an incremental poll.
pub(super) fn progress_kind(full: Option<u64>, backfill: bool) -> Option<&'static str> {
    match (full, backfill) {
        (Some(_), _) => Some("full refresh"),
        (None, true) => Some("backfill"),
        (None, false) => None,
    }
}

/// The end of one read of a source.
pub(super) enum ReadOutcome {
    /// The read's completion, to send after its data.
    Done(Msg),
    /// The read failed (after its own retries).
    Failed { error: RunError, retryable: bool },
}

impl ReadOutcome {
    /// The failure's text, if the read failed.
    fn error(&self) -> Option<String> {
        match self {
            ReadOutcome::Done(_) => None,
            ReadOutcome::Failed { error, .. } => Some(error.to_string()),
        }
    }
}

/// Hands a read's outcome to the epoch loop (and to the alerts); false when
/// the source loop must end (the loop is gone, or the failure is final: not
/// retryable, or `once`).
fn report_read(links: &SourceLinks, once: bool, source: &str, outcome: ReadOutcome) -> bool {
    let source = source.to_string();
    match outcome {
        ReadOutcome::Done(msg) => {
            let _ = links.events.send(SourceEvent::Succeeded { source });
            links.tx.send(msg).is_ok()
        }
        ReadOutcome::Failed { error, retryable } if once || !retryable => {
            let _ = links.events.send(SourceEvent::Fatal {
                source,
                error: error.to_string(),
            });
            let _ = links.tx.send(Msg::SourceFailed(error));
            false
        }
        ReadOutcome::Failed { error, .. } => {
            tracing::warn!(%source, %error, "read failed; retrying at the next poll");
            let _ = links.events.send(SourceEvent::Failed {
                source,
                error: error.to_string(),
            });
            true
        }
    }
}

/// How a source's read ended, for its status.
pub(super) struct ReadEnd<'a> {
    /// The source's name.
    pub(super) source: &'a str,
    /// Whether the read was shown as progress (a full read or a backfill).
    pub(super) tracked: bool,
    /// Requests (or pages) the source has sent in all.
    pub(super) requests: u64,
    /// The store quota and its use, when known.
    pub(super) quota: Option<(u32, u32)>,
}

/// Ends one read of a source loop: its status, its outcome to the epoch loop
/// and the alerts, then the wait for the next poll. False when the loop must
/// end.
pub(super) async fn end_read(
    links: &mut SourceLinks,
    once: bool,
    read: ReadEnd<'_>,
    outcome: ReadOutcome,
    interval: Duration,
) -> bool {
    if read.tracked {
        links.telemetry.read_ended(read.source);
    }
    links
        .telemetry
        .pull_ended(read.source, outcome.error(), read.requests, read.quota);
    report_read(links, once, read.source, outcome) && next_poll(once, links, interval).await
}

/// Waits for the next poll, or a full refresh request; false when the loop
/// must end instead (`once`, or stop).
async fn next_poll(once: bool, links: &mut SourceLinks, interval: Duration) -> bool {
    if once || *links.stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(interval) => true,
        _ = links.refresh.changed() => true,
        _ = links.stop.changed() => false,
    }
}
