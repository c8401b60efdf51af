//! `[status]`: the status server's address, token and readiness rule, and
//! their validation.

use std::time::Duration;

use serde::Deserialize;

use crate::config::{ConfigError, Secret};

/// `[status]`: the HTTP server of `govflow run` and `govflow demo` (docs/status.md).
#[derive(Debug, Clone)]
pub struct StatusConfig {
    /// Where it listens (default `127.0.0.1:3000`); `None` when `listen = "off"`.
    pub listen: Option<std::net::SocketAddr>,
    /// A bearer token every request but `/healthz` and `/readyz` must carry.
    pub token: Option<Secret>,
    /// `/readyz` fails when a source's last committed pull is older (default 5 min).
    pub ready_max_lag: Duration,
}

/// Default address of the status server.
pub const DEFAULT_STATUS_LISTEN: &str = "127.0.0.1:3000";

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            listen: DEFAULT_STATUS_LISTEN.parse().ok(),
            token: None,
            ready_max_lag: Duration::from_secs(300),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStatus {
    listen: Option<String>,
    token: Option<Secret>,
    #[serde(default, with = "humantime_serde")]
    ready_max_lag: Option<Duration>,
}

pub(crate) fn validate_status(
    raw: Option<RawStatus>,
    err: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<StatusConfig, ConfigError> {
    let mut status = StatusConfig::default();
    let Some(raw) = raw else {
        return Ok(status);
    };
    match raw.listen.as_deref().map(str::trim) {
        None => {}
        Some("off") => status.listen = None,
        Some(addr) => {
            status.listen = Some(addr.parse().map_err(|_| {
                err(
                    "status.listen",
                    &format!("{addr:?} is not an address like \"127.0.0.1:3000\" (or \"off\")"),
                )
            })?)
        }
    }
    if let Some(token) = raw.token {
        if token.expose().trim().is_empty() {
            return Err(err("status.token", "must not be empty"));
        }
        status.token = Some(token);
    }
    match raw.ready_max_lag {
        Some(d) if d.is_zero() => {
            return Err(err("status.ready_max_lag", "must be longer than zero"));
        }
        Some(d) => status.ready_max_lag = d,
        None => {}
    }
    Ok(status)
}
