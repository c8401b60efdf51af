//! The BigCommerce source: reads customers, metafields, products, variants,
//! inventory and orders over REST and turns them into [`Upsert`]s.
//!
//! - [`client`]: authentication, pacing to the store quota, retries;
//! - [`wire`]: BigCommerce's JSON shapes, one record at a time;
//! - [`pull`]: keyset walks with hour-lookback cursors, and full scans;
//! - [`register`]: the store as the run reads it ([`Store`], [`collections::Collections`],
//!   the [`webhooks`] receiver).
//!
//! Cursors advance only when the caller says the data is durable
//! ([`Cursors::advance`] is the caller's call, not the source's).

pub mod config;
pub use config::{BigCommerceConfig, CollectionConfig};

pub mod by_id;
pub mod client;
pub mod collections;
pub mod dead_letter;
pub mod error;
pub mod governor;
pub mod pull;
mod source;
pub mod webhooks;
pub mod wire;

use std::collections::BTreeMap;

use dataflows::records::Upsert;
use dataflows::scalar::Micros;
use futures::future::try_join_all;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::Instrument;

pub use by_id::Target;
pub use client::Client;
pub use dead_letter::DeadLetter;
pub use error::BigCommerceError;
pub use pull::{Batch, Entity, EntityPull, PullMode};
pub use source::{Store, register};

/// Per-entity high-water marks of `date_modified`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursors(BTreeMap<Entity, Micros>);

impl Cursors {
    /// Whether no entity was ever read (no pull of the store completed).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The cursor of `entity`, if it was ever read.
    pub fn get(&self, entity: Entity) -> Option<Micros> {
        self.0.get(&entity).copied()
    }

    /// Moves cursors forward to what `pulls` saw (never backwards).
    pub fn advance(&mut self, pulls: &[EntityPull]) {
        for p in pulls {
            if let Some(c) = p.cursor {
                let slot = self.0.entry(p.entity).or_insert(c);
                *slot = (*slot).max(c);
            }
        }
    }
}

/// The outcome of a pull of every entity.
#[derive(Clone, Debug)]
pub struct PullReport {
    /// One entry per entity.
    pub entities: Vec<EntityPull>,
}

impl PullReport {
    /// Records delivered, all entities.
    pub fn records(&self) -> u64 {
        self.entities.iter().map(|e| e.records).sum()
    }

    /// Records dead-lettered, all entities.
    pub fn dead_letters(&self) -> u64 {
        self.entities.iter().map(|e| e.dead_letters).sum()
    }
}

/// A BigCommerce store as a source of upserts.
#[derive(Debug)]
pub struct BigCommerceSource {
    client: Client,
    config: BigCommerceConfig,
}

impl BigCommerceSource {
    /// A source for the store of `config`; touches no network until pulled.
    pub fn new(config: BigCommerceConfig) -> Result<Self, BigCommerceError> {
        Ok(BigCommerceSource {
            client: Client::new(&config)?,
            config,
        })
    }

    /// The HTTP client (its counters and learnt quota).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The configuration.
    pub fn config(&self) -> &BigCommerceConfig {
        &self.config
    }

    /// Pulls every entity concurrently, sending each page's batch to `out` as
    /// soon as it is parsed. Incremental pulls start at each cursor minus the
    /// lookback; the returned cursors are to be [`Cursors::advance`]d once the
    /// batches are durable.
    pub async fn pull(
        &self,
        cursors: &Cursors,
        mode: PullMode,
        out: &mpsc::Sender<Batch>,
    ) -> Result<PullReport, BigCommerceError> {
        let walks =
            Entity::ALL.map(|entity| self.pull_entity(entity, cursors.get(entity), mode, out));
        Ok(PullReport {
            entities: try_join_all(walks).await?,
        })
    }

    /// Reads one entity by id (what a webhook names): its upserts with their
    /// payload texts, dead letters, and when the first request started. An
    /// entity that is gone reads as nothing.
    pub async fn fetch(&self, target: Target) -> Result<by_id::ReadById, BigCommerceError> {
        by_id::fetch_by_id(&self.client, target, self.config.page_size).await
    }

    /// Pulls one entity.
    pub async fn pull_entity(
        &self,
        entity: Entity,
        cursor: Option<Micros>,
        mode: PullMode,
        out: &mpsc::Sender<Batch>,
    ) -> Result<EntityPull, BigCommerceError> {
        let since = match mode {
            PullMode::FullSnapshot => None,
            PullMode::Incremental => {
                let lookback = i64::try_from(self.config.lookback.as_micros()).unwrap_or(i64::MAX);
                cursor.map(|c| c.saturating_sub(lookback))
            }
        };
        let span = tracing::info_span!("bigcommerce_pull", entity = entity.name(), ?mode);
        let started = std::time::Instant::now();
        let pull = pull::walk(
            &self.client,
            entity,
            since.filter(|_| entity.has_cursor()),
            cursor,
            self.config.page_size,
            self.config.max_concurrency,
            out,
        )
        .instrument(span.clone())
        .await?;
        let _enter = span.enter();
        tracing::debug!(
            records = pull.records,
            dead_letters = pull.dead_letters,
            pages = pull.pages,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "pulled"
        );
        Ok(pull)
    }
}

/// Collects every batch of a pull into upserts and dead letters (tests, tools).
pub async fn collect(mut rx: mpsc::Receiver<Batch>) -> (Vec<Upsert>, Vec<DeadLetter>) {
    let (mut upserts, mut dead) = (Vec::new(), Vec::new());
    while let Some(batch) = rx.recv().await {
        upserts.extend(batch.upserts);
        dead.extend(batch.dead_letters);
    }
    (upserts, dead)
}
