//! The PostgreSQL source: reads the tables declared under `[postgres.NAME]`
//! with keyset pagination on `(cursor, key…)` and an hour-lookback cursor, on
//! connections that are read-only by construction; and the ad-hoc
//! [`query`] tool behind `govflow query`.
//!
//! # Using the source
//!
//! ```no_run
//! # async fn f(config: govflow::sources::postgres::PostgresConfig) -> Result<(), govflow::sources::postgres::PgError> {
//! use govflow::sources::postgres::{PgCursors, PgSource, collect};
//! let source = PgSource::new("wise", config)?;          // no network yet
//! let mut cursors = PgCursors::default();                // or from the checkpoint (serde)
//! let (tx, rx) = tokio::sync::mpsc::channel(16);
//! let report = source.poll(&cursors, &tx).await?;        // one PgBatch per page goes to tx
//! drop(tx);
//! let (rows, dead_letters) = collect(rx).await;
//! // … once the epoch holding those rows is committed by every sink:
//! cursors.advance(&report.tables);
//! # Ok(()) }
//! ```
//!
//! - [`PgSource::poll`] reads every table from its cursor minus the lookback;
//!   [`PgSource::poll_table`] reads one. Each page of rows goes to the channel
//!   as a [`PgBatch`] `{ database, table, columns, rows, dead_letters }` as
//!   soon as it is decoded; a row is a [`PgRow`] `{ key, values }` of typed
//!   [`PgValue`]s, `values` in the order of `columns`.
//! - The returned [`TablePull`]s carry the newest cursor value read; the
//!   caller applies them with [`PgCursors::advance`] only after the data is
//!   durable. [`PgCursors`] is a serde map `table → CursorValue`, the per-table
//!   part of the checkpoint.
//! - [`PgSource::full_snapshot`] reads every row of a table ordered by key
//!   (keyset on the key alone), for a full refresh: rows deleted upstream are
//!   the keys the caller holds that the snapshot did not deliver. A cursor
//!   cannot see deletes.
//!
//! # Cursors and the lookback
//! The cursor of a table is the largest cursor value read (`updated_at` by
//! default). A poll reads `WHERE cursor >= last - lookback` (default 1 h)
//! `ORDER BY cursor, key… LIMIT page`, then continues with
//! `WHERE (cursor, key…) > (last row's)` until a short page: a transaction that
//! commits late with an `updated_at` older than the cursor, but inside the
//! lookback, is read by the next poll. Re-reading unchanged rows is harmless:
//! downstream upserts of an unchanged row are no change. The start is
//! inclusive and needs no key: rows sharing the newest cursor value are read
//! again rather than skipped. An integer cursor (a version counter) has no
//! time scale: it restarts at its last value.
//!
//! Rows whose cursor is NULL are not read by polls (a full snapshot reads
//! them). A row with a NULL key column is dead-lettered when a poll meets it.
//!
//! # Read-only by construction
//! Every connection sets `default_transaction_read_only = on` as a startup
//! option and checks it with `SHOW` before use, so every statement govflow
//! sends runs in a read-only transaction and PostgreSQL refuses any write
//! (SQLSTATE 25006).
//!
//! # Reconnecting
//! A lost connection, a server restart (SQLSTATE 57P01…), or a failed connect
//! is retried after an exponential backoff with jitter (100 ms doubling to
//! 10 s), up to `max_attempts` consecutive failures; the walk resumes after the
//! last page it delivered, so nothing is lost or delivered twice. SQL errors
//! (a missing table or column) fail at once, naming the table.
//!
//! # Columns that change under a read
//! A configured table's declaration is the columns [`PgSource::describe`]
//! last saw. When they change upstream between that and a read (PostgreSQL
//! refuses the statements prepared for the old ones with SQLSTATE 0A000, or
//! a new connection prepares for the new ones), the read stops with
//! [`PgError::SchemaChanged`], which is transient: the next poll follows the
//! change ([`PgSource::schema_changed`]) before it reads again. Rows are
//! never delivered under a declaration they do not fit.

pub mod config;
pub use config::{PostgresConfig, PostgresTable};

pub mod connect;
pub mod error;
pub mod output;
pub mod query;
pub mod read;
pub mod schema;
mod source;
pub mod tables;
pub mod upserts;
pub mod value;
mod walk;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::try_join_all;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, mpsc};

pub use connect::{ConnectSpec, TlsMode};
pub use error::PgError;
pub use read::CursorValue;
pub use source::{Database, register};
pub use value::{Decimal, PgValue};

use crate::config::{LiveSecret, Secret};
use dataflows::catalog::TableDef;
use read::{TablePlan, WalkKind};

/// A table's columns as the database's catalog describes them, by name.
type Attributes = HashMap<String, schema::Attribute>;

/// First backoff delay; doubles per consecutive failure up to [`MAX_BACKOFF`].
const BASE_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A column of a table as read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgColumn {
    /// The column name.
    pub name: String,
    /// PostgreSQL's type name (`int8`, `numeric`, `timestamptz`, …).
    pub pg_type: String,
}

/// One row: its key (the configured key columns, none NULL) and every value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PgRow {
    /// The key columns' values, in the configured order.
    pub key: Vec<PgValue>,
    /// Every column's value, in the order of [`PgBatch::columns`].
    pub values: Vec<PgValue>,
}

/// A row that could not be decoded: kept aside with enough to find it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgDeadLetter {
    /// The database's config name.
    pub database: String,
    /// The table.
    pub table: String,
    /// The key as `col=value, …` (`?` where it could not be decoded).
    pub key: String,
    /// The offending column, when one is to blame.
    pub column: Option<String>,
    /// Why the row was rejected (without the value).
    pub reason: String,
}

/// One page of a table, handed on as soon as it is decoded.
#[derive(Clone, Debug)]
pub struct PgBatch {
    /// The database's config name.
    pub database: String,
    /// The table, as configured.
    pub table: String,
    /// The table's columns, shared by every batch of a walk.
    pub columns: Arc<[PgColumn]>,
    /// Decoded rows.
    pub rows: Vec<PgRow>,
    /// Rows that could not be decoded.
    pub dead_letters: Vec<PgDeadLetter>,
}

/// The result of reading one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TablePull {
    /// The table.
    pub table: String,
    /// The newest cursor value read (never older than the previous cursor).
    pub cursor: Option<CursorValue>,
    /// Rows delivered.
    pub rows: u64,
    /// Rows dead-lettered.
    pub dead_letters: u64,
    /// Pages read.
    pub pages: u64,
    /// Failed attempts that were retried (reconnects).
    pub retries: u64,
    /// Whether the walk read the whole table (a full snapshot, or a poll of a
    /// table without a cursor): keys it did not deliver are gone upstream.
    pub snapshot: bool,
}

/// The outcome of polling every table.
#[derive(Clone, Debug)]
pub struct PgPollReport {
    /// One entry per table.
    pub tables: Vec<TablePull>,
}

/// Per-table high-water marks of one database (`table → cursor`), serde for the checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgCursors(pub BTreeMap<String, CursorValue>);

impl PgCursors {
    /// The cursor of `table`, if it was ever read.
    pub fn get(&self, table: &str) -> Option<CursorValue> {
        self.0.get(table).copied()
    }

    /// Moves cursors forward to what `pulls` saw (never backwards).
    pub fn advance(&mut self, pulls: &[TablePull]) {
        for p in pulls {
            if let Some(c) = p.cursor {
                let slot = self.0.entry(p.table.clone()).or_insert(c);
                *slot = (*slot).max(c);
            }
        }
    }
}

/// One connection and the statements prepared on it.
struct Session {
    client: tokio_postgres::Client,
    plans: Mutex<HashMap<String, Arc<TablePlan>>>,
}

/// A PostgreSQL database as a source of rows.
pub struct PgSource {
    name: String,
    config: PostgresConfig,
    /// The connection URL, which a configuration reload replaces.
    url: LiveSecret,
    /// The URL the spec was made from, and the spec (remade at the next
    /// connect when the URL changed).
    spec: std::sync::Mutex<(Secret, Arc<ConnectSpec>)>,
    session: Mutex<Option<Arc<Session>>>,
    /// The columns each described table was declared with (see
    /// [`describe`](Self::describe)): a read whose statements were prepared
    /// for other columns stops with [`PgError::SchemaChanged`] rather than
    /// deliver rows the declaration does not fit.
    declared: std::sync::Mutex<HashMap<String, Attributes>>,
    connections: AtomicU64,
    /// Query pages sent.
    pages: AtomicU64,
    /// Where each page's latency goes, once set.
    latency: std::sync::OnceLock<prometheus_client::metrics::histogram::Histogram>,
}

impl std::fmt::Debug for PgSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSource")
            .field("name", &self.name)
            .field(
                "spec",
                &self
                    .spec
                    .lock()
                    .map(|s| format!("{:?}", s.1))
                    .unwrap_or_default(),
            )
            .finish_non_exhaustive()
    }
}

impl PgSource {
    /// A source for the database `name` (its `[postgres.NAME]`); checks the
    /// connection string and TLS settings but touches no network.
    pub fn new(name: &str, config: PostgresConfig) -> Result<PgSource, PgError> {
        let spec = ConnectSpec::parse(
            name,
            config.url.expose(),
            config.ca_file.as_deref(),
            config.connect_timeout,
        )?;
        spec.tls_connector()?;
        Ok(PgSource {
            name: name.to_string(),
            url: LiveSecret::new(config.url.clone()),
            spec: std::sync::Mutex::new((config.url.clone(), Arc::new(spec))),
            config,
            session: Mutex::new(None),
            declared: std::sync::Mutex::new(HashMap::new()),
            connections: AtomicU64::new(0),
            pages: AtomicU64::new(0),
            latency: std::sync::OnceLock::new(),
        })
    }

    /// Query pages sent so far.
    pub fn pages(&self) -> u64 {
        self.pages.load(Ordering::Relaxed)
    }

    /// Records each query page's latency in `histogram` from now on; a second
    /// call is ignored.
    pub fn observe_latency(&self, histogram: prometheus_client::metrics::histogram::Histogram) {
        let _ = self.latency.set(histogram);
    }

    /// The database's config name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The connection URL, which a configuration reload replaces (used from
    /// the next connect on).
    pub fn url(&self) -> &LiveSecret {
        &self.url
    }

    /// How the next connection is made: from the current URL, re-parsed
    /// when a reload changed it.
    fn spec(&self) -> Result<Arc<ConnectSpec>, PgError> {
        let url = self.url.get();
        let mut current = self.spec.lock().unwrap_or_else(|e| e.into_inner());
        if current.0 != url {
            let spec = ConnectSpec::parse(
                &self.name,
                url.expose(),
                self.config.ca_file.as_deref(),
                self.config.connect_timeout,
            )?;
            spec.tls_connector()?;
            tracing::info!(database = %self.name, "postgres: connecting with the reloaded URL");
            *current = (url, Arc::new(spec));
        }
        Ok(current.1.clone())
    }

    /// The configuration.
    pub fn config(&self) -> &PostgresConfig {
        &self.config
    }

    /// Connections opened so far (more than one means it reconnected).
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Polls every table concurrently (on one connection), each from its
    /// cursor minus the lookback.
    pub async fn poll(
        &self,
        cursors: &PgCursors,
        out: &mpsc::Sender<PgBatch>,
    ) -> Result<PgPollReport, PgError> {
        let walks = self
            .config
            .tables
            .iter()
            .map(|t| self.poll_table(&t.name, cursors.get(&t.name), out));
        Ok(PgPollReport {
            tables: try_join_all(walks).await?,
        })
    }

    /// Polls one configured table from `cursor` minus the lookback (from the
    /// start without a cursor).
    pub async fn poll_table(
        &self,
        table: &str,
        cursor: Option<CursorValue>,
        out: &mpsc::Sender<PgBatch>,
    ) -> Result<TablePull, PgError> {
        let lookback = i64::try_from(self.config.lookback.as_micros()).unwrap_or(i64::MAX);
        let since = cursor.map(|c| c.minus_lookback(lookback));
        self.walk(table, WalkKind::Incremental, since, cursor, out)
            .await
    }

    /// Reads every row of a table ordered by key, for a full refresh; the
    /// returned cursor is the newest cursor value seen. Rows with a NULL key
    /// are dead-lettered.
    pub async fn full_snapshot(
        &self,
        table: &str,
        out: &mpsc::Sender<PgBatch>,
    ) -> Result<TablePull, PgError> {
        self.walk(table, WalkKind::Snapshot, None, None, out).await
    }

    fn table(&self, name: &str) -> Result<&PostgresTable, PgError> {
        self.config
            .tables
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| PgError::Table {
                database: self.name.clone(),
                table: name.to_string(),
                detail: "is not configured".into(),
            })
    }

    /// The current session, connecting if there is none.
    async fn session(&self) -> Result<Arc<Session>, PgError> {
        let mut slot = self.session.lock().await;
        if let Some(s) = slot.as_ref() {
            if !s.client.is_closed() {
                return Ok(s.clone());
            }
        }
        *slot = None;
        let client = self.spec()?.connect().await?;
        let n = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
        if n > 1 {
            tracing::info!(database = %self.name, connections = n, "reconnected");
        } else {
            tracing::debug!(database = %self.name, "connected");
        }
        let session = Arc::new(Session {
            client,
            plans: Mutex::new(HashMap::new()),
        });
        *slot = Some(session.clone());
        Ok(session)
    }

    /// Drops `session` if it is still the current one.
    async fn invalidate(&self, session: &Arc<Session>) {
        let mut slot = self.session.lock().await;
        if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, session)) {
            *slot = None;
        }
    }

    /// Whether configured table `table`'s columns changed upstream since it
    /// was last [described](Self::describe) (a column added, dropped or
    /// retyped); if so, its statements are dropped, and the next `describe`
    /// prepares them for the new columns. A table never described is never
    /// reported changed.
    pub async fn schema_changed(&self, table: &str) -> Result<bool, PgError> {
        let config = self.table(table)?;
        let session = self.session().await?;
        let context = format!("checking the columns of table {table}");
        let now = schema::attributes(&session.client, &config.name)
            .await
            .map_err(|e| PgError::from_driver(&self.name, &context, e))?;
        let unchanged = {
            let declared = self.declared.lock().unwrap_or_else(|e| e.into_inner());
            declared.get(&config.name).is_none_or(|known| *known == now)
        };
        if unchanged {
            return Ok(false);
        }
        session.plans.lock().await.remove(&config.name);
        Ok(true)
    }

    /// Whether `plan` was prepared for the columns `table` was last described
    /// with (always, for a table never described).
    fn fits_declared(&self, table: &str, plan: &TablePlan) -> bool {
        let declared = self.declared.lock().unwrap_or_else(|e| e.into_inner());
        declared
            .get(table)
            .is_none_or(|known| *known == plan.attributes)
    }

    fn schema_changed_error(&self, table: &PostgresTable) -> PgError {
        PgError::SchemaChanged {
            database: self.name.clone(),
            table: table.name.clone(),
        }
    }

    /// The declaration of configured table `table` as it lands in the
    /// warehouse (`raw_pg_<db>_<table>`), its columns discovered from the
    /// database's catalog; and whether it has a cursor column (without one,
    /// every poll reads it whole).
    pub async fn describe(&self, table: &str) -> Result<(TableDef, bool), PgError> {
        let config = self.table(table)?;
        let session = self.session().await?;
        let plan = self.plan(&session, config).await?;
        self.declared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(config.name.clone(), plan.attributes.clone());
        let def = tables::table_def(&self.name, config, plan.column_defs.clone());
        Ok((def, plan.cursor.is_some()))
    }

    async fn plan(
        &self,
        session: &Arc<Session>,
        table: &PostgresTable,
    ) -> Result<Arc<TablePlan>, PgError> {
        let mut plans = session.plans.lock().await;
        if let Some(p) = plans.get(&table.name) {
            return Ok(p.clone());
        }
        match TablePlan::prepare(&session.client, &self.name, table, self.config.page_size).await {
            Ok(plan) => {
                let plan = Arc::new(plan);
                plans.insert(table.name.clone(), plan.clone());
                Ok(plan)
            }
            Err(e) => {
                drop(plans);
                if e.is_retryable() {
                    self.invalidate(session).await;
                }
                Err(e)
            }
        }
    }
}

/// Exponential backoff with jitter between half and all of the step.
fn backoff(failures: u32) -> Duration {
    let step = BASE_BACKOFF.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    step.min(MAX_BACKOFF)
        .mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// Collects every batch into rows (with their table) and dead letters (tests, tools).
pub async fn collect(mut rx: mpsc::Receiver<PgBatch>) -> (Vec<(String, PgRow)>, Vec<PgDeadLetter>) {
    let (mut rows, mut dead) = (Vec::new(), Vec::new());
    while let Some(batch) = rx.recv().await {
        rows.extend(batch.rows.into_iter().map(|r| (batch.table.clone(), r)));
        dead.extend(batch.dead_letters);
    }
    (rows, dead)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_only_move_forward() {
        let mut c = PgCursors::default();
        let pull = |cursor| TablePull {
            table: "t".into(),
            cursor,
            rows: 0,
            dead_letters: 0,
            pages: 0,
            retries: 0,
            snapshot: false,
        };
        c.advance(&[pull(Some(CursorValue::Timestamp(5)))]);
        c.advance(&[pull(Some(CursorValue::Timestamp(3))), pull(None)]);
        assert_eq!(c.get("t"), Some(CursorValue::Timestamp(5)));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"t":{"timestamp":5}}"#);
        assert_eq!(serde_json::from_str::<PgCursors>(&json).unwrap(), c);
    }

    #[test]
    fn backoff_grows_to_a_cap() {
        assert!(backoff(1) <= BASE_BACKOFF);
        assert!(backoff(1) >= BASE_BACKOFF / 2);
        assert!(backoff(30) <= MAX_BACKOFF);
        assert!(backoff(30) >= MAX_BACKOFF / 2);
    }

    #[test]
    fn a_reloaded_url_is_used_from_the_next_connection() {
        let url = |host: &str| crate::config::Secret::new(format!("postgres://u:pw@{host}/db"));
        let source = PgSource::new("wise", PostgresConfig::new(url("old-host"), vec![])).unwrap();
        let first = source.spec().unwrap();
        assert!(format!("{first:?}").contains("old-host"));
        assert!(
            Arc::ptr_eq(&first, &source.spec().unwrap()),
            "unchanged: reused"
        );
        assert!(source.url().replace(url("new-host")));
        let next = source.spec().unwrap();
        assert!(format!("{next:?}").contains("new-host"), "{next:?}");
        // A URL the source refuses fails the connect, naming no secret; the
        // reload checks it first (runtime::reload), so this is a last guard.
        source.url().replace(crate::config::Secret::new(
            "postgres://u:pw-SECRET@h/db?sslmode=bogus",
        ));
        let e = source.spec().unwrap_err().to_string();
        assert!(!e.contains("pw-SECRET"), "{e}");
    }

    #[test]
    fn a_bad_connection_string_fails_without_network_or_secret() {
        let config = PostgresConfig::new(
            crate::config::Secret::new("postgres://u:pw-SECRET@h/db?sslmode=bogus"),
            vec![],
        );
        let e = PgSource::new("wise", config).unwrap_err();
        assert!(!e.to_string().contains("SECRET"));
        assert!(e.to_string().starts_with("postgres.wise: "), "{e}");
    }
}
