//! What a source tells the runtime ([`Msg`], [`SourceEvent`]), and the
//! handle it tells it through ([`Outlet`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use dataflows::Table;
use dataflows::catalog::TableDef;
use dataflows::records::{Payloads, Upsert};
use serde::Serialize;
use tokio::sync::mpsc;

use super::SourceError;
use super::budget::RowBudget;
use crate::raw::{RawChange, RowKeyValue};
use crate::status::Telemetry;

/// What the epoch loop receives from the sources, in the order they sent it.
pub enum Msg {
    /// Upserts a source read for the dataflow with their `_payload` texts,
    /// changes of configured raw tables, and its dead letters as JSON lines.
    Read {
        /// Upserts of the models' raw tables.
        upserts: Vec<Upsert>,
        /// Their `_payload` texts.
        payloads: Payloads,
        /// Changes of configured raw tables.
        raw: Vec<RawChange>,
        /// Dead letters, one JSON line each.
        dead_letters: Vec<String>,
    },
    /// A source starts a full read for a full refresh (before its first batch).
    FullReadStarted {
        /// The source's name.
        source: String,
        /// The refresh it reads for.
        generation: u64,
    },
    /// A read completed: its cursors, and the configured tables it read
    /// whole. `full`: it was a full read.
    PullDone {
        /// What the read ended with.
        done: ReadDone,
        /// The full refresh it read for, if any.
        full: Option<FullRead>,
    },
    /// A full read failed; the source goes on with incremental pulls.
    FullReadFailed {
        /// The source's name.
        source: String,
        /// The refresh it read for.
        generation: u64,
        /// Why it failed.
        error: String,
    },
    /// A configured raw table's declaration evolved (its source's columns
    /// changed); what follows it was read under the new declaration.
    TableEvolved {
        /// The new declaration.
        def: TableDef,
        /// The change, as text.
        change: String,
    },
    /// A source compared a configured table's upstream columns with its
    /// declaration: `incompatible` says how they do not fit, `None` that they do.
    SchemaChecked {
        /// The configured table.
        table: String,
        /// How the upstream columns do not fit, if they do not.
        incompatible: Option<String>,
    },
    /// A source failed for good.
    SourceFailed(SourceError),
}

impl Msg {
    /// The rows a message carries, as the [`RowBudget`] counts them.
    pub fn rows(&self) -> usize {
        match self {
            Msg::Read { upserts, raw, .. } => upserts.len() + raw.len(),
            _ => 0,
        }
    }
}

/// What a completed read hands the epoch loop, after its data.
#[derive(Debug)]
pub struct ReadDone {
    /// The source's name.
    pub source: String,
    /// Its cursors after the read, for the checkpoint.
    pub cursors: serde_json::Value,
    /// The same as text, for the status page.
    pub cursor_texts: BTreeMap<String, String>,
    /// Configured tables read whole, with the keys they delivered (keys they
    /// did not deliver are gone upstream).
    pub snapshots: Vec<(String, HashSet<RowKeyValue>)>,
}

/// A full read that ended, covering these raw tables.
#[derive(Debug)]
pub struct FullRead {
    /// The refresh it read for.
    pub generation: u64,
    /// The models' raw tables it read whole.
    pub tables: Vec<Table>,
}

/// What the alerts hear of the sources.
#[derive(Debug)]
pub enum SourceEvent {
    /// A read succeeded.
    Succeeded {
        /// The source's name.
        source: String,
    },
    /// A read failed and will be retried at the next poll.
    Failed {
        /// The source's name.
        source: String,
        /// Why.
        error: String,
    },
    /// A read failed for good: the run ends.
    Fatal {
        /// The source's name.
        source: String,
        /// Why.
        error: String,
    },
    /// A configured table's columns changed upstream: `incompatible` says
    /// which changes it cannot follow (`None`: it follows them all).
    Schema {
        /// The configured table.
        table: String,
        /// The changes it cannot follow, if any.
        incompatible: Option<String>,
    },
}

/// Where a source's reads go: the epoch loop (data, then cursors, down one
/// FIFO channel, its rows counted against the [`RowBudget`]), the alerts and
/// the telemetry.
#[derive(Clone)]
pub struct Outlet {
    tx: std::sync::mpsc::Sender<Msg>,
    events: mpsc::UnboundedSender<SourceEvent>,
    telemetry: Arc<Telemetry>,
    budget: Arc<RowBudget>,
    source: String,
}

impl Outlet {
    /// The outlet of `source` onto the epoch loop's `tx` and the alerts'
    /// `events`, within `budget`.
    pub fn new(
        source: &str,
        tx: std::sync::mpsc::Sender<Msg>,
        events: mpsc::UnboundedSender<SourceEvent>,
        telemetry: Arc<Telemetry>,
        budget: Arc<RowBudget>,
    ) -> Outlet {
        Outlet {
            tx,
            events,
            telemetry,
            budget,
            source: source.to_string(),
        }
    }

    /// Waits until the epoch loop has room for more rows (see [`RowBudget`]).
    pub async fn room(&self) {
        self.budget.room().await
    }

    /// Counts a page of `records` (and `dead` dead letters) read for
    /// `table`, when named, of `expected` pages.
    pub fn count(&self, records: u64, dead: u64, table: Option<(&str, Option<u64>)>) {
        self.telemetry.records_read(&self.source, records, dead);
        if let Some((table, expected)) = table {
            self.telemetry
                .page_read(&self.source, table, records, expected);
        }
    }

    /// Sends what a page brought to the epoch loop: upserts for the models
    /// with their `_payload` texts, changes of configured raw tables, and
    /// dead letters (written as JSON lines). False when the epoch loop is gone.
    pub fn send<D: Serialize>(
        &self,
        upserts: Vec<Upsert>,
        payloads: Payloads,
        raw: Vec<RawChange>,
        dead_letters: &[D],
    ) -> bool {
        let dead_letters = dead_letters
            .iter()
            .filter_map(|d| serde_json::to_string(d).ok())
            .collect();
        let msg = Msg::Read {
            upserts,
            payloads,
            raw,
            dead_letters,
        };
        // Taken before the send: the epoch loop may give the rows back at once.
        let rows = msg.rows();
        self.budget.take(rows);
        let sent = self.tx.send(msg).is_ok();
        if !sent {
            self.budget.release(rows);
        }
        sent
    }

    /// Announces that a configured table's columns were compared with its
    /// declaration upstream, to the epoch loop and the alerts.
    pub fn schema_checked(&self, table: &str, incompatible: Option<String>) {
        let _ = self.tx.send(Msg::SchemaChecked {
            table: table.to_string(),
            incompatible: incompatible.clone(),
        });
        let _ = self.events.send(SourceEvent::Schema {
            table: table.to_string(),
            incompatible,
        });
    }

    /// Announces a configured table's new declaration, before anything read
    /// under it.
    pub fn table_evolved(&self, def: TableDef, change: String) {
        let _ = self.tx.send(Msg::TableEvolved { def, change });
    }
}
