//! Backpressure from the epoch loop onto the sources: [`RowBudget`].
//!
//! The channel to the epoch loop is unbounded (a source's data and its
//! cursors must never be refused), so without a bound a source that reads
//! faster than the dataflow steps piles its pages up in memory. The budget
//! counts the rows sent and not yet committed; a source's pages wait for
//! room before they are forwarded, and the epoch loop gives the rows back
//! once it committed them. A page is let through whenever the budget is not
//! full, so one page never waits for itself.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// The rows in flight between the sources and the epoch loop's commits.
#[derive(Debug)]
pub struct RowBudget {
    limit: usize,
    in_flight: AtomicUsize,
    closed: AtomicBool,
    freed: Notify,
}

impl RowBudget {
    /// A budget of `limit` rows in flight.
    pub fn new(limit: usize) -> RowBudget {
        RowBudget {
            limit: limit.max(1),
            in_flight: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            freed: Notify::new(),
        }
    }

    /// A budget that never waits (for a run without an epoch loop to give
    /// rows back, such as a test driving a source alone).
    pub fn unlimited() -> RowBudget {
        RowBudget::new(usize::MAX)
    }

    /// Counts `rows` sent toward the epoch loop.
    pub fn take(&self, rows: usize) {
        self.in_flight.fetch_add(rows, Ordering::AcqRel);
    }

    /// Gives back `rows` the epoch loop committed, waking the waiting sources.
    pub fn release(&self, rows: usize) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(rows))
            });
        self.freed.notify_waiters();
    }

    /// Ends the budget: the epoch loop is gone, nothing waits any more.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.freed.notify_waiters();
    }

    /// Rows sent and not yet given back.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Waits until the budget is not full (or is closed).
    pub async fn room(&self) {
        loop {
            // Registered before the check, so a release in between is not missed.
            let freed = self.freed.notified();
            if self.closed.load(Ordering::Acquire) || self.in_flight() < self.limit {
                return;
            }
            freed.await;
        }
    }
}

/// Closes a [`RowBudget`] when dropped: held by the epoch loop's thread, so
/// that the sources never wait for a loop that ended (or panicked).
pub struct CloseOnDrop(pub std::sync::Arc<RowBudget>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    /// Whether `room()` returns within a short while.
    async fn has_room(budget: &RowBudget) -> bool {
        tokio::time::timeout(Duration::from_millis(50), budget.room())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_full_budget_waits_until_rows_are_given_back() {
        let budget = Arc::new(RowBudget::new(10));
        assert!(has_room(&budget).await);
        // One page may overshoot the limit: it was let in while there was room.
        budget.take(25);
        assert!(!has_room(&budget).await);
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.room().await }
        });
        budget.release(10);
        assert!(!has_room(&budget).await, "15 rows are still in flight");
        budget.release(10);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiting source is woken")
            .unwrap();
        assert_eq!(budget.in_flight(), 5);
        budget.release(100);
        assert_eq!(budget.in_flight(), 0, "never below zero");
    }

    #[tokio::test]
    async fn a_closed_budget_never_waits() {
        let budget = Arc::new(RowBudget::new(1));
        budget.take(5);
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.room().await }
        });
        drop(CloseOnDrop(budget.clone()));
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("closing wakes the waiting source")
            .unwrap();
        assert!(has_room(&budget).await);
        assert!(has_room(&RowBudget::unlimited()).await);
    }
}
