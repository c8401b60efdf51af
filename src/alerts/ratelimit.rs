//! A token bucket: at most `capacity` alerts at once, refilled at `capacity` per period.

use std::time::Duration;

use tokio::time::Instant;

/// A token bucket over explicit instants (pure: the caller passes the time).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `capacity` tokens refilled at `capacity` per `period`.
    pub fn new(capacity: u32, period: Duration, now: Instant) -> TokenBucket {
        let capacity = f64::from(capacity.max(1));
        TokenBucket {
            capacity,
            per_second: capacity / period.as_secs_f64().max(0.001),
            tokens: capacity,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3, Duration::from_secs(60), t0);
        assert!(b.try_take(t0) && b.try_take(t0) && b.try_take(t0));
        assert!(!b.try_take(t0));
        assert!(!b.try_take(t0 + Duration::from_secs(19)));
        assert!(b.try_take(t0 + Duration::from_secs(20)));
        assert!(!b.try_take(t0 + Duration::from_secs(21)));
        // A long quiet time refills to capacity, no more.
        let later = t0 + Duration::from_secs(3600);
        assert!(b.try_take(later) && b.try_take(later) && b.try_take(later));
        assert!(!b.try_take(later));
    }
}
