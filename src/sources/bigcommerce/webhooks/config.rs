//! `[webhooks]`: the BigCommerce webhook receiver's address and secret, and
//! their validation.

use serde::Deserialize;

use crate::config::{ConfigError, Secret};

/// `[webhooks]`: the BigCommerce webhook receiver (see docs/notifications.md).
#[derive(Debug, Clone)]
pub struct WebhooksConfig {
    /// Address to listen on, e.g. `0.0.0.0:8700`.
    pub listen: std::net::SocketAddr,
    /// Request header that carries the shared secret (default
    /// `X-Govflow-Webhook-Secret`), set as a custom header when the webhook is
    /// registered with BigCommerce.
    pub secret_header: String,
    /// The shared secret.
    pub secret: Secret,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhooks {
    listen: String,
    secret: Secret,
    secret_header: Option<String>,
}

pub(crate) fn validate_webhooks(
    raw: RawWebhooks,
    err: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<WebhooksConfig, ConfigError> {
    let listen = raw.listen.trim().parse().map_err(|_| {
        err(
            "webhooks.listen",
            "must be an address with a port, e.g. \"0.0.0.0:8700\"",
        )
    })?;
    if raw.secret.expose().trim().len() < 16 {
        return Err(err(
            "webhooks.secret",
            "must be at least 16 characters (it is the only authentication of the receiver)",
        ));
    }
    let secret_header = raw
        .secret_header
        .unwrap_or_else(|| DEFAULT_WEBHOOK_SECRET_HEADER.to_string());
    if reqwest::header::HeaderName::from_bytes(secret_header.as_bytes()).is_err() {
        return Err(err("webhooks.secret_header", "is not a valid header name"));
    }
    Ok(WebhooksConfig {
        listen,
        secret_header,
        secret: Secret::new(raw.secret.expose().trim()),
    })
}

/// Default header of the webhook receiver's shared secret.
pub const DEFAULT_WEBHOOK_SECRET_HEADER: &str = "X-Govflow-Webhook-Secret";
