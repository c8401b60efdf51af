//! What the runtime knows of a source: the [`Source`] trait, and the one loop
//! ([`drive`]) that polls any of them.
//!
//! A source reads; the loop does the rest, the same for every source: a
//! full read when a full refresh asks for one, pages forwarded to the epoch
//! loop while the read goes on, the read's end (the source's cursors, sent
//! after its data down the same channel), status and alerts, and the wait for
//! the next poll. The epoch loop checkpoints a source's cursors under its
//! name once the data sent before them is committed: the reader and the
//! offset committer are apart, as in Materialize, and the poll loop is shared,
//! as in Vector.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dataflows::Table;
use dataflows::records::{Payloads, Upsert};
use tokio::sync::{mpsc, watch};

use super::refresh::RefreshRequests;
use super::supervisor::SourceEvent;
use super::{FullRead, Msg, RunError};
use crate::raw::{RawChange, RowKeyValue};
use crate::status::Telemetry;

/// The keys each configured raw table delivered in one read, by table.
pub(super) type Seen = HashMap<String, HashSet<RowKeyValue>>;

/// A source of changes the runtime polls.
///
/// Adding one: implement this next to its reader, and spawn [`drive`] on it
/// in [`super::run`].
pub(super) trait Source: Send + 'static {
    /// A page as the source's reader hands it over.
    type Page: Send + 'static;
    /// What a completed read returns, to advance the cursors with.
    type Pulled: Send;
    /// Where its reads got to, in the checkpoint (JSON).
    type Cursors: serde::Serialize;
    /// Pages read ahead of the forwarding.
    const PAGES_IN_FLIGHT: usize = 16;

    /// The name in logs, status, alerts and the checkpoint.
    fn name(&self) -> &str;
    /// How long to wait between two reads.
    fn poll_interval(&self) -> Duration;
    /// Whether nothing was read yet (the next read is a backfill).
    fn is_new(&self) -> bool;
    /// The models' raw tables a full read covers: at the refresh's end, the
    /// keys of these tables no source delivered are deleted.
    fn covers(&self) -> Vec<Table> {
        Vec::new()
    }
    /// Before each read: follows what changed upstream (columns), telling
    /// the epoch loop through `links`.
    fn follow_upstream(&mut self, links: &SourceLinks) -> impl Future<Output = ()> + Send {
        let _ = links;
        async {}
    }
    /// What forwards the pages of one read (whole when `full`) to the epoch
    /// loop, noting the keys of configured tables read whole; it runs beside
    /// the read and returns false when the epoch loop is gone.
    fn forwarder(
        &self,
        full: bool,
    ) -> impl FnMut(Self::Page, &mut Seen, &Pages) -> bool + Send + 'static;
    /// One read, whole when `full`, incremental from the cursors otherwise;
    /// its pages go to `pages`.
    fn read(
        &mut self,
        full: bool,
        pages: mpsc::Sender<Self::Page>,
    ) -> impl Future<Output = Result<Self::Pulled, RunError>> + Send;
    /// After a read completed: advances the cursors, and returns the
    /// configured tables it read whole with the keys they delivered.
    fn finish(
        &mut self,
        full: bool,
        pulled: Self::Pulled,
        seen: Seen,
        links: &SourceLinks,
    ) -> Vec<(String, HashSet<RowKeyValue>)>;
    /// The cursors, as the checkpoint keeps them under [`Source::name`].
    fn cursors(&self) -> &Self::Cursors;
    /// The cursors as text by what they mark (entity, table), for the status page.
    fn cursor_texts(&self) -> BTreeMap<String, String>;
    /// Requests (or pages) sent in all, and the quota with its use when known.
    fn requests(&self) -> (u64, Option<(u32, u32)>) {
        (0, None)
    }
}

/// What a completed read hands the epoch loop, after its data.
#[derive(Debug)]
pub(super) struct ReadDone {
    /// The source's name.
    pub(super) source: String,
    /// Its cursors after the read, for the checkpoint.
    pub(super) cursors: serde_json::Value,
    /// The same as text, for the status page.
    pub(super) cursor_texts: BTreeMap<String, String>,
    /// Configured tables read whole, with the keys they delivered (keys they
    /// did not deliver are gone upstream).
    pub(super) snapshots: Vec<(String, HashSet<RowKeyValue>)>,
}

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
}

/// Where a source's pages go: the epoch loop, counted in the telemetry.
pub(super) struct Pages {
    tx: std::sync::mpsc::Sender<Msg>,
    telemetry: Arc<Telemetry>,
    source: String,
}

impl Pages {
    /// Counts a page of `records` (and `dead` dead letters) read for
    /// `table`, when named, of `expected` pages.
    pub(super) fn count(&self, records: u64, dead: u64, table: Option<(&str, Option<u64>)>) {
        self.telemetry.records_read(&self.source, records, dead);
        if let Some((table, expected)) = table {
            self.telemetry
                .page_read(&self.source, table, records, expected);
        }
    }

    /// Sends what a page brought to the epoch loop: upserts for the models
    /// with their `_payload` texts, changes of configured raw tables, and
    /// dead letters as JSON lines. False when the epoch loop is gone.
    pub(super) fn send(
        &self,
        upserts: Vec<Upsert>,
        payloads: Payloads,
        raw: Vec<RawChange>,
        dead_letters: Vec<String>,
    ) -> bool {
        let msg = Msg::Read {
            upserts,
            payloads,
            raw,
            dead_letters,
        };
        self.tx.send(msg).is_ok()
    }
}

/// Polls `source` until stop (or, with `once`, one read), sending what it
/// reads to the epoch loop.
pub(super) async fn drive<S: Source>(mut source: S, once: bool, mut links: SourceLinks) {
    let name = source.name().to_string();
    let interval = source.poll_interval();
    loop {
        source.follow_upstream(&links).await;
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
        let pages = Pages {
            tx: links.tx.clone(),
            telemetry: links.telemetry.clone(),
            source: name.clone(),
        };
        let forwarder = tokio::spawn(async move {
            let mut seen = Seen::new();
            while let Some(page) = page_rx.recv().await {
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
                let snapshots = source.finish(full.is_some(), pulled, seen, &links);
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
                ReadOutcome::Failed {
                    retryable: error.is_retryable(),
                    error,
                }
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

/// A cursor in µs since the Unix epoch as text (RFC 3339 when it is a date).
pub(super) fn micros_text(at: i64) -> String {
    chrono::DateTime::from_timestamp_micros(at).map_or(at.to_string(), |t| t.to_rfc3339())
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::runtime::refresh::RefreshChannels;
    use crate::sources::postgres::PgError;

    /// A source whose reads are scripted: each read sends its pages, then
    /// ends as told; the cursor is the number of pages read.
    struct Scripted {
        reads: VecDeque<(Vec<u64>, Result<(), RunError>)>,
        pages: u64,
    }

    impl Source for Scripted {
        type Page = u64;
        type Pulled = u64;
        type Cursors = u64;

        fn name(&self) -> &str {
            "scripted"
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
        ) -> impl FnMut(u64, &mut Seen, &Pages) -> bool + Send + 'static {
            |page: u64, seen: &mut Seen, pages: &Pages| {
                seen.entry("t".into()).or_default();
                pages.send(
                    Vec::new(),
                    Default::default(),
                    Vec::new(),
                    vec![page.to_string()],
                )
            }
        }
        async fn read(&mut self, _full: bool, pages: mpsc::Sender<u64>) -> Result<u64, RunError> {
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
            _: &SourceLinks,
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
    async fn drive_script(reads: Vec<(Vec<u64>, Result<(), RunError>)>, full: bool) -> Vec<String> {
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
        let transient = RunError::Postgres(PgError::SchemaChanged {
            database: "d".into(),
            table: "t".into(),
        });
        let seen = drive_script(
            vec![
                (vec![1], Err(transient)),
                (vec![2], Ok(())),
                (vec![], Err(RunError::Config("broken".into()))),
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
                "failed broken"
            ]
        );
    }
}
