//! The BigCommerce store as the run reads it: its built-in entities as a
//! [`Source`] ([`Store`]), its configured collections as another
//! ([`Collections`]), and the webhook receiver as a push feed ([`register`]).
//!
//! The webhook receiver is not a [`Source`]: it has no cursor and no poll,
//! and what it reads must reach the epoch loop in order with the orders
//! poll pages of the same rows ([`Freshness`] decides, under one lock, which
//! of the two is newer), so it sends through its [`Outlet`] as it reads
//! instead of through the poll loop's page channel.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use dataflows::Table;
use tokio::sync::mpsc;

use prometheus_client::metrics::histogram::Histogram;

use super::collections::{self, Collections};
use super::webhooks::{Feed, Freshness, WebhookServer, WebhooksConfig};
use super::{
    Batch, BigCommerceConfig, BigCommerceSource, Cursors, DeadLetter, Entity, PullMode, PullReport,
};
use crate::config::LiveSecret;
use crate::raw::RowKeyValue;
use crate::sources::{Outlet, Register, Seen, Source, SourceError, micros_text, raw_tables_of};

/// Puts the store into the run, if one is configured (`[bigcommerce]`): its
/// entities, its configured collections (declared from their first page now,
/// so the warehouse knows their schema before the first read) and, in an
/// always-on run, the webhook receiver of `[webhooks]`.
pub async fn register(
    store: Option<&BigCommerceConfig>,
    webhooks: Option<&WebhooksConfig>,
    to: &mut impl Register,
) -> Result<(), SourceError> {
    let Some(bc) = store else {
        return Ok(());
    };
    let source = Arc::new(BigCommerceSource::new(bc.clone())?);
    // Orders poll pages and webhook reads of the same rows (see its doc).
    let freshness = Freshness::new();
    to.add(Store {
        source: source.clone(),
        freshness: freshness.clone(),
        cursors: Cursors::default(),
    });
    let declared = collections::declare(&source).await?;
    if !declared.is_empty() {
        to.add(Collections::new(source.clone(), declared));
    }
    if let Some(webhooks) = webhooks.cloned().filter(|_| !to.once()) {
        to.add_push("bigcommerce.webhooks", move |outlet, stop| async move {
            WebhookServer::start(&webhooks, source, freshness, webhook_feed(outlet), stop).await?;
            Ok(())
        });
    }
    Ok(())
}

/// The store's built-in entities, read from their cursors.
pub struct Store {
    /// The store's client and reader.
    source: Arc<BigCommerceSource>,
    /// Orders poll pages and webhook reads of the same rows (see its doc).
    freshness: Arc<Freshness>,
    /// Where each entity's reads got to.
    cursors: Cursors,
}

impl Store {
    /// The source's name.
    pub const NAME: &str = "bigcommerce";
}

impl Source for Store {
    type Page = Batch;
    type Pulled = PullReport;
    type Cursors = Cursors;
    const PAGES_IN_FLIGHT: usize = 64;

    fn name(&self) -> &str {
        Self::NAME
    }

    fn tables(&self) -> Vec<String> {
        self.covers().iter().map(|t| t.name().to_string()).collect()
    }

    fn secrets(&self) -> Vec<(String, LiveSecret)> {
        let token = self.source.client().token().clone();
        vec![("bigcommerce.access_token".to_string(), token)]
    }

    fn observe_latency(&self, histogram: impl FnOnce() -> Histogram) {
        self.source.client().observe_latency(histogram());
    }

    fn restore(&mut self, cursors: Cursors) {
        self.cursors = cursors;
    }

    fn poll_interval(&self) -> Duration {
        self.source.config().poll_interval
    }

    fn is_new(&self) -> bool {
        Entity::ALL
            .into_iter()
            .all(|e| self.cursors.get(e).is_none())
    }

    fn covers(&self) -> Vec<Table> {
        raw_tables_of(Self::NAME)
    }

    fn forwarder(
        &self,
        _full: bool,
    ) -> impl FnMut(Batch, &mut Seen, &Outlet) -> bool + Send + 'static {
        let freshness = self.freshness.clone();
        move |b: Batch, _: &mut Seen, outlet: &Outlet| {
            let (records, dead) = (b.upserts.len() as u64, b.dead_letters.len() as u64);
            outlet.count(records, dead, Some((b.entity.name(), b.expected_pages)));
            let (payloads, dead_letters) = (b.payloads, b.dead_letters);
            freshness.deliver_poll(b.fetched_at, b.upserts, |upserts| {
                outlet.send(upserts, payloads, Vec::new(), &dead_letters)
            })
        }
    }

    async fn read(
        &mut self,
        full: bool,
        pages: mpsc::Sender<Batch>,
    ) -> Result<PullReport, SourceError> {
        let mode = if full {
            PullMode::FullSnapshot
        } else {
            PullMode::Incremental
        };
        Ok(self.source.pull(&self.cursors, mode, &pages).await?)
    }

    fn finish(
        &mut self,
        _full: bool,
        report: PullReport,
        _seen: Seen,
        _outlet: &Outlet,
    ) -> Vec<(String, HashSet<RowKeyValue>)> {
        self.cursors.advance(&report.entities);
        Vec::new()
    }

    fn cursors(&self) -> &Cursors {
        &self.cursors
    }

    fn cursor_texts(&self) -> BTreeMap<String, String> {
        Entity::ALL
            .into_iter()
            .filter_map(|e| Some((e.name().to_string(), micros_text(self.cursors.get(e)?))))
            .collect()
    }

    fn requests(&self) -> (u64, Option<(u32, u32)>) {
        let client = self.source.client();
        let requests = client
            .stats()
            .requests
            .load(std::sync::atomic::Ordering::Relaxed);
        let governor = client.governor();
        (requests, governor.quota().map(|q| (q, governor.used())))
    }
}

/// What the webhook receiver reads goes to the epoch loop like a poll's page.
fn webhook_feed(outlet: Outlet) -> Feed {
    Arc::new(move |upserts, payloads, dead: Vec<DeadLetter>| {
        outlet.send(upserts, payloads, Vec::new(), &dead)
    })
}
