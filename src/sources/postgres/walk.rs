//! One walk over a table: keyset pages from the cursor (or the whole table),
//! each decoded and handed on as a [`PgBatch`], with the reconnect-and-resume
//! rule of the module docs.

use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tracing::Instrument;

use super::read::{RawParam, WalkKind};
use super::{
    CursorValue, PgBatch, PgDeadLetter, PgError, PgSource, PostgresTable, TablePull, backoff, error,
};

impl PgSource {
    /// Reads one table: pages of rows to `out`, retrying lost connections
    /// and resuming after the last page delivered.
    pub(super) async fn walk(
        &self,
        table_name: &str,
        kind: WalkKind,
        since: Option<CursorValue>,
        previous: Option<CursorValue>,
        out: &mpsc::Sender<PgBatch>,
    ) -> Result<TablePull, PgError> {
        let table = self.table(table_name)?;
        let span =
            tracing::info_span!("postgres_read", database = %self.name, table = %table.name, ?kind);
        let started = std::time::Instant::now();
        let pull = self
            .walk_inner(table, kind, since, previous, out)
            .instrument(span.clone())
            .await?;
        let _enter = span.enter();
        tracing::debug!(
            rows = pull.rows,
            dead_letters = pull.dead_letters,
            pages = pull.pages,
            retries = pull.retries,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "read"
        );
        Ok(pull)
    }

    async fn walk_inner(
        &self,
        table: &PostgresTable,
        kind: WalkKind,
        since: Option<CursorValue>,
        previous: Option<CursorValue>,
        out: &mpsc::Sender<PgBatch>,
    ) -> Result<TablePull, PgError> {
        // A table without a cursor is read whole at every poll.
        let kind = match kind {
            WalkKind::Incremental => {
                let session = self.session().await?;
                match self.plan(&session, table).await?.cursor {
                    Some(_) => WalkKind::Incremental,
                    None => WalkKind::Snapshot,
                }
            }
            snapshot => snapshot,
        };
        let mut pull = TablePull {
            table: table.name.clone(),
            cursor: previous,
            rows: 0,
            dead_letters: 0,
            pages: 0,
            retries: 0,
            snapshot: kind == WalkKind::Snapshot,
        };
        let mut after: Option<Vec<RawParam>> = None;
        let mut null_keys_pending = kind == WalkKind::Snapshot;
        let mut failures = 0u32;
        loop {
            let attempt = async {
                let session = self.session().await?;
                let plan = self.plan(&session, table).await?;
                if !self.fits_declared(&table.name, &plan) {
                    return Err(self.schema_changed_error(table));
                }
                let context = || format!("reading table {}", table.name);
                let started = std::time::Instant::now();
                self.pages.fetch_add(1, Ordering::Relaxed);
                let rows = if null_keys_pending {
                    plan.fetch_null_keys(&session.client).await
                } else {
                    plan.fetch(&session.client, kind, since, after.as_deref())
                        .await
                };
                if let Some(latency) = self.latency.get() {
                    latency.observe(started.elapsed().as_secs_f64());
                }
                match rows {
                    Ok(rows) => Ok((plan, rows)),
                    Err(e) if error::is_stale_plan(&e) => {
                        session.plans.lock().await.remove(&table.name);
                        Err(self.schema_changed_error(table))
                    }
                    Err(e) => {
                        let e = PgError::from_driver(&self.name, &context(), e);
                        if e.is_retryable() {
                            self.invalidate(&session).await;
                        }
                        Err(e)
                    }
                }
            }
            .await;
            let (plan, rows) = match attempt {
                Ok(ok) => ok,
                Err(e @ PgError::SchemaChanged { .. }) => return Err(e),
                Err(e) if e.is_retryable() => {
                    failures += 1;
                    pull.retries += 1;
                    if failures >= self.config.max_attempts {
                        return Err(PgError::Exhausted {
                            database: self.name.clone(),
                            attempts: failures,
                            last: Box::new(e),
                        });
                    }
                    let delay = backoff(failures);
                    tracing::warn!(attempt = failures, delay_ms = delay.as_millis() as u64, error = %e, "retrying");
                    tokio::time::sleep(delay).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            failures = 0;
            let mut batch = PgBatch {
                database: self.name.clone(),
                table: table.name.clone(),
                columns: plan.columns.clone(),
                rows: Vec::with_capacity(rows.len()),
                dead_letters: Vec::new(),
            };
            for row in &rows {
                let cursor = plan.cursor_of(row);
                match (plan.decode(&self.name, &table.name, row), cursor) {
                    (Ok(r), Ok(c)) => {
                        pull.cursor = Some(pull.cursor.map_or(c, |p| p.max(c)));
                        batch.rows.push(r);
                    }
                    (Ok(r), Err(reason)) if kind == WalkKind::Snapshot => {
                        // A snapshot reads rows with a NULL cursor too.
                        let _ = reason;
                        batch.rows.push(r);
                    }
                    (Ok(r), Err(reason)) => batch.dead_letters.push(PgDeadLetter {
                        database: self.name.clone(),
                        table: table.name.clone(),
                        key: r
                            .key
                            .iter()
                            .zip(&table.key)
                            .map(|(v, k)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        column: plan.cursor.clone(),
                        reason: format!(
                            "column {}: {reason}",
                            plan.cursor.as_deref().unwrap_or("?")
                        ),
                    }),
                    (Err(dead), Ok(c)) => {
                        pull.cursor = Some(pull.cursor.map_or(c, |p| p.max(c)));
                        batch.dead_letters.push(dead);
                    }
                    (Err(dead), Err(_)) => batch.dead_letters.push(dead),
                }
            }
            for d in &batch.dead_letters {
                tracing::warn!(key = %d.key, reason = %d.reason, "dead letter");
            }
            pull.pages += 1;
            pull.rows += batch.rows.len() as u64;
            pull.dead_letters += batch.dead_letters.len() as u64;
            // The snapshot's NULL-key query comes first and is not paged.
            let was_null_keys = std::mem::replace(&mut null_keys_pending, false);
            let full_page = !was_null_keys && rows.len() >= plan.page_size;
            if full_page {
                if let Some(last) = rows.last() {
                    after = Some(plan.bound(kind, last));
                }
            }
            if !batch.rows.is_empty() || !batch.dead_letters.is_empty() {
                out.send(batch).await.map_err(|_| PgError::ConsumerGone {
                    database: self.name.clone(),
                    table: table.name.clone(),
                })?;
            }
            if !was_null_keys && !full_page {
                return Ok(pull);
            }
        }
    }
}
