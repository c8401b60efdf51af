//! HTTP client for BigCommerce's REST API: authentication, pacing through the
//! [`Governor`], and retries with backoff and jitter.
//!
//! A request is retried on 408/429/5xx, transport errors, timeouts and bodies
//! that are cut short or do not parse as a whole (the parse is part of the
//! attempt). A 429 waits `X-Rate-Limit-Time-Reset-Ms` when the headers say,
//! else backs off. Other statuses fail at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use reqwest::StatusCode;
use url::Url;

use super::error::BigCommerceError;
use super::governor::{Governor, RateLimitHeaders};
use crate::config::LiveSecret;
use crate::sources::bigcommerce::BigCommerceConfig;

/// Counters of one client, for tests, logs and metrics.
#[derive(Debug, Default)]
pub struct ClientStats {
    /// Requests sent, retries included.
    pub requests: AtomicU64,
    /// Retries after a retryable failure.
    pub retries: AtomicU64,
    /// 429 answers.
    pub rate_limited: AtomicU64,
    /// Retryable failures other than 429.
    pub transient_errors: AtomicU64,
}

/// A successful answer: the body, or nothing (HTTP 204).
#[derive(Debug)]
pub enum Payload {
    /// HTTP 204 or an empty body.
    Empty,
    /// The body bytes.
    Body(Bytes),
}

/// BigCommerce API client for one store.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    api_root: Url,
    path_prefix: String,
    token: LiveSecret,
    governor: Governor,
    max_attempts: u32,
    stats: ClientStats,
    /// Where each request's latency goes, once set.
    latency: std::sync::OnceLock<prometheus_client::metrics::histogram::Histogram>,
}

/// First backoff delay; doubles per attempt up to [`MAX_BACKOFF`].
const BASE_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl Client {
    /// A client for the store of `config`.
    pub fn new(config: &BigCommerceConfig) -> Result<Client, BigCommerceError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("govflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BigCommerceError::Transport {
                request: "client setup".into(),
                detail: e.to_string(),
            })?;
        let base = config.base_url.as_str().trim_end_matches('/');
        let path_prefix = format!("/stores/{}", config.store_hash);
        let api_root = Url::parse(&format!("{base}{path_prefix}/")).map_err(|e| {
            BigCommerceError::Transport {
                request: "client setup".into(),
                detail: format!("bad base URL: {e}"),
            }
        })?;
        Ok(Client {
            http,
            api_root,
            path_prefix,
            token: LiveSecret::new(config.access_token.clone()),
            governor: Governor::new(config.max_concurrency),
            max_attempts: config.max_attempts,
            stats: ClientStats::default(),
            latency: std::sync::OnceLock::new(),
        })
    }

    /// The client's counters.
    pub fn stats(&self) -> &ClientStats {
        &self.stats
    }

    /// Records each request's latency (to its response headers) in `histogram`
    /// from now on; a second call is ignored.
    pub fn observe_latency(&self, histogram: prometheus_client::metrics::histogram::Histogram) {
        let _ = self.latency.set(histogram);
    }

    /// The access token, which a configuration reload replaces (used from
    /// the next request on).
    pub fn token(&self) -> &LiveSecret {
        &self.token
    }

    /// The pacing governor (its learnt quota, for status).
    pub fn governor(&self) -> &Governor {
        &self.governor
    }

    /// GETs `path` (relative to `/stores/{hash}/`, e.g. `v3/customers`) with
    /// `query`, and parses the answer with `parse`, retrying both as needed: a
    /// parse error (a body cut short, a proxy's HTML) counts as a failed attempt.
    pub async fn get<T>(
        &self,
        path: &str,
        query: &[(&str, String)],
        parse: impl Fn(Payload) -> Result<T, String>,
    ) -> Result<T, BigCommerceError> {
        let mut url = self
            .api_root
            .join(path)
            .map_err(|e| BigCommerceError::Transport {
                request: path.to_string(),
                detail: format!("bad path: {e}"),
            })?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let request = match url.query() {
            Some(q) => format!("GET {}/{path}?{q}", self.path_prefix),
            None => format!("GET {}/{path}", self.path_prefix),
        };
        let mut attempt = 0;
        // Failures other than 429 set the backoff; a 429 waits what the store says.
        let mut failures = 0;
        loop {
            attempt += 1;
            let error = match self.attempt(&url, &request).await {
                Ok(payload) => match parse(payload) {
                    Ok(value) => return Ok(value),
                    Err(detail) => BigCommerceError::Body {
                        request: request.clone(),
                        detail,
                    },
                },
                Err(e) => e,
            };
            if !error.is_retryable() {
                return Err(error);
            }
            if attempt >= self.max_attempts {
                return Err(BigCommerceError::Exhausted {
                    attempts: attempt,
                    last: Box::new(error),
                });
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            if error.status() == Some(429) {
                // The governor already holds requests back for Reset-Ms when the
                // 429 carried headers; add a short jittered pause either way.
                tracing::debug!(%request, attempt, "rate limited, waiting");
                tokio::time::sleep(jitter(BASE_BACKOFF)).await;
            } else {
                self.stats.transient_errors.fetch_add(1, Ordering::Relaxed);
                failures += 1;
                let delay = backoff(failures);
                tracing::warn!(%request, attempt, delay_ms = delay.as_millis() as u64, error = %error, "retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }

    async fn attempt(&self, url: &Url, request: &str) -> Result<Payload, BigCommerceError> {
        let slot = self.governor.acquire().await;
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let sent = self
            .http
            .get(url.clone())
            .header("X-Auth-Token", self.token.get().expose())
            .header("Accept", "application/json")
            .send()
            .await;
        if let Some(latency) = self.latency.get() {
            latency.observe(started.elapsed().as_secs_f64());
        }
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                // The request may or may not have reached the server: count it.
                self.governor.finish(slot, true, None);
                return Err(transport(request, &e));
            }
        };
        let status = response.status();
        let limits = RateLimitHeaders::parse(response.headers());
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            if limits.present() {
                self.governor.finish(slot, false, Some(limits));
            } else {
                // Platform load rather than our quota: back everyone off.
                self.governor.finish(slot, false, None);
                self.governor.pause(jitter(Duration::from_secs(1)));
            }
            let body = response.text().await.unwrap_or_default();
            return Err(BigCommerceError::Status {
                request: request.to_string(),
                status: 429,
                body: excerpt(&body, 300),
            });
        }
        self.governor
            .finish(slot, true, limits.present().then_some(limits));
        if status == StatusCode::NO_CONTENT {
            return Ok(Payload::Empty);
        }
        let body = response.bytes().await.map_err(|e| transport(request, &e))?;
        if !status.is_success() {
            return Err(BigCommerceError::Status {
                request: request.to_string(),
                status: status.as_u16(),
                body: excerpt(&String::from_utf8_lossy(&body), 300),
            });
        }
        Ok(if body.is_empty() {
            Payload::Empty
        } else {
            Payload::Body(body)
        })
    }
}

fn transport(request: &str, e: &reqwest::Error) -> BigCommerceError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "body cut short"
    } else {
        "request failed"
    };
    // reqwest's Display includes the URL, which holds no secret (the token is a header).
    BigCommerceError::Transport {
        request: request.to_string(),
        detail: format!("{kind}: {e}"),
    }
}

/// Exponential backoff with full jitter between half and all of the step.
fn backoff(attempt: u32) -> Duration {
    let step = BASE_BACKOFF.saturating_mul(1u32 << attempt.min(16));
    jitter(step.min(MAX_BACKOFF))
}

fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// The first `max` characters of `text`, on a character boundary.
pub fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_millis(200));
        assert!(backoff(1) >= Duration::from_millis(100));
        assert!(backoff(30) <= MAX_BACKOFF);
        assert!(backoff(30) >= MAX_BACKOFF / 2);
    }

    #[test]
    fn excerpt_respects_char_boundaries() {
        assert_eq!(excerpt("héllo", 2), "hé…");
        assert_eq!(excerpt("hi", 5), "hi");
    }
}
