//! One delivery attempt of one event to the HTTP endpoint, and which
//! failures are worth retrying.

use std::time::Duration;

use dataflows::rows::product_notification_event::ProductNotificationEvent;
use serde::Serialize;

use crate::notify::NotificationsConfig;

/// The JSON body POSTed for an event.
#[derive(Debug, Serialize)]
pub struct Payload<'a> {
    /// Always `product.restocked`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The event id, also sent as the `Idempotency-Key` header.
    pub event_id: &'a str,
    /// The subscribed customer.
    pub customer_id: i64,
    /// The customer's email when the episode started.
    pub customer_email: &'a str,
    /// Restocked variant.
    pub sku_id: i64,
    /// Its product.
    pub product_id: i64,
    /// SKU code.
    pub sku: &'a str,
    /// The commit epoch that started the episode.
    pub episode: i64,
    /// Inventory level at the start of the episode.
    pub inventory_level: i64,
    /// Price, as a decimal string (`"12.5000"`).
    pub price: String,
    /// Sale price, as a decimal string.
    pub sale_price: String,
}

impl<'a> Payload<'a> {
    /// The body of `event`.
    pub fn of(event: &'a ProductNotificationEvent) -> Self {
        Payload {
            kind: "product.restocked",
            event_id: &event.event_id,
            customer_id: event.customer_id,
            customer_email: &event.customer_email,
            sku_id: event.sku_id,
            product_id: event.product_id,
            sku: &event.sku,
            episode: event.episode,
            inventory_level: event.inventory_level,
            price: event.price.to_string(),
            sale_price: event.sale_price.to_string(),
        }
    }
}

/// A failed delivery attempt.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// No answer: connection refused or reset, timeout.
    #[error("event {event_id}: no answer from the endpoint: {detail}")]
    Transport {
        /// The event.
        event_id: String,
        /// What went wrong (without the URL's secrets: headers are not shown).
        detail: String,
    },
    /// The endpoint answered with a non-2xx status.
    #[error("event {event_id}: the endpoint answered {status}")]
    Status {
        /// The event.
        event_id: String,
        /// The HTTP status.
        status: u16,
        /// `Retry-After`, when the endpoint sent one (in seconds).
        retry_after: Option<Duration>,
    },
}

impl DeliveryError {
    /// Whether trying again later may succeed. Only statuses that say the
    /// request itself is wrong (400, 413, 415, 422) are final: anything else
    /// (5xx, 429, 408, 409, and 401/403/404, which an operator fixes on the
    /// endpoint's side) is retried until it succeeds, so no event is dropped
    /// because of an outage or a misconfiguration.
    pub fn is_retryable(&self) -> bool {
        match self {
            DeliveryError::Transport { .. } => true,
            DeliveryError::Status { status, .. } => !matches!(status, 400 | 413 | 415 | 422),
        }
    }

    /// The delay the endpoint asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DeliveryError::Status { retry_after, .. } => *retry_after,
            DeliveryError::Transport { .. } => None,
        }
    }
}

/// What a request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The event as JSON ([`Payload`]), with the configured headers.
    Json,
    /// A Slack incoming-webhook message (`{"text": ...}`).
    Slack,
}

/// The text of an event's Slack message.
pub fn slack_text(event: &ProductNotificationEvent) -> String {
    let price = if event.sale_price.0 > 0 {
        format!("{} (sale; list {})", event.sale_price, event.price)
    } else {
        event.price.to_string()
    };
    format!(
        ":package: Back in stock for customer {}: SKU `{}` (product {}, variant {}), {} in stock at {price}. Event `{}`.",
        event.customer_id,
        event.sku,
        event.product_id,
        event.sku_id,
        event.inventory_level,
        event.event_id
    )
}

/// Sends events to the configured endpoint, or to a Slack incoming webhook.
#[derive(Clone, Debug)]
pub struct HttpDelivery {
    client: reqwest::Client,
    config: NotificationsConfig,
    /// Where requests go: `config.endpoint`, or the Slack webhook (a secret:
    /// never logged; errors are reported without it).
    target: url::Url,
    format: Format,
}

impl HttpDelivery {
    /// A client for `config`'s endpoint.
    pub fn new(config: NotificationsConfig) -> Result<HttpDelivery, reqwest::Error> {
        let target = config.endpoint.clone();
        Self::with_target(config, target, Format::Json)
    }

    /// A client posting Slack messages to `webhook_url`, with `config`'s
    /// timeout and retries.
    pub fn slack(
        config: NotificationsConfig,
        webhook_url: url::Url,
    ) -> Result<HttpDelivery, reqwest::Error> {
        Self::with_target(config, webhook_url, Format::Slack)
    }

    fn with_target(
        config: NotificationsConfig,
        target: url::Url,
        format: Format,
    ) -> Result<HttpDelivery, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()?;
        Ok(HttpDelivery {
            client,
            config,
            target,
            format,
        })
    }

    /// One attempt: `Ok` once the endpoint answered 2xx.
    pub async fn send(&self, event: &ProductNotificationEvent) -> Result<(), DeliveryError> {
        let mut request = self
            .client
            .post(self.target.clone())
            .header("Idempotency-Key", &event.event_id);
        match self.format {
            Format::Json => {
                request = request.json(&Payload::of(event));
                for (name, value) in &self.config.headers {
                    request = request.header(name.as_str(), value.expose());
                }
            }
            Format::Slack => {
                request = request.json(&serde_json::json!({ "text": slack_text(event) }));
            }
        }
        let response = request.send().await.map_err(|e| DeliveryError::Transport {
            event_id: event.event_id.clone(),
            // reqwest's text names the URL; headers (the secrets) are never in it.
            detail: e.without_url().to_string(),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Err(DeliveryError::Status {
            event_id: event.event_id.clone(),
            status: status.as_u16(),
            retry_after,
        })
    }

    /// The delay before retry number `attempt` (1-based): `retry_initial`
    /// doubled per attempt, capped at `retry_max`, with up to 25 % jitter
    /// taken off so that lanes retrying together spread out; a `Retry-After`
    /// longer than that wins (still capped).
    pub fn backoff(&self, attempt: u32, error: &DeliveryError) -> Duration {
        let base = self
            .config
            .retry_initial
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(20)))
            .min(self.config.retry_max);
        let jitter = base.mul_f64(rand::random::<f64>() * 0.25);
        let delay = base.saturating_sub(jitter);
        match error.retry_after() {
            Some(asked) => asked.max(delay).min(self.config.retry_max),
            None => delay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> DeliveryError {
        DeliveryError::Status {
            event_id: "e".into(),
            status,
            retry_after: None,
        }
    }

    #[test]
    fn retryable_statuses() {
        for s in [500, 502, 503, 429, 408, 409, 401, 403, 404] {
            assert!(status(s).is_retryable(), "{s}");
        }
        for s in [400, 413, 415, 422] {
            assert!(!status(s).is_retryable(), "{s}");
        }
        let transport = DeliveryError::Transport {
            event_id: "e".into(),
            detail: "refused".into(),
        };
        assert!(transport.is_retryable());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = NotificationsConfig {
            endpoint: "http://127.0.0.1:1/".parse().unwrap(),
            headers: Vec::new(),
            timeout: Duration::from_secs(1),
            max_in_flight: 1,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(1),
            slack_webhook: None,
        };
        let d = HttpDelivery::new(config).unwrap();
        let ms = |attempt| d.backoff(attempt, &status(503)).as_millis();
        assert!((75..=100).contains(&ms(1)), "{}", ms(1));
        assert!((150..=200).contains(&ms(2)), "{}", ms(2));
        assert!((750..=1000).contains(&ms(10)), "{}", ms(10));
        let asked = DeliveryError::Status {
            event_id: "e".into(),
            status: 429,
            retry_after: Some(Duration::from_secs(60)),
        };
        assert_eq!(d.backoff(1, &asked), Duration::from_secs(1));
    }
}
