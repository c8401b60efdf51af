//! `[warehouse] kind = "bigquery"`: the dataset, the bucket, the credentials
//! and the flush settings; and their validation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::config::{BigQueryCredentials, ConfigError, gcp};
use crate::sinks::config::RawWarehouse;

/// `[warehouse] kind = "bigquery"`: where and how often epochs are flushed to
/// BigQuery (see docs/bigquery.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigQueryConfig {
    /// GCP project id (jobs run and tables live there).
    pub project: String,
    /// Dataset of govflow's tables (created in `location` if missing).
    pub dataset: String,
    /// Location of the dataset and the jobs (default `US`).
    pub location: String,
    /// How requests are authenticated.
    pub credentials: BigQueryCredentials,
    /// Where the credentials were found (for `govflow validate`; no secret).
    pub credentials_origin: String,
    /// GCS bucket the Parquet files are uploaded to (must exist).
    pub bucket: String,
    /// Object prefix inside the bucket (default `govflow`).
    pub prefix: String,
    /// BigQuery REST endpoint (default `https://bigquery.googleapis.com`).
    pub api_endpoint: Url,
    /// GCS JSON API endpoint (default `https://storage.googleapis.com`).
    pub storage_endpoint: Url,
    /// How often committed epochs are flushed (default 5 min).
    pub flush_interval: Duration,
    /// Shortest time between two loads into one table (default 1 min).
    pub min_table_interval: Duration,
    /// Expiry of staging tables, in case a flush dies before cleaning up (default 1 day).
    pub staging_expiration: Duration,
    /// Timeout of one HTTP request (default 60 s).
    pub request_timeout: Duration,
    /// Longest wait for one job (default 10 min).
    pub job_timeout: Duration,
    /// Attempts per request or job before a flush fails (default 8).
    pub max_attempts: u32,
    /// First retry delay, doubled per attempt up to 32 times it (default 1 s).
    pub retry_backoff: Duration,
    /// Tables flushed at the same time (default 4; one flush per table at a time).
    pub parallel_tables: usize,
    /// The local warehouse kept next to BigQuery: the source of truth for
    /// restarts (default `<state dir>/warehouse`).
    pub local_dir: PathBuf,
}

/// Validates `[warehouse] kind = "bigquery"`. Without `service_account_key`
/// or `access_token`, credentials are searched as Google's clients do
/// ([`gcp::resolve`]).
pub(crate) fn validate_bigquery(
    w: RawWarehouse,
    state_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    err: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<BigQueryConfig, ConfigError> {
    let nonempty = |v: Option<String>, key: &str| match v {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(err(key, "is required when kind = \"bigquery\"")),
    };
    let project = nonempty(w.project, "warehouse.project")?;
    let dataset = nonempty(w.dataset, "warehouse.dataset")?;
    let bucket = nonempty(w.bucket, "warehouse.bucket")?;
    let is_name = |v: &str| {
        !v.is_empty() && v.len() <= 1024 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if !is_name(&dataset) {
        return Err(err(
            "warehouse.dataset",
            "must be letters, digits and underscores (a BigQuery dataset id)",
        ));
    }
    if !project
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.'))
    {
        return Err(err("warehouse.project", "is not a GCP project id"));
    }
    if w.dir.is_some() {
        return Err(err(
            "warehouse.dir",
            "is for kind = \"local\"; with bigquery the local copy is `local_dir`",
        ));
    }
    let resolved = gcp::resolve(w.service_account_key, w.access_token, env)
        .map_err(|(key, problem)| err(&key, &problem))?;
    let url = |v: Option<String>, key: &str, default: &str| -> Result<Url, ConfigError> {
        let text = v.unwrap_or_else(|| default.to_string());
        let url = Url::parse(&text).map_err(|e| err(key, &format!("invalid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(err(key, "must be an http:// or https:// URL"));
        }
        Ok(url)
    };
    let positive = |value, default, key: &str| crate::config::positive(value, default, key, err);
    let max_attempts = w.max_attempts.unwrap_or(8);
    if max_attempts == 0 {
        return Err(err("warehouse.max_attempts", "must be at least 1"));
    }
    let parallel_tables = w.parallel_tables.unwrap_or(4);
    if !(1..=64).contains(&parallel_tables) {
        return Err(err("warehouse.parallel_tables", "must be between 1 and 64"));
    }
    let prefix = w.prefix.unwrap_or_else(|| "govflow".to_string());
    let prefix = prefix.trim_matches('/').to_string();
    let local_dir = w.local_dir.unwrap_or_else(|| state_dir.join("warehouse"));
    if local_dir.as_os_str().is_empty() {
        return Err(err("warehouse.local_dir", "must not be empty"));
    }
    Ok(BigQueryConfig {
        project,
        dataset,
        location: w
            .location
            .filter(|l| !l.trim().is_empty())
            .unwrap_or_else(|| "US".to_string()),
        credentials: resolved.credentials,
        credentials_origin: resolved.origin,
        bucket,
        prefix,
        api_endpoint: url(
            w.api_endpoint,
            "warehouse.api_endpoint",
            "https://bigquery.googleapis.com",
        )?,
        storage_endpoint: url(
            w.storage_endpoint,
            "warehouse.storage_endpoint",
            "https://storage.googleapis.com",
        )?,
        flush_interval: positive(
            w.flush_interval,
            Duration::from_secs(300),
            "warehouse.flush_interval",
        )?,
        // Zero is allowed: no spacing between loads (tests, emulators).
        min_table_interval: w.min_table_interval.unwrap_or(Duration::from_secs(60)),
        staging_expiration: positive(
            w.staging_expiration,
            Duration::from_secs(24 * 3600),
            "warehouse.staging_expiration",
        )?,
        request_timeout: positive(
            w.request_timeout,
            Duration::from_secs(60),
            "warehouse.request_timeout",
        )?,
        job_timeout: positive(
            w.job_timeout,
            Duration::from_secs(600),
            "warehouse.job_timeout",
        )?,
        max_attempts,
        retry_backoff: positive(
            w.retry_backoff,
            Duration::from_secs(1),
            "warehouse.retry_backoff",
        )?,
        parallel_tables,
        local_dir,
    })
}
