//! One PostgreSQL database's configured tables as a [`Source`]: those a
//! model reads feed the dataflow, any other lands as a configured raw table
//! (its columns discovered at start and followed when they change upstream).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use dataflows::Table;
use dataflows::catalog::TableDef;
use tokio::sync::mpsc;

use super::source::{Pages, Seen, Source, SourceLinks};
use super::supervisor::SourceEvent;
use super::{Msg, RunError, json_lines};
use crate::raw::RowKeyValue;
use crate::settings::Config;
use crate::sources::postgres::tables as pg_tables;
use crate::sources::postgres::upserts::{PgModel, upserts as pg_upserts};
use crate::sources::postgres::{PgBatch, PgCursors, PgSource, TablePull};

/// What a configured PostgreSQL table feeds.
#[derive(Clone, Debug)]
pub(super) enum PgTarget {
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
    pub(super) fn table_name(&self) -> String {
        match self {
            PgTarget::Model(model) => model.raw_table().name().to_string(),
            PgTarget::Raw { def, .. } => def.name.clone(),
        }
    }

    /// The declaration of a configured raw table.
    pub(super) fn raw_def(&self) -> Option<&TableDef> {
        match self {
            PgTarget::Model(_) => None,
            PgTarget::Raw { def, .. } => Some(def),
        }
    }
}

/// One PostgreSQL database's source and what each of its tables feeds.
pub(super) type PgSourceSetup = (String, PgSource, Vec<(String, PgTarget)>);

/// The PostgreSQL sources of `config`: a table a model reads feeds it; any
/// other table is a configured raw table, whose columns are discovered from
/// the database now (so the warehouse knows its schema before the first
/// read).
pub(super) async fn postgres_sources(config: &Config) -> Result<Vec<PgSourceSetup>, RunError> {
    let mut out = Vec::new();
    for (name, db) in &config.postgres {
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
        out.push((name.clone(), source, targets));
    }
    Ok(out)
}

/// One PostgreSQL database's configured tables, read from their cursors
/// (whole every poll for a table without one, and on a full refresh).
pub(super) struct Database {
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
    /// The source's name for the database of config name `database`.
    pub(super) fn source_name(database: &str) -> String {
        format!("postgres.{database}")
    }

    /// The database read by `source` into `targets`, from `cursors`.
    pub(super) fn new(
        source: PgSource,
        targets: Vec<(String, PgTarget)>,
        cursors: PgCursors,
    ) -> Database {
        Database {
            name: Self::source_name(source.name()),
            source,
            targets,
            cursors,
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

    async fn follow_upstream(&mut self, links: &SourceLinks) {
        if let Err(error) = follow_schemas(&self.source, &mut self.targets, links).await {
            tracing::warn!(source = %self.name, %error, "cannot check the tables' columns; reading with the known ones");
        }
    }

    fn forwarder(
        &self,
        full: bool,
    ) -> impl FnMut(PgBatch, &mut Seen, &Pages) -> bool + Send + 'static {
        let targets = self.targets.clone();
        move |batch: PgBatch, seen: &mut Seen, pages: &Pages| {
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
            pages.count(n, dead.len() as u64, Some((&batch.table, None)));
            pages.send(upserts, Default::default(), raw, json_lines(&dead))
        }
    }

    async fn read(
        &mut self,
        full: bool,
        pages: mpsc::Sender<PgBatch>,
    ) -> Result<Vec<TablePull>, RunError> {
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
        _links: &SourceLinks,
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
    links: &SourceLinks,
) -> Result<(), RunError> {
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
        let _ = links.tx.send(Msg::SchemaChecked {
            table: def.name.clone(),
            incompatible: incompatible.clone(),
        });
        let _ = links.events.send(SourceEvent::Schema {
            table: def.name.clone(),
            incompatible,
        });
        let change = change.describe();
        tracing::warn!(table = %def.name, %change, "columns changed upstream");
        *has_cursor = cursor;
        if evolved != **def {
            *def = Arc::new(evolved.clone());
            let _ = links.tx.send(Msg::TableEvolved {
                def: evolved,
                change,
            });
        }
    }
    Ok(())
}
