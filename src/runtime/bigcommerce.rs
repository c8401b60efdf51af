//! The loop that polls the BigCommerce store's built-in entities.

use std::sync::Arc;
use std::time::Duration;

use super::reconcile;
use super::{
    CursorUpdate, FullRead, Msg, ReadEnd, ReadOutcome, RunError, SourceLinks, end_read, json_lines,
    progress_kind,
};
use crate::sources::bigcommerce::webhooks::{Feed, Freshness};
use crate::sources::bigcommerce::{Batch, BigCommerceSource, DeadLetter, Entity, PullMode};

/// Polls the store until `stop` (or once), sending what it reads to the epoch loop.
pub(super) async fn bigcommerce_loop(
    source: Arc<BigCommerceSource>,
    freshness: Arc<Freshness>,
    poll_interval: Duration,
    mut cursors: crate::sources::bigcommerce::Cursors,
    once: bool,
    mut links: SourceLinks,
) {
    const NAME: &str = "bigcommerce";
    loop {
        let full = links.refresh.take();
        let mode = if full.is_some() {
            PullMode::FullSnapshot
        } else {
            PullMode::Incremental
        };
        links.full_read_starts(NAME, full);
        let backfill = Entity::ALL.into_iter().all(|e| cursors.get(e).is_none());
        let tracked = progress_kind(full, backfill).inspect(|kind| {
            links.telemetry.read_started(NAME, kind);
        });
        let (btx, mut brx) = tokio::sync::mpsc::channel::<Batch>(64);
        let forward_tx = links.tx.clone();
        let forward_freshness = freshness.clone();
        let telemetry = links.telemetry.clone();
        let forwarder = tokio::spawn(async move {
            while let Some(b) = brx.recv().await {
                telemetry.records_read(NAME, b.upserts.len() as u64, b.dead_letters.len() as u64);
                telemetry.page_read(
                    NAME,
                    b.entity.name(),
                    b.upserts.len() as u64,
                    b.expected_pages,
                );
                let dead_letters = json_lines::<DeadLetter>(&b.dead_letters);
                let payloads = b.payloads;
                let sent = forward_freshness.deliver_poll(b.fetched_at, b.upserts, |upserts| {
                    forward_tx
                        .send(Msg::Read {
                            raw: Vec::new(),
                            upserts,
                            payloads,
                            dead_letters,
                        })
                        .is_ok()
                });
                if !sent {
                    break;
                }
            }
        });
        let pulled = tokio::select! {
            r = source.pull(&cursors, mode, &btx) => Some(r),
            _ = links.stop.changed() => None,
        };
        drop(btx);
        let _ = forwarder.await;
        let Some(pulled) = pulled else { break };
        let outcome = match pulled {
            Ok(report) => {
                cursors.advance(&report.entities);
                ReadOutcome::Done(Msg::PullDone {
                    update: CursorUpdate::BigCommerce(report),
                    full: full.map(|generation| FullRead {
                        generation,
                        tables: reconcile::raw_tables_of("bigcommerce"),
                    }),
                    snapshots: Vec::new(),
                })
            }
            Err(e) => {
                let error: RunError = e.into();
                links.full_read_failed(NAME, full, &error);
                ReadOutcome::Failed {
                    retryable: error.is_retryable(),
                    error,
                }
            }
        };
        let client = source.client();
        let requests = client
            .stats()
            .requests
            .load(std::sync::atomic::Ordering::Relaxed);
        let quota = client
            .governor()
            .quota()
            .map(|q| (q, client.governor().used()));
        let read = ReadEnd {
            source: NAME,
            tracked: tracked.is_some(),
            requests,
            quota,
        };
        if !end_read(&mut links, once, read, outcome, poll_interval).await {
            break;
        }
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
