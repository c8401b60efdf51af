//! `[alerts]`: where alerts go (Slack) and when a source is alerted, and
//! their validation.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::config::{ConfigError, Secret};

/// `[alerts]`: alert destinations and thresholds.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// `[alerts.slack]`; without it alerts are only logged.
    pub slack: Option<SlackConfig>,
    /// Consecutive failures of a source before it is alerted (default 3).
    pub source_failure_threshold: u32,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            slack: None,
            source_failure_threshold: super::DEFAULT_SOURCE_FAILURE_THRESHOLD,
        }
    }
}

/// `[alerts.slack]`: one Slack destination.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// Bot token and channel, or incoming webhook.
    pub target: SlackTarget,
    /// Most messages per minute (default 10); more are dropped and counted.
    pub max_per_minute: u32,
    /// Timeout of one request (default 10 s).
    pub timeout: Duration,
    /// Attempts per message on 429/5xx/transport errors (default 5).
    pub max_attempts: u32,
}

impl SlackConfig {
    /// The secret values of this destination.
    pub fn secrets(&self) -> Vec<&Secret> {
        match &self.target {
            SlackTarget::BotToken { token, .. } => vec![token],
            SlackTarget::Webhook { url } => vec![url],
        }
    }
}

/// Where Slack messages go.
#[derive(Debug, Clone)]
pub enum SlackTarget {
    /// `POST {base_url}/api/chat.postMessage` with `Authorization: Bearer {token}`.
    BotToken {
        /// API root, `https://slack.com` by default.
        base_url: Url,
        /// The bot token (`SLACK_BOT_TOKEN`, `xoxb-…`).
        token: Secret,
        /// Channel id or name, e.g. `#data-alerts` or `C0123456`.
        channel: String,
    },
    /// `POST {url}` of an incoming webhook; the URL itself is the secret.
    Webhook {
        /// The webhook URL (`https://hooks.slack.com/services/…`).
        url: Secret,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlerts {
    source_failure_threshold: Option<u32>,
    slack: Option<RawSlack>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSlack {
    bot_token: Option<Secret>,
    channel: Option<String>,
    webhook_url: Option<Secret>,
    base_url: Option<String>,
    max_per_minute: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    max_attempts: Option<u32>,
}

pub(crate) fn validate_alerts(
    raw: Option<RawAlerts>,
    err: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<AlertsConfig, ConfigError> {
    let Some(raw) = raw else {
        return Ok(AlertsConfig::default());
    };
    let source_failure_threshold = raw
        .source_failure_threshold
        .unwrap_or(super::DEFAULT_SOURCE_FAILURE_THRESHOLD);
    if source_failure_threshold == 0 {
        return Err(err("alerts.source_failure_threshold", "must be at least 1"));
    }
    let slack = raw.slack.map(|s| validate_slack(s, err)).transpose()?;
    Ok(AlertsConfig {
        slack,
        source_failure_threshold,
    })
}

pub(crate) fn validate_slack(
    raw: RawSlack,
    err: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<SlackConfig, ConfigError> {
    let http_url = |text: &str| {
        Url::parse(text.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
    };
    let target = match (raw.bot_token, raw.webhook_url) {
        (Some(_), Some(_)) => {
            return Err(err(
                "alerts.slack",
                "set either bot_token (with channel) or webhook_url, not both",
            ));
        }
        (None, None) => {
            return Err(err(
                "alerts.slack",
                "set bot_token = \"${SLACK_BOT_TOKEN}\" with channel, or webhook_url",
            ));
        }
        (Some(token), None) => {
            if token.expose().trim().is_empty() {
                return Err(err("alerts.slack.bot_token", "must not be empty"));
            }
            let channel = match raw.channel {
                Some(c) if !c.trim().is_empty() => c.trim().to_string(),
                _ => {
                    return Err(err(
                        "alerts.slack.channel",
                        "is required with bot_token (a channel id or #name)",
                    ));
                }
            };
            let base = raw
                .base_url
                .unwrap_or_else(|| "https://slack.com".to_string());
            let base_url = http_url(&base).ok_or_else(|| {
                err(
                    "alerts.slack.base_url",
                    "must be an http(s) URL with a host",
                )
            })?;
            SlackTarget::BotToken {
                base_url,
                token: Secret::new(token.expose().trim()),
                channel,
            }
        }
        (None, Some(url)) => {
            if raw.channel.is_some() || raw.base_url.is_some() {
                return Err(err(
                    "alerts.slack",
                    "channel and base_url go with bot_token; a webhook_url has its channel built in",
                ));
            }
            // The URL is the secret: the problem is stated without quoting it.
            if http_url(url.expose()).is_none() {
                return Err(err(
                    "alerts.slack.webhook_url",
                    "must be an http(s) URL with a host",
                ));
            }
            SlackTarget::Webhook {
                url: Secret::new(url.expose().trim()),
            }
        }
    };
    let max_per_minute = raw.max_per_minute.unwrap_or(super::DEFAULT_MAX_PER_MINUTE);
    if !(1..=1000).contains(&max_per_minute) {
        return Err(err(
            "alerts.slack.max_per_minute",
            "must be between 1 and 1000",
        ));
    }
    let timeout = raw.timeout.unwrap_or(Duration::from_secs(10));
    if timeout.is_zero() {
        return Err(err("alerts.slack.timeout", "must be longer than zero"));
    }
    let max_attempts = raw.max_attempts.unwrap_or(5);
    if max_attempts == 0 {
        return Err(err("alerts.slack.max_attempts", "must be at least 1"));
    }
    Ok(SlackConfig {
        target,
        max_per_minute,
        timeout,
        max_attempts,
    })
}
