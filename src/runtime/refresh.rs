//! Full refreshes of a running pipeline: a request goes out to every source
//! loop, each answers with one full read, and once all of them ended (and
//! everything they read is committed) the keys of the covered raw tables that
//! no full read saw are deleted.
//!
//! Requests are numbered (generations). A source loop serves the newest
//! generation at its next pull: it announces the read (so the epoch loop
//! starts noting keys before the read's first batch arrives), reads every
//! entity or table whole, and reports the end, a success naming the raw tables
//! covered or a failure. The epoch loop publishes each finished generation;
//! the scheduler waits for it before `dbt build --full-refresh`.

use std::collections::BTreeSet;
use std::sync::Arc;

use dataflows::Table;
use dataflows::records::Upsert;
use tokio::sync::watch;

use super::reconcile::Seen;
use crate::sinks::local::{LocalWarehouse, WarehouseError};

/// The end of one full refresh, as the epoch loop publishes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefreshStatus {
    /// The newest generation whose full reads all ended (0: none yet).
    pub generation: u64,
    /// The sources whose full read failed, with their errors; `None` when all succeeded.
    pub error: Option<String>,
    /// Committed keys deleted because no full read saw them.
    pub deletes: u64,
}

/// The requesting side: asks every source for a full read and waits for the
/// result. Cloneable; every clone shares the same generations.
#[derive(Clone, Debug)]
pub struct RefreshControl {
    requested: Arc<watch::Sender<u64>>,
    status: watch::Receiver<RefreshStatus>,
}

/// The sides a run wires up: the control, what sources watch, what the epoch loop publishes on.
pub(super) struct RefreshChannels {
    pub control: RefreshControl,
    pub requests: watch::Receiver<u64>,
    pub status: watch::Sender<RefreshStatus>,
}

impl RefreshChannels {
    /// Channels whose first request is already made when `at_start` (`--full-refresh`).
    pub fn new(at_start: bool) -> RefreshChannels {
        let (requested, requests) = watch::channel(u64::from(at_start));
        let (status, status_rx) = watch::channel(RefreshStatus::default());
        RefreshChannels {
            control: RefreshControl {
                requested: Arc::new(requested),
                status: status_rx,
            },
            requests,
            status,
        }
    }
}

impl RefreshControl {
    /// Asks for a full refresh; returns its generation. A request made while
    /// one is running is served after it (sources serve the newest request).
    pub fn request(&self) -> u64 {
        let mut generation = 0;
        self.requested.send_modify(|g| {
            *g += 1;
            generation = *g;
        });
        tracing::info!(generation, "full refresh requested");
        generation
    }

    /// Waits until generation `generation` (or a later one) ended; `None` when
    /// the pipeline stopped first.
    pub async fn finished(&mut self, generation: u64) -> Option<RefreshStatus> {
        self.status
            .wait_for(|s| s.generation >= generation)
            .await
            .ok()
            .map(|s| s.clone())
    }
}

/// A source's side: which generation it served last, and whether a newer one waits.
#[derive(Debug)]
pub(super) struct RefreshRequests {
    requests: watch::Receiver<u64>,
    served: u64,
}

impl RefreshRequests {
    /// A source that has served no generation yet.
    pub fn new(requests: watch::Receiver<u64>) -> RefreshRequests {
        RefreshRequests {
            requests,
            served: 0,
        }
    }

    /// The generation the next pull must serve with a full read, if any; it
    /// counts as served from here on, whatever the read's outcome.
    pub fn take(&mut self) -> Option<u64> {
        let wanted = *self.requests.borrow_and_update();
        (wanted > self.served).then(|| {
            self.served = wanted;
            wanted
        })
    }

    /// Completes when a new request arrives (never, once the control is gone).
    pub async fn changed(&mut self) {
        if self.requests.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// One generation in progress in the epoch loop.
#[derive(Debug)]
struct InProgress {
    generation: u64,
    seen: Seen,
    covered: BTreeSet<Table>,
    ended: BTreeSet<String>,
    failures: Vec<String>,
}

/// The epoch loop's bookkeeping of full refreshes.
#[derive(Debug)]
pub(super) struct RefreshTracker {
    sources: usize,
    current: Option<InProgress>,
    status: watch::Sender<RefreshStatus>,
}

impl RefreshTracker {
    /// A tracker over `sources` source loops, publishing on `status`.
    pub fn new(sources: usize, status: watch::Sender<RefreshStatus>) -> RefreshTracker {
        RefreshTracker {
            sources,
            current: None,
            status,
        }
    }

    /// `source` starts its full read of `generation`. A newer generation
    /// replaces an unfinished older one, which ends as failed.
    pub fn started(&mut self, source: &str, generation: u64) {
        if let Some(current) = &self.current {
            if current.generation >= generation {
                return;
            }
            let old = current.generation;
            self.publish(RefreshStatus {
                generation: old,
                error: Some(format!("superseded by full refresh {generation}")),
                deletes: 0,
            });
        }
        tracing::info!(source, generation, "full read starts");
        self.current = Some(InProgress {
            generation,
            seen: Seen::default(),
            covered: BTreeSet::new(),
            ended: BTreeSet::new(),
            failures: Vec::new(),
        });
    }

    /// Notes the keys of a read while a generation is in progress.
    pub fn note(&mut self, upserts: &[Upsert]) {
        if let Some(current) = &mut self.current {
            current.seen.note(upserts);
        }
    }

    /// `source`'s full read of `generation` ended: `Ok(tables)` covered those
    /// raw tables, `Err` failed. True when every source's read has ended: the
    /// caller commits, then calls [`RefreshTracker::finish`].
    pub fn ended(
        &mut self,
        source: &str,
        generation: u64,
        outcome: Result<Vec<Table>, String>,
    ) -> bool {
        let Some(current) = self.current.as_mut().filter(|c| c.generation == generation) else {
            return false;
        };
        match outcome {
            Ok(tables) => current.covered.extend(tables),
            Err(error) => current.failures.push(format!("{source}: {error}")),
        }
        current.ended.insert(source.to_string());
        current.ended.len() >= self.sources
    }

    /// Ends the generation in progress: the deletes of every committed key of
    /// the raw tables that successful reads covered but did not see (a failed
    /// source's tables are left alone). The caller commits them, then
    /// [`RefreshTracker::publish_finished`].
    pub fn finish(&mut self, warehouse: &LocalWarehouse) -> Result<Finished, WarehouseError> {
        let Some(current) = self.current.take() else {
            return Ok(Finished::default());
        };
        let deletes = current.seen.deletes(warehouse, &current.covered)?;
        let error = (!current.failures.is_empty()).then(|| current.failures.join("; "));
        Ok(Finished {
            status: RefreshStatus {
                generation: current.generation,
                error,
                deletes: deletes.len() as u64,
            },
            deletes,
        })
    }

    /// Publishes a finished generation (after its deletes are committed).
    pub fn publish(&self, status: RefreshStatus) {
        match &status.error {
            None => tracing::info!(
                generation = status.generation,
                deletes = status.deletes,
                "full refresh committed"
            ),
            Some(error) => tracing::warn!(
                generation = status.generation,
                deletes = status.deletes,
                %error,
                "full refresh failed"
            ),
        }
        self.status.send_replace(status);
    }
}

/// What [`RefreshTracker::finish`] hands back.
#[derive(Debug, Default)]
pub(super) struct Finished {
    /// The status to publish once `deletes` are committed.
    pub status: RefreshStatus,
    /// Deletes of keys gone upstream.
    pub deletes: Vec<Upsert>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_serves_only_the_newest_request_once() {
        let channels = RefreshChannels::new(false);
        let mut source = RefreshRequests::new(channels.requests.clone());
        assert_eq!(source.take(), None);
        channels.control.request();
        channels.control.request();
        assert_eq!(source.take(), Some(2));
        assert_eq!(source.take(), None);

        let at_start = RefreshChannels::new(true);
        let mut source = RefreshRequests::new(at_start.requests.clone());
        assert_eq!(source.take(), Some(1));
        assert_eq!(source.take(), None);
    }

    #[test]
    fn a_generation_ends_when_every_source_ended() {
        let channels = RefreshChannels::new(false);
        let mut tracker = RefreshTracker::new(2, channels.status);
        tracker.started("bigcommerce", 1);
        tracker.started("postgres.wise", 1);
        // An end of another generation is ignored.
        assert!(!tracker.ended("bigcommerce", 7, Ok(vec![])));
        assert!(!tracker.ended("bigcommerce", 1, Ok(vec![Table::RawBcOrder])));
        assert!(tracker.ended("postgres.wise", 1, Err("HTTP 503".into())));
    }

    #[tokio::test]
    async fn a_newer_generation_supersedes_an_unfinished_one() {
        let channels = RefreshChannels::new(false);
        let mut control = channels.control.clone();
        let mut tracker = RefreshTracker::new(1, channels.status);
        tracker.started("bigcommerce", 1);
        tracker.started("bigcommerce", 2);
        let status = control.finished(1).await.unwrap();
        assert_eq!(status.generation, 1);
        assert_eq!(
            status.error.as_deref(),
            Some("superseded by full refresh 2")
        );
        assert!(tracker.ended("bigcommerce", 2, Ok(vec![])));
    }
}
