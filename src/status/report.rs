//! The status report: what `/api/status` answers, the page shows and
//! `govflow status` prints.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The whole status of a run at one instant (`/api/status`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// When the report was made.
    pub generated_at: DateTime<Utc>,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// The last committed epoch.
    pub epoch: Option<u64>,
    /// When the last epoch with a change was committed.
    pub last_commit_at: Option<DateTime<Utc>>,
    /// Sources, models and sinks, for the graph.
    pub graph: Graph,
    /// Every table of the warehouse.
    pub tables: Vec<TableStatus>,
    /// Every configured source.
    pub sources: Vec<SourceStatus>,
    /// The data-quality checks.
    pub checks: Vec<CheckStatus>,
    /// The last dbt invocation.
    pub dbt: Option<DbtStatus>,
    /// The scheduled jobs.
    pub schedule: Vec<JobStatus>,
    /// Alerts.
    pub alerts: AlertsStatus,
    /// Restock notification events.
    pub notifications: NotificationsStatus,
    /// Full reads (full refresh, first backfill) in progress.
    pub reads: Vec<ReadProgress>,
}

/// A full read in progress: one source, entity by entity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadProgress {
    /// The source.
    pub source: String,
    /// `full refresh` or `backfill`.
    pub kind: String,
    /// Seconds since it started.
    pub elapsed_seconds: f64,
    /// Per entity (or table).
    pub entities: Vec<EntityProgress>,
}

/// One entity's (or table's) part of a full read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EntityProgress {
    /// The entity or table.
    pub name: String,
    /// Pages read.
    pub pages: u64,
    /// Pages announced by the API, when it tells.
    pub expected_pages: Option<u64>,
    /// Records read.
    pub records: u64,
}

/// The dataflow graph: sources feed raw tables, raw tables feed models, all
/// tables go to the sinks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    /// Source names.
    pub sources: Vec<String>,
    /// Table names (raw first).
    pub tables: Vec<String>,
    /// Sink names.
    pub sinks: Vec<String>,
    /// Edges `(from, to)` between the names above.
    pub edges: Vec<(String, String)>,
}

/// One table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TableStatus {
    /// Its name.
    pub name: String,
    /// Rows as committed.
    pub rows: i64,
    /// The last epoch that changed it.
    pub last_epoch: Option<u64>,
    /// When that epoch was committed.
    pub last_commit_at: Option<DateTime<Utc>>,
    /// Seconds since the data of its sources was last read and committed
    /// (the oldest of its sources); `None` before the first pull.
    pub freshness_lag_seconds: Option<f64>,
}

/// One source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// `bigcommerce` or `postgres.NAME`.
    pub name: String,
    /// The newest change time read, per entity or table.
    pub cursors: BTreeMap<String, String>,
    /// When its last pull was committed.
    pub last_commit_at: Option<DateTime<Utc>>,
    /// Seconds since then.
    pub lag_seconds: Option<f64>,
    /// Pulls completed.
    pub pulls: u64,
    /// Records read.
    pub records: u64,
    /// Requests (HTTP) or query pages sent.
    pub requests: u64,
    /// The API quota per window, when the source has one and it is known.
    pub quota: Option<u32>,
    /// Requests used of the quota in the current window.
    pub quota_used: Option<u32>,
    /// Pulls failed.
    pub errors: u64,
    /// Pulls failed in a row, now.
    pub consecutive_failures: u32,
    /// The last error.
    pub last_error: Option<String>,
    /// Records dead-lettered.
    pub dead_letters: u64,
}

/// One check's result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckStatus {
    /// The check.
    pub name: String,
    /// Its table.
    pub table: String,
    /// `warn` or `error`.
    pub severity: String,
    /// Whether it passes.
    pub passed: bool,
    /// Failing rows.
    pub failing: u64,
    /// Some failing keys.
    pub sample_keys: Vec<String>,
}

/// The last dbt invocation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DbtStatus {
    /// e.g. `dbt build --full-refresh`.
    pub command: String,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Whether every node passed.
    pub success: bool,
    /// What failed before any node ran, if it did.
    pub error: Option<String>,
    /// Seconds it took.
    pub elapsed_seconds: f64,
    /// Per model and test.
    pub nodes: Vec<DbtNodeStatus>,
}

/// One node of a dbt run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DbtNodeStatus {
    /// Its name.
    pub name: String,
    /// `model`, `test`, `seed`, ...
    pub kind: String,
    /// `success`, `pass`, `fail`, `error`, `skipped`, `warn`.
    pub status: String,
    /// Seconds it took.
    pub seconds: f64,
    /// Failing rows (tests).
    pub failures: Option<u64>,
}

/// One scheduled job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    /// `full_refresh` or `marts`.
    pub job: String,
    /// The last tick satisfied.
    pub last_tick: Option<DateTime<Utc>>,
    /// When it last finished.
    pub last_finished_at: Option<DateTime<Utc>>,
    /// `success` or `failure`.
    pub last_outcome: Option<String>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Runs.
    pub runs: u64,
    /// Failed runs.
    pub failures: u64,
}

/// Alerts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertsStatus {
    /// Messages delivered since start.
    pub sent: u64,
    /// Keys failing now.
    pub failing: Vec<String>,
    /// The latest messages, newest first.
    pub recent: Vec<RecentAlert>,
}

/// One alert message.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecentAlert {
    /// When it was sent.
    pub at: DateTime<Utc>,
    /// Its text (redacted).
    pub text: String,
}

/// Restock notification events.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NotificationsStatus {
    /// Delivered since start.
    pub delivered: u64,
    /// Delivered per minute, oldest first, the current minute last.
    pub per_minute: Vec<u64>,
}
