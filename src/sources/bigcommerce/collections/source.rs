//! Configured BigCommerce collections (`[[bigcommerce.collections]]`) as a
//! [`Source`] of their raw tables, on the store's client (one quota, one
//! governor), beside the built-in entities.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use dataflows::catalog::TableDef;
use tokio::sync::mpsc;

use super::{CollectionBatch, CollectionPull};
use crate::raw::RowKeyValue;
use crate::sources::bigcommerce::{BigCommerceError, BigCommerceSource, CollectionConfig};
use crate::sources::{Outlet, Seen, Source, SourceError, micros_text};

/// The source's name on the status page and in alerts.
pub const SOURCE: &str = "bigcommerce.collections";

/// A configured collection and its declaration.
pub type Collection = (CollectionConfig, Arc<TableDef>);

/// Declares every configured collection from its first page.
pub async fn declare(source: &BigCommerceSource) -> Result<Vec<Collection>, BigCommerceError> {
    let mut out = Vec::new();
    for c in &source.config().collections {
        let def = super::describe(source.client(), c).await?;
        tracing::info!(collection = %c.name, path = %c.path, table = %def.name, columns = def.columns.len(), "configured collection");
        out.push((c.clone(), Arc::new(def)));
    }
    Ok(out)
}

/// The configured collections, read on the store's client: those with a
/// cursor filter from their cursor minus the lookback, the others whole every
/// `scan_every` polls (and on a full refresh), which finds their deletes.
pub struct Collections {
    /// The store's client.
    source: Arc<BigCommerceSource>,
    /// Each collection and its declaration (evolved as fields appear).
    collections: Vec<Collection>,
    /// Each collection's cursor (µs since the Unix epoch; 0 for one read
    /// once without a cursor).
    cursors: BTreeMap<String, i64>,
    /// Reads so far.
    polls: u64,
}

impl Collections {
    /// The collections of `source`, nothing read yet.
    pub fn new(source: Arc<BigCommerceSource>, collections: Vec<Collection>) -> Collections {
        Collections {
            source,
            collections,
            cursors: BTreeMap::new(),
            polls: 0,
        }
    }
}

impl Source for Collections {
    type Page = CollectionBatch;
    type Pulled = Vec<CollectionPull>;
    type Cursors = BTreeMap<String, i64>;

    fn name(&self) -> &str {
        SOURCE
    }

    fn tables(&self) -> Vec<String> {
        self.collections
            .iter()
            .map(|(_, d)| d.name.clone())
            .collect()
    }

    fn raw_defs(&self) -> Vec<TableDef> {
        self.collections
            .iter()
            .map(|(_, d)| (**d).clone())
            .collect()
    }

    fn restore(&mut self, cursors: BTreeMap<String, i64>) {
        self.cursors = cursors;
    }

    fn poll_interval(&self) -> Duration {
        self.source.config().poll_interval
    }

    fn is_new(&self) -> bool {
        self.cursors.is_empty()
    }

    fn forwarder(
        &self,
        _full: bool,
    ) -> impl FnMut(CollectionBatch, &mut Seen, &Outlet) -> bool + Send + 'static {
        |batch: CollectionBatch, seen: &mut Seen, outlet: &Outlet| {
            for change in &batch.changes {
                seen.entry(change.table.clone())
                    .or_default()
                    .insert(change.key.clone());
            }
            let dead = batch.dead_letters.len() as u64;
            outlet.count(batch.changes.len() as u64, dead, None);
            outlet.send(
                Vec::new(),
                Default::default(),
                batch.changes,
                &batch.dead_letters,
            )
        }
    }

    async fn read(
        &mut self,
        full: bool,
        pages: mpsc::Sender<CollectionBatch>,
    ) -> Result<Vec<CollectionPull>, SourceError> {
        let lookback = i64::try_from(self.source.config().lookback.as_micros()).unwrap_or(i64::MAX);
        let polls = self.polls;
        self.polls += 1;
        let mut pulls = Vec::new();
        for (config, def) in &self.collections {
            let previous = self.cursors.get(&config.name).copied();
            let scan = full
                || previous.is_none()
                || (config.cursor_filter.is_none() && polls % u64::from(config.scan_every) == 0);
            if config.cursor_filter.is_none() && !scan {
                continue;
            }
            let since = if scan {
                None
            } else {
                previous.map(|c| c.saturating_sub(lookback))
            };
            let client = self.source.client();
            pulls.push(super::read(client, config, def, since, previous, &pages).await?);
        }
        Ok(pulls)
    }

    fn finish(
        &mut self,
        _full: bool,
        pulls: Vec<CollectionPull>,
        mut seen: Seen,
        outlet: &Outlet,
    ) -> Vec<(String, HashSet<RowKeyValue>)> {
        // Fields a collection gained: their columns come before the next read.
        for p in &pulls {
            let Some((config, def)) = self.collections.iter_mut().find(|(c, _)| c.name == p.name)
            else {
                continue;
            };
            if let Some(next) = super::with_new_fields(def, config, &p.new_fields) {
                let added: Vec<&str> = next
                    .columns
                    .iter()
                    .skip(def.columns.len())
                    .map(|c| c.name.as_str())
                    .collect();
                let change = format!("added {}", added.join(", "));
                *def = Arc::new(next.clone());
                outlet.table_evolved(next, change);
            }
        }
        for p in &pulls {
            // Collections without a cursor keep a marker: read once.
            let at = p.cursor.unwrap_or(0);
            let slot = self.cursors.entry(p.name.clone()).or_insert(at);
            *slot = (*slot).max(at);
        }
        pulls
            .iter()
            .filter(|p| p.whole)
            .filter_map(|p| {
                let (_, def) = self.collections.iter().find(|(c, _)| c.name == p.name)?;
                Some((def.name.clone(), seen.remove(&def.name).unwrap_or_default()))
            })
            .collect()
    }

    fn cursors(&self) -> &BTreeMap<String, i64> {
        &self.cursors
    }

    fn cursor_texts(&self) -> BTreeMap<String, String> {
        self.cursors
            .iter()
            .map(|(name, at)| (name.clone(), micros_text(*at)))
            .collect()
    }
}
