//! `[warehouse]` and `[state]`: where tables are published and where the
//! checkpoint is kept; and their validation (`kind = "bigquery"` in
//! [`super::bigquery::config`]).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::bigquery::config::{BigQueryConfig, validate_bigquery};
use crate::config::{ConfigError, Secret};

/// Default warehouse directory of the embedded warehouse.
pub const DEFAULT_WAREHOUSE_DIR: &str = "govflow-data/warehouse";
/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "govflow-data/state";

/// `[warehouse]`: the sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarehouseConfig {
    /// The embedded Parquet warehouse in a directory.
    Local {
        /// The warehouse directory.
        dir: PathBuf,
    },
    /// BigQuery (production): tables merged into a dataset; the local
    /// warehouse in `local_dir` stays the source of truth for restarts.
    BigQuery(Box<BigQueryConfig>),
}

impl WarehouseConfig {
    /// The sinks an epoch is committed to, by name: the local warehouse, and
    /// BigQuery when configured.
    pub fn sink_names(&self) -> Vec<String> {
        let mut names = vec![super::local::NAME.to_string()];
        if matches!(self, WarehouseConfig::BigQuery(_)) {
            names.push(super::bigquery::NAME.to_string());
        }
        names
    }
}

/// `[state]`: checkpoint, cursors, changelog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateConfig {
    /// The state directory.
    pub dir: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWarehouse {
    pub(crate) kind: Option<String>,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) project: Option<String>,
    pub(crate) dataset: Option<String>,
    pub(crate) location: Option<String>,
    pub(crate) service_account_key: Option<Secret>,
    pub(crate) access_token: Option<Secret>,
    pub(crate) bucket: Option<String>,
    pub(crate) prefix: Option<String>,
    pub(crate) api_endpoint: Option<String>,
    pub(crate) storage_endpoint: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) flush_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) min_table_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) staging_expiration: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) request_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) job_timeout: Option<Duration>,
    pub(crate) max_attempts: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub(crate) retry_backoff: Option<Duration>,
    pub(crate) parallel_tables: Option<usize>,
    pub(crate) local_dir: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawState {
    dir: Option<PathBuf>,
}

/// Checks `[warehouse]` and `[state]` and fills in the defaults: the
/// embedded warehouse under `govflow-data/`.
pub(crate) fn validate_warehouse(
    warehouse: Option<RawWarehouse>,
    state: Option<RawState>,
    env: &dyn Fn(&str) -> Option<String>,
    err: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<(WarehouseConfig, StateConfig), ConfigError> {
    let state_dir = state
        .and_then(|s| s.dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    let warehouse = match warehouse {
        None => WarehouseConfig::Local {
            dir: PathBuf::from(DEFAULT_WAREHOUSE_DIR),
        },
        Some(w) => match w.kind.as_deref().unwrap_or("local") {
            "local" => {
                let dir = w
                    .dir
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_WAREHOUSE_DIR));
                if dir.as_os_str().is_empty() {
                    return Err(err("warehouse.dir", "must not be empty"));
                }
                WarehouseConfig::Local { dir }
            }
            "bigquery" => {
                WarehouseConfig::BigQuery(Box::new(validate_bigquery(w, &state_dir, env, err)?))
            }
            other => {
                return Err(err(
                    "warehouse.kind",
                    &format!("unknown kind {other:?}: expected \"local\" or \"bigquery\""),
                ));
            }
        },
    };
    if state_dir.as_os_str().is_empty() {
        return Err(err("state.dir", "must not be empty"));
    }
    Ok((warehouse, StateConfig { dir: state_dir }))
}
