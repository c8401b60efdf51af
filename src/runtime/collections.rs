//! The loop that reads configured BigCommerce collections (`[[bigcommerce.collections]]`)
//! into their raw tables, on the store's client (one quota, one governor),
//! beside the built-in entities' loop.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use dataflows::catalog::TableDef;

use super::{
    CursorUpdate, FullRead, Msg, ReadEnd, ReadOutcome, RunError, SourceLinks, end_read, json_lines,
    progress_kind,
};
use crate::raw::RowKeyValue;
use crate::sources::bigcommerce::BigCommerceSource;
use crate::sources::bigcommerce::CollectionConfig;
use crate::sources::bigcommerce::collections::{self, CollectionBatch};

/// The source's name on the status page and in alerts.
pub const SOURCE: &str = "bigcommerce.collections";

/// A configured collection and its declaration.
pub type Collection = (CollectionConfig, Arc<TableDef>);

/// Declares every configured collection from its first page.
pub async fn describe(source: &BigCommerceSource) -> Result<Vec<Collection>, RunError> {
    let mut out = Vec::new();
    for c in &source.config().collections {
        let def = collections::describe(source.client(), c).await?;
        tracing::info!(collection = %c.name, path = %c.path, table = %def.name, columns = def.columns.len(), "configured collection");
        out.push((c.clone(), Arc::new(def)));
    }
    Ok(out)
}

/// Polls the collections until stop (or once): collections with a cursor
/// filter from their cursor minus the lookback, the others whole every
/// `scan_every` polls (and on a full refresh), which finds their deletes.
pub async fn collections_loop(
    source: Arc<BigCommerceSource>,
    mut collections: Vec<Collection>,
    mut cursors: BTreeMap<String, i64>,
    once: bool,
    mut links: SourceLinks,
) {
    let poll_interval: Duration = source.config().poll_interval;
    let lookback = i64::try_from(source.config().lookback.as_micros()).unwrap_or(i64::MAX);
    let mut polls: u64 = 0;
    loop {
        let full = links.refresh.take();
        links.full_read_starts(SOURCE, full);
        let tracked = progress_kind(full, cursors.is_empty()).inspect(|kind| {
            links.telemetry.read_started(SOURCE, kind);
        });
        let (btx, mut brx) = tokio::sync::mpsc::channel::<CollectionBatch>(16);
        let forward_tx = links.tx.clone();
        let telemetry = links.telemetry.clone();
        let forwarder = tokio::spawn(async move {
            let mut seen: HashMap<String, HashSet<RowKeyValue>> = HashMap::new();
            while let Some(batch) = brx.recv().await {
                for change in &batch.changes {
                    seen.entry(change.table.clone())
                        .or_default()
                        .insert(change.key.clone());
                }
                telemetry.records_read(
                    SOURCE,
                    batch.changes.len() as u64,
                    batch.dead_letters.len() as u64,
                );
                let msg = Msg::Read {
                    upserts: Vec::new(),
                    payloads: Default::default(),
                    raw: batch.changes,
                    dead_letters: json_lines(&batch.dead_letters),
                };
                if forward_tx.send(msg).is_err() {
                    break;
                }
            }
            seen
        });
        let read = async {
            let mut pulls = Vec::new();
            for (config, def) in &collections {
                let previous = cursors.get(&config.name).copied();
                let scan = full.is_some()
                    || previous.is_none()
                    || (config.cursor_filter.is_none()
                        && polls % u64::from(config.scan_every) == 0);
                if config.cursor_filter.is_none() && !scan {
                    continue;
                }
                let since = if scan {
                    None
                } else {
                    previous.map(|c| c.saturating_sub(lookback))
                };
                pulls.push(
                    collections::read(source.client(), config, def, since, previous, &btx).await?,
                );
            }
            Ok::<_, RunError>(pulls)
        };
        let pulled = tokio::select! {
            r = read => Some(r),
            _ = links.stop.changed() => None,
        };
        drop(btx);
        let mut seen = forwarder.await.unwrap_or_default();
        let Some(pulled) = pulled else { break };
        polls += 1;
        let outcome = match pulled {
            Ok(pulls) => {
                // Fields a collection gained: their columns come before the next read.
                for p in &pulls {
                    let Some((config, def)) =
                        collections.iter_mut().find(|(c, _)| c.name == p.name)
                    else {
                        continue;
                    };
                    if let Some(next) = collections::with_new_fields(def, config, &p.new_fields) {
                        let added: Vec<&str> = next
                            .columns
                            .iter()
                            .skip(def.columns.len())
                            .map(|c| c.name.as_str())
                            .collect();
                        let change = format!("added {}", added.join(", "));
                        *def = Arc::new(next.clone());
                        let _ = links.tx.send(Msg::TableEvolved { def: next, change });
                    }
                }
                for p in &pulls {
                    // Collections without a cursor keep a marker: read once.
                    let at = p.cursor.unwrap_or(0);
                    let slot = cursors.entry(p.name.clone()).or_insert(at);
                    *slot = (*slot).max(at);
                }
                let snapshots = pulls
                    .iter()
                    .filter(|p| p.whole)
                    .filter_map(|p| {
                        let (_, def) = collections.iter().find(|(c, _)| c.name == p.name)?;
                        Some((def.name.clone(), seen.remove(&def.name).unwrap_or_default()))
                    })
                    .collect();
                ReadOutcome::Done(Msg::PullDone {
                    update: CursorUpdate::Collections { pulls },
                    full: full.map(|generation| FullRead {
                        generation,
                        tables: Vec::new(),
                    }),
                    snapshots,
                })
            }
            Err(error) => {
                links.full_read_failed(SOURCE, full, &error);
                ReadOutcome::Failed {
                    retryable: error.is_retryable(),
                    error,
                }
            }
        };
        let read = ReadEnd {
            source: SOURCE,
            tracked: tracked.is_some(),
            requests: 0,
            quota: None,
        };
        if !end_read(&mut links, once, read, outcome, poll_interval).await {
            break;
        }
    }
}
