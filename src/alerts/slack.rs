//! The Slack sink: `chat.postMessage` with a bot token, or an incoming webhook.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::Rng;
use reqwest::StatusCode;
use url::Url;

use super::{AlertError, AlertStats};
use crate::alerts::{SlackConfig, SlackTarget};
use crate::config::LiveSecret;

/// Posts message texts to Slack, retrying 429 and 5xx.
#[derive(Debug)]
pub struct SlackSink {
    http: reqwest::Client,
    target: Target,
    max_attempts: u32,
    first_backoff: Duration,
    max_backoff: Duration,
}

#[derive(Debug)]
enum Target {
    Bot {
        endpoint: Url,
        token: LiveSecret,
        channel: String,
    },
    Webhook {
        url: LiveSecret,
    },
}

/// Longest body kept in an error.
const MAX_BODY: usize = 300;

impl SlackSink {
    /// A sink for `config`.
    pub fn new(config: &SlackConfig) -> Result<SlackSink, AlertError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("govflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AlertError::Setup(format!("HTTP client: {}", e.without_url())))?;
        let target = match &config.target {
            SlackTarget::BotToken {
                base_url,
                token,
                channel,
            } => {
                let base = base_url.as_str().trim_end_matches('/');
                let endpoint = Url::parse(&format!("{base}/api/chat.postMessage"))
                    .map_err(|e| AlertError::Setup(format!("slack base_url: {e}")))?;
                Target::Bot {
                    endpoint,
                    token: LiveSecret::new(token.clone()),
                    channel: channel.clone(),
                }
            }
            SlackTarget::Webhook { url } => Target::Webhook {
                url: LiveSecret::new(url.clone()),
            },
        };
        Ok(SlackSink {
            http,
            target,
            max_attempts: config.max_attempts.max(1),
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        })
    }

    pub(super) fn set_backoff(&mut self, first: Duration, max: Duration) {
        self.first_backoff = first;
        self.max_backoff = max.max(first);
    }

    /// The token (or webhook URL) and its configuration key, which a
    /// configuration reload replaces.
    pub fn secret(&self) -> (&'static str, &LiveSecret) {
        match &self.target {
            Target::Bot { token, .. } => ("alerts.slack.bot_token", token),
            Target::Webhook { url } => ("alerts.slack.webhook_url", url),
        }
    }

    /// `slack chat.postMessage` or `slack webhook`, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self.target {
            Target::Bot { .. } => "slack chat.postMessage",
            Target::Webhook { .. } => "slack webhook",
        }
    }

    /// Posts `text`, retrying what may succeed later.
    pub async fn send(&self, text: &str, stats: &AlertStats) -> Result<(), AlertError> {
        let mut attempt = 1;
        loop {
            let err = match self.send_once(text).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if !err.is_retryable() {
                return Err(err);
            }
            if attempt >= self.max_attempts {
                return Err(AlertError::Exhausted {
                    attempts: attempt,
                    last: Box::new(err),
                });
            }
            let wait = err
                .retry_after()
                .unwrap_or_else(|| self.backoff(attempt))
                .min(self.max_backoff);
            stats.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(sink = self.kind(), attempt, error = %err, wait_ms = wait.as_millis() as u64, "retrying alert");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .first_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_backoff);
        // Full jitter over the upper half.
        let half = exp / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }

    async fn send_once(&self, text: &str) -> Result<(), AlertError> {
        let sink = self.kind();
        let request = match &self.target {
            Target::Bot {
                endpoint,
                token,
                channel,
            } => self
                .http
                .post(endpoint.clone())
                .bearer_auth(token.get().expose())
                .json(&serde_json::json!({ "channel": channel, "text": text })),
            Target::Webhook { url } => self
                .http
                .post(url.get().expose())
                .json(&serde_json::json!({ "text": text })),
        };
        let transport = |e: reqwest::Error| AlertError::Transport {
            sink,
            detail: e.without_url().to_string(),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.text().await.map_err(transport)?;
        if status != StatusCode::OK && !status.is_success() {
            return Err(AlertError::Status {
                sink,
                status: status.as_u16(),
                body: cut(&body),
                retry_after,
            });
        }
        match &self.target {
            // Slack answers 200 with {"ok": false, "error": "..."} on failure.
            Target::Bot { .. } => {
                #[derive(serde::Deserialize)]
                struct Answer {
                    ok: bool,
                    #[serde(default)]
                    error: Option<String>,
                }
                let answer: Answer =
                    serde_json::from_str(&body).map_err(|e| AlertError::Transport {
                        sink,
                        detail: format!("unexpected response body ({e}): {}", cut(&body)),
                    })?;
                if answer.ok {
                    Ok(())
                } else {
                    Err(AlertError::Slack {
                        error: answer.error.unwrap_or_else(|| "unknown_error".into()),
                    })
                }
            }
            Target::Webhook { .. } => Ok(()),
        }
    }
}

fn cut(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(MAX_BODY) {
        Some((i, _)) => format!("{}…", &body[..i]),
        None => body.to_string(),
    }
}
