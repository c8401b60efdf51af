//! `[notifications]`: where restock notification events are delivered, and
//! its validation.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::config::{ConfigError, Secret};

/// `[notifications]`: HTTP delivery of `product_notification_event` (see
/// docs/notifications.md).
#[derive(Debug, Clone)]
pub struct NotificationsConfig {
    /// The endpoint each event is POSTed to, as JSON with an `Idempotency-Key`
    /// header equal to its `event_id`.
    pub endpoint: Url,
    /// Extra request headers (e.g. `Authorization`); values are secrets.
    pub headers: Vec<(String, Secret)>,
    /// Timeout of one request (default 10 s).
    pub timeout: Duration,
    /// Customers delivered to concurrently (default 8); one customer's events
    /// always go one at a time, in order.
    pub max_in_flight: usize,
    /// First retry delay (default 200 ms), doubled per attempt up to `retry_max`.
    pub retry_initial: Duration,
    /// Longest retry delay (default 30 s). Retries never stop on their own.
    pub retry_max: Duration,
    /// With `govflow run --once`: longest wait for the outbox to drain before
    /// exiting (default 30 s; what is left is delivered by the next run).
    pub drain_timeout: Duration,
    /// A Slack incoming-webhook URL each event is also posted to, as a
    /// message, through its own delivery lane (a secret).
    pub slack_webhook: Option<Secret>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotifications {
    endpoint: String,
    #[serde(default)]
    headers: BTreeMap<String, Secret>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    max_in_flight: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    retry_initial: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    retry_max: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    drain_timeout: Option<Duration>,
    slack_webhook: Option<Secret>,
}

pub(crate) fn validate_notifications(
    raw: RawNotifications,
    err: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<NotificationsConfig, ConfigError> {
    let endpoint = Url::parse(raw.endpoint.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| {
            err(
                "notifications.endpoint",
                "must be an http(s) URL with a host",
            )
        })?;
    let mut headers = Vec::new();
    for (name, value) in raw.headers {
        let key = format!("notifications.headers.{name}");
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(err(&key, "is not a valid header name"));
        }
        if name.eq_ignore_ascii_case("idempotency-key") || name.eq_ignore_ascii_case("content-type")
        {
            return Err(err(&key, "is set by govflow itself"));
        }
        if reqwest::header::HeaderValue::from_str(value.expose()).is_err() {
            return Err(err(&key, "is not a valid header value"));
        }
        headers.push((name, value));
    }
    let positive = |value, default, key: &str| crate::config::positive(value, default, key, err);
    let timeout = positive(
        raw.timeout,
        Duration::from_secs(10),
        "notifications.timeout",
    )?;
    let retry_initial = positive(
        raw.retry_initial,
        Duration::from_millis(200),
        "notifications.retry_initial",
    )?;
    let retry_max = positive(
        raw.retry_max,
        Duration::from_secs(30),
        "notifications.retry_max",
    )?;
    if retry_max < retry_initial {
        return Err(err(
            "notifications.retry_max",
            "must not be shorter than retry_initial",
        ));
    }
    let drain_timeout = raw.drain_timeout.unwrap_or(Duration::from_secs(30));
    let max_in_flight = raw.max_in_flight.unwrap_or(8);
    if !(1..=256).contains(&max_in_flight) {
        return Err(err(
            "notifications.max_in_flight",
            "must be between 1 and 256",
        ));
    }
    if let Some(url) = &raw.slack_webhook {
        let valid = Url::parse(url.expose().trim())
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !valid {
            // The URL is a secret: not quoted.
            return Err(err(
                "notifications.slack_webhook",
                "must be an http(s) URL with a host",
            ));
        }
    }
    Ok(NotificationsConfig {
        slack_webhook: raw.slack_webhook,
        endpoint,
        headers,
        timeout,
        max_in_flight,
        retry_initial,
        retry_max,
        drain_timeout,
    })
}
