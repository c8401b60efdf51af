//! The Prometheus metrics of a run (text exposition format, `/metrics`).
//!
//! Counters end in `_total`; durations are histograms in seconds. Labels are
//! the source (`bigcommerce`, `postgres.NAME`), the table, the job or status.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A label set: name/value pairs.
pub type Labels = Vec<(String, String)>;

type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Every metric of a run, registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Epochs committed (with a change).
    pub epochs: Counter,
    /// Row changes committed, per table.
    pub changes: Family<Labels, Counter>,
    /// Upserts read from sources, per source.
    pub upserts: Family<Labels, Counter>,
    /// Records dead-lettered, per source.
    pub dead_letters: Family<Labels, Counter>,
    /// Pulls (reads) completed, per source.
    pub pulls: Family<Labels, Counter>,
    /// Pulls that failed, per source.
    pub pull_errors: Family<Labels, Counter>,
    /// HTTP requests or queries sent, per source.
    pub source_requests: Family<Labels, Counter>,
    /// Alerts delivered (or logged, without a sink).
    pub alerts: Counter,
    /// dbt invocations, per command and outcome.
    pub dbt_runs: Family<Labels, Counter>,
    /// Scheduled job runs, per job and outcome.
    pub job_runs: Family<Labels, Counter>,
    /// Restock notification events delivered.
    pub notifications: Counter,
    /// Rows per table, as committed.
    pub table_rows: Family<Labels, Gauge>,
    /// The last committed epoch.
    pub epoch: Gauge,
    /// Time from an epoch's cut to its checkpoint (dataflow step, conversion, flush).
    pub epoch_seconds: Histogram,
    /// Time the warehouse took to commit an epoch.
    pub flush_seconds: Histogram,
    /// Latency of one source request (HTTP request, or query page), per source.
    pub source_request_seconds: HistogramFamily,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh set, registered under the `govflow_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("govflow");
        let m = Metrics {
            epochs: Counter::default(),
            changes: Family::default(),
            upserts: Family::default(),
            dead_letters: Family::default(),
            pulls: Family::default(),
            pull_errors: Family::default(),
            source_requests: Family::default(),
            alerts: Counter::default(),
            dbt_runs: Family::default(),
            job_runs: Family::default(),
            notifications: Counter::default(),
            table_rows: Family::default(),
            epoch: Gauge::default(),
            epoch_seconds: latency_histogram(),
            flush_seconds: latency_histogram(),
            source_request_seconds: Family::new_with_constructor(latency_histogram),
            registry: Registry::default(),
        };
        registry.register("epochs", "Epochs committed", m.epochs.clone());
        registry.register(
            "changes",
            "Row changes committed, per table",
            m.changes.clone(),
        );
        registry.register("upserts", "Upserts read, per source", m.upserts.clone());
        registry.register(
            "dead_letters",
            "Records dead-lettered, per source",
            m.dead_letters.clone(),
        );
        registry.register("pulls", "Pulls completed, per source", m.pulls.clone());
        registry.register(
            "pull_errors",
            "Pulls failed, per source",
            m.pull_errors.clone(),
        );
        registry.register(
            "source_requests",
            "Requests (HTTP) or query pages sent, per source",
            m.source_requests.clone(),
        );
        registry.register("alerts", "Alerts delivered", m.alerts.clone());
        registry.register(
            "dbt_runs",
            "dbt invocations, per command and outcome",
            m.dbt_runs.clone(),
        );
        registry.register(
            "job_runs",
            "Scheduled job runs, per job and outcome",
            m.job_runs.clone(),
        );
        registry.register(
            "notifications",
            "Restock notification events delivered",
            m.notifications.clone(),
        );
        registry.register(
            "table_rows",
            "Rows per table, as committed",
            m.table_rows.clone(),
        );
        registry.register("epoch", "The last committed epoch", m.epoch.clone());
        registry.register(
            "epoch_duration_seconds",
            "Time from an epoch's cut to its checkpoint",
            m.epoch_seconds.clone(),
        );
        registry.register(
            "flush_duration_seconds",
            "Time the warehouse took to commit an epoch",
            m.flush_seconds.clone(),
        );
        registry.register(
            "source_request_duration_seconds",
            "Latency of one source request or query page, per source",
            m.source_request_seconds.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// One label.
pub fn label(name: &str, value: &str) -> Labels {
    vec![(name.to_string(), value.to_string())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_counters_with_total_and_histograms_with_buckets() {
        let m = Metrics::new();
        m.epochs.inc();
        m.changes
            .get_or_create(&label("table", "fct_order"))
            .inc_by(3);
        m.flush_seconds.observe(0.004);
        m.source_request_seconds
            .get_or_create(&label("source", "bigcommerce"))
            .observe(0.02);
        let text = m.encode();
        assert!(text.contains("govflow_epochs_total 1"), "{text}");
        assert!(
            text.contains("govflow_changes_total{table=\"fct_order\"} 3"),
            "{text}"
        );
        assert!(text.contains("# TYPE govflow_flush_duration_seconds histogram"));
        assert!(text.contains("govflow_flush_duration_seconds_count 1"));
        assert!(text.contains(
            "govflow_source_request_duration_seconds_bucket{le=\"0.032\",source=\"bigcommerce\"} 1"
        ), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
