//! What runs beside the pipeline: alerts about what it reports (checks,
//! sources), and the `[schedule]` jobs (the periodic full refresh and the
//! mart builds with dbt), each alerting on failure and recovery.

use std::sync::Arc;

use dataflows::checks::CheckResult;
use tokio::sync::{mpsc, watch};

use super::refresh::RefreshControl;
use crate::alerts::{Alert, Alerter, FailedNode};
use crate::schedule::{Clock, Job, STATE_FILE, Scheduler};
use crate::settings::Config;
use crate::sinks::WarehouseConfig;
use crate::sources::SourceEvent;
use crate::status::Telemetry;
use crate::transform::{DbtCommand, DbtRunReport, DbtRunner};

/// Turns source events and check results into alerts until both feeds close.
/// Every evaluation is reported: the alerter's deduplication sends a failure
/// once and its recovery once.
pub(super) async fn report_alerts(
    alerter: Arc<Alerter>,
    telemetry: Arc<Telemetry>,
    mut sources: mpsc::UnboundedReceiver<SourceEvent>,
    mut checks: watch::Receiver<Vec<CheckResult>>,
) {
    let (mut sources_open, mut checks_open) = (true, true);
    while sources_open || checks_open {
        tokio::select! {
            event = sources.recv(), if sources_open => match event {
                None => sources_open = false,
                Some(event) => report_source(&alerter, event).await,
            },
            changed = checks.changed(), if checks_open => {
                if changed.is_err() {
                    checks_open = false;
                    continue;
                }
                let results = checks.borrow_and_update().clone();
                report_checks(&alerter, &results).await;
            }
        }
        telemetry.alerts_failing(alerter.failing_keys());
    }
}

async fn report_source(alerter: &Alerter, event: SourceEvent) {
    // Delivery errors are logged by the alerter; the next report tries again.
    let _ = match event {
        SourceEvent::Succeeded { source } => alerter.source_succeeded(&source).await,
        SourceEvent::Failed { source, error } => alerter.source_failed(&source, &error).await,
        SourceEvent::Schema {
            table,
            incompatible: Some(change),
        } => {
            alerter
                .notify(Alert::SchemaIncompatible { table, change })
                .await
        }
        SourceEvent::Schema {
            table,
            incompatible: None,
        } => alerter.notify(Alert::SchemaRecovered { table }).await,
        SourceEvent::Fatal { source, error } => {
            alerter
                .notify(Alert::SourceFailing {
                    source,
                    consecutive_failures: 1,
                    last_error: format!("{error} (not retryable: the run stops)"),
                })
                .await
        }
    };
}

async fn report_checks(alerter: &Alerter, results: &[CheckResult]) {
    for result in results {
        let check = result.spec.name.clone();
        let table = result.spec.table.clone();
        let alert = if result.passed() {
            Alert::CheckRecovered { check, table }
        } else {
            Alert::CheckFailing {
                check,
                table,
                failing_count: result.failing,
                sample_keys: result.samples.iter().map(|(k, _)| k.clone()).collect(),
            }
        };
        let _ = alerter.notify(alert).await;
    }
}

/// Reports the notifier's deliveries to the status page, once a second.
pub(super) async fn count_deliveries(
    stats: Arc<crate::notify::NotifyStats>,
    telemetry: Arc<Telemetry>,
) {
    let mut reported = 0;
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let now = stats.delivered.load(std::sync::atomic::Ordering::Relaxed);
        if now > reported {
            telemetry.notifications_delivered(now - reported);
            reported = now;
        }
    }
}

/// The scheduled jobs of a run, with what they need.
#[derive(Clone)]
pub(super) struct Jobs {
    /// The run's configuration (`[dbt]`, `[warehouse]`, `[schedule]`).
    pub config: Arc<Config>,
    /// Where alerts go.
    pub alerter: Arc<Alerter>,
    /// Where dbt runs and job outcomes are reported.
    pub telemetry: Arc<Telemetry>,
    /// Asks the sources for full reads.
    pub refresh: RefreshControl,
    /// Turns true when the run stops.
    pub stop: watch::Receiver<bool>,
}

/// Runs the `[schedule]` jobs until `stop`. A scheduler that cannot start
/// (unreadable state file) is logged and alerted, and the pipeline goes on
/// without it.
pub(super) async fn run_schedule(jobs: Jobs, clock: Arc<dyn Clock>) {
    let config = jobs.config.clone();
    let started = Scheduler::start(
        config.schedule.jobs(),
        config.schedule.catch_up,
        Some(config.state.dir.join(STATE_FILE)),
        clock,
    );
    let mut scheduler = match started {
        Ok((scheduler, _decisions)) => scheduler,
        Err(e) => {
            tracing::error!(error = %e, "the scheduler cannot start; no scheduled jobs run");
            let _ = jobs
                .alerter
                .notify(Alert::FullRefreshFailed {
                    error: format!("the scheduler cannot start: {e}"),
                })
                .await;
            return;
        }
    };
    let stop = jobs.stop.clone();
    scheduler
        .run(
            |job| {
                let jobs = jobs.clone();
                async move { jobs.run(job).await }
            },
            |_| {},
            stop,
        )
        .await;
}

impl Jobs {
    /// Runs one job; its error is what the scheduler records.
    async fn run(mut self, job: Job) -> Result<(), String> {
        let result = match job {
            Job::Marts => self.dbt_build(false).await,
            Job::FullRefresh => {
                let result = self.full_refresh().await;
                let alert = match &result {
                    Ok(()) => Alert::FullRefreshRecovered,
                    Err(error) => Alert::FullRefreshFailed {
                        error: error.clone(),
                    },
                };
                let _ = self.alerter.notify(alert).await;
                result
            }
        };
        self.telemetry.job_finished(job.name(), result.is_ok());
        self.telemetry.alerts_failing(self.alerter.failing_keys());
        result
    }

    /// Full reads of every source, their deletes committed, then `dbt build --full-refresh`.
    async fn full_refresh(&mut self) -> Result<(), String> {
        let generation = self.refresh.request();
        let mut stop = self.stop.clone();
        let status = tokio::select! {
            status = self.refresh.finished(generation) => status,
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(status) = status else {
            return Err("the pipeline stopped before the full refresh ended".into());
        };
        if let Some(error) = status.error {
            return Err(format!("sources: {error}"));
        }
        self.dbt_build(true)
            .await
            .map_err(|e| format!("dbt build --full-refresh: {e}"))
    }

    /// `dbt build` over the latest snapshot (for the `duckdb` target of a local
    /// warehouse); alerts when it fails and when it recovers.
    async fn dbt_build(&self, full_refresh: bool) -> Result<(), String> {
        let command = if full_refresh {
            "dbt build --full-refresh"
        } else {
            "dbt build"
        };
        let config = self.config.clone();
        let outcome = tokio::task::spawn_blocking(move || run_dbt(&config, full_refresh))
            .await
            .map_err(|e| format!("the dbt task stopped: {e}"))
            .and_then(|r| r);
        let alert = match &outcome {
            Ok(report) if report.success() => Alert::DbtRecovered {
                command: command.into(),
            },
            Ok(report) => Alert::DbtFailed {
                command: command.into(),
                failed_nodes: report
                    .problems()
                    .map(|n| FailedNode {
                        name: n.unique_id.clone(),
                        message: n
                            .message
                            .clone()
                            .unwrap_or_else(|| n.status.as_str().to_string()),
                    })
                    .collect(),
                summary: format!("exit code {}", report.exit_code),
            },
            Err(error) => Alert::DbtFailed {
                command: command.into(),
                failed_nodes: Vec::new(),
                summary: error.clone(),
            },
        };
        let _ = self.alerter.notify(alert).await;
        self.telemetry
            .dbt_finished(command, outcome.as_ref().map_err(String::as_str));
        match outcome {
            Ok(report) if report.success() => Ok(()),
            Ok(report) => Err(format!(
                "{} of {} nodes failed",
                report.problems().count(),
                report.nodes.len()
            )),
            Err(error) => Err(error),
        }
    }
}

/// Runs `dbt build`, pinned to the local warehouse's latest snapshot when the
/// target reads it.
fn run_dbt(config: &Config, full_refresh: bool) -> Result<DbtRunReport, String> {
    let runner = DbtRunner::from_config(&config.dbt);
    let pin = match (&config.warehouse, config.dbt.target.as_str()) {
        (WarehouseConfig::Local { dir }, "duckdb") => Some(
            crate::sinks::local::pin_latest(dir)
                .map_err(|e| format!("pinning the warehouse: {e}"))?,
        ),
        _ => None,
    };
    runner
        .run(DbtCommand::Build, full_refresh, pin.as_ref())
        .map_err(|e| e.to_string())
}
