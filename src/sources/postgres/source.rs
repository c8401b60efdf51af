//! One PostgreSQL database's configured tables as a [`Source`]: those a
//! model reads feed the dataflow, any other lands as a configured raw table
//! (its columns discovered at start and followed when they change upstream).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use dataflows::Table;
use dataflows::catalog::TableDef;
use tokio::sync::mpsc;

use prometheus_client::metrics::histogram::Histogram;

use super::tables as pg_tables;
use super::upserts::{PgModel, upserts as pg_upserts};
use super::{PgBatch, PgCursors, PgError, PgSource, PostgresConfig, TablePull};
use crate::config::LiveSecret;
use crate::raw::RowKeyValue;
use crate::sources::{Outlet, Register, Seen, Source, SourceError};

/// What a configured PostgreSQL table feeds.
#[derive(Clone, Debug)]
enum PgTarget {
    /// A model's typed raw table (`raw_pg_point_transaction`, `raw_pg_quotation`).
    Model(PgModel),
    /// A raw table no model reads, with its discovered declaration; without
    /// a cursor, every poll reads it whole.
    Raw {
        def: Arc<TableDef>,
        has_cursor: bool,
    },
}

impl PgTarget {
    /// The warehouse table it fills.
    fn table_name(&self) -> String {
        match self {
            PgTarget::Model(model) => model.raw_table().name().to_string(),
            PgTarget::Raw { def, .. } => def.name.clone(),
        }
    }

    /// The declaration of a configured raw table.
    fn raw_def(&self) -> Option<&TableDef> {
        match self {
            PgTarget::Model(_) => None,
            PgTarget::Raw { def, .. } => Some(def),
        }
    }
}

/// Puts the configured PostgreSQL databases (`[postgres.<name>]`) into the
/// run, one source each:
/// a table a model reads feeds it; any other table is a configured raw
/// table, whose columns are discovered from the database now (so the
/// warehouse knows its schema before the first read).
pub async fn register(
    databases: &BTreeMap<String, PostgresConfig>,
    to: &mut impl Register,
) -> Result<(), SourceError> {
    for (name, db) in databases {
        let source = PgSource::new(name, db.clone())?;
        let mut targets = Vec::new();
        for table in &db.tables {
            let target = match PgModel::for_table(&table.name) {
                Some(model) => PgTarget::Model(model),
                None => {
                    let (def, has_cursor) = source.describe(&table.name).await?;
                    tracing::info!(database = %name, table = %table.name, raw_table = %def.name, columns = def.columns.len(), has_cursor, "configured table");
                    PgTarget::Raw {
                        def: Arc::new(def),
                        has_cursor,
                    }
                }
            };
            targets.push((table.name.clone(), target));
        }
        to.add(Database::new(source, targets));
    }
    Ok(())
}

/// One PostgreSQL database's configured tables, read from their cursors
/// (whole every poll for a table without one, and on a full refresh).
pub struct Database {
    /// The source's name: `postgres.<config name>`.
    name: String,
    /// The database's reader.
    source: PgSource,
    /// Each configured table and what it feeds.
    targets: Vec<(String, PgTarget)>,
    /// Where each table's reads got to.
    cursors: PgCursors,
}

impl Database {
    /// The database read by `source` into `targets`, nothing read yet.
    fn new(source: PgSource, targets: Vec<(String, PgTarget)>) -> Database {
        Database {
            name: format!("postgres.{}", source.name()),
            source,
            targets,
            cursors: PgCursors::default(),
        }
    }
}

impl Source for Database {
    type Page = PgBatch;
    type Pulled = Vec<TablePull>;
    type Cursors = PgCursors;

    fn name(&self) -> &str {
        &self.name
    }

    fn tables(&self) -> Vec<String> {
        self.targets.iter().map(|(_, t)| t.table_name()).collect()
    }

    fn raw_defs(&self) -> Vec<TableDef> {
        let defs = self.targets.iter().filter_map(|(_, t)| t.raw_def());
        defs.cloned().collect()
    }

    fn secrets(&self) -> Vec<(String, LiveSecret)> {
        let key = format!("postgres.{}.url", self.source.name());
        vec![(key, self.source.url().clone())]
    }

    fn observe_latency(&self, histogram: impl FnOnce() -> Histogram) {
        self.source.observe_latency(histogram());
    }

    fn restore(&mut self, cursors: PgCursors) {
        self.cursors = cursors;
    }

    fn poll_interval(&self) -> Duration {
        self.source.config().poll_interval
    }

    fn is_new(&self) -> bool {
        self.cursors.0.is_empty()
    }

    fn covers(&self) -> Vec<Table> {
        self.targets
            .iter()
            .filter_map(|(_, t)| match t {
                PgTarget::Model(m) => Some(m.raw_table()),
                PgTarget::Raw { .. } => None,
            })
            .collect()
    }

    async fn follow_upstream(&mut self, outlet: &Outlet) {
        if let Err(error) = follow_schemas(&self.source, &mut self.targets, outlet).await {
            tracing::warn!(source = %self.name, %error, "cannot check the tables' columns; reading with the known ones");
        }
    }

    fn forwarder(
        &self,
        full: bool,
    ) -> impl FnMut(PgBatch, &mut Seen, &Outlet) -> bool + Send + 'static {
        let targets = self.targets.clone();
        move |batch: PgBatch, seen: &mut Seen, outlet: &Outlet| {
            let Some((_, target)) = targets.iter().find(|(t, _)| *t == batch.table) else {
                return true;
            };
            let (upserts, raw, mut dead) = match target {
                PgTarget::Model(model) => {
                    let (upserts, dead) = pg_upserts(*model, &batch);
                    (upserts, Vec::new(), dead)
                }
                PgTarget::Raw { def, has_cursor } => {
                    let (raw, dead) = pg_tables::changes(def, &batch);
                    if full || !has_cursor {
                        let keys = seen.entry(def.name.clone()).or_default();
                        keys.extend(raw.iter().map(|c| c.key.clone()));
                    }
                    (Vec::new(), raw, dead)
                }
            };
            dead.extend(batch.dead_letters);
            let n = (upserts.len() + raw.len()) as u64;
            outlet.count(n, dead.len() as u64, Some((&batch.table, None)));
            outlet.send(upserts, Default::default(), raw, &dead)
        }
    }

    async fn read(
        &mut self,
        full: bool,
        pages: mpsc::Sender<PgBatch>,
    ) -> Result<Vec<TablePull>, SourceError> {
        if full {
            let mut pulls = Vec::new();
            for (table, _) in &self.targets {
                pulls.push(self.source.full_snapshot(table, &pages).await?);
            }
            Ok(pulls)
        } else {
            Ok(self.source.poll(&self.cursors, &pages).await?.tables)
        }
    }

    fn finish(
        &mut self,
        _full: bool,
        pulls: Vec<TablePull>,
        mut seen: Seen,
        _outlet: &Outlet,
    ) -> Vec<(String, HashSet<RowKeyValue>)> {
        self.cursors.advance(&pulls);
        // Whole-table reads of configured tables: their keys, even when empty.
        self.targets
            .iter()
            .filter_map(|(table, target)| {
                let def = target.raw_def()?;
                let whole = pulls.iter().any(|p| p.table == *table && p.snapshot);
                whole.then(|| (def.name.clone(), seen.remove(&def.name).unwrap_or_default()))
            })
            .collect()
    }

    fn cursors(&self) -> &PgCursors {
        &self.cursors
    }

    fn cursor_texts(&self) -> BTreeMap<String, String> {
        self.cursors
            .0
            .iter()
            .map(|(t, v)| (t.clone(), v.to_string()))
            .collect()
    }

    fn requests(&self) -> (u64, Option<(u32, u32)>) {
        (self.source.pages(), None)
    }
}

/// Evolves the declaration of every configured table whose columns changed
/// upstream since the last poll, and announces it to the epoch loop before
/// anything read under it (docs/tables.md, Schema evolution).
async fn follow_schemas(
    source: &PgSource,
    targets: &mut [(String, PgTarget)],
    outlet: &Outlet,
) -> Result<(), PgError> {
    for (table, target) in targets.iter_mut() {
        let PgTarget::Raw { def, has_cursor } = target else {
            continue;
        };
        if !source.schema_changed(table).await? {
            continue;
        }
        let (upstream, cursor) = source.describe(table).await?;
        let (evolved, change) = crate::raw::evolution::evolve(def, &upstream);
        let incompatible = change.incompatible_text();
        outlet.schema_checked(&def.name, incompatible);
        let change = change.describe();
        tracing::warn!(table = %def.name, %change, "columns changed upstream");
        *has_cursor = cursor;
        if evolved != **def {
            *def = Arc::new(evolved.clone());
            outlet.table_evolved(evolved, change);
        }
    }
    Ok(())
}
