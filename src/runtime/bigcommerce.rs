//! The BigCommerce store's built-in entities as a [`Source`], and the webhook
//! receiver's feed.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use dataflows::Table;
use tokio::sync::mpsc;

use super::reconcile;
use super::source::{Pages, Seen, Source, SourceLinks, micros_text};
use super::{Msg, RunError, json_lines};
use crate::raw::RowKeyValue;
use crate::sources::bigcommerce::webhooks::{Feed, Freshness};
use crate::sources::bigcommerce::{
    Batch, BigCommerceSource, Cursors, DeadLetter, Entity, PullMode, PullReport,
};

/// The store's built-in entities, read from their cursors.
pub(super) struct Store {
    /// The store's client and reader.
    pub(super) source: Arc<BigCommerceSource>,
    /// Orders poll pages and webhook reads of the same rows (see its doc).
    pub(super) freshness: Arc<Freshness>,
    /// Where each entity's reads got to.
    pub(super) cursors: Cursors,
}

impl Store {
    /// The source's name.
    pub(super) const NAME: &str = "bigcommerce";
}

impl Source for Store {
    type Page = Batch;
    type Pulled = PullReport;
    type Cursors = Cursors;
    const PAGES_IN_FLIGHT: usize = 64;

    fn name(&self) -> &str {
        Self::NAME
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
        reconcile::raw_tables_of(Self::NAME)
    }

    fn forwarder(
        &self,
        _full: bool,
    ) -> impl FnMut(Batch, &mut Seen, &Pages) -> bool + Send + 'static {
        let freshness = self.freshness.clone();
        move |b: Batch, _: &mut Seen, pages: &Pages| {
            let (records, dead) = (b.upserts.len() as u64, b.dead_letters.len() as u64);
            pages.count(records, dead, Some((b.entity.name(), b.expected_pages)));
            let dead_letters = json_lines::<DeadLetter>(&b.dead_letters);
            let payloads = b.payloads;
            freshness.deliver_poll(b.fetched_at, b.upserts, |upserts| {
                pages.send(upserts, payloads, Vec::new(), dead_letters)
            })
        }
    }

    async fn read(
        &mut self,
        full: bool,
        pages: mpsc::Sender<Batch>,
    ) -> Result<PullReport, RunError> {
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
        _links: &SourceLinks,
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
pub(super) fn webhook_feed(tx: std::sync::mpsc::Sender<Msg>) -> Feed {
    Arc::new(move |upserts, payloads, dead: Vec<DeadLetter>| {
        let msg = Msg::Read {
            upserts,
            payloads,
            raw: Vec::new(),
            dead_letters: json_lines(&dead),
        };
        tx.send(msg).is_ok()
    })
}
