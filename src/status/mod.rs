//! Watching a run: what the old platform's web UI showed (what ran, what
//! failed, how fresh each table is), served by `govflow run` itself.
//!
//! [`Telemetry`] is the one place the runtime reports to (commits, pulls,
//! checks, dbt runs, scheduled jobs, alerts, notifications); it keeps the
//! Prometheus [`Metrics`] and the live state that [`Telemetry::report`] turns
//! into a [`StatusReport`], the JSON of `/api/status`, the page at `/` and the
//! table of `govflow status` (docs/status.md).

pub mod config;
pub use config::{DEFAULT_STATUS_LISTEN, StatusConfig};

mod html;
mod metrics;
mod progress;
mod report;
mod server;
mod terminal;
pub use report::{
    AlertsStatus, CheckStatus, DbtNodeStatus, DbtStatus, EntityProgress, Graph, JobStatus,
    NotificationsStatus, ReadProgress, RecentAlert, SourceStatus, StatusReport, TableStatus,
};

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use dataflows::catalog::{Catalogue, TableDef};
use dataflows::checks::{CheckResult, Severity};

pub use self::html::{render_page, render_status};
pub use self::metrics::{Labels, Metrics, label};
pub use self::progress::{set_color, show_progress};
pub use self::server::{ServerOptions, StatusServer, router};
pub use self::terminal::render_table;
use crate::schedule::{STATE_FILE, ScheduleState};
use crate::transform::DbtRunReport;

/// Most alerts kept for the page.
const RECENT_ALERTS: usize = 20;
/// Minutes of notification counts kept.
const NOTIFICATION_MINUTES: usize = 15;

#[derive(Debug, Default)]
struct SourceLive {
    status: SourceStatus,
    /// Raw tables the source feeds.
    tables: Vec<String>,
}

/// A table of the catalogue as the status page follows it.
#[derive(Debug)]
struct LiveTable {
    /// Whether a source fills it.
    raw: bool,
    /// The tables a model reads.
    reads: Vec<String>,
    status: TableStatus,
}

impl LiveTable {
    fn of(def: &TableDef) -> LiveTable {
        LiveTable {
            raw: def.is_raw(),
            reads: def.reads.clone(),
            status: TableStatus {
                name: def.name.clone(),
                ..TableStatus::default()
            },
        }
    }
}

#[derive(Debug)]
struct ReadLive {
    kind: String,
    started: std::time::Instant,
    entities: BTreeMap<String, EntityProgress>,
}

#[derive(Debug, Default)]
struct Live {
    reads: BTreeMap<String, ReadLive>,
    epoch: Option<u64>,
    last_commit_at: Option<DateTime<Utc>>,
    /// In catalogue order: the built-in tables, then configured ones.
    tables: Vec<LiveTable>,
    sources: BTreeMap<String, SourceLive>,
    checks: Vec<CheckStatus>,
    dbt: Option<DbtStatus>,
    alerts: VecDeque<RecentAlert>,
    alerts_failing: Vec<String>,
    alerts_sent: u64,
    /// (minute start, count), oldest first.
    notifications: VecDeque<(i64, u64)>,
    notifications_delivered: u64,
}

/// What the runtime reports to, shared (`Arc`) by every part of a run.
#[derive(Debug)]
pub struct Telemetry {
    /// The Prometheus metrics.
    pub metrics: Metrics,
    live: Mutex<Live>,
    started_at: DateTime<Utc>,
    state_dir: Option<PathBuf>,
    sinks: Vec<String>,
}

impl Telemetry {
    /// The telemetry of a run keeping its state in `state_dir` (where the
    /// scheduler's `schedule.json` is read from); `sinks` name the warehouse(s).
    pub fn new(state_dir: Option<PathBuf>, sinks: Vec<String>) -> Telemetry {
        let live = Live {
            tables: Catalogue::builtin()
                .tables()
                .iter()
                .map(LiveTable::of)
                .collect(),
            ..Live::default()
        };
        Telemetry {
            metrics: Metrics::new(),
            live: Mutex::new(live),
            started_at: Utc::now(),
            state_dir,
            sinks,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tables configured beside the built-in ones (raw tables no model reads).
    pub fn tables_added(&self, defs: &[TableDef]) {
        let mut live = self.lock();
        for def in defs {
            if !live.tables.iter().any(|t| t.status.name == def.name) {
                live.tables.push(LiveTable::of(def));
            }
        }
    }

    /// A source exists and feeds these raw tables.
    pub fn source_added(&self, source: &str, tables: &[String]) {
        let mut live = self.lock();
        let entry = live.sources.entry(source.to_string()).or_default();
        entry.status.name = source.to_string();
        entry.tables = tables.to_vec();
    }

    /// Rows restored at start, per table (the committed state).
    pub fn tables_restored(&self, rows: &BTreeMap<String, i64>, epoch: Option<u64>) {
        let mut live = self.lock();
        live.epoch = epoch;
        for (table, n) in rows {
            if let Some(t) = live.table_mut(table) {
                t.rows = *n;
                self.metrics
                    .table_rows
                    .get_or_create(&label("table", table))
                    .set(*n);
            }
        }
        if let Some(e) = epoch {
            self.metrics.epoch.set(i64::try_from(e).unwrap_or(i64::MAX));
        }
    }

    /// An epoch was committed: `deltas` are each changed table's row count
    /// change and `changes` its row changes; `took` the whole commit, `flush`
    /// the warehouse's part.
    pub fn epoch_committed(
        &self,
        epoch: u64,
        deltas: &BTreeMap<String, (i64, u64)>,
        took: std::time::Duration,
        flush: std::time::Duration,
    ) {
        let now = Utc::now();
        let mut live = self.lock();
        live.epoch = Some(epoch);
        live.last_commit_at = Some(now);
        for (table, (delta, changes)) in deltas {
            if let Some(t) = live.table_mut(table) {
                t.rows += delta;
                t.last_epoch = Some(epoch);
                t.last_commit_at = Some(now);
                let labels = label("table", table);
                self.metrics.table_rows.get_or_create(&labels).set(t.rows);
                self.metrics.changes.get_or_create(&labels).inc_by(*changes);
            }
        }
        self.metrics.epochs.inc();
        self.metrics
            .epoch
            .set(i64::try_from(epoch).unwrap_or(i64::MAX));
        self.metrics.epoch_seconds.observe(took.as_secs_f64());
        self.metrics.flush_seconds.observe(flush.as_secs_f64());
    }

    /// A source read `records` (and dead-lettered `dead_letters`).
    pub fn records_read(&self, source: &str, records: u64, dead_letters: u64) {
        let labels = label("source", source);
        self.metrics.upserts.get_or_create(&labels).inc_by(records);
        self.metrics
            .dead_letters
            .get_or_create(&labels)
            .inc_by(dead_letters);
        let mut live = self.lock();
        let s = &mut live.sources.entry(source.to_string()).or_default().status;
        s.name = source.to_string();
        s.records += records;
        s.dead_letters += dead_letters;
    }

    /// A full read (`kind`: `full refresh` or `backfill`) of `source` starts.
    pub fn read_started(&self, source: &str, kind: &str) {
        self.lock().reads.insert(
            source.to_string(),
            ReadLive {
                kind: kind.to_string(),
                started: std::time::Instant::now(),
                entities: BTreeMap::new(),
            },
        );
    }

    /// A page of `entity` was read during a full read of `source`.
    pub fn page_read(&self, source: &str, entity: &str, records: u64, expected_pages: Option<u64>) {
        let mut live = self.lock();
        let Some(read) = live.reads.get_mut(source) else {
            return;
        };
        let e = read
            .entities
            .entry(entity.to_string())
            .or_insert_with(|| EntityProgress {
                name: entity.to_string(),
                ..EntityProgress::default()
            });
        e.pages += 1;
        e.records += records;
        if expected_pages.is_some() {
            e.expected_pages = expected_pages;
        }
    }

    /// The full read of `source` ended (or failed).
    pub fn read_ended(&self, source: &str) {
        self.lock().reads.remove(source);
    }

    /// The full reads in progress.
    pub fn reads(&self) -> Vec<ReadProgress> {
        self.lock()
            .reads
            .iter()
            .map(|(source, r)| ReadProgress {
                source: source.clone(),
                kind: r.kind.clone(),
                elapsed_seconds: r.started.elapsed().as_secs_f64(),
                entities: r.entities.values().cloned().collect(),
            })
            .collect()
    }

    /// A source's pull ended; `requests` is its request count so far and
    /// `quota` its (quota, used) when known.
    pub fn pull_ended(
        &self,
        source: &str,
        error: Option<String>,
        requests: u64,
        quota: Option<(u32, u32)>,
    ) {
        let labels = label("source", source);
        let mut live = self.lock();
        let s = &mut live.sources.entry(source.to_string()).or_default().status;
        s.name = source.to_string();
        let sent = requests.saturating_sub(s.requests);
        self.metrics
            .source_requests
            .get_or_create(&labels)
            .inc_by(sent);
        s.requests = requests.max(s.requests);
        if let Some((quota, used)) = quota {
            s.quota = Some(quota);
            s.quota_used = Some(used);
        }
        match error {
            None => {
                s.pulls += 1;
                s.consecutive_failures = 0;
                self.metrics.pulls.get_or_create(&labels).inc();
            }
            Some(e) => {
                s.errors += 1;
                s.consecutive_failures += 1;
                s.last_error = Some(e);
                self.metrics.pull_errors.get_or_create(&labels).inc();
            }
        }
    }

    /// A source's pull was committed, with its cursors afterwards.
    pub fn pull_committed(&self, source: &str, cursors: BTreeMap<String, String>) {
        let mut live = self.lock();
        let s = &mut live.sources.entry(source.to_string()).or_default().status;
        s.name = source.to_string();
        s.last_commit_at = Some(Utc::now());
        s.cursors = cursors;
    }

    /// The checks' latest results.
    pub fn checks(&self, results: &[CheckResult]) {
        let checks = results
            .iter()
            .map(|r| CheckStatus {
                name: r.spec.name.clone(),
                table: r.spec.table.clone(),
                severity: match r.spec.severity {
                    Severity::Warn => "warn",
                    Severity::Error => "error",
                }
                .to_string(),
                passed: r.passed(),
                failing: r.failing,
                sample_keys: r.samples.iter().map(|(k, _)| k.clone()).collect(),
            })
            .collect();
        self.lock().checks = checks;
    }

    /// A dbt invocation ended: its report, or the error that kept it from running.
    pub fn dbt_finished(&self, command: &str, outcome: Result<&DbtRunReport, &str>) {
        let (success, error, elapsed, nodes) = match outcome {
            Ok(report) => (
                report.success(),
                None,
                report.elapsed.as_secs_f64(),
                report
                    .nodes
                    .iter()
                    .map(|n| DbtNodeStatus {
                        name: n.name.clone(),
                        kind: n.kind.as_str().to_string(),
                        status: n.status.as_str().to_string(),
                        seconds: n.execution_time.as_secs_f64(),
                        failures: n.failures,
                    })
                    .collect(),
            ),
            Err(e) => (false, Some(e.to_string()), 0.0, Vec::new()),
        };
        let outcome = if success { "success" } else { "failure" };
        self.metrics
            .dbt_runs
            .get_or_create(&vec![
                ("command".to_string(), command.to_string()),
                ("outcome".to_string(), outcome.to_string()),
            ])
            .inc();
        self.lock().dbt = Some(DbtStatus {
            command: command.to_string(),
            finished_at: Utc::now(),
            success,
            error,
            elapsed_seconds: elapsed,
            nodes,
        });
    }

    /// A scheduled job ended.
    pub fn job_finished(&self, job: &str, ok: bool) {
        let outcome = if ok { "success" } else { "failure" };
        self.metrics
            .job_runs
            .get_or_create(&vec![
                ("job".to_string(), job.to_string()),
                ("outcome".to_string(), outcome.to_string()),
            ])
            .inc();
    }

    /// The alert keys failing now.
    pub fn alerts_failing(&self, failing: Vec<String>) {
        self.lock().alerts_failing = failing;
    }

    /// An alert went out (its text already redacted).
    pub fn alert_sent(&self, text: &str) {
        self.metrics.alerts.inc();
        let mut live = self.lock();
        live.alerts_sent += 1;
        live.alerts.push_front(RecentAlert {
            at: Utc::now(),
            text: text.to_string(),
        });
        live.alerts.truncate(RECENT_ALERTS);
    }

    /// `n` notification events were delivered.
    pub fn notifications_delivered(&self, n: u64) {
        self.metrics.notifications.inc_by(n);
        let minute = Utc::now().timestamp() / 60 * 60;
        let mut live = self.lock();
        live.notifications_delivered += n;
        match live.notifications.back_mut() {
            Some((m, count)) if *m == minute => *count += n,
            _ => live.notifications.push_back((minute, n)),
        }
        while live.notifications.len() > NOTIFICATION_MINUTES {
            live.notifications.pop_front();
        }
    }

    /// The status now.
    pub fn report(&self) -> StatusReport {
        let now = Utc::now();
        let reads = self.reads();
        let schedule = self
            .state_dir
            .as_ref()
            .and_then(|dir| ScheduleState::load(&dir.join(STATE_FILE)).ok())
            .map(|state| jobs(&state))
            .unwrap_or_default();
        let live = self.lock();
        let age = |t: Option<DateTime<Utc>>| {
            t.map(|t| ((now - t).num_milliseconds() as f64 / 1000.0).max(0.0))
        };
        let sources: Vec<SourceStatus> = live
            .sources
            .values()
            .map(|s| SourceStatus {
                lag_seconds: age(s.status.last_commit_at),
                ..s.status.clone()
            })
            .collect();
        // A table is as fresh as the oldest of the sources feeding it.
        let freshness = |table: &LiveTable| {
            let feeding: Vec<&SourceLive> = live
                .sources
                .values()
                .filter(|s| !table.raw || s.tables.contains(&table.status.name))
                .collect();
            if feeding.is_empty() || feeding.iter().any(|s| s.status.last_commit_at.is_none()) {
                return None;
            }
            age(feeding.iter().filter_map(|s| s.status.last_commit_at).min())
        };
        let tables = live
            .tables
            .iter()
            .map(|t| TableStatus {
                freshness_lag_seconds: freshness(t),
                ..t.status.clone()
            })
            .collect();
        let minute = now.timestamp() / 60 * 60;
        let per_minute = (0..NOTIFICATION_MINUTES as i64)
            .rev()
            .map(|back| {
                let m = minute - back * 60;
                live.notifications
                    .iter()
                    .find(|(at, _)| *at == m)
                    .map_or(0, |(_, n)| *n)
            })
            .collect();
        StatusReport {
            generated_at: now,
            started_at: self.started_at,
            epoch: live.epoch,
            last_commit_at: live.last_commit_at,
            graph: self.graph(&live),
            tables,
            sources,
            checks: live.checks.clone(),
            dbt: live.dbt.clone(),
            schedule,
            alerts: AlertsStatus {
                sent: live.alerts_sent,
                failing: live.alerts_failing.clone(),
                recent: live.alerts.iter().cloned().collect(),
            },
            notifications: NotificationsStatus {
                delivered: live.notifications_delivered,
                per_minute,
            },
            reads,
        }
    }

    /// The Prometheus text exposition.
    pub fn encode_metrics(&self) -> String {
        self.metrics.encode()
    }

    fn graph(&self, live: &Live) -> Graph {
        let mut graph = Graph {
            sources: live.sources.keys().cloned().collect(),
            tables: live.tables.iter().map(|t| t.status.name.clone()).collect(),
            sinks: self.sinks.clone(),
            edges: Vec::new(),
        };
        for (name, source) in &live.sources {
            for table in &source.tables {
                graph.edges.push((name.clone(), table.clone()));
            }
        }
        for table in &live.tables {
            for input in &table.reads {
                graph.edges.push((input.clone(), table.status.name.clone()));
            }
            for sink in &self.sinks {
                graph.edges.push((table.status.name.clone(), sink.clone()));
            }
        }
        graph
    }
}

impl Live {
    fn table_mut(&mut self, name: &str) -> Option<&mut TableStatus> {
        self.tables
            .iter_mut()
            .find(|t| t.status.name == name)
            .map(|t| &mut t.status)
    }
}

fn jobs(state: &ScheduleState) -> Vec<JobStatus> {
    state
        .jobs
        .iter()
        .map(|(name, s)| JobStatus {
            job: name.clone(),
            last_tick: Some(s.last_tick),
            last_finished_at: s.last_finished_at,
            last_outcome: s.last_outcome.map(|o| format!("{o:?}").to_lowercase()),
            last_error: s.last_error.clone(),
            runs: s.runs,
            failures: s.failures,
        })
        .collect()
}
