//! What the runtime knows of a source: the [`Source`] trait, and how a kind
//! of source announces its sources to a run ([`Register`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use dataflows::Table;
use dataflows::catalog::{Origin, TableDef};
use prometheus_client::metrics::histogram::Histogram;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

use super::{Outlet, SourceError};
use crate::config::LiveSecret;
use crate::raw::RowKeyValue;

/// The keys each configured raw table delivered in one read, by table.
pub type Seen = HashMap<String, HashSet<RowKeyValue>>;

/// A source of changes the runtime polls.
///
/// The runtime's one poll loop drives every source the same way: a full
/// read when a full refresh asks for one, else an incremental one from the
/// cursors; pages forwarded to the epoch loop while the read goes on; the
/// cursors sent after the read's data; status and alerts; the wait for the
/// next poll. Adding a source: implement this in its folder, and register it
/// from a `register` function called in `runtime::run` (see [`Register`]).
pub trait Source: Send + 'static {
    /// A page as the source's reader hands it over.
    type Page: Send + 'static;
    /// What a completed read returns, to advance the cursors with.
    type Pulled: Send;
    /// Where its reads got to, in the checkpoint (JSON); the default is
    /// "nothing read yet".
    type Cursors: Serialize + DeserializeOwned + Default;
    /// Pages read ahead of the forwarding.
    const PAGES_IN_FLIGHT: usize = 16;

    /// The name in logs, status, alerts and the checkpoint.
    fn name(&self) -> &str;
    /// The warehouse tables it fills, for the status page.
    fn tables(&self) -> Vec<String>;
    /// The configured raw tables it declares (the warehouse creates them).
    fn raw_defs(&self) -> Vec<TableDef> {
        Vec::new()
    }
    /// The secrets it holds, by config path, for redaction and reloads.
    fn secrets(&self) -> Vec<(String, LiveSecret)> {
        Vec::new()
    }
    /// Observes the latency of its requests in the histogram `histogram`
    /// makes (a source that sends no requests of its own leaves it uncalled).
    fn observe_latency(&self, histogram: impl FnOnce() -> Histogram) {
        let _ = histogram;
    }
    /// Resumes from the checkpointed `cursors`.
    fn restore(&mut self, cursors: Self::Cursors);
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
    /// the epoch loop through `outlet`.
    fn follow_upstream(&mut self, outlet: &Outlet) -> impl Future<Output = ()> + Send {
        let _ = outlet;
        async {}
    }
    /// What forwards the pages of one read (whole when `full`) to the epoch
    /// loop, noting the keys of configured tables read whole; it runs beside
    /// the read and returns false when the epoch loop is gone.
    fn forwarder(
        &self,
        full: bool,
    ) -> impl FnMut(Self::Page, &mut Seen, &Outlet) -> bool + Send + 'static;
    /// One read, whole when `full`, incremental from the cursors otherwise;
    /// its pages go to `pages`.
    fn read(
        &mut self,
        full: bool,
        pages: mpsc::Sender<Self::Page>,
    ) -> impl Future<Output = Result<Self::Pulled, SourceError>> + Send;
    /// After a read completed: advances the cursors, and returns the
    /// configured tables it read whole with the keys they delivered.
    fn finish(
        &mut self,
        full: bool,
        pulled: Self::Pulled,
        seen: Seen,
        outlet: &Outlet,
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

/// Where a kind of source puts the sources its configuration asks for,
/// before the run starts them.
pub trait Register {
    /// Whether the run reads once and stops (it then starts no push feed).
    fn once(&self) -> bool;
    /// A source for the runtime's poll loop.
    fn add<S: Source>(&mut self, source: S);
    /// A push feed (a server upstream calls): `start` is run once the epoch
    /// loop listens, with the feed's outlet and the run's stop signal, and
    /// returns once it serves (or fails to start). Its deliveries go through
    /// the outlet as they come, in its own order: no cursor, no poll.
    fn add_push<F, Fut>(&mut self, name: &str, start: F)
    where
        F: FnOnce(Outlet, watch::Receiver<bool>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), SourceError>> + Send + 'static;
}

/// The models' raw tables that sources of kind `kind` fill (their origin).
pub fn raw_tables_of(kind: &str) -> Vec<Table> {
    Table::ALL
        .into_iter()
        .filter(|t| matches!(t.def().origin, Origin::Source(ref k) if k == kind))
        .collect()
}

/// A cursor in µs since the Unix epoch as text (RFC 3339 when it is a date).
pub fn micros_text(at: i64) -> String {
    chrono::DateTime::from_timestamp_micros(at).map_or(at.to_string(), |t| t.to_rfc3339())
}
