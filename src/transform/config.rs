//! `[dbt]`: the marts' dbt project and how it is run, and its validation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;
use crate::sinks::{DEFAULT_STATE_DIR, DEFAULT_WAREHOUSE_DIR};

/// Default dbt project directory.
pub const DEFAULT_DBT_PROJECT_DIR: &str = "transformer";

/// `[dbt]`: the marts' dbt project (see docs/transformer.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbtConfig {
    /// The dbt project (default `transformer`).
    pub project_dir: PathBuf,
    /// Where `profiles.yml` is (default: the project directory).
    pub profiles_dir: PathBuf,
    /// The profile target: `duckdb` (default, marts over the local warehouse) or `bigquery`.
    pub target: String,
    /// The DuckDB database the `duckdb` target writes the marts into
    /// (default `marts.duckdb` next to the warehouse directory).
    pub marts_db: PathBuf,
    /// dbt's `target/` and `logs/` (default `dbt` in the state directory).
    pub work_dir: PathBuf,
    /// The `dbt` executable; default: found (see `transform::find_dbt`).
    pub executable: Option<PathBuf>,
    /// Longest a dbt invocation may run before it is stopped (default 30 min).
    pub timeout: Duration,
}

impl Default for DbtConfig {
    fn default() -> Self {
        DbtConfig::with_dirs(
            Path::new(DEFAULT_WAREHOUSE_DIR),
            Path::new(DEFAULT_STATE_DIR),
        )
    }
}

impl DbtConfig {
    /// The defaults for a warehouse and a state directory.
    pub fn with_dirs(warehouse_dir: &Path, state_dir: &Path) -> Self {
        let project_dir = PathBuf::from(DEFAULT_DBT_PROJECT_DIR);
        DbtConfig {
            profiles_dir: project_dir.clone(),
            project_dir,
            target: "duckdb".to_string(),
            marts_db: warehouse_dir
                .parent()
                .unwrap_or(Path::new(""))
                .join("marts.duckdb"),
            work_dir: state_dir.join("dbt"),
            executable: None,
            timeout: Duration::from_secs(30 * 60),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDbt {
    project_dir: Option<PathBuf>,
    profiles_dir: Option<PathBuf>,
    target: Option<String>,
    marts_db: Option<PathBuf>,
    work_dir: Option<PathBuf>,
    executable: Option<PathBuf>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
}

/// Checks `[dbt]`; its defaults follow the warehouse and state directories.
pub(crate) fn validate_dbt(
    raw: Option<RawDbt>,
    warehouse_dir: &Path,
    state_dir: &Path,
    err: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<DbtConfig, ConfigError> {
    let mut dbt = DbtConfig::with_dirs(warehouse_dir, state_dir);
    let Some(raw) = raw else {
        return Ok(dbt);
    };
    let nonempty = |p: Option<PathBuf>, key: &str| match p {
        Some(p) if p.as_os_str().is_empty() => Err(err(key, "must not be empty")),
        p => Ok(p),
    };
    if let Some(dir) = nonempty(raw.project_dir, "dbt.project_dir")? {
        dbt.profiles_dir = dir.clone();
        dbt.project_dir = dir;
    }
    if let Some(dir) = nonempty(raw.profiles_dir, "dbt.profiles_dir")? {
        dbt.profiles_dir = dir;
    }
    if let Some(target) = raw.target {
        if target.trim().is_empty() {
            return Err(err("dbt.target", "must not be empty"));
        }
        dbt.target = target;
    }
    if let Some(path) = nonempty(raw.marts_db, "dbt.marts_db")? {
        dbt.marts_db = path;
    }
    if let Some(dir) = nonempty(raw.work_dir, "dbt.work_dir")? {
        dbt.work_dir = dir;
    }
    dbt.executable = nonempty(raw.executable, "dbt.executable")?;
    match raw.timeout {
        Some(t) if t.is_zero() => {
            return Err(err("dbt.timeout", "must be longer than zero"));
        }
        Some(t) => dbt.timeout = t,
        None => {}
    }
    Ok(dbt)
}
