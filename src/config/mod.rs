//! Configuration primitives every component's section is built from: the
//! [`Secret`] that never prints, [`ConfigError`] (file, key, problem),
//! `${VAR}` and `${file:PATH}` expansion ([`expand`]), Google credentials
//! ([`gcp`]) and secrets a reload replaces ([`live`]).
//!
//! Each component owns its section's type and its pure validation next to
//! its code (`sources/postgres/config.rs`, `sinks/bigquery/config.rs`,
//! `alerts/config.rs`, …); [`crate::settings`] assembles the whole file.
//! This module imports nothing from the rest of govflow.

pub mod expand;
pub mod gcp;
pub mod live;

pub use expand::{expand_str, system_lookup};
pub use gcp::{AuthorizedUser, BigQueryCredentials, MetadataServer, ServiceAccountKey};
pub use live::{LiveSecret, LiveSecrets};

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// A configuration value that must never be printed: `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// A configuration error, naming the file, the key (dotted path) and the problem.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {problem}")]
pub struct ConfigError {
    /// The configuration file (or `<inline>` for a string).
    pub file: String,
    /// Dotted path of the offending key; empty for the whole file.
    pub key: String,
    /// What is wrong, without secret values.
    pub problem: String,
}

/// Parses the TOML `text` of `file`, expands `${VAR}` and `${file:PATH}`
/// with `env` in every string, and deserializes it as `T`; an error names
/// the file and the dotted key.
pub fn parse<T: DeserializeOwned>(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<T, ConfigError> {
    let err = |key: &str, problem: String| ConfigError {
        file: file.to_string(),
        key: key.to_string(),
        problem,
    };
    let mut table: toml::Table = toml::from_str(text).map_err(|e| {
        // toml's message quotes the offending line; the file holds `${VAR}`
        // references, not expanded secrets, so quoting it is safe.
        err("", format!("invalid TOML: {}", e.message()))
    })?;
    expand::expand_table(&mut table, "", env).map_err(|(key, problem)| err(&key, problem))?;
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." { String::new() } else { key };
        err(&key, e.into_inner().message().to_string())
    })
}

/// A duration setting at `key`: `default` when absent, refused when zero.
pub fn positive(
    value: Option<Duration>,
    default: Duration,
    key: &str,
    err: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<Duration, ConfigError> {
    match value {
        Some(d) if d.is_zero() => Err(err(key, "must be longer than zero")),
        Some(d) => Ok(d),
        None => Ok(default),
    }
}
