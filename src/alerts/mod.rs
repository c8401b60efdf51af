//! Alerts to Slack: a check starts failing or recovers, dbt fails or recovers,
//! a source keeps failing past a threshold or recovers, a full refresh fails
//! or recovers.
//!
//! The [`Alerter`] deduplicates (an alert whose key is already failing is not
//! sent again; a recovery is sent once, and only after a failure was sent),
//! rate-limits (a token bucket per sink; what is dropped is counted, logged,
//! and mentioned in the next message), retries 429 (honouring `Retry-After`)
//! and 5xx with backoff, and redacts secrets from every text it sends or logs.
//!
//! The runtime reports outcomes and lets the alerter decide:
//! [`Alerter::notify`] for checks, dbt and full refreshes;
//! [`Alerter::source_failed`] / [`Alerter::source_succeeded`] count a
//! source's consecutive failures against the threshold.

pub mod config;
pub use config::{AlertsConfig, SlackConfig, SlackTarget};

mod alert;
mod error;
mod ratelimit;
mod redact;
mod slack;
use alert::plural;
pub use alert::{Alert, FailedNode};
pub use error::AlertError;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use self::ratelimit::TokenBucket;
pub use self::redact::{REDACTED, Redactor, url_for_logs};
pub use self::slack::SlackSink;
use crate::config::Secret;

/// What became of one alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Sent to the sink.
    Sent,
    /// Not sent: the same failure was already sent and has not recovered.
    Duplicate,
    /// Not sent: a recovery of something never reported as failing.
    NotFailing,
    /// Not sent: a source failure below the threshold.
    BelowThreshold,
    /// Dropped by the rate limit (counted, mentioned in the next message).
    RateLimited,
    /// No sink configured: logged only.
    Logged,
}

/// Counters of an [`Alerter`], for tests, logs and metrics.
#[derive(Debug, Default)]
pub struct AlertStats {
    /// Messages delivered.
    pub sent: AtomicU64,
    /// Alerts not sent because they were already sent.
    pub deduplicated: AtomicU64,
    /// Alerts dropped by the rate limit.
    pub rate_limited: AtomicU64,
    /// Alerts that could not be delivered (after retries).
    pub failed: AtomicU64,
    /// Retries after a retryable failure.
    pub retries: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    /// Keys currently failing (a failing alert was delivered), with their fingerprint.
    failing: HashMap<String, String>,
    /// Consecutive failures per source.
    source_failures: HashMap<String, u32>,
    bucket: TokenBucket,
    /// Alerts dropped by the rate limit since the last delivered message.
    suppressed: u64,
}

/// Sends alerts to one Slack sink (or only logs them when none is configured).
#[derive(Debug)]
pub struct Alerter {
    sink: Option<SlackSink>,
    /// Where the failing keys are kept across restarts (`alerts.json`).
    state_path: Option<PathBuf>,
    /// Told of every message that goes out (its redacted text).
    observer: Option<Observer>,
    redactor: Redactor,
    /// Secrets that configuration reloads brought in (redacted too).
    reloaded: Mutex<Redactor>,
    source_failure_threshold: u32,
    inner: Mutex<Inner>,
    stats: AlertStats,
}

/// Default: alerts after this many consecutive failures of a source.
pub const DEFAULT_SOURCE_FAILURE_THRESHOLD: u32 = 3;
/// Default: most messages per minute per sink.
pub const DEFAULT_MAX_PER_MINUTE: u32 = 10;

impl Alerter {
    /// An alerter for `config`. `secrets` are the other secret values of the
    /// configuration (source tokens, database URLs): any of them that appears
    /// in an error text is replaced by `***` before it is sent or logged.
    pub fn new<'a>(
        config: &AlertsConfig,
        secrets: impl IntoIterator<Item = &'a Secret>,
    ) -> Result<Alerter, AlertError> {
        let mut redactor = Redactor::new(secrets);
        let (sink, max_per_minute) = match &config.slack {
            Some(slack) => {
                for secret in slack.secrets() {
                    redactor.add(secret);
                }
                (Some(SlackSink::new(slack)?), slack.max_per_minute)
            }
            None => (None, DEFAULT_MAX_PER_MINUTE),
        };
        Ok(Alerter {
            sink,
            state_path: None,
            observer: None,
            redactor,
            reloaded: Mutex::new(Redactor::default()),
            source_failure_threshold: config.source_failure_threshold.max(1),
            inner: Mutex::new(Inner {
                failing: HashMap::new(),
                source_failures: HashMap::new(),
                bucket: TokenBucket::new(
                    max_per_minute,
                    Duration::from_secs(60),
                    tokio::time::Instant::now(),
                ),
                suppressed: 0,
            }),
            stats: AlertStats::default(),
        })
    }

    /// Sets the retry backoff: the first wait, and the longest wait (also the
    /// cap on a server's `Retry-After`). Defaults: 500 ms and 30 s.
    pub fn with_retry_backoff(mut self, first: Duration, max: Duration) -> Alerter {
        if let Some(sink) = &mut self.sink {
            sink.set_backoff(first, max);
        }
        self
    }

    /// Keeps the failing keys in `path` (JSON, rewritten atomically when they
    /// change), loading what an earlier run left there: after a restart a
    /// failure already sent is not sent again, and its recovery still is. A
    /// file that does not parse is logged and replaced.
    pub fn with_state_file(mut self, path: impl Into<PathBuf>) -> Alerter {
        let path = path.into();
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<AlertState>(&bytes) {
                Ok(state) => self.lock().failing = state.failing.into_iter().collect(),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "alert state unreadable; starting with nothing failing")
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "alert state unreadable; starting with nothing failing")
            }
        }
        self.state_path = Some(path);
        self
    }

    /// Calls `observer` with the (redacted) text of every message that goes
    /// out, or is logged when no sink is configured.
    pub fn with_observer(mut self, observer: impl Fn(&str) + Send + Sync + 'static) -> Alerter {
        self.observer = Some(Observer(Box::new(observer)));
        self
    }

    /// The keys currently failing, sorted (for status pages and tests).
    pub fn failing_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.lock().failing.keys().cloned().collect();
        keys.sort_unstable();
        keys
    }

    /// The alerter's counters.
    pub fn stats(&self) -> &AlertStats {
        &self.stats
    }

    /// The Slack sink's token (or webhook URL) and its configuration key,
    /// for reloads; `None` without `[alerts.slack]`.
    pub fn slack_secret(&self) -> Option<(&'static str, &crate::config::LiveSecret)> {
        self.sink.as_ref().map(SlackSink::secret)
    }

    /// Redacts `secrets` from every later text too (values a reload brought in).
    pub fn redact_also<'a>(&self, secrets: impl IntoIterator<Item = &'a Secret>) {
        let mut reloaded = self.reloaded.lock().unwrap_or_else(|e| e.into_inner());
        for secret in secrets {
            reloaded.add(secret);
        }
    }

    /// `text` without any known secret.
    fn redact(&self, text: &str) -> String {
        let reloaded = self.reloaded.lock().unwrap_or_else(|e| e.into_inner());
        reloaded.redact(&self.redactor.redact(text))
    }

    /// The redactor applied to every text.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Whether the key of `alert` is currently failing (a failure was delivered).
    pub fn is_failing(&self, alert: &Alert) -> bool {
        self.lock().failing.contains_key(&alert.key())
    }

    /// Sends `alert` unless deduplication or the rate limit holds it back.
    /// On a delivery error nothing is recorded, so the next report of the same
    /// state tries again.
    pub async fn notify(&self, alert: Alert) -> Result<Delivery, AlertError> {
        let key = alert.key();
        let fingerprint = alert.fingerprint();
        let recovery = alert.is_recovery();
        // Decide and record under the lock (never held across an await); undo on failure.
        let (previous, suppressed) = {
            let mut inner = self.lock();
            let previous = inner.failing.get(&key).cloned();
            if recovery {
                if previous.is_none() {
                    return Ok(Delivery::NotFailing);
                }
                inner.failing.remove(&key);
            } else {
                if previous.as_deref() == Some(fingerprint.as_str()) {
                    self.stats.deduplicated.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(alert = %key, "alert already sent; still failing");
                    return Ok(Delivery::Duplicate);
                }
                inner.failing.insert(key.clone(), fingerprint);
            }
            if self.sink.is_some() && !inner.bucket.try_take(tokio::time::Instant::now()) {
                inner.suppressed += 1;
                restore(&mut inner.failing, &key, previous);
                self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    alert = %key,
                    suppressed = inner.suppressed,
                    "alert rate limit reached; alert dropped"
                );
                return Ok(Delivery::RateLimited);
            }
            (previous, inner.suppressed)
        };
        let mut text = self.redact(&alert.text());
        let Some(sink) = &self.sink else {
            tracing::warn!(alert = %key, recovery, text = %text, "alert (no sink configured)");
            self.save_state();
            self.observe(&text);
            return Ok(Delivery::Logged);
        };
        if suppressed > 0 {
            text.push_str(&format!(
                "\n_({} dropped by the rate limit before this one)_",
                plural(suppressed, "alert", "alerts")
            ));
        }
        match sink.send(&text, &self.stats).await {
            Ok(()) => {
                let mut inner = self.lock();
                inner.suppressed = inner.suppressed.saturating_sub(suppressed);
                drop(inner);
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                tracing::info!(alert = %key, recovery, sink = sink.kind(), "alert sent");
                self.save_state();
                self.observe(&text);
                Ok(Delivery::Sent)
            }
            Err(e) => {
                let e = self.redact_error(e);
                restore(&mut self.lock().failing, &key, previous);
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(alert = %key, sink = sink.kind(), error = %e, "alert not delivered");
                Err(e)
            }
        }
    }

    /// Counts a failure of `source`; alerts once the count reaches the
    /// threshold (once per failing streak).
    pub async fn source_failed(&self, source: &str, error: &str) -> Result<Delivery, AlertError> {
        let count = {
            let mut inner = self.lock();
            let count = inner.source_failures.entry(source.to_string()).or_insert(0);
            *count = count.saturating_add(1);
            *count
        };
        if count < self.source_failure_threshold {
            return Ok(Delivery::BelowThreshold);
        }
        self.notify(Alert::SourceFailing {
            source: source.to_string(),
            consecutive_failures: count,
            last_error: error.to_string(),
        })
        .await
    }

    /// Resets the failure count of `source`; sends a recovery if a failure was sent.
    pub async fn source_succeeded(&self, source: &str) -> Result<Delivery, AlertError> {
        let failures = self.lock().source_failures.remove(source).unwrap_or(0);
        let alert = Alert::SourceRecovered {
            source: source.to_string(),
            failures,
        };
        let delivery = self.notify(alert).await;
        if !matches!(
            delivery,
            Ok(Delivery::Sent | Delivery::Logged | Delivery::NotFailing)
        ) {
            // Not delivered: keep the streak so the next success tries again.
            self.lock()
                .source_failures
                .entry(source.to_string())
                .or_insert(failures);
        }
        delivery
    }

    fn redact_error(&self, e: AlertError) -> AlertError {
        match e {
            AlertError::Setup(d) => AlertError::Setup(self.redact(&d)),
            AlertError::Transport { sink, detail } => AlertError::Transport {
                sink,
                detail: self.redact(&detail),
            },
            AlertError::Status {
                sink,
                status,
                body,
                retry_after,
            } => AlertError::Status {
                sink,
                status,
                body: self.redactor.redact(&body),
                retry_after,
            },
            AlertError::Slack { error } => AlertError::Slack {
                error: self.redactor.redact(&error),
            },
            AlertError::Exhausted { attempts, last } => AlertError::Exhausted {
                attempts,
                last: Box::new(self.redact_error(*last)),
            },
        }
    }

    fn observe(&self, text: &str) {
        if let Some(Observer(observer)) = &self.observer {
            observer(text);
        }
    }

    /// Writes the failing keys to the state file, if there is one.
    fn save_state(&self) {
        let Some(path) = &self.state_path else { return };
        let state = AlertState {
            failing: self.lock().failing.clone().into_iter().collect(),
        };
        let written = serde_json::to_vec_pretty(&state)
            .map_err(std::io::Error::other)
            .and_then(|bytes| write_state(path, &bytes));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "cannot keep the alert state");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves consistent maps.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A callback told of each message that goes out.
struct Observer(Box<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

/// The persisted part of an [`Alerter`]: failing keys and their fingerprints.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct AlertState {
    failing: BTreeMap<String, String>,
}

fn write_state(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::fsutil::write_atomic_unsynced(path, bytes)
}

fn restore(failing: &mut HashMap<String, String>, key: &str, previous: Option<String>) {
    match previous {
        Some(fp) => {
            failing.insert(key.to_string(), fp);
        }
        None => {
            failing.remove(key);
        }
    }
}

#[cfg(test)]
mod tests;
