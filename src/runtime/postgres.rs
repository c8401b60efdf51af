//! The loop that reads one PostgreSQL database's configured tables: those a
//! model reads feed the dataflow, any other lands as a configured raw table
//! (its columns discovered at start and followed when they change upstream).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use dataflows::catalog::TableDef;

use super::supervisor::SourceEvent;
use super::{
    CursorUpdate, FullRead, Msg, ReadEnd, ReadOutcome, RunError, SourceLinks, end_read, json_lines,
    progress_kind,
};
use crate::raw::RowKeyValue;
use crate::settings::Config;
use crate::sources::postgres::tables as pg_tables;
use crate::sources::postgres::upserts::{PgModel, upserts as pg_upserts};
use crate::sources::postgres::{PgBatch, PgCursors, PgSource};

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

/// Polls one PostgreSQL database's tables until `stop` (or once), sending
/// their upserts (and configured tables' changes) to the epoch loop.
/// `targets`: each configured table and what it feeds. A full refresh reads
/// every table whole.
pub(super) async fn postgres_loop(
    source: PgSource,
    mut targets: Vec<(String, PgTarget)>,
    mut cursors: PgCursors,
    once: bool,
    mut links: SourceLinks,
) {
    let database = source.name().to_string();
    let name = format!("postgres.{database}");
    let poll_interval = source.config().poll_interval;
    loop {
        if let Err(error) = follow_schemas(&source, &mut targets, &links).await {
            tracing::warn!(source = %name, %error, "cannot check the tables' columns; reading with the known ones");
        }
        let full = links.refresh.take();
        links.full_read_starts(&name, full);
        let tracked = progress_kind(full, cursors.0.is_empty()).inspect(|kind| {
            links.telemetry.read_started(&name, kind);
        });
        let (btx, mut brx) = tokio::sync::mpsc::channel::<PgBatch>(16);
        let forward_tx = links.tx.clone();
        let forward_targets = targets.clone();
        let telemetry = links.telemetry.clone();
        let forward_name = name.clone();
        let whole_reads = full.is_some();
        // Forwards each page; returns the keys of the configured tables read whole.
        let forwarder = tokio::spawn(async move {
            let mut seen: HashMap<String, HashSet<RowKeyValue>> = HashMap::new();
            while let Some(batch) = brx.recv().await {
                let Some((_, target)) = forward_targets.iter().find(|(t, _)| *t == batch.table)
                else {
                    continue;
                };
                let (upserts, raw, mut dead) = match target {
                    PgTarget::Model(model) => {
                        let (upserts, dead) = pg_upserts(*model, &batch);
                        (upserts, Vec::new(), dead)
                    }
                    PgTarget::Raw { def, has_cursor } => {
                        let (raw, dead) = pg_tables::changes(def, &batch);
                        if whole_reads || !has_cursor {
                            let keys = seen.entry(def.name.clone()).or_default();
                            keys.extend(raw.iter().map(|c| c.key.clone()));
                        }
                        (Vec::new(), raw, dead)
                    }
                };
                dead.extend(batch.dead_letters);
                let n = (upserts.len() + raw.len()) as u64;
                telemetry.records_read(&forward_name, n, dead.len() as u64);
                telemetry.page_read(&forward_name, &batch.table, n, None);
                let msg = Msg::Read {
                    upserts,
                    payloads: Default::default(),
                    raw,
                    dead_letters: json_lines(&dead),
                };
                if forward_tx.send(msg).is_err() {
                    break;
                }
            }
            seen
        });
        let read = async {
            if full.is_some() {
                let mut pulls = Vec::new();
                for (table, _) in &targets {
                    pulls.push(source.full_snapshot(table, &btx).await?);
                }
                Ok(pulls)
            } else {
                source.poll(&cursors, &btx).await.map(|r| r.tables)
            }
        };
        let pulled = tokio::select! {
            r = read => Some(r),
            _ = links.stop.changed() => None,
        };
        drop(btx);
        let mut seen = forwarder.await.unwrap_or_default();
        let Some(pulled) = pulled else { break };
        let outcome = match pulled {
            Ok(pulls) => {
                cursors.advance(&pulls);
                // Whole-table reads of configured tables: their keys, even when empty.
                let snapshots = targets
                    .iter()
                    .filter_map(|(table, target)| {
                        let def = target.raw_def()?;
                        let whole = pulls.iter().any(|p| p.table == *table && p.snapshot);
                        whole
                            .then(|| (def.name.clone(), seen.remove(&def.name).unwrap_or_default()))
                    })
                    .collect();
                ReadOutcome::Done(Msg::PullDone {
                    update: CursorUpdate::Postgres {
                        database: database.clone(),
                        pulls,
                    },
                    full: full.map(|generation| FullRead {
                        generation,
                        tables: targets
                            .iter()
                            .filter_map(|(_, t)| match t {
                                PgTarget::Model(m) => Some(m.raw_table()),
                                PgTarget::Raw { .. } => None,
                            })
                            .collect(),
                    }),
                    snapshots,
                })
            }
            Err(e) => {
                let error: RunError = e.into();
                links.full_read_failed(&name, full, &error);
                ReadOutcome::Failed {
                    retryable: error.is_retryable(),
                    error,
                }
            }
        };
        let read = ReadEnd {
            source: &name,
            tracked: tracked.is_some(),
            requests: source.pages(),
            quota: None,
        };
        if !end_read(&mut links, once, read, outcome, poll_interval).await {
            break;
        }
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
