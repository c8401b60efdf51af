//! Client-side pacing that keeps BigCommerce's store quota fully used but never
//! exceeded.
//!
//! BigCommerce counts requests per store in a rolling window (30 s) and tells,
//! on every response, the quota and what is left. The governor keeps its own
//! log of the requests it made in the window (timed at the response, which is
//! no earlier than when the server counted them, so its view errs on the safe
//! side), estimates what other apps of the store use from the headers, and lets
//! a request start only when a slot is free. Until the first response tells the
//! quota, one request at a time goes out.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::sync::{Notify, Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// Rate-limit facts read off one response's `X-Rate-Limit-*` headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// `X-Rate-Limit-Requests-Quota`.
    pub quota: Option<u32>,
    /// `X-Rate-Limit-Requests-Left`.
    pub left: Option<u32>,
    /// `X-Rate-Limit-Time-Window-Ms`.
    pub window_ms: Option<u64>,
    /// `X-Rate-Limit-Time-Reset-Ms`.
    pub reset_ms: Option<u64>,
}

impl RateLimitHeaders {
    /// Reads the headers (names are case-insensitive); absent or bad values are `None`.
    pub fn parse(headers: &HeaderMap) -> Self {
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        RateLimitHeaders {
            quota: num("x-rate-limit-requests-quota").map(|v| v.min(u32::MAX as u64) as u32),
            left: num("x-rate-limit-requests-left").map(|v| v.min(u32::MAX as u64) as u32),
            window_ms: num("x-rate-limit-time-window-ms"),
            reset_ms: num("x-rate-limit-time-reset-ms"),
        }
    }

    /// Whether the response carried rate-limit information at all.
    pub fn present(&self) -> bool {
        self.quota.is_some() || self.left.is_some()
    }
}

/// What the governor knows about the quota.
#[derive(Debug)]
enum Quota {
    /// No response yet: one request at a time until the first tells.
    Unknown,
    /// The store answered without rate-limit headers.
    Unlimited,
    /// Requests per window.
    Limited(u32),
}

#[derive(Debug)]
struct State {
    quota: Quota,
    window: Duration,
    /// Requests started and not yet answered.
    inflight: u32,
    /// Answer times of our requests still inside the window.
    done: VecDeque<Instant>,
    /// Recent estimates of other apps' use of the window.
    external_samples: VecDeque<u32>,
    /// No request before this instant (after a 429 or `Requests-Left: 0`).
    blocked_until: Option<Instant>,
}

/// Shared pacing for every request of one store.
#[derive(Debug)]
pub struct Governor {
    state: Mutex<State>,
    changed: Notify,
    concurrency: Semaphore,
}

/// Slack added to a slot's expiry, for clock granularity between client and server.
const SLOT_MARGIN: Duration = Duration::from_millis(25);
/// How many recent estimates of other apps' usage are kept.
const EXTERNAL_SAMPLES: usize = 8;

/// Permission to send one request; report its outcome with [`Governor::finish`].
#[derive(Debug)]
pub struct Slot<'a> {
    _permit: SemaphorePermit<'a>,
}

impl Governor {
    /// A governor allowing at most `max_concurrency` requests in flight.
    pub fn new(max_concurrency: usize) -> Self {
        Governor {
            state: Mutex::new(State {
                quota: Quota::Unknown,
                window: Duration::from_secs(30),
                inflight: 0,
                done: VecDeque::new(),
                external_samples: VecDeque::new(),
                blocked_until: None,
            }),
            changed: Notify::new(),
            concurrency: Semaphore::new(max_concurrency.max(1)),
        }
    }

    /// Waits until a request may be sent.
    pub async fn acquire(&self) -> Slot<'_> {
        // The semaphore is never closed, so acquire cannot fail.
        let permit = match self.concurrency.acquire().await {
            Ok(p) => p,
            Err(_) => unreachable!("the governor's semaphore is never closed"),
        };
        loop {
            let notified = self.changed.notified();
            let wait = {
                let mut s = self.lock();
                let now = Instant::now();
                s.prune(now);
                match s.next_start(now) {
                    Ok(()) => {
                        s.inflight += 1;
                        return Slot { _permit: permit };
                    }
                    Err(wait) => wait,
                }
            };
            match wait {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Records the outcome of a request started with `slot`.
    ///
    /// `counted` is false when the server certainly did not count the request
    /// (a 429); `headers` are the response's rate-limit headers, if any.
    pub fn finish(&self, slot: Slot<'_>, counted: bool, headers: Option<RateLimitHeaders>) {
        let now = Instant::now();
        {
            let mut s = self.lock();
            s.inflight = s.inflight.saturating_sub(1);
            s.prune(now);
            match headers {
                Some(h) => s.learn(now, &h, counted),
                // Answers without rate-limit headers (a store or proxy that does
                // not report them): nothing to pace against.
                None if counted => s.quota = Quota::Unlimited,
                None => {}
            }
            if counted {
                s.done.push_back(now);
            }
        }
        drop(slot);
        self.changed.notify_waiters();
    }

    /// Blocks new requests for `pause` (a 429 without usable headers).
    pub fn pause(&self, pause: Duration) {
        let until = Instant::now() + pause;
        let mut s = self.lock();
        s.blocked_until = Some(s.blocked_until.map_or(until, |b| b.max(until)));
    }

    /// The quota learnt from the store, if any.
    pub fn quota(&self) -> Option<u32> {
        match self.lock().quota {
            Quota::Limited(q) => Some(q),
            _ => None,
        }
    }

    /// Requests counted in the current window (of the quota).
    pub fn used(&self) -> u32 {
        let mut s = self.lock();
        s.prune(Instant::now());
        u32::try_from(s.done.len()).unwrap_or(u32::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the counters in a state
        // worse than stale; keep going with them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn prune(&mut self, now: Instant) {
        while let Some(front) = self.done.front() {
            if *front + self.window + SLOT_MARGIN <= now {
                self.done.pop_front();
            } else {
                break;
            }
        }
        if self.blocked_until.is_some_and(|b| b <= now) {
            self.blocked_until = None;
        }
    }

    fn external(&self) -> u32 {
        self.external_samples.iter().copied().min().unwrap_or(0)
    }

    /// `Ok` when a request may start now, else when to look again (`None`: at
    /// the next completion).
    fn next_start(&self, now: Instant) -> Result<(), Option<Instant>> {
        if let Some(until) = self.blocked_until {
            return Err(Some(until));
        }
        match self.quota {
            Quota::Unlimited => Ok(()),
            Quota::Unknown if self.inflight == 0 => Ok(()),
            Quota::Unknown => Err(None),
            Quota::Limited(quota) => {
                let used = self.inflight + self.done.len() as u32 + self.external();
                if used < quota {
                    Ok(())
                } else if let Some(oldest) = self.done.front() {
                    Err(Some((*oldest + self.window + SLOT_MARGIN).max(now)))
                } else {
                    // Every slot is in flight or used by others: wait for an answer,
                    // or a window, whichever comes first.
                    Err(Some(now + self.window.min(Duration::from_secs(1))))
                }
            }
        }
    }

    /// Reads a response's headers; `counted` is false for a 429, whose
    /// `Requests-Left` says the window is full rather than what others use.
    fn learn(&mut self, now: Instant, h: &RateLimitHeaders, counted: bool) {
        if let Some(ms) = h.window_ms.filter(|ms| *ms > 0) {
            self.window = Duration::from_millis(ms);
        }
        if h.left == Some(0) {
            let reset = Duration::from_millis(h.reset_ms.unwrap_or(1000));
            self.blocked_until = Some(now + reset);
        }
        // A 429 says only when to try again; its `Requests-Left` (0) says the
        // window is full, not what other apps use.
        if !counted {
            return;
        }
        let Some(quota) = h.quota.filter(|q| *q > 0) else {
            return;
        };
        self.quota = Quota::Limited(quota);
        if let Some(left) = h.left {
            // What the server counted that we do not know of (other apps).
            let ours = self.done.len() as u32 + 1;
            let external = quota.saturating_sub(left).saturating_sub(ours);
            self.external_samples.push_back(external);
            if self.external_samples.len() > EXTERNAL_SAMPLES {
                self.external_samples.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn parses_headers_case_insensitively() {
        let h = RateLimitHeaders::parse(&headers(&[
            ("X-Rate-Limit-Requests-Quota", "150"),
            ("x-rate-limit-requests-left", "149"),
            ("X-RATE-LIMIT-TIME-WINDOW-MS", "30000"),
            ("X-Rate-Limit-Time-Reset-Ms", "junk"),
        ]));
        assert_eq!(h.quota, Some(150));
        assert_eq!(h.left, Some(149));
        assert_eq!(h.window_ms, Some(30000));
        assert_eq!(h.reset_ms, None);
        assert!(!RateLimitHeaders::parse(&HeaderMap::new()).present());
    }

    /// A rolling-window server model: what BigCommerce would answer.
    struct Window {
        quota: u32,
        window: Duration,
        arrivals: VecDeque<Instant>,
    }

    impl Window {
        fn arrive(&mut self, now: Instant) -> (bool, RateLimitHeaders) {
            while self
                .arrivals
                .front()
                .is_some_and(|t| *t + self.window <= now)
            {
                self.arrivals.pop_front();
            }
            let accepted = (self.arrivals.len() as u32) < self.quota;
            if accepted {
                self.arrivals.push_back(now);
            }
            let reset = self
                .arrivals
                .front()
                .map_or(self.window, |t| *t + self.window - now);
            let h = RateLimitHeaders {
                quota: Some(self.quota),
                left: Some(self.quota - self.arrivals.len() as u32),
                window_ms: Some(self.window.as_millis() as u64),
                reset_ms: Some(reset.as_millis() as u64),
            };
            (accepted, h)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn uses_the_whole_quota_and_never_trips_it() {
        let gov = Governor::new(8);
        let mut server = Window {
            quota: 10,
            window: Duration::from_secs(1),
            arrivals: VecDeque::new(),
        };
        let start = Instant::now();
        let mut rejected = 0;
        for _ in 0..40 {
            let slot = gov.acquire().await;
            tokio::time::sleep(Duration::from_millis(2)).await; // network latency
            let (accepted, h) = server.arrive(Instant::now());
            rejected += usize::from(!accepted);
            gov.finish(slot, accepted, Some(h));
        }
        assert_eq!(rejected, 0);
        // 40 requests at 10 per second: the first 10 at once, then 3 more windows.
        let span = Instant::now() - start;
        assert!(span < Duration::from_millis(3300), "{span:?}");
        assert!(span >= Duration::from_secs(3), "{span:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_quota_allows_one_in_flight() {
        let gov = std::sync::Arc::new(Governor::new(4));
        let first = gov.acquire().await;
        let g2 = gov.clone();
        let second = tokio::spawn(async move {
            let s = g2.acquire().await;
            g2.finish(s, true, None);
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!second.is_finished());
        gov.finish(first, true, None);
        second.await.unwrap();
        assert_eq!(gov.quota(), None);
    }
}
