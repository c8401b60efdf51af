//! Time as the scheduler sees it: the system clock in production, a manual
//! clock that tests advance by hand (no test ever sleeps).

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use tokio::sync::watch;

/// The scheduler's source of time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// Completes once [`Clock::now`] is at or past `t` (at once if it already is).
    fn sleep_until(&self, t: DateTime<Utc>) -> BoxFuture<'_, ()>;
}

/// The system's wall clock.
///
/// Sleeps in slices of at most [`SystemClock::MAX_SLICE`] and re-reads the
/// wall clock after each, so a clock step (NTP, a suspended machine) delays a
/// tick by at most one slice.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl SystemClock {
    /// Longest single sleep before the wall clock is read again.
    pub const MAX_SLICE: Duration = Duration::from_secs(30);
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, t: DateTime<Utc>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            loop {
                let left = match (t - Utc::now()).to_std() {
                    Ok(left) if !left.is_zero() => left,
                    // Negative (already past) or zero.
                    _ => return,
                };
                tokio::time::sleep(left.min(Self::MAX_SLICE)).await;
            }
        })
    }
}

/// A clock that only moves when told to: [`ManualClock::set`] and
/// [`ManualClock::advance`] wake every pending [`Clock::sleep_until`] whose
/// instant has come. For tests and simulations.
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock {
            now: watch::Sender::new(start),
        }
    }

    /// Moves the clock to `t` (backwards too, like a stepped wall clock).
    pub fn set(&self, t: DateTime<Utc>) {
        self.now.send_replace(t);
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: chrono::TimeDelta) {
        self.now.send_modify(|now| *now += d);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn sleep_until(&self, t: DateTime<Utc>) -> BoxFuture<'_, ()> {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            loop {
                if *rx.borrow_and_update() >= t {
                    return;
                }
                if rx.changed().await.is_err() {
                    // The clock is gone: time never moves again.
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use futures::FutureExt;

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_only_when_their_time_comes() {
        let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let clock = ManualClock::new(start);
        let mut sleep = clock.sleep_until(start + chrono::TimeDelta::minutes(5));
        assert!((&mut sleep).now_or_never().is_none());
        clock.advance(chrono::TimeDelta::minutes(4));
        assert!((&mut sleep).now_or_never().is_none());
        clock.advance(chrono::TimeDelta::minutes(1));
        assert!(sleep.now_or_never().is_some());
        assert!(clock.sleep_until(start).now_or_never().is_some());
    }
}
