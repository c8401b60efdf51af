//! The one loop that polls any [`Source`]: [`drive`].
//!
//! A source reads; the loop does the rest, the same for every source: a
//! full read when a full refresh asks for one, pages forwarded to the epoch
//! loop while the read goes on, the read's end (the source's cursors, sent
//! after its data down the same channel), status and alerts, and the wait for
//! the next poll. The epoch loop checkpoints a source's cursors under its
//! name once the data sent before them is committed: the reader and the
//! offset committer are apart, as in Materialize, and the poll loop is shared,
//! as in Vector.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::refresh::RefreshRequests;
use crate::sources::{
    FullRead, Msg, Outlet, ReadDone, RowBudget, Seen, Source, SourceError, SourceEvent,
};
use crate::status::Telemetry;

/// What a source's loop talks through.
pub(super) struct SourceLinks {
    /// To the epoch loop.
    pub(super) tx: std::sync::mpsc::Sender<Msg>,
    /// To the alerts.
    pub(super) events: mpsc::UnboundedSender<SourceEvent>,
    /// Turns true when the run stops.
    pub(super) stop: watch::Receiver<bool>,
    /// Full refreshes asked for.
    pub(super) refresh: RefreshRequests,
    /// Where reads and pulls are reported.
    pub(super) telemetry: Arc<Telemetry>,
    /// The rows in flight to the epoch loop, shared by every source.
    pub(super) budget: Arc<RowBudget>,
}

impl SourceLinks {
    /// The outlet of the source named `source`.
    pub(super) fn outlet(&self, source: &str) -> Outlet {
        Outlet::new(
            source,
            self.tx.clone(),
            self.events.clone(),
            self.telemetry.clone(),
            self.budget.clone(),
        )
    }
}

/// Polls `source` until stop (or, with `once`, one read), sending what it
/// reads to the epoch loop.
pub(super) async fn drive<S: Source>(mut source: S, once: bool, mut links: SourceLinks) {
    let name = source.name().to_string();
    let interval = source.poll_interval();
    let outlet = links.outlet(&name);
    loop {
        source.follow_upstream(&outlet).await;
        let full = links.refresh.take();
        if let Some(generation) = full {
            let _ = links.tx.send(Msg::FullReadStarted {
                source: name.clone(),
                generation,
            });
        }
        let tracked = progress_kind(full, source.is_new()).inspect(|kind| {
            links.telemetry.read_started(&name, kind);
        });
        let (page_tx, mut page_rx) = mpsc::channel::<S::Page>(S::PAGES_IN_FLIGHT);
        let mut forward = source.forwarder(full.is_some());
        let pages = outlet.clone();
        let forwarder = tokio::spawn(async move {
            let mut seen = Seen::new();
            while let Some(page) = page_rx.recv().await {
                // Backpressure: the reader fills its few pages in flight and waits.
                pages.room().await;
                if !forward(page, &mut seen, &pages) {
                    break;
                }
            }
            seen
        });
        let pulled = tokio::select! {
            r = source.read(full.is_some(), page_tx) => Some(r),
            _ = links.stop.changed() => None,
        };
        let seen = forwarder.await.unwrap_or_default();
        let Some(pulled) = pulled else { break };
        let outcome = match pulled {
            Ok(pulled) => {
                let snapshots = source.finish(full.is_some(), pulled, seen, &outlet);
                ReadOutcome::Done(Msg::PullDone {
                    done: ReadDone {
                        source: name.clone(),
                        cursors: serde_json::to_value(source.cursors()).unwrap_or_default(),
                        cursor_texts: source.cursor_texts(),
                        snapshots,
                    },
                    full: full.map(|generation| FullRead {
                        generation,
                        tables: source.covers(),
                    }),
                })
            }
            Err(error) => {
                if let Some(generation) = full {
                    let _ = links.tx.send(Msg::FullReadFailed {
                        source: name.clone(),
                        generation,
                        error: error.to_string(),
                    });
                }
                ReadOutcome::Failed(error)
            }
        };
        if tracked.is_some() {
            links.telemetry.read_ended(&name);
        }
        let (requests, quota) = source.requests();
        links
            .telemetry
            .pull_ended(&name, outcome.error(), requests, quota);
        if !(report_read(&links, once, &name, outcome)
            && next_poll(once, &mut links, interval).await)
        {
            break;
        }
    }
}

/// What a read shows progress as: a full refresh, or the first read of a
/// source (a backfill); `None` for an incremental poll.
fn progress_kind(full: Option<u64>, backfill: bool) -> Option<&'static str> {
    match (full, backfill) {
        (Some(_), _) => Some("full refresh"),
        (None, true) => Some("backfill"),
        (None, false) => None,
    }
}

/// The end of one read of a source.
enum ReadOutcome {
    /// The read's completion, to send after its data.
    Done(Msg),
    /// The read failed (after its own retries).
    Failed(SourceError),
}

impl ReadOutcome {
    /// The failure's text, if the read failed.
    fn error(&self) -> Option<String> {
        match self {
            ReadOutcome::Done(_) => None,
            ReadOutcome::Failed(error) => Some(error.to_string()),
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
        ReadOutcome::Failed(error) if once || !error.is_transient() => {
            let _ = links.events.send(SourceEvent::Fatal {
                source,
                error: error.to_string(),
            });
            let _ = links.tx.send(Msg::SourceFailed(error));
            false
        }
        ReadOutcome::Failed(error) => {
            tracing::warn!(%source, %error, "read failed; retrying at the next poll");
            let _ = links.events.send(SourceEvent::Failed {
                source,
                error: error.to_string(),
            });
            true
        }
    }
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

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet, VecDeque};

    use super::*;
    use crate::raw::RowKeyValue;
    use crate::runtime::refresh::RefreshChannels;
    use crate::sources::postgres::PgError;

    /// A source whose reads are scripted: each read sends its pages, then
    /// ends as told; the cursor is the number of pages read.
    struct Scripted {
        reads: VecDeque<(Vec<u64>, Result<(), SourceError>)>,
        pages: u64,
    }

    impl Source for Scripted {
        type Page = u64;
        type Pulled = u64;
        type Cursors = u64;

        fn name(&self) -> &str {
            "scripted"
        }
        fn tables(&self) -> Vec<String> {
            vec!["t".into()]
        }
        fn restore(&mut self, pages: u64) {
            self.pages = pages;
        }
        fn poll_interval(&self) -> Duration {
            Duration::from_millis(1)
        }
        fn is_new(&self) -> bool {
            self.pages == 0
        }
        fn forwarder(
            &self,
            _full: bool,
        ) -> impl FnMut(u64, &mut Seen, &Outlet) -> bool + Send + 'static {
            |page: u64, seen: &mut Seen, outlet: &Outlet| {
                seen.entry("t".into()).or_default();
                outlet.send(Vec::new(), Default::default(), Vec::new(), &[page])
            }
        }
        async fn read(
            &mut self,
            _full: bool,
            pages: mpsc::Sender<u64>,
        ) -> Result<u64, SourceError> {
            let (sent, end) = self.reads.pop_front().unwrap_or((Vec::new(), Ok(())));
            for page in &sent {
                pages.send(*page).await.unwrap();
            }
            end.map(|()| sent.len() as u64)
        }
        fn finish(
            &mut self,
            _: bool,
            read: u64,
            seen: Seen,
            _: &Outlet,
        ) -> Vec<(String, HashSet<RowKeyValue>)> {
            self.pages += read;
            seen.into_keys().map(|t| (t, HashSet::new())).collect()
        }
        fn cursors(&self) -> &u64 {
            &self.pages
        }
        fn cursor_texts(&self) -> BTreeMap<String, String> {
            BTreeMap::from([("pages".into(), self.pages.to_string())])
        }
    }

    /// Drives `reads` (with a full refresh asked for at start when `full`)
    /// until the source stops; returns what reached the epoch loop, as text.
    async fn drive_script(
        reads: Vec<(Vec<u64>, Result<(), SourceError>)>,
        full: bool,
    ) -> Vec<String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (events, _events) = mpsc::unbounded_channel();
        let (_stop, stop) = watch::channel(false);
        let refresh = RefreshChannels::new(full);
        let n = reads.len();
        let links = SourceLinks {
            tx,
            events,
            stop,
            refresh: RefreshRequests::new(refresh.requests.clone()),
            telemetry: Arc::new(Telemetry::new(None, Vec::new())),
            budget: Arc::new(RowBudget::unlimited()),
        };
        let source = Scripted {
            reads: reads.into(),
            pages: 0,
        };
        let driving = tokio::spawn(drive(source, false, links));
        // The epoch loop's side, until the scripted reads ended (the source
        // then goes on with empty reads) or the source failed.
        let seen = tokio::task::spawn_blocking(move || {
            let mut seen = Vec::new();
            let mut ended = 0;
            while ended < n {
                let Ok(msg) = rx.recv_timeout(Duration::from_secs(10)) else {
                    break;
                };
                seen.push(match msg {
                    Msg::Read { dead_letters, .. } => format!("read {}", dead_letters.join(",")),
                    Msg::FullReadStarted { source, generation } => {
                        format!("full {source} {generation}")
                    }
                    Msg::PullDone { done, full } => {
                        ended += 1;
                        let tables: Vec<&str> =
                            done.snapshots.iter().map(|(t, _)| t.as_str()).collect();
                        let generation = full.map_or(0, |f| f.generation);
                        format!(
                            "done {} {} {tables:?} {generation}",
                            done.source, done.cursors
                        )
                    }
                    Msg::FullReadFailed { generation, .. } => format!("full failed {generation}"),
                    Msg::SourceFailed(e) => {
                        ended = n;
                        format!("failed {e}")
                    }
                    Msg::TableEvolved { .. } | Msg::SchemaChecked { .. } => "schema".into(),
                });
            }
            seen
        })
        .await
        .unwrap();
        driving.abort();
        seen
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pages_then_cursors_after_them_read_after_read() {
        let seen = drive_script(vec![(vec![1, 2], Ok(())), (vec![3], Ok(()))], false).await;
        assert_eq!(
            seen,
            [
                "read 1",
                "read 2",
                r#"done scripted 2 ["t"] 0"#,
                "read 3",
                r#"done scripted 3 ["t"] 0"#
            ]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_refresh_is_announced_and_ends_with_its_generation() {
        let seen = drive_script(vec![(vec![7], Ok(()))], true).await;
        assert_eq!(
            seen,
            ["full scripted 1", "read 7", r#"done scripted 1 ["t"] 1"#]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transient_failure_is_retried_and_a_final_one_stops_the_source() {
        let transient = PgError::SchemaChanged {
            database: "d".into(),
            table: "t".into(),
        };
        let broken = PgError::Config {
            database: "d".into(),
            detail: "broken".into(),
        };
        let seen = drive_script(
            vec![
                (vec![1], Err(transient.into())),
                (vec![2], Ok(())),
                (vec![], Err(broken.into())),
            ],
            true,
        )
        .await;
        assert_eq!(
            seen,
            [
                "full scripted 1",
                "read 1",
                // The failed read's pages were sent; its cursors were not.
                "full failed 1",
                "read 2",
                r#"done scripted 1 ["t"] 0"#,
                "failed postgres.d: broken"
            ]
        );
    }
}
