//! The store quota: a rolling window log of request arrivals.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The `X-Rate-Limit-*` header values of one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RateHeaders {
    /// `X-Rate-Limit-Time-Window-Ms`.
    pub window_ms: u64,
    /// `X-Rate-Limit-Requests-Quota`.
    pub quota: u32,
    /// `X-Rate-Limit-Requests-Left`, after this request.
    pub left: u32,
    /// `X-Rate-Limit-Time-Reset-Ms`: until the oldest request in the window leaves it.
    pub reset_ms: u64,
}

impl RateHeaders {
    /// The headers as (name, value) pairs.
    pub(crate) fn pairs(&self) -> [(&'static str, String); 4] {
        [
            ("X-Rate-Limit-Time-Window-Ms", self.window_ms.to_string()),
            ("X-Rate-Limit-Time-Reset-Ms", self.reset_ms.to_string()),
            ("X-Rate-Limit-Requests-Quota", self.quota.to_string()),
            ("X-Rate-Limit-Requests-Left", self.left.to_string()),
        ]
    }
}

/// A rolling window: a request occupies a slot for `window` from its arrival.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    quota: u32,
    window: Duration,
    log: VecDeque<Instant>,
}

impl RateLimiter {
    /// A limiter allowing `quota` requests per `window`.
    pub(crate) fn new(quota: u32, window: Duration) -> Self {
        RateLimiter {
            quota,
            window,
            log: VecDeque::with_capacity(quota as usize),
        }
    }

    /// The quota.
    pub(crate) fn quota(&self) -> u32 {
        self.quota
    }

    /// The window in milliseconds.
    pub(crate) fn window_ms(&self) -> u64 {
        self.window.as_millis() as u64
    }

    /// Admits (and counts) a request arriving at `now`, or refuses it (not counted).
    pub(crate) fn admit(&mut self, now: Instant) -> (bool, RateHeaders) {
        while self.log.front().is_some_and(|t| *t + self.window <= now) {
            self.log.pop_front();
        }
        let allowed = (self.log.len() as u64) < self.quota as u64;
        if allowed {
            self.log.push_back(now);
        }
        let reset_ms = self.log.front().map_or(0, |t| {
            let left = (*t + self.window).saturating_duration_since(now);
            // Round up so that waiting Reset-Ms is always enough.
            left.as_micros().div_ceil(1000) as u64
        });
        let headers = RateHeaders {
            window_ms: self.window_ms(),
            quota: self.quota,
            left: self.quota.saturating_sub(self.log.len() as u32),
            reset_ms,
        };
        (allowed, headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_window() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(2, Duration::from_secs(30));
        let (ok, h) = rl.admit(t0);
        assert!(ok);
        assert_eq!((h.left, h.reset_ms), (1, 30_000));
        let (ok, h) = rl.admit(t0 + Duration::from_secs(10));
        assert!(ok);
        assert_eq!((h.left, h.reset_ms), (0, 20_000));
        let (ok, h) = rl.admit(t0 + Duration::from_secs(20));
        assert!(!ok);
        assert_eq!((h.left, h.reset_ms), (0, 10_000));
        // The first request leaves the window at 30 s.
        let (ok, h) = rl.admit(t0 + Duration::from_secs(30));
        assert!(ok);
        assert_eq!((h.left, h.reset_ms), (0, 10_000));
    }
}
